"""A hub for branches on changing addresses, with real daemons in network namespaces (issue 12).

Two layouts:

  behind one NAT:   hub 10.98.0.1 --- 10.98.0.2 [carrier NAT, nftables masquerade] 10.97.1.1 --- branch1 10.97.1.2
                                                                                   10.97.2.1 --- branch2 10.97.2.2
  a pair (daemon_harness): hub 10.99.0.1 --- branch 10.99.0.2 (which moves, or which knows the
  hub only by a name from its namespace's /etc/hosts: `ip netns exec` bind-mounts
  /etc/netns/NAME/hosts over /etc/hosts, and glibc reads it at every lookup)

SAs go to the recording kernel backend; the waits end as soon as their condition holds.
"""
import os
import shutil

import pytest

from daemon_harness import ADDRESS, Daemon, show_logs, wait_until
from support.config import Config
from support.netns import Lab, netns_unavailable

PSK = {"branch1": "first branch key", "branch2": "second branch key"}
HUB_NET = "192.168.1.0/24"
BRANCH_NET = {"branch1": "10.21.0.0/24", "branch2": "10.22.0.0/24"}
FQDN = {"branch1": "b1.example.net", "branch2": "b2.example.net"}
FAST = ["aes128-sha1-modp1024"]


def hub_config(wan, branches=("branch1", "branch2")):
    cfg = Config(wan_interface=wan, lan_interface="lo")
    for b in branches:
        cfg.dynamic_peer(b, ("fqdn", FQDN[b]), phase1_mode="aggressive", psk=PSK[b],
                         proposals=FAST, dpd=(5, 30))
    for b in branches:
        cfg.connection("to-" + b, b, HUB_NET, BRANCH_NET[b], proposals=["aes128-sha1"])
    return cfg


def branch_config(branch, wan, gateway, dpd=None):
    cfg = Config(wan_interface=wan, lan_interface="lo")
    cfg.peer("hub", gateway, phase1_mode="aggressive", act_as="initiator",
             local_id=("fqdn", FQDN[branch]), psk=PSK[branch], proposals=FAST, dpd=dpd)
    cfg.connection("lan", "hub", BRANCH_NET[branch], HUB_NET, proposals=["aes128-sha1"])
    return cfg


def activated(daemon, peer=None):
    rows = [sa for sa in daemon.status()["ike_sas"] if sa["status"] == "Activated"
            and (peer is None or sa["peer"] == peer)]
    return rows or None


def tunnel_up(daemon, peer=None):
    """The peer's IKE SA is up and both SAs of its tunnel are in the (recording) kernel."""
    rows = activated(daemon, peer)
    if not rows:
        return None
    sas = [sa for sa in daemon.kernel_sas() if peer is None or sa["peer"] == peer]
    return rows if len(sas) >= 2 else None


def policies(daemon):
    return dict((p["connection"], p) for p in daemon.result({"cmd": "kernel"})["policies"])


# -- two branches with different FQDNs behind one masquerading NAT ---------------------------------
@pytest.fixture
def nat_lab(tmp_path):
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    if shutil.which("nft") is None:
        pytest.skip("nftables' nft is not installed (the carrier NAT)")
    daemons = {}
    with Lab("ikh") as lab:
        try:
            ns = dict((role, lab.namespace(suffix)) for role, suffix in (
                ("hub", "h"), ("nat", "n"), ("branch1", "1"), ("branch2", "2")))
            lab.link(ns["hub"], "hw0", "10.98.0.1/24", ns["nat"], "nw0", "10.98.0.2/24")
            for n, branch in ((1, "branch1"), (2, "branch2")):
                lab.link(ns["nat"], "nb%d" % n, "10.97.%d.1/24" % n, ns[branch], "bw0",
                         "10.97.%d.2/24" % n)
                ns[branch].ip("route", "add", "default", "via", "10.97.%d.1" % n)
            ns["nat"].exec("sysctl", "-qw", "net.ipv4.ip_forward=1")
            # The carrier NAT: everything leaving towards the hub gets its one public address.
            ns["nat"].exec("nft", "-f", "-", input=(
                "table ip carrier {\n chain post {\n"
                "  type nat hook postrouting priority 100;\n"
                '  oifname "nw0" masquerade\n }\n}\n'))
            for role, address in (("hub", "10.98.0.1"), ("branch1", "10.97.1.2"),
                                  ("branch2", "10.97.2.2")):
                daemons[role] = Daemon(tmp_path, name=role, netns=ns[role], address=address)
            yield daemons
        finally:
            show_logs(daemons.values())


def test_two_branches_behind_one_nat_chosen_by_fqdn_are_both_up(nat_lab):
    hub = nat_lab["hub"]
    hub.start(hub_config("hw0"))
    for branch in ("branch1", "branch2"):
        nat_lab[branch].start(branch_config(branch, "bw0", "10.98.0.1"))
    for branch in ("branch1", "branch2"):
        wait_until(lambda: tunnel_up(hub, branch), "the hub's tunnel with %s" % branch)
        wait_until(lambda: tunnel_up(nat_lab[branch]), "%s's tunnel" % branch)
    rows = dict((r["peer"], r) for r in activated(hub))
    assert set(rows) == {"branch1", "branch2"}
    for row in rows.values():
        assert (row["remote_gateway"], row["configured_gateway"], row["nat_t"]) == (
            "10.98.0.2", "%any", "far end")
    assert rows["branch1"]["remote_address"] != rows["branch2"]["remote_address"]
    # Policies of each branch carry the NAT's address, installed as it connected.
    installed = policies(hub)
    assert installed["to-branch1"]["remote_gw"] == installed["to-branch2"]["remote_gw"] == \
        "10.98.0.2"
    text = hub.ikectl("status").stdout
    assert "10.98.0.2:" in text and "(%any)" in text
    # branch2 goes: its policies leave the hub's kernel, branch1's stay.
    assert nat_lab["branch2"].result({"cmd": "down", "peer": "hub"})
    wait_until(lambda: "to-branch2" not in policies(hub), "branch2's policies to go")
    assert "to-branch1" in policies(hub) and tunnel_up(hub, "branch1")


# -- a branch whose address changes between two connections -------------------------------------
def test_a_branch_on_a_new_address_reconnects_to_the_same_peer_entry(daemons):
    hub, branch = daemons["a"], daemons["b"]
    hub.start(hub_config("ika", branches=("branch1",)))
    branch.start(branch_config("branch1", "ikb", ADDRESS["a"]))
    (row,) = wait_until(lambda: tunnel_up(hub, "branch1"), "the first connection")
    assert row["remote_gateway"] == ADDRESS["b"]
    assert branch.result({"cmd": "down", "peer": "hub"})
    wait_until(lambda: not activated(hub), "the hub to see the branch go")
    assert "to-branch1" not in policies(hub)
    branch.ip("addr", "del", ADDRESS["b"] + "/24", "dev", "ikb")
    branch.ip("addr", "add", "10.99.0.7/24", "dev", "ikb")
    assert branch.result({"cmd": "up", "peer": "hub"})
    (row,) = wait_until(lambda: tunnel_up(hub, "branch1"), "the second connection")
    assert (row["peer"], row["remote_gateway"]) == ("branch1", "10.99.0.7")
    assert policies(hub)["to-branch1"]["remote_gw"] == "10.99.0.7"
    assert all(sa["dst"] in ("10.99.0.7", ADDRESS["a"]) for sa in hub.kernel_sas())


# -- a gateway by DNS name, from the namespace's /etc/hosts -------------------------------------------
@pytest.fixture
def hosts_file(daemons):
    """/etc/netns/<branch ns>/hosts and a resolv.conf whose server answers nothing at once."""
    directory = os.path.join("/etc/netns", daemons["b"].netns)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "resolv.conf"), "w") as handle:
        handle.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    path = os.path.join(directory, "hosts")
    write_hosts(path, "")
    yield path
    shutil.rmtree(directory, ignore_errors=True)


def write_hosts(path, lines):
    """In place (the daemon's mount namespace holds the bind-mounted inode, not the name)."""
    with open(path, "w") as handle:
        handle.write("127.0.0.1 localhost\n" + lines)


def test_a_dns_named_gateway_is_resolved_and_followed_after_a_failure(daemons, hosts_file):
    hub, branch = daemons["a"], daemons["b"]
    hub.start(hub_config("ika", branches=("branch1",)))
    branch.start(branch_config("branch1", "ikb", "hub.example.test",
                               dpd=(2, 6)))

    def diagnosed():
        rows = branch.status()["ike_sas"]
        return [r for r in rows if "the peer's name does not resolve" in (r["last_error"] or "")]
    (row,) = wait_until(diagnosed, "the unresolvable name's diagnosis")
    assert row["remote_gateway"] == "hub.example.test"
    log = [e["text"] for e in branch.result({"cmd": "log", "limit": 1000})]
    assert any("the peer's name does not resolve" in t for t in log)
    assert branch.process.poll() is None
    write_hosts(hosts_file, "%s hub.example.test\n" % ADDRESS["a"])
    assert branch.result({"cmd": "up", "peer": "hub"})
    (row,) = wait_until(lambda: tunnel_up(branch), "the branch to reach the resolved hub")
    assert (row["remote_gateway"], row["configured_gateway"]) == (ADDRESS["a"],
                                                                 "hub.example.test")
    # The hub moves to another address (a power cut, restarted there: no Delete reaches the
    # branch) and its name with it: the branch's DPD gives up on the old address, the name is
    # resolved again, and the new address is used.
    hub.process.kill()
    hub.process.wait()
    hub.stop()
    hub.ip("addr", "del", ADDRESS["a"] + "/24", "dev", "ika")
    hub.ip("addr", "add", "10.99.0.11/24", "dev", "ika")
    write_hosts(hosts_file, "10.99.0.11 hub.example.test\n")
    hub.socket_path += ".2"
    hub.start(hub_config("ika", branches=("branch1",)))
    (row,) = wait_until(lambda: [r for r in (tunnel_up(branch) or [])
                                 if r["remote_gateway"] == "10.99.0.11"],
                        "the branch to follow the name to 10.99.0.11")
    assert policies(branch)["lan"]["remote_gw"] == "10.99.0.11"
    log = [e["text"] for e in branch.result({"cmd": "log", "limit": 1000})]
    assert any("hub.example.test resolves to 10.99.0.11 (was %s)" % ADDRESS["a"] in t
               for t in log)
