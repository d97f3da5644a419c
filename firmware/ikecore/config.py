"""The configuration file (TOML) -> ikecore.settings.Settings; the ONLY validator.

The daemon (start and reload) and the web UI's settings pages both come through here, so a value
the daemon would refuse can never be saved. Every problem is a ConfigError naming the key as a
dotted path (`peer[1].proposals[2]`, 0-based like the file order) and the line in the file.
tomllib gives no positions, so `_LineIndex` re-scans the (already valid) source text to map each
key path to the line it is written on. CPython only (stdlib tomllib/ipaddress; tomlkit to edit a
file for the settings pages with its comments kept).
"""
import ipaddress
import os
import re
import stat
import tomllib

from ikecore import settings as S
from ikecore.proposals import MAX_PROPOSALS

DEFAULT_SOURCE = "ikecore.toml"

PHASE1_LIFETIME_RANGE = (60, 3 * 86400)
PHASE2_LIFETIME_RANGE = (60, 86400)
DPD_DELAY_RANGE = (1, 3600)            # 0 turns DPD off
DPD_TIMEOUT_RANGE = (1, 86400)
# Largest IKE datagram (IP + UDP headers included) sent as a fragment: from what leaves room
# for a useful fragment to the largest UDP datagram.
FRAGMENT_SIZE_RANGE = (256, 65535)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
IFNAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,15}$")
FQDN_PATTERN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
                          r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$")
DEFAULT_IKE_PROPOSALS = ["aes128-sha1-modp2048"]
DEFAULT_CHILD_PROPOSALS = {"esp": ["aes128-sha1"], "ah": ["sha1"], "esp+ah": ["aes128-sha1"]}

# networks per side of a connection: each local x remote pair is a quick mode and an SA pair
MAX_NETWORKS = 16
GENERAL_KEYS = ("wan_interface", "lan_interface")
PEER_KEYS = ("name", "remote_gateway", "local_address", "phase1_mode", "act_as", "local_id",
             "remote_id", "auth", "psk", "psk_file", "cert", "key", "ca", "intermediates", "crls", "proposals",
             "lifetime_s", "nat_t", "dpd", "fragmentation", "fragment_size", "catch_all",
             "fetch_crls")
# remote_gateway spellings for "any address" (strongSwan/Libreswan %any, pfSense 0.0.0.0).
ANY_GATEWAY_SPELLINGS = ("%any", "0.0.0.0", "any")
CONNECTION_KEYS = ("name", "peer", "local_net", "remote_net", "protocol", "proposals", "pfs",
                   "lifetime_s", "lifetime_kb")


class ConfigError(Exception):
    """A bad configuration: .key (dotted path or None), .line (1-based or None), .message."""

    def __init__(self, message, key=None, line=None, source=DEFAULT_SOURCE):
        self.message = message
        self.key = key
        self.line = line
        self.source = source
        super().__init__(str(self))

    def __str__(self):
        where = self.source if self.line is None else "%s:%d" % (self.source, self.line)
        if self.key:
            return "%s: %s: %s" % (where, self.key, self.message)
        return "%s: %s" % (where, self.message)


def format_path(path):
    """("peer", 1, "proposals", 2) -> "peer[1].proposals[2]"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += "[%d]" % part
        else:
            text += ("." if text else "") + part
    return text


# ---------------------------------------------------------------------------------------------
# Where each key is written: a position-only scan of a document tomllib has already accepted.

class _LineIndex:
    """Maps key paths (tuples of names and array indexes) to the 1-based line they start on."""

    def __init__(self, text):
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines = {}
        self.array_tables = {}     # resolved path of a [[table]] -> index of its latest entry
        try:
            self._scan_document()
        except (IndexError, ValueError):
            pass                   # positions are a courtesy: a scan surprise must not hide the error

    def line_of(self, path):
        """The line of path, else of its nearest enclosing key that was written down."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    # --- low-level reading
    def _peek(self, n=1):
        return self.text[self.pos:self.pos + n]

    def _advance(self, n=1):
        chunk = self.text[self.pos:self.pos + n]
        self.line += chunk.count("\n")
        self.pos += n

    def _skip_blank(self, newlines):
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in " \t\r" or (newlines and ch == "\n"):
                self._advance()
            elif ch == "#":
                while self.pos < len(self.text) and self.text[self.pos] != "\n":
                    self._advance()
            else:
                return

    def _record(self, path):
        self.lines.setdefault(tuple(path), self.line)

    # --- grammar (only what positions need)
    def _scan_document(self):
        current = ()
        while True:
            self._skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return
            if self._peek(2) == "[[":
                self._advance(2)
                keys = self._read_key("]")
                self._advance(2)
                base = self._resolve(keys[:-1]) + (keys[-1],)
                index = self.array_tables.get(base, -1) + 1
                self.array_tables[base] = index
                self._record(base)
                current = base + (index,)
                self._record(current)
            elif self._peek() == "[":
                self._advance()
                keys = self._read_key("]")
                self._advance()
                current = self._resolve(keys)
                self._record(current)
            else:
                keys = self._read_key("=")
                path = current + tuple(keys)
                self._record(path)
                self._advance()              # "="
                self._scan_value(path)

    def _resolve(self, keys):
        """Dotted header keys -> path with the current index of each array of tables inserted."""
        path = ()
        for key in keys:
            path += (key,)
            if path in self.array_tables:
                path += (self.array_tables[path],)
        return path

    def _read_key(self, terminator):
        keys = []
        while True:
            self._skip_blank(newlines=False)
            ch = self._peek()
            if ch in ("\"", "'"):
                keys.append(self._read_string_token())
            else:
                start = self.pos
                while self._peek() and self._peek() not in " \t.=]\"'" and self._peek() != "\n":
                    self._advance()
                keys.append(self.text[start:self.pos])
            self._skip_blank(newlines=False)
            if self._peek() == ".":
                self._advance()
                continue
            if self._peek() != terminator:
                raise ValueError("unexpected key syntax")
            return keys

    def _read_string_token(self):
        """A quoted key; escapes are kept raw (good enough to name a key)."""
        quote = self._peek()
        self._advance()
        start = self.pos
        while self._peek() != quote:
            if quote == "\"" and self._peek() == "\\":
                self._advance()
            self._advance()
            if self.pos >= len(self.text):
                raise ValueError("unterminated string")
        value = self.text[start:self.pos]
        self._advance()
        return value

    def _scan_value(self, path):
        self._skip_blank(newlines=False)
        head = self._peek(3)
        if head in ("\"\"\"", "'''"):
            self._advance(3)
            while self._peek(3) != head:
                if head[0] == "\"" and self._peek() == "\\":
                    self._advance()
                self._advance()
                if self.pos >= len(self.text):
                    raise ValueError("unterminated string")
            self._advance(3)
            while self._peek() == head[0]:   # up to two quotes may close the content
                self._advance()
        elif head[:1] in ("\"", "'"):
            self._read_string_token()
        elif head[:1] == "[":
            self._advance()
            index = 0
            while True:
                self._skip_blank(newlines=True)
                if self._peek() == "]":
                    self._advance()
                    return
                self._record(path + (index,))
                self._scan_value(path + (index,))
                self._skip_blank(newlines=True)
                if self._peek() == ",":
                    self._advance()
                index += 1
        elif head[:1] == "{":
            self._advance()
            while True:
                self._skip_blank(newlines=False)
                if self._peek() == "}":
                    self._advance()
                    return
                if self._peek() == ",":
                    self._advance()
                    continue
                keys = self._read_key("=")
                self._record(path + tuple(keys))
                self._advance()
                self._scan_value(path + tuple(keys))
        else:
            while self._peek() and self._peek() not in ",]}#\n":
                self._advance()


# ---------------------------------------------------------------------------------------------
# Validation

class _Checker:
    """Walks the document; every error carries the key path and its line."""

    def __init__(self, text, source, base_dir, warnings):
        self.text = text
        self._index = None
        self.source = source
        self.base_dir = base_dir
        self.warnings = warnings

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

    # --- generic checks
    def table(self, path, value, allowed):
        if not isinstance(value, dict):
            self.error(path, "must be a table, got %s" % _type_name(value))
        for key in value:
            if key not in allowed:
                self.error(path + (key,), "unknown key (allowed: %s)" % ", ".join(allowed))
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

    def boolean(self, path, value):
        if type(value) is not bool:
            self.error(path, "must be true or false, got %s" % _type_name(value))
        return value

    def choice(self, path, value, choices):
        self.string(path, value)
        if value not in choices:
            self.error(path, "must be one of %s, got %r" % (", ".join(choices), value))
        return value

    def name(self, path, value):
        self.string(path, value)
        if not NAME_PATTERN.match(value):
            self.error(path, "%r is not a valid name (1-32 letters, digits, '.', '_', '-', "
                             "starting with a letter or digit)" % value)
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

    def proposal_list(self, path, value, parse, default):
        if value is None:
            value = default
        if not isinstance(value, list):
            self.error(path, "must be a list of proposal names, got %s" % _type_name(value))
        if not value:
            self.error(path, "must list at least one proposal")
        if len(value) > MAX_PROPOSALS:
            self.error(path, "at most %d proposals, got %d" % (MAX_PROPOSALS, len(value)))
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

    # --- the document
    def document(self, doc):
        self.table((), doc, ("general", "peer", "connection"))
        general = self.table(("general",), doc.get("general", {}), GENERAL_KEYS)
        interfaces = {}
        for key, default in (("wan_interface", "eth0"), ("lan_interface", "eth1")):
            value = self.string(("general", key), general.get(key, default))
            if not IFNAME_PATTERN.match(value):
                self.error(("general", key), "%r is not an interface name" % value)
            interfaces[key] = value
        peers = {}
        distinct = {}              # what tells peers apart -> the peer (distinct_peer)
        for i, entry in enumerate(self.array(("peer",), doc.get("peer", []))):
            peer = self.peer(("peer", i), entry)
            if peer.name in peers:
                self.error(("peer", i, "name"), "a peer named %r already exists" % peer.name)
            self.distinct_peer(("peer", i), peer, distinct)
            peers[peer.name] = peer
        connections = {}
        groups = set()
        tunnelled = {}                  # (local_net, remote_net) -> the pair tunnelling it
        for i, entry in enumerate(self.array(("connection",), doc.get("connection", []))):
            pairs = self.connection(("connection", i), entry, peers)
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
        return S.Settings(peers=peers, connections=connections, **interfaces)

    def distinct_peer(self, path, peer, seen):
        """The core must be able to tell every two peers apart when they talk to us first: by
        their address, or (dynamic peers) by the ID they send. seen: what earlier peers are told
        apart by -> that peer (a dict, not a scan of the others: 10,000 peers took 12 s)."""
        if not peer.dynamic:
            other = seen.setdefault(("gateway", peer.remote_gateway), peer)
            if other is not peer:
                self.error(path + ("remote_gateway",), "peer %r already uses gateway %s"
                           % (other.name, peer.remote_gateway))
            return
        if peer.catch_all:
            other = seen.setdefault(("catch-all",), peer)
            if other is not peer:
                self.error(path + ("catch_all",), "peer %r is already the catch-all peer; there "
                           "can be only one (main mode with a pre-shared key cannot tell two "
                           "apart before the key is used)" % other.name)
        if peer.remote_id is not None:
            other = seen.setdefault(("id", peer.phase1_mode, peer.remote_id.type,
                                     peer.remote_id.value), peer)
            if other is not peer:
                self.error(path + ("remote_id",), "peer %r already accepts %s %s from any "
                           "address" % (other.name, peer.remote_id.type, peer.remote_id.value))

    def remote_gateway(self, path, value):
        """An IPv4 address, "any" (ANY_GATEWAY_SPELLINGS -> settings.ANY_GATEWAY) or a DNS name
        the daemon resolves before each initiation."""
        self.string(path, value)
        text = value.strip()
        if text.lower() in ANY_GATEWAY_SPELLINGS:
            return S.ANY_GATEWAY
        if S.gateway_kind(text) == S.GATEWAY_ADDRESS or text.replace(".", "").isdigit():
            return self.ipv4_address(path, text)
        if not FQDN_PATTERN.match(text) or "." not in text.rstrip("."):
            self.error(path, "%r is not an IPv4 address, a domain name (like "
                             "branch.example.net) or \"%%any\"" % value)
        return text.rstrip(".").lower()

    def dynamic_peer(self, path, peer):
        """The combinations a peer from any address (or a catch-all) cannot have."""
        if peer.catch_all and not peer.dynamic:
            self.error(path + ("catch_all",), "is only for a peer with remote_gateway = "
                       "\"%any\"")
        if not peer.dynamic:
            return
        if peer.act_as == "initiator":
            self.error(path + ("act_as",), "a peer with remote_gateway = \"%any\" has no "
                       "address to initiate to: it can only respond (\"responder\" or "
                       "\"both\")")
        if peer.catch_all:
            if peer.phase1_mode != "main" or peer.auth != "psk":
                self.error(path + ("catch_all",), "is only for main mode with a pre-shared "
                           "key (aggressive mode and certificates choose the peer by its ID)")
            if peer.remote_id is not None:
                self.error(path + ("remote_id",), "a catch-all peer accepts any ID: remove "
                           "remote_id or catch_all")
            self.warn(path + ("catch_all",), "peer %s accepts anyone who knows its pre-shared "
                      "key, from any address and with any ID (main mode must use the key "
                      "before the peer's ID arrives); prefer certificates or aggressive mode "
                      "with a remote_id per branch" % peer.name)
            return
        if peer.phase1_mode == "main" and peer.auth == "psk":
            self.error(path + ("remote_gateway",), "main mode with a pre-shared key cannot "
                       "choose a peer from any address by its ID (the key is needed before "
                       "the ID arrives, RFC 2409 5.4): use auth = \"rsa\", phase1_mode = "
                       "\"aggressive\", or make it the one catch-all peer (catch_all = true)")
        if peer.remote_id is None:
            self.error(path + ("remote_id",), "a peer with remote_gateway = \"%any\" is "
                       "chosen by its ID: set remote_id (like { type = \"fqdn\", value = "
                       "\"branch1.example.net\" })")

    def array(self, path, value):
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.error(path, "must be written as [[%s]] tables" % path[-1])
        return value

    def identity(self, path, value):
        if value is None:
            return None
        self.table(path, value, ("type", "value"))
        if "type" not in value or "value" not in value:
            self.error(path, "needs both type and value, like { type = \"fqdn\", "
                             "value = \"vpn.example.com\" }")
        id_type = self.choice(path + ("type",), value["type"], S.ID_TYPES)
        text = self.string(path + ("value",), value["value"])
        vpath = path + ("value",)
        if id_type == "ipv4":
            try:
                text = str(ipaddress.IPv4Address(text))
            except ValueError:
                self.error(vpath, "%r is not an IPv4 address (id type ipv4)" % text)
        elif id_type == "fqdn" and not FQDN_PATTERN.match(text):
            self.error(vpath, "%r is not a domain name (id type fqdn)" % text)
        elif id_type == "user_fqdn":
            local, _, domain = text.partition("@")
            if not local or not FQDN_PATTERN.match(domain):
                self.error(vpath, "%r is not an e-mail style name like "
                                  "user@example.com (id type user_fqdn)" % text)
        elif id_type == "dn" and "=" not in text:
            self.error(vpath, "%r is not a distinguished name like "
                              "\"C=SE, O=Example, CN=gw\" (id type dn)" % text)
        return S.Identity(id_type, text)

    def peer(self, path, entry):
        from ikecore import proposals
        self.table(path, entry, PEER_KEYS)
        for required in ("name", "remote_gateway"):
            if required not in entry:
                self.error(path, "missing required key %r" % required)
        name = self.name(path + ("name",), entry["name"])
        gateway = self.remote_gateway(path + ("remote_gateway",), entry["remote_gateway"])
        local_address = None
        if "local_address" in entry:
            local_address = self.ipv4_address(path + ("local_address",), entry["local_address"])
        phase1_mode = self.choice(path + ("phase1_mode",), entry.get("phase1_mode", "main"),
                                  S.PHASE1_MODES)
        act_as = self.choice(path + ("act_as",), entry.get(
            "act_as", "responder" if gateway == S.ANY_GATEWAY else "both"), S.ACT_AS)
        local_id = self.identity(path + ("local_id",), entry.get("local_id"))
        remote_id = self.identity(path + ("remote_id",), entry.get("remote_id"))
        auth = self.choice(path + ("auth",), entry.get("auth", "psk"), S.AUTH_METHODS)
        secrets = {}
        if auth == "psk":
            secrets["psk"] = self.preshared_key(path, entry)
        else:
            secrets.update(self.certificates(path, entry))
        if phase1_mode == "aggressive" and auth == "psk":
            self.warn(path + ("phase1_mode",), "aggressive mode with a pre-shared key sends a "
                      "hash of the key that can be guessed offline; prefer main mode")
        ike_proposals = self.proposal_list(path + ("proposals",), entry.get("proposals"),
                                           proposals.parse_ike, DEFAULT_IKE_PROPOSALS)
        lifetime = self.integer(path + ("lifetime_s",), entry.get("lifetime_s", S.IKE_LIFETIME_S),
                                *PHASE1_LIFETIME_RANGE)
        nat_t = self.boolean(path + ("nat_t",), entry.get("nat_t", True))
        delay, timeout = self.dpd(path + ("dpd",), entry.get("dpd", {}))
        fragmentation = self.choice(path + ("fragmentation",), entry.get("fragmentation",
                                                                       S.DEFAULT_FRAGMENTATION),
                                    S.FRAGMENTATION_MODES)
        fragment_size = self.integer(path + ("fragment_size",), entry.get("fragment_size",
                                                                       S.DEFAULT_FRAGMENT_SIZE),
                                     *FRAGMENT_SIZE_RANGE)
        catch_all = self.boolean(path + ("catch_all",), entry.get("catch_all", False))
        peer = S.Peer(name, gateway, ike_proposals, phase1_mode=phase1_mode, act_as=act_as,
                      local_id=local_id, remote_id=remote_id, auth=auth, lifetime_s=lifetime,
                      nat_t=nat_t, dpd_delay_s=delay, dpd_timeout_s=timeout,
                      local_address=local_address, fragmentation=fragmentation,
                      fragment_size=fragment_size, catch_all=catch_all, **secrets)
        self.dynamic_peer(path, peer)
        return peer

    def preshared_key(self, path, entry):
        for key in ("cert", "key", "ca", "intermediates", "crls", "fetch_crls"):
            if key in entry:
                self.error(path + (key,), "is only used with auth = \"rsa\"")
        if "psk" in entry and "psk_file" in entry:
            self.error(path + ("psk_file",), "use either psk or psk_file, not both")
        if "psk" not in entry and "psk_file" not in entry:
            self.error(path, "auth = \"psk\" needs a psk or a psk_file")
        if "psk" in entry:
            return self.string(path + ("psk",), entry["psk"]).encode("utf-8")
        kpath = path + ("psk_file",)
        full, data = self.file(kpath, entry["psk_file"], "pre-shared key")
        if os.stat(full).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            self.warn(kpath, "%s is readable by others; chmod 600 it" % full)
        data = data.rstrip(b"\r\n")
        if not data.strip():
            self.error(kpath, "pre-shared key file %s is empty" % full)
        return data

    def certificates(self, path, entry):
        for key in ("psk", "psk_file"):
            if key in entry:
                self.error(path + (key,), "is only used with auth = \"psk\"")
        for key in ("cert", "key", "ca"):
            if key not in entry:
                # on the missing key itself, so the settings page marks that field
                self.error(path + (key,), "auth = \"rsa\" needs cert, key and ca files (%s "
                           "missing)" % key)
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        loaded = {"cert": self.certificate(path + ("cert",), entry["cert"], "certificate")}
        # ca: one file (the original key) or a list of them; intermediates and crls: lists.
        cas = entry["ca"] if isinstance(entry["ca"], list) else [entry["ca"]]
        cas = self.path_list(path + ("ca",), cas)
        if not cas:
            self.error(path + ("ca",), "must name at least one CA certificate file")
        intermediates = self.path_list(path + ("intermediates",), entry.get("intermediates", []))
        crls = self.path_list(path + ("crls",), entry.get("crls", []))
        full, data = self.file(path + ("key",), entry["key"], "private key")
        try:
            private_key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            self.error(path + ("key",), "%s is not an unencrypted PEM private key" % full)
        if not isinstance(private_key, rsa.RSAPrivateKey):
            self.error(path + ("key",), "%s is not an RSA key (auth = \"rsa\")" % full)
        if os.stat(full).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            self.warn(path + ("key",), "%s is readable by others; chmod 600 it" % full)
        der = serialization.Encoding.DER
        public_format = serialization.PublicFormat.SubjectPublicKeyInfo
        if (loaded["cert"].public_key().public_bytes(der, public_format)
                != private_key.public_key().public_bytes(der, public_format)):
            self.error(path + ("key",), "%s does not belong to certificate %s"
                       % (full, entry["cert"]))
        key_pem = private_key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())
        return {"cert": entry["cert"], "key": entry["key"], "ca": cas,
                "intermediates": intermediates, "crls": crls,
                "cert_der": loaded["cert"].public_bytes(der), "key_pem": key_pem,
                "ca_ders": [self.certificate(path + (("ca", i) if isinstance(entry["ca"], list)
                                                     else ("ca",)), p, "CA certificate")
                            .public_bytes(der) for i, p in enumerate(cas)],
                "chain_ders": [self.certificate(path + ("intermediates", i), p,
                                                "intermediate certificate").public_bytes(der)
                               for i, p in enumerate(intermediates)],
                "crl_ders": [self.crl(path + ("crls", i), p) for i, p in enumerate(crls)],
                # the driver fetches the CRLs the chain's distribution points name (crl_fetch)
                "fetch_crls": self.boolean(path + ("fetch_crls",), entry.get("fetch_crls", False))}

    def path_list(self, path, value):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.error(path, "must be a list of file names")
        return value

    def certificate(self, path, value, what):
        from cryptography import x509
        full, data = self.file(path, value, what)
        try:
            if b"-----BEGIN" in data:
                return x509.load_pem_x509_certificate(data)
            return x509.load_der_x509_certificate(data)
        except ValueError:
            self.error(path, "%s is not a PEM or DER X.509 certificate" % full)

    def crl(self, path, value):
        full, data = self.file(path, value, "CRL")
        try:
            return _crl_der(data)
        except ValueError:
            self.error(path, "%s is not a PEM or DER X.509 CRL" % full)

    def dpd(self, path, value):
        self.table(path, value, ("delay_s", "timeout_s"))
        delay = value.get("delay_s", S.DPD_DELAY_S)
        if delay != 0:
            self.integer(path + ("delay_s",), delay, *DPD_DELAY_RANGE)
        elif type(delay) is not int:
            self.integer(path + ("delay_s",), delay, 0, 0)
        timeout = self.integer(path + ("timeout_s",), value.get("timeout_s", S.DPD_TIMEOUT_S),
                               *DPD_TIMEOUT_RANGE)
        if delay and timeout <= delay:
            self.error(path + ("timeout_s",), "must be longer than delay_s (%d), got %d"
                       % (delay, timeout))
        return delay, timeout

    def connection(self, path, entry, peers):
        from ikecore import proposals
        self.table(path, entry, CONNECTION_KEYS)
        for required in ("name", "peer", "local_net", "remote_net"):
            if required not in entry:
                self.error(path, "missing required key %r" % required)
        name = self.name(path + ("name",), entry["name"])
        peer = self.string(path + ("peer",), entry["peer"])
        if peer not in peers:
            known = ", ".join(sorted(peers)) or "none defined"
            self.error(path + ("peer",), "no peer named %r (peers: %s)" % (peer, known))
        local_nets = self.networks(path + ("local_net",), entry["local_net"])
        remote_nets = self.networks(path + ("remote_net",), entry["remote_net"])
        self.network_overlaps(local_nets, remote_nets)
        protocol = self.choice(path + ("protocol",), entry.get("protocol", "esp"),
                               S.CHILD_PROTOCOLS)
        child_proposals = self.proposal_list(
            path + ("proposals",), entry.get("proposals"),
            lambda text: proposals.parse_child(text, protocol), DEFAULT_CHILD_PROPOSALS[protocol])
        pfs = self.string(path + ("pfs",), entry.get("pfs", "none"))
        if pfs != "none":
            try:
                pfs = proposals.parse_group(pfs)
            except ValueError as exc:
                self.error(path + ("pfs",), "%s, or \"none\"" % exc)
        lifetime = self.integer(path + ("lifetime_s",), entry.get("lifetime_s", S.CHILD_LIFETIME_S),
                                *PHASE2_LIFETIME_RANGE)
        lifetime_kb = self.integer(path + ("lifetime_kb",), entry.get("lifetime_kb", 0), 0,
                                   None)
        return S.pair_connections(name, peer, [net for net, _ in local_nets],
                                  [net for net, _ in remote_nets], child_proposals,
                                  protocol=protocol, pfs=None if pfs == "none" else pfs,
                                  lifetime_s=lifetime, lifetime_kb=lifetime_kb)

    def networks(self, path, value):
        """local_net / remote_net: one network or a list of them -> [(network, its key path)].
        Networks of one side must not overlap: a packet would match two tunnels' policies."""
        if not isinstance(value, list):
            return [(self.ipv4_network(path, value), path)]
        if not value:
            self.error(path, "must list at least one network")
        if len(value) > MAX_NETWORKS:
            self.error(path, "at most %d networks, got %d" % (MAX_NETWORKS, len(value)))
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

    def network_overlaps(self, local_nets, remote_nets):
        """A remote network may cover a local one (0.0.0.0/0: everything goes to the peer; the
        kernel backend keeps the local networks' own traffic out of the tunnel with bypass
        policies), and local 0.0.0.0/0 (the hub's half of that) may cover a remote one. A remote
        network equal to or inside a local one could never be reached through the tunnel."""
        for local, local_path in local_nets:
            local_net = ipaddress.IPv4Network(local)
            for remote, remote_path in remote_nets:
                remote_net = ipaddress.IPv4Network(remote)
                if remote_net == local_net:
                    self.error(remote_path, "%s overlaps local_net %s (%s): the same network "
                               "cannot be on both sides" % (remote, local, format_path(local_path)))
                if remote_net.subnet_of(local_net) and local_net.prefixlen != 0:
                    self.error(remote_path, "%s overlaps local_net %s (%s): it lies inside it, "
                               "so traffic to it stays on the LAN" % (remote, local,
                                                                      format_path(local_path)))


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


# ---------------------------------------------------------------------------------------------
# Public API (docs/architecture.md)

def _decode(text, source):
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(match.group(1)) if match else None
        if line is None and "end of document" in message:
            line = text.count("\n") + 1
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        raise ConfigError("TOML syntax error: %s" % message, line=line, source=source) from None


def parse(text, source=DEFAULT_SOURCE, base_dir=None, warnings=None):
    """Validate TOML text -> Settings. Relative psk_file/cert/key/ca paths are taken from
    base_dir. Non-fatal findings (a world-readable key file) are appended to `warnings`."""
    doc = _decode(text, source)
    return _Checker(text, source, base_dir, [] if warnings is None else warnings).document(doc)


def _crl_der(data):
    """A CRL file's content (PEM or DER) as DER; ValueError when it is neither."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_crl(data).public_bytes(serialization.Encoding.DER)
    return x509.load_der_x509_crl(data).public_bytes(serialization.Encoding.DER)


def resolve(config_path, path):
    """A file named in the configuration, relative paths taken from the file's directory."""
    if os.path.isabs(path) or not config_path:
        return path
    return os.path.join(os.path.dirname(os.path.abspath(config_path)), path)


def load_crl(config_path, path):
    """A CRL file named in the configuration as DER, for the daemon's reload when it changes."""
    full = resolve(config_path, path)
    try:
        with open(full, "rb") as handle:
            return _crl_der(handle.read())
    except OSError as exc:
        raise ConfigError("cannot read CRL file %s: %s" % (full, exc.strerror)) from None
    except ValueError:
        raise ConfigError("%s is not a PEM or DER X.509 CRL" % full) from None


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


def read_document(path):
    """The file's TOML document for the settings pages to edit: a tomlkit document (a dict that
    also holds the file's comments and layout, so write_document_atomic() keeps them); an empty
    one when the file is missing. Syntax errors are raised as parse() names them."""
    import tomlkit
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except FileNotFoundError:
        return tomlkit.document()
    except OSError as exc:
        raise ConfigError("cannot read configuration: %s" % exc.strerror, source=path) from None
    _decode(text, path)
    return tomlkit.parse(text)


def set_entry(doc, section, index, values):
    """Put values (a plain dict) as entry `index` of the array of tables `section` ([[peer]],
    [[connection]]); index None appends. An existing entry is changed key by key, so comments
    and the keys' order stay where the user wrote them; a new one is written as DESIGN.md shows
    entries (sub-tables inline)."""
    import tomlkit
    if section not in doc:
        doc.add(tomlkit.nl())
        doc[section] = tomlkit.aot()
    entries = doc[section]
    if index is None:
        table = tomlkit.table()
        for key, value in values.items():
            table[key] = _inline(value)
        table.add(tomlkit.nl())          # a blank line before whatever follows
        entries.append(table)
        return
    table = entries[index]
    for key in [k for k in table if k not in values]:
        del table[key]
    for key, value in values.items():
        if table.get(key) != value:
            table[key] = _inline(value)


def delete_entry(doc, section, index):
    """Remove entry `index` of the array of tables `section` with the comment lines written right
    above it. tomlkit keeps the comment lines above a table inside the item before it: those
    below the deleted entry (above whatever follows it) move to the item before, so every comment
    left stays above what it was written for."""
    from tomlkit.items import Comment
    entries = doc[section]
    before = _body_before(doc, section, index)
    moving = [(k, v) for k, v in _after_last_key(entries[index].value.body) if isinstance(v, Comment)]
    del entries[index]
    if before is not None:
        while before and before[-1][0] is None and isinstance(before[-1][1], Comment):
            before.pop()                           # the deleted entry's own heading
        before.extend(moving)


def _body_before(doc, section, index):
    """The body (tomlkit's list of (key, item)) of the table written just before entry index, or
    None when something else is (the document's own top comments are left alone)."""
    from tomlkit.items import AoT, Table
    if index > 0:
        return doc[section][index - 1].value.body
    position = [key.key if key is not None else None for key, _ in doc.body].index(section)
    previous = doc.body[position - 1][1] if position > 0 else None
    if isinstance(previous, Table):
        return previous.value.body
    if isinstance(previous, AoT) and previous.body:
        return previous.body[-1].value.body
    return None


def _after_last_key(body):
    """The blank lines and comments after a table body's last key."""
    tail = []
    for key, item in reversed(body):
        if key is not None:
            break
        tail.insert(0, (key, item))
    return tail


def _inline(value):
    import tomlkit
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update(value)
        return table
    return value


def write_document_atomic(path, doc, warnings=None):
    """Validate doc, then replace the file at path with it (write tmp, fsync, rename, fsync dir).

    On any validation error raises ConfigError and leaves the file untouched. Keeps the old
    file's mode and owner (it may hold a psk); a new file is created 0600. A symlink is
    followed: the file it points to is replaced and the link stays.
    """
    import tomlkit
    try:
        text = tomlkit.dumps(doc)
    except (TypeError, ValueError) as exc:
        raise ConfigError("cannot be written as TOML: %s" % exc, source=path) from None
    source = path
    path = os.path.realpath(path)     # a symlinked config: replace the file it points to
    directory = os.path.dirname(path)
    result = parse(text, source=source, base_dir=directory, warnings=warnings)
    try:
        old = os.stat(path)
        mode, owner = stat.S_IMODE(old.st_mode), (old.st_uid, old.st_gid)
    except FileNotFoundError:
        mode, owner = 0o600, None
    tmp = os.path.join(directory, ".%s.tmp-%d" % (os.path.basename(path), os.getpid()))
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if owner is not None:
                try:
                    os.fchown(handle.fileno(), *owner)
                except PermissionError:
                    pass           # an unprivileged writer keeps its own ownership
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ConfigError("cannot write configuration: %s" % exc.strerror,
                          source=source) from None
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return result
