"""A crypto provider from what MicroPython's WebAssembly build offers (portable; TESTS ONLY).

That build has `hashlib.sha256`, arbitrary-precision `pow()` and a PRNG, and no cipher module.
So this provider gives:
  * hash / prf: the hashes `hashlib` has (sha256 there), HMAC per RFC 2104 on top of them;
  * MODP Diffie-Hellman with the built-in big-int `pow()` (ECP groups: CryptoError);
  * random bytes from `os.urandom` when present, else `random.getrandbits` (NOT cryptographically
    strong in that build — another reason this provider is for tests only);
  * encryption: NONE, unless the provider is created with `standin_for=("aes128", ...)`. Then those
    cipher names are served by TEST-ONLY-XOR-CBC: CBC chaining around "XOR with a key-derived pad",
    same block size as the real cipher so the core's padding and IV logic run unchanged. It has no
    security at all. It exists only so the unchanged IKE core can complete a two-peer handshake
    under a real MicroPython; the daemon (CPython) never imports this module.
"""
import hashlib

from . import crypto
from .crypto import CryptoError

try:
    import os
    _urandom = os.urandom
except (ImportError, AttributeError):
    _urandom = None

STANDIN_CIPHER = "TEST-ONLY-XOR-CBC"

# Private exponent size for MODP groups, in bits: twice the ~128-bit strength of the larger groups
# (RFC 3526 section 8's guidance), which keeps pow() affordable under MicroPython.
PRIVATE_EXPONENT_BITS = 256


def _xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


class MicroPythonProvider(crypto.CryptoProvider):
    name = "micropython"

    def __init__(self, standin_for=()):
        for cipher in standin_for:
            crypto.cipher_info(cipher)          # unknown names fail now, not mid-handshake
        self.standin_for = tuple(standin_for)

    # -- randomness, hashing ---------------------------------------------------------------
    def random(self, n):
        if _urandom is not None:
            return _urandom(n)
        import random
        return bytes(random.getrandbits(8) for _ in range(n))

    def _hasher(self, alg):
        crypto.hash_size(alg)                   # unknown name -> CryptoError
        constructor = getattr(hashlib, alg, None)
        if constructor is None:
            self._missing("hash " + alg)
        return constructor

    def hash(self, alg, data):
        return self._hasher(alg)(bytes(data)).digest()

    def prf(self, alg, key, data):
        # HMAC (RFC 2104): H((K ^ opad) | H((K ^ ipad) | text)), K hashed first when longer than
        # the block and zero-padded to the block size.
        hasher = self._hasher(alg)
        block = crypto.HASH_BLOCK_SIZES[alg]
        key = bytes(key)
        if len(key) > block:
            key = hasher(key).digest()
        key = key + bytes(block - len(key))
        inner = hasher(_xor(key, b"\x36" * block) + bytes(data)).digest()
        return hasher(_xor(key, b"\x5c" * block) + inner).digest()

    # -- Diffie-Hellman (MODP only) ----------------------------------------------------------
    def dh_new(self, group):
        kind, length, _ = crypto.group_info(group)
        if kind != "modp":
            self._missing("Diffie-Hellman " + group)
        p = crypto.modp_prime(group)
        x = 0
        while x < 2:
            x = crypto.bytes_to_int(self.random(PRIVATE_EXPONENT_BITS // 8))
        return x, crypto.int_to_bytes(pow(crypto.MODP_GENERATOR, x, p), length)

    def dh_shared(self, group, private, peer_public):
        kind, length, _ = crypto.group_info(group)
        if kind != "modp":
            self._missing("Diffie-Hellman " + group)
        y = crypto.check_modp_public(group, bytes(peer_public))
        return crypto.int_to_bytes(pow(y, private, crypto.modp_prime(group)), length)

    # -- the TEST-ONLY stand-in cipher ---------------------------------------------------------
    def _pad_for(self, cipher, key):
        if cipher not in self.standin_for:
            self._missing("cipher %s (MicroPython has no cipher module; the %s stand-in serves "
                          "only the names given in standin_for)" % (cipher, STANDIN_CIPHER))
        block = crypto.cipher_info(cipher)[1]
        return hashlib.sha256(b"TEST-ONLY-XOR-CBC" + bytes(key)).digest()[:block]

    def encrypt(self, cipher, key, iv, data):
        crypto.check_cbc_input(cipher, key, iv, data)
        pad = self._pad_for(cipher, key)
        block = len(pad)
        out = []
        previous = bytes(iv)
        for i in range(0, len(data), block):
            previous = _xor(_xor(data[i:i + block], previous), pad)     # C = E(P ^ C_prev)
            out.append(previous)
        return b"".join(out)

    def decrypt(self, cipher, key, iv, data):
        crypto.check_cbc_input(cipher, key, iv, data)
        pad = self._pad_for(cipher, key)
        block = len(pad)
        out = []
        previous = bytes(iv)
        for i in range(0, len(data), block):
            current = bytes(data[i:i + block])
            out.append(_xor(_xor(current, pad), previous))             # P = D(C) ^ C_prev
            previous = current
        return b"".join(out)
