"""Our router (site A, ikecore) against a real strongSwan gateway (site B: charon 6.0 from Debian 13's
arm64 packages, booted from the test-only image rootfs-strongswan.squashfs), LAN to LAN, with both
kernels doing ESP/AH. On the host charon can only use its userspace data plane (kernel-libipsec,
which forces NAT-T); here charon installs into the guest kernel with kernel-netlink, as a real
strongSwan gateway does, so these tunnels are native ESP/AH between the gateways.

Each test (re)starts charon with its swanctl connection and restarts our daemon: both sides start
without SAs or policies.
"""
import re

import pytest

from e2e import (IP, PSK, Scenario, capture_start, capture_stop, one, ping_while_watching,
                 show_after_failure, without_ike)
from guest_charon import ROOTFS, Child, Conn, GuestCharon

ESP = Scenario()                                  # main mode PSK, aes128-sha1-modp2048, PFS modp2048
AH = Scenario(protocol="ah", child_proposals=["sha256"])
AGGRESSIVE = Scenario(phase1_mode="aggressive", ike_proposals=["aes256-sha256-modp2048"])
REKEY = Scenario(lifetime_s=60)                   # the shortest lifetime config.py accepts


def charon_conn(a, b, scenario, life_time=None, rekey_time=None):
    """B's swanctl connection matching `scenario` on A; charon traps B's LAN -> A's LAN traffic
    (its own acquire starts the negotiation) and otherwise answers."""
    pfs = "-" + scenario.pfs if scenario.pfs != "none" else ""
    child = Child("lan-lan", b.site["lan_net"], a.site["lan_net"],
                  [p + pfs for p in scenario.child_proposals], protocol=scenario.protocol,
                  start_action="trap", life_time=life_time, rekey_time=rekey_time)
    return Conn("site", b.site["wan"], a.site["wan"], scenario.ike_proposals, PSK, [child],
                aggressive=scenario.phase1_mode == "aggressive")


SITE_B_ROOTFS = ROOTFS              # conftest's `sites` boots site B from the strongswan image
SITE_B_MAKE = "make image image-strongswan"


@pytest.fixture(scope="module")
def sites(sites):
    """conftest's two sites, B's charon ready to start."""
    a, b = sites
    b.charon = GuestCharon(b)
    yield a, b
    b.charon.stop()


@pytest.fixture(autouse=True)
def diagnostics_on_failure(request, sites):
    a, b = sites
    yield from show_after_failure(request, lambda: "\n".join([
        a.diagnostics(), f"--- site-b: charon log\n{b.charon.log_tail()}",
        f"--- site-b: {IP} xfrm state\n{b.run(f'{IP} xfrm state').output}"]))


def start(sites, scenario, **charon_child):
    """charon on B and our daemon on A, both fresh, configured for `scenario`."""
    a, b = sites
    a.stop_daemon()
    b.charon.start()
    b.charon.load([charon_conn(a, b, scenario, **charon_child)])
    a.write_config(scenario.toml(a.site, b.site))
    a.start_daemon()
    a.wait_daemon()
    return a, b


def installed_child(b):
    return one([c for c in b.charon.children() if c.get("state") == "INSTALLED"], "INSTALLED CHILD_SA on B")


def check_same_pair(a, b, protocol="ESP"):
    """Our SA pair is charon's CHILD_SA, crossed, and both kernels hold exactly it."""
    child = installed_child(b)
    ours = {sa["direction"]: sa for sa in a.sas()}
    assert set(ours) == {"incoming", "outgoing"} and len(a.sas()) == 2, a.sas()
    assert child["protocol"] == protocol and child["mode"] == "TUNNEL" and child.get("encap") != "yes", child
    assert int(ours["outgoing"]["spi"], 16) == int(child["spi-in"], 16), (ours, child)
    assert int(ours["incoming"]["spi"], 16) == int(child["spi-out"], 16), (ours, child)
    spis = sorted("0x%08x" % int(sa["spi"], 16) for sa in a.sas())
    for s in (a, b):
        xfrm = s.check(f"{IP} xfrm state")
        assert sorted(re.findall(rf"proto {protocol.lower()} spi (0x[0-9a-f]+)", xfrm)) == spis, (s.name, xfrm)
    return ours, child


def test_we_initiate_from_an_acquire_and_charon_installs_in_its_kernel(sites):
    a, b = start(sites, ESP)
    a.ping_until_up(b)
    ike = one(a.status()["ike_sas"], "IKE SA on A")
    assert (ike["status"], ike["state"], ike["role"], ike["mode"], ike["nat_t"]) == \
        ("Activated", 9, "initiator", "main", "none"), ike
    assert ike["algorithm"] == "AES-CBC-128/HMAC-SHA1/MODP-2048", ike
    charon_ike = one(b.charon.list_sas(), "IKE SA on B")
    assert charon_ike["state"] == "ESTABLISHED" and charon_ike["version"] == "1", charon_ike
    assert charon_ike["remote-host"] == a.site["wan"] and charon_ike.get("nat-any") != "yes", charon_ike
    ours, child = check_same_pair(a, b)
    assert (child["encr-alg"], child["encr-keysize"], child["integ-alg"], child["dh-group"]) == \
        ("AES_CBC", "128", "HMAC_SHA1_96", "MODP_2048"), child

    # traffic both ways, all of it through the two kernels' ESP; charon counts what we sent
    for s in (a, b):
        capture_start(s, "wan", "eth0", "-Q out ip")
    try:
        sent, received, _, out = a.ping(b.site["lan_host"], count=5, size=500, interval=0.3)
        back = b.ping(a.site["lan_host"], count=3)
    finally:
        wire = {s.name: capture_stop(s, "wan") for s in (a, b)}
    assert sent == received == 5, out
    assert back[0] == back[1] == 3, back[3]
    for here, there in ((a, b), (b, a)):
        lines = without_ike(wire[here.name])
        esp = [l for l in lines if re.search(
            rf"IP {here.site['wan']} > {there.site['wan']}: ESP\(spi=0x[0-9a-f]+,seq=0x[0-9a-f]+\)", l)]
        assert len(esp) == 8 and esp == lines, f"{here.name} sent:\n" + "\n".join(wire[here.name])
    after = installed_child(b)
    ours_after = {sa["direction"]: sa for sa in a.sas()}
    grew_out = ours_after["outgoing"]["packets"] - ours["outgoing"]["packets"]
    assert grew_out == 8, ours_after                       # 5 requests + 3 replies
    assert int(after["packets-in"]) - int(child["packets-in"]) == 8, (child, after)
    assert int(after["packets-out"]) - int(child["packets-out"]) == 8, (child, after)


def test_charon_initiates_from_its_trap_and_we_respond(sites):
    a, b = start(sites, ESP)
    b.ping_until_up(a)                     # B's LAN host: charon's trap policy -> acquire -> charon
    ike = one(a.status()["ike_sas"], "IKE SA on A")
    assert (ike["status"], ike["state"], ike["role"]) == ("Activated", 9, "responder"), ike
    assert one(b.charon.list_sas(), "IKE SA on B")["initiator"] == "yes"
    check_same_pair(a, b)
    sent, received, _, out = a.ping(b.site["lan_host"], count=3)
    assert sent == received == 3, out


def test_aggressive_mode_with_charon(sites):
    a, b = start(sites, AGGRESSIVE)
    a.ping_until_up(b)
    ike = one(a.status()["ike_sas"], "IKE SA on A")
    assert (ike["status"], ike["mode"], ike["algorithm"]) == \
        ("Activated", "aggressive", "AES-CBC-256/HMAC-SHA2-256/MODP-2048"), ike
    assert one(b.charon.list_sas(), "IKE SA on B")["state"] == "ESTABLISHED"
    check_same_pair(a, b)


def test_ah_tunnel_with_charon(sites):
    a, b = start(sites, AH)
    a.ping_until_up(b)
    check_same_pair(a, b, protocol="AH")
    capture_start(b, "wan", "eth0", "-Q out ip")
    try:
        sent, received, _, out = a.ping(b.site["lan_host"], count=3, interval=0.5)
    finally:
        wire = capture_stop(b, "wan")
    assert sent == received == 3, out
    ah = [l for l in without_ike(wire) if re.search(
        rf"IP {b.site['wan']} > {a.site['wan']}: AH\(spi=0x[0-9a-f]+,seq=0x[0-9a-f]+,icv=0x[0-9a-f]+\): IP ", l)]
    assert len(ah) == 3 and ah == without_ike(wire), "\n".join(wire)


def test_our_delete_reaches_charon_and_traffic_renegotiates(sites):
    a, b = start(sites, ESP)
    a.ping_until_up(b)
    old = {sa["spi"] for sa in a.sas()}
    a.ikectl(f"delete {one(a.sas('outgoing'), 'outgoing SA')['id']}")
    # charon got our Delete: its CHILD_SA and its kernel SAs are gone (the IKE SA stays)
    b.check(f"i=0; while {IP} xfrm state | grep -q 'proto esp'; do i=$((i+1)); "
            "[ $i -gt 50 ] && exit 1; sleep 0.2; done", timeout=30)
    assert b.charon.children() == [] and a.sas() == []
    assert one(b.charon.list_sas(), "IKE SA on B")["state"] == "ESTABLISHED"
    a.ping_until_up(b)
    new = {sa["spi"] for sa in a.sas()}
    assert len(new) == 2 and not new & old, (old, new)
    check_same_pair(a, b)


KERNEL_ESP_WATCH = """
import json, subprocess, time
seen = []
end = time.time() + {seconds}
while time.time() < end:
    kernel = subprocess.run(["/bin/ip", "xfrm", "state"], capture_output=True, text=True).stdout
    seen.append(kernel.count("proto esp"))
    time.sleep(0.5)
print(json.dumps(seen))
"""


def test_we_rekey_under_fast_ping_and_charon_follows_without_loss(sites):
    """Our lifetime 60 s (we are the initiator: rekey at 54 s); charon takes the lower lifetime we
    propose. charon installs the new pair and at once removes its old outgoing SA (strongSwan's
    habit: traffic moves to the new SA immediately), keeping the old incoming SA until our Delete
    arrives when the old pair expires: 3 SAs in its kernel during the overlap, never fewer than 2.
    A ping every 0.1 s: none is lost (before OUTBOUND_SWITCH_DELAY_S, one every 0.5 s was: our
    first packet on the new SA beat charon's install of it)."""
    a, b = start(sites, REKEY)
    a.ping_until_up(b)
    first = {sa["spi"] for sa in a.sas()}
    first_in = a.sas("incoming")
    count = 800                                    # 80 s: past the rekey and the old pair's expiry
    (sent, received, _, out), samples = ping_while_watching(a, b, b, KERNEL_ESP_WATCH, count=count,
                                                            interval=0.1)
    assert max(samples) == 3 and min(samples) == 2 and samples[-1] == 2, str(samples)
    # our Delete names our old incoming SPI; charon closed that CHILD_SA on it
    old_in = int(one(first_in, "old incoming SA")["spi"], 16)
    assert f"received DELETE for ESP CHILD_SA with SPI {old_in:08x}" in b.charon.log_tail(400)
    last = {sa["spi"] for sa in a.sas()}
    assert len(last) == 2 and not last & first, (first, last)
    check_same_pair(a, b)
    assert sent == received == count, out


def test_charon_rekeys_under_fast_ping_and_we_follow_without_loss(sites):
    """charon initiates the renewal (its child: life_time 60 s, rekey_time 35 s, no jitter; we
    would renew only at 57 s as responder) and moves its outgoing traffic to the new SA as soon
    as it sent HASH(3). A ping every 0.1 s from B's LAN across the renewal: none is lost, so our
    new inbound SA is in the kernel before charon's first packet on it."""
    a, b = start(sites, ESP, life_time="60s", rekey_time="35s")
    b.ping_until_up(a)                                      # charon initiates
    first = {sa["spi"] for sa in a.sas()}
    (sent, received, _, out), samples = ping_while_watching(b, a, a, KERNEL_ESP_WATCH, count=450,
                                                            interval=0.1)
    assert sent == received == 450, out
    assert max(samples) == 4, str(samples)                  # our kernel: both pairs for a while
    assert one(a.status()["ike_sas"], "IKE SA on A")["role"] == "responder"
    assert len({sa["spi"] for sa in a.sas()} - first) == 2, a.sas()
