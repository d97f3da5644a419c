"""The exchanges see the core only through host.Host: main mode runs between two IKE SAs whose
hosts merely record what they are asked and told (no IkeCore anywhere), and ends with each side
reporting host.Established; a damaged message is reported as host.Malformed, not acted on."""
import inspect

import pytest

from ikecore.crypto_cryptography import CryptographyProvider
from ikecore.protocol import codec, host, phase1, states
from ikecore.protocol.ikesa import IkeSa
from ikecore.protocol.reactions import CoreHost


class RecordingHost(host.Host):
    def __init__(self, crypto):
        self.crypto = crypto
        self.counters = {"retransmissions": 0}
        self.sent, self.events, self.outcomes = [], [], []
        self.spis = 0

    def send(self, data, local, remote):
        self.sent.append(data)

    def send_keepalive(self, local, remote):
        self.sent.append(b"\xff")

    def emit(self, event):
        self.events.append(event)

    def allocate_spi(self, protocol):
        self.spis += 1
        return (0x1000 + self.spis).to_bytes(4, "big")

    def new_child_id(self):
        return "sa-%d" % self.spis

    def reqid(self, connection_name):
        return 1

    def wall_time(self, now):
        return None

    def lifetime_in_force(self, kind, name, ours):
        return ours, None

    def dynamic_peers(self):
        return []

    def connections_of(self, peer_name):
        return []

    def ike_sa_by_spi(self, spi):
        return None

    def report(self, outcome):
        self.outcomes.append(outcome)


def _pair(ike_kit):
    kit = ike_kit
    crypto = CryptographyProvider()
    settings_a = kit.ike_settings(kit.GW_A, kit.GW_B, kit.NET_A, kit.NET_B)
    settings_b = kit.ike_settings(kit.GW_B, kit.GW_A, kit.NET_B, kit.NET_A)
    host_a, host_b = RecordingHost(crypto), RecordingHost(crypto)
    a = IkeSa(host_a, "ike-1", settings_a.peers["peer"], states.MAIN, states.INITIATOR,
              crypto.random(8), (kit.GW_A, 500), (kit.GW_B, 500), 0.0)
    return crypto, settings_b, host_a, host_b, a


def _responder(crypto, settings_b, host_b, header, ike_kit):
    """What the core's dispatch does with a first message: a responder SA at state 1."""
    b = IkeSa(host_b, "ike-1", settings_b.peers["peer"], states.MAIN, states.RESPONDER,
              header.icookie, (ike_kit.GW_B, 500), (ike_kit.GW_A, 500), 0.0)
    b.rcookie = crypto.random(8)
    b.feed(states.RECEIVED, 0.0)
    return b


def test_main_mode_runs_against_any_host_and_reports_established(ike_kit):
    crypto, settings_b, host_a, host_b, a = _pair(ike_kit)
    phase1.start(a, 0.0)
    b = None
    for _ in range(6):
        for data in host_a.sent:
            header = codec.decode_header(data)
            if b is None:
                b = _responder(crypto, settings_b, host_b, header, ike_kit)
            phase1.handle(b, header, data, 0.0)
        host_a.sent = []
        for data in host_b.sent:
            phase1.handle(a, codec.decode_header(data), data, 0.0)
        host_b.sent = []
    assert [type(o) for o in host_a.outcomes] == [host.Established]
    assert [type(o) for o in host_b.outcomes] == [host.Established]
    assert host_a.outcomes[0].sa is a and host_b.outcomes[0].sa is b
    assert host_b.outcomes[0].initial_contact is False      # the SA made without a core says none
    assert a.established and b.established and a.keys.skeyid_d == b.keys.skeyid_d


def test_a_damaged_message_is_reported_not_acted_on(ike_kit):
    crypto, settings_b, host_a, host_b, a = _pair(ike_kit)
    phase1.start(a, 0.0)
    data = host_a.sent[0]
    b = _responder(crypto, settings_b, host_b, codec.decode_header(data), ike_kit)
    damaged = data[:codec.C.HEADER_LENGTH] + b"\x00" * (len(data) - codec.C.HEADER_LENGTH)
    phase1.handle(b, codec.decode_header(damaged), damaged, 0.0)
    (outcome,) = host_b.outcomes
    assert isinstance(outcome, host.Malformed) and outcome.sa is b
    assert isinstance(outcome.exc, codec.MalformedMessage)
    assert host_b.sent == []            # telling the peer is the core's decision, not phase 1's


@pytest.mark.parametrize("name", sorted(n for n, v in vars(host.Host).items()
                                        if callable(v) and not n.startswith("_")))
def test_the_core_implements_each_method_of_the_host_interface(name):
    method = getattr(CoreHost, name)
    assert method is not getattr(host.Host, name)
    assert list(inspect.signature(method).parameters) == \
        list(inspect.signature(getattr(host.Host, name)).parameters)
