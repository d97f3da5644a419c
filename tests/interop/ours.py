"""Our daemon (`python3 -m ikecore`) in the interop lab's namespace a: tests/support's runner,
started from the [[peer]] / [[connection]] tables the scenarios build (support.config).

The daemon runs with `--kernel=record` (the host kernel cannot hold ESP/AH SAs): what it would
install is read back with `kernel()` (the control socket's `{"cmd": "kernel"}`). Status comes from
`ikectl_status()` (the CLI users and the web UI rely on) or, when polling, `status()` straight from
the socket, which returns the same data.
"""
from support.config import Config, connection_table, peer_table
from support.daemon import Daemon, DaemonError  # noqa: F401  (interop's names)
from support.paths import FIRMWARE, REPO  # noqa: F401


def peer_entry(name, remote_gateway, local_address, proposals, psk, mode="main", act_as="both",
               local_id=None, remote_id=None, nat_t=True, dpd=None, lifetime_s=28800):
    """One [[peer]] table with every key the scenarios vary written out. IDs are (type, value)
    pairs or None, dpd a (delay_s, timeout_s) pair."""
    return peer_table(name, remote_gateway, local_address=local_address, phase1_mode=mode,
                      act_as=act_as, auth="psk", psk=psk, proposals=list(proposals),
                      lifetime_s=lifetime_s, nat_t=nat_t, local_id=local_id, remote_id=remote_id,
                      dpd=dpd)


def connection_entry(name, peer, local_net, remote_net, proposals, protocol="esp", pfs="none",
                     lifetime_s=3600):
    return connection_table(name, peer, local_net, remote_net, protocol=protocol,
                            proposals=list(proposals), pfs=pfs, lifetime_s=lifetime_s,
                            lifetime_kb=0)


def config(peers, connections, wan_interface="wan0", lan_interface="lo"):
    """The whole file for our side of the lab: wan0 its WAN, its LAN addresses on lo."""
    cfg = Config(wan_interface=wan_interface, lan_interface=lan_interface)
    cfg.peers.extend(peers)
    cfg.connections.extend(connections)
    return cfg


def config_text(peers, connections, wan_interface="wan0", lan_interface="lo"):
    return config(peers, connections, wan_interface, lan_interface).text()


class OurDaemon(Daemon):
    """support.daemon.Daemon in namespace `ns`, started from peer and connection tables."""

    def __init__(self, ns, workdir, name="ours", log_level="debug"):
        super().__init__(workdir, name=name, netns=ns, log_level=log_level)

    def start(self, peers, connections, extra_args=(), timeout_s=20):
        return super().start(config(peers, connections), extra_args, timeout_s)

    @property
    def proc(self):
        """The process (interop's old name for `process`)."""
        return self.process
