"""Our router (site A, ikecore) against a real Libreswan gateway (site B: pluto 5.2 from Debian 13's
arm64 packages, booted from the test-only image rootfs-libreswan.squashfs), LAN to LAN, both kernels
doing ESP. Issue 15's findings, each against pluto itself: DPD advertised with our probing off,
the lifetime in force when pluto keeps shorter ones silently or is offered longer ones, aggressive
mode met with a main-mode-only pluto's silence, and pluto's NO-PROPOSAL-CHOSEN when it has no key.

Each test (re)starts pluto with its connection and restarts our daemon: both sides start without
SAs or policies.
"""
import re

import pytest

from e2e import IP, PSK, Scenario, one, show_after_failure
from guest_pluto import ROOTFS, Conn, GuestPluto

ESP = Scenario()                                  # main mode PSK, aes128-sha1-modp2048, PFS modp2048
AGGRESSIVE = Scenario(phase1_mode="aggressive")


def pluto_conn(a, b, **options):
    return Conn("site", b.site["wan"], b.site["lan_net"], a.site["wan"], a.site["lan_net"], **options)


def secrets(a, b, psk=PSK):
    return f'{b.site["wan"]} {a.site["wan"]} : PSK "{psk}"'


SITE_B_ROOTFS = ROOTFS              # conftest's `sites` boots site B from the libreswan image
SITE_B_MAKE = "make image image-libreswan"


@pytest.fixture(scope="module")
def sites(sites):
    """conftest's two sites, B's pluto ready to start."""
    a, b = sites
    b.pluto = GuestPluto(b)
    yield a, b
    b.pluto.stop()


@pytest.fixture(autouse=True)
def diagnostics_on_failure(request, sites):
    a, b = sites
    yield from show_after_failure(request, lambda: "\n".join([
        a.diagnostics(), f"--- site-b: pluto log\n{b.pluto.log_tail()}",
        f"--- site-b: {IP} xfrm state\n{b.run(f'{IP} xfrm state').output}"]))


def start(sites, scenario, conn_options=None, peer_keys=None, psk_secrets=None):
    """pluto on B and our daemon on A, both fresh. peer_keys: more keys for A's [[peer]]."""
    a, b = sites
    a.stop_daemon()
    b.pluto.start([pluto_conn(a, b, **(conn_options or {}))], psk_secrets or secrets(a, b))
    a.write_config(scenario.toml(a.site, b.site, peer_keys=peer_keys))
    a.start_daemon()
    a.wait_daemon()
    return a, b


def wait_for(site, what, predicate, attempts=200):
    """Poll our status until predicate(status) holds (1 s apart, no time asserted)."""
    status = None
    for _ in range(attempts):
        status = site.status()
        if predicate(status):
            return status
        site.run("sleep 1")
    raise AssertionError(f"{what}: never happened; last status {status}")


def isakmp_states(b):
    return [l for l in b.pluto.states() if re.search(r"STATE_(MAIN|AGGR)_[IR]\d", l)]


def test_pluto_version_and_a_main_mode_tunnel(sites):
    a, b = start(sites, ESP)
    assert "5.2" in b.pluto.version(), b.pluto.version()
    a.ping_until_up(b)
    ike = one(a.status()["ike_sas"], "IKE SA on A")
    assert (ike["status"], ike["mode"], ike["algorithm"]) == \
        ("Activated", "main", "AES-CBC-128/HMAC-SHA1/MODP-2048"), ike
    sent, received, _, out = a.ping(b.site["lan_host"], count=3)
    assert sent == received == 3, out
    spis = sorted(sa["spi"] for sa in a.sas())
    xfrm = b.check(f"{IP} xfrm state")
    assert sorted(re.findall(r"proto esp spi (0x[0-9a-f]+)", xfrm)) == spis, xfrm


def test_pluto_runs_dpd_with_us_when_our_own_probing_is_off(sites):
    """Finding 1: with dpd.delay_s = 0 we still advertise DPD, so pluto enables it and probes."""
    a, b = start(sites, ESP, conn_options={"dpddelay": "5", "dpdtimeout": "30"},
                 peer_keys={"dpd": (0, 120)})
    a.ping_until_up(b)
    log = b.pluto.log_tail(200)
    assert "remote peer did not advertise DPD support" not in log, log
    (state,) = isakmp_states(b)
    assert "lastdpd=" in state and "nodpd" not in state, state
    one(a.status()["ike_sas"], "IKE SA on A")      # still up: our R-U-THERE-ACKs keep it


def test_pluto_keeps_shorter_lifetimes_and_we_show_them_after_its_rekey(sites):
    """Finding 2: we propose 28800 s / 3600 s, pluto lives by 120 s / 90 s without a word; its
    renewals (quick mode, then main mode) offer its own, and our page shows them in force."""
    a, b = start(sites, ESP, conn_options={"ikelifetime": "120s", "salifetime": "90s",
                                           "rekeymargin": "30s", "rekeyfuzz": "0%"},
                 peer_keys={"lifetime_s": 28800})
    a.ping_until_up(b)
    first = {sa["spi"] for sa in a.sas()}
    assert {sa["lifetime_s"] for sa in a.sas()} == {3600}
    assert one(a.status()["ike_sas"], "IKE SA on A")["lifetime_s"] == 28800
    status = wait_for(a, "pluto renewed the SAs and the IKE SA", lambda st: len(
        {s["spi"] for s in st["sas"]} - first) >= 2 and len(st["ike_sas"]) >= 2)
    old = [s for s in status["sas"] if s["spi"] in first]
    new = [s for s in status["sas"] if s["spi"] not in first]
    for s in old:
        assert (s["lifetime_s"], s["lifetime_note"]) == (
            90, "the peer's, learned from its rekey; we had 3600"), s
    for s in new:
        assert (s["lifetime_s"], s["lifetime_note"]) == (90, "the peer's; ours is 3600"), s
    ikes = sorted((s["role"], s["lifetime_s"], s["lifetime_note"]) for s in status["ike_sas"])
    assert ikes[0] == ("initiator", 120, "the peer's, learned from its rekey; we had 28800"), ikes
    assert ikes[-1] == ("responder", 120, "the peer's; ours is 28800"), ikes


def test_pluto_accepts_our_responder_lifetime(sites):
    """Finding 2, responder: pluto offers 8 h / 8 h, we keep 3600 s / 1200 s and say so with
    RESPONDER-LIFETIME in main mode message 2 and quick mode message 2; pluto goes on."""
    a, b = start(sites, Scenario(lifetime_s=1200),
                 conn_options={"ikelifetime": "8h", "salifetime": "8h"},
                 peer_keys={"lifetime_s": 3600})
    b.pluto.whack("--name site --initiate --asynchronous")
    status = wait_for(a, "pluto's tunnel", lambda st: len(st["sas"]) == 2)
    ike = one(status["ike_sas"], "IKE SA on A")
    assert (ike["role"], ike["lifetime_s"], ike["lifetime_note"]) == (
        "responder", 3600, "ours; the peer proposed 28800"), ike
    for s in status["sas"]:
        assert s["lifetime_note"].startswith("ours; the peer proposed 28800"), s
    assert any("STATE_QUICK_I2" in l for l in b.pluto.states()), b.pluto.states()


def test_aggressive_mode_to_a_main_mode_only_pluto(sites):
    """Finding 3: pluto (aggressive=no) drops our aggressive mode message 1 without a word."""
    a, b = start(sites, AGGRESSIVE)
    a.ikectl("up site")
    status = wait_for(a, "give-up", lambda st: st["ike_sas"] and (st["ike_sas"][0]["last_error"]
                                                                  or "").count("phase 1"))
    line = status["ike_sas"][0]["last_error"]
    assert "could not be reached, or it accepts main mode only" in line, line
    assert "allows aggressive mode" in line, line


def test_pluto_without_our_key_reads_id_or_key(sites):
    """Finding 4: pluto has no PSK for our address, answers NO-PROPOSAL-CHOSEN to message 1."""
    a, b = sites
    a, b = start(sites, ESP, psk_secrets=f'{b.site["wan"]} 203.0.113.99 : PSK "someone else"')
    a.ikectl("up site")
    status = wait_for(a, "NO-PROPOSAL-CHOSEN", lambda st: st["ike_sas"] and "NO-PROPOSAL-CHOSEN" in (
        st["ike_sas"][0]["last_error"] or ""))
    line = status["ike_sas"][0]["last_error"]
    assert "or our ID or key is not configured on the peer" in line, line
    assert "no preshared key" in b.pluto.log_tail(100).lower() or "authenticate" in \
        b.pluto.log_tail(100), b.pluto.log_tail(100)
