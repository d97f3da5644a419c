"""Where each key is written: a position-only scan of a document tomllib has already accepted.

tomllib gives no positions, so an error or a warning that must name its line re-scans the source
text here to map each key path (tuples of names and array indexes) to the line it starts on. The
scan only runs when a message needs a line (check.Checker.index).
"""


class _LineIndex:
    """Maps key paths (tuples of names and array indexes) to the 1-based line they start on."""

    def __init__(self, text):
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines = {}
        self.array_tables = {}     # resolved path of a [[table]] -> index of its latest entry
        try:
            self._scan_document()
        except (IndexError, ValueError):
            pass                   # positions are a courtesy: a scan surprise must not hide the error

    def line_of(self, path):
        """The line of path, else of its nearest enclosing key that was written down."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None

    # --- low-level reading
    def _peek(self, n=1):
        return self.text[self.pos:self.pos + n]

    def _advance(self, n=1):
        chunk = self.text[self.pos:self.pos + n]
        self.line += chunk.count("\n")
        self.pos += n

    def _skip_blank(self, newlines):
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch in " \t\r" or (newlines and ch == "\n"):
                self._advance()
            elif ch == "#":
                while self.pos < len(self.text) and self.text[self.pos] != "\n":
                    self._advance()
            else:
                return

    def _record(self, path):
        self.lines.setdefault(tuple(path), self.line)

    # --- grammar (only what positions need)
    def _scan_document(self):
        current = ()
        while True:
            self._skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return
            if self._peek(2) == "[[":
                self._advance(2)
                keys = self._read_key("]")
                self._advance(2)
                base = self._resolve(keys[:-1]) + (keys[-1],)
                index = self.array_tables.get(base, -1) + 1
                self.array_tables[base] = index
                self._record(base)
                current = base + (index,)
                self._record(current)
            elif self._peek() == "[":
                self._advance()
                keys = self._read_key("]")
                self._advance()
                current = self._resolve(keys)
                self._record(current)
            else:
                keys = self._read_key("=")
                path = current + tuple(keys)
                self._record(path)
                self._advance()              # "="
                self._scan_value(path)

    def _resolve(self, keys):
        """Dotted header keys -> path with the current index of each array of tables inserted."""
        path = ()
        for key in keys:
            path += (key,)
            if path in self.array_tables:
                path += (self.array_tables[path],)
        return path

    def _read_key(self, terminator):
        keys = []
        while True:
            self._skip_blank(newlines=False)
            ch = self._peek()
            if ch in ("\"", "'"):
                keys.append(self._read_string_token())
            else:
                start = self.pos
                while self._peek() and self._peek() not in " \t.=]\"'" and self._peek() != "\n":
                    self._advance()
                keys.append(self.text[start:self.pos])
            self._skip_blank(newlines=False)
            if self._peek() == ".":
                self._advance()
                continue
            if self._peek() != terminator:
                raise ValueError("unexpected key syntax")
            return keys

    def _read_string_token(self):
        """A quoted key; escapes are kept raw (good enough to name a key)."""
        quote = self._peek()
        self._advance()
        start = self.pos
        while self._peek() != quote:
            if quote == "\"" and self._peek() == "\\":
                self._advance()
            self._advance()
            if self.pos >= len(self.text):
                raise ValueError("unterminated string")
        value = self.text[start:self.pos]
        self._advance()
        return value

    def _scan_value(self, path):
        self._skip_blank(newlines=False)
        head = self._peek(3)
        if head in ("\"\"\"", "'''"):
            self._advance(3)
            while self._peek(3) != head:
                if head[0] == "\"" and self._peek() == "\\":
                    self._advance()
                self._advance()
                if self.pos >= len(self.text):
                    raise ValueError("unterminated string")
            self._advance(3)
            while self._peek() == head[0]:   # up to two quotes may close the content
                self._advance()
        elif head[:1] in ("\"", "'"):
            self._read_string_token()
        elif head[:1] == "[":
            self._advance()
            index = 0
            while True:
                self._skip_blank(newlines=True)
                if self._peek() == "]":
                    self._advance()
                    return
                self._record(path + (index,))
                self._scan_value(path + (index,))
                self._skip_blank(newlines=True)
                if self._peek() == ",":
                    self._advance()
                index += 1
        elif head[:1] == "{":
            self._advance()
            while True:
                self._skip_blank(newlines=False)
                if self._peek() == "}":
                    self._advance()
                    return
                if self._peek() == ",":
                    self._advance()
                    continue
                keys = self._read_key("=")
                self._record(path + tuple(keys))
                self._advance()
                self._scan_value(path + tuple(keys))
        else:
            while self._peek() and self._peek() not in ",]}#\n":
                self._advance()
