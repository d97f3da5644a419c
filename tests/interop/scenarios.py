"""One interop scenario = matching settings for our daemon (namespace a) and charon (namespace b).

`Scenario` holds what both sides agree on by default; a mismatch test changes one field on one
side only (`ours=` / `theirs=` overrides). `our_config()` renders our TOML tables,
`charon_conn()` the swanctl connection. Proposal names are strongSwan's on both sides; a PFS group
is appended to charon's ESP/AH proposal (that is how swanctl spells PFS) and is our `pfs` key.
"""
import time

from charon import Child, Conn
from support.netns import NET_A, NET_B, WAN_A, WAN_B
from ours import connection_entry, peer_entry

LEGACY = ("3des-md5-modp1024", "3des-md5")
MODERN = ("aes256-sha256-modp2048", "aes256-sha256")
PROPOSALS = {"legacy": LEGACY, "modern": MODERN}

PEER = "charon"          # our [[peer]] name for the charon side
CONN = "lan"             # our [[connection]] name and charon's child name
IKE = "ours"             # charon's connection name for us


class Side:
    """One side's settings. IDs: (type, value) as our TOML has them."""

    FIELDS = ("mode", "ike_proposal", "child_proposal", "pfs", "protocol", "psk", "local_id",
              "remote_id", "local_net", "remote_net")

    def __init__(self, **kw):
        for name in self.FIELDS:
            setattr(self, name, kw.pop(name))
        if kw:
            raise TypeError("unknown scenario fields: %s" % sorted(kw))

    def changed(self, **kw):
        values = dict((name, getattr(self, name)) for name in self.FIELDS)
        values.update(kw)
        return Side(**values)


def scenario(mode="main", proposal="modern", pfs=True, ours=None, theirs=None):
    """(our Side, charon's Side) that agree, then with the given per-side overrides applied."""
    ike, child = PROPOSALS[proposal]
    group = ike.rsplit("-", 1)[1] if pfs else None
    common = dict(mode=mode, ike_proposal=ike, child_proposal=child, pfs=group, protocol="esp",
                  psk="interop secret 42")
    our = Side(local_id=("ipv4", WAN_A), remote_id=("ipv4", WAN_B), local_net=NET_A,
               remote_net=NET_B, **common)
    their = Side(local_id=("ipv4", WAN_B), remote_id=("ipv4", WAN_A), local_net=NET_B,
                 remote_net=NET_A, **common)
    return our.changed(**(ours or {})), their.changed(**(theirs or {}))


def our_config(side, act_as):
    """([peer], [connection]) tables for our daemon."""
    peer = peer_entry(PEER, WAN_B, WAN_A, [side.ike_proposal], side.psk, mode=side.mode,
                      act_as=act_as, local_id=side.local_id, remote_id=side.remote_id)
    conn = connection_entry(CONN, PEER, side.local_net, side.remote_net, [side.child_proposal],
                            protocol=side.protocol, pfs=side.pfs or "none")
    return [peer], [conn]


def _strongswan_id(identity):
    kind, value = identity
    if kind == "ipv4":
        return value
    if kind == "fqdn":
        return "fqdn:" + value
    if kind == "user_fqdn":
        return "email:" + value
    return value            # dn: strongSwan parses "C=.., O=.., CN=.." itself


def charon_conn(side, start_action="none"):
    """The swanctl connection for charon's side of the scenario."""
    proposal = side.child_proposal
    if side.protocol == "ah" and "-" in proposal:
        proposal = proposal.split("-", 1)[1]           # AH has no cipher: "aes256-sha256" -> "sha256"
    if side.pfs:
        proposal += "-" + side.pfs
    child = Child(CONN, side.local_net, side.remote_net, [proposal], protocol=side.protocol,
                  start_action=start_action)
    return Conn(IKE, WAN_B, WAN_A, [side.ike_proposal], side.psk, [child],
                aggressive=(side.mode == "aggressive"), local_id=_strongswan_id(side.local_id),
                remote_id=_strongswan_id(side.remote_id))


# -- reading the two sides -------------------------------------------------------------------------
def our_ike_sa(status):
    """Our IKE SA with the charon peer (the newest if there are several), or None."""
    sas = [sa for sa in status.get("ike_sas", []) if sa.get("peer") == PEER]
    return sas[-1] if sas else None


def wait_settled(daemon, predicate, timeout_s, what):
    """Poll our status until predicate(ike_sa) holds; then return (status, ike_sa)."""
    status = daemon.wait_for(lambda st: our_ike_sa(st) is not None and predicate(our_ike_sa(st)),
                             timeout_s=timeout_s, what=what)
    return status, our_ike_sa(status)


def wait_failure_settled(daemon, timeout_s=25, quiet_s=1.0):
    """Wait until our IKE SA has a last_error and its state has not moved for quiet_s.

    A failure must not move the state (states.py), so the number we then read is where the
    negotiation stopped. Returns (status, ike_sa).
    """
    status, sa = wait_settled(daemon, lambda sa: sa.get("last_error"), timeout_s,
                              "a diagnosed failure (last_error set)")
    deadline = time.monotonic() + quiet_s
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = our_ike_sa(daemon.status())
        if now is None:
            break               # the failed SA was cleaned up: keep what we saw
        if now.get("state") != sa.get("state"):
            sa, deadline = now, time.monotonic() + quiet_s
            status = daemon.status()
    return status, sa
