"""ConfigError, the key paths it names, and reading TOML text into one.

Every problem with the file -- TOML syntax, a bad value, a file it names, a failed write -- is a
ConfigError naming the key as a dotted path (`peer[1].proposals[2]`, 0-based like the file order)
and the line, so the daemon's log, `ikectl reload` and the settings pages show the same text.
"""
import re
import tomllib

DEFAULT_SOURCE = "ikecore.toml"


class ConfigError(Exception):
    """A bad configuration: .key (dotted path or None), .line (1-based or None), .message."""

    def __init__(self, message, key=None, line=None, source=DEFAULT_SOURCE):
        self.message = message
        self.key = key
        self.line = line
        self.source = source
        super().__init__(str(self))

    def __str__(self):
        where = self.source if self.line is None else "%s:%d" % (self.source, self.line)
        if self.key:
            return "%s: %s: %s" % (where, self.key, self.message)
        return "%s: %s" % (where, self.message)


def format_path(path):
    """("peer", 1, "proposals", 2) -> "peer[1].proposals[2]"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += "[%d]" % part
        else:
            text += ("." if text else "") + part
    return text


def decode(text, source):
    """TOML text -> plain dict; a syntax error keeps tomllib's line but drops its column, which
    the other messages never give either."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(match.group(1)) if match else None
        if line is None and "end of document" in message:
            line = text.count("\n") + 1
        message = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message)
        raise ConfigError("TOML syntax error: %s" % message, line=line, source=source) from None
