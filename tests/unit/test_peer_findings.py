"""Issue 15, sans-IO: what a Libreswan peer showed (tests/qemu/test_tunnel_libreswan.py has pluto
itself). DPD advertised with our probing off; the lifetime in force (RESPONDER-LIFETIME in phase
1, learned from the peer's rekey or delete); aggressive mode met with silence; NO-PROPOSAL-CHOSEN
for an offer a default would accept."""
from ikecore.protocol import codec, vendor
from ikecore.protocol import consts as C
from ikecore.protocol import proposals
from ikecore.protocol.ikesa import RETRANSMIT_DELAYS

GIVE_UP = sum(RETRANSMIT_DELAYS) + 1


def _clear_messages(link, who):
    out = []
    for sender, data in link.trace:
        if sender == who and not data[:4] == b"\x00\x00\x00\x00":
            msg = codec.decode_message(data)
            if not msg.flags & C.FLAG_ENCRYPTION:
                out.append(msg)
    return out


def _vids(message):
    return [bytes(p.data) for p in message.payloads if isinstance(p, codec.VendorPayload)]


def _one(link, name):
    (ike,) = link.ike(name)
    return ike


# -- 1. DPD vendor ID ------------------------------------------------------------------------------
def test_dpd_vendor_id_is_sent_with_our_probing_off_both_roles(ike_link_factory):
    link = ike_link_factory(both={"dpd": (0, 120)})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    first_a = _clear_messages(link, "A")[0]
    first_b = _clear_messages(link, "B")[0]
    assert first_a.exchange == first_b.exchange == C.EXCHANGE_MAIN
    assert vendor.VID_DPD in _vids(first_a)            # message 1
    assert vendor.VID_DPD in _vids(first_b)            # message 2
    # we still answer R-U-THERE, but do not probe ourselves
    for core in (link.a, link.b):
        (sa,) = core.ike_sas.values()
        assert sa.peer_dpd and sa.dpd is None


def test_dpd_vendor_id_in_aggressive_mode_with_probing_off(ike_link_factory):
    link = ike_link_factory(both={"dpd": (0, 120), "mode": "aggressive"})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert vendor.VID_DPD in _vids(_clear_messages(link, "A")[0])
    assert vendor.VID_DPD in _vids(_clear_messages(link, "B")[0])


# -- 2. the lifetime in force ----------------------------------------------------------------------
def _responder_lifetime_notes(message):
    return [p for p in message.payloads
            if isinstance(p, codec.NotifyPayload) and p.notify_type == C.RESPONDER_LIFETIME]


def test_phase1_responder_keeps_its_shorter_lifetime_and_says_so(ike_link_factory):
    link = ike_link_factory(a_kwargs={"lifetime_s": 28800}, b_kwargs={"lifetime_s": 3600})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    (note,) = _responder_lifetime_notes(_clear_messages(link, "B")[0])     # main mode message 2
    assert note.protocol == C.PROTO_ISAKMP and len(note.spi) == 16
    assert proposals.lifetime_from_notify(bytes(note.data), proposals.P1_LIFE_TYPE,
                                          proposals.P1_LIFE_DURATION) == (3600, None)
    a, b = _one(link, "A"), _one(link, "B")
    assert a["state"] == b["state"] == 9
    assert a["lifetime_s"] == b["lifetime_s"] == 3600
    assert b["lifetime_note"] == "ours; the peer proposed 28800"
    assert a["lifetime_note"] == "the peer's (RESPONDER-LIFETIME); we proposed 28800"
    assert any("using the shorter 3600 s and telling the peer (RESPONDER-LIFETIME)" in t
               for t in link.logs("B", "info"))
    # A's SA ends with B's, not 7 hours later
    (sa,) = link.a.ike_sas.values()
    assert sa.expire_at == sa.established_at + 3600


def test_phase1_responder_lifetime_in_aggressive_mode(ike_link_factory):
    link = ike_link_factory(both={"mode": "aggressive"}, a_kwargs={"lifetime_s": 28800},
                            b_kwargs={"lifetime_s": 7200})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert len(_responder_lifetime_notes(_clear_messages(link, "B")[0])) == 1
    assert _one(link, "A")["lifetime_s"] == _one(link, "B")["lifetime_s"] == 7200


def test_no_responder_lifetime_when_the_offer_is_not_longer(ike_link_factory):
    link = ike_link_factory(a_kwargs={"lifetime_s": 3600}, b_kwargs={"lifetime_s": 28800})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert _responder_lifetime_notes(_clear_messages(link, "B")[0]) == []
    assert _one(link, "A")["lifetime_s"] == _one(link, "B")["lifetime_s"] == 3600
    assert _one(link, "A")["lifetime_note"] is None
    assert _one(link, "B")["lifetime_note"] == "the peer's; ours is 28800"


def test_quick_mode_lifetime_notes_both_roles(ike_link_factory):
    link = ike_link_factory(a_kwargs={"child_lifetime_s": 3600}, b_kwargs={"child_lifetime_s": 1200})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert {s["lifetime_s"] for s in link.sas("A") + link.sas("B")} == {1200}
    assert {s["lifetime_note"] for s in link.sas("A")} == {
        "the peer's (RESPONDER-LIFETIME); we proposed 3600"}
    assert {s["lifetime_note"] for s in link.sas("B")} == {"ours; the peer proposed 3600"}


def _silent_peer(link, ike_s, child_s):
    """Make B behave like Libreswan: it accepted A's lifetimes but lives by shorter ones of its
    own, which it offers when it renews (B's settings change under its established SAs)."""
    peer = link.b.settings.peers["peer"]
    conn = link.b.settings.connections["lan"]
    peer.lifetime_s = ike_s
    conn.lifetime_s = child_s


def test_peer_rekey_teaches_its_shorter_lifetime(ike_link_factory):
    link = ike_link_factory(both={"lifetime_s": 28800, "child_lifetime_s": 3600})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    _silent_peer(link, 3600, 1200)
    # B renews the tunnel: its quick mode offers 1200 s
    (group,) = link.b.groups.values()
    group.rekey_at = link.clock.now + 1
    link.b.touch(group)
    link.step(2)
    old = [s for s in link.sas("A") if s["elapsed_s"] >= 2]
    new = [s for s in link.sas("A") if s["elapsed_s"] < 2]
    assert len(old) == len(new) == 2
    assert {s["lifetime_s"] for s in old + new} == {1200}
    assert {s["lifetime_note"] for s in old} == {"the peer's, learned from its rekey; we had 3600"}
    assert {s["lifetime_note"] for s in new} == {"the peer's; ours is 3600"}
    # B renews the IKE SA: its main mode offers 3600 s
    (b_sa,) = link.b.ike_sas.values()
    b_sa.rekey_at = link.clock.now + 1
    link.b.touch(b_sa)
    link.step(2)
    lifetimes = sorted((s["lifetime_s"], s["lifetime_note"]) for s in link.ike("A"))
    assert lifetimes == [(3600, "the peer's, learned from its rekey; we had 28800"),
                         (3600, "the peer's; ours is 28800")]
    assert any("the peer renewed IKE SA" in t for t in link.logs("A", "info"))
    # what A negotiates next with this peer uses (and offers) the learned lifetimes
    assert link.a.learned.in_force("peer", "peer", 28800) == (
        3600, "the peer's, learned earlier; ours is 28800")
    assert link.a.learned.in_force("connection", "lan", 3600)[0] == 1200


def test_peer_delete_before_our_renewal_teaches_its_lifetime(ike_link_factory):
    link = ike_link_factory(both={"child_lifetime_s": 3600})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    link.step(1200)                                   # B "expires" its SAs after 1200 s
    (b_sa,) = link.b.ike_sas.values()
    (group,) = link.b.groups.values()
    link.b.child_sas.remove(group, link.clock.now, "lifetime expired", notify_peer=True)
    link.flush()
    assert link.sas("A") == []
    assert any("taking 1200 s as its lifetime from now on" in t for t in link.logs("A", "info"))
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert {s["lifetime_s"] for s in link.sas("A")} == {1200}
    assert {s["lifetime_note"] for s in link.sas("A")} == {
        "the peer's, learned earlier; ours is 3600"}


def test_a_young_delete_teaches_nothing(ike_link_factory):
    link = ike_link_factory()
    link.a.initiate("lan", link.clock.now)
    link.flush()
    link.step(10)
    (group,) = link.b.groups.values()
    link.b.child_sas.remove(group, link.clock.now, "by hand", notify_peer=True)
    link.flush()
    assert link.a.learned.get("connection", "lan") is None


# -- 3. aggressive mode against a main-mode-only peer -----------------------------------------------
def test_silence_to_aggressive_mode_names_the_mode_beside_reachability(ike_link_factory):
    link = ike_link_factory(a_kwargs={"mode": "aggressive"})
    lose_all = lambda who, n, d: True
    link.a.initiate("lan", link.clock.now)
    link.flush(drop=lose_all)
    link.step(GIVE_UP, drop=lose_all)
    line = _one(link, "A")["last_error"]
    assert "could not be reached, or it accepts main mode only" in line, line
    assert "aggressive mode message 1" in line and "allows aggressive mode" in line, line


def test_silence_to_main_mode_still_reads_unreachable(ike_link_factory):
    link = ike_link_factory()
    lose_all = lambda who, n, d: True
    link.a.initiate("lan", link.clock.now)
    link.flush(drop=lose_all)
    link.step(GIVE_UP, drop=lose_all)
    line = _one(link, "A")["last_error"]
    assert "the remote peer could not be reached (" in line, line
    assert "main mode only" not in line


# -- 4. NO-PROPOSAL-CHOSEN for a default-compatible offer -------------------------------------------
def _refused_by_no_proposal_chosen(link):
    """B answers A's message 1 with NO-PROPOSAL-CHOSEN as pluto does when it has no key."""
    link.a.initiate("lan", link.clock.now)
    link.flush(drop=lambda who, n, d: True)
    (sa,) = link.a.ike_sas.values()
    note = codec.NotifyPayload(C.NO_PROPOSAL_CHOSEN, protocol=C.PROTO_ISAKMP, spi=sa.spi())
    data = codec.encode_message(codec.Message(C.EXCHANGE_INFORMATIONAL, sa.icookie, b"\x00" * 8,
                                              payloads=[note]))
    link.a.receive_datagram(data, ("192.0.2.1", 500), ("198.51.100.2", 500), link.clock.now)
    return _one(link, "A")["last_error"]


def test_no_proposal_chosen_for_a_default_offer_names_id_or_key(ike_link_factory):
    link = ike_link_factory(a_kwargs={"ike": ["aes256-sha256-modp2048"]})
    line = _refused_by_no_proposal_chosen(link)
    assert "probable algorithm mismatch, or our ID or key is not configured on the peer" in line
    assert "NO-PROPOSAL-CHOSEN" in line and "pre-shared key (or certificate) for our ID" in line


def test_no_proposal_chosen_for_an_unusual_offer_stays_algorithm(ike_link_factory):
    link = ike_link_factory(a_kwargs={"ike": ["aes128-md5-modp1024"]})
    line = _refused_by_no_proposal_chosen(link)
    assert "probable algorithm mismatch (" in line and "ID or key" not in line, line
