"""A stand-in with IkeCore's interface, for testing the daemon shell (driver, control, ctl).

It negotiates nothing: `initiate` makes an Activated IKE SA and one ESP SA pair at once,
`receive_datagram` answers b"ping" with b"pong" and raises on b"boom" (a core bug or
malformed input escaping the core), and a timer fires once after start so re-arming is seen.
"""
from ikecore.protocol import events, status
from ikecore.protocol.api import CoreApi


class FakeCore(CoreApi):
    """Implements the whole driver <-> core contract (ikecore.protocol.api.CoreApi)."""

    def __init__(self, settings, crypto, now):
        self.settings = settings
        self.started = now
        self.queue = []
        self.outbox = []
        self.ike_sas = {}
        self.sas = {}
        self.children = self.sas     # the driver reads child SAs by id (IkeCore.children)
        self.counter = 0
        self.timer = now + 0.2
        self.timer_fired = 0
        self.wall_offset = None
        self.counters = {}
        self.reqids = {}

    def _log(self, text, peer=None, level="info"):
        self.queue.append(events.Log(level, peer, text))

    def receive_datagram(self, data, local, remote, now):
        if data == b"boom":
            raise ValueError("fake core cannot parse this")
        if data == b"ping":
            self.outbox.append((b"pong:%s:%d" % (local[0].encode(), local[1]), local, remote))

    def handle_timer(self, now):
        if self.timer is not None and now >= self.timer:
            self.timer = None
            self.timer_fired += 1
            self._log("fake timer fired")

    def get_timer(self):
        return self.timer

    def initiate(self, connection_name, now):
        connection = self.settings.connections[connection_name]
        peer = self.settings.peers[connection.peer]
        self.counter += 1
        ike_id = "ike-%d" % self.counter
        self.ike_sas[ike_id] = {
            "id": ike_id, "peer": peer.name, "remote_gateway": peer.remote_gateway,
            "local_address": peer.local_address or "0.0.0.0", "status": "Activated", "state": 9,
            "mode": peer.phase1_mode, "role": "initiator",
            "algorithm": peer.proposals[0].describe(), "auth": peer.auth, "created": now,
            "lifetime_s": peer.lifetime_s, "nat_t": "none", "phase2_negotiations": 1,
            "last_error": None}
        for direction, spi in (("out", 0x1000 + self.counter), ("in", 0x2000 + self.counter)):
            sa = events.ChildSa(
                id="sa-%d-%s" % (self.counter, direction), ike_sa=ike_id, peer=peer.name,
                connection=connection.name, protocol="esp", direction=direction, spi=spi,
                src="192.0.2.1" if direction == "out" else peer.remote_gateway,
                dst=peer.remote_gateway if direction == "out" else "192.0.2.1",
                local_net=connection.local_net, remote_net=connection.remote_net,
                encr="aes128", encr_key=b"k" * 16, integ="sha1", integ_key=b"i" * 20,
                lifetime_s=connection.lifetime_s, lifetime_kb=0, reqid=7, created=now)
            self.sas[sa.id] = sa
            self.queue.append(events.InstallChildSa(sa))
        self.queue.append(events.IkeSaChanged(ike_id, "Activated", 9))
        self._log("IKE SA %s established" % ike_id, peer.name)

    def connection_for_traffic(self, src_ip, dst_ip):
        return None

    def gateway_address(self, peer):
        return peer.remote_gateway

    def learn_source_address(self, remote_ip, local_ip):
        pass

    def learn_gateway_address(self, peer_name, address, now, error=None):
        self._log("%s resolved to %s" % (peer_name, address or error), peer_name)

    def install_failed(self, sa_id, reason, now):
        self._log("install of %s failed: %s" % (sa_id, reason))
        return sa_id in self.sas

    def reqid(self, connection_name):
        if connection_name not in self.reqids:
            self.reqids[connection_name] = len(self.reqids) + 1
        return self.reqids[connection_name]

    def acquire(self, src_ip, dst_ip, now):
        self._log("acquire %s -> %s" % (src_ip, dst_ip))

    def expire(self, protocol, spi, dst, hard, now):
        self._log("expire %s 0x%x %s %s" % (protocol, spi, dst, hard))

    def delete(self, sa_id, now):
        if sa_id in self.ike_sas:
            del self.ike_sas[sa_id]
            doomed = [sa for sa in self.sas.values() if sa.ike_sa == sa_id]
        else:
            doomed = [self.sas[sa_id]]
        for sa in doomed:
            del self.sas[sa.id]
            self.queue.append(events.DeleteChildSa(sa, "deleted by request"))

    def down(self, peer_name, now):
        for ike_id in [i for i, sa in self.ike_sas.items() if sa["peer"] == peer_name]:
            self.delete(ike_id, now)

    def reconfigure(self, settings, now):
        self.settings = settings
        self._log("reconfigured")

    def datagrams_to_send(self):
        out, self.outbox = self.outbox, []
        return out

    def next_event(self):
        return self.queue.pop(0) if self.queue else None

    def select_peers(self, text=None, status=None):
        return [name for name in self.settings.peers
                if (not text or text in name)
                and (status is None or status == self._peer_status(name))]

    def _peer_status(self, name):
        return "Activated" if any(sa["peer"] == name for sa in self.ike_sas.values()) else "Idle"

    def child_sa(self, sa_id):
        return self.sas.get(sa_id)

    def peer_of(self, sa_id):
        if sa_id in self.ike_sas:
            return self.ike_sas[sa_id]["peer"]
        return self.sas[sa_id].peer if sa_id in self.sas else None

    def summary(self):
        by_status = {"Activated": 0, "Negotiating": 0, "Idle": 0}
        for name in self.settings.peers:
            by_status[self._peer_status(name)] += 1
        return {"peers": len(self.settings.peers), "peers_by_status": by_status,
                "ike_sas": len(self.ike_sas), "ike_sas_by_state": {"9": len(self.ike_sas)},
                "sas": len(self.sas), "admission": {}}

    def status(self, now, peers=None):
        ike = []
        for sa in self.ike_sas.values():
            if peers is not None and sa["peer"] not in peers:
                continue
            entry = dict(sa)
            entry["elapsed_s"] = int(now - entry.pop("created"))
            ike.append(entry)
        sas = [status.child_row(sa, now) for sa in self.sas.values()
               if peers is None or sa.peer in peers]     # the core's own row formatting
        return {"ike_sas": ike, "sas": sas}
