"""`make bench`: run every tests/bench/bench_*.py's main() in turn.

Each benchmark prints its own numbers and ratios. A benchmark that fails prints its error (with the
last lines of its traceback) and the others still run; the exit status is 1 if any failed, so a
broken benchmark is visible without hiding the numbers of the others.
"""
import glob
import importlib.util
import os
import sys
import time
import traceback

import _paths  # noqa: F401  (the tests' sys.path for every benchmark: tests/support/paths.py)

HERE = os.path.dirname(os.path.abspath(__file__))


def load(path):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    paths = sorted(glob.glob(os.path.join(HERE, "bench_*.py")))
    if argv:       # `run_all.py ike_setup webui`: only those whose name contains a word given
        paths = [p for p in paths if any(word in os.path.basename(p) for word in argv)]
    failed = []
    for path in paths:
        name = os.path.basename(path)
        print("\n#### %s" % name, flush=True)
        start = time.monotonic()
        try:
            module = load(path)
            entry = getattr(module, "main", None)
            if entry is None:
                raise RuntimeError("%s has no main()" % name)
            saved_argv = sys.argv
            sys.argv = [path]     # benchmarks parse sys.argv when called with no arguments
            try:
                entry()
            finally:
                sys.argv = saved_argv
        except (Exception, SystemExit) as exc:
            if isinstance(exc, SystemExit) and exc.code in (None, 0):
                pass
            else:
                failed.append(name)
                print("!! %s FAILED: %r" % (name, exc))
                print("".join(traceback.format_exc().splitlines(True)[-12:]))
        print("#### %s took %.1f s" % (name, time.monotonic() - start), flush=True)
    print("\n%d benchmark(s) run, %d failed%s" % (
        len(paths), len(failed), (": " + ", ".join(failed)) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
