"""The one place pytest's sys.path is set: the firmware as installed in the image, tests/ (the
shared tests/support package) and the helper folders other folders import (support/paths.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from support import paths  # noqa: E402

paths.install()
