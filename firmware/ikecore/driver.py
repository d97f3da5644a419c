"""The asyncio driver: sockets, one timer and the kernel around the sans-IO core (CPython only).

Shape after aioquic's asyncio protocol: every input (a datagram, the timer, a control request, a
kernel acquire/expire) is handed to the core with `now`, then `_pump` sends every queued
datagram, acts on every queued event and re-arms the ONE timer from `core.get_timer()`.
`now` is the loop's monotonic clock (`loop.time()`), so core deadlines feed `call_at` directly.

UDP sockets are bound to the wildcard address (or to the peers' local addresses when all have
one) with IP_PKTINFO, so each datagram's local address is known and replies leave from the
address the peer talked to. Port 4500 gets UDP_ENCAP_ESPINUDP so the kernel takes ESP-in-UDP and
hands us only IKE (with its 4-byte non-ESP marker, which the core strips and adds with
natt.py's helpers, the one implementation of that framing).
"""
import asyncio
import itertools
import os
import socket
import struct
import time

from ikecore import config, crl_fetch, heap
from ikecore.protocol import events, fragments, natt
from ikecore.protocol import settings as S
from ikecore.config import ConfigError
from ikecore.kernel import sa_key as kernel_key

IP_PKTINFO = 8                 # <linux/in.h>; the socket module does not export these
IP_FREEBIND = 15               # bind before the WAN address exists (boot, DHCP)
UDP_ENCAP = 100                # <linux/udp.h>
UDP_ENCAP_ESPINUDP = 2
MAX_DATAGRAM = 65535
IKE_PORT, NATT_PORT = 500, 4500  # what the core sees; --ports only moves the real sockets
# Written by the NTP client's hook (rootfs-overlay/etc/init.d/S45ntpd) once the clock is set;
# until then certificate dates are not enforced (a board without a battery starts in 1970).
CLOCK_SYNCED_FILE = os.environ.get("IKECORE_CLOCK_SYNCED", "/run/ikecore/clock-synced")
TRUST_REFRESH_S = 10           # look at the clock stamp and the CRL files at most this often
ROUTE_REFRESH_S = 10           # re-learn our source address per peer at most this often on timers
PAGE_LIMIT_MAX = 1000          # peers in one page of the status
ROUTE_REFRESH_BATCH = 200      # peers whose route is looked up again per refresh
MAX_BOUND_ADDRESSES = 32       # beyond this many local addresses, one wildcard socket per port
PEER_NAMES_IN_ERRORS = 20      # "unknown peer X (peers: ...)" names at most this many
RESOLVE_TIMEOUT_S = 10         # a DNS-named gateway's lookup gives up after this long


class UdpEndpoint:
    """One non-blocking UDP socket read through loop.add_reader (recvmsg for IP_PKTINFO)."""

    def __init__(self, loop, address, port, on_datagram, encap=False, core_port=None):
        self.loop = loop
        self.port = port
        self.core_port = core_port or port
        self.on_datagram = on_datagram
        self.encap_error = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            self.sock.setsockopt(socket.IPPROTO_IP, IP_FREEBIND, 1)
            if encap:
                try:
                    self.sock.setsockopt(socket.IPPROTO_UDP, UDP_ENCAP, UDP_ENCAP_ESPINUDP)
                except OSError as exc:     # a kernel without XFRM: IKE on 4500 still works
                    self.encap_error = exc.strerror
            self.sock.bind((address, port))
            self.sock.setblocking(False)
        except OSError:
            self.sock.close()
            raise
        loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self):
        while True:
            try:
                data, ancillary, _flags, remote = self.sock.recvmsg(
                    MAX_DATAGRAM, socket.CMSG_SPACE(12))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return             # ICMP errors surface here on Linux; the core's retransmits cope
            local_ip = self.sock.getsockname()[0]
            for level, kind, value in ancillary:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= 12:
                    local_ip = socket.inet_ntoa(value[8:12])     # ipi_addr: the header's dst
            self.on_datagram(data, (local_ip, self.core_port), remote[:2])

    def send(self, data, source_ip, remote):
        ancillary = []
        if source_ip and source_ip != "0.0.0.0":
            # in_pktinfo {ifindex, spec_dst, addr}: spec_dst picks our source address.
            ancillary = [(socket.IPPROTO_IP, IP_PKTINFO,
                          struct.pack("=i4s4s", 0, socket.inet_aton(source_ip), b"\0" * 4))]
        self.sock.sendmsg([data], ancillary, 0, tuple(remote))

    def close(self):
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


class Driver:
    """Owns the core, the sockets, the timer and the kernel backend of one daemon. The core is
    anything implementing ikecore.protocol.api.CoreApi (IkeCore; the tests' stand-in)."""

    def __init__(self, core, settings, backend, log, config_path=None, ports=(500, 4500),
                 loop=None, load_config=None):
        self.core = core
        self.settings = settings
        self.backend = backend
        self.log = log
        self.config_path = config_path
        self.ike_port, self.natt_port = ports
        self.loop = loop or asyncio.get_running_loop()
        self.load_config = load_config          # path, warnings -> Settings (config.load)
        self.endpoints = {}                     # (address, port) -> UdpEndpoint
        self.timer = None
        self.timer_at = None
        self.policies = {}                      # connection name -> reqid installed
        self.policy_gateways = {}               # connection name -> remote gateway they carry
        self.resolving = set()                  # asyncio tasks resolving gateway names
        self.counters = {"datagrams_in": 0, "datagrams_out": 0, "send_errors": 0,
                         "rejected_datagrams": 0, "kernel_errors": 0}
        self.stopped = False
        self.routes_learned_at = None
        self._route_cursor = 0
        self.connections_by_peer = _connections_by_peer(settings)
        self.on_notice = None                   # events.Notice -> None (the control socket's)
        self.trust_checked_at = None
        self.crl_mtimes = {}                    # (peer, CRL path) -> mtime of the copy it holds
        self.crls_configured = {}               # peer name -> DER of its `crls` files
        self.crl_fetcher = None                 # crl_fetch.CrlFetcher once a peer fetches
        self._adopt_crls(settings)
        backend.on_acquire = self.acquire
        backend.on_expire = self.expire

    # --- life cycle
    def now(self):
        return self.loop.time()

    async def start(self):
        await self.backend.start(self.loop)
        self._kernel("flush", self.backend.flush)
        self._open_endpoints()
        self._install_trap_policies()
        self._resolve_trap_gateways()
        now = self.now()
        self._learn_source_addresses(now, everyone=True)
        self._refresh_trust(now)
        self._follow_distribution_points()
        if self.core.wall_offset is None:
            self.log.warning("clock not synchronized (no NTP answer yet): certificate dates "
                             "are not enforced until it is")
        for connection in self.settings.connections.values():
            if self.settings.peers[connection.peer].act_as == "initiator":
                self._initiate(connection.name, now)
        self._pump()

    def _initiate(self, connection_name, now):
        try:
            self.core.initiate(connection_name, now)
        except Exception as exc:           # one connection's failure must not stop the rest
            self.log.error("cannot bring %s up: %s: %s"
                           % (connection_name, type(exc).__name__, exc))

    async def stop(self):
        """Tell every peer we are going (deletes), then clear the kernel and close."""
        if self.stopped:
            return
        now = self.now()
        for name in list(self.settings.peers):
            try:
                self.core.down(name, now)
            except Exception as exc:       # a core bug must not keep stale SAs in the kernel
                self.log.error("shutdown: could not bring %s down: %s" % (name, exc))
        self._pump()
        self.stopped = True
        for task in list(self.resolving):
            task.cancel()
        if self.crl_fetcher is not None:
            self.crl_fetcher.stop()
        if self.timer is not None:
            self.timer.cancel()
        self._kernel("flush", self.backend.flush)
        for endpoint in self.endpoints.values():
            endpoint.close()
        self.endpoints = {}
        self.backend.close()

    def _bind_addresses(self):
        """The peers' local addresses when all have one and they are few (two daemons may then
        share a host), else the wildcard: IP_PKTINFO tells and picks the address per datagram,
        and 10,000 peers on their own addresses must not need 20,000 sockets."""
        addresses = set(peer.local_address for peer in self.settings.peers.values())
        if addresses and None not in addresses and "" not in addresses \
                and len(addresses) <= MAX_BOUND_ADDRESSES:
            return sorted(addresses)
        return ["0.0.0.0"]

    def _open_endpoints(self):
        wanted = set()
        nat_t = any(peer.nat_t for peer in self.settings.peers.values())
        for address in self._bind_addresses():
            wanted.add((address, self.ike_port))
            if nat_t:
                wanted.add((address, self.natt_port))
        for key in sorted(set(self.endpoints) - wanted):
            self.endpoints.pop(key).close()
        for address, port in sorted(wanted - set(self.endpoints)):
            endpoint = UdpEndpoint(self.loop, address, port, self.datagram_received,
                                   encap=(port == self.natt_port),
                                   core_port=IKE_PORT if port == self.ike_port else NATT_PORT)
            if endpoint.encap_error:
                self.log.warning("UDP port %d: no ESP-in-UDP decapsulation (%s)"
                                 % (port, endpoint.encap_error))
            self.endpoints[(address, port)] = endpoint

    def _endpoint_for(self, local):
        address, port = local
        port = {IKE_PORT: self.ike_port, NATT_PORT: self.natt_port}.get(port, port)
        endpoint = self.endpoints.get((address, port)) or self.endpoints.get(("0.0.0.0", port))
        if endpoint is None:
            for (bound, bound_port), candidate in self.endpoints.items():
                if bound_port == port:
                    return candidate
        return endpoint

    # --- inputs
    def datagram_received(self, data, local, remote):
        if local[1] == NATT_PORT and natt.is_keepalive(data):
            return                 # NAT-keepalive (RFC 3948 2.3): only keeps the NAT mapping
        self.counters["datagrams_in"] += 1
        self._refresh_trust(self.now())
        try:
            self.core.receive_datagram(data, local, remote, self.now())
        except Exception as exc:
            # The core answers bad input itself; anything escaping it is still only one bad
            # datagram: count it, say so, keep serving everyone else.
            self.counters["rejected_datagrams"] += 1
            self.log.warning("dropped a datagram from %s:%d: %s" % (remote[0], remote[1], exc))
        self._pump()

    def _on_timer(self):
        self.timer = None
        self.timer_at = None
        now = self.now()
        if self.routes_learned_at is None or now - self.routes_learned_at >= ROUTE_REFRESH_S:
            self._learn_source_addresses(now)      # retries and rekeys start from the timer
        self._feed("timer", self.core.handle_timer, now)

    def acquire(self, src_ip, dst_ip):
        now = self.now()
        connection = self.core.connection_for_traffic(src_ip, dst_ip)
        if connection is not None:           # its peer's route now, not every peer's
            self._learn_source_address(self.settings.peers[connection.peer])
        self._feed("acquire", self.core.acquire, src_ip, dst_ip, now)

    def _refresh_trust(self, now):
        """Tell the core the wall clock once NTP has set it, and reload CRL files that changed
        (the core never reads a clock or a file)."""
        if self.trust_checked_at is not None and now - self.trust_checked_at < TRUST_REFRESH_S:
            return
        self.trust_checked_at = now
        if self.core.wall_offset is None and os.path.exists(CLOCK_SYNCED_FILE):
            self.core.wall_offset = time.time() - now
            self.log.info("clock synchronized by NTP: certificate dates are enforced")
        for peer in self.settings.peers.values():
            if peer.crls:
                self._reload_crls(peer)

    def _reload_crls(self, peer):
        mtimes = {}
        for path in peer.crls:
            try:
                mtime = os.stat(config.resolve(self.config_path, path)).st_mtime_ns
            except OSError:
                mtime = None
            mtimes[(peer.name, path)] = mtime
        if all(self.crl_mtimes.get(key, m) == m for key, m in mtimes.items()):
            self.crl_mtimes.update(mtimes)
            return
        try:
            self.crls_configured[peer.name] = [config.load_crl(self.config_path, path)
                                               for path in peer.crls]
        except ConfigError as exc:
            self.log.error("peer %s: CRL not reloaded, the previous one stays: %s"
                           % (peer.name, exc))
            return
        self._set_crls(peer)
        self.crl_mtimes.update(mtimes)
        self.log.info("peer %s: CRLs reloaded (%s)" % (peer.name, ", ".join(peer.crls)))

    # --- CRLs: the configured files plus, with fetch_crls, those fetched from CDPs
    def _adopt_crls(self, settings):
        """Loaded settings carry the configured CRLs; remember them apart from fetched ones."""
        self.crls_configured = {name: list(peer.crl_ders)
                                for name, peer in settings.peers.items()}
        for peer in settings.peers.values():
            self._set_crls(peer)

    def _set_crls(self, peer):
        fetched = self.crl_fetcher.ders() if self.crl_fetcher and peer.fetch_crls else []
        peer.crl_ders = self.crls_configured.get(peer.name, []) + fetched

    def _follow_distribution_points(self):
        """Start the fetcher once a peer has fetch_crls (its cache: next to the uploaded CRLs),
        and follow the distribution points of the certificates configured for such peers; the
        ones peers send arrive as events.PeerCertificates."""
        fetching = [p for p in self.settings.peers.values() if p.fetch_crls]
        if not fetching and self.crl_fetcher is not None:      # a reload turned it off
            self.crl_fetcher.stop()
            self.crl_fetcher = None
        if not fetching or self.config_path is None:
            return
        if self.crl_fetcher is None:
            directory = os.path.join(os.path.dirname(os.path.realpath(self.config_path)),
                                     crl_fetch.CACHE_DIR)
            self.crl_fetcher = crl_fetch.CrlFetcher(
                self.loop, self.log, directory, self._wall_time_if_synchronized,
                self._fetched_crls_changed)
            self._fetched_crls_changed()        # the cached ones count at once (a reboot)
            self.crl_fetcher.start()
        for peer in fetching:
            self.crl_fetcher.watch(peer.chain_ders + peer.ca_ders)

    def _wall_time_if_synchronized(self):
        """Unix time, or None until NTP set the clock (then the core has a wall offset)."""
        return time.time() if self.core.wall_offset is not None else None

    def _fetched_crls_changed(self):
        for peer in self.settings.peers.values():
            if peer.fetch_crls:
                self._set_crls(peer)

    def _learn_source_addresses(self, now, everyone=False):
        """Tell the core which of our addresses the kernel sends from to each peer without a
        local_address (the WAN address may come late or change: DHCP, PPP). On timers, the
        next ROUTE_REFRESH_BATCH peers in turn (a route lookup is ~0.1 ms: all 10,000 peers
        every ROUTE_REFRESH_S would cost 15 % of a core)."""
        self.routes_learned_at = now
        peers = [p for p in self.settings.peers.values() if not p.local_address]
        if everyone or len(peers) <= ROUTE_REFRESH_BATCH:
            chosen = peers
        else:
            start = self._route_cursor % len(peers)
            chosen = (peers[start:] + peers[:start])[:ROUTE_REFRESH_BATCH]
            self._route_cursor = start + ROUTE_REFRESH_BATCH
        for peer in chosen:
            self._learn_source_address(peer)

    def _learn_source_address(self, peer):
        """The same for one peer (`up`: one route lookup, not one per configured peer)."""
        address = self._gateway_address(peer)
        if not peer.local_address and address is not None:
            self.core.learn_source_address(address, route_source(address))

    def _gateway_address(self, peer):
        """The peer's address as the core knows it: configured, resolved from its DNS name or
        where a dynamic peer is connected from; None when there is none (yet)."""
        return self.core.gateway_address(peer)

    # --- DNS-named gateways (the core asks with events.ResolveGateway)
    def _resolve_gateway(self, event):
        task = self.loop.create_task(self._resolve(event.peer, event.name))
        self.resolving.add(task)
        task.add_done_callback(self.resolving.discard)

    def _resolve_trap_gateways(self):
        """A DNS-named peer that initiates on traffic (act_as "both") needs its trap policies,
        so its address, before any initiation: look it up now (initiations look up again)."""
        for peer in self.settings.peers.values():
            if (peer.gateway_kind == S.GATEWAY_NAME and peer.act_as == "both"
                    and self._gateway_address(peer) is None):
                self._resolve_gateway(events.ResolveGateway(peer.name, peer.remote_gateway))

    async def _resolve(self, peer_name, name):
        """getaddrinfo in the loop's executor (never blocking the loop), bounded in time; the
        answer or the resolver's words go to the core, which starts the negotiation or shows
        "the peer's name does not resolve" and asks again later."""
        address = error = None
        try:
            infos = await asyncio.wait_for(self.loop.getaddrinfo(
                name, None, family=socket.AF_INET, type=socket.SOCK_DGRAM), RESOLVE_TIMEOUT_S)
            address = infos[0][4][0] if infos else None
            error = None if address else "no IPv4 address"
        except asyncio.TimeoutError:
            error = "no answer from the DNS servers in %d s" % RESOLVE_TIMEOUT_S
        except OSError as exc:         # socket.gaierror: "Name or service not known", ...
            error = exc.strerror or str(exc)
        if self.stopped:
            return
        peer = self.settings.peers.get(peer_name)
        if address is not None and peer is not None and not peer.local_address:
            self.core.learn_source_address(address, route_source(address))
        self._feed_quietly("resolved %s" % name, self.core.learn_gateway_address, peer_name,
                           address, self.now(), error)
        if peer is not None and address is not None:
            self._policies_follow(peer)
        self._pump()

    def expire(self, protocol, spi, dst, hard):
        self._feed("expire", self.core.expire, protocol, spi, dst, hard, self.now())

    def _feed(self, what, method, *args):
        """Hand one input to the core; a core bug is logged and the daemon keeps its timer."""
        self._feed_quietly(what, method, *args)
        self._pump()

    # --- the one place outputs are acted on
    def _pump(self):
        """Send, act on events, re-arm. Acting on an event may queue more datagrams (a failed
        SA install makes the core send a Delete), so this loops until both queues are empty."""
        if self.stopped:
            return
        while True:
            self._send_datagrams()
            event = self.core.next_event()
            if event is None:
                break
            self._handle_event(event)
        self._arm_timer()

    def _send_datagrams(self):
        for data, local, remote in self.core.datagrams_to_send():
            endpoint = self._endpoint_for(local)
            try:
                if endpoint is None:
                    raise OSError("no socket on UDP port %d" % local[1])
                endpoint.send(data, local[0], remote)
                self.counters["datagrams_out"] += 1
            except OSError as exc:
                self.counters["send_errors"] += 1
                self.log.warning("cannot send to %s:%d: %s"
                                 % (remote[0], remote[1], exc.strerror or exc))

    def _arm_timer(self):
        deadline = self.core.get_timer()
        if deadline == self.timer_at and self.timer is not None:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.timer_at = deadline
        if deadline is not None:
            self.timer = self.loop.call_at(deadline, self._on_timer)

    def _handle_event(self, event):
        if isinstance(event, events.Log):
            self.log.write(event.level, event.peer, event.text)
        elif isinstance(event, events.InstallChildSa):
            self._ensure_policies(event.sa)
            self._install_sa(event.sa)
        elif isinstance(event, events.DeleteChildSa):
            self._kernel("delete SA %s" % event.sa.id, self.backend.delete_sa, event.sa)
        elif isinstance(event, events.IkeSaChanged):
            self.log.debug("IKE SA %s: %s(%s)" % (event.ike_sa, event.status, event.state))
        elif isinstance(event, events.ResolveGateway):
            self._resolve_gateway(event)
        elif isinstance(event, events.PeerCertificates):
            if self.crl_fetcher is not None:
                self.crl_fetcher.watch(event.cert_ders)
        elif isinstance(event, events.Notice):
            self._dynamic_tunnel_down(event)
            if self.on_notice is not None:
                self.on_notice(event)

    def _install_sa(self, sa):
        """Install one SA; when the kernel refuses, the core hears why (it takes the pair down,
        tells the peer and shows the reason as the IKE SA's last_error)."""
        try:
            self.backend.install_sa(sa)
        except Exception as exc:
            self.counters["kernel_errors"] += 1
            self.log.error("kernel: install SA %s failed: %s" % (sa.id, exc))
            self._feed_quietly("install failure", self.core.install_failed, sa.id,
                               kernel_reason(exc), self.now())

    def _feed_quietly(self, what, method, *args):
        """One input to the core without pumping (while _pump runs it goes on draining)."""
        try:
            method(*args)
        except Exception as exc:
            self.log.error("core failed on %s: %s: %s" % (what, type(exc).__name__, exc))

    def _kernel(self, what, method, *args):
        try:
            method(*args)
            return True
        except Exception as exc:
            self.counters["kernel_errors"] += 1
            self.log.error("kernel: %s failed: %s" % (what, exc))
            return False

    # --- policies
    def reqid_of(self, connection_name):
        """The reqid tying a connection's policies to its SAs (stable while the daemon runs):
        the core's, as its ChildSa.reqid carries it."""
        return self.core.reqid(connection_name)

    def _install_policies(self, connection, local_gw, reqid, remote_gw=None):
        """remote_gw: the child SA's peer address; else where the peer is now (a DNS name's
        address once resolved). Nothing while that is unknown (a dynamic peer not connected)."""
        remote_gw = remote_gw or self._gateway_address(self.settings.peers[connection.peer])
        if remote_gw is None:
            return
        if self._kernel("install policies of %s" % connection.name, self.backend.install_policies,
                        connection, local_gw, remote_gw, reqid):
            self.policies[connection.name] = reqid
            self.policy_gateways[connection.name] = remote_gw

    def _install_trap_policies(self):
        """Policies of every connection we may initiate: traffic then makes the kernel ACQUIRE."""
        for connection in self.settings.connections.values():
            peer = self.settings.peers[connection.peer]
            if peer.act_as != "responder" and connection.name not in self.policies:
                self._install_policies(connection, peer.local_address,
                                       self.reqid_of(connection.name))

    def _ensure_policies(self, sa):
        connection = self.settings.connections.get(sa.connection)
        if connection is None:
            return
        reqid = sa.reqid if sa.reqid is not None else self.reqid_of(connection.name)
        remote_gw = sa.dst if sa.direction == "out" else sa.src
        if (self.policies.get(connection.name) != reqid
                or self.policy_gateways.get(connection.name) != remote_gw):
            # New, or the peer is elsewhere now (a dynamic peer, a moved one, a DNS name).
            local_gw = sa.src if sa.direction == "out" else sa.dst
            self._install_policies(connection, local_gw, reqid, remote_gw)

    def _policies_follow(self, peer):
        """A DNS-named gateway resolved to another address: its trap policies go there."""
        address = self._gateway_address(peer)
        for name in self.connections_by_peer.get(peer.name, ()):
            connection = self.settings.connections[name]
            if peer.act_as != "responder" and self.policy_gateways.get(name) != address:
                self._install_policies(connection, peer.local_address, self.reqid_of(name))

    def _dynamic_tunnel_down(self, notice):
        """A dynamic peer's tunnel went (deleted, dead, gone): its policies leave the kernel,
        they carry an address the next connection may not come from."""
        peer = self.settings.peers.get(notice.peer)
        name = notice.fields.get("connection")
        if (notice.kind != "tunnel-down" or peer is None or not peer.dynamic
                or name not in self.policies):
            return
        connection = self.settings.connections.get(name)
        if connection is not None:
            self._kernel("remove policies of %s" % name, self.backend.remove_policies,
                         connection)
        del self.policies[name]
        self.policy_gateways.pop(name, None)

    # --- requests (control socket, signals); each returns a result or raises RequestError
    def status(self, selection=None):
        """Every IKE SA and SA, or a selection (control.py checked its types): {"peer": NAME}
        or {"id": SA_ID} for one peer's, {"offset", "limit", "filter", "status"} for one page
        of peers (docs/architecture.md). The kernel is asked for the selected SAs' counters
        only."""
        now = self.now()
        if not selection:
            result = self.core.status(now)
            self._add_counters(result, self.backend.sa_stats())
        else:
            names, page = self._select_peers(selection)
            result = self.core.status(now, peers=names)
            keys = [kernel_key(self.core.child_sa(sa["id"])) for sa in result["sas"]]
            self._add_counters(result, self.backend.sa_stats(keys))
            if page is not None:
                result["page"] = page
        result["daemon"] = self.daemon_counters()
        result["clock_synchronized"] = self.clock_synchronized()
        return result

    def _select_peers(self, selection):
        """-> (peer names, the "page" object or None)."""
        if "peer" in selection:
            if selection["peer"] not in self.settings.peers:
                raise RequestError("unknown peer %r (peers: %s)" % (selection["peer"],
                                                                    self._peer_names()))
            return [selection["peer"]], None
        if "id" in selection:
            owner = self.core.peer_of(selection["id"])
            if owner is None:
                raise RequestError("unknown SA id %r" % (selection["id"],))
            return [owner], None
        matching = self.core.select_peers(selection.get("filter"), selection.get("status"))
        offset = selection.get("offset", 0)
        limit = selection.get("limit", PAGE_LIMIT_MAX)
        return matching[offset:offset + limit], {
            "offset": offset, "limit": limit, "matching": len(matching),
            "peers": len(self.settings.peers)}

    def _add_counters(self, result, stats):
        """The kernel's byte/packet/error counters into the status' SA rows."""
        for sa in result.get("sas", []):
            child = self.core.child_sa(sa["id"])
            counters = stats.get(kernel_key(child)) if child is not None else None
            if counters:
                for name in ("bytes", "packets", "errored_packets"):
                    sa[name] = counters.get(name, 0)

    def summary(self):
        """Counts only (docs/architecture.md, "summary"): never builds an SA row."""
        result = self.core.summary()
        result["daemon"] = self.daemon_counters()
        result["clock_synchronized"] = self.clock_synchronized()
        return result

    def clock_synchronized(self):
        """Looks at the NTP stamp first (at most every TRUST_REFRESH_S): a router no datagram
        reaches must still notice, log and show that its clock was set."""
        self._refresh_trust(self.now())
        return self.core.wall_offset is not None

    def daemon_counters(self):
        """The driver's counters plus the core's (malformed / unknown-SA datagrams)."""
        counters = dict(self.counters)
        core_counters = self.core.counters
        counters["malformed_datagrams"] = core_counters.get("malformed", 0)
        counters["unknown_sa_datagrams"] = core_counters.get("unknown_sa", 0)
        counters["retransmissions"] = core_counters.get("retransmissions", 0)
        for key in fragments.new_counters():      # IKE fragmentation (fragments.py)
            counters[key] = core_counters.get(key, 0)
        return counters

    def up(self, name):
        """A peer's connections (or one connection) are initiated. Costs what that peer has,
        not what is configured: started one by one, N tunnels would otherwise cost N^2."""
        if name in self.settings.peers:
            peer = self.settings.peers[name]
            connections = list(self.connections_by_peer.get(name, ()))
            if not connections:
                raise RequestError("peer %r has no connections to bring up" % name)
        elif name in self.settings.connections:
            peer = self.settings.peers[self.settings.connections[name].peer]
            connections = [name]
        elif self.settings.pairs_of(name):       # a [[connection]] with network lists
            connections = [pair.name for pair in self.settings.pairs_of(name)]
            peer = self.settings.peers[self.settings.connections[connections[0]].peer]
        else:
            raise RequestError("unknown peer %r (peers: %s)" % (name, self._peer_names()))
        now = self.now()
        self._learn_source_address(peer)
        for connection in connections:
            self.core.initiate(connection, now)
        self._pump()
        return {"initiated": connections}

    def down(self, name):
        if name not in self.settings.peers:
            raise RequestError("unknown peer %r (peers: %s)" % (name, self._peer_names()))
        self.core.down(name, self.now())
        self._pump()
        return {"down": name}

    def delete(self, sa_id):
        if self.core.peer_of(sa_id) is None:
            raise RequestError("unknown SA id %r" % (sa_id,))
        self.core.delete(sa_id, self.now())
        self._pump()
        return {"deleted": sa_id}

    def reload(self):
        """Re-read the config file; a bad file changes nothing and the error is the answer."""
        if self.config_path is None or self.load_config is None:
            raise RequestError("no configuration file to reload")
        warnings = []
        try:
            new = self.load_config(self.config_path, warnings=warnings)
        except ConfigError as exc:
            self.log.error("configuration not reloaded, keeping the running one: %s" % exc)
            raise RequestError(str(exc))
        for warning in warnings:
            self.log.warning(warning)
        old = self.settings
        self.core.reconfigure(new, self.now())
        self.settings = new
        self._adopt_crls(new)
        self._follow_distribution_points()
        self.connections_by_peer = _connections_by_peer(new)
        for name, connection in old.connections.items():
            if self._changed(old, new, name) and name in self.policies:
                self._kernel("remove policies of %s" % name, self.backend.remove_policies,
                             connection)
                del self.policies[name]
                self.policy_gateways.pop(name, None)
        try:
            self._open_endpoints()
        except OSError as exc:     # the new config stays; the old sockets still serve
            self.log.error("reload: cannot open the UDP sockets: %s" % exc)
        self._install_trap_policies()
        self._resolve_trap_gateways()
        now = self.now()
        self._learn_source_addresses(now, everyone=True)
        for name, connection in new.connections.items():
            if self._changed(old, new, name) and new.peers[connection.peer].act_as == "initiator":
                self._initiate(name, now)
        self._pump()
        del old                          # the old settings, then the load's garbage, go back
        heap.give_back_freed()
        self.log.info("configuration reloaded: %d peers, %d connections"
                      % (len(new.peers), len(new.connections)))
        return {"peers": list(new.peers), "connections": list(new.connections)}

    @staticmethod
    def _changed(old, new, name):
        """A connection that is new, gone, or whose networks (its bypasses' too) or gateway
        moved."""
        a, b = old.connections.get(name), new.connections.get(name)
        if a is None or b is None:
            return True
        pa, pb = old.peers.get(a.peer), new.peers.get(b.peer)
        return ((a.peer, a.local_net, a.remote_net, a.local_nets, a.protocol) !=
                (b.peer, b.local_net, b.remote_net, b.local_nets, b.protocol) or
                pa is None or pb is None or (pa.remote_gateway, pa.local_address, pa.act_as) !=
                (pb.remote_gateway, pb.local_address, pb.act_as))

    def kernel_snapshot(self):
        return self.backend.snapshot()

    def _peer_names(self):
        """The configured peers for an error text: the first PEER_NAMES_IN_ERRORS of them (a
        hub's 10,000 would make a 100 KB error line)."""
        peers = self.settings.peers
        if not peers:
            return "none configured"
        names = ", ".join(itertools.islice(peers, PEER_NAMES_IN_ERRORS))
        more = len(peers) - PEER_NAMES_IN_ERRORS
        return names + (" and %d more" % more if more > 0 else "")


def _connections_by_peer(settings):
    """peer name -> its connection names, in the file's order (settings.connections_of)."""
    index = {}
    for connection in settings.connections.values():
        index.setdefault(connection.peer, []).append(connection.name)
    return index


def route_source(remote_ip):
    """Our address the kernel would send from to reach remote_ip, or None without a route:
    connect() on a UDP socket does the route lookup and sends nothing."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect((remote_ip, IKE_PORT))
        return sock.getsockname()[0]
    except OSError:
        return None
    finally:
        sock.close()


def kernel_reason(exc):
    """The kernel's own words for a refused request: "Protocol not supported", plus its
    extended-ack text when it gave one (xfrm.XfrmError.kernel_text); else the error's text."""
    if isinstance(exc, OSError) and exc.errno:
        text = os.strerror(exc.errno)
        extra = getattr(exc, "kernel_text", None)
        return "%s (kernel: %s)" % (text, extra) if extra else text
    return str(exc) or type(exc).__name__


class RequestError(Exception):
    """A request the daemon refuses; str() is the message for the caller."""
