"""/settings/backup: download the settings (webui.backup), restore them from such a file.

Restore is upload -> check and summary page -> confirm. Confirming swaps the files in and asks
the daemon to reload; if it refuses (or cannot be asked), the old files go back and the daemon
is asked to reload those, so the router never stays on settings it did not accept. Once it
accepted them, the backup's System page settings (system.conf, validated at upload by that page's
validator) are saved and applied as a save on the System page is.
"""
import socket

from aiohttp import web

from webui import system_settings
from webui.context import ctx_of, redirect, render
from webui.control import ControlError
from webui.config_file import in_thread, settings_lock

URL = "/settings/backup"


def _backup():
    from webui import backup       # tarfile, difflib...: at first use, so start-up stays quick
    return backup


def _config_file(request):
    return ctx_of(request).options.config_path


def _system_file(request):
    return ctx_of(request).options.system_config


async def page(request, status=200, error=None):
    return render(request, "backup.html", status=status, error=error)


async def download(request):
    backup = _backup()
    form = await request.post()
    include_keys = form.get("private_keys") == "on"
    async with settings_lock(request):
        try:
            data = await in_thread(backup.create, _config_file(request), include_keys, None,
                                   _system_file(request))
        except backup.BackupError as exc:
            return await page(request, status=500, error="No backup made: %s" % exc)
    name = backup.filename(socket.gethostname(), include_keys)
    return web.Response(body=data, content_type="application/gzip", headers={
        "Content-Disposition": 'attachment; filename="%s"' % name})


async def upload(request):
    backup = _backup()
    form = await request.post()
    item = form.get("file")
    if item is None or isinstance(item, str):
        return await page(request, status=400, error="Choose a backup file to restore.")
    data = item.file.read()
    try:
        manifest, files = await in_thread(backup.read, data)
        async with settings_lock(request):
            token = await in_thread(backup.stage, _config_file(request), manifest, files,
                                    _system_file(request))
            summary = await in_thread(backup.summarize, _config_file(request), token,
                                      _system_file(request))
    except backup.BackupError as exc:
        return await page(request, status=400, error="%s refused, nothing was changed: %s"
                          % (item.filename or "The file", exc))
    return render(request, "restore_confirm.html", token=token, summary=summary,
                  filename=item.filename or "backup")


async def confirm(request):
    backup = _backup()
    token = request.match_info["token"]
    control = ctx_of(request).control
    async with settings_lock(request):
        try:
            swapped = await in_thread(backup.swap, _config_file(request), token,
                                      _system_file(request))
        except backup.BackupError as exc:
            return await page(request, status=409, error="Not restored: %s" % exc)
        try:
            await control.request("reload")
        except ControlError as exc:
            await in_thread(swapped.undo)
            try:
                await control.request("reload")
            except ControlError:
                pass                    # the daemon kept its running config in any case
            return await page(request, status=409, error=(
                "Not restored: the daemon did not accept the restored settings (%s). The "
                "previous settings are back in place." % exc))
        await in_thread(swapped.commit)
        system = await _restore_system(request, swapped.system_settings)
    raise redirect(URL, "Settings restored from the backup; the daemon applied them." + system,
                   request)


async def _restore_system(request, settings):
    """Save and apply the backup's System page settings (None: it had none) as the System page
    does; the words for the message."""
    if settings is None:
        return ""
    options = ctx_of(request).options
    try:
        await in_thread(system_settings.save, options.system_config, settings)
    except OSError as exc:
        return (" The system settings (NTP, remote syslog) were not restored: cannot write "
                "%s: %s." % (options.system_config, exc.strerror))
    problem = await in_thread(system_settings.apply, options.system_apply)
    if problem is None:
        return " The system settings (NTP, remote syslog) are restored and applied now."
    return (" The system settings (NTP, remote syslog) are restored; not applied yet: %s; "
            "they take effect at the next boot." % problem)


async def cancel(request):
    backup = _backup()
    try:
        await in_thread(backup.discard, _config_file(request), request.match_info["token"])
    except backup.BackupError:
        pass
    raise redirect(URL, "Restore cancelled; nothing was changed.", request)


def add_routes(app):
    app.router.add_get(URL, page)
    app.router.add_post(URL + "/download", download)
    app.router.add_post(URL + "/restore", upload)
    app.router.add_post(URL + "/restore/{token}", confirm)
    app.router.add_post(URL + "/restore/{token}/cancel", cancel)
