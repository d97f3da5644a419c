"""Web UI answer times with many tunnels, end to end over HTTP on 127.0.0.1 and through a control
socket serving n activated tunnels (2n SAs) from tests/browser/webui_fake_daemon.py:
GET / (the status page: with more than 50 peers its first page of 50, with the summary line),
its last page, GET /api/status?limit=50 (one page), GET /api/status (the full listing, every SA),
GET /api/summary and GET /metrics (counts from the summary at that size).

Prints only (no assertions); the issue's target is a status page under 1 s at 10,000 tunnels.
Run: PYTHONPATH=firmware python tests/bench/bench_webui.py [-n N]
`main(argv)` is what tests/bench/run_all.py calls; `measure_socket(path, n_tunnels)` times the
same paths against any daemon's control socket: bench_ike_setup.py's hold round uses it on our
real daemon with 10,000 tunnels up.
"""
import argparse
import os
import statistics
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _paths  # noqa: F401  (the tests' sys.path: tests/support/paths.py)
from webui_fake_daemon import FakeDaemon, many_tunnels
from webui_harness import Client, ThreadedWebui

from webui.views_status import PAGE_SIZE

REPEAT = 5


def paths(n_tunnels):
    last_page = max(0, (n_tunnels - 1) // PAGE_SIZE * PAGE_SIZE)
    return ("/", "/?offset=%d" % last_page, "/api/status?limit=%d" % PAGE_SIZE, "/api/status",
            "/api/summary", "/metrics")


def measure(n_tunnels, repeat=REPEAT):
    """(render_times, {path: response bytes}) against the fake daemon."""
    with tempfile.TemporaryDirectory() as tmp:
        socket_path = os.path.join(tmp, "control.sock")
        daemon = FakeDaemon(socket_path, many_tunnels(n_tunnels)).start()
        try:
            return measure_socket(socket_path, n_tunnels, repeat)
        finally:
            daemon.stop()


def measure_socket(socket_path, n_tunnels, repeat=REPEAT):
    """The same against whatever daemon answers on socket_path (bench_ike_setup's hold round:
    our real daemon with n_tunnels up)."""
    from webui import auth
    from webui.context import Options
    with tempfile.TemporaryDirectory() as tmp:
        server = ThreadedWebui(Options(socket_path, tmp, os.path.join(tmp, "ikecore.toml")))
        server.start()
        try:
            auth.PasswordStore(tmp).set("bench-password")
            client = Client(server.port)
            client.login("bench-password")
            times = {}
            for path in paths(n_tunnels):
                samples = []
                for _ in range(repeat + 1):            # the first one warms up templates
                    start = time.perf_counter()
                    page = client.get(path)
                    samples.append(time.perf_counter() - start)
                    if page.status != 200:
                        raise RuntimeError("GET %s answered %d" % (path, page.status))
                times[path] = statistics.median(samples[1:])
            sizes = {path: len(client.get(path).body) for path in times}
            return times, sizes
        finally:
            server.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--tunnels", type=int, default=1000)
    args = parser.parse_args(argv)
    times, sizes = measure(args.tunnels)
    print("webui: %d tunnels (%d IKE SAs, %d SAs), median of %d requests:"
          % (args.tunnels, args.tunnels, 2 * args.tunnels, REPEAT))
    for path in paths(args.tunnels):
        print("  GET %-22s %8.1f ms  (%d bytes)" % (path, times[path] * 1000, sizes[path]))


if __name__ == "__main__":
    main()
