"""rootfs-overlay/usr/libexec/ikecore/dns-bypass, run on the host with a fake `ip` that records
what it is asked: the router's own DNS queries to the resolvers of resolv.conf get bypass policies
(UDP and TCP, out and in, from/to its WAN address only, above every tunnel's priority), and those
of resolvers or addresses that went away are removed. The guest test (tests/qemu/
test_clock_logs.py) shows a 0.0.0.0/0 tunnel then does not take them."""
import os
import subprocess

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(TOP, "rootfs-overlay", "usr", "libexec", "ikecore", "dns-bypass")
FAKE_IP = """#!/bin/sh
if [ "$1" = -4 ]; then        # ip -4 -o addr show dev IF
    for a in $(cat "$WAN_ADDRESSES"); do
        echo "2: $5    inet $a/24 brd 203.0.113.255 scope global $5"
    done
    exit 0
fi
echo "$*" >> "$IP_LOG"
"""


def run(tmp_path, resolv, addresses):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "ip").write_text(FAKE_IP)
    (bin_dir / "logger").write_text("#!/bin/sh\necho \"$*\" >> \"$LOGGER_LOG\"\n")
    for tool in ("ip", "logger"):
        os.chmod(bin_dir / tool, 0o755)
    (tmp_path / "resolv.conf").write_text(resolv)
    (tmp_path / "addresses").write_text(" ".join(addresses))
    (tmp_path / "network.env").write_text("WAN_IF=wan0\nLAN_IF=lan0\n")
    log = tmp_path / "ip.log"
    if log.exists():
        log.unlink()
    env = dict(os.environ, PATH="%s:%s" % (bin_dir, os.environ["PATH"]),
               RESOLV_CONF=str(tmp_path / "resolv.conf"), DNS_BYPASS_STATE=str(tmp_path / "state"),
               NETWORK_ENV=str(tmp_path / "network.env"), WAN_ADDRESSES=str(tmp_path / "addresses"),
               IP_LOG=str(log), LOGGER_LOG=str(tmp_path / "logger.log"))
    subprocess.run(["sh", SCRIPT], env=env, check=True, timeout=30)
    return sorted(log.read_text().splitlines()) if log.exists() else []


def updates(wan, ns):
    return sorted(
        ["xfrm policy update src %s/32 dst %s/32 proto %s dport 53 dir out priority 101"
         % (wan, ns, proto) for proto in ("udp", "tcp")]
        + ["xfrm policy update src %s/32 dst %s/32 proto %s sport 53 dir in priority 101"
           % (ns, wan, proto) for proto in ("udp", "tcp")])


def deletes(wan, ns):
    return sorted(line.replace("update", "delete").replace(" priority 101", "")
                  for line in updates(wan, ns))


def test_resolvers_get_bypasses_and_stale_ones_go(tmp_path):
    resolv = ("# from DHCP\nnameserver 198.51.100.53\nnameserver 127.0.0.53\n"
              "nameserver 2001:db8::53\n  nameserver   192.0.2.53  \nsearch example.net\n")
    assert run(tmp_path, resolv, ["203.0.113.7"]) == sorted(
        updates("203.0.113.7", "198.51.100.53") + updates("203.0.113.7", "192.0.2.53"))
    assert "DNS to 198.51.100.53 192.0.2.53 outside every tunnel (from 203.0.113.7)" in \
        (tmp_path / "logger.log").read_text()
    # a renewed lease: another resolver and another WAN address
    assert run(tmp_path, "nameserver 192.0.2.53\n", ["203.0.113.9"]) == sorted(
        updates("203.0.113.9", "192.0.2.53") + deletes("203.0.113.7", "198.51.100.53")
        + deletes("203.0.113.7", "192.0.2.53"))
    # the same again: only updates (idempotent), nothing deleted
    assert run(tmp_path, "nameserver 192.0.2.53\n", ["203.0.113.9"]) == updates(
        "203.0.113.9", "192.0.2.53")
    # the lease lost (deconfig: no address), or no resolver: every bypass goes
    assert run(tmp_path, "nameserver 192.0.2.53\n", []) == deletes("203.0.113.9", "192.0.2.53")
    assert (tmp_path / "state").read_text().strip() == ""
    assert run(tmp_path, "", ["203.0.113.9"]) == []
