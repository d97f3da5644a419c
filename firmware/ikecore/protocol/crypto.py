"""The crypto provider interface: everything the protocol core may ask of cryptography (portable).

The core never imports a crypto library. It receives a provider object (`IkeCore(settings, crypto,
...)`) and calls the methods of `CryptoProvider` below with algorithm NAMES (the ikecore.protocol.proposals
names). Two providers exist:
  * `ikecore.crypto_cryptography.CryptographyProvider` — the daemon's, on the `cryptography` package;
  * `ikecore.protocol.crypto_micropython.MicroPythonProvider` — hashlib + big-int pow only, for running the
    same core under MicroPython in tests (its cipher is a clearly named TEST-ONLY stand-in).

This module also holds the facts both providers need (sizes, the MODP primes of RFC 2409 / RFC 3526)
so there is one table per fact. MicroPython subset: no abc, typing or dataclasses.
"""


class CryptoError(Exception):
    """A cryptographic operation failed or is not available (bad key, bad peer value, ...)."""


# Digest sizes in bytes of the hashes usable as IKE hash / PRF (HMAC) algorithms.
HASH_SIZES = {"md5": 16, "sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}
# HMAC block sizes (RFC 2104 "B") — 64 bytes for MD5/SHA-1/SHA-256, 128 for SHA-384/512.
HASH_BLOCK_SIZES = {"md5": 64, "sha1": 64, "sha256": 64, "sha384": 128, "sha512": 128}

# CBC ciphers: name -> (key length in bytes, block size in bytes).
CIPHERS = {
    "3des": (24, 8),
    "aes128": (16, 16),
    "aes192": (24, 16),
    "aes256": (32, 16),
}

# Diffie-Hellman groups: name -> (kind, public value length in bytes, shared secret length).
# MODP: public value and g^xy are both padded to the prime's length. ECP (RFC 5903): the public value
# is x || y (no 0x04 point-format byte), the shared secret is the x coordinate only.
DH_GROUPS = {
    "modp768": ("modp", 96, 96),
    "modp1024": ("modp", 128, 128),
    "modp1536": ("modp", 192, 192),
    "modp2048": ("modp", 256, 256),
    "modp3072": ("modp", 384, 384),
    "ecp256": ("ecp", 64, 32),
    "ecp384": ("ecp", 96, 48),
}

MODP_GENERATOR = 2

# The MODP primes, generator 2: groups 1 and 2 from RFC 2409 section 6.1/6.2, groups 5, 14 and 15
# from RFC 3526. Each is p = 2^n - 2^(n-64) - 1 + 2^64 * (floor(2^(n-130) * pi) + k); the unit test
# recomputes every one of them from that formula.
_MODP_PRIMES_HEX = {
    "modp768": (
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3620FFFFFFFFFFFFFFFF"
    ),
    "modp1024": (
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF"
    ),
    "modp1536": (
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
        "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
        "9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF"
    ),
    "modp2048": (
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
        "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
        "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
        "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
        "3995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF"
    ),
    "modp3072": (
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
        "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
        "4FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF05"
        "98DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB"
        "9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
        "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF695581718"
        "3995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33"
        "A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7"
        "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864"
        "D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E2"
        "08E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF"
    ),
}


def modp_prime(group):
    """The prime of a MODP group as an int (raises CryptoError for anything else)."""
    text = _MODP_PRIMES_HEX.get(group)
    if text is None:
        raise CryptoError("not a MODP group: %r" % (group,))
    return int("".join(text), 16)


def group_info(group):
    """(kind, public length, shared secret length) of a DH group name; CryptoError if unknown."""
    info = DH_GROUPS.get(group)
    if info is None:
        raise CryptoError("unknown Diffie-Hellman group %r" % (group,))
    return info


def cipher_info(cipher):
    """(key length, block size) of a cipher name; CryptoError if unknown."""
    info = CIPHERS.get(cipher)
    if info is None:
        raise CryptoError("unknown cipher %r" % (cipher,))
    return info


def hash_size(alg):
    """Digest size in bytes of a hash name; CryptoError if unknown."""
    size = HASH_SIZES.get(alg)
    if size is None:
        raise CryptoError("unknown hash %r" % (alg,))
    return size


def int_to_bytes(value, length):
    """Big-endian, left-padded with zeros to `length` bytes (DH values are always full length)."""
    return value.to_bytes(length, "big")


def bytes_to_int(data):
    return int.from_bytes(data, "big")


def check_modp_public(group, public):
    """Validate a peer's MODP public value (length, 1 < y < p-1) and return it as an int.

    Rejecting 0, 1 and p-1 stops a peer from forcing a known shared secret (the small-subgroup
    values every IKE implementation refuses).
    """
    kind, length, _ = group_info(group)
    if kind != "modp":
        raise CryptoError("%s is not a MODP group" % group)
    if len(public) != length:
        raise CryptoError("%s public value has %d bytes, expected %d" % (group, len(public), length))
    y = bytes_to_int(public)
    p = modp_prime(group)
    if y <= 1 or y >= p - 1:
        raise CryptoError("%s public value is out of range (1 < y < p-1)" % group)
    return y


def check_cbc_input(cipher, key, iv, data):
    """Common argument checks of encrypt/decrypt, so both providers fail the same way."""
    key_len, block = cipher_info(cipher)
    if len(key) != key_len:
        raise CryptoError("%s key must be %d bytes, got %d" % (cipher, key_len, len(key)))
    if len(iv) != block:
        raise CryptoError("%s IV must be %d bytes, got %d" % (cipher, block, len(iv)))
    if len(data) % block:
        raise CryptoError("%s data length %d is not a multiple of the block size %d"
                          % (cipher, len(data), block))


class CryptoProvider:
    """The interface. Every method of a real provider overrides these; the defaults say what is
    missing, so a provider that lacks a feature (MicroPython: ECP, AES, RSA) fails with a clear
    CryptoError instead of an AttributeError deep in an exchange.

    Names: hashes/PRFs "md5" "sha1" "sha256" "sha384" "sha512"; ciphers "3des" "aes128" "aes192"
    "aes256"; groups as in DH_GROUPS.
    """
    name = "abstract"

    def _missing(self, what):
        raise CryptoError("%s not available in the %s crypto provider" % (what, self.name))

    # -- randomness, hashing -------------------------------------------------------------
    def random(self, n):
        """n cryptographically random bytes (nonces, cookies, SPIs, IVs of our own)."""
        self._missing("random")

    def hash(self, alg, data):
        """Digest of data."""
        self._missing("hash " + alg)

    def prf(self, alg, key, data):
        """IKEv1's pseudo-random function: HMAC with the negotiated hash (RFC 2409 section 4)."""
        self._missing("prf " + alg)

    # -- Diffie-Hellman ------------------------------------------------------------------
    def dh_new(self, group):
        """A fresh key pair: (private handle, public value bytes as sent in the KE payload)."""
        self._missing("Diffie-Hellman " + group)

    def dh_shared(self, group, private, peer_public):
        """The shared secret g^xy (MODP: padded to the prime length; ECP: x coordinate).
        Raises CryptoError when the peer's public value is malformed or invalid."""
        self._missing("Diffie-Hellman " + group)

    # -- CBC encryption of ISAKMP payloads (no padding: the core pads) -------------------
    def encrypt(self, cipher, key, iv, data):
        self._missing("cipher " + cipher)

    def decrypt(self, cipher, key, iv, data):
        self._missing("cipher " + cipher)

    # -- RSA signatures (RFC 2409 section 5.1, authentication with signatures) ------------
    def sign(self, alg, key_pem, data):
        """Signature over HASH_I / HASH_R. alg "rsa": PKCS#1 v1.5 block type 1 over the raw hash,
        no DigestInfo (what strongSwan calls SIGN_RSA_EMSA_PKCS1_NULL and Libreswan does for
        IKEv1)."""
        self._missing("signature " + alg)

    def verify(self, cert_der, data, signature):
        """True when signature (same scheme as sign) over data verifies with the cert's key."""
        self._missing("signature verification")

    # -- certificates -------------------------------------------------------------------
    def cert_subject(self, cert_der):
        """The subject DN as text, strongSwan style: "C=CH, O=Example, CN=moon"."""
        self._missing("certificates")

    def cert_subject_der(self, cert_der):
        """The subject DN as DER (what an ID_DER_ASN1_DN payload carries)."""
        self._missing("certificates")

    def cert_alt_names(self, cert_der):
        """Subject alternative names as [(kind, text)], kind "dns" | "email" | "ip"."""
        self._missing("certificates")

    def cert_verify(self, cert_der, ca_ders, chain_ders=(), crl_ders=(), at_time=None,
                    revocation=False):
        """None when cert_der has a valid certification path to one of ca_ders (trust anchors,
        DER) through any of chain_ders (intermediates the peer sent or that are configured):
        signatures, basicConstraints, keyUsage (CAs: keyCertSign; the peer's certificate:
        digitalSignature), revocation of every certificate in the path by crl_ders (DER; none:
        not checked unless revocation is True, as with fetch_crls before any CRL is in; the
        leaf's issuer must have a CRL among them, an intermediate is checked when its issuer
        has one) and validity dates at at_time (Unix seconds; None while the
        clock is not synchronized: dates not checked). Else the reason as text: "expired on
        DATE", "not yet valid until DATE", "revoked on DATE", "intermediate CA NAME revoked on
        DATE", "unknown issuer NAME", "issuer NAME is not a CA", "wrong key usage: ...", and
        with CRLs: "no CRL of its issuer NAME is configured", "the CRL of NAME is out of date
        since DATE (its next update)"."""
        self._missing("certificates")

    def cert_public_key(self, cert_der):
        """The certificate's public key as DER SubjectPublicKeyInfo."""
        self._missing("certificates")

    def dn_text(self, dn_der):
        """A DER DN (ID_DER_ASN1_DN payload) as text in the cert_subject style."""
        self._missing("distinguished names")

    def dn_der(self, text):
        """A text DN ("C=CH, O=Example, CN=moon") as DER, for comparing with ID payloads."""
        self._missing("distinguished names")
