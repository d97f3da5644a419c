"""Where things are, and the one sys.path every test and bench script runs with.

The firmware is imported as installed in the image (from firmware/); qemu/ holds the image
tools (router.py, firmware_update.py) the QEMU tests and benches drive; the other entries are the
test folders whose helpers other folders import (strongSwan's charon from interop, the web UI
harness and PKI from browser, the web UI runner from unit, the two-daemon pair from daemon, the QEMU scenarios from qemu).
"""
import os
import sys

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TESTS)
FIRMWARE = os.path.join(REPO, "firmware")

SEARCH_PATH = [FIRMWARE, TESTS, os.path.join(REPO, "qemu")] + [
    os.path.join(TESTS, folder) for folder in ("interop", "browser", "unit", "daemon", "qemu")]


def install():
    """Put SEARCH_PATH on sys.path (first, in that order), once."""
    for path in reversed(SEARCH_PATH):
        if path not in sys.path:
            sys.path.insert(0, path)


def firmware_env(**extra):
    """os.environ for a child `python3 -m ikecore...`: the firmware importable, output unbuffered."""
    return dict(os.environ, PYTHONPATH=FIRMWARE, PYTHONUNBUFFERED="1", **extra)
