"""Informational exchanges and the life of SAs: delete both ways, DPD, rekey, retransmission and
loss, INITIAL-CONTACT, kernel expires, down/reconfigure, malformed input in every state."""
import random

import pytest

from ikecore.protocol import codec, consts as C, events
from ikecore.protocol.children import OUTBOUND_SWITCH_DELAY_S
from ikecore.protocol.ikesa import RETRANSMIT_DELAYS


def _up(link, who="A"):
    link.core(who).initiate("lan", link.clock.now)
    link.flush()
    for name in "AB":
        assert link.ike(name)[0]["state"] == 9 and len(link.sas(name)) == 2


def _kinds(link, since=0):
    out = []
    for who, data in link.trace[since:]:
        h = codec.decode_header(data)
        out.append((who, C.EXCHANGE_NAMES[h.exchange]))
    return out


# -- delete ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["A", "B"])
def test_delete_child_sa_both_ways(ike_link_factory, who):
    link = ike_link_factory()
    _up(link)
    sa_id = link.sas(who)[0]["id"]
    mark = len(link.trace)
    link.core(who).delete(sa_id, link.clock.now)
    link.flush()
    # HDR*, HASH(1), D(ESP, our inbound SPI) -->
    assert _kinds(link, mark) == [(who, "INFORMATIONAL")]
    assert link.sas("A") == [] and link.sas("B") == []
    assert len(link.deleted("A")) == 2 and len(link.deleted("B")) == 2
    assert link.ike("A")[0]["state"] == 9      # the IKE SA stays


@pytest.mark.parametrize("who", ["A", "B"])
def test_delete_ike_sa_both_ways(ike_link_factory, who):
    link = ike_link_factory()
    _up(link)
    link.core(who).delete(link.ike(who)[0]["id"], link.clock.now)
    link.flush()
    # HDR*, HASH(1), D(ISAKMP, CKY-I|CKY-R) -->
    assert link.ike("A") == [] and link.ike("B") == []
    assert len(link.sas("A")) == 2                # IPsec SAs outlive the IKE SA in IKEv1


def _peer_sends_delete(link, spi):
    """B's IKE SA sends HDR*, HASH(1), D(ESP, spi) --> without touching its own SAs (as charon
    does after its kernel refused its half of the pair)."""
    from ikecore.protocol import informational
    sa_b = next(iter(link.b.ike_sas.values()))
    informational.send_delete_children(sa_b, C.PROTO_IPSEC_ESP, [spi.to_bytes(4, "big")],
                                       link.clock.now)
    link.flush()


def test_peer_delete_naming_our_inbound_spi_removes_the_pair(ike_link_factory):
    # charon (kernel-netlink) as responder: "unable to install inbound and outbound IPsec SA",
    # then "sending DELETE for ESP CHILD_SA with SPI <the SPI we allocated>".
    link = ike_link_factory()
    _up(link)
    ours_in = [c for c in link.a.children.values() if c.direction == "in"][0]
    _peer_sends_delete(link, ours_in.spi)
    assert link.sas("A") == []
    assert sorted(sa.direction for sa in link.deleted("A")) == ["in", "out"]
    assert any("deleted by the peer" in line for line in link.logs("A", "info"))
    assert link.ike("A")[0]["state"] == 9


def test_peer_delete_of_an_unknown_spi_is_logged_once(ike_link_factory):
    link = ike_link_factory()
    _up(link)
    for _ in range(2):
        _peer_sends_delete(link, 0x3543CE4E)
    lines = [line for line in link.logs("A", "info") if "unknown" in line]
    assert lines == ["delete from 198.51.100.2 names unknown ESP SPI 0x3543ce4e"]
    assert len(link.sas("A")) == 2 and link.deleted("A") == []


def test_down_deletes_everything_on_both_sides(ike_link_factory):
    link = ike_link_factory()
    _up(link)
    link.a.down("peer", link.clock.now)
    link.flush()
    for name in "AB":
        assert link.ike(name) == [] and link.sas(name) == []


def test_delete_unknown_id(ike_link_factory):
    link = ike_link_factory()
    with pytest.raises(KeyError):
        link.a.delete("sa-99", link.clock.now)


# -- DPD ------------------------------------------------------------------------------------------
def test_dpd_keeps_a_live_peer(ike_link_factory):
    link = ike_link_factory(both={"dpd": (10, 30)})
    _up(link)
    mark = len(link.trace)
    link.step(25)
    # HDR*, HASH(1), N(R-U-THERE) -->  <-- HDR*, HASH(1), N(R-U-THERE-ACK)
    kinds = _kinds(link, mark)
    assert kinds and all(k == "INFORMATIONAL" for _, k in kinds)
    assert ("A", "INFORMATIONAL") in kinds and ("B", "INFORMATIONAL") in kinds
    link.step(100)
    assert link.ike("A")[0]["state"] == 9 and len(link.sas("A")) == 2


def test_dpd_declares_a_silent_peer_dead_and_reinitiates(ike_link_factory):
    link = ike_link_factory(both={"dpd": (10, 30)})
    _up(link)
    silent_b = lambda who, n, d: who == "B"
    link.step(45, drop=silent_b)
    errors = link.logs("A", "error")
    assert any("dead peer detection" in e for e in errors)
    assert len(link.deleted("A")) == 2
    # A was the initiator: it tries again (HDR, SA --> to the dead peer)
    (ike,) = link.ike("A")
    assert ike["state"] == 3 and ike["role"] == "initiator"


def test_dpd_off_when_delay_is_zero(ike_link_factory):
    link = ike_link_factory(both={"dpd": (0, 0)})
    _up(link)
    mark = len(link.trace)
    link.step(300)
    assert _kinds(link, mark) == []


# -- rekey ----------------------------------------------------------------------------------------
def _until_our_rekey(link, ike=False):
    """Seconds until A renews its tunnel (ike: its IKE SA): a random moment in the last two
    margins of the lifetime (ikesa.rekey_after)."""
    (sa,) = link.a.ike_sas.values() if ike else link.a.groups.values()
    return sa.rekey_at - link.clock.now


def test_child_rekey_overlaps_then_old_pair_dies(ike_link_factory):
    link = ike_link_factory(both={"child_lifetime_s": 600})
    _up(link)
    old = {s["spi"] for s in link.sas("A")}
    link.step(600 - 60 + 1)        # rekey margin: a tenth of the lifetime
    for name in "AB":
        assert len(link.sas(name)) == 4               # two pairs during the overlap
        assert link.ike(name)[0]["phase2_negotiations"] == 2
    link.step(60)
    for name in "AB":
        sas = link.sas(name)
        assert len(sas) == 2 and not old & {s["spi"] for s in sas}
    assert len(link.deleted("A")) == 2


def test_our_renewal_moves_outgoing_traffic_to_the_new_sa_a_moment_after_hash3(ike_link_factory):
    """A renewal we initiate installs the new inbound SA at once and the new outbound one
    OUTBOUND_SWITCH_DELAY_S after HASH(3) left: a responder that installs on HASH(3) (charon
    does) has its new inbound SA before our first packet on it. The responder installs both."""
    link = ike_link_factory(both={"child_lifetime_s": 600})
    _up(link)
    before = {name: len(link.installed(name)) for name in "AB"}
    link.step(_until_our_rekey(link) + OUTBOUND_SWITCH_DELAY_S / 2)     # the rekey went through; not yet the switch
    new_a = link.installed("A")[before["A"]:]
    new_b = link.installed("B")[before["B"]:]
    assert [c.direction for c in new_a] == ["in"]
    assert sorted(c.direction for c in new_b) == ["in", "out"]
    assert len(link.sas("A")) == 4                 # the page shows the new pair already
    link.step(OUTBOUND_SWITCH_DELAY_S)
    new_a = link.installed("A")[before["A"]:]
    assert [c.direction for c in new_a] == ["in", "out"]
    assert new_a[1].spi == [c for c in new_b if c.direction == "in"][0].spi
    assert link.deleted("A") == []                 # the old pair lives on until its lifetime


def test_a_renewal_deleted_before_its_switch_never_reaches_the_kernel_outbound(ike_link_factory):
    link = ike_link_factory(both={"child_lifetime_s": 600})
    _up(link)
    before = len(link.installed("A"))
    link.step(_until_our_rekey(link) + OUTBOUND_SWITCH_DELAY_S / 2)
    (new_in,) = link.installed("A")[before:]
    new_out = [s for s in link.sas("A") if s["direction"] == "outgoing"][-1]
    link.a.delete(new_out["id"], link.clock.now)
    link.flush()
    assert [c.id for c in link.deleted("A")] == [new_in.id]     # no DeleteChildSa for the other
    link.step(OUTBOUND_SWITCH_DELAY_S * 2)
    assert len(link.installed("A")) == before + 1               # and it is never installed


def test_kernel_soft_expire_rekeys_and_hard_expire_deletes(ike_link_factory):
    link = ike_link_factory()
    _up(link)
    out = [s for s in link.installed("A") if s.direction == "out"][0]
    link.a.expire("esp", out.spi, out.dst, False, link.clock.now)
    link.flush()
    assert len(link.sas("A")) == 4
    link.a.expire("esp", out.spi, out.dst, True, link.clock.now)
    link.flush()
    assert len(link.sas("A")) == 2 and len(link.sas("B")) == 2


def test_ike_rekey_shows_new_sa_then_removes_old(ike_link_factory):
    link = ike_link_factory(both={"lifetime_s": 1000, "dpd": (0, 0)})
    _up(link)
    first = link.ike("A")[0]["id"]
    link.step(_until_our_rekey(link, ike=True) + 1)
    ids = [s["id"] for s in link.ike("A")]
    assert len(ids) == 2 and all(s["state"] == 9 for s in link.ike("A"))
    assert len(link.ike("B")) == 2
    link.step(31)
    (new,) = link.ike("A")
    assert new["id"] != first and len(link.ike("B")) == 1
    assert len(link.sas("A")) == 2 and {s["ike_sa"] for s in link.sas("A")} == {new["id"]}
    # the child SAs renew over the new IKE SA
    link.step(_until_our_rekey(link) + 1)
    assert link.ike("A")[0]["phase2_negotiations"] >= 1


# -- retransmission and loss --------------------------------------------------------------------
@pytest.mark.parametrize("mode,lost", [("main", n) for n in range(9)]
                         + [("aggressive", n) for n in range(6)])
def test_any_single_lost_message_is_recovered(ike_link_factory, mode, lost):
    link = ike_link_factory(both={"mode": mode})
    order = []

    def drop(who, n, data):
        order.append(who)
        return len(order) - 1 == lost

    link.a.initiate("lan", link.clock.now)
    link.flush(drop=drop)
    link.step(10, drop=drop)
    for name in "AB":
        assert link.ike(name)[0]["state"] == 9
        assert len(link.sas(name)) == 2, (lost, link.logs(name))
    assert len(link.installed("A")) == 2 and len(link.installed("B")) == 2


def test_retransmission_back_off(ike_link_factory):
    link = ike_link_factory()
    link.a.initiate("lan", link.clock.now)
    t0 = link.clock.now
    link.a.datagrams_to_send()
    times = []
    now = t0
    for _ in range(len(RETRANSMIT_DELAYS)):
        now = link.a.get_timer()
        link.a.handle_timer(now)
        if link.a.datagrams_to_send():
            times.append(now - t0)
    assert times == [2, 6, 14, 30]      # 2, 4, 8, 16 s apart, then give up at 62 s
    assert link.ike("A")[0]["last_error"] is not None


# -- INITIAL-CONTACT ------------------------------------------------------------------------------
def test_initial_contact_drops_the_peers_old_sas(ike_link_factory):
    link = ike_link_factory()
    _up(link)
    link.step(100)
    # A "reboots": a fresh core with the same settings starts over
    from ikecore.protocol.core import IkeCore
    link.a = IkeCore(link.a.settings, link.crypto, link.clock.now)
    link.events["A"] = []
    link.a.initiate("lan", link.clock.now)
    link.flush()
    (ike,) = link.ike("B")
    assert ike["state"] == 9 and len(link.sas("B")) == 2
    assert len(link.deleted("B")) == 2


# -- reconfigure ----------------------------------------------------------------------------------
def test_reconfigure_keeps_unchanged_tunnels(ike_link_factory):
    link = ike_link_factory()
    _up(link)
    import copy
    same = copy.copy(link.a.settings)
    link.a.reconfigure(same, link.clock.now)
    link.flush()
    assert len(link.sas("A")) == 2
    from ikecore.protocol import proposals
    changed = copy.copy(link.a.settings)
    changed.connections = dict(changed.connections)
    conn = copy.copy(changed.connections["lan"])
    conn.proposals = [proposals.parse_child("3des-md5")]
    changed.connections["lan"] = conn
    link.a.reconfigure(changed, link.clock.now)
    link.flush()
    assert link.sas("A") == [] and link.sas("B") == []
    assert link.ike("A")[0]["state"] == 9


# -- malformed input -----------------------------------------------------------------------------
def _states_trace(link_factory):
    """Run a handshake, keeping (receiver, datagram) of every message in order."""
    link = link_factory()
    link.a.initiate("lan", link.clock.now)
    link.flush()
    return link


@pytest.mark.parametrize("mode", ["main", "aggressive"])
def test_malformed_input_in_every_state_never_crashes(ike_link_factory, mode):
    rnd = random.Random(7)
    good = ike_link_factory(both={"mode": mode})
    good.a.initiate("lan", good.clock.now)
    good.flush()
    script = list(good.trace)
    for cut in range(len(script)):
        link = ike_link_factory(both={"mode": mode})
        # replay the real handshake up to message `cut`, then feed damaged copies of it
        link.a.initiate("lan", link.clock.now)
        delivered = []

        def drop(who, n, data, cut=cut):
            delivered.append(data)
            return len(delivered) - 1 >= cut

        link.flush(drop=drop)
        victim_data = delivered[cut] if cut < len(delivered) else script[cut][1]
        who = script[cut][0]
        receiver = link.b if who == "A" else link.a
        src = ("192.0.2.1", 500) if who == "A" else ("198.51.100.2", 500)
        dst = ("198.51.100.2", 500) if who == "A" else ("192.0.2.1", 500)
        for k in range(12):
            data = bytearray(victim_data)
            kind = k % 4
            if kind == 0:
                data = data[:rnd.randrange(len(data))]
            elif kind == 1:
                data = data + bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 40)))
            elif kind == 2:
                data[30:32] = bytes((rnd.randrange(256), rnd.randrange(256)))  # payload length
            else:
                data[16] = rnd.choice((0, 99, 14))                           # next payload type
            receiver.receive_datagram(bytes(data), dst, src, link.clock.now)
            receiver.datagrams_to_send()
        assert receiver.counters["malformed"] >= 1
        # the real message still works afterwards
        receiver.receive_datagram(victim_data, dst, src, link.clock.now)
        link.flush()
        link.step(40)
        for name in "AB":
            st = link.ike(name)
            assert st and st[-1]["state"] == 9, (mode, cut, name, link.logs(name))


def test_garbage_is_counted_and_logged_once(ike_link_factory):
    link = ike_link_factory()
    for n in range(5):
        link.a.receive_datagram(b"\x01" * (10 + n), ("192.0.2.1", 500), ("198.51.100.2", 500),
                                link.clock.now)
    assert link.a.counters["malformed"] == 5
    link.flush()
    assert len([t for t in link.logs("A", "warning") if "malformed" in t]) == 1
    assert link.trace == []


def test_natt_port_marker_and_keepalive(ike_link_factory):
    link = ike_link_factory()
    link.a.receive_datagram(b"\xff", ("192.0.2.1", 4500), ("198.51.100.2", 4500), link.clock.now)
    link.a.receive_datagram(b"\x00\x00\x00\x01" + b"esp", ("192.0.2.1", 4500),
                            ("198.51.100.2", 4500), link.clock.now)
    assert link.a.counters["malformed"] == 0


@pytest.mark.parametrize("mode", ["main", "aggressive"])
def test_bit_flips_in_every_message_never_crash(ike_link_factory, mode):
    """Damaged but decodable messages may spoil one negotiation (IKEv1's first messages are not
    authenticated); they must never raise out of the core."""
    rnd = random.Random(11)
    good = ike_link_factory(both={"mode": mode})
    good.a.initiate("lan", good.clock.now)
    good.flush()
    for who, victim in good.trace:
        receiver = good.b if who == "A" else good.a
        src = ("192.0.2.1", 500) if who == "A" else ("198.51.100.2", 500)
        dst = ("198.51.100.2", 500) if who == "A" else ("192.0.2.1", 500)
        for _ in range(30):
            data = bytearray(victim)
            for _ in range(rnd.randrange(1, 4)):
                data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
            receiver.receive_datagram(bytes(data), dst, src, good.clock.now)
            receiver.datagrams_to_send()
            while receiver.next_event() is not None:
                pass


def test_malformed_phase1_message_answered_once_in_clear(ike_link_factory):
    from ikecore.protocol import codec as _codec
    link = ike_link_factory()
    link.a.initiate("lan", link.clock.now)
    link.flush(drop=lambda who, n, d: who == "A" and n >= 1)      # B waits for message 3
    (ike,) = link.ike("B")
    sa = link.b.ike_sas[ike["id"]]
    # HDR, KE(truncated length) -->  <-- HDR, N(PAYLOAD-MALFORMED), once
    bad = bytearray(_codec.encode_message(_codec.Message(
        C.EXCHANGE_MAIN, sa.icookie, sa.rcookie, payloads=[_codec.KePayload(b"x" * 128),
                                                           _codec.NoncePayload(b"n" * 32)])))
    bad[30:32] = (9999).to_bytes(2, "big")
    for _ in range(3):
        link.b.receive_datagram(bytes(bad), ("198.51.100.2", 500), ("192.0.2.1", 500),
                                link.clock.now)
    out = link.b.datagrams_to_send()
    assert len(out) == 1
    message = _codec.decode_message(out[0][0])
    assert message.exchange == C.EXCHANGE_INFORMATIONAL and not message.flags
    assert message.payloads[0].notify_type == C.PAYLOAD_MALFORMED
    assert link.b.counters["malformed"] == 3 and link.ike("B")[0]["state"] == 3


@pytest.mark.parametrize("exchange", [C.EXCHANGE_QUICK, C.EXCHANGE_INFORMATIONAL,
                                      C.EXCHANGE_MAIN, C.EXCHANGE_TRANSACTION])
def test_garbage_under_valid_cookies_is_handled_without_internal_errors(ike_link_factory, exchange):
    from ikecore.protocol import codec as _codec
    rnd = random.Random(exchange)
    link = ike_link_factory()
    _up(link)
    (ike,) = link.ike("B")
    sa = link.b.ike_sas[ike["id"]]
    for n in range(60):
        body = bytes(rnd.randrange(256) for _ in range(rnd.choice((0, 7, 16, 32, 48, 100))))
        first = rnd.choice((C.PT_HASH, C.PT_SA, C.PT_NOTIFY, C.PT_DELETE, 99))
        flags = rnd.choice((0, C.FLAG_ENCRYPTION))
        mid = rnd.choice((0, 1, rnd.randrange(1 << 32)))
        header = _codec.encode_message(_codec.Message(exchange, sa.icookie, sa.rcookie,
                                                      message_id=mid), body=b"", first_payload=first)
        data = bytearray(header + body)
        data[19] = flags
        data[24:28] = len(data).to_bytes(4, "big")
        link.b.receive_datagram(bytes(data), ("198.51.100.2", 500), ("192.0.2.1", 500),
                                link.clock.now)
    assert link.b.counters.get("internal_errors", 0) == 0, link.logs("B")
    link.flush()
    assert link.ike("B")[0]["state"] == 9 and len(link.sas("B")) == 2


def test_reconfigure_without_the_peer_takes_it_down(ike_link_factory):
    from ikecore.protocol.settings import Settings
    link = ike_link_factory()
    _up(link)
    link.a.reconfigure(Settings(), link.clock.now)
    link.flush()
    for name in "AB":
        assert link.ike(name) == [] and link.sas(name) == []
    assert len(link.deleted("A")) == 2
