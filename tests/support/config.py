"""The daemon's configuration file (docs/config.md) built from keys, for tests.

    cfg = Config(wan_interface="wan0", lan_interface="lo")
    cfg.peer("hq", "198.51.100.2", act_as="initiator", psk="x", local_id=("fqdn", "a.example"),
             dpd=(5, 30))
    cfg.dynamic_peer("shop", ("fqdn", "shop.example.net"), phase1_mode="aggressive", psk="y")
    cfg.connection("hq-lan", "hq", "192.168.1.0/24", ["10.1.0.0/24", "10.2.0.0/24"])
    cfg.write(path)             # or cfg.text()

Keys are the file's own (`phase1_mode`, `nat_t`, `lifetime_s`, ...), so a test reads like the
documentation; only what a test sets is written, everything else is the daemon's default.
Shorthands: an identity as a `(type, value)` pair, `dpd` as `(delay_s, timeout_s)`, `rsa(...)` for
certificate keys. Values are checked by nothing here: the daemon's validator is what is tested.
Tests ABOUT the file's text (error lines, comments kept by the web UI) keep their literal TOML.
"""
import json
import re

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ANY = "%any"


def _key(name):
    return name if _BARE_KEY.match(name) else json.dumps(name)


def value(item):
    """One TOML value: strings (JSON's escapes are TOML's), integers, booleans, lists, inline
    tables."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, (int, float)):
        return repr(item)
    if isinstance(item, str):
        return json.dumps(item, ensure_ascii=False)
    if isinstance(item, (list, tuple)):
        return "[" + ", ".join(value(x) for x in item) + "]"
    if isinstance(item, dict):
        return "{ " + ", ".join("%s = %s" % (_key(k), value(v)) for k, v in item.items()) + " }"
    raise TypeError("no TOML form for %r" % (item,))


def _table(header, keys):
    return header + "\n" + "".join("%s = %s\n" % (_key(k), value(v)) for k, v in keys.items())


def document_text(doc):
    """The text of a document given as {"general": {...}, "peer": [...], "connection": [...]}
    (sections in that order, then any other; an empty section is left out)."""
    parts = []
    names = ["general", "peer", "connection"] + sorted(set(doc) - {"general", "peer", "connection"})
    for name in names:
        section = doc.get(name)
        if not section:
            continue
        if isinstance(section, dict):
            parts.append(_table("[%s]" % name, section))
        else:
            parts.extend(_table("[[%s]]" % name, entry) for entry in section)
    return "\n".join(parts)


def identity(pair):
    """("fqdn", "a.example.net") -> the file's { type = ..., value = ... }; a dict is kept."""
    if pair is None or isinstance(pair, dict):
        return pair
    kind, text = pair
    return {"type": kind, "value": text}


def dpd(setting):
    """(delay_s, timeout_s) or (delay_s,) -> the file's dpd table; a dict is kept."""
    if setting is None or isinstance(setting, dict):
        return setting
    keys = {"delay_s": setting[0]}
    if len(setting) > 1:
        keys["timeout_s"] = setting[1]
    return keys


def rsa(cert, key, ca, intermediates=None, crls=None):
    """The keys of certificate authentication (auth = "rsa"), to splat into peer(...)."""
    keys = {"auth": "rsa", "cert": cert, "key": key, "ca": ca}
    if intermediates is not None:
        keys["intermediates"] = list(intermediates)
    if crls is not None:
        keys["crls"] = list(crls)
    return keys


def peer_table(name, remote_gateway, **keys):
    """One [[peer]] table as a dict (identities and dpd in their shorthands allowed)."""
    entry = {"name": name, "remote_gateway": remote_gateway}
    for key, item in keys.items():
        if item is None:
            continue
        if key in ("local_id", "remote_id"):
            item = identity(item)
        elif key == "dpd":
            item = dpd(item)
        elif isinstance(item, tuple):
            item = list(item)
        entry[key] = item
    return entry


def connection_table(name, peer, local_net, remote_net, **keys):
    """One [[connection]] table as a dict; a network list is a list of strings."""
    entry = {"name": name, "peer": peer,
             "local_net": list(local_net) if isinstance(local_net, tuple) else local_net,
             "remote_net": list(remote_net) if isinstance(remote_net, tuple) else remote_net}
    for key, item in keys.items():
        if item is not None:
            entry[key] = list(item) if isinstance(item, tuple) else item
    return entry


class Config:
    """A whole file: [general], then the [[peer]] and [[connection]] tables in call order."""

    def __init__(self, **general):
        self.general = dict((k, v) for k, v in general.items() if v is not None)
        self.peers = []
        self.connections = []

    def peer(self, name, remote_gateway, **keys):
        """Add a [[peer]]; returns its table (a dict the test may still change)."""
        entry = peer_table(name, remote_gateway, **keys)
        self.peers.append(entry)
        return entry

    def dynamic_peer(self, name, remote_id=None, **keys):
        """A peer on any address (`remote_gateway = "%any"`), told apart by its remote_id
        (docs/config.md "A hub for branches"); catch_all=True for the one main mode PSK peer."""
        return self.peer(name, _ANY, remote_id=remote_id, **keys)

    def connection(self, name, peer, local_net, remote_net, **keys):
        """Add a [[connection]]; returns its table."""
        entry = connection_table(name, peer, local_net, remote_net, **keys)
        self.connections.append(entry)
        return entry

    def document(self):
        """The file as a plain dict (what tomllib would read back)."""
        doc = {}
        if self.general:
            doc["general"] = dict(self.general)
        if self.peers:
            doc["peer"] = [dict(p) for p in self.peers]
        if self.connections:
            doc["connection"] = [dict(c) for c in self.connections]
        return doc

    def text(self):
        return document_text(self.document())

    __str__ = text

    def write(self, path):
        """Write the file at path (str or pathlib); returns the path."""
        with open(str(path), "w") as handle:
            handle.write(self.text())
        return path


def text_of(config):
    """A Config, a document dict or already-written text -> the file's text."""
    if isinstance(config, Config):
        return config.text()
    if isinstance(config, dict):
        return document_text(config)
    return config


# The router the web UI tests edit (docs/config.md's example): WAN eth0, LAN eth1, the branch
# office's gateway and LAN, head office's gateway.
BRANCH_GATEWAY, BRANCH_NET, HQ_GATEWAY = "198.51.100.2", "10.2.0.0/24", "198.51.100.7"
ROUTER_LAN = "192.168.1.0/24"


def webui_router(branch=None, hq=None, branch_lan=None, peers=(), comment=None):
    """[general] eth0/eth1, then peer "branch" at BRANCH_GATEWAY with the keys of `branch`, peer
    "hq" at HQ_GATEWAY with the keys of `hq`, the peers (name, gateway, keys) of `peers`, and the
    connection "branch-lan" (ROUTER_LAN <-> BRANCH_NET) with the keys of `branch_lan`; a part
    given as None is left out. -> the file's text, `comment` (a line) on top."""
    cfg = Config(wan_interface="eth0", lan_interface="eth1")
    if branch is not None:
        cfg.peer("branch", BRANCH_GATEWAY, **branch)
    if hq is not None:
        cfg.peer("hq", HQ_GATEWAY, **hq)
    for name, gateway, keys in peers:
        cfg.peer(name, gateway, **keys)
    if branch_lan is not None:
        cfg.connection("branch-lan", "branch", ROUTER_LAN, BRANCH_NET, **branch_lan)
    return ("# %s\n" % comment if comment else "") + cfg.text()
