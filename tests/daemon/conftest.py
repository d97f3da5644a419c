"""Fixtures of the two-daemon tests (the harness is daemon_harness.py)."""
from daemon_harness import daemons, netns_pair  # noqa: F401  (pytest fixtures)
