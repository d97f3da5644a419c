"""Every IKEv1 payload of ISAKMP (RFC 2408 §3), each described once as a list of fields under its
RFC diagram (portable: MicroPython subset, no I/O).

codec.py's one generic decoder and one generic encoder walk these layouts (and re-exports every
class here: callers write codec.SaPayload); this module only declares them.
"""

from . import consts as C


# --- Field kinds of the declarative layouts ---------------------------------------------------
# A layout is a tuple of (kind, name, arg[, check]). `name` is the object attribute for value fields
# and a label for the others; `check` = (allowed values, notify) rejects other values on decode.
U8 = "u8"               # 1-byte unsigned integer
U16 = "u16"             # 2-byte unsigned integer, network order
U32 = "u32"             # 4-byte unsigned integer, network order
ZERO = "zero"           # RESERVED, arg bytes, zero on the wire
SIZE8 = "size8"         # 1 byte: length of the bytes attribute named by arg (an SPI)
SIZED = "sized"         # bytes whose length an earlier SIZE8 gave
ELEM_SIZE8 = "esize8"   # 1 byte: length of each item of the list attribute named by arg
COUNT8 = "count8"       # 1 byte: number of items of the list attribute named by arg
COUNT16 = "count16"     # 2 bytes: same
SPI_LIST = "spis"       # COUNT16 items of ELEM_SIZE8 bytes each, exactly filling the rest
CHAIN = "chain"         # nested generic-header structures (proposals, transforms); arg = _Chain
ATTRIBUTES = "attrs"    # data attributes (RFC 2408 §3.3) filling the rest
REST = "rest"           # the rest of the body as bytes; arg = (min, max) length or None

_FIXED_SIZE = {U8: 1, U16: 2, U32: 4, SIZE8: 1, ELEM_SIZE8: 1, COUNT8: 1, COUNT16: 2}


def _fixed_size(layout):
    """Bytes the fixed part of a layout needs (the minimum body length)."""
    total = 0
    for field in layout:
        kind = field[0]
        if kind == ZERO:
            total += field[2]
        elif kind == REST and field[2] is not None:
            total += field[2][0]
        else:
            total += _FIXED_SIZE.get(kind, 0)
    return total


def hex_text(data):
    return "".join("%02x" % b for b in data)


def _show(value):
    if isinstance(value, (bytes, bytearray)):
        if len(value) > 24:
            return "h'%s...'(%d bytes)" % (hex_text(value[:16]), len(value))
        return "h'%s'" % hex_text(value)
    return repr(value)


class Struct:
    """Base of everything with a layout: equality and repr over FIELDS (the __init__ arguments)."""
    FIELDS = ()
    LAYOUT = ()
    MIN_LENGTH = C.GENERIC_HEADER_LENGTH
    KEEPS_WIRE_TYPE = False         # NAT-D/NAT-OA remember which number (RFC or draft) they came as

    def __eq__(self, other):
        if type(self) is not type(other):
            return False
        for field in self.FIELDS:
            if getattr(self, field) != getattr(other, field):
                return False
        return True

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        parts = ["%s=%s" % (f, _show(getattr(self, f))) for f in self.FIELDS]
        return "%s(%s)" % (type(self).__name__, ", ".join(parts))


class Payload(Struct):
    """A top-level payload; TYPE is its RFC payload number."""
    TYPE = C.PT_NONE

    def wire_type(self):
        """The payload number to send (differs from TYPE only for the NAT-T draft numbers)."""
        return self.TYPE


# --- Data attributes (RFC 2408 §3.3) ---------------------------------------------------------
#                      1                   2                   3
#  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# !A!       Attribute Type        !    AF=0  Attribute Length     !
# !F!                             !    AF=1  Attribute Value      !
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# .                   AF=0  Attribute Value                       .
# .                   AF=1  Not Transmitted                       .
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
class Attribute(Struct):
    """One SA attribute. value: int (sent basic/TV when it fits 16 bits, else variable/TLV) or
    bytes (always TLV). Decoding gives int for TV and bytes for TLV; use as_int() for numbers
    that a peer may send either way (life durations). Equality compares numbers by value, so
    Attribute(12, 86400) == Attribute(12, b"\\x00\\x01\\x51\\x80")."""
    FIELDS = ("type", "value")

    def __init__(self, type, value):
        self.type = type
        self.value = value

    def as_int(self):
        if isinstance(self.value, int):
            return self.value
        return int.from_bytes(self.value, "big")

    def is_basic(self):
        return isinstance(self.value, int) and self.value <= 0xFFFF

    def __iter__(self):
        # ikecore.protocol.proposals speaks [(type, value)]: `for t, v in transform.attributes` works.
        return iter((self.type, self.value))

    def __eq__(self, other):
        if not isinstance(other, Attribute) or self.type != other.type:
            return False
        if isinstance(self.value, int) == isinstance(other.value, int):
            return self.value == other.value
        return self.as_int() == other.as_int()


# --- Transform payload (RFC 2408 §3.6) -------------------------------------------------------
# ! Next Payload  !   RESERVED    !         Payload Length        !
# +---------------+---------------+---------------+---------------+
# !  Transform #  !  Transform-Id !           RESERVED2           !
# +---------------+---------------+---------------+---------------+
# ~                        SA Attributes                          ~
class Transform(Struct):
    FIELDS = ("number", "transform_id", "attributes")
    LAYOUT = (
        (U8, "number", None),
        (U8, "transform_id", None),
        (ZERO, "RESERVED2", 2),
        (ATTRIBUTES, "attributes", None),
    )

    def __init__(self, number, transform_id, attributes=None):
        """attributes: Attribute objects or (type, value) pairs (ikecore.protocol.proposals' form)."""
        self.number = number
        self.transform_id = transform_id
        self.attributes = [a if isinstance(a, Attribute) else Attribute(a[0], a[1])
                           for a in (attributes or ())]

    def attribute_pairs(self):
        """The attributes as [(type, value)], the form ikecore.protocol.proposals matches offers in."""
        return [(a.type, a.value) for a in self.attributes]

    def attribute(self, attr_type):
        """The first attribute of that type, or None."""
        for attr in self.attributes:
            if attr.type == attr_type:
                return attr
        return None


class _Chain:
    """How a nested chain is spelled: its member class, the next-payload number linking its items,
    the word used in error messages."""

    def __init__(self, cls, link_type, word):
        self.cls = cls
        self.link_type = link_type
        self.word = word
        self.lookup = {link_type: cls}


_TRANSFORMS = _Chain(Transform, C.PT_TRANSFORM, "transform")


# --- Proposal payload (RFC 2408 §3.5) --------------------------------------------------------
# ! Next Payload  !   RESERVED    !         Payload Length        !
# +---------------+---------------+---------------+---------------+
# !  Proposal #   !  Protocol-Id  !    SPI Size   !# of Transforms!
# +---------------+---------------+---------------+---------------+
# !                        SPI (variable)                         !
# +---------------+---------------+---------------+---------------+
# ~                  Transform payloads                           ~
class Proposal(Struct):
    """Proposals sharing a number form one AND group (e.g. ESP and AH of one SA bundle)."""
    FIELDS = ("number", "protocol", "spi", "transforms")
    LAYOUT = (
        (U8, "number", None),
        (U8, "protocol", None),
        (SIZE8, "SPI size", "spi"),
        (COUNT8, "# of transforms", "transforms"),
        (SIZED, "spi", None),
        (CHAIN, "transforms", _TRANSFORMS),
    )

    def __init__(self, number, protocol, spi=b"", transforms=None):
        self.number = number
        self.protocol = protocol
        self.spi = bytes(spi)
        self.transforms = list(transforms or ())


_PROPOSALS = _Chain(Proposal, C.PT_PROPOSAL, "proposal")


# --- Security Association payload (RFC 2408 §3.4, situation of RFC 2407 §4.6.1) ---------------
# ! Next Payload  !   RESERVED    !         Payload Length        !
# +---------------+---------------+---------------+---------------+
# !              Domain of Interpretation  (DOI)                  !
# +---------------+---------------+---------------+---------------+
# ~                           Situation                           ~
# +---------------+---------------+---------------+---------------+
# ~                  Proposal payloads                            ~
# Only SIT_IDENTITY_ONLY (a 4-byte situation) exists for us: the secrecy/integrity situations carry
# labelled-domain fields nobody deploys.
class SaPayload(Payload):
    TYPE = C.PT_SA
    FIELDS = ("proposals", "doi", "situation")
    LAYOUT = (
        (U32, "doi", None, ((C.DOI_IPSEC,), C.DOI_NOT_SUPPORTED)),
        (U32, "situation", None, ((C.SIT_IDENTITY_ONLY,), C.SITUATION_NOT_SUPPORTED)),
        (CHAIN, "proposals", _PROPOSALS),
    )

    def __init__(self, proposals, doi=C.DOI_IPSEC, situation=C.SIT_IDENTITY_ONLY):
        self.proposals = list(proposals)
        self.doi = doi
        self.situation = situation


# --- Payloads that are a generic header plus opaque data -------------------------------------
# ! Next Payload  !   RESERVED    !         Payload Length        !
# +---------------+---------------+---------------+---------------+
# ~            Key Exchange / Hash / Signature / Nonce /          ~
# ~            Vendor ID / NAT-D data                             ~
class _DataPayload(Payload):
    FIELDS = ("data",)
    LAYOUT = ((REST, "data", None),)

    def __init__(self, data):
        self.data = bytes(data)


class KePayload(_DataPayload):
    """RFC 2408 §3.7: the Diffie-Hellman public value."""
    TYPE = C.PT_KE
    LAYOUT = ((REST, "data", (1, None)),)


class HashPayload(_DataPayload):
    """RFC 2408 §3.11."""
    TYPE = C.PT_HASH
    LAYOUT = ((REST, "data", (1, None)),)


class SigPayload(_DataPayload):
    """RFC 2408 §3.12."""
    TYPE = C.PT_SIG
    LAYOUT = ((REST, "data", (1, None)),)


class NoncePayload(_DataPayload):
    """RFC 2408 §3.13; RFC 2409 §5: a nonce is 8 to 256 bytes."""
    TYPE = C.PT_NONCE
    LAYOUT = ((REST, "data", (8, 256)),)


class VendorPayload(_DataPayload):
    """RFC 2408 §3.16; ikecore.protocol.natt and ikecore.protocol.vendor know the values."""
    TYPE = C.PT_VENDOR


class NatDPayload(_DataPayload):
    """RFC 3947 §3.2: HASH(CKY-I | CKY-R | IP | Port). payload_type is PT_NAT_D, or
    PT_NAT_D_DRAFT (130) with the draft-02/03 peers."""
    TYPE = C.PT_NAT_D
    KEEPS_WIRE_TYPE = True
    FIELDS = ("data", "payload_type")
    LAYOUT = ((REST, "data", (1, None)),)

    def __init__(self, data, payload_type=C.PT_NAT_D):
        self.data = bytes(data)
        self.payload_type = payload_type

    def wire_type(self):
        return self.payload_type


# --- Identification payload (RFC 2408 §3.8 with the IPsec DOI fields of RFC 2407 §4.6.2) -------
# ! Next Payload  !   RESERVED    !        Payload Length         !
# +---------------+---------------+---------------+---------------+
# !   ID Type     !  Protocol ID  !             Port              !
# +---------------+---------------+---------------+---------------+
# ~                     Identification Data                       ~
class IdPayload(Payload):
    TYPE = C.PT_ID
    FIELDS = ("id_type", "data", "protocol", "port")
    LAYOUT = (
        (U8, "id_type", None),
        (U8, "protocol", None),
        (U16, "port", None),
        (REST, "data", None),
    )

    def __init__(self, id_type, data, protocol=0, port=0):
        self.id_type = id_type
        self.data = bytes(data)
        self.protocol = protocol
        self.port = port


# --- Certificate and Certificate Request payloads (RFC 2408 §3.9, §3.10) -----------------------
# ! Next Payload  !   RESERVED    !         Payload Length        !
# +---------------+---------------+---------------+---------------+
# ! Cert Encoding !                                               !
# +---------------+  Certificate Data / Certificate Authority     ~
class CertPayload(Payload):
    TYPE = C.PT_CERT
    FIELDS = ("encoding", "data")
    LAYOUT = ((U8, "encoding", None), (REST, "data", None))

    def __init__(self, encoding, data):
        self.encoding = encoding
        self.data = bytes(data)


class CrPayload(CertPayload):
    """The data is a CA's DER name, or empty for "any CA"."""
    TYPE = C.PT_CR


# --- Notification payload (RFC 2408 §3.14) ----------------------------------------------------
# ! Next Payload  !   RESERVED    !         Payload Length        !
# +---------------+---------------+---------------+---------------+
# !              Domain of Interpretation  (DOI)                  !
# +---------------+---------------+---------------+---------------+
# !  Protocol-ID  !   SPI Size    !      Notify Message Type      !
# +---------------+---------------+---------------+---------------+
# ~                Security Parameter Index (SPI)                 ~
# +---------------+---------------+---------------+---------------+
# ~                       Notification Data                       ~
class NotifyPayload(Payload):
    TYPE = C.PT_NOTIFY
    FIELDS = ("notify_type", "protocol", "spi", "data", "doi")
    LAYOUT = (
        (U32, "doi", None, ((C.DOI_ISAKMP, C.DOI_IPSEC), C.DOI_NOT_SUPPORTED)),
        (U8, "protocol", None),
        (SIZE8, "SPI size", "spi"),
        (U16, "notify_type", None),
        (SIZED, "spi", None),
        (REST, "data", None),
    )

    def __init__(self, notify_type, protocol=C.PROTO_ISAKMP, spi=b"", data=b"", doi=C.DOI_IPSEC):
        self.notify_type = notify_type
        self.protocol = protocol
        self.spi = bytes(spi)
        self.data = bytes(data)
        self.doi = doi


# --- Delete payload (RFC 2408 §3.15) ----------------------------------------------------------
# ! Next Payload  !   RESERVED    !         Payload Length        !
# +---------------+---------------+---------------+---------------+
# !              Domain of Interpretation  (DOI)                  !
# +---------------+---------------+---------------+---------------+
# !  Protocol-Id  !   SPI Size    !           # of SPIs           !
# +---------------+---------------+---------------+---------------+
# ~               Security Parameter Index(es) (SPI)              ~
class DeletePayload(Payload):
    """spis: list of equally long byte strings (16-byte cookie pair for ISAKMP, 4 for ESP/AH)."""
    TYPE = C.PT_DELETE
    FIELDS = ("protocol", "spis", "doi")
    LAYOUT = (
        (U32, "doi", None, ((C.DOI_ISAKMP, C.DOI_IPSEC), C.DOI_NOT_SUPPORTED)),
        (U8, "protocol", None),
        (ELEM_SIZE8, "SPI size", "spis"),
        (COUNT16, "# of SPIs", "spis"),
        (SPI_LIST, "spis", None),
    )

    def __init__(self, protocol, spis, doi=C.DOI_IPSEC):
        self.protocol = protocol
        self.spis = [bytes(s) for s in spis]
        self.doi = doi


# --- NAT original address payload (RFC 3947 §5.2) ---------------------------------------------
# ! Next Payload  !   RESERVED    !        Payload length         !
# +---------------+---------------+---------------+---------------+
# !    ID Type    !   RESERVED    !            RESERVED           !
# +---------------+---------------+---------------+---------------+
# !           IPv4 (4 octets) or IPv6 address (16 octets)         !
class NatOaPayload(Payload):
    """payload_type is PT_NAT_OA, or PT_NAT_OA_DRAFT (131) with the draft-02/03 peers."""
    TYPE = C.PT_NAT_OA
    KEEPS_WIRE_TYPE = True
    FIELDS = ("id_type", "data", "payload_type")
    LAYOUT = (
        (U8, "id_type", None),
        (ZERO, "RESERVED", 3),
        (REST, "data", None),
    )

    def __init__(self, id_type, data, payload_type=C.PT_NAT_OA):
        self.id_type = id_type
        self.data = bytes(data)
        self.payload_type = payload_type

    def wire_type(self):
        return self.payload_type


# The payloads a chain may hold at top level, by number (proposal/transform only nest in an SA).
PAYLOAD_CLASSES = {
    C.PT_SA: SaPayload, C.PT_KE: KePayload, C.PT_ID: IdPayload, C.PT_CERT: CertPayload,
    C.PT_CR: CrPayload, C.PT_HASH: HashPayload, C.PT_SIG: SigPayload, C.PT_NONCE: NoncePayload,
    C.PT_NOTIFY: NotifyPayload, C.PT_DELETE: DeletePayload, C.PT_VENDOR: VendorPayload,
    C.PT_NAT_D: NatDPayload, C.PT_NAT_OA: NatOaPayload,
    C.PT_NAT_D_DRAFT: NatDPayload, C.PT_NAT_OA_DRAFT: NatOaPayload,
}

for _cls in (Transform, Proposal, SaPayload, KePayload, HashPayload, SigPayload, NoncePayload,
             VendorPayload, NatDPayload, IdPayload, CertPayload, CrPayload, NotifyPayload,
             DeletePayload, NatOaPayload):
    _cls.MIN_LENGTH = C.GENERIC_HEADER_LENGTH + _fixed_size(_cls.LAYOUT)
