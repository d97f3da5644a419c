"""The control socket: JSON lines over a Unix stream socket (CPython only).

One request object per line, one reply per line, in order; a client may send many requests on
one connection. Requests (docs/architecture.md):
  {"cmd": "status"}                 -> the status data of DESIGN.md (+ "daemon" counters)
  {"cmd": "status", "peer"|"id"|"offset"|"limit"|"filter"|"status": ...} -> a selection of it
  {"cmd": "summary"}                -> counts only
  {"cmd": "subscribe"}              -> then one line per tunnel event until the client closes
  {"cmd": "up", "peer": NAME}       -> initiate the peer's connections (or one connection by name)
  {"cmd": "down", "peer": NAME}     -> delete the peer's SAs (deletes sent to it)
  {"cmd": "delete", "id": SA_ID}    -> delete one IKE SA or SA by its status id
  {"cmd": "reload"}                 -> re-read the config file; on error the old config stays
  {"cmd": "log", "limit": N}        -> newest VPN log entries, oldest first
  {"cmd": "kernel"}                 -> what the kernel backend holds (host tests, debugging)
Replies: {"ok": true, "result": ...} or {"ok": false, "error": "message naming the problem"}.
The socket is mode 0660 so the web UI's group (--socket-group) may use it.
"""
import asyncio
import json
import os
import time

from ikecore.driver import PAGE_LIMIT_MAX, RequestError
from ikecore.protocol.status import PEER_STATUSES

MAX_REQUEST = 64 * 1024
SUBSCRIBER_BUFFER_MAX = 1 << 20   # a subscriber that stops reading is dropped past this
DEFAULT_SOCKET = "/run/ikecore/control.sock"


class ControlServer:
    def __init__(self, driver, path=DEFAULT_SOCKET, group=None):
        self.driver = driver
        self.path = path
        self.group = group
        self.server = None
        self.subscribers = set()     # StreamWriters of open "subscribe" connections
        if driver is not None:       # (None: a socket-only test)
            driver.on_notice = self._publish
        self.handlers = {
            "status": lambda request: driver.status(_selection(request)),
            "summary": lambda request: driver.summary(),
            "subscribe": lambda request: {"events": list(EVENTS)},
            "up": lambda request: driver.up(_string(request, "peer")),
            "down": lambda request: driver.down(_string(request, "peer")),
            "delete": lambda request: driver.delete(_string(request, "id")),
            "reload": lambda request: driver.reload(),
            "log": lambda request: driver.log.newest(_limit(request)),
            "kernel": lambda request: driver.kernel_snapshot(),
        }

    async def start(self):
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        if os.path.exists(self.path):
            os.unlink(self.path)       # a stale socket of a daemon that died
        # The socket is created with the umask's mode; narrow it before anyone can connect.
        old_umask = os.umask(0o117)
        try:
            self.server = await asyncio.start_unix_server(self._serve, path=self.path,
                                                          limit=MAX_REQUEST)
        finally:
            os.umask(old_umask)
        if self.group is not None:
            import grp             # only here: most runs (tests, --socket-group unset) never need it
            gid = int(self.group) if str(self.group).isdigit() else grp.getgrnam(self.group).gr_gid
            os.chown(self.path, -1, gid)
        os.chmod(self.path, 0o660)

    async def close(self):
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    async def _serve(self, reader, writer):
        try:
            while True:
                try:
                    line = await reader.readline()
                except (asyncio.LimitOverrunError, ValueError):
                    writer.write(_encode({"ok": False, "error": "request longer than %d bytes"
                                          % MAX_REQUEST}))
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                reply = self.handle_line(line)
                writer.write(_encode(reply))
                await writer.drain()
                if reply.get("ok") and _command(line) == "subscribe":
                    await self._stream(reader, writer)
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            try:
                writer.close()
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def _stream(self, reader, writer):
        """A subscriber: events are written by _publish until the client closes its end."""
        self.subscribers.add(writer)
        try:
            while await reader.read(4096):
                pass                   # requests on a subscription are not answered
        finally:
            self.subscribers.discard(writer)

    def _publish(self, notice):
        """One event to every subscriber, without waiting for any of them."""
        if not self.subscribers:
            return
        message = dict(notice.fields)
        message.update({"event": notice.kind, "time": time.time(), "peer": notice.peer})
        data = _encode(message)
        for writer in list(self.subscribers):
            if writer.transport.get_write_buffer_size() > SUBSCRIBER_BUFFER_MAX:
                self.subscribers.discard(writer)
                writer.write(_encode({"event": "overflow"}))
                writer.close()
                self.driver.log.warning("control: dropped an event subscriber that stopped "
                                        "reading (%d bytes queued)" % SUBSCRIBER_BUFFER_MAX)
                continue
            writer.write(data)

    def handle_line(self, line):
        """One request line -> one reply object (never raises)."""
        try:
            request = json.loads(line)
        except (ValueError, UnicodeDecodeError) as exc:
            return {"ok": False, "error": "malformed request (not JSON): %s" % exc}
        if not isinstance(request, dict):
            return {"ok": False, "error": "malformed request: expected a JSON object"}
        command = request.get("cmd")
        handler = self.handlers.get(command)
        if handler is None:
            return {"ok": False, "error": "unknown command %r (one of %s)"
                    % (command, ", ".join(self.handlers))}
        try:
            return {"ok": True, "result": handler(request)}
        except RequestError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:   # a bug must cost one request, not the daemon
            self.driver.log.error("control request %s failed: %s: %s"
                                  % (command, type(exc).__name__, exc))
            return {"ok": False, "error": "%s failed: %s: %s"
                    % (command, type(exc).__name__, exc)}


EVENTS = ("tunnel-up", "tunnel-down", "ike-up", "ike-down", "failed")


def _command(line):
    try:
        return json.loads(line).get("cmd")
    except (ValueError, AttributeError):
        return None


def _selection(request):
    """The status request's selection, checked: {} for everything."""
    selection = {}
    for key in ("peer", "id", "filter"):
        if key in request:
            selection[key] = _string(request, key)
    if "status" in request:
        if request["status"] not in PEER_STATUSES:
            raise RequestError("malformed request: 'status' must be one of %s"
                               % ", ".join(PEER_STATUSES))
        selection["status"] = request["status"]
    for key, low, high in (("offset", 0, None), ("limit", 1, PAGE_LIMIT_MAX)):
        if key in request:
            value = request[key]
            if type(value) is not int or value < low or (high is not None and value > high):
                raise RequestError("malformed request: %r must be an integer from %d%s" % (
                    key, low, " to %d" % high if high is not None else " up"))
            selection[key] = value
    return selection


def _string(request, key):
    value = request.get(key)
    if not isinstance(value, str) or not value:
        raise RequestError("malformed request: %r needs a %r string" % (request.get("cmd"), key))
    return value


def _limit(request):
    value = request.get("limit", 100)
    if type(value) is not int or value < 0:
        raise RequestError("malformed request: 'limit' must be a non-negative integer")
    return value


def _encode(reply):
    return (json.dumps(reply, separators=(",", ":"), default=str) + "\n").encode("utf-8")
