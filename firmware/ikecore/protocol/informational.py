"""Informational exchanges: notifies, deletes and dead peer detection (RFC 2408/2409, RFC 3706).

Once the IKE SA has keys, every informational message is encrypted and starts with a hash
(RFC 2409 section 5.7):

  HDR*, HASH(1), N/D  -->         HASH(1) = prf(SKEYID_a, M-ID | N/D)

with a fresh message id and its IV = hash(last phase 1 block | M-ID). Before that, a refusal can
only go in clear; we accept clear notifies as hints (they may be forged) and never tear anything
down because of one. DPD: R-U-THERE / R-U-THERE-ACK notifies with the cookies as SPI and a
sequence number as data (RFC 3706 section 5). Portable: no I/O, no clock.
"""

from . import codec
from . import consts as C
from . import diagnosis
from . import keymat
from . import proposals
from .crypto import CryptoError
from .host import ChildDeleted, IkeSaDeleted, Malformed, Refused


def _send(sa, payloads, now):
    mid = sa.new_message_id()
    _, raw = codec.encode_payloads(payloads)
    h = keymat.informational_hash(sa.crypto, sa.prf, sa.keys.skeyid_a, mid, raw)
    data = sa.message(C.EXCHANGE_INFORMATIONAL, [codec.HashPayload(h)] + payloads,
                      message_id=mid, encrypt=True)
    # One message per informational exchange: its IV is never needed again.
    sa.exchange_ivs.pop(mid, None)
    sa.host.send(data, sa.local, sa.remote)


def send_notify(sa, notify_type, now, protocol=C.PROTO_ISAKMP, spi=None, data=b""):
    """A protected notify when the SA has keys, else a clear one."""
    if spi is None:
        spi = sa.spi() if protocol == C.PROTO_ISAKMP else b""
    note = codec.NotifyPayload(notify_type, protocol=protocol, spi=spi, data=data)
    if sa.keys is None:
        msg = codec.Message(C.EXCHANGE_INFORMATIONAL, sa.icookie, sa.rcookie, payloads=[note])
        sa.host.send(codec.encode_message(msg), sa.local, sa.remote)
        return
    _send(sa, [note], now)


def send_delete_ike(sa, now):
    """Delete of the ISAKMP SA itself: its SPI is CKY-I | CKY-R."""
    if sa.keys is None:
        return
    _send(sa, [codec.DeletePayload(C.PROTO_ISAKMP, [sa.spi()])], now)


def send_delete_children(sa, protocol_id, spis, now):
    """Delete of IPsec SAs: we name our INBOUND SPIs (the ones the peer sends with)."""
    if sa.keys is None or not spis:
        return
    _send(sa, [codec.DeletePayload(protocol_id, list(spis))], now)


def receive(sa, header, data, now):
    """An informational message for this SA (encrypted or, during phase 1, clear)."""
    if not header.flags & C.FLAG_ENCRYPTION:
        _receive_clear(sa, header, data, now)
        return
    if sa.keys is None:
        sa.host.report(Malformed(sa, codec.MalformedMessage(
            "encrypted informational before keys were agreed")))
        return
    try:
        received, _ = sa.open(header, data)
    except (codec.MalformedMessage, CryptoError) as exc:
        # A wrong-keyed peer's protected notify cannot be read: say so, do not answer. During
        # phase 1 with a pre-shared key that is itself the evidence of a key mismatch.
        sa.log("warning", "an encrypted informational message from %s could not be read (%s)"
               % (sa.remote[0], exc))
        if not sa.established and sa.auth == "psk":
            sa.note_hint("psk", "the peer's encrypted notification did not decrypt with our key",
                         now)
        return
    sa.exchange_ivs.pop(header.message_id, None)
    if received.index_of(codec.HashPayload) != 0:
        sa.host.report(Malformed(sa, codec.MalformedMessage(
            "informational message without HASH(1) first (has %s)" % received.types())))
        return
    expected = keymat.informational_hash(sa.crypto, sa.prf, sa.keys.skeyid_a, header.message_id,
                                         received.raw_after(0))
    if bytes(received.payloads[0].data) != expected:
        sa.log("warning", "informational message from %s: HASH(1) did not verify, ignored"
               % sa.remote[0])
        if not sa.established and sa.auth == "psk":
            sa.note_hint("psk", "the HASH of the peer's encrypted notification did not verify "
                         "with our key", now)
        return
    sa.heard_from_peer = True
    if sa.dpd is not None:
        sa.dpd.activity(now)
    for payload in received.payloads[1:]:
        if payload.TYPE == C.PT_NOTIFY:
            _notify(sa, payload, now, authenticated=True)
        elif payload.TYPE == C.PT_DELETE:
            _delete(sa, payload, now)


def _receive_clear(sa, header, data, now):
    try:
        message = codec.decode_message(data)
    except codec.MalformedMessage as exc:
        sa.host.report(Malformed(sa, exc))
        return
    for payload in message.payloads:
        if payload.TYPE == C.PT_NOTIFY:
            _notify(sa, payload, now, authenticated=False)
        elif payload.TYPE == C.PT_DELETE:
            sa.log("warning", "ignored an unprotected delete from %s" % sa.remote[0])


def _notify(sa, note, now, authenticated):
    t = note.notify_type
    text = C.name(C.NOTIFY_NAMES, t)
    if t == C.R_U_THERE and authenticated:
        send_notify(sa, C.R_U_THERE_ACK, now, data=bytes(note.data))
        return
    if t == C.R_U_THERE_ACK and authenticated:
        if sa.dpd is not None:
            sa.dpd.acked(bytes(note.data), now)
        return
    if t == C.INITIAL_CONTACT:
        return                      # honoured when phase 1 completes (the core, on host.Established)
    if not C.is_error_notify(t):
        sa.log("info", "peer %s notifies %s" % (sa.remote[0], text))
        return
    if not sa.established:
        # A refusal of our phase 1 (or, authenticated, of the last phase 1 message).
        cause = diagnosis.cause_of_notify(t, 1)
        if cause in ("psk", "id_or_mode") and sa.auth != "psk":
            cause = "cert"
        if cause == "p1_algorithm" and any(proposals.common_default_ike(p)
                                           for p in sa.offered_proposals()):
            cause = "p1_algorithm_or_id"
        detail = "the peer answered with %s in state %d" % (text, sa.machine.number)
        if authenticated:
            sa.fail(cause, detail, now)
        else:
            sa.note_hint(cause, detail, now)
        return
    if not authenticated:
        sa.log("warning", "ignored an unprotected %s from %s" % (text, sa.remote[0]))
        return
    # An established SA: the peer refused one of our quick modes (or reports an error).
    sa.host.report(Refused(sa, t, now))


def _delete(sa, payload, now):
    if payload.protocol == C.PROTO_ISAKMP:
        for spi in payload.spis:
            target = sa.host.ike_sa_by_spi(bytes(spi))
            if target is not None:
                sa.host.report(IkeSaDeleted(target, now))
        return
    proto = proposals.PROTOCOL_NAMES.get(payload.protocol)
    if proto is None:
        return
    for spi in payload.spis:
        if len(spi) == 4:
            sa.host.report(ChildDeleted(sa, proto, int.from_bytes(bytes(spi), "big"), now))


class Dpd:
    """Dead peer detection on one IKE SA (RFC 3706): after dpd_delay_s without hearing from the
    peer we send R-U-THERE; every further delay without an ACK another; after dpd_timeout_s of
    silence the peer is declared dead."""

    def __init__(self, sa, delay_s, timeout_s, now):
        self.sa = sa
        self.delay = delay_s
        self.timeout = timeout_s
        self.last_heard = now
        self.next_probe = now + delay_s
        self.first_unanswered = None
        # RFC 3706 section 5.2: start from a random sequence number.
        self.seq = int.from_bytes(sa.crypto.random(4), "big") & 0x7FFFFFFF
        self.outstanding = []

    def deadline(self):
        if self.first_unanswered is not None:
            return min(self.next_probe, self.first_unanswered + self.timeout)
        return self.next_probe

    def activity(self, now):
        self.last_heard = now
        if self.first_unanswered is None:
            self.next_probe = now + self.delay

    def acked(self, data, now):
        if len(data) != 4:
            return
        seq = int.from_bytes(data, "big")
        if seq in self.outstanding:
            self.outstanding = []
            self.first_unanswered = None
            self.last_heard = now
            self.next_probe = now + self.delay

    def on_timer(self, now):
        """-> True when the peer is to be declared dead."""
        if self.first_unanswered is not None and now >= self.first_unanswered + self.timeout:
            return True
        if now >= self.next_probe:
            self.seq = (self.seq + 1) & 0xFFFFFFFF
            self.outstanding.append(self.seq)
            if self.first_unanswered is None:
                self.first_unanswered = now
            send_notify(self.sa, C.R_U_THERE, now, data=self.seq.to_bytes(4, "big"))
            self.next_probe = now + self.delay
        return False
