"""/log/vpn (the daemon's `log` request) and /log/firewall (nftables lines from the syslog ring).

Both newest first, filtered on the server by query parameters; every SPI links to its SA's row on
the status page (which carries id="sa-<hex spi>").
"""
import re
import time

from webui import firewall_log, presentation
from webui.context import ctx_of, render
from webui.control import ControlError

VPN_LOG_LIMIT = 1000
FIREWALL_SHOWN = 1000
SPI_IN_TEXT = re.compile(r"(?i)(?<![0-9a-z])(0x[0-9a-f]{8})(?![0-9a-z])")


def spi_segments(text):
    """Split log text into ("text", str) and ("spi", str, anchor) pieces for the template,
    so SPIs become links while everything else stays escaped text."""
    pieces, last = [], 0
    for match in SPI_IN_TEXT.finditer(text):
        if match.start() > last:
            pieces.append(("text", text[last:match.start()]))
        pieces.append(("spi", match.group(1), presentation.spi_anchor(match.group(1))))
        last = match.end()
    if last < len(text):
        pieces.append(("text", text[last:]))
    return pieces


def format_time(value):
    if isinstance(value, (int, float)):
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(value))
    return "" if value is None else str(value)


def _sort_key(entry):
    value = entry.get("time")
    return value if isinstance(value, (int, float)) else 0


async def vpn_log(request):
    ctx = ctx_of(request)
    peer = request.query.get("peer", "").strip()
    level = request.query.get("level", "").strip().lower()
    error = None
    try:
        entries = await ctx.control.request("log", limit=VPN_LOG_LIMIT) or []
    except ControlError as exc:
        entries, error = [], str(exc)
    entries = [e for e in entries if isinstance(e, dict)]
    if all(isinstance(e.get("time"), (int, float)) for e in entries):
        entries.sort(key=_sort_key, reverse=True)      # newest first whatever the daemon's order
    peers = sorted({str(e.get("peer")) for e in entries if e.get("peer")})
    levels = sorted({str(e.get("level")).lower() for e in entries if e.get("level")})
    shown = [e for e in entries
             if (not peer or e.get("peer") == peer)
             and (not level or str(e.get("level", "")).lower() == level)]
    rows = [{"time": format_time(e.get("time")), "level": str(e.get("level") or ""),
             "peer": e.get("peer") or "", "text": spi_segments(str(e.get("text") or ""))}
            for e in shown]
    return render(request, "log_vpn.html", rows=rows, peers=peers, levels=levels,
                  peer=peer, level=level, total=len(entries), error=error)


async def firewall(request):
    ctx = ctx_of(request)
    query = request.query
    interface = query.get("interface", "").strip()
    protocol = query.get("protocol", "").strip()
    verdict = query.get("verdict", "").strip()
    peer = query.get("peer", "").strip()
    error = None
    try:
        lines = await ctx.firewall_source.read_lines()
    except OSError as exc:
        lines, error = [], "cannot read the firewall log from %s: %s" % (
            ctx.firewall_source.describe(), exc)
    entries = firewall_log.parse_lines(lines)
    addresses = None
    if peer:
        addresses = {peer}
        try:   # a peer name stands for its gateway address (as the status data knows it)
            status = await ctx.control.status()
            addresses |= {i.get("remote_gateway") for i in status["ike_sas"]
                          if i.get("peer") == peer}
        except ControlError:
            pass
    interfaces = sorted({e.interface for e in entries})
    protocols = sorted({e.protocol for e in entries if e.protocol})
    shown = [e for e in entries if firewall_log.matches(e, interface or None, protocol or None,
                                                        addresses, verdict or None)]
    return render(request, "log_firewall.html", entries=shown[:FIREWALL_SHOWN],
                  total=len(entries), matched=len(shown), interfaces=interfaces,
                  protocols=protocols, interface=interface, protocol=protocol, verdict=verdict,
                  peer=peer, error=error, source=ctx.firewall_source.describe())


def add_routes(app):
    app.router.add_get("/log/vpn", vpn_log)
    app.router.add_get("/log/firewall", firewall)
