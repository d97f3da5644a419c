"""The settings a configuration file may hold, as tables: one row (Key) per key of each section.

A row says what the key holds (its kind), its limits (range or choices), its default, whether it
is required and what it means. Three readers, so each limit and default is written once here:
check.py validates the file by these rows, the web UI's forms take their dropdown choices and
hints from them, and doc.py writes docs/config.md's key tables from them.

What a row cannot say -- rules between keys (a dynamic peer needs remote_id, one catch-all peer,
networks that must not overlap, the files a certificate peer needs) -- are named rules: a row's
`after` runs them once its value is checked, a key validated inside a rule names it in `by`
(check.RULES holds them, checked against these names at import). Defaults come from
ikecore.protocol.settings (its constants, else its constructors' defaults), so the settings objects and
the file agree.

To add a key: a Key in its section, in the order it is checked and documented; a kind check.py
knows; `python3 -m ikecore.config.doc` to update docs/config.md.
"""
import inspect
import json
import re

from ikecore.protocol import settings as S
from ikecore.protocol.proposals import MAX_PROPOSALS

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
IFNAME_PATTERN = re.compile(r"^[A-Za-z0-9._@-]{1,15}$")
FQDN_PATTERN = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*"
                          r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$")
# remote_gateway spellings for "any address" (strongSwan/Libreswan %any, pfSense 0.0.0.0).
ANY_GATEWAY_SPELLINGS = ("%any", "0.0.0.0", "any")
DEFAULT_IKE_PROPOSALS = ["aes128-sha1-modp2048"]
DEFAULT_CHILD_PROPOSALS = {"esp": ["aes128-sha1"], "ah": ["sha1"], "esp+ah": ["aes128-sha1"]}
# networks per side of a connection: each local x remote pair is a quick mode and an SA pair
MAX_NETWORKS = 16


def _default(cls, argument):
    """A settings class's own default for an argument (S.Peer's nat_t, ...): where
    ikecore.protocol.settings has no constant for a default, its constructor is the one copy."""
    return inspect.signature(cls).parameters[argument].default


class Key:
    """One key of a section.

    kind: how check.py validates it (a Checker.kind_* method), or the rule named in `by`.
    low/high: an integer's range (high None: no upper bound), or a list's length; off: an
    integer outside the range that is allowed all the same (0 turns DPD off). choices: the
    allowed strings. default: the value when the key is absent (None: none, the key is unset);
    default_of(values): the default when it depends on keys checked before it. keys: the
    sub-keys of an inline table. after: rules to run once this key is checked. only_with:
    (key, value) the key is allowed with only (("auth", "rsa")). meaning: the
    docs/config.md text, where ${range}, ${choices}, ${max} and ${SUB_range} (a sub-key's)
    stand for the row's own limits. doc_type/doc_default: the doc's words where the value's own
    spelling would not say it.
    """
    __slots__ = ("name", "kind", "meaning", "default", "default_of", "required", "low", "high",
                 "off", "choices", "keys", "after", "by", "only_with", "doc_type", "doc_default")

    def __init__(self, name, kind, meaning, default=None, default_of=None, required=False,
                 low=None, high=None, off=None, choices=None, keys=(), after=(), by=None,
                 only_with=None, doc_type=None, doc_default=None):
        self.name = name
        self.kind = kind
        self.meaning = meaning
        self.default = default
        self.default_of = default_of
        self.required = required
        self.low = low
        self.high = high
        self.off = off
        self.choices = choices
        self.keys = Section(name, keys) if keys else None
        self.after = tuple(after)
        self.by = by
        self.only_with = only_with
        self.doc_type = doc_type
        self.doc_default = doc_default

    def default_for(self, values):
        """The default in the context of the keys already checked (values: name -> value)."""
        return self.default_of(values) if self.default_of else self.default


class Section:
    """The keys of one table of the file, in the order they are checked and documented."""

    def __init__(self, name, keys):
        self.name = name
        self.keys = tuple(keys)
        self._by_name = {key.name: key for key in self.keys}
        self._names = tuple(key.name for key in self.keys)      # once: 10,000 peers use it
        self.required = tuple(key.name for key in self.keys if key.required)

    def names(self):
        return self._names

    def __getitem__(self, name):
        return self._by_name[name]

    def __iter__(self):
        return iter(self.keys)


def _any_gateway_acts_as(values):
    # a peer from any address has no address to initiate to
    return "responder" if values["remote_gateway"] == S.ANY_GATEWAY else "both"


GENERAL = Section("general", keys=[
    Key("wan_interface", "interface", "an interface name (1–15 of `A-Z a-z 0-9 . _ @ -`)",
        default=_default(S.Settings, "wan_interface")),
    Key("lan_interface", "interface", "an interface name",
        default=_default(S.Settings, "lan_interface")),
])


def _material(name, kind, auth, meaning, **options):
    """A key of one auth method's key material: files.credentials checks it with the others
    (which it is allowed with, which it needs, loading the files)."""
    if auth == "rsa":
        meaning = "`auth = \"rsa\"`: " + meaning
    return Key(name, kind, meaning, by="credentials", only_with=("auth", auth), **options)


PEER = Section("peer", keys=[
    Key("name", "name", "1–32 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit; unique "
        "among peers. Used by `ikectl up/down` and in the VPN log", required=True),
    Key("remote_gateway", "gateway", "the peer's IPv4 address (not multicast or broadcast), "
        "unique among peers (an incoming negotiation is matched to its peer by address); or a "
        "DNS name (`\"branch.example.net\"`, resolved before each initiation); or `\"%any\"` "
        "(also spelled `\"0.0.0.0\"` or `\"any\"`, as strongSwan, Libreswan and pfSense write "
        "it): a peer on any address, chosen by its `remote_id` — see [A hub for branches]"
        "(#a-hub-for-branches-on-changing-addresses)", required=True),
    Key("local_address", "address", "our IPv4 address toward this peer; the daemon binds it "
        "(it may appear later, e.g. by DHCP). When every peer has one, only those addresses "
        "are bound, else `0.0.0.0`", doc_default="none (any)"),
    Key("phase1_mode", "choice", "${choices} — both peers must use the same",
        default=_default(S.Peer, "phase1_mode"),
        choices=S.PHASE1_MODES),
    Key("act_as", "choice", "`initiator`: its connections are brought up when the daemon "
        "starts (and on reload when new); `responder`: never initiates; `both`: initiates when "
        "traffic needs the tunnel (kernel acquire) or on `ikectl up`, and answers",
        default=_default(S.Peer, "act_as"), default_of=_any_gateway_acts_as, choices=S.ACT_AS,
        doc_default="`\"both\"` (`\"responder\"` with `remote_gateway = \"%any\"`)"),
    Key("local_id", "identity", "`{ type = T, value = V }`, see identities below",
        doc_default="our address (`ipv4`)",
        keys=[Key("type", "choice", "the ID type", choices=S.ID_TYPES, required=True),
              Key("value", "string", "the ID", required=True)]),
    Key("remote_id", "identity", "`{ type = T, value = V }`; the peer's ID must match",
        doc_default="accept the peer's address",
        keys=[Key("type", "choice", "the ID type", choices=S.ID_TYPES, required=True),
              Key("value", "string", "the ID", required=True)]),
    Key("auth", "choice", "${choices}", default=_default(S.Peer, "auth"), choices=S.AUTH_METHODS,
        after=("credentials", "aggressive_psk")),
    _material("psk", "string", "psk", "the pre-shared key (non-empty). With `auth = \"psk\"` "
              "exactly one of `psk` / `psk_file`"),
    _material("psk_file", "file", "psk", "a file holding the key (trailing newline removed); "
              "relative paths are relative to the config file's directory. Should be mode 0600"),
    _material("cert", "file", "rsa", "our X.509 certificate file (PEM or DER). The web UI's "
              "Certificates page stores them as `certs/local/NAME.pem` (with "
              "`certs/local/NAME.key`), CAs (trusted or intermediate) as `certs/ca/NAME.pem` and "
              "CRLs as `certs/crl/NAME.pem`, relative to this file"),
    _material("key", "file", "rsa", "our RSA private key, unencrypted PEM; must belong to "
              "`cert`"),
    _material("ca", "files", "rsa", "the trusted CA certificate file, or several (PEM or DER); "
              "the peer's certificate must have a valid path to one of them",
              doc_type="string or list of strings"),
    _material("intermediates", "files", "rsa", "intermediate CA certificates: used to build "
              "the peer's path (besides those it sends in CERT payloads) and sent after our own "
              "certificate", default=[]),
    _material("crls", "files", "rsa", "CRL files (PEM or DER). When set, the peer's "
              "certificate must be covered by one of them and not listed; the daemon reads them "
              "again when they change", default=[]),
    Key("fetch_crls", "boolean", "`auth = \"rsa\"`: also fetch the CRLs the certificates' CRL "
        "distribution points name (`http://` only), over WAN, and check the chain against them "
        "as against `crls` (see below)", default=_default(S.Peer, "fetch_crls"),
        only_with=("auth", "rsa")),
    Key("proposals", "ike_proposals", "${range} phase 1 proposals in preference order, "
        "`encryption-integrity-group`, no duplicates", default=DEFAULT_IKE_PROPOSALS, low=1,
        high=MAX_PROPOSALS),
    Key("lifetime_s", "integer", "IKE SA lifetime, ${range} (3 days). The lifetime in force is "
        "the shorter of ours and the peer's (see below)", default=S.IKE_LIFETIME_S, low=60,
        high=3 * 86400),
    Key("nat_t", "boolean", "NAT traversal (RFC 3947): float to UDP 4500 and ESP-in-UDP when a "
        "NAT is detected", default=_default(S.Peer, "nat_t")),
    Key("dpd", "table", "dead peer detection (RFC 3706): `delay_s` 0 (our probing off) or "
        "${delay_s_range}; `timeout_s` ${timeout_s_range} and longer than `delay_s`. We "
        "advertise DPD and answer R-U-THERE whatever `delay_s` is, so the peer can detect our "
        "death", default={}, after=("dpd_timeout",),
        keys=[Key("delay_s", "integer", "seconds between our probes; 0 turns them off",
                  default=S.DPD_DELAY_S, low=1, high=3600, off=0),
              Key("timeout_s", "integer", "seconds without an answer before the peer is dead",
                  default=S.DPD_TIMEOUT_S, low=1, high=86400)]),
    Key("fragmentation", "choice", "IKE fragmentation (the Cisco IKEv1 extension, as "
        "strongSwan's `fragmentation`): `yes` announces support and sends phase 1 messages "
        "larger than `fragment_size` as fragments once the peer announced support too; "
        "`accept` announces support but sends whole messages; `force` sends large messages as "
        "fragments even when the peer did not announce support; `no` does not announce support "
        "and sends whole messages. Fragments a peer sends are reassembled whatever the setting "
        "(see below)", default=S.DEFAULT_FRAGMENTATION, choices=S.FRAGMENTATION_MODES),
    # The largest IKE datagram (IP + UDP headers included) sent as a fragment: from what leaves
    # room for a useful fragment to the largest UDP datagram.
    Key("fragment_size", "integer", "the largest fragment datagram we send, IP and UDP headers "
        "included (as strongSwan's `charon.fragment_size`), ${range}. 576 bytes crosses any "
        "IPv4 path; a larger value sends fewer fragments", default=S.DEFAULT_FRAGMENT_SIZE,
        low=256, high=65535),
    Key("catch_all", "boolean", "only with `remote_gateway = \"%any\"`, main mode and `auth = "
        "\"psk\"`, without `remote_id`: accept anyone who knows the key, from any address and "
        "with any ID. At most one such peer; it is warned about in the log and on the settings "
        "page", default=_default(S.Peer, "catch_all")),
])

CONNECTION = Section("connection", keys=[
    Key("name", "name", "as peer names; unique among connections", required=True),
    Key("peer", "peer", "the `name` of a `[[peer]]` in this file", required=True),
    Key("local_net", "networks", "IPv4 network behind us, `\"192.168.1.0/24\"`; a single "
        "address `\"192.168.1.10\"` means `/32`. Host bits must be zero. A list (at most "
        "${max}, none overlapping another): several networks, see below", required=True,
        low=1, high=MAX_NETWORKS),
    Key("remote_net", "networks", "IPv4 network behind the peer, or a list as for `local_net`; "
        "`\"0.0.0.0/0\"` sends all traffic to the peer (below). It must not be a `local_net` or "
        "lie inside one", required=True, low=1, high=MAX_NETWORKS, after=("network_overlaps",)),
    Key("protocol", "choice", "${choices}", default=_default(S.Connection, "protocol"),
        choices=S.CHILD_PROTOCOLS),
    Key("proposals", "child_proposals", "${range} quick mode proposals: "
        "`encryption-integrity` for `esp` and `esp+ah`, `integrity` alone for `ah`. No DH "
        "group here: PFS is the `pfs` key", default=DEFAULT_CHILD_PROPOSALS["esp"],
        default_of=lambda values: DEFAULT_CHILD_PROPOSALS[values["protocol"]], low=1,
        high=MAX_PROPOSALS,
        doc_default="`%s` (`ah`: `%s`)" % (json.dumps(DEFAULT_CHILD_PROPOSALS["esp"]),
                                           json.dumps(DEFAULT_CHILD_PROPOSALS["ah"]))),
    Key("pfs", "pfs", "a DH group name (below) for perfect forward secrecy in quick mode, or "
        "`\"none\"`; both peers must agree", default="none"),
    Key("lifetime_s", "integer", "SA lifetime, ${range}. The lifetime in force is the shorter "
        "of ours and the peer's (see below)", default=S.CHILD_LIFETIME_S, low=60, high=86400),
    Key("lifetime_kb", "integer", "SA volume limit in kilobytes, ${range}; 0 = no limit",
        default=_default(S.Connection, "lifetime_kb"), low=0),
])

# The document's sections, in the order they are checked and documented.
SECTIONS = {section.name: section for section in (GENERAL, PEER, CONNECTION)}


def field(section, name):
    """The row of a settings page field: "lifetime_s", or a sub-key as "dpd.delay_s"."""
    key = None
    rows = SECTIONS[section]
    for part in name.split("."):
        key = rows[part]
        rows = key.keys
    return key
ARRAYS = ("peer", "connection")         # written as [[peer]] tables, one per entry
