"""NETLINK_XFRM messages of <linux/xfrm.h>, declared with pyroute2's nlmsg/nla classes (CPython).

pyroute2 knows the NETLINK_XFRM family number but has no SA or policy messages; this module
declares them with its generic field-list machinery. Every C struct is written once below as a
field list under its C declaration, with explicit padding, so the layout is the same on x86_64
and aarch64 (both LP64, u64 aligned to 8): xfrm_selector 56 bytes, xfrm_usersa_info 224,
xfrm_userpolicy_info 168, xfrm_user_tmpl 64 (checked in tests/unit/test_xfrm_messages.py and by
the kernel, which rejects a message of the wrong size).

Fields in network byte order (ports, SPIs) use ">H" / ">I"; addresses are xfrm_address_t, 16
bytes with an IPv4 address in the first 4. Works with pyroute2 0.7.2 (Debian bookworm: the
offline image and the host tests) and 0.9.6 (Buildroot's package): only nlmsg_base's field and
NLA machinery is used, which both share.
"""
import importlib.util
import ipaddress
import socket
import sys


def _import_pyroute2_netlink():
    """pyroute2.netlink without running pyroute2/__init__.py first.

    The package's __init__ imports IPRoute, NDB, sqlite3 and entry points. Measured in the QEMU
    guest (TCG, busy host): `import ikecore.xfrm` 1.1 s this way, and the package's __init__
    another 8.2 s; on the x86_64 host 0.1 s against 0.6 s. We register the package module unexecuted
    (its __path__ is enough to import submodules) and run its __init__ only when someone asks
    the package for anything else (PEP 562 module __getattr__), so `from pyroute2 import
    IPRoute` elsewhere still works.
    """
    if "pyroute2" not in sys.modules:
        spec = importlib.util.find_spec("pyroute2")
        if spec is None:
            raise ImportError("pyroute2 is not installed "
                              "(the XFRM backend needs its netlink classes)")
        package = importlib.util.module_from_spec(spec)

        def __getattr__(name):
            # submodules ("from pyroute2 import config") are the import system's to load, and
            # dunder probes by tools are not a reason to pay for the package's __init__
            if (name.startswith("__") and name != "__version__") or \
                    importlib.util.find_spec("pyroute2." + name) is not None:
                raise AttributeError(name)
            del package.__dict__["__getattr__"]
            spec.loader.exec_module(package)
            return getattr(package, name)

        package.__getattr__ = __getattr__
        sys.modules["pyroute2"] = package
    import pyroute2.netlink
    return pyroute2.netlink


netlink = _import_pyroute2_netlink()
nlmsg = netlink.nlmsg
nla = netlink.nla
nlmsg_base = netlink.nlmsg_base

NETLINK_XFRM = netlink.NETLINK_XFRM
NLM_F_REQUEST = netlink.NLM_F_REQUEST
NLM_F_ACK = netlink.NLM_F_ACK
NLM_F_DUMP = netlink.NLM_F_DUMP
NLM_F_MULTI = netlink.NLM_F_MULTI
NLMSG_ERROR = netlink.NLMSG_ERROR
NLMSG_DONE = netlink.NLMSG_DONE

# --- message types (enum xfrm_msg_type) --------------------------------------------------------
XFRM_MSG_NEWSA = 0x10
XFRM_MSG_DELSA = 0x11
XFRM_MSG_GETSA = 0x12
XFRM_MSG_NEWPOLICY = 0x13
XFRM_MSG_DELPOLICY = 0x14
XFRM_MSG_GETPOLICY = 0x15
XFRM_MSG_ALLOCSPI = 0x16
XFRM_MSG_ACQUIRE = 0x17
XFRM_MSG_EXPIRE = 0x18
XFRM_MSG_UPDPOLICY = 0x19
XFRM_MSG_UPDSA = 0x1a
XFRM_MSG_POLEXPIRE = 0x1b
XFRM_MSG_FLUSHPOLICY = 0x1d

# multicast groups (enum xfrm_nlgroups); bind() takes the mask 1 << (group - 1)
XFRMNLGRP_ACQUIRE = 1
XFRMNLGRP_EXPIRE = 2

# attributes (enum xfrm_attr_type_t)
XFRMA_ALG_AUTH = 1
XFRMA_ALG_CRYPT = 2
XFRMA_ENCAP = 4
XFRMA_TMPL = 5
XFRMA_ALG_AUTH_TRUNC = 20
XFRMA_MARK = 21

# policy directions, actions; SA modes; IPsec protocols; encapsulation
XFRM_POLICY_IN = 0
XFRM_POLICY_OUT = 1
XFRM_POLICY_FWD = 2
XFRM_POLICY_ALLOW = 0
XFRM_MODE_TRANSPORT = 0
XFRM_MODE_TUNNEL = 1
IPPROTO_ESP = 50
IPPROTO_AH = 51
PROTOCOLS = {"esp": IPPROTO_ESP, "ah": IPPROTO_AH}
PROTOCOL_NAMES = {IPPROTO_ESP: "esp", IPPROTO_AH: "ah"}
UDP_ENCAP_ESPINUDP = 2
# usersa_info.flags: pad the AH header to 32 bits, as RFC 4302 s2.2 asks for IPv4 (the kernel's
# default pads to 64 bits, which only another Linux without the flag accepts)
XFRM_STATE_ALIGN4 = 64
XFRM_INF = (1 << 64) - 1          # "no limit" in xfrm_lifetime_cfg
ALL_ALGORITHMS = 0xFFFFFFFF       # template aalgos/ealgos/calgos: accept any

# --- C structs as field lists ------------------------------------------------------------------
# typedef union { __be32 a4; __be32 a6[4]; struct in6_addr in6; } xfrm_address_t;   16 bytes
ADDRESS = "16s"


def _prefixed(prefix, fields):
    return tuple((prefix + name, fmt) for name, fmt in fields)


# struct xfrm_selector { xfrm_address_t daddr, saddr; __be16 dport, dport_mask, sport,
#   sport_mask; __u16 family; __u8 prefixlen_d, prefixlen_s, proto; int ifindex;
#   __kernel_uid32_t user; };                                                          56 bytes
SELECTOR = (("daddr", ADDRESS), ("saddr", ADDRESS), ("dport", ">H"), ("dport_mask", ">H"),
            ("sport", ">H"), ("sport_mask", ">H"), ("family", "H"), ("prefixlen_d", "B"),
            ("prefixlen_s", "B"), ("proto", "B"), ("pad", "3x"), ("ifindex", "i"), ("user", "I"))

# struct xfrm_id { xfrm_address_t daddr; __be32 spi; __u8 proto; };                    24 bytes
XFRM_ID = (("daddr", ADDRESS), ("spi", ">I"), ("proto", "B"), ("pad", "3x"))

# struct xfrm_lifetime_cfg { __u64 soft_byte_limit, hard_byte_limit, soft_packet_limit,
#   hard_packet_limit, soft_add_expires_seconds, hard_add_expires_seconds,
#   soft_use_expires_seconds, hard_use_expires_seconds; };                             64 bytes
LIFETIME_CFG = tuple((name, "Q") for name in (
    "soft_byte_limit", "hard_byte_limit", "soft_packet_limit", "hard_packet_limit",
    "soft_add_expires_seconds", "hard_add_expires_seconds", "soft_use_expires_seconds",
    "hard_use_expires_seconds"))

# struct xfrm_lifetime_cur { __u64 bytes, packets, add_time, use_time; };               32 bytes
LIFETIME_CUR = tuple((name, "Q") for name in ("bytes", "packets", "add_time", "use_time"))

# struct xfrm_stats { __u32 replay_window, replay, integrity_failed; };                 12 bytes
STATS = (("replay_window", "I"), ("replay", "I"), ("integrity_failed", "I"))

# struct xfrm_usersa_info { struct xfrm_selector sel; struct xfrm_id id; xfrm_address_t saddr;
#   struct xfrm_lifetime_cfg lft; struct xfrm_lifetime_cur curlft; struct xfrm_stats stats;
#   __u32 seq, reqid; __u16 family; __u8 mode, replay_window, flags; };               224 bytes
USERSA_INFO = (_prefixed("sel_", SELECTOR) + _prefixed("id_", XFRM_ID) + (("saddr", ADDRESS),)
               + _prefixed("lft_", LIFETIME_CFG) + _prefixed("curlft_", LIFETIME_CUR)
               + _prefixed("stats_", STATS)
               + (("seq", "I"), ("reqid", "I"), ("family", "H"), ("mode", "B"),
                  ("replay_window", "B"), ("flags", "B"), ("pad", "7x")))

# struct xfrm_usersa_id { xfrm_address_t daddr; __be32 spi; __u16 family; __u8 proto; }; 24 bytes
USERSA_ID = (("daddr", ADDRESS), ("spi", ">I"), ("family", "H"), ("proto", "B"), ("pad", "x"))

# struct xfrm_userspi_info { struct xfrm_usersa_info info; __u32 min, max; };          232 bytes
USERSPI_INFO = USERSA_INFO + (("min", "I"), ("max", "I"))

# struct xfrm_userpolicy_info { struct xfrm_selector sel; struct xfrm_lifetime_cfg lft;
#   struct xfrm_lifetime_cur curlft; __u32 priority, index; __u8 dir, action, flags, share; };
#                                                                                     168 bytes
USERPOLICY_INFO = (_prefixed("sel_", SELECTOR) + _prefixed("lft_", LIFETIME_CFG)
                   + _prefixed("curlft_", LIFETIME_CUR)
                   + (("priority", "I"), ("index", "I"), ("dir", "B"), ("action", "B"),
                      ("flags", "B"), ("share", "B"), ("pad", "4x")))

# struct xfrm_userpolicy_id { struct xfrm_selector sel; __u32 index; __u8 dir; };       64 bytes
USERPOLICY_ID = _prefixed("sel_", SELECTOR) + (("index", "I"), ("dir", "B"), ("pad", "3x"))

# struct xfrm_user_tmpl { struct xfrm_id id; __u16 family; xfrm_address_t saddr; __u32 reqid;
#   __u8 mode, share, optional; __u32 aalgos, ealgos, calgos; };                        64 bytes
USER_TMPL = (_prefixed("id_", XFRM_ID) + (("family", "H"), ("pad1", "2x"), ("saddr", ADDRESS),
             ("reqid", "I"), ("mode", "B"), ("share", "B"), ("optional", "B"), ("pad2", "x"),
             ("aalgos", "I"), ("ealgos", "I"), ("calgos", "I")))

# struct xfrm_user_acquire { struct xfrm_id id; xfrm_address_t saddr; struct xfrm_selector sel;
#   struct xfrm_userpolicy_info policy; __u32 aalgos, ealgos, calgos, seq; };          280 bytes
USER_ACQUIRE = (_prefixed("id_", XFRM_ID) + (("saddr", ADDRESS),) + _prefixed("sel_", SELECTOR)
                + _prefixed("policy_", USERPOLICY_INFO)
                + (("aalgos", "I"), ("ealgos", "I"), ("calgos", "I"), ("seq", "I")))

# struct xfrm_user_expire { struct xfrm_usersa_info state; __u8 hard; };               232 bytes
USER_EXPIRE = _prefixed("state_", USERSA_INFO) + (("hard", "B"), ("pad_hard", "7x"))

# struct xfrm_encap_tmpl { __u16 encap_type; __be16 encap_sport, encap_dport;
#   xfrm_address_t encap_oa; };                                                        24 bytes
ENCAP_TMPL = (("encap_type", "H"), ("encap_sport", ">H"), ("encap_dport", ">H"), ("pad", "2x"),
              ("encap_oa", ADDRESS))

# struct xfrm_algo { char alg_name[64]; unsigned int alg_key_len /* bits */; char alg_key[]; };
ALGO = (("alg_name", "64s"), ("alg_key_len", "I"))
# struct xfrm_algo_auth { char alg_name[64]; unsigned int alg_key_len, alg_trunc_len;
#   char alg_key[]; };
ALGO_AUTH = (("alg_name", "64s"), ("alg_key_len", "I"), ("alg_trunc_len", "I"))

# struct xfrm_mark { __u32 v, m; };
MARK = (("v", "I"), ("m", "I"))


# --- pyroute2 classes --------------------------------------------------------------------------
class _ZeroedStrings:
    """pyroute2 fills new fields with 0, which struct cannot pack as bytes: start them empty."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, fmt in self.fields:
            if fmt.endswith("s"):
                self[name] = b""


class _bare_struct(_ZeroedStrings, nlmsg_base, netlink.nlmsg_encoder_generic,
                   netlink.nlmsg_decoder_generic):
    """A C struct without a netlink header: one element of an array inside an attribute."""
    header = None


class user_tmpl(_bare_struct):
    fields = USER_TMPL


class _key_tail:
    """An algorithm attribute: its fixed fields, then alg_key_len bits of key."""

    def ft_encode(self, offset):
        key = bytes(self["alg_key"])
        self["alg_key_len"] = len(key) * 8
        offset, _ = super().ft_encode(offset)        # the fixed part is a multiple of 4 bytes
        padding = -len(key) % 4                       # attributes are 4-aligned; length excludes it
        self.data.extend(key + bytes(padding))
        return offset + len(key) + padding, padding

    def ft_decode(self, offset):
        super().ft_decode(offset)
        start = offset + self.get_size()
        self["alg_key"] = bytes(self.data[start:start + self["alg_key_len"] // 8])


class xfrm_attrs:
    """The attributes (enum xfrm_attr_type_t) our messages carry, as pyroute2 NLA classes."""

    nla_map = ((XFRMA_ALG_AUTH, "XFRMA_ALG_AUTH", "xfrm_algo"),
               (XFRMA_ALG_CRYPT, "XFRMA_ALG_CRYPT", "xfrm_algo"),
               (XFRMA_ENCAP, "XFRMA_ENCAP", "xfrm_encap_tmpl"),
               (XFRMA_TMPL, "XFRMA_TMPL", "xfrm_tmpl_list"),
               (XFRMA_ALG_AUTH_TRUNC, "XFRMA_ALG_AUTH_TRUNC", "xfrm_algo_auth"),
               (XFRMA_MARK, "XFRMA_MARK", "xfrm_mark"))

    class xfrm_algo(_key_tail, _ZeroedStrings, nla):
        fields = ALGO

    class xfrm_algo_auth(_key_tail, _ZeroedStrings, nla):
        fields = ALGO_AUTH

    class xfrm_encap_tmpl(_ZeroedStrings, nla):
        fields = ENCAP_TMPL

    class xfrm_mark(nla):
        fields = MARK

    class xfrm_tmpl_list(nla):
        """XFRMA_TMPL: an array of struct xfrm_user_tmpl, applied first to last on output."""
        fields = ()

        def ft_encode(self, offset):
            for template in self["templates"]:
                element = user_tmpl(data=self.data, offset=offset)
                element.update(template)
                element.encode()
                offset += user_tmpl.get_size()
            return offset, 0

        def ft_decode(self, offset):
            size = user_tmpl.get_size()
            end = self.offset + self.length
            self["templates"] = []
            while offset + size <= end:
                element = user_tmpl(data=self.data, offset=offset)
                element.decode()
                self["templates"].append(dict((name, element[name]) for name, _ in USER_TMPL))
                offset += size


class _message(_ZeroedStrings, xfrm_attrs, nlmsg):
    """An XFRM netlink message: nlmsghdr, one fixed struct, then attributes."""


class usersa_info(_message):
    """XFRM_MSG_NEWSA / UPDSA requests; NEWSA replies and dump entries."""
    fields = USERSA_INFO


class usersa_id(_message):
    """XFRM_MSG_DELSA / GETSA requests."""
    fields = USERSA_ID


class sa_dump_request(_message):
    """XFRM_MSG_GETSA with NLM_F_DUMP: no struct at all. The kernel parses a SA dump request's
    body as attributes, so a usersa_id there is logged as "bytes leftover after parsing
    attributes" on every dump (iproute2 sends an empty body too)."""
    fields = ()


class userspi_info(_message):
    """XFRM_MSG_ALLOCSPI request."""
    fields = USERSPI_INFO


class userpolicy_info(_message):
    """XFRM_MSG_NEWPOLICY / UPDPOLICY requests; NEWPOLICY replies and dump entries."""
    fields = USERPOLICY_INFO


class userpolicy_id(_message):
    """XFRM_MSG_DELPOLICY / GETPOLICY requests."""
    fields = USERPOLICY_ID


class user_acquire(_message):
    """XFRM_MSG_ACQUIRE: a packet matched a policy whose template has no SA yet."""
    fields = USER_ACQUIRE


class user_expire(_message):
    """XFRM_MSG_EXPIRE: an SA reached its soft (hard=0) or hard (hard=1) lifetime."""
    fields = USER_EXPIRE


class empty_message(_message):
    """XFRM_MSG_FLUSHPOLICY request, NLMSG_DONE."""
    fields = ()


class ack(nlmsg):
    """NLMSG_ERROR: errno (0 = ack), the request's header (NETLINK_CAP_ACK: header only), then
    extended-ack attributes such as the kernel's text for the error."""
    fields = (("error", "i"), ("orig_length", "I"), ("orig_type", "H"), ("orig_flags", "H"),
              ("orig_seq", "I"), ("orig_pid", "I"))
    nla_map = ((1, "NLMSGERR_ATTR_MSG", "asciiz"), (2, "NLMSGERR_ATTR_OFFS", "uint32"))


class header_only(nlmsg):
    """Just the nlmsghdr: read first to learn a message's type and length."""
    fields = ()


# What arrives from the kernel, by message type.
INCOMING = {XFRM_MSG_NEWSA: usersa_info, XFRM_MSG_UPDSA: usersa_info,
            XFRM_MSG_NEWPOLICY: userpolicy_info, XFRM_MSG_UPDPOLICY: userpolicy_info,
            XFRM_MSG_ACQUIRE: user_acquire, XFRM_MSG_EXPIRE: user_expire,
            XFRM_MSG_DELSA: usersa_id, XFRM_MSG_DELPOLICY: userpolicy_id,
            NLMSG_ERROR: ack, NLMSG_DONE: empty_message}


# --- encoding and decoding -----------------------------------------------------------------------
def encode(cls, msg_type, flags, seq, values, attrs=()):
    """One request: cls's struct filled from values (missing fields are zero), then attrs
    [(name, value)]. Returns the bytes to send."""
    msg = cls()
    unknown = set(values) - set(name for name, _ in cls.fields)
    if unknown:
        raise ValueError("%s has no field %s" % (cls.__name__, ", ".join(sorted(unknown))))
    msg.update(values)
    msg["attrs"] = [list(attr) for attr in attrs]
    msg["header"]["type"] = msg_type
    msg["header"]["flags"] = flags
    msg["header"]["sequence_number"] = seq
    msg.encode()
    return bytes(msg.data)


def decode(data):
    """Every netlink message in one datagram, decoded by type (INCOMING); unknown types are
    returned as header_only. A truncated message raises ValueError."""
    data = bytearray(data)
    messages = []
    offset = 0
    while offset + 16 <= len(data):
        head = header_only(data, offset=offset)
        head.decode()
        length = head["header"]["length"]
        if length < 16 or offset + length > len(data):
            raise ValueError("truncated netlink message at offset %d (length %d of %d bytes)"
                             % (offset, length, len(data) - offset))
        cls = INCOMING.get(head["header"]["type"], header_only)
        msg = cls(data, offset=offset)
        msg.decode()
        messages.append(msg)
        offset += (length + 3) & ~3
    return messages


def attr(msg, name, default=None):
    """The decoded value (a dict) of attribute name in msg, or default."""
    value = msg.get_attr(name)
    return default if value is None else value


def struct_dict(msg, prefix):
    """The fields of one embedded struct of a decoded message, without their prefix."""
    return dict((name[len(prefix):], value) for name, value in msg.items()
                if isinstance(name, str) and name.startswith(prefix))


# --- addresses ---------------------------------------------------------------------------------
def pack_address(text):
    """"192.0.2.1" -> (AF_INET, xfrm_address_t bytes); ValueError naming the text."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError("not an IP address: %r" % (text,))
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    return family, address.packed.ljust(16, b"\0")


def unpack_address(family, data):
    """xfrm_address_t bytes of family -> text."""
    if family == socket.AF_INET:
        return str(ipaddress.IPv4Address(bytes(data[:4])))
    return str(ipaddress.IPv6Address(bytes(data[:16])))


def pack_network(text):
    """"10.1.0.0/24" -> (family, address bytes, prefix length); ValueError naming the text."""
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError("not an IP network: %r" % (text,))
    family = socket.AF_INET if network.version == 4 else socket.AF_INET6
    return family, network.network_address.packed.ljust(16, b"\0"), network.prefixlen


def selector(src_net, dst_net):
    """sel_* fields of a selector matching every packet from src_net to dst_net."""
    family, saddr, plen_s = pack_network(src_net)
    dfamily, daddr, plen_d = pack_network(dst_net)
    if family != dfamily:
        raise ValueError("selector %s -> %s mixes IPv4 and IPv6" % (src_net, dst_net))
    return {"sel_saddr": saddr, "sel_daddr": daddr, "sel_prefixlen_s": plen_s,
            "sel_prefixlen_d": plen_d, "sel_family": family}
