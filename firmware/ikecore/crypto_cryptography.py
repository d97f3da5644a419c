"""The daemon's crypto provider (CPython only), on public APIs only.

Three sources, all OpenSSL underneath; this file adapts names, formats and errors to the
`ikecore.protocol.crypto.CryptoProvider` interface and writes no primitive itself:
  * hash / PRF: the standard library's hashlib / hmac (OpenSSL's digests, one C call each);
  * CBC, MODP Diffie-Hellman and the raw RSA signature IKEv1 needs: OpenSSL's public C API
    through our own ctypes binding (`ikecore.libcrypto`). MODP is OpenSSL's constant-time
    BN_mod_exp_mont_consttime with a short private exponent (RFC 3526 section 8) and the peer
    value checked for 1 < y < p-1 (`crypto.check_modp_public`): `cryptography`'s dh.exchange()
    also runs OpenSSL's full public-key check, one more 2048-bit exponentiation per exchange,
    which buys nothing for these safe primes (below, docs/performance.md);
  * x509, RSA verification and ECP: `cryptography`'s public API (any release from 38 to 48),
    imported only when a peer needs them (certificates, an ECP group) -- its import pulls in
    `cryptography.x509`, ~0.3 s on the host and seconds in the guest.
"""
import hashlib
import hmac
import os

from . import libcrypto
from .protocol import crypto
from .protocol.crypto import CryptoError

_HASHES = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}

_EVP_CIPHERS = {
    "3des": b"des-ede3-cbc",
    "aes128": b"aes-128-cbc",
    "aes192": b"aes-192-cbc",
    "aes256": b"aes-256-cbc",
}

# Private exponent length in bits per MODP group. RFC 3526 section 8 estimates each group's
# strength and asks for an exponent of at least twice that (2048: 220-320 bits, 3072: 260-420).
# We take 256 bits (twice 128) for every group up to 2048 -- above OpenSSL's own choice for these
# primes (224 for 2048) -- and 320 for 3072. A modexp costs in proportion to the exponent's length,
# so this is ~8x cheaper than a full-length exponent.
_MODP_EXPONENT_BITS = {"modp768": 256, "modp1024": 256, "modp1536": 256, "modp2048": 256,
                       "modp3072": 320}

_CURVE_NAMES = {"ecp256": "SECP256R1", "ecp384": "SECP384R1"}

# Short attribute names in DN text, as strongSwan prints them (ordered as in the certificate),
# by dotted OID (filled in with cryptography's NameOID on first use: see _dn_tables()).
_DN_NAMES = (
    ("C", "2.5.4.6"),
    ("ST", "2.5.4.8"),
    ("L", "2.5.4.7"),
    ("O", "2.5.4.10"),
    ("OU", "2.5.4.11"),
    ("CN", "2.5.4.3"),
    ("E", "1.2.840.113549.1.9.1"),
    ("SN", "2.5.4.4"),
    ("G", "2.5.4.42"),
    ("serialNumber", "2.5.4.5"),
    ("DC", "0.9.2342.19200300.100.1.25"),
    ("UID", "0.9.2342.19200300.100.1.1"),
    ("T", "2.5.4.12"),
)
_DN_SHORT = dict((oid, short) for short, oid in _DN_NAMES)
_DN_OID = dict((short.upper(), oid) for short, oid in _DN_NAMES)
_DN_OID.update({"EMAILADDRESS": "1.2.840.113549.1.9.1", "S": "2.5.4.8"})


def _hash_constructor(alg):
    constructor = _HASHES.get(alg)
    if constructor is None:
        raise CryptoError("unknown hash %r" % (alg,))
    return constructor


def _cbc(cipher, key, iv, data, encrypt):
    crypto.check_cbc_input(cipher, key, iv, data)
    return libcrypto.cbc(_EVP_CIPHERS[cipher], bytes(key), bytes(iv), bytes(data), encrypt)


_modp_moduli = {}     # group -> libcrypto.Modulus (each prime's Montgomery set-up done once)


def _modp_power(group, base, exponent):
    """base^exponent mod p (big-endian bytes), left-padded to the prime's length."""
    modulus = _modp_moduli.get(group)
    if modulus is None:
        modulus = _modp_moduli[group] = libcrypto.Modulus(
            crypto.int_to_bytes(crypto.modp_prime(group), crypto.group_info(group)[1]))
    return modulus.power(base, exponent)


class ModpPrivateKey:
    """Our MODP private value x (the dh_new handle). `exponent` is x as big-endian bytes."""
    __slots__ = ("group", "exponent")

    def __init__(self, group, exponent):
        self.group = group
        self.exponent = exponent

    def __repr__(self):
        return "<ModpPrivateKey %s>" % self.group       # never the secret


def _modp_new(group):
    bits = _MODP_EXPONENT_BITS[group]
    x = bytearray(os.urandom((bits + 7) // 8))
    x[0] = (x[0] & ((1 << (bits - 8 * (len(x) - 1))) - 1)) | (1 << (bits - 1 - 8 * (len(x) - 1)))
    # ^ exactly `bits` long: top bit set, so x > 1 and the exponent has its full strength.
    private = ModpPrivateKey(group, bytes(x))
    return private, _modp_power(group, b"\x02", private.exponent)    # g = 2 (MODP_GENERATOR)


def _modp_shared(group, private, peer_public):
    # Validation: length and 1 < y < p-1. That is all a safe prime p = 2q + 1 needs: the only
    # subgroups are {1}, {1, p-1}, the order-q subgroup and the whole group, so after excluding
    # 1 and p-1 no peer value can confine g^xy to a small set. (OpenSSL's extra check, y^q = 1,
    # only distinguishes the order-q subgroup from the full group and leaks at most one bit.)
    crypto.check_modp_public(group, peer_public)
    if not isinstance(private, ModpPrivateKey) or private.group != group:
        raise CryptoError("private key is not a %s key of this provider" % group)
    return _modp_power(group, peer_public, private.exponent)


def _ec():
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec


def _load_cert(cert_der):
    from cryptography import x509
    try:
        return x509.load_der_x509_certificate(bytes(cert_der))
    except ValueError as exc:
        raise CryptoError("malformed certificate: %s" % exc)


def _date(cert, attribute):
    """A certificate's, CRL's or CRL entry's date as "2026-12-07 07:00:00 UTC" (cryptography
    42+ has *_utc, 38 only the naive UTC attribute, deprecated since)."""
    value = getattr(cert, attribute + "_utc", None) or getattr(cert, attribute)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _crls_of(cert, crl_ders):
    """The CRLs among crl_ders that cert's issuer published."""
    from cryptography import x509
    crls = [x509.load_der_x509_crl(bytes(der)) for der in crl_ders]
    return [crl for crl in crls if crl.issuer == cert.issuer]


def _revocation_date(cert, crl_ders):
    for crl in _crls_of(cert, crl_ders):
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        if entry is not None:
            return _date(entry, "revocation_date")
    return "an unknown date"


def _crl_date(cert, crl_ders, attribute):
    dates = [_date(crl, attribute) for crl in _crls_of(cert, crl_ders)]
    return dates[0] if dates else "an unknown date"


def _name_text(name):
    # Via the DER, so certificates and ID payloads get their text from the same code.
    return _der_dn_text(name.public_bytes())


def _der_dn_text(dn_der):
    return ", ".join("%s=%s" % (_DN_SHORT.get(oid, oid), text) for oid, text in _decode_name(dn_der))


def _split_dn(text):
    """Split "C=CH, O=a\\, b, CN=x" at unescaped commas."""
    parts, current, escaped = [], "", False
    for ch in text:
        if escaped:
            current += ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


class CryptographyProvider(crypto.CryptoProvider):
    name = "cryptography"

    def random(self, n):
        return os.urandom(n)

    def hash(self, alg, data):
        return _hash_constructor(alg)(bytes(data)).digest()

    def prf(self, alg, key, data):
        _hash_constructor(alg)
        return hmac.digest(bytes(key), bytes(data), alg)

    # -- Diffie-Hellman ------------------------------------------------------------------
    def dh_new(self, group):
        kind, length, _ = crypto.group_info(group)
        if kind == "modp":
            return _modp_new(group)
        ec = _ec()
        private = ec.generate_private_key(getattr(ec, _CURVE_NAMES[group])())
        # RFC 5903 section 7: x || y, each the field size, without the 0x04 point-format octet.
        from cryptography.hazmat.primitives import serialization
        point = private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return private, point[1:]

    def dh_shared(self, group, private, peer_public):
        kind, length, _ = crypto.group_info(group)
        peer_public = bytes(peer_public)
        if kind == "modp":
            return _modp_shared(group, private, peer_public)
        if len(peer_public) != length:
            raise CryptoError("%s public value has %d bytes, expected %d"
                              % (group, len(peer_public), length))
        ec = _ec()
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(
                getattr(ec, _CURVE_NAMES[group])(), b"\x04" + peer_public)   # rejects points off the curve
            # RFC 5903 section 7: the shared secret is the x coordinate of the product.
            return private.exchange(ec.ECDH(), peer)
        except ValueError as exc:
            raise CryptoError("%s public value is not a valid point: %s" % (group, exc))

    # -- CBC -----------------------------------------------------------------------------
    def encrypt(self, cipher, key, iv, data):
        return _cbc(cipher, key, iv, data, True)

    def decrypt(self, cipher, key, iv, data):
        return _cbc(cipher, key, iv, data, False)

    # -- RSA signatures ------------------------------------------------------------------
    def sign(self, alg, key_pem, data):
        if alg != "rsa":
            raise CryptoError("unknown signature algorithm %r" % (alg,))
        # IKEv1 signs HASH_I/HASH_R with PKCS#1 v1.5 padding but WITHOUT the DigestInfo wrapper
        # (strongSwan SIGN_RSA_EMSA_PKCS1_NULL); cryptography's public sign() always adds one.
        return libcrypto.rsa_sign_raw(bytes(key_pem), bytes(data))

    def verify(self, cert_der, data, signature):
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
        key = _load_cert(cert_der).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise CryptoError("certificate key is not an RSA key")
        try:
            # algorithm None: recover the raw padded payload, no DigestInfo expected.
            recovered = key.recover_data_from_signature(bytes(signature), padding.PKCS1v15(), None)
        except (InvalidSignature, ValueError):
            return False
        return recovered == bytes(data)

    # -- certificates --------------------------------------------------------------------
    def cert_subject(self, cert_der):
        return _name_text(_load_cert(cert_der).subject)

    def cert_subject_der(self, cert_der):
        return _load_cert(cert_der).subject.public_bytes()

    def cert_alt_names(self, cert_der):
        from cryptography import x509
        cert = _load_cert(cert_der)
        try:
            ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return []
        names = [("dns", v) for v in ext.get_values_for_type(x509.DNSName)]
        names += [("email", v) for v in ext.get_values_for_type(x509.RFC822Name)]
        names += [("ip", str(v)) for v in ext.get_values_for_type(x509.IPAddress)]
        return names

    def cert_verify(self, cert_der, ca_ders, chain_ders=(), crl_ders=(), at_time=None,
                    revocation=False):
        # OpenSSL's path validation does the RFC 5280 work; here only its verdict is worded.
        result = libcrypto.verify_path(bytes(cert_der), [bytes(d) for d in chain_ders],
                                       [bytes(d) for d in ca_ders], [bytes(d) for d in crl_ders],
                                       at_time, revocation=revocation)
        if result is None:
            usage = libcrypto.leaf_key_usage(bytes(cert_der))
            if not usage & (libcrypto.KU_DIGITAL_SIGNATURE | libcrypto.KU_NON_REPUDIATION):
                return "wrong key usage: its keyUsage allows no digitalSignature"
            return None
        code, text, failed_der, depth = result
        failed = _load_cert(failed_der if failed_der else cert_der)
        kind = libcrypto.V_ERR.get(code)
        if kind == "expired":
            return "expired on %s" % _date(failed, "not_valid_after")
        if kind == "not_yet_valid":
            return "not yet valid until %s" % _date(failed, "not_valid_before")
        if kind == "revoked" and depth > 0:
            return "intermediate CA %s revoked on %s" % (_name_text(failed.subject),
                                                        _revocation_date(failed, crl_ders))
        if kind == "revoked":
            return "revoked on %s" % _revocation_date(failed, crl_ders)
        if kind == "unknown_issuer":
            return "unknown issuer %s" % _name_text(failed.issuer)
        if kind == "not_ca":
            return "issuer %s is not a CA" % _name_text(failed.subject)
        # With CRLs configured, the peer's certificate needs a current CRL of its issuer
        if kind == "no_crl":
            return "no CRL of its issuer %s is configured%s" % (
                _name_text(failed.issuer), " or fetched yet" if revocation else "")
        if kind == "crl_expired":
            return "the CRL of %s is out of date since %s (its next update)" % (
                _name_text(failed.issuer), _crl_date(failed, crl_ders, "next_update"))
        if kind == "crl_not_yet_valid":
            return "the CRL of %s is not valid until %s" % (
                _name_text(failed.issuer), _crl_date(failed, crl_ders, "last_update"))
        if kind == "ca_key_usage":
            return "wrong key usage: issuer %s may not sign certificates" % _name_text(failed.subject)
        return "%s (%s)" % (text, _name_text(failed.subject))

    def cert_public_key(self, cert_der):
        from cryptography.hazmat.primitives import serialization
        return _load_cert(cert_der).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def dn_text(self, dn_der):
        try:
            return _der_dn_text(bytes(dn_der))
        except (ValueError, IndexError) as exc:
            raise CryptoError("malformed distinguished name: %s" % exc)

    def dn_der(self, text):
        from cryptography import x509
        attributes = []
        for part in _split_dn(text):
            key, sep, value = part.partition("=")
            oid = _DN_OID.get(key.strip().upper())
            if not sep or oid is None:
                raise CryptoError("bad distinguished name part %r in %r" % (part, text))
            attributes.append(x509.RelativeDistinguishedName(
                [x509.NameAttribute(x509.ObjectIdentifier(oid), value.strip())]))
        return x509.Name(attributes).public_bytes()


def _der_read(data, pos):
    """One DER TLV at pos: (tag, value bytes, next pos). Short tags only (all a Name uses)."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, data[pos:pos + length], pos + length


def _decode_oid(value):
    if not value:
        raise ValueError("empty OID")
    first = value[0]
    arcs = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    n = 0
    for b in value[1:]:
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(n)
            n = 0
    return ".".join(str(a) for a in arcs)


# DER string tags whose value is text: UTF8String, PrintableString, T61String, IA5String, BMPString.
_TEXT_TAGS = {0x0C: "utf-8", 0x13: "ascii", 0x14: "latin-1", 0x16: "ascii", 0x1E: "utf-16-be"}


def _decode_name(dn_der):
    """The attributes of a DER Name as [(dotted OID, text)], in DER order.

    cryptography 38 has no public call that loads a bare Name (only inside a certificate or CSR),
    and an ID_DER_ASN1_DN payload carries exactly that, so this walks the few DER levels itself:
    SEQUENCE OF SET OF SEQUENCE { OID, string }.
    """
    tag, body, end = _der_read(dn_der, 0)
    if tag != 0x30 or end != len(dn_der):
        raise ValueError("a DN must be one DER SEQUENCE")
    attrs, pos = [], 0
    while pos < len(body):
        tag, rdn_set, pos = _der_read(body, pos)
        if tag != 0x31:
            raise ValueError("a DN element must be a SET")
        apos = 0
        while apos < len(rdn_set):
            tag, seq, apos = _der_read(rdn_set, apos)
            otag, oid, vpos = _der_read(seq, 0)
            vtag, value, _ = _der_read(seq, vpos)
            if tag != 0x30 or otag != 0x06:
                raise ValueError("bad DN attribute")
            encoding = _TEXT_TAGS.get(vtag)
            attrs.append((_decode_oid(oid),
                          value.decode(encoding, "replace") if encoding else value.hex()))
    return attrs
