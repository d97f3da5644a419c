"""Firewall log: nftables log lines (prefix `fw:<iface>:<in|out|fwd>:<verdict> `) from the system
log (webui.system_log reads it), parsed into structured entries for the firewall log page.

A kernel log line as syslog stores it looks like
  Nov 25 14:00:01 router kern.warn kernel: [  12.345678] fw:eth0:in:drop IN=eth0 OUT= MAC=...
  SRC=198.51.100.2 DST=203.0.113.1 LEN=152 ... PROTO=ESP SPI=0xc1a2b3d4
(busybox syslogd), or with an ISO time stamp (rsyslog) on a host. The kernel's nf_log prints
`KEY=value` fields separated by spaces, and bare flags (DF, SYN, ...), which we ignore.
"""
import re

from webui.system_log import SYSLOG_TIME

PREFIX = re.compile(r"fw:(?P<iface>[^:\s]+):(?P<direction>in|out|fwd):(?P<verdict>[a-z]+) ")
FIELD = re.compile(r"([A-Z]+)=(\S*)")


class FirewallEntry:
    __slots__ = ("time", "interface", "direction", "verdict", "protocol", "src", "dst",
                 "sport", "dport", "spi", "in_iface", "out_iface", "length", "icmp_type")

    def __init__(self, **fields):
        for name in self.__slots__:
            setattr(self, name, fields.get(name))

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}


def parse_line(line):
    """One syslog line -> FirewallEntry, or None when it is not one of our firewall log lines."""
    match = PREFIX.search(line)
    if match is None:
        return None
    fields = {}
    for key, value in FIELD.findall(line[match.end():]):
        # The first occurrence is the IP header's (LEN/ID repeat for UDP and ICMP).
        fields.setdefault(key, value)
    stamp = SYSLOG_TIME.match(line)
    spi = fields.get("SPI")
    if spi:
        try:
            spi = "0x%08x" % int(spi, 16)
        except ValueError:
            pass
    return FirewallEntry(
        time=stamp.group("time") if stamp else None,
        interface=match.group("iface"),
        direction=match.group("direction"),
        verdict=match.group("verdict"),
        protocol=fields.get("PROTO"),
        src=fields.get("SRC"),
        dst=fields.get("DST"),
        sport=_int(fields.get("SPT")),
        dport=_int(fields.get("DPT")),
        spi=spi,
        in_iface=fields.get("IN") or None,
        out_iface=fields.get("OUT") or None,
        length=_int(fields.get("LEN")),
        icmp_type=_int(fields.get("TYPE")),
    )


def _int(text):
    try:
        return int(text)
    except (TypeError, ValueError):
        return None


def parse_lines(lines):
    """Our firewall entries among syslog lines, newest first (syslog lines come oldest first)."""
    entries = [entry for entry in map(parse_line, lines) if entry is not None]
    entries.reverse()
    return entries


def matches(entry, interface=None, protocol=None, addresses=None, verdict=None):
    """The log page's filters: interface, protocol (case-insensitive), a peer's addresses."""
    if interface and entry.interface != interface:
        return False
    if protocol and (entry.protocol or "").upper() != protocol.upper():
        return False
    if verdict and entry.verdict != verdict:
        return False
    if addresses is not None and entry.src not in addresses and entry.dst not in addresses:
        return False
    return True
