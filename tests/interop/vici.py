"""A small client of charon's vici protocol (strongSwan's src/libcharon/plugins/vici/README.md).

swanctl forks a process per command; the benchmark needs to fire a thousand `initiate`s and to
count `child-updown` events without that cost, so it speaks vici itself:

  transport: 32-bit big-endian length, then the packet
  packet:    1 byte type; named types add a 1-byte name length and the name; then the message
  message:   elements: SECTION_START(name) SECTION_END KEY_VALUE(name, 16-bit value length, value)
             LIST_START(name) LIST_ITEM(value) LIST_END
"""
import socket
import struct

CMD_REQUEST, CMD_RESPONSE, CMD_UNKNOWN = 0, 1, 2
EVENT_REGISTER, EVENT_UNREGISTER, EVENT_CONFIRM, EVENT_UNKNOWN, EVENT = 3, 4, 5, 6, 7
SECTION_START, SECTION_END, KEY_VALUE, LIST_START, LIST_ITEM, LIST_END = 1, 2, 3, 4, 5, 6


class ViciError(RuntimeError):
    pass


def encode_message(tree):
    """dict (str -> str | list of str | dict) -> vici message bytes."""
    out = bytearray()
    for key, value in tree.items():
        name = key.encode()
        if isinstance(value, dict):
            out += bytes([SECTION_START, len(name)]) + name + encode_message(value) + bytes([SECTION_END])
        elif isinstance(value, (list, tuple)):
            out += bytes([LIST_START, len(name)]) + name
            for item in value:
                data = str(item).encode()
                out += bytes([LIST_ITEM]) + struct.pack("!H", len(data)) + data
            out += bytes([LIST_END])
        else:
            data = str(value).encode()
            out += bytes([KEY_VALUE, len(name)]) + name + struct.pack("!H", len(data)) + data
    return bytes(out)


def decode_message(data):
    """vici message bytes -> nested dict (values str, lists of str)."""
    root = {}
    stack = [root]
    current_list = None
    pos = 0
    while pos < len(data):
        kind = data[pos]
        pos += 1
        if kind in (SECTION_START, KEY_VALUE, LIST_START):
            size = data[pos]
            name = data[pos + 1:pos + 1 + size].decode()
            pos += 1 + size
        if kind in (KEY_VALUE, LIST_ITEM):
            (size,) = struct.unpack_from("!H", data, pos)
            value = data[pos + 2:pos + 2 + size].decode(errors="replace")
            pos += 2 + size
        if kind == SECTION_START:
            section = {}
            stack[-1][name] = section
            stack.append(section)
        elif kind == SECTION_END:
            stack.pop()
        elif kind == KEY_VALUE:
            stack[-1][name] = value
        elif kind == LIST_START:
            current_list = stack[-1][name] = []
        elif kind == LIST_ITEM:
            current_list.append(value)
        elif kind == LIST_END:
            current_list = None
        else:
            raise ViciError("unknown vici element type %d at %d" % (kind, pos - 1))
    return root


class Session:
    """One connection to a vici socket (path of a unix socket)."""

    def __init__(self, path, timeout_s=60):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout_s)
        self.sock.connect(path)

    def close(self):
        self.sock.close()

    def _send(self, kind, name=None, message=b""):
        packet = bytes([kind])
        if name is not None:
            packet += bytes([len(name)]) + name.encode()
        packet += message
        self.sock.sendall(struct.pack("!I", len(packet)) + packet)

    def _recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ViciError("vici socket closed")
            buf += chunk
        return bytes(buf)

    def recv_packet(self):
        """(type, name or None, message dict)."""
        (length,) = struct.unpack("!I", self._recv_exact(4))
        packet = self._recv_exact(length)
        kind, pos, name = packet[0], 1, None
        if kind in (EVENT,):
            size = packet[1]
            name = packet[2:2 + size].decode()
            pos = 2 + size
        return kind, name, decode_message(packet[pos:])

    def request(self, command, message=None):
        """A command without streamed events; returns the response dict."""
        self._send(CMD_REQUEST, command, encode_message(message or {}))
        while True:
            kind, _, body = self.recv_packet()
            if kind == CMD_RESPONSE:
                return body
            if kind == CMD_UNKNOWN:
                raise ViciError("charon does not know the vici command %r" % command)
            # events of an earlier registration may arrive in between: not ours to handle here

    def register(self, event):
        self._send(EVENT_REGISTER, event)
        while True:
            kind, _, _ = self.recv_packet()
            if kind == EVENT_CONFIRM:
                return
            if kind == EVENT_UNKNOWN:
                raise ViciError("charon has no vici event %r" % event)

    def initiate_async(self, child, ike=None):
        """Queue the initiation of a CHILD_SA config and return at once (timeout -1)."""
        message = {"child": child, "timeout": "-1", "init-limits": "no"}
        if ike:
            message["ike"] = ike
        reply = self.request("initiate", message)
        if reply.get("success") != "yes":
            raise ViciError("initiate %s failed: %s" % (child, reply.get("errmsg")))

    def list_sas(self):
        """Every IKE SA as (name, dict) via streamed list-sa events."""
        self.register("list-sa")
        self._send(CMD_REQUEST, "list-sas", encode_message({"noblock": "yes"}))
        sas = []
        while True:
            kind, name, body = self.recv_packet()
            if kind == EVENT and name == "list-sa":
                sas.extend(body.items())
            elif kind == CMD_RESPONSE:
                break
        self._send(EVENT_UNREGISTER, "list-sa")
        while self.recv_packet()[0] != EVENT_CONFIRM:
            pass
        return sas
