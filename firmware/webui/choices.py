"""Dropdown choices of the settings pages, taken from ikecore (never a list of our own), so the
pages offer exactly what the daemon supports: the values and their order from the settings
tables (ikecore/config/schema.py), the words shown for them from here."""
from ikecore.protocol import proposals

# What the pages show for a value; a value without words here is shown as it is written.
TEXTS = {
    "act_as": {"both": "Initiator and responder", "initiator": "Initiator",
               "responder": "Responder"},
    "auth": {"psk": "Pre-shared key", "rsa": "Certificate (RSA)"},
    "fragmentation": {
        "yes": "Yes: when the peer supports it, large messages go in fragments",
        "accept": "Accept: announce support, send messages whole",
        "force": "Force: large messages go in fragments even if the peer does not say it "
                 "supports them",
        "no": "No: do not announce support, send messages whole"},
    "protocol": {"esp": "ESP", "ah": "AH", "esp+ah": "ESP and AH"},
}


def options(section, field):
    """(value, text) for the dropdown of a choice key ("act_as", "local_id.type"): the table's
    choices, its default first, since the daemon assumes the first entry when the key is
    absent and the form leaves it out."""
    from ikecore.config import schema    # late, as webui.config_file imports ikecore.config
    key = schema.field(section, field)
    values = list(key.choices)
    if key.default in values:
        values.remove(key.default)
        values.insert(0, key.default)
    texts = TEXTS.get(key.name, {})
    return [(value, texts.get(value, value)) for value in values]


def ike_proposals():
    return ["%s-%s-%s" % (e, i, g) for e in proposals.ENCRYPTION for i in proposals.INTEGRITY
            for g in proposals.GROUPS]


def esp_proposals():
    return ["%s-%s" % (e, i) for e in proposals.ENCRYPTION for i in proposals.INTEGRITY]


def ah_proposals():
    return list(proposals.INTEGRITY)


def pfs_groups():
    return ["none"] + list(proposals.GROUPS)


def with_current(options, current):
    """The choices plus the current value when the file holds one we do not list (an alias)."""
    return options if not current or current in options else [current] + list(options)


def with_current_pairs(options, current):
    """(value, text) choices plus the current value when it is none of them (a typed path)."""
    if not current or current in [value for value, _ in options]:
        return options
    return [(current, current)] + list(options)


def with_current_many(options, currents):
    """(value, text) choices plus each current value that is none of them (a typed path)."""
    known = [value for value, _ in options]
    return [(c, c) for c in currents or [] if c not in known] + list(options)
