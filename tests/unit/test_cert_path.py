"""Certificate path validation through OpenSSL's verifier (crypto provider `cert_verify`), with
certificates generated here: every refusal carries its precise reason, the good chains pass."""
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ikecore.crypto_cryptography import CryptographyProvider

P = CryptographyProvider()
DER = serialization.Encoding.DER
NOW = datetime.datetime(2026, 6, 1, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
AT = NOW.timestamp()


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ikecore test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class _Cert:
    def __init__(self, cn, issuer=None, ca=False, start=NOW - DAY, end=NOW + 365 * DAY,
                 usage=None, serial=None):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(cn)
        signer = issuer or self
        b = (x509.CertificateBuilder().subject_name(self.name).issuer_name(signer.name)
             .public_key(self.key.public_key())
             .serial_number(serial or x509.random_serial_number())
             .not_valid_before(start).not_valid_after(end)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True))
        flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment",
                               "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                               "encipher_only", "decipher_only"), False)
        flags.update(usage or ({"key_cert_sign": True, "crl_sign": True} if ca
                               else {"digital_signature": True}))
        b = b.add_extension(x509.KeyUsage(**flags), True)
        self.cert = b.sign(signer.key, hashes.SHA256())
        self.der = self.cert.public_bytes(DER)


@pytest.fixture(scope="module")
def pki():
    root = _Cert("Root CA", ca=True)
    inter = _Cert("Intermediate CA", root, ca=True)
    return {
        "root": root, "inter": inter,
        "other": _Cert("Other CA", ca=True),
        "good": _Cert("moon", root),
        "via_inter": _Cert("sun", inter),
        "expired": _Cert("old", root, start=NOW - 30 * DAY, end=NOW - 2 * DAY),
        "future": _Cert("new", root, start=NOW + 2 * DAY),
        "revoked": _Cert("gone", root, serial=4242),
        "not_ca": _Cert("plain leaf", root),
        "bad_usage": _Cert("encipher only", root, usage={"key_encipherment": True}),
        "ca_no_certsign": _Cert("Signing-less CA", root, ca=True,
                                usage={"digital_signature": True}),
    }


def _crl(pki):
    root = pki["root"]
    revoked = (x509.RevokedCertificateBuilder().serial_number(4242)
               .revocation_date(NOW - 3 * DAY).build())
    return (x509.CertificateRevocationListBuilder().issuer_name(root.name)
            .last_update(NOW - 3 * DAY).next_update(NOW + 30 * DAY)
            .add_revoked_certificate(revoked).sign(root.key, hashes.SHA256())).public_bytes(DER)


def test_good_chain_and_intermediate_chain_are_accepted(pki):
    root = [pki["root"].der]
    assert P.cert_verify(pki["good"].der, root, at_time=AT) is None
    assert P.cert_verify(pki["via_inter"].der, root, [pki["inter"].der], at_time=AT) is None
    # several trusted CAs: the right one among them
    assert P.cert_verify(pki["good"].der, [pki["other"].der] + root, at_time=AT) is None
    # with a CRL that does not list it
    assert P.cert_verify(pki["good"].der, root, crl_ders=[_crl(pki)], at_time=AT) is None


def test_intermediate_missing_is_an_unknown_issuer(pki):
    assert (P.cert_verify(pki["via_inter"].der, [pki["root"].der], at_time=AT)
            == "unknown issuer O=ikecore test, CN=Intermediate CA")
    assert (P.cert_verify(pki["good"].der, [pki["other"].der], at_time=AT)
            == "unknown issuer O=ikecore test, CN=Root CA")


def test_dates(pki):
    root = [pki["root"].der]
    expired = P.cert_verify(pki["expired"].der, root, at_time=AT)
    end = pki["expired"].cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert expired == "expired on " + end
    start = pki["future"].cert.not_valid_before_utc.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert P.cert_verify(pki["future"].der, root, at_time=AT) == "not yet valid until " + start
    # clock not synchronized: dates are not enforced
    assert P.cert_verify(pki["expired"].der, root, at_time=None) is None
    assert P.cert_verify(pki["future"].der, root, at_time=None) is None


def test_revoked_by_crl(pki):
    when = (NOW - 3 * DAY).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert (P.cert_verify(pki["revoked"].der, [pki["root"].der], crl_ders=[_crl(pki)],
                          at_time=AT) == "revoked on " + when)
    assert P.cert_verify(pki["revoked"].der, [pki["root"].der], at_time=AT) is None


def test_leaf_without_ca_bit_used_as_issuer(pki):
    fake = _Cert("mallory", pki["not_ca"])
    assert (P.cert_verify(fake.der, [pki["root"].der], [pki["not_ca"].der], at_time=AT)
            == "issuer O=ikecore test, CN=plain leaf is not a CA")


def test_wrong_key_usage(pki):
    assert P.cert_verify(pki["bad_usage"].der, [pki["root"].der], at_time=AT).startswith(
        "wrong key usage")
    # A CA whose keyUsage lacks keyCertSign: OpenSSL 3 does not count it as a CA at all.
    leaf = _Cert("under signing-less", pki["ca_no_certsign"])
    assert (P.cert_verify(leaf.der, [pki["root"].der], [pki["ca_no_certsign"].der], at_time=AT)
            == "issuer O=ikecore test, CN=Signing-less CA is not a CA")


def test_crls_must_be_current_and_cover_the_issuer(pki):
    """With CRLs configured (X509_V_FLAG_CRL_CHECK), the peer's certificate needs a CRL of its
    issuer that is current at the synchronized clock."""
    root = pki["root"]

    def crl(last, next_):
        return (x509.CertificateRevocationListBuilder().issuer_name(root.name)
                .last_update(last).next_update(next_).sign(root.key, hashes.SHA256())
                ).public_bytes(DER)
    stale = crl(NOW - 10 * DAY, NOW - 3 * DAY)
    assert (P.cert_verify(pki["good"].der, [root.der], crl_ders=[stale], at_time=AT)
            == "the CRL of O=ikecore test, CN=Root CA is out of date since %s (its next update)"
            % (NOW - 3 * DAY).strftime("%Y-%m-%d %H:%M:%S UTC"))
    assert P.cert_verify(pki["good"].der, [root.der], crl_ders=[stale], at_time=None) is None
    early = crl(NOW + DAY, NOW + 3 * DAY)
    assert (P.cert_verify(pki["good"].der, [root.der], crl_ders=[early], at_time=AT)
            == "the CRL of O=ikecore test, CN=Root CA is not valid until %s"
            % (NOW + DAY).strftime("%Y-%m-%d %H:%M:%S UTC"))
    # the root's CRL says nothing about what the intermediate issued
    assert (P.cert_verify(pki["via_inter"].der, [root.der], [pki["inter"].der],
                          crl_ders=[_crl(pki)], at_time=AT)
            == "no CRL of its issuer O=ikecore test, CN=Intermediate CA is configured")


def _signed_crl(issuer, revoked_serials=(), last=NOW - 3 * DAY, next_=NOW + 30 * DAY):
    b = (x509.CertificateRevocationListBuilder().issuer_name(issuer.name)
         .last_update(last).next_update(next_))
    for serial in revoked_serials:
        b = b.add_revoked_certificate(x509.RevokedCertificateBuilder().serial_number(serial)
                                      .revocation_date(NOW - 2 * DAY).build())
    return b.sign(issuer.key, hashes.SHA256()).public_bytes(DER)


def test_whole_chain_revocation():
    """X509_V_FLAG_CRL_CHECK_ALL: an intermediate the root's CRL lists is refused, naming it;
    an intermediate whose issuer has no CRL configured passes (the leaf's issuer must have one,
    as before); a stale CRL of the root refuses the chain as a stale CRL of the leaf's issuer
    does."""
    root = _Cert("Root CA", ca=True)
    inter = _Cert("Revoked Intermediate CA", root, ca=True, serial=777)
    leaf = _Cert("sun", inter)
    when = (NOW - 2 * DAY).strftime("%Y-%m-%d %H:%M:%S UTC")
    inter_crl = _signed_crl(inter)
    root_crl = _signed_crl(root, [777])
    assert (P.cert_verify(leaf.der, [root.der], [inter.der], crl_ders=[inter_crl, root_crl],
                          at_time=AT)
            == "intermediate CA O=ikecore test, CN=Revoked Intermediate CA revoked on " + when)
    # dates not enforced (clock not synchronized): revocation still is
    assert (P.cert_verify(leaf.der, [root.der], [inter.der], crl_ders=[root_crl, inter_crl],
                          at_time=None)
            == "intermediate CA O=ikecore test, CN=Revoked Intermediate CA revoked on " + when)
    # no CRL of the root configured: the intermediate is not checked, the leaf still is
    assert P.cert_verify(leaf.der, [root.der], [inter.der], crl_ders=[inter_crl],
                         at_time=AT) is None
    revoked_leaf = _Cert("gone", inter, serial=99)
    assert (P.cert_verify(revoked_leaf.der, [root.der], [inter.der],
                          crl_ders=[_signed_crl(inter, [99])], at_time=AT)
            == "revoked on " + when)
    # the root's CRL current and not listing it: accepted
    assert P.cert_verify(leaf.der, [root.der], [inter.der],
                         crl_ders=[inter_crl, _signed_crl(root, [5])], at_time=AT) is None
    stale_root = _signed_crl(root, last=NOW - 10 * DAY, next_=NOW - DAY)
    assert (P.cert_verify(leaf.der, [root.der], [inter.der], crl_ders=[inter_crl, stale_root],
                          at_time=AT)
            == "the CRL of O=ikecore test, CN=Root CA is out of date since %s (its next update)"
            % (NOW - DAY).strftime("%Y-%m-%d %H:%M:%S UTC"))
