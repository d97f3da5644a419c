"""Network namespaces for the XFRM backend host tests: the real kernel, a fresh namespace each.

The host kernel has NETLINK_XFRM (policies, SPI allocation, acquires, expires) but no esp4/ah4,
so SAs with keys cannot be installed here: that path is tested in the booted guest
(tests/qemu/test_xfrm_backend.py).

Namespace layout:   lo 10.1.0.1/24 ("LAN")   wan0 192.0.2.1/24 <-veth-> wan1 192.0.2.2/24
                    route 10.2.0.0/24 via 192.0.2.2 (the "remote LAN" behind the peer)
The backend's sockets are opened inside the namespace by switching this thread into it with
setns(2) (a netlink socket stays in the namespace it was created in); commands run with `ip -n`.
"""
import ctypes
import os
import subprocess
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
LOCAL_GW, REMOTE_GW = "192.0.2.1", "192.0.2.2"
LOCAL_HOST, LOCAL_NET = "10.1.0.1", "10.1.0.0/24"
REMOTE_HOST, REMOTE_NET = "10.2.0.1", "10.2.0.0/24"
_libc = ctypes.CDLL(None, use_errno=True)


def run(*cmd, check=True):
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(cmd), proc.returncode, proc.stdout,
                                                     proc.stderr))
    return proc


def _setns(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns(%s): %s" % (path, os.strerror(err)))
    finally:
        os.close(fd)


class Namespace:
    def __init__(self, name):
        self.name = name

    def ip(self, *args, check=True):
        return run("ip", "-n", self.name, *args, check=check)

    def exec(self, *cmd, check=True):
        return run("ip", "netns", "exec", self.name, *cmd, check=check)

    @contextmanager
    def entered(self):
        """Run the block with this thread in the namespace (sockets opened here stay in it)."""
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


def netns_unavailable():
    """None, or why this machine cannot run these tests."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = "ikxprobe%d" % os.getpid()
    proc = run("ip", "netns", "add", probe, check=False)
    if proc.returncode != 0:
        return "cannot create a network namespace: " + proc.stderr.strip()
    try:
        proc = run("ip", "netns", "exec", probe, "ip", "xfrm", "policy", "list", check=False)
        if proc.returncode != 0:
            return "no NETLINK_XFRM in this kernel: " + proc.stderr.strip()
    finally:
        run("ip", "netns", "del", probe, check=False)
    return None
