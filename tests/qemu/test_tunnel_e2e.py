"""LAN-to-LAN tunnels between two booted routers, carried by the guests' real kernel (XFRM, ESP/AH).

Site A (LAN 10.1.0.0/24, WAN 192.0.2.1) and site B (LAN 10.2.0.0/24, WAN 192.0.2.2) are booted once
for the module; each scenario rewrites both ikecore.toml files and restarts the daemons. Traffic
comes from each site's LAN host (network namespace "lanhost" in its guest). A failing test prints
both guests' VPN log, `ip xfrm state`/`policy` and `ikectl status`.
"""
import json
import os
import re

import pytest

from e2e import (DAEMON_PIDS, IP, NAT_PUBLIC, Scenario, capture_start, capture_stop, configure,
                 nat_in_front_of, one, ping_while_watching, remove_nat, shell_quote, show_after_failure,
                 without_ike)

ESP = Scenario()                                     # main mode PSK, aes128-sha1, PFS modp2048
AH = Scenario(protocol="ah", child_proposals=["sha256"])
ESP_AH = Scenario(protocol="esp+ah", child_proposals=["aes256-sha256"])
REKEY = Scenario(lifetime_s=60)                      # the shortest lifetime config.py accepts


@pytest.fixture(autouse=True)
def diagnostics_on_failure(request, sites):
    """After a failed test, both guests' VPN log and kernel SAs go to the terminal."""
    failed = yield from show_after_failure(request, lambda: "\n".join(s.diagnostics() for s in sites))
    if failed:
        for s in sites:             # the next test starts from a clean configuration
            s.scenario = None


def tunnel(sites, scenario):
    """Both sites on `scenario` (reconfigured only when it changed) and the tunnel up."""
    a, b = sites
    if a.scenario != scenario.key():
        configure(a, b, scenario)
    a.ping_until_up(b)
    return a, b


def test_ping_triggers_acquire_negotiates_and_passes(sites):
    a, b = sites
    configure(a, b, ESP)
    assert a.status()["sas"] == [] and b.status()["sas"] == []
    sent, received, seqs, out = a.ping(b.site["lan_host"], count=10, interval=1, wait_s=3)
    assert sent == 10 and received >= 4, out
    # only the first packets, sent while the SAs were negotiated, may be lost; then every one passes
    assert seqs == list(range(seqs[0], 10)), out
    for here, there, role in ((a, b, "initiator"), (b, a, "responder")):
        ike = one(here.status()["ike_sas"], f"IKE SA on {here.name}")
        assert (ike["status"], ike["state"], ike["role"], ike["remote_gateway"]) == \
            ("Activated", 9, role, there.site["wan"]), ike
        assert ike["nat_t"] == "none", ike
        out_sa = one(here.sas("outgoing"), "outgoing SA")
        in_sa = one(here.sas("incoming"), "incoming SA")
        assert out_sa["protocol"] == in_sa["protocol"] == "ESP"
        assert out_sa["destination"] == there.site["wan"] and in_sa["destination"] == here.site["wan"]
        assert (out_sa["local_net"], out_sa["remote_net"]) == (here.site["lan_net"], there.site["lan_net"])
    # the pair on A is the pair on B, crossed
    assert {s["spi"] for s in a.sas()} == {s["spi"] for s in b.sas()}
    # the kernel holds exactly those SAs
    for s in (a, b):
        xfrm = s.check(f"{IP} xfrm state")
        assert sorted(re.findall(r"proto esp spi (0x[0-9a-f]+)", xfrm)) == \
            sorted("0x%08x" % int(sa["spi"], 16) for sa in s.sas()), xfrm


def test_wan_carries_only_esp_lan_shows_cleartext_icmp(sites):
    """What each gateway puts on the WAN wire (its outgoing packets: the segment has no other
    sender) is ESP between the gateways; the LAN sees the cleartext ICMP. (An incoming capture
    on eth0 would also show the decrypted packets: Linux hands them to the taps of the interface
    they arrived on.)"""
    a, b = tunnel(sites, ESP)
    for s in (a, b):
        capture_start(s, "wan", "eth0", "-Q out ip")
    capture_start(a, "lan", "lan0", "icmp")
    try:
        sent, received, _, out = a.ping(b.site["lan_host"], count=4, interval=0.5)
    finally:
        wire = {s.name: capture_stop(s, "wan") for s in (a, b)}
        lan = capture_stop(a, "lan")
    assert received == sent == 4, out
    for here, there in ((a, b), (b, a)):
        lines = without_ike(wire[here.name])
        esp = [l for l in lines if re.search(
            rf"IP {here.site['wan']} > {there.site['wan']}: ESP\(spi=0x[0-9a-f]+,seq=0x[0-9a-f]+\)", l)]
        assert len(esp) == 4 and esp == lines, f"{here.name} sent:\n" + "\n".join(wire[here.name])
    requests = [l for l in lan if f"{a.site['lan_host']} > {b.site['lan_host']}: ICMP echo request" in l]
    replies = [l for l in lan if f"{b.site['lan_host']} > {a.site['lan_host']}: ICMP echo reply" in l]
    assert len(requests) == len(replies) == 4, "\n".join(lan)


FIREWALL_ENTRIES = """
import json, sys
from webui.firewall_log import parse_lines
lines = sys.stdin.read().splitlines()
mark = max(i for i, line in enumerate(lines) if "e2e-mark-{n}" in line)
print(json.dumps([e.as_dict() for e in parse_lines(lines[mark:])]))
"""


def firewall_log_since(site, n):
    """The guest's firewall log (syslog ring) after `logger` mark n, parsed in the guest by the
    web UI's own parser, oldest first."""
    out = site.check("logread | python3 -c " + shell_quote(FIREWALL_ENTRIES.format(n=n)))
    return list(reversed(json.loads(out.strip().splitlines()[-1])))


def test_firewall_log_shows_ike_and_esp_on_wan_and_cleartext_on_lan(sites):
    """The seed's notes on reading the firewall log for IPsec traffic, in the guests' syslog ring:
    IKE as UDP 500 on the WAN, the data as ESP to the remote gateway on the WAN, the cleartext
    packet on the LAN side (A: from lan0 into the tunnel; B: out of the tunnel)."""
    a, b = sites
    configure(a, b, ESP)
    for s in (a, b):
        s.check("logger -t e2e e2e-mark-1")
    a.ping_until_up(b)
    sent, received, _, out = a.ping(b.site["lan_host"], count=2)
    assert sent == received == 2, out
    spi_out = one(a.sas("outgoing"), "outgoing SA on A")["spi"]
    spi_back = one(b.sas("outgoing"), "outgoing SA on B")["spi"]
    log_a, log_b = firewall_log_since(a, 1), firewall_log_since(b, 1)

    def has(log, **want):
        return any(all(e.get(k) == v for k, v in want.items()) for e in log)
    wan_a, wan_b, gw_a, gw_b = "eth0", "eth0", a.site["wan"], b.site["wan"]
    host_a, host_b = a.site["lan_host"], b.site["lan_host"]
    assert has(log_a, interface=wan_a, direction="out", protocol="UDP", dport=500, dst=gw_b), log_a
    assert has(log_b, interface=wan_b, direction="in", protocol="UDP", dport=500, src=gw_a), log_b
    # each gateway logs the ESP it sends with its outgoing SA's SPI (incoming ESP is logged only
    # while its conntrack entry is new: the ruleset accepts "established" before the WAN log rule,
    # docs/e2e.md Findings)
    assert has(log_a, interface=wan_a, direction="out", protocol="ESP", spi=spi_out, dst=gw_b), log_a
    assert has(log_b, interface=wan_b, direction="out", protocol="ESP", spi=spi_back, dst=gw_a), log_b
    assert has(log_a, interface="lan0", direction="fwd", protocol="ICMP", src=host_a, dst=host_b), log_a
    assert has(log_b, interface=wan_b, direction="fwd", protocol="ICMP", src=host_a, dst=host_b), log_b
    # the cleartext addresses never appear on A's WAN lines
    assert not [e for e in log_a if e["interface"] == wan_a and host_b in (e["src"], e["dst"])], log_a


def test_sa_byte_counters_grow_by_what_was_sent(sites):
    a, b = tunnel(sites, ESP)
    before = {(s.name, sa["spi"]): sa for s in (a, b) for sa in s.sas()}
    count, size = 10, 1000
    sent, received, _, out = a.ping(b.site["lan_host"], count=count, size=size, interval=0.2)
    assert sent == received == count, out
    ip_packet = size + 8 + 20                       # ICMP payload + ICMP header + inner IP header
    for s in (a, b):
        for sa in s.sas():
            old = before[(s.name, sa["spi"])]
            grew_bytes, grew_packets = sa["bytes"] - old["bytes"], sa["packets"] - old["packets"]
            assert grew_packets == count, (s.name, old, sa)
            # the kernel counts the inner packet (+ the outer header on the way out)
            assert count * ip_packet <= grew_bytes <= count * (ip_packet + 20), (s.name, old, sa)
            assert sa["errored_packets"] == 0, sa


INJECT_ESP = """
import os, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ESP)
for seq in range(1000000, 1000000 + {n}):
    # a valid SPI and a sequence number ahead of the replay window, then garbage:
    # IV (16) + "ciphertext" (64) + ICV (12) that cannot authenticate
    s.sendto(struct.pack("!II", {spi}, seq) + os.urandom(16 + 64 + 12), ("{dst}", 0))
print("sent", {n})
"""


def test_corrupted_esp_is_counted_and_dropped(sites):
    a, b = tunnel(sites, ESP)
    target = one(b.sas("incoming"), "incoming SA on B")
    n = 5
    capture_start(b, "lanb", "lan0", "ip")
    try:
        a.check("python3 -c " + shell_quote(INJECT_ESP.format(n=n, spi=int(target["spi"], 16), dst=b.site["wan"])))
    finally:
        lan = capture_stop(b, "lanb")
    after = one([sa for sa in b.sas("incoming") if sa["spi"] == target["spi"]], "the same SA")
    assert after["errored_packets"] - target["errored_packets"] == n, (target, after)
    assert after["packets"] == target["packets"], (target, after)      # none was accepted
    assert lan == [], lan                        # nothing reached B's LAN
    # the tunnel is unharmed
    sent, received, _, out = a.ping(b.site["lan_host"], count=3)
    assert sent == received == 3, out


def test_delete_removes_the_sa_on_both_ends_and_traffic_renegotiates(sites):
    a, b = tunnel(sites, ESP)
    victim = one(a.sas("outgoing"), "outgoing SA on A")
    old_spis = {sa["spi"] for sa in a.sas()}
    a.ikectl(f"delete {victim['id']}")
    for s in (a, b):            # the peer got our Delete notify and dropped its pair too
        s.check(f"i=0; while {IP} xfrm state | grep -q 'proto esp'; do i=$((i+1)); "
                "[ $i -gt 50 ] && exit 1; sleep 0.2; done", timeout=30)
        assert s.sas() == [], s.name
    a.ping_until_up(b)
    sent, received, _, out = a.ping(b.site["lan_host"], count=3)
    assert sent == received == 3, out
    new_spis = {sa["spi"] for sa in a.sas()}
    assert len(new_spis) == 2 and not new_spis & old_spis, (old_spis, new_spis)
    assert new_spis == {sa["spi"] for sa in b.sas()}


def test_killed_daemon_is_restarted_and_the_tunnel_returns(sites):
    a, b = tunnel(sites, ESP)
    old_pid = a.daemon_pid()
    a.check(f"kill -9 {old_pid}")
    a.check(f"i=0; until p=$({DAEMON_PIDS}) && [ -n \"$p\" ] && [ \"$p\" != {old_pid} ]; do "
            "i=$((i+1)); [ $i -gt 100 ] && exit 1; sleep 0.3; done", timeout=60)
    a.wait_daemon()
    assert "ikecore exited with status 137" in a.check("logread | grep respawn")
    a.ping_until_up(b)
    sent, received, _, out = a.ping(b.site["lan_host"], count=3)
    assert sent == received == 3, out
    ike = one([i for i in a.status()["ike_sas"] if i["status"] == "Activated"], "IKE SA on A")
    assert ike["state"] == 9
    assert len(a.sas()) == 2


AH_HEADER = r"AH\(spi=0x[0-9a-f]+,seq=0x[0-9a-f]+,icv=0x[0-9a-f]+\): "


@pytest.mark.parametrize("scenario, proto_re, protocols", [
    (AH, AH_HEADER + r"IP ", ["AH", "AH"]),                # AH tunnel: the inner IP header follows
    (ESP_AH, AH_HEADER + r"ESP\(spi=", ["AH", "AH", "ESP", "ESP"])],   # AH over the ESP tunnel
    ids=["ah", "esp+ah"])
def test_ah_and_esp_ah_tunnels_carry_traffic(sites, scenario, proto_re, protocols):
    a, b = tunnel(sites, scenario)
    for s in (a, b):
        capture_start(s, "wan", "eth0", "-Q out ip")
    try:
        sent, received, _, out = a.ping(b.site["lan_host"], count=3, interval=0.5)
    finally:
        wire = {s.name: capture_stop(s, "wan") for s in (a, b)}
    assert sent == received == 3, out
    for here, there in ((a, b), (b, a)):
        lines = without_ike(wire[here.name])
        data = [l for l in lines if f"IP {here.site['wan']} > {there.site['wan']}: " in l
                and re.search(proto_re, l)]
        assert len(data) == 3 and data == lines, f"{here.name} sent:\n" + "\n".join(wire[here.name])
    for s in (a, b):
        assert sorted(sa["protocol"] for sa in s.sas()) == protocols, s.sas()
        for sa in s.sas():
            assert sa["bytes"] > 0, sa


REKEY_WATCH = """
import json, subprocess, time
from ikecore.ctl import request
seen = []
end = time.time() + {seconds}
while time.time() < end:
    sas = request("/run/ikecore/control.sock", {{"cmd": "status"}})["result"]["sas"]
    kernel = subprocess.run(["/bin/ip", "xfrm", "state"], capture_output=True, text=True).stdout
    seen.append([len(sas), kernel.count("proto esp")])
    time.sleep(0.5)
print(json.dumps(seen))
"""


def test_short_lifetime_rekeys_under_continuous_ping_without_loss(sites):
    """lifetime 60 s: the initiator rekeys at 54 s (margin = lifetime/10), the old pair expires at
    60 s; meanwhile both pairs exist (4 SAs) and the ping never misses a packet."""
    a, b = sites
    configure(a, b, REKEY)
    a.ping_until_up(b)
    first = {sa["spi"] for sa in a.sas()}
    negotiations = one(a.status()["ike_sas"], "IKE SA")["phase2_negotiations"]
    count = 160                                    # 80 s: past the rekey and the old pair's expiry
    (sent, received, _, out), samples = ping_while_watching(a, b, a, REKEY_WATCH, count=count)
    assert max(n for n, _ in samples) == 4, samples         # the overlap: old and new pair shown
    assert max(k for _, k in samples) == 4, samples         # ... and both in the kernel
    assert samples[-1] == [2, 2], samples                   # the old pair is gone in the end
    last = {sa["spi"] for sa in a.sas()}
    assert len(last) == 2 and not last & first, (first, last)
    assert last == {sa["spi"] for sa in b.sas()}
    ike = one(a.status()["ike_sas"], "IKE SA")
    assert ike["phase2_negotiations"] == negotiations + 1, ike
    assert sent == received == count, out                   # zero loss across the rekey


def test_nat_traversal_esp_in_udp_near_end_and_far_end(sites):
    """A behind a masquerading NAT: NAT-D tells A "near end" and B "far end"; IKE floats to 4500
    and the tunnel is ESP-in-UDP on the wire."""
    a, b = sites
    for s in (a, b):
        s.stop_daemon()
    a.scenario = b.scenario = None
    nat_in_front_of(a, b)
    try:
        configure(a, b, ESP, a_behind_nat=True)
        a.scenario = b.scenario = None              # the next scenario must reconfigure
        a.ping_until_up(b)
        for s in (a, b):
            capture_start(s, "wan", "eth0", "-Q out ip")
        try:
            sent, received, _, out = a.ping(b.site["lan_host"], count=3, interval=0.5)
        finally:
            wire = {s.name: capture_stop(s, "wan") for s in (a, b)}
        assert sent == received == 3, out
        assert one(a.status()["ike_sas"], "IKE SA on A")["nat_t"] == "near end"
        assert one(b.status()["ike_sas"], "IKE SA on B")["nat_t"] == "far end"
        # on the wire (what each side sends, after the NAT): ESP in UDP between B:4500 and the
        # NAT's mapping of A:4500, nothing else
        for s, pattern in ((a, rf"IP {NAT_PUBLIC}\.1501 > {b.site['wan']}\.4500: UDP-encap: ESP\(spi="),
                           (b, rf"IP {b.site['wan']}\.4500 > {NAT_PUBLIC}\.1501: UDP-encap: ESP\(spi=")):
            lines = without_ike(wire[s.name])
            esp = [l for l in lines if re.search(pattern, l)]
            assert len(esp) == 3 and esp == lines, f"{s.name} sent:\n" + "\n".join(wire[s.name])
        for s in (a, b):
            assert "encap type espinudp" in s.check(f"{IP} xfrm state"), s.name
    finally:
        for s in (a, b):
            s.stop_daemon()
        remove_nat(a)
