"""Harness: two real `python3 -m ikecore` daemons in two network namespaces joined by a veth pair.

  ns "<tag>a" 10.99.0.1/24 (veth "ika") <-----> (veth "ikb") 10.99.0.2/24 ns "<tag>b"

They talk IKE on UDP 500/4500 over the veth; SAs go to the recording kernel backend (the host
kernel has no ESP), read back with the control socket's "kernel" request. Control sockets are
filesystem paths, so the test (in the host namespace) reaches both. Namespaces and processes are
removed in fixture teardown even when a test fails. The runner and the lab are tests/support's.
"""
import sys

import pytest

from support.config import Config
from support.daemon import Daemon, wait_until  # noqa: F401  (the tests' names)
from support.netns import Lab, netns_unavailable

ADDRESS = {"a": "10.99.0.1", "b": "10.99.0.2"}
NETS = {"a": "192.168.10.0/24", "b": "192.168.20.0/24"}


def pair_config(side, act_as, psk, proposals=("aes128-sha1-modp2048",), pfs="modp2048"):
    """One side of the pair: the other side its peer (PSK, NAT-T), NETS[side] <-> NETS[other]."""
    other = "b" if side == "a" else "a"
    cfg = Config(wan_interface="ik" + side, lan_interface="lo")
    cfg.peer(other, ADDRESS[other], local_address=ADDRESS[side], act_as=act_as, psk=psk,
             proposals=proposals, nat_t=True)
    cfg.connection("%s-to-%s" % (side, other), other, NETS[side], NETS[other],
                   proposals=["aes128-sha1"], pfs=pfs)
    return cfg


@pytest.fixture
def netns_pair():
    """Two namespaces joined by veth; yields {"a": name, "b": name}; always torn down."""
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)
    with Lab("ikd") as lab:
        a, b = lab.namespace("a"), lab.namespace("b")
        lab.link(a, "ika", ADDRESS["a"] + "/24", b, "ikb", ADDRESS["b"] + "/24")
        yield {"a": a.name, "b": b.name}


def show_logs(daemons):
    """Stop the daemons, then print each one's output (pytest shows it when the test failed)."""
    for daemon in daemons:
        daemon.stop()
    for daemon in daemons:
        if daemon.process is not None:
            sys.stderr.write("---- daemon %s log ----\n%s\n" % (daemon.name, daemon.log_text()))


@pytest.fixture
def daemons(netns_pair, tmp_path):
    """Daemon objects for both sides (not started); stopped at teardown, logs shown on failure."""
    pair = {side: Daemon(tmp_path, name=side, netns=ns, address=ADDRESS[side])
            for side, ns in netns_pair.items()}
    yield pair
    show_logs(pair.values())
