"""Certificates and settings backup/restore in a real headless Chromium against the real
`python3 -m webui` process (fake control socket): upload CAs (one an intermediate), a CRL and
our certificate + key from files, a refused upload with its reason, a key + CSR made on the
router and downloaded, the signed certificate uploaded, a peer switched to them with two trusted
CAs, the intermediate and the CRL chosen; then a backup downloaded, a setting changed, the
backup restored through the summary page: the configuration is byte for byte the backed-up
one."""
import io
import os
import tarfile

import pytest

import webui_browser as browser
from webui_fake_daemon import FakeDaemon
from webui_harness import ProcessWebui
from webui_pki import Authority, cert_pem, crl_pem, key_pem
from support.config import webui_router

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=browser.missing() or "")

PASSWORD = "router-password-1"
WAIT_S = 60          # generous for a loaded machine; waits end as soon as the page is right
CONFIG = webui_router(hq=dict(psk="a pre-shared key"), comment="the router's settings")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from webui import auth
    tmp = tmp_path_factory.mktemp("webui-maintenance")
    etc, state, downloads = tmp / "etc", tmp / "state", tmp / "downloads"
    for d in (etc, state, downloads):
        d.mkdir()
    (etc / "ikecore.toml").write_text(CONFIG)
    auth.PasswordStore(str(state)).set(PASSWORD)
    daemon = FakeDaemon(str(tmp / "control.sock")).start()
    webui = ProcessWebui(daemon.socket_path, str(state), str(etc / "ikecore.toml")).start()
    b = browser.Browser()
    b.driver.execute_cdp_cmd("Browser.setDownloadBehavior", {
        "behavior": "allow", "downloadPath": str(downloads)})
    env = {"driver": b.driver, "url": webui.url, "etc": etc, "downloads": downloads,
           "files": tmp, "ca": Authority()}
    login(env)
    yield env
    b.quit()
    webui.stop()
    daemon.stop()


def css(driver, selector):
    return driver.find_element("css selector", selector)


def wait(driver, condition, message):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(condition, message)


def login(env):
    d = env["driver"]
    d.get(env["url"] + "/login")
    css(d, "#password").send_keys(PASSWORD)
    css(d, "form button[type=submit]").click()
    wait(d, lambda d: d.current_url.rstrip("/") == env["url"], "status page after login")


def write(env, name, data):
    path = env["files"] / name
    path.write_bytes(data)
    return str(path)


def submit_and_wait(d, form_selector, expect):
    """Submit the form and wait for the next page's flash or error line; -> its text."""
    css(d, form_selector + " button[type=submit]").click()

    from selenium.common.exceptions import StaleElementReferenceException

    def answered(d):
        try:     # the old page's line may be found just before the new page replaces it
            found = d.find_elements("css selector", ".flash, #form-error")
            return found and expect in found[0].text and found[0].text
        except StaleElementReferenceException:
            return False
    return wait(d, answered, "%r after submitting %s" % (expect, form_selector))


def downloaded(env, suffix):
    """The file Chromium saved (once complete: no .crdownload left), by its name's end."""
    def done(_d):
        names = os.listdir(env["downloads"])
        found = [n for n in names if n.endswith(suffix)]
        return found and not any(n.endswith(".crdownload") for n in names) and found[0]
    name = wait(env["driver"], done, "a download ending in %s" % suffix)
    path = env["downloads"] / name
    data = path.read_bytes()
    path.unlink()
    return name, data


def test_1_upload_certificates_and_make_a_csr(env):
    d, ca = env["driver"], env["ca"]
    cert, key = ca.issue("gw.example")
    _, other_key = ca.issue("other.example")
    d.get(env["url"] + "/settings/certificates")
    css(d, "#f-ca-name").send_keys("corp-ca")
    css(d, "#f-ca-file").send_keys(write(env, "ca.pem", cert_pem(ca.cert)))
    submit_and_wait(d, "#ca-form", "Stored CA certificate corp-ca")
    assert "CN=Test CA" in css(d, "#cert-ca-corp-ca").text
    for name, authority in (("corp-sub", Authority("Sub CA", parent=ca)),
                            ("other-ca", Authority("Other CA"))):
        css(d, "#f-ca-name").send_keys(name)
        css(d, "#f-ca-file").send_keys(write(env, name + ".pem", cert_pem(authority.cert)))
        submit_and_wait(d, "#ca-form", "Stored CA certificate " + name)
    css(d, "#f-crl-name").send_keys("corp-crl")
    css(d, "#f-crl-file").send_keys(write(env, "corp.crl", crl_pem(ca.crl())))
    submit_and_wait(d, "#crl-form", "Stored CRL corp-crl")
    row = css(d, "#crl-corp-crl").text
    assert "CN=Test CA" in row and "next update passed" not in row, row
    # a key that belongs to another certificate is refused with the reason
    css(d, "#f-local-name").send_keys("gw")
    css(d, "#f-local-file").send_keys(write(env, "gw.crt", cert_pem(cert)))
    css(d, "#f-local-key").send_keys(write(env, "other.key", key_pem(other_key)))
    error = submit_and_wait(d, "#local-form", "does not belong")
    assert error == "the private key does not belong to the certificate CN=gw.example,O=ikecore test"
    assert not d.find_elements("css selector", "#cert-local-gw")
    css(d, "#f-local-file").send_keys(write(env, "gw.crt", cert_pem(cert)))
    css(d, "#f-local-key").send_keys(write(env, "gw.key", key_pem(key)))
    submit_and_wait(d, "#local-form", "Stored certificate gw")
    assert "Our certificate + private key" in css(d, "#cert-local-gw").text
    assert "PRIVATE KEY" not in d.page_source
    # a key and a request made on the router; the request downloaded and signed by the CA
    css(d, "#f-gen-name").send_keys("router")
    css(d, "#f-gen-cn").send_keys("router.example")
    css(d, "#f-gen-alt").send_keys("router.example")
    submit_and_wait(d, "#generate-form", "Made a private key and a certificate request router")
    css(d, "#cert-local-router a[download]").click()
    name, csr = downloaded(env, ".csr")
    assert name == "router.csr" and csr.startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    css(d, "#f-signed-router").send_keys(write(env, "router.crt", cert_pem(ca.sign_csr(csr))))
    submit_and_wait(d, "#signed-router", "Stored the signed certificate for request router")
    assert "CN=router.example" in css(d, "#cert-local-router").text


def test_2_a_peer_picks_the_uploaded_certificates(env):
    from selenium.webdriver.support.ui import Select
    d = env["driver"]
    d.get(env["url"] + "/settings/peers/hq")
    Select(css(d, "#f-auth")).select_by_value("rsa")
    Select(css(d, "#f-cert")).select_by_value("certs/local/router.pem")
    cas = Select(css(d, "#f-ca"))
    assert cas.is_multiple
    cas.select_by_value("certs/ca/corp-ca.pem")
    cas.select_by_value("certs/ca/other-ca.pem")
    Select(css(d, "#f-intermediates")).select_by_value("certs/ca/corp-sub.pem")
    Select(css(d, "#f-crls")).select_by_value("certs/crl/corp-crl.pem")
    submit_and_wait(d, "#peer-form", "Saved peer hq")
    text = (env["etc"] / "ikecore.toml").read_text()
    assert 'cert = "certs/local/router.pem"' in text and 'key = "certs/local/router.key"' in text
    assert 'ca = ["certs/ca/corp-ca.pem", "certs/ca/other-ca.pem"]' in text
    assert 'intermediates = ["certs/ca/corp-sub.pem"]' in text
    assert 'crls = ["certs/crl/corp-crl.pem"]' in text
    d.get(env["url"] + "/settings/peers/hq")
    assert [o.get_attribute("value") for o in Select(css(d, "#f-ca")).all_selected_options] == [
        "certs/ca/corp-ca.pem", "certs/ca/other-ca.pem"]
    d.get(env["url"] + "/settings/certificates")
    assert css(d, "#cert-local-router td[data-label='Used by']").text == "hq"
    assert css(d, "#crl-corp-crl td[data-label='Used by']").text == "hq"


def test_3_backup_change_restore(env):
    d = env["driver"]
    cfg = env["etc"] / "ikecore.toml"
    d.get(env["url"] + "/settings/backup")
    css(d, "#f-private_keys").click()
    css(d, "#backup-form button[type=submit]").click()
    name, backup = downloaded(env, ".tar.gz")
    assert name.endswith("-with-private-keys.tar.gz")
    with tarfile.open(fileobj=io.BytesIO(backup), mode="r:gz") as tar:
        backed_up = tar.extractfile("ikecore.toml").read()
    assert backed_up == cfg.read_bytes()
    # change a setting
    d.get(env["url"] + "/settings/peers/hq")
    field = css(d, "#f-remote_gateway")
    field.clear()
    field.send_keys("198.51.100.99")
    submit_and_wait(d, "#peer-form", "Saved peer hq")
    assert cfg.read_bytes() != backed_up
    # restore: the summary first, nothing changed until confirmed
    d.get(env["url"] + "/settings/backup")
    css(d, "#f-backup-file").send_keys(write(env, name, backup))
    css(d, "#restore-form button[type=submit]").click()
    wait(d, lambda d: d.find_elements("css selector", "#restore-confirm"), "the summary page")
    assert "ikecore.toml: changed" in css(d, "#restore-files").text
    assert "peer hq: remote_gateway changed" in css(d, "#restore-entries").text
    assert '-remote_gateway = "198.51.100.99"' in css(d, "#restore-diff").text
    assert cfg.read_bytes() != backed_up
    submit_and_wait(d, "#restore-confirm", "Settings restored")
    assert cfg.read_bytes() == backed_up


def test_4_a_foreign_file_is_refused(env):
    d = env["driver"]
    cfg = env["etc"] / "ikecore.toml"
    before = cfg.read_bytes()
    d.get(env["url"] + "/settings/backup")
    css(d, "#f-backup-file").send_keys(write(env, "notes.tar.gz", b"just some notes\n"))
    error = submit_and_wait(d, "#restore-form", "refused")
    assert error == ("notes.tar.gz refused, nothing was changed: the file is not a .tar.gz "
                     "archive: not an ikecore settings backup")
    assert cfg.read_bytes() == before
