"""Runs INSIDE the booted guest (copied there by test_xfrm_backend.py): XfrmBackend against the
guest's real kernel, which has ESP and AH.

    python3 xfrm_guest.py SCENARIO...   SCENARIO: esp | ah | esp+ah | natt | integrity | expire
                                                  | daemons

Two network namespaces joined by a veth pair are the two gateways; each has a "LAN" address on
its loopback. One XfrmBackend per side (its sockets opened inside that side's namespace with
setns) installs the policies and an SA pair exactly as the daemon would after quick mode; a
ping from LAN A to LAN B must pass, and the SA counters must show it. The results are printed
as one line "RESULT {json}", keyed by scenario.
"""
import asyncio
import ctypes
import json
import os
import socket
import subprocess
import sys
import time
import traceback
from contextlib import contextmanager

from ikecore.ctl import request
from ikecore.protocol.events import ChildSa
from ikecore.protocol.settings import Connection
from ikecore.xfrm import XfrmBackend, xfrm_stat

GW_A, GW_B = "198.51.100.1", "198.51.100.2"
HOST_A, NET_A = "10.1.0.1", "10.1.0.0/24"
HOST_B, NET_B = "10.2.0.1", "10.2.0.0/24"
NS_A, NS_B = "xfrma", "xfrmb"
PINGS = 3
NS_XFRM_STAT = "/proc/thread-self/net/xfrm_stat"    # per namespace: the calling thread's
libc = ctypes.CDLL(None, use_errno=True)


def iproute2_ip():
    """iproute2's ip by full path: the shell would run busybox's applet, which has no netns/xfrm."""
    for path in ("/sbin/ip", "/usr/sbin/ip", "/usr/bin/ip", "/bin/ip"):
        if os.path.exists(path) and "busybox" not in os.path.realpath(path):
            return path
    raise SystemExit("iproute2's ip is not in this image")


IP = iproute2_ip()


def sh(cmd, check=True):
    proc = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise SystemExit("%s failed: %s%s" % (cmd, proc.stdout, proc.stderr))
    return proc.stdout + proc.stderr


@contextmanager
def inside(ns):
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    fd = os.open("/run/netns/" + ns, os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), "setns " + ns)
        yield
    finally:
        libc.setns(home, 0x40000000)
        os.close(fd)
        os.close(home)


def lab():
    for ns in (NS_A, NS_B):
        sh("%s netns del %s" % (IP, ns), check=False)
        sh("{0} netns add {1} && {0} -n {1} link set lo up".format(IP, ns))
    sh("%s link add wa netns %s type veth peer name wb netns %s" % (IP, NS_A, NS_B))
    for ns, dev, gw, host, other_net, other_gw in ((NS_A, "wa", GW_A, HOST_A, NET_B, GW_B),
                                                  (NS_B, "wb", GW_B, HOST_B, NET_A, GW_A)):
        sh("{0} -n {1} addr add {2}/24 dev {3} && {0} -n {1} link set {3} up".format(IP, ns, gw, dev))
        sh("%s -n %s addr add %s/32 dev lo" % (IP, ns, host))
        sh("%s -n %s route add %s via %s dev %s src %s" % (IP, ns, other_net, other_gw, dev, host))
    with inside(NS_A):
        a = XfrmBackend()
    with inside(NS_B):
        b = XfrmBackend()
    return a, b


def teardown(a, b):
    a.close()
    b.close()
    for ns in (NS_A, NS_B):
        sh("%s netns del %s" % (IP, ns), check=False)


def key(n):
    return os.urandom(n)


def child_pair(protocol, spi_ab, spi_ba, **kw):
    """The two ChildSa of one protocol as both daemons would get them from quick mode:
    (A's out = B's in for A->B) and (B's out = A's in for B->A)."""
    algorithms = {"esp": dict(encr="aes128", integ="sha256"), "ah": dict(encr=None, integ="sha1")}
    sizes = {"aes128": 16, "sha256": 32, "sha1": 20}
    sas = {}
    for name, spi, src, dst in (("ab", spi_ab, GW_A, GW_B), ("ba", spi_ba, GW_B, GW_A)):
        alg = algorithms[protocol]
        values = dict(id="%s-%s" % (protocol, name), connection="lan", protocol=protocol,
                      spi=spi, src=src, dst=dst, reqid=1, lifetime_s=3600, lifetime_kb=0,
                      encr=alg["encr"], encr_key=key(sizes[alg["encr"]]) if alg["encr"] else None,
                      integ=alg["integ"], integ_key=key(sizes[alg["integ"]]), encap=None)
        values.update(kw)
        sas[name] = values
    return sas


def install(a, b, protocol, **kw):
    """Policies on both sides, then the SAs of protocol ("esp", "ah", "esp+ah")."""
    a.install_policies(Connection("lan", "b", NET_A, NET_B, [], protocol=protocol), GW_A, GW_B, 1)
    b.install_policies(Connection("lan", "a", NET_B, NET_A, [], protocol=protocol), GW_B, GW_A, 1)
    spis = {}
    for n, proto in enumerate(protocol.split("+")):
        pair = child_pair(proto, 0xA000 + n, 0xB000 + n, **kw)
        a.install_sa(ChildSa(direction="out", **pair["ab"]))
        b.install_sa(ChildSa(direction="in", **pair["ab"]))
        b.install_sa(ChildSa(direction="out", **pair["ba"]))
        a.install_sa(ChildSa(direction="in", **pair["ba"]))
        spis[proto] = pair
    return spis


def ping(count=PINGS):
    return sh("%s netns exec %s ping -c %d -W 2 -I %s %s" % (IP, NS_A, count, HOST_A, HOST_B),
              check=False)


def capture_start(ns, dev, count):
    """tcpdump of the next count IPv4 packets that ns sends out of dev (what goes on the wire,
    not the decrypted packets the kernel re-injects on receive), returned once it listens.
    (-Z root: Debian's tcpdump otherwise switches to a user "tcpdump" the image does not have.)"""
    proc = subprocess.Popen("%s netns exec %s tcpdump -Z root -n -l -Q out -i %s -c %d ip"
                            % (IP, ns, dev, count), shell=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    said = []
    for line in proc.stderr:
        said.append(line)
        if "listening on" in line:
            return proc
    raise SystemExit("tcpdump did not start: " + "".join(said))


def capture_wait(proc):
    """The captured lines; a capture still short of its count after 20 s is cut off (and the
    test then shows what it got)."""
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        sh("pkill -f 'tcpdump -Z root -n -l -Q out'", check=False)
        out, _ = proc.communicate()
    return out


def stats(backend):
    """Every SA's counters from the dump; asked for one by one (GETSA, what a status page of a
    few peers does) they must be the same."""
    everything = backend.sa_stats()
    one_by_one = backend.sa_stats(keys=list(everything) + [("esp", 0xdead, "203.0.113.99")])
    if one_by_one != everything:
        raise AssertionError("sa_stats(keys) %r != dump %r" % (one_by_one, everything))
    return dict(("%s/0x%x/%s" % k, v) for k, v in everything.items())


def scenario_tunnel(protocol, encap=None):
    a, b = lab()
    try:
        udp = []
        if encap:
            # the IKE daemon's port-4500 socket: with UDP_ENCAP the kernel takes ESP-in-UDP on it
            for ns in (NS_A, NS_B):
                with inside(ns):
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    s.setsockopt(socket.IPPROTO_UDP, 100, 2)      # UDP_ENCAP, ESPINUDP
                    s.bind(("0.0.0.0", 4500))
                    udp.append(s)
        install(a, b, protocol, encap=encap)
        captures = [capture_start(NS_A, "wa", PINGS), capture_start(NS_B, "wb", PINGS)]
        out = ping()
        captured = "".join(capture_wait(cap) for cap in captures)   # requests, then replies
        result = {"ping": out, "capture": captured, "a": stats(a), "b": stats(b),
                  "a_snapshot": a.snapshot(), "xfrm_stat": xfrm_stat()}
        a.flush()
        b.flush()
        result["after_flush"] = sh("{0} -n {1} xfrm state; {0} -n {1} xfrm policy".format(IP, NS_A))
        for s in udp:
            s.close()
        return result
    finally:
        teardown(a, b)


def scenario_integrity():
    """B's inbound ESP SA gets a different integrity key than A sends with: every packet fails
    the ICV check, is dropped and counted."""
    a, b = lab()
    try:
        pairs = install(a, b, "esp")
        wrong = dict(pairs["esp"]["ab"], integ_key=key(32))
        b.delete_sa(ChildSa(direction="in", **pairs["esp"]["ab"]))
        b.install_sa(ChildSa(direction="in", **wrong))
        with inside(NS_B):                      # the counters of B's namespace
            before = xfrm_stat(NS_XFRM_STAT)
        out = ping()
        with inside(NS_B):
            after = xfrm_stat(NS_XFRM_STAT)
        return {"ping": out, "a": stats(a), "b": stats(b), "before": before, "after": after}
    finally:
        teardown(a, b)


def scenario_expire():
    """An SA with a 3 s lifetime: the kernel reports the soft expiry, then the hard one, and
    removes the SA."""
    a, b = lab()
    try:
        events = []

        async def run():
            loop = asyncio.get_running_loop()
            done = loop.create_future()

            def on_expire(protocol, spi, dst, hard):
                events.append([protocol, spi, dst, hard])
                if sum(1 for e in events if e[3]) == 2 and not done.done():   # both SAs of A
                    done.set_result(None)
            a.on_expire = on_expire
            with inside(NS_A):
                a.listen(loop)
            install(a, b, "esp", lifetime_s=3)
            await asyncio.wait_for(done, 30)
        asyncio.run(run())
        return {"events": events, "a": stats(a)}
    finally:
        teardown(a, b)


DAEMON_CONFIG = """
[general]
wan_interface = "{dev}"
lan_interface = "lo"

[[peer]]
name = "other"
remote_gateway = "{remote_gw}"
local_address = "{local_gw}"
psk = "xfrm guest test"
proposals = ["aes128-sha1-modp2048"]

[[connection]]
name = "lans"
peer = "other"
local_net = "{local_net}"
remote_net = "{remote_net}"
protocol = "{protocol}"
proposals = ["{child}"]
pfs = "modp2048"
"""


def poll(what, probe, limit=120):
    deadline = time.monotonic() + limit
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise SystemExit("gave up waiting for " + what)
        time.sleep(0.5)


def scenario_daemons(protocol="esp", child="aes128-sha256"):
    """Two ikecore daemons (--kernel=xfrm), one per gateway: the first ping makes A's kernel
    ACQUIRE, the daemons negotiate, XfrmBackend installs what the core negotiated, and the next
    pings pass; a stop removes every SA and policy of theirs."""
    a, b = lab()
    a.close()
    b.close()
    daemons = []
    try:
        sides = (("a", NS_A, "wa", GW_A, GW_B, NET_A, NET_B), ("b", NS_B, "wb", GW_B, GW_A, NET_B, NET_A))
        for name, ns, dev, local_gw, remote_gw, local_net, remote_net in sides:
            cfg = "/tmp/xfrm-%s.toml" % name
            with open(cfg, "w") as f:
                f.write(DAEMON_CONFIG.format(dev=dev, local_gw=local_gw, remote_gw=remote_gw,
                                             local_net=local_net, remote_net=remote_net,
                                             protocol=protocol, child=child))
            sock = "/tmp/xfrm-%s.sock" % name
            daemons.append((sock, subprocess.Popen(
                [IP, "netns", "exec", ns, sys.executable, "-m", "ikecore", "--config", cfg,
                 "--kernel=xfrm", "--socket", sock, "--no-syslog"],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
        for sock, _ in daemons:
            poll("control socket " + sock, lambda: os.path.exists(sock))
        trigger = ping(1)                      # dropped while the kernel waits for an SA
        status = poll("the SAs", lambda: [sa for sa in request(daemons[0][0], {"cmd": "status"})
                                          ["result"]["sas"]])
        out = ping()
        result = {"trigger": trigger, "ping": out,
                  "status_a": request(daemons[0][0], {"cmd": "status"})["result"],
                  "status_b": request(daemons[1][0], {"cmd": "status"})["result"],
                  "states_a": sh("%s -n %s xfrm state" % (IP, NS_A)), "first_sas": status}
    finally:
        for _, proc in daemons:
            proc.terminate()
        logs = [proc.communicate(timeout=60)[0] for _, proc in daemons]
        codes = [proc.returncode for _, proc in daemons]
    result.update({"exit_codes": codes, "logs": logs,
                   "after_stop": sh("{0} -n {1} xfrm state; {0} -n {1} xfrm policy; "
                                    "{0} -n {2} xfrm state; {0} -n {2} xfrm policy"
                                    .format(IP, NS_A, NS_B))})
    teardown(a, b)
    return result


SCENARIOS = {"esp": lambda: scenario_tunnel("esp"), "ah": lambda: scenario_tunnel("ah"),
             "esp+ah": lambda: scenario_tunnel("esp+ah"),
             "natt": lambda: scenario_tunnel("esp", encap=(4500, 4500)),
             "integrity": scenario_integrity, "expire": scenario_expire,
             "daemons": scenario_daemons,
             "daemons-esp+ah": lambda: scenario_daemons("esp+ah", "aes128-sha256")}


def main():
    """Every scenario named on the command line, in one process (Python starts slowly under
    TCG); a failing scenario reports its traceback and the others still run."""
    results = {}
    for name in sys.argv[1:]:
        if name not in SCENARIOS:
            raise SystemExit("unknown scenario %r (known: %s)" % (name, ", ".join(SCENARIOS)))
        try:
            results[name] = SCENARIOS[name]()
        except BaseException:
            results[name] = {"error": traceback.format_exc()}
    print("RESULT " + json.dumps(results, default=str))


if __name__ == "__main__":
    main()
