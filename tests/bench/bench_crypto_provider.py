"""The crypto provider's hot path against the other ways to do the same on the installed stack.

One run, one process, the same inputs for each way (CPU time, best of several rounds):
  * one MODP-2048 shared secret: our provider (OpenSSL's BN_mod_exp_mont_consttime through our
    own ctypes binding, ikecore.libcrypto) beside the methods of docs/performance.md's first
    table -- `cryptography`'s public dh.exchange() (which adds OpenSSL's full peer check, one
    more 2047-bit exponentiation) and Python's pow();
  * a whole phase 1 + quick mode (main mode PSK, aes128-sha256-modp2048, ESP with PFS
    MODP-2048; bench_daemon_memory's workload, two in-process cores) on our provider beside the
    same provider with DH and CBC on `cryptography`'s public API instead of the binding.

Prints only (no assertions), with the versions measured: cryptography, OpenSSL, Python. Run from
the image's venv, it then runs itself once more in .venv-buildroot (a board's versions) when that
exists, so both stacks are measured in one `make bench`.

    PYTHONPATH=firmware .venv/bin/python tests/bench/bench_crypto_provider.py [--tunnels 40]
"""
import argparse
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
FIRMWARE = os.path.join(REPO, "firmware")
BOARD_VENV = os.path.join(REPO, ".venv-buildroot")

import _paths  # noqa: F401  (the tests' sys.path: tests/support/paths.py)
import bench_daemon_memory
from ikecore import libcrypto
from ikecore.protocol import crypto
from ikecore.crypto_cryptography import CryptographyProvider

GROUP = "modp2048"


class PublicApiProvider(CryptographyProvider):
    """Our provider with MODP DH and CBC on `cryptography`'s public API (dh, Cipher): what the
    hot path costs without our binding."""

    def __init__(self):
        from cryptography.hazmat.primitives.asymmetric import dh
        self._dh = dh
        self._parameters = {}

    def dh_new(self, group):
        if crypto.group_info(group)[0] != "modp":
            return CryptographyProvider.dh_new(self, group)
        parameters = self._parameters.get(group)
        if parameters is None:
            parameters = self._parameters[group] = self._dh.DHParameterNumbers(
                crypto.modp_prime(group), 2).parameters()
        private = parameters.generate_private_key()
        length = crypto.group_info(group)[1]
        return private, crypto.int_to_bytes(private.public_key().public_numbers().y, length)

    def dh_shared(self, group, private, peer_public):
        if crypto.group_info(group)[0] != "modp":
            return CryptographyProvider.dh_shared(self, group, private, peer_public)
        crypto.check_modp_public(group, bytes(peer_public))
        numbers = private.parameters().parameter_numbers()
        peer = self._dh.DHPublicNumbers(int.from_bytes(bytes(peer_public), "big"), numbers).public_key()
        return crypto.int_to_bytes(int.from_bytes(private.exchange(peer), "big"),
                                   crypto.group_info(group)[1])

    def _cipher(self, cipher, key, iv):
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        algorithm = algorithms.TripleDES(bytes(key)) if cipher == "3des" else algorithms.AES(bytes(key))
        return Cipher(algorithm, modes.CBC(bytes(iv)))

    def encrypt(self, cipher, key, iv, data):
        crypto.check_cbc_input(cipher, key, iv, data)
        encryptor = self._cipher(cipher, key, iv).encryptor()
        return encryptor.update(bytes(data)) + encryptor.finalize()

    def decrypt(self, cipher, key, iv, data):
        crypto.check_cbc_input(cipher, key, iv, data)
        decryptor = self._cipher(cipher, key, iv).decryptor()
        return decryptor.update(bytes(data)) + decryptor.finalize()


def best_cpu_ms(function, rounds, repeat):
    """Best of `rounds` of `repeat` calls, CPU milliseconds per call."""
    best = None
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(repeat):
            function()
        per_call = 1000.0 * (time.process_time() - start) / repeat
        best = per_call if best is None else min(best, per_call)
    return best


def shared_secret_ms(rounds=5, repeat=40):
    """{method: ms} for one MODP-2048 shared secret, all on the same peer value."""
    ours, public = CryptographyProvider(), PublicApiProvider()
    private, _ = ours.dh_new(GROUP)
    _, peer_public = ours.dh_new(GROUP)
    public_private, _ = public.dh_new(GROUP)
    p = crypto.modp_prime(GROUP)
    y = int.from_bytes(peer_public, "big")
    x_short = int.from_bytes(private.exponent, "big")
    expected = pow(y, x_short, p)
    assert int.from_bytes(ours.dh_shared(GROUP, private, peer_public), "big") == expected
    return {
        "ours (BN_mod_exp_mont_consttime via ikecore.libcrypto, x = %d bits)" % x_short.bit_length():
            best_cpu_ms(lambda: ours.dh_shared(GROUP, private, peer_public), rounds, repeat),
        "cryptography dh.exchange() (public API, OpenSSL's peer check included)":
            best_cpu_ms(lambda: public.dh_shared(GROUP, public_private, peer_public), rounds, repeat),
        "Python pow(y, x, p), same %d-bit x" % x_short.bit_length():
            best_cpu_ms(lambda: pow(y, x_short, p), rounds, repeat),
    }


def tunnel_ms(provider, n):
    """CPU ms per phase 1 + quick mode (both ends), n tunnels between two in-process cores."""
    pair = bench_daemon_memory.Pair(n, crypto_provider=provider)
    start = time.process_time()
    bench_daemon_memory.set_up(pair, n)
    cpu = time.process_time() - start
    up = pair.up_count()
    if up != n:
        raise RuntimeError("%s: only %d of %d tunnels came up" % (type(provider).__name__, up, n))
    return 1000.0 * cpu / n


def versions():
    import cryptography
    return "cryptography %s, OpenSSL %s (libcrypto), Python %s" % (
        cryptography.__version__, libcrypto.version_text(), platform.python_version())


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_crypto_provider", description=__doc__.splitlines()[0])
    parser.add_argument("--tunnels", type=int, default=40, help="tunnels per round (default 40)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--this-stack-only", action="store_true",
                        help="do not also run in .venv-buildroot")
    args = parser.parse_args([] if argv is None else argv)
    print("== bench_crypto_provider: %s" % versions())
    results = shared_secret_ms()
    ours_ms = next(iter(results.values()))
    print("  one MODP-2048 shared secret, CPU ms (best of 5 x 40):")
    for method, ms in results.items():
        print("    %-78s %7.3f ms  (%.1fx ours)" % (method, ms, ms / ours_ms))
    providers = {"ours (DH and CBC via ikecore.libcrypto)": CryptographyProvider(),
                 "DH and CBC on cryptography's public API": PublicApiProvider()}
    best = dict.fromkeys(providers)
    for _ in range(args.rounds):       # alternating, so machine load hits both alike
        for name, provider in providers.items():
            ms = tunnel_ms(provider, args.tunnels)
            best[name] = ms if best[name] is None else min(best[name], ms)
    ours_tunnel = next(iter(best.values()))
    print("  phase 1 + quick mode (%s, PFS %s, both ends), CPU ms per tunnel (best of %d x %d):"
          % (bench_daemon_memory.IKE_PROPOSAL, GROUP, args.rounds, args.tunnels))
    for name, ms in best.items():
        print("    %-42s %7.2f ms = %6.1f set-ups/s on one core  (%.2fx ours)"
              % (name, ms, 1000.0 / ms, ms / ours_tunnel))

    board_python = os.path.join(BOARD_VENV, "bin", "python")
    if (not args.this_stack_only and os.path.exists(board_python)
            and os.path.realpath(sys.prefix) != os.path.realpath(BOARD_VENV)):
        sys.stdout.flush()
        subprocess.run([board_python, os.path.abspath(__file__), "--this-stack-only",
                        "--tunnels", str(args.tunnels), "--rounds", str(args.rounds)],
                       env=dict(os.environ, PYTHONPATH=FIRMWARE), check=True)


if __name__ == "__main__":
    main(sys.argv[1:])
