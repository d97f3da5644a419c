"""The status page (/), its JSON (/api/status), /metrics and the Delete action."""
from aiohttp import web

from webui import metrics
from webui.app import ctx_of, redirect, render
from webui.control import ControlError


async def fetch_status(request):
    """(status, error text or None); an unreachable daemon shows as empty tables + the error."""
    try:
        return await ctx_of(request).control.status(), None
    except ControlError as exc:
        return {"ike_sas": [], "sas": []}, str(exc)


def _by_id(status):
    return {ike.get("id"): ike for ike in status["ike_sas"]}


async def status_page(request):
    status, error = await fetch_status(request)
    return render(request, "status.html", status=200, ike_sas=status["ike_sas"],
                  sas=status["sas"], ike_by_id=_by_id(status), error=error)


async def api_status(request):
    try:
        text = await ctx_of(request).control.status_json()
    except ControlError as exc:
        return web.json_response({"error": str(exc)}, status=502)
    return web.Response(text=text, content_type="application/json")


async def metrics_page(request):
    from webui.views_certs import inventory      # it needs ikecore.config, as settings pages do
    status, error = await fetch_status(request)
    try:
        certificates = await inventory(request)
    except web.HTTPException:                      # an unreadable config: no certificate rows
        certificates = []
    return web.Response(text=metrics.render(status, up=error is None, certificates=certificates),
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


async def delete(request):
    """POST id: the first POST without `confirmed` shows a confirmation page (the page's script
    asks with a dialog instead and sends confirmed=1 directly)."""
    form = await request.post()
    sa_id = form.get("id", "")
    if not sa_id:
        raise redirect("/", "Nothing to delete: no SA id given.", request)
    status, error = await fetch_status(request)
    what = _describe(status, sa_id)
    if form.get("confirmed") != "1":
        return render(request, "confirm_delete.html", sa_id=sa_id, what=what or sa_id)
    try:
        await ctx_of(request).control.request("delete", id=sa_id)
    except ControlError as exc:
        raise redirect("/", "Delete failed: %s" % exc, request)
    raise redirect("/", "Deleted %s." % (what or sa_id), request)


def _describe(status, sa_id):
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
    app.router.add_get("/metrics", metrics_page)
    app.router.add_post("/delete", delete)
