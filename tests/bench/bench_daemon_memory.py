"""Where a tunnel set-up's CPU and a tunnel's memory go, without sockets: two in-process IkeCores.

The same workload as tests/bench/bench_ike_setup.py (main mode PSK, aes128-sha256-modp2048,
quick mode ESP aes128-sha256 with PFS MODP-2048, one IKE SA per tunnel between its own pair of
addresses), but both daemons' cores live in this process and datagrams are handed across
directly, the way tests/unit/conftest.py's IkeLink does. So the numbers are the core + crypto
provider alone: no asyncio, no kernel backend, no control socket.

Prints (never asserts):
  * CPU per tunnel (both ends together) and set-ups per second on one core;
  * with --profile, the top functions by cumulative and own time (cProfile);
  * bytes per tunnel held by the two cores after all N are up (tracemalloc: difference of
    snapshots before/after), grouped by source line and by object type, so the core engineer
    sees which objects dominate;
  * RSS of this process before and after (a rough cross-check).

    PYTHONPATH=firmware .venv/bin/python tests/bench/bench_daemon_memory.py [--tunnels 200]
        [--profile] [--top 25]

With --daemons (root, network namespaces): the same N tunnels between two real daemons
(`python3 -m ikecore --profile FILE`) in bench_ike_setup.py's lab, brought up and observed (events)
exactly as that benchmark does, then both daemons' cProfile tables: where the daemon's time goes beyond
the core (asyncio, control socket, status, logging).
"""
import argparse
import cProfile
import gc
import io
import os
import pstats
import sys
import time
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))

import _paths  # noqa: F401  (the tests' sys.path: tests/support/paths.py)
from ikecore import config
from ikecore.protocol.core import IkeCore
from ikecore.crypto_cryptography import CryptographyProvider
from support.config import Config

IKE_PROPOSAL = "aes128-sha256-modp2048"
CHILD_PROPOSAL = "aes128-sha256"
PFS = "modp2048"


def wan(side, i):
    n = i + 1
    return "10.%d.%d.%d" % (100 if side == "a" else 101, n // 250, n % 250 + 1)


def net(side, i):
    return "172.%d.%d.0/24" % ((16 if side == "a" else 24) + i // 256, i % 256)


def config_toml(n, side):
    """N peers + connections for one side, as TOML text (DESIGN.md's format)."""
    other = "b" if side == "a" else "a"
    cfg = Config(wan_interface="wan0", lan_interface="lo")
    for i in range(n):
        cfg.peer("t%d" % i, wan(other, i), local_address=wan(side, i), phase1_mode="main",
                 act_as="both" if side == "a" else "responder", auth="psk", psk="bench secret",
                 proposals=[IKE_PROPOSAL], lifetime_s=28800, nat_t=True,
                 local_id=("ipv4", wan(side, i)), remote_id=("ipv4", wan(other, i)), dpd=(0, 120))
        cfg.connection("c%d" % i, "t%d" % i, net(side, i), net(other, i), protocol="esp",
                       proposals=[CHILD_PROPOSAL], pfs=PFS, lifetime_s=3600, lifetime_kb=0)
    return cfg.text()


class Pair:
    """Two cores; `pump()` moves datagrams until both are quiet, draining their events."""

    def __init__(self, n, now=1000.0, crypto_provider=None):
        self.now = now
        crypto = crypto_provider or CryptographyProvider()
        self.a = IkeCore(config.parse(config_toml(n, "a")), crypto, now)
        self.b = IkeCore(config.parse(config_toml(n, "b")), crypto, now)
        self.datagrams = 0

    def pump(self):
        moved = True
        while moved:
            moved = False
            for core, other in ((self.a, self.b), (self.b, self.a)):
                for data, local, remote in core.datagrams_to_send():
                    moved = True
                    self.datagrams += 1
                    other.receive_datagram(data, remote, local, self.now)
                while core.next_event() is not None:
                    pass
            # the driver re-arms its timer after every batch: keep that cost in the picture
            self.a.get_timer()
            self.b.get_timer()

    def up_count(self):
        return sum(1 for sa in self.a.status(self.now)["ike_sas"] if sa["state"] == 9)


def rss_kb():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def set_up(pair, n):
    for i in range(n):
        pair.a.initiate("c%d" % i, pair.now)
        pair.pump()


def profile_daemons(n, top):
    """Two real daemons, bench_ike_setup's lab and workload, completion seen through their event
    subscriptions as there; prints both cProfile tables."""
    import shutil
    import tempfile
    import bench_ike_setup as bench
    from ours import OurDaemon
    from support.control import Connection
    workdir = tempfile.mkdtemp(prefix="ikecore-prof-")
    lab = bench.BenchLab(n)
    daemons = []
    try:
        for side, ns, initiator in (("initiator", lab.lab.a, True), ("responder", lab.lab.b, False)):
            daemon = OurDaemon(ns, os.path.join(workdir, side), log_level="info")
            daemon.profile_path = os.path.join(workdir, side + ".prof")
            daemon.start(*bench.our_config(n, initiator), timeout_s=120,
                         extra_args=["--profile", daemon.profile_path])
            daemons.append(daemon)
        left, right = daemons
        counters = [bench.UpCounter(bench.our_ups(d)) for d in daemons]
        time.sleep(0.2)
        control = Connection(left.socket_path)
        start = time.monotonic()
        for i in range(n):
            control.ask({"cmd": "up", "peer": "t%d" % i})
        for counter in counters:
            counter.wait_for(n, 120 + n)
        seconds = time.monotonic() - start
        control.close()
        print("  daemons: %s tunnels up in %.2f s = %.1f set-ups/s; RSS initiator %d kB, "
              "responder %d kB" % ([c.count for c in counters], seconds, n / seconds,
                                   left.rss_kb(), right.rss_kb()))
        for daemon, side in ((left, "initiator"), (right, "responder")):
            snmp = daemon.ns.run(["cat", "/proc/net/snmp"]).stdout
            udp = [line.split() for line in snmp.splitlines() if line.startswith("Udp:")]
            counters = dict(zip(udp[0][1:], udp[1][1:])) if len(udp) == 2 else {}
            print("  %s namespace UDP: InDatagrams %s, RcvbufErrors %s (datagrams dropped because "
                  "the daemon's socket buffer was full)" % (side, counters.get("InDatagrams"),
                                                            counters.get("RcvbufErrors")))
        ticks = os.sysconf("SC_CLK_TCK")
        for daemon, side in ((left, "initiator"), (right, "responder")):
            with open("/proc/%d/stat" % daemon.process.pid) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / float(ticks)   # utime + stime
            print("  %s daemon CPU since start (profiled, incl. start-up): %.2f s = %.1f ms per "
                  "tunnel" % (side, cpu, 1000 * cpu / n))
    finally:
        for daemon in daemons:
            daemon.stop()
        lab.close()
    for daemon, side in zip(daemons, ("initiator", "responder")):
        out = io.StringIO()
        stats = pstats.Stats(daemon.profile_path, stream=out)
        print("  -- %s daemon: cProfile by own time (total %.2f s) --" % (side, stats.total_tt))
        stats.sort_stats("tottime").print_stats(top)
        print("\n".join("    " + line for line in out.getvalue().splitlines()[6:] if line.strip()))
        out = io.StringIO()
        stats.stream = out
        stats.sort_stats("cumulative").print_stats(top)
        print("  -- %s daemon: by cumulative time --" % side)
        print("\n".join("    " + line for line in out.getvalue().splitlines()[6:] if line.strip()))
        keep = os.path.join(tempfile.gettempdir(), "ikecore-%s.prof" % side)
        shutil.copy(daemon.profile_path, keep)
        print("  (kept as %s: python3 -m pstats %s)" % (keep, keep))
    shutil.rmtree(workdir, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_daemon_memory", description=__doc__.splitlines()[0])
    parser.add_argument("--tunnels", type=int, default=200)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    parser.add_argument("--top", type=int, default=20, help="lines per table (default 20)")
    parser.add_argument("--daemons", action="store_true",
                        help="profile two real daemons in network namespaces instead (root)")
    args = parser.parse_args([] if argv is None else argv)
    n = args.tunnels
    if args.daemons:
        print("== bench_daemon_memory --daemons: %d tunnels between two real daemons" % n)
        profile_daemons(n, args.top)
        return
    print("== bench_daemon_memory: %d tunnels, two in-process cores, %s / %s-%s"
          % (n, IKE_PROPOSAL, CHILD_PROPOSAL, PFS))

    # CPU (untraced run; tracemalloc slows Python code down several times).
    pair = Pair(n)
    profiler = cProfile.Profile() if args.profile else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    set_up(pair, n)
    if profiler:
        profiler.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    up = pair.up_count()
    print("  %d/%d tunnels up, %d datagrams; CPU %.2f s = %.1f ms per tunnel (both ends), "
          "%.0f set-ups/s on one core (wall %.2f s)"
          % (up, n, pair.datagrams, cpu, 1000 * cpu / n, n / cpu if cpu else 0, wall))
    if profiler:
        for key in ("cumulative", "tottime"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(args.top)
            text = out.getvalue()
            print("  -- cProfile, sorted by %s --" % key)
            print("\n".join("    " + line for line in text.splitlines()[6:] if line.strip()))
    del pair, profiler
    gc.collect()

    # Memory: what the two cores keep per established tunnel.
    crypto_warm = Pair(1)
    set_up(crypto_warm, 1)           # imports, OpenSSL contexts, caches: not per tunnel
    del crypto_warm
    gc.collect()
    rss0 = rss_kb()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    pair = Pair(n)
    configured = tracemalloc.take_snapshot()
    set_up(pair, n)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    config_bytes = sum(s.size_diff for s in configured.compare_to(before, "filename"))
    tunnel_stats = after.compare_to(configured, "lineno")
    tunnel_bytes = sum(s.size_diff for s in tunnel_stats)
    print("  memory (tracemalloc): configuration of %d peers %.1f kB (%.0f B each, both sides); "
          "established tunnels %.1f kB = %.0f B per tunnel (both sides: %.0f B per side)"
          % (n, config_bytes / 1024.0, config_bytes / n, tunnel_bytes / 1024.0,
             tunnel_bytes / n, tunnel_bytes / n / 2))
    print("  RSS of this process %d kB -> %d kB (+%.1f kB per tunnel for both sides)"
          % (rss0, rss_kb(), (rss_kb() - rss0) / float(n)))
    print("  -- where the tunnel bytes are (source line that allocated, B per tunnel) --")
    for stat in sorted(tunnel_stats, key=lambda s: -s.size_diff)[:args.top]:
        frame = stat.traceback[0]
        print("    %7.0f B  %5.1f objs  %s:%d" % (stat.size_diff / float(n), stat.count_diff / float(n),
                                                 os.path.relpath(frame.filename), frame.lineno))
    print("  -- live objects per tunnel by type (gc) --")
    counts = {}
    for obj in gc.get_objects():
        kind = type(obj)
        module = getattr(kind, "__module__", "")
        if module.startswith("ikecore"):
            name = "%s.%s" % (module, kind.__qualname__)
            size = sys.getsizeof(obj) + (sys.getsizeof(obj.__dict__) if hasattr(obj, "__dict__") else 0)
            count, total = counts.get(name, (0, 0))
            counts[name] = (count + 1, total + size)
    for name, (count, total) in sorted(counts.items(), key=lambda kv: -kv[1][1])[:args.top]:
        print("    %6.2f per tunnel  %6.0f B per tunnel (shallow + __dict__)  %s"
              % (count / float(n), total / float(n), name))
    del pair


if __name__ == "__main__":
    main(sys.argv[1:])
