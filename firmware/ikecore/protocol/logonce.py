"""Log de-duplication for unauthenticated trouble (portable: MicroPython subset, no clock).

Malformed messages, messages for unknown IKE SAs, first messages from addresses no peer has,
bounds of fragment reassembly, internal errors: anyone can send them, from any source address.
Each is logged once per (address, kind) per window, and past a bound of keys in a window (a
spray from spoofed sources) only counted: the log never grows with the attacker's sources.
"""

from .events import Log

LOG_ONCE_KEYS = 100          # lines per window at most
LOG_ONCE_WINDOW_S = 3600


class LogOnce:
    """log(remote, kind, level, text): remote is (ip, port) (the ip is the key); peer_name(ip)
    names the peer in the line (or None); emit(event) queues the Log. The caller sets .now to
    the time of the input being handled (the core does at every input)."""

    def __init__(self, emit, peer_name, now):
        self.emit = emit
        self.peer_name = peer_name
        self.now = now
        self._seen = set()           # (address, kind) logged in this window
        self._since = now
        self._dropped = 0

    def log(self, remote, kind, level, text):
        """One line per (address, kind) and LOG_ONCE_WINDOW_S. Past LOG_ONCE_KEYS of them in
        a window the rest are counted, and the count is one line when the window closes."""
        now = self.now
        if now - self._since >= LOG_ONCE_WINDOW_S:
            if self._dropped:
                self.emit(Log("warning", None, "%d more messages from other sources were not "
                              "logged in the last %d s (malformed, for an unknown SA or from an "
                              "address with no peer)" % (self._dropped, int(now - self._since))))
            self._seen = set()
            self._since = now
            self._dropped = 0
        key = (remote[0], kind)
        if key in self._seen:
            return
        if len(self._seen) >= LOG_ONCE_KEYS:
            self._dropped += 1
            return
        self._seen.add(key)
        self.emit(Log(level, self.peer_name(remote[0]), text))
