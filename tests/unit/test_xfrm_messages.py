"""XFRM netlink messages (ikecore.xfrm_messages) and the backend's pure helpers (ikecore.xfrm).

The layouts are checked twice: against the sizes <linux/xfrm.h> has on LP64 (x86_64 host and
aarch64 guest alike), and field by field against offsets computed from the C declarations with
the natural-alignment rules both ABIs use. The kernel itself checks them in tests/xfrm (host)
and tests/qemu (guest).
"""
import os
import socket
import struct
import subprocess
import sys

import pytest

from ikecore import xfrm
from ikecore import xfrm_messages as m
from ikecore.protocol.events import ChildSa

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# --- C layouts by the LP64 rules: each member aligned to its own alignment, the struct to its
# largest member's. (type, size, alignment); xfrm_address_t is a union of __be32 arrays.
U8, U16, U32, U64 = ("u8", 1, 1), ("u16", 2, 2), ("u32", 4, 4), ("u64", 8, 8)
ADDR = ("xfrm_address_t", 16, 4)
C_STRUCTS = {
    "selector": [("daddr", ADDR), ("saddr", ADDR), ("dport", U16), ("dport_mask", U16),
                 ("sport", U16), ("sport_mask", U16), ("family", U16), ("prefixlen_d", U8),
                 ("prefixlen_s", U8), ("proto", U8), ("ifindex", U32), ("user", U32)],
    "id": [("daddr", ADDR), ("spi", U32), ("proto", U8)],
    "lft": [(n, U64) for n in ("soft_byte_limit", "hard_byte_limit", "soft_packet_limit",
                               "hard_packet_limit", "soft_add_expires_seconds",
                               "hard_add_expires_seconds", "soft_use_expires_seconds",
                               "hard_use_expires_seconds")],
    "curlft": [(n, U64) for n in ("bytes", "packets", "add_time", "use_time")],
    "stats": [("replay_window", U32), ("replay", U32), ("integrity_failed", U32)],
}
C_STRUCTS["usersa_info"] = [("sel", "selector"), ("id", "id"), ("saddr", ADDR), ("lft", "lft"),
                            ("curlft", "curlft"), ("stats", "stats"), ("seq", U32),
                            ("reqid", U32), ("family", U16), ("mode", U8),
                            ("replay_window", U8), ("flags", U8)]
C_STRUCTS["userpolicy_info"] = [("sel", "selector"), ("lft", "lft"), ("curlft", "curlft"),
                                ("priority", U32), ("index", U32), ("dir", U8), ("action", U8),
                                ("flags", U8), ("share", U8)]
C_STRUCTS["user_tmpl"] = [("id", "id"), ("family", U16), ("saddr", ADDR), ("reqid", U32),
                          ("mode", U8), ("share", U8), ("optional", U8), ("aalgos", U32),
                          ("ealgos", U32), ("calgos", U32)]
C_STRUCTS["user_acquire"] = [("id", "id"), ("saddr", ADDR), ("sel", "selector"),
                             ("policy", "userpolicy_info"), ("aalgos", U32), ("ealgos", U32),
                             ("calgos", U32), ("seq", U32)]
C_STRUCTS["user_expire"] = [("state", "usersa_info"), ("hard", U8)]
C_STRUCTS["usersa_id"] = [("daddr", ADDR), ("spi", U32), ("family", U16), ("proto", U8)]
C_STRUCTS["userpolicy_id"] = [("sel", "selector"), ("index", U32), ("dir", U8)]
C_STRUCTS["userspi_info"] = [("info", "usersa_info"), ("min", U32), ("max", U32)]
C_STRUCTS["encap_tmpl"] = [("encap_type", U16), ("encap_sport", U16), ("encap_dport", U16),
                           ("encap_oa", ADDR)]


def c_layout(name, prefix="", base=0):
    """({flattened member name: offset}, size, alignment) of a C struct by the LP64 rules."""
    offsets, offset, align = {}, 0, 1
    for member, kind in C_STRUCTS[name]:
        if isinstance(kind, str):
            inner, size, inner_align = c_layout(kind)
            offset = -(-offset // inner_align) * inner_align
            for inner_name, inner_offset in inner.items():
                offsets[prefix + member + "_" + inner_name] = base + offset + inner_offset
            align = max(align, inner_align)
            offset += size
        else:
            _, size, member_align = kind
            offset = -(-offset // member_align) * member_align
            offsets[prefix + member] = base + offset
            align = max(align, member_align)
            offset += size
    return offsets, -(-offset // align) * align, align


def our_layout(fields):
    """{field name: offset} and total size of one of our field lists (padding fields skipped)."""
    offsets, offset = {}, 0
    for name, fmt in fields:
        if not fmt.endswith("x"):
            offsets[name] = offset
        offset += struct.calcsize(fmt)
    return offsets, offset


LAYOUTS = [("selector", m.SELECTOR, 56), ("id", m.XFRM_ID, 24),
           ("usersa_info", m.USERSA_INFO, 224), ("userpolicy_info", m.USERPOLICY_INFO, 168),
           ("user_tmpl", m.USER_TMPL, 64), ("user_acquire", m.USER_ACQUIRE, 280),
           ("user_expire", m.USER_EXPIRE, 232), ("usersa_id", m.USERSA_ID, 24),
           ("userpolicy_id", m.USERPOLICY_ID, 64), ("userspi_info", m.USERSPI_INFO, 232),
           ("encap_tmpl", m.ENCAP_TMPL, 24)]


@pytest.mark.parametrize("name,fields,size", LAYOUTS, ids=[layout[0] for layout in LAYOUTS])
def test_struct_layout_matches_the_c_declaration_on_lp64(name, fields, size):
    c_offsets, c_size, _ = c_layout(name)
    offsets, total = our_layout(fields)
    assert c_size == size            # the sizes <linux/xfrm.h> has on x86_64 and aarch64
    assert total == size
    # userspi_info embeds usersa_info as "info"; our list flattens it without that prefix
    c_offsets = dict((k[len("info_"):] if k.startswith("info_") else k, v)
                     for k, v in c_offsets.items())
    assert offsets == c_offsets


def test_message_classes_have_the_kernel_sizes():
    sizes = {m.usersa_info: 224, m.userpolicy_info: 168, m.user_tmpl: 64, m.usersa_id: 24,
             m.userpolicy_id: 64, m.user_acquire: 280, m.user_expire: 232, m.userspi_info: 232}
    for cls, size in sizes.items():
        assert cls.get_size() == size, cls.__name__


# --- encode / decode round trips -----------------------------------------------------------------
def roundtrip(cls, msg_type, values, attrs=()):
    data = m.encode(cls, msg_type, m.NLM_F_REQUEST | m.NLM_F_ACK, 42, values, attrs)
    header_length, header_type, _, seq, _ = struct.unpack_from("=IHHII", data)
    assert header_length == len(data) and header_type == msg_type and seq == 42
    [msg] = m.decode(data)
    assert type(msg) is m.INCOMING.get(msg_type, cls) or isinstance(msg, cls)
    return data, msg


def test_sa_with_algorithms_and_encap_round_trips():
    family, dst = m.pack_address("198.51.100.2")
    values = {"id_daddr": dst, "id_spi": 0xC1A2B3D4, "id_proto": m.IPPROTO_ESP,
              "saddr": m.pack_address("203.0.113.1")[1], "family": family, "reqid": 7,
              "mode": m.XFRM_MODE_TUNNEL, "replay_window": 32,
              "lft_hard_add_expires_seconds": 3600, "lft_soft_byte_limit": m.XFRM_INF}
    crypt_key = bytes(range(16))
    auth_key = bytes(range(100, 120))
    attrs = [("XFRMA_ALG_CRYPT", {"alg_name": b"cbc(aes)", "alg_key": crypt_key}),
             ("XFRMA_ALG_AUTH_TRUNC", {"alg_name": b"hmac(sha1)", "alg_key": auth_key,
                                       "alg_trunc_len": 96}),
             ("XFRMA_ENCAP", {"encap_type": m.UDP_ENCAP_ESPINUDP, "encap_sport": 4500,
                              "encap_dport": 4501})]
    data, msg = roundtrip(m.usersa_info, m.XFRM_MSG_NEWSA, values, attrs)
    # the fixed part: 16 header + 224; SPI and ports in network byte order where the kernel reads
    assert data[16 + 56 + 16:16 + 56 + 20] == bytes.fromhex("c1a2b3d4")
    record = xfrm.sa_record(msg)
    assert record["spi"] == 0xC1A2B3D4 and record["dst"] == "198.51.100.2"
    assert record["src"] == "203.0.113.1" and record["reqid"] == 7 and record["mode"] == "tunnel"
    assert record["encr"] == "cbc(aes)" and record["integ"] == "hmac(sha1)"
    assert record["integ_trunc_bits"] == 96 and record["encap"] == (4500, 4501)
    assert msg.get_attr("XFRMA_ALG_CRYPT")["alg_key"] == crypt_key
    assert msg.get_attr("XFRMA_ALG_CRYPT")["alg_key_len"] == 128
    assert msg.get_attr("XFRMA_ALG_AUTH_TRUNC")["alg_key"] == auth_key
    assert msg["lft_hard_add_expires_seconds"] == 3600
    assert msg["lft_soft_byte_limit"] == m.XFRM_INF
    encap = msg.get_attr("XFRMA_ENCAP")
    assert struct.pack(">H", 4500) in data and encap["encap_type"] == m.UDP_ENCAP_ESPINUDP


def test_key_of_odd_length_is_padded_and_read_back_exactly():
    # 3DES keys are 24 bytes, but a 5-byte key checks the attribute padding path
    attrs = [("XFRMA_ALG_CRYPT", {"alg_name": b"cbc(des3_ede)", "alg_key": b"12345"}),
             ("XFRMA_ALG_AUTH_TRUNC", {"alg_name": b"hmac(md5)", "alg_key": bytes(16),
                                       "alg_trunc_len": 96})]
    data, msg = roundtrip(m.usersa_info, m.XFRM_MSG_NEWSA, {}, attrs)
    assert len(data) % 4 == 0
    assert msg.get_attr("XFRMA_ALG_CRYPT")["alg_key"] == b"12345"
    assert msg.get_attr("XFRMA_ALG_AUTH_TRUNC")["alg_name"].rstrip(b"\0") == b"hmac(md5)"


def test_policy_with_two_templates_round_trips():
    values = dict(m.selector("10.1.0.0/24", "10.2.0.0/16"), dir=m.XFRM_POLICY_OUT, priority=99)
    family, gw_a = m.pack_address("192.0.2.1")
    _, gw_b = m.pack_address("192.0.2.2")
    templates = [{"id_daddr": gw_b, "id_proto": m.IPPROTO_ESP, "family": family, "saddr": gw_a,
                  "reqid": 5, "mode": m.XFRM_MODE_TUNNEL, "aalgos": m.ALL_ALGORITHMS},
                 {"id_daddr": gw_b, "id_proto": m.IPPROTO_AH, "family": family, "saddr": gw_a,
                  "reqid": 5, "mode": m.XFRM_MODE_TRANSPORT}]
    data, msg = roundtrip(m.userpolicy_info, m.XFRM_MSG_NEWPOLICY, values,
                          [("XFRMA_TMPL", {"templates": templates})])
    assert len(data) == 16 + 168 + 4 + 2 * 64
    record = xfrm.policy_record(msg)
    assert record["src"] == "10.1.0.0/24" and record["dst"] == "10.2.0.0/16"
    assert record["dir"] == "out" and record["priority"] == 99
    assert [(t["protocol"], t["mode"], t["src"], t["dst"], t["reqid"]) for t in record["templates"]] \
        == [("esp", "tunnel", "192.0.2.1", "192.0.2.2", 5),
            ("ah", "transport", "192.0.2.1", "192.0.2.2", 5)]


def test_ack_with_extended_error_text_decodes():
    # what the kernel sends for a refused request: errno, the request's header, then the text
    ack = m.ack()
    ack["error"] = -93
    ack["orig_type"] = m.XFRM_MSG_NEWSA
    ack["orig_seq"] = 9
    ack["attrs"] = [["NLMSGERR_ATTR_MSG", "Requested type not found"]]
    ack["header"]["type"] = m.NLMSG_ERROR
    ack["header"]["sequence_number"] = 9
    ack.encode()
    [msg] = m.decode(ack.data)
    assert msg["error"] == -93 and msg["orig_type"] == m.XFRM_MSG_NEWSA
    assert msg.get_attr("NLMSGERR_ATTR_MSG") == "Requested type not found"


def test_several_messages_in_one_datagram_and_truncation():
    one = m.encode(m.usersa_id, m.XFRM_MSG_DELSA, 0, 1, {"spi": 1})
    two = m.encode(m.userpolicy_id, m.XFRM_MSG_DELPOLICY, 0, 2, {"dir": 1})
    messages = m.decode(one + two)
    assert [msg["header"]["sequence_number"] for msg in messages] == [1, 2]
    with pytest.raises(ValueError, match="truncated netlink message"):
        m.decode((one + two)[:-8])


def test_encode_refuses_unknown_fields():
    with pytest.raises(ValueError, match="usersa_id has no field spii"):
        m.encode(m.usersa_id, m.XFRM_MSG_DELSA, 0, 1, {"spii": 1})


def test_addresses_and_networks():
    assert m.pack_address("192.0.2.1") == (socket.AF_INET, bytes([192, 0, 2, 1]) + bytes(12))
    assert m.unpack_address(socket.AF_INET6, m.pack_address("2001:db8::1")[1]) == "2001:db8::1"
    assert m.pack_network("10.1.0.7/24")[1:] == (bytes([10, 1, 0, 0]) + bytes(12), 24)
    with pytest.raises(ValueError, match="not an IP address: 'gateway'"):
        m.pack_address("gateway")
    with pytest.raises(ValueError, match="mixes IPv4 and IPv6"):
        m.selector("10.0.0.0/8", "2001:db8::/32")


# --- backend helpers ---------------------------------------------------------------------------
def child(**kw):
    values = dict(id="c1", protocol="esp", direction="out", spi=0x1000, src="192.0.2.1",
                  dst="192.0.2.2", encr="aes128", encr_key=bytes(16), integ="sha256",
                  integ_key=bytes(32), lifetime_s=3600, lifetime_kb=0, reqid=1)
    values.update(kw)
    return ChildSa(**values)


def test_algorithm_attrs_for_esp_and_ah():
    attrs = dict(xfrm.algorithm_attrs(child()))
    assert attrs["XFRMA_ALG_CRYPT"]["alg_name"] == b"cbc(aes)"
    assert attrs["XFRMA_ALG_AUTH_TRUNC"] == {"alg_name": b"hmac(sha256)", "alg_key": bytes(32),
                                             "alg_trunc_len": 128}      # RFC 4868
    ah = dict(xfrm.algorithm_attrs(child(protocol="ah", encr=None, encr_key=None, integ="md5",
                                         integ_key=bytes(16))))
    assert list(ah) == ["XFRMA_ALG_AUTH_TRUNC"] and ah["XFRMA_ALG_AUTH_TRUNC"]["alg_trunc_len"] == 96


def test_algorithm_attrs_name_a_wrong_key_length():
    with pytest.raises(ValueError, match="aes128 key is 15 bytes, cbc\\(aes\\) needs 16"):
        xfrm.algorithm_attrs(child(encr_key=bytes(15)))
    with pytest.raises(ValueError, match="sha1 key is 16 bytes, hmac\\(sha1\\) needs 20"):
        xfrm.algorithm_attrs(child(integ="sha1", integ_key=bytes(16)))


def test_lifetimes_soft_before_hard():
    lft = xfrm.sa_lifetime(3600, 1000)
    assert lft["lft_hard_add_expires_seconds"] == 3600
    assert 3600 - 360 < lft["lft_soft_add_expires_seconds"] < 3600   # after the core's rekey
    assert lft["lft_soft_byte_limit"] < lft["lft_hard_byte_limit"] == 1024000
    short = xfrm.sa_lifetime(40, 0)
    assert short["lft_soft_add_expires_seconds"] == 39 and short["lft_hard_add_expires_seconds"] == 40
    assert short["lft_hard_byte_limit"] == m.XFRM_INF     # 0 kB = no volume limit
    assert "lft_hard_add_expires_seconds" not in xfrm.sa_lifetime(0, 0)


def test_reqid_range():
    assert xfrm.kernel_reqid(1) == xfrm.REQID_BASE + 1 and xfrm.is_ours(xfrm.REQID_BASE + 1)
    assert not xfrm.is_ours(1) and not xfrm.is_ours(xfrm.REQID_BASE + xfrm.REQID_SPAN)
    for bad in (0, -1, xfrm.REQID_SPAN, None):
        with pytest.raises(ValueError, match="reqid"):
            xfrm.kernel_reqid(bad)


def test_xfrm_stat_parses_proc_format(tmp_path):
    path = tmp_path / "xfrm_stat"
    path.write_text("XfrmInError             \t0\nXfrmInStateProtoError   \t3\n")
    assert xfrm.xfrm_stat(str(path)) == {"XfrmInError": 0, "XfrmInStateProtoError": 3}
    assert xfrm.xfrm_stat(str(tmp_path / "missing")) == {}


def test_dispatch_calls_back_for_our_expire_only():
    backend = xfrm.XfrmBackend.__new__(xfrm.XfrmBackend)     # no sockets: dispatch only
    backend.sas = {}
    seen = []
    backend.on_expire = lambda *args: seen.append(args)
    backend.on_acquire = None
    family, dst = m.pack_address("192.0.2.1")
    for reqid, spi in ((xfrm.REQID_BASE + 3, 0x2000), (3, 0x3000), (xfrm.REQID_BASE + 3, 0)):
        data = m.encode(m.user_expire, m.XFRM_MSG_EXPIRE, 0, 0,
                        {"state_id_daddr": dst, "state_id_spi": spi,
                         "state_id_proto": m.IPPROTO_ESP, "state_family": family,
                         "state_reqid": reqid, "hard": 1})
        backend.dispatch(m.decode(data)[0])
    # not ours (reqid 3) and larval acquire states (SPI 0) are not reported
    assert seen == [("esp", 0x2000, "192.0.2.1", True)]


# --- import cost -----------------------------------------------------------------------------
def test_import_skips_pyroute2s_package_init_but_keeps_it_usable():
    code = ("import sys, ikecore.xfrm\n"
            "heavy = [n for n in sys.modules if n.startswith(('pyroute2.iproute', 'pyroute2.ndb',"
            " 'sqlite3'))]\n"
            "print('heavy', heavy)\n"
            "import pyroute2.iproute\n"          # a submodule first, as other code may
            "from pyroute2 import IPRoute, config\n"
            "from pyroute2.netlink import nlmsg\n"
            "import ikecore.xfrm_messages as m\n"
            "print('ok', IPRoute.__name__, m.nlmsg is nlmsg)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=os.path.join(TOP, "firmware")),
                         check=True).stdout
    assert "heavy []" in out
    assert "ok IPRoute True" in out


def test_sa_dump_request_is_a_bare_header():
    # The kernel reads a SA dump request's body as attributes: any struct there is logged as
    # "bytes leftover after parsing attributes" on every status poll (seen in the guest's syslog).
    data = m.encode(m.sa_dump_request, m.XFRM_MSG_GETSA, m.NLM_F_REQUEST | m.NLM_F_DUMP, 1, {})
    assert len(data) == 16 and int.from_bytes(data[:4], "little") == 16
