"""After the tunnel is up, against charon (kernel-libipsec, so NAT-T and UDP 4500 throughout):
several quick modes over one IKE SA, deletes in both directions (informational exchange), DPD.
"""
import re
import time

import pytest

from charon import Child
from support.netns import NET_A, NET_A2, NET_B, NET_B2
from ours import connection_entry
from scenarios import CONN, PEER, charon_conn, our_config, our_ike_sa, scenario, wait_settled

CONN2 = "lan2"


def _activated_with(ours, n_sas):
    """Wait for our IKE SA in state 9 and n_sas SAs; return the status."""
    wait_settled(ours, lambda sa: sa.get("state") == 9, 20, "our IKE SA Activated")
    return ours.wait_for(lambda st: len(st["sas"]) >= n_sas, 20, "%d SAs" % n_sas)


def _charon_children_in(sas):
    return [c for sa in sas for c in sa.get("child-sas", {}).values() if c["state"] == "INSTALLED"]


def _up(ours, charon, conns=None, dpd_delay=None, children=None):
    our, their = scenario("main", "modern", pfs=True)
    conn = charon_conn(their)
    if children:
        conn.children += children
    conn.dpd_delay = dpd_delay
    charon.load([conn])
    peers, connections = our_config(our, act_as="initiator")
    ours.start(peers, connections + (conns or []))
    return our, their


def test_two_quick_modes_over_one_ike_sa(ours, charon_libipsec):
    """Two connections to the same peer: one IKE SA, two quick modes, the page counts 2."""
    extra = connection_entry(CONN2, PEER, NET_A2, NET_B2, ["aes256-sha256"], pfs="modp2048")
    _up(ours, charon_libipsec, conns=[extra],
        children=[Child(CONN2, NET_B2, NET_A2, ["aes256-sha256-modp2048"])])
    _activated_with(ours, 4)
    status = ours.wait_for(lambda st: our_ike_sa(st)["phase2_negotiations"] >= 2, 20, "2 quick modes")
    assert len([sa for sa in status["ike_sas"] if sa["state"] == 9]) == 1, status["ike_sas"]
    nets = sorted((sa["local_net"], sa["remote_net"], sa["direction"]) for sa in status["sas"])
    assert nets == sorted([(NET_A, NET_B, "incoming"), (NET_A, NET_B, "outgoing"),
                           (NET_A2, NET_B2, "incoming"), (NET_A2, NET_B2, "outgoing")])
    assert len(ours.kernel()["sas"]) == 4
    sas = charon_libipsec.wait_for(
        lambda sas: sum(len(s.get("child-sas", {})) for s in sas) == 2, 20, "charon: 2 CHILD_SAs")
    assert len(sas) == 1, "charon should see one IKE_SA carrying both: %r" % sas


def test_we_delete_the_sa_pair_charon_drops_its_child_sa(ours, charon_libipsec):
    _up(ours, charon_libipsec)
    status = _activated_with(ours, 2)
    charon_libipsec.wait_for(lambda sas: _charon_children_in(sas), 20, "charon CHILD_SA INSTALLED")
    mark = charon_libipsec.log_mark()
    ours.result({"cmd": "delete", "id": status["sas"][0]["id"]})
    charon_libipsec.wait_for(lambda sas: not _charon_children_in(sas), 20, "charon CHILD_SA gone")
    assert re.search(r"received DELETE for ESP CHILD_SA with SPI", charon_libipsec.log_since(mark))
    ours.wait_for(lambda st: not st["sas"], 10, "our SAs gone")
    assert not ours.kernel()["sas"]
    # The IKE SA stays: only the traffic tunnel was closed.
    (ike,) = charon_libipsec.list_sas()
    assert ike["state"] == "ESTABLISHED"
    assert our_ike_sa(ours.status())["state"] == 9


def test_charon_terminates_we_drop_everything(ours, charon_libipsec):
    _up(ours, charon_libipsec)
    _activated_with(ours, 2)
    charon_libipsec.swanctl("--terminate", "--ike", "ours", "--timeout", "10")
    ours.wait_for(
        lambda st: not st["sas"] and all(sa["state"] != 9 for sa in st["ike_sas"]), 20,
        "our SAs and IKE SA gone after charon's Delete")
    assert not ours.kernel()["sas"], ours.kernel()
    texts = " ".join(e["text"] for e in ours.vpn_log(200)).lower()
    assert "delete" in texts, texts[-2000:]


def test_charon_dpd_is_answered(ours, charon_libipsec):
    """charon probes with R-U-THERE every 2 s when idle; we answer, nothing is torn down."""
    _up(ours, charon_libipsec, dpd_delay="2s")
    _activated_with(ours, 2)
    mark = charon_libipsec.log_mark()
    probe = re.compile(r"generating INFORMATIONAL_V1 request \d+ \[ HASH N\(DPD\) \]")
    answer = re.compile(r"parsed INFORMATIONAL_V1 request \d+ \[ HASH N\(DPD_ACK\) \]")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        log = charon_libipsec.log_since(mark)
        if answer.search(log):
            break
        time.sleep(0.5)
    assert probe.search(log), "charon sent no R-U-THERE:\n" + log[-3000:]
    assert answer.search(log), "our R-U-THERE-ACK missing:\n" + log[-3000:]
    (ike,) = charon_libipsec.list_sas()
    assert ike["state"] == "ESTABLISHED" and _charon_children_in([ike])
    assert our_ike_sa(ours.status())["state"] == 9



@pytest.mark.parametrize("mode", ["main", "aggressive"])
def test_charon_accepts_our_phase1_responder_lifetime(ours, charon_libipsec, mode):
    """charon initiates offering its IKE lifetime (rekey_time 4 h + 10 %); ours is 3600 s: we
    keep ours and send RESPONDER-LIFETIME in message 2 (issue 15); charon goes on to quick mode."""
    our, their = scenario(mode, "modern", pfs=True)
    charon_libipsec.load([charon_conn(their)])
    peers, connections = our_config(our, act_as="responder")
    peers[0]["lifetime_s"] = 3600
    ours.start(peers, connections)
    proc = charon_libipsec.initiate(CONN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = _activated_with(ours, 2)
    sa = our_ike_sa(status)
    assert sa["lifetime_s"] == 3600 and sa["role"] == "responder", sa
    assert re.fullmatch(r"ours; the peer proposed \d+", sa["lifetime_note"]), sa
    assert int(sa["lifetime_note"].rsplit(" ", 1)[1]) > 3600, sa
    assert _charon_children_in(charon_libipsec.wait_for(
        lambda sas: _charon_children_in(sas), 20, "charon CHILD_SA INSTALLED"))
