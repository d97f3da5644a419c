"""A small test CA for the certificate tests (unit, browser, interop): issues RSA certificates
(also intermediates, and the broken kinds path validation must refuse), signs the router's
CSRs, publishes CRLs, packs PKCS#12 files. Only cryptography's public API."""
import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

PEM = serialization.Encoding.PEM
UTC = datetime.timezone.utc


def name(cn, org="ikecore test"):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def rsa_key(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key, password=None):
    encryption = (serialization.BestAvailableEncryption(password.encode()) if password
                  else serialization.NoEncryption())
    return key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, encryption)


def pkcs1_pem(key):
    """An RSA key as traditional (PKCS#1) PEM, the form swanctl's rsa/ directory takes."""
    return key.private_bytes(PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def cert_pem(cert):
    return cert.public_bytes(PEM)


def alt_names(names):
    out = []
    for item in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(item)))
        except ValueError:
            out.append(x509.DNSName(item))
    return out


# keyUsage of a CA and of an IKE end entity (RFC 4945 5.1.3.2: digitalSignature)
CA_USAGE = dict(key_cert_sign=True, crl_sign=True)
SIGNING_USAGE = dict(digital_signature=True)


def key_usage(**bits):
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{n: bits.get(n, False) for n in names})


class Authority:
    """A root CA, or with parent= an intermediate CA that parent issued."""

    def __init__(self, cn="Test CA", bits=2048, parent=None):
        self.key = rsa_key(bits)
        now = datetime.datetime.now(UTC)
        self.cert = None
        signer = parent or self
        self.cert = signer._build(name(cn), self.key.public_key(),
                                  now - datetime.timedelta(days=1),
                                  now + datetime.timedelta(days=3650), ca=True,
                                  usage=CA_USAGE if parent else None)

    @classmethod
    def signing_with(cls, cert, key):
        """An Authority that issues with any certificate and its key, also one that is no CA
        (what path validation must refuse)."""
        authority = cls.__new__(cls)
        authority.cert, authority.key = cert, key
        return authority

    def _build(self, subject, public_key, not_before, not_after, ca=False, sans=(), usage=None,
               crl_urls=()):
        issuer = self.cert.subject if self.cert is not None else subject     # a root: itself
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(not_before.replace(tzinfo=None))
                   .not_valid_after(not_after.replace(tzinfo=None))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), False)
        if usage is not None:
            builder = builder.add_extension(key_usage(**usage), True)
        if crl_urls:
            builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier(u) for u in crl_urls], None, None, None)]), False)
        return builder.sign(self.key, hashes.SHA256())

    def issue(self, cn, key=None, days=365, start_days_ago=1, sans=(), usage=None, crl_urls=()):
        """(certificate, key) for cn, valid from start_days_ago ago for `days` from then
        (a negative start_days_ago: not yet valid); usage: keyUsage bits, None: no extension;
        crl_urls: its CRL distribution points."""
        key = key or rsa_key()
        start = datetime.datetime.now(UTC) - datetime.timedelta(days=start_days_ago)
        cert = self._build(name(cn), key.public_key(), start,
                           start + datetime.timedelta(days=days), sans=alt_names(sans),
                           usage=usage, crl_urls=crl_urls)
        return cert, key

    def crl(self, revoked=(), issued_days_ago=0, next_update_days=7, signer=None):
        """A CRL listing the certificates `revoked` (revoked an hour before it was issued),
        signed by this CA (or by `signer`, a wrong key under this CA's name)."""
        issued = datetime.datetime.now(UTC) - datetime.timedelta(days=issued_days_ago)
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(issued.replace(tzinfo=None))
                   .next_update((issued + datetime.timedelta(days=next_update_days))
                                .replace(tzinfo=None)))
        for cert in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                .revocation_date((issued - datetime.timedelta(hours=1)).replace(tzinfo=None))
                .build())
        return builder.sign(signer or self.key, hashes.SHA256())

    def sign_csr(self, csr_pem, days=365):
        csr = x509.load_pem_x509_csr(csr_pem)
        assert csr.is_signature_valid
        try:
            sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            sans = []
        start = datetime.datetime.now(UTC) - datetime.timedelta(days=1)
        return self._build(csr.subject, csr.public_key(), start,
                           start + datetime.timedelta(days=days), sans=list(sans))


def crl_pem(crl):
    return crl.public_bytes(PEM)


def pkcs12_bytes(cert, key, password, cas=()):
    encryption = (serialization.BestAvailableEncryption(password.encode()) if password
                  else serialization.NoEncryption())
    return pkcs12.serialize_key_and_certificates(b"test", key, cert, list(cas) or None,
                                                 encryption)
