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
                     "refused %d (per address %d, total %d, DH %d), pushed out %d" % (
                         admission.get("half_open", 0), admission.get("half_open_limit", 0),
                         admission.get("dh_in_flight", 0), admission.get("dh_in_flight_limit", 0),
                         admission.get("initiating", 0), admission.get("initiating_limit", 0),
                         admission.get("queued", 0), sum(refused.values()),
                         refused.get("address", 0), refused.get("total", 0), refused.get("dh", 0),
                         admission.get("pushed_out", 0)))
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


# What each command takes: its positional argument (or None), and its options with their type
# (bool: a flag; int / str: a value; a tuple: one of these values).
COMMANDS = {
    "status": (None, {"--summary": bool, "--peer": str, "--offset": int, "--limit": int,
                      "--filter": str, "--state": ("Activated", "Negotiating", "Idle")}),
    "watch": (None, {}), "reload": (None, {}), "kernel": (None, {}),
    "up": ("peer", {}), "down": ("peer", {}), "delete": ("sa_id", {}),
    "log": (None, {"--limit": int}),
}
ALIASES = {"-n": "--limit"}
USAGE = "usage: ikectl [--socket PATH] [--json] COMMAND ... (ikectl --help)"


class UsageError(Exception):
    pass


class Args:
    """The parsed command line: socket, json, command, then the command's own names."""

    def __init__(self):
        self.socket, self.json, self.command = DEFAULT_SOCKET, False, None
        for name in ("summary", "peer", "offset", "limit", "filter", "state", "sa_id"):
            setattr(self, name, None)
        self.summary = False


def parse_args(argv):
    """The command line, parsed here rather than by argparse: argparse and what it imports
    (gettext, shutil, locale) were ~11 ms of a ~35 ms `ikectl status --summary`. --socket and
    --json may stand before or after the command word (DESIGN.md writes `ikectl status --json
    --socket S`); `--name=value` works as `--name value`. UsageError names what is wrong."""
    args = Args()
    options = {}
    words = list(argv)
    while words:
        word = words.pop(0)
        name, eq, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        name = ALIASES.get(name, name)
        if name in ("-h", "--help"):
            print(__doc__.strip())
            raise SystemExit(0)
        if name == "--json" and not eq:
            args.json = True
            continue
        kinds = options if args.command else {}
        kind = str if name == "--socket" else kinds.get(name)
        if kind is bool and not eq:
            setattr(args, name[2:], True)
        elif kind is not None:
            if not eq and not words:
                raise UsageError("%s needs a value" % name)
            value = inline if eq else words.pop(0)
            if kind is int:
                try:
                    value = int(value)
                except ValueError:
                    raise UsageError("%s takes a number, not %r" % (name, value))
            elif isinstance(kind, tuple) and value not in kind:
                raise UsageError("%s must be one of %s, not %r" % (name, ", ".join(kind), value))
            setattr(args, name[2:], value)
        elif word.startswith("-"):
            raise UsageError("unknown option %s%s" % (
                word, " for %s" % args.command if args.command else ""))
        elif args.command is None:
            if word not in COMMANDS:
                raise UsageError("unknown command %r (one of %s)" % (word, ", ".join(COMMANDS)))
            args.command = word
            positional, options = COMMANDS[word]
            if positional:
                if not words or words[0].startswith("-"):
                    raise UsageError("%s needs a %s" % (word, positional.replace("_", " ")))
                setattr(args, positional, words.pop(0))
        else:
            raise UsageError("unexpected argument %r" % word)
    if args.command is None:
        raise UsageError("no command given (one of %s)" % ", ".join(COMMANDS))
    if args.command == "log" and args.limit is None:
        args.limit = 100
    return args


def main(argv=None):
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as exc:
        print("%s\nikectl: error: %s" % (USAGE, exc), file=sys.stderr)
        return 2
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
