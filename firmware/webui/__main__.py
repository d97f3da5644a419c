"""python3 -m webui --socket PATH --listen ADDR:PORT --state-dir DIR [--config FILE]
                    [--firewall-log FILE] [--system-config FILE] [--system-apply FIFO]
python3 -m webui passwd --state-dir DIR        (the new admin password on standard input)
"""
import argparse
import os
import sys

from webui import auth

DEFAULT_SOCKET = "/run/ikecore/control.sock"
DEFAULT_CONFIG = "/etc/ikecore/ikecore.toml"
DEFAULT_SYSTEM_CONFIG = "/etc/ikecore/system.conf"
DEFAULT_SYSTEM_APPLY = "/run/ikecore/system-apply"


def listen_address(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError("%r is not ADDR:PORT (e.g. 192.168.1.1:80)" % text)
    return host.strip("[]"), int(port)


def serve(argv):
    parser = argparse.ArgumentParser(prog="python3 -m webui",
                                     description="ikecore LAN web UI (status, logs, settings).")
    parser.add_argument("--socket", default=DEFAULT_SOCKET, help="the daemon's control socket")
    parser.add_argument("--listen", type=listen_address, default=("127.0.0.1", 8080),
                        metavar="ADDR:PORT", help="LAN address and port to serve on")
    parser.add_argument("--state-dir", required=True,
                        help="writable directory for the password hash")
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help="the ikecore.toml the settings pages edit")
    parser.add_argument("--firewall-log", metavar="FILE",
                        help="the system log file both log pages read (firewall lines, the "
                             "daemon's; default: `logread`)")
    parser.add_argument("--system-config", default=DEFAULT_SYSTEM_CONFIG,
                        help="the System page's settings file (NTP, remote syslog)")
    parser.add_argument("--system-apply", default=DEFAULT_SYSTEM_APPLY, metavar="FIFO",
                        help="where a saved System page is announced to the root side")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.state_dir):
        parser.error("--state-dir %s is not a directory" % args.state_dir)

    from aiohttp import web
    from webui.app import make_app
    from webui.context import Options
    app = make_app(Options(args.socket, args.state_dir, args.config, args.firewall_log,
                           system_config=args.system_config, system_apply=args.system_apply))
    host, port = args.listen
    print("webui: serving http://%s:%d/ (control socket %s, config %s)"
          % (host, port, args.socket, args.config), flush=True)
    web.run_app(app, host=host, port=port, print=None, access_log=None)


def passwd(argv):
    parser = argparse.ArgumentParser(prog="python3 -m webui passwd",
                                     description="Set the admin password (read from stdin).")
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args(argv)
    line = sys.stdin.readline()
    password = line[:-1] if line.endswith("\n") else line
    try:
        auth.PasswordStore(args.state_dir).set(password)
    except auth.PasswordError as exc:
        sys.exit("webui passwd: %s" % exc)
    except OSError as exc:
        sys.exit("webui passwd: cannot write %s: %s" % (args.state_dir, exc.strerror))
    print("webui passwd: password set in %s" % os.path.join(args.state_dir, auth.PASSWORD_FILE))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "passwd":
        return passwd(argv[1:])
    return serve(argv)


if __name__ == "__main__":
    main()
