"""Client of the daemon's control socket: one JSON object per line each way (docs/architecture.md).

One short connection per request keeps the web UI stateless towards the daemon: a restarted daemon
is simply reachable again on the next poll.
"""
import asyncio
import json
import re

REPLY_LIMIT = 64 * 1024 * 1024      # a status of thousands of SAs is a single (long) line
TIMEOUT_S = 5.0
# {"ok": true, "result": X} -> X without decoding it (the status of thousands of SAs is passed
# to /api/status as the daemon wrote it; anything else falls back to decoding).
OK_RESULT = re.compile(rb'^\{\s*"ok"\s*:\s*true\s*,\s*"result"\s*:\s*(\{.*\})\s*\}\s*$', re.S)


class ControlError(Exception):
    """The daemon could not be asked, or it answered {"ok": false, "error": ...}."""


class Refused(ControlError):
    """The daemon answered {"ok": false, "error": ...}: the request itself was wrong (an unknown
    peer or SA id, a bad selection), as opposed to a daemon that cannot be reached."""


class ControlClient:
    def __init__(self, socket_path, timeout_s=TIMEOUT_S):
        self.socket_path = socket_path
        self.timeout_s = timeout_s

    async def request(self, cmd, **args):
        """Send {"cmd": cmd, **args}; return the reply's result or raise ControlError."""
        return self._result(cmd, await self._ask(cmd, args))

    async def _ask(self, cmd, args):
        message = dict(args, cmd=cmd)
        try:
            return await asyncio.wait_for(self._exchange(message), self.timeout_s)
        except asyncio.TimeoutError:
            raise ControlError("the ikecore daemon did not answer %r within %.0f s"
                               % (cmd, self.timeout_s)) from None
        except (OSError, ValueError) as exc:   # ValueError: LimitOverrunError, bad JSON
            raise ControlError("cannot talk to the ikecore daemon at %s: %s"
                               % (self.socket_path, exc)) from None

    async def _exchange(self, message):
        reader, writer = await asyncio.open_unix_connection(self.socket_path, limit=REPLY_LIMIT)
        try:
            writer.write(json.dumps(message).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
        if not line:
            raise ControlError("the ikecore daemon closed the control socket without answering %r"
                               % message["cmd"])
        return line

    def _result(self, cmd, line):
        try:
            reply = json.loads(line)
        except ValueError as exc:
            raise ControlError("the ikecore daemon's reply is not JSON: %s" % exc) from None
        if not isinstance(reply, dict) or "ok" not in reply:
            raise ControlError("unexpected reply from the ikecore daemon: %.200r" % (line,))
        if not reply["ok"]:
            raise Refused(str(reply.get("error") or "the daemon refused %r" % cmd))
        return reply.get("result")

    async def status_json(self, **selection):
        """The status (or a selection of it: docs/architecture.md, "Control socket") as JSON
        text, straight from the daemon's reply when it is a plain {"ok": true, "result": {...}}
        line (no decode + re-encode of a big status)."""
        line = await self._ask("status", selection)
        match = OK_RESULT.match(line)
        if match:
            return match.group(1).decode("utf-8")
        return json.dumps(self._result("status", line), separators=(",", ":"))

    async def status(self, **selection):
        """Every IKE SA and SA, or a selection: peer=NAME, id=SA_ID (that SA's peer), or a page
        offset=, limit=, filter=, status= (the result then has "page")."""
        result = await self.request("status", **selection)
        if not isinstance(result, dict):
            raise ControlError("the daemon's status is not an object")
        result.setdefault("ike_sas", [])
        result.setdefault("sas", [])
        return result

    async def summary(self):
        """Counts only: peers by status, IKE SAs (by state number), SAs, daemon counters."""
        result = await self.request("summary")
        if not isinstance(result, dict):
            raise ControlError("the daemon's summary is not an object")
        return result
