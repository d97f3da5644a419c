"""What the sans-IO core tells its driver (portable: MicroPython subset).

The core never touches a socket, a clock or the kernel. It queues datagrams (see
IkeCore.datagrams_to_send) and these events (IkeCore.next_event); the driver acts on them.
"""


class ChildSa:
    """One direction of one negotiated IPsec SA, ready for the kernel (XFRM) to install.

    An SA pair of a quick mode is two of these (direction "in" and "out"), or four with esp+ah.
    Keys are bytes; algorithm names are ikecore.protocol.proposals names ("aes128", "sha1", ...), with
    encr None for AH. src/dst are the outer (gateway) addresses as the kernel sees the packet:
    for "out" src = us, dst = peer; for "in" the reverse. encap is None or (sport, dport) for
    ESP-in-UDP (NAT-T). reqid ties the SA to its connection's policies.
    """
    __slots__ = ("id", "ike_sa", "peer", "connection", "protocol", "direction", "spi", "src", "dst",
                 "local_net", "remote_net", "mode", "encr", "encr_key", "integ", "integ_key",
                 "lifetime_s", "lifetime_kb", "encap", "reqid", "created")

    def __init__(self, **kw):
        for name in self.__slots__:
            setattr(self, name, kw.get(name))
        if self.mode is None:
            self.mode = "tunnel"


class InstallChildSa:
    """Install this ChildSa in the kernel (and its connection's policies if not there yet)."""
    __slots__ = ("sa",)

    def __init__(self, sa):
        self.sa = sa


class DeleteChildSa:
    """Remove this ChildSa from the kernel (rekeyed, deleted by us or by the peer, expired)."""
    __slots__ = ("sa", "reason")

    def __init__(self, sa, reason):
        self.sa = sa
        self.reason = reason


class ResolveGateway:
    """Resolve this peer's DNS-named remote gateway (an IPv4 address), then call
    core.learn_gateway_address(peer, address or None, now, error): the core stays I/O-free."""
    __slots__ = ("peer", "name")

    def __init__(self, peer, name):
        self.peer = peer
        self.name = name

    def __repr__(self):
        return "ResolveGateway(%s, %s)" % (self.peer, self.name)


class PeerCertificates:
    """The certificates a peer with fetch_crls sent (DER, its own first): the driver fetches
    the CRLs their distribution points name (ikecore.crl_fetch)."""
    __slots__ = ("peer", "cert_ders")

    def __init__(self, peer, cert_ders):
        self.peer = peer
        self.cert_ders = cert_ders


class Log:
    """One line for the VPN log. level: "info" | "warning" | "error"; peer: Peer.name or None."""
    __slots__ = ("level", "peer", "text")

    def __init__(self, level, peer, text):
        self.level = level
        self.peer = peer
        self.text = text

    def __repr__(self):
        return "Log(%s, %s, %r)" % (self.level, self.peer, self.text)


class IkeSaChanged:
    """An IKE SA changed state (for the page's live update and tests); ike_sa is its id."""
    __slots__ = ("ike_sa", "status", "state")

    def __init__(self, ike_sa, status, state):
        self.ike_sa = ike_sa
        self.status = status
        self.state = state


class Notice:
    """What a subscriber to the control socket hears (docs/architecture.md, "subscribe"):
    kind "tunnel-up" | "tunnel-down" | "ike-up" | "ike-down" | "failed"; fields: the rest of the
    event's JSON object (connection, ike_sa, sas, reason, diagnosis, renewal)."""
    __slots__ = ("kind", "peer", "fields")

    def __init__(self, kind, peer, fields):
        self.kind = kind
        self.peer = peer
        self.fields = fields

    def __repr__(self):
        return "Notice(%s, %s, %r)" % (self.kind, self.peer, self.fields)
