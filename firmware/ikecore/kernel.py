"""Kernel backends: where negotiated SAs and their policies go (CPython only).

The driver owns one backend. `KernelBackend` is the interface; `RecordingBackend`
(`--kernel=record`) only remembers what it was told, for host tests (the host kernel has no ESP)
and for the control socket's `kernel` request. `ikecore.xfrm.XfrmBackend` (`--kernel=xfrm`,
imported lazily by __main__: pyroute2 is slow to import) implements the same interface on NETLINK_XFRM.

Kernel -> daemon events are callbacks the driver sets before `start`:
  backend.on_acquire(src_ip, dst_ip)               a packet hit a policy that has no SA yet
  backend.on_expire(protocol, spi, dst, hard)      protocol "esp"/"ah", spi int, dst gateway text
They are called from the event loop (never from another thread).
"""


class KernelBackend:
    """The interface (docs/architecture.md). Connections are ikecore.settings.Connection,
    SAs ikecore.events.ChildSa. All methods are synchronous and quick (a netlink round trip)."""

    name = "abstract"

    def __init__(self):
        self.on_acquire = None
        self.on_expire = None

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
        self.policies[connection.name] = {
            "connection": connection.name, "local_net": connection.local_net,
            "remote_net": connection.remote_net, "protocol": connection.protocol,
            "local_gw": local_gw, "remote_gw": remote_gw, "reqid": reqid}
        self._remember(("install_policies", connection.name))

    def remove_policies(self, connection):
        self.policies.pop(connection.name, None)
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
                "history": [list(entry) for entry in self.history[-200:]]}
