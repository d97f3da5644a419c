"""Settings backup and restore (/settings/backup, webui.backup): backup -> change -> restore gives
the backed-up files byte for byte; private keys only when asked, and the file says so; damaged,
truncated, foreign or invalid backups are refused naming the problem with every file unchanged;
a daemon that refuses the restored settings gets the old ones back."""
import gzip
import hashlib
import io
import json
import os
import re
import tarfile

from webui_client import run_webui
from webui_pki import Authority, cert_pem, key_pem
from support.config import rsa, webui_router

URL = "/settings/backup"
CA = Authority()
GW_CERT, GW_KEY = CA.issue("gw.example")
CONFIG = webui_router(branch=dict(psk_file="branch.psk"),
                      hq=rsa("certs/local/gw.pem", "certs/local/gw.key", "certs/ca/corp.pem"),
                      branch_lan={}, comment="our router: comments and layout must come back too")
PEER_FORM = {"name": "branch", "remote_gateway": "198.51.100.99", "auth": "psk",
             "psk": "a new secret", "proposals.0": "aes128-sha1-modp2048", "nat_t": "on"}


def settings_files(etc):
    """{relative path: bytes} of everything under the config directory (hidden files too)."""
    found = {}
    for root, _dirs, names in os.walk(etc):
        for name in names:
            full = os.path.join(root, name)
            found[os.path.relpath(full, etc)] = open(full, "rb").read()
    return found


def populate(tmp_path):
    etc = tmp_path / "etc"
    (etc / "certs" / "local").mkdir(parents=True)
    (etc / "certs" / "ca").mkdir()
    (etc / "ikecore.toml").write_text(CONFIG)
    (etc / "branch.psk").write_text("the branch key\n")
    (etc / "certs" / "local" / "gw.pem").write_bytes(cert_pem(GW_CERT))
    (etc / "certs" / "local" / "gw.key").write_bytes(key_pem(GW_KEY))
    (etc / "certs" / "ca" / "corp.pem").write_bytes(cert_pem(CA.cert))
    for secret in ("branch.psk", "certs/local/gw.key"):
        os.chmod(str(etc / secret), 0o600)
    return etc


def members(data):
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def pack(files):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def error_of(body):
    match = re.search(rb'<p class="error" role="alert" id="form-error">(.*?)</p>', body, re.S)
    return match and match.group(1).decode().replace("&#39;", "'").replace("&quot;", '"')


async def download(web, private_keys):
    await web.page(URL)
    r, data = await web.post(URL + "/download", {"private_keys": "on"} if private_keys else {})
    assert r.status == 200 and r.headers["Content-Type"] == "application/gzip"
    return r.headers["Content-Disposition"], data


async def restore(web, data, filename="backup.tar.gz"):
    await web.page(URL)
    return await web.post(URL + "/restore", {}, {"file": (filename, data)})


async def confirm(web, summary_page):
    token = re.search(rb'action="/settings/backup/restore/([A-Za-z0-9_-]+)"', summary_page)
    return await web.post(URL + "/restore/" + token.group(1).decode(), {})


def test_backup_change_restore_gives_the_files_back_byte_for_byte(tmp_path):
    etc = populate(tmp_path)
    original = settings_files(etc)

    async def scenario(web):
        disposition, data = await download(web, private_keys=True)
        assert disposition.endswith('-with-private-keys.tar.gz"')
        inside = members(data)
        manifest = json.loads(inside.pop("manifest.json"))
        assert manifest["format"] == "ikecore-settings-backup" and manifest["version"] == 1
        assert manifest["firmware"] == "ikecore" and manifest["private_keys"] is True
        assert inside == original
        for entry in manifest["files"]:
            assert entry["sha256"] == hashlib.sha256(inside[entry["path"]]).hexdigest()
        # change the settings in every way a user can: a save, a new certificate, a deletion
        r, _ = await web.post("/settings/peers/branch", PEER_FORM)
        assert r.status == 303
        (etc / "certs" / "ca" / "later.pem").write_bytes(cert_pem(CA.cert))
        r, _ = await web.post("/settings/connections/branch-lan/delete", {"confirmed": "1"})
        assert r.status == 303
        (etc / "branch.psk").unlink()          # no longer used by the saved peer: removed
        assert settings_files(etc) != original
        r, summary = await restore(web, data)
        assert r.status == 200
        text = summary.decode()
        assert "certs/ca/later.pem: removed" in text and "ikecore.toml: changed" in text
        assert "branch.psk: added" in text
        assert "connection branch-lan is added" in text
        assert re.search(r"<li>peer branch: [^<]*pre-shared key, [^<]*remote_gateway changed",
                         text)
        assert "a new secret" not in text and "the branch key" not in text
        assert '-remote_gateway = "198.51.100.99"' in text.replace("&#34;", '"')
        assert '-psk = "(hidden)"' in text.replace("&#34;", '"')
        assert settings_files(etc) != original      # nothing changes before confirming
        r, _ = await confirm(web, summary)
        assert r.status == 303
        assert "Settings restored" in await web.flash(URL)
        assert web.fake.requests[-1]["cmd"] == "reload"
    run_webui(tmp_path, None, scenario)
    assert settings_files(etc) == original
    for secret in ("certs/local/gw.key", "branch.psk"):      # as recorded in the backup
        assert os.stat(str(etc / secret)).st_mode & 0o777 == 0o600, secret


def test_without_private_keys_the_file_says_so_and_restore_keeps_this_routers_keys(tmp_path):
    etc = populate(tmp_path)
    original = settings_files(etc)

    async def scenario(web):
        disposition, data = await download(web, private_keys=False)
        assert "private-keys" not in disposition
        inside = members(data)
        manifest = json.loads(inside["manifest.json"])
        assert manifest["private_keys"] is False
        assert manifest["omitted_private_keys"] == ["certs/local/gw.key"]
        assert "certs/local/gw.key" not in inside
        assert not any(b"PRIVATE KEY" in v for v in inside.values())
        r, _ = await web.post("/settings/peers/branch", PEER_FORM)
        r, summary = await restore(web, data)
        assert r.status == 200 and b"without private keys" in summary
        assert b"gw.key" not in summary                 # kept as it is: no change
        r, _ = await confirm(web, summary)
        assert r.status == 303
    run_webui(tmp_path, None, scenario)
    assert settings_files(etc) == original


def test_damaged_truncated_foreign_and_invalid_backups_are_refused(tmp_path):
    etc = populate(tmp_path)
    original = settings_files(etc)

    async def scenario(web):
        _, data = await download(web, private_keys=True)
        inside = members(data)
        manifest = json.loads(inside["manifest.json"])
        raw = gzip.decompress(data)

        def with_manifest(**changes):
            return pack(dict(inside, **{"manifest.json": json.dumps(
                dict(manifest, **changes)).encode()}))

        flipped = bytearray(data)
        flipped[len(flipped) // 2] ^= 0xFF
        bad_config = dict(inside)
        bad_config["ikecore.toml"] = inside["ikecore.toml"].replace(
            b'"198.51.100.7"', b'"198.51.100.300"')
        entry = next(e for e in manifest["files"] if e["path"] == "ikecore.toml")
        entry_fixed = dict(entry, size=len(bad_config["ikecore.toml"]),
                           sha256=hashlib.sha256(bad_config["ikecore.toml"]).hexdigest())
        bad_config["manifest.json"] = json.dumps(dict(manifest, files=[
            entry_fixed if e is entry else e for e in manifest["files"]])).encode()
        tampered = dict(inside)
        tampered["certs/ca/corp.pem"] = inside["certs/ca/corp.pem"] + b"\n"
        escaping = dict(inside, **{"../outside.txt": b"x"})
        cases = [
            (b"", "the file is empty"),
            (b"PK\x03\x04 a zip file", "not a .tar.gz archive"),
            (data[:len(data) // 2], "truncated or damaged"),
            (bytes(flipped), "truncated or damaged"),
            (gzip.compress(raw[:len(raw) // 2]), "truncated or damaged"),
            (pack({"etc/passwd": b"root:x:0:0\n"}), "no manifest.json"),
            (with_manifest(format="openwrt-sysupgrade"), "not an ikecore settings backup"),
            (with_manifest(firmware="other-router"), "made by another firmware"),
            (with_manifest(version=2), "made by a newer firmware (backup format 2"),
            (pack(tampered), "certs/ca/corp.pem is damaged"),
            (pack({k: v for k, v in inside.items() if k != "branch.psk"}),
             "branch.psk is listed in the manifest but missing"),
            (pack(dict(inside, **{"extra.txt": b"?"})), "extra.txt is in the archive but not"),
            (pack(escaping), "a path outside the settings directory"),
            (pack(bad_config), "peer[1].remote_gateway"),
        ]
        for blob, reason in cases:
            r, body = await restore(web, blob)
            assert r.status == 400, reason
            assert "nothing was changed" in error_of(body) and reason in error_of(body), (
                error_of(body), reason)
            assert settings_files(etc) == original, reason
    run_webui(tmp_path, None, scenario)


def test_a_refused_reload_puts_the_old_settings_back(tmp_path):
    etc = populate(tmp_path)

    async def scenario(web):
        _, data = await download(web, private_keys=True)
        r, _ = await web.post("/settings/peers/branch", PEER_FORM)
        changed = settings_files(etc)
        r, summary = await restore(web, data)
        web.fake.fail_with = "configuration not reloaded: kernel said no"
        r, body = await confirm(web, summary)
        assert r.status == 409
        assert "the daemon did not accept the restored settings" in error_of(body)
        assert "kernel said no" in error_of(body) and "previous settings are back" in error_of(body)
        assert settings_files(etc) == changed       # no staging left behind either
        assert [q["cmd"] for q in web.fake.requests[-2:]] == ["reload", "reload"]
        # the confirmation cannot be replayed
        r, body = await confirm(web, summary)
        assert r.status == 409 and "no such restore" in error_of(body)
    run_webui(tmp_path, None, scenario)


def test_a_save_after_the_summary_makes_the_restore_start_again(tmp_path):
    etc = populate(tmp_path)

    async def scenario(web):
        _, data = await download(web, private_keys=True)
        r, summary = await restore(web, data)
        r, _ = await web.post("/settings/peers/branch", PEER_FORM)
        changed = {k: v for k, v in settings_files(etc).items() if not k.startswith(".")}
        r, body = await confirm(web, summary)
        assert r.status == 409 and "the settings changed since" in error_of(body)
        assert settings_files(etc) == changed
    run_webui(tmp_path, None, scenario)


def test_files_named_in_ca_lists_intermediates_and_crls_are_part_of_the_settings(tmp_path):
    from webui import backup
    etc = populate(tmp_path)
    (etc / "pki").mkdir()
    for name in ("root2.pem", "inter.pem", "corp.crl"):
        (etc / "pki" / name).write_bytes(b"a file a peer names")
    (etc / "ikecore.toml").write_text(CONFIG.replace(
        'ca = "certs/ca/corp.pem"\n', 'ca = ["certs/ca/corp.pem", "pki/root2.pem"]\n'
        'intermediates = ["pki/inter.pem"]\ncrls = ["pki/corp.crl", "/elsewhere/x.crl"]\n'))
    files = backup.managed_files(str(etc), "ikecore.toml")
    assert {name for name in files if name.startswith("pki/")} == {
        "pki/root2.pem", "pki/inter.pem", "pki/corp.crl"}
    assert not any(files[name] for name in files if name.startswith("pki/"))   # no key among them


def system_options(etc):
    """The System page's file beside the config (as in the image) and its apply FIFO."""
    conf = etc / "system.conf"
    conf.write_text("NTP_SERVERS=ntp1.example.net 192.0.2.123\nSYSLOG_SERVER=logs.example.net\n"
                    "SYSLOG_PORT=6514\nSYSLOG_PROTOCOL=tcp\n")
    fifo = etc.parent / "system-apply"
    os.mkfifo(str(fifo))
    return conf, fifo


def test_system_settings_are_backed_up_and_restored_through_the_system_page(tmp_path):
    """system.conf is in the backup; after the System page changed it, a restore shows the
    change, and once the daemon took the settings saves the backup's and asks the root side to
    apply them, as a save on the System page does."""
    from webui import system_settings
    etc = populate(tmp_path)
    conf, fifo = system_options(etc)
    backed_up = system_settings.read(str(conf))
    reader = os.open(str(fifo), os.O_RDONLY | os.O_NONBLOCK)

    async def scenario(web):
        _, data = await download(web, private_keys=False)
        inside = members(data)
        manifest = json.loads(inside["manifest.json"])
        assert manifest["system_config"] == "system.conf"
        assert inside["system.conf"] == conf.read_bytes()
        await web.page("/settings/system")
        r, _ = await web.post("/settings/system", {"ntp_servers": "pool.example.org",
                                                   "syslog_server": "", "syslog_port": "",
                                                   "syslog_protocol": "udp"})
        assert r.status == 303
        assert os.read(reader, 100) == b"apply\n"
        r, summary = await restore(web, data)
        assert r.status == 200
        text = summary.decode()
        assert "system NTP servers: pool.example.org -&gt; ntp1.example.net 192.0.2.123" in text
        assert "system log server: (none) -&gt; logs.example.net" in text
        assert system_settings.read(str(conf))["ntp_servers"] == ["pool.example.org"]
        r, _ = await confirm(web, summary)
        assert r.status == 303
        flash = await web.flash(URL)
        assert "system settings (NTP, remote syslog) are restored and applied now" in flash
    try:
        run_webui(tmp_path, None, scenario, system_config=str(conf), system_apply=str(fifo))
        assert os.read(reader, 100) == b"apply\n"
    finally:
        os.close(reader)
    assert system_settings.read(str(conf)) == backed_up


def test_a_bad_system_conf_in_a_backup_refuses_the_restore(tmp_path):
    """The System page's validator judges the backup's system.conf: a bad value refuses the
    whole restore naming the field, every file (system.conf too) stays as it was."""
    etc = populate(tmp_path)
    conf, fifo = system_options(etc)

    async def scenario(web):
        _, data = await download(web, private_keys=True)
        inside = members(data)
        manifest = json.loads(inside["manifest.json"])
        bad = b"NTP_SERVERS=ntp1.example.net\nSYSLOG_PORT=99999\n"
        inside["system.conf"] = bad
        manifest["files"] = [dict(e, size=len(bad), sha256=hashlib.sha256(bad).hexdigest())
                             if e["path"] == "system.conf" else e for e in manifest["files"]]
        inside["manifest.json"] = json.dumps(manifest).encode()
        original = settings_files(etc)
        r, body = await restore(web, pack(inside))
        assert r.status == 400
        assert ("nothing was changed: the backup's system settings (system.conf) are refused: "
                "syslog_port: '99999' is not a port number (1-65535)") in error_of(body), \
            error_of(body)
        assert settings_files(etc) == original
        # a backup that names a system.conf it does not hold is refused too
        del inside["system.conf"]
        manifest["files"] = [e for e in manifest["files"] if e["path"] != "system.conf"]
        inside["manifest.json"] = json.dumps(manifest).encode()
        r, body = await restore(web, pack(inside))
        assert r.status == 400 and "system settings file 'system.conf'" in error_of(body)
        assert settings_files(etc) == original
    run_webui(tmp_path, None, scenario, system_config=str(conf), system_apply=str(fifo))


def test_a_backup_without_system_conf_keeps_the_routers(tmp_path):
    """Backups made before system.conf was in them restore the rest and leave it alone."""
    etc = populate(tmp_path)

    async def scenario(web):
        _, data = await download(web, private_keys=True)   # no system.conf on this router yet
        assert "system.conf" not in members(data)
        conf.write_text("NTP_SERVERS=ntp9.example.net\n")
        r, summary = await restore(web, data)
        assert r.status == 200 and b"system NTP" not in summary
        r, _ = await confirm(web, summary)
        assert r.status == 303
        assert "system settings" not in await web.flash(URL)
    conf = etc / "system.conf"
    run_webui(tmp_path, None, scenario, system_config=str(conf),
              system_apply=str(tmp_path / "absent-fifo"))
    assert conf.read_text() == "NTP_SERVERS=ntp9.example.net\n"
