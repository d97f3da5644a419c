"""Regenerate the README's screenshots of the web UI: python3 tests/browser/screenshots.py DIR

Status page (tunnels up, one negotiating, one failing with its diagnosis), the VPN and firewall
logs, a peer settings page with a validation error, at desktop and phone widths, the status
page of a router with many peers (one page of five), and the certificates page (a CA, our
certificate close to expiry, a request waiting to be signed, a CRL past its next update). Uses the same fake daemon and
headless Chromium as the browser tests.
"""
import os
import sys
import tempfile

# Run as a script (make webui-screenshots): the tests' sys.path, as tests/bench/_paths.py gives it.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from support import paths  # noqa: E402

paths.install()
import webui_browser as browser  # noqa: E402
from webui_fake_daemon import many_tunnels  # noqa: E402
from webui_scenario import Scenario  # noqa: E402

PASSWORD = "screenshot-password"
DESKTOP = (1280, False)
PHONE = (390, True)


def capture(driver, path, width, mobile):
    """The whole page at this CSS width (the viewport grows to the document's height)."""
    metrics = {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    height = driver.execute_script("return document.documentElement.scrollHeight;")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", dict(metrics, height=height))
    driver.save_screenshot(path)
    print("wrote", path, "(%dx%d)" % (width, height))


def many_status(n=2000):
    """n tunnels, some negotiating: the paged status page's screenshot."""
    status = many_tunnels(n)
    for ike in status["ike_sas"][7::97]:
        ike.update(status="Negotiating", state=5, algorithm=None, elapsed_s=0,
                   phase2_negotiations=0)
    ids = {ike["id"] for ike in status["ike_sas"] if ike["status"] == "Negotiating"}
    status["sas"] = [sa for sa in status["sas"] if sa["ike_sa"] not in ids]
    return status


def store_certificates(config_dir):
    from webui import certstore
    from webui_pki import Authority, cert_pem, crl_pem, key_pem
    ca = Authority("Example Corp CA")
    store = certstore.CertStore(config_dir)
    store.add_ca("corp-ca", cert_pem(ca.cert))
    store.add_crl("corp-ca", crl_pem(ca.crl(issued_days_ago=10, next_update_days=7)))
    cert, key = ca.issue("gw.example.com", days=380, start_days_ago=360,
                         sans=["gw.example.com", "203.0.113.1"])
    store.add_local("gw", cert_pem(cert), key_pem(key))
    store.generate("gw-2027", "gw.example.com", "Example Corp", "SE", "gw.example.com")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    out = os.path.abspath(argv[0] if argv else "docs/screenshots")
    problem = browser.missing()
    if problem:
        sys.exit("screenshots: " + problem)
    os.makedirs(out, exist_ok=True)
    from webui import auth
    with tempfile.TemporaryDirectory() as tmp:
        scene = Scenario(tmp)
        auth.PasswordStore(scene.state_dir).set(PASSWORD)
        b = browser.Browser()
        d = b.driver
        try:
            d.get(scene.url + "/login")
            d.find_element("css selector", "#password").send_keys(PASSWORD)
            d.find_element("css selector", "form button[type=submit]").click()
            d.get(scene.url + "/")
            d.execute_script("document.getElementById('negotiation-states').open = true;")
            capture(d, os.path.join(out, "status.png"), *DESKTOP)
            d.execute_script("document.getElementById('negotiation-states').open = false;")
            capture(d, os.path.join(out, "status-phone.png"), *PHONE)
            d.get(scene.url + "/log/vpn")
            capture(d, os.path.join(out, "log-vpn.png"), *DESKTOP)
            d.get(scene.url + "/log/firewall")
            capture(d, os.path.join(out, "log-firewall.png"), *DESKTOP)
            capture(d, os.path.join(out, "log-firewall-phone.png"), *PHONE)
            d.get(scene.url + "/settings/peers/branch")
            gateway = d.find_element("css selector", "#f-remote_gateway")
            gateway.clear()
            gateway.send_keys("198.51.100.256")
            d.find_element("css selector", "#peer-form button[type=submit]").click()
            d.find_element("css selector", "#error-remote_gateway")
            capture(d, os.path.join(out, "settings-peer.png"), *DESKTOP)
            capture(d, os.path.join(out, "settings-peer-phone.png"), *PHONE)
            scene.daemon.set_status(many_status())
            d.get(scene.url + "/?offset=100&limit=5")
            capture(d, os.path.join(out, "status-paged.png"), *DESKTOP)
            store_certificates(scene.tmp)
            d.get(scene.url + "/settings/certificates")
            capture(d, os.path.join(out, "certificates.png"), *DESKTOP)
        finally:
            b.quit()
            scene.stop()


if __name__ == "__main__":
    main()
