"""tests/micropython's harness: a script of that folder run by the pinned MicroPython
WebAssembly build in node, inputs as /input.json, the answer as its last "RESULT {json}" line."""
import json
import os
import shutil
import subprocess
import tempfile

from support.paths import TESTS

HARNESS = os.path.join(TESTS, "micropython")


class MicroPythonError(AssertionError):
    """The run failed or printed no RESULT line (with its output)."""


def harness_missing():
    """None, or what is missing to run MicroPython (`make test` installs both)."""
    if shutil.which("node") is None:
        return "node is not installed (make test installs it via mk/micropython.mk)"
    if not os.path.isdir(os.path.join(HARNESS, "node_modules", "@micropython")):
        return "MicroPython WebAssembly is not installed: run `make micropython-harness`"
    return None


def run_micropython(script, inputs, timeout=600):
    """Run tests/micropython/SCRIPT under MicroPython with `inputs`; -> its RESULT dict."""
    missing = harness_missing()
    if missing:
        raise MicroPythonError(missing)
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(inputs, f)
        f.flush()
        proc = subprocess.run([shutil.which("node"), os.path.join(HARNESS, "run.mjs"),
                               os.path.join(HARNESS, script), f.name],
                              capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise MicroPythonError("MicroPython run of %s failed:\n%s\n%s" % (script, proc.stdout,
                                                                           proc.stderr))
    lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
    if not lines:
        raise MicroPythonError("no RESULT line from MicroPython's %s:\n%s\n%s" % (
            script, proc.stdout, proc.stderr))
    return json.loads(lines[-1][len("RESULT "):])
