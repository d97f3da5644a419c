"""Key hygiene: no DH private value or shared secret outlives the computation that needs it.

After phase 1 the IKE SA keeps SKEYID_d/a/e's results and the CBC chain (RFC 2409 needs them for
quick mode, informational exchanges and rekeys), never x, g^xy, SKEYID or the public values only
HASH_I/HASH_R were made of; after quick mode no PFS private value or g^xy(qm) is left. Checked on
both ends, after success and after failures, and the SA still works afterwards (a renewal)."""
import pytest

SECRET_IKE_ATTRIBUTES = ("dh_private", "ke_i", "ke_r", "sai_b", "peer_idi_b")
# g^xy(qm) is never an attribute: a local of the computation that derives KEYMAT (both roles);
# the derived SAs (children) leave the exchange for the core, or with it when it fails
SECRET_QM_ATTRIBUTES = ("dh_private", "ke_i", "ke_r", "children")


def _assert_ike_sa_clean(sa):
    for name in SECRET_IKE_ATTRIBUTES:
        assert getattr(sa, name) is None, (sa.id, name)
    if sa.keys is not None:
        assert sa.keys.skeyid is None, sa.id


def _assert_quick_modes_clean(sa):
    for qm in sa.quick_modes.values():
        for name in SECRET_QM_ATTRIBUTES:
            assert getattr(qm, name) is None, (sa.id, qm.mid, name)
        assert not hasattr(qm, "g_qm"), (sa.id, qm.mid)


@pytest.mark.parametrize("mode,pfs", [("main", "modp1024"), ("aggressive", "modp1024"),
                                      ("main", None)])
def test_established_sas_hold_no_private_dh_value_or_shared_secret(ike_link_factory, mode, pfs):
    link = ike_link_factory(both={"mode": mode, "pfs": pfs})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    for core in (link.a, link.b):
        (sa,) = core.ike_sas.values()
        assert sa.established and len(sa.quick_modes) == 1
        (qm,) = sa.quick_modes.values()
        assert qm.done
        _assert_ike_sa_clean(sa)
        _assert_quick_modes_clean(sa)
        # What later exchanges need is still there.
        assert sa.keys.skeyid_d and sa.keys.skeyid_a and sa.keys.skeyid_e and sa.keys.enc_key
        assert sa.p1_iv is not None
    # ... and it is enough: the tunnel renews under the same IKE SA (KEYMAT from SKEYID_d,
    # HASH(1..3) from SKEYID_a, a fresh PFS exchange), and the renewal is clean again.
    link.step(3600 - 360 + 1)
    assert len(link.installed("A")) == len(link.installed("B")) == 4
    for core in (link.a, link.b):
        for sa in core.ike_sas.values():
            _assert_ike_sa_clean(sa)
            _assert_quick_modes_clean(sa)


def test_a_refused_pfs_quick_mode_drops_the_initiators_private_value(ike_link_factory):
    # A offers PFS, B refuses it: A's quick mode fails with its private value gone.
    link = ike_link_factory(a_kwargs={"pfs": "modp1024"})
    link.a.initiate("lan", link.clock.now)
    link.flush()
    (sa,) = link.a.ike_sas.values()
    (qm,) = sa.quick_modes.values()
    assert qm.failed and link.installed("A") == []
    _assert_quick_modes_clean(sa)
    _assert_quick_modes_clean(list(link.b.ike_sas.values())[0])


def test_a_phase1_that_gives_up_drops_its_private_value(ike_link_factory):
    # Main mode: A has sent its KE (message 3) and never hears message 4.
    link = ike_link_factory()
    link.a.initiate("lan", link.clock.now)
    link.flush(drop=lambda who, index, data: who == "B" and index >= 1)
    (sa,) = link.a.ike_sas.values()
    assert sa.machine.number == 5 and sa.dh_private is not None   # waiting: still needed
    link.step(70, drop=lambda who, index, data: who == "B")
    failed = [s for s in link.a.ike_sas.values() if s.failed]
    assert failed and "no answer" in failed[0].last_error
    for s in failed:
        _assert_ike_sa_clean(s)
