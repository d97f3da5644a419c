"""`ikectl up PEER` costs what that peer has, not what is configured (docs/performance.md, "What
is left" 3): the core marks only that peer's SAs for its timers, the driver asks the kernel for
one route and finds the peer's connections without visiting all of them. Counted, not timed."""
import asyncio

from daemon_fake_core import FakeCore
from ikecore import config, driver as driver_module
from ikecore.protocol import proposals
from ikecore.protocol.core import IkeCore
from ikecore.crypto_cryptography import CryptographyProvider
from ikecore.driver import Driver
from ikecore.kernel import RecordingBackend
from ikecore.log import VpnLog
from support.config import Config
from ikecore.protocol.settings import Connection, Peer, Settings

PEERS = 30     # fewer than admission.MAX_INITIATING: every `up` starts at once


def _many_peers(count):
    peers, conns = {}, {}
    for i in range(count):
        name = "p%d" % i
        peers[name] = Peer(name, "198.51.100.%d" % (i + 1),
                           [proposals.parse_ike("aes128-sha1-modp1024")], psk=b"k",
                           local_address="192.0.2.1")
        conns["c%d" % i] = Connection("c%d" % i, name, "192.168.%d.0/24" % i, "10.%d.0.0/16" % i,
                                      [proposals.parse_child("aes128-sha1", "esp")])
    return Settings(peers=peers, connections=conns)


def test_initiate_marks_only_the_peers_own_sas():
    core = IkeCore(_many_peers(PEERS), CryptographyProvider(), 1000.0)
    for i in range(PEERS - 1):                      # every other tunnel is negotiating
        core.initiate("c%d" % i, 1000.0)
    core.datagrams_to_send()
    marked = []
    real_mark = core._timers.mark
    core._timers.mark = lambda owner: (marked.append(owner), real_mark(owner))
    core.initiate("c%d" % (PEERS - 1), 1001.0)      # up of the last peer
    assert marked and set(sa.peer.name for sa in marked) == {"p%d" % (PEERS - 1)}
    assert len(core.datagrams_to_send()) == 1       # its main mode message 1, nobody else's
    # A second up of a peer already negotiating changes nothing and marks nothing more.
    marked[:] = []
    core.initiate("c0", 1002.0)
    assert marked == [] and core.datagrams_to_send() == []
    assert core.get_timer() == core.deadline_by_scan()


def test_the_core_finds_a_peers_connections_and_gateway_through_its_index():
    settings = _many_peers(3)
    core = IkeCore(settings, CryptographyProvider(), 0.0)
    for name in settings.peers:
        assert core.connections_of(name) == settings.connections_of(name)
    assert core.connections_of("nobody") == []
    assert core.peers.peer_name("198.51.100.2") == "p1" and core.peers.peer_name("203.0.113.9") is None
    # reconfigure re-indexes: p1's connection moves to p2.
    new = _many_peers(3)
    c1 = new.connections["c1"]
    new.connections["c1"] = Connection("c1", "p2", c1.local_net, c1.remote_net, c1.proposals)
    core.reconfigure(new, 1.0)
    assert [c.name for c in core.connections_of("p2")] == ["c1", "c2"]
    assert core.connections_of("p1") == []


def five_peers():
    cfg = Config()
    for i in range(5):
        cfg.peer("p%d" % i, "198.51.100.%d" % (i + 1), act_as="both", psk="x")
        cfg.connection("c%d" % i, "p%d" % i, "192.168.%d.0/24" % i, "10.%d.0.0/16" % i)
    return cfg


CONFIG = five_peers().text()


class LearningCore(FakeCore):
    """The stand-in core, also recording what the driver tells it about routes."""

    def __init__(self, *args):
        super().__init__(*args)
        self.learned = []

    def learn_source_address(self, remote_ip, local_ip):
        self.learned.append((remote_ip, local_ip))


def test_driver_up_looks_up_one_route_and_initiates_that_peers_connections(monkeypatch):
    lookups = []
    monkeypatch.setattr(driver_module, "route_source",
                        lambda remote_ip: lookups.append(remote_ip) or "192.0.2.1")

    async def main():
        loop = asyncio.get_running_loop()
        settings = config.parse(CONFIG)
        core = LearningCore(settings, None, loop.time())
        driver = Driver(core, settings, RecordingBackend(), VpnLog(stderr=False, syslog=False),
                        ports=(0, 0), loop=loop)
        driver._open_endpoints = lambda: None      # no sockets: nothing is sent here
        await driver.start()
        try:
            assert len(lookups) == 5               # start: every peer without local_address
            del lookups[:], core.learned[:]
            assert driver.up("p3") == {"initiated": ["c3"]}
            assert lookups == ["198.51.100.4"]
            assert core.learned == [("198.51.100.4", "192.0.2.1")]
            assert driver.up("c1") == {"initiated": ["c1"]}     # a connection by name
            assert lookups == ["198.51.100.4", "198.51.100.2"]
            assert sorted(sa["peer"] for sa in driver.status()["ike_sas"]) == ["p1", "p3"]
        finally:
            await driver.stop()
    asyncio.run(main())


def test_an_acquire_looks_up_its_own_peers_route_and_timers_refresh_a_batch(monkeypatch):
    lookups = []
    monkeypatch.setattr(driver_module, "route_source",
                        lambda remote_ip: lookups.append(remote_ip) or "192.0.2.1")
    monkeypatch.setattr(driver_module, "ROUTE_REFRESH_BATCH", 2)

    class RoutingCore(LearningCore):
        def connection_for_traffic(self, src_ip, dst_ip):
            return self.settings.connections["c2"] if dst_ip.startswith("10.2.") else None

    async def main():
        loop = asyncio.get_running_loop()
        settings = config.parse(CONFIG)
        core = RoutingCore(settings, None, loop.time())
        driver = Driver(core, settings, RecordingBackend(), VpnLog(stderr=False, syslog=False),
                        ports=(0, 0), loop=loop)
        driver._open_endpoints = lambda: None
        await driver.start()
        try:
            del lookups[:]
            driver.acquire("192.168.2.7", "10.2.0.9")
            assert lookups == ["198.51.100.3"]             # c2's peer, nobody else's
            del lookups[:]
            driver.acquire("192.168.9.7", "172.31.0.1")    # no connection: no lookup at all
            assert lookups == []
            for _ in range(3):                             # three refreshes, two peers each
                driver._learn_source_addresses(loop.time())
            assert lookups == ["198.51.100.%d" % n for n in (1, 2, 3, 4, 5, 1)]
        finally:
            await driver.stop()
    asyncio.run(main())


def test_the_connection_for_traffic_is_the_first_in_the_file_that_covers_it():
    peers = {"p": Peer("p", "198.51.100.1", [proposals.parse_ike("aes128-sha1-modp1024")],
                       psk=b"k")}
    child = [proposals.parse_child("aes128-sha1", "esp")]
    conns = {}
    for name, local, remote in (("wide", "192.168.0.0/16", "10.0.0.0/8"),
                                ("narrow", "192.168.1.0/24", "10.1.0.0/16"),
                                ("other-lan", "192.168.2.0/24", "10.2.0.0/16"),
                                ("host", "192.168.3.0/24", "10.3.3.3")):
        conns[name] = Connection(name, "p", local, remote, child)
    core = IkeCore(Settings(peers=peers, connections=conns), CryptographyProvider(), 0.0)
    pick = lambda src, dst: getattr(core.connection_for_traffic(src, dst), "name", None)
    assert pick("192.168.1.5", "10.1.2.3") == "wide"        # first in the file wins
    assert pick("192.168.2.5", "10.2.0.1") == "wide"
    assert pick("172.16.0.1", "10.1.2.3") is None           # the local side must match too
    assert pick("192.168.3.9", "10.3.3.3") == "wide"
    assert pick("192.168.3.9", "11.0.0.1") is None
    assert pick("192.168.3.9", "not an address") is None
    del conns["wide"]
    core.reconfigure(Settings(peers=peers, connections=conns), 1.0)
    assert pick("192.168.1.5", "10.1.2.3") == "narrow"
    assert pick("192.168.2.5", "10.1.2.3") is None
    assert pick("192.168.3.9", "10.3.3.3") == "host"
