"""The analyst's workflows through the app (TestClient), on the demo hits — SQLite and PostgreSQL: the query
language and its errors, pivots, saved searches, bulk triage, cases, new since the last visit, auto-refresh,
exceptions from a verdict, time zones, the TOTP QR code, the dashboard's breakdowns and zoom; every new form
refuses a request without its CSRF token and every new page shows hostile values as text."""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.webui.conftest import Env, add_users, login
from tests.webui.factories import BASE_TS
from webui.app import close_app


def _ids(html: str) -> list[str]:
    return re.findall(r'href="/hits/(A\d+)"', html)


def _token(client: TestClient, csrf: str) -> dict[str, str]:
    page = client.post("/account/tokens", data={"csrf": csrf, "name": "t"})
    tok = re.search(r'id="new-token">([^<]+)<', page.text)
    assert tok
    return {"Authorization": f"Bearer {tok.group(1)}"}


def test_query_language_and_visible_errors(client: TestClient) -> None:
    csrf = login(client, "viewer")
    t = client.get("/hits", params={"q": "category:fraud -host:casino.example.biz"}).text
    assert _ids(t) == []  # every fraud hit of the demo is on the casino's host
    t = client.get("/hits", params={"q": "category:fraud OR ip:10.20.1.66"}).text
    assert set(_ids(t)) == {"A00005", "A00010", "A00015", "A00020", "A00025", "A00030", "A00066"}
    t = client.get("/hits", params={"q": '"Project Nightjar" severity:>=high -file:minutes-1.docx'}).text
    assert "A00001" not in _ids(t) and "A00002" in _ids(t)
    assert _ids(client.get("/hits", params={"q": "ip:10.20.21.0/24 赌场"}).text) == ["A00020", "A00005"]
    # a bad filter is an error on the page, never all hits
    r = client.get("/hits?since=garbage")
    assert r.status_code == 400 and "From</b>" in r.text and "not a time" in r.text and _ids(r.text) == []
    r = client.get("/hits", params={"q": "severity:>=enormous host:x"})
    assert r.status_code == 400 and "not a severity" in r.text and _ids(r.text) == []
    r = client.get("/hits", params={"q": "category:fraud AND (host:x"})
    assert r.status_code == 400 and "at character 20" in r.text and "unclosed" in r.text
    assert re.search(r"<code>category:fraud AND \(host:x\n {19}\^</code>", r.text)  # a caret under the problem
    r = client.get("/hits?severity=9&triage=maybe")
    assert r.status_code == 400 and "not a severity" in r.text and "not a triage state" in r.text
    assert client.get("/hits.csv?since=garbage").status_code == 400
    h = _token(client, csrf)
    r = client.get("/api/v1/hits", params={"q": "a OR"}, headers=h)
    assert r.status_code == 400 and r.json()["errors"] == [{"param": "q", "message": "OR needs a term on both sides",
                                                            "position": 2}]
    r = client.get("/api/v1/hits", params={"since": "garbage"}, headers=h)
    assert r.status_code == 400 and r.json()["errors"][0]["param"] == "since"
    got = client.get("/api/v1/hits", params={"q": "category:fraud", "limit": 2}, headers=h).json()
    assert got["total"] == 6 and len(got["items"]) == 2 and got["next"]
    more = client.get("/api/v1/hits", params={"q": "category:fraud", "limit": 5, "before": got["next"]},
                      headers=h).json()
    assert len(more["items"]) == 4 and not {i["id"] for i in more["items"]} & {i["id"] for i in got["items"]}


def test_pivots_refine_and_exclude(client: TestClient) -> None:
    login(client, "viewer")
    t = client.get("/hits", params={"q": "category:fraud"}).text
    links = {urllib.parse.parse_qs(urllib.parse.urlsplit(h.replace("&amp;", "&")).query).get("q", [""])[0]
             for h in re.findall(r'href="(/hits\?q=[^"]+)"', t)}
    assert "category:fraud host:casino.example.biz" in links and "category:fraud -host:casino.example.biz" in links
    assert "category:fraud ip:10.20.21.15" in links
    hit = client.get("/hits/A00066").text  # values with quotes and markup are quoted in the query
    q = next(urllib.parse.parse_qs(urllib.parse.urlsplit(h.replace("&amp;", "&")).query)["q"][0]
             for h in re.findall(r'href="(/hits\?q=host[^"]+)"', hit))
    assert q == 'host:"evil.example<script>alert(3)</script>"'
    assert _ids(client.get("/hits", params={"q": q}).text) == ["A00066"]


def test_saved_searches(client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "viewer")
    r = client.post("/searches", data={"csrf": csrf, "scope": "hits", "name": "casino <b>", "query": "category:fraud"},
                    follow_redirects=False)
    assert r.status_code == 303
    t = client.get("/hits").text
    assert "casino &lt;b&gt;" in t and 'href="/hits?q=category%3Afraud"' in t
    bad = client.post("/searches", data={"csrf": csrf, "scope": "hits", "name": "x", "query": "a OR"})
    assert "Not saved" in bad.text
    sid = app.state.db.scalar("SELECT id FROM saved_searches")
    other = TestClient(app)
    csrf2 = login(other, "analyst")  # another user neither sees nor deletes it
    assert "casino &lt;b&gt;" not in other.get("/hits").text
    assert other.post(f"/searches/{sid}/delete", data={"csrf": csrf2}).status_code == 404
    assert client.post(f"/searches/{sid}/delete", data={"csrf": csrf}).status_code == 200
    assert app.state.db.scalar("SELECT COUNT(*) FROM saved_searches") == 0


def test_bulk_triage_and_cases(client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "analyst")
    r = client.post("/hits/bulk", data={"csrf": csrf, "ids": ["A00005", "A00010", "A99999"], "verdict": "confirmed",
                                        "assignee": "analyst", "new_case": "Casino wave", "note": "all the same ad",
                                        "back": "q=category%3Afraud"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/hits?q=category%3Afraud"
    page = client.get(r.headers["location"]).text
    assert "2 hits updated; 2 added to case #1; 1 no longer stored." in page
    assert _ids(client.get("/hits", params={"q": "assignee:me triage:tp"}).text) == ["A00010", "A00005"]
    assert _ids(client.get("/hits", params={"q": "case:1"}).text) == ["A00010", "A00005"]
    case = client.get("/cases/1").text
    assert "Casino wave" in case and "A00005" in case and "hits added" in case
    client.post("/cases/1", data={"csrf": csrf, "status": "in_progress", "assignee": "admin", "note": "ad <i>net</i>"})
    case = client.get("/cases/1").text
    assert "in progress" in case and "ad &lt;i&gt;net&lt;/i&gt;" in case and "assignee changed" in case
    client.post("/cases/1/hits/A00005/remove", data={"csrf": csrf})
    assert _ids(client.get("/hits", params={"q": "case:1"}).text) == ["A00010"]
    actions = [r["action"] for r in app.state.db.rows("SELECT action FROM audit ORDER BY id")]
    assert {"hit.bulk", "case.update", "case.remove_hit"} <= set(actions)
    # nothing chosen, an unknown assignee: refused, nothing changes
    assert "Nothing changed" in client.post("/hits/bulk", data={"csrf": csrf, "ids": ["A00001"]}).text
    assert "no user" in client.post("/hits/bulk", data={"csrf": csrf, "ids": ["A00001"], "assignee": "mallory"}).text
    h = _token(client, csrf)
    got = client.post("/api/v1/hits/bulk", json={"ids": ["A00001"], "verdict": "investigating", "case_id": 1},
                      headers=h).json()
    assert got == {"changed": 1, "missing": [], "case_id": 1, "added_to_case": 1}
    assert client.get("/api/v1/cases/1", headers=h).json()["status"] == "in_progress"
    cid = client.post("/api/v1/cases", json={"title": "via API", "ids": ["A00002"]}, headers=h).json()["id"]
    assert client.patch(f"/api/v1/cases/{cid}", json={"status": "closed", "note": "done"}, headers=h).status_code == 200
    viewer = TestClient(client.app)
    vcsrf = login(viewer, "viewer")
    assert viewer.post("/hits/bulk", data={"csrf": vcsrf, "ids": ["A00001"], "verdict": "resolved"}).status_code == 403
    assert viewer.post("/cases", data={"csrf": vcsrf, "title": "x"}).status_code == 403


def test_new_since_last_visit_and_auto_refresh(env: Env) -> None:
    from appliance.store import AlertStore
    from tests.webui.factories import _flow, _kw, _obj

    app = env.app()
    add_users(app)
    try:
        with TestClient(app) as c:
            csrf = login(c, "viewer")
            first = c.get("/hits").text
            assert 'id="new-since"' not in first  # the first visit: nothing is "new"
            max_seq = int(re.search(r'data-max-seq="(\d+)"', first).group(1))  # type: ignore[union-attr]
            with AlertStore(env.settings.alert_db) as store:
                from appliance.model import Alert, Severity

                flow = _flow(90, "10.20.1.90", "192.0.2.90", "office", "any")
                obj = _obj(90, flow, host="late.example", url="/late")
                store.add(Alert("A00090", BASE_TS + 10**9, "office-uploads", "confidential-leak", Severity.HIGH,
                                "data-leak/confidential", "F0090", flow, (_kw(90, "confidential-projects",
                                                                            "Nightjar", "Nightjar", 10.0),),
                                "office", "any"), obj)
            h = _token(c, csrf)
            poll = c.get("/api/v1/hits/poll", params={"after_seq": max_seq, "q": "category:data-leak/confidential"},
                         headers=h).json()
            assert poll["new"] == 1 and poll["max_seq"] == max_seq + 1
            assert c.get("/api/v1/hits/poll", params={"after_seq": max_seq, "q": "category:fraud"},
                         headers=h).json()["new"] == 0
            # a later visit (half an hour without looking): what came since the last one is new
            app.state.db.execute("UPDATE user_state SET baseline_ts = baseline_ts - 3600")
            t = c.get("/hits").text
            assert "1 new since your last visit" in t and 'class="is-new"' in t
            assert _ids(c.get("/hits", params={"q": "is:new"}).text) == ["A00090"]
    finally:
        close_app(app)


def test_exception_from_a_false_positive(client: TestClient, app, env: Env) -> None:  # type: ignore[no-untyped-def]
    from policies.schema import load_policy

    csrf = login(client, "analyst")
    client.post("/hits/A00002/triage", data={"csrf": csrf, "verdict": "false_positive", "note": "shared with auditors"})
    page = client.get("/hits/A00002").text
    assert 'id="exception"' in page and 'value="shared with auditors"' in page
    r = client.post("/hits/A00002/exception", data={"csrf": csrf, "scope": ["host", "url"], "url_prefix": "1",
                                                    "expires": "2099-12-31", "reason": "auditors <b>ok</b>"},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/policy#exceptions"
    text = Path(env.settings.policy_path).read_text(encoding="utf-8")
    pol = load_policy(Path(env.settings.policy_path))
    (e,) = pol.exceptions
    assert (e.rule, e.host, e.url, e.by, e.reason, e.alert, e.expires) == (
        "office-uploads", "mail.example.com", "/share/2*", "analyst", "auditors <b>ok</b>", "A00002", "2099-12-31")
    assert "# tapsift sample policy" in text  # the rest of the file (comments) as it was
    policy_page = client.get("/policy").text
    assert "auditors &lt;b&gt;ok&lt;/b&gt;" in policy_page and "mail.example.com" in policy_page
    assert app.state.db.scalar("SELECT COUNT(*) FROM policy_versions") == 2
    assert app.state.db.scalar("SELECT COUNT(*) FROM audit WHERE action = 'policy.exception'") == 1
    # no scope, no reason, an expiry in the past: refused, the file unchanged
    for bad in ({"scope": []}, {"scope": ["host"], "reason": ""}, {"scope": ["host"], "expires": "2001-01-01"}):
        data = {"csrf": csrf, "reason": "x", **bad}
        assert "No exception added" in client.post("/hits/A00002/exception", data=data).text
    assert Path(env.settings.policy_path).read_text(encoding="utf-8") == text
    # removal: a new version without it
    base = re.search(r'name="base_version" value="([0-9a-f]+)"', policy_page).group(1)  # type: ignore[union-attr]
    client.post("/policy/exceptions/0/delete", data={"csrf": csrf, "base_version": base})
    assert load_policy(Path(env.settings.policy_path)).exceptions == ()
    viewer = TestClient(app)
    vcsrf = login(viewer, "viewer")
    assert viewer.post("/hits/A00002/exception", data={"csrf": vcsrf, "scope": ["host"], "reason": "x"}
                       ).status_code == 403


def test_time_zone_and_totp_qr(client: TestClient) -> None:
    csrf = login(client, "viewer")
    assert "2024-05-01 12:01:00" in client.get("/hits/A00040").text  # UTC
    assert "unknown time zone" in client.post("/account/tz", data={"csrf": csrf, "tz": "Mars/Olympus"}).text
    client.post("/account/tz", data={"csrf": csrf, "tz": "Asia/Shanghai"})
    t = client.get("/hits/A00040").text
    assert "2024-05-01 20:01:00 Asia/Shanghai" in t
    # the From/To filters are read in the user's zone too
    assert _ids(client.get("/hits?since=2024-05-01T20:00&until=2024-05-01T20:02").text) == ["A00040", "A00030"]
    client.post("/account/totp", data={"csrf": csrf, "action": "start"})
    page = client.get("/account").text
    src = re.search(r'<img src="(data:image/svg\+xml[^"]+)"', page)
    assert src, "no QR code"
    svg = urllib.parse.unquote(src.group(1).split(",", 1)[1].replace("&amp;", "&"))
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg") and root.find(".//{http://www.w3.org/2000/svg}path") is not None


def test_dashboard_breakdowns_and_zoom(client: TestClient) -> None:
    login(client, "viewer")
    t = client.get("/?range=all").text
    for title in ("By severity", "Top internal sources", "Top destinations", "Categories over time"):
        assert title in t
    sources = t.split("Top internal sources")[1].split("</section>")[0]
    assert 'href="/hits?q=ip%3A10.20.' in sources and "198.51.100.7" in t.split("Top destinations")[1]
    zoom = re.findall(r'href="/\?since=(\d+)&amp;until=(\d+)"', t)
    assert zoom
    a, b = zoom[-1]
    z = client.get(f"/?since={a}&until={b}")
    assert z.status_code == 200 and "zoomed" in z.text
    assert client.get("/?since=1&until=x").status_code == 400


@pytest.mark.parametrize("path", ["/hits/bulk", "/cases", "/cases/1", "/searches", "/account/tz",
                                  "/hits/A00001/exception", "/policy/exceptions/0/delete"])
def test_new_forms_need_their_csrf_token(client: TestClient, path: str) -> None:
    login(client, "admin")
    r = client.post(path, data={"ids": ["A00001"], "verdict": "confirmed", "title": "x", "name": "x", "query": "x",
                                "tz": "UTC", "scope": ["host"], "reason": "x"})
    assert r.status_code == 403


def test_hostile_values_are_text_on_every_new_page(client: TestClient) -> None:
    csrf = login(client, "analyst")
    client.post("/hits/bulk", data={"csrf": csrf, "ids": ["A00066"], "new_case": "<script>alert(9)</script>"})
    pages = [client.get("/hits").text, client.get("/hits", params={"q": "ip:10.20.1.66"}).text,
             client.get("/cases").text, client.get("/cases/1").text, client.get("/sessions/C0066").text,
             client.get("/hits/A00066").text]
    for t in pages:
        assert "<script>alert" not in t and "<img src=x" not in t and "<svg onload" not in t
        assert t.count("<script") == 1  # /static/app.js only
    assert "&lt;script&gt;alert(9)&lt;/script&gt;" in pages[2]
    assert "evil.example&lt;script&gt;alert(3)&lt;/script&gt;" in pages[4]


def test_session_page_from_alerts_alone(client: TestClient) -> None:
    """Without a content store, a session is what its alerts recorded (and the page says so)."""
    login(client, "viewer")
    t = client.get("/sessions/C0001").text
    assert "No content store is configured" in t and "A00001" in t and "minutes-1.docx" in t
    assert client.get("/sessions/C9999").status_code == 404
    assert client.get("/content").status_code == 200 and "No content store is configured" in \
        client.get("/content").text


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_json_of_the_new_api_is_documented(client: TestClient) -> None:
    csrf = login(client, "viewer")
    h = _token(client, csrf)
    spec = client.get("/api/v1/openapi.json", headers=h).json()
    for path in ("/api/v1/hits/bulk", "/api/v1/hits/poll", "/api/v1/cases", "/api/v1/cases/{cid}",
                 "/api/v1/sessions/{uid}", "/api/v1/sessions/{uid}/pcap", "/api/v1/objects/{content_id}/zip",
                 "/api/v1/content", "/api/v1/policy/backtest"):
        assert path in spec["paths"], path
    assert json.dumps(spec)
