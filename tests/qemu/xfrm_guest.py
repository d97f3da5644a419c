"""Runs INSIDE the booted guest (copied there by test_xfrm_backend.py): XfrmBackend against the
guest's real kernel, which has ESP and AH.

    python3 xfrm_guest.py SCENARIO      SCENARIO: esp | ah | esp+ah | natt | integrity | expire

Two network namespaces joined by a veth pair are the two gateways; each has a "LAN" address on
its loopback. One XfrmBackend per side (its sockets opened inside that side's namespace with
setns) installs the policies and an SA pair exactly as the daemon would after quick mode; a
ping from LAN A to LAN B must pass, and the SA counters must show it. The result is printed as
one line "RESULT {json}".
"""
import asyncio
import ctypes
import json
import os
import socket
import subprocess
import sys
from contextlib import contextmanager

from ikecore.events import ChildSa
from ikecore.settings import Connection
from ikecore.xfrm import XfrmBackend, xfrm_stat

GW_A, GW_B = "198.51.100.1", "198.51.100.2"
HOST_A, NET_A = "10.1.0.1", "10.1.0.0/24"
HOST_B, NET_B = "10.2.0.1", "10.2.0.0/24"
NS_A, NS_B = "xfrma", "xfrmb"
PINGS = 3
libc = ctypes.CDLL(None, use_errno=True)


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
        sh("ip netns del %s" % ns, check=False)
        sh("ip netns add %s && ip -n %s link set lo up" % (ns, ns))
    sh("ip link add wa netns %s type veth peer name wb netns %s" % (NS_A, NS_B))
    for ns, dev, gw, host, other_net, other_gw in ((NS_A, "wa", GW_A, HOST_A, NET_B, GW_B),
                                                  (NS_B, "wb", GW_B, HOST_B, NET_A, GW_A)):
        sh("ip -n %s addr add %s/24 dev %s && ip -n %s link set %s up" % (ns, gw, dev, ns, dev))
        sh("ip -n %s addr add %s/32 dev lo" % (ns, host))
        sh("ip -n %s route add %s via %s dev %s src %s" % (ns, other_net, other_gw, dev, host))
    with inside(NS_A):
        a = XfrmBackend()
    with inside(NS_B):
        b = XfrmBackend()
    return a, b


def teardown(a, b):
    a.close()
    b.close()
    for ns in (NS_A, NS_B):
        sh("ip netns del %s" % ns, check=False)


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
    return sh("ip netns exec %s ping -c %d -W 2 -I %s %s" % (NS_A, count, HOST_A, HOST_B),
              check=False)


def capture_start(expr):
    """tcpdump on B's WAN side, returned once it listens."""
    proc = subprocess.Popen("ip netns exec %s tcpdump -n -l -i wb %s" % (NS_B, expr), shell=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "listening on" in line:
            break
    return proc


def capture_stop(proc):
    sh("sleep 1")
    proc.terminate()
    return proc.communicate()[0]


def stats(backend):
    return dict(("%s/0x%x/%s" % k, v) for k, v in backend.sa_stats().items())


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
        cap = capture_start("-c 20 not arp")
        out = ping()
        captured = capture_stop(cap)
        result = {"ping": out, "capture": captured, "a": stats(a), "b": stats(b),
                  "a_snapshot": a.snapshot(), "xfrm_stat": xfrm_stat()}
        a.flush()
        b.flush()
        result["after_flush"] = sh("ip -n %s xfrm state; ip -n %s xfrm policy" % (NS_A, NS_A))
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
        before = xfrm_stat()
        out = ping()
        return {"ping": out, "a": stats(a), "b": stats(b), "before": before, "after": xfrm_stat()}
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


def main():
    name = sys.argv[1]
    if name in ("esp", "ah", "esp+ah"):
        result = scenario_tunnel(name)
    elif name == "natt":
        result = scenario_tunnel("esp", encap=(4500, 4500))
    elif name == "integrity":
        result = scenario_integrity()
    elif name == "expire":
        result = scenario_expire()
    else:
        raise SystemExit("unknown scenario %r" % name)
    print("RESULT " + json.dumps(result, default=str))


if __name__ == "__main__":
    main()
