"""What an exchange may ask of the core, and what it reports back (portable: MicroPython subset).

The exchanges (phase1.py, quickmode.py, informational.py, with auth.py, dynamic.py and the IKE SA
object ikesa.py) see the core only through `Host`, the object every IkeSa carries as `sa.host`:
a few services (send a datagram, emit an event, allocate an SPI, hand out ids, the time and
the crypto provider, what the settings say) and one way back, `report(outcome)`. An outcome
says what happened (phase 1 established, a quick mode failed, the peer deleted an SA, a
malformed message...), never what the core is to do about it: the core decides (reactions.py acts
on each kind, one table), as aioquic's parts get narrow callbacks and the connection decides.
An exchange therefore needs no core to run: a test can hand it any Host
(tests/unit/test_host_interface.py runs main mode that way).

report() is acted on at once, while the exchange still runs: outcomes take effect in the order
they happen, interleaved with the exchange's own datagrams and events exactly as before (a
returned outcome, acted on after the handler, would move e.g. the start of a queued
negotiation behind the refusal the handler sends next).
"""


class Host:
    """The exchanges' view of the core. reactions.CoreHost is the core's implementation."""

    crypto = None        # the crypto provider (crypto.py): the only source of randomness too
    counters = None      # {"retransmissions": n, fragments.py's ...}: the core's counters

    def send(self, data, local, remote):
        """Send one IKE datagram from local (ip, port) to remote; on port 4500 the non-ESP
        marker goes in front (natt.add_non_esp_marker)."""
        raise NotImplementedError

    def send_keepalive(self, local, remote):
        """One NAT-keepalive (RFC 3948 section 2.3) from local to remote."""
        raise NotImplementedError

    def emit(self, event):
        """Queue an event for the driver (events.py: Log, IkeSaChanged, Notice...)."""
        raise NotImplementedError

    def allocate_spi(self, protocol):
        """A fresh inbound SPI for "esp"/"ah": 4 bytes, unique among ours, not below 256."""
        raise NotImplementedError

    def new_child_id(self):
        """The id of a new child SA ("sa-N")."""
        raise NotImplementedError

    def reqid(self, connection_name):
        """The reqid tying a connection's SAs to its kernel policies."""
        raise NotImplementedError

    def wall_time(self, now):
        """Unix time at `now`, or None while the clock is not known to be right."""
        raise NotImplementedError

    def lifetime_in_force(self, kind, name, ours):
        """-> (seconds, note): the lifetime to offer for ("peer" | "connection", name), ours
        unless the peer is known to keep a shorter one (lifetime.py); note says why, or None."""
        raise NotImplementedError

    def dynamic_peers(self):
        """The peers with remote_gateway "%any" that may answer, in the file's order."""
        raise NotImplementedError

    def connections_of(self, peer_name):
        """The peer's connections, in the file's order."""
        raise NotImplementedError

    def ike_sa_by_spi(self, spi):
        """The IKE SA whose ISAKMP SPI (CKY-I | CKY-R, 16 bytes) this is, or None."""
        raise NotImplementedError

    def report(self, outcome):
        """Tell the core what happened: one of the outcome classes below."""
        raise NotImplementedError


# -- outcomes: what an exchange reports -----------------------------------------------------------
class Established:
    """Phase 1 is up on sa; initial_contact: the peer sent INITIAL-CONTACT."""
    __slots__ = ("sa", "initial_contact", "now")

    def __init__(self, sa, initial_contact, now):
        self.sa, self.initial_contact, self.now = sa, initial_contact, now


class NegotiationEnded:
    """Phase 1 on sa failed (sa.fail): it no longer counts as negotiating."""
    __slots__ = ("sa", "now")

    def __init__(self, sa, now):
        self.sa, self.now = sa, now


class PeerSettled:
    """A responder SA started with a provisional dynamic peer turned out to be with peer
    (dynamic.refine); renegotiate: nothing is agreed yet, that peer's settings apply."""
    __slots__ = ("sa", "peer", "renegotiate")

    def __init__(self, sa, peer, renegotiate):
        self.sa, self.peer, self.renegotiate = sa, peer, renegotiate


class InboundReady:
    """A quick mode responder sent message 2: its inbound SAs may be installed now."""
    __slots__ = ("qm", "inbound")

    def __init__(self, qm, inbound):
        self.qm, self.inbound = qm, inbound


class ChildrenEstablished:
    """Quick mode qm completed: children are its events.ChildSa (in/out per protocol)."""
    __slots__ = ("qm", "children", "now")

    def __init__(self, qm, children, now):
        self.qm, self.children, self.now = qm, children, now


class QuickModeFailed:
    """Quick mode qm failed or was abandoned (its diagnosis, if any, is on its IKE SA)."""
    __slots__ = ("qm", "now")

    def __init__(self, qm, now):
        self.qm, self.now = qm, now


class Refused:
    """An authenticated error notify (notify_type) arrived on the established sa."""
    __slots__ = ("sa", "notify_type", "now")

    def __init__(self, sa, notify_type, now):
        self.sa, self.notify_type, self.now = sa, notify_type, now


class IkeSaDeleted:
    """The peer deleted its IKE SA target (found by host.ike_sa_by_spi)."""
    __slots__ = ("target", "now")

    def __init__(self, target, now):
        self.target, self.now = target, now


class ChildDeleted:
    """A protected Delete on sa names an ESP/AH SPI (protocol "esp"/"ah", spi int)."""
    __slots__ = ("sa", "protocol", "spi", "now")

    def __init__(self, sa, protocol, spi, now):
        self.sa, self.protocol, self.spi, self.now = sa, protocol, spi, now


class Malformed:
    """A message for sa did not parse or lacks what it must carry (exc: codec.MalformedMessage,
    with .reason and .notify)."""
    __slots__ = ("sa", "exc")

    def __init__(self, sa, exc):
        self.sa, self.exc = sa, exc
