"""Two ikecore daemons, RSA main mode with a 4096-bit certificate chain, across a 576-byte path
that drops IP fragments (netns.make_small_path on both veth ends): messages 5 and 6 (~1.9 kB)
only get through as IKE fragments, on UDP 500 here (no NAT: charon's test covers 4500)."""
import os

import pytest

from daemon_harness import ADDRESS, wait_until
from support.config import Config, rsa
from support.netns import dropped_ip_fragments, make_small_path
from webui_pki import Authority, cert_pem, key_pem, rsa_key

NETS = {"a": "192.168.10.0/24", "b": "192.168.20.0/24"}


@pytest.fixture(scope="module")
def pki():
    ca = Authority("Fragments CA", bits=4096)
    return ca, {side: ca.issue("%s.test" % side, key=rsa_key(4096), sans=[ADDRESS[side]])
                for side in "ab"}


def config(side, act_as, pki, workdir):
    ca, leaves = pki
    cert, key = leaves[side]
    files = {}
    for name, data in (("cert", cert_pem(cert)), ("key", key_pem(key)), ("ca", cert_pem(ca.cert))):
        files[name] = os.path.join(workdir, "%s-%s.pem" % (side, name))
        with open(files[name], "wb") as f:
            f.write(data)
        os.chmod(files[name], 0o600)
    other = "b" if side == "a" else "a"
    cfg = Config(wan_interface="ik" + side, lan_interface="lo")
    cfg.peer(other, ADDRESS[other], local_address=ADDRESS[side], act_as=act_as,
             proposals=["aes128-sha256-modp2048"], local_id=("ipv4", ADDRESS[side]),
             remote_id=("ipv4", ADDRESS[other]), **rsa(files["cert"], files["key"], files["ca"]))
    cfg.connection("%s-to-%s" % (side, other), other, NETS[side], NETS[other],
                   proposals=["aes128-sha1"], pfs="modp2048")
    return cfg


def activated(daemon):
    status = daemon.status()
    ike = [sa for sa in status["ike_sas"] if sa["status"] == "Activated"]
    return status if ike and len(status["sas"]) >= 2 else None


@pytest.mark.parametrize("initiator", ["a", "b"])
def test_rsa_4096_main_mode_between_our_daemons_over_576_bytes(daemons, netns_pair, pki,
                                                               tmp_path, initiator):
    for side, ns in netns_pair.items():
        make_small_path(ns, "ik" + side, 576)
    responder = "b" if initiator == "a" else "a"
    daemons[responder].start(config(responder, "responder", pki, str(tmp_path)))
    daemons[initiator].start(config(initiator, "initiator", pki, str(tmp_path)))
    for side in "ab":
        status = wait_until(lambda: activated(daemons[side]), "daemon %s to reach Activated" % side)
        (ike,) = status["ike_sas"]
        assert (ike["auth"], ike["role"], ike["last_error"]) == (
            "rsa", "initiator" if side == initiator else "responder", None)
        counters = status["daemon"]
        # Each sent its certificate message as fragments and reassembled the other's.
        assert counters["fragmented_messages"] == 1 and counters["fragments_sent"] >= 4, counters
        assert counters["reassembled_messages"] == 1, counters
        assert counters["fragments_dropped"] == counters["malformed_datagrams"] == 0, counters
        assert dropped_ip_fragments(netns_pair[side]) == 0     # nothing relied on IP fragments
