"""What the console does with the retained content and packets of a real read (tests/webui/site.py): content
search in Chinese with the query language, sessions with their transactions and objects, PCAP and object
downloads for the download role (also from a fleet sensor's endpoint), and the policy back-test. On SQLite,
and the content search on PostgreSQL too."""

from __future__ import annotations

import io
import re
import secrets
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from appliance.store import AlertStore
from tests.fleet_fixtures import BACKENDS
from tests.webui.conftest import PASSWORDS, add_users, csrf_of, login
from tests.webui.site import XSS_BODY, make_site
from webui import create_app
from webui.app import close_app


@pytest.fixture(scope="module", params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("site")
    if request.param == "postgresql":
        pg = request.getfixturevalue("postgres_server")
        name = pg.create_database(request.getfixturevalue("pg_template"))
        request.addfinalizer(lambda: pg.drop_database(name))
        dsn = pg.dsn(name)
        got = make_site(tmp, alerts=dsn, content=dsn)
        got["console"] = dsn
    else:
        got = make_site(tmp)
        got["console"] = str(tmp / "console.db")
    got["backend"] = request.param
    yield got


@pytest.fixture
def app(site: dict[str, str], tmp_path: Path):  # type: ignore[no-untyped-def]
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(Path(site["policy"]).read_bytes())
    a = create_app(alert_db=site["alerts"], console_db=site["console"], content_db=site["content"],
                   packet_store=site["packets"], policy_path=policy, argon2_time_cost=1, argon2_memory_kib=256,
                   argon2_parallelism=1)
    add_users(a)
    yield a
    close_app(a)


def _flow(site: dict[str, str], alert_id: str) -> str:
    with AlertStore.reader(site["alerts"]) as s:
        return str(s.get(alert_id)["flow_uid"])  # type: ignore[index]


def _rows(html: str) -> list[str]:
    return re.findall(r'href="/content/(F\w+)\?', html)


def test_content_search_in_chinese_and_by_field(app) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app) as c:
        login(c, "viewer")
        ids = {q: _rows(c.get("/content", params={"q": q}).text) for q in
               ("年", "年会", "公司年会通知", "夜鹰计划", "mime:text/html 年会", "年会 -host:intranet-news.example.com",
                "file:q-report.csv", "alerted:true", "ip:10.20.1.23 stored:true")}
        assert ids["年"] == ids["年会"] == ids["公司年会通知"] == ["F000004"]  # 1, 2 and 6 characters: no alert on it
        assert len(ids["夜鹰计划"]) == 2  # the plan and the hostile upload
        assert ids["mime:text/html 年会"] == ["F000004"] and ids["年会 -host:intranet-news.example.com"] == []
        assert len(ids["file:q-report.csv"]) == 1 and len(ids["alerted:true"]) == 3
        assert len(ids["ip:10.20.1.23 stored:true"]) == 3  # the news page, the CSV, the upload's answer
        r = c.get("/content", params={"q": "size:>lots"})
        assert r.status_code == 400 and "not a size" in r.text and _rows(r.text) == []
        page = c.get("/content/F000004", params={"q": "年会"}).text
        assert "<mark>年会</mark>" in page and "公司" in page


def test_session_view_and_downloads(app, site: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    if site["backend"] != "sqlite":
        pytest.skip("the session page and downloads are the same code on both backends; SQLite covers them")
    uid = _flow(site, "A000001")
    with TestClient(app) as c:
        login(c, "viewer")
        s = c.get(f"/sessions/{uid}").text
        assert "10.20.1.21" in s and "paste.example.org" in s and "#0 POST" in s and "plan.txt" in s
        assert "text extracted" in s and "bytes kept" in s and "alerted" in s and "A000001" in s
        assert c.get(f"/sessions/{uid}.pcap").status_code == 403  # the download role is analyst
        assert c.get("/objects/F000001.zip").status_code == 403
        a = TestClient(app)
        login(a, "analyst")
        r = a.get(f"/sessions/{uid}.pcap")
        assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.tcpdump.pcap"
        out = subprocess.run(["tcpdump", "-nr", "-", "-q"], input=r.content, capture_output=True)
        lines = out.stdout.decode().splitlines()
        assert out.returncode == 0 and len(lines) >= 8
        assert all("10.20.1.21" in line for line in lines)  # that flow's packets only
        z = a.get("/objects/F000001.zip")
        assert z.status_code == 200 and z.headers["content-disposition"] == 'attachment; filename="F000001.zip"'
        zf = zipfile.ZipFile(io.BytesIO(z.content))
        assert "夜鹰计划".encode() in zf.read(zf.namelist()[0], pwd=b"infected")
        audit = [r["action"] for r in app.state.db.rows("SELECT action FROM audit")]
        assert "session.pcap" in audit and "object.download" in audit
        assert a.get("/objects/F999999.zip").status_code == 404


def test_a_fleet_console_fetches_pcaps_from_the_sensor(site: dict[str, str], tmp_path: Path) -> None:
    from appliance.packetserver import PacketServer

    if site["backend"] != "sqlite":
        pytest.skip("transport of PCAPs does not depend on the backend")
    token = secrets.token_urlsafe(24)
    (tmp_path / "token").write_text(token)
    srv = PacketServer(site["packets"], token)
    srv.serve_in_thread()
    a = create_app(alert_db=site["alerts"], console_db=str(tmp_path / "c.db"), content_db=site["content"],
                   packet_sensors={"": {"url": srv.url, "token_file": tmp_path / "token"}}, argon2_time_cost=1,
                   argon2_memory_kib=256, argon2_parallelism=1)
    add_users(a)
    try:
        with TestClient(a) as c:
            login(c, "analyst")
            r = c.get(f"/sessions/{_flow(site, 'A000002')}.pcap")
            assert r.status_code == 200 and len(r.content) > 500
        (tmp_path / "token").write_text("not-the-token-at-all")
        with TestClient(a) as c:
            login(c, "analyst")
            r = c.get(f"/sessions/{_flow(site, 'A000002')}.pcap")
            assert r.status_code == 502 and "HTTP 401" in r.text
    finally:
        close_app(a)
        srv.shutdown()
        srv.server_close()


def test_backtest_from_the_editor(app, site: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app) as c:
        csrf = login(c, "analyst")
        text = c.get("/policy").text
        current = re.search(r'<textarea name="text" id="policy-text"[^>]*>(.*?)</textarea>', text, re.S)
        assert current
        import html

        policy = html.unescape(current.group(1)).replace("      - {text: 赌博, weight: 3}",
                                                         "      - {text: 赌博, weight: 3}\n"
                                                         "      - {text: 年会, weight: 8}")
        r = c.post("/policy", data={"csrf": csrf, "text": policy, "action": "backtest", "period": "7d"})
        assert r.status_code == 200
        assert re.search(r'id="bt-new">1 new<', r.text) and re.search(r'id="bt-lost">0 lost<', r.text)
        assert "intranet-news.example.com" in r.text.split('id="backtest"')[1]
        r = c.post("/policy", data={"csrf": csrf, "text": policy, "action": "backtest", "period": "custom",
                                    "since": "garbage"})
        assert r.status_code == 422 and "not a time" in r.text


def test_hostile_content_is_text(app) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app) as c:
        login(c, "viewer")
        pages = [c.get("/content", params={"q": "alerted:true"}).text]
        hostile = _rows(c.get("/content", params={"q": "host:evil.example"}).text)
        assert hostile
        pages += [c.get(f"/content/{i}").text for i in hostile]
        pages.append(c.get("/hits", params={"q": "host:evil.example"}).text)
        for t in pages:
            assert "<script>alert" not in t and "<img src=x" not in t and "<svg onload" not in t
            assert t.count("<script") == 1
        assert "report &lt;script&gt;alert(5)&lt;/script&gt;" in "".join(pages)
        assert XSS_BODY.decode().split("<")[0] in "".join(pages)


def test_viewers_cannot_backtest_and_forms_need_csrf(app) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app) as c:
        login(c, "viewer")
        csrf = csrf_of(c.get("/account").text)
        assert c.post("/policy", data={"csrf": csrf, "text": "x", "action": "backtest"}).status_code == 403
    assert PASSWORDS
