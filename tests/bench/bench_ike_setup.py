"""IKE SA + quick mode setups per second: our daemon <-> our daemon vs charon <-> charon.

Same machine, same run, same DH group (MODP-2048 in phase 1 and as PFS group in quick mode),
same proposal (aes128-sha256), main mode PSK. Each tunnel is its own IKE SA between its own pair
of WAN addresses (10.100.x.y in namespace a, 10.101.x.y in namespace b, all on one veth pair), with
its own pair of networks (172.16+.x.0/24 <-> 172.24+.x.0/24), so every tunnel is a full main mode
plus quick mode, never a quick mode reusing an IKE SA.

Timing: for the rate (default 100 tunnels) all initiations are queued back to back (charon: vici
`initiate` with timeout -1; ours: control socket `up` per peer); the clock stops when both sides
report every tunnel up (charon: a `child-updown` up event per tunnel on each side; ours: the
status shows N IKE SAs in state 9 and 2N SAs on each side, polled every 50 ms). The 1,000-tunnel
round (RSS, listing time) brings them up 100 at a time: a burst of 1,000 DH exchanges on two
shared cores measures retransmission storms, not steady state. charon logs at level 0 here and
our daemon at "info" (per-packet logging would dominate both).

Data planes: ours uses `--kernel=record`; charon uses kernel-libipsec so that its CHILD_SAs really
install (with kernel-netlink they fail on this host and the quick mode never completes) -- charon
then also floats to UDP 4500 (faked NAT-D), a few bytes more per tunnel, no extra round trip.

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
sys.path.insert(0, os.path.join(REPO, "tests", "interop"))
sys.path.insert(0, os.path.join(REPO, "firmware"))

import netns  # noqa: E402
import vici  # noqa: E402
from charon import LOG_QUIET, Charon, Child, Conn  # noqa: E402
from ours import OurDaemon, connection_entry, daemon_available, peer_entry  # noqa: E402

IKE_PROPOSAL = "aes128-sha256-modp2048"
CHILD_PROPOSAL = "aes128-sha256"
PFS = "modp2048"
PSK = "bench secret"
# A batch not complete after BATCH_WAIT_S (+0.2 s per tunnel) has its missing tunnels initiated
# again, up to RETRIES times (printed: under load both daemons may give up on a few).
BATCH_WAIT_S = 30
RETRIES = 2


def wan_a(i):
    n = i + 1
    return "10.100.%d.%d" % (n // 250, n % 250 + 1)


def wan_b(i):
    n = i + 1
    return "10.101.%d.%d" % (n // 250, n % 250 + 1)


def net_a(i):
    return "172.%d.%d.0/24" % (16 + i // 256, i % 256)


def net_b(i):
    return "172.%d.%d.0/24" % (24 + i // 256, i % 256)


def lan_host(net):
    """The .1 address of a /24 (kernel-libipsec needs a local address inside local_ts)."""
    return net.split("/")[0].rsplit(".", 1)[0] + ".1"


class BenchLab:
    """netns.Lab plus n_max WAN addresses per side on the veth, on-link routes between them, and
    one LAN address per tunnel on lo (charon's kernel-libipsec routes need a source in local_ts)."""

    def __init__(self, n_max):
        self.lab = netns.Lab("ikb")
        try:
            for ns, addr, net, other in ((self.lab.a, wan_a, net_a, "10.101.0.0/16"),
                                         (self.lab.b, wan_b, net_b, "10.100.0.0/16")):
                batch = "".join("addr add %s/32 dev wan0\n" % addr(i) for i in range(n_max))
                batch += "".join("addr add %s/32 dev lo\n" % lan_host(net(i)) for i in range(n_max))
                batch += "route add %s dev wan0\n" % other
                ns.run(["ip", "-batch", "-"], input=batch, timeout=120)
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
    """Counts vici child-updown "up" events of one charon; wait_for(k) blocks until k arrived."""

    def __init__(self, charon):
        super().__init__(daemon=True)
        self.session = vici.Session(charon.vici, timeout_s=None)
        self.session.register("child-updown")
        self.count = 0
        self.names = set()          # IKE_SA config names whose CHILD_SA came up
        self.error = None
        self.cond = threading.Condition()

    def run(self):
        try:
            while True:
                kind, name, body = self.session.recv_packet()
                if kind == vici.EVENT and name == "child-updown" and body.get("up") == "yes":
                    with self.cond:
                        self.count += 1
                        self.names.update(k for k in body if k != "up")
                        self.cond.notify_all()
        except Exception as exc:   # the socket closes when charon stops
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


def _batches(n, batch):
    step = batch or n
    return [range(i, min(n, i + step)) for i in range(0, n, step)]


def run_charon(bench, workdir, n, batch=None):
    """N tunnels charon -> charon, all queued at once (batch None) or `batch` at a time."""
    left = Charon(bench.lab.a, os.path.join(workdir, "charon-a-%d" % n), "libipsec",
                  retransmit_tries=5, log_levels=LOG_QUIET).start()
    right = Charon(bench.lab.b, os.path.join(workdir, "charon-b-%d" % n), "libipsec",
                   retransmit_tries=5, log_levels=LOG_QUIET).start()
    try:
        left.load(charon_conns(n, True), shared_psk=PSK)
        right.load(charon_conns(n, False), shared_psk=PSK)
        idle = {"initiator": left.rss_kb(), "responder": right.rss_kb()}
        counters = [UpCounter(left), UpCounter(right)]
        for c in counters:
            c.start()
        control = vici.Session(left.vici)
        start = time.monotonic()
        retried = 0
        for chunk in _batches(n, batch):
            todo = list(chunk)
            for attempt in range(RETRIES + 1):
                for i in todo:
                    control.initiate_async("c%d" % i, "t%d" % i)
                if all(c.wait_for(chunk[-1] + 1, BATCH_WAIT_S + len(chunk) * 0.2) for c in counters):
                    break
                with counters[1].cond:
                    todo = [i for i in chunk if "t%d" % i not in counters[1].names]
                retried += len(todo)
            else:
                raise RuntimeError("charon: only %s of %d tunnels up (%s)\n%s" % (
                    [c.count for c in counters], chunk[-1] + 1, counters[1].error,
                    right.log_tail(20)))
        seconds = time.monotonic() - start
        result = {"seconds": seconds, "rate": n / seconds, "rss_idle_kb": idle, "retried": retried,
                  "rss_kb": {"initiator": left.rss_kb(), "responder": right.rss_kb()}}
        t = time.monotonic()
        proc = left.swanctl("--list-sas", timeout=300)
        result["list_s"] = time.monotonic() - t
        result["list_lines"] = proc.stdout.count("\n")
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


def _up_count(status):
    """(IKE SAs in state 9, SAs): what one side of ours shows as up."""
    return (sum(1 for sa in status.get("ike_sas", []) if sa.get("state") == 9),
            len(status.get("sas", [])))


def run_ours(bench, workdir, n, batch=None, poll_s=0.05):
    left = OurDaemon(bench.lab.a, os.path.join(workdir, "ours-a-%d" % n), log_level="info")
    right = OurDaemon(bench.lab.b, os.path.join(workdir, "ours-b-%d" % n), log_level="info")
    try:
        left.start(*our_config(n, True), timeout_s=120)
        right.start(*our_config(n, False), timeout_s=120)
        idle = {"initiator": left.rss_kb(), "responder": right.rss_kb()}
        start = time.monotonic()
        retried = 0
        for chunk in _batches(n, batch):
            todo = list(chunk)
            want = chunk[-1] + 1
            for attempt in range(RETRIES + 1):
                for i in todo:
                    left.up("t%d" % i)
                deadline = time.monotonic() + BATCH_WAIT_S + len(chunk) * 0.2
                pending = [left, right]
                while pending and time.monotonic() < deadline:
                    pending = [d for d in pending if _up_count(d.status()) < (want, 2 * want)]
                    if pending:
                        time.sleep(poll_s)
                if not pending:
                    break
                up = set(sa["peer"] for sa in left.status()["ike_sas"] if sa.get("state") == 9)
                todo = [i for i in chunk if "t%d" % i not in up]
                retried += len(todo)
            else:
                counts = [_up_count(d.status()) for d in (left, right)]
                raise RuntimeError("ours: (IKE SAs, SAs) up %s, want (%d, %d)\n%s" % (
                    counts, want, 2 * want, left.log_tail(20)))
        seconds = time.monotonic() - start
        result = {"seconds": seconds, "rate": n / seconds, "rss_idle_kb": idle, "retried": retried,
                  "rss_kb": {"initiator": left.rss_kb(), "responder": right.rss_kb()}}
        t = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "ikecore.ctl", "--socket", left.socket_path,
                               "status"], env=left.env, capture_output=True, text=True,
                              timeout=300)
        result["list_s"] = time.monotonic() - t
        result["list_lines"] = proc.stdout.count("\n")
        if proc.returncode != 0:
            result["list_error"] = proc.stderr.strip()[-300:]
        return result
    finally:
        left.stop()
        right.stop()


# -- reporting --------------------------------------------------------------------------------------
def _mb(kb):
    return "%.1f MB" % (kb / 1024.0) if kb else "?"


def _rate_line(who, r):
    retried = ", %d re-initiated" % r["retried"] if r.get("retried") else ""
    return "  %-16s %5.1f setups/s  (%d tunnels in %.2f s%s)" % (
        who, r["rate"], r["n"], r["seconds"], retried)


def _attempt(label, fn, *args):
    try:
        return fn(*args)
    except Exception as exc:
        print("  %s FAILED: %s" % (label, str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)))
        detail = "\n".join(str(exc).strip().splitlines()[1:8])
        if detail:
            print("    " + detail.replace("\n", "\n    "))
        return None


def webui_render_times(n):
    """tests/bench/bench_webui.py's render_times(n): {"/": s, "/api/status": s}, or an error text."""
    try:
        sys.path.insert(0, HERE)
        import bench_webui
        return bench_webui.render_times(n)
    except Exception as exc:
        return "not available: %r" % exc


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench_ike_setup", description=__doc__.splitlines()[0])
    parser.add_argument("--tunnels", type=int, default=100, help="tunnels for the rate (default 100)")
    parser.add_argument("--big", type=int, default=1000, help="tunnels for RSS/list (default 1000)")
    parser.add_argument("--skip-big", action="store_true", help="only the rate")
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
    ours_ok, ours_reason = daemon_available()
    workdir = tempfile.mkdtemp(prefix="ikecore-bench-")
    n_max = max(args.tunnels, 0 if args.skip_big else args.big)
    bench = BenchLab(n_max)
    try:
        results = {}
        for who, fn, extra in (("charon<->charon", run_charon, ()),
                               ("ours<->ours", run_ours, ())):
            if who.startswith("ours") and not ours_ok:
                print("  %s skipped: %s" % (who, ours_reason))
                continue
            r = _attempt(who, fn, bench, workdir, args.tunnels, *extra)
            if r:
                r["n"] = args.tunnels
                results[who] = r
                print(_rate_line(who, r))
        c, o = results.get("charon<->charon"), results.get("ours<->ours")
        if c and o:
            print("  setup rate ratio ours/charon: %.2fx (target >= 1.0x)" % (o["rate"] / c["rate"]))

        if not args.skip_big:
            big = {}
            # 1,000 at once would measure retransmission storms, not steady state: 100 at a time.
            for who, fn, extra in (("charon<->charon", run_charon, (100,)),
                                   ("ours<->ours", run_ours, (100, 0.5))):
                if who.startswith("ours") and not ours_ok:
                    continue
                r = _attempt("%s with %d tunnels" % (who, args.big), fn, bench, workdir, args.big, *extra)
                if r:
                    r["n"] = args.big
                    big[who] = r
                    print(_rate_line(who, r))
                    print("    RSS idle %s / %s, with %d tunnels: initiator %s, responder %s" % (
                        _mb(r["rss_idle_kb"]["initiator"]), _mb(r["rss_idle_kb"]["responder"]),
                        args.big, _mb(r["rss_kb"]["initiator"]), _mb(r["rss_kb"]["responder"])))
                    print("    listing %d tunnels (%s): %.3f s, %d lines" % (
                        args.big, "swanctl --list-sas" if who.startswith("charon") else "ikectl status",
                        r["list_s"], r["list_lines"]))
            c, o = big.get("charon<->charon"), big.get("ours<->ours")
            if c and o:
                ratio = o["rss_kb"]["responder"] / float(c["rss_kb"]["responder"])
                print("  RSS ratio ours/charon with %d tunnels (responder): %.2fx" % (args.big, ratio))
                print("  listing time ratio ikectl status / swanctl --list-sas: %.2fx" % (
                    o["list_s"] / c["list_s"]))
            render = webui_render_times(args.big)
            if isinstance(render, dict) and c:
                for path, seconds in sorted(render.items()):
                    print("  web UI GET %s with %d tunnels: %.3f s = %.2fx swanctl --list-sas (%.3f s)"
                          % (path, args.big, seconds, seconds / c["list_s"], c["list_s"]))
            else:
                print("  web UI render_times(%d): %s" % (args.big, render))
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
