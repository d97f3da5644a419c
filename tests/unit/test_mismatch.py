"""Every failure cause of the seed, both roles: where the state number stops and the one
diagnosis line (VPN log at error level and the IKE SA's last_error)."""
import pytest

from ikecore.protocol.ikesa import RETRANSMIT_DELAYS

GIVE_UP = sum(RETRANSMIT_DELAYS) + 1
OTHER = {"A": "B", "B": "A"}


def _start(link, who):
    link.core(who).initiate("lan", link.clock.now)
    link.flush()


def _one(link, name):
    (ike,) = link.ike(name)
    return ike


def _errors(link, name):
    return link.logs(name, "error")


def _assert_line(line, *words):
    assert line is not None
    assert line.count("\u2014") == 1 and "\n" not in line
    for w in words:
        assert w in line, (w, line)


# -- phase 1 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("i", ["A", "B"])
def test_psk_mismatch_main_mode(ike_link_factory, i):
    r = OTHER[i]
    link = ike_link_factory(a_kwargs={"psk": b"correct horse"}, b_kwargs={"psk": b"battery staple"})
    _start(link, i)
    # HDR, SA -->  <-- HDR, SA;  HDR, KE, Ni -->  <-- HDR, KE, Nr;  HDR*, IDii, HASH_I -->  (garbage
    # for the responder: different SKEYID_e)  <-- HDR, N(PAYLOAD-MALFORMED) in clear
    assert _one(link, i)["state"] == 7 and _one(link, i)["status"] == "Negotiating"
    assert _one(link, r)["state"] == 5
    _assert_line(_one(link, r)["last_error"], "phase 1 with", "pre-shared key mismatch",
                 "message 5 did not decrypt to valid payloads", "check the pre-shared key")
    _assert_line(_one(link, i)["last_error"], "pre-shared key mismatch", "PAYLOAD-MALFORMED")
    link.step(GIVE_UP)
    assert _one(link, i)["state"] == 7
    _assert_line(_one(link, i)["last_error"], "pre-shared key mismatch")
    assert len(_errors(link, r)) == 1


def test_psk_mismatch_main_mode_silent_peer(ike_link_factory):
    """A peer that says nothing when message 5 does not decrypt: give-up names the key."""
    link = ike_link_factory(a_kwargs={"psk": b"one"}, b_kwargs={"psk": b"two"})
    link.a.initiate("lan", link.clock.now)
    link.flush(drop=lambda who, n, d: who == "B" and n >= 2)
    link.step(GIVE_UP, drop=lambda who, n, d: who == "B" and n >= 2)
    ike = _one(link, "A")
    assert ike["state"] == 7
    _assert_line(ike["last_error"], "pre-shared key mismatch", "message 5")


@pytest.mark.parametrize("i", ["A", "B"])
def test_psk_mismatch_aggressive_mode(ike_link_factory, i):
    r = OTHER[i]
    link = ike_link_factory(both={"mode": "aggressive"},
                            a_kwargs={"psk": b"one"}, b_kwargs={"psk": b"two"})
    _start(link, i)
    # HDR, SA, KE, Ni, IDii -->  <-- HDR, SA, KE, Nr, IDir, HASH_R (does not verify)
    # HDR, N(INVALID-HASH-INFORMATION) -->
    assert _one(link, i)["state"] == 3 and _one(link, r)["state"] == 3
    _assert_line(_one(link, i)["last_error"], "pre-shared key mismatch", "HASH_R did not verify")
    _assert_line(_one(link, r)["last_error"], "pre-shared key mismatch",
                 "INVALID-HASH-INFORMATION")


@pytest.mark.parametrize("i", ["A", "B"])
@pytest.mark.parametrize("modes", [("main", "aggressive"), ("aggressive", "main")])
def test_mode_mismatch(ike_link_factory, i, modes):
    r = OTHER[i]
    link = ike_link_factory(**{("a_kwargs" if i == "A" else "b_kwargs"): {"mode": modes[0]},
                               ("b_kwargs" if i == "A" else "a_kwargs"): {"mode": modes[1]}})
    _start(link, i)
    # HDR, SA ... -->  (wrong exchange type for the responder)  <-- HDR, N(INVALID-EXCHANGE-TYPE)
    assert _one(link, i)["state"] == 3 and _one(link, r)["state"] == 1
    _assert_line(_one(link, r)["last_error"], "mode mismatch",
                 "the peer started %s mode, we are set to %s mode" % modes,
                 "same IKE phase 1 mode")
    _assert_line(_one(link, i)["last_error"], "mode mismatch", "INVALID-EXCHANGE-TYPE")


@pytest.mark.parametrize("i", ["A", "B"])
@pytest.mark.parametrize("mode", ["main", "aggressive"])
def test_phase1_algorithm_mismatch(ike_link_factory, i, mode):
    r = OTHER[i]
    link = ike_link_factory(both={"mode": mode}, a_kwargs={"ike": ["aes128-sha1-modp1024"]},
                            b_kwargs={"ike": ["3des-md5-modp1024"]})
    _start(link, i)
    # HDR, SA -->  (nothing acceptable)  <-- HDR, N(NO-PROPOSAL-CHOSEN)
    assert _one(link, i)["state"] == 3 and _one(link, r)["state"] == 1
    _assert_line(_one(link, r)["last_error"], "phase 1", "algorithm mismatch", "peer offers",
                 "check the IKE proposals")
    _assert_line(_one(link, i)["last_error"], "algorithm mismatch", "NO-PROPOSAL-CHOSEN")
    link.step(GIVE_UP)
    _assert_line(_one(link, i)["last_error"], "algorithm mismatch")


def test_id_mismatch_main_mode_responder_checks(ike_link_factory, ike_identity):
    link = ike_link_factory(b_kwargs={"remote_id": ike_identity("fqdn", "branch.example")})
    _start(link, "A")
    # ... HDR*, IDii(ipv4), HASH_I -->  (hash fine, ID not the expected one)
    # <-- HDR*, HASH(1), N(INVALID-ID-INFORMATION)
    assert _one(link, "A")["state"] == 7 and _one(link, "B")["state"] == 5
    _assert_line(_one(link, "B")["last_error"], "ID mismatch", "ipv4 192.0.2.1",
                 "fqdn branch.example", "check the local and remote ID")
    _assert_line(_one(link, "A")["last_error"], "ID mismatch", "INVALID-ID-INFORMATION")


def test_id_mismatch_main_mode_initiator_checks(ike_link_factory, ike_identity):
    link = ike_link_factory(a_kwargs={"remote_id": ike_identity("ipv4", "198.51.100.99")})
    _start(link, "A")
    # <-- HDR*, IDir(198.51.100.2), HASH_R  (not who we expect)
    # HDR*, HASH(1), N(INVALID-ID-INFORMATION) -->  HDR*, HASH(1), D(ISAKMP) -->
    assert _one(link, "A")["state"] == 7
    _assert_line(_one(link, "A")["last_error"], "ID mismatch", "198.51.100.2", "198.51.100.99")
    assert link.ike("B") == []          # the responder's SA was deleted
    assert any("ID mismatch" in e and "INVALID-ID-INFORMATION" in e for e in _errors(link, "B"))


@pytest.mark.parametrize("checker", ["A", "B"])
def test_id_mismatch_aggressive_mode(ike_link_factory, ike_identity, checker):
    kwargs = {"remote_id": ike_identity("user_fqdn", "vpn@example.org")}
    link = ike_link_factory(both={"mode": "aggressive"},
                            **{("a_kwargs" if checker == "A" else "b_kwargs"): kwargs})
    _start(link, "A")
    if checker == "B":
        # HDR, SA, KE, Ni, IDii -->  (wrong ID)  <-- HDR, N(INVALID-ID-INFORMATION)
        assert _one(link, "B")["state"] == 1 and _one(link, "A")["state"] == 3
    else:
        # <-- HDR, SA, KE, Nr, IDir, HASH_R  (wrong ID)  HDR*, HASH(1), N(INVALID-ID-INFORMATION) -->
        assert _one(link, "A")["state"] == 3 and _one(link, "B")["state"] == 3
    _assert_line(_one(link, checker)["last_error"], "ID mismatch", "vpn@example.org")
    _assert_line(_one(link, OTHER[checker])["last_error"], "ID mismatch", "INVALID-ID-INFORMATION")


def test_unreachable_peer(ike_link_factory):
    link = ike_link_factory()
    lose_all = lambda who, n, d: True
    link.a.initiate("lan", link.clock.now)
    link.flush(drop=lose_all)
    assert _one(link, "A")["state"] == 3
    link.step(GIVE_UP, drop=lose_all)
    ike = _one(link, "A")
    assert ike["state"] == 3 and ike["status"] == "Negotiating"
    _assert_line(ike["last_error"], "phase 1 with 198.51.100.2 failed",
                 "could not be reached", "UDP port 500")
    # HDR, SA --> sent 5 times (first + 4 retransmissions at 2, 4, 8, 16 s), then give up
    assert len(link.trace) == len(RETRANSMIT_DELAYS)
    assert link.a.get_timer() is not None     # the failed SA is cleared later


# -- phase 2 ----------------------------------------------------------------------------------
def _phase2(link, i):
    _start(link, i)
    for name in "AB":
        assert _one(link, name)["state"] == 9          # phase 1 is fine
    assert link.sas("A") == [] and link.sas("B") == []


@pytest.mark.parametrize("i", ["A", "B"])
def test_phase2_algorithm_mismatch(ike_link_factory, i):
    link = ike_link_factory(a_kwargs={"child": ["aes128-sha1"]}, b_kwargs={"child": ["3des-md5"]})
    _phase2(link, i)
    # HDR*, HASH(1), SA, Ni, IDci, IDcr -->  <-- HDR*, HASH(1), N(NO-PROPOSAL-CHOSEN)
    _assert_line(_one(link, OTHER[i])["last_error"], "phase 2 (connection lan)",
                 "algorithm mismatch", "no offered esp transform")
    _assert_line(_one(link, i)["last_error"], "phase 2 (connection lan)", "NO-PROPOSAL-CHOSEN",
                 "protocol, algorithm or PFS")


@pytest.mark.parametrize("i", ["A", "B"])
def test_protocol_mismatch(ike_link_factory, i):
    link = ike_link_factory(a_kwargs={"protocol": "esp", "child": ["aes128-sha1"]},
                            b_kwargs={"protocol": "ah", "child": ["sha1"]})
    _phase2(link, i)
    ours = "esp" if OTHER[i] == "A" else "ah"
    _assert_line(_one(link, OTHER[i])["last_error"], "protocol mismatch", "we use %s" % ours,
                 "same IPsec protocol")
    _assert_line(_one(link, i)["last_error"], "NO-PROPOSAL-CHOSEN")


@pytest.mark.parametrize("i", ["A", "B"])
@pytest.mark.parametrize("pfs", [("modp1024", None), (None, "modp1024"), ("modp1024", "ecp256")])
def test_pfs_mismatch(ike_link_factory, i, pfs):
    link = ike_link_factory(a_kwargs={"pfs": pfs[0]}, b_kwargs={"pfs": pfs[1]})
    _phase2(link, i)
    _assert_line(_one(link, OTHER[i])["last_error"], "PFS mismatch", "check that both peers use PFS")
    _assert_line(_one(link, i)["last_error"], "NO-PROPOSAL-CHOSEN")


@pytest.mark.parametrize("i", ["A", "B"])
def test_network_mismatch(ike_link_factory, i):
    link = ike_link_factory(b_kwargs={"remote_net" if False else "child": ["aes128-sha1"]})
    # B's idea of A's network differs
    link.b.settings.connections["lan"].remote_net = "192.168.99.0/24"
    _phase2(link, i)
    # HDR*, HASH(1), SA, Ni, IDci, IDcr -->  <-- HDR*, HASH(1), N(INVALID-ID-INFORMATION)
    _assert_line(_one(link, OTHER[i])["last_error"], "local/remote network mismatch",
                 "each side's local network")
    _assert_line(_one(link, i)["last_error"], "network mismatch", "INVALID-ID-INFORMATION")
    assert len(_errors(link, OTHER[i])) == 1


# -- certificates -------------------------------------------------------------------------------
@pytest.mark.parametrize("i", ["A", "B"])
@pytest.mark.parametrize("bad", ["A", "B"])
def test_certificate_from_a_foreign_ca(ike_link_factory, ike_pki, i, bad):
    sides = {"A": ike_pki.side("A"), "B": ike_pki.side("B")}
    sides[bad] = dict(sides[bad], cert_der=ike_pki.certs["foreign"], key_pem=ike_pki.keys["foreign"])
    link = ike_link_factory(a_kwargs=sides["A"], b_kwargs=sides["B"])
    _start(link, i)
    checker = OTHER[bad]
    # the checker stops where the peer's certificate arrived: MM 5 (responder) / MM 6 (initiator)
    assert _one(link, checker)["state"] == (7 if checker == i else 5)
    _assert_line(_one(link, checker)["last_error"], "certificate mismatch", "Other CA",
                 "check the certificates")
    other_errors = _errors(link, bad)
    assert any("certificate mismatch" in e and "INVALID-CERT-AUTHORITY" in e for e in other_errors)


@pytest.mark.parametrize("configured", [False, True])
def test_certificate_from_an_intermediate_ca(ike_link_factory, ike_pki, configured):
    """A's certificate is issued by an intermediate: A sends it in a second CERT payload, or B
    has it configured. Without either, B refuses with the unknown issuer."""
    a = dict(ike_pki.side("A"), cert_der=ike_pki.certs["via_intermediate"])
    b = ike_pki.side("B")
    if configured:
        b["chain_ders"] = [ike_pki.intermediate]
    else:
        a["chain_ders"] = [ike_pki.intermediate]
    link = ike_link_factory(a_kwargs=a, b_kwargs=b)
    _start(link, "A")
    for name in "AB":
        assert (_one(link, name)["state"], _one(link, name)["last_error"]) == (9, None)

    link = ike_link_factory(a_kwargs=dict(a, chain_ders=[]), b_kwargs=ike_pki.side("B"))
    _start(link, "A")
    _assert_line(_one(link, "B")["last_error"], "certificate mismatch",
                 "unknown issuer C=CH, O=ikecore test, CN=Intermediate CA")


@pytest.mark.parametrize("synchronized", [False, True])
def test_expired_certificate_refused_once_the_clock_is_set(ike_link_factory, ike_pki,
                                                           synchronized):
    """Dates count only once the driver says the clock is synchronized (wall_offset)."""
    link = ike_link_factory(a_kwargs=dict(ike_pki.side("A"), cert_der=ike_pki.certs["expired"]),
                            b_kwargs=ike_pki.side("B"))
    if synchronized:
        # 2026-06-01 at the link's clock
        link.core("B").wall_offset = 1780272000 - link.clock.now
    _start(link, "A")
    if synchronized:
        _assert_line(_one(link, "B")["last_error"], "certificate mismatch",
                     "expired on 2025-01-01 00:00:00 UTC")
    else:
        assert _one(link, "B")["state"] == 9


def test_certificate_does_not_carry_the_claimed_id(ike_link_factory, ike_pki, ike_identity):
    link = ike_link_factory(a_kwargs=dict(ike_pki.side("A"),
                                          local_id=ike_identity("fqdn", "not-in-cert.example")),
                            b_kwargs=ike_pki.side("B"))
    _start(link, "A")
    assert _one(link, "B")["state"] == 5
    _assert_line(_one(link, "B")["last_error"], "certificate mismatch",
                 "fqdn not-in-cert.example is not in its certificate")


def test_certificates_against_a_psk_peer(ike_link_factory, ike_pki):
    link = ike_link_factory(a_kwargs=ike_pki.side("A"))
    _start(link, "A")
    # the auth method is part of the phase 1 transform: no proposal matches
    _assert_line(_one(link, "B")["last_error"], "authentication method mismatch")
    assert _one(link, "B")["state"] == 1


def test_silent_peer_after_message_5_is_named_within_seconds(ike_link_factory):
    """strongSwan drops a message 5 it cannot decrypt without a word: after two unanswered
    retransmissions (6 s) the page already says 'probable pre-shared key mismatch'."""
    link = ike_link_factory(a_kwargs={"psk": b"one"}, b_kwargs={"psk": b"two"})
    quiet_b = lambda who, n, d: who == "B" and n >= 2
    link.a.initiate("lan", link.clock.now)
    link.flush(drop=quiet_b)
    assert link.ike("A")[0]["last_error"] is None
    link.step(7, drop=quiet_b)
    ike = link.ike("A")[0]
    assert ike["state"] == 7
    _assert_line(ike["last_error"], "pre-shared key mismatch", "not message 5")


@pytest.mark.parametrize("mode,state", [("main", 7), ("aggressive", 3)])
def test_authentication_failed_from_a_peer_that_read_our_message(ike_link_factory, mode, state):
    """What charon answers when no configuration takes our ID, or its configuration uses the
    other mode: AUTHENTICATION-FAILED after decrypting our message. Both causes are named."""
    from ikecore.protocol import codec, consts as C
    link = ike_link_factory(both={"mode": mode})
    link.a.initiate("lan", link.clock.now)
    # let B's answers through up to the message that A's state waits on
    limit = 2 if mode == "main" else 0
    link.flush(drop=lambda who, n, d: who == "B" and n >= limit)
    (ike,) = link.ike("A")
    assert ike["state"] == state
    sa = link.a.ike_sas[ike["id"]]
    note = codec.NotifyPayload(C.AUTHENTICATION_FAILED, protocol=C.PROTO_ISAKMP, spi=sa.spi())
    data = codec.encode_message(codec.Message(C.EXCHANGE_INFORMATIONAL, sa.icookie, sa.rcookie,
                                              payloads=[note]))
    link.a.receive_datagram(data, ("192.0.2.1", 500), ("198.51.100.2", 500), link.clock.now)
    _assert_line(link.ike("A")[0]["last_error"], "ID or mode mismatch", "AUTHENTICATION-FAILED",
                 "check the local and remote ID", "phase 1 mode")
    assert link.ike("A")[0]["state"] == state


def test_phase2_error_clears_when_the_tunnel_comes_up(ike_link_factory):
    link = ike_link_factory(a_kwargs={"pfs": "modp1024"})
    _start(link, "A")
    assert _one(link, "A")["last_error"] is not None
    link.b.settings.connections["lan"].pfs = "modp1024"
    link.a.initiate("lan", link.clock.now)
    link.flush()
    assert _one(link, "A")["last_error"] is None and len(link.sas("A")) == 2


def test_responder_gives_up_on_a_stalled_initiator(ike_link_factory):
    link = ike_link_factory()
    link.a.initiate("lan", link.clock.now)
    # A's message 3 and everything after it is lost: B sits at "1st msg sent" (3)
    link.flush(drop=lambda who, n, d: who == "A" and n >= 1)
    assert _one(link, "B")["state"] == 3
    link.step(100, drop=lambda who, n, d: who == "A" and n >= 1)
    ike = _one(link, "B")
    assert ike["state"] == 3
    _assert_line(ike["last_error"], "did not continue after state Negotiating(3)")
    link.step(130, drop=lambda who, n, d: True)
    assert link.ike("B") == []


def test_retry_after_failure_keeps_showing_the_last_diagnosis(ike_link_factory):
    link = ike_link_factory()
    lose_all = lambda who, n, d: True
    link.a.initiate("lan", link.clock.now)
    link.flush(drop=lose_all)
    link.step(GIVE_UP, drop=lose_all)
    first = _one(link, "A")
    link.step(120, drop=lose_all)          # the failed SA is cleared, a new attempt starts
    (again,) = link.ike("A")
    assert again["id"] != first["id"] and again["state"] == 3
    assert again["last_error"] == first["last_error"]
    link.step(GIVE_UP + 200)               # the peer comes back: the next attempt succeeds
    assert any(s["state"] == 9 for s in link.ike("A"))
    assert [s["last_error"] for s in link.ike("A") if s["state"] == 9] == [None]
