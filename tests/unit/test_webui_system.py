"""The System page (NTP servers, remote syslog): validation naming each bad field with the old file
kept, the file it writes, and how the image's init scripts read that file -- as data, never as
shell -- into chronyd's and rsyslogd's configurations."""
import os
import subprocess

import pytest
from webui_client import run_webui

from webui import system_settings

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OVERLAY = os.path.join(TOP, "rootfs-overlay")
FACTORY = os.path.join(OVERLAY, "etc", "ikecore", "system.conf")
GOOD = {"ntp_servers": "ntp1.example.net, 192.0.2.123 2001:db8::123",
        "syslog_server": "logs.example.net", "syslog_port": "6514", "syslog_protocol": "tcp"}


def test_valid_form_becomes_settings():
    assert system_settings.validate(GOOD) == {
        "ntp_servers": ["ntp1.example.net", "192.0.2.123", "2001:db8::123"],
        "syslog_server": "logs.example.net", "syslog_port": 6514, "syslog_protocol": "tcp"}
    # empty means: no NTP, no remote syslog, the default port and protocol
    assert system_settings.validate({}) == system_settings.DEFAULTS


@pytest.mark.parametrize("field, value, words", [
    ("ntp_servers", "pool.ntp.org bad_name.example", "'bad_name.example' is neither an IP address"),
    ("ntp_servers", "-dash.example", "neither an IP address nor a host name"),
    ("ntp_servers", "192.0.2.300", "'192.0.2.300' is not a valid IP address"),
    ("ntp_servers", "a.example $(reboot)", "'$(reboot)' is neither"),
    ("ntp_servers", " ".join("n%d.example" % i for i in range(9)), "at most 8 servers, not 9"),
    ("ntp_servers", "a.example A.EXAMPLE", "listed twice"),
    ("syslog_server", "logs example", "'logs example' is neither"),
    ("syslog_server", "x" * 254, "longer than a DNS name"),
    ("syslog_port", "0", "'0' is not a port number (1-65535)"),
    ("syslog_port", "65536", "'65536' is not a port number"),
    ("syslog_port", "514/udp", "'514/udp' is not a port number"),
    ("syslog_protocol", "sctp", "'sctp' is not one of udp, tcp"),
])
def test_each_bad_field_is_named(field, value, words):
    with pytest.raises(system_settings.SettingsError) as caught:
        system_settings.validate(dict(GOOD, **{field: value}))
    assert list(caught.value.errors) == [field]
    assert words in caught.value.errors[field]


def test_every_bad_field_at_once():
    with pytest.raises(system_settings.SettingsError) as caught:
        system_settings.validate({"ntp_servers": "a..b", "syslog_port": "x",
                                  "syslog_protocol": "icmp"})
    assert set(caught.value.errors) == {"ntp_servers", "syslog_port", "syslog_protocol"}


def test_saved_file_reads_back_and_replaces_the_old_one(tmp_path):
    path = tmp_path / "system.conf"
    path.write_text("old\n")
    settings = system_settings.validate(GOOD)
    system_settings.save(str(path), settings)
    text = path.read_text()
    assert "NTP_SERVERS=ntp1.example.net 192.0.2.123 2001:db8::123\n" in text
    assert "SYSLOG_SERVER=logs.example.net\nSYSLOG_PORT=6514\nSYSLOG_PROTOCOL=tcp\n" in text
    assert system_settings.read(str(path)) == settings
    assert os.stat(path).st_mode & 0o777 == 0o660
    assert [p.name for p in tmp_path.iterdir()] == ["system.conf"]      # no temporary left


def test_factory_file_and_missing_file():
    factory = system_settings.read(FACTORY)
    assert factory["ntp_servers"] == ["0.pool.ntp.org", "1.pool.ntp.org", "2.pool.ntp.org"]
    assert factory["syslog_server"] == ""
    assert system_settings.validate(system_settings.form_values(factory)) == factory
    assert system_settings.read("/nonexistent/system.conf") == system_settings.DEFAULTS


def test_apply_writes_to_the_fifo_or_says_why_not(tmp_path):
    fifo = str(tmp_path / "system-apply")
    assert "cannot reach the service that applies them" in system_settings.apply(fifo)
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert system_settings.apply(fifo) is None
        assert os.read(reader, 100) == b"apply\n"
    finally:
        os.close(reader)
    # nobody reading (the root side is not running): said, nothing blocks
    assert "No such device or address" in system_settings.apply(fifo)


# --- the page -----------------------------------------------------------------------------

def page_options(tmp_path):
    conf = tmp_path / "system.conf"
    conf.write_text(open(FACTORY).read())
    fifo = tmp_path / "system-apply"
    os.mkfifo(str(fifo))
    return conf, fifo


def test_page_shows_the_clock_state_and_the_settings(tmp_path):
    conf, fifo = page_options(tmp_path)

    async def scenario(web):
        _response, before = await web.page("/settings/system")
        web.fake.clock_synchronized = True
        _response, after = await web.page("/settings/system")
        return before, after
    before, after = run_webui(tmp_path, "", scenario, system_config=str(conf),
                              system_apply=str(fifo))
    assert "The clock is not synchronized yet" in before
    assert "certificate validity dates are not enforced until an NTP server below has answered" in before
    assert 'value="0.pool.ntp.org 1.pool.ntp.org 2.pool.ntp.org"' in before
    assert 'href="/settings/system" aria-current="page">System</a>' in before
    assert "The clock is synchronized by NTP" in after
    assert "certificate validity dates are enforced." in after


def test_page_saves_and_asks_the_root_side_to_apply(tmp_path):
    conf, fifo = page_options(tmp_path)
    reader = os.open(str(fifo), os.O_RDONLY | os.O_NONBLOCK)

    async def scenario(web):
        response, _ = await web.post("/settings/system", GOOD)
        return response.status, await web.flash("/settings/system")
    try:
        status, flash = run_webui(tmp_path, "", scenario, system_config=str(conf),
                                  system_apply=str(fifo))
        assert os.read(reader, 100) == b"apply\n"
    finally:
        os.close(reader)
    assert status == 303
    assert flash == "Saved the system settings. The router applies them now."
    assert system_settings.read(str(conf)) == system_settings.validate(GOOD)


def test_page_refuses_bad_input_naming_the_field_and_keeps_the_file(tmp_path):
    conf, fifo = page_options(tmp_path)
    before = conf.read_text()

    async def scenario(web):
        response, body = await web.post("/settings/system", dict(GOOD, syslog_port="99999"))
        return response.status, body.decode()
    status, body = run_webui(tmp_path, "", scenario, system_config=str(conf),
                             system_apply=str(fifo))
    assert status == 400
    assert ('<span class="field-error" id="error-syslog_port" role="alert">'
            "&#39;99999&#39; is not a port number (1-65535)</span>") in body
    assert 'value="logs.example.net"' in body           # what was typed stays in the form
    assert conf.read_text() == before


def test_page_says_when_the_settings_wait_for_the_next_boot(tmp_path):
    conf, _fifo = page_options(tmp_path)

    async def scenario(web):
        await web.post("/settings/system", GOOD)
        return await web.flash("/settings/system")
    flash = run_webui(tmp_path, "", scenario, system_config=str(conf),
                      system_apply=str(tmp_path / "absent"))
    assert flash.startswith("Saved the system settings. Not applied yet: cannot reach the service")
    assert flash.endswith("they take effect at the next boot.")


# --- the image's init scripts reading the file ----------------------------------------------

def init_script(name, action, conf, tmp_path):
    env = dict(os.environ, SYSTEM_CONF=str(conf),
               IKECORE_LIBEXEC=os.path.join(OVERLAY, "usr", "libexec", "ikecore"),
               PATH="%s:%s" % (tmp_path, os.environ["PATH"]))
    logger = tmp_path / "logger"          # the scripts' log lines, instead of the host's syslog
    logger.write_text("#!/bin/sh\necho \"logger $*\" >> %s/log\n" % tmp_path)
    logger.chmod(0o755)
    return subprocess.run(["sh", os.path.join(OVERLAY, "etc", "init.d", name), action],
                          env=env, capture_output=True, text=True, check=True).stdout


def test_init_scripts_turn_the_saved_file_into_chrony_and_rsyslog_configurations(tmp_path):
    conf = tmp_path / "system.conf"
    system_settings.save(str(conf), system_settings.validate(GOOD))
    chrony = init_script("S45ntpd", "config", conf, tmp_path)
    assert chrony.startswith("server ntp1.example.net iburst\nserver 192.0.2.123 iburst\n"
                             "server 2001:db8::123 iburst\n")
    assert "acquisitionport 123\n" in chrony and "makestep 1 -1\n" in chrony
    rsyslog = init_script("S11syslog", "config", conf, tmp_path)
    assert 'action(type="omfwd" target="logs.example.net" port="6514" protocol="tcp"' in rsyslog
    assert 'template="RSYSLOG_SyslogProtocol23Format"' in rsyslog
    assert 'file="/data/log/messages"' in rsyslog

    system_settings.save(str(conf), system_settings.validate({}))
    assert init_script("S45ntpd", "config", conf, tmp_path) == ""       # no NTP servers
    assert "omfwd" not in init_script("S11syslog", "config", conf, tmp_path)


def test_init_scripts_never_run_a_hand_edited_file(tmp_path):
    conf = tmp_path / "system.conf"
    marker = tmp_path / "ran"
    conf.write_text("NTP_SERVERS=a.example $(touch %s)\nSYSLOG_SERVER=`touch %s`\n"
                    "SYSLOG_PORT=514\"; touch %s\n" % (marker, marker, marker))
    assert init_script("S45ntpd", "config", conf, tmp_path) == ""
    assert "omfwd" not in init_script("S11syslog", "config", conf, tmp_path)
    assert not marker.exists()
    log = (tmp_path / "log").read_text()
    assert "NTP_SERVERS has a character other than" in log
    assert "SYSLOG_SERVER has a character other than" in log
