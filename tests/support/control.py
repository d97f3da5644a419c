"""The daemon's control socket for tests: the product's client (`ikecore.ctl`) and what a test
needs beyond one request per connection.

  request(path, message)   ikecore.ctl.request: one JSON line each way, the reply object
  result(path, message)    the reply's "result", or ControlError naming the request and error
  Connection(path)         one connection kept open for many requests (a bench's round of `up`s)
  Events(path)             a subscription read in a background thread (`seen`, `of(kind, peer)`)
  exchange(path, data, n)  raw bytes in, n reply lines out: for tests of the socket protocol itself
"""
import json
import socket
import threading

from ikecore.ctl import CtlError, request  # noqa: F401  (re-exported: the one client)


def _connect(path, timeout):
    # The long-lived connections below; one-shot requests go through ikecore.ctl.request.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


class ControlError(AssertionError):
    """The daemon answered "ok": false (an AssertionError, so a test failing on it reads as one)."""


def result(path, message, timeout=30.0):
    reply = request(path, message, timeout=timeout)
    if not reply.get("ok"):
        raise ControlError("control request %r failed: %s" % (message, reply.get("error")))
    return reply.get("result")


class Connection:
    """One control connection kept open; ask() sends a request and reads its reply line."""

    def __init__(self, path, timeout=None):
        self.sock = _connect(path, timeout)
        self.reader = self.sock.makefile("rb")

    def ask(self, message):
        self.sock.sendall(json.dumps(message).encode() + b"\n")
        reply = json.loads(self.reader.readline())
        if not reply.get("ok"):
            raise ControlError("control request %r failed: %s" % (message, reply.get("error")))
        return reply["result"]

    def close(self):
        self.sock.close()


class Events(threading.Thread):
    """A `subscribe` connection read in the background: `reply` is the daemon's answer to the
    subscription, `seen` every event since, in order."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.sock = _connect(path, None)
        self.sock.sendall(b'{"cmd": "subscribe"}\n')
        self.reader = self.sock.makefile("rb")
        self.reply = json.loads(self.reader.readline())
        self.seen = []
        self.start()

    def run(self):
        try:
            for line in self.reader:
                self.seen.append(json.loads(line))
        except (OSError, ValueError):
            pass

    def of(self, kind, peer=None):
        return [e for e in self.seen if e["event"] == kind and (peer is None or e["peer"] == peer)]

    def close(self):
        self.sock.close()


def exchange(path, data, replies=1, timeout=30.0):
    """Send raw bytes (several requests, or broken ones) on one connection; read until `replies`
    reply lines came or the daemon closed it; -> the decoded lines."""
    sock = _connect(path, timeout)
    try:
        sock.sendall(data)
        buffer = b""
        while buffer.count(b"\n") < replies:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buffer += chunk
    finally:
        sock.close()
    return [json.loads(line) for line in buffer.splitlines()]
