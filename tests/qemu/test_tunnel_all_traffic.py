"""All traffic through the tunnel, in the guests' real kernels: site A is a branch with
remote_net = "0.0.0.0/0" and two LANs (lan0 10.1.0.0/24 with the LAN host, eth1 192.168.1.0/24
with the status page), site B the hub with local_net = "0.0.0.0/0". A's LAN host reaches B's LAN
through ESP; A's status page still answers on its LAN (from QEMU's LAN side and from the LAN
host on the other LAN); IKE brings the tunnel up and rekeys it with those policies in place.
"""
import os
import re

import pytest

from e2e import IP, Scenario, boot_sites, capture_start, capture_stop, configure, one, show_after_failure, \
    stop_sites, without_ike

IMAGES = os.environ.get("IKECORE_IMAGES") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "output", "images")
ANY = "0.0.0.0/0"
BRANCH_LANS = ["10.1.0.0/24", "192.168.1.0/24"]      # lan0 (LAN host) and eth1 (the page)
PAGE = "http://192.168.1.1/"
BYPASS_PRIORITY = 7392                               # ikecore.xfrm.BYPASS_PRIORITY
# lifetime 60 s (the shortest config.py accepts): the rekey happens within the test
ALL_TRAFFIC = Scenario(lifetime_s=60, networks={"192.0.2.1": (BRANCH_LANS, ANY),
                                                "192.0.2.2": (ANY, BRANCH_LANS)})
FETCH_PAGE = ("python3 -c \"import urllib.request; "
              "print('status', urllib.request.urlopen('%s', timeout=20).status)\"" % PAGE)


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    for part in ("Image", "rootfs.squashfs", "data-template.img"):
        if not os.path.exists(os.path.join(IMAGES, part)):
            pytest.skip(f"no firmware image in {IMAGES} (missing {part}): run `make image`")
    a, b = boot_sites(tmp_path_factory.mktemp("sites"), IMAGES)
    yield a, b
    stop_sites(a, b)


@pytest.fixture(autouse=True)
def diagnostics_on_failure(request, sites):
    yield from show_after_failure(request, lambda: "\n".join(s.diagnostics() for s in sites))


def policies(site):
    """`ip xfrm policy` as [(dir, src, dst, priority, has a template)] (proto/ports dropped)."""
    found = []
    for block in re.split(r"\n(?=src )", site.check(f"{IP} xfrm policy")):
        m = re.match(r"src (\S+) dst (\S+).*?\n\s+dir (\w+) priority (\d+)", block, re.S)
        if m:
            found.append((m.group(3), m.group(1), m.group(2), int(m.group(4)), "tmpl" in block))
    return found


def test_everything_goes_to_the_hub_while_lan_page_and_ike_stay_outside(sites):
    a, b = sites
    configure(a, b, ALL_TRAFFIC)
    # the branch's kernel: tunnel policies toward 0.0.0.0/0 and, above them, the LAN bypasses
    # (each LAN to each, three directions) and IKE/ESP to the hub's gateway
    kernel = policies(a)
    assert ("out", "10.1.0.0/24", ANY) in [p[:3] for p in kernel if p[4]], kernel
    lan = sorted(p[:3] for p in kernel if p[3] == BYPASS_PRIORITY and not p[4]
                 and p[1] != ANY and p[2] != ANY)
    assert lan == sorted((d, s, t) for d in ("out", "in", "fwd") for s in BRANCH_LANS
                         for t in BRANCH_LANS), kernel
    hub = b.site["wan"] + "/32"
    assert sum(1 for p in kernel if p[3] == BYPASS_PRIORITY and hub in p[1:3]) == 6, kernel

    # the status page answers on the branch's LAN with the tunnel policies in place: through
    # QEMU's LAN (its client 192.168.1.2 is in local_net) and from the LAN host on lan0
    status, _ = a.router.wait_http(timeout=60)
    assert status == 200
    assert "status 200" in a.lan(FETCH_PAGE, timeout=90).output

    # traffic to the hub's LAN goes through ESP: IKE first brings the tunnel up
    a.ping_until_up(b)
    capture_start(a, "wan", "eth0", "-Q out ip")
    try:
        sent, received, _, out = a.ping(b.site["lan_host"], count=4, interval=0.5)
    finally:
        wire = capture_stop(a, "wan")
    assert sent == received == 4, out
    lines = without_ike(wire)
    assert len(lines) == 4 and all(re.search(
        rf"IP {a.site['wan']} > {b.site['wan']}: ESP\(spi=0x[0-9a-f]+", l) for l in lines), wire
    for here, (local_net, remote_net) in ((a, ("10.1.0.0/24", ANY)), (b, (ANY, "10.1.0.0/24"))):
        out_sa = one(here.sas("outgoing"), f"outgoing SA on {here.name}")
        assert (out_sa["local_net"], out_sa["remote_net"]) == (local_net, remote_net), out_sa
    assert a.status()["sas"][0]["connection"].startswith("lan-lan#")

    # IKE keeps working under the all-traffic policies: the pair is renewed before its 60 s
    first = {sa["spi"] for sa in a.sas()}
    negotiations = one(a.status()["ike_sas"], "IKE SA on A")["phase2_negotiations"]
    a.check("i=0; until ikectl status --json | grep -q '\"phase2_negotiations\": "
            f"{negotiations + 1}'; do i=$((i+1)); [ $i -gt 150 ] && exit 1; sleep 1; done",
            timeout=200)
    sent, received, _, out = a.ping(b.site["lan_host"], count=3)
    assert sent == received == 3, out
    assert {sa["spi"] for sa in a.sas()} - first, (first, a.sas())
    # and the page still answers after the rekey
    assert "status 200" in a.lan(FETCH_PAGE, timeout=90).output
