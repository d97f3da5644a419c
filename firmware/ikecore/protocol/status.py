"""The status data (DESIGN.md's shape) of one IkeCore, whole or for a few peers, and its counts.

A router with 10,000 tunnels holds ~4 MB of status: the page, `ikectl` and `/metrics` ask for one
peer, one page of peers or the counts (docs/architecture.md, "Control socket"), and the work here
is proportional to what is asked, never to every SA. Portable: MicroPython subset.
"""

from . import states
from .proposals import ChildProposal

ACTIVATED, NEGOTIATING, IDLE = "Activated", "Negotiating", "Idle"
PEER_STATUSES = (ACTIVATED, NEGOTIATING, IDLE)
_RANK = {IDLE: 0, NEGOTIATING: 1, ACTIVATED: 2}


def ike_sa_row(sa, now):
    n = sa.machine.number
    since = sa.established_at if sa.established_at is not None else sa.created
    return {
        "id": sa.id, "peer": sa.peer.name, "remote_gateway": sa.remote[0],
        # Where the peer is now (a dynamic peer's or a NAT's port included) and what is
        # configured ("%any", a DNS name or the address itself).
        "remote_address": "%s:%d" % (sa.remote[0], sa.remote[1]),
        "configured_gateway": sa.peer.remote_gateway,
        "local_address": sa.local[0], "status": states.status_text(n), "state": n,
        "mode": sa.mode, "role": sa.role, "algorithm": sa.algorithm_text(),
        "auth": sa.auth, "elapsed_s": int(now - since), "lifetime_s": sa.lifetime_s,
        "lifetime_note": sa.lifetime_note,
        "nat_t": sa.nat_t, "phase2_negotiations": sa.phase2_negotiations,
        "last_error": sa.last_error}


def child_row(child, now, lifetime_note=None):
    """One SA (the counters are the kernel's: the driver fills them in); lifetime_note: whose
    lifetime is in force when it is not ours (lifetime.py), else None."""
    proposal = ChildProposal(child.encr, child.integ, protocol=child.protocol)
    return {
        "id": child.id, "ike_sa": child.ike_sa, "connection": child.connection,
        "destination": child.dst,
        "direction": "incoming" if child.direction == "in" else "outgoing",
        "spi": "0x%08x" % child.spi, "protocol": child.protocol.upper(),
        "mode": child.mode, "algorithm": proposal.describe(child.protocol),
        "local_net": child.local_net, "remote_net": child.remote_net,
        "elapsed_s": int(now - child.created), "lifetime_s": child.lifetime_s,
        "lifetime_note": lifetime_note,
        "bytes": 0, "packets": 0, "errored_packets": 0}


def everything(core, now):
    """Every IKE SA then every SA, oldest first (the status request without a selection)."""
    return {"ike_sas": [ike_sa_row(sa, now) for sa in core.ike_sas.values()],
            "sas": [child_row(c, now, core.lifetime_notes.get(c.id))
                    for c in core.children.values()]}


def of_peers(core, names, now):
    """The IKE SAs and SAs of these peers only, each peer's oldest first."""
    ike, sas = [], []
    for name in names:
        for sa in core.sas_of(name):
            ike.append(ike_sa_row(sa, now))
        for group in core.groups_of(name):
            for cid in group.ids:
                child = core.children.get(cid)
                if child is not None:
                    sas.append(child_row(child, now, core.lifetime_notes.get(cid)))
    return {"ike_sas": ike, "sas": sas}


def peer_status(core, name):
    """Activated when the peer has an established IKE SA, else Negotiating when one is under
    way (or failed and still listed with its state number), else Idle."""
    best = IDLE
    for sa in core.sas_of(name):
        text = states.status_text(sa.machine.number)
        if _RANK.get(text, 0) > _RANK[best]:
            best = text
    return best


def select_peers(core, text=None, status=None):
    """Configured peer names in the file's order whose name or remote gateway contains text and
    whose peer_status is status (None: any)."""
    names = []
    for peer in core.settings.peers.values():
        if text and text not in peer.name and text not in str(peer.remote_gateway):
            continue
        if status is not None and peer_status(core, peer.name) != status:
            continue
        names.append(peer.name)
    return names


def summary(core):
    """Counts only: peers by status, IKE SAs by state number, SAs. One pass over the IKE SAs
    (peers without one are Idle by subtraction), nothing per configured peer, and per IKE SA only
    a count and a set insertion: 10,000 tunnels cost ~2 ms, next to the ~20 ms of the Python
    start-up of `ikectl status --summary`."""
    peers = core.settings.peers
    by_number = {}
    activated, other = set(), set()     # names of peers with an established IKE SA / another one
    for sa in core.ike_sas.values():
        number = sa.machine.row.number          # attributes only: no property call per SA
        by_number[number] = by_number.get(number, 0) + 1
        (activated if number == states.ACTIVATED_NUMBER else other).add(sa.peer.name)
    negotiating = len([name for name in other if name in peers and name not in activated])
    activated = len([name for name in activated if name in peers])
    by_status = {ACTIVATED: activated, NEGOTIATING: negotiating,
                 IDLE: len(peers) - activated - negotiating}
    return {"peers": len(peers), "peers_by_status": by_status,
            "ike_sas": len(core.ike_sas),
            "ike_sas_by_state": dict((str(n), count) for n, count in by_number.items()),
            "sas": len(core.children)}
