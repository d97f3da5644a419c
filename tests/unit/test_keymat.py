"""RFC 2409 key derivations: each checked against an independent restatement of its formula
(stdlib hmac/hashlib), plus the properties both peers rely on."""
import hashlib
import hmac

import pytest

from ikecore.protocol import keymat
from ikecore.crypto_cryptography import CryptographyProvider

C = CryptographyProvider()
H = bytes.fromhex


def prf(alg, key, data):
    return hmac.new(key, data, alg).digest()


NI = H("a1" * 16)
NR = H("b2" * 20)
CKY_I = H("0011223344556677")
CKY_R = H("8899aabbccddeeff")
G_XY = H("5a" * 128)
G_XI = H("01" * 128)
G_XR = H("02" * 128)


def test_skeyid_formulas():
    assert keymat.skeyid_psk(C, "sha1", b"secret", NI, NR) == prf("sha1", b"secret", NI + NR)
    assert keymat.skeyid_sig(C, "sha256", NI, NR, G_XY) == prf("sha256", NI + NR, G_XY)
    s = keymat.skeyid_psk(C, "sha1", b"secret", NI, NR)
    d = keymat.skeyid_d(C, "sha1", s, G_XY, CKY_I, CKY_R)
    a = keymat.skeyid_a(C, "sha1", s, d, G_XY, CKY_I, CKY_R)
    e = keymat.skeyid_e(C, "sha1", s, a, G_XY, CKY_I, CKY_R)
    assert d == prf("sha1", s, G_XY + CKY_I + CKY_R + b"\0")
    assert a == prf("sha1", s, d + G_XY + CKY_I + CKY_R + b"\1")
    assert e == prf("sha1", s, a + G_XY + CKY_I + CKY_R + b"\2")


def test_appendix_b_expansion_when_skeyid_e_is_short():
    e = prf("sha1", b"k", b"e")                       # 20 bytes, 3DES needs 24
    k1 = prf("sha1", e, b"\0")
    k2 = prf("sha1", e, k1)
    assert keymat.encryption_key(C, "sha1", e, "3des") == (k1 + k2)[:24]
    assert keymat.encryption_key(C, "sha1", e, "aes128") == e[:16]      # long enough: truncate
    assert keymat.encryption_key(C, "md5", e[:16], "aes256") == (
        prf("md5", e[:16], b"\0") + prf("md5", e[:16], prf("md5", e[:16], b"\0")))[:32]


def test_derive_phase1_bundles_the_same_values():
    k = keymat.derive_phase1(C, "sha1", "3des", "psk", G_XY, NI, NR, CKY_I, CKY_R, G_XI, G_XR,
                             psk=b"secret")
    assert k.skeyid == keymat.skeyid_psk(C, "sha1", b"secret", NI, NR)
    assert len(k.enc_key) == 24 and k.iv == hashlib.sha1(G_XI + G_XR).digest()[:8]
    k2 = keymat.derive_phase1(C, "sha256", "aes128", "rsa", G_XY, NI, NR, CKY_I, CKY_R, G_XI, G_XR)
    assert k2.skeyid == prf("sha256", NI + NR, G_XY) and len(k2.iv) == 16


def test_hash_i_and_hash_r():
    s = b"S" * 20
    sai_b, idii_b, idir_b = b"SA body", b"\x01\x00\x00\x00\xc0\x00\x02\x01", b"\x01\x00\x00\x00\xc6\x33\x64\x02"
    assert keymat.hash_i(C, "sha1", s, G_XI, G_XR, CKY_I, CKY_R, sai_b, idii_b) == \
        prf("sha1", s, G_XI + G_XR + CKY_I + CKY_R + sai_b + idii_b)
    assert keymat.hash_r(C, "sha1", s, G_XI, G_XR, CKY_I, CKY_R, sai_b, idir_b) == \
        prf("sha1", s, G_XR + G_XI + CKY_R + CKY_I + sai_b + idir_b)


def test_ivs():
    assert keymat.phase1_iv(C, "md5", "aes128", G_XI, G_XR) == hashlib.md5(G_XI + G_XR).digest()
    last = H("00112233445566778899aabbccddeeff")
    assert keymat.phase2_iv(C, "sha1", "aes128", last, 0x01020304) == \
        hashlib.sha1(last + b"\x01\x02\x03\x04").digest()[:16]
    assert keymat.phase2_iv(C, "sha1", "3des", last[:8], b"\xff\0\0\1") == \
        hashlib.sha1(last[:8] + b"\xff\0\0\1").digest()[:8]


def test_quick_mode_hashes():
    a = b"A" * 20
    mid = 0xDEADBEEF
    m = b"\xde\xad\xbe\xef"
    assert keymat.qm_hash1(C, "sha1", a, mid, b"payloads") == prf("sha1", a, m + b"payloads")
    assert keymat.qm_hash2(C, "sha1", a, mid, NI, b"payloads") == prf("sha1", a, m + NI + b"payloads")
    assert keymat.qm_hash3(C, "sha1", a, mid, NI, NR) == prf("sha1", a, b"\0" + m + NI + NR)
    assert keymat.informational_hash(C, "sha1", a, mid, b"N") == prf("sha1", a, m + b"N")


def test_keymat_with_and_without_pfs_and_expansion():
    d = b"D" * 20
    spi = H("c1a2b3d4")
    seed = b"\x03" + spi + NI + NR
    k1 = prf("sha1", d, seed)
    k2 = prf("sha1", d, k1 + seed)
    k3 = prf("sha1", d, k2 + seed)
    assert keymat.keymat(C, "sha1", d, 3, spi, NI, NR, 20) == k1
    assert keymat.keymat(C, "sha1", d, 3, spi, NI, NR, 52) == (k1 + k2 + k3)[:52]  # aes256+sha1
    g = b"\x77" * 256
    p1 = prf("sha1", d, g + seed)
    p2 = prf("sha1", d, p1 + g + seed)
    assert keymat.keymat(C, "sha1", d, 3, spi, NI, NR, 36, g_qm_xy=g) == (p1 + p2)[:36]
    enc, integ = keymat.split_keymat((k1 + k2 + k3)[:52], 32, 20)
    assert enc == (k1 + k2)[:32] and integ == (k1 + k2 + k3)[32:52]


def test_bad_inputs():
    with pytest.raises(keymat.CryptoError, match="SPI is 4 bytes"):
        keymat.keymat(C, "sha1", b"d", 3, b"\0\0\1", NI, NR, 20)
    with pytest.raises(keymat.CryptoError, match="message id is 4 bytes"):
        keymat.qm_hash1(C, "sha1", b"a", b"\0\1", b"")
    with pytest.raises(keymat.CryptoError, match="without a pre-shared key"):
        keymat.derive_phase1(C, "sha1", "aes128", "psk", G_XY, NI, NR, CKY_I, CKY_R, G_XI, G_XR)


# -- Published known-answer vectors -------------------------------------------------------------------
# NIST CAVP SP 800-135 IKEv1 KDF sample vectors, as carried by NSS's test suite
# (nss/gtests/common/testvectors/ike-sha1-vectors.h and ike-sha256-vectors.h, "these vectors are
# from this NIST samples"). Each row: (hash, g^xy, Ni, Nr, SKEYID) for the signature SKEYID, and
# (hash, SKEYID, g^xy, CKY-I, CKY-R, SKEYID_d, SKEYID_a, SKEYID_e) for the chain.
NIST_SKEYID_SIG = [
    ("sha1", "8ba4cbc73c0187301dc19a975823854dbd641c597f637f8d053a83b9514673eb",
     "69a62284195f1680", "80c94ba25c8abda5", "707197817fb2d90cf54d1842606bdea59b9f4823"),
    ("sha1", "4b2c1f971981a8ad8d0abeafabf38cf75fc8349c148142465ed9c8b516b8be52",
     "32b50d5f4a3763f3", "9206a04b26564cb1", "a9a7b222b59f8f48645f28a1db5b5f5d7479cba7"),
    ("sha256", "0f4d257d7a58fc4545c7d7a88119eee5d5c9690c5b4c989171d3abbfd99d1d29",
     "3f302be1abcb28e1", "8c332ee006064c9b",
     "5f00d1bd2c58ec224b1e6b71fa0f19a1faa7a193952c444411b47c1a9d8ba6fe"),
]
NIST_SKEYID_CHAIN = [
    ("sha1", "707197817fb2d90cf54d1842606bdea59b9f4823",
     "8ba4cbc73c0187301dc19a975823854dbd641c597f637f8d053a83b9514673eb",
     "8c3bcd3a69831d7f", "d2d9a7ff4fbe95a7",
     "384be709a8a5e63c3ed160cfe3921c4b37d5b32d", "48b327575abe3adba0f279849e289022a13e2b47",
     "a4a415c8e0c38c0da847c356cc61c24df8025560"),
    ("sha256", "750c5c94b9c2ec20b68033e024dadf0fa87e8b48c6561b21c72478451a06583d",
     "a1ff3dc6cf9b4c04709943cb4ca1f1789bcf360b03f1d027de3ae8ee039e9155",
     "6c6beb72631ddc3d", "b84e24b22cffbd14",
     "a4f7ca7de913814813e3312099e7c943bd293483f387532330237f1b20957310",
     "1d4b705746c43b0a6fcbb8db33983c0f24ff6f8b6543e3779fed227c6067f004",
     "03e6f16cd9ce9f64b5cdc5b34cca7163483ba5389a30afebef3d14640b0a815e"),
]
NIST_SKEYID_PSK = [     # (hash, pre-shared key, Ni, Nr, SKEYID)
    ("sha1", "c0", "03a6f25a83c8c2a3", "9d958a6618f77e7f", "ab3be41bc62f2ef0c41a3076d58768be77fadd2e"),
    ("sha256", "a0", "ead9ced494868f41", "f1aff4f425a94f18",
     "558a99b299773d267cf7c8ef073bf3b7af362c206c75a538403c5ef884d4cace"),
]


@pytest.mark.parametrize("alg,g_xy,ni,nr,expected", NIST_SKEYID_SIG)
def test_nist_skeyid_signatures(alg, g_xy, ni, nr, expected):
    assert keymat.skeyid_sig(C, alg, H(ni), H(nr), H(g_xy)).hex() == expected


@pytest.mark.parametrize("alg,skeyid,g_xy,cky_i,cky_r,d,a,e", NIST_SKEYID_CHAIN)
def test_nist_skeyid_d_a_e(alg, skeyid, g_xy, cky_i, cky_r, d, a, e):
    args = (H(g_xy), H(cky_i), H(cky_r))
    assert keymat.skeyid_d(C, alg, H(skeyid), *args).hex() == d
    assert keymat.skeyid_a(C, alg, H(skeyid), H(d), *args).hex() == a
    assert keymat.skeyid_e(C, alg, H(skeyid), H(a), *args).hex() == e


@pytest.mark.parametrize("alg,psk,ni,nr,expected", NIST_SKEYID_PSK)
def test_nist_skeyid_pre_shared_key(alg, psk, ni, nr, expected):
    assert keymat.skeyid_psk(C, alg, H(psk), H(ni), H(nr)).hex() == expected


# NSS's own vectors for the two expansions (same files, "these vectors are self-generated" by NSS,
# i.e. an independent implementation, not NIST): Appendix B (K1 = prf(K, 0), Kn = prf(K, Kn-1))
# and the quick mode KEYMAT form (Kn = prf(K, Kn-1 | seed)) with seed = one zero octet.
NSS_KEY_SHA1 = "63e81194946ebd05df7df5ebf5d8750056bf1f1d"


def test_nss_appendix_b_expansion_vectors():
    k = H(NSS_KEY_SHA1)
    assert keymat.appendix_b_expand(C, "sha1", k, 132).hex() == (
        "933347a07de5782247dd36d1562ffe0eecade1eb4134165257e3af1000af8ae3f165063828cbb60d910b7db3"
        "8fa3c7f62c4afaaf3203da065c841729853edb23e9e7ac8286ae65c8cb6c667d79268c0bd6705abb9131698e"
        "b822b1c1f9dd142fc7be2c1010ee0152e10195add98999c6b6d42c8fe9c1b134d56ad5f2c6f20e815bd25c52")
    assert keymat.appendix_b_expand(C, "sha1", k, 15).hex() == "63e81194946ebd05df7df5ebf5d875"


def test_nss_quick_mode_expansion_vectors():
    k = H(NSS_KEY_SHA1)
    assert keymat.keymat_expand(C, "sha1", k, b"\x00", 132).hex() == (
        "933347a07de5782247dd36d1562ffe0eecade1ebaeaa476a5f578c34a9b2b7101a621202f61db924c5ef9efa"
        "3bb2698095841603b7ac8a880329a927ecd4ad53a944b607a5ac2f3d154e2748c188d7370d76be83fc204fda"
        "cf0f66b99dd760ba619ffac65eda1420c8a936dac5a599afaf4043b29ef2b65dc042724355b550875316c6fd")
    assert keymat.keymat_expand(C, "sha1", k, b"\x00", 15).hex() == "933347a07de5782247dd36d1562ffe"
