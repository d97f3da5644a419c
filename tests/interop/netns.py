"""Two network namespaces joined by a veth pair: the "WAN" between our daemon and its peer.

Layout (per Lab):
    <prefix>-a  ("ours")    veth a: 10.99.0.1/24   LAN addresses on lo, e.g. 10.1.0.1/24
    <prefix>-b  ("charon")  veth b: 10.99.0.2/24   LAN addresses on lo, e.g. 10.2.0.1/24

The host kernel has no `dummy` module, so a side's "LAN" is an address on its loopback: enough
for traffic selectors, and for pings between the two LAN addresses through a tunnel (the packet
is sourced from the LAN address and routed into the tunnel by the IKE daemon's routes).

Names carry the test process id so parallel runs (several engineers on one machine) never collide;
`Lab.close()` deletes everything it created and is safe to call twice.
"""
import os
import re
import subprocess

WAN_A = "10.99.0.1"
WAN_B = "10.99.0.2"
WAN_PREFIX = 24
# The "LAN" behind each side (traffic selectors), its address on the namespace's loopback.
LAN_A, NET_A = "10.1.0.1", "10.1.0.0/24"
LAN_B, NET_B = "10.2.0.1", "10.2.0.0/24"
# A second pair of networks: two connections (two quick modes) over one IKE SA.
LAN_A2, NET_A2 = "10.1.1.1", "10.1.1.0/24"
LAN_B2, NET_B2 = "10.2.1.1", "10.2.1.0/24"


class NetnsError(RuntimeError):
    pass


def run(cmd, check=True, timeout=30, input=None):
    """Run a command (list), return CompletedProcess; on failure raise with its stderr."""
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise NetnsError("command failed (%d): %s\n%s%s" % (
            proc.returncode, " ".join(cmd), proc.stdout, proc.stderr))
    return proc


def stop_process(proc, grace_s=5):
    """SIGTERM a daemon we started, SIGKILL it if it has not gone within grace_s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace_s)


def can_create_netns():
    """(ok, reason): whether this process may create network namespaces and veth pairs."""
    if os.geteuid() != 0:
        return False, "network namespaces need root"
    name = "ikprobe%d" % os.getpid()
    proc = run(["ip", "netns", "add", name], check=False)
    if proc.returncode != 0:
        return False, "ip netns add failed: " + proc.stderr.strip()
    try:
        proc = run(["ip", "-n", name, "link", "add", "pa", "type", "veth", "peer", "name", "pb"],
                   check=False)
        if proc.returncode != 0:
            return False, "veth not available: " + proc.stderr.strip()
    finally:
        run(["ip", "netns", "del", name], check=False)
    return True, ""


# A path that loses what does not fit: the WAN device's MTU lowered, and every IP fragment
# dropped before reassembly (an nftables prerouting chain at priority -450, below the kernel's
# defragmentation at -400), counted. Used by the IKE fragmentation tests.
SMALL_PATH_TABLE = "ikfrag"


def make_small_path(ns_name, dev, mtu):
    run(["ip", "-n", ns_name, "link", "set", dev, "mtu", str(mtu)])
    nft = ["ip", "netns", "exec", ns_name, "nft"]
    run(nft + ["add", "table", "ip", SMALL_PATH_TABLE])
    run(nft + ["add", "chain", "ip", SMALL_PATH_TABLE, "pre",
               "{ type filter hook prerouting priority -450 ; }"])
    run(nft + ["add", "rule", "ip", SMALL_PATH_TABLE, "pre", "ip", "frag-off", "&", "0x3fff",
               "!=", "0", "counter", "drop"])


def undo_small_path(ns_name, dev, mtu=1500):
    run(["ip", "netns", "exec", ns_name, "nft", "delete", "table", "ip", SMALL_PATH_TABLE],
        check=False)
    run(["ip", "-n", ns_name, "link", "set", dev, "mtu", str(mtu)], check=False)


def dropped_ip_fragments(ns_name):
    """How many IP fragments the small path's chain in ns_name dropped."""
    out = run(["ip", "netns", "exec", ns_name, "nft", "list", "chain", "ip", SMALL_PATH_TABLE,
               "pre"]).stdout
    return int(re.search(r"counter packets (\d+)", out).group(1))


class Namespace:
    """One network namespace; `exec_cmd(cmd)` prefixes a command to run inside it."""

    def __init__(self, name):
        self.name = name

    def exec_cmd(self, cmd):
        return ["ip", "netns", "exec", self.name] + list(cmd)

    def run(self, cmd, **kw):
        return run(self.exec_cmd(cmd), **kw)

    def add_lan_address(self, cidr):
        """Put a "LAN" address (e.g. "10.1.0.1/24") on this namespace's loopback."""
        self.run(["ip", "addr", "add", cidr, "dev", "lo"])

    def ping(self, dst, src=None, count=1, timeout_s=2):
        """True if `dst` answers a ping (sent from address `src`, if given)."""
        cmd = ["ping", "-n", "-q", "-c", str(count), "-W", str(timeout_s)]
        if src:
            cmd += ["-I", src]
        return self.run(cmd + [dst], check=False, timeout=count * timeout_s + 5).returncode == 0


class Lab:
    """Two namespaces `a` and `b` joined by veth, WAN addresses WAN_A / WAN_B."""

    def __init__(self, tag="ik"):
        base = "%s%d" % (tag, os.getpid())
        self.a = Namespace(base + "a")
        self.b = Namespace(base + "b")
        self._created = []
        try:
            self._build(base)
        except Exception:
            self.close()
            raise

    def _build(self, base):
        for ns in (self.a, self.b):
            run(["ip", "netns", "add", ns.name])
            self._created.append(ns.name)
            ns.run(["ip", "link", "set", "lo", "up"])
        # veth names are limited to 15 characters: keep them short and local to the namespace.
        self.a.run(["ip", "link", "add", "wan0", "type", "veth", "peer", "name", "wanpeer"])
        self.a.run(["ip", "link", "set", "wanpeer", "netns", self.b.name])
        self.b.run(["ip", "link", "set", "wanpeer", "name", "wan0"])
        for ns, addr in ((self.a, WAN_A), (self.b, WAN_B)):
            ns.run(["ip", "addr", "add", "%s/%d" % (addr, WAN_PREFIX), "dev", "wan0"])
            ns.run(["ip", "link", "set", "wan0", "up"])
        if not self.a.ping(WAN_B, timeout_s=2):
            raise NetnsError("veth between %s and %s does not carry pings" % (self.a.name, self.b.name))

    def close(self):
        while self._created:
            name = self._created.pop()
            # Killing what still runs inside is the caller's job (it knows its pids); deleting the
            # namespace then frees the veth pair with it.
            run(["ip", "netns", "del", name], check=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
