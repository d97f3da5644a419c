"""Fixtures for host interop: two network namespaces, strongSwan's charon, our daemon.

Lab layout (one per test session):
    namespace a "ours":   wan0 10.99.0.1/24, LAN 10.1.0.1/24 on lo
    namespace b "charon": wan0 10.99.0.2/24, LAN 10.2.0.1/24 on lo

Only one charon may own UDP 500 in namespace b, so `charon_b(data_plane)` keeps one running and
restarts it only when a test asks for the other data plane; tests reload its connections instead of
restarting it. Every test that fails gets the charon log tail (and our daemon's log) in its report.
"""
import os
import shutil
import tempfile

import pytest

from charon import CHARON, Charon
from ours import OurDaemon
from support import netns


def _interop_skip_reason():
    if not os.path.exists(CHARON) or not shutil.which("swanctl"):
        return "strongSwan charon/swanctl not installed (make deps installs them)"
    ok, reason = netns.can_create_netns()
    if not ok:
        return "cannot create network namespaces here: " + reason
    return None


@pytest.fixture(scope="session")
def interop_workdir():
    path = tempfile.mkdtemp(prefix="ikecore-interop-")
    yield path
    if os.environ.get("IKECORE_KEEP_INTEROP") != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def lab():
    reason = _interop_skip_reason()
    if reason:
        pytest.skip(reason)
    lab = netns.pair("ik")
    try:
        for ns, addrs in ((lab.a, (netns.LAN_A, netns.LAN_A2)), (lab.b, (netns.LAN_B, netns.LAN_B2))):
            for addr in addrs:
                ns.add_lan_address(addr + "/24")
        yield lab
    finally:
        lab.close()


class CharonSlot:
    """The one charon of namespace b; get(data_plane) starts or swaps it."""

    def __init__(self, lab, workdir):
        self.lab = lab
        self.workdir = workdir
        self.current = None
        self.count = 0

    def get(self, data_plane, fragment_size=None):
        if self.current is not None and self.current.data_plane == data_plane \
                and self.current.fragment_size == fragment_size \
                and self.current.proc is not None and self.current.proc.poll() is None:
            self.current.terminate_all()
            return self.current
        self.close()
        self.count += 1
        workdir = os.path.join(self.workdir, "charon-b-%d-%s" % (self.count, data_plane))
        self.current = Charon(self.lab.b, workdir, data_plane,
                              fragment_size=fragment_size).start()
        return self.current

    def close(self):
        if self.current is not None:
            self.current.stop()
            self.current = None


@pytest.fixture(scope="session")
def charon_slot(lab, interop_workdir):
    slot = CharonSlot(lab, interop_workdir)
    yield slot
    slot.close()


@pytest.fixture
def charon_libipsec(charon_slot, request):
    """charon in namespace b with kernel-libipsec (full tunnels; always NAT-T)."""
    charon = charon_slot.get("libipsec")
    request.node.interop_logs = getattr(request.node, "interop_logs", []) + [charon]
    yield charon
    charon.terminate_all()


@pytest.fixture
def charon_netlink(charon_slot, request):
    """charon in namespace b with kernel-netlink (IKE SA + quick mode negotiated; install fails)."""
    charon = charon_slot.get("netlink")
    request.node.interop_logs = getattr(request.node, "interop_logs", []) + [charon]
    yield charon
    charon.terminate_all()


_ours_count = [0]


@pytest.fixture
def ours(lab, interop_workdir, request):
    """Our daemon in namespace a (not started: tests call ours.start(peers, connections))."""
    # Short directory names: the control socket path must fit AF_UNIX's 108 bytes.
    _ours_count[0] += 1
    workdir = os.path.join(interop_workdir, "ours%d" % _ours_count[0])
    daemon = OurDaemon(lab.a, workdir)
    with open(os.path.join(workdir, "TEST"), "w") as f:
        f.write(request.node.nodeid + "\n")
    request.node.interop_logs = getattr(request.node, "interop_logs", []) + [daemon]
    yield daemon
    daemon.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the log tails of the peers a failed test used to its report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for peer in getattr(item, "interop_logs", []):
            try:
                rep.sections.append(("peer log: %s" % peer.log_path, peer.log_tail(80)))
            except Exception as exc:  # a broken log must not hide the real failure
                rep.sections.append(("peer log", "unreadable: %r" % exc))
