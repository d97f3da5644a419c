"""IKE SA + quick mode set-ups: our daemon <-> our daemon vs charon <-> charon, same run.

Same machine, same DH group (MODP-2048 in phase 1 and as PFS group in quick mode), same proposal
(aes128-sha256), main mode PSK. Each tunnel is its own IKE SA between its own pair of WAN
addresses (10.100.x.y in namespace a, 10.101.x.y in namespace b, all on one veth pair), with its
own pair of networks, so every tunnel is a full main mode plus quick mode.

Three rounds, each for both daemons (docs/performance.md, issue 11's targets):
  * rate: --tunnels (100) initiated back to back;
  * burst: --burst (1,000) initiated back to back, all at once (a router's reboot, an outage's
    end): the rate, and how many tunnels had to be initiated again;
  * hold: --hold (10,000) brought up 1,000 at a time and held: RSS, and how long the status
    takes to read (all of it, one page of 50 peers, the counts, `ikectl status --summary`).
Completion is observed the same way on both sides: events, never status polling. charon: a vici
`child-updown` up event per tunnel on each side; ours: a control-socket `subscribe` `tunnel-up`
event per tunnel on each side. A tunnel not up after BATCH_WAIT_S (+0.2 s per tunnel) is
initiated again, up to RETRIES times (printed).

Printed per daemon: set-ups/s, re-initiations, retransmitted datagrams (UDP datagrams the two
namespaces received beyond the 9 a tunnel needs: the same count for both daemons; ours also
prints its own counter), CPU per tunnel (both processes' user+system time over the round / N),
RSS. charon logs at level 0, ours at "info".

Data planes: ours uses `--kernel=record`; charon uses kernel-libipsec so that its CHILD_SAs really
install (with kernel-netlink they fail on this host) -- charon then also floats to UDP 4500 (faked
NAT-D), a few bytes more per tunnel, no extra round trip.

Prints only (no assertions). `main(argv)` is what tests/bench/run_all.py calls.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

import _paths  # noqa: F401  (the tests' sys.path: tests/support/paths.py)
from support import netns
import vici
from charon import LOG_QUIET, Charon, Child, Conn
from support.control import Connection
from ours import OurDaemon, connection_entry, peer_entry

IKE_PROPOSAL = "aes128-sha256-modp2048"
CHILD_PROPOSAL = "aes128-sha256"
PFS = "modp2048"
PSK = "bench secret"
# A batch not complete after BATCH_WAIT_S (+0.2 s per tunnel) has its missing tunnels initiated
# again, up to RETRIES times (printed: under load both daemons may give up on a few).
BATCH_WAIT_S = 30
RETRIES = 2
# ikectl as rootfs-overlay/usr/bin/ikectl starts it; timed like swanctl, best of COMMAND_REPEAT
IKECTL = [sys.executable, "-c", "import sys; from ikecore.ctl import main; sys.exit(main())"]
COMMAND_REPEAT = 5


def wan_a(i):
    n = i + 1
    return "10.100.%d.%d" % (n // 250, n % 250 + 1)


def wan_b(i):
    n = i + 1
    return "10.101.%d.%d" % (n // 250, n % 250 + 1)


def _net28(base, i):
    """The i-th /28 from base (a.b.0.0): 10,000 tunnels' networks per side stay in 172.16/12
    without overlapping the other side's (a /24 each would need 40 second octets per side)."""
    value = (base << 16) + 16 * i
    return "%d.%d.%d.%d/28" % (value >> 24, (value >> 16) & 255, (value >> 8) & 255, value & 255)


def net_a(i):
    return _net28((172 << 8) + 16, i)        # 172.16.0.0 ... 172.18.x.y


def net_b(i):
    return _net28((172 << 8) + 24, i)        # 172.24.0.0 ...


def lan_host(net):
    """The first host of the network (kernel-libipsec needs a local address inside local_ts)."""
    base = net.split("/")[0].rsplit(".", 1)
    return "%s.%d" % (base[0], int(base[1]) + 1)


class BenchLab:
    """netns.Lab plus n_max WAN addresses per side on lo, routed to the other side through the
    veth's own addresses, and one LAN address per tunnel on lo (charon's kernel-libipsec routes
    need a source in local_ts). Routed, not on-link: on-link far addresses need a neighbour
    entry each, and past ~1,000 the kernel's table (gc_thresh3, not per namespace) overflows and
    drops first messages of both daemons."""

    def __init__(self, n_max):
        self.lab = netns.pair("ikb")
        try:
            for ns, addr, net, other, via in (
                    (self.lab.a, wan_a, net_a, "10.101.0.0/16", netns.WAN_B),
                    (self.lab.b, wan_b, net_b, "10.100.0.0/16", netns.WAN_A)):
                batch = "".join("addr add %s/32 dev lo\n" % addr(i) for i in range(n_max))
                batch += "".join("addr add %s/32 dev lo\n" % lan_host(net(i)) for i in range(n_max))
                batch += "route add %s via %s dev wan0\n" % (other, via)
                ns.run(["ip", "-batch", "-"], input=batch, timeout=300)
        except Exception:
            self.lab.close()
            raise

    def close(self):
        self.lab.close()


# -- charon <-> charon ------------------------------------------------------------------------------
def charon_conns(n, initiator):
    conns = []
    for i in range(n):
        if initiator:
            local, remote, lnet, rnet = wan_a(i), wan_b(i), net_a(i), net_b(i)
        else:
            local, remote, lnet, rnet = wan_b(i), wan_a(i), net_b(i), net_a(i)
        child = Child("c%d" % i, lnet, rnet, [CHILD_PROPOSAL + "-" + PFS])
        conns.append(Conn("t%d" % i, local, remote, [IKE_PROPOSAL], PSK, [child], rekey_time=0))
    return conns


class UpCounter(threading.Thread):
    """Counts one daemon's "tunnel up" events: charon's vici child-updown up, or our control
    socket's tunnel-up (renewals not counted); wait_for(k) blocks until k arrived."""

    def __init__(self, events):
        super().__init__(daemon=True)
        self.events = events            # an iterator of tunnel names, one per tunnel up
        self.count = 0
        self.names = set()              # the tunnels (charon: IKE_SA config names) that came up
        self.error = None
        self.cond = threading.Condition()
        self.start()

    def run(self):
        try:
            for name in self.events:
                with self.cond:
                    self.count += 1
                    self.names.add(name)
                    self.cond.notify_all()
        except Exception as exc:   # the socket closes when the daemon stops
            with self.cond:
                self.error = exc
                self.cond.notify_all()

    def wait_for(self, k, timeout_s):
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while self.count < k and self.error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return self.count >= k


def charon_ups(charon):
    session = vici.Session(charon.vici, timeout_s=None)
    session.register("child-updown")
    while True:
        kind, name, body = session.recv_packet()
        if kind == vici.EVENT and name == "child-updown" and body.get("up") == "yes":
            for key in body:
                if key != "up":
                    yield key


def our_ups(daemon):
    from ikecore.ctl import subscribe
    for event in subscribe(daemon.socket_path):
        if event.get("event") == "tunnel-up" and not event.get("renewal"):
            yield event["peer"]


def _batches(n, batch):
    step = batch or n
    return [range(i, min(n, i + step)) for i in range(0, n, step)]


def cpu_s(pid):
    """User + system CPU seconds of a process so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))


def rss_of(pid):
    """VmRSS of a process in kB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def udp_in(ns):
    """UDP datagrams this namespace's stack has received (IKE on 500/4500)."""
    out = ns.run(["cat", "/proc/net/snmp"], timeout=30).stdout
    lines = [l.split() for l in out.splitlines() if l.startswith("Udp:")]
    return int(lines[1][lines[0].index("InDatagrams")])


DATAGRAMS_PER_TUNNEL = 9          # main mode 6 + quick mode 3, both directions together


def bring_up(bench, n, batch, initiate, counters, missing):
    """Initiate tunnels 0..n-1 (`batch` at a time, None: all at once) and wait for both sides'
    up events; -> (seconds, tunnels initiated again)."""
    start = time.monotonic()
    retried = 0
    for chunk in _batches(n, batch):
        todo = list(chunk)
        for attempt in range(RETRIES + 1):
            for i in todo:
                initiate(i)
            if all(c.wait_for(chunk[-1] + 1, BATCH_WAIT_S + len(chunk) * 0.2) for c in counters):
                break
            todo = missing(chunk)
            retried += len(todo)
        else:
            raise RuntimeError("only %s of %d tunnels up (%s)" % (
                [c.count for c in counters], chunk[-1] + 1, counters[1].error))
    return time.monotonic() - start, retried


def measured_round(bench, n, batch, pids, initiate, counters, missing):
    """bring_up() with the CPU, datagrams and wall time of the round around it."""
    cpu0 = sum(cpu_s(p) for p in pids)
    udp0 = udp_in(bench.lab.a) + udp_in(bench.lab.b)
    seconds, retried = bring_up(bench, n, batch, initiate, counters, missing)
    cpu = sum(cpu_s(p) for p in pids) - cpu0
    datagrams = udp_in(bench.lab.a) + udp_in(bench.lab.b) - udp0
    return {"n": n, "seconds": seconds, "rate": n / seconds, "retried": retried,
            "cpu_ms_per_tunnel": 1000.0 * cpu / n,
            "retransmitted": max(0, datagrams - DATAGRAMS_PER_TUNNEL * n)}


def timed(fn, repeat=3):
    """Best of `repeat` wall times of fn() in seconds."""
    best = None
    for _ in range(repeat):
        t = time.monotonic()
        fn()
        took = time.monotonic() - t
        best = took if best is None or took < best else best
    return best


def run_charon(bench, workdir, n, batch=None, hold=False):
    left = Charon(bench.lab.a, os.path.join(workdir, "charon-a-%d" % n), "libipsec",
                  retransmit_tries=5, log_levels=LOG_QUIET).start()
    right = Charon(bench.lab.b, os.path.join(workdir, "charon-b-%d" % n), "libipsec",
                   retransmit_tries=5, log_levels=LOG_QUIET).start()
    try:
        left.load(charon_conns(n, True), shared_psk=PSK)
        right.load(charon_conns(n, False), shared_psk=PSK)
        idle = {"initiator": left.rss_kb(), "responder": right.rss_kb()}
        counters = [UpCounter(charon_ups(left)), UpCounter(charon_ups(right))]
        control = vici.Session(left.vici)

        def missing(chunk):
            with counters[1].cond:
                return [i for i in chunk if "t%d" % i not in counters[1].names]

        result = measured_round(bench, n, batch, [left.charon_pid(), right.charon_pid()],
                                lambda i: control.initiate_async("c%d" % i, "t%d" % i),
                                counters, missing)
        result.update(rss_idle_kb=idle, rss_kb={"initiator": left.rss_kb(),
                                                "responder": right.rss_kb()})
        if hold:
            result["list_s"] = timed(lambda: left.swanctl("--list-sas", timeout=600), 1)
            result["count_s"] = timed(lambda: left.swanctl("--stats", timeout=60), COMMAND_REPEAT)
        control.close()
        return result
    finally:
        left.stop()
        right.stop()


# -- ours <-> ours ----------------------------------------------------------------------------------
def our_config(n, initiator):
    peers, connections = [], []
    for i in range(n):
        if initiator:
            local, remote, lnet, rnet = wan_a(i), wan_b(i), net_a(i), net_b(i)
        else:
            local, remote, lnet, rnet = wan_b(i), wan_a(i), net_b(i), net_a(i)
        # "both" on the initiating side: nothing starts by itself, `up` starts the clock.
        peers.append(peer_entry("t%d" % i, remote, local, [IKE_PROPOSAL], PSK, mode="main",
                                act_as="both" if initiator else "responder",
                                local_id=("ipv4", local), remote_id=("ipv4", remote),
                                dpd=(0, 120)))     # DPD off, as charon's conns (dpd_delay 0)
        connections.append(connection_entry("c%d" % i, "t%d" % i, lnet, rnet, [CHILD_PROPOSAL],
                                            pfs=PFS))
    return peers, connections


def run_ours(bench, workdir, n, batch=None, hold=False):
    left = OurDaemon(bench.lab.a, os.path.join(workdir, "ours-a-%d" % n), log_level="info")
    right = OurDaemon(bench.lab.b, os.path.join(workdir, "ours-b-%d" % n), log_level="info")
    try:
        left.start(*our_config(n, True), timeout_s=600)
        right.start(*our_config(n, False), timeout_s=600)
        idle = {"initiator": left.rss_kb(), "responder": right.rss_kb()}
        counters = [UpCounter(our_ups(left)), UpCounter(our_ups(right))]
        time.sleep(0.2)           # both subscriptions registered before the first `up`
        control = Connection(left.socket_path)

        def missing(chunk):
            with counters[1].cond:
                return [i for i in chunk if "t%d" % i not in counters[1].names]

        result = measured_round(bench, n, batch, [left.process.pid, right.process.pid],
                                lambda i: control.ask({"cmd": "up", "peer": "t%d" % i}),
                                counters, missing)
        counters_left = left.result({"cmd": "summary"})["daemon"]
        counters_right = right.result({"cmd": "summary"})["daemon"]
        result.update(rss_idle_kb=idle, rss_kb={"initiator": left.rss_kb(),
                                                "responder": right.rss_kb()},
                      own_retransmissions=counters_left["retransmissions"]
                      + counters_right["retransmissions"])
        if hold:
            ctl = IKECTL + ["--socket", left.socket_path, "status"]
            result["list_s"] = timed(lambda: subprocess.run(ctl, env=left.env, capture_output=True,
                                                           timeout=600, check=True), 1)
            result["count_s"] = timed(lambda: subprocess.run(
                ctl + ["--summary"], env=left.env, capture_output=True, timeout=60, check=True),
                COMMAND_REPEAT)
            result["python_s"] = timed(lambda: subprocess.run(
                [sys.executable, "-c", "pass"], capture_output=True, timeout=60, check=True),
                COMMAND_REPEAT)
            result["page_s"] = timed(lambda: left.result({"cmd": "status", "offset": n // 2,
                                                           "limit": 50}))
            result["summary_s"] = timed(lambda: left.result({"cmd": "summary"}))
            result["full_s"] = timed(lambda: left.result({"cmd": "status"}, timeout_s=600), 1)
            result["webui"] = webui_times(left.socket_path, n)
        control.close()
        return result
    finally:
        left.stop()
        right.stop()


# -- reporting --------------------------------------------------------------------------------------
def _mb(kb):
    return "%.1f MB" % (kb / 1024.0) if kb else "?"


def _round_line(who, r):
    own = " (its own count %d)" % r["own_retransmissions"] if "own_retransmissions" in r else ""
    return ("  %-16s %6.1f set-ups/s  (%d tunnels in %.2f s), %d re-initiated, %d datagrams "
            "retransmitted%s, %.1f ms CPU per tunnel (both daemons)" % (
                who, r["rate"], r["n"], r["seconds"], r["retried"], r["retransmitted"], own,
                r["cpu_ms_per_tunnel"]))


def _attempt(label, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        print("  %s FAILED: %s" % (label, str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)))
        detail = "\n".join(str(exc).strip().splitlines()[1:8])
        if detail:
            print("    " + detail.replace("\n", "\n    "))
        return None


def webui_times(socket_path, n):
    """tests/bench/bench_webui.py's paths (the status page, its last page, a page of
    /api/status, all of it, /api/summary, /metrics) against our daemon with n tunnels up:
    {path: median seconds}, or an error text."""
    try:
        import bench_webui
        return bench_webui.measure_socket(socket_path, n)[0]
    except Exception as exc:
        return "not available: %r" % exc


def compare(title, n, batch, bench, workdir, hold=False, only=None):
    print("-- %s: %d tunnels%s" % (title, n, ", %d at a time" % batch if batch else " at once"))
    results = {}
    for who, fn in (("charon<->charon", run_charon), ("ours<->ours", run_ours)):
        if only and not who.startswith(only):
            continue
        r = _attempt(who, fn, bench, workdir, n, batch, hold=hold)
        if r:
            results[who] = r
            print(_round_line(who, r))
            print("    RSS idle %s / %s, with %d tunnels: initiator %s, responder %s" % (
                _mb(r["rss_idle_kb"]["initiator"]), _mb(r["rss_idle_kb"]["responder"]), n,
                _mb(r["rss_kb"]["initiator"]), _mb(r["rss_kb"]["responder"])))
    c, o = results.get("charon<->charon"), results.get("ours<->ours")
    if c and o:
        print("  rate ours/charon: %.2fx (target >= 1.0x); RSS ours/charon (responder): %.2fx" % (
            o["rate"] / c["rate"], o["rss_kb"]["responder"] / float(c["rss_kb"]["responder"])))
    return c, o


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_ike_setup", description=__doc__.splitlines()[0])
    parser.add_argument("--tunnels", type=int, default=100, help="the rate round (default 100)")
    parser.add_argument("--burst", type=int, default=1000, help="the burst round (default 1000; 0 skips)")
    parser.add_argument("--hold", type=int, default=10000, help="the hold round (default 10000; 0 skips)")
    parser.add_argument("--only", choices=("ours", "charon"),
                        help="one daemon only (a rerun; the ratios need both in one run)")
    args = parser.parse_args([] if argv is None else argv)
    # SIGTERM (make's timeout, a CI stop) must still run the clean-up below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("bench_ike_setup: terminated"))

    print("== bench_ike_setup: IKEv1 main mode PSK + quick mode (PFS), %s / %s-%s" % (
        IKE_PROPOSAL, CHILD_PROPOSAL, PFS))
    ok, reason = netns.can_create_netns()
    if not ok:
        print("  skipped: %s" % reason)
        return
    if not os.path.exists("/usr/lib/ipsec/charon"):
        print("  skipped: strongSwan charon not installed (make deps)")
        return
    workdir = tempfile.mkdtemp(prefix="ikecore-bench-")
    bench = BenchLab(max(args.tunnels, args.burst, args.hold))
    try:
        compare("rate", args.tunnels, None, bench, workdir, only=args.only)
        if args.burst:
            compare("burst", args.burst, None, bench, workdir, only=args.only)
        if args.hold:
            c, o = compare("hold", args.hold, 1000, bench, workdir, hold=True,
                           only=args.only)
            if c:
                print("  charon, %d tunnels up: swanctl --list-sas %.2f s, swanctl --stats %.3f s"
                      % (args.hold, c["list_s"], c["count_s"]))
            if o:
                print("  ours, %d tunnels up: ikectl status %.2f s, ikectl status --summary %.3f s"
                      " (target < 0.05 s; `python3 -c pass` alone %.3f s), control socket: "
                      "summary %.3f s, a page of 50 peers %.3f s, everything %.2f s" % (
                          args.hold, o["list_s"], o["count_s"], o["python_s"], o["summary_s"],
                          o["page_s"], o["full_s"]))
                webui = o["webui"]
                print("  web UI against ours with %d tunnels up (median of %d): %s" % (
                    args.hold, 5, ", ".join("GET %s %.1f ms" % (path, 1000 * t)
                                           for path, t in webui.items())
                    if isinstance(webui, dict) else webui))
            if c and o:
                print("  counts only, ours/charon (each command started the same way, best of "
                      "%d): ikectl status --summary / swanctl --stats %.2fx; listing: "
                      "ikectl status / swanctl --list-sas %.2fx" % (
                          COMMAND_REPEAT, o["count_s"] / c["count_s"], o["list_s"] / c["list_s"]))
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
