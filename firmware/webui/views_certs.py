"""/settings/certificates: the certificate store (webui.certstore) in the page.

Upload a CA certificate (a trusted CA or an intermediate: a peer's settings say which), our
certificate and key (PEM, or PKCS#12 with its password), a CRL, or make a key and a request (CSR)
on the router, download the CSR and upload what the CA signed. The lists show subject, issuer,
validity (a CRL: its issuer, this and next update) and the peers using each; a refused upload
re-shows the page with the reason and writes nothing. No route ever returns a private key.
"""
import asyncio
import logging
import os

from aiohttp import web

from webui.config_file import certstore, config_path, crl_inventory, in_thread, inventory, \
    settings_lock, store_of
from webui.context import CONTEXT_KEY, redirect, render

URL = "/settings/certificates"
log = logging.getLogger("webui.certificates")


async def page(request, status=200, error=None, values=None):
    entries = await inventory(request)
    crls = await crl_inventory(request)
    fetched = await in_thread(certstore().fetched_crls,
                              os.path.dirname(config_path(request)))
    return render(request, "certificates.html", status=status, entries=entries, crls=crls,
                  fetched=fetched, error=error, values=values or {},
                  warning_days=certstore().EXPIRY_WARNING_DAYS, key_bits=certstore().KEY_BITS)


def _upload(form, field):
    """The bytes of an uploaded file field ("" when none was chosen), bounded."""
    item = form.get(field)
    if item is None or isinstance(item, str):
        return b""
    data = item.file.read(certstore().MAX_UPLOAD + 1)
    if len(data) > certstore().MAX_UPLOAD:
        raise certstore().CertError("%s is larger than %d KiB: not a certificate or key file"
                                     % (item.filename or field, certstore().MAX_UPLOAD // 1024))
    return data


def _typed(form):
    """What the user typed, to show again with an error (never a password or a file)."""
    return {k: v for k, v in form.items() if isinstance(v, str)
            and k not in ("csrf_token", "password", "key_password")}


async def _change(request, action, done):
    """Run action(store, form) under the settings lock; on CertError the page again with it."""
    form = await request.post()
    store = store_of(request)
    try:
        async with settings_lock(request):
            result = await in_thread(action, store, form)
    except certstore().CertError as exc:
        return await page(request, status=400, error=str(exc), values=_typed(form))
    raise redirect(URL, done(form, result), request)


def _name(form):
    return (form.get("name") or "").strip()


async def add_ca(request):
    return await _change(
        request, lambda store, form: store.add_ca(_name(form), _upload(form, "file")),
        lambda form, path: "Stored CA certificate %s as %s." % (_name(form), path))


async def add_crl(request):
    def done(form, result):
        path, replaced = result
        return ("%s CRL %s (%s). The daemon reads it again before its next negotiation."
                % ("Replaced" if replaced else "Stored", _name(form), path))
    return await _change(
        request, lambda store, form: store.add_crl(_name(form), _upload(form, "file")), done)


async def add_local(request):
    def action(store, form):
        if form.get("format") == "pkcs12":
            return store.add_pkcs12(_name(form), _upload(form, "file"), form.get("password"))
        return store.add_local(_name(form), _upload(form, "file"), _upload(form, "key_file"),
                               form.get("key_password"))
    return await _change(request, action, lambda form, path: (
        "Stored certificate %s and its private key (%s). Choose it in a peer's settings."
        % (_name(form), path)))


async def generate(request):
    def action(store, form):
        return store.generate(_name(form), form.get("common_name"), form.get("organization"),
                              form.get("country"), form.get("alt_names"),
                              form.get("bits") or 2048)
    return await _change(request, action, lambda form, csr: (
        "Made a private key and a certificate request %s on the router. Download the request, "
        "have your CA sign it and upload the signed certificate below." % _name(form)))


async def download_csr(request):
    name = request.match_info["name"]
    try:
        data = await in_thread(store_of(request).csr, name)
    except certstore().CertError as exc:
        raise web.HTTPNotFound(text="%s\n" % exc)
    return web.Response(body=data, content_type="application/pkcs10", headers={
        "Content-Disposition": 'attachment; filename="%s.csr"' % name})


async def add_signed(request):
    name = request.match_info["name"]
    return await _change(
        request, lambda store, form: store.add_signed(name, _upload(form, "file")),
        lambda form, path: "Stored the signed certificate for request %s (%s)." % (name, path))


async def delete(request):
    kind, name = request.match_info["kind"], request.match_info["name"]
    kinds = certstore()
    if kind not in (kinds.CA, kinds.LOCAL, kinds.CRL):
        raise web.HTTPNotFound(text="no such kind of certificate: %s\n" % kind)
    async with settings_lock(request):
        listed = await (crl_inventory if kind == kinds.CRL else inventory)(request)
        entry = next((e for e in listed if e["kind"] == kind and e["name"] == name), None)
        if entry is None:
            raise web.HTTPNotFound(text="no such certificate: %s\n" % name)
        if entry["used_by"]:
            return await page(request, status=409, error=(
                "%s is used by peer %s: choose another one there first"
                % (name, ", ".join(entry["used_by"]))))
        await in_thread(store_of(request).delete, kind, name)
    raise redirect(URL, "Deleted %s." % name, request)


def log_expiring(config_file):
    """Log one warning per certificate that is expired, not yet valid or close to expiry, and
    per CRL whose next update has passed."""
    from ikecore import config
    path = os.path.realpath(config_file)
    try:
        doc = config.read_document(path).unwrap()
        entries = certstore().inventory(os.path.dirname(path), doc)
        crls = certstore().crl_inventory(os.path.dirname(path), doc)
        crls += certstore().fetched_crl_entries(os.path.dirname(path))
    except (config.ConfigError, OSError) as exc:
        log.warning("certificate expiry check skipped: %s", exc)
        return
    for entry in entries + crls:
        info = entry["info"]
        if not (info and info["warn"]):
            continue
        used = " (used by %s)" % ", ".join(entry["used_by"]) if entry["used_by"] else ""
        if entry["kind"] == "fetched":
            log.warning("CRL fetched from %s (issuer %s): its next update %s has passed, "
                        "certificates checked against it are refused until it is fetched "
                        "again%s", entry["path"], info["issuer"], info["next_update"].date(),
                        " (the last fetch failed: %s)" % entry["error"] if entry["error"]
                        else "")
        elif "next_update" in info:          # a CRL
            log.warning("CRL %s (issuer %s): its next update %s has passed, certificates "
                        "checked against it are refused; upload the CA's newer CRL%s",
                        entry["path"], info["issuer"],
                        info["next_update"].date(), used)
        else:
            log.warning("certificate %s (%s) %s: valid until %s%s", entry["path"],
                        info["subject"], info["state"], info["not_after"].date(), used)


async def _warn_about_expiry(app):
    """log_expiring a minute after start (not to slow the first page) and twice a day."""
    options = app_ctx(app).options
    await asyncio.sleep(options.expiry_check_delay_s)
    while True:
        await in_thread(log_expiring, options.config_path)
        await asyncio.sleep(12 * 3600)


async def _start_warnings(app):
    app_ctx(app).expiry_task = asyncio.ensure_future(_warn_about_expiry(app))


async def _stop_warnings(app):
    app_ctx(app).expiry_task.cancel()


def app_ctx(app):
    return app[CONTEXT_KEY]


def add_routes(app):
    app.router.add_get(URL, page)
    app.router.add_post(URL + "/ca", add_ca)
    app.router.add_post(URL + "/crl", add_crl)
    app.router.add_post(URL + "/local", add_local)
    app.router.add_post(URL + "/generate", generate)
    app.router.add_get(URL + "/request/{name}.csr", download_csr)
    app.router.add_post(URL + "/request/{name}/signed", add_signed)
    app.router.add_post(URL + "/{kind}/{name}/delete", delete)
    app.on_startup.append(_start_warnings)
    app.on_cleanup.append(_stop_warnings)

