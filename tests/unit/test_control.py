"""The control socket and ikectl against a real `python3 -m ikecore` process.

The daemon runs with --kernel=record and a stand-in core (daemon_fake_core.FakeCore, loaded
through the hidden --core option), so these tests pin the daemon shell: process, signals,
sockets, JSON lines, ikectl output and exit codes. tests/daemon/ runs the real core.
"""
import json
import os
import pathlib
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

from support.control import exchange
from support.daemon import Daemon, free_udp_ports
from support.paths import FIRMWARE

HERE = os.path.dirname(os.path.abspath(__file__))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([FIRMWARE, HERE]))

CONFIG = """\
[[peer]]
name = "hq"
remote_gateway = "127.0.0.2"
act_as = "initiator"
psk = "x"

[[peer]]
name = "branch"
remote_gateway = "127.0.0.3"
psk = "y"

[[connection]]
name = "hq-lan"
peer = "hq"
local_net = "192.168.1.0/24"
remote_net = "10.1.0.0/16"

[[connection]]
name = "branch-lan"
peer = "branch"
local_net = "192.168.1.0/24"
remote_net = "10.2.0.0/16"
"""


def shell(tmp_path):
    """The daemon shell with the stand-in core, its UDP sockets on free ports (not started)."""
    return Daemon(tmp_path, ports=free_udp_ports(2), state_dir=tmp_path / "state",
                  core="daemon_fake_core:FakeCore", python_path=[HERE], log_level=None,
                  config_path=tmp_path / "ikecore.toml", socket_path=tmp_path / "control.sock")


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    instance = shell(tmp_path_factory.mktemp("ctl")).start(CONFIG)
    yield instance
    instance.stop()


def test_initiator_peer_comes_up_at_start_and_sas_reach_the_kernel(daemon):
    status = daemon.request({"cmd": "status"})["result"]
    hq = [sa for sa in status["ike_sas"] if sa["peer"] == "hq"]
    assert len(hq) == 1 and hq[0]["status"] == "Activated" and hq[0]["state"] == 9
    assert not [sa for sa in status["ike_sas"] if sa["peer"] == "branch"]   # "both" waits
    kernel = daemon.request({"cmd": "kernel"})["result"]
    assert kernel["backend"] == "record"
    hq_sas = [sa for sa in kernel["sas"] if sa["connection"] == "hq-lan"]
    assert sorted(sa["direction"] for sa in hq_sas) == ["in", "out"]
    # Trap policies for every connection we may initiate; the SA's reqid wins when it differs.
    policies = dict((p["connection"], p) for p in kernel["policies"])
    assert set(policies) == {"hq-lan", "branch-lan"}
    assert policies["hq-lan"]["reqid"] == 7 and policies["hq-lan"]["remote_gw"] == "127.0.0.2"


def test_socket_is_group_accessible_only(daemon):
    mode = stat.S_IMODE(os.stat(daemon.socket_path).st_mode)
    assert mode == 0o660
    assert (pathlib.Path(daemon.state_dir) / "ikecore.pid").read_text().strip() == str(daemon.process.pid)


@pytest.mark.parametrize("line,fragment", [
    (b"not json\n", "malformed request (not JSON)"),
    (b"[1, 2]\n", "expected a JSON object"),
    (b'{"cmd": "explode"}\n', "unknown command 'explode'"),
    (b'{"cmd": "up"}\n', "'up' needs a 'peer' string"),
    (b'{"cmd": "delete", "id": 5}\n', "'delete' needs a 'id' string"),
    (b'{"cmd": "log", "limit": -1}\n', "'limit' must be a non-negative integer"),
    (b'{"cmd": "up", "peer": "nowhere"}\n', "unknown peer 'nowhere' (peers: hq, branch)"),
    (b'{"cmd": "down", "peer": "nowhere"}\n', "unknown peer 'nowhere'"),
    (b'{"cmd": "delete", "id": "sa-404"}\n', "unknown SA id 'sa-404'"),
])
def test_bad_requests_get_an_error_naming_the_problem(daemon, line, fragment):
    bad, good = exchange(daemon.socket_path, line + b'{"cmd": "status"}\n', replies=2)
    assert bad["ok"] is False and fragment in bad["error"]
    assert good["ok"] is True                     # the same connection keeps working


def test_up_delete_and_down(daemon):
    reply = daemon.request({"cmd": "up", "peer": "branch"})
    assert reply == {"ok": True, "result": {"initiated": ["branch-lan"]}}
    status = daemon.request({"cmd": "status"})["result"]
    branch = [sa for sa in status["ike_sas"] if sa["peer"] == "branch"][0]
    child = [sa for sa in status["sas"] if sa["ike_sa"] == branch["id"]]
    assert len(child) == 2 and all(sa["bytes"] == 0 for sa in child)
    reply = daemon.request({"cmd": "delete", "id": child[0]["id"]})
    assert reply == {"ok": True, "result": {"deleted": child[0]["id"]}}
    kernel = daemon.request({"cmd": "kernel"})["result"]
    assert child[0]["id"] not in [sa["id"] for sa in kernel["sas"]]
    assert child[1]["id"] in [sa["id"] for sa in kernel["sas"]]
    assert daemon.request({"cmd": "down", "peer": "branch"})["ok"]
    kernel = daemon.request({"cmd": "kernel"})["result"]
    assert not [sa for sa in kernel["sas"] if sa["connection"] == "branch-lan"]


def test_udp_datagrams_reach_the_core_with_the_local_address(daemon):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(30)
        # --ports moves the sockets; the core still sees the standard 500 / 4500.
        for port, core_port in zip(daemon.ports, (500, 4500)):
            sock.sendto(b"ping", ("127.0.0.1", port))
            data, sender = sock.recvfrom(100)
            assert data == b"pong:127.0.0.1:%d" % core_port and sender == ("127.0.0.1", port)
        sock.sendto(b"boom", ("127.0.0.1", daemon.ports[0]))
        sock.sendto(b"ping", ("127.0.0.1", daemon.ports[0]))
        assert sock.recvfrom(100)[0].startswith(b"pong")       # still serving after the bad one
    counters = daemon.request({"cmd": "status"})["result"]["daemon"]
    assert counters["rejected_datagrams"] == 1 and counters["datagrams_in"] >= 4
    texts = [entry["text"] for entry in daemon.request({"cmd": "log", "limit": 50})["result"]]
    assert any("dropped a datagram from 127.0.0.1" in text and "cannot parse" in text
               for text in texts)


def test_log_entries_have_time_level_peer_text(daemon):
    entries = daemon.request({"cmd": "log", "limit": 1000})["result"]
    assert entries and set(entries[0]) == {"time", "level", "peer", "text"}
    established = [e for e in entries if e["text"].startswith("IKE SA") and e["peer"] == "hq"]
    assert established and established[0]["level"] == "info"
    assert abs(established[0]["time"] - time.time()) < 3600
    assert len(daemon.request({"cmd": "log", "limit": 2})["result"]) == 2


def test_timer_is_armed_from_the_core(daemon):
    entries = daemon.request({"cmd": "log", "limit": 1000})["result"]
    deadline = time.monotonic() + 30
    while not any(e["text"] == "fake timer fired" for e in entries):
        assert time.monotonic() < deadline, "the core's timer never fired"
        time.sleep(0.1)
        entries = daemon.request({"cmd": "log", "limit": 1000})["result"]


def test_bad_reload_keeps_the_old_config_and_says_why(daemon):
    config = pathlib.Path(daemon.config_path)
    good = config.read_text()
    config.write_text(good.replace('remote_net = "10.2.0.0/16"',
                                          'remote_net = "10.2.0.0/33"'))
    try:
        reply = daemon.request({"cmd": "reload"})
        assert reply["ok"] is False
        assert "ikecore.toml:22: connection[1].remote_net: " in reply["error"]
        result = daemon.ikectl("reload")
        assert result.returncode == 1 and "connection[1].remote_net" in result.stderr
        # SIGHUP with the same bad file: logged, daemon alive, old config still there.
        daemon.process.send_signal(signal.SIGHUP)
        assert daemon.request({"cmd": "up", "peer": "branch"})["ok"]
        errors = [e["text"] for e in daemon.request({"cmd": "log", "limit": 1000})["result"]
                  if e["level"] == "error"]
        assert any("configuration not reloaded" in text and "remote_net" in text
                   for text in errors)
    finally:
        config.write_text(good)
    reply = daemon.request({"cmd": "reload"})
    assert reply == {"ok": True, "result": {"peers": ["hq", "branch"],
                                            "connections": ["hq-lan", "branch-lan"]}}


def test_ikectl_status_table_and_json(daemon):
    result = daemon.ikectl("status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "IKE Security associations"
    assert "Security associations" in lines
    assert any("hq" in line and "Activated" in line and "127.0.0.2" in line for line in lines)
    assert any("ESP" in line and "192.168.1.0/24 <-> 10.1.0.0/16" in line for line in lines)
    result = daemon.ikectl("status", "--json")
    assert result.returncode == 0 and set(json.loads(result.stdout)) >= {"ike_sas", "sas"}
    result = daemon.ikectl("log", "-n", "3")
    assert result.returncode == 0 and len(result.stdout.splitlines()) == 3


def test_ikectl_options_after_the_command_word(daemon):
    """DESIGN.md writes `ikectl status --json --socket S`: the options work after the command
    word as well as before it (the socket here is only given after the command)."""
    def ikectl(*args):
        return subprocess.run([sys.executable, "-m", "ikecore.ctl"] + list(args), env=ENV,
                              capture_output=True, text=True, timeout=60)

    after = ikectl("status", "--json", "--socket", daemon.socket_path)
    assert after.returncode == 0, after.stderr
    before = ikectl("--json", "--socket", daemon.socket_path, "status")
    assert before.returncode == 0, before.stderr
    assert set(json.loads(after.stdout)) >= {"ike_sas", "sas"}
    assert set(json.loads(before.stdout)) == set(json.loads(after.stdout))
    result = ikectl("log", "-n", "2", "--socket", daemon.socket_path, "--json")
    assert result.returncode == 0 and len(json.loads(result.stdout)) == 2
    result = ikectl("up", "nowhere", "--socket", daemon.socket_path)
    assert result.returncode == 1 and "unknown peer 'nowhere'" in result.stderr


def test_ikectl_reports_daemon_errors_with_exit_1(daemon):
    result = daemon.ikectl("up", "nowhere")
    assert result.returncode == 1 and "unknown peer 'nowhere'" in result.stderr
    result = daemon.ikectl("delete", "sa-404")
    assert result.returncode == 1 and "unknown SA id 'sa-404'" in result.stderr


def test_ikectl_without_daemon(tmp_path):
    path = str(tmp_path / "none.sock")
    result = subprocess.run([sys.executable, "-m", "ikecore.ctl", "--socket", path, "status"],
                            env=ENV, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == "ikectl: ikecore is not running (no control socket at %s)" % path


def test_bad_config_at_start_exits_2_with_the_error(tmp_path):
    config = tmp_path / "ikecore.toml"
    config.write_text(CONFIG.replace('act_as = "initiator"', 'act_as = "master"'))
    result = subprocess.run([sys.executable, "-m", "ikecore", "--config", str(config),
                             "--kernel=record", "--socket", str(tmp_path / "c.sock")],
                            env=ENV, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "ikecore: %s:4: peer[0].act_as: must be one of initiator, responder, both, got 'master'"
        % config)


def test_check_only_validates(tmp_path):
    config = tmp_path / "ikecore.toml"
    config.write_text(CONFIG)
    command = [sys.executable, "-m", "ikecore", "--config", str(config), "--check"]
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (
        0, "%s: ok (2 peers, 2 connections)" % config)
    config.write_text(CONFIG.replace('psk = "y"', 'psk = 5'))
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and ":10: peer[1].psk: must be a string" in result.stderr


def test_sigterm_stops_cleanly(tmp_path):
    daemon = shell(tmp_path).start(CONFIG)
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(timeout=30) == 0
    assert not os.path.exists(daemon.socket_path)
    assert not os.path.exists(tmp_path / "state" / "ikecore.pid")
    daemon.stop()                  # closes its output file
    stderr = daemon.log_text()
    assert "ikecore stopping" in stderr and "Traceback" not in stderr


def _read_stderr_until(process, marker, timeout=60):
    """Lines of the daemon's stderr up to the first containing marker (the daemon flushes
    each log line)."""
    import select
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stderr], [], [], 0.5)
        if not ready:
            continue
        line = process.stderr.readline().decode()
        if not line:
            raise AssertionError("daemon exited %s before %r: %s"
                                 % (process.wait(timeout=30), marker, "".join(lines)))
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError("no %r from the daemon in %d s: %s" % (marker, timeout, "".join(lines)))


def test_sigterm_while_starting_is_a_clean_stop(tmp_path):
    """The handlers are in place when the daemon first says anything ("starting"), before the
    UDP sockets, the first negotiation and the control socket: a SIGTERM from then on is a
    clean stop (exit 0, socket and pid file gone), never death by the signal (exit -15)."""
    daemon = shell(tmp_path)
    daemon.write_config(CONFIG)
    socket_path = tmp_path / "control.sock"
    process = daemon.popen(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with process:                  # closes the pipes, waits for the process
        try:
            _read_stderr_until(process, "ikecore starting")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
        stderr = process.stderr.read().decode()
    assert "ikecore stopping" in stderr and "Traceback" not in stderr
    assert not socket_path.exists() and not (tmp_path / "state" / "ikecore.pid").exists()


def test_sigterm_as_soon_as_the_socket_appears_is_a_clean_stop(tmp_path):
    daemon = shell(tmp_path)
    daemon.state_dir = None            # the default state directory, as the original command
    daemon.write_config(CONFIG)
    socket_path = daemon.socket_path
    process = daemon.popen(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with process:
        try:
            deadline = time.monotonic() + 60
            while not os.path.exists(socket_path) and process.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.001)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0, process.stderr.read().decode()
        finally:
            if process.poll() is None:
                process.kill()
    assert not os.path.exists(socket_path)


def test_too_long_socket_path_exits_2_before_anything_starts(tmp_path):
    from ikecore import __main__ as daemon_main
    from ikecore import control
    assert daemon_main.DEFAULT_SOCKET == control.DEFAULT_SOCKET
    config = tmp_path / "ikecore.toml"
    config.write_text(CONFIG)
    directory = tmp_path / ("d" * max(1, 120 - len(str(tmp_path))))
    path = str(directory / "control.sock")
    assert len(path) > 108
    daemon = shell(tmp_path)
    daemon.socket_path = path
    result = subprocess.run(daemon.command(), env=daemon.env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2
    # The one line is all it said: no "ikecore starting", so no socket, peer or negotiation.
    assert result.stderr == (
        "ikecore: control socket path %s is %d bytes long; a Unix socket path can have at "
        "most 107 (choose a shorter --socket)\n" % (path, len(path)))
    assert result.stdout == ""
    assert not directory.exists() and not (tmp_path / "state").exists()
    # 107 bytes is fine (the same check, without starting a daemon).
    assert daemon_main.socket_path_problem("/" + "s" * 106) is None
    assert daemon_main.socket_path_problem("/" + "s" * 107) is not None
