"""The crypto provider on `cryptography`: published known-answer vectors and interop properties."""
import datetime
import hashlib
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from ikecore import crypto_cryptography
from ikecore.protocol import crypto
from ikecore.protocol.crypto import CryptoError
from ikecore.crypto_cryptography import CryptographyProvider

P = CryptographyProvider()
H = bytes.fromhex


# -- HMAC = IKEv1 PRF: RFC 2202 (MD5, SHA-1) and RFC 4231 (SHA-2) test cases 1 and 2 ----------------
HMAC_VECTORS = [
    # (source, alg, key, data, mac)
    ("RFC 2202 2.1", "md5", b"\x0b" * 16, b"Hi There", "9294727a3638bb1c13f48ef8158bfc9d"),
    ("RFC 2202 2.2", "md5", b"Jefe", b"what do ya want for nothing?",
     "750c783e6ab0b503eaa86e310a5db738"),
    ("RFC 2202 3.1", "sha1", b"\x0b" * 20, b"Hi There", "b617318655057264e28bc0b6fb378c8ef146be00"),
    ("RFC 2202 3.2", "sha1", b"Jefe", b"what do ya want for nothing?",
     "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
    ("RFC 4231 4.2", "sha256", b"\x0b" * 20, b"Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    ("RFC 4231 4.3", "sha256", b"Jefe", b"what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    ("RFC 4231 4.3", "sha384", b"Jefe", b"what do ya want for nothing?",
     "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e"
     "8e2240ca5e69e2c78b3239ecfab21649"),
    ("RFC 4231 4.3", "sha512", b"Jefe", b"what do ya want for nothing?",
     "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
     "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
]


@pytest.mark.parametrize("source,alg,key,data,mac", HMAC_VECTORS)
def test_prf_is_hmac_known_answers(source, alg, key, data, mac):
    assert P.prf(alg, key, data).hex() == mac, source


@pytest.mark.parametrize("alg", sorted(crypto.HASH_SIZES))
def test_hash_matches_hashlib_and_size_table(alg):
    assert P.hash(alg, b"abc") == hashlib.new(alg, b"abc").digest()
    assert len(P.hash(alg, b"")) == crypto.HASH_SIZES[alg]


# -- CBC: NIST SP 800-38A F.2.1 / F.2.5 (first block) and a 3DES round trip ---------------------------
def test_aes_cbc_known_answers_sp800_38a():
    iv = H("000102030405060708090a0b0c0d0e0f")
    pt = H("6bc1bee22e409f96e93d7e117393172a")
    aes128 = H("2b7e151628aed2a6abf7158809cf4f3c")
    assert P.encrypt("aes128", aes128, iv, pt) == H("7649abac8119b246cee98e9b12e9197d")
    aes256 = H("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
    assert P.encrypt("aes256", aes256, iv, pt) == H("f58c4c04d6e5f1ba779eabfb5f7bfbd6")
    assert P.decrypt("aes128", aes128, iv, H("7649abac8119b246cee98e9b12e9197d")) == pt


@pytest.mark.parametrize("cipher", sorted(crypto.CIPHERS))
def test_cbc_round_trip_and_no_padding(cipher):
    key_len, block = crypto.CIPHERS[cipher]
    key, iv = bytes(range(key_len)), bytes(block)
    data = bytes(range(3 * block))
    ct = P.encrypt(cipher, key, iv, data)
    assert len(ct) == len(data)                   # no padding added: the core pads
    assert P.decrypt(cipher, key, iv, ct) == data


def test_cbc_bad_input_names_the_problem():
    with pytest.raises(CryptoError, match="key must be 16 bytes"):
        P.encrypt("aes128", b"short", bytes(16), bytes(16))
    with pytest.raises(CryptoError, match="not a multiple of the block size"):
        P.encrypt("aes128", bytes(16), bytes(16), bytes(15))
    with pytest.raises(CryptoError, match="unknown cipher"):
        P.encrypt("rc4", bytes(16), bytes(16), bytes(16))


# -- Diffie-Hellman -----------------------------------------------------------------------------------
def _pi_fixed(bits):
    """floor(pi * 2^bits) by Machin's formula (for checking the primes against their definition)."""
    guard = 64
    one = 1 << (bits + guard)

    def atan_inv(x):
        total, term, k, sign = 0, one // x, 1, 1
        while term:
            total += sign * (term // k)
            term //= x * x
            k += 2
            sign = -sign
        return total
    return (16 * atan_inv(5) - 4 * atan_inv(239)) >> guard


@pytest.mark.parametrize("group,n,k", [("modp768", 768, 149686), ("modp1024", 1024, 129093),
                                       ("modp1536", 1536, 741804), ("modp2048", 2048, 124476),
                                       ("modp3072", 3072, 1690314)])
def test_modp_primes_follow_their_rfc_definition(group, n, k):
    # RFC 2409 6.1/6.2, RFC 3526: p = 2^n - 2^(n-64) - 1 + 2^64 * ( [2^(n-130) pi] + k )
    assert crypto.modp_prime(group) == 2 ** n - 2 ** (n - 64) - 1 + 2 ** 64 * (_pi_fixed(n - 130) + k)


@pytest.mark.parametrize("group", sorted(crypto.DH_GROUPS))
def test_dh_agreement_and_lengths(group):
    kind, pub_len, secret_len = crypto.DH_GROUPS[group]
    a, a_pub = P.dh_new(group)
    b, b_pub = P.dh_new(group)
    assert len(a_pub) == len(b_pub) == pub_len
    shared = P.dh_shared(group, a, b_pub)
    assert len(shared) == secret_len
    assert shared == P.dh_shared(group, b, a_pub)


@pytest.mark.parametrize("group", [g for g in sorted(crypto.DH_GROUPS) if g.startswith("modp")])
def test_modp_values_are_g_x_and_g_xy_by_definition(group):
    # Public value g^x and shared secret y^x mod p, left-padded, against Python's pow(); the
    # private exponent is short per RFC 3526 section 8 but exactly its table length.
    _, length, _ = crypto.DH_GROUPS[group]
    a, a_pub = P.dh_new(group)
    b, b_pub = P.dh_new(group)
    x = int.from_bytes(a.exponent, "big")
    assert x.bit_length() == crypto_cryptography._MODP_EXPONENT_BITS[group]
    p = crypto.modp_prime(group)
    assert int.from_bytes(a_pub, "big") == pow(2, x, p)
    assert P.dh_shared(group, a, b_pub) == pow(int.from_bytes(b_pub, "big"), x, p).to_bytes(length, "big")
    assert "exponent" not in repr(a) and a.exponent.hex() not in repr(a)


def test_modp2048_known_answer_against_two_other_implementations():
    """Fixed x and peer value: OpenSSL's constant-time modexp (our path) must give what Python's
    pow() and cryptography's own dh.exchange() (with OpenSSL's full peer check) give."""
    from cryptography.hazmat.primitives.asymmetric import dh
    p = crypto.modp_prime("modp2048")
    x = int(hashlib.sha512(b"ikecore dh kat x").hexdigest(), 16) >> (512 - 320)
    peer_y = pow(2, int(hashlib.sha256(b"ikecore dh kat y").hexdigest(), 16), p)
    # (a 320-bit x: the provider takes any exponent length; its own are 256 bits for this group)
    ours = P.dh_shared("modp2048", crypto_cryptography.ModpPrivateKey("modp2048", x.to_bytes(40, "big")),
                       peer_y.to_bytes(256, "big"))
    assert ours == pow(peer_y, x, p).to_bytes(256, "big")
    params = dh.DHParameterNumbers(p, 2)
    theirs = dh.DHPrivateNumbers(x, dh.DHPublicNumbers(pow(2, x, p), params)).private_key()
    assert ours == theirs.exchange(dh.DHPublicNumbers(peer_y, params).public_key())
    # A value whose top byte is zero is still padded to 256 bytes (g^xy is hashed as is).
    assert hashlib.sha256(ours).hexdigest() == hashlib.sha256(pow(peer_y, x, p).to_bytes(256, "big")).hexdigest()


def test_modp_shared_refuses_a_foreign_private_handle():
    a, _ = P.dh_new("modp1024")
    _, b_pub = P.dh_new("modp2048")
    with pytest.raises(CryptoError, match="not a modp2048 key"):
        P.dh_shared("modp2048", a, b_pub)


@pytest.mark.parametrize("cipher,openssl_name", [("3des", "des-ede3-cbc"), ("aes128", "aes-128-cbc"),
                                                 ("aes192", "aes-192-cbc"), ("aes256", "aes-256-cbc")])
def test_cbc_equals_openssl_enc(cipher, openssl_name):
    """The EVP path against the `openssl enc` command (installed by mk/micropython.mk)."""
    import shutil
    import subprocess
    key_len, block = crypto.CIPHERS[cipher]
    key, iv = bytes(range(1, key_len + 1)), bytes(range(100, 100 + block))
    data = bytes(range(7, 7 + 4 * block))
    proc = subprocess.run([shutil.which("openssl") or "openssl", "enc", "-" + openssl_name, "-nopad",
                           "-K", key.hex(), "-iv", iv.hex()], input=data, capture_output=True, check=True)
    assert P.encrypt(cipher, key, iv, data) == proc.stdout
    assert P.decrypt(cipher, key, iv, proc.stdout) == data


def test_hot_path_does_not_import_x509_or_the_openssl_backend():
    """Import cost: a PSK tunnel's crypto (MODP DH, CBC, HMAC) must not load cryptography.x509
    or its OpenSSL backend object (~0.3 s, ~10 MB on the host; seconds in the guest)."""
    import subprocess
    import sys
    code = ("import sys; from ikecore.crypto_cryptography import CryptographyProvider as C; p = C(); "
            "a, pa = p.dh_new('modp2048'); b, pb = p.dh_new('modp2048'); "
            "assert p.dh_shared('modp2048', a, pb) == p.dh_shared('modp2048', b, pa); "
            "p.encrypt('aes128', bytes(16), bytes(16), bytes(32)); p.prf('sha256', b'k', b'd'); "
            "print(sorted(m for m in sys.modules if m.startswith(('cryptography.x509', "
            "'cryptography.hazmat.backends'))))")
    import os
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(crypto.__file__))))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_ecp256_matches_rfc5903_vector():
    # RFC 5903 section 8.1 (256-bit random ECP group): i's private key, r's public value, g^ir.
    from cryptography.hazmat.primitives.asymmetric import ec
    i = ec.derive_private_key(int("C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433", 16),
                              ec.SECP256R1())
    r_pub = H("D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63"
              "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB")
    shared = P.dh_shared("ecp256", i, r_pub)
    assert shared == H("D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE")


def test_dh_rejects_bad_peer_values():
    a, _ = P.dh_new("modp2048")
    with pytest.raises(CryptoError, match="expected 256"):
        P.dh_shared("modp2048", a, bytes(255))
    for bad in (0, 1, crypto.modp_prime("modp2048") - 1):
        with pytest.raises(CryptoError, match="out of range"):
            P.dh_shared("modp2048", a, bad.to_bytes(256, "big"))
    e, _ = P.dh_new("ecp256")
    with pytest.raises(CryptoError, match="not a valid point"):
        P.dh_shared("ecp256", e, bytes(range(64)))
    with pytest.raises(CryptoError, match="unknown Diffie-Hellman group"):
        P.dh_new("modp999")


# -- RSA signatures and certificates ----------------------------------------------------------------
@pytest.fixture(scope="module")
def pki():
    """A CA and an end-entity certificate with subjectAltNames, built in memory."""
    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CH"),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ikecore test"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime(2025, 1, 1)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (x509.CertificateBuilder().subject_name(name("Test CA")).issuer_name(name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now)
          .not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    san = x509.SubjectAlternativeName([x509.DNSName("moon.example.org"),
                                       x509.RFC822Name("moon@example.org"),
                                       x509.IPAddress(__import__("ipaddress").ip_address("192.0.2.1"))])
    cert = (x509.CertificateBuilder().subject_name(name("moon")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=3650)).add_extension(san, critical=False)
            .sign(ca_key, hashes.SHA256()))
    other_ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_ca = (x509.CertificateBuilder().subject_name(name("Test CA")).issuer_name(name("Test CA"))
                .public_key(other_ca_key.public_key()).serial_number(3).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=3650))
                .sign(other_ca_key, hashes.SHA256()))
    der = serialization.Encoding.DER
    return {
        "key": key,
        "key_pem": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()),
        "cert": cert.public_bytes(der), "ca": ca.public_bytes(der),
        "other_ca": other_ca.public_bytes(der),
    }


def test_rsa_signature_is_pkcs1_v15_over_the_raw_hash(pki):
    """RFC 2409 5.1 as strongSwan/Libreswan do it: EMSA-PKCS1-v1_5 block type 1 wrapped directly
    around HASH_I (no DigestInfo). Checked by opening the signature with the public key."""
    hash_i = bytes(range(20))
    sig = P.sign("rsa", pki["key_pem"], hash_i)
    pub = pki["key"].public_key().public_numbers()
    k = (pub.n.bit_length() + 7) // 8
    block = pow(int.from_bytes(sig, "big"), pub.e, pub.n).to_bytes(k, "big")
    assert block == b"\x00\x01" + b"\xff" * (k - 3 - len(hash_i)) + b"\x00" + hash_i
    assert P.verify(pki["cert"], hash_i, sig)
    assert not P.verify(pki["cert"], bytes(20), sig)
    assert not P.verify(pki["cert"], hash_i, sig[:-1] + bytes([sig[-1] ^ 1]))


def test_certificate_helpers(pki):
    assert P.cert_subject(pki["cert"]) == "C=CH, O=ikecore test, CN=moon"
    assert P.dn_text(P.cert_subject_der(pki["cert"])) == "C=CH, O=ikecore test, CN=moon"
    assert P.cert_alt_names(pki["cert"]) == [("dns", "moon.example.org"),
                                             ("email", "moon@example.org"), ("ip", "192.0.2.1")]
    assert P.cert_verify(pki["cert"], [pki["ca"]]) is None
    # same name, other key, and no basicConstraints: OpenSSL refuses it as an issuer
    assert P.cert_verify(pki["cert"], [pki["other_ca"]]) == \
        "issuer C=CH, O=ikecore test, CN=Test CA is not a CA"
    assert P.cert_public_key(pki["cert"]).startswith(b"\x30")
    with pytest.raises(CryptoError, match="malformed certificate"):
        P.cert_subject(b"\x30\x03\x02\x01\x00")


def test_dn_text_and_der_round_trip():
    der = P.dn_der("C=CH, O=strongSwan\\, Inc, CN=moon.strongswan.org, E=moon@strongswan.org")
    assert P.dn_text(der) == "C=CH, O=strongSwan, Inc, CN=moon.strongswan.org, E=moon@strongswan.org"
    with pytest.raises(CryptoError, match="bad distinguished name part"):
        P.dn_der("C=CH, nonsense")
    with pytest.raises(CryptoError, match="malformed distinguished name"):
        P.dn_text(b"\x31\x00")


def test_base_provider_says_what_is_missing():
    with pytest.raises(CryptoError, match="cipher aes128 not available in the abstract"):
        crypto.CryptoProvider().encrypt("aes128", b"", b"", b"")


# -- the portable MicroPython provider, run under CPython (whose hashlib has every hash) -------------
from ikecore.protocol.crypto_micropython import MicroPythonProvider, STANDIN_CIPHER  # noqa: E402

MP = MicroPythonProvider(standin_for=("aes128", "3des"))


@pytest.mark.parametrize("source,alg,key,data,mac", HMAC_VECTORS)
def test_micropython_hmac_known_answers(source, alg, key, data, mac):
    assert MP.prf(alg, key, data).hex() == mac, source


def test_micropython_hmac_long_key_is_hashed_first():
    # RFC 4231 4.7: a 131-byte key (longer than SHA-256's block) is hashed before use.
    key = b"\xaa" * 131
    data = b"Test Using Larger Than Block-Size Key - Hash Key First"
    assert MP.prf("sha256", key, data) == P.prf("sha256", key, data)
    assert MP.prf("sha512", key, data) == P.prf("sha512", key, data)


def test_micropython_modp_dh_interoperates_with_cryptography():
    a, a_pub = MP.dh_new("modp1536")
    b, b_pub = P.dh_new("modp1536")
    assert MP.dh_shared("modp1536", a, b_pub) == P.dh_shared("modp1536", b, a_pub)
    with pytest.raises(CryptoError, match="Diffie-Hellman ecp256 not available in the micropython"):
        MP.dh_new("ecp256")
    with pytest.raises(CryptoError, match="out of range"):
        MP.dh_shared("modp1536", a, (1).to_bytes(192, "big"))


def test_micropython_standin_cipher_is_opt_in_and_named():
    data = bytes(range(48))
    ct = MP.encrypt("aes128", bytes(16), bytes(16), data)
    assert ct != data and MP.decrypt("aes128", bytes(16), bytes(16), ct) == data
    assert MP.decrypt("3des", bytes(24), bytes(8), MP.encrypt("3des", bytes(24), bytes(8), data)) == data
    with pytest.raises(CryptoError, match="cipher aes256 .*%s stand-in" % STANDIN_CIPHER):
        MP.encrypt("aes256", bytes(32), bytes(16), data)
    with pytest.raises(CryptoError, match="unknown cipher"):
        MicroPythonProvider(standin_for=("rc4",))
    with pytest.raises(CryptoError, match="signature rsa not available in the micropython"):
        MP.sign("rsa", b"", b"")


def test_rsa_signature_equals_openssl_pkeyutl(pki, tmp_path):
    """Cross-check with an independent implementation: `openssl pkeyutl -sign` without a digest
    is PKCS#1 v1.5 type 1 over the raw input -- deterministic, so the bytes must be identical.
    (openssl is installed by mk/micropython.mk's APT_PACKAGES.)"""
    import shutil
    import subprocess
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is missing (make deps installs it)"
    key_file = tmp_path / "key.pem"
    key_file.write_bytes(pki["key_pem"])
    data = bytes(range(32))                                  # a SHA-256-sized HASH_I
    (tmp_path / "hash").write_bytes(data)
    proc = subprocess.run([openssl, "pkeyutl", "-sign", "-inkey", str(key_file), "-in",
                           str(tmp_path / "hash"), "-pkeyopt", "rsa_padding_mode:pkcs1"],
                          capture_output=True, check=True)
    assert P.sign("rsa", pki["key_pem"], data) == proc.stdout


def test_rsa_sign_takes_traditional_pem_and_names_bad_keys(pki):
    """Key files users have: PKCS#8 (above) and OpenSSL's traditional "RSA PRIVATE KEY" both sign;
    garbage, an EC key and a passphrase-protected key are refused with the reason."""
    from cryptography.hazmat.primitives.asymmetric import ec
    traditional = pki["key"].private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption())
    assert P.sign("rsa", traditional, bytes(20)) == P.sign("rsa", pki["key_pem"], bytes(20))
    with pytest.raises(CryptoError, match="loading the private key failed in OpenSSL"):
        P.sign("rsa", b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n", bytes(20))
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(CryptoError, match="not an RSA key"):
        P.sign("rsa", ec_pem, bytes(20))


def test_rsa_sign_refuses_an_encrypted_key_without_asking_for_a_passphrase(pki, tmp_path):
    """OpenSSL's default passphrase callback reads the terminal; the daemon must fail instead.
    In a child process in its own session (no terminal to read), with a time limit."""
    import subprocess
    import sys
    encrypted = pki["key"].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                         serialization.BestAvailableEncryption(b"secret"))
    (tmp_path / "key.pem").write_bytes(encrypted)
    code = ("import sys; from ikecore.crypto_cryptography import CryptographyProvider as C\n"
            "from ikecore.protocol.crypto import CryptoError\n"
            "try: C().sign('rsa', open(sys.argv[1], 'rb').read(), bytes(20))\n"
            "except CryptoError as exc: print('refused:', exc)\n")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(crypto.__file__))))
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "key.pem")], env=env,
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                         start_new_session=True)
    assert out.stdout.startswith("refused: loading the private key failed in OpenSSL"), out


def test_libcrypto_is_openssl_3_and_the_one_hashlib_uses():
    """One copy of OpenSSL per process: our binding's library is the one _hashlib loaded."""
    from ikecore import libcrypto
    text = libcrypto.version_text()
    assert text.startswith("3."), text
    with open("/proc/self/maps") as f:
        copies = set(line.split()[-1] for line in f if "libcrypto.so" in line)
    assert len(copies) == 1, copies
