"""/settings/peers ("VPN peer settings (IKE)") and /settings/connections ("VPN connection
settings"): list, add, edit, delete.

Saving: read the document, change one entry, ikecore.config.write_document_atomic (validates,
then write + fsync + rename; on error the file is untouched), then `reload` on the control socket
so the daemon applies it without dropping unaffected tunnels.
"""
from urllib.parse import quote

from aiohttp import web

from webui import choices, forms
from webui.config_file import config_path, ikecore_config, in_thread, read_config, settings_lock, \
    store_of
from webui.context import ctx_of, redirect, render
from webui.control import ControlError

# One field per proposal slot: "proposals.0" .. the proposal limit (forms.PROPOSAL_SLOTS).
PROPOSAL_FIELDS = tuple("proposals.%d" % slot for slot in range(forms.PROPOSAL_SLOTS))
PEER_FIELDS = ("name", "remote_gateway", "phase1_mode", "act_as", "local_id.type",
               "local_id.value", "remote_id.type", "remote_id.value", "auth", "psk", "cert",
               "key", "ca", "intermediates", "crls", "fetch_crls") + PROPOSAL_FIELDS + (
               "lifetime_s", "nat_t", "dpd.delay_s", "dpd.timeout_s", "fragmentation",
               "fragment_size", "catch_all")
CONNECTION_FIELDS = ("name", "peer", "local_net", "remote_net", "protocol") + PROPOSAL_FIELDS + (
                     "pfs", "lifetime_s", "lifetime_kb")

SECTIONS = {
    # section key in the TOML document -> page facts
    "peer": {"url": "/settings/peers", "title": "VPN peer settings (IKE)", "what": "peer",
             "fields": PEER_FIELDS, "template": "peer_form.html", "to_entry": forms.peer_entry},
    "connection": {"url": "/settings/connections", "title": "VPN connection settings",
                   "what": "connection", "fields": CONNECTION_FIELDS,
                   "template": "connection_form.html", "to_entry": forms.connection_entry},
}


def _find(entries, name):
    for index, entry in enumerate(entries):
        if entry.get("name") == name:
            return index, entry
    raise web.HTTPNotFound(text="no such entry: %s\n" % name)


def _section_of(request):
    return "peer" if request.path.startswith("/settings/peers") else "connection"


async def list_page(request):
    section = _section_of(request)
    doc = (await read_config(request)).unwrap()
    entries = doc.get(section, [])
    return render(request, "settings_list.html", section=section, facts=SECTIONS[section],
                  entries=entries, quote=quote, nets_text=forms.nets_text)


def _form_context(request, section, doc, values, errors, top_error=None, editing=None,
                  has_secret=False, psk_typed=False, stored=None):
    return dict(section=section, facts=SECTIONS[section], values=values, errors=errors,
                top_error=top_error, editing=editing, has_secret=has_secret,
                psk_typed=psk_typed, choices=choices,
                peer_names=[p.get("name") for p in doc.get("peer", [])], **(stored or {}))


async def _stored_certificates(request, section):
    """The peer form's certificate choices from the store (/settings/certificates): our
    certificates that have their key, the CA certificates (trusted or intermediate), the CRLs,
    and {certificate: its key}."""
    if section != "peer":
        return {}
    store = store_of(request)
    entries = [e for e in await in_thread(store.entries) if e["info"]]
    crls = [e for e in await in_thread(store.crl_entries) if e["info"]]

    def label(e):
        return "%s (%s, until %s)" % (e["name"], e["info"]["subject"],
                                      e["info"]["not_after"].strftime("%Y-%m-%d"))
    return {"cert_options": [(e["path"], label(e)) for e in entries
                             if e["kind"] == "local" and e["key_path"]],
            "ca_options": [(e["path"], label(e)) for e in entries if e["kind"] == "ca"],
            "crl_options": [(e["path"], "%s (%s, next update %s)" % (
                e["name"], e["info"]["issuer"], e["info"]["next_update"].strftime("%Y-%m-%d")
                if e["info"]["next_update"] else "none")) for e in crls],
            "stored_keys": {e["path"]: e["key_path"] for e in entries if e["key_path"]}}


async def form_page(request):
    section = _section_of(request)
    doc = (await read_config(request)).unwrap()
    name = request.match_info.get("name")
    entry = _find(doc.get(section, []), name)[1] if name else {}
    values = forms.checked_by_default(section, forms.form_values(entry))
    stored = await _stored_certificates(request, section)
    if values.get("key") and values.get("key") == stored.get("stored_keys", {}).get(
            values.get("cert")):
        values["key"] = ""           # the certificate's own stored key: shown as automatic
    has_secret = bool(entry.get("psk") or entry.get("psk_file"))
    return render(request, SECTIONS[section]["template"],
                  **_form_context(request, section, doc, values, {}, editing=name,
                                  has_secret=has_secret, stored=stored))


async def form_submit(request):
    section = _section_of(request)
    facts = SECTIONS[section]
    config = ikecore_config()
    name = request.match_info.get("name")
    form = await request.post()
    stored = await _stored_certificates(request, section)
    async with settings_lock(request):
        doc = await read_config(request)
        entries = doc.unwrap().get(section, [])
        if name:
            index, old = _find(entries, name)
        else:
            index, old = len(entries), None
        entry, slots = facts["to_entry"](form, old)
        if entry.get("auth") == "rsa" and not entry.get("key"):
            # a stored certificate chosen without a key path: the key stored with it
            key = stored.get("stored_keys", {}).get(entry.get("cert"))
            if key:
                entry["key"] = key
        config.set_entry(doc, section, index if name else None, entry)
        renamed = name and entry.get("name") != name
        if section == "peer" and renamed:      # connections follow their peer's new name
            for connection in doc.get("connection", []):
                if connection.get("peer") == name:
                    connection["peer"] = entry.get("name")
        warnings = []
        try:
            await in_thread(config.write_document_atomic, config_path(request),
                             doc, warnings)
        except config.ConfigError as exc:
            field = forms.field_of_error(exc.key, section, index, slots, facts["fields"])
            errors = {field: exc.message} if field else {}
            top = None if field else (
                "%s: %s" % (exc.key, exc.message) if exc.key else exc.message)
            has_secret = bool(old and (old.get("psk") or old.get("psk_file")))
            return render(request, facts["template"], status=400,
                          **_form_context(request, section, doc.unwrap(), forms.submitted_values(form),
                                          errors, top, editing=name, has_secret=has_secret,
                                          psk_typed=bool(form.get("psk")), stored=stored))
    message = "Saved %s %s. %s" % (facts["what"], entry.get("name"),
                                   await _reload(request))
    if warnings:
        message += " Warning: " + "; ".join(warnings)
    raise redirect(facts["url"], message, request)


async def _reload(request):
    try:
        await ctx_of(request).control.request("reload")
    except ControlError as exc:
        return "The daemon did not apply it yet: %s" % exc
    return "The daemon applied the new configuration; unaffected tunnels stay up."


async def delete(request):
    section = _section_of(request)
    facts = SECTIONS[section]
    config = ikecore_config()
    name = request.match_info["name"]
    async with settings_lock(request):
        doc = await read_config(request)
        index, _ = _find(doc.unwrap().get(section, []), name)
        config.delete_entry(doc, section, index)
        try:
            await in_thread(config.write_document_atomic, config_path(request),
                             doc)
        except config.ConfigError as exc:
            raise redirect(facts["url"], "Cannot delete %s %s: %s" % (
                facts["what"], name, exc.message), request)
    raise redirect(facts["url"], "Deleted %s %s. %s" % (facts["what"], name,
                                                       await _reload(request)), request)


def add_routes(app):
    for base in ("/settings/peers", "/settings/connections"):
        app.router.add_get(base, list_page)
        app.router.add_get(base + "/new", form_page)
        app.router.add_post(base + "/new", form_submit)
        app.router.add_get(base + "/{name}", form_page)
        app.router.add_post(base + "/{name}", form_submit)
        app.router.add_post(base + "/{name}/delete", delete)
