"""docs/config.md's key tables are the ones ikecore/config/schema.py makes: the reference states
the limits and defaults the checker applies."""
import os

from ikecore.config import doc, schema

CONFIG_MD = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "config.md")


def test_committed_key_tables_are_the_generated_ones():
    with open(CONFIG_MD, encoding="utf-8") as handle:
        committed = handle.read()
    assert doc.render(committed) == committed, (
        "docs/config.md's key tables differ from firmware/ikecore/config/schema.py: run `%s` "
        "and commit docs/config.md" % doc.COMMAND)


def test_every_key_of_the_tables_is_in_the_doc_with_its_range_and_default():
    with open(CONFIG_MD, encoding="utf-8") as handle:
        text = handle.read()
    lifetime = schema.PEER["lifetime_s"]
    row = [line for line in text.splitlines() if line.startswith("| `lifetime_s` |")][0]
    assert "`%d`" % lifetime.default in row and "%d – %d" % (lifetime.low, lifetime.high) in row
    for section in schema.SECTIONS.values():
        for key in section:
            assert "| `%s` |" % key.name in text, key.name


def test_a_changed_limit_changes_the_generated_table(monkeypatch):
    with open(CONFIG_MD, encoding="utf-8") as handle:
        committed = handle.read()
    monkeypatch.setattr(schema.CONNECTION["lifetime_s"], "high", 7200)
    assert "SA lifetime, 60 – 7200." in doc.render(committed)
    assert doc.render(committed) != committed
