"""The seed's wording for the status data (one place, used by the pages, the JS mirrors it).

The daemon reports machine values (DESIGN.md status shape); the page shows them as the seed
defines each column: "Negotiating(5)", "Incoming", "Far end", seconds as plain numbers.
"""
from ikecore.protocol.status import PEER_STATUSES  # noqa: F401 (the status page's status choice)

NAT_T_TEXT = {"none": "none", "far end": "Far end", "near end": "Near end"}
DIRECTION_TEXT = {"incoming": "Incoming", "outgoing": "Outgoing", "in": "Incoming",
                  "out": "Outgoing"}

IKE_COLUMNS = ("Remote Gateway", "Status", "Algorithm", "Elapsed time", "Life time", "NAT-T",
               "Phase 2 negotiations", "Delete")
SA_COLUMNS = ("Destination", "Direction", "SPI", "Protocol", "Algorithm", "Elapsed time",
              "Life time", "Bytes processed", "Errored packets", "Delete")

# The seed's "Negotiation states" tables: state -> (initiator, responder), per phase 1 mode.
NEGOTIATION_STATES = {
    "main": [
        ("Idle(0)", "---", "---"),
        ("1", "start", "start (1st msg received)"),
        ("2", "---", "1st valid msg received"),
        ("3", "1st msg sent", "1st msg sent"),
        ("4", "1st valid msg received", "2nd valid msg received"),
        ("5", "2nd msg sent", "2nd msg sent"),
        ("6", "2nd valid msg received", "3rd valid msg received"),
        ("7", "3rd msg sent", "3rd msg sent"),
        ("8", "3rd valid msg received", "---"),
        ("Activated(9)", "IKE SA established", "IKE SA established"),
    ],
    "aggressive": [
        ("Idle(0)", "---", "---"),
        ("1", "start", "start (1st msg received)"),
        ("2", "---", "1st valid msg received"),
        ("3", "1st msg sent", "1st msg sent"),
        ("4", "1st valid msg received", "2nd valid msg received"),
        ("5", "---", "---"),
        ("6", "---", "---"),
        ("7", "---", "---"),
        ("8", "---", "---"),
        ("Activated(9)", "IKE SA established", "IKE SA established"),
    ],
}


def status_text(ike_sa):
    """"Activated", "Idle" or "Negotiating(x)" with x the seed's state number."""
    status = ike_sa.get("status") or "Idle"
    if status == "Negotiating":
        return "Negotiating(%s)" % ike_sa.get("state", "?")
    return status


def gateway_text(ike_sa):
    """The Remote Gateway cell: the peer's address now, with the port a NAT gave it, and what
    is configured when that is not the address itself ("203.0.113.9:40001 (%any)",
    "192.0.2.1 (hub.example.net)"). static/app.js shows the same."""
    address = ike_sa.get("remote_gateway") or ""
    current = ike_sa.get("remote_address") or address
    text = address if current.rpartition(":")[2] in ("500", "4500") else current
    configured = ike_sa.get("configured_gateway")
    if configured and configured != address:
        text += " (%s)" % configured
    return text


def nat_t_text(value):
    return NAT_T_TEXT.get(str(value or "none").lower(), str(value))


def direction_text(value):
    return DIRECTION_TEXT.get(str(value).lower(), str(value))


def spi_anchor(spi):
    """The element id of an SA on the status page, from its SPI as any log prints it.

    The kernel's log prints "SPI=0x%x" (no leading zeros), the daemon "0x%08x": both map to the
    same id.
    """
    try:
        value = int(str(spi), 16)          # accepts a "0x" prefix
    except ValueError:
        return None
    return "sa-%x" % value


def text_or_dash(value):
    return "—" if value is None or value == "" else value


def summary_text(summary):
    """The line above the tables when they are paged: peers by status, IKE SA and SA counts."""
    by_status = summary.get("peers_by_status") or {}
    return "%s peers: %s up, %s negotiating, %s idle · %s IKE SAs · %s SAs" % (
        summary.get("peers", 0), by_status.get("Activated", 0), by_status.get("Negotiating", 0),
        by_status.get("Idle", 0), summary.get("ike_sas", 0), summary.get("sas", 0))


def page_text(page):
    """Which peers the paged tables show: "Peers 51–100 of 10000" ("of 37 matching (10000
    peers)" with a filter)."""
    offset, limit = page.get("offset", 0), page.get("limit", 0)
    matching, peers = page.get("matching", 0), page.get("peers", 0)
    if not matching:
        return "No peers match."
    of = "%d" % matching if matching == peers else "%d matching (%d peers)" % (matching, peers)
    if offset >= matching:
        return "No peers on this page: %s" % of
    last = min(offset + limit, matching)
    if last == offset + 1:
        return "Peer %d of %s" % (last, of)
    return "Peers %d–%d of %s" % (offset + 1, last, of)
