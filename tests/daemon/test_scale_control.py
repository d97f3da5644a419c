"""A hub daemon with many peers, asked the way a big router is: events instead of polling, one
peer or one page of the status, counts only; and a flood of forged first messages against it.

  ns a: daemon a 10.99.0.1 (a branch, tunnel up), daemon c 10.99.0.3 (a branch that comes
        later), and the forged sources 10.99.1.x (main mode), 10.99.2.x (aggressive mode),
        10.99.3.x (no peer configured for them)
  ns b: the hub 10.99.0.2, a responder for all of them
"""
import os
import subprocess
import sys

from daemon_harness import ADDRESS, Daemon, wait_until
from support.config import Config
from support.control import Events
from support.paths import firmware_env

HERE = os.path.dirname(os.path.abspath(__file__))
PSK = "hub secret"
MAIN_SPRAYED = ["10.99.1.%d" % i for i in range(1, 61)]
AGGRESSIVE_SPRAYED = ["10.99.2.%d" % i for i in range(1, 21)]
UNKNOWN = ["10.99.3.%d" % i for i in range(1, 201)]
LATE = "10.99.0.3"


def hub_config():
    cfg = Config(wan_interface="ikb", lan_interface="lo")

    def peer(name, gateway, mode="main", **extra):
        return cfg.peer(name, gateway, local_address=ADDRESS["b"], act_as="responder", psk=PSK,
                        proposals=["aes128-sha1-modp2048"], phase1_mode=mode, dpd=(0,), **extra)
    peers = [peer("branch-a", ADDRESS["a"]), peer("branch-c", LATE)]
    peers += [peer("m%d" % i, addr) for i, addr in enumerate(MAIN_SPRAYED)]
    peers += [peer("g%d" % i, addr, "aggressive", remote_id=("fqdn", "spray.example"))
              for i, addr in enumerate(AGGRESSIVE_SPRAYED)]
    for n, p in enumerate(peers):
        cfg.connection("to-" + p["name"], p["name"], "192.168.20.0/24",
                       "10.%d.%d.0/24" % (100 + n // 250, n % 250), proposals=["aes128-sha1"])
    return cfg


def branch_config(address, remote_net):
    cfg = Config(wan_interface="ika", lan_interface="lo")
    cfg.peer("hub", ADDRESS["b"], local_address=address, act_as="both", psk=PSK,
             proposals=["aes128-sha1-modp2048"], dpd=(0,))
    cfg.connection("to-hub", "hub", remote_net, "192.168.20.0/24", proposals=["aes128-sha1"])
    return cfg


def test_hub_events_pages_summary_and_a_flood(daemons, netns_pair, tmp_path):
    hub, a = daemons["b"], daemons["a"]
    late = Daemon(tmp_path, name="c", netns=netns_pair["a"], address=LATE)
    daemons["c"] = late                         # stopped (and its log shown) by the fixture
    a.ip("addr", "add", LATE + "/24", "dev", "ika")
    batch = "".join("addr add %s/32 dev ika\n" % x
                    for x in MAIN_SPRAYED + AGGRESSIVE_SPRAYED + UNKNOWN)
    subprocess.run(["ip", "-n", netns_pair["a"], "-batch", "-"], input=batch, text=True,
                   check=True, timeout=60)
    hub.ip("route", "add", "10.99.0.0/16", "dev", "ikb")
    hub.start(hub_config())
    events = Events(hub.socket_path)
    try:
        assert events.reply["ok"] and "tunnel-up" in events.reply["result"]["events"]
        a.start(branch_config(ADDRESS["a"], "10.100.0.0/24"))
        assert a.result({"cmd": "up", "peer": "hub"})
        wait_until(lambda: events.of("tunnel-up", "branch-a"), "branch-a's tunnel-up event")
        (up,) = events.of("tunnel-up", "branch-a")
        assert up["connection"] == "to-branch-a" and len(up["sas"]) == 2 and not up["renewal"]
        assert events.of("ike-up", "branch-a")[0]["ike_sa"] == up["ike_sa"]

        # One peer, one page, counts: without the other 81 peers' rows.
        one = hub.result({"cmd": "status", "peer": "branch-a"})
        assert [sa["peer"] for sa in one["ike_sas"]] == ["branch-a"] and len(one["sas"]) == 2
        assert "page" not in one
        by_id = hub.result({"cmd": "status", "id": one["sas"][0]["id"]})
        assert by_id["sas"] == one["sas"]
        page = hub.result({"cmd": "status", "offset": 1, "limit": 5})
        assert page["page"] == {"offset": 1, "limit": 5, "matching": 82, "peers": 82}
        assert page["ike_sas"] == []             # branch-c .. m3: nothing negotiated
        active = hub.result({"cmd": "status", "status": "Activated"})
        assert active["page"]["matching"] == 1 and active["ike_sas"] == one["ike_sas"]
        filtered = hub.result({"cmd": "status", "filter": "10.99.2."})
        assert filtered["page"]["matching"] == len(AGGRESSIVE_SPRAYED)
        for bad, word in (({"limit": 0}, "'limit'"), ({"offset": -1}, "'offset'"),
                          ({"status": "Up"}, "'status'"), ({"peer": "nobody"}, "nobody"),
                          ({"id": "sa-999"}, "sa-999")):
            reply = hub.request(dict(bad, cmd="status"))
            assert not reply["ok"] and word in reply["error"], (bad, reply)
        out = hub.ikectl("status", "--summary")
        assert out.returncode == 0, out.stderr
        assert "peers 82: 1 activated, 0 negotiating, 81 idle" in out.stdout, out.stdout
        paged = hub.ikectl("status", "--offset", "0", "--limit", "1")
        assert "branch-a" in paged.stdout and "peers 1-1 of 82 matching" in paged.stdout

        # The flood: forged first messages from 60 + 20 configured addresses and 200 others.
        before = [(sa["id"], sa["spi"]) for sa in one["sas"]]
        spray = [sys.executable, os.path.join(HERE, "spray.py"), ADDRESS["b"]]
        for mode, count, sources in (("main", 25, MAIN_SPRAYED), ("aggressive", 25,
                                                                  AGGRESSIVE_SPRAYED),
                                     ("main", 2, UNKNOWN)):
            done = subprocess.run(["ip", "netns", "exec", netns_pair["a"]] + spray
                                  + [mode, str(count)] + sources, env=firmware_env(), capture_output=True,
                                  text=True, timeout=120)
            assert done.returncode == 0 and done.stdout.startswith("SENT"), done.stderr
        summary = wait_until(lambda: (lambda s: s if s["admission"]["refused"]["address"] else None)(
            hub.result({"cmd": "summary"})), "the per-address bound to bite")
        admission = summary["admission"]
        assert admission["half_open"] <= admission["half_open_limit"]
        assert admission["dh_in_flight"] <= admission["dh_in_flight_limit"]

        # A new branch still gets in; the established tunnel was never touched.
        late.start(branch_config(LATE, "10.100.1.0/24"))
        late.result({"cmd": "up", "peer": "hub"})
        wait_until(lambda: events.of("tunnel-up", "branch-c"), "branch-c's tunnel-up event")
        after = hub.result({"cmd": "status", "peer": "branch-a"})
        assert [(sa["id"], sa["spi"]) for sa in after["sas"]] == before
        assert not events.of("tunnel-down") and not events.of("ike-down")

        # Under pressure the forged half-open SAs go quietly; the episode ends with one line.
        wait_until(lambda: hub.result({"cmd": "summary"})["admission"]["half_open"] == 0,
                   "the forged half-open SAs to go")
        # The daemon's whole log (the ring of the `log` request holds only the newest lines).
        wait_until(lambda: "accepting again" in hub.log_text(), "the admission episode's end")
        lines = hub.log_text().splitlines()
        assert len([l for l in lines if "admission: dropping" in l]) == 1
        (closing,) = [l for l in lines if "accepting again" in l]
        assert "half-open negotiations from one address" in closing
        sprayed = ["[m%d]" % i for i in range(60)] + ["[g%d]" % i for i in range(20)]
        assert not [l for l in lines if " ERROR " in l and any(p in l for p in sprayed)]
        assert len([l for l in lines if "no peer configured" in l]) <= 100
        assert hub.result({"cmd": "summary"})["admission"]["expired_quietly"] > 0
        assert len(hub.result({"cmd": "status"})["ike_sas"]) == 2      # the two branches
    finally:
        events.close()
