"""What the core does with what an exchange reports (host.py's outcomes), and the CoreHost an
exchange reports through. Portable: MicroPython subset.

Each outcome kind has one function here, `_ACTS` maps the kinds to them: the one place that
decides what "phase 1 is up", "the peer deleted this SA" or "a quick mode failed" mean for the
tables (ike_table.py, children.py), the waiting quick modes and the driver's events.
"""

from . import consts as C
from . import diagnosis
from . import host as host_
from . import informational
from . import natt
from .events import Notice

REPLACED_IKE_KEEP_S = 30                 # a rekeyed IKE SA lingers this long, then is deleted


class CoreHost(host_.Host):
    """The core as the exchanges see it (host.Host): its services, and report() acting on
    each outcome at once (its function below)."""

    def __init__(self, core):
        self._core = core
        self.crypto = core.crypto
        self.counters = core.counters

    def send(self, data, local, remote):
        self._core.send(data, local, remote)

    def send_keepalive(self, local, remote):
        self._core.send_raw(natt.KEEPALIVE, local, remote)

    def emit(self, event):
        self._core.emit(event)

    def allocate_spi(self, protocol):
        return self._core.child_sas.allocate_spi(protocol)

    def new_child_id(self):
        return self._core.child_sas.new_child_id()

    def reqid(self, connection_name):
        return self._core.child_sas.reqid(connection_name)

    def wall_time(self, now):
        return self._core.wall_time(now)

    def lifetime_in_force(self, kind, name, ours):
        return self._core.learned.in_force(kind, name, ours)

    def dynamic_peers(self):
        return self._core.peers.dynamic_peers()

    def connections_of(self, peer_name):
        return self._core.peers.connections_of(peer_name)

    def ike_sa_by_spi(self, spi):
        return self._core.table.by_spi(spi)

    def report(self, outcome):
        _ACTS[type(outcome)](self._core, outcome)


def malformed_outcome(core, o):
    malformed(core, o.sa.remote, o.exc, o.sa)


def malformed(core, remote, exc, sa):
    """Count every malformed message, log it once per peer and reason kind, never crash. A
    negotiation still in phase 1 hears PAYLOAD-MALFORMED (or the codec's notify) in clear,
    once: RFC 2408 section 5 lets us tell the peer, and more would only help an attacker."""
    core.counters["malformed"] += 1
    reason = getattr(exc, "reason", str(exc))
    notify = getattr(exc, "notify", C.PAYLOAD_MALFORMED)
    core.log_once.log(remote, "malformed-%s" % C.name(C.NOTIFY_NAMES, notify), "warning",
                      "malformed message from %s: %s" % (remote[0], reason))
    if sa is not None and sa.keys is None and not getattr(sa, "told_malformed", False):
        sa.told_malformed = True
        informational.send_notify(sa, notify, None)


def established(core, o):
    sa, initial_contact, now = o.sa, o.initial_contact, o.now
    peer = sa.peer
    core.negotiation_ended(sa, now)
    if initial_contact:
        # RFC 2407 4.6.3.3: the peer has no state from before this negotiation began: drop
        # ours from before then (no deletes sent). SAs that came up meanwhile stay: both
        # sides may have initiated at once, each with INITIAL-CONTACT.
        for group in [g for g in core.groups_of(peer.name) if g.created < sa.created]:
            core.delete_group(group, now, "peer sent INITIAL-CONTACT", notify_peer=False)
        for other in [s for s in core.sas_of(peer.name) if s is not sa
                      and s.established_at is not None and s.established_at < sa.created]:
            core.remove_ike_sa(other, now, "peer sent INITIAL-CONTACT", notify_peer=False)
    if peer.dpd_delay_s and sa.peer_dpd:
        sa.dpd = informational.Dpd(sa, peer.dpd_delay_s, peer.dpd_timeout_s, now)
    core.touch(sa)
    renewal = False
    if not sa.initiator:
        _learn_from_peer_ike_rekey(core, sa)
    for old in core.sas_of(peer.name):      # a renewal is always with the same peer
        if old.rekeyed_by == sa.id:
            old.remove_at = now + REPLACED_IKE_KEEP_S
            core.touch(old)
            renewal = True
    core.emit(Notice("ike-up", peer.name, {"ike_sa": sa.id, "renewal": renewal}))
    queue = core.waiting.pop(peer.name, [])
    for name, replaces in queue:
        conn = core.settings.connections.get(name)
        if conn is not None:
            core.start_quick_mode(sa, conn, now, replaces)


def children_established(core, o):
    qm, children, now = o.qm, o.children, o.now
    if qm.sa.error_connection == qm.connection.name:
        qm.sa.last_error = None        # that connection's tunnel works now
        qm.sa.error_connection = None
    core.child_sas.add(qm, children, now)
    if qm.initiator:
        core.next_quick_mode(qm.sa, now)


def inbound_ready(core, o):
    core.child_sas.install_early(o.qm, o.inbound)


def quick_mode_failed(core, o):
    qm, now = o.qm, o.now
    core.child_sas.withdraw_early(qm, "quick mode failed before HASH(3)", now,
                                  notify_peer=True)
    core.child_sas.renewal_failed(qm)
    if qm.initiator:
        core.next_quick_mode(qm.sa, now)


def refused(core, o):
    """An authenticated error notify on an established SA: it answers our latest pending
    quick mode (IKEv1 notifies do not name the exchange they refuse)."""
    sa, notify_type, now = o.sa, o.notify_type, o.now
    open_ = [qm for qm in sa.quick_modes.values() if not qm.done and not qm.failed]
    # Ours first (the peer refuses our offer); else one we answered (it refuses our choice).
    pending = [qm for qm in open_ if qm.initiator] or open_
    text = C.name(C.NOTIFY_NAMES, notify_type)
    if not pending:
        if notify_type in diagnosis.PHASE1_NOTIFY_CAUSES and \
                notify_type != C.NO_PROPOSAL_CHOSEN:
            # The peer rejected the phase 1 we completed (e.g. our ID in its last check).
            line = diagnosis.line(diagnosis.cause_of_notify(notify_type, 1), sa.remote[0],
                                  "the peer refused the IKE SA with %s" % text)
            sa.last_error = line
            sa.log("error", line)
        else:
            sa.log("warning", "peer %s reports %s" % (sa.remote[0], text))
        return
    qm = pending[-1]
    qm.fail(diagnosis.cause_of_notify(notify_type, 2), "the peer answered %s" % text, now)


def child_deleted(core, o):
    """A Delete of an ESP/AH SPI from the peer. RFC 2408 has the deleting side name its
    inbound SPI (our outbound SA); charon, when its kernel refused its half of a pair, names
    the SPI it received from us (our inbound SA; its own half never existed). Either way the
    pair goes: outbound first, our inbound SPIs as the fallback."""
    sa, protocol, spi, now = o.sa, o.protocol, o.spi, o.now
    for direction in ("out", "in"):
        group = core.child_sas.group_with_spi(sa.peer.name, protocol, direction, spi)
        if group is not None:
            child = core.children.get(group.ids[0])
            learned = child and core.learned.from_delete(
                "connection", group.connection, now - group.created, child.lifetime_s)
            if learned:
                sa.log("info", "the peer deleted the SAs of %s after %d s, before our "
                       "lifetime of %d s: taking %d s as its lifetime from now on" % (
                           group.connection, learned, child.lifetime_s, learned))
            core.delete_group(group, now, "deleted by the peer", notify_peer=False)
            return
    core.log_once.log(sa.remote, "delete-%s-%08x" % (protocol, spi), "info",
                      "delete from %s names unknown %s SPI 0x%08x" % (
                          sa.remote[0], protocol.upper(), spi))


def ike_sa_deleted(core, o):
    """The peer's Delete of one of its IKE SAs with us (maybe an early end: lifetime.py)."""
    target, now = o.target, o.now
    if target.established_at is not None:
        learned = core.learned.from_delete("peer", target.peer.name,
                                           now - target.established_at, target.lifetime_s)
        if learned:
            target.log("info", "the peer deleted IKE SA %s after %d s, before our lifetime "
                       "of %d s: taking %d s as its lifetime from now on" % (
                           target.id, learned, target.lifetime_s, learned))
    target.log("info", "peer %s deleted IKE SA %s" % (target.remote[0], target.id))
    core.remove_ike_sa(target, now, "deleted by the peer", notify_peer=False)


def peer_settled(core, o):
    """The responder SA turns out to be with another (dynamic) peer (dynamic.refine): it
    moves to that peer's tables. renegotiate: nothing is agreed yet (aggressive mode message
    1), so the new peer's authentication method, lifetime and NAT-T setting apply."""
    sa, peer, renegotiate = o.sa, o.peer, o.renegotiate
    core.table.move(sa, peer)
    sa.initial_contact = core.table.established(peer.name) is None
    if renegotiate:
        sa.auth = peer.auth
        sa.lifetime_s, sa.lifetime_note = core.learned.in_force("peer", peer.name,
                                                                peer.lifetime_s)
        sa.natt.enabled = bool(peer.nat_t)
    core.touch(sa)


def negotiation_ended(core, o):
    core.negotiation_ended(o.sa, o.now)


def _learn_from_peer_ike_rekey(core, sa):
    """The peer started this IKE SA while older ones are up: a renewal offering its own
    lifetime, which the older ones lived by too (lifetime.py)."""
    for old in core.sas_of(sa.peer.name):
        if old is sa or old.established_at is None or not old.established:
            continue
        note = core.learned.from_rekey("peer", sa.peer.name, sa.lifetime_s, old.lifetime_s)
        if note is None:
            continue
        old.log("info", "the peer renewed IKE SA %s as %s with a lifetime of %d s, shorter "
                "than its %d s: the peer's lifetime is in force" % (
                    old.id, sa.id, sa.lifetime_s, old.lifetime_s))
        old.lifetime_note, old.lifetime_s = note, sa.lifetime_s
        old.expire_at = min(old.expire_at, old.established_at + sa.lifetime_s)
        core.touch(old)


_ACTS = {host_.Established: established,
         host_.NegotiationEnded: negotiation_ended,
         host_.PeerSettled: peer_settled,
         host_.InboundReady: inbound_ready,
         host_.ChildrenEstablished: children_established,
         host_.QuickModeFailed: quick_mode_failed,
         host_.Refused: refused,
         host_.IkeSaDeleted: ike_sa_deleted,
         host_.ChildDeleted: child_deleted,
         host_.Malformed: malformed_outcome}
