"""The VPN log page's entries: the daemon's lines as rsyslog keeps them on the data partition
(webui.system_log), merged with the daemon's in-memory ring without duplicates, newest first, so
lines from before a reboot or a daemon restart are shown too."""
import datetime

from webui.system_log import merge_vpn, parse_vpn_line, vpn_entries


def stamp(seconds):
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat()


def line(seconds, severity, message, tag="ikecore"):
    return "%s router daemon.%s %s: %s" % (stamp(seconds), severity, tag, message)


def test_rsyslog_and_busybox_lines_of_the_daemon():
    assert parse_vpn_line(line(1765108800.25, "info", "[branch] IKE SA ike-1 established")) \
        == {"time": 1765108800.25, "level": "info", "peer": "branch",
            "text": "IKE SA ike-1 established"}
    assert parse_vpn_line(line(1765108801, "err", "configuration not reloaded")) == {
        "time": 1765108801.0, "level": "error", "peer": None,
        "text": "configuration not reloaded"}
    assert parse_vpn_line("Dec  7 12:00:01 router daemon.warn ikecore: [hq] DPD: no answer") == {
        "time": "Dec  7 12:00:01", "level": "warning", "peer": "hq", "text": "DPD: no answer"}
    # the daemon's stderr through ikecore-respawn (facility user): copies of its lines skipped,
    # what it said before its log existed (a refused configuration at start) kept, as an error
    copy = "%s router user.notice ikecore: 2026-12-07 12:00:02,125 ikecore INFO [branch] up" % (
        stamp(1765108802.2))
    assert parse_vpn_line(copy) is None
    refused = ("%s router user.notice ikecore: ikecore: /etc/ikecore/ikecore.toml:7: "
               "peer[0].psk: must not be empty" % stamp(1765108803))
    assert parse_vpn_line(refused) == {
        "time": 1765108803.0, "level": "error", "peer": None,
        "text": "ikecore: /etc/ikecore/ikecore.toml:7: peer[0].psk: must not be empty"}
    assert parse_vpn_line("%s router user.notice ikecore: ikecore: warning: x" % stamp(1))[
        "level"] == "warning"
    for other in (line(1765108802, "info", "fw:eth0:in:drop SRC=1.2.3.4", tag="kernel"),
                  line(1765108802, "info", "system log on /data/log", tag="syslog"),
                  "garbage", ""):
        assert parse_vpn_line(other) is None


def test_merge_keeps_pre_reboot_lines_and_shows_each_line_once():
    before = [line(1000.0, "info", "[branch] IKE SA ike-1 established"),
              line(1001.0, "info", "ikecore stopping")]
    # after the reboot: a board without a battery logs at 1970-ish times until NTP steps it
    after = [line(5.010, "info", "ikecore starting: pid 812"),
             line(5.030, "info", "[branch] initiating main mode")]
    live = [{"time": 5.0, "level": "info", "peer": None, "text": "ikecore starting: pid 812"},
            {"time": 5.02, "level": "info", "peer": "branch", "text": "initiating main mode"},
            # not written by rsyslog yet
            {"time": 5.04, "level": "info", "peer": "branch", "text": "NAT-T: no NAT"}]
    entries = merge_vpn(vpn_entries(before + after), live, limit=100)
    assert [e["text"] for e in entries] == [
        "NAT-T: no NAT", "initiating main mode", "ikecore starting: pid 812",
        "ikecore stopping", "IKE SA ike-1 established"]
    assert entries[1] is live[1]                 # the daemon's own entry, not the copy
    assert merge_vpn(vpn_entries(before + after), live, limit=2) == [live[2], live[1]]


def test_the_same_text_again_later_is_not_a_duplicate():
    persisted = vpn_entries([line(100.0, "warning", "[hq] DPD: no answer"),
                             line(200.0, "warning", "[hq] DPD: no answer")])
    live = [{"time": 199.99, "level": "warning", "peer": "hq", "text": "DPD: no answer"}]
    merged = merge_vpn(persisted, live, limit=10)
    assert [e["time"] for e in merged] == [199.99, 100.0]


def test_daemon_down_or_no_system_log():
    persisted = vpn_entries([line(100.0, "info", "a"), line(101.0, "info", "b")])
    assert [e["text"] for e in merge_vpn(persisted, [], limit=10)] == ["b", "a"]
    live = [{"time": 1.0, "level": "info", "peer": None, "text": "x"}]
    assert merge_vpn([], live, limit=10) == live
