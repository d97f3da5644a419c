"""Our daemon (`python3 -m ikecore`) in a network namespace, driven through its control socket.

The daemon runs with `--kernel=record` (the host kernel cannot hold ESP/AH SAs): what it would
install is read back with the control socket's `{"cmd": "kernel"}` request. Status comes from
`ikectl status --json --socket PATH` (the CLI users and the web UI rely on) or, when polling, straight
from the socket (`{"cmd": "status"}`), which returns the same data.
"""
import json
import os
import subprocess
import sys
import time

import tomli_w

from ikecore import ctl
from netns import stop_process

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIRMWARE = os.path.join(REPO, "firmware")


class DaemonError(RuntimeError):
    pass


def daemon_available():
    """(ok, reason): whether the daemon's entry points exist in this checkout yet."""
    for module in ("__main__.py", "ctl.py", "protocol/core.py", "driver.py", "control.py"):
        if not os.path.exists(os.path.join(FIRMWARE, "ikecore", module)):
            return False, "firmware/ikecore/%s is not there yet" % module
    return True, ""


def peer_entry(name, remote_gateway, local_address, proposals, psk, mode="main", act_as="both",
               local_id=None, remote_id=None, nat_t=True, dpd=None, lifetime_s=28800):
    """One [[peer]] table (DESIGN.md's TOML). IDs are (type, value) pairs or None."""
    entry = {"name": name, "remote_gateway": remote_gateway, "local_address": local_address,
             "phase1_mode": mode, "act_as": act_as, "auth": "psk", "psk": psk,
             "proposals": list(proposals), "lifetime_s": lifetime_s, "nat_t": nat_t}
    if local_id:
        entry["local_id"] = {"type": local_id[0], "value": local_id[1]}
    if remote_id:
        entry["remote_id"] = {"type": remote_id[0], "value": remote_id[1]}
    if dpd:
        entry["dpd"] = {"delay_s": dpd[0], "timeout_s": dpd[1]}
    return entry


def connection_entry(name, peer, local_net, remote_net, proposals, protocol="esp", pfs="none",
                     lifetime_s=3600):
    return {"name": name, "peer": peer, "local_net": local_net, "remote_net": remote_net,
            "protocol": protocol, "proposals": list(proposals), "pfs": pfs,
            "lifetime_s": lifetime_s, "lifetime_kb": 0}


def config_text(peers, connections, wan_interface="wan0", lan_interface="lo"):
    return tomli_w.dumps({"general": {"wan_interface": wan_interface, "lan_interface": lan_interface},
                          "peer": list(peers), "connection": list(connections)})


class OurDaemon:
    """`python3 -m ikecore --config FILE --kernel=record --socket PATH` inside namespace `ns`."""

    def __init__(self, ns, workdir, name="ours", log_level="debug"):
        self.ns = ns
        self.workdir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.config_path = os.path.join(workdir, "ikecore.toml")
        self.socket_path = os.path.join(workdir, "control.sock")
        self.log_path = os.path.join(workdir, "daemon.log")
        self.name = name
        self.log_level = log_level
        self.proc = None
        self.env = dict(os.environ, PYTHONPATH=FIRMWARE, PYTHONUNBUFFERED="1")

    def write_config(self, peers, connections):
        with open(self.config_path, "w") as f:
            f.write(config_text(peers, connections))

    def start(self, peers, connections, extra_args=(), timeout_s=20):
        self.write_config(peers, connections)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self.log_file = open(self.log_path, "w")
        cmd = self.ns.exec_cmd([sys.executable, "-m", "ikecore", "--config", self.config_path,
                                "--kernel=record", "--socket", self.socket_path,
                                "--no-syslog", "--log-level", self.log_level] + list(extra_args))
        self.proc = subprocess.Popen(cmd, env=self.env, cwd=REPO, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DaemonError("our daemon exited with %s at start-up\n%s" % (
                    self.proc.returncode, self.log_tail()))
            if os.path.exists(self.socket_path):
                try:
                    self.request({"cmd": "status"})
                    return self
                except ctl.CtlError:
                    pass
            time.sleep(0.05)
        raise DaemonError("our daemon's control socket did not answer in %ss\n%s" % (
            timeout_s, self.log_tail()))

    def stop(self):
        if self.proc is None:
            return
        stop_process(self.proc)
        self.log_file.close()
        self.proc = None

    def rss_kb(self):
        """VmRSS of the daemon process (ip netns exec execs into python, so the pid is its own)."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    # -- control socket -------------------------------------------------------------------------
    def request(self, obj, timeout_s=60):
        """One JSON request line, one JSON reply line; returns reply["result"] or raises."""
        reply = ctl.request(self.socket_path, obj, timeout=timeout_s)
        if not reply.get("ok"):
            raise DaemonError("control request %r failed: %s" % (obj, reply.get("error")))
        return reply.get("result")

    def status(self):
        return self.request({"cmd": "status"})

    def ikectl_status(self):
        """The same data through the `ikectl status --json --socket PATH` command line."""
        proc = subprocess.run([sys.executable, "-m", "ikecore.ctl", "status", "--json",
                               "--socket", self.socket_path], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise DaemonError("ikectl status failed (%d): %s%s" % (
                proc.returncode, proc.stdout, proc.stderr))
        return json.loads(proc.stdout)

    def kernel(self):
        """What the recording backend holds: {"backend", "sas": [...], "policies": [...], ...}."""
        return self.request({"cmd": "kernel"})

    def vpn_log(self, limit=200):
        return self.request({"cmd": "log", "limit": limit})

    def up(self, peer):
        return self.request({"cmd": "up", "peer": peer})

    def reload(self):
        return self.request({"cmd": "reload"})

    def wait_for(self, predicate, timeout_s=15, what="condition"):
        """Poll status() until predicate(status) is true; raise with our log tail if never."""
        deadline = time.monotonic() + timeout_s
        status = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise DaemonError("our daemon died (%s)\n%s" % (self.proc.returncode, self.log_tail()))
            status = self.status()
            if predicate(status):
                return status
            time.sleep(0.1)
        raise DaemonError("ours: %s not reached in %ss; status: %s\n%s" % (
            what, timeout_s, json.dumps(status, indent=1), self.log_tail()))

    # -- log ------------------------------------------------------------------------------------
    def log_tail(self, lines=60):
        try:
            with open(self.log_path, errors="replace") as f:
                tail = f.read().splitlines()[-lines:]
        except OSError:
            tail = []
        return "---- our daemon output (%s) ----\n%s" % (self.log_path, "\n".join(tail))
