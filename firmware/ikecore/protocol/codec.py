"""ISAKMP (RFC 2408 §3) wire format: the header, and decoding/encoding every IKEv1 payload
(portable: MicroPython subset).

Each payload is described once, as a list of fields under its RFC diagram (payloads.py); one
generic decoder and one generic encoder here walk those lists. Nothing else in the daemon
touches ISAKMP bytes.

Decoding never trusts a length: every length is checked against what encloses it (datagram ⊃
header length ⊃ payload ⊃ proposal ⊃ transform ⊃ attribute), and anything wrong raises
MalformedMessage — the only exception decoding raises — with .reason naming what is wrong and where,
and .notify, the RFC 2408 §3.14.1 notify type to answer with. Encoding our own objects raises
ValueError for values that cannot be put on the wire (a programming error, not bad input).

IKEv1 has no "critical" bit: a payload type we do not know is an error (INVALID-PAYLOAD-TYPE),
never skipped. RESERVED fields must be zero on receipt and are sent as zero.
"""

import struct

from . import consts as C
from .payloads import (  # noqa: F401 - the payload classes are codec's API (codec.SaPayload)
    ATTRIBUTES, CHAIN, COUNT8, COUNT16, ELEM_SIZE8, PAYLOAD_CLASSES, REST, SIZE8, SIZED, SPI_LIST,
    U8, U16, U32, ZERO, Attribute, CertPayload, CrPayload, DeletePayload, HashPayload,
    IdPayload, KePayload, NatDPayload, NatOaPayload, NoncePayload, NotifyPayload, Payload,
    Proposal, SaPayload, SigPayload, Struct, Transform, VendorPayload, hex_text)


class MalformedMessage(Exception):
    """A datagram (or a decrypted payload chain) that is not valid ISAKMP.

    reason: text naming the problem and where ("payload 3 (NONCE) length 2 shorter than ...").
    notify: the notify message type to answer with (consts.PAYLOAD_MALFORMED, ...).
    header: the decoded Header when the header itself was fine (so a notification can be
            addressed to the cookies), else None.
    """

    def __init__(self, reason, notify=C.PAYLOAD_MALFORMED, header=None):
        super().__init__(reason)        # (MicroPython has no Exception.__init__ to call directly)
        self.reason = reason
        self.notify = notify
        self.header = header

    def __str__(self):
        return "%s (%s)" % (self.reason, C.name(C.NOTIFY_NAMES, self.notify))


# --- ISAKMP header (RFC 2408 §3.1) ------------------------------------------------------------
#                      1                   2                   3
#  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# !                          Initiator                            !
# !                            Cookie                             !
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# !                          Responder                            !
# !                            Cookie                             !
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# !  Next Payload ! MjVer ! MnVer ! Exchange Type !     Flags     !
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# !                          Message ID                           !
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
# !                            Length                             !
# +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
_HEADER_FORMAT = ">8s8sBBBBII"


class Header(Struct):
    FIELDS = ("icookie", "rcookie", "next_payload", "version", "exchange", "flags", "message_id",
              "length")

    def __init__(self, icookie, rcookie, next_payload, version, exchange, flags, message_id,
                 length):
        self.icookie = icookie
        self.rcookie = rcookie
        self.next_payload = next_payload
        self.version = version
        self.exchange = exchange
        self.flags = flags
        self.message_id = message_id
        self.length = length

    @property
    def major(self):
        return self.version >> 4

    @property
    def minor(self):
        return self.version & 0x0F


class Message(Struct):
    """One ISAKMP message. Decoded cleartext: payloads filled, body None. Decoded with
    FLAG_ENCRYPTION: payloads [], body = the ciphertext, first_payload = the header's next
    payload (decrypt, then decode_payloads(first_payload, plaintext))."""
    FIELDS = ("exchange", "icookie", "rcookie", "message_id", "flags", "payloads")

    def __init__(self, exchange, icookie, rcookie, message_id=0, flags=0, payloads=None):
        self.exchange = exchange
        self.icookie = bytes(icookie)
        self.rcookie = bytes(rcookie)
        self.message_id = message_id
        self.flags = flags
        self.payloads = list(payloads or ())
        self.version = C.ISAKMP_VERSION
        self.body = None
        self.first_payload = C.PT_NONE
        self.length = None

    def find(self, cls):
        """The first payload of that class, or None."""
        for payload in self.payloads:
            if isinstance(payload, cls):
                return payload
        return None

    def find_all(self, cls):
        return [p for p in self.payloads if isinstance(p, cls)]


# ============================== decoding ======================================================

def _fail(reason, notify=C.PAYLOAD_MALFORMED):
    raise MalformedMessage(reason, notify)


def _u16(data, pos):
    return (data[pos] << 8) | data[pos + 1]


def _u32(data, pos):
    return (data[pos] << 24) | (data[pos + 1] << 16) | (data[pos + 2] << 8) | data[pos + 3]


def _where(loc):
    """Text naming a location for error messages, built only when something is wrong.
    loc = (parent loc or None, word, index, payload type or None)."""
    parent, word, index, ptype = loc
    text = "%s %d" % (word, index)
    if word == "payload" and ptype is not None:
        text += " (%s)" % C.name(C.PAYLOAD_NAMES, ptype)
    if parent is not None:
        text = _where(parent) + " " + text
    return text


def _decode_attributes(body, pos, loc):
    attrs = []
    end = len(body)
    index = 0
    while pos < end:
        index += 1
        if end - pos < 4:
            _fail("%s attribute %d truncated: %d bytes left, an attribute needs 4"
                  % (_where(loc), index, end - pos))
        word = _u16(body, pos)
        if word & 0x8000:                       # AF=1: type/value (TV), value in the length field
            attrs.append(Attribute(word & 0x7FFF, _u16(body, pos + 2)))
            pos += 4
            continue
        length = _u16(body, pos + 2)
        pos += 4
        if length > end - pos:
            _fail("%s attribute %d (type %d) length %d overruns its transform by %d bytes"
                  % (_where(loc), index, word, length, length - (end - pos)))
        attrs.append(Attribute(word, body[pos:pos + length]))
        pos += length
    return attrs


def _decode_struct(cls, body, loc):
    """Walk cls.LAYOUT over body (the bytes after the generic header); return the object.
    The caller has checked len(body) against the layout's fixed part (cls.MIN_LENGTH)."""
    values = {}
    sizes = {}
    counts = {}
    pos = 0
    end = len(body)
    for field in cls.LAYOUT:
        kind = field[0]
        name = field[1]
        if kind == U8:
            value = body[pos]
            pos += 1
        elif kind == U16:
            value = _u16(body, pos)
            pos += 2
        elif kind == U32:
            value = _u32(body, pos)
            pos += 4
        elif kind == ZERO:
            count = field[2]
            for i in range(pos, pos + count):
                if body[i]:
                    _fail("%s %s field is not zero (%s)"
                          % (_where(loc), name, hex_text(body[pos:pos + count])))
            pos += count
            continue
        elif kind == SIZE8 or kind == ELEM_SIZE8:
            sizes[field[2]] = body[pos]
            pos += 1
            continue
        elif kind == COUNT8:
            counts[field[2]] = body[pos]
            pos += 1
            continue
        elif kind == COUNT16:
            counts[field[2]] = _u16(body, pos)
            pos += 2
            continue
        elif kind == SIZED:
            size = sizes[name]
            if size > end - pos:
                _fail("%s %s size %d exceeds the %d bytes left" % (_where(loc), name, size, end - pos))
            value = body[pos:pos + size]
            pos += size
        elif kind == SPI_LIST:
            size = sizes[name]
            count = counts[name]
            if size == 0 or count == 0:
                _fail("%s has %d SPIs of %d bytes: nothing to name" % (_where(loc), count, size),
                      C.INVALID_SPI)
            if size * count != end - pos:
                _fail("%s %d SPIs of %d bytes need %d bytes, %d are left"
                      % (_where(loc), count, size, size * count, end - pos))
            value = [body[i:i + size] for i in range(pos, end, size)]
            pos = end
        elif kind == CHAIN:
            chain = field[2]
            value = _decode_nested(chain, body[pos:], loc)
            pos = end
            expected = counts.get(name)
            if expected is not None and expected != len(value):
                _fail("%s announces %d %ss but holds %d"
                      % (_where(loc), expected, chain.word, len(value)), C.BAD_PROPOSAL_SYNTAX)
        elif kind == ATTRIBUTES:
            value = _decode_attributes(body, pos, loc)
            pos = end
        else:                                   # REST
            limits = field[2]
            value = body[pos:]
            pos = end
            if limits is not None:
                low, high = limits
                if len(value) < low or (high is not None and len(value) > high):
                    _fail("%s %s of %d bytes outside %d..%s"
                          % (_where(loc), name, len(value), low, "any" if high is None else high))
        if len(field) > 3:
            allowed, notify = field[3]
            if value not in allowed:
                _fail("%s %s %d not supported (expected %s)"
                      % (_where(loc), name, value, " or ".join(str(v) for v in allowed)), notify)
        values[name] = value
    return cls(**values)


def _walk(data, first_type, lookup, parent, word, bad_type, padding_ok):
    """Walk a chain of generic-header structures (RFC 2408 §3.2) starting with first_type.

    lookup maps a type number to its class; parent/word name the items in messages ("payload 2",
    "payload 1 (SA) proposal 3"); bad_type(index, type) raises for a type that may not appear
    here. Returns the objects; bytes after the last item are an error unless padding_ok
    (decrypted payloads are followed by padding).
    """
    items = []
    pos = 0
    end = len(data)
    ptype = first_type
    index = 0
    while ptype != C.PT_NONE:
        index += 1
        cls = lookup.get(ptype)
        if cls is None:
            bad_type(index, ptype)
        loc = (parent, word, index, ptype)
        left = end - pos
        if left < C.GENERIC_HEADER_LENGTH:
            if left == 0:
                _fail("%s missing: the data ends after %d bytes" % (_where(loc), pos))
            _fail("%s truncated: %d bytes left, a payload header needs 4" % (_where(loc), left))
        next_type = data[pos]
        if data[pos + 1]:
            _fail("%s RESERVED byte is %d, not zero" % (_where(loc), data[pos + 1]))
        length = (data[pos + 2] << 8) | data[pos + 3]
        if length < C.GENERIC_HEADER_LENGTH:
            _fail("%s length %d shorter than its 4-byte header" % (_where(loc), length))
        if length > left:
            _fail("%s length %d runs %d bytes past the end of the data"
                  % (_where(loc), length, length - left))
        if length < cls.MIN_LENGTH:
            _fail("%s length %d shorter than its %d-byte minimum"
                  % (_where(loc), length, cls.MIN_LENGTH))
        item = _decode_struct(cls, data[pos + 4:pos + length], loc)
        if cls.KEEPS_WIRE_TYPE:
            item.payload_type = ptype
        items.append(item)
        pos += length
        ptype = next_type
    if pos != end and not padding_ok:
        after = _where((parent, word, index, None)) if index else "the header"
        _fail("%d bytes of trailing garbage after %s" % (end - pos, after))
    return items


def _decode_nested(chain, data, parent):
    """Proposals inside an SA, transforms inside a proposal: the first item is implied by the
    parent, each links to the next with chain.link_type, the last with NONE, and they fill it."""
    link = chain.link_type

    def bad_type(index, ptype):
        _fail("%s %s %d is linked with next payload %d, expected %d (%s) or 0"
              % (_where(parent), chain.word, index - 1, ptype, link, C.name(C.PAYLOAD_NAMES, link)),
              C.BAD_PROPOSAL_SYNTAX)

    if not data:
        _fail("%s holds no %s" % (_where(parent), chain.word), C.BAD_PROPOSAL_SYNTAX)
    return _walk(data, link, chain.lookup, parent, chain.word, bad_type, False)


def _top_bad_type(index, ptype):
    if ptype in (C.PT_PROPOSAL, C.PT_TRANSFORM):
        _fail("payload %d type %d (%s) only exists inside an SA payload"
              % (index, ptype, C.PAYLOAD_NAMES[ptype]), C.INVALID_PAYLOAD_TYPE)
    _fail("payload %d has unknown type %d" % (index, ptype), C.INVALID_PAYLOAD_TYPE)


def decode_payloads(first_type, data, allow_padding=True):
    """Decode a chain of payloads starting with first_type. After decryption the chain is followed
    by padding (RFC 2408 §3.1), which is ignored; pass allow_padding=False to reject it."""
    return _walk(bytes(data), first_type, PAYLOAD_CLASSES, None, "payload", _top_bad_type,
                 allow_padding)


def payload_spans(first_type, data):
    """[(type, start, end)] of each payload of a chain in data (generic header included) and the
    offset where the chain ends (after it: encryption padding). RFC 2409's hashes are computed over
    payload bytes as received (SAi_b, IDii_b, "the message after HASH(1)"); these are the offsets.
    Only the generic headers are checked here: call decode_payloads for the contents."""
    data = bytes(data)
    spans = []
    pos = 0
    ptype = first_type
    while ptype != C.PT_NONE:
        where = _where((None, "payload", len(spans) + 1, ptype))
        if len(data) - pos < C.GENERIC_HEADER_LENGTH:
            _fail("%s header runs past the data (%d bytes left)" % (where, len(data) - pos))
        length = _u16(data, pos + 2)
        if length < C.GENERIC_HEADER_LENGTH or length > len(data) - pos:
            _fail("%s length %d does not fit the %d bytes left" % (where, length, len(data) - pos))
        spans.append((ptype, pos, pos + length))
        ptype = data[pos]
        pos += length
    return spans, pos


def decode_header(data):
    """Decode and check the 28-byte header of a datagram (also its length against the datagram)."""
    data = bytes(data)
    if len(data) < C.HEADER_LENGTH:
        _fail("datagram of %d bytes shorter than the %d-byte ISAKMP header"
              % (len(data), C.HEADER_LENGTH))
    icookie, rcookie, next_payload, version, exchange, flags, message_id, length = \
        struct.unpack(_HEADER_FORMAT, data[:C.HEADER_LENGTH])
    header = Header(icookie, rcookie, next_payload, version, exchange, flags, message_id, length)
    if header.major != C.ISAKMP_MAJOR:
        _fail("version %d.%d is not ISAKMP 1.x%s" % (header.major, header.minor,
              " (an IKEv2 message)" if header.major == 2 else ""), C.INVALID_MAJOR_VERSION)
    if header.minor != C.ISAKMP_MINOR:
        _fail("minor version %d, only 1.0 exists" % header.minor, C.INVALID_MINOR_VERSION)
    if icookie == bytes(8):
        _fail("initiator cookie is zero", C.INVALID_COOKIE)
    try:
        if exchange not in C.EXCHANGE_NAMES:
            _fail("unknown exchange type %d" % exchange, C.INVALID_EXCHANGE_TYPE)
        if flags & ~C.FLAGS_KNOWN:
            _fail("unknown flag bits 0x%02x" % (flags & ~C.FLAGS_KNOWN), C.INVALID_FLAGS)
        if length < C.HEADER_LENGTH:
            _fail("header length %d shorter than the header itself" % length)
        if length > len(data):
            _fail("header length %d exceeds the %d-byte datagram" % (length, len(data)))
        if length < len(data):
            _fail("%d bytes of trailing garbage after the %d bytes the header announces"
                  % (len(data) - length, length))
    except MalformedMessage as err:
        err.header = header
        raise
    return header


def decode_message(data):
    """Decode a whole datagram (IKE bytes, the non-ESP marker already stripped)."""
    data = bytes(data)
    header = decode_header(data)
    message = Message(header.exchange, header.icookie, header.rcookie, header.message_id,
                      header.flags)
    message.version = header.version
    message.length = header.length
    message.first_payload = header.next_payload
    body = data[C.HEADER_LENGTH:header.length]
    try:
        if header.flags & C.FLAG_ENCRYPTION:
            if header.next_payload not in PAYLOAD_CLASSES:
                _top_bad_type(1, header.next_payload)
            if not body:
                _fail("encrypted message without ciphertext")
            message.body = body
        else:
            message.payloads = decode_payloads(header.next_payload, body, allow_padding=False)
    except MalformedMessage as err:
        err.header = header
        raise
    return message


# ============================== encoding ======================================================

def _check_uint(value, bits, owner, name):
    """value if it is an int that fits `bits` unsigned bits; the error names owner.name."""
    if not isinstance(value, int) or value < 0 or value >> bits:
        if not isinstance(owner, str):
            owner = type(owner).__name__
        raise ValueError("%s.%s: %r does not fit in %d unsigned bits" % (owner, name, value, bits))
    return value


def _uint_bytes(value):
    """A TLV attribute's number: 4 bytes up to 2**32, else as many as it needs."""
    size = 4
    while value >> (8 * size):
        size += 1
    return value.to_bytes(size, "big")


def _encode_attribute(attr):
    _check_uint(attr.type, 15, attr, "type")
    value = attr.value
    if isinstance(value, int):
        if 0 <= value <= 0xFFFF:
            return struct.pack(">HH", 0x8000 | attr.type, value)
        value = _uint_bytes(_check_uint(value, 512, attr, "value"))
    value = bytes(value)
    _check_uint(len(value), 16, attr, "value length")
    return struct.pack(">HH", attr.type, len(value)) + value


def _encode_chain(items, link_type):
    out = []
    last = len(items) - 1
    for index, item in enumerate(items):
        next_type = C.PT_NONE if index == last else link_type
        out.append(_with_header(next_type, _encode_struct(item), item))
    return b"".join(out)


def _with_header(next_type, body, owner):
    length = C.GENERIC_HEADER_LENGTH + len(body)
    if length > 0xFFFF:
        raise ValueError("%s: %d bytes do not fit a payload length" % (type(owner).__name__, length))
    return struct.pack(">BBH", next_type, 0, length) + body


def _encode_struct(obj):
    """Walk obj.LAYOUT and return the body bytes (after the generic header)."""
    out = []
    for field in obj.LAYOUT:
        kind = field[0]
        name = field[1]
        if kind == U8:
            out.append(bytes((_check_uint(getattr(obj, name), 8, obj, name),)))
        elif kind == U16:
            out.append(struct.pack(">H", _check_uint(getattr(obj, name), 16, obj, name)))
        elif kind == U32:
            out.append(struct.pack(">I", _check_uint(getattr(obj, name), 32, obj, name)))
        elif kind == ZERO:
            out.append(bytes(field[2]))
        elif kind == SIZE8:
            out.append(bytes((_check_uint(len(getattr(obj, field[2])), 8, obj, name),)))
        elif kind == ELEM_SIZE8:
            items = getattr(obj, field[2])
            size = len(items[0]) if items else 0
            for item in items:
                if len(item) != size:
                    raise ValueError("%s.%s: SPIs of different sizes" % (type(obj).__name__, field[2]))
            out.append(bytes((_check_uint(size, 8, obj, name),)))
        elif kind == COUNT8:
            out.append(bytes((_check_uint(len(getattr(obj, field[2])), 8, obj, name),)))
        elif kind == COUNT16:
            out.append(struct.pack(">H", _check_uint(len(getattr(obj, field[2])), 16, obj, name)))
        elif kind == SIZED or kind == REST:
            out.append(bytes(getattr(obj, name)))
        elif kind == SPI_LIST:
            out.extend(bytes(s) for s in getattr(obj, name))
        elif kind == CHAIN:
            out.append(_encode_chain(getattr(obj, name), field[2].link_type))
        elif kind == ATTRIBUTES:
            for attr in getattr(obj, name):
                out.append(_encode_attribute(attr))
    return b"".join(out)


def encode_payload(payload, next_type=C.PT_NONE):
    """One payload with its generic header."""
    return _with_header(next_type, _encode_struct(payload), payload)


def encode_payloads(payloads):
    """Encode a chain; returns (type of the first payload, bytes) — the core encrypts the bytes."""
    out = []
    for index, payload in enumerate(payloads):
        if index + 1 < len(payloads):
            next_type = payloads[index + 1].wire_type()
        else:
            next_type = C.PT_NONE
        out.append(encode_payload(payload, next_type))
    first = payloads[0].wire_type() if payloads else C.PT_NONE
    return first, b"".join(out)


def encode_message(message, body=None, first_payload=None):
    """The datagram for message. With body (already encrypted payload bytes) the payloads are
    not encoded: first_payload goes in the header and FLAG_ENCRYPTION is set."""
    flags = message.flags
    if body is None:
        first_payload, body = encode_payloads(message.payloads)
    else:
        flags |= C.FLAG_ENCRYPTION
        if first_payload is None:
            raise ValueError("encode_message: an encrypted body needs its first payload type")
    if len(message.icookie) != 8 or len(message.rcookie) != 8:
        raise ValueError("encode_message: cookies must be 8 bytes")
    length = C.HEADER_LENGTH + len(body)
    header = struct.pack(_HEADER_FORMAT, message.icookie, message.rcookie,
                         _check_uint(first_payload, 8, message, "first_payload"),
                         message.version, _check_uint(message.exchange, 8, message, "exchange"),
                         _check_uint(flags, 8, message, "flags"),
                         _check_uint(message.message_id, 32, message, "message_id"),
                         _check_uint(length, 32, message, "length"))
    return header + bytes(body)
