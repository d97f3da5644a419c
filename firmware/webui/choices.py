"""Dropdown choices of the settings pages, taken from ikecore (never a list of our own), so the
pages offer exactly what the daemon supports."""
from ikecore.protocol import proposals, settings

PHASE1_MODES = settings.PHASE1_MODES
ACT_AS = settings.ACT_AS
# The first entry of each dropdown is the value the daemon assumes when the key is absent.
ACT_AS_TEXT = {"both": "Initiator and responder", "initiator": "Initiator",
               "responder": "Responder"}
ID_TYPES = settings.ID_TYPES
AUTH_METHODS = settings.AUTH_METHODS
AUTH_TEXT = {"psk": "Pre-shared key", "rsa": "Certificate (RSA)"}
FRAGMENTATION_TEXT = {
    "yes": "Yes: when the peer supports it, large messages go in fragments",
    "accept": "Accept: announce support, send messages whole",
    "force": "Force: large messages go in fragments even if the peer does not say it supports them",
    "no": "No: do not announce support, send messages whole"}
CHILD_PROTOCOLS = settings.CHILD_PROTOCOLS
PROTOCOL_TEXT = {"esp": "ESP", "ah": "AH", "esp+ah": "ESP and AH"}


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
