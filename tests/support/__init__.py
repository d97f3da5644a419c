"""What the test folders share (tests/unit, daemon, interop, xfrm, qemu, browser, bench).

  paths.py       where the firmware and the test helper folders are; one sys.path for all
  config.py      the daemon's TOML (docs/config.md), built from keys instead of written by hand
  daemon.py      our daemon (`python3 -m ikecore --config ... --kernel=record`) as a process
  netns.py       network namespaces, veth pairs, addresses, always cleaned up
  control.py     the control socket: ikecore.ctl.request plus a kept-open connection and events
  micropython.py tests/micropython's harness (MicroPython WebAssembly in node)

tests/conftest.py puts tests/ (and the rest of paths.SEARCH_PATH) on sys.path for pytest; the
bench scripts, run as scripts, import tests/bench/_paths.py for the same.
"""
