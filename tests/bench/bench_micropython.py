"""The portable core under MicroPython (WebAssembly, in node) against CPython: 2048-bit modexp
(the cost of MODP-2048 Diffie-Hellman) and a whole two-core main mode + quick mode handshake.

The handshake uses the same algorithms on both sides of the comparison: the MicroPython crypto
provider (hashlib HMAC-SHA256, pow() MODP-2048 with PFS, TEST-ONLY-XOR-CBC stand-in cipher), run
once inside MicroPython (tests/micropython/handshake.py) and once by CPython. Prints only.
Run: PYTHONPATH=firmware python tests/bench/bench_micropython.py   (needs `make micropython-harness`)
`main(argv)` is what tests/bench/run_all.py calls.
"""
import argparse
import sys
import time

import _paths  # noqa: F401  (tests/support and firmware/ on sys.path)
from ikecore.protocol import crypto, proposals
from ikecore.protocol.core import IkeCore
from ikecore.protocol.crypto_micropython import MicroPythonProvider
from ikecore.protocol.events import InstallChildSa
from ikecore.protocol.settings import Connection, Identity, Peer, Settings
from support import micropython

IKE, ESP, PFS, PSK = "aes128-sha256-modp2048", "aes128-sha256", "modp2048", "bench"


def run_micropython(script, inputs):
    """The script's RESULT, or None when the harness is not installed (CPython's numbers only)."""
    if micropython.harness_missing():
        return None
    return micropython.run_micropython(script, inputs)


def cpython_handshake_ms():
    """The handshake.py negotiation, by CPython, with the same provider; CPU milliseconds."""
    def side(me, other, act_as):
        peer = Peer(name="to-" + other, remote_gateway=other, local_address=me, act_as=act_as,
                    proposals=[proposals.parse_ike(IKE)], auth="psk", psk=PSK.encode(),
                    local_id=Identity("ipv4", me), remote_id=Identity("ipv4", other),
                    nat_t=False, dpd_delay_s=0)
        conn = Connection(name="net-" + other, peer=peer.name, local_net="10.%s.0.0/24" % me[-1],
                          remote_net="10.%s.0.0/24" % other[-1],
                          proposals=[proposals.parse_child(ESP, "esp")], pfs=PFS)
        return IkeCore(Settings(peers={peer.name: peer}, connections={conn.name: conn}),
                       MicroPythonProvider(standin_for=("aes128",)), 0.0)
    a, b = side("192.0.2.1", "192.0.2.2", "both"), side("192.0.2.2", "192.0.2.1", "responder")
    start = time.process_time()
    a.initiate("net-192.0.2.2", 1.0)
    installed = 0
    for _ in range(20):
        moved = False
        for sender, receiver in ((a, b), (b, a)):
            for data, local, remote in sender.datagrams_to_send():
                receiver.receive_datagram(data, remote, local, 1.0)
                moved = True
        for core in (a, b):
            event = core.next_event()
            while event is not None:
                installed += isinstance(event, InstallChildSa)
                event = core.next_event()
        if not moved:
            break
    elapsed = (time.process_time() - start) * 1000
    if installed != 4:
        raise RuntimeError("the CPython handshake did not install 4 SAs (%d)" % installed)
    return elapsed


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="modexp runs per exponent size")
    args = parser.parse_args(argv)
    p = crypto.modp_prime("modp2048")
    rnd = MicroPythonProvider()
    exps = {"exp256": rnd.random(32).hex(), "exp2048": rnd.random(256).hex()}
    print("MicroPython (WebAssembly, node) vs CPython %s" % sys.version.split()[0])
    mp = run_micropython("bench_modexp.py", dict(exps, p="%x" % p, runs=args.runs))
    for label, bits in (("exp256", 256), ("exp2048", 2048)):
        cpy = []
        for _ in range(args.runs):
            start = time.process_time()
            pow(2, int(exps[label], 16), p)
            cpy.append((time.process_time() - start) * 1000)
        mp_text = "%8.1f ms" % median(mp[label]) if mp else "   (no node/MicroPython harness)"
        print("  2048-bit modexp, %4d-bit exponent: MicroPython %s   CPython %7.2f ms   (median of %d)"
              % (bits, mp_text, median(cpy), args.runs))
    hs = run_micropython("handshake.py", {"ike": IKE, "esp": ESP, "pfs": PFS, "scenarios": [
        {"name": "main", "mode": "main", "psk_a": PSK, "psk_b": PSK}]})
    cpy_ms = cpython_handshake_ms()
    mp_text = "%8d ms" % hs["main"]["elapsed_ms"] if hs else "   (no node/MicroPython harness)"
    print("  two-core main mode + quick mode (MODP-2048 + PFS, HMAC-SHA256): MicroPython %s   "
          "CPython %7.1f ms (same provider)" % (mp_text, cpy_ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
