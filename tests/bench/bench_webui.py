"""Web UI answer times with many tunnels, end to end over HTTP on 127.0.0.1 and through a control
socket serving n activated tunnels (2n SAs) from tests/browser/webui_fake_daemon.py:
GET / (the status page: with more than 50 peers its first page of 50, with the summary line),
its last page, GET /api/status?limit=50 (one page), GET /api/status (the full listing, every SA),
GET /api/summary and GET /metrics (counts from the summary at that size).

Prints only (no assertions); the issue's target is a status page under 1 s at 10,000 tunnels.
Run: PYTHONPATH=firmware python tests/bench/bench_webui.py [-n N]
`main(argv)` is what tests/bench/run_all.py calls; `render_times(n_tunnels)` returns
{path: seconds} (median of a few requests; "/" and "/api/status" among them) for
bench_ike_setup.py, which compares them with `swanctl --list-sas` on the same number of SAs.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "firmware"))
sys.path.insert(0, os.path.join(TOP, "tests", "browser"))

from webui_fake_daemon import FakeDaemon, many_tunnels  # noqa: E402
from webui_harness import Client, ThreadedWebui  # noqa: E402

from webui.views_status import PAGE_SIZE  # noqa: E402

REPEAT = 5


def paths(n_tunnels):
    last_page = max(0, (n_tunnels - 1) // PAGE_SIZE * PAGE_SIZE)
    return ("/", "/?offset=%d" % last_page, "/api/status?limit=%d" % PAGE_SIZE, "/api/status",
            "/api/summary", "/metrics")


def render_times(n_tunnels, repeat=REPEAT):
    """Median seconds of each of paths(n_tunnels) with n_tunnels tunnels (2 SAs each):
    {path: seconds}."""
    return measure(n_tunnels, repeat)[0]


def measure(n_tunnels, repeat=REPEAT):
    """(render_times, {path: response bytes})."""
    from webui import auth
    from webui.context import Options
    with tempfile.TemporaryDirectory() as tmp:
        socket_path = os.path.join(tmp, "control.sock")
        daemon = FakeDaemon(socket_path, many_tunnels(n_tunnels)).start()
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
            daemon.stop()


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
