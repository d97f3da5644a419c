"""Form fields <-> the TOML entries of the settings pages, and ConfigError.key -> form field.

No validation happens here: values go into the document as typed (digits become integers, so a
typed number is a TOML integer) and ikecore.config, the only validator, names what is wrong.
Form field names are the entry's key paths: "local_id.value", "dpd.delay_s", "proposals.1".
The certificate lists (ca, intermediates, crls) are multiple-choice fields: several values under
one name, a list in the values given to the template.
"""
import copy
import re

from ikecore.protocol.proposals import MAX_PROPOSALS as PROPOSAL_SLOTS

INTEGER = re.compile(r"^[+-]?\d{1,18}$")
FIELD_ALIASES = {"psk_file": "psk"}     # keys without a field of their own
LIST_FIELDS = ("ca", "intermediates", "crls")
CERT_FIELDS = ("cert", "key") + LIST_FIELDS + ("fetch_crls",)
KEY_IN_SECTION = re.compile(r"^(?P<section>peer|connection)\[(?P<index>\d+)\](?:\.(?P<rest>.+))?$")


def _value(text):
    text = text.strip()
    return int(text) if INTEGER.match(text) else text


def _set(entry, key, text, required=False, number=False):
    """Put a typed value in entry; an empty optional field removes the key (= the default)."""
    text = (text or "").strip()
    if text or required:
        entry[key] = _value(text) if number else text
    else:
        entry.pop(key, None)


def _proposals(form, entry):
    """The filled proposal slots, in order; returns slot numbers of the kept ones (for errors)."""
    chosen = [(slot, form.get("proposals.%d" % slot, "").strip()) for slot in range(PROPOSAL_SLOTS)]
    kept = [(slot, name) for slot, name in chosen if name]
    if kept:
        entry["proposals"] = [name for _, name in kept]
    else:
        entry.pop("proposals", None)
    return [slot for slot, _ in kept]


def _all(form, key):
    """Every non-empty value of a multiple-choice field, in order, without repeats."""
    values = form.getall(key, []) if hasattr(form, "getall") else [form.get(key, "")]
    kept = []
    for value in values:
        value = value.strip() if isinstance(value, str) else ""
        if value and value not in kept:
            kept.append(value)
    return kept


def _files(entry, key, paths):
    """A list of files into the entry; ca stays a plain string when it is one file (the form
    the configuration has always had), an empty list removes the key."""
    if not paths:
        entry.pop(key, None)
    elif key == "ca" and len(paths) == 1:
        entry[key] = paths[0]
    else:
        entry[key] = paths


def _identity(form, entry, key):
    id_type = form.get(key + ".type", "").strip()
    value = form.get(key + ".value", "").strip()
    if id_type or value:
        entry[key] = {"type": id_type, "value": value}
    else:
        entry.pop(key, None)


def peer_entry(form, old):
    """The [[peer]] table from the form; old is the entry being edited (or None).

    Keys the form does not show (local_address, psk_file, ...) are kept. The PSK field is empty
    unless the user types a new key: empty keeps the current psk / psk_file.
    """
    entry = copy.deepcopy(old) if old else {}
    for key in ("name", "remote_gateway"):
        _set(entry, key, form.get(key), required=True)
    for key in ("phase1_mode", "act_as", "auth"):
        _set(entry, key, form.get(key))
    _identity(form, entry, "local_id")
    _identity(form, entry, "remote_id")
    if entry.get("auth", "psk") == "psk":
        for key in CERT_FIELDS:
            entry.pop(key, None)
        psk = form.get("psk", "")
        if psk:
            entry["psk"] = psk
            entry.pop("psk_file", None)
    else:
        entry.pop("psk", None)
        entry.pop("psk_file", None)
        # cert: a stored one picked from the dropdown, or a path typed beside it; the CAs: those
        # picked, plus a path typed beside them
        for key in ("cert", "key"):
            _set(entry, key, form.get(key + "_path") or form.get(key))
        cas = _all(form, "ca")
        typed = (form.get("ca_path") or "").strip()
        _files(entry, "ca", cas + ([typed] if typed and typed not in cas else []))
        for key in ("intermediates", "crls"):
            _files(entry, key, _all(form, key))
        if form.get("fetch_crls") == "on":
            entry["fetch_crls"] = True
        else:
            entry.pop("fetch_crls", None)
    slots = _proposals(form, entry)
    _set(entry, "lifetime_s", form.get("lifetime_s"), number=True)
    entry["nat_t"] = form.get("nat_t") == "on"
    _set(entry, "fragmentation", form.get("fragmentation"))
    _set(entry, "fragment_size", form.get("fragment_size"), number=True)
    if form.get("catch_all") == "on":
        entry["catch_all"] = True
    else:
        entry.pop("catch_all", None)
    dpd = dict(entry.get("dpd") or {})
    _set(dpd, "delay_s", form.get("dpd.delay_s"), number=True)
    _set(dpd, "timeout_s", form.get("dpd.timeout_s"), number=True)
    if dpd:
        entry["dpd"] = dpd
    else:
        entry.pop("dpd", None)
    return entry, slots


def nets_value(text):
    """A network field as typed -> the TOML value: "a, b" (commas or spaces) is a list of
    networks, one network stays a string (the single-network form the file had before)."""
    items = [item for item in re.split(r"[\s,]+", (text or "").strip()) if item]
    return items if len(items) > 1 else (items[0] if items else "")


def nets_text(value):
    """A local_net / remote_net value (string or list) as the form and the list show it."""
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value or "")


def connection_entry(form, old):
    entry = copy.deepcopy(old) if old else {}
    for key in ("name", "peer"):
        _set(entry, key, form.get(key), required=True)
    for key in ("local_net", "remote_net"):
        entry[key] = nets_value(form.get(key))
    _set(entry, "protocol", form.get("protocol"))
    slots = _proposals(form, entry)
    _set(entry, "pfs", form.get("pfs"))
    _set(entry, "lifetime_s", form.get("lifetime_s"), number=True)
    _set(entry, "lifetime_kb", form.get("lifetime_kb"), number=True)
    return entry, slots


def form_values(entry):
    """Entry -> {field name: text} to fill the form. Never includes the PSK."""
    values = {}
    for key, value in (entry or {}).items():
        if key in ("psk", "psk_file"):
            continue
        if key in LIST_FIELDS:
            values[key] = [str(v) for v in (value if isinstance(value, list) else [value])]
        elif key == "proposals" and isinstance(value, list):
            for slot, name in enumerate(value[:PROPOSAL_SLOTS]):
                values["proposals.%d" % slot] = str(name)
        elif key in ("local_net", "remote_net"):
            values[key] = nets_text(value)
        elif isinstance(value, dict):
            for sub, subvalue in value.items():
                values["%s.%s" % (key, sub)] = str(subvalue)
        elif isinstance(value, bool):
            values[key] = "on" if value else ""
        else:
            values[key] = str(value)
    return values


def checked_by_default(section, values):
    """An unchecked box sends nothing, so a box must show the daemon's default (NAT-T on) when
    the file leaves its key out, or saving would silently turn it off."""
    from ikecore.config import schema
    for key in schema.SECTIONS[section]:
        if key.kind == "boolean" and key.default:
            values.setdefault(key.name, "on")
    return values


def submitted_values(form):
    """What the user typed, to show again beside the errors (the PSK is never sent back)."""
    values = {key: value for key, value in form.items()
              if key not in ("psk", "csrf_token") and isinstance(value, str)}
    for key in LIST_FIELDS:
        values[key] = _all(form, key)
    return values


def hint(section, field, note=""):
    """A number field's hint from its row in the settings tables (ikecore/config/schema.py):
    what an empty field becomes (the default; note adds why) and what the checker allows."""
    from ikecore.config import schema    # late, as webui.config_file imports ikecore.config
    key = schema.field(section, field)
    allowed = ("%d to %d" % (key.low, key.high) if key.high is not None
               else "%d or more" % key.low)
    if key.off is not None:
        allowed = "%d, or %s" % (key.off, allowed)
    return "Empty: %s%s. Allowed: %s." % (key.default, note, allowed)


def field_of_error(key, section, index, slots, fields):
    """Map ConfigError.key ("peer[2].proposals[1]") to a form field name, or None when the
    error is about another entry or the entry as a whole (then it is shown above the form)."""
    match = KEY_IN_SECTION.match(key or "")
    if not match or match.group("section") != section or int(match.group("index")) != index:
        return None
    rest = match.group("rest")
    if not rest:
        return None
    rest = FIELD_ALIASES.get(rest, rest)
    item = re.match(r"^proposals\[(\d+)\]", rest)
    if item:
        position = int(item.group(1))
        return "proposals.%d" % (slots[position] if position < len(slots) else 0)
    if rest == "proposals":
        return "proposals.0"
    field = rest.replace("[", ".").replace("]", "")
    while field and field not in fields:
        field = field.rpartition(".")[0]
    if field:
        return field
    # A whole table ("local_id", "dpd"): its first field.
    for name in fields:
        if name.startswith(rest + "."):
            return name
    return None
