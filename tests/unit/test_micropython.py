"""The portable core under a REAL MicroPython (the WebAssembly port, pinned in
tests/micropython/package-lock.json, run by node): its answers must equal CPython's.

`make test` installs node/npm (mk/micropython.mk) and runs `npm ci` there first."""
import json
import os
import shutil
import subprocess
import time

import pytest

from ikecore.protocol import codec, crypto, keymat, proposals
from ikecore.crypto_cryptography import CryptographyProvider
from support.micropython import HARNESS, harness_missing, run_micropython

C = CryptographyProvider()
H = bytes.fromhex


def _node():
    """node, the harness installed: a missing harness fails the test (it is part of `make test`)."""
    missing = harness_missing()
    if missing:
        pytest.fail(missing)
    return shutil.which("node")


@pytest.fixture(scope="module")
def core_run(tmp_path_factory):
    """One MicroPython run of check_core.py (shared by the tests below: node start-up ~1 s)."""
    dh_private, dh_public = C.dh_new("modp2048")
    p = crypto.modp_prime("modp2048")
    inputs = {
        "psk": "correct horse battery staple",
        "ni": "11" * 16 + "22" * 16, "nr": "33" * 20,
        "cky_i": "0102030405060708", "cky_r": "a1a2a3a4a5a6a7a8",
        "g_xi": "44" * 256, "g_xr": "55" * 256, "g_xy": "66" * 255 + "01",
        "last_block": "77" * 16, "mid": 0x7F00AB01, "spi": "c1a2b3d4",
        "dh_peer_public": dh_public.hex(),
        "modexp_p": p.to_bytes(256, "big").hex(),
        "exp256": C.random(32).hex(), "exp2048": C.random(256).hex(),
    }
    result = run_micropython("check_core.py", inputs)
    return inputs, result, dh_private


def test_every_portable_module_imports_under_micropython(tmp_path):
    out = run_micropython("import_all.py", {})
    assert "crypto" in out and "keymat" in out
    failed = dict((name, error) for name, error in out.items() if error is not None)
    assert not failed, "portable modules that MicroPython cannot import: %r" % failed


def test_codec_round_trips_under_micropython(core_run):
    inputs, out, _ = core_run
    assert out["codec_round_trip"] is True
    assert out["codec_proposal"] == "aes128-sha256-modp2048"
    # The bytes MicroPython encoded are what CPython encodes from the same objects.
    ike = proposals.parse_ike("aes128-sha256-modp2048")
    sa = codec.SaPayload([codec.Proposal(1, proposals.PROTO_ISAKMP, b"", [
        codec.Transform(1, proposals.KEY_IKE, proposals.ike_attributes(ike, "psk", 28800))])])
    msg = codec.Message(2, H(inputs["cky_i"]), bytes(8),
                        payloads=[sa, codec.NoncePayload(H(inputs["ni"]))])
    assert out["codec_wire"] == codec.encode_message(msg).hex()


def test_fragments_split_and_reassemble_under_micropython(core_run):
    from ikecore.protocol import fragments
    inputs, out, _ = core_run
    big = codec.encode_message(codec.Message(2, H(inputs["cky_i"]), H(inputs["cky_r"]), payloads=[
        codec.VendorPayload(H(inputs["ni"]) * 64)]))
    assert out["fragments_wire"] == [d.hex() for d in fragments.split(big, 576, False)]
    assert out["fragments_reassembled"] == [True]   # reversed; the repeated fragment 1 then waits
    assert out["fragments_counters"]["reassembled_messages"] == 1
    assert out["fragments_counters"]["fragments_received"] == len(out["fragments_wire"]) + 1


def test_keymat_under_micropython_equals_cpython(core_run):
    i, out, _ = core_run
    g = lambda name: H(i[name])   # noqa: E731
    k = keymat.derive_phase1(C, "sha256", "aes128", "psk", g("g_xy"), g("ni"), g("nr"), g("cky_i"),
                             g("cky_r"), g("g_xi"), g("g_xr"), psk=i["psk"].encode())
    for name in ("skeyid", "skeyid_d", "skeyid_a", "skeyid_e", "enc_key", "iv"):
        assert out[name] == getattr(k, name).hex(), name
    assert out["hash_i"] == keymat.hash_i(C, "sha256", k.skeyid, g("g_xi"), g("g_xr"), g("cky_i"),
                                          g("cky_r"), b"SAi_b", b"IDii_b").hex()
    assert out["hash_r"] == keymat.hash_r(C, "sha256", k.skeyid, g("g_xi"), g("g_xr"), g("cky_i"),
                                          g("cky_r"), b"SAi_b", b"IDir_b").hex()
    assert out["phase2_iv"] == keymat.phase2_iv(C, "sha256", "aes128", g("last_block"), i["mid"]).hex()
    assert out["qm_hash3"] == keymat.qm_hash3(C, "sha256", k.skeyid_a, i["mid"], g("ni"), g("nr")).hex()
    assert out["keymat_pfs"] == keymat.keymat(C, "sha256", k.skeyid_d, 3, g("spi"), g("ni"), g("nr"),
                                              48, g_qm_xy=g("g_xy")).hex()


def test_modp2048_agrees_between_micropython_and_cryptography(core_run):
    _, out, dh_private = core_run
    assert len(H(out["dh_public"])) == 256
    assert out["dh_shared"] == C.dh_shared("modp2048", dh_private, H(out["dh_public"])).hex()


def test_modexp_timing_micropython_vs_cpython(core_run):
    """A measurement, printed (pytest -s), never asserted on time: one 2048-bit modexp."""
    i, out, _ = core_run
    p = int(i["modexp_p"], 16)
    for label, exp in (("256bit_exp", i["exp256"]), ("2048bit_exp", i["exp2048"])):
        start = time.perf_counter()
        value = pow(2, int(exp, 16), p)
        cpython_ms = (time.perf_counter() - start) * 1000
        assert out["modexp_%s_result" % label] == "%x" % value
        print("\n2048-bit modexp, %s: MicroPython wasm %d ms, CPython %.2f ms"
              % (label, out["modexp_%s_ms" % label], cpython_ms))


@pytest.fixture(scope="module")
def handshakes(tmp_path_factory):
    """One MicroPython run of handshake.py with three negotiations between two IkeCore instances."""
    return run_micropython("handshake.py", {
        "ike": "aes128-sha256-modp2048", "esp": "aes128-sha256", "pfs": "modp2048",
        "scenarios": [
            {"name": "main", "mode": "main", "psk_a": "correct horse", "psk_b": "correct horse"},
            {"name": "aggressive", "mode": "aggressive", "psk_a": "battery", "psk_b": "battery"},
            {"name": "wrong_psk", "mode": "main", "psk_a": "staple", "psk_b": "stable"},
            {"name": "all_traffic", "mode": "main", "psk_a": "hub", "psk_b": "hub",
             "nets_a": ["10.1.0.0/24", "10.1.1.0/24"], "nets_b": ["0.0.0.0/0"]},
        ]})


def _check_tunnel(out):
    for label, role in (("a", "initiator"), ("b", "responder")):
        (ike,) = out[label + "_status"]["ike_sas"]
        assert (ike["status"], ike["state"], ike["role"]) == ("Activated", 9, role)
        assert ike["algorithm"] == "AES-CBC-128/HMAC-SHA2-256/MODP-2048"
        assert sorted(s["direction"] for s in out[label + "_status"]["sas"]) == ["incoming", "outgoing"]
    by_dir = lambda label: dict((s["direction"], s) for s in out[label + "_installed"])  # noqa: E731
    a, b = by_dir("a"), by_dir("b")
    for sender, receiver in ((a, b), (b, a)):
        # What one side sends with is exactly what the other receives with: same SPI, same keys.
        out_sa, in_sa = sender["out"], receiver["in"]
        assert (out_sa["spi"], out_sa["encr_key"], out_sa["integ_key"]) == \
            (in_sa["spi"], in_sa["encr_key"], in_sa["integ_key"])
        assert len(bytes.fromhex(out_sa["encr_key"])) == 16 and len(bytes.fromhex(out_sa["integ_key"])) == 32
    assert a["out"]["encr_key"] != a["in"]["encr_key"]          # each direction has its own keys


def test_main_mode_and_quick_mode_under_micropython(handshakes):
    """The goal of this harness: the SAME portable core, unchanged, negotiating main mode and
    quick mode (PSK, HMAC-SHA256, MODP-2048 with PFS) between two IkeCore instances inside a real
    MicroPython. Ciphers there are the TEST-ONLY-XOR-CBC stand-in (no cipher module in that
    build); everything else -- codec, proposals, keymat, state machines -- is the daemon's code."""
    out = handshakes["main"]
    print("\nMicroPython wasm: main mode + quick mode (PFS) between two cores: %d messages, %d ms"
          % (out["messages"], out["elapsed_ms"]))
    assert out["messages"] == 9                                  # 6 main mode + 3 quick mode
    # The seed's negotiation states, main mode: initiator 1,3..8, responder 1..7, then Activated.
    assert out["a_states"] == [1, 3, 4, 5, 6, 7, 8, 9]
    assert out["b_states"] == [1, 2, 3, 4, 5, 6, 7, 9]
    _check_tunnel(out)


def test_aggressive_mode_and_quick_mode_under_micropython(handshakes):
    out = handshakes["aggressive"]
    assert out["messages"] == 6                                  # 3 aggressive + 3 quick mode
    assert out["a_states"] == [1, 3, 4, 9]                       # the seed's aggressive table
    assert out["b_states"] == [1, 2, 3, 4, 9]
    _check_tunnel(out)


def test_network_lists_and_all_traffic_under_micropython(handshakes):
    """Two local networks to 0.0.0.0/0: two pair connections, one quick mode each, one after
    the other (core.QUICK_MODES_AT_ONCE), under the same portable code."""
    out = handshakes["all_traffic"]
    assert out["messages"] == 6 + 2 * 3
    for label, mirror in (("a", False), ("b", True)):
        nets = {(s["local_net"], s["remote_net"]) for s in out[label + "_status"]["sas"]}
        expected = {("10.1.0.0/24", "0.0.0.0/0"), ("10.1.1.0/24", "0.0.0.0/0")}
        assert nets == ({(r, l) for l, r in expected} if mirror else expected)
        assert len(out[label + "_status"]["sas"]) == 4
        assert out[label + "_status"]["ike_sas"][0]["phase2_negotiations"] == 2


def test_wrong_psk_is_diagnosed_under_micropython(handshakes):
    out = handshakes["wrong_psk"]
    assert out["a_installed"] == [] and out["b_installed"] == []
    for label in ("a", "b"):
        (ike,) = out[label + "_status"]["ike_sas"]
        assert ike["status"] != "Activated"
        assert "pre-shared key mismatch" in ike["last_error"]


# -- one core in CPython, the other inside MicroPython, talking through node's stdin/stdout ----------
class MicroPythonPeer:
    """An IkeCore living inside MicroPython (tests/micropython/peer.py under run.mjs --serve)."""

    def __init__(self, config, tmp_path):
        node = _node()
        config_file = tmp_path / "peer.json"
        config_file.write_text(json.dumps(config))
        self.proc = subprocess.Popen(
            [node, os.path.join(HARNESS, "run.mjs"), "--serve", os.path.join(HARNESS, "peer.py"),
             str(config_file)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.events = []

    def request(self, **request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=60)
            pytest.fail("the MicroPython peer died:\n%s" % self.proc.stderr.read())
        reply = json.loads(line)
        self.events.extend(reply["events"])
        return reply

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _cpython_core(me, other, act_as, mode, psk):
    from ikecore.protocol.core import IkeCore
    from ikecore.protocol.crypto_micropython import MicroPythonProvider
    from ikecore.protocol.settings import Connection, Identity, Peer, Settings
    peer = Peer(name="to-" + other, remote_gateway=other, local_address=me, act_as=act_as,
                proposals=[proposals.parse_ike("aes128-sha256-modp2048")], auth="psk",
                phase1_mode=mode, psk=psk, local_id=Identity("ipv4", me),
                remote_id=Identity("ipv4", other), nat_t=False, dpd_delay_s=0)
    conn = Connection(name="net-" + other, peer=peer.name, local_net="10.1.0.0/24",
                      remote_net="10.2.0.0/24", proposals=[proposals.parse_child("aes128-sha256")],
                      pfs="modp2048")
    # The same portable provider as inside MicroPython (CPython's hashlib and pow, the same
    # TEST-ONLY stand-in cipher), so the two sides can talk; the interpreters differ.
    return IkeCore(Settings(peers={peer.name: peer}, connections={conn.name: conn}),
                   MicroPythonProvider(standin_for=("aes128",)), 0.0)


def _cross_interpreter_handshake(mode, cpython_initiates, tmp_path):
    from ikecore.protocol.events import InstallChildSa
    ours = _cpython_core("192.0.2.1", "192.0.2.2", "both" if cpython_initiates else "responder",
                         mode, b"shared secret")
    theirs = MicroPythonPeer({
        "me": "192.0.2.2", "other": "192.0.2.1", "mode": mode,
        "act_as": "responder" if cpython_initiates else "both", "psk": "shared secret",
        "ike": ["aes128-sha256-modp2048"], "esp": ["aes128-sha256"], "pfs": "modp2048",
        "local_net": "10.2.0.0/24", "remote_net": "10.1.0.0/24"}, tmp_path)
    try:
        now = 1.0
        if cpython_initiates:
            ours.initiate("net-192.0.2.2", now)
            reply = {"datagrams": []}
        else:
            reply = theirs.request(initiate="net-192.0.2.1", now=now)
        hops = 0
        for _ in range(12):
            for data, local, remote in reply["datagrams"]:
                ours.receive_datagram(bytes.fromhex(data), tuple(remote), tuple(local), now)
                hops += 1
            outgoing = [[d.hex(), list(r), list(l)] for d, l, r in ours.datagrams_to_send()]
            hops += len(outgoing)
            reply = theirs.request(datagrams=outgoing, now=now)
            if not outgoing and not reply["datagrams"]:
                break
        status = theirs.request(status=True, now=now)["status"]
    finally:
        theirs.close()
    installed = []
    event = ours.next_event()
    while event is not None:
        if isinstance(event, InstallChildSa):
            installed.append(event.sa)
        event = ours.next_event()
    return ours.status(now), status, installed, theirs.events, hops


@pytest.mark.parametrize("mode,cpython_initiates", [("main", True), ("aggressive", False)])
def test_cpython_core_and_micropython_core_negotiate(mode, cpython_initiates, tmp_path):
    """Wire compatibility ACROSS interpreters: symmetric bugs (both ends wrong the same way) pass
    a MicroPython-only handshake; here one end is CPython's and one MicroPython's."""
    ours, theirs, installed, their_events, hops = _cross_interpreter_handshake(
        mode, cpython_initiates, tmp_path)
    assert hops == (9 if mode == "main" else 6)
    for status in (ours, theirs):
        (ike,) = status["ike_sas"]
        assert (ike["status"], ike["state"], ike["mode"]) == ("Activated", 9, mode)
        assert len(status["sas"]) == 2
    # Every SA CPython installed has its twin inside MicroPython with the same SPI and keys.
    twins = [e for e in their_events if e.startswith("install ")]
    assert len(installed) == len(twins) == 2
    for sa in installed:
        twin_direction = "in" if sa.direction == "out" else "out"
        spi = sa.spi.hex() if isinstance(sa.spi, bytes) else sa.spi
        assert "install esp %s spi=%s encr_key=%s integ_key=%s" % (
            twin_direction, spi, sa.encr_key.hex(), sa.integ_key.hex()) in twins
