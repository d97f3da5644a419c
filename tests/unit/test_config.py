"""ikecore.config: good files give the right Settings; every bad value names its key and line."""
import datetime
import os
import stat

import pytest

from ikecore import config
from ikecore.config import ConfigError

PEER = """\
[[peer]]
name = "branch"
remote_gateway = "198.51.100.2"
psk = "secret"
"""

GOOD = """\
[general]
wan_interface = "eth0"
lan_interface = "eth1"

[[peer]]                              # "VPN peer settings (IKE)"
name = "branch"
remote_gateway = "198.51.100.2"
phase1_mode = "main"
act_as = "both"
local_id = { type = "ipv4", value = "203.0.113.1" }
remote_id = { type = "fqdn", value = "gw.example.com" }
auth = "psk"
psk = "correct horse battery staple"
proposals = ["aes128-sha1-modp2048", "aes256-sha256-modp2048", "3des-md5-modp1024"]
lifetime_s = 28800
nat_t = true
dpd = { delay_s = 30, timeout_s = 120 }

[[peer]]
name = "hq"
remote_gateway = "192.0.2.7"
local_address = "203.0.113.1"
phase1_mode = "aggressive"
act_as = "initiator"
psk = "x"

[[connection]]
name = "branch-lan"
peer = "branch"
local_net = "192.168.1.0/24"
remote_net = "10.2.0.0/24"
protocol = "esp"
proposals = ["aes128-sha1", "aes256-sha256", "3des-md5"]
pfs = "modp2048"
lifetime_s = 3600
lifetime_kb = 0

[[connection]]
name = "hq-ah"
peer = "hq"
local_net = "192.168.1.10"
remote_net = "10.9.0.0/16"
protocol = "ah"
proposals = ["sha256"]
"""


def test_good_file_gives_settings():
    settings = config.parse(GOOD)
    assert (settings.wan_interface, settings.lan_interface) == ("eth0", "eth1")
    assert list(settings.peers) == ["branch", "hq"]
    branch = settings.peers["branch"]
    assert branch.remote_gateway == "198.51.100.2" and branch.local_address is None
    assert (branch.phase1_mode, branch.act_as, branch.auth) == ("main", "both", "psk")
    assert branch.local_id.type == "ipv4" and branch.local_id.value == "203.0.113.1"
    assert branch.remote_id.type == "fqdn" and branch.remote_id.value == "gw.example.com"
    assert branch.psk == b"correct horse battery staple"
    assert [p.name for p in branch.proposals] == [
        "aes128-sha1-modp2048", "aes256-sha256-modp2048", "3des-md5-modp1024"]
    assert (branch.lifetime_s, branch.nat_t, branch.dpd_delay_s, branch.dpd_timeout_s) == (
        28800, True, 30, 120)
    hq = settings.peers["hq"]
    assert (hq.phase1_mode, hq.act_as, hq.local_address) == ("aggressive", "initiator",
                                                             "203.0.113.1")
    assert hq.local_id is None and hq.remote_id is None
    assert [p.name for p in hq.proposals] == config.DEFAULT_IKE_PROPOSALS
    lan = settings.connections["branch-lan"]
    assert (lan.peer, lan.local_net, lan.remote_net, lan.protocol) == (
        "branch", "192.168.1.0/24", "10.2.0.0/24", "esp")
    assert [p.name for p in lan.proposals] == ["aes128-sha1", "aes256-sha256", "3des-md5"]
    assert (lan.pfs, lan.lifetime_s, lan.lifetime_kb) == ("modp2048", 3600, 0)
    ah = settings.connections["hq-ah"]
    assert ah.local_net == "192.168.1.10/32" and ah.pfs is None and ah.protocol == "ah"
    assert ah.proposals[0].encr is None and ah.proposals[0].integ == "sha256"
    assert settings.connections_of("hq") == [ah]


def test_empty_file_is_a_valid_config_with_defaults():
    settings = config.parse("")
    assert settings.peers == {} and settings.connections == {}
    assert (settings.wan_interface, settings.lan_interface) == ("eth0", "eth1")


def test_shipped_default_config_validates():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "rootfs-overlay", "etc",
                        "ikecore", "ikecore.toml")
    config.load(path)


# Each bad file marks its offending line with "# <--"; the error must name that line and key.
BAD = [
    ("[general]\nwan_interface = 5  # <--\n", "general.wan_interface", "must be a string"),
    ("[general]\ncolour = \"red\"  # <--\n", "general.colour", "unknown key"),
    ("[genral]  # <--\n", "genral", "unknown key"),
    (PEER + "remote_gatway = \"1.2.3.4\"  # <--\n", "peer[0].remote_gatway", "unknown key"),
    ("[[peer]]  # <--\nname = \"a\"\npsk = \"x\"\n", "peer[0]", "remote_gateway"),
    (PEER.replace('"branch"', '"bad name"  # <--'), "peer[0].name", "not a valid name"),
    (PEER.replace('"198.51.100.2"', '"198.51.100.256"  # <--'), "peer[0].remote_gateway",
     "not an IPv4 address"),
    (PEER.replace('"198.51.100.2"', '"224.0.0.1"  # <--'), "peer[0].remote_gateway",
     "cannot be a gateway"),
    # 0.0.0.0 is "any address" now: main mode with a pre-shared key cannot tell who it is.
    (PEER.replace('"198.51.100.2"', '"0.0.0.0"  # <--'), "peer[0].remote_gateway",
     "main mode with a pre-shared key cannot choose"),
    (PEER + "local_address = \"fe80::1\"  # <--\n", "peer[0].local_address", "IPv4"),
    (PEER + "phase1_mode = \"quick\"  # <--\n", "peer[0].phase1_mode", "main, aggressive"),
    (PEER + "act_as = \"server\"  # <--\n", "peer[0].act_as", "initiator, responder, both"),
    (PEER + "auth = \"xauth\"  # <--\n", "peer[0].auth", "psk, rsa"),
    (PEER + "local_id = { type = \"asn1\", value = \"x\" }  # <--\n", "peer[0].local_id.type",
     "ipv4, fqdn, user_fqdn, dn"),
    (PEER + "remote_id = { type = \"ipv4\", value = \"gw.example\" }  # <--\n",
     "peer[0].remote_id.value", "not an IPv4 address"),
    (PEER + "remote_id = { type = \"user_fqdn\", value = \"nobody\" }  # <--\n",
     "peer[0].remote_id.value", "e-mail"),
    (PEER + "remote_id = { type = \"fqdn\", value = \"bad host\" }  # <--\n",
     "peer[0].remote_id.value", "domain name"),
    (PEER + "remote_id = { type = \"dn\" }  # <--\n", "peer[0].remote_id", "type and value"),
    (PEER + "remote_id = \"gw\"  # <--\n", "peer[0].remote_id", "must be a table"),
    (PEER + "psk_file = \"x.psk\"  # <--\n", "peer[0].psk_file", "either psk or psk_file"),
    ("[[peer]]  # <--\nname = \"a\"\nremote_gateway = \"1.2.3.4\"\n", "peer[0]",
     "needs a psk or a psk_file"),
    (PEER.replace('psk = "secret"', 'psk = ""  # <--'), "peer[0].psk", "must not be empty"),
    (PEER + "cert = \"c.pem\"  # <--\n", "peer[0].cert", "only used with auth = \"rsa\""),
    (PEER + "proposals = [\"aes128-sha1-modp2048\",\n  \"aes128-sha1-modp1023\",  # <--\n]\n",
     "peer[0].proposals[1]", "unknown Diffie-Hellman group 'modp1023'"),
    (PEER + "proposals = [\"aes128-sha1-modp2048\", \"blowfish-sha1-modp2048\"]  # <--\n",
     "peer[0].proposals[1]", "unknown encryption algorithm"),
    (PEER + "proposals = [\"a-b-c\", \"d-e-f\", \"g-h-i\", \"j-k-l\"]  # <--\n",
     "peer[0].proposals", "at most 3"),
    (PEER + "proposals = []  # <--\n", "peer[0].proposals", "at least one"),
    (PEER + "proposals = [\"aes128-sha1-modp2048\", \"aes128-sha1-modp2048\"]  # <--\n",
     "peer[0].proposals[1]", "listed twice"),
    (PEER + "proposals = \"aes128-sha1-modp2048\"  # <--\n", "peer[0].proposals", "list"),
    (PEER + "lifetime_s = 59  # <--\n", "peer[0].lifetime_s", "between 60 and 259200"),
    (PEER + "lifetime_s = 259201  # <--\n", "peer[0].lifetime_s", "between 60 and 259200"),
    (PEER + "lifetime_s = \"8h\"  # <--\n", "peer[0].lifetime_s", "must be an integer"),
    (PEER + "lifetime_s = 3600.0  # <--\n", "peer[0].lifetime_s", "must be an integer"),
    (PEER + "nat_t = \"yes\"  # <--\n", "peer[0].nat_t", "true or false"),
    (PEER + "dpd = { delay_s = 30, timeout_s = 10 }  # <--\n", "peer[0].dpd.timeout_s",
     "longer than delay_s"),
    (PEER + "dpd = { delay_s = -1, timeout_s = 10 }  # <--\n", "peer[0].dpd.delay_s",
     "between"),
    (PEER + "dpd = { every = 30 }  # <--\n", "peer[0].dpd.every", "unknown key"),
    (PEER + "\n[[peer]]\nname = \"branch\"  # <--\nremote_gateway = \"192.0.2.1\"\npsk = \"y\"\n",
     "peer[1].name", "already exists"),
    (PEER + "\n[[connection]]\nname = \"c\"\npeer = \"brunch\"  # <--\n"
     "local_net = \"10.0.0.0/8\"\nremote_net = \"172.16.0.0/12\"\n",
     "connection[0].peer", "no peer named 'brunch' (peers: branch)"),
    (PEER + "\n[[connection]]\nname = \"c\"\npeer = \"branch\"\n"
     "local_net = \"10.0.0.1/8\"  # <--\nremote_net = \"172.16.0.0/12\"\n",
     "connection[0].local_net", "host bits set; did you mean 10.0.0.0/8"),
    (PEER + "\n[[connection]]\nname = \"c\"\npeer = \"branch\"\n"
     "local_net = \"10.0.0.0/33\"  # <--\nremote_net = \"172.16.0.0/12\"\n",
     "connection[0].local_net", "not an IPv4 network"),
    (PEER + "\n[[connection]]\nname = \"c\"\npeer = \"branch\"\n"
     "local_net = \"10.0.0.0/8\"\nremote_net = \"10.2.0.0/16\"  # <--\n",
     "connection[0].remote_net", "overlaps local_net 10.0.0.0/8"),
    (PEER + "\n[[connection]]  # <--\nname = \"c\"\npeer = \"branch\"\n",
     "connection[0]", "missing required key 'local_net'"),
    (PEER + "\n[[connection]]\nname = \"c\"\npeer = \"branch\"\nlocal_net = \"10.0.0.0/8\"\n"
     "remote_net = \"172.16.0.0/12\"\nprotocol = \"gre\"  # <--\n",
     "connection[0].protocol", "esp, ah, esp+ah"),
    (PEER + "\n[[connection]]\nname = \"c\"\npeer = \"branch\"\nlocal_net = \"10.0.0.0/8\"\n"
     "remote_net = \"172.16.0.0/12\"\nprotocol = \"ah\"\nproposals = [\"aes128-sha1\"]  # <--\n",
     "connection[0].proposals[0]", "AH does not encrypt"),
    (PEER + "\n[[connection]]\nname = \"c\"\npeer = \"branch\"\nlocal_net = \"10.0.0.0/8\"\n"
     "remote_net = \"172.16.0.0/12\"\nproposals = [\"aes128-sha1-modp2048\"]  # <--\n",
     "connection[0].proposals[0]", "pfs setting"),
    (PEER + "\n[[connection]]\nname = \"c\"\npeer = \"branch\"\nlocal_net = \"10.0.0.0/8\"\n"
     "remote_net = \"172.16.0.0/12\"\npfs = \"modp2047\"  # <--\n",
     "connection[0].pfs", "unknown Diffie-Hellman group"),
    (PEER + "\n[[connection]]\nname = \"c\"\npeer = \"branch\"\nlocal_net = \"10.0.0.0/8\"\n"
     "remote_net = \"172.16.0.0/12\"\nlifetime_s = 86401  # <--\n",
     "connection[0].lifetime_s", "between 60 and 86400"),
    (PEER + "\n[[connection]]\nname = \"c\"\npeer = \"branch\"\nlocal_net = \"10.0.0.0/8\"\n"
     "remote_net = \"172.16.0.0/12\"\nlifetime_kb = -1  # <--\n",
     "connection[0].lifetime_kb", "at least 0"),
    (PEER + "\n[[connection]]\nname = \"c\"\npeer = \"branch\"\nlocal_net = \"10.0.0.0/8\"\n"
     "remote_net = \"172.16.0.0/12\"\n\n[[connection]]\nname = \"c\"  # <--\npeer = \"branch\"\n"
     "local_net = \"10.1.0.0/16\"\nremote_net = \"172.16.0.0/12\"\n",
     "connection[1].name", "already exists"),
    (PEER + "\n[[connection]]\nname = \"c\"\npeer = \"branch\"\nlocal_net = \"10.0.0.0/8\"\n"
     "remote_net = \"172.16.0.0/12\"\n\n[[connection]]  # <--\nname = \"d\"\npeer = \"branch\"\n"
     "local_net = \"10.0.0.0/8\"\nremote_net = \"172.16.0.0/12\"\n",
     "connection[1]", "already tunnels"),
    (PEER + "\n[[peer]]\nname = \"other\"\nremote_gateway = \"198.51.100.2\"  # <--\npsk = \"y\"\n",
     "peer[1].remote_gateway", "peer 'branch' already uses gateway 198.51.100.2"),
    (PEER + "\n[[peer]]\nname = \"hq\"\nremote_gateway = \"192.0.2.1\"\npsk = \"y\"\n"
     "\n[[connection]]\nname = \"c\"\npeer = \"branch\"\nlocal_net = \"10.0.0.0/8\"\n"
     "remote_net = \"172.16.0.0/12\"\n\n[[connection]]  # <--\nname = \"d\"\npeer = \"hq\"\n"
     "local_net = \"10.0.0.0/8\"\nremote_net = \"172.16.0.0/12\"\n",
     "connection[1]", "connection 'c' already tunnels 10.0.0.0/8 <-> 172.16.0.0/12 (through peer 'branch')"),
    ("[[peer]]\nname = \"a\"\nremote_gateway = \"1.2.3.4\"\npsk = \"x\"\n[peer.dpd]\n"
     "delay_s = 10\ntimeout_s = \"1m\"  # <--\n", "peer[0].dpd.timeout_s", "must be an integer"),
    ("peer = 3  # <--\n", "peer", "[[peer]] tables"),
]


@pytest.mark.parametrize("text,key,fragment", BAD, ids=[case[1] for case in BAD])
def test_bad_value_names_key_and_line(text, key, fragment):
    expected_line = [n for n, line in enumerate(text.splitlines(), 1) if "# <--" in line][0]
    with pytest.raises(ConfigError) as info:
        config.parse(text, source="test.toml")
    error = info.value
    assert (error.key, error.line) == (key, expected_line), str(error)
    assert fragment in error.message
    assert str(error).startswith("test.toml:%d: %s: " % (expected_line, key))


def test_toml_syntax_error_keeps_tomllib_line():
    with pytest.raises(ConfigError) as info:
        config.parse("[general]\nwan_interface = \"eth0\"\nlan_interface = eth1\n")
    assert info.value.line == 3 and info.value.key is None
    assert str(info.value).startswith("ikecore.toml:3: TOML syntax error:")


def test_psk_file_is_read_relative_to_the_config_and_warned_about_when_readable(tmp_path):
    (tmp_path / "branch.psk").write_bytes(b"file secret\n")
    os.chmod(tmp_path / "branch.psk", 0o644)
    (tmp_path / "ikecore.toml").write_text(PEER.replace('psk = "secret"',
                                                        'psk_file = "branch.psk"'))
    warnings = []
    settings = config.load(str(tmp_path / "ikecore.toml"), warnings=warnings)
    assert settings.peers["branch"].psk == b"file secret"
    assert len(warnings) == 1 and "chmod 600" in warnings[0] and ":4: peer[0].psk_file" in warnings[0]
    os.chmod(tmp_path / "branch.psk", 0o600)
    warnings = []
    config.load(str(tmp_path / "ikecore.toml"), warnings=warnings)
    assert warnings == []


def test_missing_psk_file_is_named(tmp_path):
    (tmp_path / "ikecore.toml").write_text(PEER.replace('psk = "secret"',
                                                        'psk_file = "gone.psk"'))
    with pytest.raises(ConfigError) as info:
        config.load(str(tmp_path / "ikecore.toml"))
    assert info.value.key == "peer[0].psk_file" and info.value.line == 4
    assert str(tmp_path / "gone.psk") in info.value.message


def _make_cert(tmp_path, name):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime(2026, 1, 1)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=3650)).sign(key, hashes.SHA256()))
    (tmp_path / (name + ".pem")).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / (name + ".key")).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    os.chmod(tmp_path / (name + ".key"), 0o600)
    return cert


RSA_PEER = """\
[[peer]]
name = "branch"
remote_gateway = "198.51.100.2"
auth = "rsa"
cert = "gw.pem"
key = "gw.key"
ca = "ca.pem"
"""


def test_rsa_peer_loads_certificate_material(tmp_path):
    from cryptography.hazmat.primitives import serialization
    cert = _make_cert(tmp_path, "gw")
    _make_cert(tmp_path, "ca")
    (tmp_path / "ikecore.toml").write_text(RSA_PEER)
    peer = config.load(str(tmp_path / "ikecore.toml")).peers["branch"]
    assert peer.auth == "rsa" and peer.psk is None
    assert peer.cert_der == cert.public_bytes(serialization.Encoding.DER)
    assert peer.key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert peer.ca_ders and peer.cert == "gw.pem"


@pytest.mark.parametrize("change,key,fragment", [
    (("gw.pem", "missing.pem"), "peer[0].cert", "certificate file {dir}/missing.pem does not exist"),
    (("ca.pem", "gw.key"), "peer[0].ca", "{dir}/gw.key is not a PEM or DER X.509 certificate"),
    (("gw.key", "ca.key"), "peer[0].key", "{dir}/ca.key does not belong to certificate gw.pem"),
    (("gw.key", "gw.pem"), "peer[0].key", "{dir}/gw.pem is not an unencrypted PEM private key"),
])
def test_bad_rsa_files_are_named(tmp_path, change, key, fragment):
    _make_cert(tmp_path, "gw")
    _make_cert(tmp_path, "ca")
    (tmp_path / "ikecore.toml").write_text(RSA_PEER.replace('"%s"' % change[0], '"%s"' % change[1]))
    with pytest.raises(ConfigError) as info:
        config.load(str(tmp_path / "ikecore.toml"))
    line = [n for n, text in enumerate(RSA_PEER.splitlines(), 1)
            if text.startswith(key.split(".")[-1] + " =")][0]
    assert (info.value.key, info.value.line) == (key, line)
    assert fragment.format(dir=tmp_path) in info.value.message


def test_rsa_needs_all_three_files():
    with pytest.raises(ConfigError) as info:
        config.parse(RSA_PEER.replace('ca = "ca.pem"\n', ""))
    assert info.value.key == "peer[0].ca" and "ca missing" in info.value.message


def test_write_document_atomic_writes_valid_documents(tmp_path):
    path = str(tmp_path / "ikecore.toml")
    doc = config.read_document(path)
    assert doc == {}
    doc = {"general": {"wan_interface": "eth0"},
           "peer": [{"name": "branch", "remote_gateway": "198.51.100.2", "psk": "s3cret"}]}
    settings = config.write_document_atomic(path, doc)
    assert list(settings.peers) == ["branch"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600       # new files hold secrets
    assert config.read_document(path) == doc
    assert config.load(path).peers["branch"].psk == b"s3cret"
    assert os.listdir(tmp_path) == ["ikecore.toml"]           # no temporary file left behind


def test_write_document_atomic_leaves_the_file_untouched_on_error(tmp_path):
    path = tmp_path / "ikecore.toml"
    path.write_text(GOOD)
    os.chmod(path, 0o640)
    before = path.read_bytes()
    doc = config.read_document(str(path))
    doc["peer"][0]["proposals"][1] = "aes256-sha256-modp9999"
    with pytest.raises(ConfigError) as info:
        config.write_document_atomic(str(path), doc)
    assert info.value.key == "peer[0].proposals[1]" and info.value.line is not None
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ikecore.toml"]
    # A good change keeps the file's mode.
    doc["peer"][0]["proposals"][1] = "aes256-sha256-modp2048"
    doc["peer"][0]["lifetime_s"] = 3600
    config.write_document_atomic(str(path), doc)
    assert config.load(str(path)).peers["branch"].lifetime_s == 3600
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_unwritable_values_are_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        config.write_document_atomic(str(tmp_path / "x.toml"), {"general": {"x": object()}})
    assert not os.path.exists(tmp_path / "x.toml")


def test_load_names_a_missing_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        config.load(str(tmp_path / "nope.toml"))
    assert "nope.toml" in str(info.value) and "No such file" in str(info.value)


def test_line_index_follows_toml_syntax_that_hides_keys():
    text = '''\
# [[peer]] in a comment is not a table
[general]
"wan_interface" = "eth0"   # a quoted key
lan_interface = "eth1"

[[peer]]
name = "a"
remote_gateway = "1.2.3.4"
psk = """
[[peer]] inside a multi-line string, "quoted" # not a comment
"""
dpd.delay_s = 10
dpd.timeout_s = "x"
'''
    index = config._LineIndex(text)
    assert index.line_of(("general", "wan_interface")) == 3
    assert index.line_of(("general", "lan_interface")) == 4
    assert index.line_of(("peer", 0)) == 6
    assert ("peer", 1) not in index.lines
    with pytest.raises(ConfigError) as info:
        config.parse(text)
    assert (info.value.key, info.value.line) == ("peer[0].dpd.timeout_s", 13)


def test_line_index_counts_entries_of_nested_arrays_of_tables():
    text = '''\
[[peer]]
name = "a"

[[peer]]
name = "b"
x = [
  { k = 1 },
  { k = 2, j = 3 },
]
'''
    index = config._LineIndex(text)
    assert index.line_of(("peer", 1, "name")) == 5
    assert index.line_of(("peer", 1, "x", 1)) == 8
    assert index.line_of(("peer", 1, "x", 1, "j")) == 8
    assert index.line_of(("peer", 1, "nothing", "here")) == 4


def test_aggressive_mode_with_psk_is_warned_about():
    warnings = []
    config.parse(PEER + 'phase1_mode = "aggressive"\n', warnings=warnings)
    assert warnings == ["ikecore.toml:5: peer[0].phase1_mode: aggressive mode with a pre-shared "
                        "key sends a hash of the key that can be guessed offline; prefer main mode"]


def test_write_document_atomic_follows_a_symlink(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "ikecore.toml").write_text(GOOD)
    link = tmp_path / "ikecore.toml"
    link.symlink_to(tmp_path / "real" / "ikecore.toml")
    doc = config.read_document(str(link))
    doc["general"]["wan_interface"] = "wan0"
    config.write_document_atomic(str(link), doc)
    assert link.is_symlink()
    assert config.load(str(tmp_path / "real" / "ikecore.toml")).wan_interface == "wan0"
    assert sorted(os.listdir(tmp_path / "real")) == ["ikecore.toml"]


def test_the_checker_takes_limits_and_defaults_from_the_tables(monkeypatch):
    """config/schema.py is the one place of a limit or a default: the checker applies what the
    table says (and docs/config.md and the settings pages show it, test_config_doc.py)."""
    from ikecore.config import schema
    monkeypatch.setattr(schema.PEER["lifetime_s"], "high", 30000)
    monkeypatch.setattr(schema.PEER["fragment_size"], "default", 1000)
    with pytest.raises(ConfigError) as info:
        config.parse(PEER + "lifetime_s = 30001\n")
    assert info.value.message == "must be between 60 and 30000, got 30001"
    assert config.parse(PEER).peers["branch"].fragment_size == 1000


def test_the_cores_shortest_lifetime_is_the_tables():
    """lifetime.py (portable: it cannot import the host's tables) takes a delete younger than
    the shortest lifetime the file allows as no evidence of the peer's lifetime."""
    from ikecore.protocol import lifetime
    from ikecore.config import schema
    lows = {schema.PEER["lifetime_s"].low, schema.CONNECTION["lifetime_s"].low}
    assert lows == {lifetime.DELETE_EVIDENCE_MIN_S}


def test_fetch_crls_is_a_boolean_of_rsa_peers(tmp_path):
    _make_cert(tmp_path, "gw")
    _make_cert(tmp_path, "ca")
    (tmp_path / "ikecore.toml").write_text(RSA_PEER + "fetch_crls = true\n")
    assert config.load(str(tmp_path / "ikecore.toml")).peers["branch"].fetch_crls is True
    (tmp_path / "ikecore.toml").write_text(RSA_PEER)
    assert config.load(str(tmp_path / "ikecore.toml")).peers["branch"].fetch_crls is False
    (tmp_path / "ikecore.toml").write_text(RSA_PEER + 'fetch_crls = "yes"\n')
    with pytest.raises(ConfigError) as info:
        config.load(str(tmp_path / "ikecore.toml"))
    assert info.value.key == "peer[0].fetch_crls"
    assert "must be true or false, got a string" in info.value.message
    with pytest.raises(ConfigError) as info:
        config.parse('[[peer]]\nname = "p"\nremote_gateway = "192.0.2.1"\npsk = "k"\n'
                     'fetch_crls = true\n')
    assert info.value.key == "peer[0].fetch_crls" and "auth = \"rsa\"" in info.value.message
