"""Proposal names <-> algorithms <-> ISAKMP transform attributes, and matching offers (portable).

Names follow strongSwan's habit so users recognise them:
  phase 1      "aes128-sha1-modp2048"   encryption-integrity-group  -> IkeProposal
  phase 2 ESP  "aes128-sha1"            encryption-integrity        -> ChildProposal
  phase 2 AH   "sha1"                   integrity only
  esp+ah       "aes128-sha1"            ESP uses both, AH uses the integrity algorithm
The PFS group of quick mode is a setting of the connection (Connection.pfs), not part of the name.

The numbers (RFC 2409 Appendix A, RFC 2407 section 4.4-4.5, RFC 3947) and per-algorithm
tables are algorithms.py's.
Algorithm names are the ones `ikecore.protocol.crypto` providers take.
"""

from .algorithms import (  # noqa: F401 - proposals.PROTOCOL_IDS, proposals.P1_LIFE_TYPE ...
    AH_NAMES, ALIASES, AUTH_METHODS, AUTH_NAMES, ENCAP_DECODE, ENCAP_TRANSPORT, ENCAP_TUNNEL,
    ENCAP_UDP_TRANSPORT, ENCAP_UDP_TRANSPORT_DRAFT, ENCAP_UDP_TUNNEL, ENCAP_UDP_TUNNEL_DRAFT,
    ENCRYPTION, encryption_name, GROUP_NAMES, GROUPS, INTEG_KEY_BYTES, INTEGRITY, KEY_IKE,
    LIFE_KILOBYTES, LIFE_SECONDS, MAX_PROPOSALS, P1_AUTH_METHOD, P1_ENCRYPTION, P1_GROUP,
    P1_HASH, P1_HASH_NAMES, P1_KEY_LENGTH, P1_LIFE_DURATION, P1_LIFE_TYPE, P1_PRF, P2_AUTH_ALG,
    P2_AUTH_NAMES, P2_ENCAPSULATION, P2_GROUP, P2_KEY_LENGTH, P2_LIFE_DURATION, P2_LIFE_TYPE,
    PROTO_ISAKMP, PROTOCOL_IDS, PROTOCOL_NAMES, XFRM_CIPHERS)
from .crypto import CIPHERS


# -- the proposal objects -------------------------------------------------------------------------
class IkeProposal:
    """One phase 1 algorithm combination; name is the strongSwan-style text it was parsed from."""
    __slots__ = ("encr", "integ", "dh", "name")

    def __init__(self, encr, integ, dh, name=None):
        self.encr = encr
        self.integ = integ
        self.dh = dh
        self.name = name or "%s-%s-%s" % (encr, integ, dh)

    def __eq__(self, other):
        return (isinstance(other, IkeProposal) and self.encr == other.encr
                and self.integ == other.integ and self.dh == other.dh)

    def __hash__(self):
        return hash((self.encr, self.integ, self.dh))

    def __repr__(self):
        return "IkeProposal(%r)" % self.name

    def describe(self):
        """The page's algorithm text, e.g. "AES-CBC-128/HMAC-SHA1/MODP-2048"."""
        return "%s/%s/%s" % (ENCRYPTION[self.encr][3], INTEGRITY[self.integ][5], GROUPS[self.dh][1])


class ChildProposal:
    """One phase 2 combination for protocol "esp", "ah" or "esp+ah"; encr is None for "ah"."""
    __slots__ = ("encr", "integ", "name", "protocol")

    def __init__(self, encr, integ, name=None, protocol="esp"):
        self.encr = encr
        self.integ = integ
        self.protocol = protocol
        self.name = name or (integ if encr is None else "%s-%s" % (encr, integ))

    def __eq__(self, other):
        return (isinstance(other, ChildProposal) and self.encr == other.encr
                and self.integ == other.integ and self.protocol == other.protocol)

    def __hash__(self):
        return hash((self.encr, self.integ, self.protocol))

    def __repr__(self):
        return "ChildProposal(%r, %r)" % (self.name, self.protocol)

    def describe(self, protocol=None):
        """The page's text for one SA of this proposal: "AES-CBC-128/HMAC-SHA1-96" for ESP,
        "HMAC-SHA1-96" for AH. protocol picks the SA ("esp"/"ah") of an "esp+ah" proposal."""
        protocol = protocol or self.protocol
        integ = INTEGRITY[self.integ][6]
        if protocol == "ah" or self.encr is None:
            return integ
        return "%s/%s" % (ENCRYPTION[self.encr][3], integ)


def _canonical(part):
    return ALIASES.get(part, part)


def _parts(name, what):
    if not isinstance(name, str) or not name.strip():
        raise ValueError("empty %s proposal" % what)
    return [_canonical(p) for p in name.strip().lower().split("-")]


# Parsed proposals by their text: 10,000 peers written alike share one object per text (the
# objects are never changed after parsing) instead of holding 10,000 copies each.
_PARSED = {}


def _shared(key, parse, *args):
    cacheable = isinstance(key[0], str) and isinstance(key[1], str)
    found = _PARSED.get(key) if cacheable else None
    if found is None:
        found = parse(*args)
        if cacheable and len(_PARSED) < 1000:      # bounded: texts, not peers
            _PARSED[key] = found
    return found


def parse_ike(name):
    """"aes128-sha1-modp2048" -> IkeProposal; ValueError naming the bad part."""
    return _shared(("ike", name), _parse_ike, name)


def parse_child(name, protocol="esp"):
    """"aes128-sha1" (esp, esp+ah) or "sha1" (ah) -> ChildProposal; ValueError naming the bad part."""
    return _shared((protocol, name), _parse_child, name, protocol)


def _parse_ike(name):
    parts = _parts(name, "IKE")
    if len(parts) != 3:
        raise ValueError("IKE proposal %r must be encryption-integrity-group, e.g. "
                         "aes128-sha1-modp2048" % (name,))
    encr, integ, dh = parts
    if encr not in ENCRYPTION:
        raise ValueError("IKE proposal %r: unknown encryption algorithm %r (known: %s)"
                         % (name, encr, ", ".join(sorted(ENCRYPTION))))
    if integ not in INTEGRITY:
        raise ValueError("IKE proposal %r: unknown integrity algorithm %r (known: %s)"
                         % (name, integ, ", ".join(sorted(INTEGRITY))))
    if dh not in GROUPS:
        raise ValueError("IKE proposal %r: unknown Diffie-Hellman group %r (known: %s)"
                         % (name, dh, ", ".join(sorted(GROUPS))))
    return IkeProposal(encr, integ, dh, name.strip().lower())


def _parse_child(name, protocol):
    if protocol not in ("esp", "ah", "esp+ah"):
        raise ValueError("unknown IPsec protocol %r (esp, ah or esp+ah)" % (protocol,))
    parts = _parts(name, protocol.upper())
    if protocol == "ah":
        if len(parts) != 1 or parts[0] in ENCRYPTION:
            raise ValueError("AH proposal %r must be an integrity algorithm only (e.g. sha1); "
                             "AH does not encrypt" % (name,))
        encr, integ = None, parts[0]
    else:
        if len(parts) == 3 and parts[2] in GROUPS:
            raise ValueError("%s proposal %r: the PFS group goes in the connection's pfs "
                             "setting, not the proposal" % (protocol.upper(), name))
        if len(parts) != 2:
            raise ValueError("%s proposal %r must be encryption-integrity, e.g. aes128-sha1"
                             % (protocol.upper(), name))
        encr, integ = parts
        if encr not in ENCRYPTION:
            raise ValueError("%s proposal %r: unknown encryption algorithm %r (known: %s)"
                             % (protocol.upper(), name, encr, ", ".join(sorted(ENCRYPTION))))
    if integ not in INTEGRITY:
        raise ValueError("%s proposal %r: unknown integrity algorithm %r (known: %s)"
                         % (protocol.upper(), name, integ, ", ".join(sorted(INTEGRITY))))
    return ChildProposal(encr, integ, name.strip().lower(), protocol)


def parse_group(name):
    """A DH group name ("modp2048") as used for Connection.pfs; ValueError if unknown."""
    group = _canonical(str(name).strip().lower())
    if group not in GROUPS:
        raise ValueError("unknown Diffie-Hellman group %r (known: %s)"
                         % (name, ", ".join(sorted(GROUPS))))
    return group


def group_number(name):
    return GROUPS[name][0]


def group_name(number):
    """IANA group number -> our name, or None when we do not support it."""
    return GROUP_NAMES.get(number)


def group_describe(name):
    return GROUPS[name][1]


# -- kernel (XFRM) facts ----------------------------------------------------------------------
def xfrm_encryption(encr):
    """(XFRM algorithm name, key length in bytes) of an ESP cipher, e.g. ("cbc(aes)", 16)."""
    return XFRM_CIPHERS[encr], CIPHERS[encr][0]


def xfrm_integrity(integ):
    """(XFRM algorithm name, key length in bytes, ICV truncation in bits), e.g.
    ("hmac(sha1)", 20, 96)."""
    row = INTEGRITY[integ]
    return row[4], INTEG_KEY_BYTES[integ], row[3]


def child_key_lengths(protocol, proposal):
    """(encryption key bytes, integrity key bytes) one SA of protocol "esp"/"ah" needs from
    KEYMAT (RFC 2409 5.5: encryption key first, then the authentication key)."""
    integ = INTEG_KEY_BYTES[proposal.integ]
    if protocol == "ah":
        return 0, integ
    return CIPHERS[proposal.encr][0], integ


# -- phase 1 transform attributes ----------------------------------------------------------------
class IkeTransform:
    """What one offered phase 1 transform says. proposal is None when it names something we do
    not support (problem says what); lifetime_s / lifetime_kb are None when absent."""
    __slots__ = ("proposal", "auth", "lifetime_s", "lifetime_kb", "problem")

    def __init__(self, proposal, auth, lifetime_s, lifetime_kb, problem=None):
        self.proposal = proposal
        self.auth = auth
        self.lifetime_s = lifetime_s
        self.lifetime_kb = lifetime_kb
        self.problem = problem

    def __repr__(self):
        return "IkeTransform(%r, auth=%r, lifetime_s=%r, problem=%r)" % (
            self.proposal, self.auth, self.lifetime_s, self.problem)


def ike_attributes(proposal, auth, lifetime_s):
    """The phase 1 transform attributes [(type, value)] offering proposal with auth "psk"/"rsa"."""
    encr_value, _, key_bits, _ = ENCRYPTION[proposal.encr]
    attrs = [(P1_ENCRYPTION, encr_value)]
    if key_bits is not None:
        attrs.append((P1_KEY_LENGTH, key_bits))
    attrs += [
        (P1_HASH, INTEGRITY[proposal.integ][0]),
        (P1_AUTH_METHOD, AUTH_METHODS[auth]),
        (P1_GROUP, GROUPS[proposal.dh][0]),
        (P1_LIFE_TYPE, LIFE_SECONDS),
        (P1_LIFE_DURATION, lifetime_s),
    ]
    return attrs


def _lifetimes(attrs, type_attr, duration_attr):
    """RFC 2407 4.5 / RFC 2409 App. A: each Life Type is followed by its Life Duration."""
    seconds = kilobytes = None
    current = None
    for kind, value in attrs:
        if kind == type_attr:
            current = value
        elif kind == duration_attr:
            if current == LIFE_SECONDS:
                seconds = value
            elif current == LIFE_KILOBYTES:
                kilobytes = value
            else:
                return None, None, "life duration without a known life type"
            current = None
    return seconds, kilobytes, None


def lifetime_notify_data(type_attr, duration_attr, seconds, kilobytes=0):
    """The data of a RESPONDER-LIFETIME notify (RFC 2407 4.6.3.1): RFC 2408 section 3.3 data
    attributes, Life Type + Life Duration per limit (P1_* for an IKE SA, P2_* for IPsec)."""
    pairs = [(type_attr, LIFE_SECONDS), (duration_attr, seconds)]
    if kilobytes:
        pairs += [(type_attr, LIFE_KILOBYTES), (duration_attr, kilobytes)]
    out = []
    for kind, value in pairs:
        if value <= 0xFFFF:
            out.append((0x8000 | kind).to_bytes(2, "big") + value.to_bytes(2, "big"))
        else:
            out.append(kind.to_bytes(2, "big") + (4).to_bytes(2, "big") + value.to_bytes(4, "big"))
    return b"".join(out)


def lifetime_from_notify(data, type_attr, duration_attr):
    """(seconds, kilobytes) a RESPONDER-LIFETIME notify's data names, None where absent; a
    malformed attribute list names nothing (the notify is advisory)."""
    attrs = []
    pos = 0
    while pos + 4 <= len(data):
        word = int.from_bytes(data[pos:pos + 2], "big")
        if word & 0x8000:
            attrs.append((word & 0x7FFF, int.from_bytes(data[pos + 2:pos + 4], "big")))
            pos += 4
        else:
            length = int.from_bytes(data[pos + 2:pos + 4], "big")
            if pos + 4 + length > len(data):
                return None, None
            attrs.append((word, int.from_bytes(data[pos + 4:pos + 4 + length], "big")))
            pos += 4 + length
    if pos != len(data):
        return None, None
    seconds, kilobytes, problem = _lifetimes(attrs, type_attr, duration_attr)
    return (None, None) if problem else (seconds, kilobytes)


# Libreswan's IKEv1 defaults (lib/libswan/ike_info.c, 4.x and 5.x): AES or 3DES, SHA2-256,
# SHA2-512 or SHA1, MODP-2048, MODP-1536 or ECP-256; strongSwan's defaults accept most of these.
_COMMON_DEFAULT_IKE = (("aes128", "aes256", "3des"), ("sha256", "sha512", "sha1"),
                       ("modp2048", "modp1536", "ecp256"))


def common_default_ike(proposal):
    """Whether a peer left at its default proposals would accept this IkeProposal: then a
    NO-PROPOSAL-CHOSEN more likely means something else (diagnosis "p1_algorithm_or_id")."""
    encrs, integs, groups = _COMMON_DEFAULT_IKE
    return proposal.encr in encrs and proposal.integ in integs and proposal.dh in groups


def _attr_int(value):
    """An attribute value as int (variable-length values may arrive as bytes)."""
    if isinstance(value, (bytes, bytearray)):
        return int.from_bytes(value, "big")
    return value


def decode_ike_transform(attrs):
    """Phase 1 attributes [(type, value)] -> IkeTransform (never raises on unknown algorithms:
    they only make the transform unacceptable)."""
    attrs = [(t, _attr_int(v)) for t, v in attrs]
    values = dict(attrs)
    seconds, kilobytes, problem = _lifetimes(attrs, P1_LIFE_TYPE, P1_LIFE_DURATION)
    auth = AUTH_NAMES.get(values.get(P1_AUTH_METHOD))
    if problem:
        return IkeTransform(None, auth, None, None, problem)
    for needed, what in ((P1_ENCRYPTION, "encryption algorithm"), (P1_HASH, "hash algorithm"),
                         (P1_AUTH_METHOD, "authentication method"), (P1_GROUP, "group")):
        if needed not in values:
            return IkeTransform(None, auth, seconds, kilobytes, "no %s attribute" % what)
    if P1_PRF in values:
        return IkeTransform(None, auth, seconds, kilobytes,
                            "unsupported PRF attribute %d" % values[P1_PRF])
    encr = encryption_name(0, values[P1_ENCRYPTION], values.get(P1_KEY_LENGTH))
    integ = P1_HASH_NAMES.get(values[P1_HASH])
    group = GROUP_NAMES.get(values[P1_GROUP])
    if auth is None:
        problem = "unsupported authentication method %d" % values[P1_AUTH_METHOD]
    elif encr is None:
        problem = "unsupported encryption algorithm %d (key length %s)" % (
            values[P1_ENCRYPTION], values.get(P1_KEY_LENGTH))
    elif integ is None:
        problem = "unsupported hash algorithm %d" % values[P1_HASH]
    elif group is None:
        problem = "unsupported group %d" % values[P1_GROUP]
    if problem:
        return IkeTransform(None, auth, seconds, kilobytes, problem)
    return IkeTransform(IkeProposal(encr, integ, group), auth, seconds, kilobytes)


def match_ike(ours, auth, offered):
    """Responder: pick the peer's first offered transform (their preference order, RFC 2408
    4.2) that equals one of our proposals with our auth method.

    ours: [IkeProposal]; offered: [[(type, value)]] one attribute list per transform.
    Returns (index into offered, IkeTransform) or None (-> NO-PROPOSAL-CHOSEN; explain_ike says why).
    """
    for index, attrs in enumerate(offered):
        transform = decode_ike_transform(attrs)
        if transform.proposal is not None and transform.auth == auth and transform.proposal in ours:
            return index, transform
    return None


def confirm_ike(ours, auth, chosen):
    """Initiator: the responder's one chosen transform must be one we offered. -> IkeTransform
    or None."""
    transform = decode_ike_transform(chosen)
    if transform.proposal is not None and transform.auth == auth and transform.proposal in ours:
        return transform
    return None


def explain_ike(ours, auth, offered):
    """Why match_ike found nothing, as a short technical phrase for the log; the diagnosis is
    "algorithm mismatch" except when only the authentication method differs."""
    decoded = [decode_ike_transform(a) for a in offered]
    if any(t.proposal in ours for t in decoded if t.proposal is not None):
        methods = sorted(set(str(t.auth) for t in decoded))
        return "auth", "peer offers authentication %s, we use %s" % ("/".join(methods), auth)
    theirs = [t.proposal.name if t.proposal else t.problem for t in decoded]
    return "algorithm", "peer offers %s; we accept %s" % (
        ", ".join(theirs) or "nothing", ", ".join(p.name for p in ours))


# -- quick mode transforms ------------------------------------------------------------------------
def encapsulation_value(mode="tunnel", udp=None):
    """Encapsulation Mode attribute: udp None (plain), "rfc" (RFC 3947) or "draft" (NAT-T
    drafts' 61443/61444)."""
    if udp is None:
        return ENCAP_TUNNEL if mode == "tunnel" else ENCAP_TRANSPORT
    if udp == "rfc":
        return ENCAP_UDP_TUNNEL if mode == "tunnel" else ENCAP_UDP_TRANSPORT
    if udp == "draft":
        return ENCAP_UDP_TUNNEL_DRAFT if mode == "tunnel" else ENCAP_UDP_TRANSPORT_DRAFT
    raise ValueError("unknown UDP encapsulation %r" % (udp,))


def child_transform(proposal, protocol, lifetime_s, lifetime_kb=0, pfs=None, mode="tunnel",
                    udp=None):
    """One quick mode transform for protocol "esp" or "ah" of proposal:
    (transform id, [(type, value)]). pfs: group name or None; lifetime_kb 0 = no volume limit."""
    if protocol == "esp":
        transform_id = ENCRYPTION[proposal.encr][1]
    elif protocol == "ah":
        transform_id = INTEGRITY[proposal.integ][2]
    else:
        raise ValueError("a quick mode transform is for esp or ah, not %r" % (protocol,))
    attrs = [(P2_LIFE_TYPE, LIFE_SECONDS), (P2_LIFE_DURATION, lifetime_s)]
    if lifetime_kb:
        attrs += [(P2_LIFE_TYPE, LIFE_KILOBYTES), (P2_LIFE_DURATION, lifetime_kb)]
    if pfs is not None:
        attrs.append((P2_GROUP, GROUPS[pfs][0]))
    attrs.append((P2_ENCAPSULATION, encapsulation_value(mode, udp)))
    attrs.append((P2_AUTH_ALG, INTEGRITY[proposal.integ][1]))
    if protocol == "esp" and ENCRYPTION[proposal.encr][2] is not None:
        attrs.append((P2_KEY_LENGTH, ENCRYPTION[proposal.encr][2]))
    return transform_id, attrs


class ChildTransform:
    """What one offered quick mode transform says (for one protocol). encr None for AH; integ/encr
    None with problem set when unsupported; pfs is a group name or None; udp True for the
    UDP-encapsulated modes."""
    __slots__ = ("protocol", "encr", "integ", "lifetime_s", "lifetime_kb", "pfs", "mode", "udp",
                 "problem")

    def __init__(self, protocol, encr=None, integ=None, lifetime_s=None, lifetime_kb=None,
                 pfs=None, mode="tunnel", udp=False, problem=None):
        self.protocol = protocol
        self.encr = encr
        self.integ = integ
        self.lifetime_s = lifetime_s
        self.lifetime_kb = lifetime_kb
        self.pfs = pfs
        self.mode = mode
        self.udp = udp
        self.problem = problem

    def __repr__(self):
        return "ChildTransform(%s %s-%s pfs=%s mode=%s udp=%s problem=%r)" % (
            self.protocol, self.encr, self.integ, self.pfs, self.mode, self.udp, self.problem)


def decode_child_transform(protocol, transform_id, attrs):
    """("esp"|"ah", transform id, [(type, value)]) -> ChildTransform."""
    attrs = [(t, _attr_int(v)) for t, v in attrs]
    values = dict(attrs)
    seconds, kilobytes, problem = _lifetimes(attrs, P2_LIFE_TYPE, P2_LIFE_DURATION)
    t = ChildTransform(protocol, lifetime_s=seconds, lifetime_kb=kilobytes)
    if P2_GROUP in values:
        t.pfs = GROUP_NAMES.get(values[P2_GROUP])
        if t.pfs is None:
            problem = problem or "unsupported PFS group %d" % values[P2_GROUP]
    if P2_ENCAPSULATION in values:
        decoded = ENCAP_DECODE.get(values[P2_ENCAPSULATION])
        if decoded is None:
            problem = problem or "unknown encapsulation mode %d" % values[P2_ENCAPSULATION]
        else:
            t.mode, t.udp = decoded
    if P2_AUTH_ALG in values:
        t.integ = P2_AUTH_NAMES.get(values[P2_AUTH_ALG])
        if t.integ is None:
            problem = problem or "unsupported authentication algorithm %d" % values[P2_AUTH_ALG]
    if protocol == "esp":
        t.encr = encryption_name(1, transform_id, values.get(P2_KEY_LENGTH))
        if t.encr is None:
            problem = problem or "unsupported ESP transform %d (key length %s)" % (
                transform_id, values.get(P2_KEY_LENGTH))
        if t.integ is None:
            # RFC 2407 4.5: ESP without an auth algorithm has no integrity; we always want one.
            problem = problem or "ESP transform without an authentication algorithm"
    elif protocol == "ah":
        by_id = AH_NAMES.get(transform_id)
        if by_id is None:
            problem = problem or "unsupported AH transform %d" % transform_id
        elif t.integ is not None and t.integ != by_id:
            problem = problem or "AH transform %d disagrees with its authentication algorithm" % (
                transform_id)
        t.integ = t.integ or by_id
    else:
        problem = problem or "unknown protocol %r" % (protocol,)
    t.problem = problem
    return t


def _child_ok(ours, pfs, protocol, transform):
    if transform.problem is not None or transform.pfs != pfs:
        return False
    for proposal in ours:
        if transform.integ == proposal.integ and (protocol == "ah" or transform.encr == proposal.encr):
            return True
    return False


def _bundle_protocols(protocol):
    return ("esp", "ah") if protocol == "esp+ah" else (protocol,)


def match_child(ours, protocol, pfs, offered):
    """Responder: pick the peer's first acceptable quick mode proposal.

    ours: [ChildProposal] (all of connection protocol "esp" | "ah" | "esp+ah"); pfs: our group name
    or None. offered: [{"esp": [(transform_id, attrs)], "ah": [...]}] — one dict per proposal
    NUMBER (an esp+ah offer is two ISAKMP proposals with the same number, RFC 2408 4.2).
    For esp+ah, ESP and AH must use the same integrity algorithm and together equal one of ours.
    Returns (proposal index, {protocol: (transform index, ChildTransform)}) or None.
    """
    wanted = _bundle_protocols(protocol)
    for index, bundle in enumerate(offered):
        if sorted(bundle) != sorted(wanted):
            continue
        chosen = _choose_in_bundle(ours, pfs, wanted, bundle)
        if chosen is not None:
            return index, chosen
    return None


def _choose_in_bundle(ours, pfs, wanted, bundle):
    for proposal in ours:
        chosen = {}
        for proto in wanted:
            for t_index, (transform_id, attrs) in enumerate(bundle[proto]):
                t = decode_child_transform(proto, transform_id, attrs)
                if _child_ok([proposal], pfs, proto, t):
                    chosen[proto] = (t_index, t)
                    break
        if len(chosen) == len(wanted):
            return chosen
    return None


def confirm_child(ours, protocol, pfs, chosen):
    """Initiator: the responder's answer {protocol: (transform_id, attrs)} (one transform each)
    must be one of ours. -> {protocol: ChildTransform} or None."""
    wanted = _bundle_protocols(protocol)
    if sorted(chosen) != sorted(wanted):
        return None
    result = _choose_in_bundle(ours, pfs, wanted, dict((p, [chosen[p]]) for p in wanted))
    if result is None:
        return None
    return dict((p, t) for p, (_, t) in result.items())


def explain_child(ours, protocol, pfs, offered):
    """Why match_child found nothing: ("protocol" | "pfs" | "algorithm", technical detail).
    These are the seed's phase 2 causes: protocol mismatch, PFS mismatch, algorithm mismatch."""
    wanted = sorted(_bundle_protocols(protocol))
    same_protocol = [b for b in offered if sorted(b) == wanted]
    if not same_protocol:
        theirs = ", ".join("+".join(sorted(b)) for b in offered) or "nothing"
        return "protocol", "peer offers %s, we use %s" % (theirs, protocol)
    for bundle in same_protocol:
        for their_pfs in _offered_pfs(bundle):
            if their_pfs != pfs and _choose_in_bundle(ours, their_pfs, wanted, bundle) is not None:
                return "pfs", "peer uses PFS %s, we use %s" % (their_pfs or "none", pfs or "none")
    return "algorithm", "no offered %s transform matches %s" % (
        protocol, ", ".join(p.name for p in ours))


def _offered_pfs(bundle):
    groups = []
    for proto, transforms in bundle.items():
        for transform_id, attrs in transforms:
            g = decode_child_transform(proto, transform_id, attrs).pfs
            if g not in groups:
                groups.append(g)
    return groups
