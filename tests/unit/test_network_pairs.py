"""Several networks per connection (one quick mode and SA pair per local x remote pair, as
strongSwan's IKEv1 does) and remote_net = 0.0.0.0/0: the sans-IO core on settings made by
config.parse, the config errors, and the bypass policies the kernel backend is asked for."""
import pytest

from ikecore import config, kernel
from ikecore.kernel import Bypass, RecordingBackend, bypass_policies
from support.config import Config

LOCALS_A = ["192.168.1.0/24", "192.168.5.0/24"]
LOCALS_B = ["10.2.0.0/24", "10.3.0.0/24"]


def toml(local, remote, local_net, remote_net, dpd=None, lifetime=3600):
    cfg = Config()
    cfg.peer("peer", remote, local_address=local, psk="secret", proposals=["aes128-sha1-modp1024"],
             dpd=dpd)
    cfg.connection("lan", "peer", local_net, remote_net, lifetime_s=lifetime)
    return cfg.text()


@pytest.fixture
def pairs_link(ike_kit):
    def make(nets_a=LOCALS_A, nets_b=LOCALS_B, **options):
        a = config.parse(toml(ike_kit.GW_A, ike_kit.GW_B, nets_a, nets_b, **options))
        b = config.parse(toml(ike_kit.GW_B, ike_kit.GW_A, nets_b, nets_a, **options))
        return ike_kit.IkeLink(a, b)
    return make


def up(link, group="lan"):
    for pair in link.a.settings.pairs_of(group):
        link.a.initiate(pair.name, link.clock.now)
    link.flush()


def pairs(rows):
    """(local_net, remote_net) -> the directions of its SA rows."""
    found = {}
    for row in rows:
        found.setdefault((row["local_net"], row["remote_net"]), []).append(row["direction"])
    return dict((k, sorted(v)) for k, v in found.items())


ALL_PAIRS_A = {(l, r): ["incoming", "outgoing"] for l in LOCALS_A for r in LOCALS_B}


def test_config_makes_one_pair_connection_per_local_and_remote_network():
    settings = config.parse(toml("192.0.2.1", "198.51.100.2", LOCALS_A, LOCALS_B))
    got = [(c.name, c.group, c.local_net, c.remote_net) for c in settings.connections.values()]
    assert got == [("lan#1", "lan", "192.168.1.0/24", "10.2.0.0/24"),
                   ("lan#2", "lan", "192.168.1.0/24", "10.3.0.0/24"),
                   ("lan#3", "lan", "192.168.5.0/24", "10.2.0.0/24"),
                   ("lan#4", "lan", "192.168.5.0/24", "10.3.0.0/24")]
    assert [c.name for c in settings.pairs_of("lan")] == ["lan#1", "lan#2", "lan#3", "lan#4"]
    # the single-string form is exactly as before: one connection under its own name
    single = config.parse(toml("192.0.2.1", "198.51.100.2", "192.168.1.0/24", "10.2.0.0/24"))
    (conn,) = single.connections.values()
    assert (conn.name, conn.local_net, conn.remote_net, conn.local_nets) == (
        "lan", "192.168.1.0/24", "10.2.0.0/24", ("192.168.1.0/24",))


def test_one_quick_mode_per_pair_and_a_status_row_pair_each(pairs_link):
    link = pairs_link()
    up(link)
    for name in "AB":
        (ike,) = link.ike(name)
        assert ike["state"] == 9 and ike["phase2_negotiations"] == 4
        assert len(link.sas(name)) == 8
    assert pairs(link.sas("A")) == ALL_PAIRS_A
    assert pairs(link.sas("B")) == {(r, l): d for (l, r), d in ALL_PAIRS_A.items()}
    # each row names its pair connection; one reqid per pair (its own kernel policies)
    by_conn = {}
    for row in link.sas("A"):
        by_conn.setdefault(row["connection"], set()).add((row["local_net"], row["remote_net"]))
    assert sorted(by_conn) == ["lan#1", "lan#2", "lan#3", "lan#4"]
    assert all(len(nets) == 1 for nets in by_conn.values())
    assert len({c.reqid for c in link.installed("A")}) == 4
    # another "up" of the whole group changes nothing
    up(link)
    assert len(link.sas("A")) == 8


def test_our_quick_modes_run_one_at_a_time_per_ike_sa(pairs_link):
    """charon keeps the state of only a few quick modes per IKE SA (core.QUICK_MODES_AT_ONCE):
    the other pairs wait for the one under way."""
    link = pairs_link()
    link.a.initiate("lan#1", link.clock.now)
    link.flush()
    for name in ("lan#2", "lan#3", "lan#4"):
        link.a.initiate(name, link.clock.now)
    link.a.initiate("lan#3", link.clock.now)                  # already waiting: not twice
    (sa,) = link.a.ike_sas.values()
    under_way = [qm for qm in sa.quick_modes.values() if not qm.done and not qm.failed]
    assert [qm.connection.name for qm in under_way] == ["lan#2"]
    assert [conn.name for conn, _ in sa.qm_waiting] == ["lan#3", "lan#4"]
    link.flush()
    assert sa.qm_waiting == [] and len(link.sas("A")) == 8


def test_acquire_starts_only_the_pair_the_packet_belongs_to(pairs_link):
    link = pairs_link()
    link.a.acquire("192.168.5.7", "10.3.0.9", link.clock.now)
    link.flush()
    assert pairs(link.sas("A")) == {("192.168.5.0/24", "10.3.0.0/24"): ["incoming", "outgoing"]}
    link.a.acquire("192.168.1.7", "10.2.0.9", link.clock.now)
    link.flush()
    assert len(pairs(link.sas("A"))) == 2
    assert link.ike("A")[0]["phase2_negotiations"] == 2        # under the same IKE SA


def test_each_pair_rekeys_and_is_deleted_on_its_own(pairs_link):
    link = pairs_link(lifetime=600)
    up(link)
    old = {s["spi"] for s in link.sas("A")}
    link.step(600 - 60 + 2)
    for name in "AB":
        assert link.ike(name)[0]["phase2_negotiations"] == 8     # every pair renewed
        assert len(link.sas(name)) == 16
    link.step(60)
    for name in "AB":
        assert len(link.sas(name)) == 8 and not old & {s["spi"] for s in link.sas(name)}
    # deleting one SA takes its pair down on both ends, the three other pairs stay
    victim = [s for s in link.sas("A") if s["remote_net"] == "10.3.0.0/24"
              and s["local_net"] == "192.168.5.0/24"][0]
    link.a.delete(victim["id"], link.clock.now)
    link.flush()
    expected = dict(ALL_PAIRS_A)
    del expected[("192.168.5.0/24", "10.3.0.0/24")]
    assert pairs(link.sas("A")) == expected
    assert len(link.sas("B")) == 6
    # traffic of that pair brings it back alone
    link.a.acquire("192.168.5.1", "10.3.0.1", link.clock.now)
    link.flush()
    assert pairs(link.sas("A")) == ALL_PAIRS_A


def test_dead_peer_takes_every_pair_down_and_all_come_back(pairs_link):
    link = pairs_link(dpd=(10, 30))
    up(link)
    link.step(45, drop=lambda who, n, d: who == "B")
    assert any("dead peer detection" in e for e in link.logs("A", "error"))
    assert len(link.deleted("A")) == 8
    link.step(120)                          # B answers again: A's new attempt succeeds
    assert link.ike("A")[-1]["state"] == 9
    assert pairs(link.sas("A")) == ALL_PAIRS_A


def test_all_traffic_to_the_hub_negotiates_0_0_0_0_slash_0(pairs_link):
    """The branch sends everything (remote_net 0.0.0.0/0), the hub's mirror is local_net
    0.0.0.0/0: the quick mode carries the default route as a subnet ID."""
    link = pairs_link("192.168.1.0/24", "0.0.0.0/0")
    up(link)
    assert pairs(link.sas("A")) == {("192.168.1.0/24", "0.0.0.0/0"): ["incoming", "outgoing"]}
    assert pairs(link.sas("B")) == {("0.0.0.0/0", "192.168.1.0/24"): ["incoming", "outgoing"]}
    # anything the LAN sends is this tunnel's
    assert link.a.connection_for_traffic("192.168.1.9", "8.8.8.8").name == "lan"
    assert link.a.connection_for_traffic("192.168.2.9", "8.8.8.8") is None


# --- config errors name the key ------------------------------------------------------------------
@pytest.mark.parametrize("local_net, remote_net, key, text", [
    ('"192.168.1.0/24"', '"192.168.1.0/24"', "connection[0].remote_net",
     "overlaps local_net 192.168.1.0/24"),
    ('"192.168.0.0/16"', '"192.168.1.0/24"', "connection[0].remote_net", "lies inside it"),
    ('"0.0.0.0/0"', '"0.0.0.0/0"', "connection[0].remote_net", "the same network"),
    ('["192.168.1.0/24", "192.168.1.0/24"]', '"0.0.0.0/0"', "connection[0].local_net[1]",
     "listed twice"),
    ('["192.168.1.0/24", "192.168.1.64/26"]', '"0.0.0.0/0"', "connection[0].local_net[1]",
     "overlaps 192.168.1.0/24 (connection[0].local_net[0])"),
    ('"192.168.1.0/24"', '["10.0.0.0/8", "192.168.1.0/24"]', "connection[0].remote_net[1]",
     "overlaps local_net"),
    ('"192.168.1.0/24"', '[]', "connection[0].remote_net", "at least one network"),
    ('"192.168.1.0/24"', '["10.1.0.0/16", "10.2.0.1/16"]', "connection[0].remote_net[1]",
     "host bits set"),
    ('"192.168.1.0/24"', '["10.1.0.0/16", 7]', "connection[0].remote_net[1]", "must be a string"),
    ('"192.168.1.0/24"', "[%s]" % ", ".join('"10.%d.0.0/16"' % i for i in range(17)),
     "connection[0].remote_net", "at most 16 networks"),
])
def test_bad_networks_are_refused_naming_the_key(local_net, remote_net, key, text):
    doc = toml("192.0.2.1", "198.51.100.2", "X", "Y").replace('"X"', local_net).replace('"Y"', remote_net)
    with pytest.raises(config.ConfigError) as info:
        config.parse(doc)
    assert info.value.key == key and text in info.value.message, str(info.value)


def test_accepted_overlaps_all_traffic_hub_side_and_a_covering_remote_net():
    for local_net, remote_net in (("192.168.1.0/24", "0.0.0.0/0"), ("0.0.0.0/0", "192.168.1.0/24"),
                                  ("10.1.0.0/24", "10.0.0.0/8")):
        config.parse(toml("192.0.2.1", "198.51.100.2", local_net, remote_net))


def test_the_same_pair_in_two_connections_is_refused():
    doc = toml("192.0.2.1", "198.51.100.2", ["192.168.1.0/24", "192.168.5.0/24"], "0.0.0.0/0")
    doc += '\n[[connection]]\nname = "other"\npeer = "peer"\nlocal_net = "192.168.5.0/24"\n' \
           'remote_net = "0.0.0.0/0"\n'
    with pytest.raises(config.ConfigError) as info:
        config.parse(doc)
    assert info.value.key == "connection[1]" and "'lan' already tunnels 192.168.5.0/24" in str(info.value)


# --- the bypass policies the kernel backend installs ------------------------------------------------
def settings_of(local_net, remote_net):
    return config.parse(toml("192.0.2.1", "198.51.100.2", local_net, remote_net))


def test_no_bypass_for_a_plain_lan_to_lan_tunnel_or_the_hub_side():
    for local_net, remote_net in (("192.168.1.0/24", "10.2.0.0/24"), ("0.0.0.0/0", "192.168.1.0/24")):
        (conn,) = settings_of(local_net, remote_net).connections.values()
        assert bypass_policies(conn, "198.51.100.2") == []


def test_all_traffic_bypasses_the_lan_among_its_networks_and_ike_esp_to_the_gateway():
    settings = settings_of(["192.168.1.0/24", "192.168.5.0/24"], "0.0.0.0/0")
    backend = RecordingBackend()
    for i, conn in enumerate(settings.connections.values()):
        backend.install_policies(conn, "192.0.2.1", "198.51.100.2", i + 1)
    lan = sorted((b.dir, b.src, b.dst) for b in backend.bypass_users if b.proto == 0)
    nets = ["192.168.1.0/24", "192.168.5.0/24"]
    assert lan == sorted([("out", s, d) for s in nets for d in nets] +
                         [("in", s, d) for s in nets for d in nets] +
                         [("fwd", s, d) for s in nets for d in nets])
    gw = "198.51.100.2/32"
    ike = sorted(b for b in backend.bypass_users if b.proto)
    assert ike == sorted([Bypass("out", "0.0.0.0/0", gw, 17, 500, 0), Bypass("in", gw, "0.0.0.0/0", 17, 0, 500),
                          Bypass("out", "0.0.0.0/0", gw, 17, 4500, 0), Bypass("in", gw, "0.0.0.0/0", 17, 0, 4500),
                          Bypass("out", "0.0.0.0/0", gw, 50, 0, 0), Bypass("in", gw, "0.0.0.0/0", 50, 0, 0)])
    snapshot = backend.snapshot()["bypass"]
    assert {"dir": "out", "src": "0.0.0.0/0", "dst": gw, "proto": 17, "sport": 500, "dport": 0} in snapshot
    # shared: the IKE bypass stays while either pair is installed
    first, second = settings.connections.values()
    backend.remove_policies(first)
    assert Bypass("out", "0.0.0.0/0", gw, 17, 500, 0) in backend.bypass_users
    assert Bypass("out", "192.168.1.0/24", "192.168.1.0/24", 0, 0, 0) not in backend.bypass_users
    backend.remove_policies(second)
    assert backend.bypass_users == {} and backend.snapshot()["bypass"] == []


def test_a_reinstall_with_another_gateway_moves_the_ike_bypass():
    (conn,) = settings_of("192.168.1.0/24", "0.0.0.0/0").connections.values()
    backend = RecordingBackend()
    backend.install_policies(conn, None, "198.51.100.2", 1)
    backend.install_policies(conn, None, "203.0.113.7", 1)
    assert {b.dst for b in backend.bypass_users if b.dir == "out" and b.proto} == {"203.0.113.7/32"}
    assert kernel.IKE_PORTS == (500, 4500)
