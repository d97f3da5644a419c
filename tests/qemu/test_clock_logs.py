"""The clock and the logs in the booted image (issue 16): a router that boots in 1970 (no RTC
battery) gets the time from an NTP server on the host side of its WAN -- set on the System page,
reached outside a 0.0.0.0/0 tunnel -- and only then enforces certificate dates; its log outlives a
reboot on the data partition, bounded by rotation, and reaches a remote log server as RFC 5424
over UDP and TCP. The NTP server and the log servers are small ones this file runs on the host's
loopback; the guest's user-mode WAN reaches them through 10.0.2.2."""
import datetime
import html
import http.cookiejar
import re
import secrets
import socket
import struct
import threading
import time
import urllib.parse
import urllib.request

import pytest

from conftest import boot_router

HOST = "10.0.2.2"                  # the host's loopback as the guest's WAN sees it
NTP_EPOCH = 2208988800             # 1900-01-01 -> 1970-01-01 in seconds
LOG_KB = 16                        # ikecore.log_kb: the log rotates after 16 KiB
PASSWORD = "clock-test-password"
DEAD_PEER = "203.0.113.99"
TUNNEL_REQID = 0x77                # outside the daemon's range: its flush leaves this tunnel alone


class SntpServer:
    """Answers every NTP client request (mode 3) with the host's clock, as a stratum-1 server
    (RFC 5905's packet; the originate timestamp is the request's transmit timestamp)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    @staticmethod
    def timestamp(t):
        seconds = int(t) + NTP_EPOCH
        return struct.pack("!II", seconds, int((t % 1) * 2 ** 32))

    def _serve(self):
        while True:
            try:
                data, client = self.sock.recvfrom(1024)
            except OSError:
                return
            if len(data) < 48 or data[0] & 7 != 3:
                continue
            self.requests += 1
            received = time.time()
            version = (data[0] >> 3) & 7
            header = struct.pack("!BBbbII4s", (version << 3) | 4, 1, data[2], -20, 0, 16, b"TEST")
            reply = (header + self.timestamp(received - 1) + data[40:48] + self.timestamp(received)
                     + self.timestamp(time.time()))
            self.sock.sendto(reply, client)

    def close(self):
        self.sock.close()


class SyslogListener:
    """A log server: UDP datagrams, or TCP with RFC 6587 octet-counted frames, as text messages."""

    def __init__(self, protocol):
        kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
        self.sock = socket.socket(socket.AF_INET, kind)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.messages = []
        self.cond = threading.Condition()
        if protocol == "tcp":
            self.sock.listen(4)
        threading.Thread(target=self._udp if protocol == "udp" else self._tcp, daemon=True).start()

    def _add(self, data):
        with self.cond:
            self.messages.append(data.decode("utf-8", "replace"))
            self.cond.notify_all()

    def _udp(self):
        while True:
            try:
                self._add(self.sock.recv(65536))
            except OSError:
                return

    def _tcp(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._frames, args=(conn,), daemon=True).start()

    def _frames(self, conn):
        buf = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            while b" " in buf:
                length, _, rest = buf.partition(b" ")
                assert length.isdigit(), "not an octet-counted frame: %r" % buf[:80]
                if len(rest) < int(length):
                    break
                self._add(rest[:int(length)])
                buf = rest[int(length):]

    def wait_for(self, text, timeout=120):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [m for m in self.messages if text in m]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no message with %r within %d s; got %r"
                                         % (text, timeout, self.messages[-5:]))
                self.cond.wait(left)

    def close(self):
        self.sock.close()


class Page:
    """The LAN web UI as a browser uses it: a session cookie and the page's CSRF token."""

    def __init__(self, router):
        self.base = router.lan_url.rstrip("/")
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.csrf = ""

    def get(self, path):
        return self._open(path, None)

    def post(self, path, fields):
        return self._open(path, urllib.parse.urlencode(dict(fields, csrf_token=self.csrf)).encode())

    def _open(self, path, data):
        """The page's text (after redirects); keeps the session's CSRF token from it."""
        with self.opener.open(self.base + path, data, timeout=180) as response:
            text = response.read().decode()
        match = re.search(r'name="csrf-token" content="([^"]*)"', text)
        if match and match.group(1):
            self.csrf = match.group(1)
        return text

    def login(self, password):
        self.get("/login")
        text = self.post("/login", {"password": password, "next": "/"})
        if 'action="/password"' in text:     # the first login: a new password first
            self.post("/password", {"current": password, "new": PASSWORD, "confirm": PASSWORD})


@pytest.fixture(scope="module")
def servers():
    ntp, udp, tcp = SntpServer(), SyslogListener("udp"), SyslogListener("tcp")
    yield ntp, udp, tcp
    for server in (ntp, udp, tcp):
        server.close()


@pytest.fixture(scope="module")
def clock_router(tmp_path_factory):
    r = boot_router(tmp_path_factory.mktemp("clock"), "clock", wan_restrict=False,
                    rtc="1970-01-01", cmdline="ikecore.log_kb=%d" % LOG_KB)
    r.wait_http(timeout=180)
    yield r
    r.stop()


def wait_in_guest(router, condition, timeout=180):
    """Poll a shell condition in the guest (a bound on the wait, not an assertion on time)."""
    router.check("i=0; until %s; do i=$((i+1)); [ $i -gt %d ] && exit 1; sleep 1; done"
                 % (condition, timeout), timeout=timeout + 30)


def test_boots_in_1970_with_dates_not_enforced(clock_router):
    assert clock_router.check("date -u +%Y").strip() == "1970"
    assert clock_router.run("test -e /run/ikecore/clock-synced").status != 0
    assert '"clock_synchronized": false' in clock_router.check("ikectl status --summary --json")
    log = clock_router.check("logread")
    assert "certificate dates are not enforced until it is" in log, log
    page = Page(clock_router)
    page.login("admin")
    text = page.get("/settings/system")
    assert "The clock is not synchronized yet" in text
    assert "certificate validity dates are not enforced" in text


TUNNEL_0_0 = f"""
wan=$(ip -4 -o addr show eth0 | awk '{{print $4}}' | cut -d/ -f1)
ip xfrm policy add src $wan/32 dst 0.0.0.0/0 dir out priority 1000 \
    tmpl src $wan dst {DEAD_PEER} proto esp mode tunnel reqid {TUNNEL_REQID} level required
ip xfrm policy add src 0.0.0.0/0 dst $wan/32 dir in priority 1000 \
    tmpl src {DEAD_PEER} dst $wan proto esp mode tunnel reqid {TUNNEL_REQID} level required
"""
SEND_UDP = ("python3 -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.bind(('', 40000)); s.sendto(b'x', ('%s', 9))\"" % HOST)


def test_ntp_from_the_page_sets_the_clock_outside_a_0_0_0_0_tunnel(clock_router, servers):
    ntp, udp, _tcp = servers
    r = clock_router
    # a tunnel to 0.0.0.0/0 (and from it) for the router's WAN address, to a peer that never
    # answers: it takes everything the router itself sends on WAN (a datagram from another port
    # starts a negotiation: a larval SA). The LAN (the page) stays outside it.
    r.check(TUNNEL_0_0)
    r.check(SEND_UDP)
    states = r.check("ip xfrm state")
    assert f"dst {DEAD_PEER}" in states and "sport 40000 dport 9" in states, states
    # the test's NTP server listens on a free port of the host: NTP to port 123 goes there
    r.check("nft add table ip ntptest && "
            "nft 'add chain ip ntptest out { type nat hook output priority -100; }' && "
            f"nft add rule ip ntptest out ip daddr {HOST} udp dport 123 dnat to {HOST}:{ntp.port}")
    page = Page(r)
    page.login(PASSWORD)
    flash = page.post("/settings/system", {"ntp_servers": HOST, "syslog_server": HOST,
                                           "syslog_port": str(udp.port), "syslog_protocol": "udp"})
    assert "Saved the system settings. The router applies them now." in flash

    wait_in_guest(r, "test -e /run/ikecore/clock-synced")
    assert ntp.requests > 0
    assert abs(int(r.check("date +%s")) - time.time()) < 60
    log = r.check("logread")
    assert f"ntp: clock synchronized by NTP server {HOST}" in log, log
    assert "certificate dates are enforced from now on" in log
    # the daemon notices the stamp when asked (or on its next datagram) and logs it
    wait_in_guest(r, "ikectl status --summary >/dev/null; "
                     "logread | grep -q 'clock synchronized by NTP: certificate dates are enforced'")
    assert '"clock_synchronized": true' in r.check("ikectl status --summary --json")
    assert "The clock is synchronized by NTP" in page.get("/settings/system")
    # NTP itself never went into the tunnel: no negotiation was started for port 123
    states = r.check("ip xfrm state")
    assert "sport 123" not in states, states
    r.check("ip xfrm policy flush")          # the test's tunnel and the bypass ...
    r.check("/etc/init.d/S45ntpd stop; /etc/init.d/S45ntpd start")   # ... which comes back
    assert "sport 123" in r.check("ip xfrm policy")
    # the remote log server gets the log as RFC 5424: <PRI>1 TIMESTAMP HOSTNAME APP PROCID MSGID
    # SD MSG (the log server is reached like any other host: the test's tunnel would have taken it)
    token = secrets.token_hex(6)
    r.check(f"logger -t remotetest -p daemon.warning hello-udp-{token}")
    message = udp.wait_for(f"hello-udp-{token}")
    # facility daemon (3) * 8 + warning (4); the guest's clock is now the host's
    assert re.match(r"<28>1 %s-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\S+ \S+ remotetest - - - hello-udp-"
                    % time.strftime("%Y"), message), message


def test_remote_syslog_over_tcp(clock_router, servers):
    _ntp, _udp, tcp = servers
    page = Page(clock_router)
    page.login(PASSWORD)
    page.post("/settings/system", {"ntp_servers": HOST, "syslog_server": HOST,
                                   "syslog_port": str(tcp.port), "syslog_protocol": "tcp"})
    wait_in_guest(clock_router, "grep -q 'protocol=\"tcp\"' /run/rsyslog.conf")
    token = secrets.token_hex(6)
    clock_router.check(f"logger -t remotetest -p daemon.warning hello-tcp-{token}")
    message = tcp.wait_for(f"hello-tcp-{token}")
    # facility daemon (3) * 8 + warning (4)
    assert re.match(r"<28>1 \S+ \S+ remotetest - - - hello-tcp-", message), message


def test_bad_setting_is_refused_naming_the_field(clock_router):
    page = Page(clock_router)
    page.login(PASSWORD)
    before = clock_router.check("cat /etc/ikecore/system.conf")
    with pytest.raises(urllib.error.HTTPError) as caught:
        page.post("/settings/system", {"ntp_servers": "ntp..example", "syslog_port": "514"})
    assert caught.value.code == 400
    assert "is neither an IP address nor a host name" in caught.value.read().decode()
    assert clock_router.check("cat /etc/ikecore/system.conf") == before


def test_log_rotates_within_its_bound(clock_router):
    r = clock_router
    # ~40 KiB of log lines: more than twice the 16 KiB limit
    r.check("i=0; while [ $i -lt 400 ]; do logger -t filler \"line $i $(printf '%080d' 0)\"; "
            "i=$((i+1)); done", timeout=300)
    r.check("logger -t filler last-line")
    wait_in_guest(r, "logread | grep -q 'filler: last-line'")
    sizes = [int(x) for x in r.check("stat -c %s /data/log/messages /data/log/messages.1").split()]
    line_max = 1024                         # the limit is checked after a write
    assert all(size <= LOG_KB * 1024 + line_max for size in sizes), sizes
    numbers = [int(m) for m in re.findall(r"filler: line (\d+) ", r.check("logread"))]
    assert numbers == sorted(numbers) and numbers[-1] == 399, numbers[-5:]
    assert numbers[0] > 0                    # the oldest lines were dropped


LOOKUP = ("timeout 20 python3 -c \"import socket; socket.getaddrinfo('ntp.example.test', 123)\"; "
          "timeout 10 python3 -c \"import socket; socket.create_connection(('%s', 53), 5)\"; true")


def test_the_routers_dns_goes_outside_a_0_0_0_0_tunnel(clock_router):
    """The resolvers the DHCP lease named (QEMU's 10.0.2.3) get bypass policies for UDP and TCP
    port 53 from the router's WAN address (dns-bypass, run by the DHCP hook), so a tunnel taking
    everything the router sends does not take its DNS queries (the NTP servers' names, DNS-named
    gateways): no negotiation is started for port 53. Without those policies the same lookups
    start one: what this test would see if they were missing."""
    r = clock_router
    resolvers = re.findall(r"^nameserver (\S+)", r.check("cat /etc/resolv.conf"), re.M)
    assert resolvers, r.check("cat /etc/resolv.conf")
    wan = r.check("ip -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1").strip()
    policies = r.check("ip xfrm policy")
    for ns in resolvers:
        for proto in ("udp", "tcp"):
            assert re.search(r"src %s/32 dst %s/32 \s*proto %s dport 53\s+dir out priority 101"
                             % (re.escape(wan), re.escape(ns), proto), policies), policies
            assert re.search(r"src %s/32 dst %s/32 \s*proto %s sport 53\s+dir in priority 101"
                             % (re.escape(ns), re.escape(wan), proto), policies), policies
    r.check(TUNNEL_0_0)
    # The kernel holds one ACQUIRE (larval state) per template until it expires (30 s) and
    # raises no new one meanwhile, so nothing but the lookups may start one: the remote syslog
    # the earlier tests set up (to the host, HOST) bypasses the test's tunnel, and each lookup
    # starts with no larval state.
    r.check(f"ip xfrm policy add src {wan}/32 dst {HOST}/32 dir out priority 100")
    try:
        r.check("ip xfrm state flush; " + LOOKUP % resolvers[0], timeout=60)
        states = r.check("ip xfrm state")
        assert "dport 53" not in states, states
        r.check("RESOLV_CONF=/dev/null /usr/libexec/ikecore/dns-bypass")   # the bypasses go
        assert "dport 53" not in r.check("ip xfrm policy")
        r.check("ip xfrm state flush; " + LOOKUP % resolvers[0], timeout=60)
        states = r.check("ip xfrm state")
        assert "dport 53" in states, states               # now the tunnel took them
    finally:
        r.check("ip xfrm policy flush; ip xfrm state flush; /usr/libexec/ikecore/dns-bypass; "
                "/etc/init.d/S45ntpd stop; /etc/init.d/S45ntpd start")
    assert "dport 53" in r.check("ip xfrm policy")


def test_logs_survive_a_reboot(clock_router):
    """Last in this module: it reboots. A VPN log line (the daemon's), a firewall log line (a
    packet dropped on WAN) and one of ours are still there afterwards, the firewall log page
    shows the dropped packet, and the VPN log page the daemon's line from before the reboot
    (with its time then), below the new daemon's own entries."""
    r = clock_router
    token = secrets.token_hex(6)
    r.check(f"logger -t persisttest {token}")
    r.check("ikectl reload")                  # the daemon logs it: a VPN log line
    wait_in_guest(r, "logread | grep -q 'ikecore: configuration reloaded'")
    with pytest.raises(OSError):
        urllib.request.urlopen(r.wan_url, timeout=5).read()       # dropped on WAN: logged
    wait_in_guest(r, "logread | grep -q 'fw:eth0:in:drop .*DPT=80 '")
    before = r.check("logread")
    vpn = [l for l in before.splitlines() if " ikecore: " in l]
    assert vpn, before
    r.reboot(timeout=300)
    after = r.check("logread")
    assert f"persisttest: {token}" in after
    assert vpn[-1] in after
    assert "fw:eth0:in:drop" in after
    r.wait_http(timeout=180)
    page = Page(r)
    page.login(PASSWORD)
    firewall = page.get("/log/firewall?interface=eth0&verdict=drop")
    assert re.search(r'<td data-label="Destination" class="mono">[0-9.]+:80</td>', firewall), firewall
    daemon = [m for m in (re.match(r"^(\S+) \S+ daemon\.\w+ ikecore: (.*)$", line)
                          for line in vpn) if m]
    assert daemon, vpn[-5:]
    stamp, message = daemon[-1].groups()
    message = re.sub(r"^\[[^\]\s]+\] ", "", message)
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(
        datetime.datetime.fromisoformat(stamp).timestamp()))       # the guest runs on UTC
    rows = [(cell_time, html.unescape(re.sub(r"<[^>]+>", "", text))) for cell_time, text in
            re.findall(r'<td data-label="Time" class="mono">([^<]*)</td>.*?'
                       r'<td data-label="Message"><span>(.*?)</span></td>',
                       page.get("/log/vpn"), re.S)]
    assert rows.count((when, message)) == 1, (when, message, rows[:20])
    started = next(i for i, (_, t) in enumerate(rows) if t.startswith("ikecore started"))
    assert rows.index((when, message)) > started         # below (older than) the new start
    # the daemon's stderr copies in the system log (ikecore-respawn, facility user) are not shown
    assert not [t for _, t in rows if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ikecore ", t)]
