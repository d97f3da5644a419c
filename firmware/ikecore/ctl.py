"""ikectl: talk to the running daemon over its control socket.

  ikectl status [--json]     IKE SAs then SAs, like the status page
  ikectl status --summary    counts only (peers by status, IKE SAs by state, admission bounds)
  ikectl status --peer P | --offset N --limit M [--filter TEXT] [--state STATUS]
  ikectl watch               tunnel events as they happen (up, down, failed with the diagnosis)
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


def _connect(path, timeout):
    """A connected control socket, or CtlError naming why there is none."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        raise CtlError("ikecore is not running (no control socket at %s)" % path)
    except PermissionError:
        sock.close()
        raise CtlError("permission denied on %s (run as root or in the socket's group)" % path)
    return sock


def request(path, message, timeout=30.0):
    """Send one request, return the reply object; CtlError when the daemon cannot be reached."""
    sock = _connect(path, timeout)
    try:
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


def subscribe(path, timeout=None):
    """Yield the daemon's events (dicts, docs/architecture.md "subscribe") until it closes."""
    sock = _connect(path, timeout)
    try:
        sock.sendall(b'{"cmd": "subscribe"}\n')
        reader = sock.makefile("rb")
        reply = json.loads(reader.readline() or b"null")
        if not isinstance(reply, dict) or not reply.get("ok"):
            raise CtlError("the daemon refused the subscription: %r" % (reply,))
        for line in reader:
            yield json.loads(line)
    finally:
        sock.close()


def format_summary(summary):
    peers = summary.get("peers_by_status", {})
    states = summary.get("ike_sas_by_state", {})
    admission = summary.get("admission", {})
    lines = ["peers %d: %d activated, %d negotiating, %d idle" % (
        summary.get("peers", 0), peers.get("Activated", 0), peers.get("Negotiating", 0),
        peers.get("Idle", 0)),
        "IKE SAs %d (%s), SAs %d" % (summary.get("ike_sas", 0), ", ".join(
            "%s in state %s" % (states[k], k) for k in sorted(states, key=int)) or "none",
            summary.get("sas", 0))]
    if admission:
        refused = admission.get("refused", {})
        lines.append("half-open %d/%d, DH in flight %d/%d, initiating %d/%d (%d queued); "
                     "refused %d (per address %d, total %d, DH %d)" % (
                         admission.get("half_open", 0), admission.get("half_open_limit", 0),
                         admission.get("dh_in_flight", 0), admission.get("dh_in_flight_limit", 0),
                         admission.get("initiating", 0), admission.get("initiating_limit", 0),
                         admission.get("queued", 0), sum(refused.values()),
                         refused.get("address", 0), refused.get("total", 0), refused.get("dh", 0)))
    return "\n".join(lines)


def format_event(event):
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.get("time", 0)))
    rest = ", ".join("%s=%s" % (k, event[k]) for k in sorted(event)
                     if k not in ("event", "time", "peer"))
    return "%s %-11s %s %s" % (stamp, event.get("event"), event.get("peer"), rest)


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


def _gateway_text(sa):
    """The peer's current address and port, and what is configured when that is not the address
    itself: "203.0.113.9:40001 (%any)", "192.0.2.1:500 (hub.example.net)"."""
    text = sa.get("remote_address") or sa.get("remote_gateway")
    configured = sa.get("configured_gateway")
    if configured and configured != sa.get("remote_gateway"):
        text += " (%s)" % configured
    return text


def format_status(status):
    """The status page as text: IKE Security associations, then Security associations."""
    out = ["IKE Security associations"]
    ike_rows = []
    for sa in status.get("ike_sas", []):
        state = "Activated" if sa.get("status") == "Activated" else \
            "%s(%s)" % (sa.get("status"), sa.get("state"))
        ike_rows.append([sa.get("id"), sa.get("peer"), _gateway_text(sa), state,
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

    status = command("status", "IKE SAs and SAs")
    status.add_argument("--summary", action="store_true", help="counts only")
    status.add_argument("--peer", help="only this peer's SAs")
    status.add_argument("--offset", type=int, help="first peer of the page (0-based)")
    status.add_argument("--limit", type=int, help="peers in the page")
    status.add_argument("--filter", help="peers whose name or gateway contains this")
    status.add_argument("--state", choices=("Activated", "Negotiating", "Idle"),
                        help="peers in this status")
    command("watch", "tunnel events as they happen")
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
    if args.command == "watch":
        return _watch(args)
    if args.command == "status":
        if args.summary:
            message = {"cmd": "summary"}
        for key, value in (("peer", args.peer), ("offset", args.offset), ("limit", args.limit),
                           ("filter", args.filter), ("status", args.state)):
            if value is not None:
                message[key] = value
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
    elif args.command == "status" and args.summary:
        print(format_summary(result))
    elif args.command == "status":
        print(format_status(result))
        page = result.get("page")
        if page:
            print("\npeers %d-%d of %d matching (%d configured)" % (
                page["offset"] + 1, min(page["offset"] + page["limit"], page["matching"]),
                page["matching"], page["peers"]))
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


def _watch(args):
    try:
        for event in subscribe(args.socket):
            print(json.dumps(event, sort_keys=True) if args.json else format_event(event),
                  flush=True)
    except CtlError as exc:
        print("ikectl: %s" % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
