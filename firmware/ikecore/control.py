"""The control socket: JSON lines over a Unix stream socket (CPython only).

One request object per line, one reply per line, in order; a client may send many requests on
one connection. Requests (docs/architecture.md):
  {"cmd": "status"}                 -> the status data of DESIGN.md (+ "daemon" counters)
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

from ikecore.driver import RequestError

MAX_REQUEST = 64 * 1024
DEFAULT_SOCKET = "/run/ikecore/control.sock"


class ControlServer:
    def __init__(self, driver, path=DEFAULT_SOCKET, group=None):
        self.driver = driver
        self.path = path
        self.group = group
        self.server = None
        self.handlers = {
            "status": lambda request: driver.status(),
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
                writer.write(_encode(self.handle_line(line)))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            try:
                writer.close()
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

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
