"""/log/vpn (the daemon's `log` request merged with its lines in the persisted system log, so
those from before a reboot show too) and /log/firewall (nftables lines from the system log).

Both read the system log through one webui.system_log.LogSource; both newest first, filtered on the server by query parameters; every SPI links to its SA's row on
the status page (which carries id="sa-<hex spi>").
"""
import re
import time

from webui import firewall_log, presentation, system_log
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


async def vpn_log(request):
    ctx = ctx_of(request)
    peer = request.query.get("peer", "").strip()
    level = request.query.get("level", "").strip().lower()
    errors = []
    try:
        live = await ctx.control.request("log", limit=VPN_LOG_LIMIT) or []
    except ControlError as exc:
        live = []
        errors.append(str(exc))
    try:
        lines = await ctx.system_log.read_lines()
    except OSError as exc:
        lines = []
        errors.append("cannot read the system log from %s: %s" % (ctx.system_log.describe(),
                                                                   exc))
    entries = system_log.merge_vpn(system_log.vpn_entries(lines),
                                   [e for e in live if isinstance(e, dict)], VPN_LOG_LIMIT)
    error = "; ".join(errors) or None
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
        lines = await ctx.system_log.read_lines()
    except OSError as exc:
        lines, error = [], "cannot read the firewall log from %s: %s" % (
            ctx.system_log.describe(), exc)
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
                  peer=peer, error=error, source=ctx.system_log.describe())


def add_routes(app):
    app.router.add_get("/log/vpn", vpn_log)
    app.router.add_get("/log/firewall", firewall)
