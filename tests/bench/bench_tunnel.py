"""Tunnel throughput: a fixed-size TCP transfer from LAN host A to LAN host B through the ESP tunnel,
as a ratio to the same transfer over the same path (LAN A -> router A -> WAN -> router B -> LAN B)
without IPsec, in the same two booted routers and the same run. Also the IKE daemon's CPU time
(utime + stime from /proc/PID/stat) on both routers while the tunnel traffic flows: the data plane
is the kernel's, so it must stay ~0. Printed, never asserted. Uses output/images/ (`make image`).

    python3 tests/bench/bench_tunnel.py        (BENCH_TUNNEL_MB=16 by default)
"""
import json
import os
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _paths  # noqa: F401  (the tests' sys.path: tests/support/paths.py)
from e2e import IP, Scenario, boot_sites, configure, shell_quote, stop_sites

MEGABYTES = int(os.environ.get("BENCH_TUNNEL_MB", "16"))
PORT = 5001
RUNS = 2
SETTLE_S = 5
IDLE_S = 30
SCENARIOS = [("ESP aes128-sha1", Scenario()),
             ("ESP aes256-sha256", Scenario(child_proposals=["aes256-sha256"]))]

# Receiver on LAN host B: counts bytes from the first one to EOF, answers "bytes seconds".
SINK = """
import socket, time
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", {port})); srv.listen(1)
conn, _ = srv.accept()
buf = bytearray(1 << 16); total = 0; t0 = None
while True:
    n = conn.recv_into(buf)
    if not n:
        break
    if t0 is None:
        t0 = time.monotonic()
    total += n
conn.sendall(("%d %.6f\\n" % (total, time.monotonic() - (t0 or time.monotonic()))).encode())
conn.close()
"""

# Sender on LAN host A: connects (retrying while the listener starts), sends, reads the answer.
SOURCE = """
import socket, time
for _ in range(100):
    try:
        s = socket.create_connection(("{dst}", {port}), timeout=30); break
    except OSError:
        time.sleep(0.2)
chunk = bytes(1 << 16); left = {size}
while left > 0:
    left -= s.send(chunk[:min(left, len(chunk))])
s.shutdown(socket.SHUT_WR)
print(s.makefile().readline().strip())
"""

CLOCK_TICKS_PER_S = 100         # USER_HZ on arm64 (busybox has no getconf)


def transfer(a, b, size):
    """Bytes/s of one transfer A LAN host -> B LAN host (measured by the receiver)."""
    b.check(f"{IP} netns exec lanhost python3 -c {shell_quote(SINK.format(port=PORT))} "
            ">/tmp/sink.out 2>&1 &")
    out = a.check(f"{IP} netns exec lanhost python3 -c "
                  f"{shell_quote(SOURCE.format(dst=b.site['lan_host'], port=PORT, size=size))}",
                  timeout=600)
    got, seconds = out.split()[-2:]
    if int(got) != size:
        raise RuntimeError(f"transfer: received {got} of {size} bytes")
    return size / float(seconds)


def daemon_cpu_s(site):
    pid = site.daemon_pid()
    fields = site.check(f"cat /proc/{pid}/stat").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S      # utime, stime


def allow_plain_forwarding(a, b):
    """Without IPsec the routers' firewalls drop WAN -> LAN; open exactly this path (runtime only)."""
    for s in (a, b):
        s.check('nft insert rule inet filter forward iifname "eth0" oifname "lan0" accept')


def best(rates):
    return max(rates)


def main(images=None):
    images = images or os.environ.get("IKECORE_IMAGES", os.path.join(TOP, "output", "images"))
    if not os.path.exists(os.path.join(images, "rootfs.squashfs")):
        print(f"bench_tunnel: no image in {images}: run `make image`")
        return 1
    size = MEGABYTES << 20
    print(f"== tunnel throughput (two routers, QEMU TCG cortex-a53, {MEGABYTES} MiB TCP LAN A -> LAN B, "
          f"best of {RUNS})")
    with tempfile.TemporaryDirectory(prefix="bench-tunnel-") as work:
        a, b = boot_sites(work, images)
        try:
            results = {}
            for name, scenario in SCENARIOS:
                configure(a, b, scenario)
                a.ping_until_up(b)
                time.sleep(SETTLE_S)        # the negotiation's own work (logging, installs) is done
                cpu0 = [daemon_cpu_s(s) for s in (a, b)]
                t0 = time.monotonic()
                rates = [transfer(a, b, size) for _ in range(RUNS)]
                wall = time.monotonic() - t0
                cpu = [daemon_cpu_s(s) - c for s, c in zip((a, b), cpu0)]
                sas = a.sas("outgoing")
                assert sas and sas[0]["bytes"] >= RUNS * size, sas     # it really went through ESP
                results[name] = (best(rates), cpu, wall)
            cpu0 = [daemon_cpu_s(s) for s in (a, b)]
            time.sleep(IDLE_S)              # the same tunnel, no traffic: the daemon's idle cost
            idle = [daemon_cpu_s(s) - c for s, c in zip((a, b), cpu0)]
            for s in (a, b):
                s.stop_daemon()             # flushes the policies: the same path, no IPsec
            allow_plain_forwarding(a, b)
            plain = best([transfer(a, b, size) for _ in range(RUNS)])
        finally:
            stop_sites(a, b)
    print(f"  {'path':<22} {'MB/s':>8} {'ratio':>7}   daemon CPU A / B during the transfers")
    print(f"  {'no IPsec':<22} {plain / 1e6:>8.2f} {1.0:>7.2f}")
    for name, (rate, cpu, wall) in results.items():
        print(f"  {name:<22} {rate / 1e6:>8.2f} {rate / plain:>7.2f}   "
              f"{cpu[0]:.2f} s / {cpu[1]:.2f} s of {wall:.0f} s wall")
    print(f"  daemon CPU A / B with the tunnel up and idle: {idle[0]:.2f} s / {idle[1]:.2f} s of {IDLE_S} s")
    print(json.dumps({"plain_Bps": plain, "idle_daemon_cpu_s": idle, "idle_s": IDLE_S, **{k: {"Bps": v[0], "daemon_cpu_s": v[1], "wall_s": v[2]}
                                              for k, v in results.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
