"""Validated settings the protocol core runs on (portable: MicroPython subset).

`ikecore.config` turns the TOML file into these objects (and is the only place that validates);
the core, the daemon and the web UI only read them. Plain classes with __slots__, no dataclasses,
so the same objects exist under MicroPython.
"""

PHASE1_MODES = ("main", "aggressive")
ACT_AS = ("initiator", "responder", "both")
ID_TYPES = ("ipv4", "fqdn", "user_fqdn", "dn")
AUTH_METHODS = ("psk", "rsa")
CHILD_PROTOCOLS = ("esp", "ah", "esp+ah")
# Defaults of the settings a config file may leave out (config.py applies them, docs/config.md
# states them): strongSwan's and Libreswan's usual values.
IKE_LIFETIME_S = 28800                 # 8 h
CHILD_LIFETIME_S = 3600                # 1 h
DPD_DELAY_S = 30
DPD_TIMEOUT_S = 120
FRAGMENTATION_MODES = ("yes", "accept", "force", "no")    # fragments.py says what each does
DEFAULT_FRAGMENTATION = "yes"          # strongSwan's default
DEFAULT_FRAGMENT_SIZE = 576            # bytes: crosses any IPv4 path (fragments.py)

# Peer.remote_gateway when the peer may come from any address (a branch on a changing address):
# config.py accepts the spellings of strongSwan/Libreswan ("%any") and pfSense ("0.0.0.0").
ANY_GATEWAY = "%any"
# Peer.gateway_kind: an IPv4 address, "any" (dynamic, chosen by its ID), or a DNS name the
# driver resolves before each initiation.
GATEWAY_ADDRESS, GATEWAY_ANY, GATEWAY_NAME = "address", "any", "name"


def gateway_kind(remote_gateway):
    """What a (validated) remote_gateway text is: one of the GATEWAY_* kinds."""
    if remote_gateway == ANY_GATEWAY:
        return GATEWAY_ANY
    parts = remote_gateway.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        return GATEWAY_ADDRESS
    return GATEWAY_NAME


class Identity:
    """An IKE identity: type is one of ID_TYPES, value its text form."""
    __slots__ = ("type", "value")

    def __init__(self, type, value):
        self.type = type
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Identity) and self.type == other.type and self.value == other.value

    def __repr__(self):
        return "Identity(%r, %r)" % (self.type, self.value)


class Peer:
    """"VPN peer settings (IKE)": one remote gateway and how phase 1 is negotiated with it.

    proposals: list of ikecore.protocol.proposals.IkeProposal (parsed, in preference order, at most 3).
    psk: bytes or None. cert/key: file paths, ca/intermediates/crls: lists of file paths
    (auth == "rsa"); the loaded material is put in cert_der / key_pem / ca_ders / chain_ders /
    crl_ders (DER) by the config loader so the core never opens files.
    """
    __slots__ = ("name", "remote_gateway", "local_address", "phase1_mode", "act_as",
                 "local_id", "remote_id", "auth", "psk", "cert", "key", "ca",
                 "intermediates", "crls", "cert_der", "key_pem", "ca_ders", "chain_ders",
                 "crl_ders", "proposals", "lifetime_s", "nat_t",
                 "dpd_delay_s", "dpd_timeout_s", "fragmentation", "fragment_size",
                 "gateway_kind", "catch_all", "fetch_crls")

    def __init__(self, name, remote_gateway, proposals, phase1_mode="main", act_as="both",
                 local_id=None, remote_id=None, auth="psk", psk=None, cert=None, key=None,
                 ca=None, lifetime_s=IKE_LIFETIME_S, nat_t=True, dpd_delay_s=DPD_DELAY_S,
                 dpd_timeout_s=DPD_TIMEOUT_S,
                 local_address=None, cert_der=None, key_pem=None, ca_ders=(),
                 intermediates=(), crls=(), chain_ders=(), crl_ders=(),
                 fragmentation=DEFAULT_FRAGMENTATION, fragment_size=DEFAULT_FRAGMENT_SIZE,
                 catch_all=False, fetch_crls=False):
        self.name = name
        self.remote_gateway = remote_gateway    # IPv4 text, ANY_GATEWAY or a DNS name
        self.gateway_kind = gateway_kind(remote_gateway)
        # A dynamic main mode PSK peer that accepts any ID: the key is needed before the ID
        # arrives (RFC 2409 5.4), so at most one such peer can exist (config.py checks).
        self.catch_all = catch_all
        self.local_address = local_address      # our WAN address, or None = any
        self.phase1_mode = phase1_mode
        self.act_as = act_as
        self.local_id = local_id                # Identity or None = our address (ipv4)
        self.remote_id = remote_id              # Identity or None = accept the peer's address
        self.auth = auth
        self.psk = psk
        self.cert = cert
        self.key = key
        self.ca = ca
        self.cert_der = cert_der
        self.key_pem = key_pem
        self.intermediates = list(intermediates)
        self.crls = list(crls)
        self.ca_ders = list(ca_ders)            # trust anchors (several CAs per peer)
        self.chain_ders = list(chain_ders)      # configured intermediates, also sent to the peer
        self.crl_ders = list(crl_ders)
        self.fetch_crls = fetch_crls            # the driver adds CRLs fetched from CDPs
        self.proposals = proposals
        self.lifetime_s = lifetime_s
        self.nat_t = nat_t
        self.dpd_delay_s = dpd_delay_s          # 0 = DPD off
        self.dpd_timeout_s = dpd_timeout_s
        self.fragmentation = fragmentation      # FRAGMENTATION_MODES
        self.fragment_size = fragment_size      # largest IP datagram sent as a fragment

    @property
    def dynamic(self):
        """Comes from any address, is told apart by its ID, and only ever responds first."""
        return self.gateway_kind == GATEWAY_ANY


class Connection:
    """"VPN connection settings": one pair of networks tunnelled through a peer (quick mode).

    proposals: list of ikecore.protocol.proposals.ChildProposal; pfs: a DH group name or None.
    A configured connection with several networks on a side is several of these, one per pair
    (pair_connections): group is the configured name, local_nets all its local networks.
    """
    __slots__ = ("name", "peer", "local_net", "remote_net", "protocol", "proposals", "pfs",
                 "lifetime_s", "lifetime_kb", "group", "local_nets")

    def __init__(self, name, peer, local_net, remote_net, proposals, protocol="esp", pfs=None,
                 lifetime_s=CHILD_LIFETIME_S, lifetime_kb=0, group=None, local_nets=None):
        self.name = name
        self.peer = peer                        # Peer.name
        self.local_net = local_net              # "192.168.1.0/24" or a single address "a.b.c.d/32"
        self.remote_net = remote_net            # "0.0.0.0/0": everything else (a branch)
        self.protocol = protocol
        self.proposals = proposals
        self.pfs = pfs
        self.lifetime_s = lifetime_s
        self.lifetime_kb = lifetime_kb          # 0 = no volume limit
        self.group = group or name              # the [[connection]] name this pair belongs to
        # every local network of that [[connection]]: traffic among them bypasses the tunnel
        # when remote_net covers them (kernel.bypass_policies)
        self.local_nets = tuple(local_nets or (local_net,))


PAIR_SEPARATOR = "#"      # not allowed in a configured name, so a pair's name never clashes


def pair_connections(name, peer, local_nets, remote_nets, proposals, **options):
    """One Connection per (local, remote) pair of a [[connection]] with network lists, local
    networks outer, as strongSwan's IKEv1 makes one CHILD_SA per pair of traffic selectors.
    A single pair keeps the configured name; several are "name#1", "name#2", ... in that order.
    options: Connection's keyword arguments (protocol, pfs, lifetime_s, lifetime_kb)."""
    pairs = [(local, remote) for local in local_nets for remote in remote_nets]
    conns = []
    for i, (local, remote) in enumerate(pairs):
        pair_name = name if len(pairs) == 1 else "%s%s%d" % (name, PAIR_SEPARATOR, i + 1)
        conns.append(Connection(pair_name, peer, local, remote, proposals, group=name,
                                local_nets=local_nets, **options))
    return conns


class Settings:
    """The whole configuration: general settings plus peers and connections by name."""
    __slots__ = ("wan_interface", "lan_interface", "peers", "connections")

    def __init__(self, peers=None, connections=None, wan_interface="eth0", lan_interface="eth1"):
        self.wan_interface = wan_interface
        self.lan_interface = lan_interface
        self.peers = peers or {}                # name -> Peer (insertion order = file order)
        self.connections = connections or {}    # name -> Connection

    def connections_of(self, peer_name):
        return [c for c in self.connections.values() if c.peer == peer_name]

    def pairs_of(self, group):
        """The pair connections of a configured [[connection]] name, in order ([] if none)."""
        return [c for c in self.connections.values() if c.group == group]
