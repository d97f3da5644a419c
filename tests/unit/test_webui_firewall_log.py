"""firewall_log parses the kernel's nf_log lines (as busybox syslogd / rsyslog store them) that
carry our nftables prefix `fw:<iface>:<in|out|fwd>:<verdict> `."""
from webui import system_log
from webui.firewall_log import matches, parse_line, parse_lines

BUSYBOX_ESP = ("Nov 25 14:00:02 router kern.warn kernel: [   13.000001] fw:eth0:in:drop IN=eth0 "
               "OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=198.51.100.2 "
               "DST=203.0.113.1 LEN=136 TOS=0x00 PREC=0x00 TTL=64 ID=4242 DF PROTO=ESP "
               "SPI=0xa2b3d4 ")
RSYSLOG_IKE = ("2026-11-25T14:00:01.123456+00:00 gw kernel: [ 1.5] fw:eth0:out:accept IN= "
               "OUT=eth0 SRC=203.0.113.1 DST=198.51.100.2 LEN=368 TOS=0x00 PREC=0x00 TTL=64 "
               "ID=7 DF PROTO=UDP SPT=4500 DPT=4500 LEN=348 ")
FORWARD_TCP = ("Nov  5 09:07:04 router kern.warn kernel: fw:eth1:fwd:accept IN=eth1 OUT=eth0 "
               "MAC=52:54:00:aa:bb:cc:52:54:00:dd:ee:ff:08:00 SRC=192.168.1.10 DST=10.2.0.5 "
               "LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=1 DF PROTO=TCP SPT=40000 DPT=22 "
               "WINDOW=64240 RES=0x00 SYN URGP=0 ")
ICMP = ("Nov 25 14:00:09 router kern.warn kernel: fw:eth1:in:drop IN=eth1 OUT= SRC=192.168.1.10 "
        "DST=192.168.1.1 LEN=84 TOS=0x00 PREC=0x00 TTL=64 ID=0 DF PROTO=ICMP TYPE=8 CODE=0 "
        "ID=3 SEQ=1 ")


def test_esp_line_from_busybox_syslogd():
    entry = parse_line(BUSYBOX_ESP)
    assert entry.as_dict() == {
        "time": "Nov 25 14:00:02", "interface": "eth0", "direction": "in", "verdict": "drop",
        "protocol": "ESP", "src": "198.51.100.2", "dst": "203.0.113.1", "sport": None,
        "dport": None, "spi": "0x00a2b3d4", "in_iface": "eth0", "out_iface": None,
        "length": 136, "icmp_type": None}


def test_ike_over_udp_from_rsyslog_with_iso_time():
    entry = parse_line(RSYSLOG_IKE)
    assert entry.time == "2026-11-25T14:00:01.123456+00:00"
    assert (entry.interface, entry.direction, entry.verdict) == ("eth0", "out", "accept")
    assert (entry.protocol, entry.sport, entry.dport) == ("UDP", 4500, 4500)
    assert entry.length == 368          # the IP length, not the UDP one after it
    assert entry.out_iface == "eth0" and entry.in_iface is None


def test_forwarded_tcp_and_icmp():
    tcp = parse_line(FORWARD_TCP)
    assert (tcp.time, tcp.direction, tcp.protocol, tcp.sport, tcp.dport) == (
        "Nov  5 09:07:04", "fwd", "TCP", 40000, 22)
    icmp = parse_line(ICMP)
    assert icmp.protocol == "ICMP" and icmp.icmp_type == 8 and icmp.dport is None


def test_other_lines_are_ignored_and_newest_comes_first():
    lines = [RSYSLOG_IKE, "Nov 25 14:00:03 router daemon.info ikecore: phase 1 done",
             "kernel: random fw: text without our prefix", BUSYBOX_ESP, FORWARD_TCP]
    entries = parse_lines(lines)
    assert [e.protocol for e in entries] == ["TCP", "ESP", "UDP"]


def test_filters():
    esp, tcp = parse_line(BUSYBOX_ESP), parse_line(FORWARD_TCP)
    assert matches(esp, protocol="esp") and not matches(tcp, protocol="esp")
    assert matches(tcp, interface="eth1") and not matches(esp, interface="eth1")
    assert matches(esp, addresses={"198.51.100.2"}) and not matches(tcp, addresses={"198.51.100.2"})
    assert matches(esp, verdict="drop") and not matches(tcp, verdict="drop")


def test_file_source_reads_only_the_tail(tmp_path, monkeypatch):
    import asyncio
    log = tmp_path / "messages"
    log.write_text("x" * 100 + "\n" + FORWARD_TCP + "\n" + BUSYBOX_ESP + "\n")
    monkeypatch.setattr(system_log, "READ_TAIL_BYTES", len(BUSYBOX_ESP) + len(FORWARD_TCP) + 10)
    lines = asyncio.run(system_log.LogSource(str(log)).read_lines())
    assert [e.protocol for e in parse_lines(lines)] == ["ESP", "TCP"]
    assert asyncio.run(system_log.LogSource(str(tmp_path / "absent")).read_lines()) == []


def test_logread_command_source(tmp_path):
    import asyncio
    fake_logread = tmp_path / "logread"
    fake_logread.write_text("#!/bin/sh\ncat <<'EOF'\n%s\nEOF\n" % BUSYBOX_ESP)
    fake_logread.chmod(0o755)
    source = system_log.LogSource(command=str(fake_logread))
    lines = asyncio.run(source.read_lines())
    assert parse_lines(lines)[0].spi == "0x00a2b3d4"
