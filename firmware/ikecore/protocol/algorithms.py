"""The numbers and names of IKEv1 algorithms (portable: MicroPython subset): ISAKMP protocol ids,
phase 1 and phase 2 attribute types, encapsulation modes, and per algorithm its transform values,
kernel XFRM name and page text. proposals.py turns names into offers and matches them with these.

Numbers: phase 1 attributes from RFC 2409 Appendix A (AES: RFC 3602, SHA-2: RFC 4868 / IANA
"IPSEC Hash Algorithm", ECP groups: RFC 5903); phase 2 from RFC 2407 section 4.4-4.5 (AES:
RFC 3602, HMAC-SHA-2: RFC 4868, UDP encapsulation modes: RFC 3947 and the NAT-T drafts).
"""

from . import consts as C
from .crypto import CIPHERS

# -- ISAKMP protocol ids (RFC 2407 section 4.4.1; the numbers live in consts) --------------------
PROTO_ISAKMP = C.PROTO_ISAKMP
PROTO_AH = C.PROTO_IPSEC_AH
PROTO_ESP = C.PROTO_IPSEC_ESP
PROTOCOL_IDS = {"ah": PROTO_AH, "esp": PROTO_ESP}
PROTOCOL_NAMES = {PROTO_AH: "ah", PROTO_ESP: "esp"}
KEY_IKE = C.KEY_IKE                          # the one ISAKMP transform id (RFC 2407 4.4.2)
# Proposals in one offer, per peer (phase 1) and per connection (quick mode): the config file's
# limit and the settings page's slots.
MAX_PROPOSALS = 3

# -- phase 1 attribute types (RFC 2409 Appendix A) ----------------------------------------------
P1_ENCRYPTION = 1
P1_HASH = 2
P1_AUTH_METHOD = 3
P1_GROUP = 4
P1_LIFE_TYPE = 11
P1_LIFE_DURATION = 12
P1_PRF = 13                                  # nobody defines a PRF value: we refuse it
P1_KEY_LENGTH = 14

LIFE_SECONDS = 1                             # same values for phase 1 and phase 2 life types
LIFE_KILOBYTES = 2

# -- phase 2 (IPsec DOI) attribute types (RFC 2407 section 4.5) ---------------------------------
P2_LIFE_TYPE = 1
P2_LIFE_DURATION = 2
P2_GROUP = 3
P2_ENCAPSULATION = 4
P2_AUTH_ALG = 5
P2_KEY_LENGTH = 6

# Encapsulation mode values: RFC 2407, RFC 3947 (UDP-Encapsulated-*), and the NAT-T drafts'
# private-use numbers that strongSwan/Libreswan still send to draft-only peers (numbers: consts).
ENCAP_TUNNEL = C.ENCAP_TUNNEL
ENCAP_TRANSPORT = C.ENCAP_TRANSPORT
ENCAP_UDP_TUNNEL = C.ENCAP_UDP_TUNNEL
ENCAP_UDP_TRANSPORT = C.ENCAP_UDP_TRANSPORT
ENCAP_UDP_TUNNEL_DRAFT = C.ENCAP_UDP_TUNNEL_DRAFT
ENCAP_UDP_TRANSPORT_DRAFT = C.ENCAP_UDP_TRANSPORT_DRAFT
ENCAP_DECODE = {
    ENCAP_TUNNEL: ("tunnel", False), ENCAP_TRANSPORT: ("transport", False),
    ENCAP_UDP_TUNNEL: ("tunnel", True), ENCAP_UDP_TRANSPORT: ("transport", True),
    ENCAP_UDP_TUNNEL_DRAFT: ("tunnel", True), ENCAP_UDP_TRANSPORT_DRAFT: ("transport", True),
}

# -- algorithm tables -----------------------------------------------------------------------------
# Encryption: name -> (phase 1 "Encryption Algorithm" value, ESP transform id, key length attribute
# in bits or None when the cipher has a fixed key, page text). Key/block sizes live in crypto.CIPHERS.
ENCRYPTION = {
    "3des": (5, 3, None, "3DES-CBC"),
    "aes128": (7, 12, 128, "AES-CBC-128"),
    "aes192": (7, 12, 192, "AES-CBC-192"),
    "aes256": (7, 12, 256, "AES-CBC-256"),
}

# Integrity: name -> (phase 1 "Hash Algorithm" value, phase 2 "Authentication Algorithm" value,
# AH transform id, ICV truncation in bits for ESP/AH (RFC 2403/2404/4868), kernel XFRM name,
# page text for IKE, page text for an SA).
INTEGRITY = {
    "md5": (1, 1, 2, 96, "hmac(md5)", "HMAC-MD5", "HMAC-MD5-96"),
    "sha1": (2, 2, 3, 96, "hmac(sha1)", "HMAC-SHA1", "HMAC-SHA1-96"),
    "sha256": (4, 5, 5, 128, "hmac(sha256)", "HMAC-SHA2-256", "HMAC-SHA2-256-128"),
    "sha384": (5, 6, 6, 192, "hmac(sha384)", "HMAC-SHA2-384", "HMAC-SHA2-384-192"),
    "sha512": (6, 7, 7, 256, "hmac(sha512)", "HMAC-SHA2-512", "HMAC-SHA2-512-256"),
}
# Integrity key length in bytes for ESP/AH (HMAC key = the hash's output size, RFC 2104 advice
# followed by RFC 2403/2404/4868).
INTEG_KEY_BYTES = {"md5": 16, "sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64}

# Kernel XFRM names of the ciphers (the kernel backend's "enc" algorithm).
XFRM_CIPHERS = {"3des": "cbc(des3_ede)", "aes128": "cbc(aes)", "aes192": "cbc(aes)",
                "aes256": "cbc(aes)"}

# Diffie-Hellman: name -> (IANA group number, page text).
GROUPS = {
    "modp768": (1, "MODP-768"),
    "modp1024": (2, "MODP-1024"),
    "modp1536": (5, "MODP-1536"),
    "modp2048": (14, "MODP-2048"),
    "modp3072": (15, "MODP-3072"),
    "ecp256": (19, "ECP-256"),
    "ecp384": (20, "ECP-384"),
}

# Phase 1 authentication methods (RFC 2409 Appendix A): our names -> value.
AUTH_METHODS = {"psk": 1, "rsa": 3}

# strongSwan spellings accepted as synonyms.
ALIASES = {"aes": "aes128", "sha": "sha1", "sha2_256": "sha256", "sha2_384": "sha384",
            "sha2_512": "sha512"}


def invert(table, index):
    return dict((row[index], name) for name, row in table.items())


P1_HASH_NAMES = invert(INTEGRITY, 0)
P2_AUTH_NAMES = invert(INTEGRITY, 1)
AH_NAMES = invert(INTEGRITY, 2)
GROUP_NAMES = invert(GROUPS, 0)
AUTH_NAMES = dict((value, name) for name, value in AUTH_METHODS.items())


def encryption_name(value_index, value, key_bits):
    """Our cipher name for a (phase 1 or ESP) cipher value + key length, or None."""
    for name, row in ENCRYPTION.items():
        if row[value_index] == value:
            if row[2] is None and key_bits in (None, CIPHERS[name][0] * 8):
                return name             # fixed-size key; tolerate a redundant Key Length
            # RFC 3602: AES needs the key length attribute; a peer omitting it means 128
            # (what Libreswan/strongSwan assume for this common interop slip).
            if row[2] is not None and (key_bits or 128) == row[2]:
                return name
    return None
