"""XfrmBackend in the booted guest: the real arm64 kernel with ESP and AH.

tests/qemu/xfrm_guest.py is copied into the guest and run there; each scenario builds two
gateways in network namespaces, installs policies and an SA pair through XfrmBackend exactly as
the daemon does after quick mode, pings LAN to LAN through the tunnel, and reads the counters
back through the backend (GETSA) and /proc/net/xfrm_stat.
"""
import json
import os
import re

import pytest

from ikecore.xfrm import REQID_BASE

HERE = os.path.dirname(os.path.abspath(__file__))
GUEST_SCRIPT = "/tmp/xfrm_guest.py"
ICMP_PACKET = 84          # ping's default: 56 bytes of data + ICMP header + IP header


SCENARIOS = ("esp", "ah", "esp+ah", "natt", "integrity", "expire", "daemons", "daemons-esp+ah")


@pytest.fixture(scope="module")
def results(router):
    """Copy the guest script in and run every scenario in one guest process."""
    with open(os.path.join(HERE, "xfrm_guest.py")) as f:
        script = f.read()
    router.check("cat > %s <<'XFRM_GUEST_EOF'\n%sXFRM_GUEST_EOF\n" % (GUEST_SCRIPT, script))
    out = router.check("cd /tmp && python3 %s %s" % (GUEST_SCRIPT, " ".join(
        "'%s'" % name for name in SCENARIOS)), timeout=600)
    line = next((l for l in out.splitlines() if l.startswith("RESULT ")), None)
    assert line, "no result from the guest:\n" + out
    return json.loads(line[len("RESULT "):])


def run_scenario(results, name):
    result = results[name]
    assert "error" not in result, "scenario %s failed in the guest:\n%s" % (name, result["error"])
    return result


def counters(stats, protocol, spi, dst):
    return stats["%s/0x%x/%s" % (protocol, spi, dst)]


def assert_ping_passed(result):
    assert "3 packets transmitted, 3 packets received" in result["ping"], result["ping"]


def assert_counted(result, protocol, index=0):
    """A's outbound SA and B's inbound SA of A->B each carried the 3 echo requests, and the
    B->A pair the 3 replies, at least the ICMP packet's size each (the kernel counts the
    packet as it transforms it)."""
    spi_ab, spi_ba = 0xA000 + index, 0xB000 + index
    for side, spi, dst in (("a", spi_ab, "198.51.100.2"), ("b", spi_ab, "198.51.100.2"),
                           ("b", spi_ba, "198.51.100.1"), ("a", spi_ba, "198.51.100.1")):
        c = counters(result[side], protocol, spi, dst)
        assert c["packets"] == 3, (side, hex(spi), c)
        assert c["bytes"] >= 3 * ICMP_PACKET, (side, hex(spi), c)
        assert c["errored_packets"] == 0, (side, hex(spi), c)


def test_esp_tunnel_carries_ping_and_counts_it(results):
    result = run_scenario(results, "esp")
    assert_ping_passed(result)
    capture = result["capture"]       # what each gateway sent out of its WAN side
    # on the WAN only ESP between the gateways: the ICMP is inside, encrypted
    assert len(re.findall(r"198\.51\.100\.1 > 198\.51\.100\.2: ESP\(spi=0x0000a000", capture)) == 3, capture
    assert len(re.findall(r"198\.51\.100\.2 > 198\.51\.100\.1: ESP\(spi=0x0000b000", capture)) == 3, capture
    assert "ICMP" not in capture, capture
    assert_counted(result, "esp")
    snapshot = result["a_snapshot"]
    assert sorted(s["spi"] for s in snapshot["sas"]) == ["0x0000a000", "0x0000b000"]
    assert sorted(p["dir"] for p in snapshot["policies"]) == ["fwd", "in", "out"]
    assert "XfrmInNoStates" in snapshot["xfrm_stat"]
    assert result["after_flush"].strip() == "", result["after_flush"]


def test_ah_tunnel_carries_ping(results):
    result = run_scenario(results, "ah")
    assert_ping_passed(result)
    # AH authenticates but does not encrypt: the tunnelled ICMP is readable on the WAN
    assert len(re.findall(r"AH\(spi=0x0000a000,seq=0x\w+,icv=0x\w+\): IP 10\.1\.0\.1 > 10\.2\.0\.1: ICMP echo request",
                          result["capture"])) == 3, result["capture"]
    assert_counted(result, "ah")


def test_esp_plus_ah_bundle_carries_ping(results):
    result = run_scenario(results, "esp+ah")
    assert_ping_passed(result)
    # IP(gw) | AH | ESP | IP(inner): AH outside, covering the ESP packet
    assert len(re.findall(r"AH\(spi=0x0000a001,seq=0x\w+,icv=0x\w+\): ESP\(spi=0x0000a000",
                          result["capture"])) == 3, result["capture"]
    assert_counted(result, "esp", 0)
    assert_counted(result, "ah", 1)


def test_esp_in_udp_for_nat_traversal(results):
    result = run_scenario(results, "natt")
    assert_ping_passed(result)
    assert len(re.findall(r"198\.51\.100\.1\.4500 > 198\.51\.100\.2\.4500: UDP-encap: ESP\(spi=0x0000a000",
                          result["capture"])) == 3, result["capture"]
    assert_counted(result, "esp")


def test_integrity_failures_are_dropped_and_counted(results):
    result = run_scenario(results, "integrity")
    assert "100% packet loss" in result["ping"], result["ping"]
    inbound = counters(result["b"], "esp", 0xA000, "198.51.100.2")
    assert inbound["errored_packets"] == 3, inbound
    assert counters(result["a"], "esp", 0xA000, "198.51.100.2")["packets"] == 3
    grew = result["after"]["XfrmInStateProtoError"] - result["before"]["XfrmInStateProtoError"]
    assert grew == 3, (result["before"], result["after"])


def test_soft_expiry_comes_before_hard_and_the_kernel_removes_the_sa(results):
    result = run_scenario(results, "expire")
    for spi, dst in ((0xA000, "198.51.100.2"), (0xB000, "198.51.100.1")):
        seen = [e[3] for e in result["events"] if e[:3] == ["esp", spi, dst]]
        assert seen == [False, True], result["events"]
    assert result["a"] == {}


def test_two_daemons_negotiate_and_carry_traffic_through_xfrm(results):
    """The whole path: a ping makes A's kernel ACQUIRE, the daemons negotiate main mode and
    quick mode, XfrmBackend installs the negotiated SAs, the next pings pass and the status
    shows the kernel's counters; stopping the daemons leaves no SA or policy behind."""
    result = run_scenario(results, "daemons")
    assert "3 packets transmitted, 3 packets received" in result["ping"], result
    for side in ("status_a", "status_b"):
        status = result[side]
        [ike] = status["ike_sas"]
        assert (ike["status"], ike["state"]) == ("Activated", 9), ike
        assert sorted(sa["direction"] for sa in status["sas"]) == ["incoming", "outgoing"]
        for sa in status["sas"]:
            assert sa["protocol"] == "ESP" and sa["algorithm"] == "AES-CBC-128/HMAC-SHA2-256-128"
            assert sa["packets"] == 3 and sa["bytes"] >= 3 * ICMP_PACKET, sa
            assert sa["errored_packets"] == 0, sa
    assert "reqid %d " % (REQID_BASE + 1) in result["states_a"], result["states_a"]
    assert result["exit_codes"] == [0, 0], result["logs"]
    assert result["after_stop"].strip() == "", result["after_stop"]


def test_two_daemons_with_an_esp_plus_ah_bundle(results):
    result = run_scenario(results, "daemons-esp+ah")
    assert "3 packets transmitted, 3 packets received" in result["ping"], result
    sas = result["status_a"]["sas"]
    assert sorted((sa["protocol"], sa["direction"]) for sa in sas) == [
        ("AH", "incoming"), ("AH", "outgoing"), ("ESP", "incoming"), ("ESP", "outgoing")]
    for sa in sas:
        assert sa["packets"] == 3 and sa["errored_packets"] == 0, sa
    # AH is applied to the ESP packet (transport mode over the ESP tunnel)
    assert re.search(r"proto ah spi 0x\w+ reqid \d+ mode transport", result["states_a"]), result["states_a"]
    assert result["after_stop"].strip() == "", result["after_stop"]
