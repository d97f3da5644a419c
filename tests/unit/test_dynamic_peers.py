"""A hub for branches on changing addresses (issue 12 items 1, 2): dynamic peers chosen by their ID
in aggressive and main mode, the one catch-all PSK peer, following a peer that moved, and
DNS-named gateways resolved by the driver. Sans-IO cores, bytes and a hand-stepped clock; the
wire is `Wire` below: several cores by address, branches optionally behind one masquerading NAT."""
import pytest

from ikecore import config
from ikecore.protocol import events, proposals
from ikecore.protocol.core import IkeCore
from ikecore.crypto_cryptography import CryptographyProvider
from ikecore.protocol.settings import ANY_GATEWAY, Connection, Identity, Peer, Settings

HUB = "192.0.2.1"
NAT = "203.0.113.9"          # the branches' carrier NAT, as the hub sees them
FAST_IKE = [proposals.parse_ike("aes128-sha1-modp1024")]
FAST_CHILD = [proposals.parse_child("aes128-sha1", "esp")]
HUB_NET = "192.168.1.0/24"


class Wire:
    """Cores by address. A node behind the NAT sends from NAT:port (a port allocated per inner
    address and port, like masquerading) and gets the answers sent there; datagrams to an
    address or NAT port nobody holds are lost."""

    def __init__(self):
        self.now = 1000.0
        self.crypto = CryptographyProvider()
        self.nodes = {}           # name -> [core, address, behind_nat]
        self.nat_out = {}         # (inner ip, inner port) -> NAT port
        self.nat_in = {}          # NAT port -> (inner ip, inner port)
        self.events = {}

    def add(self, name, settings, address, behind_nat=False):
        core = IkeCore(settings, self.crypto, self.now)
        self.nodes[name] = [core, address, behind_nat]
        self.events[name] = []
        return core

    def core(self, name):
        return self.nodes[name][0]

    def move(self, name, address):
        """The node gets another address (a new DHCP lease behind the NAT, or a new public one)."""
        self.nodes[name][1] = address

    def rebind_nat(self):
        """The NAT forgets its mappings: the next datagrams leave from new ports."""
        base = 40000 + 100 * (len(self.nat_in) + 1)
        self.nat_out, self.nat_in = {}, {}
        self._next_port = base

    def _public(self, inner):
        if inner not in self.nat_out:
            port = getattr(self, "_next_port", 40000) + 1
            self._next_port = port
            self.nat_out[inner] = port
            self.nat_in[port] = inner
        return (NAT, self.nat_out[inner])

    def flush(self, drop=None, rounds=40):
        for _ in range(rounds):
            moved = False
            for name, (core, address, behind) in list(self.nodes.items()):
                for data, local, remote in core.datagrams_to_send():
                    moved = True
                    if drop is not None and drop(name, data):
                        continue
                    src = self._public((address, local[1])) if behind else (address, local[1])
                    self._deliver(data, src, remote)
            self._drain()
            if not moved:
                return
        raise AssertionError("the cores kept talking")

    def _deliver(self, data, src, dst):
        if dst[0] == NAT:
            inner = self.nat_in.get(dst[1])
            if inner is None:
                return
            target = (inner[0], inner[1])
        else:
            target = dst
        for name, (core, address, behind) in self.nodes.items():
            if address == target[0]:
                core.receive_datagram(data, target, src, self.now)
                return

    def _drain(self):
        for name, (core, _, _) in self.nodes.items():
            while True:
                event = core.next_event()
                if event is None:
                    break
                self.events[name].append(event)

    def step(self, seconds, drop=None):
        target = self.now + seconds
        while True:
            due = [t for t in (n[0].get_timer() for n in self.nodes.values())
                   if t is not None and t <= target]
            if not due:
                break
            self.now = max(self.now, min(due))
            for core, _, _ in list(self.nodes.values()):
                core.handle_timer(self.now)
            self.flush(drop)
        self.now = target
        self.flush(drop)

    def ike(self, name):
        return self.core(name).status(self.now)["ike_sas"]

    def logs(self, name):
        return [e.text for e in self.events[name] if isinstance(e, events.Log)]

    def of(self, name, cls):
        return [e for e in self.events[name] if isinstance(e, cls)]


def peer(name, gateway, mode="aggressive", remote_id=None, local_id=None, psk=b"secret",
         act_as=None, catch_all=False, dpd=(30, 120), **kw):
    if act_as is None:
        act_as = "responder" if gateway == ANY_GATEWAY else "both"
    return Peer(name, gateway, FAST_IKE, phase1_mode=mode, act_as=act_as, psk=psk,
                remote_id=remote_id, local_id=local_id, catch_all=catch_all,
                dpd_delay_s=dpd[0], dpd_timeout_s=dpd[1], **kw)


def conn(name, peer_name, local_net, remote_net):
    return Connection(name, peer_name, local_net, remote_net, FAST_CHILD)


def settings(peers, conns):
    return Settings(peers=dict((p.name, p) for p in peers), connections=dict(
        (c.name, c) for c in conns))


def fqdn(text):
    return Identity("fqdn", text)


def hub_settings(*branches, extra_peers=(), mode="aggressive", **kw):
    """The hub: one dynamic peer per (name, ID, branch network)."""
    peers = list(extra_peers) + [peer(name, ANY_GATEWAY, mode=mode, remote_id=ident, **kw)
                                 for name, ident, _ in branches]
    conns = [conn("to-" + name, name, HUB_NET, net) for name, _, net in branches]
    return settings(peers, conns)


def branch_settings(ident, net, mode="aggressive", psk=b"secret", **kw):
    return settings([peer("hub", HUB, mode=mode, local_id=ident, psk=psk, act_as="initiator",
                          **kw)], [conn("lan", "hub", net, HUB_NET)])


def up(wire, name):
    wire.core(name).initiate("lan", wire.now)
    wire.flush()


def peers_up(wire, hub="hub"):
    return sorted(r["peer"] for r in wire.ike(hub) if r["status"] == "Activated")


# -- aggressive mode: the ID in message 1 chooses the peer -------------------------------------------
def test_two_branches_behind_one_nat_chosen_by_fqdn_are_both_up():
    wire = Wire()
    wire.add("hub", hub_settings(("branch1", fqdn("b1.example.net"), "10.1.0.0/24"),
                                 ("branch2", fqdn("b2.example.net"), "10.2.0.0/24"),
                                 psk=None), HUB)
    # Different keys per branch: a wrong choice could not authenticate.
    wire.core("hub").settings.peers["branch1"].psk = b"key-one"
    wire.core("hub").settings.peers["branch2"].psk = b"key-two"
    wire.add("b1", branch_settings(fqdn("b1.example.net"), "10.1.0.0/24", psk=b"key-one"),
             "10.0.0.2", behind_nat=True)
    wire.add("b2", branch_settings(fqdn("b2.example.net"), "10.2.0.0/24", psk=b"key-two"),
             "10.0.0.3", behind_nat=True)
    up(wire, "b2")                 # the second one listed first: no reliance on the order
    up(wire, "b1")
    assert peers_up(wire) == ["branch1", "branch2"]
    rows = dict((r["peer"], r) for r in wire.ike("hub"))
    assert rows["branch1"]["remote_gateway"] == rows["branch2"]["remote_gateway"] == NAT
    assert rows["branch1"]["remote_address"] != rows["branch2"]["remote_address"]
    assert rows["branch1"]["configured_gateway"] == ANY_GATEWAY
    assert rows["branch1"]["nat_t"] == "far end"
    tunnels = sorted((c.connection, c.dst) for c in wire.core("hub").children.values()
                     if c.direction == "out")
    assert tunnels == [("to-branch1", NAT), ("to-branch2", NAT)]
    assert any("is peer branch1 (ID fqdn b1.example.net)" in t for t in wire.logs("hub"))


def test_aggressive_mode_unknown_id_is_refused_naming_it():
    wire = Wire()
    wire.add("hub", hub_settings(("branch1", fqdn("b1.example.net"), "10.1.0.0/24")), HUB)
    wire.add("b9", branch_settings(fqdn("b9.example.net"), "10.9.0.0/24"), "10.0.0.9",
             behind_nat=True)
    up(wire, "b9")
    (row,) = wire.ike("hub")
    assert row["status"] != "Activated"
    assert "probable ID mismatch" in row["last_error"]
    assert "identified as fqdn b9.example.net" in row["last_error"]
    assert not wire.core("hub").children


def test_user_fqdn_and_ipv4_ids_choose_too():
    wire = Wire()
    wire.add("hub", hub_settings(("road", Identity("user_fqdn", "anna@example.net"), "10.5.0.0/24"),
                                 ("shop", Identity("ipv4", "10.0.0.6"), "10.6.0.0/24")), HUB)
    wire.add("anna", branch_settings(Identity("user_fqdn", "anna@example.net"), "10.5.0.0/24"),
             "10.0.0.5", behind_nat=True)
    wire.add("shop", branch_settings(Identity("ipv4", "10.0.0.6"), "10.6.0.0/24"), "10.0.0.6",
             behind_nat=True)
    up(wire, "anna")
    up(wire, "shop")
    assert peers_up(wire) == ["road", "shop"]


def test_a_fixed_peer_keeps_its_address_and_a_dynamic_one_is_not_asked():
    fixed = peer("office", "10.0.0.7", remote_id=fqdn("b1.example.net"))
    wire = Wire()
    wire.add("hub", hub_settings(("branch1", fqdn("b1.example.net"), "10.1.0.0/24"),
                                 extra_peers=[fixed]), HUB)
    wire.core("hub").settings.connections["office-lan"] = conn("office-lan", "office", HUB_NET,
                                                              "10.7.0.0/24")
    wire.core("hub").reconfigure(wire.core("hub").settings, wire.now)
    wire.add("office", branch_settings(fqdn("b1.example.net"), "10.7.0.0/24"), "10.0.0.7")
    up(wire, "office")
    assert peers_up(wire) == ["office"]     # by its address, as before: not the dynamic entry


# -- the branch moves ----------------------------------------------------------------------------------
def test_a_branch_on_another_address_reconnects_to_the_same_peer_entry():
    wire = Wire()
    wire.add("hub", hub_settings(("branch1", fqdn("b1.example.net"), "10.1.0.0/24")), HUB)
    wire.add("b1", branch_settings(fqdn("b1.example.net"), "10.1.0.0/24"), "198.51.100.20")
    up(wire, "b1")
    assert [r["remote_gateway"] for r in wire.ike("hub")] == ["198.51.100.20"]
    wire.core("b1").down("hub", wire.now)
    wire.flush()
    assert wire.ike("hub") == [] and not wire.core("hub").children
    wire.move("b1", "198.51.100.77")
    up(wire, "b1")
    (row,) = wire.ike("hub")
    assert (row["peer"], row["status"], row["remote_gateway"]) == (
        "branch1", "Activated", "198.51.100.77")
    assert [c.dst for c in wire.core("hub").children.values() if c.direction == "out"] == [
        "198.51.100.77"]


def test_nat_rebinding_is_followed_by_the_ike_sa_and_its_sas():
    wire = Wire()
    wire.add("hub", hub_settings(("branch1", fqdn("b1.example.net"), "10.1.0.0/24"),
                                 dpd=(300, 900)), HUB)
    wire.add("b1", branch_settings(fqdn("b1.example.net"), "10.1.0.0/24", dpd=(10, 60)),
             "10.0.0.2", behind_nat=True)
    up(wire, "b1")
    (before,) = wire.ike("hub")
    wire.rebind_nat()
    wire.step(11)                  # the branch's R-U-THERE leaves from a new NAT port
    (after,) = wire.ike("hub")
    assert after["status"] == "Activated" and after["id"] == before["id"]
    assert after["remote_address"] != before["remote_address"]
    port = int(after["remote_address"].split(":")[1])
    hub = wire.core("hub")
    out = [c for c in hub.children.values() if c.direction == "out"]
    inbound = [c for c in hub.children.values() if c.direction == "in"]
    assert [c.encap for c in out] == [(4500, port)] and [c.encap for c in inbound] == [
        (port, 4500)]
    reinstalled = [e.sa.id for e in wire.of("hub", events.InstallChildSa)]
    assert sorted(reinstalled) == sorted([c.id for c in out + inbound] * 2)
    assert any("moved from %s" % before["remote_address"] in t for t in wire.logs("hub"))
    wire.step(40)                  # DPD keeps answering at the new address: nobody is dead
    assert peers_up(wire) == ["branch1"]


def test_an_unauthenticated_message_from_elsewhere_moves_nothing():
    wire = Wire()
    wire.add("hub", hub_settings(("branch1", fqdn("b1.example.net"), "10.1.0.0/24")), HUB)
    wire.add("b1", branch_settings(fqdn("b1.example.net"), "10.1.0.0/24"), "198.51.100.20")
    up(wire, "b1")
    hub = wire.core("hub")
    (sa,) = hub.ike_sas.values()
    forged = bytearray(sa.last_received)
    forged[18] = 5                 # informational exchange, same cookies, garbage body
    hub.receive_datagram(bytes(forged), (HUB, 500), ("198.51.100.66", 500), wire.now)
    assert sa.remote == ("198.51.100.20", 500)


def test_a_replayed_authenticated_message_from_elsewhere_moves_nothing():
    """A copy of the branch's R-U-THERE, sent again from another address (a forged source),
    proves nothing: its message id was seen already."""
    wire = Wire()
    wire.add("hub", hub_settings(("branch1", fqdn("b1.example.net"), "10.1.0.0/24"),
                                 dpd=(300, 900)), HUB)
    wire.add("b1", branch_settings(fqdn("b1.example.net"), "10.1.0.0/24", dpd=(10, 60)),
             "198.51.100.20")
    up(wire, "b1")
    sent = []
    wire.step(11, drop=lambda name, data: sent.append((name, data)) and False)
    (probe,) = [d for n, d in sent if n == "b1" and d[18] == 5]     # informational exchange
    hub = wire.core("hub")
    (sa,) = hub.ike_sas.values()
    hub.receive_datagram(probe, (HUB, 500), ("198.51.100.66", 500), wire.now)
    assert sa.remote == ("198.51.100.20", 500)
    assert not [t for t in wire.logs("hub") if "moved from" in t]


# -- main mode with certificates: the ID of message 5 chooses ------------------------------------------
def _dn(pki, label):
    return Identity("dn", CryptographyProvider().cert_subject(pki.certs[label]))


def test_main_mode_rsa_two_dynamic_peers_chosen_by_certificate_dn(ike_pki):
    hub_rsa = dict(auth="rsa", cert_der=ike_pki.certs["B"], key_pem=ike_pki.keys["B"],
                   ca_ders=[ike_pki.ca], psk=None)
    wire = Wire()
    wire.add("hub", hub_settings(("branch-a", _dn(ike_pki, "A"), "10.1.0.0/24"),
                                 ("branch-c", _dn(ike_pki, "C"), "10.3.0.0/24"),
                                 mode="main", **hub_rsa), HUB)
    for label, address, net in (("A", "10.0.0.2", "10.1.0.0/24"), ("C", "10.0.0.3",
                                                                     "10.3.0.0/24")):
        wire.add(label, branch_settings(None, net, mode="main", auth="rsa", psk=None,
                                        cert_der=ike_pki.certs[label],
                                        key_pem=ike_pki.keys[label], ca_ders=[ike_pki.ca]),
                 address, behind_nat=True)
    up(wire, "C")                  # provisional: branch-a (listed first); message 5 says branch-c
    up(wire, "A")
    assert peers_up(wire) == ["branch-a", "branch-c"]
    assert any("is peer branch-c (ID dn C=CH, O=ikecore test, CN=gw-c)" in t
               for t in wire.logs("hub"))


def test_main_mode_rsa_id_must_be_in_the_certificate(ike_pki):
    """The branch claims branch-c's DN with gw-a's certificate: chosen by the ID, refused by the
    certificate check of that peer."""
    hub_rsa = dict(auth="rsa", cert_der=ike_pki.certs["B"], key_pem=ike_pki.keys["B"],
                   ca_ders=[ike_pki.ca], psk=None)
    wire = Wire()
    wire.add("hub", hub_settings(("branch-c", _dn(ike_pki, "C"), "10.3.0.0/24"), mode="main",
                                 **hub_rsa), HUB)
    wire.add("A", branch_settings(_dn(ike_pki, "C"), "10.3.0.0/24", mode="main", auth="rsa",
                                  psk=None, cert_der=ike_pki.certs["A"],
                                  key_pem=ike_pki.keys["A"], ca_ders=[ike_pki.ca]),
             "10.0.0.2", behind_nat=True)
    up(wire, "A")
    (row,) = wire.ike("hub")
    assert row["status"] != "Activated"
    assert "probable certificate mismatch" in row["last_error"]
    assert "is not in its certificate" in row["last_error"]


# -- main mode with a pre-shared key: only the catch-all -------------------------------------------------
def test_catch_all_psk_peer_takes_any_id_beside_certificate_peers(ike_pki):
    everyone = peer("anyone", ANY_GATEWAY, mode="main", catch_all=True, psk=b"shared")
    certified = peer("branch-a", ANY_GATEWAY, mode="main", remote_id=_dn(ike_pki, "A"),
                     auth="rsa", cert_der=ike_pki.certs["B"], key_pem=ike_pki.keys["B"],
                     ca_ders=[ike_pki.ca], psk=None)
    hub = settings([certified, everyone], [conn("to-a", "branch-a", HUB_NET, "10.1.0.0/24"),
                                           conn("to-any", "anyone", HUB_NET, "10.8.0.0/24")])
    wire = Wire()
    wire.add("hub", hub, HUB)
    wire.add("psk", branch_settings(fqdn("whoever.example.net"), "10.8.0.0/24", mode="main",
                                    psk=b"shared"), "10.0.0.8", behind_nat=True)
    wire.add("A", branch_settings(None, "10.1.0.0/24", mode="main", auth="rsa", psk=None,
                                  cert_der=ike_pki.certs["A"], key_pem=ike_pki.keys["A"],
                                  ca_ders=[ike_pki.ca]), "10.0.0.2", behind_nat=True)
    up(wire, "psk")
    up(wire, "A")
    assert peers_up(wire) == ["anyone", "branch-a"]


def test_catch_all_with_a_wrong_key_is_a_key_mismatch():
    hub = settings([peer("anyone", ANY_GATEWAY, mode="main", catch_all=True, psk=b"shared")],
                   [conn("to-any", "anyone", HUB_NET, "10.8.0.0/24")])
    wire = Wire()
    wire.add("hub", hub, HUB)
    wire.add("psk", branch_settings(fqdn("x.example.net"), "10.8.0.0/24", mode="main",
                                    psk=b"other"), "10.0.0.8", behind_nat=True)
    up(wire, "psk")
    wire.step(5)
    assert "probable pre-shared key mismatch" in (wire.ike("hub")[0]["last_error"] or "")
    assert peers_up(wire) == []


# -- a dynamic peer only responds -------------------------------------------------------------------------
def test_a_dynamic_peer_is_not_initiated_to_without_an_address():
    wire = Wire()
    hub = wire.add("hub", hub_settings(("branch1", fqdn("b1.example.net"), "10.1.0.0/24"),
                                       act_as="both"), HUB)
    hub.initiate("to-branch1", wire.now)
    wire.flush()
    assert wire.ike("hub") == []
    assert any("waits for the peer to connect" in t for t in wire.logs("hub"))


# -- gateways by DNS name -----------------------------------------------------------------------------------
def _named_branch():
    return settings([peer("hub", "hub.example.net", mode="aggressive",
                          local_id=fqdn("b1.example.net"), act_as="initiator")],
                    [conn("lan", "hub", "10.1.0.0/24", HUB_NET)])


def test_dns_named_gateway_is_resolved_before_each_initiation_and_followed_after_failure():
    wire = Wire()
    wire.add("hub", hub_settings(("branch1", fqdn("b1.example.net"), "10.1.0.0/24")), HUB)
    b1 = wire.add("b1", _named_branch(), "198.51.100.20")
    b1.initiate("lan", wire.now)
    wire.flush()
    (ask,) = wire.of("b1", events.ResolveGateway)
    assert (ask.peer, ask.name) == ("hub", "hub.example.net")
    assert wire.ike("b1") == []                     # nothing is sent before the answer
    b1.learn_gateway_address("hub", None, wire.now, error="Name or service not known")
    wire.flush()
    (row,) = wire.ike("b1")
    assert row["remote_gateway"] == "hub.example.net"
    assert "the peer's name does not resolve" in row["last_error"]
    assert "Name or service not known" in row["last_error"]
    assert any("the peer's name does not resolve" in t for t in wire.logs("b1"))
    wire.step(121)                                  # cleared from the page: asked again
    assert len(wire.of("b1", events.ResolveGateway)) == 2
    b1.learn_gateway_address("hub", HUB, wire.now)
    wire.flush()
    (row,) = wire.ike("b1")
    assert (row["status"], row["remote_gateway"], row["configured_gateway"]) == (
        "Activated", HUB, "hub.example.net")
    # The hub restarts on another address (its state is gone, its name moves): the branch's
    # DPD declares it dead, the name is resolved again and the new address followed.
    del wire.nodes["hub"]
    wire.add("hub", hub_settings(("branch1", fqdn("b1.example.net"), "10.1.0.0/24")),
             "192.0.2.99")
    wire.step(200)
    assert any("dead peer detection" in t for t in wire.logs("b1"))
    assert len(wire.of("b1", events.ResolveGateway)) == 3
    b1.learn_gateway_address("hub", "192.0.2.99", wire.now)
    wire.flush()
    (row,) = [r for r in wire.ike("b1") if r["status"] == "Activated"]
    assert row["remote_gateway"] == "192.0.2.99"
    assert any("hub.example.net resolves to 192.0.2.99 (was %s)" % HUB in t
               for t in wire.logs("b1"))


# -- configuration ----------------------------------------------------------------------------------------
HUB_TOML = """
[[peer]]
name = "branch1"
remote_gateway = "%s"
phase1_mode = "aggressive"
remote_id = { type = "fqdn", value = "b1.example.net" }
psk = "one"
"""


@pytest.mark.parametrize("spelling", ["%any", "0.0.0.0", "any", "%ANY"])
def test_any_address_spellings(spelling):
    parsed = config.parse(HUB_TOML % spelling)
    branch = parsed.peers["branch1"]
    assert branch.remote_gateway == ANY_GATEWAY and branch.dynamic
    assert branch.act_as == "responder"


def test_dns_name_gateway_is_accepted():
    parsed = config.parse(HUB_TOML % "Branch.Example.NET.")
    assert parsed.peers["branch1"].remote_gateway == "branch.example.net"
    assert parsed.peers["branch1"].gateway_kind == "name"


CATCH_ALL = """
[[peer]]
name = "anyone%d"
remote_gateway = "%%any"
catch_all = true
psk = "shared"
"""


@pytest.mark.parametrize("text, key, fragment", [
    (HUB_TOML % "%any" + 'act_as = "initiator"\n', "peer[0].act_as",
     "can only respond"),
    (CATCH_ALL % 1 + CATCH_ALL % 2, "peer[1].catch_all", "peer 'anyone1' is already the "
     "catch-all peer"),
    ((HUB_TOML % "%any").replace('phase1_mode = "aggressive"', 'phase1_mode = "main"'),
     "peer[0].remote_gateway", "catch_all = true"),
    ((HUB_TOML % "%any").replace('remote_id = { type = "fqdn", value = "b1.example.net" }', ""),
     "peer[0].remote_id", "is chosen by its ID"),
    (HUB_TOML % "198.51.100.2" + "catch_all = true\n", "peer[0].catch_all",
     "only for a peer with remote_gateway"),
    (CATCH_ALL % 1 + 'phase1_mode = "aggressive"\n', "peer[0].catch_all",
     "only for main mode with a pre-shared key"),
    (HUB_TOML % "%any" + (HUB_TOML % "%any").replace("branch1", "branch2", 1),
     "peer[1].remote_id", "already accepts fqdn b1.example.net"),
    (HUB_TOML % "br_nch!.example", "peer[0].remote_gateway", "is not an IPv4 address, a "
     "domain name"),
    (HUB_TOML % "1.2.3", "peer[0].remote_gateway", "is not an IPv4 address"),
])
def test_bad_hub_combinations_name_the_key(text, key, fragment):
    with pytest.raises(config.ConfigError) as info:
        config.parse(text)
    assert info.value.key == key, str(info.value)
    assert fragment in info.value.message


def test_catch_all_is_warned_about():
    warnings = []
    config.parse(CATCH_ALL % 1, warnings=warnings)
    (line,) = warnings
    assert "peer[0].catch_all" in line and "accepts anyone who knows its pre-shared key" in line


def test_status_page_and_ikectl_show_where_the_peer_is_now():
    from ikecore import ctl
    from webui import presentation
    wire = Wire()
    wire.add("hub", hub_settings(("branch1", fqdn("b1.example.net"), "10.1.0.0/24")), HUB)
    wire.add("b1", branch_settings(fqdn("b1.example.net"), "10.1.0.0/24"), "10.0.0.2",
             behind_nat=True)
    up(wire, "b1")
    (row,) = wire.ike("hub")
    port = row["remote_address"].split(":")[1]
    assert presentation.gateway_text(row) == "%s:%s (%%any)" % (NAT, port)
    assert "%s:%s (%%any)" % (NAT, port) in ctl.format_status({"ike_sas": [row], "sas": []})
    fixed = dict(row, remote_gateway=HUB, remote_address=HUB + ":500", configured_gateway=HUB)
    assert presentation.gateway_text(fixed) == HUB
    named = dict(fixed, configured_gateway="hub.example.net")
    assert presentation.gateway_text(named) == HUB + " (hub.example.net)"
