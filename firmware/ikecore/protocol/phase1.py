"""Phase 1: the IKE SA, main mode (6 messages) and aggressive mode (3), PSK authentication.

RFC 2409 section 5 with pre-shared keys:

  main mode                                    aggressive mode
  HDR, SA                  -->                 HDR, SA, KE, Ni, IDii        -->
                           <--  HDR, SA                    <--  HDR, SA, KE, Nr, IDir, HASH_R
  HDR, KE, Ni              -->                 HDR*, HASH_I                 -->
                           <--  HDR, KE, Nr
  HDR*, IDii, HASH_I       -->
                           <--  HDR*, IDir, HASH_R

The IKE SA itself (keys, IVs, retransmission) is ikesa.IkeSa; identities and the proofs (HASH,
or CERT + SIG) are auth.py. Handlers are named for what they consume and produce (pluto style):
main_inR1_outI2 consumes the responder's first message and sends our second. Every handler
either moves the state machine (states.py) forward or leaves it where it stopped and records the
diagnosis (diagnosis.py). Portable: no I/O, no clock; `now` is always passed in.
"""

from . import auth
from . import codec
from . import consts as C
from . import dynamic
from . import fragments
from . import natt
from . import proposals
from . import states
from . import vendor
from .crypto import CryptoError
from .host import Established, Malformed
from .ikesa import RETRANSMIT_DELAYS, rekey_after

# After this many unanswered retransmissions of a key-dependent message, say "probable key
# mismatch" (the page shows it within ~6 s instead of at give-up).
SILENCE_HINT_AFTER = 2
_SILENT_AFTER = {
    "MI_3_SENT": "the peer answered messages 1-4 but not message 5, the first one encrypted "
                 "with the key",
    "AR_1_SENT": "the peer never sent message 3 after our HASH_R: it could not verify it",
}
KEEPALIVE_INTERVAL_S = natt.KEEPALIVE_INTERVAL_S


# -- building blocks of the messages -----------------------------------------------------------
def _sa_payload(sa):
    """Our phase 1 offer: one ISAKMP proposal with one transform per offered IkeProposal."""
    transforms = []
    for number, p in enumerate(sa.offered_proposals()):
        attrs = proposals.ike_attributes(p, sa.auth, sa.lifetime_s)
        transforms.append(codec.Transform(number + 1, C.KEY_IKE,
                                          [codec.Attribute(t, v) for t, v in attrs]))
    return codec.SaPayload([codec.Proposal(1, C.PROTO_ISAKMP, b"", transforms)],
                           doi=C.DOI_IPSEC, situation=C.SIT_IDENTITY_ONLY)


def _vendor_payloads(sa):
    """DPD (RFC 3706 section 7) and NAT-T (RFC 3947: every variant from the initiator, the chosen
    one back from the responder). DPD goes out even when our own probing is off (dpd.delay_s =
    0): the vendor ID says we answer R-U-THERE, and a peer that sees none (Libreswan) never
    probes us, so it could not detect our death."""
    return ([codec.VendorPayload(vendor.VID_DPD)] + sa.natt.vendor_payloads(sa.initiator)
            + fragments.vendor_payloads(sa.peer))


def _responder_lifetime_payloads(sa):
    """Responder: RFC 2407 section 4.6.3.1 (as Cisco uses it for the ISAKMP SA) when we chose a
    lifetime shorter than the one offered, so the initiator does not outlive our SA."""
    if not sa.lifetime_told:
        return []
    data = proposals.lifetime_notify_data(proposals.P1_LIFE_TYPE, proposals.P1_LIFE_DURATION,
                                          sa.lifetime_s)
    return [codec.NotifyPayload(C.RESPONDER_LIFETIME, protocol=C.PROTO_ISAKMP, spi=sa.spi(),
                                data=data)]


def _honour_responder_lifetime(sa, received):
    """Initiator: a RESPONDER-LIFETIME for the ISAKMP SA in the responder's answer; we adopt a
    shorter lifetime than ours (a longer one is no promise we could keep)."""
    for note in received.all(codec.NotifyPayload):
        if note.notify_type != C.RESPONDER_LIFETIME or note.protocol != C.PROTO_ISAKMP:
            continue
        seconds, _ = proposals.lifetime_from_notify(bytes(note.data), proposals.P1_LIFE_TYPE,
                                                    proposals.P1_LIFE_DURATION)
        if seconds and seconds < sa.lifetime_s:
            sa.log("info", "IKE SA %s: the peer's RESPONDER-LIFETIME is %d s, shorter than our "
                   "%d s: using %d s" % (sa.id, seconds, sa.lifetime_s, seconds))
            sa.lifetime_note = "the peer's (RESPONDER-LIFETIME); we proposed %d" % sa.lifetime_s
            sa.lifetime_s = seconds


def _note_vendor_ids(sa, received):
    vids = received.all(codec.VendorPayload)
    if vendor.has(vids, vendor.VID_DPD):
        sa.peer_dpd = True
    sa.natt.note_vendor_ids(vids)
    sa.fragments_out.note_vendor_ids(vids)


def _hash_fn(sa):
    alg = sa.proposal.integ
    return lambda data: sa.crypto.hash(alg, data)


def _natd_payloads(sa):
    """NAT-D payloads (RFC 3947 section 3.2) for MM 3/4 and aggressive mode 2/3, when both sides
    announced NAT-T: the hash of the peer's address and port, then of ours."""
    return sa.natt.nat_d_payloads(_hash_fn(sa), sa.icookie, sa.rcookie, sa.local, sa.remote)


def _process_natd(sa, received):
    """The peer's NAT-D hashes against the addresses this datagram travelled with."""
    verdict = sa.natt.process_nat_d(_hash_fn(sa), sa.icookie, sa.rcookie, received.payloads,
                                    sa.local, sa.remote)
    if verdict is not None and verdict.nat:
        sa.log("info", "NAT-T: NAT detected at the %s (%s)" % (
            verdict.status, sa.natt.variant.name))


def _float(sa):
    """RFC 3947 section 4: with a NAT on the path, IKE moves to port 4500 (non-ESP marker)
    from main mode message 5 / aggressive mode message 3 on, and ESP goes in UDP."""
    if sa.natt.float_ports and sa.remote[1] != C.NATT_PORT:
        sa.local = (sa.local[0], C.NATT_PORT)
        sa.remote = (sa.remote[0], C.NATT_PORT)


def _payload_body(payload):
    """The body of one payload as it is encoded (generic header stripped): SAi_b, IDii_b..."""
    _, data = codec.encode_payloads([payload])
    return data[C.GENERIC_HEADER_LENGTH:]


def _single_isakmp_proposal(sa_payload):
    """The phase 1 SA must hold exactly one ISAKMP proposal (RFC 2409 section 5)."""
    props = [p for p in sa_payload.proposals if p.protocol == C.PROTO_ISAKMP]
    if len(sa_payload.proposals) != 1 or len(props) != 1:
        raise codec.MalformedMessage("phase 1 SA payload must carry one ISAKMP proposal")
    return props[0]


def _dh_start(sa):
    sa.dh_private, public = sa.crypto.dh_new(sa.proposal.dh)
    return public


def _nonce(sa):
    return sa.crypto.random(32)


def _initial_contact_payloads(sa):
    """INITIAL-CONTACT (RFC 2407 section 4.6.3.3) when this is our first IKE SA with the peer,
    so it can drop any state it still has from before we restarted."""
    if not sa.initial_contact:
        return []
    return [codec.NotifyPayload(C.INITIAL_CONTACT, protocol=C.PROTO_ISAKMP, spi=sa.spi())]


# -- the exchanges -----------------------------------------------------------------------------------
def start(sa, now):
    """Initiator: send the first message of main or aggressive mode."""
    sa.feed(states.START, now)
    if sa.mode == states.MAIN:
        # HDR, SA -->
        sa_payload = _sa_payload(sa)
        sa.sai_b = _payload_body(sa_payload)
        data = sa.message(C.EXCHANGE_MAIN, [sa_payload] + _vendor_payloads(sa))
    else:
        # HDR, SA, KE, Ni, IDii -->   (the group is fixed by our first proposal: aggressive mode
        # cannot negotiate it, RFC 2409 section 5.4)
        sa_payload = _sa_payload(sa)
        sa.sai_b = _payload_body(sa_payload)
        sa.proposal = sa.peer.proposals[0]
        sa.ke_i = _dh_start(sa)
        sa.ni = _nonce(sa)
        sa.idi = auth.identity_payload(sa.crypto, auth.local_identity(sa))
        data = sa.message(C.EXCHANGE_AGGRESSIVE,
                          [sa_payload, codec.KePayload(sa.ke_i), codec.NoncePayload(sa.ni), sa.idi]
                          + auth.cert_requests(sa) + _vendor_payloads(sa))
    _send_next(sa, data, now)
    sa.log("info", "initiating %s mode with %s (%s)" % (sa.mode, sa.remote[0],
                                                         ", ".join(p.name for p in sa.peer.proposals)))


def handle(sa, header, data, now):
    """A phase 1 (main/aggressive) message for this SA. Duplicates are answered with our last
    message; anything not expected in the current state is dropped (logged). The state's row
    (states.PHASE1) names the handler; the message is opened and its payloads checked against
    the row here, so a handler gets a message with everything its row requires."""
    if sa.answer_repeat(data):
        return
    if sa.failed and sa.remove_at is not None and not sa.machine.established:
        # A stopped negotiation answers a repeated first message with the same refusal.
        return
    expected = C.EXCHANGE_MAIN if sa.mode == states.MAIN else C.EXCHANGE_AGGRESSIVE
    if header.exchange != expected and sa.machine.established:
        sa.log("warning", "ignored a %s message for the established IKE SA %s" % (
            C.name(C.EXCHANGE_NAMES, header.exchange), sa.id))
        return
    if header.exchange != expected:
        sa.fail("mode", "we use %s mode, the peer sent a %s message" % (
            sa.mode, C.name(C.EXCHANGE_NAMES, header.exchange).lower()), now)
        return
    row = sa.machine.row
    if row.handler is None:
        sa.log("warning", "ignored a %s message in state %s (%d)"
               % (sa.mode, sa.machine.state, sa.machine.number))
        return
    sa.heard_from_peer = True
    sa.current_input = data
    received = _open(sa, row, header, data, now)
    if received is not None:
        _HANDLERS[(sa.mode, sa.role)][row.state](sa, header, received, now)


def _open(sa, row, header, data, now):
    """The message as the row awaits it -> ikesa.Received, or None with the refusal done and
    the state where it was. In clear: a malformed message, or one without the row's payloads,
    is answered as malformed (PAYLOAD-MALFORMED in clear). Encrypted: one that does not decrypt
    to the row's payloads is what a different key looks like (auth.auth_failed)."""
    encrypted = header.flags & C.FLAG_ENCRYPTION
    if row.arrives == states.ENCRYPTED and not encrypted:
        _refuse_unencrypted(sa, row, now)
        return None
    if encrypted and row.arrives != states.CLEAR:
        undecryptable = row.message + " did not decrypt to valid payloads"
        try:
            received, next_iv = sa.open(header, data)
            if not received.payloads:
                raise codec.MalformedMessage("no payloads")
        except (codec.MalformedMessage, CryptoError):
            auth.auth_failed(sa, undecryptable, now, decrypt=True)
            return None
        # It decrypted to valid payloads: this is now the last phase 1 block, whatever the
        # checks say (a refusal is encrypted with an IV derived from it, as the peer expects).
        sa.set_iv(0, next_iv)
        if row.lacking(received) is not None:
            auth.auth_failed(sa, undecryptable, now, decrypt=True)
            return None
        return received
    try:
        received, _ = sa.open(header, data)
    except codec.MalformedMessage as exc:
        sa.host.report(Malformed(sa, exc))
        return None
    sa.last_received = data
    lacking = row.lacking(received)
    if lacking is not None:
        sa.host.report(Malformed(sa, codec.MalformedMessage(lacking)))
        return None
    return received


def _send_next(sa, data, now, wants_answer=True):
    """Our next message of the exchange: sent (and kept for retransmission), state moves on."""
    sa.send_and_keep(data, now, wants_answer)
    sa.feed(states.SENT, now)


def _derive_keys(sa, now):
    """SKEYID and the rest once both KEs and nonces are known; False (negotiation over) when
    the peer's KE is not a valid value of the group."""
    try:
        sa.derive_keys()
    except CryptoError as exc:
        sa.fail("malformed", "the peer's key exchange value is invalid: %s" % exc, now)
        return False
    return True


def _confirm_choice(sa, header, sa_payload, now):
    """Initiator: the responder answers with exactly one transform, one we offered (in
    aggressive mode of the group our KE is for); its cookie is the SA's from now on."""
    sa.rcookie = header.rcookie
    try:
        proposal = _single_isakmp_proposal(sa_payload)
    except codec.MalformedMessage as exc:
        sa.host.report(Malformed(sa, exc))
        return False
    chosen = None
    if len(proposal.transforms) == 1:
        chosen = proposals.confirm_ike(sa.peer.proposals, sa.auth,
                                       proposal.transforms[0].attribute_pairs())
    if chosen is None or (sa.mode == states.AGGRESSIVE and chosen.proposal.dh != sa.proposal.dh):
        sa.fail("p1_algorithm", "the peer chose a transform we did not offer", now)
        return False
    _accept_transform(sa, chosen)
    return True


# main mode, initiator ------------------------------------------------------------------------------
def main_inR1_outI2(sa, header, received, now):
    # <-- HDR, SA      then      HDR, KE, Ni [, NAT-D, NAT-D] -->
    if not _confirm_choice(sa, header, received.one(codec.SaPayload), now):
        return
    _note_vendor_ids(sa, received)
    _honour_responder_lifetime(sa, received)
    sa.feed(states.VALID, now)
    sa.ke_i = _dh_start(sa)
    sa.ni = _nonce(sa)
    out = sa.message(C.EXCHANGE_MAIN, [codec.KePayload(sa.ke_i), codec.NoncePayload(sa.ni)]
                     + auth.cert_requests(sa) + _natd_payloads(sa))
    _send_next(sa, out, now)


def main_inR2_outI3(sa, header, received, now):
    # <-- HDR, KE, Nr    then    HDR*, IDii, HASH_I [, N(INITIAL-CONTACT)] -->
    ke, nonce = received.one(codec.KePayload), received.one(codec.NoncePayload)
    sa.ke_r, sa.nr = bytes(ke.data), bytes(nonce.data)
    if not _derive_keys(sa, now):
        return
    _process_natd(sa, received)
    sa.feed(states.VALID, now)
    _float(sa)
    sa.idi = auth.identity_payload(sa.crypto, auth.local_identity(sa))
    hash_i = sa.hash_i(_payload_body(sa.idi))
    out = sa.message(C.EXCHANGE_MAIN, [sa.idi] + auth.proof_payloads(sa, hash_i)
                     + _initial_contact_payloads(sa), encrypt=True)
    _send_next(sa, out, now)


def main_inR3(sa, header, received, now):
    # <-- HDR*, IDir, HASH_R
    received = _authenticate(sa, received, now, 6, responder_hash=True)
    if received is not None:
        _honour_responder_lifetime(sa, received)
        _established(sa, received, now)


# main mode, responder ------------------------------------------------------------------------------
def main_inI1_outR1(sa, header, received, now):
    # <-- HDR, SA    then    HDR, SA -->   (the state became 1 when the core created this SA)
    if not _choose_transform(sa, received, now):
        return
    _note_vendor_ids(sa, received)
    sa.feed(states.VALID, now)
    out = sa.message(C.EXCHANGE_MAIN, [sa.chosen_sa] + _vendor_payloads(sa)
                     + _responder_lifetime_payloads(sa))
    _send_next(sa, out, now, wants_answer=False)


def main_inI2_outR2(sa, header, received, now):
    # <-- HDR, KE, Ni    then    HDR, KE, Nr [, NAT-D, NAT-D] -->
    ke, nonce = received.one(codec.KePayload), received.one(codec.NoncePayload)
    sa.ke_i, sa.ni = bytes(ke.data), bytes(nonce.data)
    _process_natd(sa, received)
    sa.ke_r = _dh_start(sa)
    sa.nr = _nonce(sa)
    if not _derive_keys(sa, now):
        return
    sa.feed(states.VALID, now)
    out = sa.message(C.EXCHANGE_MAIN, [codec.KePayload(sa.ke_r), codec.NoncePayload(sa.nr)]
                     + auth.cert_requests(sa) + _natd_payloads(sa))
    _send_next(sa, out, now, wants_answer=False)


def main_inI3_outR3(sa, header, received, now):
    # <-- HDR*, IDii, HASH_I    then    HDR*, IDir, HASH_R -->
    received = _authenticate(sa, received, now, 5, responder_hash=False)
    if received is None:
        return
    sa.idr = auth.identity_payload(sa.crypto, auth.local_identity(sa))
    hash_r = sa.hash_r(_payload_body(sa.idr))
    out = sa.message(C.EXCHANGE_MAIN, [sa.idr] + auth.proof_payloads(sa, hash_r), encrypt=True)
    _send_next(sa, out, now, wants_answer=False)
    _established(sa, received, now)


# aggressive mode -------------------------------------------------------------------------------------
def aggr_inR1_outI2(sa, header, received, now):
    # <-- HDR, SA, KE, Nr, IDir, HASH_R    then    HDR*, HASH_I [, N(INITIAL-CONTACT)] -->
    if not _confirm_choice(sa, header, received.one(codec.SaPayload), now):
        return
    sa.ke_r = bytes(received.one(codec.KePayload).data)
    sa.nr = bytes(received.one(codec.NoncePayload).data)
    if not _derive_keys(sa, now):
        return
    if not auth.check_proof(sa, received, now, 2, responder_hash=True):
        return
    sa.last_received = received.data
    if not auth.check_id(sa, received, now):
        return
    _note_vendor_ids(sa, received)
    _honour_responder_lifetime(sa, received)
    _process_natd(sa, received)
    sa.feed(states.VALID, now)
    _float(sa)
    hash_i = sa.hash_i(_payload_body(sa.idi))
    # RFC 2409 shows the last aggressive mode message in clear; like Libreswan and strongSwan we
    # encrypt it (both accept either), which also carries INITIAL-CONTACT protected.
    out = sa.message(C.EXCHANGE_AGGRESSIVE, auth.proof_payloads(sa, hash_i) + _natd_payloads(sa)
                     + _initial_contact_payloads(sa), encrypt=True)
    sa.send_and_keep(out, now, wants_answer=False)
    sa.last_received = received.data
    _established(sa, received, now)


def aggr_inI1_outR1(sa, header, received, now):
    # <-- HDR, SA, KE, Ni, IDii    then    HDR, SA, KE, Nr, IDir, HASH_R -->
    idi = received.one(codec.IdPayload)
    # From an address no peer has: the ID chooses the dynamic peer, before any key is needed.
    if not dynamic.refine(sa, idi, now) or not _choose_transform(sa, received, now):
        return
    mismatch = auth.id_mismatch(sa, idi)
    if mismatch is not None:
        sa.fail("id", mismatch, now)
        sa.notify_clear(C.INVALID_ID_INFORMATION)
        return
    sa.ke_i = bytes(received.one(codec.KePayload).data)
    sa.ni = bytes(received.one(codec.NoncePayload).data)
    sa.ke_r = _dh_start(sa)
    sa.nr = _nonce(sa)
    if not _derive_keys(sa, now):
        return
    sa.peer_idi_b = received.body(received.index_of(codec.IdPayload))
    sa.peer_idi = idi
    _note_vendor_ids(sa, received)
    sa.feed(states.VALID, now)
    sa.idr = auth.identity_payload(sa.crypto, auth.local_identity(sa))
    hash_r = sa.hash_r(_payload_body(sa.idr))
    out = sa.message(C.EXCHANGE_AGGRESSIVE,
                     [sa.chosen_sa, codec.KePayload(sa.ke_r), codec.NoncePayload(sa.nr), sa.idr]
                     + auth.proof_payloads(sa, hash_r) + auth.cert_requests(sa) + _vendor_payloads(sa)
                     + _responder_lifetime_payloads(sa) + _natd_payloads(sa))
    # The initiator's answer is the last message: we retransmit until it comes.
    _send_next(sa, out, now, wants_answer=True)


def aggr_inI2(sa, header, received, now):
    # <-- HDR[*], HASH_I
    if not auth.verify(sa, received, now, 3, sa.hash_i(sa.peer_idi_b), "HASH_I",
                   received_id=sa.peer_idi):
        return
    sa.last_received = received.data
    sa.pending = None
    _process_natd(sa, received)
    sa.feed(states.VALID, now)
    _established(sa, received, now)


# -- shared steps ----------------------------------------------------------------------------------
def _accept_transform(sa, chosen):
    """The transform agreed, and the lifetime in force: the shorter of the offered one and ours.
    A responder that keeps its shorter one says so (RESPONDER-LIFETIME, logged)."""
    sa.proposal = chosen.proposal
    offered = chosen.lifetime_s
    if not offered or offered == sa.lifetime_s:
        return
    if offered < sa.lifetime_s:
        sa.lifetime_note = "the peer's; ours is %d" % sa.lifetime_s
        sa.lifetime_s = offered
    elif not sa.initiator:
        sa.lifetime_told = True
        sa.lifetime_note = "ours; the peer proposed %d" % offered
        sa.log("info", "IKE SA %s: the peer proposed a lifetime of %d s, ours is %d s: using the "
               "shorter %d s and telling the peer (RESPONDER-LIFETIME)" % (
                   sa.id, offered, sa.lifetime_s, sa.lifetime_s))


def _choose_transform(sa, received, now):
    """Responder: pick, by OUR preference, one offered transform; answer NO-PROPOSAL-CHOSEN when
    none fits (the state stays at 1: "1st msg received")."""
    sa_payload = received.one(codec.SaPayload)      # there: the state's row requires it
    try:
        proposal = _single_isakmp_proposal(sa_payload)
    except codec.MalformedMessage as exc:
        sa.host.report(Malformed(sa, exc))
        return False
    sa.sai_b = received.body(received.index_of(codec.SaPayload))
    offered = [t.attribute_pairs() for t in proposal.transforms]
    ours_all = sa.peer.proposals
    if sa.mode == states.AGGRESSIVE and offered:
        # The KE in this message is for the group of the offer: only that group can be chosen.
        first = proposals.decode_ike_transform(offered[0]).proposal
        ours_all = [p for p in ours_all if first is not None and p.dh == first.dh]
    for ours in ours_all:
        match = proposals.match_ike([ours], sa.auth, offered)
        if match is not None:
            index, transform = match
            _accept_transform(sa, transform)
            picked = proposal.transforms[index]
            # Answer with exactly the transform the peer offered (number and attributes).
            sa.chosen_sa = codec.SaPayload(
                [codec.Proposal(proposal.number, C.PROTO_ISAKMP, b"", [picked])],
                doi=sa_payload.doi, situation=sa_payload.situation)
            return True
    kind, detail = proposals.explain_ike(sa.peer.proposals, sa.auth, offered)
    sa.fail("auth_method" if kind == "auth" else "p1_algorithm", detail, now)
    sa.notify_clear(C.NO_PROPOSAL_CHOSEN)
    return False


def _authenticate(sa, received, now, number, responder_hash):
    """Main mode 5/6, decrypted (handle() did that and set the IV): check the peer's proof and
    its ID; -> the message (state moved to "valid msg received"), or None with the diagnosis
    recorded."""
    # A dynamic peer in main mode: its ID (message 5) settles which one it is, before its
    # certificate is checked against that peer's CAs and remote_id.
    if not dynamic.refine(sa, received.one(codec.IdPayload), now):
        return None
    if not auth.check_proof(sa, received, now, number, responder_hash):
        return None
    sa.last_received = received.data
    if not auth.check_id(sa, received, now):
        return None
    sa.feed(states.VALID, now)
    return received


def _refuse_unencrypted(sa, row, now):
    """Main mode 5/6 in clear. The initiator: the responder did not answer with the key, as one
    with a different pre-shared key would not. The responder: a malformed message 5."""
    if sa.initiator:
        sa.fail("psk", "%s arrived unencrypted" % row.message, now)
        return
    sa.host.report(Malformed(sa, codec.MalformedMessage("%s must be encrypted" % row.message)))


def _established(sa, received, now):
    """The IKE SA is up: timers, INITIAL-CONTACT, then the core hears of it (host.Established)."""
    sa.pending = None
    sa.forget_negotiation_secrets()      # HASH_I and HASH_R are done with
    sa.feed(states.ESTABLISHED, now)
    sa.established_at = now
    sa.failed = False
    sa.last_error = None
    sa.hint = None
    sa.remove_at = None
    sa.expire_at = now + sa.lifetime_s
    if sa.natt.send_keepalives:
        sa.keepalive_at = now + KEEPALIVE_INTERVAL_S
    # The initiator renews; the responder only when it did not, a little later (rekey_after).
    sa.rekey_at = now + rekey_after(sa.lifetime_s, sa.initiator, sa.crypto)
    contact = False
    for note in received.all(codec.NotifyPayload):
        if note.notify_type == C.INITIAL_CONTACT:
            contact = True
    sa.log("info", "IKE SA %s with %s established (%s mode, %s, %s, lifetime %d s)" % (
        sa.id, sa.remote[0], sa.mode, sa.role, sa.algorithm_text(), sa.lifetime_s))
    sa.host.report(Established(sa, contact, now))


# (mode, role) -> {state: handler}: the handlers the rows of states.PHASE1 name, bound at
# import (a row naming a function this module lacks fails here, naming the row).
_HANDLERS = dict((key, table.bind(globals().get, "phase1.py"))
                 for key, table in states.PHASE1.items())


def on_timer(sa, now):
    """Retransmit our last phase 1 message, or give up (the diagnosis says why); NAT keepalives."""
    if sa.keepalive_at is not None and sa.keepalive_at <= now:
        # RFC 3948 section 2.3: one 0xFF byte to port 4500 keeps our NAT mapping open.
        sa.host.send_keepalive(sa.local, sa.remote)
        sa.keepalive_at = now + KEEPALIVE_INTERVAL_S
    if (sa.stall_at is not None and sa.stall_at <= now and not sa.machine.established
            and not sa.failed):
        # The initiator stopped half way: say where (its hint, if it gave one) and clean up.
        n = sa.machine.number
        if sa.hint is not None:
            sa.fail(sa.hint[0], sa.hint[1], now)
        else:
            sa.fail("timeout", "the initiator did not continue after state %s(%d)" % (
                states.status_text(n), n), now)
        return
    pending = sa.pending
    outcome = sa.retransmit_due(now)
    if outcome == "gave up":
        n = sa.machine.number
        if sa.hint is not None:
            cause, detail = sa.hint
            sa.fail(cause, detail, now)
        elif not sa.heard_from_peer:
            cause = "unreachable_or_mode" if sa.mode == states.AGGRESSIVE else "unreachable"
            sa.fail(cause, "no answer to %d transmissions of %s mode message 1 in %d s" % (
                len(RETRANSMIT_DELAYS), sa.mode, sum(RETRANSMIT_DELAYS)), now)
        elif sa.mode == states.MAIN and sa.initiator and sa.machine.state == "MI_3_SENT":
            sa.fail("psk", "the peer never answered message 5 (it could not decrypt it)", now)
        else:
            sa.fail("timeout", "no answer in state %s(%d) after %d transmissions" % (
                states.status_text(n), n, len(RETRANSMIT_DELAYS)), now)
        return
    if (outcome == "sent" and pending.attempt >= SILENCE_HINT_AFTER and sa.hint is None
            and sa.heard_from_peer):
        # The peer answered the cleartext messages but is silent since we sent the first one
        # that depends on the pre-shared key: the classic sign of different keys (strongSwan
        # drops a message 5 it cannot decrypt without a word). Keep trying; say it now.
        story = _SILENT_AFTER.get(sa.machine.state)
        if story is not None and sa.auth == "psk":
            sa.note_hint("psk", story, now)
