"""The settings pages edit ikecore.toml through ikecore.config (the only validator): field errors
beside the field with the file untouched, atomic save + reload, and a PSK never sent back."""
import os
import re

import pytest

from webui_fake_daemon import FakeDaemon
from webui_harness import Client, ThreadedWebui

from ikecore import config
from support.config import webui_router
from webui import auth
from webui.context import Options

PSK = "correct horse battery staple"
CONFIG = webui_router(
    branch=dict(phase1_mode="main", act_as="both", local_id=("ipv4", "203.0.113.1"),
                remote_id=("ipv4", "198.51.100.2"), auth="psk", psk=PSK,
                proposals=["aes128-sha1-modp2048", "aes256-sha256-modp2048", "3des-md5-modp1024"],
                lifetime_s=28800, nat_t=True, dpd=(30, 120)),
    hq=dict(psk="another secret key"),
    branch_lan=dict(protocol="esp", proposals=["aes128-sha1", "aes256-sha256", "3des-md5"],
                    pfs="modp2048", lifetime_s=3600, lifetime_kb=0))

PEER_FORM = {"name": "branch", "remote_gateway": "198.51.100.2", "phase1_mode": "main",
             "act_as": "both", "local_id.type": "ipv4", "local_id.value": "203.0.113.1",
             "remote_id.type": "ipv4", "remote_id.value": "198.51.100.2", "auth": "psk",
             "psk": "", "proposals.0": "aes128-sha1-modp2048",
             "proposals.1": "aes256-sha256-modp2048", "proposals.2": "3des-md5-modp1024",
             "lifetime_s": "28800", "nat_t": "on", "dpd.delay_s": "30", "dpd.timeout_s": "120"}


@pytest.fixture
def env(tmp_path):
    cfg = tmp_path / "ikecore.toml"
    cfg.write_text(CONFIG)
    os.chmod(str(cfg), 0o600)
    socket_path = str(tmp_path / "control.sock")
    fake = FakeDaemon(socket_path).start()
    server = ThreadedWebui(Options(socket_path, str(tmp_path), str(cfg))).start()
    auth.PasswordStore(str(tmp_path)).set("correct-password")
    client = Client(server.port)
    client.login("correct-password")
    yield {"fake": fake, "client": client, "cfg": cfg}
    server.stop()
    fake.stop()


def error_beside(html, field):
    match = re.search(r'id="f-%s"[^>]*aria-invalid="true"[^>]*>.*?<span class="field-error" '
                      r'id="error-%s" role="alert">(.*?)</span>' % (re.escape(field),
                                                                     re.escape(field)),
                      html, re.S)
    return match and match.group(1)


def test_pages_show_the_settings_but_never_a_psk(env):
    c = env["client"]
    for path in ("/settings/peers", "/settings/peers/branch", "/settings/peers/hq",
                 "/settings/peers/new", "/settings/connections",
                 "/settings/connections/branch-lan", "/settings/connections/new"):
        page = c.get(path)
        assert page.status == 200, path
        assert PSK not in page.text and "another secret key" not in page.text, path
    edit = c.get("/settings/peers/branch").text
    assert "VPN peer settings (IKE)" in edit
    for label in ("IKE phase1 mode", "Act as", "Local ID type", "Remote ID value",
                  "Pre-shared key", "Proposal 3", "Life time", "NAT-T", "DPD delay", "DPD timeout"):
        assert label in edit, label
    assert '<option value="aggressive">' in edit and '<option value="3des-md5-modp1024" selected>' in edit
    for hint in ("Empty: 28800.", "Empty: 30.", "Empty: 120."):     # ikecore.protocol.settings defaults
        assert hint in edit, hint
    assert "Empty: 3600." in c.get("/settings/connections/new").text
    assert "A key is stored; leave empty to keep it." in edit
    # hq leaves nat_t out (default on): its box must be ticked or a save would turn NAT-T off
    assert re.search(r'id="f-nat_t" name="nat_t" checked', c.get("/settings/peers/hq").text)
    conn = c.get("/settings/connections/branch-lan").text
    assert "VPN connection settings" in conn and '<option value="modp2048" selected>' in conn
    assert '<option value="ah">AH</option>' in conn


def test_bad_input_shows_the_error_beside_the_field_and_leaves_the_file(env):
    c = env["client"]
    before = env["cfg"].read_bytes()
    cases = [
        ({"remote_gateway": "198.51.100.300"}, "remote_gateway", "not an IPv4 address"),
        ({"lifetime_s": "ten"}, "lifetime_s", "must be an integer"),
        ({"dpd.timeout_s": "10"}, "dpd.timeout_s", "must be longer than delay_s"),
        ({"local_id.type": "fqdn", "local_id.value": "not a domain!"}, "local_id.value",
         "not a domain name"),
        ({"proposals.1": "aes128-sha1-modp2048"}, "proposals.1", "listed twice"),
        ({"name": "bad name"}, "name", "not a valid name"),
    ]
    for change, field, message in cases:
        page = c.post("/settings/peers/branch", dict(PEER_FORM, psk=PSK, **change))
        assert page.status == 400, change
        assert message in (error_beside(page.text, field) or ""), (change, page.text[-3000:])
        assert PSK not in page.text                       # not even the one just typed
        assert env["cfg"].read_bytes() == before
    bad_net = c.post("/settings/connections/branch-lan", {
        "name": "branch-lan", "peer": "branch", "local_net": "192.168.1.0/24",
        "remote_net": "192.168.1.0/25", "protocol": "esp", "proposals.0": "aes128-sha1",
        "pfs": "none"})
    assert "overlaps local_net" in (error_beside(bad_net.text, "remote_net") or "")
    ah = c.post("/settings/connections/branch-lan", {
        "name": "branch-lan", "peer": "branch", "local_net": "192.168.1.0/24",
        "remote_net": "10.2.0.0/24", "protocol": "ah", "proposals.0": "aes128-sha1",
        "pfs": "none"})
    assert "AH does not encrypt" in (error_beside(ah.text, "proposals.0") or "")
    assert env["cfg"].read_bytes() == before
    assert "reload" not in env["fake"].commands()


def test_save_writes_atomically_then_reloads_and_keeps_the_psk(env):
    c = env["client"]
    page = c.post("/settings/peers/branch", dict(PEER_FORM, phase1_mode="aggressive",
                                                 **{"proposals.2": ""}))
    assert page.status == 303 and page.header("location") == "/settings/peers"
    assert env["fake"].commands()[-1] == "reload"
    doc = config.read_document(str(env["cfg"]))
    branch = doc["peer"][0]
    assert branch["phase1_mode"] == "aggressive"
    assert branch["psk"] == PSK                                    # empty field kept it
    assert branch["proposals"] == ["aes128-sha1-modp2048", "aes256-sha256-modp2048"]
    assert doc["peer"][1]["psk"] == "another secret key"          # the other peer untouched
    assert os.stat(str(env["cfg"])).st_mode & 0o777 == 0o600
    config.load(str(env["cfg"]))                                   # the daemon can read it
    flash = c.get("/settings/peers").text
    assert "Saved peer branch" in flash and "unaffected tunnels stay up" in flash
    assert PSK not in flash


def test_a_new_psk_replaces_the_old_one(env):
    c = env["client"]
    assert c.post("/settings/peers/branch", dict(PEER_FORM, psk="a brand new key")).status == 303
    assert config.read_document(str(env["cfg"]))["peer"][0]["psk"] == "a brand new key"


def test_add_rename_and_delete(env):
    c = env["client"]
    new = c.post("/settings/peers/new", {"name": "lab", "remote_gateway": "192.0.2.9",
                                         "auth": "psk", "psk": "lab secret key",
                                         "proposals.0": "aes256-sha256-modp2048"})
    assert new.status == 303
    conn = c.post("/settings/connections/new", {
        "name": "lab-net", "peer": "lab", "local_net": "192.168.1.0/24",
        "remote_net": "10.9.0.0/24", "protocol": "esp+ah", "proposals.0": "aes128-sha256",
        "pfs": "none", "lifetime_s": "1800"})
    assert conn.status == 303
    renamed = c.post("/settings/peers/lab", {"name": "lab2", "remote_gateway": "192.0.2.9",
                                             "auth": "psk",
                                             "proposals.0": "aes256-sha256-modp2048"})
    assert renamed.status == 303
    doc = config.read_document(str(env["cfg"]))
    assert doc["connection"][1] == {"name": "lab-net", "peer": "lab2",
                                    "local_net": "192.168.1.0/24", "remote_net": "10.9.0.0/24",
                                    "protocol": "esp+ah", "proposals": ["aes128-sha256"],
                                    "pfs": "none", "lifetime_s": 1800}
    # a peer still used by a connection cannot go; the message names the problem
    refused = c.post("/settings/peers/lab2/delete", {"confirmed": "1"})
    assert refused.status == 303
    assert "Cannot delete peer lab2" in c.get("/settings/peers").text
    assert c.post("/settings/connections/lab-net/delete", {"confirmed": "1"}).status == 303
    assert c.post("/settings/peers/lab2/delete", {"confirmed": "1"}).status == 303
    doc = config.read_document(str(env["cfg"]))
    assert [p["name"] for p in doc["peer"]] == ["branch", "hq"]
    assert [x["name"] for x in doc["connection"]] == ["branch-lan"]


def test_saving_keeps_the_users_comments_and_layout(env):
    """Comments written by hand (and the factory file's explanations) survive a save through
    the page; only the edited keys change, in place."""
    commented = CONFIG.replace('[[peer]]\nname = "branch"',
                               '# head office link: ask Bob before changing\n[[peer]]\nname = "branch"')
    commented = commented.replace('remote_gateway = "198.51.100.7"',
                                  'remote_gateway = "198.51.100.7"   # fixed address of hq')
    env["cfg"].write_text("# written by hand on 2026-11-01\n" + commented)
    c = env["client"]
    assert c.post("/settings/peers/branch", dict(PEER_FORM, phase1_mode="aggressive")).status == 303
    text = env["cfg"].read_text()
    assert text.startswith("# written by hand on 2026-11-01\n")
    assert "# head office link: ask Bob before changing\n[[peer]]\nname = \"branch\"" in text
    assert 'remote_gateway = "198.51.100.7"   # fixed address of hq' in text
    assert text == ("# written by hand on 2026-11-01\n" + commented).replace(
        'phase1_mode = "main"', 'phase1_mode = "aggressive"')
    # a new entry is written the way DESIGN.md shows one: sub-tables inline, a blank line after
    assert c.post("/settings/peers/new", {"name": "lab", "remote_gateway": "192.0.2.9", "auth": "psk",
                                          "psk": "lab secret key", "dpd.delay_s": "10",
                                          "dpd.timeout_s": "60",
                                          "proposals.0": "aes256-sha256-modp2048"}).status == 303
    text = env["cfg"].read_text()
    assert "# fixed address of hq" in text and "dpd = {delay_s = 10, timeout_s = 60}" in text
    config.load(str(env["cfg"]))


def test_deleting_an_entry_takes_its_own_comment_and_leaves_the_others_in_place(env):
    text = CONFIG.replace('[[peer]]\nname = "branch"', '# the branch office\n[[peer]]\nname = "branch"')
    text = text.replace('[[peer]]\nname = "hq"', '# head office: ask Bob first\n[[peer]]\nname = "hq"')
    text = text.replace('[[connection]]', '# tunnels\n[[connection]]')
    env["cfg"].write_text(text)
    c = env["client"]
    assert c.post("/settings/peers/hq/delete", {"confirmed": "1"}).status == 303
    saved = env["cfg"].read_text()
    assert "# head office" not in saved and "hq" not in saved     # went with its entry
    assert '# the branch office\n[[peer]]\nname = "branch"' in saved
    assert '# tunnels\n[[connection]]\nname = "branch-lan"' in saved   # still above its table
    assert list(config.load(str(env["cfg"])).peers) == ["branch"]


def test_the_factory_file_keeps_its_explanations_when_the_first_peer_is_added(tmp_path):
    factory = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__)))), "rootfs-overlay", "etc", "ikecore", "ikecore.toml")
    original = open(factory).read()
    path = str(tmp_path / "ikecore.toml")
    doc = config.read_document(factory)
    config.set_entry(doc, "peer", None, {"name": "branch", "remote_gateway": "198.51.100.2",
                                         "psk": "a long enough key"})
    config.write_document_atomic(path, doc)
    text = open(path).read()
    assert text.startswith(original)             # every line of it, then the new entry
    assert text[len(original):].strip() == \
        '[[peer]]\nname = "branch"\nremote_gateway = "198.51.100.2"\npsk = "a long enough key"'
    assert list(config.load(path).peers) == ["branch"]
    # and taken out again: the factory text is back (and a blank line where the entry was)
    doc = config.read_document(path)
    config.delete_entry(doc, "peer", 0)
    config.write_document_atomic(path, doc)
    assert open(path).read().rstrip("\n") == original.rstrip("\n")


def test_settings_posts_need_the_csrf_token(env):
    c = env["client"]
    before = env["cfg"].read_bytes()
    page = c.post("/settings/peers/branch", dict(PEER_FORM, phase1_mode="aggressive"),
                  csrf=False)
    assert page.status == 403
    assert c.post("/settings/peers/hq/delete", {"confirmed": "1"}, csrf="nope").status == 403
    assert env["cfg"].read_bytes() == before


def test_a_symlinked_config_is_saved_beside_the_real_file(tmp_path):
    real_dir = tmp_path / "data"
    real_dir.mkdir()
    (real_dir / "ikecore.toml").write_text(CONFIG)
    link = tmp_path / "etc-ikecore.toml"
    link.symlink_to(real_dir / "ikecore.toml")
    fake = FakeDaemon(str(tmp_path / "control.sock")).start()
    server = ThreadedWebui(Options(str(tmp_path / "control.sock"), str(tmp_path),
                                   str(link))).start()
    try:
        auth.PasswordStore(str(tmp_path)).set("correct-password")
        client = Client(server.port)
        client.login("correct-password")
        saved = client.post("/settings/peers/branch", dict(PEER_FORM, phase1_mode="aggressive"))
        assert saved.status == 303
        assert link.is_symlink()
        assert 'phase1_mode = "aggressive"' in (real_dir / "ikecore.toml").read_text()
    finally:
        server.stop()
        fake.stop()


def test_hub_peers_from_any_address_and_by_dns_name(env):
    """Issue 12: a branch on any address chosen by its ID, a gateway by DNS name, the one
    catch-all with its warning, and the refused combinations beside their field."""
    c = env["client"]
    before = env["cfg"].read_bytes()
    branch = dict(PEER_FORM, name="shop", remote_gateway="%any", phase1_mode="aggressive",
                  act_as="initiator", psk="shop secret key", **{
                      "local_id.type": "", "local_id.value": "", "remote_id.type": "fqdn",
                      "remote_id.value": "shop.example.net"})
    refused = c.post("/settings/peers/new", branch)
    assert refused.status == 400
    assert "can only respond" in (error_beside(refused.text, "act_as") or "")
    no_id = c.post("/settings/peers/new", dict(branch, act_as="responder", **{
        "remote_id.type": "", "remote_id.value": ""}))
    assert "is chosen by its ID" in (error_beside(no_id.text, "remote_id.type") or "")
    assert env["cfg"].read_bytes() == before
    assert c.post("/settings/peers/new", dict(branch, act_as="responder")).status == 303
    named = dict(PEER_FORM, name="depot", remote_gateway="depot.example.net", psk="depot key",
                 **{"remote_id.type": "", "remote_id.value": ""})
    assert c.post("/settings/peers/new", named).status == 303
    anyone = dict(PEER_FORM, name="anyone", remote_gateway="0.0.0.0", act_as="responder",
                  psk="anyone key", catch_all="on", **{
                      "local_id.type": "", "local_id.value": "", "remote_id.type": "",
                      "remote_id.value": ""})
    saved = c.post("/settings/peers/new", anyone)
    assert saved.status == 303
    listing = c.get("/settings/peers").text
    assert "Warning: " in listing and "accepts anyone who knows its pre-shared key" in listing
    assert "Peer anyone is a catch-all" in listing
    second = c.post("/settings/peers/new", dict(anyone, name="anyone2"))
    assert "is already the catch-all peer" in (error_beside(second.text, "catch_all") or "")
    settings = config.load(str(env["cfg"]))
    assert settings.peers["shop"].dynamic and settings.peers["anyone"].catch_all
    assert settings.peers["depot"].gateway_kind == "name"
    form = c.get("/settings/peers/anyone").text
    assert re.search(r'id="f-catch_all" name="catch_all" checked', form)
    assert "%any" in c.get("/settings/peers/new").text


def test_peer_page_shows_and_saves_ike_fragmentation(env):
    c = env["client"]
    page = c.get("/settings/peers/branch").text
    assert "IKE fragmentation" in page and "Empty: 576, which crosses any IPv4 path." in page
    assert re.search(r'<option value="yes">Yes: when the peer supports it', page)
    for mode in ("accept", "force", "no"):
        assert '<option value="%s">' % mode in page
    bad = c.post("/settings/peers/branch", dict(PEER_FORM, fragmentation="force",
                                                fragment_size="100"))
    assert bad.status == 400
    assert "between 256 and 65535" in (error_beside(bad.text, "fragment_size") or ""), bad.text
    assert c.post("/settings/peers/branch", dict(PEER_FORM, fragmentation="force",
                                                 fragment_size="1280")).status == 303
    peer = config.load(str(env["cfg"])).peers["branch"]
    assert (peer.fragmentation, peer.fragment_size) == ("force", 1280)
    again = c.get("/settings/peers/branch").text
    assert '<option value="force" selected>' in again and 'value="1280"' in again


CONNECTION_FORM = {"name": "branch-lan", "peer": "branch", "protocol": "esp",
                   "proposals.0": "aes128-sha1", "pfs": "none"}


def test_networks_typed_with_commas_are_saved_as_lists_and_shown_back(env):
    c = env["client"]
    page = c.post("/settings/connections/branch-lan", dict(
        CONNECTION_FORM, local_net="192.168.1.0/24, 192.168.5.0/24", remote_net="0.0.0.0/0"))
    assert page.status == 303, page.text[-2000:]
    (conn,) = config.read_document(str(env["cfg"]))["connection"]
    assert conn["local_net"] == ["192.168.1.0/24", "192.168.5.0/24"]
    assert conn["remote_net"] == "0.0.0.0/0"                  # one network stays a string
    settings = config.load(str(env["cfg"]))
    assert [c_.name for c_ in settings.pairs_of("branch-lan")] == ["branch-lan#1", "branch-lan#2"]
    assert 'value="192.168.1.0/24, 192.168.5.0/24"' in c.get("/settings/connections/branch-lan").text
    assert "192.168.1.0/24, 192.168.5.0/24" in c.get("/settings/connections").text
    # a bad list item is named beside the field, the file stays as it was
    before = env["cfg"].read_bytes()
    bad = c.post("/settings/connections/branch-lan", dict(
        CONNECTION_FORM, local_net="192.168.1.0/24 192.168.1.0/24", remote_net="0.0.0.0/0"))
    assert bad.status == 400
    assert "listed twice" in (error_beside(bad.text, "local_net") or "")
    assert env["cfg"].read_bytes() == before


def test_the_forms_take_defaults_limits_and_choices_from_the_settings_tables(env):
    """ikecore/config/schema.py is the one copy of each default, range and choice list: the
    hints and dropdowns show what the checker applies."""
    from ikecore.config import schema
    c = env["client"]
    pages = {"peer": c.get("/settings/peers/new").text,
             "connection": c.get("/settings/connections/new").text}
    numbers = {"peer": ("lifetime_s", "dpd.delay_s", "dpd.timeout_s", "fragment_size"),
               "connection": ("lifetime_s",)}
    for section, fields in numbers.items():
        for field in fields:
            key = schema.field(section, field)
            assert "Empty: %d" % key.default in pages[section], field
            assert "%d to %d." % (key.low, key.high) in pages[section], field
    assert "Allowed: 0, or 1 to 3600." in pages["peer"]        # delay_s 0 turns DPD off
    assert "Empty: 0. Allowed: 0 or more." in pages["connection"]
    dropdowns = {"peer": ("phase1_mode", "act_as", "local_id.type", "remote_id.type", "auth",
                          "fragmentation"), "connection": ("protocol",)}
    for section, fields in dropdowns.items():
        for field in fields:
            select = re.search(r'<select id="f-%s".*?</select>' % re.escape(field),
                               pages[section], re.S).group(0)
            offered = re.findall(r'<option value="([^"]+)"', select)
            key = schema.field(section, field)
            assert sorted(offered) == sorted(key.choices), field
            if key.default is not None:      # first: what the daemon assumes when absent
                assert offered[0] == key.default, field


def test_dropdown_words_are_only_for_values_the_tables_allow():
    from ikecore.config import schema
    from webui import choices
    sections = {"protocol": "connection"}
    for name, texts in choices.TEXTS.items():
        key = schema.field(sections.get(name, "peer"), name)
        assert set(texts) == set(key.choices), name
