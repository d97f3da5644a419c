"""What docs/performance.md relies on in the daemon process itself (a real `python3 -m ikecore`
with the real core): no TLS library mapped, `--profile FILE` writes cProfile stats at a clean stop,
and the VPN log lines on stderr keep their format. No timing is asserted."""
import os
import pstats
import signal
import subprocess
import sys

from daemon_process import free_udp_ports, wait_for_socket

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "firmware"))

CONFIG = """\
[[peer]]
name = "branch"
remote_gateway = "127.0.0.2"
local_address = "127.0.0.1"
act_as = "responder"
psk = "x"

[[connection]]
name = "branch-lan"
peer = "branch"
local_net = "192.168.1.0/24"
remote_net = "10.2.0.0/24"
"""


def test_daemon_maps_no_tls_library_and_writes_its_profile(tmp_path):
    config = tmp_path / "ikecore.toml"
    config.write_text(CONFIG)
    control = str(tmp_path / "control.sock")
    profile = str(tmp_path / "daemon.prof")
    process = subprocess.Popen(
        [sys.executable, "-m", "ikecore", "--config", str(config), "--kernel=record",
         "--socket", control, "--ports", "%d,%d" % tuple(free_udp_ports(2)), "--no-syslog",
         "--profile", profile],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_socket(control, process)
        with open("/proc/%d/maps" % process.pid) as handle:
            libraries = set(line.split()[-1] for line in handle if ".so" in line)
        # __main__._without_tls: asyncio runs without the ssl module, so libssl is never loaded.
        assert not [lib for lib in libraries if "libssl" in os.path.basename(lib)], libraries
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr.decode()
    # The VPN log's stderr line: "YYYY-MM-DD HH:MM:SS,mmm ikecore INFO text" (as logging wrote it).
    started = [line for line in stderr.decode().splitlines() if "ikecore started" in line]
    assert len(started) == 1
    date, clock, tag, level = started[0].split(" ")[:4]
    assert (len(date), len(clock), clock[8], tag, level) == (10, 12, ",", "ikecore", "INFO")
    stats = pstats.Stats(profile)
    assert any(name == "_run" for (_, _, name) in stats.stats), "the daemon's _run is not profiled"
