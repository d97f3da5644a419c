"""The System page's settings: NTP servers and the remote log server, in /etc/ikecore/system.conf.

The file is one KEY=value a line (NTP_SERVERS, SYSLOG_SERVER, SYSLOG_PORT, SYSLOG_PROTOCOL) beside
ikecore.toml on the data partition. The init scripts that apply it (rootfs-overlay/etc/init.d/
S11syslog, S45ntpd) run as root and read it as data, never as shell; this module is its only
writer and validator: `validate` names each bad field, `save` writes the whole file atomically
only when everything is valid (a refused save leaves the old file as it was), `apply` then asks
the root side (S47system's loop, through a FIFO) to restart what changed.
"""
import ipaddress
import os
import re
import tempfile

KEYS = {"ntp_servers": "NTP_SERVERS", "syslog_server": "SYSLOG_SERVER",
        "syslog_port": "SYSLOG_PORT", "syslog_protocol": "SYSLOG_PROTOCOL"}
DEFAULTS = {"ntp_servers": [], "syslog_server": "", "syslog_port": 514, "syslog_protocol": "udp"}
PROTOCOLS = ("udp", "tcp")
MAX_NTP_SERVERS = 8
LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
HEADER = """\
# System settings of this router, written by the web UI's System page (firmware/webui/
# system_settings.py). By hand: one KEY=value a line, then `echo apply > /run/ikecore/system-apply`
# (or reboot). Read, never run, by /etc/init.d/S11syslog and S45ntpd; docs/config.md says more.
"""


class SettingsError(Exception):
    """errors: {field: message} for every field that is wrong."""

    def __init__(self, errors):
        super().__init__("; ".join("%s: %s" % item for item in errors.items()))
        self.errors = errors


def host_problem(text):
    """Why text is not an IPv4/IPv6 address or a DNS name (RFC 1123 labels), or None."""
    try:
        ipaddress.ip_address(text)
        return None
    except ValueError:
        pass
    if len(text) > 253:
        return "%r is longer than a DNS name can be (253 characters)" % text[:40]
    labels = text.rstrip(".").split(".")
    if not all(LABEL.match(label) for label in labels):
        return ("%r is neither an IP address nor a host name (letters, digits and hyphens "
                "between dots)" % text)
    if labels[-1].isdigit():
        return "%r is not a valid IP address" % text
    return None


def validate(form):
    """The submitted form (a mapping of strings) -> settings; SettingsError naming each bad field."""
    errors, settings = {}, {}
    servers = (form.get("ntp_servers") or "").replace(",", " ").split()
    for server in servers:
        problem = host_problem(server)
        if problem:
            errors["ntp_servers"] = problem
            break
    else:
        if len(servers) > MAX_NTP_SERVERS:
            errors["ntp_servers"] = "at most %d servers, not %d" % (MAX_NTP_SERVERS, len(servers))
        elif len(set(s.lower() for s in servers)) != len(servers):
            errors["ntp_servers"] = "a server is listed twice"
    settings["ntp_servers"] = servers

    server = (form.get("syslog_server") or "").strip()
    problem = host_problem(server) if server else None
    if problem:
        errors["syslog_server"] = problem
    settings["syslog_server"] = server

    port = (form.get("syslog_port") or "").strip()
    if not port:
        settings["syslog_port"] = DEFAULTS["syslog_port"]
    elif not port.isdigit() or not 0 < int(port) < 65536:
        errors["syslog_port"] = "%r is not a port number (1-65535)" % port
    else:
        settings["syslog_port"] = int(port)

    protocol = (form.get("syslog_protocol") or "").strip().lower() or DEFAULTS["syslog_protocol"]
    if protocol not in PROTOCOLS:
        errors["syslog_protocol"] = "%r is not one of %s" % (protocol, ", ".join(PROTOCOLS))
    settings["syslog_protocol"] = protocol
    if errors:
        raise SettingsError(errors)
    return settings


def read(path):
    """The settings in the file (DEFAULTS for a missing file or key); a hand-edited bad value is
    kept as text, so the form shows it and a save names it."""
    try:
        with open(path, encoding="utf-8") as handle:
            return parse(handle.read())
    except FileNotFoundError:
        return dict(DEFAULTS)


def parse(text):
    """The settings in a file's text (a backup's system.conf too), as `read` gives them."""
    settings = dict(DEFAULTS)
    fields = {key: field for field, key in KEYS.items()}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in fields:
            field = fields[key.strip()]
            value = value.strip()
            if field == "ntp_servers":
                value = value.split()
            elif field == "syslog_port" and value.isdigit():
                value = int(value)
            settings[field] = value
    return settings


def checked(text):
    """A file's text -> validated settings, with the System page's own validator (a restored
    backup's system.conf); SettingsError naming each bad field."""
    return validate(form_values(parse(text)))


def form_values(settings):
    """Settings -> the form's text fields."""
    values = {field: str(settings.get(field, "")) for field in KEYS}
    values["ntp_servers"] = " ".join(settings.get("ntp_servers") or [])
    return values


def render(settings):
    """The file's text for validated settings."""
    lines = [HEADER.rstrip("\n")]
    for field, key in KEYS.items():
        value = settings[field]
        lines.append("%s=%s" % (key, " ".join(value) if isinstance(value, list) else value))
    return "\n".join(lines) + "\n"


def save(path, settings):
    """Write the file atomically (a new file beside it, fsync, rename): the init scripts never
    see half of it, and an error leaves the old one."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".system.conf.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(render(settings))
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o660)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def apply(fifo_path):
    """Ask the root side to apply the saved file; None, or why it could not be asked."""
    try:
        fd = os.open(fifo_path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        return "cannot reach the service that applies them (%s: %s)" % (fifo_path, exc.strerror)
    try:
        os.write(fd, b"apply\n")
    except OSError as exc:
        return "cannot reach the service that applies them (%s: %s)" % (fifo_path, exc.strerror)
    finally:
        os.close(fd)
    return None
