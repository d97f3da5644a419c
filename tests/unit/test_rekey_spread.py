"""Rekeys of a burst are spread (ikesa.rekey_after, docs/config.md "Lifetimes and renewal").

Tunnels set up in the same second must not all renew in the same second: each SA's renewal
time gets a random part of its margin m (a tenth of the lifetime, at most 540 s). The initiator
renews in (lifetime - 2m, lifetime - m], the responder (only if the initiator did not) in
(lifetime - 3m/4, lifetime - m/2]; both before expiry. The random source is the crypto provider,
seeded here so that every run draws the same times."""
import random

from ikecore.protocol import proposals
from ikecore.protocol.ikesa import rekey_after, rekey_margin
from ikecore.protocol.settings import Connection

TUNNELS = 40
CHILD_LIFETIME_S = 3600           # margin 360 s
IKE_LIFETIME_S = 28800            # margin 540 s (the cap)


class SeededRandom:
    """A crypto provider's random() from a seeded generator: the same draws every run."""

    def __init__(self, seed):
        self.random = random.Random(seed).randbytes


def _window(lifetime_s, initiator):
    """(earliest, latest) renewal, seconds after establishment."""
    m = rekey_margin(lifetime_s)
    return (lifetime_s - 2 * m + 1, lifetime_s - m) if initiator else \
        (lifetime_s - m // 2 - m // 4 + 1, lifetime_s - m // 2)


def test_rekey_after_stays_in_the_documented_windows():
    crypto = SeededRandom(7)
    for lifetime_s in (60, 61, 600, 3600, 28800, 86400):
        for initiator in (True, False):
            low, high = _window(lifetime_s, initiator)
            drawn = [rekey_after(lifetime_s, initiator, crypto) for _ in range(500)]
            assert low <= min(drawn) and max(drawn) <= high < lifetime_s, (lifetime_s, initiator)
            # spread over the window, not bunched in one second
            assert max(drawn) - min(drawn) >= (high - low) * 0.9, (lifetime_s, initiator)
    # the initiator's latest renewal comes before the responder's earliest
    for lifetime_s in (60, 3600, 28800):
        assert _window(lifetime_s, True)[1] < _window(lifetime_s, False)[0]


def _burst_link(ike_kit):
    """One IKE SA pair and TUNNELS connections over it, all initiated in the same second."""
    child = [proposals.parse_child("aes128-sha1", "esp")]

    def side(local, remote, flip):
        extra = []
        for i in range(1, TUNNELS):
            nets = ("192.168.%d.0/24" % (100 + i), "10.3.%d.0/24" % i)
            local_net, remote_net = nets[::-1] if flip else nets
            extra.append(Connection("lan%d" % i, "peer", local_net, remote_net, child,
                                    lifetime_s=CHILD_LIFETIME_S))
        nets = (ike_kit.NET_A, ike_kit.NET_B)[::-1] if flip else (ike_kit.NET_A, ike_kit.NET_B)
        return ike_kit.ike_settings(local, remote, nets[0], nets[1], extra_connections=extra,
                                    lifetime_s=IKE_LIFETIME_S, child_lifetime_s=CHILD_LIFETIME_S,
                                    dpd=(0, 120))

    link = ike_kit.IkeLink(side(ike_kit.GW_A, ike_kit.GW_B, False),
                           side(ike_kit.GW_B, ike_kit.GW_A, True))
    link.crypto.random = SeededRandom(11).random
    start = link.clock.now
    link.a.initiate("lan", start)
    for i in range(1, TUNNELS):
        link.a.initiate("lan%d" % i, start)
    link.flush(rounds=400)
    return link, start


def test_a_burst_of_tunnels_renews_spread_out_and_before_expiry(ike_kit):
    link, start = _burst_link(ike_kit)
    for core, initiator in ((link.a, True), (link.b, False)):
        groups = list(core.groups.values())
        assert len(groups) == TUNNELS
        low, high = _window(CHILD_LIFETIME_S, initiator)
        offsets = [g.rekey_at - start for g in groups]
        assert all(low <= t <= high for t in offsets), (initiator, sorted(offsets))
        assert all(g.rekey_at < g.expire_at for g in groups)
        assert len(set(int(t) for t in offsets)) >= TUNNELS * 3 // 4, sorted(offsets)
        (sa,) = core.ike_sas.values()
        ike_low, ike_high = _window(IKE_LIFETIME_S, initiator)
        assert ike_low <= sa.rekey_at - sa.established_at <= ike_high
    installed = len(link.installed("A"))
    assert installed == 2 * TUNNELS
    # Nothing renews before the window opens ...
    link.step(_window(CHILD_LIFETIME_S, True)[0] - 1)
    assert len(link.installed("A")) == installed
    # ... the initiator has renewed every tunnel by its end, and nothing expired unrenewed.
    link.step(_window(CHILD_LIFETIME_S, True)[1] - _window(CHILD_LIFETIME_S, True)[0] + 2)
    assert len(link.installed("A")) == 2 * installed
    assert len(link.installed("B")) == 2 * installed
    renewals = sorted(g.created - start for g in link.a.groups.values() if g.created > start)
    assert len(renewals) == TUNNELS and renewals[-1] - renewals[0] > CHILD_LIFETIME_S // 20
