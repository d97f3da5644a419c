"""strongSwan's charon as a branch office of our hub (issue 12): the hub's peers have
remote_gateway = "%any" and are chosen by the branch's ID.

  ours (namespace a, 10.99.0.1): the hub, dynamic peers only (a decoy listed first each time)
  charon (namespace b, 10.99.0.2, kernel-libipsec): the branch; later also from 10.99.0.5, a
  second address its namespace gets (the "new lease")

Aggressive mode by FQDN (and the branch on a new address reconnecting to the same peer entry),
main mode by the certificate's DN, the catch-all PSK peer in main mode.
"""
import os

import pytest

from webui_pki import Authority, cert_pem, key_pem, pkcs1_pem

from charon import Child, Conn
from support.config import connection_table, peer_table, rsa
from support.netns import NET_A, NET_B, WAN_A, WAN_B

IKE, CHILD = "aes256-sha256-modp2048", "aes256-sha256"
PSK = "branch interop key"
MOVED = "10.99.0.5"          # the branch's address for its second connection


def dynamic_peer(name, mode="aggressive", remote_id=None, **extra):
    return peer_table(name, "%any", phase1_mode=mode, proposals=[IKE], dpd=(10, 60),
                      remote_id=remote_id, **extra)


def connection(name, peer, remote_net):
    return connection_table(name, peer, NET_A, remote_net, proposals=[CHILD], pfs="modp2048")


def branch_conn(local_addr=WAN_B, aggressive=True, local_id="fqdn:shop.example.net",
                remote_id=WAN_A, cert=None):
    child = Child("lan", NET_B, NET_A, [CHILD + "-modp2048"])
    return Conn("hub", local_addr, WAN_A, [IKE], PSK, [child], aggressive=aggressive,
                local_id=local_id, remote_id=remote_id, cert=cert)


def up_with(ours, peer):
    """Our IKE SA with this peer entry, once it is Activated and its tunnel's SAs installed."""
    def ready(status):
        rows = [sa for sa in status["ike_sas"] if sa["peer"] == peer
                and sa["status"] == "Activated"]
        sas = [sa for sa in status["sas"] if sa["ike_sa"] in [r["id"] for r in rows]]
        return rows if rows and len(sas) >= 2 else None
    status = ours.wait_for(ready, timeout_s=30, what="peer %s Activated with its SAs" % peer)
    return ready(status)[-1]


def charon_up(charon):
    return charon.wait_for(lambda sas: any(c.get("state") == "INSTALLED" for s in sas
                                           for c in s.get("child-sas", {}).values()),
                           20, "charon CHILD_SA INSTALLED")


def policies(ours):
    return dict((p["connection"], p) for p in ours.kernel()["policies"])


@pytest.fixture
def moved_address(lab):
    lab.b.run(["ip", "addr", "add", MOVED + "/24", "dev", "wan0"])
    yield MOVED
    lab.b.run(["ip", "addr", "del", MOVED + "/24", "dev", "wan0"], check=False)


def test_aggressive_mode_by_fqdn_and_the_branch_on_a_new_address(ours, charon_libipsec,
                                                                 moved_address):
    charon = charon_libipsec
    ours.start([dynamic_peer("depot", remote_id=("fqdn", "depot.example.net"),
                             psk="the depot's key"),
                dynamic_peer("shop", remote_id=("fqdn", "shop.example.net"), psk=PSK)],
               [connection("depot-lan", "depot", "10.3.0.0/24"),
                connection("shop-lan", "shop", NET_B)])
    charon.load([branch_conn()])
    proc = charon.initiate("lan")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = up_with(ours, "shop")
    assert (first["remote_gateway"], first["configured_gateway"], first["mode"]) == (
        WAN_B, "%any", "aggressive")
    charon_up(charon)
    assert policies(ours)["shop-lan"]["remote_gw"] == WAN_B
    assert "depot-lan" not in policies(ours)
    # The branch goes, and comes back from another address.
    charon.terminate_all()
    ours.wait_for(lambda st: not [sa for sa in st["ike_sas"] if sa["peer"] == "shop"],
                  timeout_s=30, what="the hub to see the branch go")
    assert "shop-lan" not in policies(ours)
    charon.load([branch_conn(local_addr=moved_address)])
    proc = charon.initiate("lan")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    second = up_with(ours, "shop")
    assert second["remote_gateway"] == moved_address and second["id"] != first["id"]
    assert policies(ours)["shop-lan"]["remote_gw"] == moved_address
    text = ours.status()
    assert [sa["dst"] for sa in ours.kernel()["sas"] if sa["direction"] == "out"] == [
        moved_address]
    assert all(sa["peer"] != "depot" for sa in text["ike_sas"])


def test_main_mode_by_certificate_dn(ours, charon_libipsec):
    charon = charon_libipsec
    ca = Authority()
    hub_cert, hub_key = ca.issue("hub.test", sans=[WAN_A])
    shop_cert, shop_key = ca.issue("shop.test", sans=[WAN_B])
    for name, data in (("hub.pem", cert_pem(hub_cert)), ("hub.key", key_pem(hub_key)),
                       ("ca.pem", cert_pem(ca.cert))):
        with open(os.path.join(ours.workdir, name), "wb") as handle:
            handle.write(data)
    os.chmod(os.path.join(ours.workdir, "hub.key"), 0o600)
    certificates = rsa("hub.pem", "hub.key", "ca.pem")
    ours.start([dynamic_peer("depot", mode="main", remote_id=("dn", "O=ikecore test, CN=depot.test"),
                             **certificates),
                dynamic_peer("shop", mode="main", remote_id=("dn", "O=ikecore test, CN=shop.test"),
                             **certificates)],
               [connection("depot-lan", "depot", "10.3.0.0/24"),
                connection("shop-lan", "shop", NET_B)])
    charon.add_credentials("shop.pem", cert_pem(shop_cert), pkcs1_pem(shop_key),
                           cert_pem(ca.cert))
    charon.load([branch_conn(aggressive=False, local_id="O=ikecore test, CN=shop.test",
                             remote_id="O=ikecore test, CN=hub.test", cert="shop.pem")])
    proc = charon.initiate("lan")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = up_with(ours, "shop")
    assert (row["auth"], row["mode"], row["remote_gateway"], row["last_error"]) == (
        "rsa", "main", WAN_B, None)
    charon_up(charon)
    assert any("is peer shop (ID dn O=ikecore test, CN=shop.test)" in line["text"]
               for line in ours.vpn_log(1000))


def test_the_catch_all_psk_peer_in_main_mode(ours, charon_libipsec):
    charon = charon_libipsec
    ours.start([dynamic_peer("depot", remote_id=("fqdn", "depot.example.net"),
                             psk="the depot's key"),
                dynamic_peer("anyone", mode="main", catch_all=True, psk=PSK)],
               [connection("depot-lan", "depot", "10.3.0.0/24"),
                connection("anyone-lan", "anyone", NET_B)])
    charon.load([branch_conn(aggressive=False, local_id="fqdn:whoever.example.net")])
    proc = charon.initiate("lan")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = up_with(ours, "anyone")
    assert (row["mode"], row["auth"], row["remote_gateway"]) == ("main", "psk", WAN_B)
    charon_up(charon)
    assert "accepts anyone who knows its pre-shared key" in ours.log_tail(400)
