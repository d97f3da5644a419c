"""A firmware upgrade as a user makes it: in headless Chromium, on the Firmware page of a router
with a tunnel up to another site. The router (site A) boots its A/B system disk, site B (ikecore,
booted from the same image's root filesystem) is its IPsec peer across the WAN segment. A second
build's signed bundle is chosen in the page's file field and installed; the router restarts into
the other slot, the page shows the new version running there, the settings are byte for byte the
ones before, and the tunnel to site B comes back up (B keeps running throughout).
"""
import hashlib
import os
import re

import pytest

from conftest import images_or_skip
from e2e import CONFIG_PATH, Scenario, boot_sites, configure, isp_route, one, show_after_failure, stop_sites
from router import new_system_disk

import bundles
import firmware_update
import webui_browser as browser

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=browser.missing() or "")

PASSWORD = "browser-upgrade-password"
VERSION = "browser-second-build"
WAIT_S = 300            # page waits on an emulated, shared machine; each ends once the page is right
INSTALL_S = 1800        # upload, signature check and slot write under TCG, in one page load


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    images = images_or_skip()
    for part in ("system.img", "boot-initramfs.cpio.gz"):
        if not os.path.exists(os.path.join(images, part)):
            pytest.skip(f"no {part} in {images}: run `make image`")
    work = tmp_path_factory.mktemp("browser-upgrade")
    a, b = boot_sites(work, images, system_disks={"a": new_system_disk(images, str(work / "system-a.img"))})
    a.work = work
    try:
        configure(a, b, Scenario())
        a.check(f"echo {PASSWORD} | su -s /bin/sh webui -c 'python3 -m webui passwd --state-dir /data/webui'")
    except Exception:
        stop_sites(a, b)
        raise
    yield a, b
    stop_sites(a, b)


@pytest.fixture(scope="module")
def driver():
    b = browser.Browser()
    yield b.driver
    b.quit()


@pytest.fixture(autouse=True)
def diagnostics_on_failure(request, sites):
    yield from show_after_failure(request, lambda: "\n".join(
        [s.diagnostics() for s in sites] + ["--- site-a console\n" + sites[0].router.console_tail(80)]))


def wait(driver, condition, message, timeout=WAIT_S):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.5).until(condition, message)


def css(driver, selector):
    return driver.find_element("css selector", selector)


def open_firmware_page(driver, site):
    """Log in (again after a restart: sessions live in the web UI's memory) and open Firmware."""
    site.router.wait_http(timeout=WAIT_S)
    url = site.router.lan_url.rstrip("/")
    driver.get(url + "/login")
    css(driver, "#password").send_keys(PASSWORD)
    css(driver, "form button[type=submit]").click()
    wait(driver, lambda d: d.current_url.rstrip("/") == url, "status page after login")
    driver.get(url + "/firmware")
    return {key: browser.text_of(driver, "#firmware-" + key) for key in ("version", "slot")}


def marked_good(site):
    """S60health's line: the daemon and the page came up on this boot and the slot is good."""
    site.check("i=0; until logread | grep -q 'health: daemon and web page are up'; do "
               "i=$((i+1)); [ $i -gt 150 ] && exit 1; sleep 2; done", timeout=330)


def settings_digest(site):
    return hashlib.sha256(site.check(f"cat {CONFIG_PATH}").encode()).hexdigest()


def tunnel_up(a, b):
    """A's LAN host reaches B's through the tunnel; both daemons report it (status data)."""
    a.ping_until_up(b)
    for here, there in ((a, b), (b, a)):
        ike = [s for s in here.status()["ike_sas"] if s["status"] == "Activated"]
        assert [s["remote_gateway"] for s in ike] == [there.site["wan"]], here.status()["ike_sas"]
    return one(a.sas("outgoing"), "outgoing SA on A")


def test_upgrade_in_chromium_restarts_into_the_new_build_with_settings_and_tunnel(sites, driver):
    a, b = sites
    images = images_or_skip()
    marked_good(a)
    before_sa = tunnel_up(a, b)
    settings = settings_digest(a)
    release = dict(l.split("=", 1) for l in a.check("cat " + firmware_update.release.FILE).split())
    assert open_firmware_page(driver, a) == {"version": release["VERSION"], "slot": "A"}

    keys = firmware_update.signing_keys(os.path.dirname(images))
    rootfs = bundles.rootfs_variant(images, str(a.work), VERSION)
    bundle = bundles.signed(rootfs, str(a.work), VERSION, VERSION, keys)
    css(driver, "input#bundle[type=file]").send_keys(bundle)
    driver.set_page_load_timeout(INSTALL_S)     # the answer comes once the slot is written
    try:
        css(driver, "form.narrow button[type=submit]").click()
        done = wait(driver, lambda d: d.find_elements("css selector", "#firmware-done, #firmware-error"),
                    "the install's answer")
    finally:
        driver.set_page_load_timeout(30)
    assert re.match(rf"Firmware {VERSION} \(built [^)]+\) is installed", done[0].text), done[0].text

    a.router.restart_after_guest_reboot()       # the post-install handler restarts the router
    assert "booting slot B" in a.check("dmesg | grep ikecore-boot")
    isp_route(a, b)
    marked_good(a)
    assert open_firmware_page(driver, a) == {"version": VERSION, "slot": "B"}
    assert settings_digest(a) == settings
    # B never restarted: it negotiates afresh with the new build, and the tunnel carries again
    after_sa = tunnel_up(a, b)
    assert after_sa["spi"] != before_sa["spi"]
