"""IkeCore: the sans-IO IKEv1 protocol core the driver feeds (modelled on aioquic).

Bytes and time in, datagrams and events out. The core never reads a clock, opens a socket or
touches the kernel: the driver calls receive_datagram / handle_timer / acquire / expire / initiate
/ delete / down / reconfigure with `now`, then drains datagrams_to_send() and next_event() and
re-arms one timer at get_timer(). status(now) is the page's data (DESIGN.md's shape).

This file keeps the policy decisions (when to initiate, rekey, expire, tear down) and acts on
what the exchanges report. The tables live beside it: the IKE SAs in ike_table.py, the child
SAs and their life cycle in children.py, the settings' indexes in peers.py, the timers in
deadlines.py; the receive path (a datagram to its exchange) is dispatch.py, the exchanges
themselves phase1.py, quickmode.py and informational.py, the IKE SA object ikesa.py.
Portable: MicroPython subset.
"""

from . import admission as admission_
from . import children as children_
from . import consts as C
from . import dispatch
from . import fragments
from . import informational
from . import lifetime
from . import natt
from . import peers as peers_
from . import phase1
from . import quickmode
from . import reactions
from . import settings as settings_
from . import states
from . import status as status_
from .api import CoreApi
from .deadlines import DeadlineIndex
from .events import IkeSaChanged, InstallChildSa, Log, Notice, ResolveGateway
from .ike_table import IkeSaTable
from .ikesa import IkeSa
from .logonce import LogOnce

# Quick modes we initiate on one IKE SA at once; the others wait in sa.qm_waiting. strongSwan's
# IKEv1 keeps the IVs and quick mode state of only three exchanges per IKE SA (iv_manager.c,
# charon.max_ikev1_exchanges = 3) and starts its own exchanges one at a time: the four pairs of a
# connection with network lists, started together, lost one quick mode against charon. One at a
# time also lets an error notify (which names no exchange) be pinned on the right one.
QUICK_MODES_AT_ONCE = 1


class IkeCore(CoreApi):
    """The core; api.CoreApi is what the driver may call (each method's contract there)."""

    def __init__(self, settings, crypto, now=0.0):
        self.settings = settings
        self.crypto = crypto
        # Wall-clock time minus `now`, set by the driver once the system clock is synchronized
        # (NTP); None until then, and certificate dates are not enforced.
        self.wall_offset = None
        self.table = IkeSaTable()
        self.ike_sas = self.table.by_id          # id -> ikesa.IkeSa, oldest first
        self._timers = DeadlineIndex()
        self.learned = lifetime.Learned()    # lifetimes the peer keeps silently (lifetime.py)
        self.child_sas = children_.ChildSas(crypto, self.learned, self.emit, self.touch,
                                            self.table.established)
        self.children = self.child_sas.children  # id -> events.ChildSa
        self.groups = self.child_sas.groups      # serial -> children.ChildGroup, oldest first
        self.lifetime_notes = self.child_sas.lifetime_notes
        self.waiting = {}            # peer name -> [(connection name, ids of groups it renews)]
        self.counters = {"malformed": 0, "datagrams": 0, "unknown_sa": 0, "retransmissions": 0}
        self.counters.update(fragments.new_counters())
        self.log_once = LogOnce(self.emit, self._peer_name, now)
        self.fragments = fragments.Reassembler(self.log_once.log, self.counters)
        self.admission = admission_.Admission()
        self._datagrams = []
        self._events = []
        self._event_pos = 0          # next_event() reads on from here (no pop(0) per event)
        self.source_addresses = {}   # remote gateway -> our address the kernel sends it from
        self.resolved = {}           # peer name -> address its DNS-named gateway resolved to
        self._resolving = set()      # peers whose name the driver is resolving (ResolveGateway)
        self.peers = peers_.PeerIndex(settings, self.resolved)
        self.host = reactions.CoreHost(self)   # what every IkeSa's exchanges see of us

    def wall_time(self, now):
        """Unix time at `now`, or None while the driver has not said the clock is set."""
        return None if self.wall_offset is None else now + self.wall_offset

    def connections_of(self, peer_name):
        """The peer's connections in the file's order (settings.connections_of, indexed)."""
        return self.peers.connections_of(peer_name)

    def gateway_address(self, peer):
        """Where the peer is now: its configured address, what its DNS name resolved to, or (a
        dynamic peer) the address of its newest established IKE SA; None when unknown."""
        if peer.gateway_kind == settings_.GATEWAY_ADDRESS:
            return peer.remote_gateway
        if peer.gateway_kind == settings_.GATEWAY_NAME:
            return self.resolved.get(peer.name)
        sa = self.table.established(peer.name)
        return sa.remote[0] if sa is not None else None

    def _peer_name(self, address):
        return self.peers.peer_name(address)

    # ===================================================================== driver interface
    def datagrams_to_send(self):
        out = self._datagrams
        self._datagrams = []
        return out

    def next_event(self):
        events = self._events
        pos = self._event_pos
        if pos >= len(events):
            return None
        if pos + 1 == len(events):
            self._events = []
            self._event_pos = 0
        else:
            self._event_pos = pos + 1
        return events[pos]

    def get_timer(self):
        return self._timers.earliest()

    def deadline_by_scan(self):
        """The earliest deadline found by visiting every SA (O(n)): what get_timer() must equal.
        For tests (conftest checks it at every step), never on the datagram path."""
        return DeadlineIndex.by_scan(list(self.ike_sas.values()) + list(self.groups.values())
                                     + [self.admission])

    def touch(self, owner):
        """An IKE SA or child group whose timers may have moved: recompute it before the next
        get_timer(). Cheap; marking too much is harmless, missing one loses a timer."""
        self._timers.mark(owner)

    def _touch_all(self):
        for sa in self.ike_sas.values():
            self._timers.mark(sa)
        for group in self.groups.values():
            self._timers.mark(group)

    def handle_timer(self, now):
        self.log_once.now = now
        try:
            self._handle_timer(now)
        except Exception as exc:           # noqa: BLE001 - one bad SA must not stop the others
            self._internal_error("timer", "handling timers", exc)

    def _handle_timer(self, now):
        # Only owners whose deadline has come, in creation order (IKE SAs, then child groups), as
        # the former scan of everything visited them; nothing else had anything to do.
        due = self._timers.pop_due(now)
        if self.admission in due:
            due.remove(self.admission)
            self.admission_log(now)
        groups = sorted([o for o in due if isinstance(o, children_.ChildGroup)], key=_serial)
        sas = sorted([o for o in due if isinstance(o, IkeSa)], key=_serial)
        for sa in sas:
            if sa.id in self.ike_sas:
                self._ike_sa_timer(sa, now)
        for group in groups:
            if group.removed:
                continue
            what = self.child_sas.due(group, now)
            if what == "expire":
                self.delete_group(group, now, "lifetime expired", notify_peer=True)
            elif what == "rekey":
                self._rekey_group(group, now)

    def _ike_sa_timer(self, sa, now):
        if sa.quiet_stall and sa.only_first and sa.stall_at <= now:
            # Made under pressure and never heard from again: a spoofed source, most likely.
            self.admission.expired_quietly += 1
            self.forget_ike_sa(sa, now)
            return
        phase1.on_timer(sa, now)
        for qm in list(sa.quick_modes.values()):
            qm.on_timer(now)
        if sa.dpd is not None and sa.established and sa.dpd.deadline() <= now:
            if sa.dpd.on_timer(now):
                self._peer_dead(sa, now)
                return
        if sa.remove_at is not None and sa.remove_at <= now:
            reason = "replaced by %s" % sa.rekeyed_by if sa.rekeyed_by else "negotiation failed"
            self.remove_ike_sa(sa, now, reason, notify_peer=sa.established)
            if not sa.machine.established:
                self._retry(sa, now)
            return
        if sa.expire_at is not None and sa.expire_at <= now:
            self.remove_ike_sa(sa, now, "lifetime expired", notify_peer=True)
            return
        if sa.rekey_at is not None and sa.rekey_at <= now:
            sa.rekey_at = None
            if sa.established and sa.rekeyed_by is None and sa.peer.act_as != "responder":
                self._rekey_ike(sa, now)

    def receive_datagram(self, data, local, remote, now):
        """One UDP payload from remote (ip, port) to local (ip, port)."""
        self.counters["datagrams"] += 1
        self.log_once.now = now
        try:
            dispatch.receive(self, data, local, remote, now)
        except Exception as exc:           # noqa: BLE001 - the core must survive any datagram
            self._internal_error(remote[0], "handling a datagram from %s" % remote[0], exc)

    def _internal_error(self, key, what, exc):
        """A bug met by some input: count it, log it once, keep serving everyone else."""
        self.counters["internal_errors"] = self.counters.get("internal_errors", 0) + 1
        self.log_once.log((key, 0), "internal-%s" % type(exc).__name__, "error",
                          "internal error while %s: %s: %s" % (what, type(exc).__name__, exc))

    def initiate(self, connection_name, now):
        """ikectl up / act_as initiator at start: bring this connection's tunnel up."""
        conn = self.settings.connections.get(connection_name)
        if conn is None:
            raise KeyError("no connection named %r" % (connection_name,))
        peer = self.settings.peers[conn.peer]
        if any(g for g in self.groups_of(conn.peer) if g.connection == conn.name
               and not g.replaced):
            return
        sa = self.table.established(peer.name)
        if sa is not None:
            if not any(qm for qm in sa.quick_modes.values()
                       if qm.connection.name == conn.name and qm.initiator and not qm.done
                       and not qm.failed) and \
                    not any(waiting.name == conn.name for waiting, _ in sa.qm_waiting):
                self.start_quick_mode(sa, conn, now)
            return
        self._wait_for_phase1(peer, conn.name, [], now)

    def connection_for_traffic(self, src_ip, dst_ip):
        """The first connection in the file whose networks cover src -> dst, or None."""
        return self.peers.connection_for_traffic(src_ip, dst_ip)

    def acquire(self, src_ip, dst_ip, now):
        """Kernel ACQUIRE: a packet src -> dst needs a tunnel we do not have yet."""
        conn = self.connection_for_traffic(src_ip, dst_ip)
        if conn is None:
            self.emit(Log("warning", None, "kernel asked for a tunnel %s -> %s that no "
                          "connection covers" % (src_ip, dst_ip)))
            return
        peer = self.settings.peers[conn.peer]
        if peer.act_as == "responder":
            self.emit(Log("info", peer.name, "traffic %s -> %s waits for %s to initiate "
                          "(act as responder)" % (src_ip, dst_ip, peer.remote_gateway)))
            return
        self.initiate(conn.name, now)

    def expire(self, protocol, spi, dst, hard, now):
        """Kernel soft/hard EXPIRE of one of our SAs (protocol "esp"/"ah", spi int)."""
        group = self.child_sas.group_by_kernel_key(protocol, spi, dst)
        if group is None:
            return
        if hard:
            self.delete_group(group, now, "hard lifetime reached", notify_peer=True)
        elif not group.replaced and not group.rekeying:
            self._rekey_group(group, now)

    def delete(self, sa_id, now):
        """The page's Delete / ikectl delete: an IKE SA id or a child SA id."""
        self._touch_all()          # rare and administrative: no need to track what moved
        sa = self.ike_sas.get(sa_id)
        if sa is not None:
            self.remove_ike_sa(sa, now, "deleted by the administrator", notify_peer=True)
            return True
        group = self.child_sas.group_of(sa_id)
        if group is not None:
            self.delete_group(group, now, "deleted by the administrator", notify_peer=True)
            return True
        raise KeyError("no SA with id %r" % (sa_id,))

    def learn_source_address(self, remote_ip, local_ip):
        """The driver asked the kernel which of our addresses it sends from to reach remote_ip
        (a route lookup). New negotiations with a peer that has no local_address start from
        it, so an aggressive mode initiator's first message carries our real address as its
        ID (not 0.0.0.0) and main mode's NAT-D hashes are right from message 3. None or
        0.0.0.0: no route known (forgotten)."""
        if local_ip and local_ip != "0.0.0.0":
            self.source_addresses[remote_ip] = local_ip
        else:
            self.source_addresses.pop(remote_ip, None)

    def learn_gateway_address(self, peer_name, address, now, error=None):
        """The driver's answer to ResolveGateway: the address the peer's DNS name resolves to,
        or None with the resolver's words (error). Resolved: the waiting negotiation starts
        there. Not resolved: a failed IKE SA says "the peer's name does not resolve" on the
        page and in the log, and is retried (resolving again) when it is cleared."""
        self._resolving.discard(peer_name)
        peer = self.settings.peers.get(peer_name)
        if peer is None or peer.gateway_kind != settings_.GATEWAY_NAME:
            return
        old = self.resolved.get(peer_name)
        if old is not None:
            self.peers.unresolved(peer, old)
        if address is None:
            self.resolved.pop(peer_name, None)
            if any(sa.failed and sa.remote[0] == peer.remote_gateway
                   for sa in self.sas_of(peer_name)):
                return                   # already listed with this diagnosis
            sa = self.new_ike_sa(peer, peer.phase1_mode, states.INITIATOR, self.crypto.random(8),
                               (peer.local_address or "0.0.0.0", C.IKE_PORT),
                               (peer.remote_gateway, C.IKE_PORT), now)
            sa.fail("dns", error or "no IPv4 address", now)
            return
        self.resolved[peer_name] = address
        self.peers.resolved_to(peer, address)
        if old != address:
            self.emit(Log("info", peer_name, "%s resolves to %s%s" % (
                peer.remote_gateway, address, " (was %s)" % old if old else "")))
        if self.waiting.get(peer_name) and self.table.negotiating(peer_name) is None:
            self._initiate_phase1(peer, now, resolved=True)

    def install_failed(self, sa_id, reason, now):
        """The kernel refused to install child SA sa_id (reason: its words, e.g. "Protocol not
        supported"). A pair with one half missing carries nothing, so the whole quick mode's
        SAs go: the siblings the driver has not installed yet are taken off the event queue,
        the installed ones get DeleteChildSa, the peer hears a Delete of our inbound SPIs (so it
        stops sending into a tunnel we cannot decrypt), and the IKE SA's last_error says why.
        -> True when sa_id was ours; False for an unknown or already removed SA (a second
        failure of the same pair)."""
        child = self.children.get(sa_id)
        group = self.child_sas.group_of(sa_id)
        if child is None or group is None:
            return self.child_sas.early_install_failed(list(self.ike_sas.values()), sa_id,
                                                       reason, now)
        queued = self._events[self._event_pos:]
        pending = set(e.sa.id for e in queued
                      if isinstance(e, InstallChildSa) and e.sa.id in group.ids)
        self._events = [e for e in queued
                        if not (isinstance(e, InstallChildSa) and e.sa.id in pending)]
        self._event_pos = 0
        pending.add(sa_id)
        self.child_sas.report_kernel_refusal(self.ike_sas.get(child.ike_sa), child, reason)
        self.delete_group(group, now, "the kernel could not install %s" % sa_id,
                           notify_peer=True, not_installed=pending)
        self.child_sas.reinstate_replaced(group, now)
        return True

    def down(self, peer_name, now):
        """Tear down everything with this peer (deletes sent) and stop initiating to it."""
        self._touch_all()
        self.waiting.pop(peer_name, None)
        self.admission.forget_queued(peer_name)
        for group in list(self.groups_of(peer_name)):
            self.delete_group(group, now, "peer taken down", notify_peer=True)
        for sa in list(self.sas_of(peer_name)):
            self.remove_ike_sa(sa, now, "peer taken down", notify_peer=True)

    def reconfigure(self, settings, now):
        """New configuration: tunnels whose settings did not change stay up (peers.changed)."""
        old = self.settings
        gone_peers, kept_peers, gone_conns = peers_.changed(old, settings)
        self.settings = settings
        self.peers = peers_.PeerIndex(settings, self.resolved)
        self.host = reactions.CoreHost(self)   # what every IkeSa's exchanges see of us
        self._touch_all()
        for name in old.peers:
            if name in gone_peers:
                self.learned.forget("peer", name)
                self.settings = old
                self.down(name, now)
                self.settings = settings
            else:
                new = settings.peers[name]
                for sa in self.ike_sas.values():
                    if sa.peer.name == name:
                        sa.peer = new
        for name in gone_conns:
            self.learned.forget("connection", name)
            for group in [g for g in self.groups.values() if g.connection == name]:
                self.delete_group(group, now, "connection reconfigured", notify_peer=True)
            for queue in self.waiting.values():
                queue[:] = [w for w in queue if w[0] != name]

    def status(self, now, peers=None):
        """The page's data: every IKE SA and SA, or (peers: names) only those peers'."""
        if peers is None:
            return status_.everything(self, now)
        return status_.of_peers(self, peers, now)

    def summary(self):
        """Counts only (peers by status, IKE SAs by state, SAs) and the admission bounds."""
        result = status_.summary(self)
        result["admission"] = self.admission.snapshot()
        return result

    def select_peers(self, text=None, status=None):
        """Configured peer names, in the file's order, whose name or gateway contains text and
        whose status (status.peer_status) is status; None: any."""
        return status_.select_peers(self, text, status)

    def peer_of(self, sa_id):
        """The peer name owning an IKE SA or SA id, or None."""
        sa = self.ike_sas.get(sa_id)
        if sa is not None:
            return sa.peer.name
        child = self.children.get(sa_id)
        return child.peer if child is not None else None

    def child_sa(self, sa_id):
        """The events.ChildSa with this id (its kernel key: protocol, spi, dst), or None."""
        return self.children.get(sa_id)

    def reqid(self, connection_name):
        """The reqid of a connection's SAs and policies (stable while the core lives)."""
        return self.child_sas.reqid(connection_name)

    # ========================================================= what the exchanges report (host.py)
    def emit(self, event):
        self._events.append(event)

    def send(self, data, local, remote):
        """An IKE datagram; from port 4500 behind the non-ESP marker (RFC 3948 section 2.2)."""
        if local[1] == C.NATT_PORT:
            data = natt.add_non_esp_marker(data)
        self._datagrams.append((data, local, remote))

    def send_raw(self, data, local, remote):
        """A datagram without the non-ESP marker (NAT keepalives)."""
        self._datagrams.append((data, local, remote))

    def start_quick_mode(self, sa, conn, now, replaces=None):
        """Our quick mode for conn now, or when one of ours on sa ends (QUICK_MODES_AT_ONCE)."""
        if sum(1 for qm in sa.quick_modes.values()
               if qm.initiator and not qm.done and not qm.failed) >= QUICK_MODES_AT_ONCE:
            sa.qm_waiting.append((conn, replaces))
            return
        self.touch(sa)
        qm = quickmode.QuickMode(sa, conn, True, sa.new_message_id(), now, replaces)
        sa.quick_modes[qm.mid] = qm
        qm.start(now)

    def next_quick_mode(self, sa, now):
        """One of our quick modes on sa ended: the next waiting one starts (still configured)."""
        while sa.qm_waiting and not sa.deleted:
            conn, replaces = sa.qm_waiting.pop(0)
            if self.settings.connections.get(conn.name) is conn:
                self.start_quick_mode(sa, conn, now, replaces)
                return

    def remove_ike_sa(self, sa, now, reason, notify_peer):
        if sa.id not in self.ike_sas:
            return
        if notify_peer and sa.established:
            informational.send_delete_ike(sa, now)
        if sa.established_at is not None:
            self.emit(Notice("ike-down", sa.peer.name, {"ike_sa": sa.id, "reason": reason}))
        self.forget_ike_sa(sa, now)
        self.emit(Log("info", sa.peer.name, "IKE SA %s with %s removed: %s" % (
            sa.id, sa.remote[0], reason)))
        self.emit(IkeSaChanged(sa.id, "Idle", states.IDLE_NUMBER))
        self.negotiation_ended(sa, now)

    def negotiation_ended(self, sa, now):
        """The SA was authenticated, failed or went: it leaves the admission bounds, and an
        initiation waiting for a slot may start. A first message we refused stays counted
        while its SA is listed: a spray of refused first messages is bounded like any other."""
        if sa.only_first and sa.failed and not sa.deleted:
            self.admission.closed_dh(sa)
        else:
            self.admission.closed(sa)
        while True:
            name = self.admission.next_queued()
            if name is None:
                return
            peer = self.settings.peers.get(name)
            if (peer is not None and self.waiting.get(name)
                    and self.table.negotiating(name) is None):
                self._start_ike(peer, now)

    # ===================================================================== internals
    def sas_of(self, peer_name):
        """The peer's IKE SAs, oldest first (status.py reads them)."""
        return self.table.of_peer(peer_name)

    def groups_of(self, peer_name):
        """The peer's child SA groups (one per quick mode), oldest first."""
        return self.child_sas.groups_of(peer_name)

    def admission_log(self, now):
        """The admission bounds' episode lines: its start once, its end with the counts."""
        line = self.admission.take_first_line()
        if line is not None:
            self.emit(Log("warning", None, line))
        line = self.admission.end_episode(now)
        if line is not None:
            self.emit(Log("warning", None, line))
        self.touch(self.admission)

    def new_ike_sa(self, peer, mode, role, icookie, local, remote, now):
        sa_id, serial = self.table.new_id()
        sa = IkeSa(self.host, sa_id, peer, mode, role, icookie, local, remote, now)
        sa.lifetime_s, sa.lifetime_note = self.learned.in_force("peer", peer.name,
                                                                peer.lifetime_s)
        sa.serial = serial
        self.touch(sa)
        sa.initial_contact = self.table.established(peer.name) is None
        self.table.add(sa)
        return sa

    def _wait_for_phase1(self, peer, conn_name, replaces, now):
        queue = self.waiting.setdefault(peer.name, [])
        if not any(w[0] == conn_name for w in queue):
            queue.append((conn_name, replaces))
        self._initiate_phase1(peer, now)

    def _initiate_phase1(self, peer, now, resolved=False):
        """Start a phase 1 with the peer unless one is under way or queued; paced by the
        admission bound on our own negotiations. A DNS-named gateway is resolved first, before
        each initiation (learn_gateway_address comes back here with resolved=True); a dynamic
        peer without an IKE SA has no address to start from. -> the new IkeSa or None."""
        if self.table.negotiating(peer.name) is not None or self.admission.is_queued(peer.name):
            return None
        if peer.gateway_kind == settings_.GATEWAY_NAME and not resolved:
            if peer.name not in self._resolving:
                self._resolving.add(peer.name)
                self.emit(ResolveGateway(peer.name, peer.remote_gateway))
            return None
        if self.gateway_address(peer) is None:
            self.emit(Log("info", peer.name, "peer %s has no address to initiate to: it waits "
                          "for the peer to connect" % peer.name))
            return None
        if not self.admission.may_initiate():
            self.admission.enqueue(peer.name)
            return None
        return self._start_ike(peer, now)

    def _start_ike(self, peer, now, remote_ip=None):
        remote_ip = remote_ip or self.gateway_address(peer)
        address = peer.local_address or self.source_addresses.get(remote_ip)
        local = (address or "0.0.0.0", C.IKE_PORT)
        remote = (remote_ip, C.IKE_PORT)
        sa = self.new_ike_sa(peer, peer.phase1_mode, states.INITIATOR, self.crypto.random(8),
                           local, remote, now)
        self.admission.opened_initiator(sa)
        phase1.start(sa, now)
        return sa

    def _retry(self, failed, now):
        """A failed phase 1 was cleared from the page: try again if something still waits. The
        new attempt shows the last failure until it has a verdict of its own."""
        peer = failed.peer
        if self.waiting.get(peer.name) and peer.act_as != "responder" \
                and peer.name in self.settings.peers:
            sa = self._initiate_phase1(peer, now)
            if sa is not None:
                sa.last_error = failed.last_error

    def _rekey_ike(self, old, now):
        new = self._start_ike(old.peer, now, remote_ip=old.remote[0])   # where the peer is now
        new.initial_contact = False
        old.rekeyed_by = new.id
        old.log("info", "renewing IKE SA %s with %s as %s" % (old.id, old.remote[0], new.id))

    def _rekey_group(self, group, now):
        conn = self.settings.connections.get(group.connection)
        peer = self.settings.peers.get(group.peer)
        if conn is None or peer is None:
            return
        group.rekeying = True
        self.touch(group)
        if peer.act_as == "responder" and not group.initiator:
            return          # "act as responder": the peer renews; ours age out if it does not
        sa = self.table.established(peer.name)
        if sa is not None:
            self.start_quick_mode(sa, conn, now, replaces=list(group.ids))
        elif peer.act_as != "responder":
            self._wait_for_phase1(peer, conn.name, list(group.ids), now)

    def delete_group(self, group, now, reason, notify_peer, not_installed=()):
        self.child_sas.remove(group, now, reason, notify_peer, not_installed)

    def _peer_dead(self, sa, now):
        peer = sa.peer
        sa.fail("dead_peer", "no R-U-THERE-ACK for %d s" % peer.dpd_timeout_s, now, keep=False)
        conns = sorted(set(g.connection for g in self.groups_of(peer.name)))
        for group in list(self.groups_of(peer.name)):
            self.delete_group(group, now, "dead peer", notify_peer=False)
        for other in list(self.sas_of(peer.name)):
            self.remove_ike_sa(other, now, "dead peer", notify_peer=False)
        if sa.initiator and peer.act_as != "responder":
            for name in conns:
                self._wait_for_phase1(peer, name, [], now)

    def forget_ike_sa(self, sa, now):
        """Take the SA out of every table (remove_ike_sa without the delete, the log and the
        notices: also how a half-open SA of a spray goes)."""
        self.admission.closed(sa)
        sa.deleted = True
        self.table.remove(sa)
        self.touch(sa)             # drops its timer entry
        for qm in sa.quick_modes.values():
            self.child_sas.withdraw_early(qm, "IKE SA %s removed before HASH(3)" % sa.id, now)
        heir = self.table.established(sa.peer.name)
        if heir is not None:
            waiting, sa.qm_waiting = sa.qm_waiting, []
            for conn, replaces in waiting:       # its successor negotiates them
                if self.settings.connections.get(conn.name) is conn:
                    self.start_quick_mode(heir, conn, now, replaces)
            self.child_sas.move_to(sa, heir)


def _serial(owner):
    return owner.serial
