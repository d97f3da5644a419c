"""IKEv1 fragmentation, the Cisco extension strongSwan and Libreswan implement (portable:
MicroPython subset, no I/O, no clock).

An RSA phase 1 message carries a certificate (a 4096-bit chain makes main mode message 5 about
1.9 kB): more than one datagram on a 576-byte path, and paths that drop IP fragments (many
carrier NATs) lose it. With this extension the message goes as several datagrams, each an
ISAKMP header copied from the message (next payload 132, the encryption flag cleared, its own
length) followed by one fragment payload:

    next payload (0) | reserved (0) | payload length (2 bytes)
    fragment ID (2)  | fragment number (1, counting from 1) | flags (1; 0x01 = last fragment)
    data: the next piece of the whole message, its own ISAKMP header included

The receiver puts the pieces back in number order and handles the whole message as if it had
come in one datagram. Support is announced with the "FRAGMENTATION" vendor ID.

Modes (Peer.fragmentation, strongSwan's `fragmentation` with its default "yes"):
    yes     announce support; our messages over the size bound go as fragments once the peer
            announced support too
    accept  announce support; never fragment ours
    force   announce support; fragment ours over the bound even if the peer did not announce it
    no      do not announce; never fragment ours
Fragments a peer sends are reassembled in every mode (strongSwan does the same): the bounds
below, not the setting, protect the memory.

Peer.fragment_size is the largest IP datagram we send, IP and UDP headers included (as
strongSwan's charon.fragment_size counts it). Its default, 576 bytes, is what every IPv4 host
must accept (RFC 791) and Cisco's and Libreswan's choice, so a default peer works across any
path; a larger one sends fewer fragments.
"""

from . import codec
from . import consts as C
from . import vendor

IPV4_UDP_OVERHEAD = 20 + 8
NON_ESP_MARKER_SIZE = 4              # on UDP 4500 every IKE datagram starts with it (RFC 3948)
PAYLOAD_HEADER = 8                   # generic header (4) + fragment ID (2) + number (1) + flags (1)
FLAG_LAST = 0x01
# What we announce: MD5("FRAGMENTATION") and the capability word strongSwan sends with it.
VID = vendor.VID_FRAGMENTATION + b"\x80\x00\x00\x00"

# Bounds on reassembly: per message, and over everything being reassembled at once. Past them a
# fragment is dropped (counted, logged once per source and kind); a real peer retransmits.
MAX_FRAGMENTS = 16                   # fragment numbers per message (Libreswan's limit too)
MAX_MESSAGE_BYTES = 16384            # a reassembled message (three 4096-bit certificates fit)
REASSEMBLY_TIMEOUT_S = 20            # first fragment -> complete; older sets are dropped
MAX_PENDING = 64                     # messages being reassembled at once, in total
MAX_PENDING_PER_ADDRESS = 8          # ... from one source address
MAX_BUFFERED_BYTES = 262144          # fragment data held at once, in total


def announces(mode):
    """Whether a peer with this mode sends the FRAGMENTATION vendor ID."""
    return mode != "no"


def vendor_payloads(peer):
    return [codec.VendorPayload(VID)] if announces(peer.fragmentation) else []


def peer_supports(vids):
    """Whether the peer's vendor IDs (bytes or VendorPayloads) include FRAGMENTATION (with any
    capability bytes after it: Cisco and strongSwan send different ones)."""
    prefix = vendor.VID_FRAGMENTATION
    for vid in vids:
        data = bytes(getattr(vid, "data", vid))
        if data[:len(prefix)] == prefix:
            return True
    return False


def data_per_fragment(fragment_size, natt):
    """Bytes of the message one fragment carries when datagrams may be fragment_size long."""
    overhead = IPV4_UDP_OVERHEAD + (NON_ESP_MARKER_SIZE if natt else 0)
    return fragment_size - overhead - C.HEADER_LENGTH - PAYLOAD_HEADER


def split(message, fragment_size, natt, fragment_id=1):
    """The datagrams (without the non-ESP marker, which the core adds on port 4500) that carry
    `message`: itself when it fits in fragment_size, else its fragments."""
    overhead = IPV4_UDP_OVERHEAD + (NON_ESP_MARKER_SIZE if natt else 0)
    if len(message) + overhead <= fragment_size:
        return [message]
    step = data_per_fragment(fragment_size, natt)
    count = (len(message) + step - 1) // step
    if count > 255:
        raise ValueError("a %d-byte message needs %d fragments of %d bytes; at most 255 exist"
                         % (len(message), count, fragment_size))
    # Cookies, version, exchange and message ID as the message has them; next payload 132; the
    # encryption flag cleared (the fragment payload itself is not encrypted, Libreswan clears it).
    head = (message[:16] + bytes([C.PT_FRAGMENT, message[17], message[18],
                                  message[19] & ~C.FLAG_ENCRYPTION & 0xff]) + message[20:24])
    out = []
    for number in range(1, count + 1):
        piece = message[(number - 1) * step:number * step]
        total = C.HEADER_LENGTH + PAYLOAD_HEADER + len(piece)
        flags = FLAG_LAST if number == count else 0
        payload = (b"\x00\x00" + (PAYLOAD_HEADER + len(piece)).to_bytes(2, "big")
                   + fragment_id.to_bytes(2, "big") + bytes([number, flags]))
        out.append(head + total.to_bytes(4, "big") + payload + piece)
    return out


class Outgoing:
    """One IKE SA's sending side: whether its messages go as fragments, and the fragments of
    the last message (a retransmission sends the same datagrams, fragment ID included)."""
    __slots__ = ("mode", "size", "peer_supports", "next_id", "message", "datagrams", "counters")

    def __init__(self, peer, counters):
        self.mode = peer.fragmentation
        self.size = peer.fragment_size
        self.peer_supports = False
        self.next_id = 1
        self.message = None
        self.datagrams = None
        self.counters = counters

    def note_vendor_ids(self, vids):
        if peer_supports(vids):
            self.peer_supports = True

    def datagrams_for(self, message, natt):
        """The datagrams to send for `message` (natt: it goes on UDP 4500)."""
        if self.mode == "force" or (self.mode == "yes" and self.peer_supports):
            if message != self.message:
                self.message = message
                self.datagrams = split(message, self.size, natt, self.next_id)
                if len(self.datagrams) > 1:
                    self.next_id = self.next_id % 0xffff + 1
                    self.counters["fragmented_messages"] += 1
            if len(self.datagrams) > 1:
                self.counters["fragments_sent"] += len(self.datagrams)
            return self.datagrams
        return [message]


class Dropped(Exception):
    """A fragment refused by a bound (not malformed: it may be genuine, the peer resends)."""

    def __init__(self, kind, text):
        super().__init__(text)
        self.kind = kind
        self.text = text


class _Pending:
    """One message being reassembled."""
    __slots__ = ("address", "fragment_id", "pieces", "last", "size", "started")

    def __init__(self, address, fragment_id, now):
        self.address = address
        self.fragment_id = fragment_id
        self.pieces = {}          # fragment number -> data
        self.last = None          # number of the fragment flagged last, once seen
        self.size = 0
        self.started = now


def new_counters():
    return {"fragments_received": 0, "fragments_duplicate": 0, "fragments_dropped": 0,
            "reassembled_messages": 0, "reassemblies_expired": 0, "fragmented_messages": 0,
            "fragments_sent": 0}


class Reassembler:
    """Every message being reassembled, keyed by (source address, cookies, message ID).

    log_once(remote, kind, level, text) is the core's log-once: one line per source and kind
    of trouble per window, the running count in the line. counters: a dict from new_counters()."""

    def __init__(self, log_once, counters):
        self.log_once = log_once
        self.counters = counters
        self.pending = {}         # key -> _Pending
        self.per_address = {}     # address -> messages being reassembled from it
        self.buffered = 0

    def receive(self, header, data, remote, now):
        """One datagram whose first payload is a fragment: the whole message when this fragment
        completes it, else None. Raises codec.MalformedMessage (with a diagnosis) for a fragment
        that cannot be one, Dropped when a bound refuses it."""
        fragment_id, number, last, piece = parse(header, data)
        self.counters["fragments_received"] += 1
        self.expire(now)
        key = (remote[0], header.icookie, header.rcookie, header.message_id)
        entry = self.pending.get(key)
        if entry is not None and entry.fragment_id != fragment_id:
            self._forget(key)     # the peer went on to its next message: the old one is moot
            entry = None
        if number > MAX_FRAGMENTS:
            self._drop(remote, "count", "fragment number %d of a message from %s: at most %d "
                       "fragments per message are reassembled" % (number, remote[0], MAX_FRAGMENTS))
        if entry is None:
            if len(self.pending) >= MAX_PENDING:
                self._drop(remote, "total", "a fragmented message from %s: %d messages are being "
                           "reassembled already, the most at once" % (remote[0], MAX_PENDING))
            if self.per_address.get(remote[0], 0) >= MAX_PENDING_PER_ADDRESS:
                self._drop(remote, "address", "a fragmented message from %s: %d messages from "
                           "that address are being reassembled already, the most from one "
                           "address" % (remote[0], MAX_PENDING_PER_ADDRESS))
        elif number in entry.pieces:
            self.counters["fragments_duplicate"] += 1
            return None           # a retransmission of what we hold (or a forgery of it)
        problem = _contradiction(entry, number, last) if entry is not None else None
        if problem is not None:
            self._forget(key)     # one of the two is wrong; the peer's retransmission starts over
            raise _malformed(problem)
        if self.buffered + len(piece) > MAX_BUFFERED_BYTES:
            self._drop(remote, "buffer", "a fragment from %s: %d bytes of fragments are held "
                       "already, the most at once" % (remote[0], MAX_BUFFERED_BYTES))
        if (entry.size if entry else 0) + len(piece) > MAX_MESSAGE_BYTES:
            if entry is not None:
                self._forget(key)
            self._drop(remote, "size", "a fragmented message from %s: longer than %d bytes, "
                       "the most reassembled" % (remote[0], MAX_MESSAGE_BYTES))
        if entry is None:
            entry = self.pending[key] = _Pending(remote[0], fragment_id, now)
            self.per_address[remote[0]] = self.per_address.get(remote[0], 0) + 1
        entry.pieces[number] = piece
        entry.size += len(piece)
        self.buffered += len(piece)
        if last:
            entry.last = number
        if entry.last is None or len(entry.pieces) < entry.last:
            return None
        self._forget(key)
        message = b"".join([entry.pieces[n] for n in range(1, entry.last + 1)])
        self.counters["reassembled_messages"] += 1
        return _check_whole(header, message)

    def expire(self, now):
        """Drop the sets not completed within REASSEMBLY_TIMEOUT_S. Run on every fragment: a
        scan of at most MAX_PENDING entries, relying on no dict order."""
        for key in [k for k, e in self.pending.items() if now - e.started >= REASSEMBLY_TIMEOUT_S]:
            entry = self.pending[key]
            self._forget(key)
            self.counters["reassemblies_expired"] += 1
            self.log_once((entry.address, 0), "fragments-expired", "warning",
                          "dropped an incomplete fragmented message from %s: %d of %s fragments "
                          "in %d s (%d such so far)" % (
                              entry.address, len(entry.pieces),
                              entry.last if entry.last is not None else "?",
                              REASSEMBLY_TIMEOUT_S, self.counters["reassemblies_expired"]))

    def _forget(self, key):
        entry = self.pending.pop(key)
        self.buffered -= entry.size
        left = self.per_address[entry.address] - 1
        if left:
            self.per_address[entry.address] = left
        else:
            del self.per_address[entry.address]

    def _drop(self, remote, kind, what):
        self.counters["fragments_dropped"] += 1
        text = "dropped %s (%d fragments dropped so far)" % (what, self.counters["fragments_dropped"])
        self.log_once(remote, "fragments-" + kind, "warning", text)
        raise Dropped(kind, text)


def parse(header, data):
    """(fragment ID, number, last?, data) of a datagram whose first payload is a fragment."""
    body = data[C.HEADER_LENGTH:]
    if len(body) < PAYLOAD_HEADER:
        raise _malformed("%d bytes after the header, a fragment payload has at least %d"
                         % (len(body), PAYLOAD_HEADER))
    length = int.from_bytes(body[2:4], "big")
    if length != len(body):
        raise _malformed("fragment payload length %d, but %d bytes follow the header "
                         "(a fragment datagram holds one fragment payload and nothing else)"
                         % (length, len(body)))
    if body[0] != C.PT_NONE:
        raise _malformed("fragment payload followed by a %s payload; it must be alone" % (
            C.name(C.PAYLOAD_NAMES, body[0])))
    number = body[6]
    if number == 0:
        raise _malformed("fragment number 0 (numbers count from 1)")
    if length == PAYLOAD_HEADER:
        raise _malformed("fragment %d carries no data" % number)
    return int.from_bytes(body[4:6], "big"), number, bool(body[7] & FLAG_LAST), body[8:]


def _contradiction(entry, number, last):
    """What is wrong with fragment `number` (flagged last or not) beside those held, or None."""
    if entry.last is not None and last:
        return "fragments %d and %d are both flagged last" % (entry.last, number)
    if entry.last is not None and number > entry.last:
        return "fragment %d comes after fragment %d, flagged last" % (number, entry.last)
    highest = max(entry.pieces)
    if last and number < highest:
        return "fragment %d is flagged last but fragment %d came before it" % (number, highest)
    return None


def _check_whole(header, message):
    """The reassembled message must be one ISAKMP message of the same SA, not fragmented again."""
    try:
        whole = codec.decode_header(message)
    except codec.MalformedMessage as exc:
        raise _malformed("the reassembled message: " + exc.reason)
    if (whole.icookie, whole.rcookie) != (header.icookie, header.rcookie):
        raise _malformed("the reassembled message's cookies differ from its fragments'")
    if whole.next_payload == C.PT_FRAGMENT:
        raise _malformed("the reassembled message is itself a fragment")
    return message


def _malformed(reason):
    return codec.MalformedMessage("IKE fragment: " + reason)
