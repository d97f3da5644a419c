"""ISAKMP codec: hand-built datagrams from the RFC 2408 diagrams, round trips, and every way a
datagram can be malformed (each must raise MalformedMessage with the notify RFC 2408 §5 names)."""

import pytest

from ikecore.protocol import consts as C
from ikecore.protocol.codec import (
    Attribute, CertPayload, CrPayload, DeletePayload, HashPayload, IdPayload, KePayload,
    MalformedMessage, Message, NatDPayload, NatOaPayload, NoncePayload, NotifyPayload, Proposal,
    SaPayload, SigPayload, Transform, VendorPayload, decode_header, decode_message,
    decode_payloads, encode_message, encode_payload, encode_payloads,
)


def h(text):
    """Hex written across lines with comments: '# ...' to end of line is ignored."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


# Main mode message 1 (HDR, SA, VID, VID), written byte by byte from RFC 2408 §3.1-3.6, §3.16.
# One ISAKMP proposal with three transforms (aes128-sha1-modp2048, aes256-sha256-modp2048,
# 3des-md5-modp1024), life durations as TLV and TV, then the RFC 3947 and DPD vendor IDs.
MM1 = h("""
0102030405060708                # initiator cookie                                        @0
0000000000000000                # responder cookie (zero in message 1)                    @8
01 10 02 00                     # next SA, version 1.0, exchange 2 (main), flags 0      @16
00000000                        # message id                                             @20
000000c8                        # length 200                                             @24
  0d 00 0084                    # SA: next VID, reserved, length 132                     @28
  00000001                      # DOI IPsec                                              @32
  00000001                      # situation SIT_IDENTITY_ONLY                            @36
    00 00 0078                  # proposal: last, reserved, length 120                   @40
    01 01 00 03                 # proposal 1, protocol ISAKMP, SPI size 0, 3 transforms  @44
      03 00 0028                # transform: next transform, length 40                   @48
      01 01 0000                # transform 1, KEY_IKE, reserved2                        @52
      8001 0007                 # encryption AES-CBC (TV)                                @56
      800e 0080                 # key length 128
      8002 0002                 # hash SHA1
      8003 0001                 # auth PSK
      8004 000e                 # group 14 (modp2048)
      800b 0001                 # life type seconds
      000c 0004 00007080        # life duration 28800 as TLV                             @80
      03 00 0024                # transform: next transform, length 36                   @88
      02 01 0000                # transform 2, KEY_IKE
      8001 0007  800e 0100  8002 0004  8003 0001  8004 000e  800b 0001
      800c 7080                 # life duration 28800 as TV
      00 00 0024                # transform: last, length 36                             @124
      03 01 0000                # transform 3, KEY_IKE
      8001 0005  8002 0001  8003 0001  8004 0002  800b 0001
      000c 0004 00015180        # life duration 86400 as TLV
  0d 00 0014                    # VID: next VID, length 20                               @160
  4a131c81070358455c5728f20e95452f   # MD5("RFC 3947")
  00 00 0014                    # VID: last, length 20                                   @180
  afcad71368a1f1c96b8696fc77570100   # RFC 3706 DPD
""")


def patch(data, offset, new):
    return data[:offset] + new + data[offset + len(new):]


def u16(value):
    return value.to_bytes(2, "big")


def u32(value):
    return value.to_bytes(4, "big")


def malformed(data, notify, contains=None, decode=decode_message):
    with pytest.raises(MalformedMessage) as info:
        decode(data)
    err = info.value
    assert err.notify == notify, err.reason
    if contains:
        assert contains in err.reason
    return err


# ---------------------------------------------------------------- the hand-built message 1

def test_main_mode_message_1_decodes_field_by_field():
    assert len(MM1) == 200
    m = decode_message(MM1)
    assert m.icookie == bytes(range(1, 9)) and m.rcookie == bytes(8)
    assert (m.exchange, m.flags, m.message_id, m.version, m.length) == (C.EXCHANGE_MAIN, 0, 0, 0x10, 200)
    assert m.first_payload == C.PT_SA and m.body is None
    sa, vid1, vid2 = m.payloads
    assert isinstance(sa, SaPayload) and sa.doi == C.DOI_IPSEC and sa.situation == C.SIT_IDENTITY_ONLY
    (prop,) = sa.proposals
    assert (prop.number, prop.protocol, prop.spi) == (1, C.PROTO_ISAKMP, b"")
    assert [t.number for t in prop.transforms] == [1, 2, 3]
    assert all(t.transform_id == C.KEY_IKE for t in prop.transforms)
    t1, t2, t3 = prop.transforms
    assert t1.attributes == [Attribute(1, 7), Attribute(14, 128), Attribute(2, 2), Attribute(3, 1),
                             Attribute(4, 14), Attribute(11, 1), Attribute(12, b"\x00\x00\x70\x80")]
    assert t1.attribute(12).value == b"\x00\x00\x70\x80"        # TLV decodes as bytes ...
    assert t2.attribute(12).value == 28800                     # ... TV as int
    assert t1.attribute(12).as_int() == t2.attribute(12).as_int() == 28800
    assert dict(t2.attributes)[14] == 256                      # (type, value) pairs for proposals.py
    assert t3.attribute(1).value == 5 and t3.attribute(12).as_int() == 86400
    assert t3.attribute(14) is None
    assert vid1 == VendorPayload(bytes.fromhex("4a131c81070358455c5728f20e95452f"))
    assert vid2.data == bytes.fromhex("afcad71368a1f1c96b8696fc77570100")


def test_main_mode_message_1_encodes_to_the_same_bytes():
    assert encode_message(decode_message(MM1)) == MM1
    # Built from objects: the TLV life durations are bytes, the TV one an int.
    life_tlv = b"\x00\x00\x70\x80"
    sa = SaPayload([Proposal(1, C.PROTO_ISAKMP, b"", [
        Transform(1, C.KEY_IKE, [(1, 7), (14, 128), (2, 2), (3, 1), (4, 14), (11, 1), (12, life_tlv)]),
        Transform(2, C.KEY_IKE, [(1, 7), (14, 256), (2, 4), (3, 1), (4, 14), (11, 1), (12, 28800)]),
        Transform(3, C.KEY_IKE, [(1, 5), (2, 1), (3, 1), (4, 2), (11, 1), (12, 86400)]),
    ])])
    m = Message(C.EXCHANGE_MAIN, bytes(range(1, 9)), bytes(8), payloads=[
        sa, VendorPayload(MM1[164:180]), VendorPayload(MM1[184:200])])
    assert encode_message(m) == MM1      # 86400 > 0xffff: sent as a 4-byte TLV, like the hex


def test_decode_header_alone():
    hdr = decode_header(MM1)
    assert (hdr.next_payload, hdr.major, hdr.minor, hdr.exchange, hdr.length) == (1, 1, 0, 2, 200)


# Quick mode message 1 after decryption: HASH(1), SA with three proposals (ESP aes, ESP 3des,
# AH sha1), NONCE, IDci, IDcr, then 4 bytes of block padding (RFC 2408 §3.1).
QM1_PLAIN = h("""
  01 00 0018  00112233445566778899aabbccddeeff00112233     # HASH(1), 20 bytes        next SA
  0a 00 0064                                               # SA, length 100           next NONCE
  00000001 00000001
    02 00 0020  01 03 04 01  c1a2b3d4                      # proposal 1 ESP, SPI, 1 transform
      00 00 0014  01 0c 0000  8004 0001  8005 0002  8006 0080     # AES-CBC tunnel hmac-sha1 128
    02 00 0018  02 03 04 01  c1a2b3d5                      # proposal 2 ESP
      00 00 000c  01 03 0000  8005 0001                    #   3DES hmac-md5
    00 00 0020  03 02 04 01  c1a2b3d6                      # proposal 3 AH
      00 00 0014  01 03 0000  8004 0001  8005 0002  8001 0001     # AH-SHA, tunnel, life secs
  05 00 0014  6e6f6e63652d6f662d31362d62797465              # NONCE 16 bytes           next ID
  05 00 0010  04 00 0000  c0a80100 ffffff00                # IDci subnet 192.168.1.0/24
  00 00 0010  04 00 0000  0a020000 ffffff00                # IDcr subnet 10.2.0.0/24
  00000003                                                 # padding
""")


def test_quick_mode_chain_with_three_proposals_and_padding():
    hash_, sa, nonce, idci, idcr = decode_payloads(C.PT_HASH, QM1_PLAIN)
    assert hash_.data[:2] == b"\x00\x11" and len(hash_.data) == 20
    assert [(p.number, p.protocol, p.spi.hex()) for p in sa.proposals] == [
        (1, C.PROTO_IPSEC_ESP, "c1a2b3d4"), (2, C.PROTO_IPSEC_ESP, "c1a2b3d5"),
        (3, C.PROTO_IPSEC_AH, "c1a2b3d6")]
    assert sa.proposals[0].transforms == [Transform(1, 12, [(4, 1), (5, 2), (6, 128)])]
    assert nonce.data == b"nonce-of-16-byte"
    assert idci == IdPayload(C.ID_IPV4_ADDR_SUBNET, bytes.fromhex("c0a80100ffffff00"))
    assert idcr.data == bytes.fromhex("0a020000ffffff00")
    with pytest.raises(MalformedMessage) as info:
        decode_payloads(C.PT_HASH, QM1_PLAIN, allow_padding=False)
    assert "4 bytes of trailing garbage after payload 5" in info.value.reason
    first, data = encode_payloads([hash_, sa, nonce, idci, idcr])
    assert (first, data) == (C.PT_HASH, QM1_PLAIN[:-4])


# ---------------------------------------------------------------- round trips of every payload

EVERY_PAYLOAD = [
    SaPayload([Proposal(1, C.PROTO_IPSEC_ESP, b"\x01\x02\x03\x04", [
        Transform(1, 12, [Attribute(4, 1), Attribute(2, 2 ** 40), Attribute(99, b"")]),
        Transform(2, 3, [])]),
        Proposal(1, C.PROTO_IPSEC_AH, b"\x05\x06\x07\x08", [Transform(1, 3, [(5, 2)])])]),
    KePayload(b"\x5a" * 256),
    IdPayload(C.ID_IPV4_ADDR, b"\xc0\x00\x02\x01", protocol=17, port=500),
    IdPayload(C.ID_FQDN, b"gw.example.net"),
    CertPayload(C.CERT_X509_SIGNATURE, b"\x30\x82\x01\x00" + b"c" * 60),
    CrPayload(C.CERT_X509_SIGNATURE, b""),
    HashPayload(b"h" * 20),
    SigPayload(b"s" * 128),
    NoncePayload(b"n" * 8),
    NoncePayload(b"N" * 256),
    NotifyPayload(C.INITIAL_CONTACT, spi=b"i" * 8 + b"r" * 8),
    NotifyPayload(C.R_U_THERE, protocol=C.PROTO_ISAKMP, spi=b"c" * 16, data=b"\x00\x00\x00\x07"),
    NotifyPayload(C.RESPONDER_LIFETIME, protocol=C.PROTO_IPSEC_ESP, spi=b"\xca\xfe\xba\xbe",
                  data=b"\x80\x01\x00\x01\x80\x02\x0e\x10", doi=C.DOI_IPSEC),
    NotifyPayload(C.NO_PROPOSAL_CHOSEN, protocol=0, doi=C.DOI_ISAKMP),
    DeletePayload(C.PROTO_IPSEC_ESP, [b"\x00\x00\x00\x01", b"\xff\xff\xff\xff"]),
    DeletePayload(C.PROTO_ISAKMP, [b"I" * 8 + b"R" * 8]),
    VendorPayload(b"\x12\xf5\xf2\x8c"),
    NatDPayload(b"d" * 20),
    NatDPayload(b"d" * 16, payload_type=C.PT_NAT_D_DRAFT),
    NatOaPayload(C.ID_IPV4_ADDR, b"\x0a\x00\x00\x01"),
    NatOaPayload(C.ID_IPV6_ADDR, b"\x20\x01" + bytes(14), payload_type=C.PT_NAT_OA_DRAFT),
]


@pytest.mark.parametrize("payload", EVERY_PAYLOAD, ids=lambda p: type(p).__name__)
def test_every_payload_round_trips(payload):
    first, data = encode_payloads([payload])
    assert first == payload.wire_type()
    (back,) = decode_payloads(first, data, allow_padding=False)
    assert back == payload
    assert encode_payload(back) == data


def test_whole_message_with_every_payload_round_trips():
    m = Message(C.EXCHANGE_AGGRESSIVE, b"\x01" * 8, b"\x02" * 8, message_id=0xDEADBEEF,
                flags=C.FLAG_COMMIT, payloads=EVERY_PAYLOAD)
    data = encode_message(m)
    back = decode_message(data)
    assert back == m
    assert back.find(NatOaPayload).payload_type == C.PT_NAT_OA
    assert len(back.find_all(NoncePayload)) == 2
    assert back.find(CrPayload).data == b"" and back.find(SigPayload) is not None
    assert encode_message(back) == data


def test_encrypted_message_keeps_ciphertext_and_first_payload():
    m = Message(C.EXCHANGE_QUICK, b"\x01" * 8, b"\x02" * 8, message_id=7)
    data = encode_message(m, body=b"\xee" * 32, first_payload=C.PT_HASH)
    assert data[19] == C.FLAG_ENCRYPTION and data[16] == C.PT_HASH and len(data) == 60
    back = decode_message(data)
    assert back.payloads == [] and back.body == b"\xee" * 32 and back.first_payload == C.PT_HASH
    assert encode_message(back, body=back.body, first_payload=back.first_payload) == data


def test_attribute_forms():
    assert Attribute(12, 86400) == Attribute(12, b"\x00\x01\x51\x80")
    assert Attribute(12, 86400) != Attribute(11, 86400)
    assert Attribute(1, 7).is_basic() and not Attribute(12, 86400).is_basic()
    t = Transform(1, 1, [Attribute(12, 0xFFFF), Attribute(12, 0x10000), Attribute(6, b"\x01" * 300)])
    body = encode_payload(SaPayload([Proposal(1, 1, b"", [t])]))
    assert b"\x80\x0c\xff\xff" in body and b"\x00\x0c\x00\x04\x00\x01\x00\x00" in body
    assert b"\x00\x06\x01\x2c" in body


def test_encoding_rejects_values_that_do_not_fit():
    with pytest.raises(ValueError):
        encode_payload(IdPayload(300, b"x"))
    with pytest.raises(ValueError):
        encode_payload(DeletePayload(3, [b"1234", b"123"]))
    with pytest.raises(ValueError):
        encode_payload(KePayload(b"k" * 70000))
    with pytest.raises(ValueError):
        encode_payload(SaPayload([Proposal(1, 1, b"", [Transform(1, 1, [(0x8001, 1)])])]))
    with pytest.raises(ValueError):
        encode_message(Message(2, b"short", bytes(8)))


# ---------------------------------------------------------------- malformed datagrams

def test_truncated_header():
    err = malformed(MM1[:27], C.PAYLOAD_MALFORMED, "27 bytes shorter than the 28-byte ISAKMP header")
    assert err.header is None
    malformed(b"", C.PAYLOAD_MALFORMED)


def test_bad_versions():
    malformed(patch(MM1, 17, b"\x20"), C.INVALID_MAJOR_VERSION, "IKEv2")
    malformed(patch(MM1, 17, b"\x00"), C.INVALID_MAJOR_VERSION)
    malformed(patch(MM1, 17, b"\x11"), C.INVALID_MINOR_VERSION)


def test_bad_header_fields():
    malformed(patch(MM1, 0, bytes(8)), C.INVALID_COOKIE)
    malformed(patch(MM1, 18, b"\x07"), C.INVALID_EXCHANGE_TYPE, "unknown exchange type 7")
    err = malformed(patch(MM1, 19, b"\x08"), C.INVALID_FLAGS)
    assert err.header is not None and err.header.icookie == MM1[:8]


def test_header_length_against_datagram():
    malformed(MM1[:-1], C.PAYLOAD_MALFORMED, "header length 200 exceeds the 199-byte datagram")
    malformed(MM1 + b"\x00", C.PAYLOAD_MALFORMED, "1 bytes of trailing garbage")
    malformed(patch(MM1, 24, u32(27)), C.PAYLOAD_MALFORMED, "shorter than the header itself")
    malformed(patch(MM1, 24, u32(0xFFFFFFFF)), C.PAYLOAD_MALFORMED)


def test_trailing_garbage_inside_the_announced_length():
    data = patch(MM1, 24, u32(204)) + b"junk"
    err = malformed(data, C.PAYLOAD_MALFORMED, "4 bytes of trailing garbage after payload 3")
    assert err.header.length == 204


def test_zero_length_payload():
    malformed(patch(MM1, 162, u16(0)), C.PAYLOAD_MALFORMED,
              "payload 2 (VID) length 0 shorter than its 4-byte header")


def test_payload_length_overflow():
    malformed(patch(MM1, 182, u16(21)), C.PAYLOAD_MALFORMED,
              "payload 3 (VID) length 21 runs 1 bytes past the end")
    malformed(patch(MM1, 30, u16(0xFFFF)), C.PAYLOAD_MALFORMED, "payload 1 (SA)")


def test_payload_shorter_than_its_fixed_fields():
    # An SA payload needs DOI + situation; a 4-byte SA leaves the VIDs misaligned first: build one.
    data = encode_payload(NotifyPayload(C.INITIAL_CONTACT))
    chopped = data[:2] + u16(10) + data[4:10]
    malformed(chopped, C.PAYLOAD_MALFORMED, "payload 1 (N) length 10 shorter than its 12-byte minimum",
              decode=lambda d: decode_payloads(C.PT_NOTIFY, d))


def test_chain_ends_early_or_mid_header():
    malformed(patch(MM1, 180, b"\x0d"), C.PAYLOAD_MALFORMED,
              decode=lambda d: decode_payloads(C.PT_SA, d[28:]))
    # next payload announces a 4th payload, but the data ends
    err = malformed(patch(MM1, 180, b"\x0d"), C.PAYLOAD_MALFORMED, "payload 4 (VID) missing")
    # two stray bytes where a payload header should be
    data = patch(MM1, 180, b"\x0d") + b"\x00\x00"
    data = patch(data, 24, u32(202))
    malformed(data, C.PAYLOAD_MALFORMED, "payload 4 (VID) truncated: 2 bytes left")
    assert err.header is not None


def test_unknown_payload_types():
    malformed(patch(MM1, 160, b"\x63"), C.INVALID_PAYLOAD_TYPE, "payload 3 has unknown type 99")
    malformed(patch(MM1, 16, b"\x0e"), C.INVALID_PAYLOAD_TYPE, "payload 1 has unknown type 14")
    malformed(patch(MM1, 16, b"\x02"), C.INVALID_PAYLOAD_TYPE, "only exists inside an SA")
    encrypted = patch(patch(MM1, 19, b"\x01"), 16, b"\x63")
    malformed(encrypted, C.INVALID_PAYLOAD_TYPE)


def test_reserved_fields_must_be_zero():
    malformed(patch(MM1, 161, b"\x01"), C.PAYLOAD_MALFORMED, "payload 2 (VID) RESERVED byte is 1")
    malformed(patch(MM1, 41, b"\x80"), C.PAYLOAD_MALFORMED, "proposal 1 RESERVED")
    malformed(patch(MM1, 54, b"\x00\x01"), C.PAYLOAD_MALFORMED,
              "payload 1 (SA) proposal 1 transform 1 RESERVED2 field is not zero")
    oa = encode_payload(NatOaPayload(1, b"\x01\x02\x03\x04"))
    malformed(patch(oa, 6, b"\x01"), C.PAYLOAD_MALFORMED, "RESERVED field is not zero",
              decode=lambda d: decode_payloads(C.PT_NAT_OA, d))


def test_sa_doi_and_situation():
    malformed(patch(MM1, 32, u32(2)), C.DOI_NOT_SUPPORTED, "payload 1 (SA) doi 2 not supported")
    malformed(patch(MM1, 36, u32(2)), C.SITUATION_NOT_SUPPORTED)


def test_sa_with_no_proposal():
    sa = bytes.fromhex("0000000c" "00000001" "00000001")
    malformed(sa, C.BAD_PROPOSAL_SYNTAX, "payload 1 (SA) holds no proposal",
              decode=lambda d: decode_payloads(C.PT_SA, d))


def test_proposal_lengths_inside_the_sa():
    malformed(patch(MM1, 42, u16(0x79)), C.PAYLOAD_MALFORMED,
              "payload 1 (SA) proposal 1 length 121 runs 1 bytes past the end")
    malformed(patch(MM1, 42, u16(4)), C.PAYLOAD_MALFORMED, "shorter than its 8-byte minimum")
    malformed(patch(MM1, 42, u16(2)), C.PAYLOAD_MALFORMED, "shorter than its 4-byte header")
    # proposal shorter than the SA leaves bytes after it
    data = patch(patch(MM1, 42, u16(0x54)), 88, b"\x00")    # transform 3 falls out of the proposal
    data = patch(data, 47, b"\x02")
    malformed(data, C.PAYLOAD_MALFORMED, "36 bytes of trailing garbage after payload 1 (SA) proposal 1")


def test_proposal_linking_and_counts():
    malformed(patch(MM1, 40, b"\x03"), C.BAD_PROPOSAL_SYNTAX,
              "proposal 1 is linked with next payload 3, expected 2 (PROPOSAL)")
    malformed(patch(MM1, 47, b"\x04"), C.BAD_PROPOSAL_SYNTAX, "announces 4 transforms but holds 3")
    malformed(patch(MM1, 124, b"\x02"), C.BAD_PROPOSAL_SYNTAX, "transform 3 is linked with next payload 2")
    empty = encode_payload(SaPayload([Proposal(1, 1, b"", [])]))
    malformed(empty, C.BAD_PROPOSAL_SYNTAX, "proposal 1 holds no transform",
              decode=lambda d: decode_payloads(C.PT_SA, d))


def test_spi_size_beyond_the_proposal():
    data = encode_payload(SaPayload([Proposal(1, 3, b"\x01\x02\x03\x04", [])]))
    data = patch(data, 18, b"\x09")             # SPI size 9, only 4 bytes follow
    malformed(data, C.PAYLOAD_MALFORMED, "spi size 9 exceeds the 4 bytes left",
              decode=lambda d: decode_payloads(C.PT_SA, d))


def test_transform_lengths_inside_the_proposal():
    malformed(patch(MM1, 50, u16(41)), C.PAYLOAD_MALFORMED)
    malformed(patch(MM1, 50, u16(6)), C.PAYLOAD_MALFORMED, "transform 1 length 6 shorter than its 8-byte")


def test_attribute_overflow_and_truncation():
    malformed(patch(MM1, 82, u16(5)), C.PAYLOAD_MALFORMED,
              "transform 1 attribute 7 (type 12) length 5 overruns its transform by 1 bytes")
    malformed(patch(MM1, 82, u16(0xFFFF)), C.PAYLOAD_MALFORMED, "overruns")
    # Build it exactly: transform = 8-byte fixed part + 2 bytes of an attribute.
    transform = b"\x00\x00\x00\x0a" b"\x01\x01\x00\x00" b"\x80\x01"
    proposal = b"\x00\x00" + u16(8 + len(transform)) + b"\x01\x01\x00\x01" + transform
    sa = b"\x00\x00" + u16(12 + len(proposal)) + u32(1) + u32(1) + proposal
    malformed(sa, C.PAYLOAD_MALFORMED, "transform 1 attribute 1 truncated: 2 bytes left",
              decode=lambda d: decode_payloads(C.PT_SA, d))


def test_payload_content_rules():
    nonce = encode_payload(NoncePayload(b"n" * 8))[:-4]
    nonce = patch(nonce, 2, u16(8))
    malformed(nonce, C.PAYLOAD_MALFORMED, "payload 1 (NONCE) length 8 shorter than its 12-byte minimum",
              decode=lambda d: decode_payloads(C.PT_NONCE, d))
    big = b"\x00\x00" + u16(4 + 257) + b"n" * 257
    malformed(big, C.PAYLOAD_MALFORMED, "data of 257 bytes outside 8..256",
              decode=lambda d: decode_payloads(C.PT_NONCE, d))
    malformed(b"\x00\x00\x00\x04", C.PAYLOAD_MALFORMED, decode=lambda d: decode_payloads(C.PT_KE, d))
    malformed(b"\x00\x00\x00\x04", C.PAYLOAD_MALFORMED, decode=lambda d: decode_payloads(C.PT_HASH, d))
    assert decode_payloads(C.PT_VENDOR, b"\x00\x00\x00\x04") == [VendorPayload(b"")]


def test_notify_and_delete_spis():
    n = encode_payload(NotifyPayload(C.INITIAL_CONTACT, spi=b"x" * 16))
    malformed(patch(n, 9, b"\x11"), C.PAYLOAD_MALFORMED, "spi size 17 exceeds the 16 bytes left",
              decode=lambda d: decode_payloads(C.PT_NOTIFY, d))
    malformed(patch(n, 4, u32(7)), C.DOI_NOT_SUPPORTED, decode=lambda d: decode_payloads(C.PT_NOTIFY, d))
    d = encode_payload(DeletePayload(3, [b"1234", b"5678"]))
    malformed(patch(d, 10, u16(3)), C.PAYLOAD_MALFORMED, "3 SPIs of 4 bytes need 12 bytes, 8 are left",
              decode=lambda x: decode_payloads(C.PT_DELETE, x))
    malformed(patch(d, 10, u16(0)), C.INVALID_SPI, decode=lambda x: decode_payloads(C.PT_DELETE, x))
    malformed(patch(d, 9, b"\x00"), C.INVALID_SPI, decode=lambda x: decode_payloads(C.PT_DELETE, x))


def test_encrypted_message_without_ciphertext():
    m = Message(C.EXCHANGE_QUICK, b"\x01" * 8, b"\x02" * 8, message_id=7)
    data = encode_message(m, body=b"", first_payload=C.PT_HASH)
    malformed(data, C.PAYLOAD_MALFORMED, "encrypted message without ciphertext")


def test_malformed_message_str_names_the_notify():
    with pytest.raises(MalformedMessage) as info:
        decode_message(patch(MM1, 162, u16(0)))
    assert str(info.value).endswith("(PAYLOAD-MALFORMED)")


def test_payload_spans_give_the_raw_bytes_the_hashes_need():
    from ikecore.protocol.codec import payload_spans
    spans, end = payload_spans(C.PT_HASH, QM1_PLAIN)
    assert [t for t, _, _ in spans] == [C.PT_HASH, C.PT_SA, C.PT_NONCE, C.PT_ID, C.PT_ID]
    assert end == len(QM1_PLAIN) - 4                       # padding after the chain
    _, sa_start, sa_end = spans[1]
    assert QM1_PLAIN[sa_start + 4:sa_end] == encode_payload(decode_payloads(C.PT_HASH, QM1_PLAIN)[1])[4:]
    assert payload_spans(C.PT_NONE, b"\x00" * 8) == ([], 0)
    with pytest.raises(MalformedMessage):
        payload_spans(C.PT_HASH, QM1_PLAIN[:30])
    with pytest.raises(MalformedMessage):
        payload_spans(C.PT_HASH, QM1_PLAIN[:2])
    with pytest.raises(MalformedMessage):
        payload_spans(C.PT_HASH, patch(QM1_PLAIN, 2, u16(3)))


# ---------------------------------------------------------------- the same answers under MicroPython

# Runs inside the real MicroPython (tests/micropython/run.mjs, the WebAssembly port make test
# installs): decodes every datagram it is given and reports what CPython reports below.
MICROPYTHON_SCRIPT = r'''
import json
from ikecore.protocol import codec, natt, vendor
import hashlib
IN = json.loads(open("/input.json").read())
results = []
for text in IN["datagrams"]:
    data = bytes.fromhex(text)
    try:
        m = codec.decode_message(data)
        if m.body is None:
            again = codec.encode_message(m)
        else:
            again = codec.encode_message(m, body=m.body, first_payload=m.first_payload)
        results.append(["ok", again == data, repr(m)])
    except codec.MalformedMessage as err:
        results.append(["malformed", err.notify, err.reason])
sha256 = lambda data: hashlib.sha256(data).digest()
extras = [natt.nat_d_hash(sha256, b"\x01" * 8, b"\x02" * 8, ip, port).hex()
          for ip, port in IN["addresses"]]
extras += [natt.format_address(natt.pack_address(ip)) for ip, _ in IN["addresses"]]
extras += [vendor.describe(bytes.fromhex(v)) for v in IN["vids"]]
extras += [natt.classify_4500(bytes.fromhex(d)) for d in IN["port4500"]]
print("RESULT " + json.dumps({"results": results, "extras": extras}))
'''


def _datagram_corpus():
    """MM1, each malformed variant above, and 300 seeded mutations of MM1 and an encrypted one."""
    import random
    rnd = random.Random(2408)
    bases = [MM1, encode_message(Message(C.EXCHANGE_AGGRESSIVE, b"\x01" * 8, b"\x02" * 8,
                                         payloads=EVERY_PAYLOAD)),
             encode_message(Message(C.EXCHANGE_QUICK, b"\x01" * 8, b"\x02" * 8, 7), body=b"\xee" * 32,
                            first_payload=C.PT_HASH)]
    corpus = list(bases) + [MM1[:27], patch(MM1, 17, b"\x20"), patch(MM1, 82, u16(5)),
                            patch(MM1, 160, b"\x63"), patch(MM1, 47, b"\x04"), MM1 + b"\x00"]
    for _ in range(300):
        data = bytearray(rnd.choice(bases))
        for _ in range(rnd.randrange(1, 4)):
            where = rnd.randrange(len(data))
            data[where] = rnd.randrange(256) if rnd.random() < 0.7 else data[where] ^ 0x80
        if rnd.random() < 0.5:
            data[24:28] = len(data).to_bytes(4, "big")
        corpus.append(bytes(data))
    return corpus


def _cpython_answers(corpus, inputs):
    import hashlib
    from ikecore.protocol import natt, vendor
    results = []
    for data in corpus:
        try:
            m = decode_message(data)
            again = encode_message(m) if m.body is None else encode_message(
                m, body=m.body, first_payload=m.first_payload)
            results.append(["ok", again == data, repr(m)])
        except MalformedMessage as err:
            results.append(["malformed", err.notify, err.reason])
    sha256 = lambda data: hashlib.sha256(data).digest()  # noqa: E731
    extras = [natt.nat_d_hash(sha256, b"\x01" * 8, b"\x02" * 8, ip, port).hex()
              for ip, port in inputs["addresses"]]
    extras += [natt.format_address(natt.pack_address(ip)) for ip, _ in inputs["addresses"]]
    extras += [vendor.describe(bytes.fromhex(v)) for v in inputs["vids"]]
    extras += [natt.classify_4500(bytes.fromhex(d)) for d in inputs["port4500"]]
    return {"results": results, "extras": extras}


def test_codec_natt_vendor_give_the_same_answers_under_micropython(tmp_path):
    import json
    import os
    import shutil
    import subprocess
    from ikecore.protocol import natt, vendor
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    harness = os.path.join(root, "tests", "micropython")
    node = shutil.which("node")
    if node is None or not os.path.isdir(os.path.join(harness, "node_modules", "@micropython")):
        pytest.fail("MicroPython harness missing: `make micropython-harness` (make test runs it)")
    corpus = _datagram_corpus()
    inputs = {"datagrams": [d.hex() for d in corpus],
              "addresses": [["192.0.2.1", 500], ["2001:db8::1", 4500], ["::ffff:10.0.0.1", 1],
                            ["fe80:0:0:0:1:0:0:0", 65535]],
              "vids": [v.hex() for v in [vendor.VID_DPD] + natt.vendor_ids()] + [
                  b"OE-Libreswan-4.10".hex(), vendor.VID_XAUTH.hex(), "0102"],
              "port4500": ["ff", "00000000" + MM1.hex(), "c1a2b3d400000001", "0000"]}
    (tmp_path / "input.json").write_text(json.dumps(inputs))
    (tmp_path / "script.py").write_text(MICROPYTHON_SCRIPT)
    proc = subprocess.run([node, os.path.join(harness, "run.mjs"), str(tmp_path / "script.py"),
                           str(tmp_path / "input.json")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")][-1]
    micropython = json.loads(line[len("RESULT "):])
    cpython = _cpython_answers(corpus, inputs)
    assert micropython["extras"] == cpython["extras"]
    for index, (mp, cp) in enumerate(zip(micropython["results"], cpython["results"])):
        assert mp == cp, "datagram %d: MicroPython %r, CPython %r" % (index, mp, cp)
    assert len(micropython["results"]) == len(corpus)
    kinds = [r[0] for r in cpython["results"]]
    assert kinds.count("ok") >= 50 and kinds.count("malformed") >= 50   # both paths exercised
    assert natt.VID_RFC3947.hex() in inputs["vids"]
