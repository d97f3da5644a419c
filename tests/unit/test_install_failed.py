"""core.install_failed: the kernel refuses an SA the core negotiated.

Side A hands its events to a kernel backend the way driver.py does (one event at a time, an
install that raises is reported back with core.install_failed); side B records as usual.

  A: quick mode done -> InstallChildSa(in) -> kernel: "Protocol not supported"
     -> the pair goes (the other half never reaches the kernel), Delete(ESP, our SPI) -->  B
"""
import pytest

from ikecore.protocol import codec, consts as C, events
from ikecore.kernel import RecordingBackend


class RefusingBackend(RecordingBackend):
    """Records like --kernel=record; refuses SAs whose direction is in `refuse` as a kernel
    without ESP does."""

    def __init__(self, refuse=("in", "out")):
        super().__init__()
        self.refuse = set(refuse)

    def install_sa(self, sa):
        if sa.direction in self.refuse:
            raise OSError(93, "Protocol not supported")
        super().install_sa(sa)


def kernel_link(ike_kit, backend, **kwargs):
    class KernelLink(ike_kit.IkeLink):
        def _drain(self):
            core = self.a
            while True:
                event = core.next_event()
                if event is None:
                    break
                self.events["A"].append(event)
                if isinstance(event, events.InstallChildSa):
                    try:
                        backend.install_sa(event.sa)
                    except OSError as exc:
                        core.install_failed(event.sa.id, exc.strerror, self.clock.now)
                elif isinstance(event, events.DeleteChildSa):
                    backend.delete_sa(event.sa)
            while self.b.next_event() is not None:
                pass

    settings = ike_kit.ike_settings
    return KernelLink(settings(ike_kit.GW_A, ike_kit.GW_B, ike_kit.NET_A, ike_kit.NET_B, **kwargs),
                      settings(ike_kit.GW_B, ike_kit.GW_A, ike_kit.NET_B, ike_kit.NET_A, **kwargs))


def _informational_deletes(link, since):
    """(protocol, [spi ints]) of every Delete A sent after trace index `since`."""
    found = []
    for who, data in link.trace[since:]:
        header = codec.decode_header(data)
        if who != "A" or header.exchange != C.EXCHANGE_INFORMATIONAL:
            continue
        sa = link.a.ike_sas[link.ike("A")[0]["id"]]
        received, _ = sa.open(header, data)
        for payload in received.all(codec.DeletePayload):
            found.append((payload.protocol, [int.from_bytes(bytes(s), "big")
                                             for s in payload.spis]))
    return found


@pytest.mark.parametrize("refuse", [("in", "out"), ("out",)])
def test_refused_install_takes_the_pair_down_and_tells_the_peer(ike_kit, refuse):
    backend = RefusingBackend(refuse)
    link = kernel_link(ike_kit, backend)
    link.a.initiate("lan", link.clock.now)
    link.flush()
    (ike,) = link.ike("A")
    assert ike["status"] == "Activated"           # phase 1 is fine; only the SAs are not
    # Nothing of the pair is left: not in the kernel, not on the page, on neither side.
    assert backend.sas == {}
    assert link.sas("A") == [] and link.sas("B") == []
    installed = link.installed("A")
    if refuse == ("in", "out"):
        # The first (inbound) install failed: the outbound one never went to the kernel.
        assert [sa.direction for sa in installed] == ["in"]
        assert link.deleted("A") == []
    else:
        # The inbound half was installed before the outbound one failed: it is deleted.
        assert [sa.direction for sa in installed] == ["in", "out"]
        assert [sa.direction for sa in link.deleted("A")] == ["in"]
    inbound = [sa for sa in installed if sa.direction == "in"][0]
    # B heard a Delete naming our inbound SPI and dropped its pair.
    assert _informational_deletes(link, 0) == [(C.PROTO_IPSEC_ESP, [inbound.spi])]
    failed = installed[-1]
    expected = ("installing ESP SA 0x%08x (%s) of connection lan with %s in the kernel failed: "
                "Protocol not supported \u2014 the kernel lacks ESP support"
                % (failed.spi, "incoming" if failed.direction == "in" else "outgoing",
                   ike_kit.GW_B))
    assert ike["last_error"] == expected
    assert link.logs("A", "error") == [expected]
    # A second report about the same pair (the driver's next event) changes nothing.
    assert link.a.install_failed(installed[0].id, "Protocol not supported",
                                 link.clock.now) is False


def test_a_later_successful_quick_mode_clears_the_kernel_error(ike_kit):
    backend = RefusingBackend()
    link = kernel_link(ike_kit, backend)
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert link.ike("A")[0]["last_error"].startswith("installing ESP SA")
    backend.refuse = set()                       # e.g. the esp4 module got loaded
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert len(backend.sas) == 2 and len(link.sas("B")) == 2
    assert link.ike("A")[0]["last_error"] is None


def test_refused_renewal_keeps_the_old_pair_and_retries_later(ike_kit):
    backend = RefusingBackend(refuse=())
    link = kernel_link(ike_kit, backend, child_lifetime_s=600, dpd=(0, 0))
    link.a.initiate("lan", link.clock.now)
    link.flush()
    old = sorted(sa["spi"] for sa in link.sas("A"))
    backend.refuse = {"in", "out"}
    link.step(600 - 60 + 1)                      # A renews at lifetime - margin (60 s)
    assert link.ike("A")[0]["last_error"].startswith("installing ESP SA")
    assert sorted(sa["spi"] for sa in link.sas("A")) == old
    backend.refuse = set()
    link.step(31)                                # renewed again after INSTALL_RETRY_S
    new = sorted(sa["spi"] for sa in link.sas("A"))
    assert len(new) == 4 and set(old) < set(new)
    assert link.ike("A")[0]["last_error"] is None


def test_responder_kernel_refusing_its_early_inbound_sa_fails_the_exchange_and_tells_the_peer(ike_kit):
    """A as quick mode responder installs its inbound SA when it sends message 2 (before HASH(3));
    when the kernel refuses it, the exchange ends there: the Delete of A's inbound SPI makes B
    (which installed its pair on message 2) drop it, HASH(3) is ignored, nothing is left."""
    backend = RefusingBackend(refuse=("in",))
    link = kernel_link(ike_kit, backend)
    link.b.initiate("lan", link.clock.now)
    link.flush()
    installed = link.installed("A")
    assert [sa.direction for sa in installed] == ["in"]          # the outbound never went
    assert backend.sas == {} and link.deleted("A") == []
    assert link.sas("A") == [] and link.sas("B") == []
    assert _informational_deletes(link, 0) == [(C.PROTO_IPSEC_ESP, [installed[0].spi])]
    expected = ("installing ESP SA 0x%08x (incoming) of connection lan with %s in the kernel "
                "failed: Protocol not supported \u2014 the kernel lacks ESP support"
                % (installed[0].spi, ike_kit.GW_B))
    (ike,) = link.ike("A")
    assert ike["last_error"] == expected and link.logs("A", "error") == [expected]
    assert ike["status"] == "Activated"                           # phase 1 is fine


def hash3_from_b_lost(lost):
    """A flush(drop=...) losing B's quick mode message number n of a message id when lost(n):
    B's first is message 1, every later one its HASH(3) (sent again when A repeats message 2)."""
    seen = {}

    def drop(who, index, data):
        header = codec.decode_header(data)
        if who != "B" or header.exchange != C.EXCHANGE_QUICK:
            return False
        seen[header.message_id] = seen.get(header.message_id, 0) + 1
        return lost(seen[header.message_id])
    return drop


def test_responder_installs_inbound_with_message_2_and_outbound_with_hash3(ike_kit):
    """The order the peer's traffic needs: A's inbound SA is in the kernel before B can send on
    it (B installs on message 2), A's outbound only once HASH(3) proved B has its inbound. A lost
    HASH(3) comes again when A repeats message 2."""
    backend = RefusingBackend(refuse=())
    link = kernel_link(ike_kit, backend)
    lose_first_hash3 = hash3_from_b_lost(lambda n: n == 2)
    link.b.initiate("lan", link.clock.now)
    link.flush(drop=lose_first_hash3)
    assert [sa.direction for sa in link.installed("A")] == ["in"]
    assert link.sas("A") == [] and len(link.sas("B")) == 2     # B has its pair already
    link.step(3, drop=lose_first_hash3)                 # A repeats message 2, B its HASH(3)
    assert [sa.direction for sa in link.installed("A")] == ["in", "out"]
    assert sorted(sa["spi"] for sa in link.sas("A")) == sorted(sa["spi"] for sa in link.sas("B"))
    assert link.deleted("A") == []


def test_responder_that_never_gets_hash3_takes_its_early_inbound_sa_out(ike_kit):
    backend = RefusingBackend(refuse=())
    link = kernel_link(ike_kit, backend)
    lose_every_hash3 = hash3_from_b_lost(lambda n: n >= 2)
    link.b.initiate("lan", link.clock.now)
    link.flush(drop=lose_every_hash3)
    (early,) = link.installed("A")
    link.step(120, drop=lose_every_hash3)              # A repeats message 2, then gives up
    assert [sa.id for sa in link.deleted("A")] == [early.id]
    assert backend.sas == {} and link.sas("A") == []
    assert link.sas("B") == []               # A's Delete of its inbound SPI made B drop its pair
    assert "no answer to quick mode message 2" in link.ike("A")[0]["last_error"]
