"""A fake ikecore control socket for the web UI's tests: the daemon's JSON-lines protocol
(docs/architecture.md) over a real Unix socket, serving status data of the DESIGN.md shape.

Tests change the state by hand (negotiating -> activated, a failure with its diagnosis) and read
back which requests the web UI made. The configured peers are `peers` ([{"name",
"remote_gateway"}], the file's order), or else those the IKE SAs name; `status` with a selection
(peer, id, offset, limit, filter, status) and `summary` answer as the spec says. Runs its own
asyncio loop in a thread so synchronous tests (urllib, selenium) can use it.
"""
import asyncio
import json
import threading

from ikecore.protocol.status import PEER_STATUSES

PAGE_LIMIT_MAX = 1000
RANK = {"Idle": 0, "Negotiating": 1, "Activated": 2}
PEER_GATEWAY = "198.51.100.2"
OUR_ADDRESS = "203.0.113.1"


def ike_sa(n, status="Activated", state=9, peer=None, gateway=None, last_error=None,
           mode="main", role="initiator", nat_t="none", elapsed_s=120, phase2=1):
    return {"id": "ike-%d" % n, "peer": peer or "peer%d" % n,
            "remote_gateway": gateway or "198.51.%d.%d" % (100 + n // 250, 2 + n % 250),
            "local_address": OUR_ADDRESS, "status": status, "state": state, "mode": mode,
            "role": role, "algorithm": "AES-CBC-128/HMAC-SHA1/MODP-2048", "auth": "psk",
            "elapsed_s": elapsed_s, "lifetime_s": 28800, "nat_t": nat_t,
            "phase2_negotiations": phase2, "last_error": last_error}


def sa_pair(ike, spi_base, elapsed_s=60, bytes_=10240):
    """The two SAs (incoming, outgoing) of one quick mode of IKE SA `ike`."""
    gateway = ike["remote_gateway"]
    common = {"ike_sa": ike["id"], "protocol": "ESP", "mode": "tunnel",
              "algorithm": "AES-CBC-128/HMAC-SHA1-96", "local_net": "192.168.1.0/24",
              "remote_net": "10.2.0.0/24", "elapsed_s": elapsed_s, "lifetime_s": 3600}
    return [
        dict(common, id="sa-%08x" % spi_base, destination=OUR_ADDRESS, direction="incoming",
             spi="0x%08x" % spi_base, bytes=bytes_, packets=bytes_ // 128, errored_packets=0),
        dict(common, id="sa-%08x" % (spi_base + 1), destination=gateway, direction="outgoing",
             spi="0x%08x" % (spi_base + 1), bytes=bytes_ * 2, packets=bytes_ // 64,
             errored_packets=1),
    ]


def many_tunnels(n):
    """n activated tunnels, each with an SA pair: 2n SAs (for the benchmark)."""
    ike_sas, sas = [], []
    for i in range(n):
        ike = ike_sa(i, elapsed_s=i % 28800)
        ike_sas.append(ike)
        sas.extend(sa_pair(ike, 0xc0000000 + 2 * i, elapsed_s=i % 3600, bytes_=i * 1000))
    return {"ike_sas": ike_sas, "sas": sas}


class FakeDaemon:
    def __init__(self, socket_path, status=None, log=None):
        self.socket_path = socket_path
        self.status = status if status is not None else {"ike_sas": [], "sas": []}
        self.log = log if log is not None else []
        self.peers = None               # [{"name", "remote_gateway"}]; None: the IKE SAs' peers
        self.requests = []              # every request received, in order
        self.on_delete = None           # optional hook(sa_id) after the default removal
        self.fail_with = None           # text: answer every request {"ok": false, ...}
        self.clock_synchronized = False   # the summary's: has NTP set the clock
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    # --- what tests call
    def start(self):
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self):
        if not self._thread.is_alive():
            return                      # stopped already (a test that takes the daemon away)
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _shutdown(self):
        # Connections still open (a client that has not closed yet) end here, not in a loop
        # that is gone.
        self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def set_status(self, status):
        with self._lock:
            self.status = status

    def update(self, fn):
        """fn(status) mutates the status under the lock."""
        with self._lock:
            fn(self.status)

    def commands(self):
        return [r.get("cmd") for r in self.requests]

    # --- the server
    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_unix_server(self._serve, path=self.socket_path))
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                try:
                    request = json.loads(line)
                    with self._lock:      # encoded under the lock: a consistent snapshot
                        data = json.dumps(self._answer(request), separators=(",", ":"))
                except (ValueError, KeyError, TypeError) as exc:
                    data = json.dumps({"ok": False, "error": "bad request: %s" % exc})
                writer.write(data.encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()

    def _answer(self, request):
        self.requests.append(request)
        if self.fail_with:
            return {"ok": False, "error": self.fail_with}
        cmd = request["cmd"]
        if cmd == "status":
            return self._status(request)
        if cmd == "summary":
            return {"ok": True, "result": self._summary()}
        if cmd == "log":
            limit = int(request.get("limit", 100))
            return {"ok": True, "result": self.log[-limit:]}
        if cmd == "delete":
            return self._delete(request["id"])
        if cmd in ("up", "down"):
            return {"ok": True, "result": None}
        if cmd == "reload":
            return {"ok": True, "result": "reloaded"}
        return {"ok": False, "error": "unknown command %r" % cmd}

    def _delete(self, sa_id):
        ike_ids = [i["id"] for i in self.status["ike_sas"]]
        sa_ids = [s["id"] for s in self.status["sas"]]
        if sa_id not in ike_ids and sa_id not in sa_ids:
            return {"ok": False, "error": "no SA with id %r" % sa_id}
        self.status["ike_sas"] = [i for i in self.status["ike_sas"] if i["id"] != sa_id]
        self.status["sas"] = [s for s in self.status["sas"]
                              if s["id"] != sa_id and s["ike_sa"] != sa_id]
        if self.on_delete:
            self.on_delete(self.status, sa_id)
        return {"ok": True, "result": None}

    # --- the selections of docs/architecture.md ("Asking about many tunnels ...")
    def _peers(self):
        if self.peers is not None:
            return self.peers
        seen = {}
        for ike in self.status["ike_sas"]:
            seen.setdefault(ike["peer"], {"name": ike["peer"],
                                          "remote_gateway": ike["remote_gateway"]})
        return list(seen.values())

    def _peer_statuses(self):
        best = {}
        for ike in self.status["ike_sas"]:
            status = ike["status"] if ike["status"] in RANK else "Idle"
            if RANK[status] > RANK[best.get(ike["peer"], "Idle")]:
                best[ike["peer"]] = status
        return best

    def _status(self, request):
        keys = [k for k in ("peer", "id", "offset", "limit", "filter", "status") if k in request]
        if not keys:
            return {"ok": True, "result": self.status}
        problem = _selection_problem(request)
        if problem:
            return {"ok": False, "error": "malformed request: " + problem}
        page = None
        if "peer" in request:
            if request["peer"] not in [p["name"] for p in self._peers()]:
                return {"ok": False, "error": "unknown peer %r" % request["peer"]}
            names = [request["peer"]]
        elif "id" in request:
            owner = self._owner(request["id"])
            if owner is None:
                return {"ok": False, "error": "unknown SA id %r" % request["id"]}
            names = [owner]
        else:
            statuses = self._peer_statuses()
            text = request.get("filter")
            matching = [p["name"] for p in self._peers()
                        if (not text or text in p["name"] or text in str(p["remote_gateway"]))
                        and request.get("status", statuses.get(p["name"], "Idle"))
                        == statuses.get(p["name"], "Idle")]
            offset, limit = request.get("offset", 0), request.get("limit", PAGE_LIMIT_MAX)
            names = matching[offset:offset + limit]
            page = {"offset": offset, "limit": limit, "matching": len(matching),
                    "peers": len(self._peers())}
        result = self._of_peers(set(names))
        if page is not None:
            result["page"] = page
        return {"ok": True, "result": result}

    def _owner(self, sa_id):
        ike_peer = {i["id"]: i["peer"] for i in self.status["ike_sas"]}
        if sa_id in ike_peer:
            return ike_peer[sa_id]
        for sa in self.status["sas"]:
            if sa["id"] == sa_id:
                return ike_peer.get(sa["ike_sa"])
        return None

    def _of_peers(self, names):
        ike_sas = [i for i in self.status["ike_sas"] if i["peer"] in names]
        ids = {i["id"] for i in ike_sas}
        result = {"ike_sas": ike_sas, "sas": [s for s in self.status["sas"] if s["ike_sa"] in ids]}
        if "daemon" in self.status:
            result["daemon"] = self.status["daemon"]
        return result

    def _summary(self):
        statuses = self._peer_statuses()
        by_status = {s: 0 for s in PEER_STATUSES}
        for peer in self._peers():
            by_status[statuses.get(peer["name"], "Idle")] += 1
        by_state = {}
        for ike in self.status["ike_sas"]:
            by_state[str(ike["state"])] = by_state.get(str(ike["state"]), 0) + 1
        return {"peers": len(self._peers()), "peers_by_status": by_status,
                "ike_sas": len(self.status["ike_sas"]), "ike_sas_by_state": by_state,
                "sas": len(self.status["sas"]), "admission": self.status.get("admission", {}),
                "daemon": self.status.get("daemon", {}),
                "clock_synchronized": self.clock_synchronized}


def _selection_problem(request):
    """What the daemon's control.py refuses in a status selection, or None."""
    for key in ("peer", "id", "filter"):
        if key in request and (not isinstance(request[key], str) or not request[key]):
            return "%r needs a non-empty string" % key
    if "status" in request and request["status"] not in PEER_STATUSES:
        return "'status' must be one of %s" % ", ".join(PEER_STATUSES)
    for key, low, high in (("offset", 0, None), ("limit", 1, PAGE_LIMIT_MAX)):
        value = request.get(key, low)
        if type(value) is not int or value < low or (high is not None and value > high):
            return "%r must be an integer from %d" % (key, low)
    return None
