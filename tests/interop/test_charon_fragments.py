"""IKE fragmentation against strongSwan's charon over a 576-byte path that loses IP fragments.

Both veth ends get `ip link set mtu 576`, and both namespaces drop IP fragments before
reassembly (netns.make_small_path): a datagram larger than the path is lost, as on the many
paths that drop fragments. The certificates are a 4096-bit chain (CA and both leaves 4096-bit
RSA, made here with `cryptography`): main mode messages 5 and 6 are about 1.9 kB, so the
exchange only completes if both ends send them as IKE fragments and reassemble the other's. charon runs with `fragmentation = yes` and
`charon.fragment_size = 576`; we run with our defaults (fragmentation = "yes", 576 bytes).
"""
import os
import re
import shutil

import pytest

from webui_pki import Authority, cert_pem, key_pem, pkcs1_pem, rsa_key

from support.netns import WAN_A, WAN_B, dropped_ip_fragments, make_small_path, \
    undo_small_path
from scenarios import CONN, PEER, charon_conn, our_config, scenario, wait_settled

PATH_MTU = 576
@pytest.fixture
def small_path(lab):
    """The lab's WAN at 576 bytes with IP fragments dropped, restored afterwards (the lab is
    shared by the whole session)."""
    if shutil.which("nft") is None:
        pytest.skip("nft not installed")
    try:
        for ns in (lab.a, lab.b):
            make_small_path(ns.name, "wan0", PATH_MTU)
        yield lab
    finally:
        for ns in (lab.a, lab.b):
            undo_small_path(ns.name, "wan0")


@pytest.fixture(scope="module")
def chain():
    """A 4096-bit CA and 4096-bit leaves for both gateways (their address as subjectAltName)."""
    ca = Authority("Fragments CA", bits=4096)
    return ca, ca.issue("ours.test", key=rsa_key(4096), sans=[WAN_A]), \
        ca.issue("charon.test", key=rsa_key(4096), sans=[WAN_B])


@pytest.fixture
def charon_576(charon_slot, request):
    charon = charon_slot.get("libipsec", fragment_size=PATH_MTU)
    request.node.interop_logs = getattr(request.node, "interop_logs", []) + [charon]
    yield charon
    charon.terminate_all()


def _setup(ours, charon, chain, act_as, our_fragmentation="yes"):
    ca, (our_cert, our_key), (their_cert, their_key) = chain
    charon.add_credentials("charon.pem", cert_pem(their_cert), pkcs1_pem(their_key),
                           cert_pem(ca.cert))
    our, their = scenario("main", "modern", pfs=True)
    conn = charon_conn(their)
    conn.cert = "charon.pem"
    conn.fragmentation = "yes"
    charon.load([conn])
    files = {"cert": cert_pem(our_cert), "key": key_pem(our_key), "ca": cert_pem(ca.cert)}
    for name, data in files.items():
        path = os.path.join(ours.workdir, name + ".pem")
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o600)
    peers, conns = our_config(our, act_as=act_as)
    peer = peers[0]
    del peer["psk"]
    peer.update(auth="rsa", **dict((name, os.path.join(ours.workdir, name + ".pem")) for name in files))
    if our_fragmentation != "yes":
        peer["fragmentation"] = our_fragmentation
    ours.start(peers, conns)


@pytest.mark.parametrize("initiator", ["charon", "ours"])
def test_rsa_4096_main_mode_over_a_576_byte_path(ours, charon_576, small_path, chain, initiator):
    charon = charon_576
    _setup(ours, charon, chain, act_as="both")
    mark = charon.log_mark()
    if initiator == "charon":
        proc = charon.initiate(CONN, timeout_s=30)
        assert proc.returncode == 0, "charon's initiate failed:\n%s%s" % (proc.stdout, proc.stderr)
    else:
        ours.up(PEER)
    _, sa = wait_settled(ours, lambda sa: sa.get("state") == 9, 40, "our IKE SA Activated (9)")
    assert (sa["status"], sa["auth"], sa["last_error"]) == ("Activated", "rsa", None), sa
    assert sa["role"] == ("responder" if initiator == "charon" else "initiator")
    (ike,) = charon.wait_for(
        lambda sas: any(c.get("state") == "INSTALLED" for s in sas
                        for c in s.get("child-sas", {}).values()), 30, "charon CHILD_SA INSTALLED")
    assert ike["state"] == "ESTABLISHED" and ike["remote-id"] == WAN_A, ike
    # Both ends sent their certificate message in pieces and put the other's back together.
    log = charon.wait_log(["reassembled fragmented IKE message", "authentication of '%s' with "
                           "RSA" % WAN_A], mark)
    assert re.search(r"authentication of '%s' with RSA\S* successful" % re.escape(WAN_A), log)
    counters = ours.status()["daemon"]
    assert counters["fragmented_messages"] >= 1, counters
    assert counters["fragments_sent"] >= 4, counters           # ~1.9 kB at 508 bytes each
    assert counters["reassembled_messages"] >= 1, counters
    assert counters["fragments_dropped"] == 0, counters
    # Nothing crossed the path as IP fragments: every datagram fit in 576 bytes.
    assert dropped_ip_fragments(small_path.a.name) == dropped_ip_fragments(small_path.b.name) == 0


def test_without_fragmentation_the_same_exchange_is_lost_on_that_path(ours, charon_576,
                                                                     small_path, chain):
    """The control: with fragmentation = "no" on our side nobody may fragment, the certificate
    message is IP-fragmented, the path drops it and charon gives up."""
    charon = charon_576
    _setup(ours, charon, chain, act_as="responder", our_fragmentation="no")
    proc = charon.initiate(CONN, timeout_s=30)
    assert proc.returncode != 0
    assert dropped_ip_fragments(small_path.a.name) > 0      # charon's message 5, IP-fragmented
    counters = ours.status()["daemon"]
    assert counters["fragments_sent"] == counters["reassembled_messages"] == 0, counters
