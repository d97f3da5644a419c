"""The daemon (`python3 -m ikecore --kernel=xfrm`) on the host kernel, in a fresh namespace: its
trap policies appear at start, a ping makes the kernel ACQUIRE and the daemon start main mode,
and a stop (SIGTERM) leaves no policy of ours behind while a foreign one stays."""
import json
import os
import signal
import subprocess
import sys
import time

from ikecore import xfrm

from xfrm_lab import LOCAL_GW, LOCAL_HOST, LOCAL_NET, REMOTE_GW, REMOTE_HOST, REMOTE_NET

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = """
[general]
wan_interface = "wan0"
lan_interface = "lo"

[[peer]]
name = "branch"
remote_gateway = "{remote_gw}"
local_address = "{local_gw}"
act_as = "both"
psk = "correct horse battery staple"
proposals = ["aes128-sha1-modp2048"]

[[connection]]
name = "branch-lan"
peer = "branch"
local_net = "{local_net}"
remote_net = "{remote_net}"
proposals = ["aes128-sha1"]
"""


def poll(what, probe, limit=30):
    """probe() until it returns something true; fails naming what after limit seconds."""
    deadline = time.monotonic() + limit
    while True:
        result = probe()
        if result:
            return result
        assert time.monotonic() < deadline, "gave up waiting for " + what
        time.sleep(0.2)


def test_daemon_traps_acquires_and_cleans_up(netns, tmp_path):
    config = tmp_path / "ikecore.toml"
    config.write_text(CONFIG.format(remote_gw=REMOTE_GW, local_gw=LOCAL_GW, local_net=LOCAL_NET,
                                    remote_net=REMOTE_NET))
    sock = str(tmp_path / "control.sock")
    netns.ip("xfrm", "policy", "add", "src", "10.9.0.0/16", "dst", "10.8.0.0/24", "dir", "out",
             "tmpl", "src", LOCAL_GW, "dst", "192.0.2.9", "proto", "esp", "reqid", "9",
             "mode", "tunnel")
    env = dict(os.environ, PYTHONPATH=os.path.join(TOP, "firmware"))
    daemon = subprocess.Popen(
        ["ip", "netns", "exec", netns.name, sys.executable, "-m", "ikecore", "--config",
         str(config), "--kernel=xfrm", "--socket", sock, "--no-syslog"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        ours = str(xfrm.REQID_BASE + 1)
        poll("the daemon's trap policies",
             lambda: netns.ip("xfrm", "policy").stdout.count("reqid " + ours) == 3)

        def status():
            out = subprocess.run([sys.executable, "-m", "ikecore.ctl", "--socket", sock, "status",
                                  "--json"], env=env, capture_output=True, text=True).stdout
            return json.loads(out) if out.strip().startswith("{") else None
        assert poll("the control socket", status)["ike_sas"] == []
        netns.exec("ping", "-c", "1", "-W", "1", "-I", LOCAL_HOST, REMOTE_HOST, check=False)
        negotiating = poll("main mode started by the acquire",
                           lambda: [sa for sa in status()["ike_sas"]
                                    if sa["status"] == "Negotiating"])
        assert negotiating[0]["remote_gateway"] == REMOTE_GW
        assert negotiating[0]["role"] == "initiator"
    finally:
        daemon.send_signal(signal.SIGTERM)
        output = daemon.communicate(timeout=30)[0]
    assert daemon.returncode == 0, output
    policies = netns.ip("xfrm", "policy").stdout
    assert "reqid " + ours not in policies, policies
    assert "reqid 9 " in policies, policies                 # not ours: left alone
