"""Admission control (admission.py) driven through the sans-IO core with bytes and a fake clock:
a burst of our own initiations is paced, half-open responder SAs are bounded per address and in
total, a spray of first messages leaves established tunnels alone and lets a new peer in, the
Diffie-Hellman computations a spray can cause are bounded, and the log says so once."""
import pytest

from ikecore.protocol import admission, events, proposals
from ikecore.protocol.core import IkeCore
from ikecore.crypto_cryptography import CryptographyProvider
from ikecore.protocol.settings import Connection, Peer, Settings

HUB = "10.0.0.1"
CRYPTO = CryptographyProvider()


def address(i):
    return "10.1.%d.%d" % (i // 250, i % 250 + 1)


def _peer(name, remote, local, mode="main"):
    return Peer(name, remote, [proposals.parse_ike("aes128-sha1-modp1024")], psk=b"k",
                local_address=local, phase1_mode=mode, dpd_delay_s=0)


def _conn(name, peer, local_net, remote_net):
    return Connection(name, peer, local_net, remote_net, [proposals.parse_child("aes128-sha1", "esp")])


class Hub:
    """One hub core with n peers, and a spoke core at each peer's address (made on demand)."""

    def __init__(self, n, now=1000.0, mode="main", act_as="both"):
        self.now = now
        self.mode = mode
        peers, conns = {}, {}
        for i in range(n):
            peers["p%d" % i] = _peer("p%d" % i, address(i), HUB, mode)
            peers["p%d" % i].act_as = act_as
            conns["c%d" % i] = _conn("c%d" % i, "p%d" % i, "172.16.%d.0/24" % (i % 250),
                                     "172.%d.%d.0/24" % (24 + i // 250, i % 250))
        self.core = IkeCore(Settings(peers=peers, connections=conns), CRYPTO, now)
        self.spokes = {}
        self.events = []
        self.most_initiating = 0

    def spoke(self, i):
        addr = address(i)
        if addr not in self.spokes:
            settings = Settings(peers={"hub": _peer("hub", HUB, addr, self.mode)},
                                connections={"lan": _conn("lan", "hub",
                                                          "172.%d.%d.0/24" % (24 + i // 250, i % 250),
                                                          "172.16.%d.0/24" % (i % 250))})
            self.spokes[addr] = IkeCore(settings, CRYPTO, self.now)
        return self.spokes[addr]

    def exchange(self):
        """Move datagrams until all are quiet."""
        moved = True
        while moved:
            moved = False
            for addr, spoke in list(self.spokes.items()):
                for data, local, remote in spoke.datagrams_to_send():
                    moved = True
                    self.core.receive_datagram(data, (HUB, local[1]), (addr, local[1]), self.now)
                while spoke.next_event() is not None:
                    pass
            for data, local, remote in self.core.datagrams_to_send():
                moved = True
                if remote[0] in self.spokes:
                    self.spokes[remote[0]].receive_datagram(data, remote, (HUB, local[1]), self.now)
            self.drain()
            self.most_initiating = max(self.most_initiating, self.core.admission.initiating)

    def drain(self):
        while True:
            event = self.core.next_event()
            if event is None:
                return
            self.events.append(event)

    def step(self, seconds):
        target = self.now + seconds
        while True:
            cores = [self.core] + list(self.spokes.values())
            due = [t for t in (c.get_timer() for c in cores) if t is not None and t <= target]
            if not due:
                break
            self.now = max(self.now, min(due))
            for c in cores:
                c.handle_timer(self.now)
            self.exchange()
        self.now = target
        self.exchange()

    def established(self):
        return set(sa.peer.name for sa in self.core.ike_sas.values() if sa.established)

    def logs(self, level=None):
        return [e.text for e in self.events if isinstance(e, events.Log)
                and (level is None or e.level == level)]

    def notices(self, kind):
        return [e for e in self.events if isinstance(e, events.Notice) and e.kind == kind]

    def first_message(self, i, icookie):
        """A well-formed first message as spoke i's core writes it, with another initiator
        cookie: what a spray of forged first messages looks like."""
        spoke = IkeCore(self.spoke(i).settings, CRYPTO, self.now)
        spoke.initiate("lan", self.now)
        data = spoke.datagrams_to_send()[0][0]
        return icookie + data[8:]

    def spray(self, i, count, start=None):
        start = i * 1000 if start is None else start    # cookies unique across addresses
        for k in range(start, start + count):
            data = self.first_message(i, (k + 1).to_bytes(8, "big"))
            self.core.receive_datagram(data, (HUB, 500), (address(i), 500), self.now)
        self.drain()


def test_a_burst_of_our_initiations_is_paced_and_all_come_up_without_retransmissions():
    n = admission.MAX_INITIATING * 3 + 5
    hub = Hub(n)
    for i in range(n):
        hub.spoke(i)                      # the far ends exist: each answers its own messages
    for i in range(n):
        hub.core.initiate("c%d" % i, hub.now)
    snap = hub.core.admission.snapshot()
    assert snap["initiating"] == admission.MAX_INITIATING
    assert snap["queued"] == n - admission.MAX_INITIATING
    hub.exchange()
    assert hub.established() == set("p%d" % i for i in range(n))
    assert hub.most_initiating <= admission.MAX_INITIATING
    assert hub.core.counters["retransmissions"] == 0
    assert hub.core.admission.snapshot()["initiating"] == 0
    up = [e for e in hub.notices("tunnel-up") if not e.fields["renewal"]]
    assert sorted(e.fields["connection"] for e in up) == sorted("c%d" % i for i in range(n))


def test_half_open_negotiations_from_one_address_are_bounded_and_logged_once_with_counts():
    hub = Hub(2)
    hub.spray(0, 50)
    sas = [sa for sa in hub.core.ike_sas.values() if sa.peer.name == "p0"]
    assert len(sas) == admission.MAX_HALF_OPEN_PER_ADDRESS
    refused = 50 - admission.MAX_HALF_OPEN_PER_ADDRESS
    assert hub.core.admission.refused["address"] == refused
    opened = [t for t in hub.logs("warning") if t.startswith("admission: dropping")]
    assert opened == ["admission: dropping new negotiations: too many half-open negotiations "
                      "from one address (at most %d)" % admission.MAX_HALF_OPEN_PER_ADDRESS]
    # Another address is not affected by that one's bound.
    hub.spray(1, 1, start=1000)
    assert len([sa for sa in hub.core.ike_sas.values() if sa.peer.name == "p1"]) == 1
    hub.step(admission.EPISODE_QUIET_S + 1)
    closing = [t for t in hub.logs("warning") if "accepting again" in t]
    assert len(closing) == 1 and closing[0].startswith("admission: dropped %d first messages" % refused)
    assert "from 1 addresses" in closing[0]


def test_a_spray_leaves_established_tunnels_up_and_a_new_peer_still_gets_in(monkeypatch):
    monkeypatch.setattr(admission, "MAX_HALF_OPEN", 40)
    monkeypatch.setattr(admission, "MAX_HALF_OPEN_PER_ADDRESS", 4)
    hub = Hub(31, act_as="responder")
    hub.spoke(0).initiate("lan", hub.now)
    hub.exchange()
    assert hub.established() == {"p0"}
    before = dict((c.id, c.spi) for c in hub.core.children.values())
    for i in range(1, 29):                # forged first messages "from" 28 configured peers
        hub.spray(i, 6)
    snap = hub.core.admission.snapshot()
    # At the total bound the newest forged first messages pushed out the oldest ones.
    assert snap["half_open"] == 40 and snap["pushed_out"] == 28 * 4 - 40
    assert snap["refused"]["address"] == 28 * 2 and snap["refused"]["total"] == 0
    words = admission.REFUSAL_WORDS["address"]       # made at import: MAX_..._PER_ADDRESS 10
    assert [t for t in hub.logs("warning") if t.startswith("admission:")] == [
        "admission: dropping new negotiations: too many " + words]
    # A new peer gets in while the table is full (it answers our message 2 at once) ...
    hub.spoke(29).initiate("lan", hub.now)
    hub.exchange()
    assert hub.established() == {"p0", "p29"}
    # ... and under pressure a first-message-only SA goes quietly after PRESSURE_PATIENCE_S.
    hub.step(admission.PRESSURE_PATIENCE_S + 1)
    assert hub.core.admission.half_open == 0
    assert hub.core.admission.expired_quietly >= 20
    assert len(hub.core.ike_sas) == 2
    assert not [t for t in hub.logs("error")], hub.logs("error")
    # The tunnel that was up is untouched; a new peer negotiates as usual.
    assert dict((c.id, c.spi) for c in hub.core.children.values() if c.ike_sa in
                [sa.id for sa in hub.core.sas_of("p0")]) == before
    hub.spoke(30).initiate("lan", hub.now)
    hub.exchange()
    assert hub.established() == {"p0", "p29", "p30"}
    hub.step(admission.EPISODE_QUIET_S + 1)
    closing = [t for t in hub.logs("warning") if t.startswith("admission: dropped")]
    # 28 sprayed addresses and p29, whose first message pushed out one more
    assert closing == ["admission: dropped 56 first messages in 0 s from 29 addresses (56 for %s, "
                       "73 older half-open negotiations pushed out by new ones); accepting again"
                       % words]


def test_a_real_initiator_under_pressure_is_not_dropped_as_a_spray(monkeypatch):
    monkeypatch.setattr(admission, "MAX_HALF_OPEN", 10)
    hub = Hub(12, act_as="responder")
    for i in range(5):
        hub.spray(i, 1)                   # half of the bound: pressure
    assert hub.core.admission.under_pressure()
    hub.spoke(11).initiate("lan", hub.now)
    hub.exchange()                        # it answers our message 2 at once
    hub.step(admission.PRESSURE_PATIENCE_S + 1)
    assert "p11" in hub.established()


def test_aggressive_mode_sprays_cost_at_most_the_dh_bound(monkeypatch):
    monkeypatch.setattr(admission, "MAX_DH_IN_FLIGHT", 15)
    hub = Hub(10, mode="aggressive", act_as="responder")
    forged = [hub.first_message(i, (i * 100 + k + 1).to_bytes(8, "big")) for i in range(10) for k in range(5)]
    computed = []
    real_new = CRYPTO.dh_new
    monkeypatch.setattr(CRYPTO, "dh_new", lambda *a: (computed.append(1), real_new(*a))[1])
    for n, data in enumerate(forged):
        hub.core.receive_datagram(data, (HUB, 500), (address(n // 5), 500), hub.now)
    hub.drain()
    assert len(computed) == 15
    assert hub.core.admission.refused["dh"] == 50 - 15
    assert hub.core.admission.dh_in_flight == 15
    # The bound frees itself: once the forged ones are gone, a real aggressive initiator gets in.
    hub.step(200)
    assert hub.core.admission.dh_in_flight == 0
    monkeypatch.setattr(CRYPTO, "dh_new", real_new)
    hub.spoke(3).initiate("lan", hub.now)
    hub.exchange()
    assert hub.established() == {"p3"}


def test_main_mode_message_3_beyond_the_dh_bound_waits_for_its_retransmission(monkeypatch):
    monkeypatch.setattr(admission, "MAX_DH_IN_FLIGHT", 1)
    hub = Hub(2, act_as="responder")
    hub.spray(0, 1)
    first = next(iter(hub.core.ike_sas.values()))
    hub.core.admission.admit_dh(first, hub.now)       # one responder holds the only DH slot
    hub.spoke(1).initiate("lan", hub.now)
    hub.exchange()
    assert "p1" not in hub.established()
    assert hub.core.admission.refused["dh"] >= 1
    hub.core.admission.closed(first)                  # the slot frees
    hub.step(3)                                       # spoke 1 sends message 3 again
    assert "p1" in hub.established()


def test_status_of_one_peer_a_page_and_the_summary_without_every_sa():
    hub = Hub(5)
    for i in (1, 3):
        hub.spoke(i)
        hub.core.initiate("c%d" % i, hub.now)
    hub.exchange()
    hub.spoke(4)
    hub.core.initiate("c4", hub.now)
    hub.core.datagrams_to_send()                      # p4 stays negotiating (message 1 lost)
    core = hub.core
    one = core.status(hub.now, peers=["p3"])
    assert [sa["peer"] for sa in one["ike_sas"]] == ["p3"]
    assert len(one["sas"]) == 2 and all(sa["ike_sa"] == one["ike_sas"][0]["id"] for sa in one["sas"])
    assert core.select_peers() == ["p0", "p1", "p2", "p3", "p4"]
    assert core.select_peers(status="Activated") == ["p1", "p3"]
    assert core.select_peers(status="Negotiating") == ["p4"]
    assert core.select_peers(status="Idle") == ["p0", "p2"]
    assert core.select_peers(text="10.1.0.4") == ["p3"]
    summary = core.summary()
    assert summary["peers"] == 5 and summary["ike_sas"] == 3 and summary["sas"] == 4
    assert summary["peers_by_status"] == {"Activated": 2, "Negotiating": 1, "Idle": 2}
    assert summary["ike_sas_by_state"] == {"9": 2, "3": 1}      # 3: main mode 1st msg sent
    assert summary["admission"]["initiating"] == 1
    assert core.peer_of(one["sas"][0]["id"]) == "p3" and core.peer_of("ike-999") is None
    # The selection is the full status' rows, unchanged.
    full = core.status(hub.now)
    assert one["ike_sas"][0] in full["ike_sas"] and one["sas"][0] in full["sas"]


def test_notices_tell_up_down_and_failure():
    hub = Hub(2)
    hub.spoke(0)
    hub.core.initiate("c0", hub.now)
    hub.exchange()
    (ike_up,) = hub.notices("ike-up")
    (tunnel_up,) = hub.notices("tunnel-up")
    assert ike_up.peer == "p0" and ike_up.fields["renewal"] is False
    assert tunnel_up.fields["connection"] == "c0" and len(tunnel_up.fields["sas"]) == 2
    hub.core.down("p0", hub.now)
    hub.exchange()
    assert [e.fields["connection"] for e in hub.notices("tunnel-down")] == ["c0"]
    assert [e.fields["ike_sa"] for e in hub.notices("ike-down")] == [ike_up.fields["ike_sa"]]
    # p1 never answers: the give-up is a "failed" notice carrying the page's diagnosis.
    hub.core.initiate("c1", hub.now)
    hub.step(70)
    (failed,) = hub.notices("failed")
    listed = hub.core.status(hub.now, peers=["p1"])["ike_sas"]
    assert failed.peer == "p1" and [sa["id"] for sa in listed] == [failed.fields["ike_sa"]]
    assert failed.fields["diagnosis"] == listed[0]["last_error"]
