"""The aiohttp application: routes, the login/CSRF gate, security headers, template rendering."""
import asyncio
import base64
import os
from urllib.parse import quote

import jinja2
from aiohttp import web

from webui import auth, presentation
from webui.control import ControlClient
from webui.firewall_log import LogSource

HERE = os.path.dirname(os.path.abspath(__file__))
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


class Options:
    """Command line settings of the web UI (see __main__)."""

    def __init__(self, socket_path, state_dir, config_path="/etc/ikecore/ikecore.toml",
                 firewall_log=None, logread=None, expiry_check_delay_s=60,
                 system_config="/etc/ikecore/system.conf",
                 system_apply="/run/ikecore/system-apply"):
        self.socket_path = socket_path
        self.state_dir = state_dir
        self.config_path = config_path
        self.firewall_log = firewall_log
        self.logread = logread
        self.expiry_check_delay_s = expiry_check_delay_s
        self.system_config = system_config      # views_system: the System page's file
        self.system_apply = system_apply        # and the FIFO of the root side that applies it


class Context:
    """Everything the handlers share, kept on the application under CONTEXT_KEY."""

    def __init__(self, options, clock=None):
        kwargs = {"clock": clock} if clock else {}
        self.options = options
        self.control = ControlClient(options.socket_path)
        self.passwords = auth.PasswordStore(options.state_dir)
        self.sessions = auth.Sessions(**kwargs)
        self.limiter = auth.LoginLimiter(**kwargs)
        self.firewall_source = LogSource(options.firewall_log, options.logread)
        self.settings_lock = asyncio.Lock()     # one read-modify-write of the config at a time
        self.expiry_task = None                 # views_certs: logs certificates near expiry
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(os.path.join(HERE, "templates")),
            autoescape=True, trim_blocks=True, lstrip_blocks=True)
        self.templates.globals.update(p=presentation)
        self.templates.filters["zip_pairs"] = lambda items: [(x, x) for x in items]


# A typed key where aiohttp has them (3.9+; newer releases warn about plain string keys), the
# plain string on older ones (Debian 12's 3.8).
CONTEXT_KEY = web.AppKey("ctx", Context) if hasattr(web, "AppKey") else "ctx"


def ctx_of(request):
    return request.app[CONTEXT_KEY]


def render(request, template, status=200, **values):
    session = request.get("session")
    values.setdefault("csrf_token", session.csrf if session else "")
    values.setdefault("logged_in", bool(session and session.user))
    values.setdefault("flash", pop_flash(session))
    values["path"] = request.path
    text = ctx_of(request).templates.get_template(template).render(**values)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def pop_flash(session):
    if session is None or not session.flash:
        return None
    message, session.flash = session.flash, None
    return message


def redirect(location, flash=None, request=None):
    if flash and request is not None and request.get("session"):
        request["session"].flash = flash
    return web.HTTPSeeOther(location)


def set_session_cookie(response, session):
    # Secure stays off: the page is plain HTTP on the LAN (a Secure cookie would never come back).
    response.set_cookie(auth.SESSION_COOKIE, session.id, httponly=True, samesite="Strict",
                        path="/")


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
    from webui import views_auth, views_backup, views_certs, views_firmware, views_log, \
        views_settings, views_status, views_system
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
