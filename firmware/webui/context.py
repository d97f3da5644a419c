"""What every handler shares: the command-line options, the Context kept on the application, and
the responses built from them (a rendered template, a redirect with a flash message, the session
cookie). Views import this module, never app.py, so the application can import the views."""
import asyncio
import os

import jinja2
from aiohttp import web

from webui import auth, forms, presentation
from webui.control import ControlClient
from webui.system_log import LogSource

HERE = os.path.dirname(os.path.abspath(__file__))


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
        # the persisted system log: the firewall and the VPN log pages read it
        self.system_log = LogSource(options.firewall_log, options.logread)
        self.settings_lock = asyncio.Lock()     # one read-modify-write of the config at a time
        self.expiry_task = None                 # views_certs: logs certificates near expiry
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(os.path.join(HERE, "templates")),
            autoescape=True, trim_blocks=True, lstrip_blocks=True)
        # hint: a number field's default and limits from the settings tables
        self.templates.globals.update(p=presentation, proposal_slots=forms.PROPOSAL_SLOTS,
                                      hint=forms.hint)
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
