"""The core's receive path: one datagram to the exchange it belongs to (portable, no I/O).

  port 4500 framing (natt.py) -> ISAKMP header (codec.py) -> reassembly (fragments.py)
  -> the IKE SA by its cookies (ike_table.py), or a first message: a new responder SA within
     the admission bounds (admission.py), its peer by address or a dynamic one (dynamic.py)
  -> a peer that moved (dynamic.py) -> phase1.py / quickmode.py / informational.py

Everything here works on one IkeCore (core.py), which calls receive() for every datagram.
"""

from . import admission as admission_
from . import codec
from . import consts as C
from . import dynamic
from . import fragments
from . import ikesa
from . import informational
from . import natt
from . import phase1
from . import quickmode
from . import reactions
from . import states
from .ike_table import ZERO_COOKIE


def receive(core, data, local, remote, now):
    """One UDP payload from remote (ip, port) to local (ip, port)."""
    data = bytes(data)
    if local[1] == C.NATT_PORT or remote[1] == C.NATT_PORT:
        if natt.classify_4500(data) != "ike":
            return               # a keepalive, ESP-in-UDP (the kernel's, not ours), a runt
        data = natt.strip_non_esp_marker(data)
    try:
        header = codec.decode_header(data)
    except codec.MalformedMessage as exc:
        reactions.malformed(core, remote, exc, None)
        return
    if header.next_payload == C.PT_FRAGMENT:      # IKE fragmentation: fragments.py
        data = _reassemble(core, header, data, remote, now)
        if data is None:
            return
        header = codec.decode_header(data)    # _reassemble checked it
    sa = core.table.find(header)
    if sa is not None:
        core.touch(sa)
    if sa is None:
        if header.exchange in (C.EXCHANGE_MAIN, C.EXCHANGE_AGGRESSIVE) and \
                header.rcookie == ZERO_COOKIE:
            _respond(core, header, data, local, remote, now)
        else:
            core.counters["unknown_sa"] += 1
            core.log_once.log(remote, "unknown-sa", "warning",
                              "ignored a %s message from %s for an unknown IKE SA" % (
                                  C.name(C.EXCHANGE_NAMES, header.exchange), remote[0]))
        return
    if sa.established and remote != sa.remote:
        if not dynamic.moved_and_proven(sa, header, data):
            return             # an established SA moves only for its authenticated peer
        dynamic.follow(core.child_sas, sa, local, remote, core.emit)
    elif remote[0] != sa.remote[0]:
        return
    if sa.established:
        dynamic.note_message_id(sa, header)
    if sa.only_first and data != sa.last_received and header.rcookie != ZERO_COOKIE:
        if (header.exchange == C.EXCHANGE_MAIN and not sa.dh_counted
                and not core.admission.admit_dh(sa, now)):
            core.admission_log(now)
            return             # main mode message 3: its initiator sends it again
        sa.only_first = False  # the peer answered our message 2: a real initiator
        sa.quiet_stall = False
        core.admission.heard_more(sa)
        sa.stall_at = sa.created + ikesa.RESPONDER_PATIENCE_S
    if (sa.failed and not sa.initiator and header.rcookie == ZERO_COOKIE
            and data != sa.reply_to and data != sa.last_received
            and header.exchange in (C.EXCHANGE_MAIN, C.EXCHANGE_AGGRESSIVE)):
        # We refused a first message with these cookies and now a different one comes (the
        # peer changed its settings, or the refused one was forged): start over.
        core.remove_ike_sa(sa, now, "superseded by a new first message", notify_peer=False)
        _respond(core, header, data, local, remote, now)
        return
    sa.remote = remote
    if sa.local[0] == "0.0.0.0" and local[0] != "0.0.0.0":
        # No local_address configured: the peer's answer tells us which address it reached,
        # in time for the NAT-D hashes (MM 3) and our ID (MM 5).
        sa.local = (local[0], sa.local[1])
    if local[1] == C.NATT_PORT:
        sa.local = local       # the peer floated to 4500 (RFC 3947 section 4): follow it
    if header.exchange in (C.EXCHANGE_MAIN, C.EXCHANGE_AGGRESSIVE):
        phase1.handle(sa, header, data, now)
    elif header.exchange == C.EXCHANGE_INFORMATIONAL:
        informational.receive(sa, header, data, now)
    elif header.exchange == C.EXCHANGE_QUICK:
        quickmode.receive(sa, header, data, now)
    else:
        core.log_once.log(remote, "exchange-%d" % header.exchange, "warning",
                          "ignored an unsupported %s exchange from %s" % (
                              C.name(C.EXCHANGE_NAMES, header.exchange), remote[0]))
        informational.send_notify(sa, C.UNSUPPORTED_EXCHANGE_TYPE, now)


def _reassemble(core, header, data, remote, now):
    """The whole message once this fragment completes it, else None (held, or refused:
    malformed ones are diagnosed as any malformed message, bounds log once themselves)."""
    try:
        return core.fragments.receive(header, data, remote, now)
    except codec.MalformedMessage as exc:
        reactions.malformed(core, remote, exc, None)
    except fragments.Dropped:
        pass
    return None


def _respond(core, header, data, local, remote, now):
    """A first message (main or aggressive mode) for no IKE SA of ours: a new responder SA,
    if a peer takes it and the admission bounds let it in."""
    mode = states.MAIN if header.exchange == C.EXCHANGE_MAIN else states.AGGRESSIVE
    peer = core.peers.peer_at(remote[0])
    provisional = peer is None
    if provisional:
        peer = dynamic.first_message_peer(core.peers.dynamic_peers(), mode, data)
    if peer is None:
        core.log_once.log(remote, "no-peer", "warning",
                          "ignored IKE from %s: no peer configured for this address" % remote[0])
        return
    if peer.act_as == "initiator":
        core.log_once.log(remote, "act-as", "warning",
                          "ignored IKE from %s: peer %s acts as initiator only" % (
                              remote[0], peer.name))
        return
    admission = core.admission
    computes_dh = mode == states.AGGRESSIVE == peer.phase1_mode   # our answer needs it
    victim = admission.room_for(remote[0], computes_dh, now)
    if victim is not None:          # the oldest main mode SA that heard only message 1
        core.forget_ike_sa(victim, now)
        core.admission_log(now)
    refusal = admission.admit_first_message(remote[0], computes_dh, now)
    if refusal is not None:
        core.admission_log(now)
        return
    # The page shows our configured mode: with a mode mismatch the negotiation stops at
    # "1st msg received" of that mode's table.
    sa = core.new_ike_sa(peer, peer.phase1_mode, states.RESPONDER, header.icookie, local,
                         remote, now)
    admission.opened_responder(sa, computes_dh)
    sa.provisional = provisional     # dynamic.refine() settles the peer by its ID
    sa.only_first = True
    sa.rcookie = core.crypto.random(8)
    sa.feed(states.RECEIVED, now)
    sa.heard_from_peer = True
    if mode != peer.phase1_mode:
        sa.last_received = sa.current_input = data
        sa.fail("mode", "the peer started %s mode, we are set to %s mode" % (
            mode, peer.phase1_mode), now)
        sa.notify_clear(C.INVALID_EXCHANGE_TYPE)
    else:
        phase1.handle(sa, header, data, now)
    _quiet_first_only(core, now)


def _quiet_first_only(core, now):
    """Under pressure: every responder SA that heard only message 1 (refused or answered)
    goes quietly after PRESSURE_PATIENCE_S, and sends nothing more until then."""
    for quiet in core.admission.to_quiet():
        quiet.quiet_stall = True
        quiet.stall_at = min(quiet.stall_at, now + admission_.PRESSURE_PATIENCE_S)
        if quiet.remove_at is not None:
            quiet.remove_at = min(quiet.remove_at, quiet.stall_at)
        quiet.pending = None     # no retransmissions to what is most likely a forged source
        core.touch(quiet)
