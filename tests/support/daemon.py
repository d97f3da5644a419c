"""Our daemon as a process: `python3 -m ikecore --config FILE --kernel=record --socket PATH`,
in a network namespace (support.netns.Namespace) or in the test's own.

    daemon = Daemon(workdir, name="hub", netns=lab.a)
    daemon.start(config)                 # a support.config.Config, a document dict or text
    daemon.wait_for(lambda s: s["ike_sas"], what="an IKE SA")
    daemon.result({"cmd": "kernel"})     # what the recording backend holds
    daemon.stop()                        # SIGTERM, then SIGKILL after a grace period

start() returns once the control socket answers (or fails with the daemon's output); the output
(stdout and stderr, `--log-level debug` by default) goes to `log_path`, shown by log_tail() when a
wait fails. The host kernel has no ESP/AH, hence `--kernel=record` by default; tests/xfrm passes
kernel="xfrm" inside a namespace of its own.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

from support import control
from support.config import text_of
from support.paths import FIRMWARE, REPO

WAIT_S = 60          # generous: the machine is shared; waits end as soon as the condition holds


class DaemonError(AssertionError):
    """The daemon exited, never answered, or refused a request (with its log tail)."""


def wait_until(condition, what, timeout=WAIT_S, interval=0.1):
    """Poll condition() until it returns something truthy, which is returned; fail naming what
    never happened."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(interval)


def free_udp_ports(count):
    """count UDP ports on 127.0.0.1 that were free a moment ago (the daemon's --ports)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def stop_process(proc, grace_s=5):
    """SIGTERM a process we started, SIGKILL it if it has not gone within grace_s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=grace_s)


class Daemon:
    """One daemon: its config file, control socket, output file and process, all in workdir.

    netns: a support.netns.Namespace (or its name) to run in; address: the daemon's WAN address
    there (for the test's own use); ports: --ports (two UDP ports, for runs outside a namespace);
    state_dir, core (the hidden --core MODULE:CLASS stand-in), python_path (extra PYTHONPATH
    entries, e.g. where that stand-in lives) and args (more options) as the daemon takes them;
    config_path / socket_path when a test needs those names (an error message quoting the file).
    """

    def __init__(self, workdir, name="ours", netns=None, address=None, kernel="record",
                 log_level="debug", ports=None, state_dir=None, core=None, python_path=(),
                 args=(), config_path=None, socket_path=None):
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.name = self.side = name
        self.netns = getattr(netns, "name", netns)
        self.address = address
        self.kernel_backend = kernel
        self.log_level = log_level
        self.ports = ports
        self.state_dir = None if state_dir is None else str(state_dir)
        self.core = core
        self.args = list(args)
        self.config_path = str(config_path or os.path.join(self.workdir, "ikecore-%s.toml" % name))
        self.socket_path = str(socket_path or os.path.join(self.workdir, "control-%s.sock" % name))
        self.log_path = os.path.join(self.workdir, "daemon-%s.log" % name)
        self.env = dict(os.environ, PYTHONUNBUFFERED="1",
                        PYTHONPATH=os.pathsep.join([FIRMWARE] + [str(p) for p in python_path]))
        self.process = None
        self._log = None

    # -- process ----------------------------------------------------------------------------------
    def command(self, *extra):
        """The daemon's argv (inside the namespace when there is one)."""
        cmd = [sys.executable, "-m", "ikecore", "--config", self.config_path,
               "--kernel=" + self.kernel_backend, "--socket", self.socket_path, "--no-syslog"]
        if self.log_level:
            cmd += ["--log-level", self.log_level]
        if self.ports:
            cmd += ["--ports", ",".join(str(p) for p in self.ports)]
        if self.state_dir:
            cmd += ["--state-dir", self.state_dir]
        if self.core:
            cmd += ["--core", self.core]
        cmd += self.args + list(extra)
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        return cmd

    def write_config(self, config):
        with open(self.config_path, "w") as handle:
            handle.write(text_of(config))

    def popen(self, *extra, **popen_kw):
        """Only the process (no wait, output where popen_kw says): for tests of start-up itself."""
        return subprocess.Popen(self.command(*extra), env=self.env, cwd=REPO,
                                stdin=subprocess.DEVNULL, **popen_kw)

    def start(self, config=None, extra_args=(), timeout_s=WAIT_S, kernel=None):
        """Write config (if given), start (kernel: another --kernel backend for this run), and
        return once the control socket answers."""
        if kernel is not None:
            self.kernel_backend = kernel
        if config is not None:
            self.write_config(config)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self._log = open(self.log_path, "wb")
        self.process = self.popen(*extra_args, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DaemonError("daemon %s exited with %s at start-up\n%s" % (
                    self.name, self.process.returncode, self.log_tail()))
            if os.path.exists(self.socket_path):
                try:
                    self.request({"cmd": "status"})
                    return self
                except control.CtlError:
                    pass
            time.sleep(0.05)
        raise DaemonError("daemon %s's control socket did not answer in %ss\n%s" % (
            self.name, timeout_s, self.log_tail()))

    def running(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, grace_s=30):
        """SIGTERM (SIGKILL after grace_s); returns the exit status, None if never started."""
        if self.process is None:
            return None
        stop_process(self.process, grace_s)
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode

    def rss_kb(self):
        """VmRSS of the daemon (ip netns exec execs into python, so the pid is its own)."""
        with open("/proc/%d/status" % self.process.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    # -- control socket ---------------------------------------------------------------------------
    def request(self, message, timeout_s=60):
        """The daemon's whole reply ({"ok": ..., "result"/"error": ...})."""
        return control.request(self.socket_path, message, timeout=timeout_s)

    def result(self, message, timeout_s=60):
        """The reply's result; DaemonError with the error when the daemon said no."""
        reply = self.request(message, timeout_s)
        if not reply.get("ok"):
            raise DaemonError("control request %r to %s failed: %s" % (
                message, self.name, reply.get("error")))
        return reply.get("result")

    def status(self):
        return self.result({"cmd": "status"})

    def kernel(self):
        """What the recording backend holds: {"backend", "sas": [...], "policies": [...], ...}."""
        return self.result({"cmd": "kernel"})

    def kernel_sas(self):
        return self.kernel()["sas"]

    def vpn_log(self, limit=200):
        return self.result({"cmd": "log", "limit": limit})

    def up(self, peer):
        return self.result({"cmd": "up", "peer": peer})

    def reload(self):
        return self.result({"cmd": "reload"})

    def ikectl(self, *args, timeout=60):
        """`python3 -m ikecore.ctl --socket PATH args...` -> CompletedProcess (text)."""
        return subprocess.run([sys.executable, "-m", "ikecore.ctl", "--socket", self.socket_path]
                              + list(args), env=self.env, cwd=REPO, capture_output=True,
                              text=True, timeout=timeout)

    def ikectl_status(self):
        """The status through `ikectl status --json` (the CLI users and the web UI rely on)."""
        proc = self.ikectl("status", "--json", timeout=30)
        if proc.returncode != 0:
            raise DaemonError("ikectl status failed (%d): %s%s" % (
                proc.returncode, proc.stdout, proc.stderr))
        return json.loads(proc.stdout)

    def wait_for(self, predicate, timeout_s=15, what="condition"):
        """Poll status() until predicate(status) is true; DaemonError with the log tail if never."""
        deadline = time.monotonic() + timeout_s
        status = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DaemonError("daemon %s died (%s)\n%s" % (
                    self.name, self.process.returncode, self.log_tail()))
            status = self.status()
            if predicate(status):
                return status
            time.sleep(0.1)
        raise DaemonError("%s: %s not reached in %ss; status: %s\n%s" % (
            self.name, what, timeout_s, json.dumps(status, indent=1), self.log_tail()))

    # -- namespace --------------------------------------------------------------------------------
    def ip(self, *args):
        """`ip -n <its namespace> args...` -> the output; RuntimeError with stderr on failure."""
        proc = subprocess.run(["ip", "-n", self.netns] + list(args), capture_output=True,
                              text=True, timeout=30)
        if proc.returncode:
            raise RuntimeError("ip -n %s %s failed: %s" % (self.netns, " ".join(args),
                                                          proc.stderr.strip()))
        return proc.stdout

    # -- output -----------------------------------------------------------------------------------
    def log_text(self):
        try:
            with open(self.log_path, "rb") as handle:
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines=60):
        tail = self.log_text().splitlines()[-lines:]
        return "---- daemon %s output (%s) ----\n%s" % (self.name, self.log_path, "\n".join(tail))
