"""ikecore.driver in-process: events to the kernel backend, timer, counters, reload, stop."""
import asyncio
import os
import socket

import pytest

from daemon_fake_core import FakeCore
from ikecore import config
from ikecore.driver import Driver, RequestError
from ikecore.kernel import RecordingBackend
from ikecore.log import VpnLog
from support.config import Config

def two_peers(hq=None, quiet=None, hq_lan=None, quiet_lan=None):
    """hq (an initiator) and quiet (a responder), each with a connection; the dicts change
    keys of those tables."""
    cfg = Config()
    cfg.peer("hq", "127.0.0.2", local_address="127.0.0.1", act_as="initiator", psk="x") \
        .update(hq or {})
    cfg.peer("quiet", "127.0.0.3", local_address="127.0.0.1", act_as="responder", psk="y") \
        .update(quiet or {})
    cfg.connection("hq-lan", "hq", "192.168.1.0/24", "10.1.0.0/16").update(hq_lan or {})
    cfg.connection("quiet-lan", "quiet", "192.168.1.0/24", "10.3.0.0/16").update(quiet_lan or {})
    return cfg.text()


CONFIG = two_peers()


class CountingBackend(RecordingBackend):
    """Records like --kernel=record, but reports traffic and can be told to fail."""

    def __init__(self):
        super().__init__()
        self.fail_install = False

    def install_sa(self, sa):
        if self.fail_install:
            raise OSError("No such process")
        super().install_sa(sa)

    def sa_stats(self, keys=None):
        return dict((key, {"bytes": 1000 + sa.spi, "packets": 7, "errored_packets": 1})
                    for key, sa in self.sas.items() if keys is None or key in keys)


def free_ports():
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = tuple(sock.getsockname()[1] for sock in socks)
    for sock in socks:
        sock.close()
    return ports


def run(test):
    """Run test(driver, core, backend) inside a started driver; always stop it."""
    async def main():
        loop = asyncio.get_running_loop()
        settings = config.parse(CONFIG)
        core = FakeCore(settings, None, loop.time())
        backend = CountingBackend()
        log = VpnLog(stderr=False, syslog=False)
        driver = Driver(core, settings, backend, log, ports=free_ports(), loop=loop,
                        config_path="unused", load_config=lambda path, warnings: config.parse(
                            driver.next_config, warnings=warnings))
        await driver.start()
        try:
            await test(driver, core, backend)
        finally:
            await driver.stop()
        return driver, core, backend
    return asyncio.run(main())


def test_initiator_sas_and_policies_reach_the_backend_and_counters_merge():
    async def test(driver, core, backend):
        assert len(backend.sas) == 2
        # Trap policies for the initiator's connection only; the SA's reqid (7) replaced ours.
        assert list(backend.policies) == ["hq-lan"]
        assert backend.policies["hq-lan"]["reqid"] == 7
        assert backend.policies["hq-lan"]["local_gw"] == "192.0.2.1"
        status = driver.status()
        for sa in status["sas"]:
            assert sa["bytes"] == 1000 + int(sa["spi"], 16)
            assert (sa["packets"], sa["errored_packets"]) == (7, 1)
        assert status["daemon"]["kernel_errors"] == 0
    run(test)


def test_delete_reaches_the_backend_and_unknown_ids_are_refused():
    async def test(driver, core, backend):
        ike_id = driver.status()["ike_sas"][0]["id"]
        with pytest.raises(RequestError, match="unknown SA id 'nope'"):
            driver.delete("nope")
        driver.delete(ike_id)
        assert backend.sas == {}
        assert [entry[0] for entry in backend.history].count("delete_sa") == 2
    run(test)


def test_an_unknown_peer_error_names_a_bounded_number_of_peers():
    async def test(driver, core, backend):
        for n in range(100):                     # a hub's many peers
            driver.settings.peers["branch%03d" % n] = driver.settings.peers["quiet"]
        with pytest.raises(RequestError) as refused:
            driver.down("nobody")
        text = str(refused.value)
        assert "unknown peer 'nobody' (peers: hq, quiet, branch000," in text
        assert "branch017 and 82 more" in text and "branch018" not in text
    run(test)


def test_kernel_failures_are_logged_and_counted():
    async def test(driver, core, backend):
        backend.fail_install = True
        with pytest.raises(RequestError, match="has no connections|unknown peer"):
            driver.up("nobody")
        driver.up("quiet")          # responder peers can still be brought up by hand
        assert driver.status()["daemon"]["kernel_errors"] == 2
        errors = [e["text"] for e in driver.log.newest() if e["level"] == "error"]
        assert any("install SA" in text and "No such process" in text for text in errors)
    run(test)


def test_acquire_and_expire_callbacks_reach_the_core():
    async def test(driver, core, backend):
        backend.on_acquire("192.168.1.5", "10.1.2.3")
        backend.on_expire("esp", 0x1001, "127.0.0.2", False)
        texts = [e["text"] for e in driver.log.newest()]
        assert "acquire 192.168.1.5 -> 10.1.2.3" in texts
        assert "expire esp 0x1001 127.0.0.2 False" in texts
    run(test)


def test_the_one_timer_follows_the_core():
    async def test(driver, core, backend):
        assert driver.timer is not None and driver.timer_at == core.timer
        await asyncio.sleep(0.3)
        assert core.timer_fired == 1 and driver.timer is None
    run(test)


def test_reload_applies_a_good_file_and_keeps_the_old_on_error():
    async def test(driver, core, backend):
        driver.next_config = two_peers(quiet_lan={"remote_net": "x"})
        with pytest.raises(RequestError, match="connection\\[1\\].remote_net"):
            driver.reload()
        assert driver.settings is core.settings and "quiet-lan" in driver.settings.connections
        # Drop hq's connection, make quiet an initiator with a new connection.
        driver.next_config = two_peers(quiet={"act_as": "initiator"},
                                       hq_lan={"name": "hq-lan2", "remote_net": "10.4.0.0/16"})
        result = driver.reload()
        assert result["connections"] == ["hq-lan2", "quiet-lan"]
        assert "hq-lan" not in backend.policies and "quiet-lan" in backend.policies
        assert ("remove_policies", "hq-lan") in backend.history
        assert sorted(sa["peer"] for sa in driver.status()["ike_sas"]) == ["hq", "hq", "quiet"]
    run(test)


def test_stop_brings_peers_down_and_flushes_the_kernel():
    async def test(driver, core, backend):
        pass
    driver, core, backend = run(test)
    assert core.ike_sas == {} and backend.sas == {} and backend.policies == {}
    assert backend.history[-1] == ("flush", None)
    assert driver.endpoints == {}


def test_control_socket_mode_and_group(tmp_path):
    import grp
    import os
    import stat as stat_module
    from ikecore.control import ControlServer

    group = grp.getgrgid(os.getgid()).gr_name

    async def main():
        server = ControlServer(driver=None, path=str(tmp_path / "sub" / "c.sock"), group=group)
        await server.start()
        info = os.stat(server.path)
        await server.close()
        return info
    info = asyncio.run(main())
    assert stat_module.S_IMODE(info.st_mode) == 0o660 and info.st_gid == os.getgid()
    assert not (tmp_path / "sub" / "c.sock").exists()


def test_vpn_log_ring_and_syslog(tmp_path, monkeypatch):
    from ikecore import log as log_module
    path = str(tmp_path / "dev-log")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(30)
    monkeypatch.setattr(log_module, "SYSLOG_SOCKET", path)
    monkeypatch.setattr(log_module, "RING_SIZE", 5)
    clock = iter(range(100, 200)).__next__
    vpn = log_module.VpnLog(level="info", stderr=False, syslog=True, clock=clock)
    try:
        vpn.warning("phase 1 failed: key mismatch", peer="branch")
        # facility daemon (3) * 8 + warning (4) = <28>, then the tag.
        assert listener.recv(1000) == b"<28>ikecore: [branch] phase 1 failed: key mismatch\x00"
        vpn.debug("below the threshold")
        for n in range(6):
            vpn.info("line %d" % n)
        assert [e["text"] for e in vpn.newest()] == ["line %d" % n for n in range(1, 6)]
        assert vpn.newest(2) == [{"time": 105, "level": "info", "peer": None, "text": "line 4"},
                                 {"time": 106, "level": "info", "peer": None, "text": "line 5"}]
        assert vpn.newest(0) == []
    finally:
        vpn.close()
        listener.close()


def test_clock_stamp_turns_date_checks_on_and_changed_crls_are_reloaded(tmp_path, monkeypatch):
    """Until the NTP hook's stamp exists the core gets no wall time (dates not enforced); a CRL
    file that changes is read again, a broken one keeps the previous list."""
    import datetime
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from ikecore import driver as driver_module
    from ikecore.protocol.settings import Peer

    stamp = tmp_path / "clock-synced"
    monkeypatch.setattr(driver_module, "CLOCK_SYNCED_FILE", str(stamp))
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "CA")])
    day = datetime.datetime(2026, 1, 1)

    def write_crl(serials):
        builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer)
                   .last_update(day).next_update(day + datetime.timedelta(days=30)))
        for serial in serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(day).build())
        crl = builder.sign(key, hashes.SHA256())
        (tmp_path / "ca.crl").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return crl.public_bytes(serialization.Encoding.DER)

    first = write_crl([1])
    peer = Peer("rsa-peer", "192.0.2.9", [], auth="rsa", crls=[str(tmp_path / "ca.crl")],
                crl_ders=[first])

    async def test(driver, core, backend):
        driver.settings.peers["rsa-peer"] = peer
        driver.trust_checked_at = None
        driver._refresh_trust(driver.now())
        assert core.wall_offset is None and driver.status()["clock_synchronized"] is False
        assert peer.crl_ders == [first]
        stamp.write_text("")
        second = write_crl([1, 2])
        os.utime(tmp_path / "ca.crl", ns=(1, 1))     # a new mtime whatever the clock's grain
        driver.trust_checked_at = None
        driver._refresh_trust(driver.now())
        assert driver.status()["clock_synchronized"] is True
        assert peer.crl_ders == [second]
        (tmp_path / "ca.crl").write_text("garbage")
        os.utime(tmp_path / "ca.crl", ns=(2, 2))
        driver.trust_checked_at = None
        driver._refresh_trust(driver.now())
        assert peer.crl_ders == [second]
    run(test)


def test_dns_named_gateways_are_resolved_without_blocking_and_failures_are_diagnosed():
    """A real core: a DNS-named peer acting on traffic is looked up at start (its trap
    policies need the address), an unresolvable one is shown, not a crash."""
    from ikecore.protocol.core import IkeCore
    from ikecore.crypto_cryptography import CryptographyProvider
    text = two_peers(hq={"remote_gateway": "hub.example.net", "act_as": "both"},
                     quiet={"remote_gateway": "gone.example.net", "act_as": "both"})
    asked = []

    async def main():
        loop = asyncio.get_running_loop()

        async def getaddrinfo(host, port, **kw):      # the resolver, as the loop would call it
            asked.append(host)
            if host == "gone.example.net":
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return [(socket.AF_INET, socket.SOCK_DGRAM, 17, "", ("127.0.0.2", 0))]
        loop.getaddrinfo = getaddrinfo
        settings = config.parse(text)
        core = IkeCore(settings, CryptographyProvider(), loop.time())
        backend = RecordingBackend()
        driver = Driver(core, settings, backend, VpnLog(stderr=False, syslog=False),
                        ports=free_ports(), loop=loop)
        await driver.start()
        try:
            for _ in range(100):
                if driver.status()["ike_sas"] and "hq-lan" in backend.policies:
                    break
                await asyncio.sleep(0.01)
            assert backend.policies["hq-lan"]["remote_gw"] == "127.0.0.2"
            assert "quiet-lan" not in backend.policies
            (row,) = driver.status()["ike_sas"]
            assert row["peer"] == "quiet" and row["remote_gateway"] == "gone.example.net"
            assert "the peer's name does not resolve (Name or service not known)" in \
                row["last_error"]
        finally:
            await driver.stop()
    asyncio.run(main())
    assert sorted(asked) == ["gone.example.net", "hub.example.net"]
