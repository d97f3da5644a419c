"""Two ikecore daemons negotiate over a veth (real UDP 500, real processes, recording kernel).

  a (10.99.0.1, act_as initiator) --- main mode, PSK, quick mode with PFS ---> b (10.99.0.2)
"""
import json
import subprocess
import sys

from daemon_harness import ADDRESS, NETS, pair_config, wait_until
from support.paths import firmware_env

PSK = "veth secret"


def config(side, act_as, psk=PSK, proposals=("aes128-sha1-modp2048",), pfs="modp2048"):
    return pair_config(side, act_as, psk, proposals, pfs)


def activated(daemon):
    status = daemon.status()
    ike = [sa for sa in status["ike_sas"] if sa["status"] == "Activated"]
    return status if ike and len(status["sas"]) >= 2 else None


def bring_up(daemons):
    daemons["b"].start(config("b", "responder"))
    daemons["a"].start(config("a", "initiator"))
    for side in ("a", "b"):
        wait_until(lambda: activated(daemons[side]), "daemon %s to reach Activated" % side)


def test_main_mode_psk_comes_up_and_sas_pair_up(daemons):
    bring_up(daemons)
    for side, role in (("a", "initiator"), ("b", "responder")):
        result = daemons[side].ikectl("status", "--json")
        assert result.returncode == 0, result.stderr
        status = json.loads(result.stdout)
        (ike,) = status["ike_sas"]
        other = "b" if side == "a" else "a"
        assert (ike["status"], ike["state"], ike["mode"], ike["role"]) == (
            "Activated", 9, "main", role)
        assert ike["remote_gateway"] == ADDRESS[other] and ike["peer"] == other
        assert ike["algorithm"] == "AES-CBC-128/HMAC-SHA1/MODP-2048"
        assert sorted(sa["direction"] for sa in status["sas"]) == ["incoming", "outgoing"]
        for sa in status["sas"]:
            assert (sa["local_net"], sa["remote_net"]) == (NETS[side], NETS[other])
            assert sa["protocol"] == "ESP" and sa["ike_sa"] == ike["id"]
        human = daemons[side].ikectl("status")
        assert human.returncode == 0 and "Activated" in human.stdout
    # The recording backends hold four SAs: each side's outbound is the other's inbound,
    # with the same SPI and the same keys.
    kernel = {side: daemons[side].kernel_sas() for side in ("a", "b")}
    assert len(kernel["a"]) + len(kernel["b"]) == 4
    for sender, receiver in (("a", "b"), ("b", "a")):
        (out,) = [sa for sa in kernel[sender] if sa["direction"] == "out"]
        (into,) = [sa for sa in kernel[receiver] if sa["direction"] == "in"]
        assert out["spi"] == into["spi"]
        assert (out["src"], out["dst"]) == (into["src"], into["dst"]) == (
            ADDRESS[sender], ADDRESS[receiver])
        assert (out["encr"], out["encr_key"], out["integ"], out["integ_key"]) == (
            into["encr"], into["encr_key"], into["integ"], into["integ_key"])
        assert len(bytes.fromhex(out["encr_key"])) == 16


def test_delete_from_ikectl_propagates_to_the_peer(daemons):
    bring_up(daemons)
    outgoing = [sa for sa in daemons["a"].status()["sas"] if sa["direction"] == "outgoing"][0]
    spi = int(outgoing["spi"], 16)
    result = daemons["a"].ikectl("delete", outgoing["id"])
    assert result.returncode == 0, result.stderr
    wait_until(lambda: spi not in [sa["spi"] for sa in daemons["b"].kernel_sas()],
               "b to remove the SA a deleted")
    wait_until(lambda: spi not in [sa["spi"] for sa in daemons["a"].kernel_sas()],
               "a to remove the SA it deleted")
    assert spi not in [int(sa["spi"], 16) for sa in daemons["b"].status()["sas"]]


def test_bad_reload_keeps_the_tunnel_and_the_old_config(daemons):
    bring_up(daemons)
    before = daemons["a"].status()
    good = open(daemons["a"].config_path).read()
    with open(daemons["a"].config_path, "w") as handle:
        handle.write(good.replace('act_as = "initiator"', 'act_as = "sometimes"'))
    result = daemons["a"].ikectl("reload")
    assert result.returncode == 1
    assert "peer[0].act_as: must be one of initiator, responder, both" in result.stderr
    assert "ikecore-a.toml:" in result.stderr
    after = daemons["a"].status()
    assert [sa["id"] for sa in after["ike_sas"]] == [sa["id"] for sa in before["ike_sas"]]
    assert [sa["spi"] for sa in after["sas"]] == [sa["spi"] for sa in before["sas"]]
    assert after["ike_sas"][0]["status"] == "Activated"
    assert len(daemons["a"].kernel_sas()) == 2
    # The old config is still the running one: its peer is still known.
    assert daemons["a"].request({"cmd": "down", "peer": "sometimes"})["ok"] is False
    log = daemons["a"].result({"cmd": "log", "limit": 1000})
    assert any("configuration not reloaded" in e["text"] and e["level"] == "error" for e in log)


def test_malformed_datagram_is_counted_logged_and_survived(daemons):
    bring_up(daemons)
    # From b's namespace: an ISAKMP header claiming more bytes than sent, then plain junk.
    sender = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              "s.bind(('%s', 0)); "
              "s.sendto(bytes(8) + bytes(8) + bytes([1, 0x10, 2, 0]) + bytes(4) "
              "+ (9999).to_bytes(4, 'big'), ('%s', 500)); "
              "s.sendto(b'junk', ('%s', 500))" % (ADDRESS["b"], ADDRESS["a"], ADDRESS["a"]))
    subprocess.run(["ip", "netns", "exec", daemons["b"].netns, sys.executable, "-c", sender],
                   env=firmware_env(), check=True, timeout=60)

    def counted():
        status = daemons["a"].status()
        return status if status["daemon"]["malformed_datagrams"] >= 2 else None
    status = wait_until(counted, "a to count the malformed datagrams")
    assert status["ike_sas"][0]["status"] == "Activated"
    log = daemons["a"].result({"cmd": "log", "limit": 1000})
    assert [e for e in log if "malformed" in e["text"].lower() and ADDRESS["b"] in e["text"]]
    # Still serving: after the junk, a fresh quick mode replaces a deleted SA pair.
    old = set(sa["spi"] for sa in daemons["a"].kernel_sas())
    outgoing = [sa for sa in status["sas"] if sa["direction"] == "outgoing"][0]
    daemons["a"].result({"cmd": "delete", "id": outgoing["id"]})
    wait_until(lambda: not daemons["b"].kernel_sas(), "b to drop the deleted pair")
    daemons["a"].result({"cmd": "up", "peer": "b"})

    def fresh_pair(side):
        sas = daemons[side].kernel_sas()
        return len(sas) == 2 and not old & set(sa["spi"] for sa in sas)
    wait_until(lambda: fresh_pair("a") and fresh_pair("b"), "a new SA pair after the junk")


def test_act_as_both_waits_for_traffic_then_a_kernel_acquire_brings_the_tunnel_up(daemons):
    # a runs on the real XFRM backend: its trap policies are real kernel policies, and a packet
    # into the remote network makes the kernel send ACQUIRE. Installing the negotiated SAs then
    # fails on this host, which has no ESP: a says so as the IKE SA's last_error, takes the
    # pair down and tells b (core.install_failed), and keeps running.
    a, b = daemons["a"], daemons["b"]
    a.ip("addr", "add", "192.168.10.1/32", "dev", "lo")
    a.ip("route", "add", NETS["b"], "via", ADDRESS["b"], "src", "192.168.10.1")
    b.start(config("b", "responder"))
    a.start(config("a", "both"), kernel="xfrm")
    policies = a.ip("xfrm", "policy")
    assert "src %s dst %s" % (NETS["a"], NETS["b"]) in policies and "dir out" in policies
    assert a.status()["ike_sas"] == []                     # "both" does not start by itself
    # One datagram from the LAN side into the remote network (no ping: it may not be installed).
    sender = ("import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
              "s.bind(('192.168.10.1', 0))\n"
              "try: s.sendto(b'wake up', ('192.168.20.1', 9))\n"
              "except OSError: pass")      # the kernel may refuse the first packet (EAGAIN)
    subprocess.run(["ip", "netns", "exec", a.netns, sys.executable, "-c", sender],
                   env=firmware_env(), check=True, timeout=60)
    def refused(daemon):
        status = daemon.status()
        return [sa for sa in status["ike_sas"] if sa["status"] == "Activated"
                and "the kernel lacks ESP support" in (sa["last_error"] or "")]
    (ike,) = wait_until(lambda: refused(a), "a to report the kernel's refusal of the ESP SA")
    assert "in the kernel failed: Protocol not supported" in ike["last_error"]
    def pair_deleted(daemon):
        status = daemon.status()
        return status["sas"] == [] and status["ike_sas"][0]["phase2_negotiations"] == 1
    wait_until(lambda: pair_deleted(b), "b to hear the Delete of the pair a could not install")
    assert b.kernel_sas() == [] and a.status()["sas"] == []
    status = a.status()
    assert status["daemon"]["kernel_errors"] >= 1
    log = a.result({"cmd": "log", "limit": 1000})
    assert [e for e in log if e["level"] == "error" and "lacks ESP support" in e["text"]]
    a.stop()
    # A clean stop leaves none of our policies or SAs in the kernel, and tells the peer.
    assert a.process.returncode == 0
    assert a.ip("xfrm", "policy").strip() == ""
    # The kernel's own larval state of the acquire (SPI 0) ages out by itself
    # (net.core.xfrm_acq_expires); no negotiated SA may remain.
    states = [line for line in a.ip("xfrm", "state").splitlines() if " spi " in line]
    assert all("spi 0x00000000" in line for line in states), states
    wait_until(lambda: b.status()["ike_sas"] == [], "b to hear the deletes")


def test_unreachable_peer_shows_negotiating_in_ikectl(daemons):
    # Nobody listens on b: a's first main mode message goes unanswered (the seed's
    # "remote peer couldn't be reached"): Negotiating(3), "1st msg sent".
    daemons["a"].start(config("a", "initiator"))
    status = wait_until(lambda: daemons["a"].status()["ike_sas"], "a to start negotiating")
    assert (status[0]["status"], status[0]["state"]) == ("Negotiating", 3)
    result = daemons["a"].ikectl("status")
    assert result.returncode == 0
    line = [text for text in result.stdout.splitlines() if text.startswith(status[0]["id"])][0]
    assert "Negotiating(3)" in line and ADDRESS["b"] in line and "main/initiator" in line
    assert daemons["a"].kernel_sas() == []


def test_key_mismatch_is_diagnosed_in_ikectl_and_the_vpn_log(daemons):
    daemons["b"].start(config("b", "responder", psk="another secret"))
    daemons["a"].start(config("a", "initiator"))

    def diagnosed(daemon):
        return [sa for sa in daemon.status()["ike_sas"]
                if "pre-shared key mismatch" in (sa["last_error"] or "")]
    wait_until(lambda: diagnosed(daemons["a"]) or diagnosed(daemons["b"]),
               "a pre-shared key mismatch diagnosis")
    for side in ("a", "b"):
        for sa in diagnosed(daemons[side]):
            assert sa["status"] != "Activated"
            result = daemons[side].ikectl("status")
            assert "%s: " % sa["id"] in result.stdout and "pre-shared key" in result.stdout
            log = daemons[side].result({"cmd": "log", "limit": 1000})
            assert [e for e in log if "pre-shared key mismatch" in e["text"]]
    assert daemons["a"].kernel_sas() == [] and daemons["b"].kernel_sas() == []
