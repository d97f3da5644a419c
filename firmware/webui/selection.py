"""Which peers the status page and /api/status show: the query string's ?peer= or
?offset=&limit=&filter=&status=, checked here before the daemon is asked (docs/architecture.md,
"Control socket": the same keys, passed through as they are).

An empty value counts as not given (a form's blank filter or "any status").
"""
import re

from ikecore.driver import PAGE_LIMIT_MAX
from ikecore.protocol.status import PEER_STATUSES

PAGING_KEYS = ("offset", "limit", "filter", "status")
KEYS = ("peer",) + PAGING_KEYS
INTEGER = re.compile(r"-?[0-9]{1,18}")


class BadParameter(ValueError):
    """A parameter the daemon would refuse; the message names it and says what is allowed."""


def from_query(query):
    """request.query -> {key: value} of the parameters given; raises BadParameter."""
    selection = {}
    for key in KEYS:
        values = query.getall(key, [])
        if len(values) > 1:
            raise BadParameter("%r is given %d times: give it once" % (key, len(values)))
        if values and values[0] != "":
            selection[key] = _checked(key, values[0])
    if "peer" in selection and any(key in selection for key in PAGING_KEYS):
        raise BadParameter("'peer' shows one peer: it does not go with %s"
                           % ", ".join(repr(k) for k in PAGING_KEYS if k in selection))
    return selection


def _checked(key, text):
    if key == "status":
        if text not in PEER_STATUSES:
            raise BadParameter("'status' must be one of %s, not %r"
                               % (", ".join(PEER_STATUSES), text))
        return text
    if key in ("offset", "limit"):
        low, high = (0, None) if key == "offset" else (1, PAGE_LIMIT_MAX)
        allowed = "an integer from %d%s" % (low, " to %d" % high if high else " up")
        if not INTEGER.fullmatch(text):
            raise BadParameter("%r must be %s, not %r" % (key, allowed, text))
        value = int(text)
        if value < low or (high is not None and value > high):
            raise BadParameter("%r must be %s, not %d" % (key, allowed, value))
        return value
    return text
