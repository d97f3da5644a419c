"""The Certificates page (webui.certstore behind /settings/certificates): uploads of a CA, of our
certificate and key as PEM or PKCS#12, a key and CSR made on the router and the signed answer,
CRLs (listed with issuer and updates, replaced by newer ones); bad uploads refused with the
reason and nothing stored; expiry and stale CRLs flagged in the page, the log and /metrics; a peer picks stored
certificates, several CAs, intermediates and CRLs, and the daemon's validator accepts them."""
import logging
import os
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from webui_client import run_webui
from webui_pki import Authority, cert_pem, crl_pem, ec_key, key_pem, pkcs12_bytes

from ikecore import config
from webui import certstore, views_certs
from support.config import webui_router

URL = "/settings/certificates"
CONFIG = webui_router(branch=dict(psk="a pre-shared key"))
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


def crl_rows(page):
    """{name: the text of its row's cells} of the CRL list."""
    rows = re.findall(r'<tr id="crl-([^"]+)"[^>]*>(.*?)</tr>', page, re.S)
    return {name: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
            for name, row in rows}


def test_crl_upload_list_replace_and_the_passed_next_update(tmp_path, caplog):
    revoked, _ = CA.issue("revoked.example")
    stale = CA.crl(issued_days_ago=10, next_update_days=7)       # next update 3 days ago
    forged = CA.crl(signer=ec_key())                  # the CA's name, another key's signature

    async def scenario(web):
        await web.page(URL)
        r, body = await web.post(URL + "/ca", {"name": "corp"},
                                 {"file": ("ca.pem", cert_pem(CA.cert))})
        assert r.status == 303, body
        for files, reason in (({"file": ("x.crl", cert_pem(CA.cert))}, "is not an X.509 CRL"),
                              ({"file": ("x.crl", crl_pem(forged))},
                               "the CRL's signature does not verify with the stored CA "
                               "certificate CN=Test CA,O=ikecore test")):
            r, body = await web.post(URL + "/crl", {"name": "corp"}, files)
            assert r.status == 400 and reason in error_of(body), error_of(body)
        assert not (store(web.cfg) / "crl").exists()
        r, _ = await web.post(URL + "/crl", {"name": "corp"}, {"file": ("corp.crl", crl_pem(
            stale))})
        assert r.status == 303
        _, page = await web.page(URL)
        row = crl_rows(page)["corp"]
        assert "CN=Test CA,O=ikecore test" in row and "next update passed" in row, row
        warning = re.findall(r'<p class="notice crl-warning" role="status">(.*?)</p>', page)
        assert len(warning) == 1 and "<strong>corp</strong>" in warning[0], warning
        assert re.search(r'^ikecore_crl_stale\{name="corp",.*\} 1$',
                         await (await web.client.get("/metrics")).text(), re.M)
        # a newer one replaces it (DER this time); an older one does not
        fresh = CA.crl(revoked=[revoked])
        r, _ = await web.post(URL + "/crl", {"name": "corp"}, {"file": ("corp.crl", fresh
                              .public_bytes(serialization.Encoding.DER))})
        assert r.status == 303
        assert "Replaced CRL corp" in await web.flash(URL)
        r, body = await web.post(URL + "/crl", {"name": "corp"}, {"file": ("old.crl", crl_pem(
            stale))})
        assert r.status == 400 and "is older than the stored corp" in error_of(body)
        _, page = await web.page(URL)
        row = crl_rows(page)["corp"]
        assert "next update passed" not in row and "crl-warning" not in page, row
        assert fresh.last_update_utc.strftime("%Y-%m-%d %H:%M UTC") in row
        assert fresh.next_update_utc.strftime("%Y-%m-%d %H:%M UTC") in row
        text = await (await web.client.get("/metrics")).text()
        labels = ('{name="corp",kind="crl",path="certs/crl/corp.pem",'
                  'issuer="CN=Test CA,O=ikecore test"}')
        assert "ikecore_crl_stale%s 0\n" % labels in text
        assert "ikecore_crl_next_update_timestamp_seconds%s %d\n" % (
            labels, int(fresh.next_update_utc.timestamp())) in text
    run_webui(tmp_path, CONFIG, scenario)
    stored = x509.load_pem_x509_crl((store(tmp_path / "etc" / "ikecore.toml") / "crl" / "corp.pem").read_bytes())
    assert stored.get_revoked_certificate_by_serial_number(revoked.serial_number) is not None
    # the log's twice-daily warning names a stale CRL too
    (store(tmp_path / "etc" / "ikecore.toml") / "crl" / "corp.pem").write_bytes(crl_pem(stale))
    with caplog.at_level(logging.WARNING, logger="webui.certificates"):
        views_certs.log_expiring(str(tmp_path / "etc" / "ikecore.toml"))
    assert [r.getMessage() for r in caplog.records if "CRL" in r.getMessage()] == [
        "CRL certs/crl/corp.pem (issuer CN=Test CA,O=ikecore test): its next update %s has "
        "passed, certificates checked against it are refused; upload the CA's newer CRL"
        % stale.next_update_utc.date()]


def test_a_peer_trusts_several_cas_with_intermediates_and_crls(tmp_path):
    other = Authority("Other CA")
    intermediate = Authority("Intermediate CA", parent=CA)
    cert, key = CA.issue("gw.example")

    async def scenario(web):
        await web.page(URL)
        for name, pem in (("corp", cert_pem(CA.cert)), ("other", cert_pem(other.cert)),
                          ("inter", cert_pem(intermediate.cert))):
            r, _ = await web.post(URL + "/ca", {"name": name}, {"file": (name + ".pem", pem)})
            assert r.status == 303
        r, _ = await web.post(URL + "/local", {"name": "gw", "format": "pem"},
                              {"file": ("gw.crt", cert_pem(cert)),
                               "key_file": ("gw.key", key_pem(key))})
        assert r.status == 303
        for name, authority in (("corp", CA), ("inter", intermediate)):
            r, _ = await web.post(URL + "/crl", {"name": name},
                                  {"file": ("x.crl", crl_pem(authority.crl()))})
            assert r.status == 303
        before = web.cfg.read_text()
        # a CA certificate given as a CRL: the validator's error on the CRLs field, file kept
        bad = list(PEER_FORM.items()) + [("cert", "certs/local/gw.pem"), ("key", ""),
                                         ("ca", "certs/ca/corp.pem"),
                                         ("crls", "certs/ca/other.pem")]
        r, body = await web.post("/settings/peers/branch", bad)
        assert r.status == 400
        assert re.search(rb'id="error-crls" role="alert">[^<]*certs/ca/other.pem is not a PEM '
                         rb'or DER X.509 CRL<', body), body
        assert rb'<option value="certs/ca/corp.pem" selected>' in body
        assert web.cfg.read_text() == before
        # no CA at all: named on the CA field
        r, body = await web.post("/settings/peers/branch", list(PEER_FORM.items()) + [
            ("cert", "certs/local/gw.pem"), ("key", "")])
        assert r.status == 400 and b'id="error-ca" role="alert">auth = &#34;rsa&#34; needs' \
            in body.replace(b"&quot;", b"&#34;"), body
        good = list(PEER_FORM.items()) + [
            ("cert", "certs/local/gw.pem"), ("key", ""), ("ca", "certs/ca/corp.pem"),
            ("ca", "certs/ca/other.pem"), ("intermediates", "certs/ca/inter.pem"),
            ("crls", "certs/crl/corp.pem"), ("crls", "certs/crl/inter.pem"),
            ("fetch_crls", "on")]
        r, body = await web.post("/settings/peers/branch", good)
        assert r.status == 303, body
        _, form = await web.page("/settings/peers/branch")
        assert re.search(r'<input type="checkbox" id="f-fetch_crls" name="fetch_crls" checked>',
                         form), form
        for field, path in (("ca", "certs/ca/corp.pem"), ("ca", "certs/ca/other.pem"),
                            ("intermediates", "certs/ca/inter.pem"),
                            ("crls", "certs/crl/inter.pem")):
            select = re.search(r'<select id="f-%s" name="%s" multiple.*?</select>'
                               % (field, field), form, re.S).group(0)
            assert '<option value="%s" selected>' % path in select, (field, path)
        assert '<option value="certs/ca/inter.pem">' in re.search(
            r'<select id="f-ca".*?</select>', form, re.S).group(0)
        _, page = await web.page(URL)
        assert "branch" in crl_rows(page)["corp"] and "Delete" not in crl_rows(page)["corp"]
        r, body = await web.post(URL + "/crl/corp/delete", {"confirmed": "1"})
        assert r.status == 409 and b"used by peer branch" in body
    run_webui(tmp_path, CONFIG, scenario)
    cfg = tmp_path / "etc" / "ikecore.toml"
    text = cfg.read_text()
    assert 'ca = ["certs/ca/corp.pem", "certs/ca/other.pem"]' in text
    assert 'intermediates = ["certs/ca/inter.pem"]' in text
    assert 'crls = ["certs/crl/corp.pem", "certs/crl/inter.pem"]' in text
    assert "fetch_crls = true" in text
    peer = config.load(str(cfg)).peers["branch"]
    assert peer.fetch_crls is True
    der = serialization.Encoding.DER
    assert peer.ca_ders == [CA.cert.public_bytes(der), other.cert.public_bytes(der)]
    assert peer.chain_ders == [intermediate.cert.public_bytes(der)]
    assert len(peer.crl_ders) == 2


def test_fetched_crls_are_listed_flagged_and_exported(tmp_path, caplog):
    """What the daemon fetched for peers with fetch_crls (its cache, ikecore.crl_fetch): the
    page lists each URL with its CRL and a failed fetch as a notice; a stale one is flagged in
    /metrics (kind "fetched") and in the expiry log as an uploaded stale one is."""
    from ikecore import crl_fetch
    stale = CA.crl(issued_days_ago=10, next_update_days=7)
    url = "http://crl.example.net/ca.crl"
    der = stale.public_bytes(serialization.Encoding.DER)
    cache = crl_fetch.Cache(str(tmp_path / "etc" / crl_fetch.CACHE_DIR))
    cache.store(url, der, {"issuer": "CN=Test CA,O=ikecore test", "fetched_at": 1765000000,
                           "next_update": None, "error": None, "size": len(der)})
    cache.note_failure(url, "HTTP 404 Not Found", 1765100000)

    async def scenario(web):
        _, page = await web.page(URL)
        notice = re.findall(r'<p class="notice crl-fetch-error" role="status">(.*?)</p>', page,
                            re.S)
        assert len(notice) == 1 and url in notice[0] and "HTTP 404 Not Found" in notice[0], notice
        assert "stays in use" in notice[0]
        table = page.split('id="crl-fetched"', 1)[1].split("</table>", 1)[0]
        assert url in table and "next update passed" in table and "failed: HTTP 404" in table
        assert 'id="crl-%s"' % url not in page          # not among the uploaded ones
        text = await (await web.client.get("/metrics")).text()
        labels = '{name="%s",kind="fetched",path="%s",issuer="CN=Test CA,O=ikecore test"}' % (
            url, url)
        assert "ikecore_crl_stale%s 1\n" % labels in text, text
    run_webui(tmp_path, CONFIG, scenario)
    with caplog.at_level(logging.WARNING, logger="webui.certificates"):
        views_certs.log_expiring(str(tmp_path / "etc" / "ikecore.toml"))
    assert [r.getMessage() for r in caplog.records if "CRL" in r.getMessage()] == [
        "CRL fetched from %s (issuer CN=Test CA,O=ikecore test): its next update %s has passed, "
        "certificates checked against it are refused until it is fetched again (the last fetch "
        "failed: HTTP 404 Not Found)" % (url, stale.next_update_utc.date())]
