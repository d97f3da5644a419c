"""The configuration file, /etc/ikecore/ikecore.toml: its validation (the ONLY validator, for the
daemon and the web UI alike) and its editing by the settings pages. CPython only (stdlib tomllib
and ipaddress; cryptography for certificate files; tomlkit to edit).

One module per job: schema.py, the tables of keys (kind, limits, default, meaning) that the
checker, the web UI's forms and docs/config.md read; check.py, validation by those tables into
ikecore.protocol.settings objects, with the rules between keys in rules.py and the files a peer names in
files.py; lines.py, the scan that puts a line number on each message; edit.py, tomlkit editing
and the atomic write; doc.py, `python3 -m ikecore.config.doc`, which writes docs/config.md's key
tables. errors.py holds ConfigError. The names below are what the rest of the firmware uses.
"""
from ikecore.config.check import load, parse
from ikecore.config.edit import delete_entry, read_document, set_entry, write_document_atomic
from ikecore.config.errors import DEFAULT_SOURCE, ConfigError, format_path
from ikecore.config.files import load_crl, resolve
from ikecore.config.lines import _LineIndex
from ikecore.config.schema import (ANY_GATEWAY_SPELLINGS, DEFAULT_CHILD_PROPOSALS,
                                   DEFAULT_IKE_PROPOSALS, FQDN_PATTERN, IFNAME_PATTERN,
                                   MAX_NETWORKS, NAME_PATTERN)

__all__ = ["ANY_GATEWAY_SPELLINGS", "DEFAULT_CHILD_PROPOSALS", "DEFAULT_IKE_PROPOSALS",
           "DEFAULT_SOURCE", "FQDN_PATTERN", "IFNAME_PATTERN", "MAX_NETWORKS", "NAME_PATTERN",
           "ConfigError", "_LineIndex", "delete_entry", "format_path", "load", "load_crl",
           "parse", "read_document", "resolve", "set_entry", "write_document_atomic"]
