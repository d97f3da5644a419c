"""A hub under a flood of forged first messages: ours vs charon as the hub, same run, same spray.

Issue 11's flood: B branch tunnels are up (main mode PSK, as bench_ike_setup's workload); then
20,000 main mode and 2,000 aggressive mode message 1s arrive at the hub (each one's real first
message with a fresh cookie: tests/daemon/spray.py, our own core writes them) and meanwhile one
more branch sets up its tunnel. Two shapes, each with fresh daemons: from ONE address (a peer
the hub has, so the hub parses and answers) and from MANY (1,000 + 100 addresses the hub has
peers for, 20 messages each). Both hubs run with the same bounds on half-open IKE SAs: ours'
built-in ones (ikecore.protocol.admission), given to charon as init_limit_half_open / block_threshold.
Every branch tunnel ends at its own hub address (our daemon refuses two peers with one gateway,
and the branches are one daemon); the spray goes to the first.
Printed for each hub: established tunnels lost, how long the new branch took, the hub's CPU over
the flood, its RSS before and after, what it kept (IKE SAs listed) and the lines it logged.
Prints only, never asserts.

    PYTHONPATH=firmware .venv/bin/python tests/bench/bench_flood.py [--branches 100]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

import _paths  # noqa: F401  (the tests' sys.path: tests/support/paths.py)
import bench_ike_setup as b
from support import netns
import vici
from charon import LOG_QUIET, Charon, Child, Conn
from support.control import Connection
from ours import OurDaemon, connection_entry, peer_entry

from ikecore.protocol import admission

MAIN_SOURCES, AGGRESSIVE_SOURCES, PER_SOURCE = 1000, 100, 20
SHAPES = ("one address", "many addresses")
SPRAY = os.path.join(REPO, "tests", "daemon", "spray.py")
SPRAY_ID = "spray.example"
SPRAY_PROPOSAL = "aes128-sha1-modp2048"     # what spray.py's first messages offer
SETTLE_S = 15
# charon gets our bounds (its defaults: no total limit, 5 per address).
HALF_OPEN = (admission.MAX_HALF_OPEN, admission.MAX_HALF_OPEN_PER_ADDRESS)


def sprayed(i, branches):
    """Address of the i-th forged source (after the branches' addresses)."""
    return b.wan_a(branches + 1 + i)


def spray(bench, branches, shape, done):
    """The flood: 20,000 main mode then 2,000 aggressive mode first messages, from one address
    per mode or from MAIN_SOURCES / AGGRESSIVE_SOURCES addresses, PER_SOURCE at a time with the
    same pause between (so both shapes last as long)."""
    env = ["env", "PYTHONPATH=" + os.path.join(REPO, "firmware"), "SPRAY_PAUSE_S=0.002"]
    sent = 0
    start = time.monotonic()
    for mode, first, count in (("main", 0, MAIN_SOURCES),
                               ("aggressive", MAIN_SOURCES, AGGRESSIVE_SOURCES)):
        if shape == "one address":
            sources = [sprayed(first, branches)] * count
        else:
            sources = [sprayed(first + k, branches) for k in range(count)]
        out = bench.lab.a.run(env + [sys.executable, SPRAY, b.wan_b(0), mode, str(PER_SOURCE)]
                              + sources, timeout=600).stdout
        sent += int(out.split()[-1])
    done.append((sent, time.monotonic() - start))


def run(kind, bench, workdir, branches, shape):
    workdir = os.path.join(workdir, "%s-%s" % (kind, shape.split()[0]))
    if kind == "ours":
        return run_ours(bench, workdir, branches, shape)
    return run_charon(bench, workdir, branches, shape)


def _flood_round(bench, branches, shape, hub_pid, initiate, hub_up_counter, established, extra):
    """Tunnels 0..branches-2 up, then the flood with the last branch set up in the middle;
    the hub's CPU is counted until both the spray and the new branch are done."""
    b.bring_up(bench, branches - 1, None, initiate, [hub_up_counter], lambda chunk: list(chunk))
    before = established()
    rss0 = b.rss_of(hub_pid)
    cpu0 = b.cpu_s(hub_pid)
    done = []
    thread = threading.Thread(target=spray, args=(bench, branches, shape, done), daemon=True)
    thread.start()
    time.sleep(0.5)             # the spray is under way (it takes a few seconds)
    t_new = time.monotonic()
    initiate(branches - 1)
    new_up = hub_up_counter.wait_for(branches, 120)
    new_s = time.monotonic() - t_new if new_up else None
    thread.join()
    cpu_flood = b.cpu_s(hub_pid) - cpu0
    rss1 = b.rss_of(hub_pid)
    time.sleep(SETTLE_S)
    after = established()
    result = {"lost": len(before - after), "kept": len(before & after), "new_s": new_s,
              "sent": done[0][0] if done else 0, "flood_s": done[0][1] if done else 0,
              "cpu_s": cpu_flood,
              "rss0": rss0, "rss1": rss1}
    result.update(extra())
    return result


def _log_lines(path):
    with open(path, errors="replace") as f:
        return sum(1 for _ in f)


def run_ours(bench, workdir, branches, shape):
    peers_a, conns_a = [], []
    peers_b, conns_b = [], []
    for i in range(branches):
        lnet, rnet = b.net_a(i), b.net_b(i)
        peers_a.append(peer_entry("t%d" % i, b.wan_b(i), b.wan_a(i), [b.IKE_PROPOSAL], b.PSK,
                                  act_as="both", dpd=(0, 120)))
        conns_a.append(connection_entry("c%d" % i, "t%d" % i, lnet, rnet, [b.CHILD_PROPOSAL]))
        peers_b.append(peer_entry("t%d" % i, b.wan_a(i), b.wan_b(i), [b.IKE_PROPOSAL], b.PSK,
                                  act_as="responder", dpd=(0, 120)))
        conns_b.append(connection_entry("c%d" % i, "t%d" % i, rnet, lnet, [b.CHILD_PROPOSAL]))
    for k in range(MAIN_SOURCES + AGGRESSIVE_SOURCES):
        aggressive = k >= MAIN_SOURCES
        peers_b.append(peer_entry("s%d" % k, sprayed(k, branches), b.wan_b(0), [SPRAY_PROPOSAL],
                                  b.PSK, mode="aggressive" if aggressive else "main",
                                  act_as="responder", dpd=(0, 120),
                                  remote_id=("fqdn", SPRAY_ID) if aggressive else None))
        conns_b.append(connection_entry("x%d" % k, "s%d" % k, "10.250.0.0/24",
                                        "10.251.%d.%d/32" % (k // 250, k % 250),
                                        [b.CHILD_PROPOSAL]))
    left = OurDaemon(bench.lab.a, os.path.join(workdir, "branches"), log_level="info")
    hub = OurDaemon(bench.lab.b, os.path.join(workdir, "hub"), log_level="info")
    try:
        left.start(peers_a, conns_a, timeout_s=300)
        hub.start(peers_b, conns_b, timeout_s=300)
        counter = b.UpCounter(b.our_ups(hub))
        time.sleep(0.2)
        control = Connection(left.socket_path)

        def established():
            status = hub.result({"cmd": "status", "status": "Activated"})
            return set((sa["id"], sa["spi"]) for sa in status["sas"]
                       if sa["direction"] == "incoming")      # one per tunnel, as charon's

        def extra():
            summary = hub.result({"cmd": "summary"})
            return {"listed": summary["ike_sas"], "admission": summary["admission"],
                    "log_lines": _log_lines(hub.log_path)}

        return _flood_round(bench, branches, shape, hub.process.pid,
                            lambda i: control.ask({"cmd": "up", "peer": "t%d" % i}),
                            counter, established, extra)
    finally:
        left.stop()
        hub.stop()


def run_charon(bench, workdir, branches, shape):
    left_conns, hub_conns = [], []
    for i in range(branches):
        lnet, rnet = b.net_a(i), b.net_b(i)
        left_conns.append(Conn("t%d" % i, b.wan_a(i), b.wan_b(i), [b.IKE_PROPOSAL], b.PSK,
                               [Child("c%d" % i, lnet, rnet, [b.CHILD_PROPOSAL])], rekey_time=0))
        hub_conns.append(Conn("t%d" % i, b.wan_b(i), b.wan_a(i), [b.IKE_PROPOSAL], b.PSK,
                              [Child("c%d" % i, rnet, lnet, [b.CHILD_PROPOSAL])], rekey_time=0))
    for k in range(MAIN_SOURCES + AGGRESSIVE_SOURCES):
        aggressive = k >= MAIN_SOURCES
        hub_conns.append(Conn("s%d" % k, b.wan_b(0), sprayed(k, branches), [SPRAY_PROPOSAL],
                              b.PSK, [Child("x%d" % k, "10.250.0.0/24",
                                            "10.251.%d.%d/32" % (k // 250, k % 250),
                                            [b.CHILD_PROPOSAL])],
                              aggressive=aggressive, rekey_time=0,
                              remote_id=SPRAY_ID if aggressive else None))
    left = Charon(bench.lab.a, os.path.join(workdir, "branches"), "libipsec",
                  retransmit_tries=5, log_levels=LOG_QUIET).start()
    hub = Charon(bench.lab.b, os.path.join(workdir, "hub"), "libipsec", retransmit_tries=5,
                 log_levels=LOG_QUIET, half_open=HALF_OPEN).start()
    try:
        left.load(left_conns, shared_psk=b.PSK)
        hub.load(hub_conns, shared_psk=b.PSK)
        counter = b.UpCounter(b.charon_ups(hub))
        control = vici.Session(left.vici)

        def established():
            return set((sa.get("name"), sa.get("spi")) for sa in _child_sas(hub))

        def extra():
            return {"listed": len(hub.list_sas()), "log_lines": _log_lines(hub.log_path)}

        return _flood_round(bench, branches, shape, hub.charon_pid(),
                            lambda i: control.initiate_async("c%d" % i, "t%d" % i),
                            counter, established, extra)
    finally:
        left.stop()
        hub.stop()


def _child_sas(charon):
    """(name, inbound SPI) of every installed CHILD_SA of charon."""
    found = []
    for ike in charon.list_sas():
        for child in (ike.get("child-sas") or {}).values():
            if isinstance(child, dict) and child.get("state") == "INSTALLED":
                found.append({"name": child.get("name"), "spi": child.get("spi-in")})
    return found


def _line(kind, r):
    return ("  %-6s hub: %d of %d established tunnels lost; new branch up in %s; %d datagrams "
            "sent in %.1f s cost the hub %.2f s CPU; RSS %s -> %s; %d IKE SAs listed %d s "
            "after; %d log lines%s" % (
                kind, r["lost"], r["lost"] + r["kept"],
                "%.3f s" % r["new_s"] if r["new_s"] is not None else "NOT within 120 s",
                r["sent"], r["flood_s"], r["cpu_s"], b._mb(r["rss0"]), b._mb(r["rss1"]),
                r["listed"], SETTLE_S, r["log_lines"],
                "; admission %s" % r["admission"] if "admission" in r else ""))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_flood", description=__doc__.splitlines()[0])
    parser.add_argument("--branches", type=int, default=100)
    args = parser.parse_args([] if argv is None else argv)
    print("== bench_flood: %d branch tunnels up, then %d main + %d aggressive mode first messages "
          "(from one address, then from %d + %d), one more branch set up meanwhile" % (
              args.branches - 1, MAIN_SOURCES * PER_SOURCE, AGGRESSIVE_SOURCES * PER_SOURCE,
              MAIN_SOURCES, AGGRESSIVE_SOURCES))
    ok, reason = netns.can_create_netns()
    if not ok or not os.path.exists("/usr/lib/ipsec/charon"):
        print("  skipped: %s" % (reason or "strongSwan charon not installed (make deps)"))
        return
    workdir = tempfile.mkdtemp(prefix="ikecore-flood-")
    bench = b.BenchLab(args.branches + 1 + MAIN_SOURCES + AGGRESSIVE_SOURCES)
    try:
        for shape in SHAPES:
            print("-- from %s" % shape)
            results = {}
            for kind in ("charon", "ours"):
                r = b._attempt(kind, run, kind, bench, workdir, args.branches, shape)
                if r:
                    results[kind] = r
                    print(_line(kind, r))
            c, o = results.get("charon"), results.get("ours")
            if c and o and c["cpu_s"]:
                print("  hub CPU over the flood ours/charon: %.2fx" % (o["cpu_s"] / c["cpu_s"]))
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
