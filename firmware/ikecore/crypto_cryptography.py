"""The daemon's crypto provider, on the `cryptography` package (CPython only).

Pinned to 38.0.4, the version Debian bookworm ships, so host tests run the image's code. Every
primitive comes from the library; this file only adapts names, formats and errors to the
`ikecore.crypto.CryptoProvider` interface.
"""
import os

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.backends.openssl import rsa as _openssl_rsa
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import dh, ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.x509.oid import NameOID

from . import crypto
from .crypto import CryptoError

_HASHES = {
    "md5": hashes.MD5,
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

_CURVES = {"ecp256": ec.SECP256R1, "ecp384": ec.SECP384R1}

# Short attribute names in DN text, as strongSwan prints them (ordered as in the certificate).
_DN_NAMES = (
    ("C", NameOID.COUNTRY_NAME),
    ("ST", NameOID.STATE_OR_PROVINCE_NAME),
    ("L", NameOID.LOCALITY_NAME),
    ("O", NameOID.ORGANIZATION_NAME),
    ("OU", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("CN", NameOID.COMMON_NAME),
    ("E", NameOID.EMAIL_ADDRESS),
    ("SN", NameOID.SURNAME),
    ("G", NameOID.GIVEN_NAME),
    ("serialNumber", NameOID.SERIAL_NUMBER),
    ("DC", NameOID.DOMAIN_COMPONENT),
    ("UID", NameOID.USER_ID),
    ("T", NameOID.TITLE),
)
_DN_SHORT = dict((oid.dotted_string, short) for short, oid in _DN_NAMES)
_DN_OID = dict((short.upper(), oid) for short, oid in _DN_NAMES)
_DN_OID.update({"EMAILADDRESS": NameOID.EMAIL_ADDRESS, "S": NameOID.STATE_OR_PROVINCE_NAME})


def _hash_algorithm(alg):
    cls = _HASHES.get(alg)
    if cls is None:
        raise CryptoError("unknown hash %r" % (alg,))
    return cls()


def _cipher_algorithm(cipher, key):
    if cipher == "3des":
        return algorithms.TripleDES(key)
    return algorithms.AES(key)


def _load_cert(cert_der):
    try:
        return x509.load_der_x509_certificate(bytes(cert_der))
    except ValueError as exc:
        raise CryptoError("malformed certificate: %s" % exc)


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
        digest = hashes.Hash(_hash_algorithm(alg))
        digest.update(bytes(data))
        return digest.finalize()

    def prf(self, alg, key, data):
        mac = hmac.HMAC(bytes(key), _hash_algorithm(alg))
        mac.update(bytes(data))
        return mac.finalize()

    # -- Diffie-Hellman ------------------------------------------------------------------
    def dh_new(self, group):
        kind, length, _ = crypto.group_info(group)
        if kind == "modp":
            numbers = dh.DHParameterNumbers(crypto.modp_prime(group), crypto.MODP_GENERATOR)
            private = numbers.parameters().generate_private_key()
            y = private.public_key().public_numbers().y
            return private, crypto.int_to_bytes(y, length)
        private = ec.generate_private_key(_CURVES[group]())
        # RFC 5903 section 7: x || y, each the field size, without the 0x04 point-format octet.
        point = private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return private, point[1:]

    def dh_shared(self, group, private, peer_public):
        kind, length, _ = crypto.group_info(group)
        peer_public = bytes(peer_public)
        if kind == "modp":
            y = crypto.check_modp_public(group, peer_public)
            numbers = dh.DHParameterNumbers(crypto.modp_prime(group), crypto.MODP_GENERATOR)
            try:
                peer = dh.DHPublicNumbers(y, numbers).public_key()
                # exchange() left-pads g^xy to the prime's length, as IKE needs.
                return private.exchange(peer)
            except ValueError as exc:
                raise CryptoError("%s key exchange failed: %s" % (group, exc))
        if len(peer_public) != length:
            raise CryptoError("%s public value has %d bytes, expected %d"
                              % (group, len(peer_public), length))
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(
                _CURVES[group](), b"\x04" + peer_public)   # rejects points not on the curve
            # RFC 5903 section 7: the shared secret is the x coordinate of the product.
            return private.exchange(ec.ECDH(), peer)
        except ValueError as exc:
            raise CryptoError("%s public value is not a valid point: %s" % (group, exc))

    # -- CBC -----------------------------------------------------------------------------
    def encrypt(self, cipher, key, iv, data):
        crypto.check_cbc_input(cipher, key, iv, data)
        ctx = Cipher(_cipher_algorithm(cipher, bytes(key)), modes.CBC(bytes(iv))).encryptor()
        return ctx.update(bytes(data)) + ctx.finalize()

    def decrypt(self, cipher, key, iv, data):
        crypto.check_cbc_input(cipher, key, iv, data)
        ctx = Cipher(_cipher_algorithm(cipher, bytes(key)), modes.CBC(bytes(iv))).decryptor()
        return ctx.update(bytes(data)) + ctx.finalize()

    # -- RSA signatures ------------------------------------------------------------------
    def sign(self, alg, key_pem, data):
        if alg != "rsa":
            raise CryptoError("unknown signature algorithm %r" % (alg,))
        try:
            key = serialization.load_pem_private_key(bytes(key_pem), password=None)
        except (ValueError, TypeError) as exc:
            raise CryptoError("cannot load private key: %s" % exc)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CryptoError("private key is not an RSA key")
        # IKEv1 signs HASH_I/HASH_R with PKCS#1 v1.5 padding but WITHOUT the DigestInfo wrapper
        # (strongSwan SIGN_RSA_EMSA_PKCS1_NULL). cryptography's public sign() always adds a
        # DigestInfo; its OpenSSL backend's signing helper with no digest is exactly
        # EVP_PKEY_sign with RSA_PKCS1_PADDING over the raw bytes. Pinned version: 38.0.4.
        try:
            return _openssl_rsa._rsa_sig_sign(key._backend, padding.PKCS1v15(), None, key,
                                              bytes(data))
        except ValueError as exc:
            raise CryptoError("RSA signing failed: %s" % exc)

    def verify(self, cert_der, data, signature):
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
        cert = _load_cert(cert_der)
        try:
            ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return []
        names = [("dns", v) for v in ext.get_values_for_type(x509.DNSName)]
        names += [("email", v) for v in ext.get_values_for_type(x509.RFC822Name)]
        names += [("ip", str(v)) for v in ext.get_values_for_type(x509.IPAddress)]
        return names

    def cert_verify(self, cert_der, ca_der):
        cert = _load_cert(cert_der)
        ca = _load_cert(ca_der)
        if cert.issuer != ca.subject:
            return "issuer %r is not the CA %r" % (_name_text(cert.issuer), _name_text(ca.subject))
        key = ca.public_key()
        try:
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                           cert.signature_hash_algorithm)
            elif isinstance(key, ec.EllipticCurvePublicKey):
                key.verify(cert.signature, cert.tbs_certificate_bytes,
                           ec.ECDSA(cert.signature_hash_algorithm))
            else:
                return "unsupported CA key type"
        except InvalidSignature:
            return "certificate signature does not verify with the CA key"
        return None

    def cert_public_key(self, cert_der):
        return _load_cert(cert_der).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def dn_text(self, dn_der):
        try:
            return _der_dn_text(bytes(dn_der))
        except (ValueError, IndexError) as exc:
            raise CryptoError("malformed distinguished name: %s" % exc)

    def dn_der(self, text):
        attributes = []
        for part in _split_dn(text):
            key, sep, value = part.partition("=")
            oid = _DN_OID.get(key.strip().upper())
            if not sep or oid is None:
                raise CryptoError("bad distinguished name part %r in %r" % (part, text))
            attributes.append(x509.RelativeDistinguishedName(
                [x509.NameAttribute(oid, value.strip())]))
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
