"""The VPN log: syslog (facility daemon, tag "ikecore"), stderr, and an in-memory ring.

The ring (newest RING_SIZE entries) answers the control socket's `log` request, which the web
UI's VPN log page shows; syslog keeps the same lines for `logread` in the image. Entries are
{"time": epoch seconds (float), "level": "debug"|"info"|"warning"|"error", "peer": name or None,
"text": one line}.
"""
import collections
import logging
import os
import sys
import time

RING_SIZE = 1000
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
SYSLOG_SOCKET = "/dev/log"


class VpnLog:
    """One object per daemon; `write(level, peer, text)` is the only way lines get in."""

    def __init__(self, level="info", stderr=True, syslog=True, clock=time.time):
        if level not in LEVELS:
            raise ValueError("unknown log level %r (one of %s)" % (level, ", ".join(LEVELS)))
        self.threshold = LEVELS[level]
        self.clock = clock
        self.ring = collections.deque(maxlen=RING_SIZE)
        # A private logger (not the root one) so library chatter never reaches the VPN log.
        self.logger = logging.getLogger("ikecore.vpn.%x" % id(self))
        self.logger.propagate = False
        self.logger.setLevel(self.threshold)
        if stderr:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("%(asctime)s ikecore %(levelname)s %(message)s"))
            self.logger.addHandler(handler)
        if syslog and os.path.exists(SYSLOG_SOCKET):
            from logging import handlers    # only with syslog: pulls in pickle, queue... (~0.6 MB)
            try:
                handler = handlers.SysLogHandler(
                    address=SYSLOG_SOCKET, facility=handlers.SysLogHandler.LOG_DAEMON)
            except OSError:
                handler = None     # no syslogd listening: stderr and the ring still work
            if handler is not None:
                handler.ident = "ikecore: "
                handler.setFormatter(logging.Formatter("%(message)s"))
                self.logger.addHandler(handler)

    def write(self, level, peer, text):
        if level not in LEVELS:
            level = "info"
        if LEVELS[level] < self.threshold:
            return
        self.ring.append({"time": self.clock(), "level": level, "peer": peer, "text": text})
        self.logger.log(LEVELS[level], "[%s] %s" % (peer, text) if peer else text)

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
        for handler in list(self.logger.handlers):
            self.logger.removeHandler(handler)
            handler.close()
