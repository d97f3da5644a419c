"""docs/config.md's key tables, written from schema.py so the reference states the limits and
defaults the checker applies.

    PYTHONPATH=firmware python3 -m ikecore.config.doc [--check] [docs/config.md]

rewrites each marked block of the file (BEGIN ... END, one per section) and leaves the prose
around it as written; --check only says whether the file is up to date (exit status 1 if not).
tests/unit/test_config_doc.py fails when the committed file differs from what this writes.
"""
import argparse
import json
import os
import re
import string
import sys

from ikecore.config import schema

COMMAND = "PYTHONPATH=firmware python3 -m ikecore.config.doc"
BEGIN = "<!-- BEGIN %s table: generated from firmware/ikecore/config/schema.py by `%s` -->"
END = "<!-- END %s table -->"
DEFAULT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "docs",
                            "config.md")

# The words for a kind's values (Key.doc_type where a key says more).
TYPES = {"integer": "integer", "boolean": "boolean", "identity": "inline table",
         "table": "inline table", "files": "list of strings", "ike_proposals": "list of strings",
         "child_proposals": "list of strings", "networks": "string or list of strings"}
LISTS = ("files", "ike_proposals", "child_proposals", "networks")   # low/high: a length


def range_text(key):
    if key.low is None:
        return ""
    if key.kind in LISTS:
        return "%d–%d" % (key.low, key.high)
    if key.high is None:
        return "≥ %d" % key.low
    return "%d – %d" % (key.low, key.high)


def toml_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, list)):
        return json.dumps(value)      # a string or a list of strings: TOML spells them alike
    return str(value)


def default_text(key):
    if key.required:
        return "**required**"
    if key.doc_default is not None:
        return key.doc_default
    if key.default is None:
        return "—"
    if key.kind == "table":
        return "`{ %s }`" % ", ".join("%s = %s" % (sub.name, toml_text(sub.default))
                                     for sub in key.keys)
    return "`%s`" % toml_text(key.default)


def meaning_text(key):
    fields = {"range": range_text(key), "max": key.high,
              "choices": " \\| ".join("`%s`" % c for c in key.choices or ())}
    for sub in key.keys or ():
        fields[sub.name + "_range"] = range_text(sub)
    return string.Template(key.meaning).substitute(fields)


def table(section):
    rows = ["| key | type | default | allowed / meaning |", "|---|---|---|---|"]
    for key in section:
        rows.append("| `%s` | %s | %s | %s |" % (key.name, key.doc_type or TYPES.get(key.kind,
                                                                                    "string"),
                                                 default_text(key), meaning_text(key)))
    return "\n".join(rows)


def render(text):
    """text with each section's marked block rewritten; ValueError when a marker is missing."""
    for name, section in schema.SECTIONS.items():
        begin, end = BEGIN % (name, COMMAND), END % name
        pattern = re.compile(r"^%s$.*?^%s$" % (re.escape(begin), re.escape(end)),
                             re.M | re.S)
        if not pattern.search(text):
            raise ValueError("no block %r ... %r" % (begin, end))
        # blank lines around the table: a markdown table would take the comment as its row
        text = pattern.sub(lambda _: "%s\n\n%s\n\n%s" % (begin, table(section), end), text)
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m ikecore.config.doc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check, do not write")
    parser.add_argument("path", nargs="?", default=os.path.normpath(DEFAULT_PATH))
    args = parser.parse_args(argv)
    with open(args.path, encoding="utf-8") as handle:
        text = handle.read()
    new = render(text)
    if new == text:
        print("%s: up to date" % args.path)
        return 0
    if args.check:
        print("%s: out of date; run %s" % (args.path, COMMAND))
        return 1
    with open(args.path, "w", encoding="utf-8") as handle:
        handle.write(new)
    print("%s: key tables rewritten" % args.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
