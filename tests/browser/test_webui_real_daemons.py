"""The web UI in headless Chromium against two REAL ikecore daemons (`python3 -m ikecore
--kernel=record`) negotiating over a veth between two network namespaces (tests/daemon's
harness). The page watches daemon a through its control socket:

  browser --HTTP--> python3 -m webui --control socket--> daemon a (10.99.0.1) <--IKE--> daemon b
"""
import json

import pytest

import webui_browser as browser
from daemon_harness import ADDRESS, daemons, netns_pair, pair_config, wait_until  # noqa: F401
from webui_harness import ProcessWebui

from webui import auth

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=browser.missing() or "")

PSK = "veth secret for the web test"
PASSWORD = "router-password-1"


def config(side, act_as):
    return pair_config(side, act_as, PSK)


@pytest.fixture
def open_page(daemons, tmp_path):
    """open_page(config of a) -> (driver, webui): both daemons started, logged in on the page."""
    opened = []

    def open_(doc_a):
        daemons["b"].start(config("b", "responder"))
        daemons["a"].start(doc_a)                    # waits for `up` (no traffic here)
        state = tmp_path / "webui-state"
        state.mkdir()
        auth.PasswordStore(str(state)).set(PASSWORD)
        server = ProcessWebui(daemons["a"].socket_path, str(state),
                              daemons["a"].config_path).start()
        opened.append(server)
        b = browser.Browser()
        opened.append(b)
        driver = b.driver
        driver.get(server.url + "/login")
        driver.find_element("css selector", "#password").send_keys(PASSWORD)
        driver.find_element("css selector", "form button[type=submit]").click()
        wait_until(lambda: driver.current_url.rstrip("/") == server.url, "the status page")
        return driver, server
    yield open_
    for thing in reversed(opened):
        thing.quit() if isinstance(thing, browser.Browser) else thing.stop()


@pytest.fixture
def page(open_page):
    return open_page(config("a", "both"))


def test_real_tunnel_shows_live_deletes_and_renegotiates(daemons, page):
    driver, server = page
    assert browser.text_of(driver, "#ike-sas-empty") == "No IKE security associations."
    result = daemons["a"].ikectl("up", "b")
    assert result.returncode == 0, result.stderr
    # No reload: app.js polls /api/status and the real tunnel appears as Activated.
    wait_until(lambda: "Activated" in browser.text_of(driver, "#ike-sas tbody"),
               "Activated on the page")
    row = browser.text_of(driver, "#ike-sas tbody tr")
    assert ADDRESS["b"] in row and "AES-CBC-128/HMAC-SHA1/MODP-2048" in row
    status = daemons["a"].status()
    outgoing = [sa for sa in status["sas"] if sa["direction"] == "outgoing"][0]
    anchor = "sa-%x" % int(outgoing["spi"], 16)
    wait_until(lambda: "Outgoing" in browser.text_of(driver, "#" + anchor),
               "the outgoing SA row")

    # Delete the outgoing SA from the page; the daemon deletes it at the peer too.
    browser.click(driver, "#%s button" % anchor)
    browser.alert(driver).accept()
    wait_until(lambda: "Deleted" in browser.text_of(driver, ".flash"), "the deleted message")
    spi = int(outgoing["spi"], 16)
    wait_until(lambda: spi not in [int(sa["spi"], 16) for sa in daemons["b"].status()["sas"]],
               "b to drop the SA deleted on a's page")
    wait_until(lambda: not driver.find_elements("css selector", "#" + anchor),
               "the deleted SA to leave the page")
    # Renegotiate (what traffic would trigger): a fresh pair shows up on the open page.
    daemons["a"].result({"cmd": "up", "peer": "b"})
    fresh = wait_until(lambda: [sa for sa in daemons["a"].status()["sas"]
                                if sa["direction"] == "outgoing"], "a fresh SA pair")
    wait_until(lambda: driver.find_elements("css selector",
                                            "#sa-%x" % int(fresh[0]["spi"], 16)),
               "the renegotiated SA on the page")

    # The VPN log page shows the daemon's own log, newest first, SPIs linked to their SA.
    driver.get(server.url + "/log/vpn")
    links = driver.find_elements("css selector", "#vpn-log a.spi")
    assert any(link.get_attribute("href").endswith("/#" + anchor) for link in links)


def test_real_daemon_applies_a_settings_change_without_dropping_the_tunnel(daemons, page):
    driver, server = page
    daemons["a"].result({"cmd": "up", "peer": "b"})
    wait_until(lambda: "Activated" in browser.text_of(driver, "#ike-sas tbody"),
               "Activated on the page")
    before = daemons["a"].status()
    # Add an unrelated peer through the form: saved atomically, then `reload` on the daemon.
    driver.get(server.url + "/settings/peers/new")
    for field, value in (("name", "spare"), ("remote_gateway", "192.0.2.50"),
                         ("psk", "spare peer key")):
        driver.find_element("css selector", "#f-" + field).send_keys(value)
    driver.find_element("css selector", "#peer-form button[type=submit]").click()
    wait_until(lambda: "applied the new configuration" in browser.text_of(driver, ".flash"),
               "the daemon to accept the reload")
    after = daemons["a"].status()
    assert [i["id"] for i in after["ike_sas"]] == [i["id"] for i in before["ike_sas"]]
    assert [s["spi"] for s in after["sas"]] == [s["spi"] for s in before["sas"]]
    assert PSK not in driver.page_source
    # The daemon refuses what its validator refuses; the page shows it beside the field.
    driver.get(server.url + "/settings/connections/a-to-b")
    net = driver.find_element("css selector", "#f-remote_net")
    net.clear()
    net.send_keys("192.168.10.128/25")
    driver.find_element("css selector", "#connection-form button[type=submit]").click()
    error = wait_until(lambda: browser.text_of(driver, "#error-remote_net"), "the field error")
    assert "overlaps local_net 192.168.10.0/24" in error


SPARE_PEERS = 60


def test_real_daemon_pages_and_filters_many_peers(daemons, open_page):
    """61 configured peers: the page shows 50 at a time with the daemon's summary above them,
    and its filter, status choice and paging are the daemon's own selections."""
    doc = config("a", "both")
    for i in range(SPARE_PEERS):
        doc.peer("spare%02d" % i, "192.0.2.%d" % (i + 1), act_as="responder",
                 psk="spare peer key %d" % i)
    driver, server = open_page(doc)
    assert browser.text_of(driver, "#pager-text") == "Peers 1–50 of 61"
    assert browser.text_of(driver, "#summary") == \
        "61 peers: 0 up, 0 negotiating, 61 idle · 0 IKE SAs · 0 SAs"
    daemons["a"].result({"cmd": "up", "peer": "b"})
    # live, without a reload: app.js polls this page's selection and /api/summary
    wait_until(lambda: browser.text_of(driver, "#summary") ==
               "61 peers: 1 up, 0 negotiating, 60 idle · 1 IKE SAs · 2 SAs", "the summary line")
    wait_until(lambda: "Activated" in browser.text_of(driver, "#ike-sas tbody"), "b's IKE SA")

    driver.get(server.url + "/?status=Activated")
    assert browser.text_of(driver, "#pager-text") == "Peer 1 of 1 matching (61 peers)"
    assert ADDRESS["b"] in browser.text_of(driver, "#ike-sas tbody")
    driver.get(server.url + "/?filter=spare5")           # spare50 .. spare59
    assert browser.text_of(driver, "#pager-text") == "Peers 1–10 of 10 matching (61 peers)"
    assert browser.text_of(driver, "#ike-sas-empty") == "No IKE security associations."
    driver.get(server.url + "/?offset=50")
    assert browser.text_of(driver, "#pager-text") == "Peers 51–61 of 61"
    browser.click(driver, "#pager-previous")
    wait_until(lambda: browser.text_of(driver, "#pager-text") == "Peers 1–50 of 61",
               "the first page again")

    def api(path):
        driver.get(server.url + path)
        return json.loads(driver.find_element("tag name", "body").text)
    one = api("/api/status?limit=1")
    assert one["page"] == {"offset": 0, "limit": 1, "matching": 61, "peers": 61}
    assert [ike["remote_gateway"] for ike in one["ike_sas"]] == [ADDRESS["b"]]
    assert api("/api/status?peer=spare07")["ike_sas"] == []
    assert "unknown peer 'nobody'" in api("/api/status?peer=nobody")["error"]
    assert api("/api/status?limit=1001") == {
        "error": "'limit' must be an integer from 1 to 1000, not 1001"}
    driver.get(server.url + "/metrics")
    metrics = driver.find_element("tag name", "body").text
    assert 'ikecore_peers{status="Idle"} 60' in metrics
    assert 'ikecore_ike_sas{status="Activated"} 1' in metrics and "ikecore_sas 2" in metrics
