"""The Certificates page (webui.certstore behind /settings/certificates): uploads of a CA, of our
certificate and key as PEM or PKCS#12, a key and CSR made on the router and the signed answer;
bad uploads refused with the reason and nothing stored; expiry flagged in the page, the log and
/metrics; a peer picks a stored certificate and the daemon's validator accepts it."""
import logging
import os
import re
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "browser"))
from webui_client import run_webui  # noqa: E402
from webui_pki import Authority, cert_pem, ec_key, key_pem, pkcs12_bytes  # noqa: E402

from ikecore import config  # noqa: E402
from webui import certstore, views_certs  # noqa: E402

URL = "/settings/certificates"
CONFIG = """\
[general]
wan_interface = "eth0"
lan_interface = "eth1"

[[peer]]
name = "branch"
remote_gateway = "198.51.100.2"
psk = "a pre-shared key"
"""
PEER_FORM = {"name": "branch", "remote_gateway": "198.51.100.2", "phase1_mode": "main",
             "act_as": "both", "auth": "rsa", "psk": "", "proposals.0": "aes128-sha1-modp2048",
             "nat_t": "on", "local_id.type": "", "local_id.value": "", "remote_id.type": "",
             "remote_id.value": ""}

CA = Authority()


def store(cfg):
    return cfg.parent / "certs"


def error_of(body):
    match = re.search(rb'<p class="error" role="alert" id="form-error">(.*?)</p>', body, re.S)
    return match and match.group(1).decode().replace("&#39;", "'").replace("&quot;", '"')


def test_upload_ca_and_our_pem_pair_then_a_peer_uses_them(tmp_path):
    cert, key = CA.issue("gw.example", sans=["gw.example", "203.0.113.1"])

    async def scenario(web):
        await web.page(URL)
        r, _ = await web.post(URL + "/ca", {"name": "corp-ca"},
                              {"file": ("ca.pem", cert_pem(CA.cert))})
        assert r.status == 303
        r, _ = await web.post(URL + "/local", {"name": "gw", "format": "pem"},
                              {"file": ("gw.crt", cert_pem(cert)),
                               "key_file": ("gw.key", key_pem(key, "key secret")),
                               })
        assert r.status == 400    # an encrypted key without its password
        r, _ = await web.post(URL + "/local", {"name": "gw", "format": "pem",
                                               "key_password": "key secret"},
                              {"file": ("gw.crt", cert_pem(cert)),
                               "key_file": ("gw.key", key_pem(key, "key secret"))})
        assert r.status == 303, await r.text()
        _, page = await web.page(URL)
        assert "CN=gw.example,O=ikecore test" in page and "CN=Test CA,O=ikecore test" in page
        assert "Our certificate + private key" in page and "CA certificate" in page
        assert "BEGIN PRIVATE KEY" not in page and "PRIVATE" not in page
        # the peer form offers the stored ones; choosing them fills in the key by itself
        _, form = await web.page("/settings/peers/branch")
        assert '<option value="certs/local/gw.pem">gw (CN=gw.example' in form
        assert '<option value="certs/ca/corp-ca.pem">corp-ca (CN=Test CA' in form
        r, body = await web.post("/settings/peers/branch", dict(
            PEER_FORM, cert="certs/local/gw.pem", ca="certs/ca/corp-ca.pem", key=""))
        assert r.status == 303, body
        _, page = await web.page(URL)
        assert re.search(r'id="cert-local-gw".*?<td data-label="Used by">branch</td>', page, re.S)
        # in use: not deletable
        r, body = await web.post(URL + "/local/gw/delete", {"confirmed": "1"})
        assert r.status == 409 and b"used by peer branch" in body
    run_webui(tmp_path, CONFIG, scenario)
    cfg = tmp_path / "etc" / "ikecore.toml"
    text = cfg.read_text()
    assert 'cert = "certs/local/gw.pem"' in text and 'key = "certs/local/gw.key"' in text
    assert 'ca = "certs/ca/corp-ca.pem"' in text and "psk" not in text
    peer = config.load(str(cfg)).peers["branch"]          # the daemon's loader takes it
    assert peer.cert_der == cert.public_bytes(serialization.Encoding.DER)
    assert os.stat(store(cfg) / "local" / "gw.key").st_mode & 0o077 == 0
    # stored unencrypted for the daemon, and it is the same key
    stored = serialization.load_pem_private_key(
        (store(cfg) / "local" / "gw.key").read_bytes(), None)
    assert stored.private_numbers() == key.private_numbers()


def test_a_typed_path_still_works(tmp_path):
    cert, key = CA.issue("gw.example")
    (tmp_path / "etc").mkdir()
    for filename, data in (("gw.crt", cert_pem(cert)), ("gw.key", key_pem(key)),
                           ("ca.crt", cert_pem(CA.cert))):
        (tmp_path / "etc" / filename).write_bytes(data)
    os.chmod(str(tmp_path / "etc" / "gw.key"), 0o600)

    async def scenario(web):
        # a typed path that is wrong: the error names it, the typed text is shown again
        r, body = await web.post("/settings/peers/branch", dict(
            PEER_FORM, cert_path="nowhere.crt", key="gw.key", ca_path="ca.crt"))
        assert r.status == 400 and b"nowhere.crt does not exist" in body
        assert b'id="f-cert_path" name="cert_path" value="nowhere.crt"' in body
        r, body = await web.post("/settings/peers/branch", dict(
            PEER_FORM, cert_path="gw.crt", key="gw.key", ca_path="ca.crt"))
        assert r.status == 303, body
        _, form = await web.page("/settings/peers/branch")
        assert '<option value="gw.crt" selected>gw.crt</option>' in form
        _, page = await web.page(URL)
        # the typed files are listed too, with the peers using them
        assert re.search(r'<td data-label="Name">gw.crt</td>.*?File named by a peer.*?'
                         r'<td data-label="Used by">branch</td>', page, re.S)
    run_webui(tmp_path, CONFIG, scenario)
    assert 'cert = "gw.crt"' in (tmp_path / "etc" / "ikecore.toml").read_text()


def test_pkcs12_upload_and_a_wrong_password(tmp_path):
    cert, key = CA.issue("p12.example")
    p12 = pkcs12_bytes(cert, key, "p12 password", cas=[CA.cert])

    async def scenario(web):
        await web.page(URL)
        r, body = await web.post(URL + "/local", {"name": "gw", "format": "pkcs12",
                                                  "password": "wrong"},
                                 {"file": ("gw.p12", p12)})
        assert r.status == 400
        assert "the password is wrong" in error_of(body)
        assert not store(web.cfg).exists()
        r, body = await web.post(URL + "/local", {"name": "gw", "format": "pkcs12",
                                                  "password": "x"},
                                 {"file": ("gw.p12", b"this is not a p12 file")})
        assert "not a PKCS#12" in error_of(body)
        r, _ = await web.post(URL + "/local", {"name": "gw", "format": "pkcs12",
                                               "password": "p12 password"},
                              {"file": ("gw.p12", p12)})
        assert r.status == 303
        _, page = await web.page(URL)
        assert "CN=p12.example" in page and 'id="cert-ca-gw-ca1"' in page
        assert "p12 password" not in page
    run_webui(tmp_path, CONFIG, scenario)


def test_bad_uploads_are_refused_with_the_reason_and_nothing_is_stored(tmp_path):
    cert, key = CA.issue("gw.example")
    _, other_key = CA.issue("other.example")
    ec_cert, ec = CA.issue("ec.example", key=ec_key())

    async def scenario(web):
        await web.page(URL)
        cases = [
            ("/ca", {"name": "x"}, {"file": ("ca.pem", b"hello, world\n")},
             "not an X.509 certificate"),
            ("/ca", {"name": "x"}, {"file": ("leaf.pem", cert_pem(cert))},
             "is not a CA certificate"),
            ("/ca", {"name": "bad name!"}, {"file": ("ca.pem", cert_pem(CA.cert))},
             "is not a valid name"),
            ("/local", {"name": "gw", "format": "pem"},
             {"file": ("gw.crt", cert_pem(cert)), "key_file": ("other.key", key_pem(other_key))},
             "the private key does not belong to the certificate CN=gw.example"),
            ("/local", {"name": "gw", "format": "pem"},
             {"file": ("gw.crt", key_pem(key)), "key_file": ("gw.key", key_pem(key))},
             "the certificate file is not an X.509 certificate"),
            ("/local", {"name": "gw", "format": "pem"},
             {"file": ("gw.crt", cert_pem(cert)), "key_file": ("gw.key", cert_pem(cert))},
             "the key file is not a private key"),
            ("/local", {"name": "gw", "format": "pem"},
             {"file": ("ec.crt", cert_pem(ec_cert)), "key_file": ("ec.key", key_pem(ec))},
             "not an RSA key"),
        ]
        for path, fields, files, reason in cases:
            r, body = await web.post(URL + path, fields, files)
            assert r.status == 400, (path, reason)
            assert reason in error_of(body), (error_of(body), reason)
        assert not store(web.cfg).exists() or not any(
            f for _, _, f in os.walk(store(web.cfg)))
    run_webui(tmp_path, CONFIG, scenario)


def test_generate_a_key_and_csr_then_upload_the_signed_certificate(tmp_path):
    async def scenario(web):
        await web.page(URL)
        r, _ = await web.post(URL + "/generate", {
            "name": "router", "common_name": "router.example", "organization": "Example",
            "country": "se", "alt_names": "router.example, 203.0.113.1", "bits": "2048"})
        assert r.status == 303
        _, page = await web.page(URL)
        assert "Request waiting for its certificate" in page
        r = await web.client.get(URL + "/request/router.csr")
        assert r.status == 200
        assert r.headers["Content-Disposition"] == 'attachment; filename="router.csr"'
        csr_pem = await r.read()
        csr = x509.load_pem_x509_csr(csr_pem)
        assert csr.subject.rfc4514_string() == "C=SE,O=Example,CN=router.example"
        assert b"PRIVATE" not in csr_pem
        # a certificate for another key is refused
        stranger, _ = CA.issue("router.example")
        r, body = await web.post(URL + "/request/router/signed", {},
                                 {"file": ("router.crt", cert_pem(stranger))})
        assert r.status == 400 and "does not match the key of request 'router'" in error_of(body)
        signed = CA.sign_csr(csr_pem)
        r, _ = await web.post(URL + "/request/router/signed", {},
                              {"file": ("router.crt", cert_pem(signed))})
        assert r.status == 303
        _, page = await web.page(URL)
        assert "Request waiting" not in page and "Our certificate + private key" in page
        assert (await web.client.get(URL + "/request/router.csr")).status == 404
    run_webui(tmp_path, CONFIG, scenario)
    local = store(tmp_path / "etc" / "ikecore.toml") / "local"
    assert sorted(os.listdir(local)) == ["router.key", "router.pem"]
    sans = x509.load_pem_x509_certificate((local / "router.pem").read_bytes()).extensions \
        .get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["router.example"]


def test_expired_and_expiring_certificates_are_flagged(tmp_path, caplog):
    expired, _ = CA.issue("old.example", days=10, start_days_ago=40)
    soon, _ = CA.issue("soon.example", days=40, start_days_ago=30)
    fine, _ = CA.issue("fine.example", days=400)
    (tmp_path / "etc" / "certs" / "ca").mkdir(parents=True)
    for name, cert in (("old", expired), ("soon", soon), ("fine", fine)):
        (tmp_path / "etc" / "certs" / "ca" / ("%s.pem" % name)).write_bytes(cert_pem(cert))

    async def scenario(web):
        _, page = await web.page(URL)
        warnings = re.findall(r'<p class="notice cert-warning" role="status">(.*?)</p>', page,
                              re.S)
        assert len(warnings) == 2
        assert "<strong>old</strong>" in warnings[0] and "expired" in warnings[0]
        assert "<strong>soon</strong>" in warnings[1] and "expires soon" in warnings[1]
        assert re.search(r'id="cert-ca-old" class="cert-warn"', page)
        assert 'id="cert-ca-fine" class' not in page
        r = await web.client.get("/metrics")
        text = await r.text()
        assert re.search(r'^ikecore_certificate_expiring\{name="old",kind="ca",'
                         r'path="certs/ca/old.pem",subject="CN=old.example,O=ikecore test"\} 1$',
                         text, re.M)
        assert re.search(r'^ikecore_certificate_expiring\{name="soon",.*\} 1$', text, re.M)
        assert re.search(r'^ikecore_certificate_expiring\{name="fine",.*\} 0$', text, re.M)
        not_after = int(certstore.describe(expired)["not_after"].timestamp())
        assert re.search(r'^ikecore_certificate_not_after_timestamp_seconds\{name="old",.*\} %d$'
                         % not_after, text, re.M)
    run_webui(tmp_path, CONFIG, scenario)
    with caplog.at_level(logging.WARNING, logger="webui.certificates"):
        views_certs.log_expiring(str(tmp_path / "etc" / "ikecore.toml"))
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 2
    assert logged[0].startswith("certificate certs/ca/old.pem (CN=old.example,O=ikecore test) "
                                "expired: valid until ")
    assert "certs/ca/soon.pem" in logged[1] and "expires soon" in logged[1]
