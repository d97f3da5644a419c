"""The status page, /api/status, /metrics and Delete with many tunnels (issue 11, item 3), over
real HTTP against the fake control socket: paged and filtered pages, checked parameters, the
summary line, counts from `summary`, and never a pull of every SA once the router is big."""
import json
import os
import re

import pytest

from webui_fake_daemon import FakeDaemon, many_tunnels
from webui_harness import Client, ThreadedWebui

from webui import auth, metrics
from webui.context import Options
from webui.views_status import PAGE_SIZE

PASSWORD = "correct-password"
TUNNELS = 120


def big_status(n=TUNNELS):
    """n tunnels: every 10th peer negotiating (state 5), every 25th idle (no SAs of its own)."""
    status = many_tunnels(n)
    for i, ike in enumerate(status["ike_sas"]):
        if i % 25 == 3:
            ike.update(status="Idle", state=0)
        elif i % 10 == 7:
            ike.update(status="Negotiating", state=5)
    return status


@pytest.fixture
def env(tmp_path):
    socket_path = str(tmp_path / "control.sock")
    fake = FakeDaemon(socket_path, big_status()).start()
    server = ThreadedWebui(Options(socket_path, str(tmp_path),
                                   str(tmp_path / "ikecore.toml"))).start()
    auth.PasswordStore(str(tmp_path)).set(PASSWORD)
    client = Client(server.port)
    assert client.login(PASSWORD).status == 303
    yield fake, client
    server.stop()
    fake.stop()


def ike_rows(html):
    return re.findall(r'<tr id="ike-(ike-\d+)"', html)


def full_status_pulls(fake):
    """Status requests that asked for every SA (no selection)."""
    return [r for r in fake.requests if r["cmd"] == "status" and len(r) == 1]


def link(html, element_id):
    match = re.search(r'<a href="([^"]*)" id="%s"( hidden)?>' % element_id, html)
    return match.group(1).replace("&amp;", "&"), match.group(2) is None


def test_first_page_of_many_peers_with_summary_line_and_pager(env):
    fake, client = env
    page = client.get("/")
    assert page.status == 200
    assert ike_rows(page.text) == ["ike-%d" % i for i in range(PAGE_SIZE)]
    assert len(re.findall(r'<tr id="sa-', page.text)) == 2 * PAGE_SIZE
    assert ('<p class="summary" id="summary">120 peers: 103 up, 12 negotiating, 5 idle'
            ' · 120 IKE SAs · 240 SAs</p>') in page.text
    assert '<span id="pager-text">Peers 1–50 of 120</span>' in page.text
    assert link(page.text, "pager-previous") == ("/", False)        # hidden on the first page
    assert link(page.text, "pager-next") == ("/?offset=50", True)
    # app.js keeps polling this page, not the whole status
    assert 'data-api="/api/status?limit=50"' in page.text
    assert {"cmd": "status", "limit": PAGE_SIZE} in fake.requests
    assert full_status_pulls(fake) == []


def test_next_pages_and_the_last_one(env):
    fake, client = env
    second = client.get("/?offset=50")
    assert ike_rows(second.text) == ["ike-%d" % i for i in range(50, 100)]
    assert link(second.text, "pager-previous") == ("/", True)
    last = client.get(link(second.text, "pager-next")[0])
    assert ike_rows(last.text) == ["ike-%d" % i for i in range(100, 120)]
    assert '<span id="pager-text">Peers 101–120 of 120</span>' in last.text
    assert link(last.text, "pager-previous") == ("/?offset=50", True)
    assert link(last.text, "pager-next")[1] is False
    assert full_status_pulls(fake) == []


def test_filter_and_status_choice_stay_in_the_links(env):
    fake, client = env
    page = client.get("/?filter=peer11&limit=5")
    # peer11, peer110 ... peer119: 11 peers match, 5 a page
    assert ike_rows(page.text) == ["ike-11"] + ["ike-%d" % i for i in range(110, 114)]
    assert "Peers 1–5 of 11 matching (120 peers)" in page.text
    assert link(page.text, "pager-next") == ("/?limit=5&filter=peer11&offset=5", True)
    assert 'name="filter" value="peer11"' in page.text
    assert '<input type="hidden" name="limit" value="5">' in page.text
    by_gateway = client.get("/?filter=198.51.100.12")          # gateway of peer10 and peer100..
    assert "ike-10" in ike_rows(by_gateway.text)

    negotiating = client.get("/?status=Negotiating")
    rows = ike_rows(negotiating.text)
    assert rows and all(int(r.split("-")[1]) % 10 == 7 for r in rows)
    assert "Peers 1–12 of 12 matching (120 peers)" in negotiating.text
    assert '<option value="Negotiating" selected>' in negotiating.text
    assert {"cmd": "status", "status": "Negotiating", "limit": PAGE_SIZE} in fake.requests
    assert "No peers match." in client.get("/?filter=nobody").text
    assert full_status_pulls(fake) == []


@pytest.mark.parametrize("query, named", [
    ("offset=-1", "'offset' must be an integer from 0 up, not -1"),
    ("offset=ten", "'offset' must be an integer from 0 up, not 'ten'"),
    ("limit=1.5", "'limit' must be an integer from 1 to 1000, not '1.5'"),
    ("limit=1001", "'limit' must be an integer from 1 to 1000, not 1001"),
    ("limit=0", "'limit' must be an integer from 1 to 1000, not 0"),
    ("status=Up", "'status' must be one of Activated, Negotiating, Idle, not 'Up'"),
    ("limit=5&limit=6", "'limit' is given 2 times: give it once"),
    ("peer=peer1&limit=5", "'peer' shows one peer: it does not go with 'limit'"),
])
def test_bad_parameters_are_refused_with_their_name(env, query, named):
    fake, client = env
    api = client.get("/api/status?" + query)
    assert api.status == 400 and json.loads(api.body) == {"error": named}
    page = client.get("/?" + query)
    assert page.status == 400 and named.replace("'", "&#39;") in page.text
    assert not [r for r in fake.requests if r["cmd"] == "status"]     # the daemon is not asked


def test_api_status_pages_pass_through_and_without_parameters_is_everything(env):
    fake, client = env
    everything = client.get("/api/status")
    assert json.loads(everything.body) == big_status() and "page" not in json.loads(everything.body)
    page = json.loads(client.get("/api/status?offset=10&limit=2").body)
    assert page["page"] == {"offset": 10, "limit": 2, "matching": 120, "peers": 120}
    assert [i["id"] for i in page["ike_sas"]] == ["ike-10", "ike-11"]
    assert [s["ike_sa"] for s in page["sas"]] == ["ike-10"] * 2 + ["ike-11"] * 2
    assert set(page) == {"ike_sas", "sas", "page"}
    filtered = json.loads(client.get("/api/status?filter=peer11&status=Activated&offset=").body)
    assert filtered["page"]["matching"] == 11 - 1                       # peer117 negotiates
    assert {"cmd": "status", "filter": "peer11", "status": "Activated"} in fake.requests
    one = json.loads(client.get("/api/status?peer=peer7").body)
    assert [i["id"] for i in one["ike_sas"]] == ["ike-7"] and "page" not in one
    unknown = client.get("/api/status?peer=nobody")
    assert unknown.status == 400 and "unknown peer 'nobody'" in json.loads(unknown.body)["error"]


def test_api_summary_is_the_daemons_counts(env):
    fake, client = env
    summary = json.loads(client.get("/api/summary").body)
    assert summary["peers_by_status"] == {"Activated": 103, "Negotiating": 12, "Idle": 5}
    assert summary["ike_sas"] == 120 and summary["sas"] == 240


def test_few_peers_page_is_the_unpaged_tables(env):
    fake, client = env
    fake.set_status(big_status(PAGE_SIZE))
    page = client.get("/")
    assert len(ike_rows(page.text)) == PAGE_SIZE
    for paged_only in ('id="summary"', 'id="pager"', 'id="peer-filter"', "data-api="):
        assert paged_only not in page.text
    assert full_status_pulls(fake) == [{"cmd": "status"}]
    # asking for a filter shows the controls even then
    assert 'id="peer-filter"' in client.get("/?status=Idle").text


def test_metrics_of_a_big_router_come_from_the_summary(env):
    fake, client = env
    fake.set_status(big_status(400))             # 400 IKE SAs + 800 SAs > PER_SA_ROWS_MAX
    text = client.get("/metrics").text
    assert 'ikecore_ike_sas{status="Activated"} 344' in text
    assert 'ikecore_ike_sas{status="Negotiating"} 40' in text
    assert 'ikecore_ike_sas{status="Idle"} 16' in text
    assert "ikecore_sas 800" in text
    assert 'ikecore_peers{status="Negotiating"} 40' in text
    assert "ikecore_per_sa_series 0" in text and "ikecore_sa_bytes_total" not in text
    assert [r["cmd"] for r in fake.requests] == ["summary"]
    for line in text.splitlines():
        assert line.startswith("#") or re.match(r"^[a-z_][a-z0-9_]*(\{.*\})? -?\d+$", line), line

    fake.requests.clear()
    fake.set_status(big_status(metrics.PER_SA_ROWS_MAX // 3))      # 333 + 666 rows: they fit
    text = client.get("/metrics").text
    assert "ikecore_per_sa_series 1" in text
    assert re.search(r'ikecore_sa_bytes_total\{id="sa-c0000003",[^}]*\} 2000', text)
    assert [r["cmd"] for r in fake.requests] == ["summary", "status"]


def test_metrics_show_admission_control(env):
    fake, client = env
    status = big_status(10)
    status["admission"] = {"half_open": 640, "half_open_limit": 1000, "dh_in_flight": 3,
                           "dh_in_flight_limit": 200, "initiating": 0, "initiating_limit": 32,
                           "queued": 0, "refused": {"address": 1234, "total": 0, "dh": 7},
                           "expired_quietly": 55, "pushed_out": 9}
    fake.set_status(status)
    text = client.get("/metrics").text
    assert "ikecore_admission_half_open 640" in text
    assert "ikecore_admission_half_open_limit 1000" in text
    assert "ikecore_admission_dh_in_flight_limit 200" in text
    assert 'ikecore_admission_refused_total{bound="address"} 1234' in text
    assert 'ikecore_admission_refused_total{bound="dh"} 7' in text
    assert "ikecore_admission_expired_quietly_total 55" in text
    assert "ikecore_admission_pushed_out_total 9" in text


def test_delete_asks_for_that_sa_only_and_returns_to_the_page(env):
    fake, client = env
    back = "/?filter=peer11&offset=5&limit=5"
    ask = client.post("/delete", {"id": "sa-c00000e0", "confirmed": "0", "back": back})
    assert ask.status == 200 and "the ESP SA 0xc00000e0 (incoming)" in ask.text
    assert 'name="back" value="/?filter=peer11&amp;offset=5&amp;limit=5"' in ask.text
    done = client.post("/delete", {"id": "sa-c00000e0", "confirmed": "1", "back": back})
    assert done.status == 303 and done.header("location") == back
    assert {"cmd": "status", "id": "sa-c00000e0"} in fake.requests
    assert {"cmd": "delete", "id": "sa-c00000e0"} in fake.requests
    assert full_status_pulls(fake) == []
    assert "Deleted the ESP SA 0xc00000e0 (incoming)." in client.get(back).text
    # the page's delete form carries where it was
    assert '<input type="hidden" name="back" value="/?offset=50">' in client.get("/?offset=50").text
    for elsewhere in ("https://evil.example/", "//evil.example/", "/settings/peers"):
        gone = client.post("/delete", {"id": "ike-1", "confirmed": "1", "back": elsewhere})
        assert gone.header("location") == "/", elsewhere
    unknown = client.post("/delete", {"id": "ike-999", "confirmed": "1"})
    assert unknown.status == 303
    assert "Delete failed: no SA with id &#39;ike-999&#39;" in client.get("/").text


def test_daemon_away_the_page_polls_one_page_not_everything(env):
    fake, client = env
    fake.stop()
    os.unlink(fake.socket_path)
    page = client.get("/")
    assert page.status == 200 and "cannot talk to the ikecore daemon" in page.text
    # the router's size is unknown: no paging controls, but app.js asks for one page only
    assert 'data-api="/api/status?limit=50"' in page.text and 'id="pager"' not in page.text
    assert client.get("/api/summary").status == 502
