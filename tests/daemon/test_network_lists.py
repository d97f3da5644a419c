"""Two daemons with network lists and the all-traffic layout: one SA pair per pair of networks,
the selectors both sides negotiated, and the policies (bypasses included) each recorded kernel
was asked for.

  a: a branch, LANs 192.168.10.0/24 and 192.168.11.0/24  --- all traffic --->  b: the hub
"""
from daemon_harness import ADDRESS, wait_until
from support.config import Config

PSK = "veth secret"
BRANCH_LANS = ["192.168.10.0/24", "192.168.11.0/24"]
ANY = "0.0.0.0/0"


def config(side, act_as, local_net, remote_net):
    other = "b" if side == "a" else "a"
    cfg = Config(wan_interface="ik" + side, lan_interface="lo")
    cfg.peer(other, ADDRESS[other], local_address=ADDRESS[side], act_as=act_as, psk=PSK,
             proposals=["aes128-sha1-modp2048"])
    cfg.connection("lans", other, local_net, remote_net, proposals=["aes128-sha1"])
    return cfg


def pairs_up(daemon, count):
    status = daemon.status()
    activated = [sa for sa in status["ike_sas"] if sa["status"] == "Activated"]
    return status if activated and len(status["sas"]) >= 2 * count else None


def selectors(status):
    """(local_net, remote_net) -> sorted directions of its SA rows."""
    found = {}
    for sa in status["sas"]:
        found.setdefault((sa["local_net"], sa["remote_net"]), []).append(sa["direction"])
    return dict((k, sorted(v)) for k, v in found.items())


def kernel(daemon):
    return daemon.result({"cmd": "kernel"})


def test_branch_sends_everything_to_the_hub_and_keeps_lan_and_ike_out(daemons):
    daemons["b"].start(config("b", "responder", ANY, BRANCH_LANS))
    daemons["a"].start(config("a", "initiator", BRANCH_LANS, ANY))
    status = {side: wait_until(lambda: pairs_up(daemons[side], 2), "%s: both pairs up" % side)
              for side in "ab"}
    both = ["incoming", "outgoing"]
    assert selectors(status["a"]) == {(lan, ANY): both for lan in BRANCH_LANS}
    assert selectors(status["b"]) == {(ANY, lan): both for lan in BRANCH_LANS}
    (ike,) = status["a"]["ike_sas"]
    assert ike["phase2_negotiations"] == 2                    # one quick mode per pair
    assert sorted({sa["connection"] for sa in status["a"]["sas"]}) == ["lans#1", "lans#2"]

    branch = kernel(daemons["a"])
    assert sorted((p["connection"], p["local_net"], p["remote_net"]) for p in branch["policies"]) == [
        ("lans#1", BRANCH_LANS[0], ANY), ("lans#2", BRANCH_LANS[1], ANY)]
    bypass = [(b["dir"], b["src"], b["dst"], b["proto"], b["sport"], b["dport"])
              for b in branch["bypass"]]
    lan = sorted(b[:3] for b in bypass if b[3] == 0)
    assert lan == sorted((d, s, t) for d in ("out", "in", "fwd") for s in BRANCH_LANS
                         for t in BRANCH_LANS)
    hub = ADDRESS["b"] + "/32"
    assert sorted(b for b in bypass if b[3]) == sorted([
        ("out", ANY, hub, 17, 500, 0), ("in", hub, ANY, 17, 0, 500),
        ("out", ANY, hub, 17, 4500, 0), ("in", hub, ANY, 17, 0, 4500),
        ("out", ANY, hub, 50, 0, 0), ("in", hub, ANY, 50, 0, 0)])
    # the hub's tunnels (local 0.0.0.0/0 toward one branch LAN each) swallow nothing of its own
    hub_kernel = kernel(daemons["b"])
    assert sorted((p["local_net"], p["remote_net"]) for p in hub_kernel["policies"]) == [
        (ANY, lan) for lan in BRANCH_LANS]
    assert hub_kernel["bypass"] == []

    # deleting one pair's SA takes that pair down on both ends; the other stays; up brings it back
    victim = [sa for sa in status["a"]["sas"] if sa["local_net"] == BRANCH_LANS[1]][0]
    assert daemons["a"].ikectl("delete", victim["id"]).returncode == 0
    wait_until(lambda: len(daemons["b"].status()["sas"]) == 2, "b to drop the deleted pair")
    assert selectors(daemons["b"].status()) == {(ANY, BRANCH_LANS[0]): both}
    result = daemons["a"].ikectl("up", "lans")
    assert result.returncode == 0 and "lans#1" in result.stdout and "lans#2" in result.stdout
    wait_until(lambda: pairs_up(daemons["b"], 2), "b: the pair back")


def test_lists_on_both_sides_are_four_pairs(daemons):
    remote = ["10.20.0.0/24", "10.21.0.0/24"]
    daemons["b"].start(config("b", "both", remote, BRANCH_LANS))
    daemons["a"].start(config("a", "both", BRANCH_LANS, remote))
    assert daemons["a"].result({"cmd": "up", "peer": "lans"})["initiated"] == [
        "lans#1", "lans#2", "lans#3", "lans#4"]
    status = wait_until(lambda: pairs_up(daemons["b"], 4), "b: four pairs up")
    assert set(selectors(status)) == {(r, l) for l in BRANCH_LANS for r in remote}
    assert kernel(daemons["a"])["bypass"] == [] and kernel(daemons["b"])["bypass"] == []
