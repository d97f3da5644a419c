"""The daemon (`python3 -m ikecore --kernel=xfrm`) on the host kernel, in a fresh namespace: its
trap policies appear at start, a ping makes the kernel ACQUIRE and the daemon start main mode,
and a stop (SIGTERM) leaves no policy of ours behind while a foreign one stays."""
import json
import time

from ikecore import xfrm

from support.config import Config
from support.daemon import Daemon
from xfrm_lab import LOCAL_GW, LOCAL_HOST, LOCAL_NET, REMOTE_GW, REMOTE_HOST, REMOTE_NET


def config():
    cfg = Config(wan_interface="wan0", lan_interface="lo")
    cfg.peer("branch", REMOTE_GW, local_address=LOCAL_GW, act_as="both",
             psk="correct horse battery staple", proposals=["aes128-sha1-modp2048"])
    cfg.connection("branch-lan", "branch", LOCAL_NET, REMOTE_NET, proposals=["aes128-sha1"])
    return cfg


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
    netns.ip("xfrm", "policy", "add", "src", "10.9.0.0/16", "dst", "10.8.0.0/24", "dir", "out",
             "tmpl", "src", LOCAL_GW, "dst", "192.0.2.9", "proto", "esp", "reqid", "9",
             "mode", "tunnel")
    daemon = Daemon(tmp_path, netns=netns, kernel="xfrm", log_level=None)
    try:
        daemon.start(config())
        ours = str(xfrm.REQID_BASE + 1)
        poll("the daemon's trap policies",
             lambda: netns.ip("xfrm", "policy").stdout.count("reqid " + ours) == 3)

        def status():
            out = daemon.ikectl("status", "--json").stdout
            return json.loads(out) if out.strip().startswith("{") else None
        assert poll("the control socket", status)["ike_sas"] == []
        netns.exec("ping", "-c", "1", "-W", "1", "-I", LOCAL_HOST, REMOTE_HOST, check=False)
        negotiating = poll("main mode started by the acquire",
                           lambda: [sa for sa in status()["ike_sas"]
                                    if sa["status"] == "Negotiating"])
        assert negotiating[0]["remote_gateway"] == REMOTE_GW
        assert negotiating[0]["role"] == "initiator"
    finally:
        returncode = daemon.stop()
    assert returncode == 0, daemon.log_text()
    policies = netns.ip("xfrm", "policy").stdout
    assert "reqid " + ours not in policies, policies
    assert "reqid 9 " in policies, policies                 # not ours: left alone
