"""IkeCore: the sans-IO IKEv1 protocol core the driver feeds (modelled on aioquic).

Bytes and time in, datagrams and events out. The core never reads a clock, opens a socket or
touches the kernel: the driver calls receive_datagram / handle_timer / acquire / expire / initiate
/ delete / down / reconfigure with `now`, then drains datagrams_to_send() and next_event() and
re-arms one timer at get_timer(). status(now) is the page's data (DESIGN.md's shape).

This file keeps the tables (IKE SAs, child SAs, what waits for phase 1) and the policy decisions
(when to initiate, rekey, expire, tear down); the exchanges themselves live in phase1.py,
quickmode.py and informational.py, the IKE SA object in ikesa.py. Portable: MicroPython subset.
"""

import heapq                     # MicroPython has it too (checked in the wasm build)

from . import addresses
from . import admission as admission_
from . import codec
from . import consts as C
from . import diagnosis
from . import dynamic
from . import fragments
from . import ikesa
from . import informational
from . import lifetime
from . import phase1
from . import quickmode
from . import settings as settings_
from . import states
from . import status as status_
from .events import DeleteChildSa, IkeSaChanged, InstallChildSa, Log, Notice, ResolveGateway

NON_ESP_MARKER = b"\x00\x00\x00\x00"     # RFC 3948 section 2.2: IKE on port 4500
NATT_KEEPALIVE = b"\xff"                 # RFC 3948 section 2.3
REPLACED_IKE_KEEP_S = 30                 # a rekeyed IKE SA lingers this long, then is deleted
INSTALL_RETRY_S = 30                     # renew again this long after the kernel refused a pair
# A renewal we initiate moves our outgoing traffic to the new SA only this long after quick mode's
# last message (HASH(3)) went out: a responder may install its new inbound SA only when that
# message arrives (strongSwan does), and a packet sent on the new SA before then is dropped there.
# The old pair stays valid meanwhile (it is renewed lifetime/10 before it expires).
OUTBOUND_SWITCH_DELAY_S = 1
# Quick modes we initiate on one IKE SA at once; the others wait in sa.qm_waiting. strongSwan's
# IKEv1 keeps the IVs and quick mode state of only three exchanges per IKE SA (iv_manager.c,
# charon.max_ikev1_exchanges = 3) and starts its own exchanges one at a time: the four pairs of a
# connection with network lists, started together, lost one quick mode against charon. One at a
# time also lets an error notify (which names no exchange) be pinned on the right one.
QUICK_MODES_AT_ONCE = 1
ZERO_COOKIE = b"\x00" * 8
# _log_once: one line per source address and kind of trouble per window, at most this many.
LOG_ONCE_KEYS = 100
LOG_ONCE_WINDOW_S = 3600


class _ChildGroup:
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


class _DeadlineIndex:
    """The earliest deadline among many owners (IKE SAs, child SA groups) without visiting them
    all after every datagram: a heap of (deadline, seq, owner) with lazy invalidation. Whatever
    an input or a timer touches is marked dirty and recomputed once, at the next earliest();
    only the entry carrying an owner's current seq counts, older ones are dropped as they surface.
    O(log n) per touched owner instead of O(n) per datagram (at 1,000 tunnels the scan made
    peers give up)."""

    def __init__(self, deadline_of):
        self._deadline_of = deadline_of   # owner -> absolute time or None (nothing due / gone)
        self._heap = []
        self._current = {}                # owner -> seq of its live heap entry
        self._dirty = set()
        self._seq = 0

    def mark(self, owner):
        self._dirty.add(owner)

    def _refresh(self):
        if not self._dirty:
            return
        dirty = self._dirty
        self._dirty = set()
        for owner in dirty:
            deadline = self._deadline_of(owner)
            if deadline is None:
                self._current.pop(owner, None)
                continue
            self._seq += 1
            self._current[owner] = self._seq
            heapq.heappush(self._heap, (deadline, self._seq, owner))
        if len(self._heap) > 2 * len(self._current) + 64:
            # Stale entries pile up when deadlines move later (DPD after each datagram).
            self._heap = [e for e in self._heap if self._current.get(e[2]) == e[1]]
            heapq.heapify(self._heap)

    def earliest(self):
        self._refresh()
        heap = self._heap
        while heap and self._current.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now):
        """Owners whose deadline has come; they are dirty again (their timers will move)."""
        self._refresh()
        heap = self._heap
        due = []
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            owner = entry[2]
            if self._current.get(owner) == entry[1]:
                del self._current[owner]
                due.append(owner)
                self._dirty.add(owner)
        return due


class IkeCore:
    def __init__(self, settings, crypto, now=0.0):
        self.settings = settings
        self.crypto = crypto
        # Wall-clock time minus `now`, set by the driver once the system clock is synchronized
        # (NTP); None until then, and certificate dates are not enforced.
        self.wall_offset = None
        self.ike_sas = {}            # id -> ikesa.IkeSa, oldest first
        self._by_icookie = {}        # initiator cookie -> [IkeSa] (finding an SA per datagram)
        self.children = {}           # id -> events.ChildSa
        self.groups = {}             # serial -> _ChildGroup, oldest first
        self._group_of_child = {}    # child SA id -> its _ChildGroup
        self._child_by_key = {}      # (protocol, spi, dst) -> child SA id (kernel expires)
        # The same IKE SAs and groups per peer name, in creation order: the questions asked per
        # datagram ("the peer's established SA", "the tunnel's older pairs") without visiting
        # every tunnel (at 1,000 tunnels those scans were the next hot spot after the timers).
        self._peer_sas = {}
        self._peer_groups = {}
        self.waiting = {}            # peer name -> [(connection name, ids of groups it renews)]
        self.counters = {"malformed": 0, "datagrams": 0, "unknown_sa": 0, "retransmissions": 0}
        self.counters.update(fragments.new_counters())
        self.fragments = fragments.Reassembler(self._log_once, self.counters)
        self.admission = admission_.Admission()
        self._datagrams = []
        self._events = []
        self._event_pos = 0          # next_event() reads on from here (no pop(0) per event)
        self._next_ike = 1
        self._next_child = 1
        self._spis = set()
        self._reqids = {}
        self._malformed_seen = set()     # (address, kind) logged in this window (_log_once)
        self._log_once_since = now
        self._log_once_dropped = 0
        self._now = now                  # of the input being handled (for _log_once)
        self.source_addresses = {}   # remote gateway -> our address the kernel sends it from
        self.resolved = {}           # peer name -> address its DNS-named gateway resolved to
        self._resolving = set()      # peers whose name the driver is resolving (ResolveGateway)
        self._timers = _DeadlineIndex(_deadline_of)
        self._next_group = 1
        self.learned = lifetime.Learned()    # lifetimes the peer keeps silently (lifetime.py)
        self.lifetime_notes = {}     # child SA id -> why its lifetime is not ours (the page)
        self._index_settings()

    def wall_time(self, now):
        """Unix time at `now`, or None while the driver has not said the clock is set."""
        return None if self.wall_offset is None else now + self.wall_offset

    def _index_settings(self):
        """Per-peer views of the settings, so a per-tunnel question (a quick mode request's
        connection, the peer a first message comes from) does not visit every tunnel."""
        self._connections_by_peer = {}
        for conn in self.settings.connections.values():
            self._connections_by_peer.setdefault(conn.peer, []).append(conn)
        self._peer_by_gateway = {}
        self._dynamic_peers = []
        for peer in self.settings.peers.values():
            if peer.gateway_kind == settings_.GATEWAY_ADDRESS:
                # The first peer in the file wins, as the scan of the peers did.
                self._peer_by_gateway.setdefault(peer.remote_gateway, peer)
            elif peer.dynamic and peer.act_as != "initiator":
                self._dynamic_peers.append(peer)
        for name, address in list(self.resolved.items()):
            peer = self.settings.peers.get(name)
            if peer is None or peer.gateway_kind != settings_.GATEWAY_NAME:
                del self.resolved[name]
            else:
                # Fixed addresses first: a name that resolves to one cannot take it over.
                self._peer_by_gateway.setdefault(address, peer)
        # Which connection an ACQUIRE's (src, dst) falls into: per prefix length of remote_net,
        # the masked network -> its connections in file order (a dict lookup per length, not
        # a scan of every connection per acquire).
        self._by_remote_net = {}
        for order, conn in enumerate(self.settings.connections.values()):
            try:
                base, prefix = addresses.parse_net(conn.remote_net)
            except ValueError:
                continue
            key = int.from_bytes(base, "big") & _mask(prefix)
            self._by_remote_net.setdefault(prefix, {}).setdefault(key, []).append((order, conn))

    def connections_of(self, peer_name):
        """The peer's connections in the file's order (settings.connections_of, indexed)."""
        return self._connections_by_peer.get(peer_name, [])

    def dynamic_peers(self):
        """Peers with remote_gateway "%any" that may answer, in the file's order (dynamic.py)."""
        return self._dynamic_peers

    def gateway_address(self, peer):
        """Where the peer is now: its configured address, what its DNS name resolved to, or (a
        dynamic peer) the address of its newest established IKE SA; None when unknown."""
        if peer.gateway_kind == settings_.GATEWAY_ADDRESS:
            return peer.remote_gateway
        if peer.gateway_kind == settings_.GATEWAY_NAME:
            return self.resolved.get(peer.name)
        sa = self._established_sa(peer.name)
        return sa.remote[0] if sa is not None else None

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
        deadlines = []
        for owner in list(self.ike_sas.values()) + list(self.groups.values()) + [self.admission]:
            d = _deadline_of(owner)
            if d is not None:
                deadlines.append(d)
        return min(deadlines) if deadlines else None

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
        self._now = now
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
            self._admission_log(now)
        sas = sorted([o for o in due if not isinstance(o, _ChildGroup)], key=_serial)
        groups = sorted([o for o in due if isinstance(o, _ChildGroup)], key=_serial)
        for sa in sas:
            if sa.id not in self.ike_sas:
                continue
            if sa.quiet_stall and sa.only_first and sa.stall_at <= now:
                # Made under pressure and never heard from again: a spoofed source, most likely.
                self.admission.expired_quietly += 1
                self._forget_ike_sa(sa, now)
                continue
            phase1.on_timer(sa, now)
            for qm in list(sa.quick_modes.values()):
                qm.on_timer(now)
            if sa.dpd is not None and sa.established and sa.dpd.deadline() <= now:
                if sa.dpd.on_timer(now):
                    self._peer_dead(sa, now)
                    continue
            if sa.remove_at is not None and sa.remove_at <= now:
                reason = "replaced by %s" % sa.rekeyed_by if sa.rekeyed_by else "negotiation failed"
                self.remove_ike_sa(sa, now, reason, notify_peer=sa.established)
                if not sa.machine.established:
                    self._retry(sa, now)
                continue
            if sa.expire_at is not None and sa.expire_at <= now:
                self.remove_ike_sa(sa, now, "lifetime expired", notify_peer=True)
                continue
            if sa.rekey_at is not None and sa.rekey_at <= now:
                sa.rekey_at = None
                if sa.established and sa.rekeyed_by is None and sa.peer.act_as != "responder":
                    self._rekey_ike(sa, now)
        for group in groups:
            if group.removed:
                continue
            if group.install_at is not None and group.install_at <= now:
                deferred, group.deferred, group.install_at = group.deferred, [], None
                for child in deferred:
                    self.emit(InstallChildSa(child))
            if group.expire_at <= now:
                self._delete_group(group, now, "lifetime expired", notify_peer=True)
            elif (not group.replaced and not group.rekeying and group.rekey_at is not None
                  and group.rekey_at <= now):
                self._rekey_group(group, now)

    def receive_datagram(self, data, local, remote, now):
        """One UDP payload from remote (ip, port) to local (ip, port)."""
        self.counters["datagrams"] += 1
        self._now = now
        try:
            self._receive(data, local, remote, now)
        except Exception as exc:           # noqa: BLE001 - the core must survive any datagram
            self._internal_error(remote[0], "handling a datagram from %s" % remote[0], exc)

    def _internal_error(self, key, what, exc):
        """A bug met by some input: count it, log it once, keep serving everyone else."""
        self.counters["internal_errors"] = self.counters.get("internal_errors", 0) + 1
        self._log_once((key, 0), "internal-%s" % type(exc).__name__, "error",
                       "internal error while %s: %s: %s" % (what, type(exc).__name__, exc))

    def _receive(self, data, local, remote, now):
        data = bytes(data)
        if local[1] == C.NATT_PORT or remote[1] == C.NATT_PORT:
            if data == NATT_KEEPALIVE:
                return
            if data[:4] != NON_ESP_MARKER:
                return               # ESP-in-UDP is the kernel's, not ours
            data = data[4:]
        try:
            header = codec.decode_header(data)
        except codec.MalformedMessage as exc:
            self.malformed(remote, exc, None)
            return
        if header.next_payload == C.PT_FRAGMENT:      # IKE fragmentation: fragments.py
            data = self._reassemble(header, data, remote, now)
            if data is None:
                return
            header = codec.decode_header(data)    # _reassemble checked it
        sa = self._find(header)
        if sa is not None:
            self.touch(sa)
        if sa is None:
            if header.exchange in (C.EXCHANGE_MAIN, C.EXCHANGE_AGGRESSIVE) and \
                    header.rcookie == ZERO_COOKIE:
                self._respond(header, data, local, remote, now)
            else:
                self.counters["unknown_sa"] += 1
                self._log_once(remote, "unknown-sa", "warning",
                               "ignored a %s message from %s for an unknown IKE SA" % (
                                   C.name(C.EXCHANGE_NAMES, header.exchange), remote[0]))
            return
        if sa.established and remote != sa.remote:
            if not dynamic.moved_and_proven(sa, header, data):
                return             # an established SA moves only for its authenticated peer
            dynamic.follow(self, sa, local, remote, now)
        elif remote[0] != sa.remote[0]:
            return
        if sa.established:
            dynamic.note_message_id(sa, header)
        if sa.only_first and data != sa.last_received and header.rcookie != ZERO_COOKIE:
            if (header.exchange == C.EXCHANGE_MAIN and not sa.dh_counted
                    and not self.admission.admit_dh(sa, now)):
                self._admission_log(now)
                return             # main mode message 3: its initiator sends it again
            sa.only_first = False  # the peer answered our message 2: a real initiator
            sa.quiet_stall = False
            self.admission.heard_more(sa)
            sa.stall_at = sa.created + ikesa.RESPONDER_PATIENCE_S
        if (sa.failed and not sa.initiator and header.rcookie == ZERO_COOKIE
                and data != sa.reply_to and data != sa.last_received
                and header.exchange in (C.EXCHANGE_MAIN, C.EXCHANGE_AGGRESSIVE)):
            # We refused a first message with these cookies and now a different one comes (the
            # peer changed its settings, or the refused one was forged): start over.
            self.remove_ike_sa(sa, now, "superseded by a new first message", notify_peer=False)
            self._respond(header, data, local, remote, now)
            return
        sa.remote = remote
        if sa.local[0] == "0.0.0.0" and local[0] != "0.0.0.0":
            # No local_address configured: the peer's answer tells us which address it reached,
            # in time for the NAT-D hashes (MM 3) and our ID (MM 5).
            sa.local = (local[0], sa.local[1])
        if local[1] == C.NATT_PORT:
            sa.local = local       # the peer floated to 4500 (RFC 3947 section 4): follow it
        if header.exchange in (C.EXCHANGE_MAIN, C.EXCHANGE_AGGRESSIVE):
            phase1.handle(sa, header, data, now)
        elif header.exchange == C.EXCHANGE_INFORMATIONAL:
            informational.receive(sa, header, data, now)
        elif header.exchange == C.EXCHANGE_QUICK:
            quickmode.receive(sa, header, data, now)
        else:
            self._log_once(remote, "exchange-%d" % header.exchange, "warning",
                           "ignored an unsupported %s exchange from %s" % (
                               C.name(C.EXCHANGE_NAMES, header.exchange), remote[0]))
            informational.send_notify(sa, C.UNSUPPORTED_EXCHANGE_TYPE, now)

    def _reassemble(self, header, data, remote, now):
        """The whole message once this fragment completes it, else None (held, or refused:
        malformed ones are diagnosed as any malformed message, bounds log once themselves)."""
        try:
            return self.fragments.receive(header, data, remote, now)
        except codec.MalformedMessage as exc:
            self.malformed(remote, exc, None)
        except fragments.Dropped:
            pass
        return None

    def initiate(self, connection_name, now):
        """ikectl up / act_as initiator at start: bring this connection's tunnel up."""
        conn = self.settings.connections.get(connection_name)
        if conn is None:
            raise KeyError("no connection named %r" % (connection_name,))
        peer = self.settings.peers[conn.peer]
        if any(g for g in self.groups_of(conn.peer) if g.connection == conn.name
               and not g.replaced):
            return
        sa = self._established_sa(peer.name)
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
        try:
            dst = int.from_bytes(addresses.ip_bytes(dst_ip), "big")
        except ValueError:
            return None
        best = None
        for prefix, nets in self._by_remote_net.items():
            for order, conn in nets.get(dst & _mask(prefix), ()):
                if best is not None and order >= best[0]:
                    break
                try:
                    if addresses.net_contains(conn.local_net, src_ip):
                        best = (order, conn)
                        break
                except ValueError:
                    continue
        return best[1] if best is not None else None

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
        group = self._group_of_child.get(self._child_by_key.get((protocol, spi, dst)))
        if group is None:
            return
        if hard:
            self._delete_group(group, now, "hard lifetime reached", notify_peer=True)
        elif not group.replaced and not group.rekeying:
            self._rekey_group(group, now)

    def delete(self, sa_id, now):
        """The page's Delete / ikectl delete: an IKE SA id or a child SA id."""
        self._touch_all()          # rare and administrative: no need to track what moved
        sa = self.ike_sas.get(sa_id)
        if sa is not None:
            self.remove_ike_sa(sa, now, "deleted by the administrator", notify_peer=True)
            return True
        group = self._group_of_child.get(sa_id)
        if group is not None:
            self._delete_group(group, now, "deleted by the administrator", notify_peer=True)
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
        if old is not None and self._peer_by_gateway.get(old) is peer:
            del self._peer_by_gateway[old]
        if address is None:
            self.resolved.pop(peer_name, None)
            if any(sa.failed and sa.remote[0] == peer.remote_gateway
                   for sa in self.sas_of(peer_name)):
                return                   # already listed with this diagnosis
            sa = self._new_ike(peer, peer.phase1_mode, states.INITIATOR, self.crypto.random(8),
                               (peer.local_address or "0.0.0.0", C.IKE_PORT),
                               (peer.remote_gateway, C.IKE_PORT), now)
            sa.fail("dns", error or "no IPv4 address", now)
            return
        self.resolved[peer_name] = address
        # Fixed addresses first: a name that resolves to one cannot take it over.
        self._peer_by_gateway.setdefault(address, peer)
        if old != address:
            self.emit(Log("info", peer_name, "%s resolves to %s%s" % (
                peer.remote_gateway, address, " (was %s)" % old if old else "")))
        if self.waiting.get(peer_name) and self._negotiating_sa(peer_name) is None:
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
        group = self._group_of_child.get(sa_id)
        if child is None or group is None:
            return self._early_install_failed(sa_id, reason, now)
        queued = self._events[self._event_pos:]
        pending = set(e.sa.id for e in queued
                      if isinstance(e, InstallChildSa) and e.sa.id in group.ids)
        self._events = [e for e in queued
                        if not (isinstance(e, InstallChildSa) and e.sa.id in pending)]
        self._event_pos = 0
        pending.add(sa_id)
        self._report_kernel_refusal(self.ike_sas.get(child.ike_sa), child, reason)
        self._delete_group(group, now, "the kernel could not install %s" % sa_id,
                           notify_peer=True, not_installed=pending)
        self._reinstate_replaced(group, now)
        return True

    def down(self, peer_name, now):
        """Tear down everything with this peer (deletes sent) and stop initiating to it."""
        self._touch_all()
        self.waiting.pop(peer_name, None)
        self.admission.forget_queued(peer_name)
        for group in list(self.groups_of(peer_name)):
            self._delete_group(group, now, "peer taken down", notify_peer=True)
        for sa in list(self.sas_of(peer_name)):
            self.remove_ike_sa(sa, now, "peer taken down", notify_peer=True)

    def reconfigure(self, settings, now):
        """New configuration: tunnels whose settings did not change stay up."""
        old = self.settings
        self.settings = settings
        self._index_settings()
        self._touch_all()
        for name, peer in old.peers.items():
            new = settings.peers.get(name)
            if new is None or _fingerprint(new) != _fingerprint(peer):
                self.learned.forget("peer", name)
                self.settings = old
                self.down(name, now)
                self.settings = settings
            else:
                for sa in self.ike_sas.values():
                    if sa.peer.name == name:
                        sa.peer = new
        for name, conn in old.connections.items():
            new = settings.connections.get(name)
            if new is None or _fingerprint(new) != _fingerprint(conn):
                self.learned.forget("connection", name)
                for group in [g for g in self.groups.values() if g.connection == name]:
                    self._delete_group(group, now, "connection reconfigured", notify_peer=True)
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

    # ===================================================================== for the exchanges
    def emit(self, event):
        self._events.append(event)

    def send(self, data, local, remote):
        if local[1] == C.NATT_PORT:
            data = NON_ESP_MARKER + data
        self._datagrams.append((data, local, remote))

    def send_raw(self, data, local, remote):
        """A datagram without the non-ESP marker (NAT keepalives)."""
        self._datagrams.append((data, local, remote))

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

    def malformed(self, remote, exc, sa):
        """Count every malformed message, log it once per peer and reason kind, never crash. A
        negotiation still in phase 1 hears PAYLOAD-MALFORMED (or the codec's notify) in clear,
        once: RFC 2408 section 5 lets us tell the peer, and more would only help an attacker."""
        self.counters["malformed"] += 1
        reason = getattr(exc, "reason", str(exc))
        notify = getattr(exc, "notify", C.PAYLOAD_MALFORMED)
        self._log_once(remote, "malformed-%s" % C.name(C.NOTIFY_NAMES, notify), "warning",
                       "malformed message from %s: %s" % (remote[0], reason))
        if sa is not None and sa.keys is None and not getattr(sa, "told_malformed", False):
            sa.told_malformed = True
            informational.send_notify(sa, notify, None)

    def ike_sa_by_spi(self, spi):
        for sa in self._by_icookie.get(spi[:8], ()):
            if sa.spi() == spi:
                return sa
        return None

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

    def _next_quick_mode(self, sa, now):
        """One of our quick modes on sa ended: the next waiting one starts (still configured)."""
        while sa.qm_waiting and not sa.deleted:
            conn, replaces = sa.qm_waiting.pop(0)
            if self.settings.connections.get(conn.name) is conn:
                self.start_quick_mode(sa, conn, now, replaces)
                return

    def ike_established(self, sa, initial_contact, now):
        peer = sa.peer
        self.negotiation_ended(sa, now)
        if initial_contact:
            # RFC 2407 4.6.3.3: the peer has no state from before this negotiation began: drop
            # ours from before then (no deletes sent). SAs that came up meanwhile stay: both
            # sides may have initiated at once, each with INITIAL-CONTACT.
            for group in [g for g in self.groups_of(peer.name) if g.created < sa.created]:
                self._delete_group(group, now, "peer sent INITIAL-CONTACT", notify_peer=False)
            for other in [s for s in self.sas_of(peer.name) if s is not sa
                          and s.established_at is not None and s.established_at < sa.created]:
                self.remove_ike_sa(other, now, "peer sent INITIAL-CONTACT", notify_peer=False)
        if peer.dpd_delay_s and sa.peer_dpd:
            sa.dpd = informational.Dpd(sa, peer.dpd_delay_s, peer.dpd_timeout_s, now)
        self.touch(sa)
        renewal = False
        if not sa.initiator:
            self._learn_from_peer_ike_rekey(sa)
        for old in self.sas_of(peer.name):      # a renewal is always with the same peer
            if old.rekeyed_by == sa.id:
                old.remove_at = now + REPLACED_IKE_KEEP_S
                self.touch(old)
                renewal = True
        self.emit(Notice("ike-up", peer.name, {"ike_sa": sa.id, "renewal": renewal}))
        queue = self.waiting.pop(peer.name, [])
        for name, replaces in queue:
            conn = self.settings.connections.get(name)
            if conn is not None:
                self.start_quick_mode(sa, conn, now, replaces)

    def children_established(self, qm, children, now):
        self._deliver_children(qm, children, now)
        if qm.initiator:
            self._next_quick_mode(qm.sa, now)

    def _deliver_children(self, qm, children, now):
        conn = qm.connection
        renewal = False
        for group in self.groups_of(qm.sa.peer.name):
            # The tunnel's older SAs age out at their own lifetime (the page shows 4 for a while).
            if group.connection == conn.name:
                group.replaced = True
                renewal = True
                if not qm.initiator:
                    self._learn_from_peer_child_rekey(qm, group)
                self.touch(group)
        if qm.sa.error_connection == conn.name:
            qm.sa.last_error = None        # that connection's tunnel works now
            qm.sa.error_connection = None
        rekey_at = now + ikesa.rekey_after(qm.lifetime_s, qm.initiator, self.crypto)
        group = _ChildGroup([c.id for c in children], conn.name, qm.sa.peer.name, qm.initiator,
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

    def install_before_hash3(self, qm, inbound):
        """A quick mode responder's inbound SAs, installed when message 2 goes out (see
        QuickMode.handle_request); children_established() does not install them again, and a
        quick mode that fails before HASH(3) takes them out (_withdraw_early)."""
        for child in inbound:
            qm.early.append(child.id)
            self.emit(InstallChildSa(child))

    def _early_install_failed(self, sa_id, reason, now):
        """install_failed() for an inbound SA a quick mode responder installed before HASH(3):
        the exchange fails (its other early SAs are withdrawn, HASH(3) will be ignored) and the
        peer, which installs its pair on our message 2, hears a Delete of our inbound SPIs."""
        for sa in self.ike_sas.values():
            for qm in sa.quick_modes.values():
                if sa_id not in qm.early:
                    continue
                child = [c for c in qm.children if c.id == sa_id][0]
                self._report_kernel_refusal(sa, child, reason)
                qm.early.remove(sa_id)           # never in the kernel: nothing to delete there
                self._spis.discard((child.protocol, child.spi))
                qm.abandon(now)                  # the others go; the peer hears a Delete
                return True
        return False

    def _report_kernel_refusal(self, sa, child, reason):
        """The one diagnosis line for an SA the kernel refused: the VPN log and (sa given) the
        IKE SA's last_error."""
        line = diagnosis.kernel_install_line(child.protocol, child.spi, child.direction, reason,
                                             child.connection, child.dst if child.direction ==
                                             "out" else child.src)
        if sa is not None:
            sa.last_error = line
            sa.error_connection = child.connection
        self.emit(Log("error", child.peer, line))

    def _withdraw_early(self, qm, reason, now, notify_peer=False):
        """Take a failed exchange's early inbound SAs out of the kernel; notify_peer: a Delete
        of those SPIs tells the initiator (which installed its pair on our message 2) to drop it."""
        for child in qm.children or ():
            if child.id in qm.early:
                self._spis.discard((child.protocol, child.spi))
                self.emit(DeleteChildSa(child, reason))
        if notify_peer and qm.children:
            self._send_delete_of_inbound(qm.sa, qm.children, now)
        qm.early = []
        qm.children = None            # their keys: not kept by a failed exchange

    def _send_delete_of_inbound(self, sa, children, now):
        for proto, pid in (("esp", C.PROTO_IPSEC_ESP), ("ah", C.PROTO_IPSEC_AH)):
            informational.send_delete_children(sa, pid, [
                c.spi.to_bytes(4, "big") for c in children
                if c.protocol == proto and c.direction == "in"], now)

    def quick_mode_failed(self, qm, now):
        self._withdraw_early(qm, "quick mode failed before HASH(3)", now, notify_peer=True)
        for group in self.groups_of(qm.sa.peer.name):
            if group.ids and group.ids[0] in qm.replaces:
                group.rekeying = False
                self.touch(group)
        if qm.initiator:
            self._next_quick_mode(qm.sa, now)

    def peer_refused_quick_mode(self, sa, notify_type, now):
        """An authenticated error notify on an established SA: it answers our latest pending
        quick mode (IKEv1 notifies do not name the exchange they refuse)."""
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

    def peer_deleted_child(self, sa, protocol, spi, now):
        """A Delete of an ESP/AH SPI from the peer. RFC 2408 has the deleting side name its
        inbound SPI (our outbound SA); charon, when its kernel refused its half of a pair, names
        the SPI it received from us (our inbound SA; its own half never existed). Either way the
        pair goes: outbound first, our inbound SPIs as the fallback. -> True when one matched."""
        for direction in ("out", "in"):
            group = self._group_with_spi(sa.peer.name, protocol, direction, spi)
            if group is not None:
                child = self.children.get(group.ids[0])
                learned = child and self.learned.from_delete(
                    "connection", group.connection, now - group.created, child.lifetime_s)
                if learned:
                    sa.log("info", "the peer deleted the SAs of %s after %d s, before our "
                           "lifetime of %d s: taking %d s as its lifetime from now on" % (
                               group.connection, learned, child.lifetime_s, learned))
                self._delete_group(group, now, "deleted by the peer", notify_peer=False)
                return True
        self._log_once(sa.remote, "delete-%s-%08x" % (protocol, spi), "info",
                       "delete from %s names unknown %s SPI 0x%08x" % (
                           sa.remote[0], protocol.upper(), spi))
        return False

    def peer_deleted_ike(self, target, now):
        """The peer's Delete of one of its IKE SAs with us (maybe an early end: lifetime.py)."""
        if target.established_at is not None:
            learned = self.learned.from_delete("peer", target.peer.name,
                                               now - target.established_at, target.lifetime_s)
            if learned:
                target.log("info", "the peer deleted IKE SA %s after %d s, before our lifetime "
                           "of %d s: taking %d s as its lifetime from now on" % (
                               target.id, learned, target.lifetime_s, learned))
        target.log("info", "peer %s deleted IKE SA %s" % (target.remote[0], target.id))
        self.remove_ike_sa(target, now, "deleted by the peer", notify_peer=False)

    def _learn_from_peer_ike_rekey(self, sa):
        """The peer started this IKE SA while older ones are up: a renewal offering its own
        lifetime, which the older ones lived by too (lifetime.py)."""
        for old in self.sas_of(sa.peer.name):
            if old is sa or old.established_at is None or not old.established:
                continue
            note = self.learned.from_rekey("peer", sa.peer.name, sa.lifetime_s, old.lifetime_s)
            if note is None:
                continue
            old.log("info", "the peer renewed IKE SA %s as %s with a lifetime of %d s, shorter "
                    "than its %d s: the peer's lifetime is in force" % (
                        old.id, sa.id, sa.lifetime_s, old.lifetime_s))
            old.lifetime_note, old.lifetime_s = note, sa.lifetime_s
            old.expire_at = min(old.expire_at, old.established_at + sa.lifetime_s)
            self.touch(old)

    def _learn_from_peer_child_rekey(self, qm, group):
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

    def _group_with_spi(self, peer_name, protocol, direction, spi):
        for group in self.groups_of(peer_name):
            for cid in group.ids:
                child = self.children.get(cid)
                if (child and child.peer == peer_name and child.protocol == protocol
                        and child.direction == direction and child.spi == spi):
                    return group
        return None

    def remove_ike_sa(self, sa, now, reason, notify_peer):
        if sa.id not in self.ike_sas:
            return
        if notify_peer and sa.established:
            informational.send_delete_ike(sa, now)
        if sa.established_at is not None:
            self.emit(Notice("ike-down", sa.peer.name, {"ike_sa": sa.id, "reason": reason}))
        self._forget_ike_sa(sa, now)
        self.emit(Log("info", sa.peer.name, "IKE SA %s with %s removed: %s" % (
            sa.id, sa.remote[0], reason)))
        self.emit(IkeSaChanged(sa.id, "Idle", states.IDLE_NUMBER))
        self.negotiation_ended(sa, now)

    def _forget_ike_sa(self, sa, now):
        """Take the SA out of every table (remove_ike_sa without the delete, the log and the
        notices: also how a half-open SA of a spray goes)."""
        self.admission.closed(sa)
        sa.deleted = True
        del self.ike_sas[sa.id]
        self.touch(sa)             # drops its timer entry
        for qm in sa.quick_modes.values():
            self._withdraw_early(qm, "IKE SA %s removed before HASH(3)" % sa.id, now)
        same = self._by_icookie.get(sa.icookie, [])
        if sa in same:
            same.remove(sa)
        if not same:
            self._by_icookie.pop(sa.icookie, None)
        same_peer = self._peer_sas.get(sa.peer.name, [])
        if sa in same_peer:
            same_peer.remove(sa)
        if not same_peer:
            self._peer_sas.pop(sa.peer.name, None)
        heir = self._established_sa(sa.peer.name)
        if heir is not None:
            waiting, sa.qm_waiting = sa.qm_waiting, []
            for conn, replaces in waiting:       # its successor negotiates them
                if self.settings.connections.get(conn.name) is conn:
                    self.start_quick_mode(heir, conn, now, replaces)
            for group in self.groups_of(sa.peer.name):
                for cid in group.ids:
                    child = self.children.get(cid)
                    if child is not None and child.ike_sa == sa.id:
                        child.ike_sa = heir.id

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
                    and self._negotiating_sa(name) is None):
                self._start_ike(peer, now)

    # ===================================================================== internals
    def sas_of(self, peer_name):
        """The peer's IKE SAs, oldest first (status.py reads them)."""
        return self._peer_sas.get(peer_name, ())

    def groups_of(self, peer_name):
        """The peer's child SA groups (one per quick mode), oldest first."""
        return self._peer_groups.get(peer_name, ())

    def _log_once(self, remote, kind, level, text):
        """One line per (address, kind) and LOG_ONCE_WINDOW_S. Past LOG_ONCE_KEYS of them in
        a window (a spray from spoofed sources) the rest are counted, and the count is one line
        when the window closes: the log never grows with the attacker's sources."""
        now = self._now
        if now - self._log_once_since >= LOG_ONCE_WINDOW_S:
            if self._log_once_dropped:
                self.emit(Log("warning", None, "%d more messages from other sources were not "
                              "logged in the last %d s (malformed, for an unknown SA or from an "
                              "address with no peer)" % (self._log_once_dropped,
                                                         int(now - self._log_once_since))))
            self._malformed_seen = set()
            self._log_once_since = now
            self._log_once_dropped = 0
        key = (remote[0], kind)
        if key in self._malformed_seen:
            return
        if len(self._malformed_seen) >= LOG_ONCE_KEYS:
            self._log_once_dropped += 1
            return
        self._malformed_seen.add(key)
        self.emit(Log(level, self._peer_name(remote[0]), text))

    def _admission_log(self, now):
        """The admission bounds' episode lines: its start once, its end with the counts."""
        line = self.admission.take_first_line()
        if line is not None:
            self.emit(Log("warning", None, line))
        line = self.admission.end_episode(now)
        if line is not None:
            self.emit(Log("warning", None, line))
        self.touch(self.admission)

    def _peer_name(self, address):
        peer = self._peer_by_gateway.get(address)
        return peer.name if peer is not None else None

    def _find(self, header):
        fallback = None
        for sa in self._by_icookie.get(header.icookie, ()):
            if sa.rcookie == header.rcookie:
                return sa
            if header.rcookie == ZERO_COOKIE or sa.rcookie == ZERO_COOKIE:
                fallback = sa
        return fallback

    def _new_ike(self, peer, mode, role, icookie, local, remote, now):
        sa_id = "ike-%d" % self._next_ike
        self._next_ike += 1
        sa = ikesa.IkeSa(self, sa_id, peer, mode, role, icookie, local, remote, now)
        sa.lifetime_s, sa.lifetime_note = self.learned.in_force("peer", peer.name,
                                                                peer.lifetime_s)
        sa.serial = self._next_ike
        self.touch(sa)
        sa.initial_contact = self._established_sa(peer.name) is None
        self.ike_sas[sa_id] = sa
        self._peer_sas.setdefault(peer.name, []).append(sa)
        self._by_icookie.setdefault(icookie, []).append(sa)
        return sa

    def rebind(self, sa, peer, renegotiate):
        """The responder SA turns out to be with another (dynamic) peer (dynamic.refine): it
        moves to that peer's tables. renegotiate: nothing is agreed yet (aggressive mode message
        1), so the new peer's authentication method, lifetime and NAT-T setting apply."""
        same = self._peer_sas.get(sa.peer.name, [])
        if sa in same:
            same.remove(sa)
        if not same:
            self._peer_sas.pop(sa.peer.name, None)
        sa.peer = peer
        self._peer_sas.setdefault(peer.name, []).append(sa)
        sa.initial_contact = self._established_sa(peer.name) is None
        if renegotiate:
            sa.auth = peer.auth
            sa.lifetime_s, sa.lifetime_note = self.learned.in_force("peer", peer.name,
                                                                    peer.lifetime_s)
            sa.natt.enabled = bool(peer.nat_t)
        self.touch(sa)

    def rekey_child_address(self, child, sa):
        """A child SA's outer addresses and ESP-in-UDP ports from its IKE SA's (after the peer
        moved: dynamic.follow), with its kernel key (protocol, spi, dst) re-indexed."""
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

    def _respond(self, header, data, local, remote, now):
        mode = states.MAIN if header.exchange == C.EXCHANGE_MAIN else states.AGGRESSIVE
        peer = self._peer_by_gateway.get(remote[0])
        provisional = peer is None
        if provisional:
            peer = dynamic.first_message_peer(self, mode, data)
        if peer is None:
            self._log_once(remote, "no-peer", "warning",
                           "ignored IKE from %s: no peer configured for this address" % remote[0])
            return
        if peer.act_as == "initiator":
            self._log_once(remote, "act-as", "warning",
                           "ignored IKE from %s: peer %s acts as initiator only" % (
                               remote[0], peer.name))
            return
        computes_dh = mode == states.AGGRESSIVE == peer.phase1_mode   # our answer needs it
        victim = self.admission.room_for(remote[0], computes_dh, now)
        if victim is not None:          # the oldest main mode SA that heard only message 1
            self._forget_ike_sa(victim, now)
            self._admission_log(now)
        refusal = self.admission.admit_first_message(remote[0], computes_dh, now)
        if refusal is not None:
            self._admission_log(now)
            return
        # The page shows our configured mode: with a mode mismatch the negotiation stops at
        # "1st msg received" of that mode's table.
        sa = self._new_ike(peer, peer.phase1_mode, states.RESPONDER, header.icookie, local,
                           remote, now)
        self.admission.opened_responder(sa, computes_dh)
        sa.provisional = provisional     # dynamic.refine() settles the peer by its ID
        sa.only_first = True
        sa.rcookie = self.crypto.random(8)
        sa.feed(states.RECEIVED, now)
        sa.heard_from_peer = True
        if mode != peer.phase1_mode:
            sa.last_received = sa.current_input = data
            sa.fail("mode", "the peer started %s mode, we are set to %s mode" % (
                mode, peer.phase1_mode), now)
            sa.notify_clear(C.INVALID_EXCHANGE_TYPE)
        else:
            phase1.handle(sa, header, data, now)
        self._quiet_first_only(now)

    def _quiet_first_only(self, now):
        """Under pressure: every responder SA that heard only message 1 (refused or answered)
        goes quietly after PRESSURE_PATIENCE_S, and sends nothing more until then."""
        for quiet in self.admission.to_quiet():
            quiet.quiet_stall = True
            quiet.stall_at = min(quiet.stall_at, now + admission_.PRESSURE_PATIENCE_S)
            if quiet.remove_at is not None:
                quiet.remove_at = min(quiet.remove_at, quiet.stall_at)
            quiet.pending = None     # no retransmissions to what is most likely a forged source
            self.touch(quiet)

    def _established_sa(self, peer_name):
        """The newest established, not yet replaced IKE SA with this peer."""
        found = None
        for sa in self.sas_of(peer_name):
            if sa.established and sa.rekeyed_by is None:
                found = sa
        return found

    def _negotiating_sa(self, peer_name):
        for sa in self.sas_of(peer_name):
            if not sa.machine.established and not sa.failed:
                return sa
        return None

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
        if self._negotiating_sa(peer.name) is not None or self.admission.is_queued(peer.name):
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
        sa = self._new_ike(peer, peer.phase1_mode, states.INITIATOR, self.crypto.random(8),
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
        sa = self._established_sa(peer.name)
        if sa is not None:
            self.start_quick_mode(sa, conn, now, replaces=list(group.ids))
        elif peer.act_as != "responder":
            self._wait_for_phase1(peer, conn.name, list(group.ids), now)

    def _delete_group(self, group, now, reason, notify_peer, not_installed=()):
        """Remove one quick mode's SAs; not_installed: ids the kernel never got (no
        DeleteChildSa for them)."""
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
        sa = self._established_sa(group.peer)
        if sa is not None:
            self.touch(sa)
        if notify_peer and sa is not None:
            self._send_delete_of_inbound(sa, children, now)
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

    def _reinstate_replaced(self, failed, now):
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

    def _peer_dead(self, sa, now):
        peer = sa.peer
        sa.fail("dead_peer", "no R-U-THERE-ACK for %d s" % peer.dpd_timeout_s, now, keep=False)
        conns = sorted(set(g.connection for g in self.groups_of(peer.name)))
        for group in list(self.groups_of(peer.name)):
            self._delete_group(group, now, "dead peer", notify_peer=False)
        for other in list(self.sas_of(peer.name)):
            self.remove_ike_sa(other, now, "dead peer", notify_peer=False)
        if sa.initiator and peer.act_as != "responder":
            for name in conns:
                self._wait_for_phase1(peer, name, [], now)


def _deadline_of(owner):
    """The next time an IKE SA, a child group or the admission bounds (the end of a refusal
    episode) need handle_timer; None: never (or removed)."""
    if isinstance(owner, (_ChildGroup, admission_.Admission)):
        return owner.deadline()
    if owner.deleted:
        return None
    found = owner.deadlines()
    return min(found) if found else None


def _mask(prefix):
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0


def _serial(owner):
    return owner.serial


def _fingerprint(obj):
    """The settings of a peer or connection as comparable text (proposals by name)."""
    parts = []
    for name in obj.__slots__:
        value = getattr(obj, name)
        if isinstance(value, list):
            value = [getattr(v, "name", v) for v in value]
        parts.append(repr(value))
    return "|".join(parts)
