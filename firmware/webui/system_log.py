"""The persisted system log both log pages read: rsyslogd's /data/log/messages and the rotated
messages.1 (S11syslog), through `logread` in the image or a file given with --firewall-log.

A line as rsyslog stores it (busybox syslogd's layout with an RFC 3339 time stamp):
  2026-12-07T12:00:01.123456+00:00 router daemon.info ikecore: [branch] IKE SA ike-1 ... established
busybox syslogd writes "Dec  7 12:00:01" instead (no year: kept as text). The firewall log page
parses the kernel's lines among them (webui.firewall_log), the VPN log page the daemon's (tag
"ikecore", `vpn_entries`), merged with the daemon's in-memory ring (`merge_vpn`), so lines from
before a reboot or a daemon restart are still shown.
"""
import asyncio
import datetime
import os
import re
import shutil

SYSLOG_TIME = re.compile(r"^(?:<\d+>)?(?P<time>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"
                         r"|\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?)")
READ_TAIL_BYTES = 2 * 1024 * 1024       # a file on the host may be big; only its end matters
# after the time stamp: host, facility.severity (busybox and our rsyslog template), the tag
VPN_LINE = re.compile(r"^\s+\S+\s+(?:(?P<facility>[a-z0-9]+)\.(?P<severity>[a-z]+)\s+)?"
                      r"ikecore(?:\[\d+\])?: ?(?P<message>.*)$")
# The daemon's stderr reaches syslog too (ikecore-respawn: facility user, the same tag): a copy of
# each line in log.VpnLog's stderr layout, skipped; anything else there is what the daemon said
# before its log existed (a configuration refused at start) or a crash, shown as an error.
STDERR_COPY = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ikecore [A-Z]+ ")
PEER_PREFIX = re.compile(r"^\[(?P<peer>[^\]\s]+)\] (?P<text>.*)$")     # log.VpnLog's "[peer] "
LEVELS = {"emerg": "error", "alert": "error", "crit": "error", "err": "error", "error": "error",
          "warning": "warning", "warn": "warning", "notice": "info", "info": "info",
          "debug": "debug"}


class LogSource:
    """Where the syslog lines come from: a file (--firewall-log) or the `logread` command."""

    def __init__(self, path=None, command=None):
        self.path = path
        self.command = command if command is not None else (
            None if path else shutil.which("logread"))

    def describe(self):
        if self.path:
            return self.path
        return self.command or "no source (no --firewall-log FILE and no logread command)"

    async def read_lines(self):
        """The lines, oldest first (the end of a big file only)."""
        if self.path:
            return await asyncio.get_running_loop().run_in_executor(None, self._tail_file)
        if self.command:
            proc = await asyncio.create_subprocess_exec(
                self.command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
            out, _ = await proc.communicate()
            return out.decode("utf-8", "replace").splitlines()
        return []

    def _tail_file(self):
        try:
            with open(self.path, "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - READ_TAIL_BYTES))
                data = handle.read()
        except FileNotFoundError:
            return []
        lines = data.decode("utf-8", "replace").splitlines()
        return lines[1:] if size > READ_TAIL_BYTES else lines   # first one may be cut


def epoch(stamp):
    """An RFC 3339 time stamp as Unix seconds; None for busybox's year-less form."""
    try:
        return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def parse_vpn_line(line):
    """One syslog line of the daemon's -> an entry as the daemon's `log` request gives them
    ({"time", "level", "peer", "text"}; time: Unix seconds, or the text of a year-less stamp),
    else None."""
    stamp = SYSLOG_TIME.match(line)
    if stamp is None:
        return None
    match = VPN_LINE.match(line[stamp.end():])
    if match is None:
        return None
    message = match.group("message")
    level = LEVELS.get(match.group("severity") or "", "info")
    if match.group("facility") not in (None, "daemon"):
        if STDERR_COPY.match(message):
            return None
        level = "warning" if message.startswith("ikecore: warning:") else "error"
    peer = PEER_PREFIX.match(message)
    seconds = epoch(stamp.group("time"))
    return {"time": seconds if seconds is not None else stamp.group("time"),
            "level": level,
            "peer": peer.group("peer") if peer else None,
            "text": peer.group("text") if peer else message}


def vpn_entries(lines):
    """The daemon's entries among syslog lines, oldest first."""
    return [entry for entry in map(parse_vpn_line, lines) if entry is not None]


SAME_LINE_S = 5.0     # rsyslog's stamp of a line vs the daemon's own time of it (same clock)


def merge_vpn(persisted, live, limit):
    """The VPN log newest first, at most `limit` entries: the persisted entries (oldest first, in
    the file's order) and the daemon's in-memory ones (live, in its order), each line once. A
    persisted line is the same as a live entry when level, peer and text are equal and its time
    is within SAME_LINE_S of the entry's (rsyslog stamps a line when it receives it, a moment
    later); those are dropped in favour of the live ones. Order is by position, not by time: a
    board without a battery logs at 1970 until NTP steps the clock, so times do not sort.
    What is left of the persisted lines is older than the live ones (from before the daemon
    started, or fallen out of its ring); live ones rsyslog has not written yet are the newest."""
    waiting = {}
    for entry in live:
        waiting.setdefault(_content(entry), []).append(entry.get("time"))
    kept = []
    for entry in persisted:
        times = waiting.get(_content(entry))
        match = None
        if times and isinstance(entry["time"], (int, float)):
            match = next((i for i, t in enumerate(times) if isinstance(t, (int, float))
                          and abs(entry["time"] - t) <= SAME_LINE_S), None)
        if match is None:
            kept.append(entry)
        else:
            del times[match]
    merged = kept + list(live)
    merged.reverse()
    return merged[:limit]


def _content(entry):
    return (str(entry.get("level") or "").lower(), entry.get("peer") or None,
            str(entry.get("text") or ""))
