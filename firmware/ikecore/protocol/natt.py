"""NAT traversal for IKEv1: RFC 3947 and the draft-ietf-ipsec-nat-t-ike-02/03 variants
(portable: MicroPython subset, no I/O, hashes through a function the caller passes in).

What the exchanges need from here:
  * which NAT-T variant a peer speaks (its vendor IDs) and therefore which payload numbers and
    encapsulation-mode values to use                      -> VARIANTS, choose_variant()
  * the NAT-D hashes to send and the NAT verdict on the ones received
                                                          -> nat_d_payloads(), detect(), nat_status()
  * the NAT-OA payload for transport mode                 -> nat_oa_payload()
  * port 4500 framing: the non-ESP marker and keepalives  -> classify_4500(), add/strip marker

The vendor ID values are MD5 of the strings in the comments (checked in tests/unit/test_natt.py);
they are literals because MicroPython builds may lack MD5.
"""

from . import consts as C
from .codec import MalformedMessage, NatDPayload, NatOaPayload, VendorPayload

# RFC 3948 §2.2: IKE on port 4500 starts with four zero bytes where ESP has its (non-zero) SPI.
NON_ESP_MARKER = b"\x00\x00\x00\x00"
# RFC 3948 §2.3: a NAT-keepalive is one byte 0xFF sent to port 4500 to keep the mapping open.
KEEPALIVE = b"\xff"
KEEPALIVE_INTERVAL_S = 20          # RFC 3948 §4: default, "20 seconds"


class NattVariant:
    """One spelling of NAT-T: its vendor ID, the NAT-D / NAT-OA payload numbers and the
    UDP-encapsulated mode values it puts in the Encapsulation Mode attribute."""
    __slots__ = ("name", "vid", "nat_d_type", "nat_oa_type", "encap_tunnel", "encap_transport")

    def __init__(self, name, vid, nat_d_type, nat_oa_type, encap_tunnel, encap_transport):
        self.name = name
        self.vid = vid
        self.nat_d_type = nat_d_type
        self.nat_oa_type = nat_oa_type
        self.encap_tunnel = encap_tunnel
        self.encap_transport = encap_transport

    def encapsulation(self, mode):
        """The Encapsulation Mode attribute value for "tunnel"/"transport" over UDP."""
        if mode == "transport":
            return self.encap_transport
        return self.encap_tunnel

    def __repr__(self):
        return "NattVariant(%r)" % self.name


# MD5("RFC 3947")
VID_RFC3947 = b"\x4a\x13\x1c\x81\x07\x03\x58\x45\x5c\x57\x28\xf2\x0e\x95\x45\x2f"
# MD5("draft-ietf-ipsec-nat-t-ike-03")
VID_DRAFT_03 = b"\x7d\x94\x19\xa6\x53\x10\xca\x6f\x2c\x17\x9d\x92\x15\x52\x9d\x56"
# MD5("draft-ietf-ipsec-nat-t-ike-02\n") — an early implementation hashed the trailing newline,
# and everybody kept accepting it.
VID_DRAFT_02N = b"\x90\xcb\x80\x91\x3e\xbb\x69\x6e\x08\x63\x81\xb5\xec\x42\x7b\x1f"
# MD5("draft-ietf-ipsec-nat-t-ike-02")
VID_DRAFT_02 = b"\xcd\x60\x46\x43\x35\xdf\x21\xf8\x7c\xfd\xb2\xfc\x68\xb6\xa4\x48"

RFC3947 = NattVariant("RFC 3947", VID_RFC3947, C.PT_NAT_D, C.PT_NAT_OA,
                      C.ENCAP_UDP_TUNNEL, C.ENCAP_UDP_TRANSPORT)
DRAFT_03 = NattVariant("draft-ietf-ipsec-nat-t-ike-03", VID_DRAFT_03, C.PT_NAT_D_DRAFT,
                       C.PT_NAT_OA_DRAFT, C.ENCAP_UDP_TUNNEL_DRAFT, C.ENCAP_UDP_TRANSPORT_DRAFT)
DRAFT_02N = NattVariant("draft-ietf-ipsec-nat-t-ike-02\\n", VID_DRAFT_02N, C.PT_NAT_D_DRAFT,
                        C.PT_NAT_OA_DRAFT, C.ENCAP_UDP_TUNNEL_DRAFT, C.ENCAP_UDP_TRANSPORT_DRAFT)
DRAFT_02 = NattVariant("draft-ietf-ipsec-nat-t-ike-02", VID_DRAFT_02, C.PT_NAT_D_DRAFT,
                       C.PT_NAT_OA_DRAFT, C.ENCAP_UDP_TUNNEL_DRAFT, C.ENCAP_UDP_TRANSPORT_DRAFT)

# In order of preference: the RFC first, then the newest draft.
VARIANTS = (RFC3947, DRAFT_03, DRAFT_02N, DRAFT_02)


def vendor_ids():
    """The NAT-T vendor IDs an initiator sends (all variants, preferred first)."""
    return [v.vid for v in VARIANTS]


def variant_for_vid(vid):
    for variant in VARIANTS:
        if variant.vid == vid:
            return variant
    return None


def choose_variant(vids):
    """The best variant among the peer's vendor IDs (bytes or VendorPayload), or None when the
    peer does not do NAT-T. A responder sends back only the chosen variant's VID."""
    received = [getattr(v, "data", v) for v in vids]
    for variant in VARIANTS:
        if variant.vid in received:
            return variant
    return None


# --- addresses ---------------------------------------------------------------------------------

def _bad_address(text):
    raise ValueError("not an IPv4 or IPv6 address: %r" % (text,))


def _pack_ipv4(text):
    parts = text.split(".")
    if len(parts) != 4:
        _bad_address(text)
    out = bytearray()
    for part in parts:
        if not part.isdigit() or len(part) > 3 or int(part) > 255:
            _bad_address(text)
        out.append(int(part))
    return bytes(out)


def _pack_ipv6(text):
    if text.count("::") > 1:
        _bad_address(text)
    head, sep, tail = text.partition("::")

    def groups(part):
        if not part:
            return []
        words = []
        items = part.split(":")
        for index, item in enumerate(items):
            if "." in item and index == len(items) - 1:       # ::ffff:192.0.2.1
                v4 = _pack_ipv4(item)
                words += [(v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]]
                continue
            if not 1 <= len(item) <= 4:
                _bad_address(text)
            try:
                words.append(int(item, 16))
            except ValueError:
                _bad_address(text)
        return words

    left = groups(head)
    right = groups(tail)
    missing = 8 - len(left) - len(right)
    if (sep and missing < 1) or (not sep and missing != 0):
        _bad_address(text)
    words = left + [0] * missing + right
    return b"".join(w.to_bytes(2, "big") for w in words)


def pack_address(ip):
    """ip text ("192.0.2.1", "2001:db8::1") -> 4 or 16 bytes; packed bytes pass through."""
    if isinstance(ip, (bytes, bytearray)):
        if len(ip) not in (4, 16):
            _bad_address(ip)
        return bytes(ip)
    if ":" in ip:
        return _pack_ipv6(ip)
    return _pack_ipv4(ip)


# --- NAT-D (RFC 3947 §3.2) ---------------------------------------------------------------------

def nat_d_hash(hash_fn, icookie, rcookie, ip, port):
    """HASH = HASH(CKY-I | CKY-R | IP | Port) with the negotiated hash: hash_fn(bytes) -> bytes
    (e.g. lambda data: crypto.hash("sha1", data)). port is an int, sent in network order."""
    return hash_fn(bytes(icookie) + bytes(rcookie) + pack_address(ip) + port.to_bytes(2, "big"))


def nat_d_hashes(hash_fn, icookie, rcookie, local, remote):
    """The hashes to send, in order: first the peer's address (the packet's destination), then
    ours (its source). local/remote: (ip, port). local must be the address the datagram really
    leaves from: a wildcard ("0.0.0.0") hashes to something the peer cannot match, so both ends
    would see a NAT that is not there."""
    return [nat_d_hash(hash_fn, icookie, rcookie, remote[0], remote[1]),
            nat_d_hash(hash_fn, icookie, rcookie, local[0], local[1])]


def nat_d_payloads(variant, hash_fn, icookie, rcookie, local, remote):
    """NatDPayloads for the variant chosen (RFC 3947 numbers them 20, the drafts 130)."""
    return [NatDPayload(h, variant.nat_d_type)
            for h in nat_d_hashes(hash_fn, icookie, rcookie, local, remote)]


class NatDetection:
    """The verdict on the peer's NAT-D hashes.

    us_behind_nat: the first hash (our address as the peer addressed it) is not our address:
                   a NAT rewrites our side ("near end"); we must send keepalives.
    peer_behind_nat: none of the other hashes is the peer's address as we see it: a NAT rewrites
                   the peer's side ("far end"). Also true when a peer fakes its hashes to force
                   UDP encapsulation (strongSwan with kernel-libipsec does).
    """
    __slots__ = ("us_behind_nat", "peer_behind_nat")

    def __init__(self, us_behind_nat, peer_behind_nat):
        self.us_behind_nat = us_behind_nat
        self.peer_behind_nat = peer_behind_nat

    @property
    def nat(self):
        """A NAT anywhere on the path: encapsulate ESP in UDP and float to port 4500."""
        return self.us_behind_nat or self.peer_behind_nat

    @property
    def status(self):
        """The status page's words: "none", "near end" or "far end". With NATs on both sides
        "near end" wins: that is the one the local operator can do something about and the one
        that makes us send keepalives."""
        if self.us_behind_nat:
            return "near end"
        if self.peer_behind_nat:
            return "far end"
        return "none"

    def __eq__(self, other):
        return (isinstance(other, NatDetection) and self.us_behind_nat == other.us_behind_nat
                and self.peer_behind_nat == other.peer_behind_nat)

    def __repr__(self):
        return "NatDetection(us_behind_nat=%r, peer_behind_nat=%r)" % (
            self.us_behind_nat, self.peer_behind_nat)


def detect(hash_fn, icookie, rcookie, received, local, remote):
    """Compare the NAT-D hashes received (bytes or NatDPayload, in message order) with the
    addresses as this datagram showed them: local = where it arrived (our ip, port), remote =
    where it came from (the peer's ip, port). Returns NatDetection, or None when the peer sent
    no NAT-D payloads (it does not do NAT-T)."""
    hashes = [getattr(r, "data", r) for r in received]
    if not hashes:
        return None
    ours = nat_d_hash(hash_fn, icookie, rcookie, local[0], local[1])
    theirs = nat_d_hash(hash_fn, icookie, rcookie, remote[0], remote[1])
    return NatDetection(hashes[0] != ours, theirs not in hashes[1:])


def nat_status(hash_fn, icookie, rcookie, received, local, remote):
    """"none" / "near end" / "far end" for the received NAT-D hashes (see detect())."""
    verdict = detect(hash_fn, icookie, rcookie, received, local, remote)
    return "none" if verdict is None else verdict.status


# --- NAT-OA (RFC 3947 §5.2) ----------------------------------------------------------------------

def nat_oa_payload(variant, ip):
    """The original address of one side, for transport mode over UDP (quick mode)."""
    packed = pack_address(ip)
    id_type = C.ID_IPV4_ADDR if len(packed) == 4 else C.ID_IPV6_ADDR
    return NatOaPayload(id_type, packed, variant.nat_oa_type)


def nat_oa_address(payload):
    """NatOaPayload -> address text; raises MalformedMessage on a wrong type or length."""
    expected = {C.ID_IPV4_ADDR: 4, C.ID_IPV6_ADDR: 16}.get(payload.id_type)
    if expected is None or len(payload.data) != expected:
        raise MalformedMessage("NAT-OA with ID type %d and %d address bytes"
                               % (payload.id_type, len(payload.data)), C.INVALID_ID_INFORMATION)
    return format_address(payload.data)


def format_address(packed):
    """4 or 16 bytes -> text (IPv6 without zero compression beyond the longest run)."""
    if len(packed) == 4:
        return ".".join(str(b) for b in packed)
    words = [(packed[i] << 8) | packed[i + 1] for i in range(0, 16, 2)]
    best_start, best_len, start = -1, 0, None
    for index in range(9):
        if index < 8 and words[index] == 0:
            if start is None:
                start = index
        elif start is not None:
            if index - start > best_len and index - start > 1:
                best_start, best_len = start, index - start
            start = None
    text = [("%x" % w) for w in words]
    if best_start < 0:
        return ":".join(text)
    return ":".join(text[:best_start]) + "::" + ":".join(text[best_start + best_len:])


# --- one IKE SA's NAT-T negotiation ---------------------------------------------------------------

class NattSession:
    """What one IKE SA knows about NAT-T, in the order the exchange learns it (RFC 3947 §3-§5):

      message 1 (I)  -> vendor_payloads(initiator=True): every variant's VID
      message 1/2    <- note_vendor_ids(payloads): the best variant both sides speak, or none
      message 2 (R)  -> vendor_payloads(initiator=False): only the chosen variant's VID
      MM 3/4, AM 1-3 -> nat_d_payloads(hash_fn, ...) / process_nat_d(hash_fn, ...)
      after MM 4     -> float_ports: from MM 5 (and for every later exchange and ESP) both sides use
                        port 4500 with the non-ESP marker; the responder follows where MM 5 arrived
      quick mode     -> encapsulation("tunnel"): the Encapsulation Mode attribute value;
                        encap_ports(local, remote): ChildSa.encap for the kernel (ESP in UDP)
      while up       -> send_keepalives: we are behind a NAT, send KEEPALIVE every
                        KEEPALIVE_INTERVAL_S to keep the mapping open
    hash_fn is the negotiated hash (known after the SA is chosen), bytes -> bytes.
    """
    __slots__ = ("enabled", "variant", "detection")

    def __init__(self, enabled=True):
        self.enabled = enabled          # Peer.nat_t
        self.variant = None             # NattVariant both sides speak, once known
        self.detection = None           # NatDetection, once NAT-D arrived

    def vendor_payloads(self, initiator):
        if not self.enabled:
            return []
        if initiator:
            return [VendorPayload(vid) for vid in vendor_ids()]
        if self.variant is None:
            return []
        return [VendorPayload(self.variant.vid)]

    def note_vendor_ids(self, payloads):
        """Remember the best common variant from the peer's VendorPayloads (or raw VIDs)."""
        if self.enabled:
            variant = choose_variant(payloads)
            if variant is not None:
                self.variant = variant
        return self.variant

    def nat_d_payloads(self, hash_fn, icookie, rcookie, local, remote):
        """The NAT-D payloads to add (none when NAT-T was not agreed). local/remote as the
        datagram will travel: (our ip, port), (the peer's ip, port)."""
        if self.variant is None:
            return []
        return nat_d_payloads(self.variant, hash_fn, icookie, rcookie, local, remote)

    def process_nat_d(self, hash_fn, icookie, rcookie, payloads, local, remote):
        """Judge the NAT-D payloads of a received message (all payloads may be passed; only
        NatDPayloads count). local/remote as the datagram arrived. Returns the NatDetection."""
        if self.variant is None:
            return None
        received = [p for p in payloads if isinstance(p, NatDPayload)]
        self.detection = detect(hash_fn, icookie, rcookie, received, local, remote)
        return self.detection

    @property
    def status(self):
        """The page's nat_t: "none", "near end" or "far end"."""
        return "none" if self.detection is None else self.detection.status

    @property
    def float_ports(self):
        """Move IKE to port 4500 (RFC 3947 §4: when a NAT is between the peers)."""
        return self.detection is not None and self.detection.nat

    @property
    def send_keepalives(self):
        return self.detection is not None and self.detection.us_behind_nat

    def encapsulation(self, mode="tunnel"):
        """Quick mode's Encapsulation Mode value: UDP-encapsulated (in the variant's numbering)
        when a NAT was found, the plain RFC 2407 value otherwise."""
        if self.float_ports:
            return self.variant.encapsulation(mode)
        return C.ENCAP_TRANSPORT if mode == "transport" else C.ENCAP_TUNNEL

    def encap_ports(self, local, remote):
        """ChildSa.encap: (source port, destination port) of ESP-in-UDP for an SA sent from local
        to remote (the ports IKE floated to), or None without a NAT."""
        if not self.float_ports:
            return None
        return (local[1], remote[1])


# --- port 4500 framing (RFC 3948 §2) ----------------------------------------------------------

def add_non_esp_marker(ike_datagram):
    """IKE bytes -> what is sent from/to port 4500."""
    return NON_ESP_MARKER + bytes(ike_datagram)


def is_keepalive(datagram):
    return bytes(datagram) == KEEPALIVE


def classify_4500(datagram):
    """What arrived on port 4500: "keepalive", "ike" (after the marker), "esp" (a non-zero SPI:
    the kernel's job, not ours) or "invalid" (too short to be any of them)."""
    data = bytes(datagram)
    if data == KEEPALIVE:
        return "keepalive"
    if len(data) < 4:
        return "invalid"
    if data[:4] == NON_ESP_MARKER:
        return "ike"
    if len(data) < 8:                  # an ESP header is SPI + sequence number
        return "invalid"
    return "esp"


def strip_non_esp_marker(datagram):
    """Port 4500 datagram -> the IKE bytes after the marker; MalformedMessage if not IKE."""
    data = bytes(datagram)
    kind = classify_4500(data)
    if kind != "ike":
        raise MalformedMessage("port 4500 datagram of %d bytes is %s, not IKE behind a non-ESP marker"
                               % (len(data), "a NAT keepalive" if kind == "keepalive" else
                                  "ESP" if kind == "esp" else "too short"))
    return data[4:]
