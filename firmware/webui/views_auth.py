"""Login, logout and the (forced) password change."""
import asyncio

from aiohttp import web

from webui import auth
from webui.context import ctx_of, redirect, render, set_session_cookie


def _safe_next(target):
    # Only a local path: never "//host" or a scheme, so the login cannot redirect elsewhere.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


async def login_page(request):
    ctx = ctx_of(request)
    session = request["session"]
    if session is not None and session.user:
        raise web.HTTPSeeOther("/")
    fresh = session is None
    if fresh:
        session = ctx.sessions.new()
        request["session"] = session
    response = render(request, "login.html", next=_safe_next(request.query.get("next")),
                      default_password=not ctx.passwords.is_set(), error=None)
    if fresh:
        set_session_cookie(response, session)
    return response


async def login_submit(request):
    ctx = ctx_of(request)
    form = await request.post()
    client = request.remote or "?"
    target = _safe_next(form.get("next"))
    locked = ctx.limiter.locked_for(client)
    if locked:
        return render(request, "login.html", status=429, next=target,
                      default_password=not ctx.passwords.is_set(),
                      error="Too many failed logins from your address: wait %d seconds."
                            % (int(locked) + 1))
    ok, must_change = await asyncio.get_running_loop().run_in_executor(
        None, ctx.passwords.check, form.get("password", ""))
    if not ok:
        ctx.limiter.failed(client)
        return render(request, "login.html", status=401, next=target,
                      default_password=not ctx.passwords.is_set(),
                      error="Wrong password.")
    ctx.limiter.succeeded(client)
    # A new session id at login: a session fixed before login is worthless afterwards.
    ctx.sessions.drop(request["session"])
    session = ctx.sessions.new()
    session.user = "admin"
    session.must_change = must_change
    response = web.HTTPSeeOther("/password" if must_change else target)
    set_session_cookie(response, session)
    raise response


async def logout(request):
    ctx = ctx_of(request)
    ctx.sessions.drop(request["session"])
    response = web.HTTPSeeOther("/login")
    response.del_cookie(auth.SESSION_COOKIE, path="/")
    raise response


async def password_page(request):
    return render(request, "password.html", error=None,
                  forced=request["session"].must_change)


async def password_submit(request):
    ctx = ctx_of(request)
    session = request["session"]
    form = await request.post()
    ok, _ = await asyncio.get_running_loop().run_in_executor(
        None, ctx.passwords.check, form.get("current", ""))
    error = None
    if not ok:
        error = ("current", "The current password is wrong.")
    else:
        try:
            auth.check_new_password(form.get("new", ""), form.get("confirm", ""))
        except auth.PasswordError as exc:
            error = ("new", "New password: %s." % exc)
    if error:
        return render(request, "password.html", status=400, error=error,
                      forced=session.must_change)
    await asyncio.get_running_loop().run_in_executor(None, ctx.passwords.set, form["new"])
    session.must_change = False
    ctx.sessions.drop_all_logged_in(keep=session)
    raise redirect("/", "The password was changed.", request)


def add_routes(app):
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/password", password_page)
    app.router.add_post("/password", password_submit)
