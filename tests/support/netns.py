"""Network namespaces for tests: namespaces, veth pairs, addresses, always cleaned up.

    with Lab("ikd") as lab:                       # names carry the tag and the test's pid
        a, b = lab.namespace("a"), lab.namespace("b")
        lab.link(a, "ika", "10.99.0.1/24", b, "ikb", "10.99.0.2/24")
        a.add_lan_address("10.1.0.1/24")          # a "LAN" on the loopback
        a.ping("10.99.0.2")

`pair()` is the two-gateway WAN most tests use (interop: wan0 on both sides, WAN_A/WAN_B).
The host kernel has no `dummy` module, so a side's "LAN" is an address on its loopback: enough
for traffic selectors, and for pings between two LAN addresses through a tunnel. Names carry the
process id so parallel runs never collide; close() deletes everything created and is safe to call
twice (deleting a namespace frees its veth pairs; the processes inside are the caller's to stop).
"""
import ctypes
import os
import re
import shutil
import subprocess
from contextlib import contextmanager

from support.daemon import stop_process  # noqa: F401  (the labs' users stop their peers with it)

WAN_A = "10.99.0.1"
WAN_B = "10.99.0.2"
WAN_PREFIX = 24
# The "LAN" behind each side (traffic selectors), its address on the namespace's loopback.
LAN_A, NET_A = "10.1.0.1", "10.1.0.0/24"
LAN_B, NET_B = "10.2.0.1", "10.2.0.0/24"
# A second pair of networks: two connections (two quick modes) over one IKE SA.
LAN_A2, NET_A2 = "10.1.1.1", "10.1.1.0/24"
LAN_B2, NET_B2 = "10.2.1.1", "10.2.1.0/24"

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetnsError(RuntimeError):
    pass


def run(cmd, check=True, timeout=30, input=None):
    """Run a command (list), return CompletedProcess; on failure raise with its output."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise NetnsError("command failed (%d): %s\n%s%s" % (
            proc.returncode, " ".join(cmd), proc.stdout, proc.stderr))
    return proc


def netns_unavailable(xfrm=False):
    """None, or why this machine cannot create namespaces and veth pairs (with xfrm: or has no
    NETLINK_XFRM in them)."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    name = "ikprobe%d" % os.getpid()
    proc = run(["ip", "netns", "add", name], check=False)
    if proc.returncode != 0:
        return "ip netns add failed: " + proc.stderr.strip()
    try:
        proc = run(["ip", "-n", name, "link", "add", "pa", "type", "veth", "peer", "name", "pb"],
                   check=False)
        if proc.returncode != 0:
            return "veth not available: " + proc.stderr.strip()
        if xfrm:
            proc = run(["ip", "-n", name, "xfrm", "policy", "list"], check=False)
            if proc.returncode != 0:
                return "no NETLINK_XFRM in this kernel: " + proc.stderr.strip()
    finally:
        run(["ip", "netns", "del", name], check=False)
    return None


def can_create_netns():
    """(ok, reason): netns_unavailable() the other way round."""
    reason = netns_unavailable()
    return reason is None, reason or ""


def _setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns(%s): %s" % (path, os.strerror(err)))
    finally:
        os.close(fd)


class Namespace:
    """One network namespace, by name."""

    def __init__(self, name):
        self.name = name

    def exec_cmd(self, cmd):
        """cmd (a list) prefixed to run inside this namespace."""
        return ["ip", "netns", "exec", self.name] + list(cmd)

    def run(self, cmd, **kw):
        return run(self.exec_cmd(cmd), **kw)

    def exec(self, *cmd, check=True, **kw):
        return run(self.exec_cmd(cmd), check=check, **kw)

    def ip(self, *args, check=True, **kw):
        """`ip -n NAME args...` -> CompletedProcess."""
        return run(["ip", "-n", self.name] + list(args), check=check, **kw)

    def add_address(self, dev, cidr):
        self.ip("addr", "add", cidr, "dev", dev)

    def add_lan_address(self, cidr):
        """Put a "LAN" address (e.g. "10.1.0.1/24") on this namespace's loopback."""
        self.add_address("lo", cidr)

    def ping(self, dst, src=None, count=1, timeout_s=2):
        """True if `dst` answers a ping (sent from address `src`, if given)."""
        cmd = ["ping", "-n", "-q", "-c", str(count), "-W", str(timeout_s)]
        if src:
            cmd += ["-I", src]
        return self.run(cmd + [dst], check=False, timeout=count * timeout_s + 5).returncode == 0

    @contextmanager
    def entered(self):
        """Run the block with this thread in the namespace (sockets opened there stay in it)."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            _setns("/run/netns/%s" % self.name)
            try:
                yield self
            finally:
                if _libc.setns(home, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back to the test's namespace failed")
        finally:
            os.close(home)

    def __str__(self):
        return self.name


class Lab:
    """Namespaces named TAG<pid>SUFFIX, veth pairs between them; close() removes them all."""

    def __init__(self, tag="ik"):
        self.base = "%s%d" % (tag, os.getpid())
        self._created = []

    def namespace(self, suffix):
        """A fresh namespace (one left by a killed run with a recycled pid is deleted first),
        its loopback up."""
        ns = Namespace(self.base + suffix)
        run(["ip", "netns", "del", ns.name], check=False)
        run(["ip", "netns", "add", ns.name])
        self._created.append(ns.name)
        ns.ip("link", "set", "lo", "up")
        return ns

    def link(self, a, dev_a, addr_a, b, dev_b, addr_b):
        """A veth pair, dev_a in namespace a, dev_b in b (they may be the same namespace and the
        same name in two), addresses given as CIDR (or None), both up."""
        # Created inside a with a temporary peer name, then moved: device names are per namespace.
        a.ip("link", "add", dev_a, "type", "veth", "peer", "name", "ikpeer%d" % os.getpid())
        a.ip("link", "set", "ikpeer%d" % os.getpid(), "netns", b.name)
        b.ip("link", "set", "ikpeer%d" % os.getpid(), "name", dev_b)
        for ns, dev, addr in ((a, dev_a, addr_a), (b, dev_b, addr_b)):
            if addr:
                ns.add_address(dev, addr)
            ns.ip("link", "set", dev, "up")

    def close(self):
        while self._created:
            run(["ip", "netns", "del", self._created.pop()], check=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def pair(tag="ik", devices=("wan0", "wan0"), addresses=(WAN_A, WAN_B), prefix=WAN_PREFIX):
    """A Lab with namespaces `a` and `b` (lab.a, lab.b) joined by veth, checked with a ping."""
    lab = Lab(tag)
    try:
        lab.a, lab.b = lab.namespace("a"), lab.namespace("b")
        lab.link(lab.a, devices[0], "%s/%d" % (addresses[0], prefix),
                 lab.b, devices[1], "%s/%d" % (addresses[1], prefix))
        if not lab.a.ping(addresses[1], timeout_s=2):
            raise NetnsError("veth between %s and %s does not carry pings" % (lab.a.name,
                                                                               lab.b.name))
    except Exception:
        lab.close()
        raise
    return lab


# A path that loses what does not fit: the WAN device's MTU lowered, and every IP fragment
# dropped before reassembly (an nftables prerouting chain at priority -450, below the kernel's
# defragmentation at -400), counted. Used by the IKE fragmentation tests.
SMALL_PATH_TABLE = "ikfrag"


def make_small_path(ns_name, dev, mtu):
    ns_name = str(ns_name)
    run(["ip", "-n", ns_name, "link", "set", dev, "mtu", str(mtu)])
    nft = ["ip", "netns", "exec", ns_name, "nft"]
    run(nft + ["add", "table", "ip", SMALL_PATH_TABLE])
    run(nft + ["add", "chain", "ip", SMALL_PATH_TABLE, "pre",
               "{ type filter hook prerouting priority -450 ; }"])
    run(nft + ["add", "rule", "ip", SMALL_PATH_TABLE, "pre", "ip", "frag-off", "&", "0x3fff",
               "!=", "0", "counter", "drop"])


def undo_small_path(ns_name, dev, mtu=1500):
    ns_name = str(ns_name)
    run(["ip", "netns", "exec", ns_name, "nft", "delete", "table", "ip", SMALL_PATH_TABLE],
        check=False)
    run(["ip", "-n", ns_name, "link", "set", dev, "mtu", str(mtu)], check=False)


def dropped_ip_fragments(ns_name):
    """How many IP fragments the small path's chain in ns_name dropped."""
    out = run(["ip", "netns", "exec", str(ns_name), "nft", "list", "chain", "ip", SMALL_PATH_TABLE,
               "pre"]).stdout
    return int(re.search(r"counter packets (\d+)", out).group(1))
