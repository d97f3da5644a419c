"""The IKE SAs of one IkeCore: by id, by initiator cookie (finding the SA of a datagram) and per
peer (the questions asked per datagram: "the peer's established SA", "one negotiating?")
without visiting every tunnel. Portable: MicroPython subset, no I/O.
"""

ZERO_COOKIE = b"\x00" * 8


class IkeSaTable:
    def __init__(self):
        self.by_id = {}              # id -> ikesa.IkeSa, oldest first
        self._by_icookie = {}        # initiator cookie -> [IkeSa]
        self._by_peer = {}           # peer name -> [IkeSa], oldest first
        self._next = 1

    def new_id(self):
        """-> (the next id, its serial: creation order, timers run in it)."""
        sa_id = "ike-%d" % self._next
        self._next += 1
        return sa_id, self._next

    def add(self, sa):
        self.by_id[sa.id] = sa
        self._by_peer.setdefault(sa.peer.name, []).append(sa)
        self._by_icookie.setdefault(sa.icookie, []).append(sa)

    def remove(self, sa):
        del self.by_id[sa.id]
        _drop(self._by_icookie, sa.icookie, sa)
        _drop(self._by_peer, sa.peer.name, sa)

    def move(self, sa, peer):
        """sa turns out to be with another peer (dynamic.refine): it changes tables."""
        _drop(self._by_peer, sa.peer.name, sa)
        sa.peer = peer
        self._by_peer.setdefault(peer.name, []).append(sa)

    def find(self, header):
        """The SA a message is for: its cookies, or (one side still zero) its initiator's."""
        fallback = None
        for sa in self._by_icookie.get(header.icookie, ()):
            if sa.rcookie == header.rcookie:
                return sa
            if header.rcookie == ZERO_COOKIE or sa.rcookie == ZERO_COOKIE:
                fallback = sa
        return fallback

    def by_spi(self, spi):
        """The SA whose ISAKMP SPI (CKY-I | CKY-R) this is, or None."""
        for sa in self._by_icookie.get(spi[:8], ()):
            if sa.spi() == spi:
                return sa
        return None

    def of_peer(self, peer_name):
        """The peer's IKE SAs, oldest first."""
        return self._by_peer.get(peer_name, ())

    def established(self, peer_name):
        """The newest established, not yet replaced IKE SA with this peer."""
        found = None
        for sa in self.of_peer(peer_name):
            if sa.established and sa.rekeyed_by is None:
                found = sa
        return found

    def negotiating(self, peer_name):
        for sa in self.of_peer(peer_name):
            if not sa.machine.established and not sa.failed:
                return sa
        return None


def _drop(index, key, sa):
    same = index.get(key, [])
    if sa in same:
        same.remove(sa)
    if not same:
        index.pop(key, None)
