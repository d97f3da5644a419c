"""Kernel backends: where negotiated SAs and their policies go (CPython only).

The driver owns one backend. `KernelBackend` is the interface; `RecordingBackend`
(`--kernel=record`) only remembers what it was told, for host tests (the host kernel has no ESP)
and for the control socket's `kernel` request. `ikecore.xfrm.XfrmBackend` (`--kernel=xfrm`,
imported lazily by __main__: pyroute2 is slow to import) implements the same interface on NETLINK_XFRM.

Kernel -> daemon events are callbacks the driver sets before `start`:
  backend.on_acquire(src_ip, dst_ip)               a packet hit a policy that has no SA yet
  backend.on_expire(protocol, spi, dst, hard)      protocol "esp"/"ah", spi int, dst gateway text
They are called from the event loop (never from another thread).

Bypass policies (`bypass_policies`): a tunnel whose remote_net covers its own local networks
(remote_net = "0.0.0.0/0", a branch sending everything to head office) would swallow the LAN's own
traffic, the router's answers to its LAN (the status page) and, when it also covers the peer's
gateway, IKE and ESP to it. As strongSwan's passthrough policies and its bypass-lan plugin do,
such traffic gets policies with no template ("pass in clear") at a priority above every tunnel's.
A bypass is shared by every connection that needs it and removed with the last of them.
"""
import collections
import ipaddress

IKE_PORTS = (500, 4500)          # our IKE and NAT-T sockets' ports (driver.Driver ports)
IPPROTO_UDP, IPPROTO_ESP = 17, 50
ANY = "0.0.0.0/0"

# dir: "out" / "in" / "fwd"; proto 0 = any; a port 0 = any
Bypass = collections.namedtuple("Bypass", ("dir", "src", "dst", "proto", "sport", "dport"))


def bypass_policies(connection, remote_gw):
    """The bypasses connection's tunnel needs (a list of Bypass, none for plain LAN-to-LAN):
    - its local_net inside its remote_net: local_net <-> every local network of its
      [[connection]] (settings.Connection.local_nets) in out/in/fwd, so the LAN, and the router
      talking to the LAN (its own address is in local_net), stay off the tunnel;
    - the peer's gateway inside remote_net: IKE (UDP from/to our ports 500 and 4500) and ESP
      between us and the gateway, which must reach it outside the tunnel they build."""
    wanted = []
    remote = ipaddress.IPv4Network(connection.remote_net)
    local = ipaddress.IPv4Network(connection.local_net)
    if local != remote and local.subnet_of(remote):
        for other in connection.local_nets:
            wanted.append(Bypass("out", connection.local_net, other, 0, 0, 0))
            wanted.append(Bypass("in", other, connection.local_net, 0, 0, 0))
            wanted.append(Bypass("fwd", other, connection.local_net, 0, 0, 0))
    if remote_gw and ipaddress.IPv4Address(remote_gw) in remote:
        gateway = "%s/32" % remote_gw
        for port in IKE_PORTS:
            wanted.append(Bypass("out", ANY, gateway, IPPROTO_UDP, port, 0))
            wanted.append(Bypass("in", gateway, ANY, IPPROTO_UDP, 0, port))
        wanted.append(Bypass("out", ANY, gateway, IPPROTO_ESP, 0, 0))
        wanted.append(Bypass("in", gateway, ANY, IPPROTO_ESP, 0, 0))
    return wanted


def describe_bypass(bypass):
    """A Bypass as JSON-able data (the recorded and the snapshot form)."""
    return dict(bypass._asdict())


class KernelBackend:
    """The interface (docs/architecture.md). Connections are ikecore.protocol.settings.Connection,
    SAs ikecore.protocol.events.ChildSa. All methods are synchronous and quick (a netlink round trip)."""

    name = "abstract"

    def __init__(self):
        self.on_acquire = None
        self.on_expire = None
        self.bypass_users = {}       # Bypass -> names of the connections needing it
        self.bypasses_of = {}        # connection name -> [Bypass]

    async def start(self, loop):
        """Open the kernel channel and subscribe to acquire/expire messages."""

    def install_policies(self, connection, local_gw, remote_gw, reqid):
        """out/in/fwd policies of connection (local_net <-> remote_net) with a template of
        connection.protocol between the gateways; local_gw may be None (kernel picks)."""
        raise NotImplementedError

    def remove_policies(self, connection):
        raise NotImplementedError

    def install_sa(self, sa):
        raise NotImplementedError

    def delete_sa(self, sa):
        raise NotImplementedError

    def sa_stats(self, keys=None):
        """{(protocol, spi, dst): {"bytes", "packets", "errored_packets"}} for our SAs, or only
        for these keys (a page of the status: the cost is the page's, not every SA's)."""
        raise NotImplementedError

    def flush(self):
        """Remove our own SAs and policies (at start and at stop)."""
        raise NotImplementedError

    def snapshot(self):
        """What is installed, as JSON-able data (the control socket's `kernel` request)."""
        return {"backend": self.name}

    # --- the shared bypasses: the concrete backends put them in the kernel
    def claim_bypasses(self, connection, remote_gw):
        """Note that connection needs its bypass_policies -> (all of them: to install, which
        is harmless for those already in; the ones it held before and nobody needs now)."""
        wanted = bypass_policies(connection, remote_gw)
        before = self.bypasses_of.get(connection.name, [])
        self.bypasses_of[connection.name] = wanted
        for bypass in wanted:
            self.bypass_users.setdefault(bypass, set()).add(connection.name)
        return wanted, self._drop_users(connection.name, [b for b in before if b not in wanted])

    def release_bypasses(self, connection_name):
        """The connection's policies are gone -> the bypasses nobody needs any more."""
        return self._drop_users(connection_name, self.bypasses_of.pop(connection_name, []))

    def _drop_users(self, name, bypasses):
        unused = []
        for bypass in bypasses:
            users = self.bypass_users.get(bypass, set())
            users.discard(name)
            if not users:
                self.bypass_users.pop(bypass, None)
                unused.append(bypass)
        return unused

    def forget_bypasses(self):
        self.bypass_users.clear()
        self.bypasses_of.clear()

    def close(self):
        pass


def sa_key(sa):
    """The key of a ChildSa in sa_stats() and the kernel: (protocol, spi, dst)."""
    return (sa.protocol, sa.spi, sa.dst)


def describe_sa(sa):
    """A ChildSa as JSON-able data, keys as hex (they are test keys in record mode only)."""
    data = {}
    for name in sa.__slots__:
        value = getattr(sa, name)
        if isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, tuple):
            value = list(value)
        data[name] = value
    data["spi_hex"] = "0x%08x" % sa.spi if isinstance(sa.spi, int) else sa.spi
    return data


HISTORY_KEEP = 10000


class RecordingBackend(KernelBackend):
    """Remembers installs and deletes; counts nothing (byte counters stay 0)."""

    name = "record"

    def __init__(self):
        super().__init__()
        self.sas = {}            # sa_key -> ChildSa
        self.policies = {}       # connection name -> {"local_net", "remote_net", ...}
        self.history = []        # ("install_sa" | "delete_sa" | "install_policies" | ..., detail)

    def install_policies(self, connection, local_gw, remote_gw, reqid):
        self.claim_bypasses(connection, remote_gw)     # bypass_users: what is "installed"
        self.policies[connection.name] = {
            "connection": connection.name, "local_net": connection.local_net,
            "remote_net": connection.remote_net, "protocol": connection.protocol,
            "local_gw": local_gw, "remote_gw": remote_gw, "reqid": reqid}
        self._remember(("install_policies", connection.name))

    def remove_policies(self, connection):
        self.policies.pop(connection.name, None)
        self.release_bypasses(connection.name)
        self._remember(("remove_policies", connection.name))

    def install_sa(self, sa):
        self.sas[sa_key(sa)] = sa
        self._remember(("install_sa", sa.id))

    def delete_sa(self, sa):
        self.sas.pop(sa_key(sa), None)
        self._remember(("delete_sa", sa.id))

    def sa_stats(self, keys=None):
        wanted = self.sas if keys is None else [key for key in keys if key in self.sas]
        return dict((key, {"bytes": 0, "packets": 0, "errored_packets": 0}) for key in wanted)

    def flush(self):
        self.sas.clear()
        self.policies.clear()
        self.forget_bypasses()
        self._remember(("flush", None))

    def _remember(self, entry):
        """Bounded: a daemon recording for days keeps the newest HISTORY_KEEP entries."""
        self.history.append(entry)
        if len(self.history) > 2 * HISTORY_KEEP:
            del self.history[:-HISTORY_KEEP]

    def snapshot(self):
        return {"backend": self.name,
                "sas": [describe_sa(sa) for sa in self.sas.values()],
                "policies": list(self.policies.values()),
                "bypass": [describe_bypass(b) for b in self.bypass_users],
                "history": [list(entry) for entry in self.history[-200:]]}
