"""Two booted routers with a tunnel between their LANs: the helpers of tests/qemu/test_tunnel_*.py
and tests/bench/bench_tunnel.py.

Builds on the image engineer's launcher (qemu/router.py: start_pair, SITES): site A (LAN 10.1.0.0/24,
WAN 192.0.2.1) and site B (LAN 10.2.0.0/24, WAN 192.0.2.2), each with a LAN host in network
namespace "lanhost" inside its guest. Everything here runs in the guests over the serial console:

    a, b = boot_sites(workdir)          # Site objects, ISP route set, daemons stopped
    configure(a, b, Scenario(protocol="ah"))   # both ikecore.toml written, daemons (re)started
    a.ping_until_up(b)                  # first packet triggers ACQUIRE; loss allowed until it is up
    a.status()                          # `ikectl status --json` (DESIGN.md's status data)

Scenarios are switched by rewriting the configuration and restarting the daemons (a restart
flushes the daemon's SAs and policies), never by rebooting.
"""
import json
import re
import shlex
import time

from router import SITES, BootError, default_images, start_pair  # noqa: F401
from support.config import Config

CONFIG_PATH = "/etc/ikecore/ikecore.toml"
# iproute2's ip by full path: a busybox shell would run its own `ip` applet (no netns, no xfrm)
# whatever PATH says (the image's /bin/sh is dash since bd997b6, this keeps it independent of that)
IP = "/bin/ip"
# the daemon's PID(s) (busybox has no pgrep): its command line from S40ikecore
# (the supervisor's own command line holds it too, after "ikecore-respawn ikecore")
DAEMON_PIDS = "ps -o pid,args | awk '$2 ~ /python3$/ && $3 == \"-m\" && $4 == \"ikecore\" {print $1}'"
PSK = "e2e shared secret 7f3a9c"                  # test-only key, identical on both sites
PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")


class Scenario:
    """What both sites are configured with; everything else is DESIGN.md's defaults."""

    def __init__(self, protocol="esp", child_proposals=None, pfs="modp2048", lifetime_s=3600,
                 phase1_mode="main", ike_proposals=("aes128-sha1-modp2048",), nat_t=True,
                 networks=None, psk=PSK):
        # networks: {site's WAN address: (local_net, remote_net)}, each a network or a list;
        # a site not in it tunnels its lan_net to the other's
        self.networks = networks or {}
        self.protocol = protocol
        self.child_proposals = child_proposals or (["sha1"] if protocol == "ah" else ["aes128-sha1"])
        self.pfs = pfs
        self.lifetime_s = lifetime_s
        self.phase1_mode = phase1_mode
        self.ike_proposals = list(ike_proposals)
        self.nat_t = nat_t
        self.psk = psk

    def key(self):
        return repr(sorted(vars(self).items()))

    def toml(self, local, remote, remote_gateway=None, remote_id=None, local_id=None,
             peer="site", connection="lan-lan", peer_keys=None):
        """ikecore.toml of the site `local` (a SITES entry) toward `remote`. Behind a NAT the
        peer is reached at the NAT's address (remote_gateway) and names itself by its own
        address (remote_id). remote_gateway="%any": a hub's dynamic peer, told apart by
        remote_id (a (type, value) pair; an address alone means ipv4) and only responding
        (the daemon's default for it); local_id likewise, for the branch that names itself.
        peer_keys: more keys of the [[peer]] (dpd, lifetime_s, ...)."""
        gateway = remote_gateway or remote["wan"]
        local_net, remote_net = self.networks.get(local["wan"], (local["lan_net"], remote["lan_net"]))
        cfg = Config(wan_interface="eth0", lan_interface="lan0")
        cfg.peer(peer, gateway, phase1_mode=self.phase1_mode,
                 act_as=None if gateway == "%any" else "both", auth="psk", psk=self.psk,
                 proposals=self.ike_proposals, nat_t=self.nat_t, local_id=_identity(local_id),
                 remote_id=_identity(remote_id), **(peer_keys or {}))
        cfg.connection(connection, peer, local_net, remote_net, protocol=self.protocol,
                       proposals=self.child_proposals, pfs=self.pfs, lifetime_s=self.lifetime_s)
        return "# written by tests/qemu/e2e.py\n" + cfg.text()


def _identity(identity):
    return ("ipv4", identity) if isinstance(identity, str) else identity


class Site:
    """One booted router plus what the tunnel tests ask of it."""

    def __init__(self, router):
        self.router = router
        self.name = router.name
        self.site = router.site                 # SITES entry: wan, lan_net, lan_router, lan_host
        self.scenario = None                    # what configure() last set up (its key)

    # -- plain commands -------------------------------------------------------------------------
    def run(self, cmd, timeout=60):
        return self.router.run(cmd, timeout=timeout)

    def check(self, cmd, timeout=60):
        return self.router.check(cmd, timeout=timeout)

    def lan(self, cmd, timeout=60):
        """A command on this site's LAN host (network namespace "lanhost"); returns Result."""
        return self.run(f"{IP} netns exec lanhost {cmd}", timeout=timeout)

    # -- daemon ---------------------------------------------------------------------------------
    def daemon_pid(self):
        out = self.run(DAEMON_PIDS).output.split()
        return int(out[0]) if out else None

    def stop_daemon(self):
        """Stop the supervisor and the daemon and wait until the daemon has flushed and exited."""
        self.run("/etc/init.d/S40ikecore stop")
        self.check(f"i=0; while [ -n \"$({DAEMON_PIDS})\" ]; do i=$((i+1)); "
                   f"[ $i -gt 100 ] && exit 1; sleep 0.2; done", timeout=40)

    def start_daemon(self):
        self.check("/etc/init.d/S40ikecore start")

    def wait_daemon(self, timeout=90):
        """Until the control socket answers (the daemon has imported, flushed, bound)."""
        self.check(f"i=0; until ikectl status >/dev/null 2>&1; do i=$((i+1)); "
                   f"[ $i -gt {timeout} ] && exit 1; sleep 1; done", timeout=timeout * 3)

    def write_config(self, text):
        self.check(f"cat > {CONFIG_PATH} <<'IKECORE_EOF'\n{text}IKECORE_EOF\n")

    def status(self):
        out = self.check("ikectl status --json 2>&1")
        return json.loads(out[out.index("{"):])

    def sas(self, direction=None):
        sas = self.status()["sas"]
        return [s for s in sas if direction is None or s["direction"] == direction]

    def ikectl(self, args):
        return self.check(f"ikectl {args}")

    # -- traffic --------------------------------------------------------------------------------
    def ping(self, dst, count=5, size=56, interval=None, wait_s=2, timeout=None):
        """Ping from the LAN host; returns (sent, received, received sequence numbers, output)."""
        opts = f"-c {count} -s {size} -W {wait_s}" + (f" -i {interval}" if interval else "")
        res = self.lan(f"ping {opts} {dst}", timeout=timeout or count * (wait_s + 2) + 30)
        return parse_ping(res.output)

    def ping_until_up(self, other, attempts=30):
        """Ping the other site's LAN host one packet at a time until one comes back: the first
        one(s) start the negotiation (kernel ACQUIRE) and may be dropped meanwhile."""
        dst = other.site["lan_host"]
        out = self.check(f"i=0; until {IP} netns exec lanhost ping -c 1 -W 2 {dst} >/dev/null; do "
                         f"i=$((i+1)); [ $i -ge {attempts} ] && exit 1; done; echo tries=$i",
                         timeout=attempts * 5 + 30)
        return int(out.split("tries=")[1].split()[0]) + 1

    # -- evidence for failures ------------------------------------------------------------------
    def diagnostics(self):
        parts = []
        for cmd in ("logread | grep -E 'ikecore|respawn' | tail -n 40", f"{IP} xfrm state",
                    f"{IP} xfrm policy", "ikectl status 2>&1"):
            try:
                res = self.run(cmd, timeout=30)
                parts.append(f"--- {self.name}: {cmd}\n{res.output.rstrip()}")
            except Exception as exc:  # noqa: BLE001 - a dead guest must not hide the first error
                parts.append(f"--- {self.name}: {cmd}: {exc}")
        return "\n".join(parts)


def show_after_failure(request, diagnostics):
    """For an autouse fixture around each test: if the test failed, print diagnostics() (the
    guests' logs and kernel state) to the terminal past pytest's capture. A generator: yield from it."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed > failed_before:
        text = diagnostics()
        capture = request.config.pluginmanager.getplugin("capturemanager")
        with capture.global_and_fixture_disabled():
            print(f"\n===== guests after {request.node.name} =====\n{text}\n", flush=True)
        return True
    return False


def parse_ping(output):
    """busybox ping output -> (sent, received, [received seq numbers], output)."""
    m = PING_SUMMARY.search(output)
    sent, received = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    seqs = [int(s) for s in re.findall(r"bytes from [\d.]+: (?:icmp_)?seq=(\d+)", output)]
    return sent, received, seqs, output


def ping_while_watching(sender, receiver, watcher, watch_script, count=160, interval=0.5):
    """`count` pings from sender's LAN host to receiver's, `interval` apart, in the background,
    while `watch_script` (Python, with {seconds} to fill in) runs on `watcher` for as long and
    prints one JSON line. Returns (parse_ping(...) of the pings, that JSON value)."""
    sender.check(f"{IP} netns exec lanhost ping -c {count} -i {interval} -W 2 {receiver.site['lan_host']} "
                 ">/tmp/watched.ping 2>&1 & echo $! >/tmp/watched.pid")
    seconds = count * interval + 2
    watch = watcher.check("python3 -c " + shell_quote(watch_script.format(seconds=seconds)),
                          timeout=seconds + 120)
    sender.check("i=0; while kill -0 $(cat /tmp/watched.pid) 2>/dev/null; do i=$((i+1)); "
                 "[ $i -gt 60 ] && exit 1; sleep 1; done", timeout=90)
    return parse_ping(sender.check("cat /tmp/watched.ping")), json.loads(watch.strip().splitlines()[-1])


# -- what crosses the wire ------------------------------------------------------------------------
# IKE itself (UDP 500, NAT-T 4500 with the non-ESP marker, keepalives) may cross the WAN at any time
# (DPD, rekeys): the seed's firewall notes expect it there. Everything else must be ESP/AH.
IKE_LINE = re.compile(r"\.(500|4500|1500|1501) > [\d.]+\.(500|4500|1500|1501): "
                      r"(isakmp|NONESP-encap|isakmp-nat-keep-alive)")


def without_ike(lines):
    return [l for l in lines if not IKE_LINE.search(l)]


def one(items, what):
    assert len(items) == 1, f"expected one {what}, got {items}"
    return items[0]


CAPTURE = ("tcpdump -n -l -i {iface} {filter} >/tmp/{name}.cap 2>/tmp/{name}.err & "
           "echo $! >/tmp/{name}.pid; i=0; until grep -q listening /tmp/{name}.err; do "
           "i=$((i+1)); [ $i -gt 50 ] && exit 1; sleep 0.2; done")


def capture_start(site, name, iface, filter_=""):
    site.check(CAPTURE.format(name=name, iface=iface, filter=filter_))


def capture_stop(site, name):
    """Stop the capture; return its lines."""
    site.run(f"sleep 1; kill $(cat /tmp/{name}.pid); sleep 0.5")
    return [l for l in site.check(f"cat /tmp/{name}.cap; rm -f /tmp/{name}.*").splitlines() if l]


def boot_sites(workdir, images=None, timeout=300, rootfs=None, system_disks=None):
    """Boot both routers; give each WAN the route an ISP would (default via the other gateway);
    stop the daemons (configure() starts them with a test configuration). rootfs: {"b": file}
    boots a site from another root filesystem in images (the strongSwan test image);
    system_disks: {"a": path} boots a site from an A/B system disk (start_pair)."""
    a, b = (Site(r) for r in start_pair(images or default_images(), str(workdir), timeout=timeout,
                                        rootfs=rootfs, system_disks=system_disks))
    try:
        for here, there in ((a, b), (b, a)):
            isp_route(here, there)
            here.stop_daemon()
    except Exception:
        stop_sites(a, b)
        raise
    return a, b


def isp_route(here, there):
    """What the test network gives a site, again at every boot: its LAN host checked, the default
    route via the other gateway, short UDP conntrack timeouts."""
    check_lan_host(here)
    here.check(f"{IP} route replace default via {there.site['wan']} dev eth0")
    short_udp_conntrack(here)


def check_lan_host(site):
    """S20network makes the LAN host from ikecore.lanhost= at boot; say so plainly when it did not."""
    res = site.run(f"{IP} -n lanhost addr show eth0")
    if site.site["lan_host"] not in res.output:
        raise RuntimeError(f"{site.name}: no LAN host {site.site['lan_host']} in netns lanhost "
                           f"(S20network, ikecore.lanhost=): {res.output.strip()}")


def stop_sites(*sites):
    for s in sites:
        s.router.stop()


def configure(a, b, scenario, a_behind_nat=False):
    """Both sites get `scenario`; the daemons restart on it (old SAs flushed). a_behind_nat: B
    reaches A at NAT_PUBLIC (see nat_in_front_of)."""
    for s in (a, b):
        s.stop_daemon()
    for here, there in ((a, b), (b, a)):
        if a_behind_nat and here is b:
            text = scenario.toml(here.site, there.site, NAT_PUBLIC, there.site["wan"])
        else:
            text = scenario.toml(here.site, there.site)
        here.write_config(text)
        here.start_daemon()
    for s in (a, b):
        s.wait_daemon()
    a.scenario = b.scenario = scenario.key()


# -- a masquerading NAT between the sites ------------------------------------------------------------
# Site A's own WAN traffic toward B leaves through a source NAT to NAT_PUBLIC with other ports, as
# if A sat behind a home router: B sees IKE from NAT_PUBLIC:1500 and NAT-T from NAT_PUBLIC:1501;
# conntrack maps the answers back. (A third VM would show the same packets on B's wire.)
NAT_PUBLIC = "192.0.2.100"
NAT_TABLE = """table ip e2e_nat {{
    chain pre {{ type nat hook prerouting priority dstnat; }}
    chain post {{
        type nat hook postrouting priority srcnat - 1;
        oifname "eth0" ip saddr {wan} ip daddr {peer} udp sport 500 snat to {pub}:1500
        oifname "eth0" ip saddr {wan} ip daddr {peer} udp sport 4500 snat to {pub}:1501
        oifname "eth0" ip saddr {wan} ip daddr {peer} snat to {pub}
    }}
}}
"""
# UDP conntrack entries from earlier scenarios would keep their old (un-NATed) mapping: short
# timeouts outside the NAT scenario let them expire between scenarios.
UDP_TIMEOUTS = "net.netfilter.nf_conntrack_udp_timeout={} net.netfilter.nf_conntrack_udp_timeout_stream={}"


def short_udp_conntrack(site, seconds=2):
    site.check("sysctl -q -w " + UDP_TIMEOUTS.format(seconds, seconds))


def nat_in_front_of(a, b):
    """Put A behind the NAT (call with both daemons stopped)."""
    time.sleep(3)                                   # earlier UDP conntrack entries expire
    a.check("sysctl -q -w " + UDP_TIMEOUTS.format(30, 120))
    rules = NAT_TABLE.format(wan=a.site["wan"], peer=b.site["wan"], pub=NAT_PUBLIC)
    a.check(f"nft -f - <<'NFT_EOF'\n{rules}NFT_EOF\n{IP} addr add {NAT_PUBLIC}/32 dev eth0")


def remove_nat(a):
    a.run(f"nft delete table ip e2e_nat; {IP} addr del {NAT_PUBLIC}/32 dev eth0")
    short_udp_conntrack(a)


def shell_quote(text):
    return shlex.quote(text)
