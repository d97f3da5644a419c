"""A peer switched to certificates through the web UI comes up against strongSwan's charon.

Our daemon starts with a pre-shared key; then the real web UI (aiohttp's test client, in front
of the daemon's real control socket) stores the CA and our certificate -- uploaded as PKCS#12, or
a key and CSR made on the router and the CA's signed answer uploaded -- and the peer form picks
them (the key follows the certificate). The save reloads the daemon; charon (kernel-libipsec,
RSA signatures, its own certificate from the same CA) initiates and the tunnel comes up on both
sides with RSA authentication.
"""
import re
import tomllib

import pytest

from webui_client import run_webui_with
from webui_pki import Authority, cert_pem, pkcs1_pem, pkcs12_bytes

from support.netns import WAN_A, WAN_B
from scenarios import CONN, PEER, charon_conn, our_config, our_ike_sa, scenario, \
    wait_settled
from webui import forms

CERTS = "/settings/certificates"


async def store_our_certificate(web, ca, how):
    """Our certificate for WAN_A into the store through the page, the way `how` says."""
    await web.page(CERTS)
    r, body = await web.post(CERTS + "/ca", {"name": "corp"},
                             {"file": ("ca.pem", cert_pem(ca.cert))})
    assert r.status == 303, body
    if how == "pkcs12":
        cert, key = ca.issue("router.test", sans=[WAN_A])
        r, body = await web.post(CERTS + "/local", {"name": "router", "format": "pkcs12",
                                                    "password": "p12 pass"},
                                 {"file": ("router.p12", pkcs12_bytes(cert, key, "p12 pass"))})
        assert r.status == 303, body
        return
    r, body = await web.post(CERTS + "/generate", {"name": "router", "common_name": "router.test",
                                                   "alt_names": WAN_A, "bits": "2048"})
    assert r.status == 303, body
    csr = await (await web.client.get(CERTS + "/request/router.csr")).read()
    r, body = await web.post(CERTS + "/request/router/signed", {},
                             {"file": ("router.crt", cert_pem(ca.sign_csr(csr)))})
    assert r.status == 303, body


@pytest.mark.parametrize("how", ["pkcs12", "csr"])
def test_a_peer_using_an_uploaded_certificate_comes_up(ours, charon_libipsec, tmp_path, how):
    charon = charon_libipsec
    ca = Authority()
    charon_cert, charon_key = ca.issue("charon.test", sans=[WAN_B])
    charon.add_credentials("charon.pem", cert_pem(charon_cert), pkcs1_pem(charon_key),
                           cert_pem(ca.cert))
    our, their = scenario("main", "modern", pfs=True)
    conn = charon_conn(their)
    conn.cert = "charon.pem"
    charon.load([conn])
    ours.start(*our_config(our, act_as="responder"))

    async def switch_to_certificates(web):
        await store_our_certificate(web, ca, how)
        with open(ours.config_path, "rb") as f:
            entry = tomllib.load(f)["peer"][0]
        form = dict(forms.form_values(entry), auth="rsa", psk="",
                    cert="certs/local/router.pem", key="", ca="certs/ca/corp.pem")
        _, page = await web.page("/settings/peers/" + PEER)
        assert '<option value="certs/local/router.pem">router (CN=router.test' in page
        r, body = await web.post("/settings/peers/" + PEER, form)
        assert r.status == 303, body
        return await web.flash("/settings/peers")
    flash = run_webui_with(ours.socket_path, ours.config_path, tmp_path / "webui",
                           switch_to_certificates)
    assert "The daemon applied the new configuration" in flash, flash
    with open(ours.config_path, "rb") as f:
        peer = tomllib.load(f)["peer"][0]
    assert (peer["auth"], peer["cert"], peer["key"], peer["ca"]) == (
        "rsa", "certs/local/router.pem", "certs/local/router.key", "certs/ca/corp.pem")
    assert "psk" not in peer

    mark = charon.log_mark()
    proc = charon.initiate(CONN)
    assert proc.returncode == 0, "charon's initiate failed:\n%s%s" % (proc.stdout, proc.stderr)
    _, sa = wait_settled(ours, lambda sa: sa.get("state") == 9, 20, "our IKE SA Activated (9)")
    assert (sa["status"], sa["auth"], sa["role"], sa["last_error"]) == (
        "Activated", "rsa", "responder", None), sa
    (ike,) = charon.wait_for(
        lambda sas: any(c.get("state") == "INSTALLED" for s in sas
                        for c in s.get("child-sas", {}).values()), 20, "charon CHILD_SA INSTALLED")
    assert ike["state"] == "ESTABLISHED" and ike["remote-id"] == WAN_A, ike
    log = charon.wait_log(["authentication of '%s' with RSA" % WAN_A], mark)
    assert re.search(r"authentication of '%s' with RSA\S* successful" % re.escape(WAN_A), log), \
        charon.log_tail()
    assert our_ike_sa(ours.status())["phase2_negotiations"] >= 1
