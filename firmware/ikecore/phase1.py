"""Phase 1: the IKE SA, main mode (6 messages) and aggressive mode (3), PSK authentication.

RFC 2409 section 5 with pre-shared keys:

  main mode                                    aggressive mode
  HDR, SA                  -->                 HDR, SA, KE, Ni, IDii        -->
                           <--  HDR, SA                    <--  HDR, SA, KE, Nr, IDir, HASH_R
  HDR, KE, Ni              -->                 HDR*, HASH_I                 -->
                           <--  HDR, KE, Nr
  HDR*, IDii, HASH_I       -->
                           <--  HDR*, IDir, HASH_R

The IkeSa object also carries what the later exchanges of the same SA need (keys, IVs, message
ids, the retransmission of our last message), so quickmode.py and informational.py work on it.
Handlers are named for what they consume and produce (pluto style): main_inR1_outI2 consumes the
responder's first message and sends our second. Every handler either moves the state machine
(states.py) forward or leaves it where it stopped and records the diagnosis (diagnosis.py).
Portable: no I/O, no clock; `now` is always passed in.
"""

from . import codec
from . import consts as C
from . import diagnosis
from . import keymat
from . import natt
from . import proposals
from . import states
from . import vendor
from .crypto import CryptoError, cipher_info, hash_size
from .events import IkeSaChanged, Log

# Seconds to wait after each (re)transmission; after the last one we give up.
RETRANSMIT_DELAYS = (2, 4, 8, 16, 32)
# After this many unanswered retransmissions of a key-dependent message, say "probable key
# mismatch" (the page shows it within ~6 s instead of at give-up).
SILENCE_HINT_AFTER = 2
_SILENT_AFTER = {
    "MI_3_SENT": "the peer answered messages 1-4 but not message 5, the first one encrypted "
                 "with the key",
    "AR_1_SENT": "the peer never sent message 3 after our HASH_R: it could not verify it",
}
# A failed negotiation stays on the page this long (so the state number and last_error are seen).
FAILED_KEEP_S = 120
# A responder does not retransmit in main mode: if the initiator stops, we stop waiting after the
# initiator's own give-up time and a margin.
RESPONDER_PATIENCE_S = 92
# Rekey an SA this long before it expires: a tenth of the lifetime, at most 9 minutes (strongSwan's
# default margin), at least one second.
MAX_REKEY_MARGIN_S = 540

KEEPALIVE_INTERVAL_S = natt.KEEPALIVE_INTERVAL_S


def rekey_margin(lifetime_s):
    return max(1, min(lifetime_s // 10, MAX_REKEY_MARGIN_S))


# -- addresses and identities ----------------------------------------------------------------------
def ip_bytes(text):
    """"192.0.2.1" -> 4 bytes; ValueError naming the text when it is not a dotted quad."""
    parts = text.split(".")
    if len(parts) != 4:
        raise ValueError("not an IPv4 address: %r" % (text,))
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError("not an IPv4 address: %r" % (text,))
    for v in values:
        if v < 0 or v > 255:
            raise ValueError("not an IPv4 address: %r" % (text,))
    return bytes(values)


def ip_text(data):
    return ".".join(str(b) for b in data)


def identity_payload(crypto, identity):
    """Our phase 1 ID payload for a settings.Identity."""
    if identity.type == "ipv4":
        return codec.IdPayload(C.ID_IPV4_ADDR, ip_bytes(identity.value))
    if identity.type == "fqdn":
        return codec.IdPayload(C.ID_FQDN, identity.value.encode())
    if identity.type == "user_fqdn":
        return codec.IdPayload(C.ID_USER_FQDN, identity.value.encode())
    if identity.type == "dn":
        return codec.IdPayload(C.ID_DER_ASN1_DN, crypto.dn_der(identity.value))
    raise ValueError("unknown identity type %r" % (identity.type,))


def identity_text(crypto, id_type, data):
    """A received phase 1 ID as (our type name or the RFC name, text) for comparing and logging."""
    try:
        if id_type == C.ID_IPV4_ADDR and len(data) == 4:
            return "ipv4", ip_text(data)
        if id_type == C.ID_FQDN:
            return "fqdn", bytes(data).decode()
        if id_type == C.ID_USER_FQDN:
            return "user_fqdn", bytes(data).decode()
        if id_type == C.ID_DER_ASN1_DN:
            return "dn", crypto.dn_text(data)
    except (UnicodeError, CryptoError, ValueError):
        pass
    return C.name(C.ID_TYPE_NAMES, id_type), bytes(data).hex()


def identity_matches(crypto, expected, id_type, data):
    """Does the received ID equal the configured remote ID? None configured accepts any."""
    if expected is None:
        return True
    kind, text = identity_text(crypto, id_type, data)
    if kind != expected.type:
        return False
    if kind == "dn":
        try:
            return crypto.dn_text(crypto.dn_der(expected.value)) == text
        except CryptoError:
            return False
    if kind in ("fqdn", "user_fqdn"):
        return text.lower() == expected.value.lower()
    return text == expected.value


# -- raw payload chains ------------------------------------------------------------------------------
def walk_chain(first_type, data):
    """[(type, start, end)] of the generic payloads in data, and where the chain ends (anything
    after is encryption padding). The hashes of RFC 2409 are computed over these raw bytes as
    received, never over a re-encoding."""
    chain = []
    ptype = first_type
    pos = 0
    while ptype != C.PT_NONE:
        if pos + 4 > len(data):
            raise codec.MalformedMessage("payload %s header runs past the message"
                                         % C.name(C.PAYLOAD_NAMES, ptype))
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < 4 or pos + length > len(data):
            raise codec.MalformedMessage("payload %s length %d runs past the message"
                                         % (C.name(C.PAYLOAD_NAMES, ptype), length))
        chain.append((ptype, pos, pos + length))
        ptype = data[pos]
        pos += length
    return chain, pos


class Received:
    """One received message, decrypted and split: header, payload objects, raw payload bytes."""
    __slots__ = ("header", "payloads", "raw", "plain", "chain", "encrypted", "data")

    def __init__(self, header, plain, encrypted, data):
        self.header = header
        self.encrypted = encrypted
        self.data = data
        self.chain, end = walk_chain(header.next_payload, plain)
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


class IkeSa:
    """One ISAKMP SA (phase 1) with a peer, and the key material its later exchanges use."""

    def __init__(self, core, sa_id, peer, mode, role, icookie, local, remote, now):
        self.core = core
        self.crypto = core.crypto
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
        self.lifetime_s = peer.lifetime_s
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
        # transport
        self.pending = None        # Retransmit of our last phase 1 message that wants an answer
        self.last_sent = None      # our last phase 1 message (resent when the peer repeats itself)
        self.last_received = None  # the peer's last phase 1 message, raw (duplicate detection)
        self.current_input = None  # the message being handled (what our next message answers)
        self.reply_to = None       # the peer message our last_sent answered
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
        self.quick_modes = {}      # message id -> quickmode.QuickMode
        self.dpd = None            # informational.Dpd when DPD runs on this SA
        self.initial_contact = False
        self.peer_cert = None      # the peer's certificate (DER) once it verified
        self.peer_idi = None       # aggressive mode responder: the IDii payload of message 1
        self.idi = self.idr = None

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

    def algorithm_text(self):
        return self.proposal.describe() if self.proposal is not None else ""

    def spi(self):
        """The ISAKMP SA's SPI in notifies/deletes: CKY-I | CKY-R (RFC 2408 section 3.15)."""
        return self.icookie + self.rcookie

    def log(self, level, text):
        self.core.emit(Log(level, self.peer.name, text))

    def feed(self, inp, now):
        """Move the negotiation state and tell the driver (page live update)."""
        self.machine.feed(inp)
        self.last_change = now
        n = self.machine.number
        self.core.emit(IkeSaChanged(self.id, states.status_text(n), n))

    # -- failure ------------------------------------------------------------------------------------
    def fail(self, cause, detail, now, phase=1, connection=None, keep=True):
        """Record the diagnosis (one line, logged at error level); phase 1 failures also stop the
        negotiation: no more retransmissions, the SA stays listed for a while with its state."""
        line = diagnosis.line(cause, self.remote[0], detail, phase=phase, connection=connection,
                              peer=self.peer)
        self.last_error = line
        self.error_connection = connection
        self.log("error", line)
        if phase == 1:
            self.failed = True
            self.pending = None
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
    def send(self, data, now, wants_answer=True):
        """Queue one phase 1 message; remember it for retransmission and duplicate answers."""
        self.last_sent = data
        self.reply_to = self.current_input
        self.pending = Retransmit(data, now) if wants_answer else None
        self.core.send(data, self.local, self.remote)

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
        self.keys = keymat.derive_phase1(self.crypto, self.prf, self.cipher, self.auth, g_xy,
                                         self.ni, self.nr, self.icookie, self.rcookie,
                                         self.ke_i, self.ke_r, psk=self.peer.psk)
        self.p1_iv = self.keys.iv

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


# -- building blocks of the messages -----------------------------------------------------------
def _sa_payload(sa):
    """Our phase 1 offer: one ISAKMP proposal with one transform per configured IkeProposal.
    Aggressive mode sends its KE with the offer, so every transform must name that one group
    (RFC 2409 section 5.4): the proposals with another group are left out."""
    offer = sa.peer.proposals[:3]
    if sa.mode == states.AGGRESSIVE:
        offer = [p for p in offer if p.dh == offer[0].dh]
    transforms = []
    for number, p in enumerate(offer):
        attrs = proposals.ike_attributes(p, sa.auth, sa.peer.lifetime_s)
        transforms.append(codec.Transform(number + 1, C.KEY_IKE,
                                          [codec.Attribute(t, v) for t, v in attrs]))
    return codec.SaPayload([codec.Proposal(1, C.PROTO_ISAKMP, b"", transforms)],
                           doi=C.DOI_IPSEC, situation=C.SIT_IDENTITY_ONLY)


def _vendor_payloads(sa):
    """DPD (RFC 3706 section 7) so the peer answers our R-U-THEREs, and NAT-T (RFC 3947): every
    variant from the initiator, the chosen one back from the responder."""
    vids = [codec.VendorPayload(vendor.VID_DPD)] if sa.peer.dpd_delay_s else []
    return vids + sa.natt.vendor_payloads(sa.initiator)


def _note_vendor_ids(sa, received):
    vids = received.all(codec.VendorPayload)
    if vendor.has(vids, vendor.VID_DPD):
        sa.peer_dpd = True
    sa.natt.note_vendor_ids(vids)


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


def _attributes(transform):
    return [(a.type, a.value) for a in transform.attributes]


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


def _local_identity(sa):
    ident = sa.peer.local_id
    if ident is None:
        from .settings import Identity
        if sa.auth == "rsa" and sa.peer.cert_der:
            ident = Identity("dn", sa.crypto.cert_subject(sa.peer.cert_der))
        else:
            ident = Identity("ipv4", sa.local[0])
    return ident


# -- authentication payloads: HASH for pre-shared keys, CERT + SIG for RSA (RFC 2409 5.1) -------
def _auth_payloads(sa, hash_value):
    """What proves our identity in MM 5/6 and AM 2/3."""
    if sa.auth != "rsa":
        return [codec.HashPayload(hash_value)]
    return [codec.CertPayload(C.CERT_X509_SIGNATURE, sa.peer.cert_der),
            codec.SigPayload(sa.crypto.sign("rsa", sa.peer.key_pem, hash_value))]


def _cert_requests(sa):
    """CR naming our CA (MM 3/4, AM 1/2), so the peer sends its certificate."""
    if sa.auth != "rsa" or not sa.peer.ca_der:
        return []
    return [codec.CrPayload(C.CERT_X509_SIGNATURE, sa.crypto.cert_subject_der(sa.peer.ca_der))]


def _initial_contact_payloads(sa):
    """INITIAL-CONTACT (RFC 2407 section 4.6.3.3) when this is our first IKE SA with the peer,
    so it can drop any state it still has from before we restarted."""
    if not sa.initial_contact:
        return []
    return [codec.NotifyPayload(C.INITIAL_CONTACT, protocol=C.PROTO_ISAKMP, spi=sa.spi())]


def _required(received, classes, what):
    missing = [cls.__name__ for cls in classes if received.one(cls) is None]
    if missing:
        raise codec.MalformedMessage("%s lacks %s (has %s)" % (what, ", ".join(missing),
                                                                received.types() or "nothing"))


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
        sa.idi = identity_payload(sa.crypto, _local_identity(sa))
        data = sa.message(C.EXCHANGE_AGGRESSIVE,
                          [sa_payload, codec.KePayload(sa.ke_i), codec.NoncePayload(sa.ni), sa.idi]
                          + _cert_requests(sa) + _vendor_payloads(sa))
    sa.send(data, now)
    sa.feed(states.SENT, now)
    sa.log("info", "initiating %s mode with %s (%s)" % (sa.mode, sa.remote[0],
                                                         ", ".join(p.name for p in sa.peer.proposals)))


def handle(sa, header, data, now):
    """A phase 1 (main/aggressive) message for this SA. Duplicates are answered with our last
    message; anything not expected in the current state is dropped (logged)."""
    if data == sa.reply_to or data == sa.last_received:
        # A repeat: the peer missed our answer to it (answer again), or it repeats a message
        # we did not answer (our last message went earlier and is retransmitted by its timer;
        # answering here would make two ends echo each other forever).
        if data == sa.reply_to and sa.last_sent is not None:
            sa.core.send(sa.last_sent, sa.local, sa.remote)
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
    handler = _HANDLERS.get((sa.mode, sa.role, sa.machine.state))
    if handler is None:
        sa.log("warning", "ignored a %s message in state %s (%d)"
               % (sa.mode, sa.machine.state, sa.machine.number))
        return
    sa.heard_from_peer = True
    sa.current_input = data
    handler(sa, header, data, now)


def _open_clear(sa, header, data, now, what=None):
    """Split a cleartext phase 1 message, diagnosing a malformed one (we stay where we are)."""
    try:
        received, _ = sa.open(header, data)
    except codec.MalformedMessage as exc:
        sa.core.malformed(sa.remote, exc, sa)
        return None
    sa.last_received = data
    return received


# main mode, initiator ------------------------------------------------------------------------------
def main_inR1_outI2(sa, header, data, now):
    # <-- HDR, SA      then      HDR, KE, Ni [, NAT-D, NAT-D] -->
    received = _open_clear(sa, header, data, now, "message 2")
    if received is None:
        return
    sa_payload = received.one(codec.SaPayload)
    if sa_payload is None:
        sa.core.malformed(sa.remote, codec.MalformedMessage("message 2 has no SA payload"), sa)
        return
    sa.rcookie = header.rcookie
    try:
        proposal = _single_isakmp_proposal(sa_payload)
    except codec.MalformedMessage as exc:
        sa.core.malformed(sa.remote, exc, sa)
        return
    chosen = None
    if len(proposal.transforms) == 1:
        chosen = proposals.confirm_ike(sa.peer.proposals, sa.auth,
                                       _attributes(proposal.transforms[0]))
    if chosen is None:
        sa.fail("p1_algorithm", "the peer chose a transform we did not offer", now)
        return
    _accept_transform(sa, chosen)
    _note_vendor_ids(sa, received)
    sa.feed(states.VALID, now)
    sa.ke_i = _dh_start(sa)
    sa.ni = _nonce(sa)
    out = sa.message(C.EXCHANGE_MAIN, [codec.KePayload(sa.ke_i), codec.NoncePayload(sa.ni)]
                     + _cert_requests(sa) + _natd_payloads(sa))
    sa.send(out, now)
    sa.feed(states.SENT, now)


def main_inR2_outI3(sa, header, data, now):
    # <-- HDR, KE, Nr    then    HDR*, IDii, HASH_I [, N(INITIAL-CONTACT)] -->
    received = _open_clear(sa, header, data, now, "message 4")
    if received is None:
        return
    ke, nonce = received.one(codec.KePayload), received.one(codec.NoncePayload)
    if ke is None or nonce is None:
        sa.core.malformed(sa.remote, codec.MalformedMessage("message 4 lacks KE or nonce"), sa)
        return
    sa.ke_r, sa.nr = bytes(ke.data), bytes(nonce.data)
    try:
        sa.derive_keys()
    except CryptoError as exc:
        sa.fail("malformed", "the peer's key exchange value is invalid: %s" % exc, now)
        return
    _process_natd(sa, received)
    sa.feed(states.VALID, now)
    _float(sa)
    sa.idi = identity_payload(sa.crypto, _local_identity(sa))
    hash_i = sa.hash_i(_payload_body(sa.idi))
    out = sa.message(C.EXCHANGE_MAIN, [sa.idi] + _auth_payloads(sa, hash_i)
                     + _initial_contact_payloads(sa), encrypt=True)
    sa.send(out, now)
    sa.feed(states.SENT, now)


def main_inR3(sa, header, data, now):
    # <-- HDR*, IDir, HASH_R
    if not header.flags & C.FLAG_ENCRYPTION:
        sa.fail("psk", "message 6 arrived unencrypted", now)
        return
    received, next_iv = _open_encrypted(sa, header, data, now, 6)
    if received is None:
        return
    # It decrypted to valid payloads: this is now the last phase 1 block, whatever the checks
    # below say (a refusal is encrypted with an IV derived from it, as the peer will expect).
    sa.set_iv(0, next_iv)
    if not _check_hash(sa, received, now, 6, responder_hash=True):
        return
    sa.last_received = data
    if not _check_id(sa, received, now):
        return
    sa.feed(states.VALID, now)
    _established(sa, received, now)


# main mode, responder ------------------------------------------------------------------------------
def main_inI1_outR1(sa, header, data, now):
    # <-- HDR, SA    then    HDR, SA -->   (the state became 1 when the core created this SA)
    received = _open_clear(sa, header, data, now, "message 1")
    if received is None:
        return
    if not _choose_transform(sa, received, now):
        return
    _note_vendor_ids(sa, received)
    sa.feed(states.VALID, now)
    out = sa.message(C.EXCHANGE_MAIN, [sa.chosen_sa] + _vendor_payloads(sa))
    sa.send(out, now, wants_answer=False)
    sa.feed(states.SENT, now)


def main_inI2_outR2(sa, header, data, now):
    # <-- HDR, KE, Ni    then    HDR, KE, Nr [, NAT-D, NAT-D] -->
    received = _open_clear(sa, header, data, now, "message 3")
    if received is None:
        return
    ke, nonce = received.one(codec.KePayload), received.one(codec.NoncePayload)
    if ke is None or nonce is None:
        sa.core.malformed(sa.remote, codec.MalformedMessage("message 3 lacks KE or nonce"), sa)
        return
    sa.ke_i, sa.ni = bytes(ke.data), bytes(nonce.data)
    _process_natd(sa, received)
    sa.ke_r = _dh_start(sa)
    sa.nr = _nonce(sa)
    try:
        sa.derive_keys()
    except CryptoError as exc:
        sa.fail("malformed", "the peer's key exchange value is invalid: %s" % exc, now)
        return
    sa.feed(states.VALID, now)
    out = sa.message(C.EXCHANGE_MAIN, [codec.KePayload(sa.ke_r), codec.NoncePayload(sa.nr)]
                     + _cert_requests(sa) + _natd_payloads(sa))
    sa.send(out, now, wants_answer=False)
    sa.feed(states.SENT, now)


def main_inI3_outR3(sa, header, data, now):
    # <-- HDR*, IDii, HASH_I    then    HDR*, IDir, HASH_R -->
    if not header.flags & C.FLAG_ENCRYPTION:
        _refuse_unencrypted(sa, 5, now)
        return
    received, next_iv = _open_encrypted(sa, header, data, now, 5)
    if received is None:
        return
    sa.set_iv(0, next_iv)
    if not _check_hash(sa, received, now, 5, responder_hash=False):
        return
    sa.last_received = data
    if not _check_id(sa, received, now):
        return
    sa.feed(states.VALID, now)
    sa.idr = identity_payload(sa.crypto, _local_identity(sa))
    hash_r = sa.hash_r(_payload_body(sa.idr))
    out = sa.message(C.EXCHANGE_MAIN, [sa.idr] + _auth_payloads(sa, hash_r), encrypt=True)
    sa.send(out, now, wants_answer=False)
    sa.feed(states.SENT, now)
    _established(sa, received, now)


# aggressive mode -------------------------------------------------------------------------------------
def aggr_inR1_outI2(sa, header, data, now):
    # <-- HDR, SA, KE, Nr, IDir, HASH_R    then    HDR*, HASH_I [, N(INITIAL-CONTACT)] -->
    received = _open_clear(sa, header, data, now, "message 2")
    if received is None:
        return
    try:
        _required(received, (codec.SaPayload, codec.KePayload, codec.NoncePayload,
                             codec.IdPayload), "aggressive mode message 2")
        proposal = _single_isakmp_proposal(received.one(codec.SaPayload))
    except codec.MalformedMessage as exc:
        sa.core.malformed(sa.remote, exc, sa)
        return
    sa.rcookie = header.rcookie
    chosen = None
    if len(proposal.transforms) == 1:
        chosen = proposals.confirm_ike(sa.peer.proposals, sa.auth,
                                       _attributes(proposal.transforms[0]))
    if chosen is None or chosen.proposal.dh != sa.proposal.dh:
        sa.fail("p1_algorithm", "the peer chose a transform we did not offer", now)
        return
    _accept_transform(sa, chosen)
    sa.ke_r = bytes(received.one(codec.KePayload).data)
    sa.nr = bytes(received.one(codec.NoncePayload).data)
    try:
        sa.derive_keys()
    except CryptoError as exc:
        sa.fail("malformed", "the peer's key exchange value is invalid: %s" % exc, now)
        return
    if not _check_hash(sa, received, now, 2, responder_hash=True):
        return
    sa.last_received = data
    if not _check_id(sa, received, now):
        return
    _note_vendor_ids(sa, received)
    _process_natd(sa, received)
    sa.feed(states.VALID, now)
    _float(sa)
    hash_i = sa.hash_i(_payload_body(sa.idi))
    # RFC 2409 shows the last aggressive mode message in clear; like Libreswan and strongSwan we
    # encrypt it (both accept either), which also carries INITIAL-CONTACT protected.
    out = sa.message(C.EXCHANGE_AGGRESSIVE, _auth_payloads(sa, hash_i) + _natd_payloads(sa)
                     + _initial_contact_payloads(sa), encrypt=True)
    sa.send(out, now, wants_answer=False)
    sa.last_received = data
    _established(sa, received, now)


def aggr_inI1_outR1(sa, header, data, now):
    # <-- HDR, SA, KE, Ni, IDii    then    HDR, SA, KE, Nr, IDir, HASH_R -->
    received = _open_clear(sa, header, data, now, "message 1")
    if received is None:
        return
    try:
        _required(received, (codec.SaPayload, codec.KePayload, codec.NoncePayload,
                             codec.IdPayload), "aggressive mode message 1")
    except codec.MalformedMessage as exc:
        sa.core.malformed(sa.remote, exc, sa)
        return
    if not _choose_transform(sa, received, now):
        return
    idi = received.one(codec.IdPayload)
    if not identity_matches(sa.crypto, sa.peer.remote_id, idi.id_type, idi.data):
        got = identity_text(sa.crypto, idi.id_type, idi.data)
        sa.fail("id", "the peer identified as %s %s, we expect %s %s" % (
            got[0], got[1], sa.peer.remote_id.type, sa.peer.remote_id.value), now)
        _notify_clear(sa, C.INVALID_ID_INFORMATION)
        return
    sa.ke_i = bytes(received.one(codec.KePayload).data)
    sa.ni = bytes(received.one(codec.NoncePayload).data)
    sa.ke_r = _dh_start(sa)
    sa.nr = _nonce(sa)
    try:
        sa.derive_keys()
    except CryptoError as exc:
        sa.fail("malformed", "the peer's key exchange value is invalid: %s" % exc, now)
        return
    sa.peer_idi_b = _raw_body(received, received.index_of(codec.IdPayload))
    sa.peer_idi = idi
    _note_vendor_ids(sa, received)
    sa.feed(states.VALID, now)
    sa.idr = identity_payload(sa.crypto, _local_identity(sa))
    hash_r = sa.hash_r(_payload_body(sa.idr))
    out = sa.message(C.EXCHANGE_AGGRESSIVE,
                     [sa.chosen_sa, codec.KePayload(sa.ke_r), codec.NoncePayload(sa.nr), sa.idr]
                     + _auth_payloads(sa, hash_r) + _cert_requests(sa) + _vendor_payloads(sa)
                     + _natd_payloads(sa))
    # The initiator's answer is the last message: we retransmit until it comes.
    sa.send(out, now, wants_answer=True)
    sa.feed(states.SENT, now)


def aggr_inI2(sa, header, data, now):
    # <-- HDR[*], HASH_I
    if header.flags & C.FLAG_ENCRYPTION:
        received, next_iv = _open_encrypted(sa, header, data, now, 3)
        if received is None:
            return
    else:
        received = _open_clear(sa, header, data, now, "message 3")
        next_iv = None
        if received is None:
            return
    if next_iv is not None:
        sa.set_iv(0, next_iv)
    if not _verify(sa, received, now, 3, sa.hash_i(sa.peer_idi_b), "HASH_I",
                   received_id=sa.peer_idi):
        return
    sa.last_received = data
    sa.pending = None
    _process_natd(sa, received)
    sa.feed(states.VALID, now)
    _established(sa, received, now)


# -- shared steps ----------------------------------------------------------------------------------
def _accept_transform(sa, chosen):
    sa.proposal = chosen.proposal
    if chosen.lifetime_s:
        sa.lifetime_s = min(chosen.lifetime_s, sa.peer.lifetime_s)


def _choose_transform(sa, received, now):
    """Responder: pick, by OUR preference, one offered transform; answer NO-PROPOSAL-CHOSEN when
    none fits (the state stays at 1: "1st msg received")."""
    sa_payload = received.one(codec.SaPayload)
    try:
        if sa_payload is None:
            raise codec.MalformedMessage("message 1 has no SA payload")
        proposal = _single_isakmp_proposal(sa_payload)
    except codec.MalformedMessage as exc:
        sa.core.malformed(sa.remote, exc, sa)
        return False
    sa.sai_b = _raw_body(received, received.index_of(codec.SaPayload))
    offered = [_attributes(t) for t in proposal.transforms]
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
    _notify_clear(sa, C.NO_PROPOSAL_CHOSEN)
    return False


def _raw_body(received, index):
    return bytes(received.raw[index][C.GENERIC_HEADER_LENGTH:])


def _open_encrypted(sa, header, data, now, number):
    """Decrypt message `number` of phase 1. With pre-shared keys a wrong key shows exactly here:
    the message does not decrypt to a valid payload chain."""
    try:
        received, next_iv = sa.open(header, data)
        if not received.payloads:
            raise codec.MalformedMessage("no payloads")
    except (codec.MalformedMessage, CryptoError) as exc:
        _auth_failed(sa, "message %d did not decrypt to valid payloads" % number, now,
                     decrypt=True)
        return None, None
    return received, next_iv


def _auth_failed(sa, detail, now, decrypt=False):
    """Wrong pre-shared key (or certificate) - or a message damaged on the way, which looks the
    same. The diagnosis is shown and logged once, and the peer hears an unencrypted notify (with
    different keys it could not read an encrypted one), but the negotiation stays open: a good
    copy of the message (a retransmission) still completes it, so one forged datagram cannot
    kill it. The initiator's give-up, or the cleanup of the responder's SA, ends it."""
    cause = "psk" if sa.auth == "psk" else "cert"
    sa.hint = (cause, detail)
    line = diagnosis.line(cause, sa.remote[0], detail, phase=1, peer=sa.peer)
    if sa.last_error != line:
        sa.last_error = line
        sa.log("error", line)
        _notify_clear(sa, C.PAYLOAD_MALFORMED if decrypt else C.INVALID_HASH_INFORMATION,
                      remember=False)
    if sa.remove_at is None and not sa.initiator:
        sa.remove_at = now + FAILED_KEEP_S


def _check_hash(sa, received, now, number, responder_hash):
    """HASH_I / HASH_R of main mode 5/6 or aggressive mode 2 - or its signature. With pre-shared
    keys this proves both sides hold the same key (it enters SKEYID)."""
    ident = received.one(codec.IdPayload)
    proof = received.one(codec.SigPayload if sa.auth == "rsa" else codec.HashPayload)
    if ident is None or proof is None:
        if sa.auth == "rsa" and ident is not None and received.one(codec.HashPayload) is not None:
            sa.fail("auth_method", "we use certificates, the peer authenticated with a "
                    "pre-shared key hash", now)
            return False
        _auth_failed(sa, "message %d did not decrypt to valid payloads" % number, now, decrypt=True)
        return False
    id_b = _raw_body(received, received.index_of(codec.IdPayload))
    expected = sa.hash_r(id_b) if responder_hash else sa.hash_i(id_b)
    return _verify(sa, received, now, number, expected,
                   "HASH_R" if responder_hash else "HASH_I", received_id=ident)


def _verify(sa, received, now, number, expected, what, received_id):
    """PSK: the HASH payload equals what we computed. RSA: the peer's certificate is signed by
    our CA, carries the ID the peer claims, and its key signed the hash."""
    if sa.auth != "rsa":
        proof = received.one(codec.HashPayload)
        if proof is None or bytes(proof.data) != expected:
            _auth_failed(sa, "message %d: its %s did not verify" % (number, what), now)
            return False
        return True
    sig = received.one(codec.SigPayload)
    cert = None
    for c in received.all(codec.CertPayload):
        if c.encoding == C.CERT_X509_SIGNATURE:
            cert = bytes(c.data)
            break
    if sig is None:
        return _cert_failed(sa, "message %d carries no signature" % number, now)
    if cert is None:
        return _cert_failed(sa, "the peer sent no certificate in message %d" % number, now,
                            C.CERTIFICATE_UNAVAILABLE)
    try:
        problem = sa.crypto.cert_verify(cert, sa.peer.ca_der) if sa.peer.ca_der else \
            "no CA is configured to check it against"
        if problem is not None:
            return _cert_failed(sa, "the peer's certificate %s: %s" % (
                sa.crypto.cert_subject(cert), problem), now, C.INVALID_CERT_AUTHORITY)
        bound = _id_in_certificate(sa, cert, received_id)
        if bound is not None:
            return _cert_failed(sa, bound, now, C.INVALID_ID_INFORMATION)
        if not sa.crypto.verify(cert, expected, bytes(sig.data)):
            return _cert_failed(sa, "the signature over %s in message %d does not verify with "
                                "the certificate's key" % (what, number), now, C.INVALID_SIGNATURE)
    except CryptoError as exc:
        return _cert_failed(sa, "the peer's certificate cannot be used: %s" % exc, now,
                            C.INVALID_CERTIFICATE)
    sa.peer_cert = cert
    return True


def _id_in_certificate(sa, cert, ident):
    """None when the claimed ID is the certificate's subject or one of its alt names, else why
    not (a certificate only vouches for the names it carries)."""
    kind, text = identity_text(sa.crypto, ident.id_type, ident.data)
    if kind == "dn":
        if text == sa.crypto.cert_subject(cert):
            return None
    else:
        wanted = {"ipv4": "ip", "fqdn": "dns", "user_fqdn": "email"}.get(kind)
        for alt_kind, value in sa.crypto.cert_alt_names(cert):
            if alt_kind == wanted and value.lower() == text.lower():
                return None
    return "the peer's ID %s %s is not in its certificate (%s)" % (
        kind, text, sa.crypto.cert_subject(cert))


def _cert_failed(sa, detail, now, notify_type=C.AUTHENTICATION_FAILED):
    """A certificate problem is not a damaged datagram: it ends the negotiation. The keys agree
    (no pre-shared key involved), so the refusal goes encrypted."""
    sa.fail("cert", detail, now)
    from . import informational
    informational.send_notify(sa, notify_type, now)
    if sa.mode == states.MAIN and sa.initiator:
        informational.send_delete_ike(sa, now)     # the responder already counts it as up
    return False


def _check_id(sa, received, now):
    """The peer's (authenticated) ID against the configured remote ID."""
    ident = received.one(codec.IdPayload)
    if identity_matches(sa.crypto, sa.peer.remote_id, ident.id_type, ident.data):
        return True
    got = identity_text(sa.crypto, ident.id_type, ident.data)
    sa.fail("id", "the peer identified as %s %s, we expect %s %s" % (
        got[0], got[1], sa.peer.remote_id.type, sa.peer.remote_id.value), now)
    if sa.keys is not None:
        # Keys agree (the hash verified), so the refusal goes encrypted and authenticated.
        from . import informational
        informational.send_notify(sa, C.INVALID_ID_INFORMATION, now)
        if sa.mode == states.MAIN and sa.initiator:
            # The responder already considers the SA up: take it down on its side too.
            informational.send_delete_ike(sa, now)
    return False


def _refuse_unencrypted(sa, number, now):
    sa.core.malformed(sa.remote, codec.MalformedMessage(
        "message %d must be encrypted" % number), sa)


def _notify_clear(sa, notify_type, remember=True):
    """An unencrypted informational notify about this negotiation (RFC 2408 section 5: before the
    SA is authenticated this is all we can send; the peer takes it as a hint only)."""
    note = codec.NotifyPayload(notify_type, protocol=C.PROTO_ISAKMP, spi=sa.spi())
    data = codec.encode_message(codec.Message(C.EXCHANGE_INFORMATIONAL, sa.icookie, sa.rcookie,
                                              message_id=0, payloads=[note]))
    if remember:
        # Our answer to the refused message: a repeat of it gets the same refusal.
        sa.last_sent = data
        sa.reply_to = sa.current_input
    sa.core.send(data, sa.local, sa.remote)


def _established(sa, received, now):
    """The IKE SA is up: timers, INITIAL-CONTACT, then the core starts queued quick modes."""
    sa.pending = None
    sa.feed(states.ESTABLISHED, now)
    sa.established_at = now
    sa.failed = False
    sa.last_error = None
    sa.hint = None
    sa.remove_at = None
    sa.expire_at = now + sa.lifetime_s
    if sa.natt.send_keepalives:
        sa.keepalive_at = now + KEEPALIVE_INTERVAL_S
    sa.rekey_at = now + sa.lifetime_s - rekey_margin(sa.lifetime_s)
    if not sa.initiator:
        # The initiator renews; we only do so when it did not, a little later.
        sa.rekey_at = now + sa.lifetime_s - rekey_margin(sa.lifetime_s) // 2
    contact = False
    for note in received.all(codec.NotifyPayload):
        if note.notify_type == C.INITIAL_CONTACT:
            contact = True
    sa.log("info", "IKE SA %s with %s established (%s mode, %s, %s, lifetime %d s)" % (
        sa.id, sa.remote[0], sa.mode, sa.role, sa.algorithm_text(), sa.lifetime_s))
    sa.core.ike_established(sa, contact, now)


_HANDLERS = {
    (states.MAIN, states.INITIATOR, "MI_1_SENT"): main_inR1_outI2,
    (states.MAIN, states.INITIATOR, "MI_2_SENT"): main_inR2_outI3,
    (states.MAIN, states.INITIATOR, "MI_3_SENT"): main_inR3,
    (states.MAIN, states.RESPONDER, "MR_START"): main_inI1_outR1,
    (states.MAIN, states.RESPONDER, "MR_1_SENT"): main_inI2_outR2,
    (states.MAIN, states.RESPONDER, "MR_2_SENT"): main_inI3_outR3,
    (states.AGGRESSIVE, states.INITIATOR, "AI_1_SENT"): aggr_inR1_outI2,
    (states.AGGRESSIVE, states.RESPONDER, "AR_START"): aggr_inI1_outR1,
    (states.AGGRESSIVE, states.RESPONDER, "AR_1_SENT"): aggr_inI2,
}


def on_timer(sa, now):
    """Retransmit our last phase 1 message, or give up (the diagnosis says why); NAT keepalives."""
    if sa.keepalive_at is not None and sa.keepalive_at <= now:
        # RFC 3948 section 2.3: one 0xFF byte to port 4500 keeps our NAT mapping open.
        sa.core.send_raw(natt.KEEPALIVE, sa.local, sa.remote)
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
    if pending is None or pending.deadline > now:
        return
    pending.attempt += 1
    if pending.attempt >= len(RETRANSMIT_DELAYS):
        sa.pending = None
        n = sa.machine.number
        if sa.hint is not None:
            cause, detail = sa.hint
            sa.fail(cause, detail, now)
        elif not sa.heard_from_peer:
            sa.fail("unreachable", "no answer to %d transmissions of message 1 in %d s" % (
                len(RETRANSMIT_DELAYS), sum(RETRANSMIT_DELAYS)), now)
        elif sa.mode == states.MAIN and sa.initiator and sa.machine.state == "MI_3_SENT":
            sa.fail("psk", "the peer never answered message 5 (it could not decrypt it)", now)
        else:
            sa.fail("timeout", "no answer in state %s(%d) after %d transmissions" % (
                states.status_text(n), n, len(RETRANSMIT_DELAYS)), now)
        return
    sa.core.send(pending.data, sa.local, sa.remote)
    pending.deadline = now + RETRANSMIT_DELAYS[pending.attempt]
    if pending.attempt >= SILENCE_HINT_AFTER and sa.hint is None and sa.heard_from_peer:
        # The peer answered the cleartext messages but is silent since we sent the first one
        # that depends on the pre-shared key: the classic sign of different keys (strongSwan
        # drops a message 5 it cannot decrypt without a word). Keep trying; say it now.
        story = _SILENT_AFTER.get(sa.machine.state)
        if story is not None and sa.auth == "psk":
            sa.note_hint("psk", story, now)
