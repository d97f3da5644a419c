"""The status page (/), its JSON (/api/status, /api/summary), /metrics and the Delete action.

A router may hold 10,000 tunnels (~4 MB of status): with more than PAGE_SIZE peers the page shows
one page of peers, and nothing here then asks the daemon for every SA (docs/architecture.md,
"Control socket"). With fewer, the page is the seed's two tables of everything, as it always was.
"""
import os
from urllib.parse import urlencode

from aiohttp import web

from webui import metrics, selection as selection_
from webui.config_file import certstore, config_path, crl_inventory, in_thread, inventory
from webui.context import ctx_of, redirect, render
from webui.control import ControlError, Refused

PAGE_SIZE = 50          # peers on one page of the status page


def _query(values):
    return "?" + urlencode(values) if values else ""


async def status_page(request):
    try:
        asked = selection_.from_query(request.query)
    except selection_.BadParameter as exc:
        return render(request, "error.html", status=400, title="Bad request", message=str(exc))
    control = ctx_of(request).control
    summary, status, error = None, {"ike_sas": [], "sas": []}, None
    try:
        summary = await control.summary()
    except ControlError as exc:
        error = str(exc)
    # Everything for a small router when nothing is asked; else one page, also while the daemon
    # cannot be asked (app.js must not poll a big router's every SA once it answers again).
    everything = not asked and summary is not None and summary.get("peers", 0) <= PAGE_SIZE
    wanted = {} if everything else dict(asked)
    if not everything and "peer" not in wanted:
        wanted.setdefault("limit", PAGE_SIZE)
    if summary is not None:
        try:
            status = await control.status(**wanted)
        except ControlError as exc:
            error = str(exc)
    page = status.get("page")
    return render(request, "status.html", ike_sas=status["ike_sas"], sas=status["sas"],
                  error=error, summary=summary, page=page, asked=asked,
                  paged=bool(asked) or (summary is not None and not everything),
                  api="/api/status" + _query(wanted), back=request.path_qs,
                  **_pager_links(asked, page))


def _pager_links(asked, page):
    """hrefs of the previous and next pages, keeping the other parameters (the template and
    app.js hide either link at its end)."""
    if not page:
        return {}

    def href(offset):
        values = {k: v for k, v in asked.items() if k != "offset"}
        if offset:
            values["offset"] = offset
        return "/" + _query(values)
    return {"previous_href": href(max(0, page["offset"] - page["limit"])),
            "next_href": href(page["offset"] + page["limit"])}


async def api_status(request):
    """The daemon's status JSON as it wrote it; ?offset=&limit=&filter=&status=&peer= pass
    through (then a "page" object comes with it, except for ?peer=)."""
    try:
        asked = selection_.from_query(request.query)
    except selection_.BadParameter as exc:
        return web.json_response({"error": str(exc)}, status=400)
    try:
        text = await ctx_of(request).control.status_json(**asked)
    except Refused as exc:        # an unknown peer, a selection the daemon refuses
        return web.json_response({"error": str(exc)}, status=400 if asked else 502)
    except ControlError as exc:
        return web.json_response({"error": str(exc)}, status=502)
    return web.Response(text=text, content_type="application/json")


async def api_summary(request):
    """The daemon's summary (counts only); the paged status page polls it for its summary line."""
    try:
        return web.json_response(await ctx_of(request).control.summary())
    except ControlError as exc:
        return web.json_response({"error": str(exc)}, status=502)


async def metrics_page(request):
    """Counts from the summary; the per-SA series only while the router has few SAs (pulling
    every SA on each scrape is what a big router must not do); certificate expiry, CRL updates."""
    control = ctx_of(request).control
    summary, status = {}, None
    try:
        summary = await control.summary()
        if metrics.per_sa_series_fit(summary):
            status = await control.status()
        up = True
    except ControlError:
        up = False
    try:
        certificates, crls = await inventory(request), await crl_inventory(request)
        crls += await in_thread(certstore().fetched_crl_entries,
                                os.path.dirname(config_path(request)))
    except web.HTTPException:                      # an unreadable config: no certificate rows
        certificates, crls = [], []
    return web.Response(text=metrics.render(summary, status, up=up, certificates=certificates,
                                            crls=crls),
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


async def delete(request):
    """POST id: the first POST without `confirmed` shows a confirmation page (the page's script
    asks with a dialog instead and sends confirmed=1 directly). `back` is the status page (with
    its query) to return to."""
    form = await request.post()
    sa_id = form.get("id", "")
    back = _status_page_path(form.get("back"))
    if not sa_id:
        raise redirect(back, "Nothing to delete: no SA id given.", request)
    control = ctx_of(request).control
    what = await _describe(control, sa_id)
    if form.get("confirmed") != "1":
        return render(request, "confirm_delete.html", sa_id=sa_id, what=what or sa_id,
                      back=back)
    try:
        await control.request("delete", id=sa_id)
    except ControlError as exc:
        raise redirect(back, "Delete failed: %s" % exc, request)
    raise redirect(back, "Deleted %s." % (what or sa_id), request)


def _status_page_path(back):
    """The status page with its query, never anywhere else (no open redirect)."""
    if back and (back == "/" or back.startswith("/?")) and "\\" not in back:
        return back
    return "/"


async def _describe(control, sa_id):
    """The SA's words for the confirmation and the flash, from that SA's peer only."""
    try:
        status = await control.status(id=sa_id)
    except ControlError:
        return None          # unknown id or daemon away: the delete request will say which
    for ike in status["ike_sas"]:
        if ike.get("id") == sa_id:
            return "the IKE SA with %s" % ike.get("remote_gateway")
    for sa in status["sas"]:
        if sa.get("id") == sa_id:
            return "the %s SA %s (%s)" % (sa.get("protocol"), sa.get("spi"),
                                           str(sa.get("direction", "")).lower())
    return None


def add_routes(app):
    app.router.add_get("/", status_page)
    app.router.add_get("/api/status", api_status)
    app.router.add_get("/api/summary", api_summary)
    app.router.add_get("/metrics", metrics_page)
    app.router.add_post("/delete", delete)
