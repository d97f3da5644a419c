"""The child SAs (IPsec SAs) of one IkeCore and their life cycle, grouped per quick mode.

One quick mode makes one group: in + out, times ESP/AH. Here are the tables (by id, by kernel key,
per peer), our inbound SPIs and the reqids, and the bookkeeping of a group's life: installed
(the outbound half of our own renewal a moment later), renewed (the older group is `replaced`
and ages out at its own lifetime), expired, deleted (by us, the peer, the kernel's refusal) and
moved with its peer. The decisions of *when* to renew or tear down are the core's (core.py);
this module does what they mean for the SAs. Portable: MicroPython subset, no I/O.
"""

from . import consts as C
from . import diagnosis
from . import informational
from .events import ChildSa, DeleteChildSa, InstallChildSa, Log, Notice
from .ikesa import rekey_after

# A renewal we initiate moves our outgoing traffic to the new SA only this long after quick mode's
# last message (HASH(3)) went out: a responder may install its new inbound SA only when that
# message arrives (strongSwan does), and a packet sent on the new SA before then is dropped there.
# The old pair stays valid meanwhile (it is renewed lifetime/10 before it expires).
OUTBOUND_SWITCH_DELAY_S = 1
INSTALL_RETRY_S = 30                     # renew again this long after the kernel refused a pair


class ChildGroup:
    """The SAs one quick mode made (in+out, times ESP/AH) and their life."""
    __slots__ = ("ids", "connection", "peer", "initiator", "rekey_at", "expire_at", "replaced",
                 "rekeying", "created", "removed", "serial", "deferred", "install_at")

    def __init__(self, ids, connection, peer, initiator, rekey_at, expire_at, created):
        self.created = created
        self.ids = ids
        self.connection = connection
        self.peer = peer
        self.initiator = initiator
        self.rekey_at = rekey_at
        self.expire_at = expire_at
        self.replaced = False
        self.rekeying = False
        self.removed = False
        self.serial = 0          # creation order (timers run in it, as a scan of the list would)
        self.deferred = []       # ChildSas (outgoing) installed at install_at, not at once
        self.install_at = None

    def deadline(self):
        if self.removed:
            return None
        due = self.expire_at
        if not self.replaced and not self.rekeying and self.rekey_at is not None:
            due = min(self.rekey_at, due)
        if self.install_at is not None:
            due = min(self.install_at, due)
        return due


class ChildSas:
    """Every child SA of one core. emit(event) queues for the driver, touch(owner) tells the
    core's timer index that a group's deadline moved, established_sa(peer name) is the IKE SA
    a Delete of our inbound SPIs goes out on (or None); learned is the core's lifetime.Learned."""

    def __init__(self, crypto, learned, emit, touch, established_sa):
        self.crypto = crypto
        self.learned = learned
        self.emit = emit
        self.touch = touch
        self.established_sa = established_sa
        self.children = {}           # id -> events.ChildSa
        self.groups = {}             # serial -> ChildGroup, oldest first
        self.lifetime_notes = {}     # child SA id -> why its lifetime is not ours (the page)
        self._group_of_child = {}    # child SA id -> its ChildGroup
        self._child_by_key = {}      # (protocol, spi, dst) -> child SA id (kernel expires)
        # The groups per peer name, in creation order: "the tunnel's older pairs" without
        # visiting every tunnel.
        self._peer_groups = {}
        self._next_group = 1
        self._next_child = 1
        self._spis = set()
        self._reqids = {}

    # -- ids -------------------------------------------------------------------------------------
    def allocate_spi(self, protocol):
        """A random inbound SPI, unique among ours, not in the reserved range 1-255."""
        while True:
            spi = self.crypto.random(4)
            value = int.from_bytes(spi, "big")
            if value >= 0x100 and (protocol, value) not in self._spis:
                self._spis.add((protocol, value))
                return spi

    def new_child_id(self):
        cid = "sa-%d" % self._next_child
        self._next_child += 1
        return cid

    def reqid(self, connection_name):
        if connection_name not in self._reqids:
            self._reqids[connection_name] = len(self._reqids) + 1
        return self._reqids[connection_name]

    # -- lookups ---------------------------------------------------------------------------------
    def groups_of(self, peer_name):
        """The peer's groups (one per quick mode), oldest first."""
        return self._peer_groups.get(peer_name, ())

    def group_of(self, child_id):
        return self._group_of_child.get(child_id)

    def group_by_kernel_key(self, protocol, spi, dst):
        return self._group_of_child.get(self._child_by_key.get((protocol, spi, dst)))

    def group_with_spi(self, peer_name, protocol, direction, spi):
        for group in self.groups_of(peer_name):
            for cid in group.ids:
                child = self.children.get(cid)
                if (child and child.peer == peer_name and child.protocol == protocol
                        and child.direction == direction and child.spi == spi):
                    return group
        return None

    # -- a quick mode's SAs arrive ---------------------------------------------------------------
    def install_early(self, qm, inbound):
        """A quick mode responder's inbound SAs, installed when message 2 goes out (see
        QuickMode.handle_request); add() does not install them again, and a quick mode that
        fails before HASH(3) takes them out (withdraw_early)."""
        for child in inbound:
            qm.early.append(child.id)
            self.emit(InstallChildSa(child))

    def add(self, qm, children, now):
        """The SAs of a completed quick mode: the tunnel's older groups are replaced (they age
        out at their own lifetime: the page shows 4 SAs for a while), the new group is
        installed. Our own renewal installs its outbound SAs OUTBOUND_SWITCH_DELAY_S later."""
        conn = qm.connection
        renewal = False
        for group in self.groups_of(qm.sa.peer.name):
            if group.connection == conn.name:
                group.replaced = True
                renewal = True
                if not qm.initiator:
                    self._learn_from_peer_rekey(qm, group)
                self.touch(group)
        rekey_at = now + rekey_after(qm.lifetime_s, qm.initiator, self.crypto)
        group = ChildGroup([c.id for c in children], conn.name, qm.sa.peer.name, qm.initiator,
                           rekey_at, now + qm.lifetime_s, now)
        group.serial = self._next_group
        self._next_group += 1
        self.groups[group.serial] = group
        self._peer_groups.setdefault(group.peer, []).append(group)
        for child in children:
            self._group_of_child[child.id] = group
            self._child_by_key[(child.protocol, child.spi, child.dst)] = child.id
        if renewal and qm.initiator:
            group.deferred = [c for c in children if c.direction == "out"]
            group.install_at = now + OUTBOUND_SWITCH_DELAY_S
        self.touch(group)
        for child in children:
            self.children[child.id] = child
            if qm.lifetime_note:
                self.lifetime_notes[child.id] = qm.lifetime_note
            if child not in group.deferred and child.id not in qm.early:
                self.emit(InstallChildSa(child))
        qm.early = []
        self.emit(Notice("tunnel-up", group.peer, {
            "connection": conn.name, "ike_sa": qm.sa.id, "sas": list(group.ids),
            "renewal": renewal}))
        return group

    def _learn_from_peer_rekey(self, qm, group):
        """The peer renewed this group's tunnel: its offer's lifetime was in force for it."""
        old = [self.children[cid] for cid in group.ids if cid in self.children]
        note = old and self.learned.from_rekey("connection", group.connection, qm.lifetime_s,
                                               old[0].lifetime_s)
        if not note:
            return
        qm.log("info", "the peer renewed the SAs of %s with a lifetime of %d s, shorter than "
               "their %d s: the peer's lifetime is in force" % (
                   group.connection, qm.lifetime_s, old[0].lifetime_s))
        for child in old:
            child.lifetime_s = qm.lifetime_s
            self.lifetime_notes[child.id] = note
        group.expire_at = min(group.expire_at, group.created + qm.lifetime_s)

    def due(self, group, now):
        """A group's timer came: the deferred outbound SAs go in; -> "expire", "rekey" or None
        (what the core is to do with it)."""
        if group.install_at is not None and group.install_at <= now:
            deferred, group.deferred, group.install_at = group.deferred, [], None
            for child in deferred:
                self.emit(InstallChildSa(child))
        if group.expire_at <= now:
            return "expire"
        if (not group.replaced and not group.rekeying and group.rekey_at is not None
                and group.rekey_at <= now):
            return "rekey"
        return None

    # -- SAs leave -------------------------------------------------------------------------------
    def remove(self, group, now, reason, notify_peer, not_installed=()):
        """Remove one quick mode's SAs; notify_peer: the peer hears a Delete of our inbound
        SPIs; not_installed: ids the kernel never got (no DeleteChildSa for them)."""
        if group.removed:
            return
        del self.groups[group.serial]
        for cid in group.ids:
            self._group_of_child.pop(cid, None)
            child = self.children.get(cid)
            if child is not None:
                self._child_by_key.pop((child.protocol, child.spi, child.dst), None)
        same_peer = self._peer_groups.get(group.peer, [])
        if group in same_peer:
            same_peer.remove(group)
        if not same_peer:
            self._peer_groups.pop(group.peer, None)
        group.removed = True
        self.touch(group)
        not_installed = set(not_installed) | set(c.id for c in group.deferred)
        group.deferred, group.install_at = [], None
        children = [self.children.pop(cid) for cid in group.ids if cid in self.children]
        for cid in group.ids:
            self.lifetime_notes.pop(cid, None)
        sa = self.established_sa(group.peer)
        if sa is not None:
            self.touch(sa)
        if notify_peer and sa is not None:
            send_delete_of_inbound(sa, children, now)
        for child in children:
            self._spis.discard((child.protocol, child.spi))
            if child.id not in not_installed:
                self.emit(DeleteChildSa(child, reason))
        if children:
            self.emit(Log("info", group.peer, "SAs of %s (%s) removed: %s" % (
                group.connection, ", ".join("%s %s 0x%08x" % (c.protocol.upper(), c.direction, c.spi)
                                            for c in children), reason)))
        if not any(g.connection == group.connection for g in self.groups_of(group.peer)):
            self.emit(Notice("tunnel-down", group.peer, {"connection": group.connection,
                                                         "reason": reason}))

    def withdraw_early(self, qm, reason, now, notify_peer=False):
        """Take a failed exchange's early inbound SAs out of the kernel; notify_peer: a Delete
        of those SPIs tells the initiator (which installed its pair on our message 2) to drop it."""
        for child in qm.children or ():
            if child.id in qm.early:
                self._spis.discard((child.protocol, child.spi))
                self.emit(DeleteChildSa(child, reason))
        if notify_peer and qm.children:
            send_delete_of_inbound(qm.sa, qm.children, now)
        qm.early = []
        qm.children = None            # their keys: not kept by a failed exchange

    def early_install_failed(self, ike_sas, sa_id, reason, now):
        """The kernel refused an inbound SA a quick mode responder installed before HASH(3):
        the exchange fails (its other early SAs are withdrawn, HASH(3) will be ignored) and the
        peer, which installs its pair on our message 2, hears a Delete of our inbound SPIs.
        -> True when sa_id was such an SA."""
        for sa in ike_sas:
            for qm in sa.quick_modes.values():
                if sa_id not in qm.early:
                    continue
                child = [c for c in qm.children if c.id == sa_id][0]
                self.report_kernel_refusal(sa, child, reason)
                qm.early.remove(sa_id)           # never in the kernel: nothing to delete there
                self._spis.discard((child.protocol, child.spi))
                qm.abandon(now)                  # the others go; the peer hears a Delete
                return True
        return False

    def report_kernel_refusal(self, sa, child, reason):
        """The one diagnosis line for an SA the kernel refused: the VPN log and (sa given) the
        IKE SA's last_error."""
        line = diagnosis.kernel_install_line(child.protocol, child.spi, child.direction, reason,
                                             child.connection, child.dst if child.direction ==
                                             "out" else child.src)
        if sa is not None:
            sa.last_error = line
            sa.error_connection = child.connection
        self.emit(Log("error", child.peer, line))

    def reinstate_replaced(self, failed, now):
        """A renewal that never reached the kernel replaced nothing: the newest older pair of
        the tunnel, still alive, carries the traffic again and is renewed again a little later
        (not at once: the same kernel error would come straight back)."""
        tunnel = [g for g in self.groups_of(failed.peer) if g.connection == failed.connection]
        older = [g for g in tunnel if g.created <= failed.created]
        if not older or any(not g.replaced for g in tunnel):
            return
        group = older[-1]
        group.replaced = False
        group.rekeying = False
        self.touch(group)
        retry_at = now + INSTALL_RETRY_S
        group.rekey_at = retry_at if retry_at < group.expire_at else None

    def renewal_failed(self, qm):
        """Our (or the peer's) renewal of these groups failed: they may be renewed again."""
        for group in self.groups_of(qm.sa.peer.name):
            if group.ids and group.ids[0] in qm.replaces:
                group.rekeying = False
                self.touch(group)

    # -- SAs move --------------------------------------------------------------------------------
    def follow(self, sa, old_ip):
        """The peer of sa moved (dynamic.follow): every SA with its old address is reinstalled
        with sa's addresses and ESP-in-UDP ports (a Delete of the old kernel entry, an Install
        of the same keys), its kernel key re-indexed."""
        for group in self.groups_of(sa.peer.name):
            for cid in group.ids:
                child = self.children.get(cid)
                if child is None or old_ip not in (child.src, child.dst):
                    continue
                self.emit(DeleteChildSa(_copy(child), "the peer moved to %s" % sa.remote[0]))
                key = (child.protocol, child.spi, child.dst)
                if self._child_by_key.get(key) == child.id:
                    del self._child_by_key[key]
                if child.direction == "in":
                    child.src, child.dst = sa.remote[0], sa.local[0]
                    child.encap = sa.natt.encap_ports(sa.remote, sa.local)
                else:
                    child.src, child.dst = sa.local[0], sa.remote[0]
                    child.encap = sa.natt.encap_ports(sa.local, sa.remote)
                self._child_by_key[(child.protocol, child.spi, child.dst)] = child.id
                self.emit(InstallChildSa(child))

    def move_to(self, sa, heir):
        """sa goes; its successor heir (same peer) now owns the SAs it negotiated."""
        for group in self.groups_of(sa.peer.name):
            for cid in group.ids:
                child = self.children.get(cid)
                if child is not None and child.ike_sa == sa.id:
                    child.ike_sa = heir.id


def send_delete_of_inbound(sa, children, now):
    """A Delete naming our inbound SPIs of these SAs (the ones the peer sends with)."""
    for proto, pid in (("esp", C.PROTO_IPSEC_ESP), ("ah", C.PROTO_IPSEC_AH)):
        informational.send_delete_children(sa, pid, [
            c.spi.to_bytes(4, "big") for c in children
            if c.protocol == proto and c.direction == "in"], now)


def _copy(child):
    return ChildSa(**dict((name, getattr(child, name)) for name in ChildSa.__slots__))
