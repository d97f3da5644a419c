"""/settings/system ("System settings"): the NTP servers that set the clock, whether it is set
(certificate dates are enforced only once it is: the daemon's clock_synchronized), and the
optional remote log server. Saved through webui.system_settings, then applied by the root side."""
import time

from webui import system_settings
from webui.config_file import in_thread
from webui.context import ctx_of, redirect, render
from webui.control import ControlError

URL = "/settings/system"


async def clock_state(request):
    """{"synchronized": True|False|None (daemon not answering), "now": the router's time}."""
    try:
        synchronized = bool((await ctx_of(request).control.summary()).get("clock_synchronized"))
    except ControlError:
        synchronized = None
    return {"synchronized": synchronized,
            "now": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime())}


async def page(request, values=None, errors=None, status=200):
    options = ctx_of(request).options
    if values is None:
        values = system_settings.form_values(
            await in_thread(system_settings.read, options.system_config))
    return render(request, "system.html", status=status, values=values, errors=errors or {},
                  clock=await clock_state(request), protocols=system_settings.PROTOCOLS)


async def show(request):
    return await page(request)


async def submit(request):
    options = ctx_of(request).options
    form = await request.post()
    submitted = {field: str(form.get(field, "")) for field in system_settings.KEYS}
    try:
        settings = system_settings.validate(submitted)
    except system_settings.SettingsError as exc:
        return await page(request, submitted, exc.errors, status=400)
    async with ctx_of(request).settings_lock:
        try:
            await in_thread(system_settings.save, options.system_config, settings)
        except OSError as exc:
            return await page(request, submitted, {"ntp_servers": "not saved: cannot write %s: %s"
                                                   % (options.system_config, exc.strerror)},
                              status=500)
    problem = await in_thread(system_settings.apply, options.system_apply)
    message = "Saved the system settings. " + (
        "The router applies them now." if problem is None
        else "Not applied yet: %s; they take effect at the next boot." % problem)
    raise redirect(URL, message, request)


def add_routes(app):
    app.router.add_get(URL, show)
    app.router.add_post(URL, submit)
