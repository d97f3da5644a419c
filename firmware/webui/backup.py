"""Settings backup and restore: one .tar.gz with the configuration and the certificates.

Format (version 1), documented in firmware/webui/README.md:
    manifest.json   {"format": "ikecore-settings-backup", "version": 1, "firmware": "ikecore",
                     "created": ISO 8601 UTC, "config": "ikecore.toml",
                     "private_keys": true|false, "omitted_private_keys": [paths],
                     "files": [{"path", "size", "sha256", "mode", "private_key"}],
                     "system_config": "system.conf" when the backup holds it}
    ikecore.toml    the configuration file, byte for byte
    system.conf     the System page's settings (NTP servers, remote syslog; webui.system_settings),
                    when the router has the file; restored through that page's validator and
                    applied as a save there is, never by renaming it into place
    certs/...       the certificate store (webui.certstore); *.key only with private_keys
    other files     the psk_file/cert/key/ca files peers name by a path inside the config
                    directory
Paths are relative to the config file's directory. `read` refuses anything that is not exactly
that: a damaged, truncated or foreign file, a member the manifest does not list or whose
checksum differs, a path leaving the directory. Restoring is three steps so the page can show
what changes before anything does: `stage` (unpack beside the live files and validate the
configuration with ikecore.config, the settings pages' validator, against the unpacked files),
`summarize`, then `swap` (rename the files into place, journalled; `undo` puts the old ones back
when the daemon refuses the reload). A backup's system.conf is validated in `stage` (a bad one
refuses the whole restore) and written by the caller once the daemon took the rest
(`Swap.system_settings`).
"""
import datetime
import difflib
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import tarfile
import tomllib
import zlib

FORMAT = "ikecore-settings-backup"
VERSION = 1
FIRMWARE = "ikecore"
MANIFEST = "manifest.json"
SYSTEM_CONF = "system.conf"      # the member holding the System page's settings
MAX_FILES = 500
MAX_UNPACKED = 16 * 1024 * 1024
STAGING_PREFIX = ".restore-"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
SECRET_LINE = re.compile(r"""(\bpsk\s*=\s*)("(?:[^"\\]|\\.)*"|'[^']*')""")


class BackupError(Exception):
    """The backup cannot be made or restored; the message names the problem."""


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


def _safe_relative(path):
    """A member path that stays inside the directory, or None."""
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        return None
    parts = path.split("/")
    if any(part in ("", ".", "..") or part.startswith(STAGING_PREFIX) for part in parts):
        return None
    return path


def _read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


# ---------------------------------------------------------------------------------------------
# What belongs to the settings

def managed_files(config_dir, config_name):
    """{relative path: is a private key} of the live settings: the config, the certificate
    store, and the files peers name by relative paths inside the config directory."""
    from webui import certstore
    files = {config_name: False}
    store = os.path.join(config_dir, certstore.STORE_DIR)
    for root, dirs, names in os.walk(store):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            full = os.path.join(root, name)
            if not name.startswith(".") and os.path.isfile(full) and not os.path.islink(full):
                relative = os.path.relpath(full, config_dir).replace(os.sep, "/")
                files[relative] = name.endswith(".key")
    try:
        doc = tomllib.loads(_read_bytes(os.path.join(config_dir, config_name)).decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        doc = {}
    for peer in doc.get("peer", []) if isinstance(doc.get("peer"), list) else []:
        for key in ("psk_file",) + certstore.FILE_KEYS:
            value = peer.get(key) if isinstance(peer, dict) else None
            for item in value if isinstance(value, list) else [value]:   # ca lists, crls
                if not isinstance(item, str) or os.path.isabs(item):
                    continue
                relative = os.path.normpath(item).replace(os.sep, "/")
                if _safe_relative(relative) and os.path.isfile(os.path.join(config_dir,
                                                                            relative)):
                    files[relative] = files.get(relative, False) or key == "key"
    return files


# ---------------------------------------------------------------------------------------------
# Making one

def create(config_path, include_keys, now=None, system_config=None):
    """The backup of the settings beside config_path, and of the System page's file
    system_config when it exists, as bytes (tar.gz)."""
    config_dir, config_name = os.path.split(os.path.realpath(config_path))
    now = now or datetime.datetime.now(datetime.timezone.utc)
    listed, omitted, contents = [], [], {}
    for relative, is_key in sorted(managed_files(config_dir, config_name).items()):
        if is_key and not include_keys:
            omitted.append(relative)
            continue
        try:
            data = _read_bytes(os.path.join(config_dir, relative))
        except OSError as exc:
            raise BackupError("cannot read %s: %s" % (relative, exc.strerror)) from None
        contents[relative] = data
        mode = os.stat(os.path.join(config_dir, relative)).st_mode & 0o777
        listed.append({"path": relative, "size": len(data), "sha256": _sha256(data),
                       "mode": "%04o" % mode, "private_key": is_key})
    manifest = {"format": FORMAT, "version": VERSION, "firmware": FIRMWARE,
                "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "config": config_name,
                "private_keys": bool(include_keys), "omitted_private_keys": omitted,
                "files": listed}
    system = _system_bytes(system_config)
    if system is not None and SYSTEM_CONF not in contents:
        contents[SYSTEM_CONF] = system
        listed.append({"path": SYSTEM_CONF, "size": len(system), "sha256": _sha256(system),
                       "mode": "0660", "private_key": False})
        manifest["system_config"] = SYSTEM_CONF
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, MANIFEST, json.dumps(manifest, indent=2).encode() + b"\n", 0o644, now)
        for entry in listed:
            _add(tar, entry["path"], contents[entry["path"]], int(entry["mode"], 8), now)
    return out.getvalue()


def _system_bytes(system_config):
    """The System page's file, or None when there is none (a host, a router without it)."""
    if not system_config:
        return None
    try:
        return _read_bytes(system_config)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BackupError("cannot read %s: %s" % (system_config, exc.strerror)) from None


def _add(tar, name, data, mode, now):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, int(now.timestamp())
    tar.addfile(info, io.BytesIO(data))


def filename(hostname, include_keys, now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    safe = re.sub(r"[^A-Za-z0-9.-]", "_", hostname or "router")
    return "ikecore-settings-%s-%s%s.tar.gz" % (safe, now.strftime("%Y%m%d-%H%M%S"),
                                               "-with-private-keys" if include_keys else "")


# ---------------------------------------------------------------------------------------------
# Reading one

def read(data):
    """Bytes of an uploaded backup -> (manifest, {path: bytes}); BackupError unless it is a
    complete, undamaged ikecore backup this firmware can restore."""
    if not data:
        raise BackupError("the file is empty")
    if data[:2] != b"\x1f\x8b":
        raise BackupError("the file is not a .tar.gz archive: not an ikecore settings backup")
    members = {}
    raw = _gunzip(data)
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
            for info in tar:
                if len(members) >= MAX_FILES:
                    raise BackupError("the archive holds more than %d files" % MAX_FILES)
                name = _safe_relative(info.name)
                if name is None:
                    raise BackupError("the archive holds %r, a path outside the settings "
                                      "directory" % info.name)
                if not info.isfile():
                    raise BackupError("the archive holds %r, which is not a regular file"
                                      % info.name)
                if name in members:
                    raise BackupError("the archive holds %r twice" % name)
                members[name] = tar.extractfile(info).read()
    except BackupError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise BackupError("the archive is truncated or damaged (%s)" % (
            str(exc) or type(exc).__name__)) from None
    manifest = _manifest(members)
    files = {}
    listed = set()
    for entry in manifest["files"]:
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or _safe_relative(path) is None or path == MANIFEST:
            raise BackupError("the manifest lists a bad path %r" % (path,))
        if path not in members:
            raise BackupError("%s is listed in the manifest but missing from the archive "
                              "(truncated?)" % path)
        data = members[path]
        if len(data) != entry.get("size") or _sha256(data) != entry.get("sha256"):
            raise BackupError("%s is damaged: its size or SHA-256 checksum differs from the "
                              "manifest" % path)
        if entry.get("private_key") and not manifest["private_keys"]:
            raise BackupError("%s is a private key, but the manifest says the backup has none"
                              % path)
        files[path] = data
        listed.add(path)
    extra = sorted(set(members) - listed - {MANIFEST})
    if extra:
        raise BackupError("%s is in the archive but not in the manifest" % extra[0])
    if manifest["config"] not in files:
        raise BackupError("the backup holds no configuration file %s" % manifest["config"])
    if manifest.get("system_config", SYSTEM_CONF) != SYSTEM_CONF or (
            "system_config" in manifest and SYSTEM_CONF not in files):
        raise BackupError("the manifest names a system settings file %r the backup does not "
                          "hold" % (manifest.get("system_config"),))
    return manifest, files


def _gunzip(data):
    """The whole gzip stream, its CRC and length checked (tarfile alone stops reading at the
    archive's end marker and never sees a damaged or missing tail), at most MAX_UNPACKED."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        raw = inflater.decompress(data, MAX_UNPACKED + 1)
    except zlib.error as exc:
        raise BackupError("the archive is truncated or damaged (%s)" % exc) from None
    if len(raw) > MAX_UNPACKED:
        raise BackupError("the archive unpacks to more than %d MiB" % (MAX_UNPACKED // 2 ** 20))
    if not inflater.eof:
        raise BackupError("the archive is truncated or damaged (the compressed data ends "
                          "early)")
    if inflater.unused_data.strip(b"\0"):
        raise BackupError("the archive is damaged (data after its end)")
    return raw


def _manifest(members):
    if MANIFEST not in members:
        raise BackupError("the archive has no %s: not an ikecore settings backup" % MANIFEST)
    try:
        manifest = json.loads(members[MANIFEST])
    except ValueError:
        raise BackupError("%s is not valid JSON" % MANIFEST) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("not an ikecore settings backup (its manifest's format is %r)"
                          % (manifest.get("format") if isinstance(manifest, dict) else None))
    if manifest.get("firmware") != FIRMWARE:
        raise BackupError("the backup was made by another firmware (%r), not %s"
                          % (manifest.get("firmware"), FIRMWARE))
    version = manifest.get("version")
    if type(version) is not int or version < 1:
        raise BackupError("the manifest has no valid format version")
    if version > VERSION:
        raise BackupError("the backup was made by a newer firmware (backup format %d; this "
                          "one reads format %d)" % (version, VERSION))
    if not isinstance(manifest.get("files"), list) or not isinstance(
            manifest.get("private_keys"), bool) or not isinstance(
            manifest.get("omitted_private_keys", []), list):
        raise BackupError("the manifest is incomplete (files / private_keys)")
    config = manifest.get("config")
    if not isinstance(config, str) or "/" in config or _safe_relative(config) is None:
        raise BackupError("the manifest names a bad configuration file %r" % (config,))
    return manifest


# ---------------------------------------------------------------------------------------------
# Restoring one

def _fingerprint(config_dir, config_name, system_config=None):
    """Changes whenever a managed live file does, or the System page's (a save in between must
    not be overwritten by a summary the user confirmed before it)."""
    digest = hashlib.sha256()
    system = _system_bytes(system_config)
    digest.update(b"-" if system is None else _sha256(system).encode())
    for relative in sorted(managed_files(config_dir, config_name)):
        digest.update(relative.encode() + b"\0")
        try:
            digest.update(_sha256(_read_bytes(os.path.join(config_dir, relative))).encode())
        except OSError:
            digest.update(b"-")
    return digest.hexdigest()


def stage(config_path, manifest, files, system_config=None):
    """Unpack beside the live settings and validate; -> token. BackupError (nothing left
    behind) when ikecore.config refuses the configuration with the backup's files, or the System
    page's validator the backup's system.conf."""
    from ikecore import config

    from webui import system_settings
    config_dir, config_name = os.path.split(os.path.realpath(config_path))
    discard_all(config_path)                     # one restore waits for confirmation at a time
    system = None
    if manifest.get("system_config"):
        try:
            system = system_settings.checked(files[SYSTEM_CONF].decode("utf-8"))
        except UnicodeDecodeError:
            raise BackupError("the backup's system settings (%s) are not UTF-8 text"
                              % SYSTEM_CONF) from None
        except system_settings.SettingsError as exc:
            raise BackupError("the backup's system settings (%s) are refused: %s"
                              % (SYSTEM_CONF, exc)) from None
    token = secrets.token_urlsafe(18)
    root = os.path.join(config_dir, STAGING_PREFIX + token)
    new = os.path.join(root, "new")
    try:
        os.makedirs(new, mode=0o700)
        wanted = dict(files)
        if manifest.get("system_config"):
            del wanted[SYSTEM_CONF]          # never renamed into place: saved and applied
        wanted[config_name] = files[manifest["config"]]
        if manifest["config"] != config_name:
            del wanted[manifest["config"]]
        for relative in manifest.get("omitted_private_keys", []):
            # a backup without keys keeps this router's keys at the same paths
            live = os.path.join(config_dir, relative)
            if isinstance(relative, str) and _safe_relative(relative) and os.path.isfile(live):
                wanted.setdefault(relative, _read_bytes(live))
        modes = {e["path"]: e.get("mode") for e in manifest["files"]}
        modes[config_name] = modes.get(manifest["config"])
        for relative, data in wanted.items():
            _write(os.path.join(new, relative), data,
                   _mode(config_dir, config_name, relative, modes.get(relative)))
        text = wanted[config_name].decode("utf-8")
        config.parse(text, source="%s (in the backup)" % manifest["config"], base_dir=new)
        with open(os.path.join(root, "state.json"), "w") as handle:
            json.dump({"fingerprint": _fingerprint(config_dir, config_name, system_config),
                       "created": manifest.get("created"),
                       "private_keys": manifest["private_keys"], "system": system}, handle)
    except UnicodeDecodeError:
        shutil.rmtree(root, ignore_errors=True)
        raise BackupError("the backup's configuration is not UTF-8 text") from None
    except config.ConfigError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise BackupError("the backup's configuration is refused: %s" % exc) from None
    except OSError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise BackupError("cannot unpack the backup: %s" % exc) from None
    return token


def _mode(config_dir, config_name, relative, recorded):
    """The live file's mode (the config's is set by the image, a key kept is the router's),
    else the one the backup recorded, never more than rw-rw-r--; 0600 when neither says."""
    try:
        return os.stat(os.path.join(config_dir, relative)).st_mode & 0o777
    except FileNotFoundError:
        pass
    if isinstance(recorded, str) and re.match(r"^0?[0-7]{3}$", recorded):
        return int(recorded, 8) & 0o664
    return 0o600


def _write(path, data, mode):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _staging(config_path, token):
    if not TOKEN.match(token or ""):
        raise BackupError("no such restore waiting for confirmation")
    root = os.path.join(os.path.dirname(os.path.realpath(config_path)), STAGING_PREFIX + token)
    if not os.path.isdir(os.path.join(root, "new")):
        raise BackupError("no such restore waiting for confirmation (it was applied, "
                          "cancelled or replaced by another upload)")
    return root


def _new_files(root):
    new = os.path.join(root, "new")
    found = {}
    for directory, _dirs, names in os.walk(new):
        for name in names:
            full = os.path.join(directory, name)
            found[os.path.relpath(full, new).replace(os.sep, "/")] = full
    return found


def summarize(config_path, token, system_config=None):
    """What confirming would change: {"files": [(path, "added"|"changed"|"removed")],
    "entries": [text], "diff": masked unified diff of the config, "created", "private_keys"};
    the System page's settings the backup changes are entries too ("system NTP servers: ...")."""
    config_dir, config_name = os.path.split(os.path.realpath(config_path))
    root = _staging(config_path, token)
    with open(os.path.join(root, "state.json")) as handle:
        state = json.load(handle)
    new = _new_files(root)
    old = managed_files(config_dir, config_name)
    files = []
    for relative in sorted(set(old) | set(new)):
        live = os.path.join(config_dir, relative)
        if relative not in new:
            files.append((relative, "removed"))
        elif not os.path.exists(live):
            files.append((relative, "added"))
        elif _read_bytes(live) != _read_bytes(new[relative]):
            files.append((relative, "changed"))
    old_text = _text(os.path.join(config_dir, config_name))
    new_text = _text(new[config_name])
    diff = "".join(difflib.unified_diff(
        _masked(old_text), _masked(new_text), "%s (now)" % config_name,
        "%s (backup)" % config_name))
    entries = _entry_changes(old_text, new_text)
    if state.get("system") is not None:
        entries += _system_changes(system_config, state["system"])
    return {"files": files, "entries": entries, "diff": diff,
            "created": state.get("created"), "private_keys": state.get("private_keys")}


def _system_changes(system_config, restored):
    from webui import system_settings
    live = system_settings.read(system_config) if system_config else system_settings.DEFAULTS
    names = {"ntp_servers": "NTP servers", "syslog_server": "log server",
             "syslog_port": "log server port", "syslog_protocol": "log server protocol"}
    changes = []
    for field, name in names.items():
        before, after = live.get(field), restored.get(field)
        if before != after:
            show = (lambda v: " ".join(v) or "(none)") if field == "ntp_servers" else (
                lambda v: str(v) if v not in ("", None) else "(none)")
            changes.append("system %s: %s -> %s" % (name, show(before), show(after)))
    return changes


def _text(path):
    try:
        return _read_bytes(path).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _masked(text):
    """Lines with every psk value hidden: the page never shows a pre-shared key."""
    return [SECRET_LINE.sub(r'\1"(hidden)"', line) for line in text.splitlines(True)]


def _entry_changes(old_text, new_text):
    """Plain-language changes per [general] key, peer and connection."""
    def load(text):
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return {}
    old, new = load(old_text), load(new_text)
    changes = []
    for key in sorted(set(old.get("general", {})) | set(new.get("general", {}))):
        a, b = old.get("general", {}).get(key), new.get("general", {}).get(key)
        if a != b:
            changes.append("general %s: %s -> %s" % (key, a, b))
    for section, what in (("peer", "peer"), ("connection", "connection")):
        before = {e.get("name"): e for e in old.get(section, []) if isinstance(e, dict)}
        after = {e.get("name"): e for e in new.get(section, []) if isinstance(e, dict)}
        for name in sorted(set(before) - set(after), key=str):
            changes.append("%s %s is removed" % (what, name))
        for name in sorted(set(after) - set(before), key=str):
            changes.append("%s %s is added" % (what, name))
        for name in sorted(set(before) & set(after), key=str):
            keys = sorted(k for k in set(before[name]) | set(after[name])
                          if before[name].get(k) != after[name].get(k))
            if keys:
                shown = sorted({"pre-shared key" if k in ("psk", "psk_file") else k
                                for k in keys})
                changes.append("%s %s: %s changed" % (what, name, ", ".join(shown)))
    return changes


def discard(config_path, token):
    shutil.rmtree(_staging(config_path, token), ignore_errors=True)


def discard_all(config_path):
    config_dir = os.path.dirname(os.path.realpath(config_path))
    for name in os.listdir(config_dir):
        if name.startswith(STAGING_PREFIX):
            shutil.rmtree(os.path.join(config_dir, name), ignore_errors=True)


class Swap:
    """The staged files renamed into place; undo() renames the old ones back, commit() forgets
    them. Every rename stays inside the config directory's filesystem."""

    def __init__(self, config_dir, root, system_settings=None):
        self.config_dir = config_dir
        self.root = root
        self.journal = []          # (live path, where the old file went or None, new or None)
        # the backup's System page settings, validated, for the caller to save and apply once
        # the daemon accepted the rest (None: the backup has none, the router's stay)
        self.system_settings = system_settings

    def run(self, old_paths, new_files):
        trash = os.path.join(self.root, "old")
        for relative in sorted(set(old_paths) | set(new_files)):
            live = os.path.join(self.config_dir, relative)
            kept = None
            if os.path.lexists(live):
                kept = os.path.join(trash, relative)
                os.makedirs(os.path.dirname(kept), exist_ok=True)
                os.rename(live, kept)
            self.journal.append((live, kept, None))
            if relative in new_files:
                os.makedirs(os.path.dirname(live), exist_ok=True)
                os.rename(new_files[relative], live)
                self.journal[-1] = (live, kept, new_files[relative])
        _fsync_dirs({os.path.dirname(live) for live, _, _ in self.journal})

    def undo(self):
        for live, kept, staged in reversed(self.journal):
            if staged is not None:
                os.rename(live, staged)
            if kept is not None:
                os.rename(kept, live)
        _fsync_dirs({os.path.dirname(live) for live, _, _ in self.journal})
        self.journal = []
        shutil.rmtree(self.root, ignore_errors=True)

    def commit(self):
        self.journal = []
        shutil.rmtree(self.root, ignore_errors=True)


def _fsync_dirs(directories):
    for directory in directories:
        try:
            fd = os.open(directory, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def swap(config_path, token, system_config=None):
    """Put the staged settings in place -> Swap (undo() if the daemon refuses them). A failure
    half-way puts everything back before BackupError is raised."""
    config_dir, config_name = os.path.split(os.path.realpath(config_path))
    root = _staging(config_path, token)
    with open(os.path.join(root, "state.json")) as handle:
        state = json.load(handle)
    if state.get("fingerprint") != _fingerprint(config_dir, config_name, system_config):
        shutil.rmtree(root, ignore_errors=True)
        raise BackupError("the settings changed since this backup was checked; upload it "
                          "again to see what it changes now")
    result = Swap(config_dir, root, state.get("system"))
    try:
        result.run(managed_files(config_dir, config_name), _new_files(root))
    except OSError as exc:
        result.undo()
        raise BackupError("cannot put the restored files in place (%s); the old settings "
                          "are back" % exc) from None
    return result
