"""IKEv1 key material: every derivation of RFC 2409 section 5 and Appendix B (portable).

Pure functions, no state: each takes the crypto provider (ikecore.protocol.crypto.CryptoProvider), the
negotiated algorithm names and bytes, and returns bytes. The PRF of IKEv1 phase 1 is the HMAC
version of the negotiated hash (RFC 2409 section 4: no PRF attribute is negotiated by anyone), so
`prf` below is a hash name like "sha1" and prf(key, data) is crypto.prf(prf, key, data).

Notation (RFC 2409 section 3.2): "|" is concatenation; Ni_b / Nr_b the nonce payload BODIES;
g^xi / g^xr the KE payload bodies (the public values); g^xy the shared secret; CKY-I / CKY-R the
cookies from the ISAKMP header; SAi_b the initiator's whole SA payload body (without the generic
header); IDii_b / IDir_b the ID payload bodies; M-ID the message id, 4 bytes network order.
"""

from .crypto import CryptoError, cipher_info


def message_id_bytes(message_id):
    """M-ID as the 4 bytes the formulas concatenate (accepts an int or 4 bytes)."""
    if isinstance(message_id, int):
        return message_id.to_bytes(4, "big")
    if len(message_id) != 4:
        raise CryptoError("a message id is 4 bytes, got %d" % len(message_id))
    return bytes(message_id)


# -- phase 1: SKEYID -------------------------------------------------------------------------------
def skeyid_psk(crypto, prf, psk, ni_b, nr_b):
    # For pre-shared keys:  SKEYID = prf(pre-shared-key, Ni_b | Nr_b)
    return crypto.prf(prf, psk, ni_b + nr_b)


def skeyid_sig(crypto, prf, ni_b, nr_b, g_xy):
    # For signatures:       SKEYID = prf(Ni_b | Nr_b, g^xy)
    return crypto.prf(prf, ni_b + nr_b, g_xy)


def skeyid_d(crypto, prf, skeyid, g_xy, cky_i, cky_r):
    # SKEYID_d = prf(SKEYID, g^xy | CKY-I | CKY-R | 0)     -- derives the IPsec SAs' keys
    return crypto.prf(prf, skeyid, g_xy + cky_i + cky_r + b"\x00")


def skeyid_a(crypto, prf, skeyid, skeyid_d_value, g_xy, cky_i, cky_r):
    # SKEYID_a = prf(SKEYID, SKEYID_d | g^xy | CKY-I | CKY-R | 1)   -- authenticates ISAKMP msgs
    return crypto.prf(prf, skeyid, skeyid_d_value + g_xy + cky_i + cky_r + b"\x01")


def skeyid_e(crypto, prf, skeyid, skeyid_a_value, g_xy, cky_i, cky_r):
    # SKEYID_e = prf(SKEYID, SKEYID_a | g^xy | CKY-I | CKY-R | 2)   -- encrypts ISAKMP msgs
    return crypto.prf(prf, skeyid, skeyid_a_value + g_xy + cky_i + cky_r + b"\x02")


def appendix_b_expand(crypto, prf, skeyid_e_value, length):
    """RFC 2409 Appendix B: `length` bytes of cipher key from SKEYID_e.

    If SKEYID_e is at least that long, the key is its first bytes. Otherwise it is expanded:
        Ka = K1 | K2 | K3 | ...
        K1 = prf(SKEYID_e, 0)          (0 is one zero octet)
        K2 = prf(SKEYID_e, K1)
        K3 = prf(SKEYID_e, K2)
    and the key is the first bytes of Ka. (E.g. 3DES (24 bytes) with SHA-1 (20 bytes).)
    """
    if len(skeyid_e_value) >= length:
        return skeyid_e_value[:length]
    blocks = []
    block = b"\x00"
    total = 0
    while total < length:
        block = crypto.prf(prf, skeyid_e_value, block)
        blocks.append(block)
        total += len(block)
    return b"".join(blocks)[:length]


def encryption_key(crypto, prf, skeyid_e_value, cipher):
    """The ISAKMP SA's cipher key (RFC 2409 section 5.3): Appendix B applied to the cipher's
    key length."""
    return appendix_b_expand(crypto, prf, skeyid_e_value, cipher_info(cipher)[0])


class Phase1Keys:
    """The results of one phase 1 derivation (plain holder, filled by derive_phase1)."""
    __slots__ = ("skeyid", "skeyid_d", "skeyid_a", "skeyid_e", "enc_key", "iv")

    def __init__(self, skeyid, skeyid_d, skeyid_a, skeyid_e, enc_key, iv):
        self.skeyid = skeyid
        self.skeyid_d = skeyid_d
        self.skeyid_a = skeyid_a
        self.skeyid_e = skeyid_e
        self.enc_key = enc_key
        self.iv = iv


def derive_phase1(crypto, prf, cipher, auth, g_xy, ni_b, nr_b, cky_i, cky_r, g_xi, g_xr, psk=None):
    """All phase 1 key material at once: SKEYID (auth "psk" or "rsa"), SKEYID_d/a/e, the cipher
    key and the first IV. prf is also the hash used for the IV (the negotiated hash)."""
    if auth == "psk":
        if psk is None:
            raise CryptoError("pre-shared key authentication without a pre-shared key")
        skeyid = skeyid_psk(crypto, prf, psk, ni_b, nr_b)
    elif auth == "rsa":
        skeyid = skeyid_sig(crypto, prf, ni_b, nr_b, g_xy)
    else:
        raise CryptoError("unknown authentication method %r" % (auth,))
    d = skeyid_d(crypto, prf, skeyid, g_xy, cky_i, cky_r)
    a = skeyid_a(crypto, prf, skeyid, d, g_xy, cky_i, cky_r)
    e = skeyid_e(crypto, prf, skeyid, a, g_xy, cky_i, cky_r)
    return Phase1Keys(skeyid, d, a, e, encryption_key(crypto, prf, e, cipher),
                      phase1_iv(crypto, prf, cipher, g_xi, g_xr))


# -- phase 1: authentication hashes -----------------------------------------------------------------
def hash_i(crypto, prf, skeyid, g_xi, g_xr, cky_i, cky_r, sai_b, idii_b):
    # HASH_I = prf(SKEYID, g^xi | g^xr | CKY-I | CKY-R | SAi_b | IDii_b)
    return crypto.prf(prf, skeyid, g_xi + g_xr + cky_i + cky_r + sai_b + idii_b)


def hash_r(crypto, prf, skeyid, g_xi, g_xr, cky_i, cky_r, sai_b, idir_b):
    # HASH_R = prf(SKEYID, g^xr | g^xi | CKY-R | CKY-I | SAi_b | IDir_b)
    return crypto.prf(prf, skeyid, g_xr + g_xi + cky_r + cky_i + sai_b + idir_b)


# -- IVs (RFC 2409 Appendix B) ---------------------------------------------------------------------
def phase1_iv(crypto, hash_alg, cipher, g_xi, g_xr):
    # Phase 1 IV = hash(g^xi | g^xr), truncated to the cipher's block size. Later phase 1 messages
    # use the last ciphertext block of the previous message (the caller keeps that).
    block = cipher_info(cipher)[1]
    return crypto.hash(hash_alg, g_xi + g_xr)[:block]


def phase2_iv(crypto, hash_alg, cipher, last_phase1_block, message_id):
    # Quick mode / informational IV = hash(last phase 1 CBC output block | M-ID), truncated to the
    # block size. "Last phase 1 block" is the final ciphertext block of the last encrypted phase 1
    # message (main mode message 6) -- i.e. the CBC state phase 1 ended with, whatever exchange
    # came later; if phase 1 encrypted nothing (aggressive mode), it is the phase 1 IV itself.
    block = cipher_info(cipher)[1]
    return crypto.hash(hash_alg, last_phase1_block + message_id_bytes(message_id))[:block]


# -- quick mode (RFC 2409 section 5.5) and informational (section 5.7) hashes -------------------------
def qm_hash1(crypto, prf, skeyid_a_value, message_id, after_hash):
    # HASH(1) = prf(SKEYID_a, M-ID | SA | Ni [ | KE ] [ | IDci | IDcr ])
    # after_hash: the message's payloads after the HASH payload, as sent (generic headers included).
    return crypto.prf(prf, skeyid_a_value, message_id_bytes(message_id) + after_hash)


def qm_hash2(crypto, prf, skeyid_a_value, message_id, ni_b, after_hash):
    # HASH(2) = prf(SKEYID_a, M-ID | Ni_b | SA | Nr [ | KE ] [ | IDci | IDcr ])
    return crypto.prf(prf, skeyid_a_value, message_id_bytes(message_id) + ni_b + after_hash)


def qm_hash3(crypto, prf, skeyid_a_value, message_id, ni_b, nr_b):
    # HASH(3) = prf(SKEYID_a, 0 | M-ID | Ni_b | Nr_b)
    return crypto.prf(prf, skeyid_a_value, b"\x00" + message_id_bytes(message_id) + ni_b + nr_b)


def informational_hash(crypto, prf, skeyid_a_value, message_id, after_hash):
    # HASH(1) = prf(SKEYID_a, M-ID | N/D)   -- the notify or delete payload(s) after the HASH
    return crypto.prf(prf, skeyid_a_value, message_id_bytes(message_id) + after_hash)


# -- quick mode KEYMAT (RFC 2409 section 5.5) -------------------------------------------------------
def keymat(crypto, prf, skeyid_d_value, protocol, spi, ni_b, nr_b, length, g_qm_xy=None):
    """KEYMAT for ONE SA: protocol is the protocol id (2 AH, 3 ESP), spi the 4-byte SPI of that
    SA (the one its receiver chose). length: bytes needed (encryption key then integrity key).

    Without PFS:  KEYMAT = prf(SKEYID_d, protocol | SPI | Ni_b | Nr_b)
    With PFS:     KEYMAT = prf(SKEYID_d, g(qm)^xy | protocol | SPI | Ni_b | Nr_b)
    Expanded when longer than one PRF output:
        KEYMAT = K1 | K2 | K3 | ...
        K1 = prf(SKEYID_d, [ g(qm)^xy | ] protocol | SPI | Ni_b | Nr_b)
        K2 = prf(SKEYID_d, K1 | [ g(qm)^xy | ] protocol | SPI | Ni_b | Nr_b)
        K3 = prf(SKEYID_d, K2 | [ g(qm)^xy | ] protocol | SPI | Ni_b | Nr_b)
    """
    if len(spi) != 4:
        raise CryptoError("an IPsec SPI is 4 bytes, got %d" % len(spi))
    seed = (g_qm_xy or b"") + bytes([protocol]) + bytes(spi) + ni_b + nr_b
    return keymat_expand(crypto, prf, skeyid_d_value, seed, length)


def keymat_expand(crypto, prf, key, seed, length):
    """The section 5.5 expansion: K1 = prf(key, seed), Kn = prf(key, K(n-1) | seed); the first
    `length` bytes of K1 | K2 | ... (always at least one PRF run, unlike Appendix B)."""
    blocks = []
    previous = b""
    total = 0
    while total < length:
        previous = crypto.prf(prf, key, previous + seed)
        blocks.append(previous)
        total += len(previous)
    return b"".join(blocks)[:length]


def split_keymat(material, encr_len, integ_len):
    """(encryption key, integrity key) of one SA: RFC 2409 5.5 takes the encryption key from the
    start of KEYMAT and the authentication key from what follows (RFC 2401 ordering)."""
    if len(material) < encr_len + integ_len:
        raise CryptoError("KEYMAT too short: %d < %d" % (len(material), encr_len + integ_len))
    return material[:encr_len], material[encr_len:encr_len + integ_len]
