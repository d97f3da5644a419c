"""Peers on changing addresses: choosing a dynamic peer by its ID, and following a peer that moved.

A peer with remote_gateway = "%any" (settings.ANY_GATEWAY) cannot be found by the address a first
message comes from. Like strongSwan's IKEv1 ("peer config switching") and Libreswan
(refine_host_connection), the responder takes a provisional peer from what the first message
shows, and settles on the real one once the ID arrives:

- aggressive mode: the ID is in message 1, before any key is needed: the peer is chosen there,
  then its pre-shared key (or certificate) authenticates it;
- main mode with certificates: message 1 offers only proposals, so the first dynamic peer whose
  proposals and authentication method accept the offer is provisional; in message 5 the ID (which
  the certificate must carry) chooses among the dynamic peers that accept the transform already
  agreed; their CAs then check the certificate;
- main mode with a pre-shared key: SKEYID needs the key at message 3, before the ID: only the one
  catch-all peer (settings.Peer.catch_all) can be used.

An established IKE SA follows its peer to a new address or port (NAT rebinding, a new DHCP lease,
RFC 3947 section 4's floating) when an authenticated message (an informational such as DPD's
R-U-THERE, or a new quick mode request, both proven by HASH(1)) comes from there; its SAs are
reinstalled with the new outer address. Portable: MicroPython subset, no I/O.
"""

from . import auth
from . import codec
from . import consts as C
from . import informational
from . import keymat
from . import proposals
from . import states
from .crypto import CryptoError
from .events import Log
from .host import PeerSettled

REPLAY_WINDOW = 32         # informational message ids remembered per IKE SA (note_message_id)


# -- choosing the peer ------------------------------------------------------------------------
def first_message_peer(dynamic_peers, mode, data):
    """The provisional dynamic peer (of dynamic_peers, in the file's order) for a first message
    from an address no peer is configured for, or None. mode: states.MAIN / states.AGGRESSIVE
    of the message."""
    candidates = [p for p in dynamic_peers if p.phase1_mode == mode]
    if not candidates:
        # Let the mode check say why (the page shows a dynamic peer's mode mismatch).
        return dynamic_peers[0] if dynamic_peers else None
    if mode == states.AGGRESSIVE:
        return candidates[0]       # aggr_inI1_outR1 chooses by the ID before anything else
    offered = _offered(data)
    for peer in candidates:
        if offered and proposals.match_ike(peer.proposals, peer.auth, offered) is not None:
            return peer
    return candidates[0]           # its proposals explain the NO-PROPOSAL-CHOSEN


def _offered(data):
    """The attribute lists of the transforms a main mode message 1 offers ([] when unreadable:
    the exchange's own parsing then says what is wrong)."""
    try:
        message = codec.decode_message(data)
    except codec.MalformedMessage:
        return []
    sa_payload = message.find(codec.SaPayload)
    if sa_payload is None or len(sa_payload.proposals) != 1:
        return []
    return [[(a.type, a.value) for a in t.attributes] for t in sa_payload.proposals[0].transforms]


def refine(sa, ident, now):
    """Responder, once the peer's ID is known (aggressive mode message 1, main mode message 5):
    for an SA that was started with a provisional dynamic peer, settle on the dynamic peer with
    this ID. -> True to go on (possibly with another sa.peer), False when no dynamic peer has
    the ID (the diagnosis is recorded and the peer told)."""
    if not sa.provisional or ident is None:
        return True
    sa.provisional = False
    found = None
    for peer in sa.host.dynamic_peers():
        if not _fits(sa, peer):
            continue
        if peer.remote_id is not None and auth.identity_matches(
                sa.crypto, peer.remote_id, ident.id_type, ident.data):
            found = peer
            break
        if peer.catch_all and found is None:
            found = peer           # a peer with this very ID comes first, wherever it is listed
    if found is None:
        kind, text = auth.identity_text(sa.crypto, ident.id_type, ident.data)
        sa.fail("id", "the peer at %s identified as %s %s and no peer with remote_gateway "
                "\"%%any\" has this remote_id" % (sa.remote[0], kind, text), now)
        if sa.keys is not None and sa.mode == states.MAIN:
            informational.send_notify(sa, C.INVALID_ID_INFORMATION, now)
        else:
            sa.notify_clear(C.INVALID_ID_INFORMATION)
        return False
    if found is not sa.peer:
        sa.host.report(PeerSettled(sa, found, sa.mode == states.AGGRESSIVE))
    sa.log("info", "IKE SA %s from %s:%d is peer %s (ID %s)" % (
        sa.id, sa.remote[0], sa.remote[1], found.name,
        "%s %s" % auth.identity_text(sa.crypto, ident.id_type, ident.data)))
    return True


def _fits(sa, peer):
    """Can this dynamic peer take over the negotiation as it stands?"""
    if peer.phase1_mode != sa.mode:
        return False
    if sa.mode == states.AGGRESSIVE:
        return True                # nothing agreed yet: its own proposals are checked next
    if peer.auth != sa.auth:
        return False
    agreed = sa.proposal
    return any((p.encr, p.integ, p.dh) == (agreed.encr, agreed.integ, agreed.dh)
               for p in peer.proposals)


# -- following a peer that moved -------------------------------------------------------------------
def moved_and_proven(sa, header, data):
    """A message for the established sa from another address or port: True when it proves it
    comes from the peer (encrypted with the SA's keys, HASH(1) right), so the SA may follow it.
    Nothing of the SA changes here: the exchange handles the message afterwards as usual."""
    if not sa.established or sa.keys is None or not header.flags & C.FLAG_ENCRYPTION:
        return False
    mid = header.message_id
    if mid in sa.used_mids or mid in sa.peer_informational_mids:
        return False               # a replay (from a forged source) moves nothing
    if header.exchange == C.EXCHANGE_INFORMATIONAL:
        compute = keymat.informational_hash
    elif header.exchange == C.EXCHANGE_QUICK and mid and mid not in sa.quick_modes:
        compute = keymat.qm_hash1  # a new request (answers of ours need our nonce: not here)
    else:
        return False
    try:
        received, _ = sa.open(header, data)
    except (codec.MalformedMessage, CryptoError):
        return False
    if received.index_of(codec.HashPayload) != 0:
        return False
    expected = compute(sa.crypto, sa.prf, sa.keys.skeyid_a, mid, received.raw_after(0))
    return bytes(received.payloads[0].data) == expected


def note_message_id(sa, header):
    """The message ids of the peer's protected informationals on an established SA, the newest
    REPLAY_WINDOW of them: a copy replayed from elsewhere must not move the SA."""
    if header.exchange != C.EXCHANGE_INFORMATIONAL or not header.flags & C.FLAG_ENCRYPTION:
        return
    seen = sa.peer_informational_mids
    if header.message_id not in seen:
        seen.append(header.message_id)
        if len(seen) > REPLAY_WINDOW:
            del seen[0]


def follow(child_sas, sa, local, remote, emit):
    """The peer of sa now talks from remote (to our local): the IKE SA sends there, and every SA
    with the peer's old address is reinstalled with the new one (children.ChildSas.follow: a
    Delete of the old kernel entry, an Install of the same keys with the new outer address and
    ESP-in-UDP ports). emit(event) queues the log line."""
    old = sa.remote
    sa.remote = remote
    if local[0] != "0.0.0.0":
        sa.local = local
    emit(Log("info", sa.peer.name, "peer %s moved from %s:%d to %s:%d: IKE SA %s and its "
             "SAs follow" % (sa.peer.name, old[0], old[1], remote[0], remote[1], sa.id)))
    child_sas.follow(sa, old[0])
