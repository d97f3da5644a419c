"""The IKE SA (ISAKMP SA) object: what every exchange of one SA shares.

Keys and the CBC IV chains (RFC 2409 Appendix B), message ids, padding, opening received
messages into payloads (`Received`), our last message and its retransmission (`Retransmit`),
the negotiation state (states.Machine) and the failure diagnosis (diagnosis.py). The exchanges
work on it: phase1.py (main/aggressive mode), quickmode.py, informational.py; auth.py proves
and checks identities. Portable: no I/O, no clock; `now` is always passed in.
"""

from . import codec
from . import consts as C
from . import diagnosis
from . import fragments
from . import keymat
from . import natt
from . import proposals
from . import states
from .crypto import cipher_info
from .events import IkeSaChanged, Log, Notice
from .host import NegotiationEnded

# Seconds to wait after each (re)transmission; after the last one we give up.
RETRANSMIT_DELAYS = (2, 4, 8, 16, 32)
# A failed negotiation stays on the page this long (so the state number and last_error are seen).
FAILED_KEEP_S = 120
# A responder does not retransmit in main mode: if the initiator stops, we stop waiting after the
# initiator's own give-up time and a margin.
RESPONDER_PATIENCE_S = 92
# Rekey an SA at least this long before it expires: a tenth of the lifetime, at most 9 minutes
# (strongSwan's default margin), at least one second; rekey_after() adds the random spread.
MAX_REKEY_MARGIN_S = 540


def rekey_margin(lifetime_s):
    return max(1, min(lifetime_s // 10, MAX_REKEY_MARGIN_S))


def rekey_after(lifetime_s, initiator, crypto):
    """Seconds after establishment at which an SA of this lifetime is renewed, spread at random
    so that SAs set up in one burst do not all renew in the same second (strongSwan subtracts
    a random part of rand_time, Libreswan adds rekeyfuzz to rekeymargin). With m the margin:
    the initiator renews in (lifetime - 2m, lifetime - m], the responder, which renews only when
    the initiator did not, in (lifetime - 3m/4, lifetime - m/2]: always later, always before
    expiry. The random part comes from the crypto provider (the core has no other source of
    randomness, on CPython or MicroPython)."""
    margin = rekey_margin(lifetime_s)
    base, spread = (margin, margin) if initiator else (margin // 2, margin // 4)
    fuzz = int.from_bytes(crypto.random(4), "big") % spread if spread > 1 else 0
    return lifetime_s - base - fuzz


# -- a received message, split ---------------------------------------------------------------------
class Received:
    """One received message, decrypted and split: header, payload objects, raw payload bytes."""
    __slots__ = ("header", "payloads", "raw", "plain", "chain", "encrypted", "data")

    def __init__(self, header, plain, encrypted, data):
        self.header = header
        self.encrypted = encrypted
        self.data = data
        # RFC 2409's hashes are computed over these raw bytes as received, never a re-encoding
        self.chain, end = codec.payload_spans(header.next_payload, plain)
        self.plain = plain[:end]
        self.payloads = codec.decode_payloads(header.next_payload, self.plain) if end else []
        self.raw = [plain[s:e] for _, s, e in self.chain]

    def all(self, cls):
        return [p for p in self.payloads if p.TYPE == cls.TYPE]

    def one(self, cls):
        found = self.all(cls)
        return found[0] if found else None

    def index_of(self, cls):
        for i, p in enumerate(self.payloads):
            if p.TYPE == cls.TYPE:
                return i
        return -1

    def body(self, index):
        """The body of payload number index as received (generic header stripped): SAi_b,
        IDii_b... enter the RFC 2409 hashes exactly as the peer sent them."""
        return bytes(self.raw[index][C.GENERIC_HEADER_LENGTH:])

    def raw_after(self, index):
        """The raw bytes of every payload after payload number index (generic headers included)."""
        if index + 1 >= len(self.chain):
            return b""
        return self.plain[self.chain[index + 1][1]:]

    def types(self):
        return " ".join(C.name(C.PAYLOAD_NAMES, t) for t, _, _ in self.chain)


class Retransmit:
    """Our last message of one exchange that still waits for an answer, with its back-off."""
    __slots__ = ("data", "attempt", "deadline")

    def __init__(self, data, now):
        self.data = data
        self.attempt = 0
        self.deadline = now + RETRANSMIT_DELAYS[0]


class Exchange:
    """What an exchange keeps to survive lost datagrams; the phase 1 exchange (IkeSa) and each
    quick mode (quickmode.QuickMode) are one. Our last message is retransmitted while it waits
    for an answer and sent again when the peer repeats the message it answered; the peer's last
    message is remembered to recognise repeats. Subclasses define transmit(data)."""

    def init_exchange(self):
        self.pending = None        # Retransmit of our last message while it waits for an answer
        self.last_sent = None      # our last message (resent when the peer repeats itself)
        self.last_received = None  # the peer's last message, raw (duplicate detection)
        self.current_input = None  # the message being handled (what our next message answers)
        self.reply_to = None       # the peer message our last_sent answered

    def send_and_keep(self, data, now, wants_answer=True):
        """Send our next message; keep it for retransmission and for answering repeats."""
        self.last_sent = data
        self.reply_to = self.current_input
        self.pending = Retransmit(data, now) if wants_answer else None
        self.transmit(data)

    def answer_repeat(self, data):
        """True when data is a message seen before. The peer missed our answer to it: answer
        again. Or it repeats a message we did not answer (our last message went earlier and
        its timer retransmits it): answering here would make two ends echo each other forever."""
        if data != self.reply_to and data != self.last_received:
            return False
        if data == self.reply_to and self.last_sent is not None:
            self.counters()["retransmissions"] += 1
            self.transmit(self.last_sent)
        return True

    def retransmit_due(self, now):
        """Our waiting message's deadline passed: -> "sent" (it went again, next deadline set)
        or "gave up" (that was the last transmission; nothing pending any more); None when
        nothing is due."""
        pending = self.pending
        if pending is None or pending.deadline > now:
            return None
        pending.attempt += 1
        if pending.attempt >= len(RETRANSMIT_DELAYS):
            self.pending = None
            return "gave up"
        self.counters()["retransmissions"] += 1
        self.transmit(pending.data)
        pending.deadline = now + RETRANSMIT_DELAYS[pending.attempt]
        return "sent"


class IkeSa(Exchange):
    """One ISAKMP SA (phase 1) with a peer, and the key material its later exchanges use."""

    def __init__(self, host, sa_id, peer, mode, role, icookie, local, remote, now):
        self.host = host           # host.Host: all an exchange may ask of the core
        self.crypto = host.crypto
        self.id = sa_id
        self.peer = peer
        self.machine = states.Machine(mode, role)
        self.icookie = icookie
        self.rcookie = b"\x00" * 8
        self.local = local
        self.remote = remote
        self.created = now
        self.established_at = None
        self.last_change = now
        # negotiated
        self.proposal = None
        self.lifetime_s = peer.lifetime_s     # in force: see phase1._accept_transform
        self.lifetime_note = None  # why it differs from ours, for the status and page
        self.lifetime_told = False     # responder: we sent RESPONDER-LIFETIME
        self.auth = peer.auth
        self.natt = natt.NattSession(bool(peer.nat_t))
        self.keepalive_at = None
        self.peer_dpd = False
        # Diffie-Hellman, nonces, the initiator's SA body, keys
        self.dh_private = None
        self.ke_i = self.ke_r = None
        self.ni = self.nr = None
        self.sai_b = None
        self.keys = None
        self.cipher = self.prf = None
        self.p1_iv = None          # phase 1 CBC chain: IV of the next phase 1 message
        self.exchange_ivs = {}     # message id -> IV of the next message of that exchange
        self.used_mids = set()
        self.init_exchange()       # the phase 1 messages: retransmission, repeats
        self.fragments_out = fragments.Outgoing(peer, host.counters)   # IKE fragmentation
        self.heard_from_peer = False
        # life
        self.failed = False
        self.last_error = None
        self.hint = None           # diagnosis suggested by an unauthenticated notify
        self.error_connection = None   # the connection a phase 2 last_error is about
        self.remove_at = None
        self.stall_at = now + RESPONDER_PATIENCE_S if role == states.RESPONDER else None
        self.rekey_at = None
        self.expire_at = None
        self.rekeyed_by = None     # id of the IKE SA that replaced this one
        self.deleted = False
        self.phase2_negotiations = 0
        self.serial = 0            # creation order, set by the core (timers run in it)
        self.quick_modes = {}      # message id -> quickmode.QuickMode
        self.qm_waiting = []       # (Connection, replaces) of ours waiting for a free slot
        self.dpd = None            # informational.Dpd when DPD runs on this SA
        self.initial_contact = False
        self.peer_cert = None      # the peer's certificate (DER) once it verified
        self.peer_idi = None       # aggressive mode responder: the IDii payload of message 1
        self.peer_idi_b = None     # ... and its body as received (HASH_I is computed over it)
        self.idi = self.idr = None
        # admission.py's bookkeeping: which bound counts this SA, whether it holds a DH result
        self.admission = None
        self.dh_counted = False
        self.remote_at_admission = None
        self.only_first = False    # a responder SA that has heard nothing but message 1
        self.provisional = False   # its peer is a dynamic one chosen before its ID (dynamic.py)
        self.peer_informational_mids = []   # the peer's recent ones (dynamic.note_message_id)
        self.quiet_stall = False   # ... made under pressure: it goes quietly at stall_at

    # -- descriptive ---------------------------------------------------------------------------------
    @property
    def mode(self):
        return self.machine.mode

    @property
    def role(self):
        return self.machine.role

    @property
    def established(self):
        return self.machine.established and not self.deleted

    @property
    def nat_t(self):
        return self.natt.status

    @property
    def initiator(self):
        return self.machine.role == states.INITIATOR

    def offered_proposals(self):
        """The IkeProposals of our phase 1 offer. Aggressive mode sends its KE with the offer,
        so every transform must name that one group (RFC 2409 section 5.4): the proposals with
        another group are left out."""
        offer = self.peer.proposals[:proposals.MAX_PROPOSALS]
        if self.mode == states.AGGRESSIVE:
            offer = [p for p in offer if p.dh == offer[0].dh]
        return offer

    def algorithm_text(self):
        return self.proposal.describe() if self.proposal is not None else ""

    def spi(self):
        """The ISAKMP SA's SPI in notifies/deletes: CKY-I | CKY-R (RFC 2408 section 3.15)."""
        return self.icookie + self.rcookie

    def log(self, level, text):
        self.host.emit(Log(level, self.peer.name, text))

    def counters(self):
        return self.host.counters

    def feed(self, inp, now):
        """Move the negotiation state and tell the driver (page live update)."""
        self.machine.feed(inp)
        self.last_change = now
        n = self.machine.number
        self.host.emit(IkeSaChanged(self.id, states.status_text(n), n))

    # -- failure ------------------------------------------------------------------------------------
    def fail(self, cause, detail, now, phase=1, connection=None, keep=True):
        """Record the diagnosis (one line, logged at error level); phase 1 failures also stop the
        negotiation: no more retransmissions, the SA stays listed for a while with its state."""
        line = diagnosis.line(cause, self.remote[0], detail, phase=phase, connection=connection,
                              peer=self.peer)
        self.last_error = line
        self.error_connection = connection
        self.log("error", line)
        fields = {"ike_sa": self.id, "diagnosis": line}
        if connection is not None:
            fields["connection"] = connection
        self.host.emit(Notice("failed", self.peer.name, fields))
        if phase == 1:
            self.failed = True
            self.host.report(NegotiationEnded(self, now))
            self.pending = None
            self.forget_negotiation_secrets()    # this negotiation goes no further
            if keep:
                self.remove_at = now + FAILED_KEEP_S
        return line

    def note_hint(self, cause, detail, now):
        """An unauthenticated notify suggests why the peer refused us: show it as the probable
        cause at once but keep retransmitting (it may be forged); give-up will confirm it."""
        if self.hint == (cause, detail):
            return
        self.hint = (cause, detail)
        line = diagnosis.line(cause, self.remote[0], detail, phase=1, peer=self.peer)
        self.last_error = line
        self.log("error", line)

    # -- sending --------------------------------------------------------------------------------------
    def transmit(self, data):
        # As fragments when fragments.py says so (retransmissions send the same fragments).
        for datagram in self.fragments_out.datagrams_for(data, self.local[1] == C.NATT_PORT):
            self.host.send(datagram, self.local, self.remote)

    def notify_clear(self, notify_type, remember=True):
        """An unencrypted informational notify about this negotiation (RFC 2408 section 5: before
        the SA is authenticated this is all we can send; the peer takes it as a hint only)."""
        note = codec.NotifyPayload(notify_type, protocol=C.PROTO_ISAKMP, spi=self.spi())
        data = codec.encode_message(codec.Message(C.EXCHANGE_INFORMATIONAL, self.icookie,
                                                  self.rcookie, message_id=0, payloads=[note]))
        if remember:
            # Our answer to the refused message: a repeat of it gets the same refusal.
            self.last_sent = data
            self.reply_to = self.current_input
        self.transmit(data)

    def message(self, exchange, payloads, message_id=0, encrypt=False):
        """Encode a message of this SA; encrypted with the IV of its exchange when asked."""
        msg = codec.Message(exchange, self.icookie, self.rcookie, message_id=message_id,
                            payloads=None if encrypt else payloads)
        if not encrypt:
            return codec.encode_message(msg)
        first, plain = codec.encode_payloads(payloads)
        msg.flags = C.FLAG_ENCRYPTION
        return codec.encode_message(msg, body=self.encrypt(message_id, plain), first_payload=first)

    # -- encryption (RFC 2409 Appendix B) -----------------------------------------------------------
    def iv_for(self, message_id):
        if message_id == 0:
            return self.p1_iv
        iv = self.exchange_ivs.get(message_id)
        if iv is None:
            # First message of a quick mode / informational exchange: hash(last phase 1 block | M-ID).
            iv = keymat.phase2_iv(self.crypto, self.prf, self.cipher, self.p1_iv, message_id)
        return iv

    def set_iv(self, message_id, iv):
        if message_id == 0:
            self.p1_iv = iv
        else:
            self.exchange_ivs[message_id] = iv

    def encrypt(self, message_id, plain):
        block = cipher_info(self.cipher)[1]
        # Pad with zero octets to the block size (no padding when already aligned): receivers
        # find the end of the payload chain from the payload lengths.
        if len(plain) % block:
            plain = plain + b"\x00" * (block - len(plain) % block)
        data = self.crypto.encrypt(self.cipher, self.keys.enc_key, self.iv_for(message_id), plain)
        # The next message of this exchange chains on our last ciphertext block.
        self.set_iv(message_id, data[-block:])
        return data

    def decrypt(self, message_id, data):
        """-> (plain, IV after this message). The caller commits the IV with set_iv only when the
        message proved valid, so a forged or corrupt message does not break the chain."""
        block = cipher_info(self.cipher)[1]
        if not data or len(data) % block:
            raise codec.MalformedMessage("encrypted body of %d bytes is not a multiple of the "
                                         "%d-byte cipher block" % (len(data), block))
        plain = self.crypto.decrypt(self.cipher, self.keys.enc_key, self.iv_for(message_id), data)
        return plain, data[-block:]

    def open(self, header, data):
        """Decrypt (when flagged) and split a received message of this SA -> (Received, next IV).
        Raises codec.MalformedMessage when it does not parse."""
        body = data[C.HEADER_LENGTH:header.length]
        if header.flags & C.FLAG_ENCRYPTION:
            if self.keys is None:
                raise codec.MalformedMessage("encrypted message before keys were agreed")
            plain, next_iv = self.decrypt(header.message_id, body)
            return Received(header, plain, True, data), next_iv
        return Received(header, body, False, data), None

    # -- key derivation -----------------------------------------------------------------------------
    def derive_keys(self):
        """SKEYID... from the DH result and nonces (RFC 2409 section 5), then the first IV."""
        g_xy = self.crypto.dh_shared(self.proposal.dh, self.dh_private, self.peer_ke())
        self.dh_private = None          # forget x as soon as g^xy is known
        self.cipher = self.proposal.encr
        self.prf = self.proposal.integ
        # g^xy lives only in this call: SKEYID_d/a/e carry all later exchanges need of it.
        self.keys = keymat.derive_phase1(self.crypto, self.prf, self.cipher, self.auth, g_xy,
                                         self.ni, self.nr, self.icookie, self.rcookie,
                                         self.ke_i, self.ke_r, psk=self.peer.psk)
        g_xy = None
        self.p1_iv = self.keys.iv

    def forget_negotiation_secrets(self):
        """Phase 1 is over (established or failed): drop what only its own messages needed.
        Our private DH value, and what only HASH_I / HASH_R are made of: SKEYID itself, g^xi /
        g^xr and SAi_b. Kept: SKEYID_d (quick mode KEYMAT), SKEYID_a (HASH(1..3), informational
        hashes), the cipher key from SKEYID_e and the CBC chain (IVs of later exchanges), the
        nonces and cookies. Repeats of the peer's last message get our last message's bytes
        (Exchange.answer_repeat), so no hash is ever recomputed."""
        self.dh_private = None
        self.ke_i = self.ke_r = None
        self.sai_b = None
        self.peer_idi_b = None
        if self.keys is not None:
            self.keys.skeyid = None

    def peer_ke(self):
        return self.ke_r if self.initiator else self.ke_i

    def hash_i(self, idii_b):
        return keymat.hash_i(self.crypto, self.prf, self.keys.skeyid, self.ke_i, self.ke_r,
                             self.icookie, self.rcookie, self.sai_b, idii_b)

    def hash_r(self, idir_b):
        return keymat.hash_r(self.crypto, self.prf, self.keys.skeyid, self.ke_i, self.ke_r,
                             self.icookie, self.rcookie, self.sai_b, idir_b)

    def new_message_id(self):
        """A random, non-zero message id not used before on this SA (RFC 2408 section 3.1)."""
        while True:
            mid = int.from_bytes(self.crypto.random(4), "big")
            if mid and mid not in self.used_mids:
                self.used_mids.add(mid)
                return mid

    # -- timers -------------------------------------------------------------------------------------
    def deadline(self):
        """The next time this SA needs the core's handle_timer; None: never (or removed)."""
        if self.deleted:
            return None
        found = self.deadlines()
        return min(found) if found else None

    def deadlines(self):
        found = []
        stall = self.stall_at if not self.machine.established and not self.failed else None
        for t in (self.pending.deadline if self.pending else None, self.remove_at,
                  self.rekey_at, self.expire_at, self.keepalive_at, stall):
            if t is not None:
                found.append(t)
        for qm in self.quick_modes.values():
            d = qm.deadline()
            if d is not None:
                found.append(d)
        if self.dpd is not None:
            d = self.dpd.deadline()
            if d is not None:
                found.append(d)
        return found
