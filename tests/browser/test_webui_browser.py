"""The web UI in a real headless Chromium (Debian's chromium + chromedriver, driven by selenium)
against the real `python3 -m webui` process and a fake control socket (tests/browser/webui_fake_daemon.py)."""
import os
import re

import pytest

import webui_browser as browser
from webui_fake_daemon import many_tunnels, sa_pair
from webui_scenario import PSK, Scenario

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=browser.missing() or "")

PASSWORD = "router-password-1"
WAIT_S = 60          # generous for a loaded machine; waits end as soon as the page is right


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    scene = Scenario(tmp_path_factory.mktemp("webui-browser"))
    yield scene
    scene.stop()


@pytest.fixture(scope="module")
def chrome():
    b = browser.Browser()
    yield b.driver
    b.quit()


def wait(driver, condition, message):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(condition, message)


def by_css(driver, selector):
    from selenium.webdriver.common.by import By
    return driver.find_element(By.CSS_SELECTOR, selector)


def submit_login(driver, scene, password):
    driver.get(scene.url + "/login")
    by_css(driver, "#password").send_keys(password)
    by_css(driver, "form button[type=submit]").click()


def logged_in(driver, scene):
    """Log in (doing the forced password change the first time the default is still set)."""
    driver.get(scene.url + "/")
    if "/login" not in driver.current_url:
        return
    if not os.path.exists(os.path.join(scene.state_dir, "admin.password")):
        submit_login(driver, scene, "admin")
        wait(driver, lambda d: d.current_url.endswith("/password"), "forced to /password")
        by_css(driver, "#current").send_keys("admin")
        by_css(driver, "#new").send_keys(PASSWORD)
        by_css(driver, "#confirm").send_keys(PASSWORD)
        by_css(driver, "form.narrow button[type=submit]").click()
    else:
        submit_login(driver, scene, PASSWORD)
    wait(driver, lambda d: d.current_url.rstrip("/") == scene.url, "status page after login")


def row_text(driver, row_id):
    return browser.text_of(driver, "#" + row_id)


def test_1_login_with_the_forced_password_change(scene, chrome):
    chrome.get(scene.url + "/")
    assert "/login" in chrome.current_url
    submit_login(chrome, scene, "wrong password")
    # the click returns once the form is submitted, not once the answer (after the password hash
    # check, in an executor) has replaced the page: wait for the answer's error line
    wait(chrome, lambda d: "Wrong password." in by_css(d, ".field-error").text, "wrong password")
    logged_in(chrome, scene)
    assert os.path.exists(os.path.join(scene.state_dir, "admin.password"))
    headers = [th.text for th in chrome.find_elements("css selector", "#ike-sas thead th")]
    assert headers == ["Remote Gateway", "Status", "Algorithm", "Elapsed time", "Life time",
                       "NAT-T", "Phase 2 negotiations", "Delete"]


def test_2_a_tunnel_comes_up_live(scene, chrome):
    logged_in(chrome, scene)
    assert "Negotiating(5)" in row_text(chrome, "ike-ike-2")
    chrome.execute_script("window.noReloadMarker = 42;")
    scene.daemon.update(lambda s: s["ike_sas"][1].update(status="Negotiating", state=7))
    wait(chrome, lambda d: "Negotiating(7)" in row_text(d, "ike-ike-2"), "state 7 shown live")

    def activate(status):
        hq = status["ike_sas"][1]
        hq.update(status="Activated", state=9, elapsed_s=3, phase2_negotiations=1,
                  algorithm="AES-CBC-256/HMAC-SHA2-256/MODP-2048")
        status["sas"].extend(sa_pair(hq, 0xd00d0000, elapsed_s=1, bytes_=0))
    scene.daemon.update(activate)
    wait(chrome, lambda d: "Activated" in row_text(d, "ike-ike-2"), "Activated shown live")
    wait(chrome, lambda d: "0xd00d0001" in row_text(d, "sa-d00d0001"), "new SA shown live")
    # the SA's pair of networks under its destination (a connection may have several pairs)
    assert "192.168.1.0/24 \u21cc 10.2.0.0/24" in row_text(chrome, "sa-d00d0001")
    assert chrome.execute_script("return window.noReloadMarker;") == 42     # same page
    failed = row_text(chrome, "ike-ike-3")
    assert "Negotiating(3)" in failed and "Algorithm mismatch" in failed


def test_3_delete_asks_then_the_sa_disappears_and_renegotiates(scene, chrome):
    logged_in(chrome, scene)

    def renegotiate(status, sa_id):
        ike = [i for i in status["ike_sas"] if i["id"] == "ike-1"][0]
        ike["phase2_negotiations"] += 1
        status["sas"].extend(sa_pair(ike, 0xe0e00000, elapsed_s=0, bytes_=0))
    scene.daemon.on_delete = renegotiate
    browser.click(chrome, "#sa-c1a2b3d4 button")
    alert = browser.alert(chrome)
    assert alert.text == "Delete the ESP SA 0xc1a2b3d4?"
    alert.dismiss()
    assert "delete" not in scene.daemon.commands()
    browser.click(chrome, "#sa-c1a2b3d4 button")
    browser.alert(chrome).accept()
    wait(chrome, lambda d: "Deleted" in by_css(d, ".flash").text, "deleted message")
    assert {"cmd": "delete", "id": "sa-c1a2b3d4"} in scene.daemon.requests
    assert row_text(chrome, "sa-c1a2b3d4") == ""
    wait(chrome, lambda d: "0xe0e00000" in row_text(d, "sa-e0e00000"), "renegotiated SA")
    scene.daemon.on_delete = None


def test_4_change_a_peer_setting_and_get_a_clear_error(scene, chrome):
    from selenium.webdriver.support.ui import Select
    logged_in(chrome, scene)
    chrome.get(scene.url + "/settings/peers/branch")
    assert by_css(chrome, "#f-psk").get_attribute("value") == ""
    assert PSK not in chrome.page_source
    Select(by_css(chrome, "#f-phase1_mode")).select_by_value("aggressive")
    by_css(chrome, "#peer-form button[type=submit]").click()
    wait(chrome, lambda d: "Saved peer branch" in by_css(d, ".flash").text, "saved message")
    text = open(scene.config).read()
    assert 'phase1_mode = "aggressive"' in text and PSK in text
    assert scene.daemon.commands()[-1] == "reload"

    before = open(scene.config, "rb").read()
    chrome.get(scene.url + "/settings/peers/branch")
    gateway = by_css(chrome, "#f-remote_gateway")
    gateway.clear()
    gateway.send_keys("198.51.100.256")
    by_css(chrome, "#peer-form button[type=submit]").click()
    error = wait(chrome, lambda d: by_css(d, "#error-remote_gateway"), "field error")
    assert "'198.51.100.256' is not an IPv4 address" in error.text
    # beside the field: it directly follows the input, which is marked invalid
    assert chrome.execute_script(
        "var i = document.getElementById('f-remote_gateway');"
        "return i.getAttribute('aria-invalid') === 'true' && "
        "i.nextElementSibling.id === 'error-remote_gateway';")
    assert open(scene.config, "rb").read() == before


def test_5_refused_without_login_and_without_csrf_token(scene, chrome):
    logged_in(chrome, scene)
    # a form stripped of its CSRF token is refused and nothing is deleted
    deletes = scene.daemon.commands().count("delete")
    chrome.execute_script(
        "var f = document.getElementById('delete-form');"
        "f.querySelector('input[name=csrf_token]').remove();"
        "f.querySelector('input[name=confirmed]').value = '1';"
        "document.querySelector('#ike-ike-1 button').click();")
    wait(chrome, lambda d: "Refused" in d.find_element("tag name", "h1").text, "refused page")
    assert "CSRF" in chrome.page_source
    assert scene.daemon.commands().count("delete") == deletes
    # logged out: every page leads to the login form
    chrome.delete_all_cookies()
    for path in ("/", "/settings/peers", "/log/vpn"):
        chrome.get(scene.url + path)
        assert "/login" in chrome.current_url, path
    chrome.get(scene.url + "/api/status")
    assert "login required" in chrome.page_source


def test_6_injected_script_in_a_peer_id_is_shown_as_text(scene, chrome):
    injected = "<script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">"

    def inject(status):
        status["ike_sas"][0]["peer"] = injected
        status["ike_sas"][2]["last_error"] = "ID mismatch: the peer sent ID " + injected
    scene.daemon.update(inject)
    scene.daemon.log.append({"time": 1764090000.0, "level": "warning", "peer": injected,
                             "text": "unexpected ID " + injected})
    logged_in(chrome, scene)
    assert injected in browser.text_of(chrome, "#ike-ike-1 .peer")           # server-rendered
    chrome.execute_script("window.renders = 0;"
                          "new MutationObserver(function(){window.renders++;})"
                          ".observe(document.getElementById('ike-sas'), {childList: true});")
    wait(chrome, lambda d: d.execute_script("return window.renders;") > 0, "a live re-render")
    assert injected in browser.text_of(chrome, "#ike-ike-1 .peer")           # rendered by app.js
    assert injected in browser.text_of(chrome, "#ike-ike-3 .diagnosis")
    chrome.get(scene.url + "/log/vpn")
    assert "unexpected ID " + injected in chrome.page_source.replace("&lt;", "<").replace(
        "&gt;", ">").replace("&amp;", "&").replace("&quot;", '"')
    assert chrome.execute_script("return window.pwned === undefined;")
    assert not re.search(r"<script>window\.pwned", chrome.page_source)


def test_7_many_peers_are_paged_filtered_and_updated_live(scene, chrome):
    from selenium.webdriver.support.ui import Select
    scene.daemon.set_status(many_tunnels(130))
    asked_before = len(scene.daemon.requests)
    logged_in(chrome, scene)
    assert browser.text_of(chrome, "#pager-text") == "Peers 1–50 of 130"
    assert browser.text_of(chrome, "#summary").startswith("130 peers: 130 up, 0 negotiating")
    # the filter form puts its choice in the query string: a reload keeps it
    by_css(chrome, "#peer-filter input[name=filter]").send_keys("peer12")
    Select(by_css(chrome, "#peer-filter select[name=status]")).select_by_value("Activated")
    by_css(chrome, "#peer-filter button[type=submit]").click()
    wait(chrome, lambda d: "Peers 1–11 of 11 matching" in browser.text_of(d, "#pager-text"),
         "peer12, peer120..peer129")
    assert "filter=peer12" in chrome.current_url and "status=Activated" in chrome.current_url
    # live: a peer that starts negotiating leaves the Activated page and the summary line counts it
    scene.daemon.update(lambda s: s["ike_sas"][125].update(status="Negotiating", state=3))
    wait(chrome, lambda d: "Peers 1–10 of 10 matching" in browser.text_of(d, "#pager-text"),
         "the page redrawn without peer125")
    wait(chrome, lambda d: "129 up, 1 negotiating" in browser.text_of(d, "#summary"),
         "the summary line updated")
    assert row_text(chrome, "ike-ike-125") == ""
    chrome.refresh()
    assert by_css(chrome, "#peer-filter input[name=filter]").get_attribute("value") == "peer12"
    assert "Peers 1–10 of 10 matching" in browser.text_of(chrome, "#pager-text")
    # next page, then a Delete there comes back to that page
    chrome.get(scene.url + "/")
    browser.click(chrome, "#pager-next")
    wait(chrome, lambda d: browser.text_of(d, "#pager-text") == "Peers 51–100 of 130",
         "the second page")
    assert "198.51.100.52" in row_text(chrome, "ike-ike-50")
    browser.click(chrome, "#ike-ike-60 button")
    browser.alert(chrome).accept()
    wait(chrome, lambda d: "Deleted the IKE SA with" in by_css(d, ".flash").text, "deleted")
    assert chrome.current_url.endswith("/?offset=50")
    assert {"cmd": "status", "id": "ike-60"} in scene.daemon.requests
    assert not [r for r in scene.daemon.requests[asked_before:]
                if r["cmd"] == "status" and len(r) == 1], "a big router's status was pulled whole"
