"""IKEv1 fragmentation (fragments.py): splitting, reassembly in any order, every bound, the
diagnosis of malformed fragments, and whole handshakes between two cores across a small path.
Bytes in, bytes out, a fake clock; nothing is timed."""
import random

import pytest

from ikecore import config
from ikecore.protocol import codec, fragments, vendor
from ikecore.protocol import consts as C
from ikecore.config import ConfigError

ICKY, RCKY = b"\x11" * 8, b"\x22" * 8
SRC = ("198.51.100.2", 500)


def message(size, icookie=ICKY, rcookie=RCKY, encrypted=False):
    """An ISAKMP message of exactly `size` bytes (header + one vendor ID payload)."""
    body = bytes((i * 7) & 0xff for i in range(size - C.HEADER_LENGTH - 4))
    msg = codec.Message(C.EXCHANGE_MAIN, icookie, rcookie, payloads=[codec.VendorPayload(body)])
    data = codec.encode_message(msg)
    if encrypted:                       # the flag only: the body stays what it is
        data = data[:19] + bytes([data[19] | C.FLAG_ENCRYPTION]) + data[20:]
    assert len(data) == size
    return data


class Log:
    def __init__(self):
        self.lines = []
        self.seen = set()

    def __call__(self, remote, kind, level, text):
        if (remote[0], kind) not in self.seen:      # the core's log-once, in small
            self.seen.add((remote[0], kind))
            self.lines.append((kind, text))


def reassembler():
    log = Log()
    return fragments.Reassembler(log, fragments.new_counters()), log


def feed(r, datagrams, now=0.0, src=SRC):
    """Each datagram into the reassembler; the whole messages it gave back."""
    out = []
    for d in datagrams:
        whole = r.receive(codec.decode_header(d), d, src, now)
        if whole is not None:
            out.append(whole)
    return out


def fragment(number, data, last=False, fid=1, icookie=ICKY, rcookie=RCKY, next_payload=0,
             length=None):
    """One fragment datagram by hand (for the malformed and bound cases)."""
    length = fragments.PAYLOAD_HEADER + len(data) if length is None else length
    payload = (bytes([next_payload, 0]) + length.to_bytes(2, "big") + fid.to_bytes(2, "big")
               + bytes([number, fragments.FLAG_LAST if last else 0]) + data)
    head = codec.encode_message(codec.Message(C.EXCHANGE_MAIN, icookie, rcookie))
    total = C.HEADER_LENGTH + len(payload)
    return (head[:16] + bytes([C.PT_FRAGMENT]) + head[17:24] + total.to_bytes(4, "big")
            + payload)


# -- splitting ---------------------------------------------------------------------------------
def test_a_message_that_fits_goes_whole():
    msg = message(576 - 28)
    assert fragments.split(msg, 576, natt=False) == [msg]
    assert len(fragments.split(msg, 576, natt=True)) == 2        # the 4-byte marker tips it


@pytest.mark.parametrize("natt", [False, True])
def test_split_fits_the_path_and_numbers_from_one(natt):
    msg = message(2600, encrypted=True)
    datagrams = fragments.split(msg, 576, natt=natt, fragment_id=7)
    marker = 4 if natt else 0
    assert all(20 + 8 + marker + len(d) <= 576 for d in datagrams)
    assert len(datagrams) == -(-2600 // fragments.data_per_fragment(576, natt))
    for number, d in enumerate(datagrams, 1):
        h = codec.decode_header(d)              # each one is a well-formed ISAKMP datagram
        assert (h.icookie, h.rcookie, h.exchange, h.message_id) == (ICKY, RCKY, C.EXCHANGE_MAIN, 0)
        assert h.next_payload == C.PT_FRAGMENT and not h.flags & C.FLAG_ENCRYPTION
        fid, num, last, _ = fragments.parse(h, d)
        assert (fid, num, last) == (7, number, number == len(datagrams))
    r, _ = reassembler()
    assert feed(r, datagrams) == [msg]


def test_retransmission_sends_the_same_fragments_and_a_new_message_a_new_id():
    from ikecore.protocol.settings import Peer
    peer = Peer("p", "198.51.100.2", [], fragmentation="yes", fragment_size=576)
    counters = fragments.new_counters()
    out = fragments.Outgoing(peer, counters)
    big = message(1500)
    assert out.datagrams_for(big, False) == [big]       # the peer has not announced support
    out.note_vendor_ids([codec.VendorPayload(vendor.VID_FRAGMENTATION + b"\xc0\x00\x00\x00")])
    first = out.datagrams_for(big, False)
    assert len(first) == 3 and out.datagrams_for(big, False) == first
    other = out.datagrams_for(message(1400), False)
    h = codec.decode_header(other[0])
    assert fragments.parse(h, other[0])[0] == 2
    assert (counters["fragmented_messages"], counters["fragments_sent"]) == (2, 9)


@pytest.mark.parametrize("mode,announced,fragmented", [
    ("yes", False, False), ("yes", True, True), ("accept", True, False), ("no", True, False),
    ("force", False, True)])
def test_modes_decide_when_ours_are_fragmented(mode, announced, fragmented):
    from ikecore.protocol.settings import Peer
    peer = Peer("p", "198.51.100.2", [], fragmentation=mode)
    out = fragments.Outgoing(peer, fragments.new_counters())
    if announced:
        out.note_vendor_ids([vendor.VID_FRAGMENTATION])
    assert (len(out.datagrams_for(message(1500), False)) > 1) == fragmented
    assert (fragments.vendor_payloads(peer) != []) == (mode != "no")


# -- reassembly ----------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["reversed", "shuffled", "duplicated"])
def test_any_order_and_duplicates_give_the_message_once(order):
    msg = message(5000)
    datagrams = fragments.split(msg, 576, natt=False)
    if order == "reversed":
        datagrams = datagrams[::-1]
    elif order == "shuffled":
        random.Random(4).shuffle(datagrams)
    else:
        datagrams = [d for d in datagrams for _ in (0, 1)][:-1]   # every one twice, last once
    r, log = reassembler()
    assert feed(r, datagrams) == [msg]
    assert r.counters["reassembled_messages"] == 1
    assert r.counters["fragments_duplicate"] == (len(datagrams) // 2 if order == "duplicated" else 0)
    assert (r.pending, r.buffered, r.per_address, log.lines) == ({}, 0, {}, [])


def test_a_retransmitted_set_after_completion_is_a_new_message():
    msg = message(1500)
    datagrams = fragments.split(msg, 576, natt=False)
    r, _ = reassembler()
    assert feed(r, datagrams + datagrams) == [msg, msg]     # the core then answers the repeat


def test_a_new_fragment_id_replaces_the_unfinished_message():
    r, _ = reassembler()
    assert feed(r, [fragment(1, b"old")]) == []
    new = fragments.split(message(1200), 576, natt=False, fragment_id=2)
    assert feed(r, new) == [message(1200)]
    assert r.pending == {}


def test_messages_of_different_sas_and_sources_do_not_mix():
    a, b = message(1500), message(1500, icookie=b"\x33" * 8)
    fa, fb = fragments.split(a, 576, False), fragments.split(b, 576, False)
    r, _ = reassembler()
    got = []
    for x, y in zip(fa, fb):
        got += feed(r, [x]) + feed(r, [y]) + feed(r, [x], src=("203.0.113.9", 500))
    assert got == [a, b, a]


# -- bounds ----------------------------------------------------------------------------------------
def test_count_bound():
    r, log = reassembler()
    with pytest.raises(fragments.Dropped) as info:
        feed(r, [fragment(fragments.MAX_FRAGMENTS + 1, b"x")])
    assert info.value.kind == "count"
    with pytest.raises(fragments.Dropped):
        feed(r, [fragment(200, b"x")])
    assert r.counters["fragments_dropped"] == 2
    assert len(log.lines) == 1                                  # logged once
    assert "at most 16 fragments per message" in log.lines[0][1]
    assert "(1 fragments dropped so far)" in log.lines[0][1]
    assert r.pending == {}


def test_size_bound_drops_the_message_and_frees_its_memory():
    r, log = reassembler()
    piece = b"x" * 4000
    feed(r, [fragment(n, piece) for n in (1, 2, 3, 4)])
    assert r.buffered == 16000
    with pytest.raises(fragments.Dropped) as info:
        feed(r, [fragment(5, piece)])
    assert info.value.kind == "size" and "longer than 16384 bytes" in log.lines[0][1]
    assert (r.pending, r.buffered) == ({}, 0)
    with pytest.raises(fragments.Dropped):             # one fragment alone too long
        feed(r, [fragment(1, b"x" * (fragments.MAX_MESSAGE_BYTES + 1))])
    assert (r.pending, r.buffered, r.counters["fragments_dropped"]) == ({}, 0, 2)


def test_time_bound_expires_unfinished_messages():
    r, log = reassembler()
    datagrams = fragments.split(message(1500), 576, False)
    feed(r, datagrams[:2], now=100.0)
    assert r.buffered > 0
    feed(r, [fragment(1, b"y", icookie=b"\x44" * 8)], now=100.0 + fragments.REASSEMBLY_TIMEOUT_S - 1)
    assert len(r.pending) == 2                                  # not yet
    feed(r, datagrams[2:], now=100.0 + fragments.REASSEMBLY_TIMEOUT_S)
    # The old set expired before the last fragment came: that one starts a set of its own.
    assert r.counters["reassemblies_expired"] == 1 and r.counters["reassembled_messages"] == 0
    assert log.lines == [("fragments-expired", "dropped an incomplete fragmented message from "
                          "198.51.100.2: 2 of ? fragments in 20 s (1 such so far)")]
    r.expire(1000.0)
    assert (r.pending, r.buffered, r.per_address) == ({}, 0, {})


def test_per_address_bound():
    r, log = reassembler()
    for i in range(fragments.MAX_PENDING_PER_ADDRESS):
        feed(r, [fragment(1, b"z", icookie=bytes([i + 1]) * 8)])
    with pytest.raises(fragments.Dropped) as info:
        feed(r, [fragment(1, b"z", icookie=b"\xee" * 8)])
    assert info.value.kind == "address"
    feed(r, [fragment(1, b"z", icookie=b"\xee" * 8)], src=("203.0.113.9", 500))   # others still can
    assert len(r.pending) == fragments.MAX_PENDING_PER_ADDRESS + 1


def test_total_bound():
    r, log = reassembler()
    for i in range(fragments.MAX_PENDING):
        feed(r, [fragment(1, b"z")], src=("10.0.%d.%d" % (i // 200, i % 200 + 1), 500))
    with pytest.raises(fragments.Dropped) as info:
        feed(r, [fragment(1, b"z")], src=("10.9.9.9", 500))
    assert info.value.kind == "total" and "64 messages are being reassembled" in log.lines[0][1]


def test_buffer_bound():
    r, log = reassembler()
    piece = b"b" * 4000
    held = 0
    with pytest.raises(fragments.Dropped) as info:
        for i in range(fragments.MAX_PENDING):
            for n in (1, 2, 3):
                feed(r, [fragment(n, piece)], src=("10.1.%d.1" % i, 500))
                held += len(piece)
    assert info.value.kind == "buffer"
    assert held <= fragments.MAX_BUFFERED_BYTES < held + len(piece)
    assert r.buffered == held


# -- malformed ------------------------------------------------------------------------------------
@pytest.mark.parametrize("datagrams,reason", [
    ([fragment(0, b"x")], "fragment number 0 (numbers count from 1)"),
    ([fragment(1, b"")], "fragment 1 carries no data"),
    ([fragment(1, b"abc", length=9)], "fragment payload length 9, but 11 bytes follow"),
    ([fragment(1, b"abc", next_payload=C.PT_VENDOR)], "followed by a VID payload"),
    ([fragment(2, b"b", last=True), fragment(3, b"c", last=True)],
     "fragments 2 and 3 are both flagged last"),
    ([fragment(2, b"a", last=True), fragment(3, b"b")], "fragment 3 comes after fragment 2"),
    ([fragment(3, b"a"), fragment(2, b"b", last=True)],
     "fragment 2 is flagged last but fragment 3 came before it"),
    ([fragment(1, b"not isakmp at all, but long enough", last=True)], "the reassembled message: "),
    ([fragment(1, message(100, icookie=b"\x55" * 8), last=True)], "cookies differ"),
    ([fragment(1, fragment(1, b"inner", last=True), last=True)],
     "is itself a fragment"),
])
def test_malformed_fragments_are_diagnosed(datagrams, reason):
    r, _ = reassembler()
    with pytest.raises(codec.MalformedMessage) as info:
        feed(r, datagrams)
    assert info.value.reason.startswith("IKE fragment: ") and reason in info.value.reason
    assert r.pending == {} and r.buffered == 0


# -- through the core: two cores, RSA certificates, a small path ---------------------------------
def _rsa_pair(ike_link_factory, ike_pki, a=("yes", 576), b=("yes", 576), mode="main"):
    from ikecore.protocol.settings import Identity
    link = ike_link_factory(
        both={"mode": mode},
        a_kwargs=dict(ike_pki.side("A"), remote_id=Identity("dn", "C=CH, O=ikecore test, CN=gw-b")),
        b_kwargs=dict(ike_pki.side("B"), remote_id=Identity("dn", "C=CH, O=ikecore test, CN=gw-a")))
    for core, (frag_mode, size) in ((link.a, a), (link.b, b)):
        peer = core.settings.peers["peer"]
        peer.fragmentation, peer.fragment_size = frag_mode, size
    return link


def _fragments_from(link, who):
    return [d for w, d in link.trace if w == who and codec.decode_header(d).next_payload
            == C.PT_FRAGMENT]


@pytest.mark.parametrize("mode,path", [("main", 256), ("aggressive", 576)])
@pytest.mark.parametrize("initiator", ["A", "B"])
def test_rsa_handshake_across_a_small_path(ike_link_factory, ike_pki, mode, path, initiator):
    # (Aggressive mode's message 1 goes whole: the peer's support is not known yet. At 576
    # bytes it fits.)
    link = _rsa_pair(ike_link_factory, ike_pki, a=("yes", path), b=("yes", path), mode=mode)
    link.core(initiator).initiate("lan", link.clock.now)
    link.flush()
    for name in "AB":
        (ike,) = link.ike(name)
        assert (ike["state"], ike["auth"], ike["last_error"]) == (9, "rsa", None)
    assert all(len(d) + 28 <= path for _, d in link.trace)     # every datagram crossed the path
    responder = "B" if initiator == "A" else "A"
    # Main mode: both certificates messages (5 and 6) went in pieces; aggressive mode: the
    # responder's message 2 (the initiator's message 1 goes before it knows the peer's support).
    senders = "AB" if mode == "main" else responder
    for who in senders:
        assert len(_fragments_from(link, who)) >= 3
        receiver = link.a if who == "B" else link.b
        assert receiver.counters["reassembled_messages"] >= 1


def test_a_lost_fragment_is_recovered_by_the_retransmission(ike_link_factory, ike_pki):
    link = _rsa_pair(ike_link_factory, ike_pki)
    lost = []

    def drop(who, index, data):
        if who == "A" and not lost and codec.decode_header(data).next_payload == C.PT_FRAGMENT:
            lost.append(data)
            return True
        return False
    link.a.initiate("lan", link.clock.now)
    link.flush(drop)
    assert lost and link.ike("A")[0]["state"] != 9
    sent = len(_fragments_from(link, "A"))
    link.step(3)                                   # A's retransmission timer (2 s)
    assert [ike["state"] for ike in link.ike("A")] == [9]
    again = _fragments_from(link, "A")[sent:sent + sent + 1]
    assert lost[0] in again                        # the same fragments, ID included
    assert link.b.counters["reassembled_messages"] == 1


@pytest.mark.parametrize("a,b,a_fragments,b_fragments", [
    (("yes", 576), ("no", 576), False, False),     # B does not announce: both send whole
    (("force", 576), ("no", 576), True, False),    # A fragments anyway; B still reassembles
    (("accept", 576), ("yes", 576), False, True),  # A announces but sends whole; B fragments
])
def test_modes_between_two_cores(ike_link_factory, ike_pki, a, b, a_fragments, b_fragments):
    link = _rsa_pair(ike_link_factory, ike_pki, a=a, b=b)
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert [ike["state"] for ike in link.ike("A")] == [9]
    assert bool(_fragments_from(link, "A")) == a_fragments
    assert bool(_fragments_from(link, "B")) == b_fragments
    first = codec.decode_message(link.trace[0][1])
    vids = [p.data for p in first.find_all(codec.VendorPayload)]
    assert (fragments.VID in vids) == (a[0] != "no")


def test_the_core_diagnoses_and_bounds_fragments_and_logs_once(ike_link_factory):
    link = ike_link_factory()
    core = link.b
    src, dst = (link.a.settings.peers["peer"].local_address, 500), ("198.51.100.2", 500)
    core.receive_datagram(fragment(0, b"x"), dst, src, link.clock.now)
    core.receive_datagram(fragment(0, b"x"), dst, src, link.clock.now)
    for number in (40, 41):
        core.receive_datagram(fragment(number, b"x"), dst, src, link.clock.now)
    link.flush()
    logs = link.logs("B", "warning")
    assert logs == ["malformed message from %s: IKE fragment: fragment number 0 (numbers count "
                    "from 1)" % src[0],
                    "dropped fragment number 40 of a message from %s: at most 16 fragments per "
                    "message are reassembled (1 fragments dropped so far)" % src[0]]
    assert (core.counters["malformed"], core.counters["fragments_dropped"]) == (2, 2)
    assert link.ike("B") == []                      # nothing was made of them


# -- configuration ---------------------------------------------------------------------------------
PEER = 'name = "branch"\nremote_gateway = "198.51.100.2"\npsk = "secret"\n'


def test_config_defaults_and_values():
    peer = config.parse("[[peer]]\n" + PEER).peers["branch"]
    assert (peer.fragmentation, peer.fragment_size) == ("yes", 576)
    peer = config.parse("[[peer]]\n" + PEER + 'fragmentation = "force"\nfragment_size = 1280\n'
                        ).peers["branch"]
    assert (peer.fragmentation, peer.fragment_size) == ("force", 1280)


@pytest.mark.parametrize("line,key,text", [
    ('fragmentation = "maybe"', "peer[0].fragmentation", "must be one of yes, accept, force, no"),
    ("fragmentation = true", "peer[0].fragmentation", "must be a string"),
    ("fragment_size = 100", "peer[0].fragment_size", "between 256 and 65535"),
])
def test_config_bad_values_name_the_key(line, key, text):
    with pytest.raises(ConfigError) as info:
        config.parse("[[peer]]\n" + PEER + line + "\n", source="t.toml")
    assert info.value.key == key and text in info.value.message and info.value.line == 5
