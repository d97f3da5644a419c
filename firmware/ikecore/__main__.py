"""`python3 -m ikecore --config FILE`: the IKEv1 daemon.

`--check` only validates the file (init scripts, before a restart).
Exit status: 0 after a clean stop (SIGTERM/SIGINT, whenever it comes after start-up began), 2
when the configuration or the command line is bad at start (the ConfigError text, or the reason,
goes to stderr, so init scripts can show it; nothing was negotiated), 1 when the daemon cannot
start (port in use, no kernel backend). Imports are lazy: the image's CPU is slow and
pyroute2 alone costs seconds, so only what the chosen options need is loaded.
"""
import argparse
import os
import signal
import sys

DEFAULT_CONFIG = "/etc/ikecore/ikecore.toml"
DEFAULT_SOCKET = "/run/ikecore/control.sock"    # = control.DEFAULT_SOCKET (not imported: lazy)
# sockaddr_un.sun_path is 108 bytes on Linux and CPython wants its terminating NUL inside them.
MAX_SOCKET_PATH = 107


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="ikecore", description="IKEv1 IPsec daemon")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="TOML file (default %(default)s)")
    parser.add_argument("--kernel", choices=("xfrm", "record"), default="xfrm",
                        help="xfrm: install SAs in the kernel; record: only record them (tests)")
    parser.add_argument("--socket", default=None,
                        help="control socket path (default /run/ikecore/control.sock)")
    parser.add_argument("--socket-group", default=None,
                        help="group (name or gid) allowed to use the control socket")
    parser.add_argument("--state-dir", default=None, help="directory for the pid file")
    parser.add_argument("--ports", default="500,4500", type=_ports,
                        help="IKE and NAT-T UDP ports (default %(default)s; tests)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                        default="info")
    parser.add_argument("--no-syslog", action="store_true", help="log to stderr only")
    parser.add_argument("--check", action="store_true",
                        help="only validate the configuration file (exit 0 or 2) and stop")
    # Test seam: a module:Class with IkeCore's interface (unit tests of the daemon shell).
    parser.add_argument("--core", default="ikecore.protocol.core:IkeCore", help=argparse.SUPPRESS)
    # Measuring (docs/performance.md): cProfile the whole run, stats written to FILE at stop.
    parser.add_argument("--profile", default=None, metavar="FILE", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _ports(text):
    try:
        ike, natt = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError("expected two ports like 500,4500, got %r" % text)
    if not (0 < ike < 65536 and 0 < natt < 65536) or ike == natt:
        raise argparse.ArgumentTypeError("ports must be two different numbers 1-65535")
    return ike, natt


def _load_core_class(spec):
    import importlib
    module_name, _, class_name = spec.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def socket_path_problem(path):
    """Why a control socket cannot live at path (too long for a Unix socket), or None. Checked
    before anything starts: found only at bind time, the daemon would already be negotiating."""
    size = len(os.fsencode(path))
    if size > MAX_SOCKET_PATH:
        return ("control socket path %s is %d bytes long; a Unix socket path can have at most %d "
                "(choose a shorter --socket)" % (path, size, MAX_SOCKET_PATH))
    return None


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    problem = socket_path_problem(args.socket or DEFAULT_SOCKET)
    if problem is not None:
        print("ikecore: %s" % problem, file=sys.stderr)
        return 2
    from ikecore import config
    warnings = []
    try:
        settings = config.load(args.config, warnings=warnings)
    except config.ConfigError as exc:
        print("ikecore: %s" % exc, file=sys.stderr)
        return 2
    from ikecore import heap
    heap.give_back_freed()     # the load's garbage (~11 MB of ~40 at 10,000 peers)
    if args.check:
        for warning in warnings:
            print("ikecore: warning: %s" % warning, file=sys.stderr)
        print("%s: ok (%d peers, %d connections)"
              % (args.config, len(settings.peers), len(settings.connections)))
        return 0
    import asyncio
    if args.profile:
        return _profiled(args.profile, lambda: asyncio.run(_run(args, settings, warnings)))
    return asyncio.run(_run(args, settings, warnings))


def _profiled(path, run):
    import cProfile
    profiler = cProfile.Profile()
    try:
        return profiler.runcall(run)
    finally:
        profiler.dump_stats(path)     # read with: python3 -m pstats FILE


def _make_backend(kind):
    """--kernel=record|xfrm -> a backend; xfrm (pyroute2) is imported only when asked for."""
    if kind == "record":
        from ikecore.kernel import RecordingBackend
        return RecordingBackend()
    if kind == "xfrm":
        from ikecore.xfrm import XfrmBackend
        return XfrmBackend()
    raise ValueError("unknown kernel backend %r (record or xfrm)" % (kind,))


async def _run(args, settings, warnings):
    import asyncio
    from ikecore import config
    from ikecore.control import ControlServer
    from ikecore.driver import Driver
    from ikecore.log import VpnLog

    log = VpnLog(level=args.log_level, syslog=not args.no_syslog)
    loop = asyncio.get_running_loop()
    # Signals before anything else starts: a SIGTERM that comes while we start (an init script
    # stopping us at once, a test as soon as the control socket appears) is a clean stop --
    # deletes sent, kernel flushed, socket and pid file removed -- never the default kill.
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    started = []                   # the driver, once there is one to reload
    # The configuration was read a moment ago: a SIGHUP before the driver exists has nothing
    # newer to apply, and must not kill the daemon (SIGHUP's default action) either.
    loop.add_signal_handler(signal.SIGHUP, lambda: started and _reload_quietly(started[0]))
    log.info("ikecore starting: pid %d" % os.getpid())
    for warning in warnings:
        log.warning(warning)
    try:
        backend = _make_backend(args.kernel)
        core_class = _load_core_class(args.core)
        from ikecore.crypto_cryptography import CryptographyProvider
        core = core_class(settings, CryptographyProvider(), loop.time())
        driver = Driver(core, settings, backend, log, config_path=args.config, ports=args.ports,
                        loop=loop, load_config=config.load)
        await driver.start()
        started.append(driver)
    except (OSError, ImportError) as exc:
        print("ikecore: cannot start: %s" % exc, file=sys.stderr)
        return 1
    control = ControlServer(driver, args.socket or DEFAULT_SOCKET, group=args.socket_group)
    try:
        await control.start()
    except (OSError, KeyError) as exc:
        print("ikecore: cannot open the control socket %s: %s"
              % (args.socket or DEFAULT_SOCKET, exc), file=sys.stderr)
        await driver.stop()
        return 1
    pid_file = _write_pid(args.state_dir)
    log.info("ikecore started: %d peers, %d connections, kernel backend %s, control socket %s"
             % (len(settings.peers), len(settings.connections), args.kernel, control.path))
    try:
        await stop.wait()
    finally:
        log.info("ikecore stopping")
        await control.close()
        await driver.stop()
        if pid_file:
            try:
                os.unlink(pid_file)
            except OSError:
                pass
        log.close()
    return 0


def _reload_quietly(driver):
    from ikecore.driver import RequestError
    try:
        driver.reload()
    except RequestError:
        pass                       # already in the VPN log; the old config stays
    except Exception as exc:       # a core bug on reload must not kill the daemon
        driver.log.error("reload failed: %s: %s" % (type(exc).__name__, exc))


def _write_pid(state_dir):
    if not state_dir:
        return None
    os.makedirs(state_dir, exist_ok=True)
    path = os.path.join(state_dir, "ikecore.pid")
    with open(path, "w") as handle:
        handle.write("%d\n" % os.getpid())
    return path


def _without_tls():
    """The daemon never speaks TLS, but asyncio imports `ssl` when it can (and with it libssl):
    ~1.5-4.5 MB of RSS and ~0.2 s of start-up on the host, more in the guest. A None entry in
    sys.modules makes `import ssl` raise ImportError, which asyncio handles as "no TLS support".
    Only for the daemon process itself (never when this module is imported by tests)."""
    sys.modules.setdefault("ssl", None)


if __name__ == "__main__":
    _without_tls()
    sys.exit(main())
