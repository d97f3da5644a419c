"""Harness: two real `python3 -m ikecore` daemons in two network namespaces joined by a veth pair.

  ns "<tag>a" 10.99.0.1/24 (veth "ika") <-----> (veth "ikb") 10.99.0.2/24 ns "<tag>b"

They talk IKE on UDP 500/4500 over the veth; SAs go to the recording kernel backend (the host
kernel has no ESP), read back with the control socket's "kernel" request. Control sockets are
filesystem paths, so the test (in the host namespace) reaches both. Namespaces and processes are
removed in fixture teardown even when a test fails.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import tomli_w

from ikecore import ctl

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "firmware"), PYTHONUNBUFFERED="1")
ADDRESS = {"a": "10.99.0.1", "b": "10.99.0.2"}
WAIT_S = 60          # generous: the machine is shared; waits end as soon as the condition holds


def _run(*cmd):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if result.returncode:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), result.stderr.strip()))
    return result.stdout


def _netns_unavailable():
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    return None


def wait_until(condition, what, timeout=WAIT_S):
    """Poll condition() until it returns something truthy; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.1)


class Daemon:
    """One daemon: its namespace, config file, control socket and process."""

    def __init__(self, side, netns, workdir, address=None):
        self.side = side
        self.netns = netns
        self.address = address or ADDRESS[side]
        self.workdir = workdir
        self.config_path = os.path.join(workdir, "ikecore-%s.toml" % side)
        self.socket_path = os.path.join(workdir, "control-%s.sock" % side)
        self.stderr_path = os.path.join(workdir, "daemon-%s.log" % side)
        self.process = None

    def write_config(self, doc):
        with open(self.config_path, "w") as handle:
            handle.write(tomli_w.dumps(doc))

    def start(self, doc, kernel="record"):
        self.write_config(doc)
        self.stderr = open(self.stderr_path, "wb")
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, sys.executable, "-m", "ikecore",
             "--config", self.config_path, "--kernel=" + kernel, "--socket", self.socket_path,
             "--no-syslog", "--log-level", "debug"],
            env=ENV, stdout=subprocess.DEVNULL, stderr=self.stderr)
        wait_until(lambda: os.path.exists(self.socket_path) or self.process.poll() is not None,
                   "daemon %s to open its control socket" % self.side)
        if self.process.poll() is not None:
            raise AssertionError("daemon %s exited %s:\n%s" % (self.side, self.process.returncode,
                                                               self.log_text()))

    def log_text(self):
        with open(self.stderr_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def request(self, message):
        return ctl.request(self.socket_path, message)

    def result(self, message):
        reply = self.request(message)
        assert reply["ok"], reply
        return reply["result"]

    def ikectl(self, *args):
        return subprocess.run([sys.executable, "-m", "ikecore.ctl", "--socket", self.socket_path]
                              + list(args), env=ENV, capture_output=True, text=True, timeout=60)

    def status(self):
        return self.result({"cmd": "status"})

    def kernel_sas(self):
        return self.result({"cmd": "kernel"})["sas"]

    def ip(self, *args):
        """`ip -n <this namespace> args...` -> its output."""
        return _run("ip", "-n", self.netns, *args)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None:
            self.stderr.close()


@pytest.fixture
def netns_pair():
    """Two namespaces joined by veth; yields {"a": name, "b": name}; always torn down."""
    reason = _netns_unavailable()
    if reason:
        pytest.skip(reason)
    tag = "ikd%d" % os.getpid()
    names = {"a": tag + "a", "b": tag + "b"}
    try:
        for side, ns in names.items():
            # A namespace left by a killed run with a recycled pid would make "add" fail.
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "-n", names["a"], "link", "add", "ika", "type", "veth", "peer", "name", "ikb",
             "netns", names["b"])
        for side, ns in names.items():
            dev = "ik" + side
            _run("ip", "-n", ns, "addr", "add", ADDRESS[side] + "/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
        yield names
    finally:
        for ns in names.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


@pytest.fixture
def daemons(netns_pair, tmp_path):
    """Daemon objects for both sides (not started); stopped at teardown, logs shown on failure."""
    pair = {side: Daemon(side, ns, str(tmp_path)) for side, ns in netns_pair.items()}
    yield pair
    for daemon in pair.values():
        daemon.stop()
    for daemon in pair.values():
        if daemon.process is not None:
            sys.stderr.write("---- daemon %s log ----\n%s\n" % (daemon.side, daemon.log_text()))
