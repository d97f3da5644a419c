"""Web UI render time with many tunnels: GET / (the status page, server-rendered tables) and
GET /api/status, end to end over HTTP on 127.0.0.1 and through a control socket serving n
activated tunnels (2n SAs) from tests/browser/webui_fake_daemon.py.

Prints only (no assertions). Run: PYTHONPATH=firmware python tests/bench/bench_webui.py [-n N]
`main(argv)` is what tests/bench/run_all.py calls; `render_times(n_tunnels)` returns
{"/": seconds, "/api/status": seconds} (median of a few requests) for the interop harness, which
compares it with `swanctl --list-sas` on the same number of SAs.
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

REPEAT = 5


def render_times(n_tunnels, repeat=REPEAT):
    """Median seconds for GET / and GET /api/status with n_tunnels tunnels (2 SAs each):
    {"/": seconds, "/api/status": seconds}."""
    return measure(n_tunnels, repeat)[0]


def measure(n_tunnels, repeat=REPEAT):
    """(render_times, {path: response bytes})."""
    from webui import auth
    from webui.app import Options
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
            for path in ("/", "/api/status"):
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
    for path in ("/", "/api/status"):
        print("  GET %-12s %7.1f ms  (%d bytes)" % (path, times[path] * 1000,
                                                   sizes[path]))


if __name__ == "__main__":
    main()
