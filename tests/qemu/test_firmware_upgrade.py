"""Firmware upgrade on the A/B system disk, driven through the Firmware page over HTTP, as a user
would: refused bundles leave the running slot untouched; a second build installs into the other
slot, the router restarts into it and is marked good with the settings kept; a build whose IKE
daemon exits at start is never marked good, and the router returns to the previous slot by itself.

One router, booted four times: A (refusals, upgrade) -> B (the second build) -> A (the broken
build: the health check gives up and reboots) -> B again. The tests run in this order and share it.
"""
import hashlib
import json
import os
import re

import pytest

from conftest import images_or_skip
from router import Router, new_data_disk, new_system_disk

import bundles
import firmware_update
from webui_harness import Client

PASSWORD = "upgrade-test-password"
# the health check's deadline for the broken build; the good builds get there in seconds
HEALTH_TIMEOUT_S = 90
SETTINGS = "/data/ikecore/ikecore.toml"
ADD_PEER = """
from ikecore import config
doc = config.read_document("/etc/ikecore/ikecore.toml")
config.set_entry(doc, "peer", None, {"name": "kept-across-upgrades", "remote_gateway": "198.51.100.7",
                                     "psk": "a long enough key"})
config.write_document_atomic("/etc/ikecore/ikecore.toml", doc)
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("upgrade")


@pytest.fixture(scope="module")
def keys():
    images_or_skip()
    if not os.path.exists(os.path.join(os.path.dirname(images_or_skip()), "keys")):
        pytest.skip("no development signing key next to the images: run `make image`")
    return firmware_update.signing_keys(os.path.dirname(images_or_skip()))


@pytest.fixture(scope="module")
def ab_router(work):
    images = images_or_skip()
    if not os.path.exists(os.path.join(images, "system.img")):
        pytest.skip("no A/B system disk in %s: run `make image`" % images)
    r = Router(images, new_data_disk(images, str(work / "data.img")), name="ab-router",
               system_disk=new_system_disk(images, str(work / "system.img")),
               cmdline=f"ikecore.health_timeout={HEALTH_TIMEOUT_S}", log_path=str(work / "console.log"))
    r.start(timeout=300)
    r.check("python3 -c '%s'" % ADD_PEER.replace("'", "'\\''"))
    r.check(f"echo {PASSWORD} | su -s /bin/sh webui -c 'python3 -m webui passwd --state-dir /data/webui'")
    yield r
    r.stop()


def client(router):
    router.wait_http(timeout=180)
    c = Client(router.lan_port)
    assert c.login(PASSWORD).status == 303
    return c


def page_facts(c):
    page = c.get("/firmware")
    assert page.status == 200, page.text
    facts = {key: re.search(r'id="firmware-%s">([^<]*)<' % key, page.text) for key in ("version", "slot")}
    return {k: m.group(1) if m else None for k, m in facts.items()}


def wait_marked_good(router):
    """The health check's log line: the daemon and the page came up and the slot is marked good."""
    router.check("i=0; until logread | grep -q 'health: daemon and web page are up'; do "
                 "i=$((i+1)); [ $i -gt 150 ] && exit 1; sleep 2; done", timeout=330)


def slot_state(router):
    return router.check("dd if=/dev/vda3 bs=512 count=1 2>/dev/null | tr -d '\\000'")


def settings_digest(router):
    return hashlib.sha256(router.check(f"cat {SETTINGS}").encode()).hexdigest()


def test_page_shows_the_running_version_build_date_and_slot(ab_router):
    wait_marked_good(ab_router)
    release = dict(l.split("=", 1) for l in ab_router.check("cat " + firmware_update.release.FILE).split())
    page = client(ab_router).get("/firmware").text
    assert re.search(r'id="firmware-version">%s<' % re.escape(release["VERSION"]), page), page
    assert re.search(r'id="firmware-build-date">%s<' % re.escape(release["BUILD_DATE"]), page), page
    assert 'id="firmware-slot">A<' in page, page


def test_refused_bundles_leave_the_running_slot_untouched(ab_router, work, keys):
    images = images_or_skip()
    before_state = slot_state(ab_router)
    before_b = ab_router.check("dd if=/dev/vda2 bs=1M count=1 2>/dev/null | md5sum")
    c = client(ab_router)
    expected = {
        "unsigned": "not a complete, signed firmware bundle",
        "truncated": "not a complete, signed firmware bundle",
        "wrong key": "not signed by a key this router trusts",
        "other board": 'firmware for another board (compatible &#34;ikecore-nanopi-r2s&#34;',
    }
    for what, path in bundles.refused_bundles(images, str(work), keys).items():
        resp = c.upload("/firmware/upload", "bundle", path)
        assert resp.status == 400, (what, resp.text)
        error = re.search(r'id="firmware-error">([^<]*)<', resp.text)
        assert error and expected[what] in error.group(1), (what, resp.text)
        assert "The running firmware is unchanged." in error.group(1)
        os.remove(path)
    assert slot_state(ab_router) == before_state
    assert ab_router.check("dd if=/dev/vda2 bs=1M count=1 2>/dev/null | md5sum") == before_b
    assert ab_router.check("ls -A /data/webui/firmware") == ""      # nothing left behind
    assert page_facts(c)["slot"] == "A"


def test_upgrade_through_the_page_runs_the_new_build_with_the_settings_kept(ab_router, work, keys):
    images = images_or_skip()
    settings = settings_digest(ab_router)
    rootfs = bundles.rootfs_variant(images, str(work), "second-build")
    bundle = bundles.signed(rootfs, str(work), "second-build", "second-build", keys)
    resp = client(ab_router).upload("/firmware/upload", "bundle", bundle)
    assert resp.status == 200, resp.text
    assert re.search(r'id="firmware-done">Firmware second-build \(built [^)]+\) is installed', resp.text), resp.text
    ab_router.restart_after_guest_reboot()      # the post-install handler reboots
    assert "booting slot B" in ab_router.check("dmesg | grep ikecore-boot")
    wait_marked_good(ab_router)
    assert page_facts(client(ab_router)) == {"version": "second-build", "slot": "B"}
    assert "B_LEFT=3" in slot_state(ab_router)
    assert settings_digest(ab_router) == settings
    assert "ikecore started: 1 peers" in ab_router.check("logread | grep 'ikecore started'")


def test_a_build_that_never_comes_up_returns_to_the_previous_slot_by_itself(ab_router, work, keys):
    images = images_or_skip()
    settings = settings_digest(ab_router)
    rootfs = bundles.rootfs_variant(images, str(work), "broken-build", broken_daemon=True)
    bundle = bundles.signed(rootfs, str(work), "broken-build", "broken-build", keys)
    resp = client(ab_router).upload("/firmware/upload", "bundle", bundle)
    assert resp.status == 200, resp.text
    ab_router.restart_after_guest_reboot()      # into A, with the broken build
    assert "booting slot A" in ab_router.check("dmesg | grep ikecore-boot")
    assert "A_LEFT=0" in slot_state(ab_router)  # its one try is spent
    assert ab_router.run("cat " + firmware_update.release.FILE).output.startswith("VERSION=broken-build")
    # nobody touches it: the health check gives up, reboots, and the boot selector starts B
    ab_router.restart_after_guest_reboot(timeout=HEALTH_TIMEOUT_S + 300)
    assert "booting slot B" in ab_router.check("dmesg | grep ikecore-boot")
    wait_marked_good(ab_router)
    assert page_facts(client(ab_router)) == {"version": "second-build", "slot": "B"}
    assert settings_digest(ab_router) == settings
    slots = {s["bootname"]: s for entry in json.loads(ab_router.check("rauc status --output-format=json"))["slots"]
             for s in entry.values()}
    assert (slots["A"]["state"], slots["A"]["boot_status"]) == ("inactive", "bad"), slots
    assert (slots["B"]["state"], slots["B"]["boot_status"]) == ("booted", "good"), slots
