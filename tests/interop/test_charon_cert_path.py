"""Certificate path validation against strongSwan's charon as the peer (issue 16).

Every certificate is made here with `cryptography` (tests/browser/webui_pki.py): a root CA, an
intermediate CA under it, and charon's certificate in each shape path validation must judge.
Our daemon (initiator, RSA signatures) trusts the root; the clock stamp the NTP hook writes
exists, so dates are enforced (in one case it does not, and an expired certificate passes).
Each bad chain is refused with its precise reason, read where a user reads it: `ikectl status`
(JSON and text) and the web UI's status page in front of the running daemon. The good chains
come up: the intermediate sent by charon in CERT payloads, or configured on our side only; and
our own certificate under an intermediate, which we send after it, is accepted by charon, which
trusts only the root.
"""
import json
import os
import re
import subprocess
import sys
import time

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from webui_client import run_webui_with
from webui_pki import SIGNING_USAGE, Authority, cert_pem, crl_pem, key_pem, \
    pkcs1_pem

from support.netns import WAN_A, WAN_B, stop_process
from ours import REPO
from scenarios import CONN, charon_conn, our_config, our_ike_sa, scenario, wait_failure_settled, \
    wait_settled

ROOT = Authority("Interop Root CA")
INTERMEDIATE = Authority("Interop Intermediate CA", parent=ROOT)
# an end entity (CA:FALSE) of the root that signs charon's certificate as if it were a CA
NOT_A_CA, NOT_A_CA_KEY = ROOT.issue("Interop Not A CA", usage=SIGNING_USAGE)


def utc(cert, which):
    return getattr(cert, which + "_utc").strftime("%Y-%m-%d %H:%M:%S UTC")


def write(directory, name, data):
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def start(ours, charon, charon_cert, charon_key, charon_chain=(), our_cert=None, our_key=None,
          our_chain=(), intermediates=(), crls=(), clock_synchronized=True, fetch_crls=False):
    """charon with its certificate (and the intermediates it sends), our daemon as initiator
    trusting ROOT with the given intermediates and CRLs (and fetching those the certificates
    point to with fetch_crls); the NTP hook's stamp exists unless clock_synchronized is False.
    Returns our (peers, connections)."""
    charon.add_credentials("charon.pem", cert_pem(charon_cert), pkcs1_pem(charon_key),
                           cert_pem(ROOT.cert), [cert_pem(c.cert) for c in charon_chain])
    our, their = scenario("main", "modern", pfs=True)
    conn = charon_conn(their)
    conn.cert = "charon.pem"
    charon.load([conn])
    if our_cert is None:
        our_cert, our_key = ROOT.issue("ours.test", sans=[WAN_A], usage=SIGNING_USAGE)
    files = ours.workdir
    peers, connections = our_config(our, act_as="initiator")
    peer = peers[0]
    del peer["psk"]
    peer.update(auth="rsa", cert=write(files, "ours.pem", cert_pem(our_cert)),
                key=write(files, "ours.key", key_pem(our_key)),
                ca=write(files, "root.pem", cert_pem(ROOT.cert)),
                intermediates=[write(files, "im%d.pem" % i, cert_pem(c))
                               for i, c in enumerate(list(our_chain) + list(intermediates))],
                crls=[write(files, "crl%d.pem" % i, crl_pem(c)) for i, c in enumerate(crls)])
    if fetch_crls:
        peer["fetch_crls"] = True
    os.chmod(peer["key"], 0o600)
    stamp = os.path.join(files, "clock-synced")
    if clock_synchronized:
        write(files, "clock-synced", b"")
    ours.env["IKECORE_CLOCK_SYNCED"] = stamp
    ours.start(peers, connections)
    return peers, connections


def ikectl_text(ours):
    proc = subprocess.run([sys.executable, "-m", "ikecore.ctl", "status", "--socket",
                           ours.socket_path], env=ours.env, cwd=REPO, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def status_page(ours, state_dir):
    async def read(web):
        _, page = await web.page("/")
        return page
    return run_webui_with(ours.socket_path, ours.config_path, state_dir, read)


def assert_refused(ours, tmp_path, reason):
    """Our initiator stops with the certificate diagnosis carrying `reason`, in the status
    JSON, in `ikectl status` and on the web UI's status page."""
    _, sa = wait_failure_settled(ours)
    line = sa["last_error"]
    assert "probable certificate mismatch" in line and reason in line, line
    assert sa["status"] != "Activated", sa
    assert our_ike_sa(ours.ikectl_status())["last_error"] == line
    assert line in ikectl_text(ours)
    page = status_page(ours, tmp_path / "webui")
    shown = re.findall(r'<div class="diagnosis">(.*?)</div>', page, re.S)
    assert line in [d.replace("&#39;", "'").replace("&#34;", '"') for d in shown], shown


def assert_up(ours, charon):
    _, sa = wait_settled(ours, lambda sa: sa.get("state") == 9, 20, "our IKE SA Activated (9)")
    assert (sa["status"], sa["auth"], sa["last_error"]) == ("Activated", "rsa", None), sa
    (ike,) = charon.wait_for(
        lambda sas: any(c.get("state") == "INSTALLED" for s in sas
                        for c in s.get("child-sas", {}).values()), 20, "charon CHILD_SA INSTALLED")
    assert ike["state"] == "ESTABLISHED" and ike["remote-id"] == WAN_A, ike


def charon_leaf(authority=INTERMEDIATE, **kw):
    kw.setdefault("usage", SIGNING_USAGE)
    return authority.issue("charon.test", sans=[WAN_B], **kw)


def test_intermediate_sent_by_charon_in_cert_payloads(ours, charon_libipsec):
    cert, key = charon_leaf()
    mark = charon_libipsec.log_mark()
    start(ours, charon_libipsec, cert, key, charon_chain=[INTERMEDIATE])
    assert_up(ours, charon_libipsec)
    log = charon_libipsec.log_since(mark)
    assert re.search(r'sending end entity cert "O=ikecore test, CN=charon.test"', log) and \
        re.search(r'sending issuer cert "O=ikecore test, CN=Interop Intermediate CA"', log), \
        charon_libipsec.log_tail()


def test_intermediate_configured_on_our_side_only(ours, charon_libipsec):
    cert, key = charon_leaf()
    mark = charon_libipsec.log_mark()
    start(ours, charon_libipsec, cert, key, intermediates=[INTERMEDIATE.cert])
    assert_up(ours, charon_libipsec)
    assert "sending issuer cert" not in charon_libipsec.log_since(mark)


def test_intermediate_neither_sent_nor_configured(ours, charon_libipsec, tmp_path):
    cert, key = charon_leaf()
    start(ours, charon_libipsec, cert, key)
    assert_refused(ours, tmp_path, "unknown issuer O=ikecore test, CN=Interop Intermediate CA")


def test_our_intermediate_is_sent_and_charon_accepts_us(ours, charon_libipsec):
    our_cert, our_key = INTERMEDIATE.issue("ours.test", sans=[WAN_A], usage=SIGNING_USAGE)
    cert, key = charon_leaf(ROOT)
    mark = charon_libipsec.log_mark()
    start(ours, charon_libipsec, cert, key, our_cert=our_cert, our_key=our_key,
          our_chain=[INTERMEDIATE.cert])
    assert_up(ours, charon_libipsec)
    log = charon_libipsec.wait_log(["authentication of '%s' with RSA" % WAN_A], mark)
    assert re.search(r"authentication of '%s' with RSA\S* successful" % re.escape(WAN_A), log) \
        and 'received issuer cert "O=ikecore test, CN=Interop Intermediate CA"' in log, \
        charon_libipsec.log_tail()


def test_an_expired_certificate_passes_until_the_clock_is_synchronized(ours, charon_libipsec):
    """No NTP stamp yet (a board without a battery starts in 1970): dates are not enforced, so
    a peer whose tunnel may carry the time is not refused for a date; the status says so."""
    cert, key = charon_leaf(ROOT, start_days_ago=40, days=30)
    start(ours, charon_libipsec, cert, key, clock_synchronized=False)
    assert_up(ours, charon_libipsec)
    assert ours.ikectl_status()["clock_synchronized"] is False


def test_intermediate_revoked_by_the_roots_crl(ours, charon_libipsec, tmp_path):
    """The whole chain is checked against the CRLs (X509_V_FLAG_CRL_CHECK_ALL): charon's
    certificate is current in its intermediate's CRL, but the root's CRL lists the intermediate
    charon sends; refused, naming the intermediate. Without the root's CRL it comes up (an
    intermediate whose issuer publishes no CRL passes, as strongSwan's default)."""
    cert, key = charon_leaf()
    root_crl = ROOT.crl(revoked=[INTERMEDIATE.cert])
    entry = root_crl.get_revoked_certificate_by_serial_number(INTERMEDIATE.cert.serial_number)
    start(ours, charon_libipsec, cert, key, charon_chain=[INTERMEDIATE],
          crls=[INTERMEDIATE.crl(), root_crl])
    assert_refused(ours, tmp_path, "intermediate CA O=ikecore test, CN=Interop Intermediate CA "
                   "revoked on %s" % utc(entry, "revocation_date"))


def test_intermediate_whose_issuer_has_no_crl_passes(ours, charon_libipsec):
    cert, key = charon_leaf()
    start(ours, charon_libipsec, cert, key, charon_chain=[INTERMEDIATE],
          crls=[INTERMEDIATE.crl()])
    assert_up(ours, charon_libipsec)


@pytest.mark.parametrize("kind", ["expired", "not-yet-valid", "revoked", "crl-out-of-date",
                                  "issuer-not-a-ca", "wrong-key-usage"])
def test_bad_certificate_refused_with_its_reason(ours, charon_libipsec, tmp_path, kind):
    options = {}
    if kind == "expired":
        cert, key = charon_leaf(ROOT, start_days_ago=40, days=30)
        reason = "expired on %s" % utc(cert, "not_valid_after")
    elif kind == "not-yet-valid":
        cert, key = charon_leaf(ROOT, start_days_ago=-10)
        reason = "not yet valid until %s" % utc(cert, "not_valid_before")
    elif kind == "revoked":
        cert, key = charon_leaf(ROOT)
        crl = ROOT.crl(revoked=[cert])
        options["crls"] = [crl]
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
        reason = "revoked on %s" % utc(entry, "revocation_date")
    elif kind == "crl-out-of-date":
        cert, key = charon_leaf(ROOT)
        crl = ROOT.crl(issued_days_ago=10, next_update_days=7)
        options["crls"] = [crl]
        reason = ("the CRL of O=ikecore test, CN=Interop Root CA is out of date since %s"
                  % utc(crl, "next_update"))
    elif kind == "issuer-not-a-ca":
        cert, key = charon_leaf(Authority.signing_with(NOT_A_CA, NOT_A_CA_KEY))
        options["intermediates"] = [NOT_A_CA]
        reason = "issuer O=ikecore test, CN=Interop Not A CA is not a CA"
    else:
        cert, key = charon_leaf(ROOT, usage=dict(key_encipherment=True))
        reason = "wrong key usage"
    start(ours, charon_libipsec, cert, key, **options)
    assert_refused(ours, tmp_path, reason)


# -- CRLs fetched from the certificate's distribution point (a peer's fetch_crls) ---------------
CRL_PORT = 8079
DER = Encoding.DER


@pytest.fixture
def crl_server(lab, tmp_path):
    """An HTTP server on charon's side of the WAN (namespace b, WAN_B:CRL_PORT) serving the
    files of a directory the test writes; stop() takes it away (a CA's server down)."""
    directory = tmp_path / "www"
    directory.mkdir()

    class Server:
        url = "http://%s:%d" % (WAN_B, CRL_PORT)
        root = directory
        proc = None

        def start(self):
            self.proc = subprocess.Popen(lab.b.exec_cmd(
                [sys.executable, "-u", "-m", "http.server", str(CRL_PORT), "--bind", WAN_B,
                 "--directory", str(directory)]), stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True)
            line = self.proc.stdout.readline()         # "Serving HTTP on ..." once bound
            assert "Serving HTTP" in line, line

        def stop(self):
            if self.proc is not None:
                stop_process(self.proc)
                self.proc = None

    server = Server()
    server.start()
    yield server
    server.stop()


def wait_log(ours, text, timeout_s=30):
    """The first line of our daemon's log containing text (polled, no fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with open(ours.log_path, errors="replace") as f:
            for line in f:
                if text in line:
                    return line
        time.sleep(0.1)
    raise AssertionError("%r not in our log\n%s" % (text, ours.log_tail()))


def test_crl_fetched_from_the_distribution_point_refuses_a_revoked_certificate(
        ours, charon_libipsec, tmp_path, crl_server):
    """charon's certificate names an http:// CRL distribution point on the WAN: before the CRL
    is in, it is refused for want of one; the daemon fetches it (our log says so, the cache
    holds it), and the next negotiation refuses the certificate as revoked."""
    url = crl_server.url + "/root.crl"
    cert, key = charon_leaf(ROOT, crl_urls=[url])
    crl = ROOT.crl(revoked=[cert])
    (crl_server.root / "root.crl").write_bytes(crl.public_bytes(DER))
    peers, _ = start(ours, charon_libipsec, cert, key, fetch_crls=True)
    _, sa = wait_failure_settled(ours)
    assert ("no CRL of its issuer O=ikecore test, CN=Interop Root CA is configured or fetched "
            "yet") in sa["last_error"], sa
    wait_log(ours, "fetched from %s" % url)
    with open(os.path.join(ours.workdir, "certs", "crl", ".fetched", "index.json")) as f:
        index = json.load(f)
    assert index[url]["error"] is None and index[url]["issuer"] == "CN=Interop Root CA,O=ikecore test"
    ours.up(peers[0]["name"])
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    _, sa = wait_settled(ours, lambda sa: "revoked on" in (sa.get("last_error") or ""), 30,
                         "refused as revoked")
    assert "probable certificate mismatch" in sa["last_error"]
    assert "revoked on %s" % utc(entry, "revocation_date") in sa["last_error"], sa


def test_crl_fetch_failure_is_diagnosed_and_the_cached_crl_serves_after_a_restart(
        ours, charon_libipsec, tmp_path, crl_server):
    """A current CRL fetched once lets the tunnel up and is kept on disk; restarted with the
    CA's server gone, the daemon logs the failed fetch once with the URL and the reason, the
    Certificates page shows it, and the cached CRL authenticates the peer at once."""
    url = crl_server.url + "/root.crl"
    cert, key = charon_leaf(ROOT, crl_urls=[url])
    (crl_server.root / "root.crl").write_bytes(ROOT.crl().public_bytes(DER))
    peers, connections = start(ours, charon_libipsec, cert, key, fetch_crls=True)
    wait_log(ours, "fetched from %s" % url)
    ours.up(peers[0]["name"])
    assert_up(ours, charon_libipsec)

    ours.stop()
    crl_server.stop()
    ours.start(peers, connections)
    assert_up(ours, charon_libipsec)
    line = wait_log(ours, "CRL fetch from %s failed" % url)
    assert "refused" in line and "(the cached CRL stays in use)" in line, line

    async def read(web):
        _, page = await web.page("/settings/certificates")
        return page
    page = run_webui_with(ours.socket_path, ours.config_path, tmp_path / "webui", read)
    shown = re.findall(r'<p class="notice crl-fetch-error"[^>]*>(.*?)</p>', page, re.S)
    assert shown and url in shown[0] and "refused" in shown[0], page
