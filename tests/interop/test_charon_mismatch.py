"""Every mismatch cause of the seed, against charon, in both roles: the right diagnosis in our
`last_error` and VPN log, and our negotiation state stops where the seed's table says.

Each case names the state number the seed's table predicts for the message at which the
negotiation breaks (docs/interop.md explains each one with what charon does). A failure does not
move the state (ikecore.protocol.states), so the number read once the failure is diagnosed is the stop.

charon runs with kernel-netlink here (no NAT-T, plain UDP 500): none of these cases gets as far as
installing a CHILD_SA, so the data plane does not matter, and no float to 4500 blurs the exchange.
"""
import re

import pytest

from scenarios import CONN, charon_conn, our_config, scenario, wait_failure_settled

# What the diagnosis must name for each seed cause (plain-language line; case-insensitive).
CAUSE = {
    "mode": r"mode mismatch|mismatch[^.;]*\bmode\b|(main|aggressive) mode[^.;]*(expect|mismatch)",
    "phase1-algorithm": r"algorithm|proposal",
    "psk": r"pre-shared key|\bpsk\b",
    "id": r"\bid\b|identit",
    "phase2-algorithm": r"algorithm|proposal",
    "protocol": r"protocol|\bah\b",
    "pfs": r"\bpfs\b|perfect forward secrecy",
    "network": r"network|subnet|traffic selector",
}
PHASE = {1: r"phase 1|main mode|aggressive mode|ike sa", 2: r"phase 2|quick mode"}

FQDN_OURS = ("fqdn", "ours.example")
FQDN_CHARON = ("fqdn", "charon.example")
OTHER_NET = "10.3.0.0/24"


def case(name, mode, role, cause, state, ours=None, theirs=None):
    return pytest.param(mode, role, cause, state, ours or {}, theirs or {}, id="%s-%s-%s" % (name, mode, role))


PHASE1_CASES = [
    # --- mode: one side main, the other aggressive -------------------------------------------------
    # charon (aggressive-only conn) answers main mode msgs 1-4, then refuses msg 5 with
    # AUTHENTICATION-FAILED ("none allows pre-shared key authentication using Main Mode").
    case("mode", "main", "initiator", "mode", 7, theirs={"mode": "aggressive"}),
    # charon's aggressive msg 1 reaches our main-only peer: received (1), never valid.
    case("mode", "main", "responder", "mode", 1, theirs={"mode": "aggressive"}),
    # charon (main-only) refuses our aggressive msg 1 with AUTHENTICATION-FAILED: we stay at 3.
    case("mode", "aggressive", "initiator", "mode", 3, theirs={"mode": "main"}),
    # charon's main mode msg 1 reaches our aggressive-only peer: received (1), never valid.
    case("mode", "aggressive", "responder", "mode", 1, theirs={"mode": "main"}),
    # --- phase 1 algorithms: no common proposal --------------------------------------------------
    case("p1alg", "main", "initiator", "phase1-algorithm", 3, theirs={"ike_proposal": "3des-md5-modp1024"}),
    case("p1alg", "main", "responder", "phase1-algorithm", 1, theirs={"ike_proposal": "3des-md5-modp1024"}),
    case("p1alg", "aggressive", "initiator", "phase1-algorithm", 3,
         theirs={"ike_proposal": "3des-md5-modp1024"}),
    # aggressive msg 1 carries KE for charon's group (MODP-1024): no proposal of ours matches.
    case("p1alg", "aggressive", "responder", "phase1-algorithm", 1,
         theirs={"ike_proposal": "3des-md5-modp1024"}),
    # --- pre-shared key ----------------------------------------------------------------------------
    # main: charon cannot decrypt our msg 5 ("decryption failed?") -> PAYLOAD-MALFORMED; we stay at 7.
    case("psk", "main", "initiator", "psk", 7, theirs={"psk": "not the same secret"}),
    # main: charon's msg 5 does not decrypt to valid payloads with our key: we stay at 5.
    case("psk", "main", "responder", "psk", 5, theirs={"psk": "not the same secret"}),
    # aggressive: charon's HASH_R in msg 2 does not verify: we stay at 3.
    case("psk", "aggressive", "initiator", "psk", 3, theirs={"psk": "not the same secret"}),
    # aggressive: charon cannot verify our HASH_R and gives up (its notify is encrypted with
    # keys we do not share): msg 3 never comes, we stay at 3.
    case("psk", "aggressive", "responder", "psk", 3, theirs={"psk": "not the same secret"}),
    # --- ID: charon expects / sends an FQDN where we use / expect the IPv4 address ------------------
    # main: charon finds no config for our ID in msg 5 ("no peer config found") -> AUTHENTICATION-FAILED.
    case("id", "main", "initiator", "id", 7, theirs={"remote_id": FQDN_OURS}),
    # main: charon's msg 5 decrypts but carries ID fqdn:charon.example: not valid for us, we stay at 5.
    case("id", "main", "responder", "id", 5, theirs={"local_id": FQDN_CHARON}),
    # aggressive: charon refuses our msg 1 ID with AUTHENTICATION-FAILED: we stay at 3.
    case("id", "aggressive", "initiator", "id", 3, theirs={"remote_id": FQDN_OURS}),
    # aggressive: charon's msg 1 carries an ID we do not accept: received (1), never valid.
    case("id", "aggressive", "responder", "id", 1, theirs={"local_id": FQDN_CHARON}),
]

# Phase 2 mismatches: phase 1 completes (state 9, Activated), quick mode fails, no SA appears.
PHASE2_CASES = [
    case("p2alg", "main", role, "phase2-algorithm", 9, theirs={"child_proposal": "3des-md5"})
    for role in ("initiator", "responder")
] + [
    case("protocol", "main", role, "protocol", 9, theirs={"protocol": "ah"})
    for role in ("initiator", "responder")
] + [
    case("pfs-charon-off", "main", role, "pfs", 9, theirs={"pfs": None})
    for role in ("initiator", "responder")
] + [
    case("pfs-ours-off", "main", role, "pfs", 9, ours={"pfs": None})
    for role in ("initiator", "responder")
] + [
    case("network", "main", role, "network", 9, theirs={"remote_net": OTHER_NET})
    for role in ("initiator", "responder")
] + [
    case("network", "aggressive", "initiator", "network", 9, theirs={"remote_net": OTHER_NET}),
]


def _run(ours, charon, mode, role, ours_changes, theirs_changes):
    our, their = scenario(mode, "modern", pfs=True, ours=ours_changes, theirs=theirs_changes)
    charon.load([charon_conn(their)])
    ours.start(*our_config(our, act_as=role))
    if role == "responder":
        charon.initiate_nowait(CONN)         # fails by design: do not wait for charon's verdict
    return wait_failure_settled(ours)


def _check_diagnosis(ours, sa, cause, phase):
    error = sa["last_error"]
    assert re.search(CAUSE[cause], error, re.I), "diagnosis %r does not name the %s cause" % (error, cause)
    assert re.search(PHASE[phase], error, re.I), "diagnosis %r does not say phase %d" % (error, phase)
    texts = [entry["text"] for entry in ours.vpn_log(500)]
    assert any(error in text for text in texts), \
        "last_error %r is not in the VPN log:\n%s" % (error, "\n".join(texts[-30:]))


@pytest.mark.parametrize("mode, role, cause, state, ours_changes, theirs_changes", PHASE1_CASES)
def test_phase1_mismatch(ours, charon_netlink, mode, role, cause, state, ours_changes, theirs_changes):
    status, sa = _run(ours, charon_netlink, mode, role, ours_changes, theirs_changes)
    # Our SA shows the exchange that actually ran: as responder to the wrong mode that is the
    # peer's mode (state 1 means the same in both of the seed's tables).
    theirs_mode = theirs_changes.get("mode", mode)
    assert sa["role"] == role and sa["mode"] in (mode, theirs_mode), sa
    assert sa["state"] == state, "stopped at %s, the seed's table says %d here; %r" % (sa["state"], state, sa)
    assert sa["status"] == "Negotiating", sa
    assert not status["sas"], "no SA may appear when phase 1 fails: %r" % status["sas"]
    assert not ours.kernel()["sas"]
    _check_diagnosis(ours, sa, cause, 1)


@pytest.mark.parametrize("mode, role, cause, state, ours_changes, theirs_changes", PHASE2_CASES)
def test_phase2_mismatch(ours, charon_netlink, mode, role, cause, state, ours_changes, theirs_changes):
    status, sa = _run(ours, charon_netlink, mode, role, ours_changes, theirs_changes)
    assert (sa["status"], sa["state"]) == ("Activated", 9), sa
    assert not status["sas"], "no SA may appear when quick mode fails: %r" % status["sas"]
    assert not ours.kernel()["sas"]
    assert sa["phase2_negotiations"] == 0, sa
    _check_diagnosis(ours, sa, cause, 2)
    (ike,) = charon_netlink.list_sas()
    assert ike["state"] == "ESTABLISHED" and not ike.get("child-sas"), ike


def test_unreachable_peer_main_mode_initiator(ours):
    """Nobody at the peer's address: message 1 is retransmitted until the daemon gives up (~62 s
    with the core's 2/4/8/16/32 s back-off); state stays 3 (1st msg sent)."""
    our, _ = scenario("main", "modern", pfs=True)
    peers, connections = our_config(our, act_as="initiator")
    peers[0]["remote_gateway"] = "10.99.0.3"          # on the WAN link, but no such host
    peers[0]["remote_id"] = {"type": "ipv4", "value": "10.99.0.3"}
    ours.start(peers, connections)
    status, sa = wait_failure_settled(ours, timeout_s=90)
    assert (sa["mode"], sa["role"], sa["state"]) == ("main", "initiator", 3), sa
    assert re.search(r"reach|no answer|not answer|respond", sa["last_error"], re.I), sa["last_error"]
    texts = [entry["text"] for entry in ours.vpn_log(500)]
    assert any(sa["last_error"] in text for text in texts)
