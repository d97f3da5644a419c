"""Full handshakes between two in-process cores: phase 1 (main/aggressive) + quick mode.

Message flows are written as in RFC 2409; A is the initiator unless a test says otherwise."""
import pytest

from ikecore import consts as C
from ikecore import codec


def _exchanges(link):
    out = []
    for who, data in link.trace:
        h = codec.decode_header(data)
        out.append((who, C.EXCHANGE_NAMES[h.exchange], bool(h.flags & C.FLAG_ENCRYPTION)))
    return out


def _check_pairs(link, protocols=("esp",)):
    """A's outgoing SA = B's incoming SA with the same SPI and keys, and vice versa."""
    a, b = link.installed("A"), link.installed("B")
    assert len(a) == len(b) == 2 * len(protocols)
    for mine, theirs in ((a, b), (b, a)):
        for out in [s for s in mine if s.direction == "out"]:
            match = [s for s in theirs if s.direction == "in" and s.spi == out.spi
                     and s.protocol == out.protocol]
            assert len(match) == 1
            peer_in = match[0]
            assert (out.encr, out.encr_key, out.integ, out.integ_key) == \
                   (peer_in.encr, peer_in.encr_key, peer_in.integ, peer_in.integ_key)
            assert out.src == peer_in.src and out.dst == peer_in.dst
    assert sorted(s.protocol for s in a) == sorted(list(protocols) * 2)


def test_main_mode_psk_then_quick_mode_esp(ike_link_factory):
    link = ike_link_factory()
    link.a.initiate("lan", link.clock.now)
    link.flush()
    # HDR, SA -->  <-- HDR, SA;  HDR, KE, Ni -->  <-- HDR, KE, Nr;
    # HDR*, IDii, HASH_I -->  <-- HDR*, IDir, HASH_R;
    # HDR*, HASH(1), SA, Ni, IDci, IDcr -->  <-- HDR*, HASH(2), SA, Nr, IDci, IDcr;  HDR*, HASH(3) -->
    assert _exchanges(link) == [
        ("A", "MAIN", False), ("B", "MAIN", False), ("A", "MAIN", False), ("B", "MAIN", False),
        ("A", "MAIN", True), ("B", "MAIN", True),
        ("A", "QUICK", True), ("B", "QUICK", True), ("A", "QUICK", True)]
    for name, role in (("A", "initiator"), ("B", "responder")):
        (ike,) = link.ike(name)
        assert (ike["status"], ike["state"], ike["mode"], ike["role"]) == ("Activated", 9, "main", role)
        assert ike["algorithm"] == "AES-CBC-128/HMAC-SHA1/MODP-1024"
        assert ike["phase2_negotiations"] == 1 and ike["last_error"] is None
        assert len(link.sas(name)) == 2
    _check_pairs(link)
    assert link.logs("A", "error") == [] and link.logs("B", "error") == []
