"""Fixtures of the XFRM host tests: a fresh network namespace per test (see xfrm_lab.py) and an
XfrmBackend whose sockets live in it."""
import pytest

from support.netns import Lab, netns_unavailable
from xfrm_lab import LOCAL_GW, LOCAL_HOST, REMOTE_GW, REMOTE_NET

_counter = [0]


@pytest.fixture(scope="session")
def netns_ok():
    reason = netns_unavailable(xfrm=True)
    if reason:
        pytest.skip(reason)


@pytest.fixture
def netns(netns_ok):
    _counter[0] += 1
    with Lab("ikx") as lab:
        ns = lab.namespace("-%d" % _counter[0])
        ns.add_lan_address(LOCAL_HOST + "/24")
        lab.link(ns, "wan0", LOCAL_GW + "/24", ns, "wan1", REMOTE_GW + "/24")
        ns.ip("route", "add", REMOTE_NET, "via", REMOTE_GW, "dev", "wan0", "src", LOCAL_HOST)
        yield ns


@pytest.fixture
def backend(netns):
    from ikecore.xfrm import XfrmBackend
    with netns.entered():
        instance = XfrmBackend()
    yield instance
    instance.close()
