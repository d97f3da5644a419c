"""XfrmBackend against the host kernel, compared with what iproute2's `ip xfrm` shows."""
import asyncio
import errno
import json

import pytest

from ikecore import xfrm
from ikecore.protocol.events import ChildSa
from ikecore.protocol.settings import Connection

from xfrm_lab import LOCAL_GW, LOCAL_HOST, LOCAL_NET, REMOTE_GW, REMOTE_HOST, REMOTE_NET

BASE = xfrm.REQID_BASE


def connection(protocol="esp", name="branch-lan", local_net=LOCAL_NET, remote_net=REMOTE_NET):
    return Connection(name, "branch", local_net, remote_net, [], protocol=protocol)


def ip_policies(ns):
    """`ip xfrm policy` parsed: [{"src", "dst", "dir", "priority", "proto"?, "tmpls": [...]}]."""
    policies = []
    for line in ns.ip("xfrm", "policy", "list").stdout.splitlines():
        words = line.split()
        if not words:
            continue
        pairs = dict(zip(words[::2], words[1::2]))
        if line.startswith("src "):
            policies.append(dict(pairs, tmpls=[]))
        elif words[0] == "dir":
            policies[-1].update(pairs)
        elif words[0] == "tmpl":
            policies[-1]["tmpls"].append({"src": words[2], "dst": words[4]})
        elif words[0] == "proto" and policies[-1]["tmpls"]:
            policies[-1]["tmpls"][-1].update(pairs)
    return policies


def ip_states(ns):
    """`ip xfrm state` parsed: [{"src", "dst", "proto", "spi", "reqid", "mode"}]."""
    states = []
    for line in ns.ip("xfrm", "state", "list").stdout.splitlines():
        words = line.split()
        if line.startswith("src "):
            states.append({"src": words[1], "dst": words[3]})
        elif words and words[0] == "proto":
            states[-1].update(dict(zip(words[::2], words[1::2])))
    return states


def by_dir(policies):
    return dict((p["dir"], p) for p in policies)


async def wait_for(future, what, limit=20):
    try:
        return await asyncio.wait_for(future, limit)
    except asyncio.TimeoutError:
        pytest.fail("no %s from the kernel" % what)


# --- policies ----------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol,expected", [
    ("esp", [("esp", "tunnel")]),
    ("ah", [("ah", "tunnel")]),
    ("esp+ah", [("esp", "tunnel"), ("ah", "transport")]),
])
def test_policies_out_in_fwd_with_templates(backend, netns, protocol, expected):
    backend.install_policies(connection(protocol), LOCAL_GW, REMOTE_GW, 4)
    policies = by_dir(ip_policies(netns))
    assert sorted(policies) == ["fwd", "in", "out"]
    assert (policies["out"]["src"], policies["out"]["dst"]) == (LOCAL_NET, REMOTE_NET)
    for direction in ("in", "fwd"):
        assert (policies[direction]["src"], policies[direction]["dst"]) == (REMOTE_NET, LOCAL_NET)
    for direction, (tmpl_src, tmpl_dst) in (("out", (LOCAL_GW, REMOTE_GW)),
                                            ("in", (REMOTE_GW, LOCAL_GW)),
                                            ("fwd", (REMOTE_GW, LOCAL_GW))):
        tmpls = policies[direction]["tmpls"]
        assert [(t["proto"], t["mode"]) for t in tmpls] == expected
        assert all((t["src"], t["dst"], t["reqid"]) == (tmpl_src, tmpl_dst, str(BASE + 4))
                   for t in tmpls)
    # our decoder reads back what ip shows
    ours = by_dir(backend.kernel_policies())
    for direction in ("out", "in", "fwd"):
        assert (ours[direction]["src"], ours[direction]["dst"]) == \
            (policies[direction]["src"], policies[direction]["dst"])
        assert str(ours[direction]["priority"]) == policies[direction]["priority"]
        assert [(t["protocol"], t["mode"], t["src"], t["dst"], str(t["reqid"]))
                for t in ours[direction]["templates"]] == \
            [(t["proto"], t["mode"], t["src"], t["dst"], t["reqid"])
             for t in policies[direction]["tmpls"]]


def test_policies_without_local_gateway_leave_the_source_to_the_kernel(backend, netns):
    backend.install_policies(connection(), None, REMOTE_GW, 1)
    out = by_dir(ip_policies(netns))["out"]
    assert (out["tmpls"][0]["src"], out["tmpls"][0]["dst"]) == ("0.0.0.0", REMOTE_GW)


def test_reinstall_with_new_reqid_replaces(backend, netns):
    backend.install_policies(connection(), LOCAL_GW, REMOTE_GW, 1)
    backend.install_policies(connection(), LOCAL_GW, REMOTE_GW, 2)
    policies = ip_policies(netns)
    assert len(policies) == 3
    assert set(p["tmpls"][0]["reqid"] for p in policies) == {str(BASE + 2)}


def test_remove_policies_removes_only_that_connection(backend, netns):
    backend.install_policies(connection(), LOCAL_GW, REMOTE_GW, 1)
    backend.install_policies(connection(name="other", remote_net="10.3.0.0/24"),
                             LOCAL_GW, REMOTE_GW, 2)
    backend.remove_policies(connection())
    assert sorted((p["dir"], p["dst"] if p["dir"] == "out" else p["src"])
                  for p in ip_policies(netns)) == \
        [("fwd", "10.3.0.0/24"), ("in", "10.3.0.0/24"), ("out", "10.3.0.0/24")]
    backend.remove_policies(connection())          # again: nothing left to remove, no error


def test_flush_removes_ours_and_keeps_foreign_entries(backend, netns):
    netns.ip("xfrm", "policy", "add", "src", "10.9.0.0/16", "dst", "10.8.0.0/24", "dir", "out",
             "tmpl", "src", LOCAL_GW, "dst", "192.0.2.9", "proto", "esp", "reqid", "9",
             "mode", "tunnel")
    netns.ip("xfrm", "state", "allocspi", "src", "192.0.2.9", "dst", LOCAL_GW, "proto", "esp",
             "mode", "tunnel", "reqid", "9")
    backend.install_policies(connection("esp+ah"), LOCAL_GW, REMOTE_GW, 1)
    spi = backend.allocate_spi("esp", REMOTE_GW, LOCAL_GW, 1)
    assert "0x%08x" % spi in [s["spi"] for s in ip_states(netns)]
    backend.flush()
    assert [(p["src"], p["dst"]) for p in ip_policies(netns)] == [("10.9.0.0/16", "10.8.0.0/24")]
    assert [(s["src"], s["reqid"]) for s in ip_states(netns)] == [("192.0.2.9", "9")]


# --- reading entries other tools made ------------------------------------------------------------
def test_decodes_policies_and_sas_made_by_iproute2(backend, netns):
    netns.ip("xfrm", "policy", "add", "src", "10.9.0.0/16", "dst", "10.8.0.0/24", "proto", "tcp",
             "dir", "in", "priority", "77", "tmpl", "src", "192.0.2.9", "dst", LOCAL_GW,
             "proto", "ah", "reqid", "12", "mode", "transport")
    [policy] = backend.kernel_policies()
    assert (policy["dir"], policy["src"], policy["dst"], policy["priority"]) == \
        ("in", "10.9.0.0/16", "10.8.0.0/24", 77)
    assert policy["selector"]["proto"] == 6
    assert policy["templates"] == [{"protocol": "ah", "src": "192.0.2.9", "dst": LOCAL_GW,
                                    "reqid": 12, "mode": "transport"}]
    netns.ip("xfrm", "state", "allocspi", "src", "192.0.2.9", "dst", LOCAL_GW, "proto", "ah",
             "mode", "transport", "reqid", "12", "min", "0x5000", "max", "0x5fff")
    [shown] = ip_states(netns)
    [state] = backend.kernel_sas()
    assert ("0x%08x" % state["spi"], str(state["reqid"]), state["mode"], state["protocol"],
            state["src"], state["dst"]) == \
        (shown["spi"], shown["reqid"], shown["mode"], shown["proto"], shown["src"], shown["dst"])
    assert 0x5000 <= state["spi"] <= 0x5fff
    assert backend.sa_stats() == {}                   # reqid 12 is not ours


# --- SAs ---------------------------------------------------------------------------------------
def esp_sa(**kw):
    values = dict(id="c1", connection="branch-lan", protocol="esp", direction="in", spi=0x0C001001,
                  src=REMOTE_GW, dst=LOCAL_GW, encr="aes128", encr_key=bytes(range(16)),
                  integ="sha1", integ_key=bytes(range(20)), lifetime_s=3600, lifetime_kb=0,
                  encap=None, reqid=1)
    values.update(kw)
    return ChildSa(**values)


def test_install_sa_passes_the_kernels_checks(backend, netns):
    """The host kernel has no esp4: our message must get as far as the ESP type lookup (a wrong
    layout or attribute would be refused earlier with EINVAL). A kernel with ESP installs it."""
    sa = esp_sa(encap=(4500, 4500))
    try:
        backend.install_sa(sa)
    except xfrm.XfrmError as exc:
        assert exc.errno == errno.EPROTONOSUPPORT, str(exc)
        assert "install ESP SA 0x0c001001 192.0.2.2 -> 192.0.2.1" in str(exc)
        assert exc.kernel_text                          # the kernel's own words travel along
        return
    [state] = ip_states(netns)
    assert state["spi"] == "0x0c001001"


def test_allocated_spi_is_reported_in_stats_and_snapshot(backend, netns):
    backend.install_policies(connection(), LOCAL_GW, REMOTE_GW, 3)
    spi = backend.allocate_spi("esp", REMOTE_GW, LOCAL_GW, 3)
    assert backend.sa_stats() == {("esp", spi, LOCAL_GW):
                                  {"bytes": 0, "packets": 0, "errored_packets": 0}}
    snapshot = json.loads(json.dumps(backend.snapshot()))     # the control socket sends it as JSON
    assert [(s["spi"], s["reqid"]) for s in snapshot["sas"]] == [("0x%08x" % spi, 3)]
    assert sorted(p["dir"] for p in snapshot["policies"]) == ["fwd", "in", "out"]
    assert all(t["reqid"] == 3 for p in snapshot["policies"] for t in p["templates"])


def test_delete_of_a_missing_sa_is_not_an_error(backend):
    backend.delete_sa(esp_sa())                    # e.g. the kernel removed it at hard expiry


# --- kernel events -------------------------------------------------------------------------------
def test_acquire_when_a_packet_hits_our_policy(backend, netns):
    async def scenario():
        loop = asyncio.get_running_loop()
        acquired = loop.create_future()
        backend.on_acquire = lambda src, dst: acquired.done() or acquired.set_result((src, dst))
        with netns.entered():
            backend.listen(loop)
        # a foreign trap policy: its acquire is not ours to answer
        netns.ip("xfrm", "policy", "add", "src", LOCAL_NET, "dst", "10.3.0.0/24", "dir", "out",
                 "tmpl", "src", LOCAL_GW, "dst", REMOTE_GW, "proto", "esp", "reqid", "9",
                 "mode", "tunnel")
        netns.ip("route", "add", "10.3.0.0/24", "via", REMOTE_GW, "dev", "wan0")
        backend.install_policies(connection(), LOCAL_GW, REMOTE_GW, 1)
        await loop.run_in_executor(None, ping, netns, "10.3.0.1")
        await loop.run_in_executor(None, ping, netns, REMOTE_HOST)
        return await wait_for(acquired, "ACQUIRE")

    assert asyncio.run(scenario()) == (LOCAL_HOST, REMOTE_HOST)
    larval = [s for s in ip_states(netns) if s["reqid"] == str(BASE + 1)]
    assert larval and larval[0]["dst"] == REMOTE_GW          # the kernel waits for our SA


def test_flush_removes_our_larval_sa_so_the_next_daemon_hears_the_next_packet(backend, netns):
    """A daemon that stops mid-negotiation leaves the kernel's larval SA; until it times out
    (30 s) the flow makes no new ACQUIRE. flush() (at start and stop) removes ours, not others'."""
    async def acquire_after_ping(host):
        loop = asyncio.get_running_loop()
        acquired = loop.create_future()
        backend.on_acquire = lambda src, dst: acquired.done() or acquired.set_result((src, dst))
        await loop.run_in_executor(None, ping, netns, host)
        return await wait_for(acquired, "ACQUIRE", limit=5)

    async def scenario():
        with netns.entered():
            backend.listen(asyncio.get_running_loop())
        netns.ip("xfrm", "policy", "add", "src", LOCAL_NET, "dst", "10.3.0.0/24", "dir", "out",
                 "tmpl", "src", LOCAL_GW, "dst", REMOTE_GW, "proto", "esp", "reqid", "9",
                 "mode", "tunnel")
        netns.ip("route", "add", "10.3.0.0/24", "via", REMOTE_GW, "dev", "wan0")
        backend.install_policies(connection(), LOCAL_GW, REMOTE_GW, 1)
        await acquire_after_ping(REMOTE_HOST)
        ping(netns, "10.3.0.1")                            # a foreign larval SA (reqid 9)
        assert sorted(s["reqid"] for s in ip_states(netns)) == sorted(["9", str(BASE + 1)])
        backend.flush()                                    # the daemon stops ...
        assert [s["reqid"] for s in ip_states(netns)] == ["9"]
        backend.install_policies(connection(), LOCAL_GW, REMOTE_GW, 1)   # ... and the next starts
        return await acquire_after_ping(REMOTE_HOST)      # at once, not 30 s later

    assert asyncio.run(scenario()) == (LOCAL_HOST, REMOTE_HOST)


def ping(ns, host):
    # fails: there is no SA yet; the first packet only makes the kernel ask for one
    ns.exec("ping", "-c", "1", "-W", "1", "-I", LOCAL_HOST, host, check=False)


def test_hard_expire_of_an_allocated_spi(backend, netns):
    netns.exec("sysctl", "-qw", "net.core.xfrm_acq_expires=1")   # larval SAs live 1 s, not 30
    seen = []

    async def scenario():
        loop = asyncio.get_running_loop()
        expired = loop.create_future()

        def on_expire(*args):
            seen.append(args)
            if not expired.done():
                expired.set_result(args)
        backend.on_expire = on_expire
        with netns.entered():
            backend.listen(loop)
        netns.ip("xfrm", "state", "allocspi", "src", "192.0.2.9", "dst", LOCAL_GW, "proto",
                 "esp", "mode", "tunnel", "reqid", "9")      # foreign: expires unreported
        spi = backend.allocate_spi("esp", REMOTE_GW, LOCAL_GW, 2)
        return spi, await wait_for(expired, "EXPIRE")

    spi, event = asyncio.run(scenario())
    assert event == ("esp", spi, LOCAL_GW, True)
    assert seen == [event]
    assert not [s for s in ip_states(netns) if s["reqid"] == str(BASE + 2)]


def test_xfrm_stat_totals_are_readable(netns_ok):
    stats = xfrm.xfrm_stat()
    if not stats:
        pytest.skip("this kernel has no /proc/net/xfrm_stat (XFRM_STATISTICS)")
    assert "XfrmInNoStates" in stats and "XfrmInError" in stats
    assert all(isinstance(v, int) for v in stats.values())
