"""CRLs fetched from distribution points (ikecore.crl_fetch): the schedule's arithmetic without a
clock, the http:// URLs taken from certificates, and the fetcher against a real HTTP server this
test runs on loopback (fetched, cached, refused answers diagnosed, the cache read again after a
restart without the network)."""
import asyncio
import http.server
import os
import threading

import pytest
from cryptography.hazmat.primitives import serialization

from ikecore import crl_fetch as F
from ikecore.crl_fetch import Schedule
from webui_pki import Authority

DER = serialization.Encoding.DER
WALL = 1_800_000_000.0


def test_a_new_url_is_due_now_and_again_at_next_update():
    s = Schedule()
    assert s.want("http://ca/a.crl", 100.0) is True
    assert s.want("http://ca/a.crl", 100.0) is False          # once
    assert s.due(100.0) == ["http://ca/a.crl"]
    assert s.succeeded("http://ca/a.crl", 100.0, WALL + 3600, WALL) == 3600
    assert s.due(3699.0) == [] and s.due(3700.0) == ["http://ca/a.crl"]
    assert s.next_due() == 3700.0


def test_refetch_is_bounded_both_ways():
    s = Schedule()
    s.want("u", 0.0)
    # a CRL already past its nextUpdate (the CA is late): not in a loop
    assert s.succeeded("u", 0.0, WALL - 60, WALL) == F.REFETCH_MIN_S
    # a week away: still looked at after REFETCH_MAX_S (a CA may publish early)
    assert s.succeeded("u", 0.0, WALL + 7 * 86400, WALL) == F.REFETCH_MAX_S
    # no nextUpdate, or no synchronized clock to compare it with
    assert s.succeeded("u", 0.0, None, WALL) == F.REFETCH_MAX_S
    assert s.succeeded("u", 0.0, WALL + 600, None) == F.REFETCH_MAX_S


def test_failures_back_off_and_are_news_once():
    s = Schedule()
    s.want("u", 0.0)
    delays = []
    news = []
    now = 0.0
    for _ in range(8):
        news.append(s.failed("u", now, "connection refused"))
        delays.append(s.due_at["u"] - now)
        now = s.due_at["u"]
    assert delays == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert news == [True] + [False] * 7                     # logged once
    assert s.failed("u", now, "HTTP 404 Not Found") is True  # a new reason is news
    s.succeeded("u", now, WALL + 3600, WALL)
    assert s.errors["u"] is None
    assert s.failed("u", now, "HTTP 404 Not Found") is True  # news again after a success
    assert s.due_at["u"] - now == F.BACKOFF_MIN_S            # backoff restarts


def test_urls_are_bounded():
    s = Schedule()
    for i in range(F.MAX_URLS):
        s.want("http://x/%d" % i, 0.0)
    assert len(s.due_at) == F.MAX_URLS and not s.want("one more", 0.0)


def _with_cdp(authority, cn, urls):
    return authority.issue(cn, crl_urls=urls)[0]


def test_cdp_urls_takes_http_only_once_each():
    ca = Authority("CDP CA")
    a = _with_cdp(ca, "a", ["ldap://ldap.example/cn=CA", "http://crl.example/ca.crl"])
    b = _with_cdp(ca, "b", ["http://crl.example/ca.crl", "https://crl.example/ca.crl"])
    plain, _ = ca.issue("plain")
    assert F.cdp_urls([a.public_bytes(DER), b.public_bytes(DER), plain.public_bytes(DER),
                       b"not a certificate"]) == ["http://crl.example/ca.crl"]


class _Server:
    """A loopback HTTP server with a dict of path -> (status, body)."""

    def __init__(self):
        self.routes = {}
        routes = self.routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                status, body = routes.get(self.path, (404, b"not here"))
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def test_http_get_bounds_and_reasons(server):
    server.routes["/ok"] = (200, b"x" * 100)
    server.routes["/big"] = (200, b"x" * 5000)
    assert F.http_get(server.url + "/ok", limit=1000, timeout=5) == b"x" * 100
    with pytest.raises(F.FetchError, match="larger than 1000 bytes"):
        F.http_get(server.url + "/big", limit=1000, timeout=5)
    with pytest.raises(F.FetchError, match="HTTP 404"):
        F.http_get(server.url + "/missing", timeout=5)
    port = server.httpd.server_address[1]
    server.close()
    with pytest.raises(F.FetchError, match="refused"):
        F.http_get("http://127.0.0.1:%d/ok" % port, timeout=5)
    server.close = lambda: None


class _Log:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(("info", text))

    def error(self, text):
        self.lines.append(("error", text))


def test_fetcher_fetches_caches_diagnoses_and_restarts_from_cache(server, tmp_path):
    ca = Authority("Fetch CA")
    crl = ca.crl()
    server.routes["/ca.crl"] = (200, crl.public_bytes(DER))
    server.routes["/broken.crl"] = (200, b"<html>not a CRL</html>")
    good = _with_cdp(ca, "good", [server.url + "/ca.crl"]).public_bytes(DER)
    broken = _with_cdp(ca, "broken", [server.url + "/broken.crl"]).public_bytes(DER)
    directory = str(tmp_path / "certs" / "crl" / ".fetched")

    async def run(watch, until):
        loop = asyncio.get_running_loop()
        log, changes = _Log(), []
        fetcher = F.CrlFetcher(loop, log, directory, lambda: None,
                               lambda: changes.append(len(fetcher.ders())))
        cached = fetcher.ders()
        fetcher.start()
        fetcher.watch(watch)
        for _ in range(500):
            if until(fetcher, log):
                break
            await asyncio.sleep(0.02)
        fetcher.stop()
        return fetcher, log, changes, cached

    fetcher, log, changes, cached = asyncio.run(run(
        [good, broken], lambda f, log: len(log.lines) >= 2))
    assert cached == [] and changes == [1]
    assert fetcher.ders() == [crl.public_bytes(DER)]
    assert ("error", "CRL fetch from %s/broken.crl failed: the answer is not a PEM or DER "
            "X.509 CRL" % server.url) in log.lines
    assert any(level == "info" and "fetched from %s/ca.crl" % server.url in text
               for level, text in log.lines), log.lines
    assert sorted(os.listdir(directory)) == sorted(
        [F.INDEX, fetcher.cache.index[server.url + "/ca.crl"]["file"]])

    # The page reads the same index
    from webui import certstore
    shown = {e["url"]: e for e in certstore.fetched_crls(str(tmp_path))}
    assert shown[server.url + "/ca.crl"]["info"]["issuer"] == "CN=Fetch CA,O=ikecore test"
    assert shown[server.url + "/ca.crl"]["error"] is None
    assert shown[server.url + "/broken.crl"]["info"] is None
    assert "not a PEM or DER" in shown[server.url + "/broken.crl"]["error"]

    # Restart with the server gone: the cached CRL is there before any fetch, the failure is
    # logged once saying the cached copy stays
    server.routes.clear()
    fetcher, log, changes, cached = asyncio.run(run(
        [good], lambda f, log: any("ca.crl failed" in t for _, t in log.lines)))
    assert cached == [crl.public_bytes(DER)]
    assert ("error", "CRL fetch from %s/ca.crl failed: HTTP 404 Not Found (the cached CRL "
            "stays in use)" % server.url) in log.lines
    assert fetcher.ders() == [crl.public_bytes(DER)]
    shown = {e["url"]: e for e in certstore.fetched_crls(str(tmp_path))}
    assert shown[server.url + "/ca.crl"]["error"] == "HTTP 404 Not Found"
    assert shown[server.url + "/ca.crl"]["info"] is not None


def test_cache_makes_the_stores_directories_group_writable(tmp_path):
    """Before any CRL is uploaded certs/crl/ may not exist: the daemon (root) makes it as the web
    UI's store would (group-writable), so later uploads still work; its own directory 0755."""
    config_dir = tmp_path / "ikecore"
    config_dir.mkdir()
    os.chmod(config_dir, 0o2770)
    cache = F.Cache(str(config_dir / F.CACHE_DIR))
    cache.store("http://ca.example/ca.crl", b"der", {"issuer": "CN=x"})
    for path, mode in (("certs", 0o2770), ("certs/crl", 0o2770), ("certs/crl/.fetched", 0o755)):
        assert os.stat(config_dir / path).st_mode & 0o7777 == mode, path
    assert F.Cache(str(config_dir / F.CACHE_DIR)).ders() == {"http://ca.example/ca.crl": b"der"}
