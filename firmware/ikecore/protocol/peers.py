"""The settings as the core asks them per datagram, and what a reconfiguration changed.

Per-peer views of settings.Settings, so a per-tunnel question (the peer a first message comes
from, a quick mode request's connection, the tunnel an ACQUIRE falls into) does not visit every
tunnel; `changed` compares two Settings for IkeCore.reconfigure. Portable: MicroPython subset.
"""

from . import addresses
from . import settings as settings_


class PeerIndex:
    """settings indexed; resolved (peer name -> address its DNS name resolved to) is the core's,
    kept across reconfigurations: entries of peers that are gone or no longer DNS-named are
    dropped here."""

    def __init__(self, settings, resolved):
        self._connections_by_peer = {}
        for conn in settings.connections.values():
            self._connections_by_peer.setdefault(conn.peer, []).append(conn)
        self._peer_by_gateway = {}
        self._dynamic_peers = []
        for peer in settings.peers.values():
            if peer.gateway_kind == settings_.GATEWAY_ADDRESS:
                # The first peer in the file wins, as the scan of the peers did.
                self._peer_by_gateway.setdefault(peer.remote_gateway, peer)
            elif peer.dynamic and peer.act_as != "initiator":
                self._dynamic_peers.append(peer)
        for name, address in list(resolved.items()):
            peer = settings.peers.get(name)
            if peer is None or peer.gateway_kind != settings_.GATEWAY_NAME:
                del resolved[name]
            else:
                self.resolved_to(peer, address)
        # Which connection an ACQUIRE's (src, dst) falls into: per prefix length of remote_net,
        # the masked network -> its connections in file order (a dict lookup per length, not
        # a scan of every connection per acquire).
        self._by_remote_net = {}
        for order, conn in enumerate(settings.connections.values()):
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

    def peer_at(self, address):
        """The peer configured at (or resolved to) this address, or None."""
        return self._peer_by_gateway.get(address)

    def peer_name(self, address):
        peer = self._peer_by_gateway.get(address)
        return peer.name if peer is not None else None

    def resolved_to(self, peer, address):
        # Fixed addresses first: a name that resolves to one cannot take it over.
        self._peer_by_gateway.setdefault(address, peer)

    def unresolved(self, peer, address):
        """The peer's DNS name no longer resolves to address."""
        if self._peer_by_gateway.get(address) is peer:
            del self._peer_by_gateway[address]

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


def changed(old, new):
    """What a reconfiguration from old to new Settings changes -> (names of peers gone or
    changed, names of peers kept as they were, names of connections gone or changed), each in
    old's file order. A peer or connection is changed when any of its settings differs."""
    gone_peers, kept_peers, gone_conns = [], [], []
    for name, peer in old.peers.items():
        now = new.peers.get(name)
        if now is None or _fingerprint(now) != _fingerprint(peer):
            gone_peers.append(name)
        else:
            kept_peers.append(name)
    for name, conn in old.connections.items():
        now = new.connections.get(name)
        if now is None or _fingerprint(now) != _fingerprint(conn):
            gone_conns.append(name)
    return gone_peers, kept_peers, gone_conns


def _fingerprint(obj):
    """The settings of a peer or connection as comparable text (proposals by name)."""
    parts = []
    for name in obj.__slots__:
        value = getattr(obj, name)
        if isinstance(value, list):
            value = [getattr(v, "name", v) for v in value]
        parts.append(repr(value))
    return "|".join(parts)


def _mask(prefix):
    return (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF if prefix else 0
