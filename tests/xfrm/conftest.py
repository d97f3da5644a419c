"""Fixtures of the XFRM host tests: a fresh network namespace per test (see xfrm_lab.py) and an
XfrmBackend whose sockets live in it."""
import os

import pytest

from xfrm_lab import (LOCAL_GW, LOCAL_HOST, REMOTE_GW, REMOTE_NET, Namespace, netns_unavailable,
                      run)

_counter = [0]


@pytest.fixture(scope="session")
def netns_ok():
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def netns(netns_ok):
    _counter[0] += 1
    ns = Namespace("ikx%d-%d" % (os.getpid(), _counter[0]))
    run("ip", "netns", "add", ns.name)
    try:
        ns.ip("link", "set", "lo", "up")
        ns.ip("addr", "add", LOCAL_HOST + "/24", "dev", "lo")
        ns.ip("link", "add", "wan0", "type", "veth", "peer", "name", "wan1")
        ns.ip("addr", "add", LOCAL_GW + "/24", "dev", "wan0")
        ns.ip("addr", "add", REMOTE_GW + "/24", "dev", "wan1")
        ns.ip("link", "set", "wan0", "up")
        ns.ip("link", "set", "wan1", "up")
        ns.ip("route", "add", REMOTE_NET, "via", REMOTE_GW, "dev", "wan0", "src", LOCAL_HOST)
        yield ns
    finally:
        run("ip", "netns", "del", ns.name, check=False)


@pytest.fixture
def backend(netns):
    from ikecore.xfrm import XfrmBackend
    with netns.entered():
        instance = XfrmBackend()
    yield instance
    instance.close()
