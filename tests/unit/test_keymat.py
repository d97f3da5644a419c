"""RFC 2409 key derivations: each checked against an independent restatement of its formula
(stdlib hmac/hashlib), plus the properties both peers rely on."""
import hashlib
import hmac

import pytest

from ikecore import keymat
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
