"""Vendor IDs (RFC 2408 §3.16) other than NAT-T's: the ones we send, the ones we only recognise,
and describe() for the VPN log (portable: MicroPython subset).

Each value is written out as bytes with its published definition beside it (checked against MD5
in tests/unit/test_natt.py); MicroPython builds may lack MD5, so nothing is computed at run time.
"""

from . import natt

# RFC 3706 (Dead Peer Detection): the vendor ID is 14 fixed bytes followed by the major (1) and
# minor (0) version of the DPD protocol. We send it when DPD is configured; a peer that sends it
# answers R-U-THERE.
VID_DPD = b"\xaf\xca\xd7\x13\x68\xa1\xf1\xc9\x6b\x86\x96\xfc\x77\x57\x01\x00"

# First 8 bytes of MD5("draft-ietf-ipsra-isakmp-xauth-06.txt"): the peer wants XAUTH (mode-cfg
# transactions), which we do not do — recognised so the log can say why a peer may give up.
VID_XAUTH = b"\x09\x00\x26\x89\xdf\xd6\xb7\x12"

# First 14 bytes of MD5("CISCO-UNITY") followed by a 2-byte version (usually 01 00).
VID_CISCO_UNITY_PREFIX = b"\x12\xf5\xf2\x8c\x45\x71\x68\xa9\x70\x2d\x9f\xe2\x74\xcc"

# MD5("strongSwan"): charon sends it with send_vendor_id = yes.
VID_STRONGSWAN = b"\x88\x2f\xe5\x6d\x6f\xd2\x0d\xbc\x22\x51\x61\x3b\x2e\xbe\x5b\xeb"

# MD5("FRAGMENTATION"), optionally followed by 4 capability bytes: IKEv1 fragmentation
# (fragments.py sends it with strongSwan's capability bytes).
VID_FRAGMENTATION = b"\x40\x48\xb7\xd5\x6e\xbc\xe8\x85\x25\xe7\xde\x7f\x00\xd6\xc2\xd3"

# MD5("MS NT5 ISAKMPOAKLEY") followed by a 4-byte Windows version.
VID_MS_NT5_PREFIX = b"\x1e\x2b\x51\x69\x05\x99\x1c\x7d\x7c\x96\xfc\xbf\xb5\x87\xe4\x61"

# Libreswan sends its name and version as text: "OE-Libreswan-4.10".
LIBRESWAN_PREFIX = b"OE-Libreswan-"

# (name, bytes, matches as prefix?) — first match wins.
KNOWN = (
    ("DPD (RFC 3706)", VID_DPD, False),
    ("XAUTH", VID_XAUTH, False),
    ("Cisco Unity", VID_CISCO_UNITY_PREFIX, True),
    ("strongSwan", VID_STRONGSWAN, False),
    ("IKE fragmentation", VID_FRAGMENTATION, True),
    ("Windows (MS NT5 ISAKMPOAKLEY)", VID_MS_NT5_PREFIX, True),
)


def has(vids, vid):
    """Whether the peer's vendor IDs (bytes or VendorPayload) include vid exactly."""
    return vid in [getattr(v, "data", v) for v in vids]


def describe(vid):
    """One short text for the log: "DPD (RFC 3706)", "NAT-T RFC 3947", "Libreswan 4.10", or
    "unknown vendor ID 0a1b...". Accepts bytes or a VendorPayload."""
    data = bytes(getattr(vid, "data", vid))
    variant = natt.variant_for_vid(data)
    if variant is not None:
        return "NAT-T " + variant.name
    for name, value, prefix in KNOWN:
        if data == value or (prefix and data[:len(value)] == value):
            return name
    if data[:len(LIBRESWAN_PREFIX)] == LIBRESWAN_PREFIX:
        version = data[len(LIBRESWAN_PREFIX):]
        try:
            text = version.decode()
        except UnicodeError:
            text = "?"
        if not all(c.isalpha() or c.isdigit() or c in ".-_" for c in text):   # no isalnum in MicroPython
            text = "?"
        return "Libreswan " + text
    shown = "".join("%02x" % b for b in data[:32])
    return "unknown vendor ID %s%s" % (shown, "..." if len(data) > 32 else "")
