"""The configuration file (TOML) -> ikecore.protocol.settings.Settings; the ONLY validator.

The daemon (start and reload) and the web UI's settings pages both come through here, so a value
the daemon would refuse can never be saved. The Checker walks the document by the tables of
schema.py: each key's kind is a `kind_*` method here, each named rule is a function of rules.py
or files.py (RULES). Every problem is a ConfigError naming the key path and its line.
"""
import ipaddress
import os

from ikecore.protocol import settings as S
from ikecore.config import files, rules, schema
from ikecore.config.errors import DEFAULT_SOURCE, ConfigError, decode, format_path
from ikecore.config.lines import _LineIndex

# The rules the tables name (Key.after, Key.by), by name.
RULES = {"credentials": files.credentials, "aggressive_psk": rules.aggressive_psk,
         "dpd_timeout": rules.dpd_timeout, "network_overlaps": rules.network_overlaps}


class Checker:
    """Walks the document; every error carries the key path and its line."""

    def __init__(self, text, source, base_dir, warnings):
        self.text = text
        self._index = None
        self.source = source
        self.base_dir = base_dir
        self.warnings = warnings
        self.peers = {}            # checked so far: name -> settings.Peer (for connection.peer)

    @property
    def index(self):
        """The line index, scanned only when an error or a warning needs a line: for 10,000
        peers the scan took ~11 s and tens of MB the daemon then kept as freed heap."""
        if self._index is None:
            self._index = _LineIndex(self.text)
        return self._index

    def error(self, path, message):
        raise ConfigError(message, key=format_path(path) or None,
                          line=self.index.line_of(path), source=self.source)

    def warn(self, path, message):
        line = self.index.line_of(path)
        where = self.source if line is None else "%s:%d" % (self.source, line)
        self.warnings.append("%s: %s: %s" % (where, format_path(path), message))

    # --- the document, by the tables
    def document(self, doc):
        self.table((), doc, tuple(schema.SECTIONS))
        general = self.entry(("general",), doc.get("general", {}), schema.GENERAL)
        distinct = {}              # what tells peers apart -> the peer (rules.distinct_peer)
        for i, entry in enumerate(self.array(("peer",), doc.get("peer", []))):
            peer = self.peer(("peer", i), entry)
            if peer.name in self.peers:
                self.error(("peer", i, "name"), "a peer named %r already exists" % peer.name)
            rules.distinct_peer(self, ("peer", i), peer, distinct)
            self.peers[peer.name] = peer
        connections = {}
        groups = set()
        tunnelled = {}                  # (local_net, remote_net) -> the pair tunnelling it
        for i, entry in enumerate(self.array(("connection",), doc.get("connection", []))):
            pairs = self.connection(("connection", i), entry)
            if pairs[0].group in groups:
                self.error(("connection", i, "name"),
                           "a connection named %r already exists" % pairs[0].group)
            groups.add(pairs[0].group)
            for pair in pairs:
                # One kernel policy per pair of networks: a second one could never be used.
                other = tunnelled.setdefault((pair.local_net, pair.remote_net), pair)
                if other is not pair:
                    self.error(("connection", i), "connection %r already tunnels %s <-> %s "
                               "(through peer %r)" % (other.group, other.local_net,
                                                      other.remote_net, other.peer))
                connections[pair.name] = pair
        return S.Settings(peers=self.peers, connections=connections, **general)

    def entry(self, path, entry, section):
        """One table checked by its section's rows -> {key: checked value}; unset optional keys
        are None. Rows are checked in table order, each row's rules right after it."""
        self.table(path, entry, section.names())
        for name in section.required:
            if name not in entry:
                self.error(path, "missing required key %r" % name)
        values = {}
        for key in section:
            if key.by is None:
                values[key.name] = self.value(path + (key.name,), entry, key, values)
            for rule in key.after:
                RULES[rule](self, path, entry, values)
        return values

    def value(self, path, entry, key, values):
        if key.name in entry:
            raw = entry[key.name]
        else:
            raw = key.default_for(values)
            if raw is None:
                return None
        return KINDS[key.kind](self, path, raw, key, values)

    def peer(self, path, entry):
        values = self.entry(path, entry, schema.PEER)
        dpd = values["dpd"]
        peer = S.Peer(values["name"], values["remote_gateway"], values["proposals"],
                      phase1_mode=values["phase1_mode"], act_as=values["act_as"],
                      local_id=values["local_id"], remote_id=values["remote_id"],
                      auth=values["auth"], lifetime_s=values["lifetime_s"],
                      nat_t=values["nat_t"], dpd_delay_s=dpd["delay_s"],
                      dpd_timeout_s=dpd["timeout_s"], local_address=values["local_address"],
                      fragmentation=values["fragmentation"],
                      fragment_size=values["fragment_size"], catch_all=values["catch_all"],
                      fetch_crls=values["fetch_crls"], **values["credentials"])
        rules.dynamic_peer(self, path, peer)
        return peer

    def connection(self, path, entry):
        values = self.entry(path, entry, schema.CONNECTION)
        pfs = values["pfs"]
        return S.pair_connections(values["name"], values["peer"],
                                  [net for net, _ in values["local_net"]],
                                  [net for net, _ in values["remote_net"]], values["proposals"],
                                  protocol=values["protocol"],
                                  pfs=None if pfs == "none" else pfs,
                                  lifetime_s=values["lifetime_s"],
                                  lifetime_kb=values["lifetime_kb"])

    # --- the kinds of schema.Key: (path, value, key, values so far) -> the checked value
    def kind_interface(self, path, value, key, values):
        self.string(path, value)
        if not schema.IFNAME_PATTERN.match(value):
            self.error(path, "%r is not an interface name" % value)
        return value

    def kind_name(self, path, value, key, values):
        self.string(path, value)
        if not schema.NAME_PATTERN.match(value):
            self.error(path, "%r is not a valid name (1-32 letters, digits, '.', '_', '-', "
                             "starting with a letter or digit)" % value)
        return value

    def kind_gateway(self, path, value, key, values):
        """An IPv4 address, "any" (ANY_GATEWAY_SPELLINGS -> settings.ANY_GATEWAY) or a DNS name
        the daemon resolves before each initiation."""
        self.string(path, value)
        text = value.strip()
        if text.lower() in schema.ANY_GATEWAY_SPELLINGS:
            return S.ANY_GATEWAY
        if S.gateway_kind(text) == S.GATEWAY_ADDRESS or text.replace(".", "").isdigit():
            return self.ipv4_address(path, text)
        if not schema.FQDN_PATTERN.match(text) or "." not in text.rstrip("."):
            self.error(path, "%r is not an IPv4 address, a domain name (like "
                             "branch.example.net) or \"%%any\"" % value)
        return text.rstrip(".").lower()

    def kind_address(self, path, value, key, values):
        return self.ipv4_address(path, value)

    def kind_choice(self, path, value, key, values):
        self.string(path, value)
        if value not in key.choices:
            self.error(path, "must be one of %s, got %r" % (", ".join(key.choices), value))
        return value

    def kind_string(self, path, value, key, values):
        return self.string(path, value)

    def kind_boolean(self, path, value, key, values):
        if type(value) is not bool:
            self.error(path, "must be true or false, got %s" % _type_name(value))
        return value

    def kind_integer(self, path, value, key, values):
        if key.off is not None and type(value) is int and value == key.off:
            return value
        return self.integer(path, value, key.low, key.high)

    def kind_table(self, path, value, key, values):
        """An inline table of sub-keys, each checked by its own row."""
        self.table(path, value, key.keys.names())
        sub = {}
        for row in key.keys:
            sub[row.name] = self.value(path + (row.name,), value, row, sub)
        return sub

    def kind_identity(self, path, value, key, values):
        self.table(path, value, key.keys.names())
        if "type" not in value or "value" not in value:
            self.error(path, "needs both type and value, like { type = \"fqdn\", "
                             "value = \"vpn.example.com\" }")
        id_type = self.kind_choice(path + ("type",), value["type"], key.keys["type"], values)
        text = self.string(path + ("value",), value["value"])
        vpath = path + ("value",)
        if id_type == "ipv4":
            try:
                text = str(ipaddress.IPv4Address(text))
            except ValueError:
                self.error(vpath, "%r is not an IPv4 address (id type ipv4)" % text)
        elif id_type == "fqdn" and not schema.FQDN_PATTERN.match(text):
            self.error(vpath, "%r is not a domain name (id type fqdn)" % text)
        elif id_type == "user_fqdn":
            local, _, domain = text.partition("@")
            if not local or not schema.FQDN_PATTERN.match(domain):
                self.error(vpath, "%r is not an e-mail style name like "
                                  "user@example.com (id type user_fqdn)" % text)
        elif id_type == "dn" and "=" not in text:
            self.error(vpath, "%r is not a distinguished name like "
                              "\"C=SE, O=Example, CN=gw\" (id type dn)" % text)
        return S.Identity(id_type, text)

    def kind_ike_proposals(self, path, value, key, values):
        from ikecore.protocol import proposals
        return self.proposal_list(path, value, key, proposals.parse_ike)

    def kind_child_proposals(self, path, value, key, values):
        from ikecore.protocol import proposals
        protocol = values["protocol"]
        return self.proposal_list(path, value, key,
                                  lambda text: proposals.parse_child(text, protocol))

    def kind_pfs(self, path, value, key, values):
        from ikecore.protocol import proposals
        pfs = self.string(path, value)
        if pfs != "none":
            try:
                pfs = proposals.parse_group(pfs)
            except ValueError as exc:
                self.error(path, "%s, or \"none\"" % exc)
        return pfs

    def kind_peer(self, path, value, key, values):
        peer = self.string(path, value)
        if peer not in self.peers:
            known = ", ".join(sorted(self.peers)) or "none defined"
            self.error(path, "no peer named %r (peers: %s)" % (peer, known))
        return peer

    def kind_networks(self, path, value, key, values):
        """local_net / remote_net: one network or a list of them -> [(network, its key path)].
        Networks of one side must not overlap: a packet would match two tunnels' policies."""
        if not isinstance(value, list):
            return [(self.ipv4_network(path, value), path)]
        if not value:
            self.error(path, "must list at least one network")
        if len(value) > key.high:
            self.error(path, "at most %d networks, got %d" % (key.high, len(value)))
        nets = []
        for i, item in enumerate(value):
            net = self.ipv4_network(path + (i,), item)
            for other, other_path in nets:
                if other == net:
                    self.error(path + (i,), "%s is listed twice" % net)
                if ipaddress.IPv4Network(other).overlaps(ipaddress.IPv4Network(net)):
                    self.error(path + (i,), "%s overlaps %s (%s)"
                               % (net, other, format_path(other_path)))
            nets.append((net, path + (i,)))
        return nets

    # --- the checks the kinds and rules share
    def table(self, path, value, allowed):
        if not isinstance(value, dict):
            self.error(path, "must be a table, got %s" % _type_name(value))
        for key in value:
            if key not in allowed:
                self.error(path + (key,), "unknown key (allowed: %s)" % ", ".join(allowed))
        return value

    def array(self, path, value):
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.error(path, "must be written as [[%s]] tables" % path[-1])
        return value

    def string(self, path, value, allow_empty=False):
        if not isinstance(value, str):
            self.error(path, "must be a string, got %s" % _type_name(value))
        if not allow_empty and not value.strip():
            self.error(path, "must not be empty")
        return value

    def integer(self, path, value, low, high):
        if type(value) is not int:
            self.error(path, "must be an integer, got %s" % _type_name(value))
        if value < low or (high is not None and value > high):
            if high is None:
                self.error(path, "must be at least %d, got %d" % (low, value))
            self.error(path, "must be between %d and %d, got %d" % (low, high, value))
        return value

    def ipv4_address(self, path, value):
        self.string(path, value)
        try:
            address = ipaddress.IPv4Address(value)
        except ValueError:
            self.error(path, "%r is not an IPv4 address" % value)
        if address.is_unspecified or address.is_multicast or address == ipaddress.IPv4Address(
                "255.255.255.255"):
            self.error(path, "%s cannot be a gateway address" % value)
        return str(address)

    def ipv4_network(self, path, value):
        self.string(path, value)
        try:
            network = ipaddress.IPv4Network(value, strict=False)
        except ValueError:
            self.error(path, "%r is not an IPv4 network (like 192.168.1.0/24)" % value)
        if str(network.network_address) != value.split("/")[0]:
            self.error(path, "%r has host bits set; did you mean %s?" % (value, network))
        return str(network)

    def file(self, path, value, what):
        """A file the configuration names -> (its full path, its content)."""
        self.string(path, value)
        full = value if os.path.isabs(value) or not self.base_dir else os.path.join(
            self.base_dir, value)
        if not os.path.isfile(full):
            self.error(path, "%s file %s does not exist" % (what, full))
        try:
            with open(full, "rb") as handle:
                return full, handle.read()
        except OSError as exc:
            self.error(path, "cannot read %s file %s: %s" % (what, full, exc.strerror))

    def proposal_list(self, path, value, key, parse):
        if not isinstance(value, list):
            self.error(path, "must be a list of proposal names, got %s" % _type_name(value))
        if len(value) < key.low:
            self.error(path, "must list at least one proposal")
        if len(value) > key.high:
            self.error(path, "at most %d proposals, got %d" % (key.high, len(value)))
        parsed = []
        for i, name in enumerate(value):
            self.string(path + (i,), name)
            if name in value[:i]:
                self.error(path + (i,), "%r is listed twice" % name)
            try:
                parsed.append(parse(name))
            except ValueError as exc:
                self.error(path + (i,), str(exc))
        return parsed


# schema.Key.kind -> its Checker method
KINDS = {name[len("kind_"):]: method for name, method in vars(Checker).items()
         if name.startswith("kind_")}


def _type_name(value):
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _check_tables():
    """Every kind and rule the tables name exists here: a typo fails at import, not on the first
    file that uses the key."""
    def rows(section):
        for key in section:
            yield key
            if key.keys:
                yield from rows(key.keys)
    for section in schema.SECTIONS.values():
        for key in rows(section):
            unknown = [r for r in key.after + ((key.by,) if key.by else ()) if r not in RULES]
            if unknown or (key.by is None and key.kind not in KINDS):
                raise AssertionError("schema %s.%s: no check for kind %r / rules %s"
                                     % (section.name, key.name, key.kind, unknown))


_check_tables()


def parse(text, source=DEFAULT_SOURCE, base_dir=None, warnings=None):
    """Validate TOML text -> Settings. Relative psk_file/cert/key/ca paths are taken from
    base_dir. Non-fatal findings (a world-readable key file) are appended to `warnings`."""
    doc = decode(text, source)
    return Checker(text, source, base_dir, [] if warnings is None else warnings).document(doc)


def load(path, warnings=None):
    """Read and validate the file at path."""
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except OSError as exc:
        raise ConfigError("cannot read configuration: %s" % exc.strerror, source=path) from None
    except UnicodeDecodeError:
        raise ConfigError("the file is not UTF-8 text", source=path) from None
    return parse(text, source=path, base_dir=os.path.dirname(os.path.abspath(path)),
                 warnings=warnings)
