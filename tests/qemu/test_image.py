"""The booted firmware image: services, firewall, LAN page, kernel IPsec data plane, persistence.
Everything runs in the real guest (arm64 under QEMU) through its serial console."""
import os
import re
import secrets
import shlex
import urllib.request

import pytest


PROCESSES = ("for p in /proc/[0-9]*; do c=$(tr '\\0' ' ' < $p/cmdline 2>/dev/null); [ -n \"$c\" ] || continue; "
             "echo \"$(awk '/^Uid:/ {print $2}' $p/status) $c\"; done")


def processes(router):
    """'<uid> <full command line>' of every user-space process (busybox ps cuts long lines)."""
    return router.check(PROCESSES)


def test_init_services_run(router):
    ps = processes(router)
    assert "rsyslogd -f /run/rsyslog.conf" in ps, ps
    assert "/usr/sbin/chronyd -n -u _chrony" in ps, ps
    assert "ikecore-respawn webui" in ps, ps
    has_webui = router.run("test -f /usr/lib/python3/dist-packages/webui/__main__.py").status == 0
    assert ("python3 -m webui" if has_webui else "httpd -f -p 192.168.1.1:80") in ps, ps
    if router.run("test -f /usr/lib/python3/dist-packages/ikecore/__main__.py").status == 0:
        assert "ikecore-respawn ikecore" in ps, ps
        assert "python3 -m ikecore --config /etc/ikecore/ikecore.toml --kernel=xfrm" in ps, ps
    # the system log on the data partition answers (rsyslogd writes it a moment later)
    router.check("logger -t imagetest hello-log")
    router.check("i=0; until logread | grep -q 'imagetest: hello-log'; do "
                 "i=$((i+1)); [ $i -gt 20 ] && exit 1; sleep 0.5; done", timeout=30)


def test_web_ui_runs_unprivileged(router):
    ps = processes(router)
    line = next(l for l in ps.splitlines() if "python3 -m webui" in l or "httpd -f" in l)
    assert line.split()[0] == router.check("id -u webui").strip(), line
    assert line.split()[0] != "0", line


SETTINGS_SAVE = """
from ikecore import config
doc = config.read_document("/etc/ikecore/ikecore.toml")
config.set_entry(doc, "peer", None, {"name": "imagetest", "remote_gateway": "198.51.100.2",
                                     "psk": "a long enough key"})
config.write_document_atomic("/tmp/settings-save.toml", doc)
print(sorted(config.load("/tmp/settings-save.toml").peers))
"""


def test_settings_save_keeps_the_factory_comments_with_the_images_libraries(router):
    """What the settings pages do on a save (ikecore.config with the image's tomlkit): the factory
    file's comments stay, the new peer validates."""
    out = router.check("python3 -c " + shlex.quote(SETTINGS_SAVE))
    assert out.strip().splitlines()[-1] == "['imagetest']", out
    factory = router.check("cat /etc/ikecore/ikecore.toml")
    saved = router.check("cat /tmp/settings-save.toml; rm /tmp/settings-save.toml")
    assert saved.startswith(factory.rstrip("\n")), saved


def test_console_prompt_shows_the_host_name_and_directory(router):
    """The console shell (dash) used to print a literal \\h:\\w$ (bash escapes it knows nothing
    of): /etc/profile's PS1 now expands to host:directory# at every prompt."""
    host = router.check("hostname").strip()
    before = len(router.console_text())
    router.check("true")       # the harness sends 3 lines: the shell prompts before each
    text = router.console_text()
    assert "\\h:\\w" not in text
    assert text[before:].count("%s:/# " % host) >= 3, text[before:]


MAINTENANCE = """
import os, tempfile
from webui import backup, certstore
d = tempfile.mkdtemp()
open(os.path.join(d, "ikecore.toml"), "w").write(open("/etc/ikecore/ikecore.toml").read())
store = certstore.CertStore(d)
csr = store.generate("router", "router.example", alt_names="203.0.113.1")
data = backup.create(os.path.join(d, "ikecore.toml"), include_keys=True)
manifest, files = backup.read(data)
token = backup.stage(os.path.join(d, "ikecore.toml"), manifest, files)
print(sorted(files), manifest["private_keys"], csr.splitlines()[0].decode(),
      backup.summarize(os.path.join(d, "ikecore.toml"), token)["files"])
"""


def test_certificates_and_backup_with_the_images_libraries(router):
    """The Certificates page's key + CSR and a backup made, read back and staged, with the
    image's Python and cryptography (a board's differ from the host's)."""
    out = router.check("python3 -c " + shlex.quote(MAINTENANCE), timeout=180)
    assert out.strip().splitlines()[-1] == (
        "['certs/local/router.csr', 'certs/local/router.key', 'ikecore.toml'] True "
        "-----BEGIN CERTIFICATE REQUEST----- []"), out


IMPORT_ALL = """
import importlib, pkgutil, sys
import ikecore, webui
names = [m.name for p in (ikecore, webui) for m in pkgutil.walk_packages(p.__path__, p.__name__ + ".")]
for name in names:
    importlib.import_module(name)
print(len(names), "imported")
"""


def test_every_firmware_module_imports_with_the_trimmed_stdlib(router):
    """qemu/rootfs.py deletes the standard library parts and pyroute2 modules the firmware never
    imports: every module of ours still imports in the image (daemon, page, backends, tools)."""
    out = router.check("python3 -c " + shlex.quote(IMPORT_ALL), timeout=300)
    assert out.strip().splitlines()[-1].endswith(" imported"), out


def test_daemons_are_restarted_when_they_die(router):
    child = router.check("cat /run/respawn/webui.pid").strip()
    router.check(f"kill -9 {child}")
    router.check(f"i=0; while [ $i -lt 60 ]; do c=$(cat /run/respawn/webui.pid); "
                 f"[ \"$c\" != {child} ] && kill -0 \"$c\" && exit 0; sleep 0.5; i=$((i+1)); done; exit 1",
                 timeout=60)
    assert "webui exited with status 137" in router.check("logread | grep respawn")
    router.wait_http(timeout=120)


def test_nftables_ruleset_loaded(router):
    rules = router.check("nft list ruleset")
    assert "table inet filter" in rules
    assert re.search(r"udp dport \{ 500, 4500 \}", rules), rules
    assert 'log prefix "fw:eth0:in:drop "' in rules
    assert "masquerade" in rules


def test_lan_page_answers_through_forward(router):
    status, body = router.wait_http(router.lan_url, timeout=120)
    assert status == 200
    assert "<html" in body.lower()


def test_wan_address_does_not_serve_page(router):
    router.wait_http(router.lan_url, timeout=120)      # the server is up (on the LAN)
    with pytest.raises(OSError):
        urllib.request.urlopen(router.wan_url, timeout=5).read()
    # the firewall dropped it, and said so in the system log with the documented prefix
    router.check("i=0; until logread | grep -q 'fw:eth0:in:drop .*DPT=80 '; do "
                 "i=$((i+1)); [ $i -gt 20 ] && exit 1; sleep 0.5; done", timeout=30)


def test_kernel_accepts_esp_and_ah_sas(router):
    k = lambda n: "0x" + secrets.token_hex(n)  # noqa: E731
    out = router.check(f"""
set -e
ip netns add satest
ip -n satest xfrm state add src 198.51.100.1 dst 198.51.100.2 proto esp spi 0x1001 mode tunnel \
    enc 'cbc(aes)' {k(16)} auth-trunc 'hmac(sha1)' {k(20)} 96
ip -n satest xfrm state add src 198.51.100.1 dst 198.51.100.2 proto esp spi 0x1002 mode tunnel \
    enc 'cbc(des3_ede)' {k(24)} auth-trunc 'hmac(md5)' {k(16)} 96
ip -n satest xfrm state add src 198.51.100.1 dst 198.51.100.2 proto esp spi 0x1003 mode tunnel \
    enc 'cbc(aes)' {k(32)} auth-trunc 'hmac(sha256)' {k(32)} 128
ip -n satest xfrm state add src 198.51.100.1 dst 198.51.100.2 proto ah spi 0x2001 mode tunnel \
    auth-trunc 'hmac(sha256)' {k(32)} 128
ip -n satest xfrm state list
ip netns del satest
""")
    for spi in ("0x00001001", "0x00001002", "0x00001003", "0x00002001"):
        assert f"spi {spi}" in out, out
    assert "proto ah" in out and "proto esp" in out


ESP_TUNNEL = """
set -e
ka=0x{ka}; kb=0x{kb}; aa=0x{aa}; ab=0x{ab}
ip netns add espa
ip netns add espb
ip link add va netns espa type veth peer name vb netns espb
for ns in espa espb; do ip -n $ns link set lo up; done
ip -n espa addr add 10.99.0.1/24 dev va
ip -n espb addr add 10.99.0.2/24 dev vb
ip -n espa link set va up
ip -n espb link set vb up
ip -n espa addr add 172.16.1.1/32 dev lo
ip -n espb addr add 172.16.2.1/32 dev lo
ip -n espa route add 172.16.2.0/24 dev va src 172.16.1.1
ip -n espb route add 172.16.1.0/24 dev vb src 172.16.2.1
for ns in espa espb; do
  ip -n $ns xfrm state add src 10.99.0.1 dst 10.99.0.2 proto esp spi 0xa1 mode tunnel reqid 1 \
      enc 'cbc(aes)' $ka auth-trunc 'hmac(sha1)' $aa 96
  ip -n $ns xfrm state add src 10.99.0.2 dst 10.99.0.1 proto esp spi 0xb1 mode tunnel reqid 1 \
      enc 'cbc(aes)' $kb auth-trunc 'hmac(sha1)' $ab 96
done
ip -n espa xfrm policy add src 172.16.1.0/24 dst 172.16.2.0/24 dir out \
    tmpl src 10.99.0.1 dst 10.99.0.2 proto esp mode tunnel reqid 1
ip -n espa xfrm policy add src 172.16.2.0/24 dst 172.16.1.0/24 dir in \
    tmpl src 10.99.0.2 dst 10.99.0.1 proto esp mode tunnel reqid 1
ip -n espb xfrm policy add src 172.16.2.0/24 dst 172.16.1.0/24 dir out \
    tmpl src 10.99.0.2 dst 10.99.0.1 proto esp mode tunnel reqid 1
ip -n espb xfrm policy add src 172.16.1.0/24 dst 172.16.2.0/24 dir in \
    tmpl src 10.99.0.1 dst 10.99.0.2 proto esp mode tunnel reqid 1
ip netns exec espb tcpdump -n -l -c 3 -i vb esp > /tmp/esp.cap 2>/dev/null &
sleep 2
ip netns exec espa ping -c 3 -W 3 172.16.2.1
wait
echo "--- capture"; cat /tmp/esp.cap
echo "--- states"; ip -n espa -s xfrm state list
ip netns del espa
ip netns del espb
"""


def test_ping_through_manually_keyed_esp_tunnel(router):
    keys = {n: secrets.token_hex(16 if n[0] == "k" else 20) for n in ("ka", "kb", "aa", "ab")}
    out = router.check(ESP_TUNNEL.format(**keys), timeout=90)
    assert "3 packets transmitted, 3 packets received" in out, out
    capture = out.split("--- capture")[1].split("--- states")[0]
    assert len(re.findall(r"10\.99\.0\.\d > 10\.99\.0\.\d: ESP\(spi=0x000000(a1|b1)", capture)) == 3, out
    states = out.split("--- states")[1]
    # the outbound SA of espa (spi 0xa1) and the inbound one (0xb1) each counted the 3 pings
    for spi in ("0x000000a1", "0x000000b1"):
        block = states.split(f"spi {spi}")[1]
        packets = int(re.search(r"lifetime current:\s*\n\s*(\d+)\(bytes\), (\d+)\(packets\)", block).group(2))
        assert packets >= 3, states


def test_blank_data_partition_formatted_with_one_log_line(router):
    lines = [l for l in router.check("logread").splitlines() if " data: " in l]
    assert len(lines) == 1, lines
    assert "data partition /dev/vdb was blank: formatted it, settings reset to factory defaults" in lines[0]
    assert " /data ext" in router.check("cat /proc/mounts")
    assert router.run("test -f /etc/ikecore/ikecore.toml").status == 0


def damaged_disk(path):
    """A data disk whose first MiB (superblock included) is random bytes."""
    with open(path, "wb") as f:
        f.write(os.urandom(1 << 20))
        f.truncate(64 * 1024 * 1024)
    return str(path)


@pytest.mark.parametrize("disk, line, mount", [
    (damaged_disk, "data partition /dev/vdb was damaged (cannot be mounted): formatted it, "
                   "settings reset to factory defaults", " /data ext4 "),
    (None, "no data disk /dev/vdb: using factory defaults in RAM, settings will not survive a reboot",
     " /data tmpfs "),
], ids=["damaged", "missing"])
def test_damaged_or_missing_data_partition_falls_back_to_defaults(router, tmp_path, disk, line, mount):
    """A router of its own (from the shared router's images): a data disk of random bytes is
    reformatted, no data disk at all means factory defaults in RAM; either way one log line says
    which, and the router serves its page."""
    from router import Router
    r = Router(router.images, disk(tmp_path / "data.img") if disk else None, name="datatest",
               log_path=str(tmp_path / "console.log"))
    r.start(timeout=300)
    try:
        lines = [l for l in r.check("logread").splitlines() if " data: " in l]
        assert len(lines) == 1 and line in lines[0], lines
        assert mount in r.check("cat /proc/mounts")
        assert r.run("test -f /etc/ikecore/ikecore.toml").status == 0      # the factory settings
        r.wait_http(r.lan_url, timeout=180)
    finally:
        r.stop()


def as_webui(code):
    """A python3 -c command run as the web UI's user, as the page would run it."""
    return "su -s /bin/sh webui -c " + shlex.quote("python3 -c " + shlex.quote(code))


def test_setting_survives_reboot(router):
    """Last in this module: it reboots the shared router. A key the web UI stored (0600, its
    own) is still readable to it afterwards: a backup with private keys works."""
    token = secrets.token_hex(8)
    router.check(f"echo {token} > /data/ikecore/imagetest.setting && sync")
    router.check(as_webui("from webui import certstore; certstore.CertStore('/data/ikecore')"
                          ".generate('imagetest', 'imagetest.example')") + " && sync",
                 timeout=180)
    router.reboot(timeout=300)
    assert router.check("cat /etc/ikecore/imagetest.setting").strip() == token
    # the log outlives the reboot (the first boot's format line is still there); this boot's
    # part (from the kernel's first line) says nothing of the data partition: mounted as is
    log = router.check("logread").split("kernel: Booting Linux on physical CPU")
    assert len(log) >= 3 and " data: " in log[1] and " data: " not in log[-1], log[-1]
    out = router.check(as_webui(
        "from webui import backup; manifest, files = backup.read(backup.create("
        "'/etc/ikecore/ikecore.toml', True)); print(sorted(files))"), timeout=180)
    assert "certs/local/imagetest.key" in out, out
    router.check("rm -r /data/ikecore/imagetest.setting /data/ikecore/certs")
    router.wait_http(router.lan_url, timeout=120)
