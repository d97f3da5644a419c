"""What docs/performance.md relies on in the daemon process itself (a real `python3 -m ikecore`
with the real core): no TLS library mapped, `--profile FILE` writes cProfile stats at a clean stop,
and the VPN log lines on stderr keep their format. No timing is asserted."""
import os
import pstats

from support.config import Config
from support.daemon import Daemon, free_udp_ports


def config():
    cfg = Config()
    cfg.peer("branch", "127.0.0.2", local_address="127.0.0.1", act_as="responder", psk="x")
    cfg.connection("branch-lan", "branch", "192.168.1.0/24", "10.2.0.0/24")
    return cfg


def test_daemon_maps_no_tls_library_and_writes_its_profile(tmp_path):
    profile = str(tmp_path / "daemon.prof")
    daemon = Daemon(tmp_path, ports=free_udp_ports(2), log_level=None, args=["--profile", profile])
    try:
        daemon.start(config())
        with open("/proc/%d/maps" % daemon.process.pid) as handle:
            libraries = set(line.split()[-1] for line in handle if ".so" in line)
        # __main__._without_tls: asyncio runs without the ssl module, so libssl is never loaded.
        assert not [lib for lib in libraries if "libssl" in os.path.basename(lib)], libraries
    finally:
        returncode = daemon.stop(grace_s=60)
    stderr = daemon.log_text()
    assert returncode == 0, stderr
    # The VPN log's stderr line: "YYYY-MM-DD HH:MM:SS,mmm ikecore INFO text" (as logging wrote it).
    started = [line for line in stderr.splitlines() if "ikecore started" in line]
    assert len(started) == 1
    date, clock, tag, level = started[0].split(" ")[:4]
    assert (len(date), len(clock), clock[8], tag, level) == (10, 12, ",", "ikecore", "INFO")
    stats = pstats.Stats(profile)
    assert any(name == "_run" for (_, _, name) in stats.stats), "the daemon's _run is not profiled"
