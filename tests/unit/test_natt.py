"""NAT-T helpers (RFC 3947 and drafts) and vendor IDs: values checked against their published
definitions, NAT-D hashes computed independently here with hashlib/ipaddress, and the NAT verdict
for each side of a simulated NAT."""

import hashlib
import ipaddress
import json
import os
import random
import shutil
import struct
import subprocess
import sys

import pytest

from ikecore.protocol import consts as C
from ikecore.protocol import natt, vendor
from ikecore.protocol.codec import (
    MalformedMessage, Message, NatDPayload, NatOaPayload, NoncePayload, KePayload, VendorPayload,
    decode_message, encode_message,
)


def md5(text):
    return hashlib.md5(text).digest()


def sha1(data):
    return hashlib.sha1(data).digest()


ICKY = bytes.fromhex("0123456789abcdef")
RCKY = bytes.fromhex("fedcba9876543210")


def independent_nat_d(hash_name, ip, port):
    """RFC 3947 §3.2 HASH(CKY-I | CKY-R | IP | Port), written without ikecore."""
    packed = ipaddress.ip_address(ip).packed
    return hashlib.new(hash_name, ICKY + RCKY + packed + struct.pack("!H", port)).digest()


# ---------------------------------------------------------------- vendor IDs

def test_natt_vendor_ids_are_the_md5_of_their_names():
    assert natt.VID_RFC3947 == md5(b"RFC 3947")
    assert natt.VID_DRAFT_03 == md5(b"draft-ietf-ipsec-nat-t-ike-03")
    assert natt.VID_DRAFT_02 == md5(b"draft-ietf-ipsec-nat-t-ike-02")
    assert natt.VID_DRAFT_02N == md5(b"draft-ietf-ipsec-nat-t-ike-02\n")
    assert natt.vendor_ids() == [natt.VID_RFC3947, natt.VID_DRAFT_03, natt.VID_DRAFT_02N,
                                 natt.VID_DRAFT_02]


def test_other_vendor_ids_follow_their_definitions():
    assert vendor.VID_DPD == bytes([0xAF, 0xCA, 0xD7, 0x13, 0x68, 0xA1, 0xF1, 0xC9, 0x6B, 0x86,
                                    0x96, 0xFC, 0x77, 0x57]) + b"\x01\x00"   # RFC 3706, v1.0
    assert vendor.VID_XAUTH == md5(b"draft-ietf-ipsra-isakmp-xauth-06.txt")[:8]
    assert vendor.VID_CISCO_UNITY_PREFIX == md5(b"CISCO-UNITY")[:14]
    assert vendor.VID_STRONGSWAN == md5(b"strongSwan")
    assert vendor.VID_FRAGMENTATION == md5(b"FRAGMENTATION")
    assert vendor.VID_MS_NT5_PREFIX == md5(b"MS NT5 ISAKMPOAKLEY")


def test_variants_use_their_payload_numbers_and_encapsulation_modes():
    assert (natt.RFC3947.nat_d_type, natt.RFC3947.nat_oa_type) == (20, 21)
    assert natt.RFC3947.encapsulation("tunnel") == 3 and natt.RFC3947.encapsulation("transport") == 4
    for draft in (natt.DRAFT_03, natt.DRAFT_02N, natt.DRAFT_02):
        assert (draft.nat_d_type, draft.nat_oa_type) == (130, 131)
        assert draft.encapsulation("tunnel") == 61443 and draft.encapsulation("transport") == 61444


def test_choose_variant_prefers_the_rfc_then_the_newest_draft():
    assert natt.choose_variant([natt.VID_DRAFT_02, natt.VID_RFC3947, natt.VID_DRAFT_03]) is natt.RFC3947
    assert natt.choose_variant([VendorPayload(natt.VID_DRAFT_02),
                                VendorPayload(natt.VID_DRAFT_03)]) is natt.DRAFT_03
    assert natt.choose_variant([natt.VID_DRAFT_02, natt.VID_DRAFT_02N]) is natt.DRAFT_02N
    assert natt.choose_variant([vendor.VID_DPD]) is None
    assert natt.choose_variant([]) is None


def test_describe_vendor_ids_for_the_log():
    assert vendor.describe(natt.VID_RFC3947) == "NAT-T RFC 3947"
    assert vendor.describe(VendorPayload(natt.VID_DRAFT_02N)) == "NAT-T draft-ietf-ipsec-nat-t-ike-02\\n"
    assert vendor.describe(vendor.VID_DPD) == "DPD (RFC 3706)"
    assert vendor.describe(vendor.VID_XAUTH) == "XAUTH"
    assert vendor.describe(md5(b"CISCO-UNITY")[:14] + b"\x01\x00") == "Cisco Unity"
    assert vendor.describe(md5(b"strongSwan")) == "strongSwan"
    assert vendor.describe(md5(b"FRAGMENTATION") + b"\x80\x00\x00\x00") == "IKE fragmentation"
    assert vendor.describe(md5(b"MS NT5 ISAKMPOAKLEY") + b"\x00\x00\x00\x09").startswith("Windows")
    assert vendor.describe(b"OE-Libreswan-4.10") == "Libreswan 4.10"
    assert vendor.describe(b"OE-Libreswan-\xff\x00") == "Libreswan ?"
    assert vendor.describe(b"\x01\x02") == "unknown vendor ID 0102"
    assert vendor.describe(b"\xaa" * 40).endswith("...")
    assert vendor.has([VendorPayload(vendor.VID_DPD)], vendor.VID_DPD)
    assert not vendor.has([vendor.VID_XAUTH], vendor.VID_DPD)


# ---------------------------------------------------------------- NAT-D hashes

@pytest.mark.parametrize("ip,port", [("192.0.2.1", 500), ("198.51.100.2", 4500),
                                     ("10.0.0.2", 1024), ("2001:db8::1", 500),
                                     ("::ffff:192.0.2.1", 4500)])
def test_nat_d_hash_matches_an_independent_computation(ip, port):
    assert natt.nat_d_hash(sha1, ICKY, RCKY, ip, port) == independent_nat_d("sha1", ip, port)
    sha256 = lambda data: hashlib.sha256(data).digest()  # noqa: E731 — the negotiated hash
    assert natt.nat_d_hash(sha256, ICKY, RCKY, ip, port) == independent_nat_d("sha256", ip, port)


def test_nat_d_hashes_order_destination_first():
    local, remote = ("192.0.2.1", 500), ("198.51.100.2", 500)
    first, second = natt.nat_d_hashes(sha1, ICKY, RCKY, local, remote)
    assert first == independent_nat_d("sha1", "198.51.100.2", 500)
    assert second == independent_nat_d("sha1", "192.0.2.1", 500)
    payloads = natt.nat_d_payloads(natt.DRAFT_03, sha1, ICKY, RCKY, local, remote)
    assert [p.wire_type() for p in payloads] == [130, 130] and payloads[0].data == first


# Initiator A (10.0.0.2:500) sits behind a NAT that maps it to 203.0.113.5:1024; responder B is
# 198.51.100.2:500 with a public address.
A_INSIDE = ("10.0.0.2", 500)
A_OUTSIDE = ("203.0.113.5", 1024)
B = ("198.51.100.2", 500)


def test_responder_sees_the_nat_at_the_far_end():
    sent_by_a = natt.nat_d_hashes(sha1, ICKY, RCKY, local=A_INSIDE, remote=B)
    verdict = natt.detect(sha1, ICKY, RCKY, sent_by_a, local=B, remote=A_OUTSIDE)
    assert verdict == natt.NatDetection(us_behind_nat=False, peer_behind_nat=True)
    assert verdict.status == "far end" and verdict.nat


def test_initiator_sees_the_nat_at_the_near_end():
    sent_by_b = natt.nat_d_payloads(natt.RFC3947, sha1, ICKY, RCKY, local=B, remote=A_OUTSIDE)
    verdict = natt.detect(sha1, ICKY, RCKY, sent_by_b, local=A_INSIDE, remote=B)
    assert verdict == natt.NatDetection(us_behind_nat=True, peer_behind_nat=False)
    assert natt.nat_status(sha1, ICKY, RCKY, sent_by_b, A_INSIDE, B) == "near end"


def test_no_nat_and_no_nat_t():
    sent = natt.nat_d_hashes(sha1, ICKY, RCKY, local=("192.0.2.1", 500), remote=B)
    verdict = natt.detect(sha1, ICKY, RCKY, sent, local=B, remote=("192.0.2.1", 500))
    assert verdict.status == "none" and not verdict.nat
    assert natt.detect(sha1, ICKY, RCKY, [], local=B, remote=A_OUTSIDE) is None
    assert natt.nat_status(sha1, ICKY, RCKY, [], B, A_OUTSIDE) == "none"


def test_nats_on_both_sides_report_near_end():
    fake = [b"\x00" * 20, b"\x11" * 20]          # e.g. a peer faking NAT-D to force encapsulation
    verdict = natt.detect(sha1, ICKY, RCKY, fake, local=B, remote=A_OUTSIDE)
    assert verdict.us_behind_nat and verdict.peer_behind_nat and verdict.status == "near end"


def test_peer_may_list_several_source_addresses():
    sent = [independent_nat_d("sha1", *B), independent_nat_d("sha1", "10.9.9.9", 500),
            independent_nat_d("sha1", *A_OUTSIDE)]
    assert natt.nat_status(sha1, ICKY, RCKY, sent, B, A_OUTSIDE) == "none"


def test_nat_d_survives_the_codec():
    sent = natt.nat_d_payloads(natt.DRAFT_02, sha1, ICKY, RCKY, A_INSIDE, B)
    mm3 = Message(C.EXCHANGE_MAIN, ICKY, RCKY, payloads=[KePayload(b"k" * 128), NoncePayload(b"n" * 16)] + sent)
    back = decode_message(encode_message(mm3))
    received = back.find_all(NatDPayload)
    assert [p.payload_type for p in received] == [C.PT_NAT_D_DRAFT] * 2
    assert natt.detect(sha1, ICKY, RCKY, received, B, A_OUTSIDE).status == "far end"


# ---------------------------------------------------------------- addresses and NAT-OA

def test_pack_and_format_addresses_agree_with_ipaddress():
    rnd = random.Random(3947)
    samples = ["0.0.0.0", "255.255.255.255", "192.0.2.1", "::", "::1", "1::", "2001:db8::1",
               "2001:db8:0:0:1:0:0:1", "fe80::1:2:3:4", "1:2:3:4:5:6:7:8", "::ffff:192.0.2.1"]
    for _ in range(200):
        words = [rnd.choice([0, 0, rnd.randrange(65536)]) for _ in range(8)]
        samples.append(str(ipaddress.IPv6Address(b"".join(w.to_bytes(2, "big") for w in words))))
    for text in samples:
        packed = natt.pack_address(text)
        assert packed == ipaddress.ip_address(text).packed, text
        if len(packed) == 16 and not text.startswith("::ffff:"):
            assert natt.format_address(packed) == ipaddress.ip_address(text).compressed, text
    assert natt.format_address(b"\xc0\x00\x02\x01") == "192.0.2.1"
    assert natt.pack_address(b"\x01\x02\x03\x04") == b"\x01\x02\x03\x04"


@pytest.mark.parametrize("bad", ["", "1.2.3", "1.2.3.256", "1.2.3.4.5", "a.b.c.d", "1::2::3",
                                 "12345::", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7", "g::", b"\x01\x02"])
def test_pack_address_rejects_garbage(bad):
    with pytest.raises(ValueError):
        natt.pack_address(bad)


def test_nat_oa_payloads():
    oa = natt.nat_oa_payload(natt.RFC3947, "10.0.0.2")
    assert oa == NatOaPayload(C.ID_IPV4_ADDR, b"\x0a\x00\x00\x02", C.PT_NAT_OA)
    oa6 = natt.nat_oa_payload(natt.DRAFT_03, "2001:db8::5")
    assert oa6.id_type == C.ID_IPV6_ADDR and oa6.wire_type() == C.PT_NAT_OA_DRAFT
    assert natt.nat_oa_address(oa) == "10.0.0.2" and natt.nat_oa_address(oa6) == "2001:db8::5"
    with pytest.raises(MalformedMessage) as info:
        natt.nat_oa_address(NatOaPayload(C.ID_IPV4_ADDR, b"\x01\x02\x03"))
    assert info.value.notify == C.INVALID_ID_INFORMATION


# ---------------------------------------------------------------- port 4500 framing

def test_non_esp_marker_and_keepalives():
    ike = encode_message(Message(C.EXCHANGE_MAIN, ICKY, RCKY))
    wire = natt.add_non_esp_marker(ike)
    assert wire == b"\x00\x00\x00\x00" + ike
    assert natt.classify_4500(wire) == "ike" and natt.strip_non_esp_marker(wire) == ike
    assert natt.classify_4500(b"\xff") == "keepalive" and natt.is_keepalive(b"\xff")
    assert not natt.is_keepalive(b"\xff\xff")
    assert natt.classify_4500(b"\xc1\xa2\xb3\xd4\x00\x00\x00\x01" + b"x" * 16) == "esp"
    assert natt.classify_4500(b"\x00\x00") == "invalid"
    assert natt.classify_4500(b"\x01\x02\x03\x04\x05") == "invalid"
    for not_ike in (b"\xff", b"\xc1\xa2\xb3\xd4\x00\x00\x00\x01", b""):
        with pytest.raises(MalformedMessage):
            natt.strip_non_esp_marker(not_ike)


# ---------------------------------------------------------------- a whole NAT-T negotiation

def test_session_negotiates_across_a_nat():
    """A behind a NAT (10.0.0.2 -> 203.0.113.5:1024) initiates main mode to B (198.51.100.2);
    both speak NAT-T, B only the draft-03 variant."""
    a, b = natt.NattSession(), natt.NattSession()
    mm1_vids = a.vendor_payloads(initiator=True)
    assert [v.data for v in mm1_vids] == natt.vendor_ids()
    b_speaks = [v for v in mm1_vids if v.data != natt.VID_RFC3947]     # an older B
    assert b.note_vendor_ids(b_speaks) is natt.DRAFT_03
    mm2_vids = b.vendor_payloads(initiator=False)
    assert [v.data for v in mm2_vids] == [natt.VID_DRAFT_03]
    assert a.note_vendor_ids(mm2_vids + [VendorPayload(vendor.VID_DPD)]) is natt.DRAFT_03

    # MM3 (A -> B) and MM4 (B -> A) carry NAT-D, through the codec, across the NAT.
    mm3 = Message(C.EXCHANGE_MAIN, ICKY, RCKY, payloads=[KePayload(b"k"), NoncePayload(b"n" * 16)]
                  + a.nat_d_payloads(sha1, ICKY, RCKY, local=A_INSIDE, remote=B))
    got = decode_message(encode_message(mm3)).payloads
    assert [p.wire_type() for p in got[2:]] == [130, 130]
    assert b.process_nat_d(sha1, ICKY, RCKY, got, local=B, remote=A_OUTSIDE).status == "far end"
    mm4 = b.nat_d_payloads(sha1, ICKY, RCKY, local=B, remote=A_OUTSIDE)
    assert a.process_nat_d(sha1, ICKY, RCKY, mm4, local=A_INSIDE, remote=B).status == "near end"

    assert (a.status, b.status) == ("near end", "far end")
    assert a.float_ports and b.float_ports
    assert a.send_keepalives and not b.send_keepalives
    assert a.encapsulation("tunnel") == C.ENCAP_UDP_TUNNEL_DRAFT
    assert b.encapsulation("transport") == C.ENCAP_UDP_TRANSPORT_DRAFT
    assert a.encap_ports(("10.0.0.2", 4500), ("198.51.100.2", 4500)) == (4500, 4500)
    assert b.encap_ports(("198.51.100.2", 4500), ("203.0.113.5", 4501)) == (4500, 4501)


def test_session_without_nat_or_without_nat_t():
    a, b = natt.NattSession(), natt.NattSession(enabled=False)
    assert b.vendor_payloads(initiator=True) == [] and b.note_vendor_ids(natt.vendor_ids()) is None
    assert a.note_vendor_ids([VendorPayload(vendor.VID_DPD)]) is None
    assert a.vendor_payloads(initiator=False) == []
    assert a.nat_d_payloads(sha1, ICKY, RCKY, A_INSIDE, B) == []
    assert a.process_nat_d(sha1, ICKY, RCKY, [], A_INSIDE, B) is None
    assert (a.status, a.float_ports, a.send_keepalives) == ("none", False, False)
    assert a.encapsulation() == C.ENCAP_TUNNEL and a.encapsulation("transport") == C.ENCAP_TRANSPORT
    assert a.encap_ports(A_INSIDE, B) is None
    # NAT-T agreed (RFC 3947), no NAT on the path: stay on port 500, plain tunnel mode.
    c, d = natt.NattSession(), natt.NattSession()
    d.note_vendor_ids(c.vendor_payloads(initiator=True))
    c.note_vendor_ids(d.vendor_payloads(initiator=False))
    here, there = ("192.0.2.1", 500), ("198.51.100.2", 500)
    d.process_nat_d(sha1, ICKY, RCKY, c.nat_d_payloads(sha1, ICKY, RCKY, here, there), there, here)
    assert d.variant is natt.RFC3947 and d.status == "none" and not d.float_ports
    assert d.encapsulation() == C.ENCAP_TUNNEL


# ---------------------------------------------------------------- against a real strongSwan

# Runs inside namespace a as a minimal main mode responder: receives charon's message 1, answers
# message 2 (charon's first transform, the RFC 3947 VID), receives message 3 and prints all bytes.
RESPONDER = r'''
import json, os, socket, sys
from ikecore.protocol import codec, natt
from ikecore.protocol import consts as C
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 500))
sock.settimeout(20)
print("READY", flush=True)
mm1, peer = sock.recvfrom(65535)
m1 = codec.decode_message(mm1)
rcookie = os.urandom(8)
chosen = m1.payloads[0].proposals[0]
sa = codec.SaPayload([codec.Proposal(1, C.PROTO_ISAKMP, b"", [chosen.transforms[0]])])
mm2 = codec.encode_message(codec.Message(C.EXCHANGE_MAIN, m1.icookie, rcookie,
                                         payloads=[sa, codec.VendorPayload(natt.VID_RFC3947)]))
sock.sendto(mm2, peer)
while True:
    mm3, peer = sock.recvfrom(65535)
    if mm3[8:16] == rcookie:
        break
print("RESULT " + json.dumps({"mm1": mm1.hex(), "mm3": mm3.hex(), "peer": list(peer),
                              "local": [sys.argv[1], 500]}), flush=True)
'''


def _interop_modules():
    import charon
    from support import netns
    from support.paths import REPO
    if not os.path.exists(charon.CHARON) or not shutil.which("swanctl"):
        pytest.skip("strongSwan charon/swanctl not installed (make deps installs them)")
    ok, reason = netns.can_create_netns()
    if not ok:
        pytest.skip("cannot create network namespaces here: " + reason)
    return REPO, charon, netns


@pytest.fixture(scope="module")
def charon_exchanges(tmp_path_factory):
    """charon (namespace b) initiates main mode twice to our scripted responder (namespace a):
    once plainly and once with encap=yes (charon then fakes NAT-D to force UDP encapsulation).
    -> {"plain": result, "encap": result}, result = the responder's bytes and addresses."""
    root, charon_mod, netns = _interop_modules()
    work = tmp_path_factory.mktemp("natt-charon")
    script = work / "responder.py"
    script.write_text(RESPONDER)
    env = dict(os.environ, PYTHONPATH=os.path.join(root, "firmware"))
    results = {}
    with netns.pair("nt") as lab:
        charon = charon_mod.Charon(lab.b, str(work / "charon"), data_plane="netlink")
        charon.start()
        try:
            for label, encap in (("plain", False), ("encap", True)):
                child = charon_mod.Child("net", netns.NET_B, netns.NET_A, ["aes128-sha256"])
                conn = charon_mod.Conn("natt-" + label, netns.WAN_B, netns.WAN_A,
                                       ["aes128-sha256-modp2048"], "natt-test-psk", [child],
                                       encap=encap)
                charon.load([conn])
                responder = subprocess.Popen(lab.a.exec_cmd([sys.executable, str(script), netns.WAN_A]),
                                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             text=True)
                assert responder.stdout.readline().strip() == "READY"
                initiator = subprocess.Popen(
                    lab.b.exec_cmd(["swanctl", "--initiate", "--child", "net", "--timeout", "30",
                                    "--uri", charon.uri]),
                    env=charon.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    out, err = responder.communicate(timeout=30)
                finally:
                    initiator.terminate()
                    initiator.wait(timeout=10)
                    charon.terminate_all()
                lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
                assert lines, "responder got no message 3:\n%s\n%s" % (err, charon.log_tail())
                results[label] = json.loads(lines[0][len("RESULT "):])
        finally:
            charon.stop()
    return results


def _sha256(data):
    return hashlib.sha256(data).digest()


def test_charon_messages_decode_and_reencode_byte_for_byte(charon_exchanges):
    for run in charon_exchanges.values():
        for key in ("mm1", "mm3"):
            data = bytes.fromhex(run[key])
            assert encode_message(decode_message(data)) == data
    m1 = decode_message(bytes.fromhex(charon_exchanges["plain"]["mm1"]))
    (proposal,) = m1.payloads[0].proposals
    assert proposal.protocol == C.PROTO_ISAKMP and proposal.transforms
    attrs = dict(proposal.transforms[0].attributes)
    assert attrs[1] == 7 and attrs[14] == 128 and attrs[2] == 4 and attrs[4] == 14  # aes128 sha256 modp2048
    m3 = decode_message(bytes.fromhex(charon_exchanges["plain"]["mm3"]))
    assert [type(p).__name__ for p in m3.payloads] == ["KePayload", "NoncePayload", "NatDPayload",
                                                       "NatDPayload"]
    assert len(m3.find(KePayload).data) == 256


def test_charon_message_1_vendor_ids(charon_exchanges):
    m1 = decode_message(bytes.fromhex(charon_exchanges["plain"]["mm1"]))
    vids = m1.find_all(VendorPayload)
    assert natt.choose_variant(vids) is natt.RFC3947
    # charon 5.9 sends these (its draft-03/-02 entries are receive-only); nothing is unknown.
    names = [vendor.describe(v) for v in vids]
    for wanted in ("NAT-T RFC 3947", "NAT-T draft-ietf-ipsec-nat-t-ike-02\\n", "DPD (RFC 3706)",
                   "XAUTH", "IKE fragmentation"):
        assert wanted in names, names
    assert not [n for n in names if n.startswith("unknown")], names
    assert natt.choose_variant([v for v in vids if v.data != natt.VID_RFC3947]) is natt.DRAFT_02N


def test_charon_nat_d_hashes_equal_ours_without_nat(charon_exchanges):
    run = charon_exchanges["plain"]
    m3 = decode_message(bytes.fromhex(run["mm3"]))
    nat_d = m3.find_all(NatDPayload)
    assert [p.payload_type for p in nat_d] == [C.PT_NAT_D, C.PT_NAT_D]   # RFC numbering, as agreed
    local, remote = tuple(run["local"]), tuple(run["peer"])
    # charon's hashes (with the negotiated SHA-256) are exactly what natt computes for the
    # addresses: first ours (the destination), then its own.
    assert [p.data for p in nat_d] == natt.nat_d_hashes(_sha256, m3.icookie, m3.rcookie,
                                                         local=remote, remote=local)
    session = natt.NattSession()
    session.note_vendor_ids(decode_message(bytes.fromhex(run["mm1"])).payloads)
    session.process_nat_d(_sha256, m3.icookie, m3.rcookie, m3.payloads, local, remote)
    assert (session.status, session.float_ports, session.send_keepalives) == ("none", False, False)


def test_charon_faking_nat_d_makes_us_float(charon_exchanges):
    run = charon_exchanges["encap"]
    m3 = decode_message(bytes.fromhex(run["mm3"]))
    session = natt.NattSession()
    session.note_vendor_ids(decode_message(bytes.fromhex(run["mm1"])).payloads)
    verdict = session.process_nat_d(_sha256, m3.icookie, m3.rcookie, m3.payloads,
                                    tuple(run["local"]), tuple(run["peer"]))
    # charon pretends to be behind a NAT (its own hash is faked): far end, UDP-encapsulated ESP.
    assert verdict.peer_behind_nat and not verdict.us_behind_nat, verdict
    assert session.status == "far end" and session.float_ports
    assert session.encapsulation("tunnel") == C.ENCAP_UDP_TUNNEL
