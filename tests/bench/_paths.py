"""Imported first by every bench script (they run as scripts, not under pytest): the same
sys.path as tests/conftest.py gives the tests (tests/support/paths.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from support import paths  # noqa: E402

paths.install()
