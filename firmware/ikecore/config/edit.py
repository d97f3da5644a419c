"""Editing the file for the web UI's settings pages with tomlkit, so a save keeps the user's
comments and layout, and writing it back atomically after validating it.

tomlkit is imported inside the functions: the daemon never edits the file and does not need it.
"""
import os
import stat

from ikecore.config.check import parse
from ikecore.config.errors import ConfigError, decode


def read_document(path):
    """The file's TOML document for the settings pages to edit: a tomlkit document (a dict that
    also holds the file's comments and layout, so write_document_atomic() keeps them); an empty
    one when the file is missing. Syntax errors are raised as parse() names them."""
    import tomlkit
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
    except FileNotFoundError:
        return tomlkit.document()
    except OSError as exc:
        raise ConfigError("cannot read configuration: %s" % exc.strerror, source=path) from None
    decode(text, path)
    return tomlkit.parse(text)


def set_entry(doc, section, index, values):
    """Put values (a plain dict) as entry `index` of the array of tables `section` ([[peer]],
    [[connection]]); index None appends. An existing entry is changed key by key, so comments
    and the keys' order stay where the user wrote them; a new one is written as DESIGN.md shows
    entries (sub-tables inline)."""
    import tomlkit
    if section not in doc:
        doc.add(tomlkit.nl())
        doc[section] = tomlkit.aot()
    entries = doc[section]
    if index is None:
        table = tomlkit.table()
        for key, value in values.items():
            table[key] = _inline(value)
        table.add(tomlkit.nl())          # a blank line before whatever follows
        entries.append(table)
        return
    table = entries[index]
    for key in [k for k in table if k not in values]:
        del table[key]
    for key, value in values.items():
        if table.get(key) != value:
            table[key] = _inline(value)


def delete_entry(doc, section, index):
    """Remove entry `index` of the array of tables `section` with the comment lines written right
    above it. tomlkit keeps the comment lines above a table inside the item before it: those
    below the deleted entry (above whatever follows it) move to the item before, so every comment
    left stays above what it was written for."""
    from tomlkit.items import Comment
    entries = doc[section]
    before = _body_before(doc, section, index)
    moving = [(k, v) for k, v in _after_last_key(entries[index].value.body) if isinstance(v, Comment)]
    del entries[index]
    if before is not None:
        while before and before[-1][0] is None and isinstance(before[-1][1], Comment):
            before.pop()                           # the deleted entry's own heading
        before.extend(moving)


def _body_before(doc, section, index):
    """The body (tomlkit's list of (key, item)) of the table written just before entry index, or
    None when something else is (the document's own top comments are left alone)."""
    from tomlkit.items import AoT, Table
    if index > 0:
        return doc[section][index - 1].value.body
    position = [key.key if key is not None else None for key, _ in doc.body].index(section)
    previous = doc.body[position - 1][1] if position > 0 else None
    if isinstance(previous, Table):
        return previous.value.body
    if isinstance(previous, AoT) and previous.body:
        return previous.body[-1].value.body
    return None


def _after_last_key(body):
    """The blank lines and comments after a table body's last key."""
    tail = []
    for key, item in reversed(body):
        if key is not None:
            break
        tail.insert(0, (key, item))
    return tail


def _inline(value):
    import tomlkit
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update(value)
        return table
    return value


def write_document_atomic(path, doc, warnings=None):
    """Validate doc, then replace the file at path with it (write tmp, fsync, rename, fsync dir).

    On any validation error raises ConfigError and leaves the file untouched. Keeps the old
    file's mode and owner (it may hold a psk); a new file is created 0600. A symlink is
    followed: the file it points to is replaced and the link stays.
    """
    import tomlkit
    try:
        text = tomlkit.dumps(doc)
    except (TypeError, ValueError) as exc:
        raise ConfigError("cannot be written as TOML: %s" % exc, source=path) from None
    source = path
    path = os.path.realpath(path)     # a symlinked config: replace the file it points to
    directory = os.path.dirname(path)
    result = parse(text, source=source, base_dir=directory, warnings=warnings)
    try:
        old = os.stat(path)
        mode, owner = stat.S_IMODE(old.st_mode), (old.st_uid, old.st_gid)
    except FileNotFoundError:
        mode, owner = 0o600, None
    tmp = os.path.join(directory, ".%s.tmp-%d" % (os.path.basename(path), os.getpid()))
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if owner is not None:
                try:
                    os.fchown(handle.fileno(), *owner)
                except PermissionError:
                    pass           # an unprivileged writer keeps its own ownership
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ConfigError("cannot write configuration: %s" % exc.strerror,
                          source=source) from None
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return result
