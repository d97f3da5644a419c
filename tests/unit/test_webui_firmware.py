"""The Firmware page over real HTTP with a stand-in `rauc` (a script recording its calls): the
release facts, the CSRF token checked before the upload is read, the size bound, a refusal by
`rauc info` or for another board that never reaches `rauc install`, and a good upload installed
and removed from the data partition. The real rauc, signatures and slots: tests/qemu/test_firmware_upgrade.py."""
import json
import os
import re
import textwrap

import pytest

from webui_harness import Client, ThreadedWebui

from webui import auth, rauc, views_firmware
from webui import release as webui_release
from webui.context import Options

PASSWORD = "correct-password"
STATUS = {"booted": "A", "slots": [
    {"rootfs.1": {"bootname": "B", "device": "/dev/vda2", "state": "inactive", "boot_status": "bad"}},
    {"rootfs.0": {"bootname": "A", "device": "/dev/vda1", "state": "booted", "boot_status": "good",
                  "slot_status": {"bundle": {"version": "v1"}}}}]}


def fake_rauc(tmp_path, info):
    """A `rauc` answering status with STATUS, info with `info` (dict, or a string: the error it
    prints before failing), install with success; each call appended to calls.log."""
    path = tmp_path / "rauc"
    info_out = json.dumps(info) if isinstance(info, dict) else ""
    info_fail = "" if isinstance(info, dict) else info
    path.write_text(textwrap.dedent("""\
        #!/bin/sh
        echo "$@" >> %(log)s
        case "$1" in
        status) echo '%(status)s' ;;
        info) [ -n '%(fail)s' ] && { echo '%(fail)s' >&2; exit 1; }; echo '%(info)s' ;;
        install) cp "$2" %(copy)s ;;
        esac
        """) % {"log": tmp_path / "calls.log", "status": json.dumps(STATUS), "info": info_out,
                "fail": info_fail, "copy": tmp_path / "installed.raucb"})
    path.chmod(0o755)
    return path


@pytest.fixture
def env(tmp_path, monkeypatch):
    release = tmp_path / "release"
    release.write_text("VERSION=v1\nBUILD_DATE=2026-12-07T05:00:00Z\nCOMPATIBLE=ikecore-test\n")
    monkeypatch.setattr(webui_release, "FILE", str(release))
    monkeypatch.setattr(rauc, "RAUC", str(fake_rauc(tmp_path, {"compatible": "ikecore-test",
                                                               "version": "v2", "build": "today"})))
    state = tmp_path / "state"
    state.mkdir()
    auth.PasswordStore(str(state)).set(PASSWORD)
    server = ThreadedWebui(Options(str(tmp_path / "none.sock"), str(state))).start()
    c = Client(server.port)
    assert c.login(PASSWORD).status == 303
    yield {"client": c, "tmp": tmp_path, "state": state}
    server.stop()


def calls(env):
    log = env["tmp"] / "calls.log"
    return [l.split()[0] for l in log.read_text().splitlines()] if log.exists() else []


def bundle(env, size=4096):
    path = env["tmp"] / "upload.raucb"
    path.write_bytes(os.urandom(size))
    return path


def error_of(resp):
    m = re.search(r'id="firmware-error">([^<]*)<', resp.text)
    return m and m.group(1)


def test_page_shows_version_build_date_and_slots(env):
    page = env["client"].get("/firmware")
    assert page.status == 200
    assert 'id="firmware-version">v1<' in page.text
    assert 'id="firmware-build-date">2026-12-07T05:00:00Z<' in page.text
    assert 'id="firmware-slot">A<' in page.text
    assert '<a href="/firmware" aria-current="page">Firmware</a>' in page.text


def test_a_good_bundle_is_checked_then_installed_and_removed(env):
    data = bundle(env)
    resp = env["client"].upload(views_firmware.UPLOAD_URL, "bundle", str(data))
    assert resp.status == 200, resp.text
    assert "Firmware v2 (built today) is installed in the other slot" in resp.text
    assert [c for c in calls(env) if c != "status"] == ["info", "install"]   # the check comes first
    assert (env["tmp"] / "installed.raucb").read_bytes() == data.read_bytes()
    assert os.listdir(env["state"] / "firmware") == []


def test_upload_without_the_csrf_token_is_refused_before_it_is_read(env):
    resp = env["client"].upload(views_firmware.UPLOAD_URL, "bundle", str(bundle(env)), csrf="forged")
    assert resp.status == 403
    assert "security token (CSRF)" in error_of(resp)
    assert "info" not in calls(env) and "install" not in calls(env)


def test_a_bundle_larger_than_a_slot_is_refused_and_not_kept(env, monkeypatch):
    monkeypatch.setattr(views_firmware, "MAX_BUNDLE_BYTES", 1024 * 1024)
    resp = env["client"].upload(views_firmware.UPLOAD_URL, "bundle", str(bundle(env, 3 * 1024 * 1024)))
    assert resp.status == 413
    assert "larger than 1 MiB" in error_of(resp)
    assert "install" not in calls(env)
    assert os.listdir(env["state"] / "firmware") == []


def test_a_bundle_rauc_info_refuses_is_never_installed(env, monkeypatch):
    monkeypatch.setattr(rauc, "RAUC", str(fake_rauc(
        env["tmp"], "signature verification failed: Verify error: unable to get local issuer certificate")))
    resp = env["client"].upload(views_firmware.UPLOAD_URL, "bundle", str(bundle(env)))
    assert resp.status == 400
    assert "not signed by a key this router trusts" in error_of(resp)
    assert "unable to get local issuer certificate" in error_of(resp)
    assert "The running firmware is unchanged." in error_of(resp)
    assert "install" not in calls(env)


def test_a_bundle_for_another_board_is_never_installed(env, monkeypatch):
    monkeypatch.setattr(rauc, "RAUC", str(fake_rauc(env["tmp"], {"compatible": "ikecore-nanopi-r2s",
                                                                 "version": "v2", "build": "x"})))
    resp = env["client"].upload(views_firmware.UPLOAD_URL, "bundle", str(bundle(env)))
    assert resp.status == 400
    assert "firmware for another board" in error_of(resp) and "ikecore-nanopi-r2s" in error_of(resp)
    assert "install" not in calls(env)


def test_an_empty_file_is_refused(env):
    path = env["tmp"] / "empty.raucb"
    path.write_bytes(b"")
    resp = env["client"].upload(views_firmware.UPLOAD_URL, "bundle", str(path))
    assert resp.status == 400 and "it is empty" in error_of(resp)
    assert "info" not in calls(env)
