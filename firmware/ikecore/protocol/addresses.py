"""IPv4 addresses and networks as text and bytes (portable: MicroPython subset, no ipaddress).

Used by phase 1 (our ID from an address), quick mode (networks as ID payloads) and the core
(which connection an ACQUIRE's addresses fall into).
"""


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


def parse_net(text):
    """"192.168.1.0/24" (or a bare address = /32) -> (4-byte address, prefix length)."""
    if "/" in text:
        addr, prefix = text.split("/", 1)
        prefix = int(prefix)
    else:
        addr, prefix = text, 32
    if prefix < 0 or prefix > 32:
        raise ValueError("bad prefix length in %r" % (text,))
    return ip_bytes(addr), prefix


def same_net(a, b):
    try:
        return parse_net(a) == parse_net(b)
    except ValueError:
        return False


def net_contains(net, address):
    base, prefix = parse_net(net)
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0
    return (int.from_bytes(base, "big") & mask) == (int.from_bytes(ip_bytes(address), "big") & mask)
