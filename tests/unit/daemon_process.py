"""Kept for tests written against it: tests/support/daemon.py runs the daemon now."""
import os

from support.daemon import free_udp_ports, wait_until  # noqa: F401  (free_udp_ports: re-exported)


def wait_for_socket(path, process, timeout=60):
    """Wait until the daemon opened its control socket; fail with its stderr if it exited."""
    wait_until(lambda: os.path.exists(path) or process.poll() is not None,
               "the daemon to open %s" % path, timeout=timeout)
    if not os.path.exists(path):
        raise AssertionError("daemon exited %s: %s" % (
            process.returncode, process.stderr.read().decode() if process.stderr else ""))
