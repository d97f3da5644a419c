"""The aiohttp application: routes, the login/CSRF gate, security headers."""
import asyncio
import base64
import os
from urllib.parse import quote

from aiohttp import web

from webui import auth, views_auth, views_backup, views_certs, views_firmware, views_log, \
    views_settings, views_status, views_system
from webui.context import CONTEXT_KEY, HERE, Context, ctx_of, render

PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = ("/login",)
# API paths answer 401 (and accept HTTP Basic auth for scrapers) instead of redirecting to the form.
API_PATHS = ("/api/status", "/api/summary", "/metrics")
MAX_FORM_BYTES = 256 * 1024
# POSTs whose multipart body the handler streams (larger than MAX_FORM_BYTES): the handler checks
# the CSRF token, sent as the body's first field, itself before it reads the rest
STREAMED_UPLOADS = ("/firmware/upload",)

SECURITY_HEADERS = {
    # No inline script or style anywhere: everything comes from /static.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _is_public(path):
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _basic_auth_password(request):
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
    except ValueError:
        return None
    return password if user == "admin" else None


@web.middleware
async def gate(request, handler):
    """Login, forced password change and CSRF check for every request but the public ones."""
    ctx = ctx_of(request)
    session = ctx.sessions.get(request.cookies.get(auth.SESSION_COOKIE))
    request["session"] = session
    path = request.path
    if request.method == "POST" and path not in STREAMED_UPLOADS:
        token = request.headers.get("X-CSRF-Token")
        if token is None and request.content_type in ("application/x-www-form-urlencoded",
                                                      "multipart/form-data"):
            token = (await request.post()).get("csrf_token")
        if session is None or not session.csrf_ok(token):
            return render(request, "error.html", status=403, title="Refused",
                          message="The request was refused: the form's security token (CSRF) "
                                  "is missing or does not belong to your session. Reload the "
                                  "page and try again.")
    if _is_public(path):
        return await handler(request)
    if session is None or not session.user:
        if path in API_PATHS and await _api_login(request):
            return await handler(request)
        if path in API_PATHS or request.method != "GET":
            # No WWW-Authenticate challenge: a browser would pop up its own password dialog
            # (also for the status page's polling); scrapers send Basic credentials unasked.
            raise web.HTTPUnauthorized(text="login required\n")
        raise web.HTTPSeeOther("/login?next=" + quote(request.path_qs, safe="/"))
    if session.must_change and path not in ("/password", "/logout"):
        raise web.HTTPSeeOther("/password")
    return await handler(request)


async def _api_login(request):
    """HTTP Basic auth for the API paths (Prometheus cannot fill in a form)."""
    password = _basic_auth_password(request)
    if password is None:
        return False
    ctx = ctx_of(request)
    client = request.remote or "?"
    if ctx.limiter.locked_for(client):
        return False
    ok, must_change = await asyncio.get_running_loop().run_in_executor(
        None, ctx.passwords.check, password)
    if ok and not must_change:
        ctx.limiter.succeeded(client)
        return True
    if not ok:
        ctx.limiter.failed(client)
    return False


async def _security_headers(request, response):
    for name, value in SECURITY_HEADERS.items():
        if name == "Cache-Control" and request.path.startswith("/static/"):
            continue
        response.headers.setdefault(name, value)


def make_app(options, clock=None):
    app = web.Application(middlewares=[gate], client_max_size=MAX_FORM_BYTES)
    app[CONTEXT_KEY] = Context(options, clock)
    app.on_response_prepare.append(_security_headers)
    views_auth.add_routes(app)
    views_status.add_routes(app)
    views_log.add_routes(app)
    views_settings.add_routes(app)
    views_certs.add_routes(app)
    views_backup.add_routes(app)
    views_firmware.add_routes(app)
    views_system.add_routes(app)
    app.router.add_static("/static/", os.path.join(HERE, "static"), append_version=False)
    return app
