"""The driver <-> core contract: everything the driver (driver.py) may call on a core.

IkeCore (core.py) implements it, and so does the daemon tests' stand-in
(tests/unit/daemon_fake_core.py); tests/unit/test_core_contract.py checks that both define
every method below with these parameters. The driver calls nothing else and never asks
whether a method exists. `now` is always the driver's monotonic clock (loop.time()).
Portable: MicroPython subset (a plain base class, no abc).
"""


class CoreApi:
    """What a core offers its driver. Attributes: wall_offset (wall-clock minus `now`, set by
    the driver once NTP has set the clock; None until then: certificate dates not enforced),
    counters ({"malformed", "unknown_sa", "retransmissions", fragments.py's ...}: the status'
    daemon counters)."""

    wall_offset = None
    counters = None

    # -- inputs -------------------------------------------------------------------------------
    def receive_datagram(self, data, local, remote, now):
        """One UDP payload from remote (ip, port) to local (ip, port); port 4500 data starts
        with the non-ESP marker. Bad input is the core's business: it raises for bugs only."""
        raise NotImplementedError

    def handle_timer(self, now):
        """The deadline of get_timer() has come."""
        raise NotImplementedError

    def initiate(self, connection_name, now):
        """ikectl up / act_as initiator: bring the connection up. KeyError: unknown name."""
        raise NotImplementedError

    def acquire(self, src_ip, dst_ip, now):
        """Kernel ACQUIRE: traffic src -> dst needs a tunnel."""
        raise NotImplementedError

    def expire(self, protocol, spi, dst, hard, now):
        """Kernel soft/hard EXPIRE of an SA ("esp"/"ah", spi int, destination address)."""
        raise NotImplementedError

    def delete(self, sa_id, now):
        """Delete an IKE SA or child SA by id. KeyError: unknown id."""
        raise NotImplementedError

    def down(self, peer_name, now):
        """Tear down everything with this peer and stop initiating to it."""
        raise NotImplementedError

    def reconfigure(self, settings, now):
        """New settings; tunnels whose settings did not change stay up."""
        raise NotImplementedError

    def learn_gateway_address(self, peer_name, address, now, error=None):
        """The answer to events.ResolveGateway: the address, or None and the resolver's words."""
        raise NotImplementedError

    def learn_source_address(self, remote_ip, local_ip):
        """The kernel's route: we send to remote_ip from local_ip (None: unknown)."""
        raise NotImplementedError

    def install_failed(self, sa_id, reason, now):
        """The kernel refused InstallChildSa(sa_id) (reason: its words). -> False when the id
        is unknown or already gone."""
        raise NotImplementedError

    # -- outputs ------------------------------------------------------------------------------
    def datagrams_to_send(self):
        """-> [(data, local, remote)] queued since the last call (port 4500: marker included)."""
        raise NotImplementedError

    def next_event(self):
        """-> the next events.* object, or None when none is queued."""
        raise NotImplementedError

    def get_timer(self):
        """-> the earliest deadline (absolute, like now), or None."""
        raise NotImplementedError

    # -- questions ----------------------------------------------------------------------------
    def status(self, now, peers=None):
        """-> {"ike_sas": [...], "sas": [...]} (DESIGN.md's shape; bytes/packets/errored 0,
        the driver fills them from the kernel), or only those peers' (peers: names)."""
        raise NotImplementedError

    def summary(self):
        """-> the counts of the control socket's "summary" (with "admission")."""
        raise NotImplementedError

    def select_peers(self, text=None, status=None):
        """-> configured peer names, file order, whose name or gateway contains text and whose
        status ("Activated" / "Negotiating" / "Idle") is status; None: any."""
        raise NotImplementedError

    def peer_of(self, sa_id):
        """-> the peer name owning this IKE SA or SA id, or None."""
        raise NotImplementedError

    def child_sa(self, sa_id):
        """-> the events.ChildSa with this id (kernel.sa_key of it keys the kernel counters),
        or None."""
        raise NotImplementedError

    def connection_for_traffic(self, src_ip, dst_ip):
        """-> the settings.Connection an ACQUIRE of src -> dst would start, or None."""
        raise NotImplementedError

    def gateway_address(self, peer):
        """-> where the peer (settings.Peer) is now: configured, resolved, or where a dynamic
        peer's IKE SA is; None when unknown."""
        raise NotImplementedError

    def reqid(self, connection_name):
        """-> the reqid of this connection's SAs (ChildSa.reqid) and policies, stable."""
        raise NotImplementedError
