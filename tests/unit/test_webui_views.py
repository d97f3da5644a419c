"""The web UI's pages over real HTTP (the app on 127.0.0.1) against a fake control socket:
the seed's columns, login, CSRF, headers, escaping, /api/status and /metrics."""
import json
import os
import re

import pytest

from webui_fake_daemon import FakeDaemon, ike_sa, sa_pair
from webui_harness import Client, ThreadedWebui

from webui import auth
from webui.context import Options

PASSWORD = "correct-password"
XSS = "<script>alert('x')</script>"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def seed_status():
    up = ike_sa(1, peer="branch", gateway="198.51.100.2", nat_t="far end", phase2=3)
    negotiating = ike_sa(2, status="Negotiating", state=5, peer="hq", gateway="198.51.100.7",
                         nat_t="near end", elapsed_s=0, phase2=0,
                         last_error="Phase 1 failed: no proposal chosen (algorithm mismatch)")
    idle = ike_sa(3, status="Idle", state=0, peer="idle", gateway="198.51.100.9", phase2=0)
    return {"ike_sas": [up, negotiating, idle], "sas": sa_pair(up, 0xc1a2b3d4)}


@pytest.fixture
def env(tmp_path):
    socket_path = str(tmp_path / "control.sock")
    fake = FakeDaemon(socket_path, seed_status(),
                      log=[{"time": 1764080000.5, "level": "info", "peer": "branch",
                            "text": "quick mode done, SAs 0xc1a2b3d4 in / 0xc1a2b3d5 out"},
                           {"time": 1764080100.0, "level": "error", "peer": "hq",
                            "text": "no proposal chosen " + XSS}]).start()
    clock = Clock()
    server = ThreadedWebui(Options(socket_path, str(tmp_path), str(tmp_path / "ikecore.toml"),
                                   firewall_log=str(tmp_path / "messages")), clock).start()
    yield {"fake": fake, "server": server, "tmp": tmp_path, "clock": clock}
    server.stop()
    fake.stop()


@pytest.fixture
def client(env):
    auth.PasswordStore(str(env["tmp"])).set(PASSWORD)
    c = Client(env["server"].port)
    assert c.login(PASSWORD).status == 303
    return c


def cells(html, table_id):
    body = html.split('id="%s"' % table_id, 1)[1].split("</table>", 1)[0]
    return re.findall(r"<th scope=\"col\">(.*?)</th>", body)


def test_status_page_has_the_seeds_columns_and_values(env, client):
    page = client.get("/")
    assert page.status == 200
    assert cells(page.text, "ike-sas") == [
        "Remote Gateway", "Status", "Algorithm", "Elapsed time", "Life time", "NAT-T",
        "Phase 2 negotiations", "Delete"]
    assert cells(page.text, "sas") == [
        "Destination", "Direction", "SPI", "Protocol", "Algorithm", "Elapsed time", "Life time",
        "Bytes processed", "Errored packets", "Delete"]
    text = page.text
    for shown in ("Activated", "Negotiating(5)", "Idle", "Far end", "Near end", "Incoming",
                  "Outgoing", "0xc1a2b3d4", "ESP", "AES-CBC-128/HMAC-SHA1-96",
                  "AES-CBC-128/HMAC-SHA1/MODP-2048",
                  "Phase 1 failed: no proposal chosen (algorithm mismatch)"):
        assert shown in text, shown
    # each SA has an anchor the logs link to; the negotiation-states help has both modes
    assert 'id="sa-c1a2b3d4"' in text and 'id="sa-c1a2b3d5"' in text
    assert "main mode" in text and "aggressive mode" in text
    assert "3rd valid msg received" in text


def test_pages_require_login(env):
    anonymous = Client(env["server"].port)
    for path in ("/", "/log/vpn", "/log/firewall", "/settings/peers", "/settings/connections"):
        page = anonymous.get(path)
        assert page.status == 303 and page.header("location").startswith("/login"), path
    for path in ("/api/status", "/metrics"):
        assert anonymous.get(path).status == 401, path
    refused = anonymous.post("/delete", {"id": "ike-1", "confirmed": "1"}, csrf=False)
    assert refused.status == 403
    assert "delete" not in env["fake"].commands()


def test_default_password_forces_a_change(env):
    c = Client(env["server"].port)
    assert "log in with <code>admin</code>" in c.get("/login").text
    assert c.login("admin").header("location") == "/password"
    assert c.get("/").header("location") == "/password"          # nothing else until changed
    assert c.get("/api/status").header("location") == "/password"
    short = c.post("/password", {"current": "admin", "new": "short", "confirm": "short"})
    assert short.status == 400 and "at least 8 characters" in short.text
    done = c.post("/password", {"current": "admin", "new": "new-password-1",
                                "confirm": "new-password-1"})
    assert done.status == 303 and done.header("location") == "/"
    assert c.get("/").status == 200
    stored = open(os.path.join(str(env["tmp"]), auth.PASSWORD_FILE)).read()
    assert stored.startswith("scrypt$") and "new-password-1" not in stored
    assert os.stat(os.path.join(str(env["tmp"]), auth.PASSWORD_FILE)).st_mode & 0o077 == 0
    assert Client(env["server"].port).login("admin").status == 401
    assert Client(env["server"].port).login("new-password-1").header("location") == "/"


def test_post_without_or_with_a_wrong_csrf_token_is_refused(env, client):
    for token in (False, "forged-token"):
        page = client.post("/delete", {"id": "ike-1", "confirmed": "1"}, csrf=token)
        assert page.status == 403 and "CSRF" in page.text
    other = Client(env["server"].port)       # a token from another session does not work either
    other.login(PASSWORD)
    page = client.post("/delete", {"id": "ike-1", "confirmed": "1"}, csrf=other.csrf_token())
    assert page.status == 403
    assert "delete" not in env["fake"].commands()
    ok = client.post("/delete", {"id": "ike-1", "confirmed": "1"})
    assert ok.status == 303
    assert {"cmd": "delete", "id": "ike-1"} in env["fake"].requests


def test_delete_asks_for_confirmation_first(env, client):
    page = client.post("/delete", {"id": "sa-c1a2b3d4", "confirmed": "0"})
    assert page.status == 200 and "Delete?" in page.text and "0xc1a2b3d4" in page.text
    assert "delete" not in env["fake"].commands()
    # the status page's forms carry the question the script asks before sending confirmed=1
    assert 'data-confirm="Delete the ESP SA 0xc1a2b3d4?"' in client.get("/").text


def test_security_headers_and_session_cookie(env, client):
    page = client.get("/")
    csp = page.header("content-security-policy")
    assert "default-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert page.header("x-frame-options") == "DENY"
    assert page.header("x-content-type-options") == "nosniff"
    cookie = [h for h in client.set_cookie_headers if h.startswith("ikecore_session=")][-1]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie
    assert "<script>" not in page.text.replace('<script src="/static/app.js" defer></script>', "")


def test_peer_controlled_strings_are_escaped(env, client):
    def inject(status):
        status["ike_sas"][0]["peer"] = XSS
        status["ike_sas"][1]["last_error"] = "ID mismatch: peer sent " + XSS
    env["fake"].update(inject)
    for path in ("/", "/log/vpn"):
        page = client.get(path)
        assert XSS not in page.text, path
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page.text, path


def test_login_is_rate_limited(env):
    c = Client(env["server"].port)
    for _ in range(auth.MAX_FAILURES):
        assert c.login("wrong").status == 401
    locked = c.login(PASSWORD)
    assert locked.status == 429 and "wait" in locked.text
    env["clock"].now += auth.LOCKOUT_S + 1
    assert c.login("admin").header("location") == "/password"


def test_api_status_is_the_daemons_status_data(env, client):
    page = client.get("/api/status")
    assert page.status == 200 and page.header("content-type").startswith("application/json")
    assert json.loads(page.body) == seed_status()


def test_metrics_in_prometheus_text_format(env, client):
    env["fake"].update(lambda s: s.update(daemon={"malformed_datagrams": 2, "note": "x"}))
    text = client.get("/metrics").text
    assert "ikecore_daemon_malformed_datagrams_total 2" in text and "note" not in text
    assert 'ikecore_ike_sas{status="Activated"} 1' in text
    assert 'ikecore_ike_sas{status="Negotiating"} 1' in text
    assert 'ikecore_ike_sa_state{id="ike-2",peer="hq",remote_gateway="198.51.100.7"} 5' in text
    assert re.search(r'ikecore_sa_bytes_total\{[^}]*spi="0xc1a2b3d4"[^}]*\} 10240', text)
    assert "ikecore_sas 2" in text and "ikecore_up 1" in text
    for line in text.splitlines():
        assert line.startswith("#") or re.match(r"^[a-z_][a-z0-9_]*(\{.*\})? -?\d+$", line), line


def test_api_accepts_basic_auth_for_scrapers(env, client):
    import base64
    scraper = Client(env["server"].port)
    good = {"Authorization": "Basic " + base64.b64encode(b"admin:" + PASSWORD.encode()).decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"admin:nope").decode()}
    assert scraper.get("/metrics", headers=good).status == 200
    assert scraper.get("/metrics", headers=bad).status == 401
    assert scraper.get("/", headers=good).status == 303       # pages still need the login form


def test_daemon_down_is_reported_not_crashed(env, client):
    env["fake"].stop()
    os.unlink(env["fake"].socket_path)
    page = client.get("/")
    assert page.status == 200 and "cannot talk to the ikecore daemon" in page.text
    assert client.get("/api/status").status == 502
    assert "ikecore_up 0" in client.get("/metrics").text
    env["fake"] = FakeDaemon(env["fake"].socket_path).start()   # for the fixture's teardown


def test_vpn_log_newest_first_filtered_with_spi_links(env, client):
    page = client.get("/log/vpn")
    assert page.text.index("no proposal chosen") < page.text.index("quick mode done")
    assert '<a class="mono spi" href="/#sa-c1a2b3d4">0xc1a2b3d4</a>' in page.text
    only = client.get("/log/vpn?peer=branch")
    assert "quick mode done" in only.text and "no proposal chosen" not in only.text


def test_vpn_log_shows_the_persisted_lines_from_before_a_restart_once(env, client):
    """The system log (here the --firewall-log file) holds a line from before the daemon
    started and rsyslog's copy of one the daemon still has: the first is shown below the live
    ones, the copy not at all."""
    (env["tmp"] / "messages").write_text(
        "2025-11-25T13:50:00.000000+00:00 router daemon.info ikecore: [branch] before the "
        "reboot\n"
        "2025-11-25T13:50:01.000000+00:00 router kern.warn kernel: fw:eth0:in:drop SRC=1.2.3.4\n"
        "2025-11-25T14:13:20.600000+00:00 router daemon.info ikecore: [branch] quick mode done, "
        "SAs 0xc1a2b3d4 in / 0xc1a2b3d5 out\n")
    page = client.get("/log/vpn").text
    assert page.index("no proposal chosen") < page.index("quick mode done") \
        < page.index("before the reboot")
    assert page.count("quick mode done") == 1 and "fw:eth0" not in page
    assert "3 of 3 entries" in page
    only = client.get("/log/vpn?peer=branch").text
    assert "before the reboot" in only and "no proposal chosen" not in only


FIREWALL_LINES = """\
Nov 25 14:00:01 router kern.warn kernel: [   12.345678] fw:eth0:in:accept IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=198.51.100.2 DST=203.0.113.1 LEN=152 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=UDP SPT=500 DPT=500 LEN=132 
Nov 25 14:00:02 router kern.warn kernel: [   13.000001] fw:eth0:in:drop IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=198.51.100.2 DST=203.0.113.1 LEN=136 TOS=0x00 PREC=0x00 TTL=64 ID=4242 DF PROTO=ESP SPI=0xc1a2b3d4 
Nov 25 14:00:03 router daemon.info ikecore: something else entirely
Nov 25 14:00:04 router kern.warn kernel: [   14.5] fw:eth1:fwd:accept IN=eth1 OUT=eth0 MAC=52:54:00:aa:bb:cc:52:54:00:dd:ee:ff:08:00 SRC=192.168.1.10 DST=10.2.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=22 WINDOW=64240 RES=0x00 SYN URGP=0 
"""


def test_firewall_log_page_filters_and_links(env, client):
    (env["tmp"] / "messages").write_text(FIREWALL_LINES)
    page = client.get("/log/firewall")
    assert page.text.index("192.168.1.10") < page.text.index("0xc1a2b3d4")   # newest first
    assert '<a class="mono spi" href="/#sa-c1a2b3d4">0xc1a2b3d4</a>' in page.text
    esp = client.get("/log/firewall?protocol=ESP").text
    assert "0xc1a2b3d4" in esp and "192.168.1.10" not in esp and ":500" not in esp
    lan = client.get("/log/firewall?interface=eth1").text
    assert "10.2.0.5:22" in lan and "0xc1a2b3d4" not in lan
    by_peer = client.get("/log/firewall?peer=branch").text          # name -> its gateway
    assert "198.51.100.2:500" in by_peer and "10.2.0.5" not in by_peer
