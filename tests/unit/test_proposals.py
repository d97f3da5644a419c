"""Proposal names, transform attributes and matching (RFC 2409 App. A, RFC 2407 4.4-4.5)."""
import pytest

from ikecore.protocol import proposals as P


# -- names ------------------------------------------------------------------------------------------
def test_parse_ike_names():
    p = P.parse_ike("aes128-sha1-modp2048")
    assert (p.encr, p.integ, p.dh, p.name) == ("aes128", "sha1", "modp2048", "aes128-sha1-modp2048")
    assert P.parse_ike("3des-md5-modp1024").describe() == "3DES-CBC/HMAC-MD5/MODP-1024"
    assert p.describe() == "AES-CBC-128/HMAC-SHA1/MODP-2048"
    assert P.parse_ike("aes256-sha256-modp2048").describe() == "AES-CBC-256/HMAC-SHA2-256/MODP-2048"
    assert P.parse_ike("AES-SHA-ecp256") == P.IkeProposal("aes128", "sha1", "ecp256")


@pytest.mark.parametrize("name,message", [
    ("aes128-sha1", "must be encryption-integrity-group"),
    ("blowfish-sha1-modp2048", "unknown encryption algorithm 'blowfish'"),
    ("aes128-sha3-modp2048", "unknown integrity algorithm 'sha3'"),
    ("aes128-sha1-modp4096", "unknown Diffie-Hellman group 'modp4096'"),
    ("", "empty IKE proposal"),
])
def test_parse_ike_errors_name_the_bad_part(name, message):
    with pytest.raises(ValueError, match=message):
        P.parse_ike(name)


def test_parse_child_names():
    esp = P.parse_child("aes128-sha1", "esp")
    assert (esp.encr, esp.integ, esp.protocol) == ("aes128", "sha1", "esp")
    assert esp.describe() == "AES-CBC-128/HMAC-SHA1-96"
    assert P.parse_child("3des-md5").describe() == "3DES-CBC/HMAC-MD5-96"
    ah = P.parse_child("sha256", "ah")
    assert (ah.encr, ah.integ) == (None, "sha256") and ah.describe() == "HMAC-SHA2-256-128"
    both = P.parse_child("aes256-sha1", "esp+ah")
    assert both.describe("esp") == "AES-CBC-256/HMAC-SHA1-96" and both.describe("ah") == "HMAC-SHA1-96"


@pytest.mark.parametrize("name,protocol,message", [
    ("aes128-sha1", "ah", "AH does not encrypt"),
    ("aes128", "ah", "AH does not encrypt"),
    ("sha1", "esp", "must be encryption-integrity"),
    ("aes128-sha1-modp2048", "esp", "PFS group goes in the connection's pfs setting"),
    ("des-sha1", "esp", "unknown encryption algorithm 'des'"),
    ("aes128-crc", "esp+ah", "unknown integrity algorithm 'crc'"),
    ("aes128-sha1", "gre", "unknown IPsec protocol"),
])
def test_parse_child_errors(name, protocol, message):
    with pytest.raises(ValueError, match=message):
        P.parse_child(name, protocol)


def test_kernel_facts():
    assert P.xfrm_encryption("aes192") == ("cbc(aes)", 24)
    assert P.xfrm_encryption("3des") == ("cbc(des3_ede)", 24)
    assert P.xfrm_integrity("sha1") == ("hmac(sha1)", 20, 96)
    assert P.xfrm_integrity("sha256") == ("hmac(sha256)", 32, 128)
    assert P.xfrm_integrity("sha512") == ("hmac(sha512)", 64, 256)
    assert P.child_key_lengths("esp", P.parse_child("aes256-sha1")) == (32, 20)
    assert P.child_key_lengths("ah", P.parse_child("md5", "ah")) == (0, 16)


# -- phase 1 attributes -------------------------------------------------------------------------------
def test_ike_attributes_numbers():
    attrs = P.ike_attributes(P.parse_ike("aes256-sha256-modp2048"), "psk", 28800)
    # Encryption AES-CBC=7, Key Length 256, Hash SHA2-256=4, Auth PSK=1, Group 14, Life seconds.
    assert attrs == [(1, 7), (14, 256), (2, 4), (3, 1), (4, 14), (11, 1), (12, 28800)]
    attrs = P.ike_attributes(P.parse_ike("3des-md5-modp1024"), "rsa", 3600)
    assert attrs == [(1, 5), (2, 1), (3, 3), (4, 2), (11, 1), (12, 3600)]


def test_ike_attributes_round_trip():
    for name in ("aes128-sha1-modp2048", "3des-md5-modp768", "aes192-sha384-ecp384",
                 "aes256-sha512-modp3072"):
        t = P.decode_ike_transform(P.ike_attributes(P.parse_ike(name), "rsa", 86400))
        assert t.proposal == P.parse_ike(name) and t.auth == "rsa" and t.lifetime_s == 86400
        assert t.problem is None


def test_decode_ike_transform_problems_and_lenience():
    # Unknown cipher (DES = 1), a life duration given as bytes (variable-length attribute).
    t = P.decode_ike_transform([(1, 1), (2, 2), (3, 1), (4, 2), (11, 1), (12, b"\x00\x01\x51\x80")])
    assert t.proposal is None and "unsupported encryption algorithm 1" in t.problem
    assert t.lifetime_s == 86400
    # AES without key length: treated as AES-128.
    t = P.decode_ike_transform([(1, 7), (2, 2), (3, 1), (4, 14)])
    assert t.proposal == P.parse_ike("aes128-sha1-modp2048") and t.lifetime_s is None
    assert "no group" in P.decode_ike_transform([(1, 7), (2, 2), (3, 1)]).problem
    assert "unsupported group 22" in P.decode_ike_transform([(1, 5), (2, 2), (3, 1), (4, 22)]).problem


def test_match_ike_responder_takes_peers_first_acceptable():
    ours = [P.parse_ike(n) for n in ("aes128-sha1-modp2048", "3des-md5-modp1024")]
    offered = [P.ike_attributes(P.parse_ike(n), "psk", 28800)
               for n in ("aes256-sha256-modp2048", "3des-md5-modp1024", "aes128-sha1-modp2048")]
    index, t = P.match_ike(ours, "psk", offered)
    assert index == 1 and t.proposal.name == "3des-md5-modp1024"
    assert P.match_ike(ours, "rsa", offered) is None
    assert P.explain_ike(ours, "rsa", offered)[0] == "auth"
    assert P.match_ike(ours, "psk", offered[:1]) is None
    kind, detail = P.explain_ike(ours, "psk", offered[:1])
    assert kind == "algorithm" and "aes256-sha256-modp2048" in detail and "aes128-sha1-modp2048" in detail


def test_confirm_ike_initiator():
    ours = [P.parse_ike("aes128-sha1-modp2048")]
    chosen = P.ike_attributes(ours[0], "psk", 28800)
    assert P.confirm_ike(ours, "psk", chosen).proposal == ours[0]
    assert P.confirm_ike(ours, "psk", P.ike_attributes(P.parse_ike("aes128-sha1-modp1024"), "psk", 1)) is None


# -- quick mode ---------------------------------------------------------------------------------------
def test_child_transform_numbers():
    tid, attrs = P.child_transform(P.parse_child("aes128-sha1"), "esp", 3600, 0, None)
    # ESP_AES=12; life seconds 3600; tunnel; HMAC-SHA=2; key length 128.
    assert tid == 12 and attrs == [(1, 1), (2, 3600), (4, 1), (5, 2), (6, 128)]
    tid, attrs = P.child_transform(P.parse_child("3des-md5"), "esp", 1200, 4608000, "modp2048",
                                   udp="rfc")
    assert tid == 3 and attrs == [(1, 1), (2, 1200), (1, 2), (2, 4608000), (3, 14), (4, 3), (5, 1)]
    tid, attrs = P.child_transform(P.parse_child("sha256", "ah"), "ah", 3600, udp="draft")
    assert tid == 5 and attrs == [(1, 1), (2, 3600), (4, 61443), (5, 5)]


def test_child_transform_round_trip():
    for name, protocol in (("aes256-sha512", "esp"), ("3des-md5", "esp"), ("sha1", "ah")):
        proposal = P.parse_child(name, protocol)
        tid, attrs = P.child_transform(proposal, protocol, 3600, 1000, "modp1536", udp="draft")
        t = P.decode_child_transform(protocol, tid, attrs)
        assert t.problem is None and (t.encr, t.integ) == (proposal.encr, proposal.integ)
        assert (t.lifetime_s, t.lifetime_kb, t.pfs, t.mode, t.udp) == (3600, 1000, "modp1536",
                                                                       "tunnel", True)


def _offer(names, protocol, pfs=None):
    """One proposal-number bundle the way quick mode puts an offer on the wire."""
    bundle = {}
    for proto in (("esp", "ah") if protocol == "esp+ah" else (protocol,)):
        bundle[proto] = [P.child_transform(P.parse_child(n, protocol), proto, 3600, 0, pfs)
                         for n in names]
    return bundle


def test_match_child_esp():
    ours = [P.parse_child("aes128-sha1"), P.parse_child("3des-md5")]
    offered = [_offer(["aes256-sha256"], "esp", "modp2048"), _offer(["3des-md5"], "esp", "modp2048")]
    index, chosen = P.match_child(ours, "esp", "modp2048", offered)
    assert index == 1 and chosen["esp"][0] == 0 and chosen["esp"][1].encr == "3des"
    assert P.match_child(ours, "esp", None, offered) is None
    assert P.explain_child(ours, "esp", None, offered)[0] == "pfs"
    assert P.explain_child(ours, "ah", None, offered)[0] == "protocol"
    assert P.explain_child([P.parse_child("aes192-sha1")], "esp", "modp2048", offered)[0] == "algorithm"


def test_match_child_ah_and_esp_plus_ah():
    ours_ah = [P.parse_child("sha1", "ah")]
    assert P.match_child(ours_ah, "ah", None, [_offer(["md5", "sha1"], "ah")])[1]["ah"][0] == 1
    ours = [P.parse_child("aes128-sha1", "esp+ah")]
    index, chosen = P.match_child(ours, "esp+ah", None, [_offer(["aes128-sha1"], "esp+ah")])
    assert sorted(chosen) == ["ah", "esp"] and chosen["ah"][1].integ == "sha1"
    assert P.match_child(ours, "esp", None, [_offer(["aes128-sha1"], "esp+ah")]) is None


def test_confirm_child():
    ours = [P.parse_child("aes128-sha1")]
    answer = {"esp": P.child_transform(ours[0], "esp", 3600, 0, "modp2048")}
    assert P.confirm_child(ours, "esp", "modp2048", answer)["esp"].encr == "aes128"
    assert P.confirm_child(ours, "esp", None, answer) is None


def test_decode_child_transform_problems():
    assert "without an authentication algorithm" in P.decode_child_transform("esp", 12, [(6, 128)]).problem
    assert "unsupported ESP transform 2" in P.decode_child_transform("esp", 2, [(5, 2)]).problem
    assert "unknown encapsulation mode 9" in P.decode_child_transform("esp", 12, [(4, 9), (5, 2)]).problem
    assert "disagrees" in P.decode_child_transform("ah", 3, [(5, 1)]).problem


def test_decode_ike_transform_fixed_key_length_and_prf():
    # 3DES with a redundant Key Length of 192 is still 3DES; 128 is nonsense.
    assert P.decode_ike_transform([(1, 5), (14, 192), (2, 1), (3, 1), (4, 2)]).proposal == \
        P.parse_ike("3des-md5-modp1024")
    assert P.decode_ike_transform([(1, 5), (14, 128), (2, 1), (3, 1), (4, 2)]).proposal is None
    assert "PRF" in P.decode_ike_transform([(1, 7), (2, 2), (3, 1), (4, 14), (13, 1)]).problem
    # ESP 3DES the same way.
    assert P.decode_child_transform("esp", 3, [(5, 1), (6, 192)]).encr == "3des"


def test_proposals_are_hashable_values():
    assert len({P.parse_ike("aes-sha-modp2048"), P.parse_ike("aes128-sha1-modp2048")}) == 1
    assert len({P.parse_child("sha1", "ah"), P.parse_child("sha1", "ah"), P.parse_child("aes128-sha1")}) == 2
