"""The VPN log: syslog (facility daemon, tag "ikecore"), stderr, and an in-memory ring.

The ring (newest RING_SIZE entries) answers the control socket's `log` request, which the web
UI's VPN log page shows; syslog keeps the same lines for `logread` in the image. Entries are
{"time": epoch seconds (float), "level": "debug"|"info"|"warning"|"error", "peer": name or None,
"text": one line}.

Written without the `logging` module: a line costs one formatted string, one write to stderr and
one datagram to /dev/log, instead of a LogRecord, a handler lock and two formatters per
destination (~5x less CPU per line; docs/performance.md). The output is what logging's
StreamHandler / SysLogHandler wrote before: "2026-11-25 15:22:10,091 ikecore INFO text" on
stderr, "<28>ikecore: text\\0" (RFC 3164 priority = facility daemon * 8 + severity) to syslog.
"""
import collections
import os
import socket
import sys
import time

RING_SIZE = 1000
LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}   # logging's numbers
SYSLOG_SOCKET = "/dev/log"
SYSLOG_FACILITY_DAEMON = 3
SYSLOG_SEVERITY = {"debug": 7, "info": 6, "warning": 4, "error": 3}


class VpnLog:
    """One object per daemon; `write(level, peer, text)` is the only way lines get in."""

    def __init__(self, level="info", stderr=True, syslog=True, clock=time.time):
        if level not in LEVELS:
            raise ValueError("unknown log level %r (one of %s)" % (level, ", ".join(LEVELS)))
        self.threshold = LEVELS[level]
        self.clock = clock
        self.ring = collections.deque(maxlen=RING_SIZE)
        self.stderr = sys.stderr if stderr else None
        self.syslog = None
        if syslog and os.path.exists(SYSLOG_SOCKET):
            self.syslog = _SyslogSocket(SYSLOG_SOCKET)

    def write(self, level, peer, text):
        if level not in LEVELS:
            level = "info"
        if LEVELS[level] < self.threshold:
            return
        self.ring.append({"time": self.clock(), "level": level, "peer": peer, "text": text})
        line = "[%s] %s" % (peer, text) if peer else text
        if self.stderr is not None:
            now = time.time()
            try:
                self.stderr.write("%s,%03d ikecore %s %s\n" % (
                    time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)),
                    int(now * 1000) % 1000, level.upper(), line))
                self.stderr.flush()
            except (OSError, ValueError):
                pass           # stderr closed (daemon detached): syslog and the ring still work
        if self.syslog is not None:
            self.syslog.send(SYSLOG_FACILITY_DAEMON * 8 + SYSLOG_SEVERITY[level], line)

    def debug(self, text, peer=None):
        self.write("debug", peer, text)

    def info(self, text, peer=None):
        self.write("info", peer, text)

    def warning(self, text, peer=None):
        self.write("warning", peer, text)

    def error(self, text, peer=None):
        self.write("error", peer, text)

    def newest(self, limit=None):
        """The newest `limit` entries (all when None), oldest first."""
        entries = list(self.ring)
        if limit is not None:
            entries = entries[-limit:] if limit > 0 else []
        return entries

    def close(self):
        if self.syslog is not None:
            self.syslog.close()
            self.syslog = None
        self.stderr = None


class _SyslogSocket:
    """Datagrams to the local syslogd, reconnecting once when it restarted; lines are dropped
    (never an exception) while nobody listens -- the ring and stderr still have them."""

    def __init__(self, path):
        self.path = path
        self.sock = None

    def send(self, priority, line):
        data = ("<%d>ikecore: %s\x00" % (priority, line)).encode("utf-8", "replace")
        for _ in range(2):
            try:
                if self.sock is None:
                    self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                    self.sock.connect(self.path)
                self.sock.send(data)
                return
            except OSError:
                self.close()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
