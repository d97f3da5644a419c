"""Helpers for unit tests that start a real `python3 -m ikecore` process."""
import os
import socket
import time


def free_udp_ports(count):
    """count UDP ports on 127.0.0.1 that were free a moment ago (the daemon's --ports)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(count)]
    for sock in socks:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in socks]
    for sock in socks:
        sock.close()
    return ports


def wait_for_socket(path, process, timeout=60):
    """Wait until the daemon opened its control socket; fail with its stderr if it exited."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if process.poll() is not None:
            raise AssertionError("daemon exited %s: %s" % (process.returncode,
                                                            process.stderr.read().decode()))
        if time.monotonic() > deadline:
            raise AssertionError("daemon did not open %s" % path)
        time.sleep(0.05)
