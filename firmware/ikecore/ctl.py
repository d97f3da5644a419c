"""ikectl: talk to the running daemon over its control socket.

  ikectl status [--json]     IKE SAs then SAs, like the status page
  ikectl up PEER | down PEER | delete SA_ID | reload | log [-n N]
  --socket PATH (default /run/ikecore/control.sock) and --json go before or after the command
Exit status 0 when the daemon said yes; 1 with the reason on stderr when it said no or is not
running.
"""
import argparse
import json
import socket
import sys
import time

DEFAULT_SOCKET = "/run/ikecore/control.sock"    # same as ikecore.control (not imported: speed)


class CtlError(Exception):
    pass


def request(path, message, timeout=30.0):
    """Send one request, return the reply object; CtlError when the daemon cannot be reached."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise CtlError("ikecore is not running (no control socket at %s)" % path)
        except PermissionError:
            raise CtlError("permission denied on %s (run as root or in the socket's group)"
                           % path)
        sock.sendall((json.dumps(message) + "\n").encode("utf-8"))
        buffer = b""
        while not buffer.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                raise CtlError("ikecore closed the control connection without answering")
            buffer += chunk
    except socket.timeout:
        raise CtlError("ikecore did not answer within %d s" % timeout)
    finally:
        sock.close()
    return json.loads(buffer.decode("utf-8"))


def _duration(seconds):
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    hours, rest = divmod(seconds, 3600)
    return "%dh%02dm" % (hours, rest // 60)


def _table(headers, rows):
    widths = [max([len(h)] + [len(str(row[i])) for row in rows]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for row in rows:
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())
    return "\n".join(lines)


def format_status(status):
    """The status page as text: IKE Security associations, then Security associations."""
    out = ["IKE Security associations"]
    ike_rows = []
    for sa in status.get("ike_sas", []):
        state = "Activated" if sa.get("status") == "Activated" else \
            "%s(%s)" % (sa.get("status"), sa.get("state"))
        ike_rows.append([sa.get("id"), sa.get("peer"), sa.get("remote_gateway"), state,
                         "%s/%s" % (sa.get("mode"), sa.get("role")), sa.get("algorithm") or "-",
                         _duration(sa.get("elapsed_s")), _duration(sa.get("lifetime_s")),
                         sa.get("nat_t"), sa.get("phase2_negotiations")])
    if ike_rows:
        out.append(_table(["ID", "PEER", "REMOTE GATEWAY", "STATUS", "MODE", "ALGORITHM",
                           "ELAPSED", "LIFETIME", "NAT-T", "PHASE 2"], ike_rows))
        for sa in status.get("ike_sas", []):
            if sa.get("last_error"):
                out.append("  %s: %s" % (sa.get("id"), sa["last_error"]))
    else:
        out.append("(none)")
    out.append("")
    out.append("Security associations")
    rows = []
    for sa in status.get("sas", []):
        rows.append([sa.get("id"), sa.get("destination"), sa.get("direction"), sa.get("spi"),
                     sa.get("protocol"), sa.get("algorithm"),
                     "%s <-> %s" % (sa.get("local_net"), sa.get("remote_net")),
                     _duration(sa.get("elapsed_s")), _duration(sa.get("lifetime_s")),
                     sa.get("bytes"), sa.get("errored_packets")])
    if rows:
        out.append(_table(["ID", "DESTINATION", "DIRECTION", "SPI", "PROTOCOL", "ALGORITHM",
                           "NETWORKS", "ELAPSED", "LIFETIME", "BYTES", "ERRORS"], rows))
    else:
        out.append("(none)")
    return "\n".join(out)


def format_log(entries):
    lines = []
    for entry in entries:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.get("time", 0)))
        peer = "[%s] " % entry["peer"] if entry.get("peer") else ""
        lines.append("%s %-7s %s%s" % (stamp, entry.get("level"), peer, entry.get("text")))
    return "\n".join(lines)


def parse_args(argv):
    """--socket and --json may stand before or after the command word (DESIGN.md writes
    `ikectl status --json --socket S`). The copies on the subcommands default to SUPPRESS, so a
    subcommand only overrides what the main parser set when the option is really given there."""
    parser = argparse.ArgumentParser(prog="ikectl", description="control the ikecore daemon")
    parser.add_argument("--socket", default=DEFAULT_SOCKET, help="control socket path")
    parser.add_argument("--json", action="store_true", help="print the daemon's raw answer")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--socket", default=argparse.SUPPRESS, help="control socket path")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print the daemon's raw answer")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, help):
        return commands.add_parser(name, help=help, parents=[common])

    command("status", "IKE SAs and SAs")
    command("up", "bring a peer's connections up").add_argument("peer")
    command("down", "delete a peer's SAs").add_argument("peer")
    command("delete", "delete one IKE SA or SA").add_argument("sa_id")
    command("reload", "re-read the configuration file")
    command("log", "the newest VPN log lines").add_argument("-n", "--limit", type=int,
                                                            default=100)
    command("kernel", "what the kernel backend holds")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    message = {"status": {"cmd": "status"}, "reload": {"cmd": "reload"},
               "kernel": {"cmd": "kernel"}}.get(args.command)
    if args.command in ("up", "down"):
        message = {"cmd": args.command, "peer": args.peer}
    elif args.command == "delete":
        message = {"cmd": "delete", "id": args.sa_id}
    elif args.command == "log":
        message = {"cmd": "log", "limit": args.limit}
    try:
        reply = request(args.socket, message)
    except CtlError as exc:
        print("ikectl: %s" % exc, file=sys.stderr)
        return 1
    if not reply.get("ok"):
        print("ikectl: %s" % reply.get("error", "the daemon refused without a reason"),
              file=sys.stderr)
        return 1
    result = reply.get("result")
    if args.json or args.command == "kernel":
        print(json.dumps(result, indent=2, sort_keys=True))
    elif args.command == "status":
        print(format_status(result))
    elif args.command == "log":
        if result:
            print(format_log(result))
    elif args.command == "reload":
        print("reloaded: %d peers, %d connections" % (len(result.get("peers", [])),
                                                       len(result.get("connections", []))))
    elif args.command == "up":
        print("initiating %s" % ", ".join(result.get("initiated", [])))
    elif args.command == "down":
        print("%s going down" % result.get("down"))
    elif args.command == "delete":
        print("deleting %s" % result.get("deleted"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
