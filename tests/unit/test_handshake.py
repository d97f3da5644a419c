"""Full handshakes between two in-process cores: phase 1 (main/aggressive) + quick mode.

Message flows are written as in RFC 2409; A is the initiator unless a test says otherwise."""
import pytest

from ikecore.protocol import consts as C
from ikecore.protocol import codec
from ikecore.protocol.settings import Identity


def _exchanges(link):
    out = []
    for who, data in link.trace:
        h = codec.decode_header(data)
        out.append((who, C.EXCHANGE_NAMES[h.exchange], bool(h.flags & C.FLAG_ENCRYPTION)))
    return out


def _check_pairs(link, protocols=("esp",)):
    """A's outgoing SA = B's incoming SA with the same SPI and keys, and vice versa."""
    a, b = link.installed("A"), link.installed("B")
    assert len(a) == len(b) == 2 * len(protocols)
    for mine, theirs in ((a, b), (b, a)):
        for out in [s for s in mine if s.direction == "out"]:
            match = [s for s in theirs if s.direction == "in" and s.spi == out.spi
                     and s.protocol == out.protocol]
            assert len(match) == 1
            peer_in = match[0]
            assert (out.encr, out.encr_key, out.integ, out.integ_key) == \
                   (peer_in.encr, peer_in.encr_key, peer_in.integ, peer_in.integ_key)
            assert out.src == peer_in.src and out.dst == peer_in.dst
    assert sorted(s.protocol for s in a) == sorted(list(protocols) * 2)


def test_main_mode_psk_then_quick_mode_esp(ike_link_factory):
    link = ike_link_factory()
    link.a.initiate("lan", link.clock.now)
    link.flush()
    # HDR, SA -->  <-- HDR, SA;  HDR, KE, Ni -->  <-- HDR, KE, Nr;
    # HDR*, IDii, HASH_I -->  <-- HDR*, IDir, HASH_R;
    # HDR*, HASH(1), SA, Ni, IDci, IDcr -->  <-- HDR*, HASH(2), SA, Nr, IDci, IDcr;  HDR*, HASH(3) -->
    assert _exchanges(link) == [
        ("A", "MAIN", False), ("B", "MAIN", False), ("A", "MAIN", False), ("B", "MAIN", False),
        ("A", "MAIN", True), ("B", "MAIN", True),
        ("A", "QUICK", True), ("B", "QUICK", True), ("A", "QUICK", True)]
    for name, role in (("A", "initiator"), ("B", "responder")):
        (ike,) = link.ike(name)
        assert (ike["status"], ike["state"], ike["mode"], ike["role"]) == ("Activated", 9, "main", role)
        assert ike["algorithm"] == "AES-CBC-128/HMAC-SHA1/MODP-1024"
        assert ike["phase2_negotiations"] == 1 and ike["last_error"] is None
        assert len(link.sas(name)) == 2
    _check_pairs(link)
    assert link.logs("A", "error") == [] and link.logs("B", "error") == []


DESIGN_IKE = ["aes128-sha1-modp2048", "aes256-sha256-modp2048", "3des-md5-modp1024"]
DESIGN_CHILD = ["aes128-sha1", "aes256-sha256", "3des-md5"]


@pytest.mark.parametrize("mode", ["main", "aggressive"])
@pytest.mark.parametrize("initiator", ["A", "B"])
def test_every_mode_and_role_reaches_activated(ike_link_factory, mode, initiator):
    link = ike_link_factory(both={"mode": mode})
    link.core(initiator).initiate("lan", link.clock.now)
    link.flush()
    responder = "B" if initiator == "A" else "A"
    for name, role in ((initiator, "initiator"), (responder, "responder")):
        (ike,) = link.ike(name)
        assert (ike["status"], ike["state"], ike["mode"], ike["role"]) == ("Activated", 9, mode, role)
    _check_pairs(link)
    if mode == "aggressive":
        # HDR, SA, KE, Ni, IDii -->  <-- HDR, SA, KE, Nr, IDir, HASH_R;  HDR*, HASH_I -->
        assert _exchanges(link)[:3] == [(initiator, "AGGRESSIVE", False),
                                        (responder, "AGGRESSIVE", False),
                                        (initiator, "AGGRESSIVE", True)]


@pytest.mark.parametrize("pick", range(3))
@pytest.mark.parametrize("mode,initiator", [("main", "A"), ("main", "B"), ("aggressive", "B")])
def test_design_proposals_responder_picks_by_its_preference(ike_link_factory, pick, mode,
                                                            initiator):
    """One side offers the three example proposals; the other accepts only one of them (phase 1
    and 2). In aggressive mode only the single-proposal side can initiate for the MODP-1024 pick
    (its KE fixes the group), so there B initiates."""
    link = ike_link_factory(
        both={"mode": mode},
        a_kwargs={"ike": DESIGN_IKE, "child": DESIGN_CHILD},
        b_kwargs={"ike": [DESIGN_IKE[pick]], "child": [DESIGN_CHILD[pick]]})
    link.core(initiator).initiate("lan", link.clock.now)
    link.flush()
    texts = ["AES-CBC-128/HMAC-SHA1/MODP-2048", "AES-CBC-256/HMAC-SHA2-256/MODP-2048",
             "3DES-CBC/HMAC-MD5/MODP-1024"]
    child_texts = ["AES-CBC-128/HMAC-SHA1-96", "AES-CBC-256/HMAC-SHA2-256-128",
                   "3DES-CBC/HMAC-MD5-96"]
    for name in "AB":
        (ike,) = link.ike(name)
        assert ike["state"] == 9 and ike["algorithm"] == texts[pick]
        assert {s["algorithm"] for s in link.sas(name)} == {child_texts[pick]}
    _check_pairs(link)


def test_responder_prefers_its_own_order(ike_link_factory):
    link = ike_link_factory(a_kwargs={"ike": DESIGN_IKE, "child": DESIGN_CHILD},
                            b_kwargs={"ike": list(reversed(DESIGN_IKE)),
                                      "child": list(reversed(DESIGN_CHILD))})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert link.ike("A")[0]["algorithm"] == "3DES-CBC/HMAC-MD5/MODP-1024"
    assert {s["algorithm"] for s in link.sas("A")} == {"3DES-CBC/HMAC-MD5-96"}


@pytest.mark.parametrize("pfs", [None, "modp1024", "ecp256"])
@pytest.mark.parametrize("protocol,children", [("esp", ["aes128-sha1"]), ("ah", ["sha1"]),
                                               ("esp+ah", ["aes128-sha256"])])
def test_quick_mode_protocols_and_pfs(ike_link_factory, pfs, protocol, children):
    link = ike_link_factory(both={"pfs": pfs, "protocol": protocol, "child": children})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    protos = ("esp", "ah") if protocol == "esp+ah" else (protocol,)
    _check_pairs(link, protos)
    quick1 = [d for who, d in link.trace if codec.decode_header(d).exchange == C.EXCHANGE_QUICK]
    assert len(quick1) == 3
    for s in link.installed("A"):
        assert s.local_net == "192.168.1.0/24" and s.remote_net == "10.2.0.0/24"
        assert s.mode == "tunnel" and s.lifetime_s == 3600
        if s.protocol == "ah":
            assert s.encr is None and s.encr_key is None
    assert {s["protocol"] for s in link.sas("B")} == {p.upper() for p in protos}


def test_several_quick_modes_per_ike_sa(ike_link_factory):
    from ikecore.protocol.settings import Connection
    from ikecore.protocol import proposals
    extra_a = Connection("lan2", "peer", "192.168.7.0/24", "10.7.0.0/24",
                         [proposals.parse_child("aes256-sha256")], pfs="modp1024")
    extra_b = Connection("lan2", "peer", "10.7.0.0/24", "192.168.7.0/24",
                         [proposals.parse_child("aes256-sha256")], pfs="modp1024")
    host_a = Connection("host", "peer", "192.168.1.10/32", "10.2.0.20/32",
                        [proposals.parse_child("aes128-sha1")])
    host_b = Connection("host", "peer", "10.2.0.20/32", "192.168.1.10/32",
                        [proposals.parse_child("aes128-sha1")])
    link = ike_link_factory(a_kwargs={"extra_connections": [extra_a, host_a]},
                            b_kwargs={"extra_connections": [extra_b, host_b]})
    link.a.initiate("lan", link.clock.now)
    link.a.initiate("lan2", link.clock.now)
    link.flush()
    link.b.initiate("host", link.clock.now)     # the responder of phase 1 starts a quick mode too
    link.flush()
    for name in "AB":
        (ike,) = link.ike(name)
        assert ike["phase2_negotiations"] == 3
        assert len(link.sas(name)) == 6
    nets = {(s["local_net"], s["remote_net"]) for s in link.sas("A")}
    assert nets == {("192.168.1.0/24", "10.2.0.0/24"), ("192.168.7.0/24", "10.7.0.0/24"),
                    ("192.168.1.10/32", "10.2.0.20/32")}
    # /32 networks travel as ID_IPV4_ADDR, the others as ID_IPV4_ADDR_SUBNET (checked by the
    # responder finding the right connection); a repeated "up" does nothing more.
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert len(link.sas("A")) == 6


def test_acquire_starts_the_tunnel_and_spis_are_unique(ike_link_factory):
    link = ike_link_factory()
    link.a.acquire("192.168.1.5", "10.2.0.9", link.clock.now)
    link.flush()
    assert link.ike("A")[0]["state"] == 9
    spis = [s.spi for s in link.installed("A") if s.direction == "in"]
    assert all(spi >= 0x100 for spi in spis)
    assert len(set(s.spi for s in link.installed("A"))) == 2


def test_responder_only_does_not_initiate_on_acquire(ike_link_factory):
    link = ike_link_factory(a_kwargs={"act_as": "responder"})
    link.a.acquire("192.168.1.5", "10.2.0.9", link.clock.now)
    link.flush()
    assert link.trace == [] and link.ike("A") == []


def test_initiator_only_refuses_to_respond(ike_link_factory):
    link = ike_link_factory(b_kwargs={"act_as": "initiator"})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert link.ike("B") == []
    assert link.ike("A")[0]["state"] == 3


def test_responder_lifetime_shortens_the_initiators_sas(ike_link_factory):
    link = ike_link_factory(a_kwargs={"child_lifetime_s": 7200}, b_kwargs={"child_lifetime_s": 1800})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert {s.lifetime_s for s in link.installed("A")} == {1800}
    assert {s.lifetime_s for s in link.installed("B")} == {1800}


def test_status_shape(ike_link_factory):
    link = ike_link_factory()
    link.a.initiate("lan", link.clock.now)
    link.flush()
    link.step(12)
    st = link.a.status(link.clock.now)
    (ike,) = st["ike_sas"]
    assert set(ike) == {"id", "peer", "remote_gateway", "local_address", "status", "state", "mode",
                        "role", "algorithm", "auth", "elapsed_s", "lifetime_s", "lifetime_note",
                        "nat_t", "phase2_negotiations", "last_error", "remote_address",
                        "configured_gateway"}
    assert ike["elapsed_s"] == 12 and ike["nat_t"] == "none" and ike["auth"] == "psk"
    assert ike["remote_gateway"] == "198.51.100.2" and ike["lifetime_s"] == 28800
    out = [s for s in st["sas"] if s["direction"] == "outgoing"][0]
    assert set(out) == {"id", "ike_sa", "connection", "destination", "direction", "spi", "protocol", "mode",
                        "algorithm", "local_net", "remote_net", "elapsed_s", "lifetime_s",
                        "lifetime_note", "bytes", "packets", "errored_packets"}
    assert out["destination"] == "198.51.100.2" and out["spi"].startswith("0x")
    assert out["ike_sa"] == ike["id"] and out["elapsed_s"] == 12
    inc = [s for s in st["sas"] if s["direction"] == "incoming"][0]
    assert inc["destination"] == "192.0.2.1"


@pytest.mark.parametrize("mode", ["main", "aggressive"])
def test_nat_traversal_floats_to_4500(ike_kit, mode):
    """A behind a NAT (203.0.113.9): NAT-D finds it, IKE moves to 4500 and ESP goes in UDP."""
    k = ike_kit
    IkeLink, ike_settings, GW_A, GW_B, NET_A, NET_B = (k.IkeLink, k.ike_settings, k.GW_A, k.GW_B,
                                                       k.NET_A, k.NET_B)
    public = "203.0.113.9"
    link = IkeLink(ike_settings(GW_A, GW_B, NET_A, NET_B, mode=mode),
                   ike_settings(GW_B, public, NET_B, NET_A, mode=mode),
                   nat_a=(public, {500: 40500, 4500: 44500}))
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert link.ike("A")[0]["nat_t"] == "near end" and link.ike("B")[0]["nat_t"] == "far end"
    for name in "AB":
        assert link.ike(name)[0]["state"] == 9
    # main mode: messages 1-4 on 500, 5 on with the non-ESP marker; aggressive: 1-2, then 3
    first_float = 4 if mode == "main" else 2
    for who, data in link.trace[first_float:]:
        assert data[:4] == b"\x00\x00\x00\x00"
    for s in link.installed("A"):
        assert s.encap == (4500, 4500)
    b_out = [s for s in link.installed("B") if s.direction == "out"][0]
    assert b_out.encap == (4500, 44500) and b_out.dst == public
    mark = len(link.trace)
    link.step(21)
    assert ("A", b"\xff") in link.trace[mark:]         # keepalive from behind the NAT


def test_no_nat_means_no_float(ike_link_factory):
    link = ike_link_factory()
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert all(d[:4] != b"\x00\x00\x00\x00" for _, d in link.trace)
    assert all(s.encap is None for s in link.installed("A"))
    assert link.ike("A")[0]["nat_t"] == "none"


@pytest.mark.parametrize("mode", ["main", "aggressive"])
@pytest.mark.parametrize("initiator", ["A", "B"])
def test_rsa_signatures_with_certificates(ike_link_factory, ike_pki, mode, initiator):
    from ikecore.protocol.settings import Identity
    link = ike_link_factory(
        both={"mode": mode},
        a_kwargs=dict(ike_pki.side("A"), remote_id=Identity("dn", "C=CH, O=ikecore test, CN=gw-b")),
        b_kwargs=dict(ike_pki.side("B"), remote_id=Identity("fqdn", "a.example"),
                      local_id=None))
    link.a.settings.peers["peer"].local_id = Identity("fqdn", "a.example")
    link.core(initiator).initiate("lan", link.clock.now)
    link.flush()
    for name in "AB":
        (ike,) = link.ike(name)
        assert (ike["state"], ike["auth"], ike["last_error"]) == (9, "rsa", None)
    _check_pairs(link)


def test_aggressive_mode_offers_only_the_group_of_its_key_exchange(ike_link_factory):
    link = ike_link_factory(both={"mode": "aggressive"},
                            a_kwargs={"ike": ["aes128-sha1-modp1024", "aes256-sha256-ecp256",
                                              "3des-md5-modp1024"]},
                            b_kwargs={"ike": ["aes256-sha256-ecp256", "3des-md5-modp1024"]})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    # B prefers the ECP-256 proposal, but A's KE is MODP-1024: B must pick 3DES-MD5-MODP1024
    assert link.ike("B")[0]["algorithm"] == "3DES-CBC/HMAC-MD5/MODP-1024"
    assert link.ike("A")[0]["state"] == 9


def test_both_sides_initiate_at_once(ike_link_factory):
    """act as both: each side starts phase 1 before seeing the other's; both negotiations
    complete and the tunnel works (the older pair ages out at its lifetime)."""
    link = ike_link_factory()
    link.a.initiate("lan", link.clock.now)
    link.b.initiate("lan", link.clock.now)
    link.flush()
    for name in "AB":
        states_ = sorted((s["role"], s["state"]) for s in link.ike(name))
        assert states_ == [("initiator", 9), ("responder", 9)]
        assert len(link.sas(name)) in (2, 4)
    assert link.logs("A", "error") == [] and link.logs("B", "error") == []
    link.step(3600)
    assert len(link.sas("A")) == len(link.sas("B"))


def test_volume_lifetime_reaches_the_sas(ike_link_factory):
    link = ike_link_factory(a_kwargs={"child_lifetime_kb": 500000},
                            b_kwargs={"child_lifetime_kb": 100000})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    # B shortens the volume lifetime (RESPONDER-LIFETIME with kilobytes), A adopts it
    assert {s.lifetime_kb for s in link.installed("B")} == {100000}
    assert {s.lifetime_kb for s in link.installed("A")} == {100000}


def test_initiator_learns_its_address_when_none_is_configured(ike_kit):
    k = ike_kit
    sa_ = k.ike_settings(k.GW_A, k.GW_B, k.NET_A, k.NET_B)
    sa_.peers["peer"].local_address = None
    link = k.IkeLink(sa_, k.ike_settings(k.GW_B, k.GW_A, k.NET_B, k.NET_A))
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert link.ike("A")[0]["state"] == 9 and link.ike("A")[0]["local_address"] == k.GW_A
    assert link.ike("A")[0]["nat_t"] == "none"
    assert {s.src for s in link.installed("A") if s.direction == "out"} == {k.GW_A}


def _aggressive_without_address(k):
    """A: aggressive initiator with neither local_address nor local_id; B: checks remote_id."""
    ours = k.ike_settings(k.GW_A, k.GW_B, k.NET_A, k.NET_B, mode="aggressive")
    ours.peers["peer"].local_address = None
    theirs = k.ike_settings(k.GW_B, k.GW_A, k.NET_B, k.NET_A, mode="aggressive",
                            remote_id=Identity("ipv4", k.GW_A))
    return k.IkeLink(ours, theirs)


def test_aggressive_initiator_without_address_or_id_sends_the_routed_address(ike_kit):
    """No local_address, no local_id: aggressive mode's first message carries our ID before
    the peer has answered, so the driver tells the core which address routes to the peer
    (core.learn_source_address). The responder checks it against its remote_id."""
    k = ike_kit
    link = _aggressive_without_address(k)
    link.a.learn_source_address(k.GW_B, k.GW_A)
    link.a.initiate("lan", link.clock.now)
    first = codec.decode_message(link.a._datagrams[0][0])     # peeked, still queued
    (ident,) = first.find_all(codec.IdPayload)
    assert (ident.id_type, bytes(ident.data)) == (C.ID_IPV4_ADDR, bytes([192, 0, 2, 1]))
    assert link.ike("A")[0]["local_address"] == k.GW_A
    link.flush()
    for name in "AB":
        assert link.ike(name)[0]["state"] == 9, link.logs(name, "error")


def test_without_a_route_the_aggressive_initiator_still_sends_0_0_0_0(ike_kit):
    """Forgetting the route (None) goes back to the old behaviour: the responder that checks
    remote_id refuses the ID 0.0.0.0 (what the driver's route lookup prevents)."""
    k = ike_kit
    link = _aggressive_without_address(k)
    link.a.learn_source_address(k.GW_B, k.GW_A)
    link.a.learn_source_address(k.GW_B, None)
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert "identified as ipv4 0.0.0.0" in link.ike("B")[0]["last_error"]
