"""Each console route through the app factory on a temporary database: pages, API, metrics, escaping."""

from __future__ import annotations

import csv
import io
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from appliance.store import AlertStore
from tests.webui.conftest import Env, add_users, csrf_of, login
from webui.services.account import create_api_token
from webui.services.sessions import Principal


def _token(app, role: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    u = app.state.db.user_by_name(role)
    return {"Authorization": "Bearer " + create_api_token(app.state.db, Principal(u["id"], role, role, "session"), "t")}


def test_security_headers_everywhere(client: TestClient) -> None:
    for path in ("/login", "/static/app.css"):
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        assert "server" not in r.headers
    login(client, "viewer")
    assert client.get("/hits").headers["cache-control"] == "no-store"


def test_dashboard(client: TestClient) -> None:
    login(client, "viewer")
    r = client.get("/?range=all")
    assert r.status_code == 200
    t = r.text
    assert "<svg class=\"chart\"" in t and "office → any" in t and "data-leak/confidential" in t
    assert "office-uploads" in t and "casino.example.biz" in t
    assert "41,250.0" in t and "262.4" in t and "expensive" in t  # sensor stats file
    assert client.get("/?range=bogus").status_code == 200


def test_dashboard_sensor_stats_states(env: Env) -> None:
    (env.tmp / "stats.json").write_text(json.dumps({"ts": time.time() - 3600, "packets": 5}))
    app = env.app()
    add_users(app)
    with TestClient(app) as c:
        login(c, "viewer")
        assert 'class="state stale"' in c.get("/").text
        (env.tmp / "stats.json").write_text("{not json")
        assert 'class="state invalid"' in c.get("/").text
        (env.tmp / "stats.json").unlink()
        assert 'class="state missing"' in c.get("/").text


def test_sensor_rates_from_successive_samples(tmp_path: Path) -> None:
    from webui.sensorstats import read_sensor_stats

    p = tmp_path / "s.json"
    p.write_text(json.dumps({"ts": 1000.0, "packets": 1000, "bytes": 1_000_000, "drops": 0, "flows": 3}))
    first = read_sensor_stats(p, now=1000.0)
    assert first["state"] == "ok" and first["packets_per_s"] is None
    p.write_text(json.dumps({"ts": 1010.0, "packets": 6000, "bytes": 13_500_000, "drops": 20, "flows": 4,
                             "queue_depths": {"expensive": 2, "bad": "x"}}))
    s = read_sensor_stats(p, now=1011.0)
    assert s["packets_per_s"] == 500.0 and s["mbit_per_s"] == 10.0 and s["drops_per_s"] == 2.0
    assert s["queue_depths"] == {"expensive": 2.0}
    assert read_sensor_stats(p, now=1011.0)["packets_per_s"] == 500.0  # same sample again: same rate


def test_hits_list_filters_search_pagination(env: Env) -> None:
    app = env.app(page_size=5)
    add_users(app)
    with TestClient(app) as c:
        login(c, "viewer")
        r = c.get("/hits")
        first = re.findall(r'href="/hits/(A\d+)"', r.text)
        assert r.status_code == 200 and '<span class="muted" id="hit-count">32</span>' in r.text and len(first) == 5
        seen = list(first)
        while m := re.search(r'href="/hits\?(before=[^"]+)" rel="next"', r.text):  # keyset pages, older each time
            r = c.get("/hits?" + m.group(1).replace("&amp;", "&"))
            seen += re.findall(r'href="/hits/(A\d+)"', r.text)
        assert len(seen) == len(set(seen)) == 32
        t = c.get("/hits?category=fraud").text
        assert "casino.example.biz" in t and "Nightjar" not in t and 'id="hit-count">6<' in t
        t = c.get("/hits?q=customers-3").text
        assert "/hits/A00003" in t and "/hits/A00006" not in t
        assert "/hits/A00040" in c.get("/hits?inspector=perceptual").text
        assert "No hits match" in c.get("/hits?severity=1&category=fraud").text
        assert "/hits/A00040" in c.get("/hits?severity=1").text
        t = c.get("/hits?host=10.20.1.66").text  # host/IP box takes an address
        assert "/hits/A00066" in t and 'id="hit-count">1<' in t
        t = c.get("/hits?host=casino.example.biz").text
        assert "/hits/A00030" in t and 'id="hit-count">12<' in t
        t = c.get("/hits?since=2024-05-01T11:00&until=2024-05-01T13:00").text
        assert "/hits/A00040" in t and "/hits/A00001" not in t


def test_triage_goes_to_console_db_and_filters(client: TestClient, app, env: Env) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "analyst")
    r = client.post("/hits/A00002/triage", data={"csrf": csrf, "verdict": "false_positive",
                                                 "note": "internal <b>test</b> file"}, follow_redirects=False)
    assert r.status_code == 303
    page = client.get("/hits/A00002").text
    assert "false positive" in page and "internal &lt;b&gt;test&lt;/b&gt; file" in page
    assert "Marked as false positive" in page
    assert "/hits/A00002" in client.get("/hits?triage=false_positive").text
    assert "/hits/A00002" not in client.get("/hits?triage=new").text
    # the alert store itself is untouched (the sensor is its only writer)
    with AlertStore.reader(env.settings.alert_db) as store:
        assert store.get("A00002")["triage"] == "new"
    # audited with before/after
    row = app.state.db.rows("SELECT * FROM audit WHERE action = 'hit.triage'")[0]
    assert row["user"] == "analyst" and json.loads(row["before"])["verdict"] == "new"
    assert json.loads(row["after"])["verdict"] == "false_positive"
    # bad verdicts and unknown hits
    assert client.post("/hits/A00002/triage", data={"csrf": csrf, "verdict": "maybe"}).status_code == 422
    assert client.post("/hits/NOPE/triage", data={"csrf": csrf, "verdict": "confirmed"}).status_code == 404
    # rule quality on the policy page
    client.post("/hits/A00004/triage", data={"csrf": csrf, "verdict": "confirmed"})
    t = client.get("/policy").text
    assert "Rule quality" in t and "50%" in t


def test_csv_export(client: TestClient) -> None:
    login(client, "viewer")
    r = client.get("/hits.csv?category=data-leak/confidential")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows and all(x["category"] == "data-leak/confidential" for x in rows)
    assert {"id", "time_utc", "http_url", "triage"} <= set(rows[0])


def test_csv_neutralises_formulas(env: Env) -> None:
    from appliance.model import Alert, Finding

    with AlertStore(env.settings.alert_db) as store:
        store.add(Alert("A09999", 1_714_564_900_000_000_000, "=HYPERLINK(\"http://x\")", "p", 2, "fraud", "F9", None,
                        (Finding("keyword", "F9", "r"),)))
    app = env.app()
    add_users(app)
    with TestClient(app) as c:
        login(c, "viewer")
        rows = list(csv.DictReader(io.StringIO(c.get("/hits.csv").text)))
        assert [r["policy"] for r in rows if r["id"] == "A09999"] == ["'=HYPERLINK(\"http://x\")"]


def _dd(html: str, dd_id: str) -> str:
    m = re.search(rf'<dd id="{dd_id}">(.*?)</dd>', html, re.S)
    assert m, f"no #{dd_id} on the page"
    return re.sub(r"<[^>]+>", "", m.group(1))


def test_hit_page_names_client_and_server_for_each_direction(client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    """EVE's src/dest follow the transfer; the page shows who is client and who is server either way."""
    login(client, "viewer")
    up = client.get("/hits/A00001").text  # an upload from an office PC to a web server
    assert _dd(up, "flow-direction") == "upload (client → server)"
    assert _dd(up, "flow-client") == "10.20.11.11:40001 (zone office)"
    assert _dd(up, "flow-server") == "192.0.2.80:80 (zone any)"
    down = client.get("/hits/A00005").text  # a download: the record's source is the web server
    assert _dd(down, "flow-direction") == "download (server → client)"
    assert _dd(down, "flow-client") == "10.20.21.15:40005 (zone office)"
    assert _dd(down, "flow-server") == "198.51.100.7:80 (zone any)"
    h = _token(app, "viewer")
    flow = client.get("/api/v1/hits/A00005", headers=h).json()["flow"]
    assert flow == {"direction": "download", "client": {"ip": "10.20.21.15", "port": 40005, "zone": "office"},
                    "server": {"ip": "198.51.100.7", "port": 80, "zone": "any"}}
    assert client.get("/api/v1/hits/A00001", headers=h).json()["flow"]["client"]["ip"] == "10.20.11.11"


def test_hits_list_and_dashboard_show_the_server_of_downloads(env: Env) -> None:
    """Without an HTTP host, the list's "Where" and the dashboard's top hosts name the server, not the PC."""
    from appliance.model import Alert, ContentObject, Direction, Finding
    from tests.webui.factories import _flow

    flow = _flow(77, "10.20.1.77", "203.0.113.77", "office", "any", Direction.TO_CLIENT)
    obj = ContentObject(id="F0077", source="ftp", direction=Direction.TO_CLIENT, flow=flow,
                        ts_ns=1_714_564_900_000_000_000, size=9, md5="0" * 32, sha256="0" * 64,
                        filename="plans-77.pdf")
    with AlertStore(env.settings.alert_db) as store:
        store.add(Alert("A00077", obj.ts_ns, "office-web-content", "confidential-leak", 2, "data-leak/confidential",
                        "F0077", flow, (Finding("keyword", "F0077", "confidential-projects", 10.0),), "office", "any"),
                  obj)
    app = env.app()
    add_users(app)
    with TestClient(app) as c:
        login(c, "viewer")
        row = c.get("/hits?q=plans-77").text.split('href="/hits/A00077"')[1].split("</tr>")[0]
        where = row.split('class="where"')[1].split("</td>")[0]
        assert ">203.0.113.77</a>" in where and "10.20.1.77" not in where  # the client has its own column
        t = c.get("/?range=all").text
        assert "203.0.113.77" in t and "10.20.1.77" not in t
        assert _dd(c.get("/hits/A00077").text, "flow-server") == "203.0.113.77:80 (zone any)"


def test_flow_ends_without_a_direction() -> None:
    from webui.services.hits import flow_ends

    ends = flow_ends({"src_ip": "2001:db8::1", "src_port": 5, "dest_ip": "192.0.2.1", "dest_port": 80,
                      "src_zone": "lan", "dst_zone": "wan", "record": {"tapsift": {}}})
    assert ends.direction is None and ends.transfer == ""
    assert (ends.client.address, ends.server.address) == ("[2001:db8::1]:5", "192.0.2.1:80")
    assert flow_ends({"record": {}, "object": {"direction": "download"}, "src_ip": "a", "dest_ip": "b",
                      "src_port": None, "dest_port": None}).client.address == "b"


def test_hit_detail_and_hostile_evidence_is_escaped(client: TestClient) -> None:
    login(client, "viewer")
    t = client.get("/hits/A00001").text
    assert "<mark>Project Nightjar</mark>" in t and "10.20.11.11" in t and "minutes-1.docx" in t
    assert "Viewers cannot change the verdict" in t
    t = client.get("/hits/A00066").text
    assert "<script>alert" not in t and "<img src=x" not in t and "<svg onload" not in t and "<b>bold" not in t
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in t and "onerror=alert(2)&gt;" in t
    assert "&lt;svg onload=alert(4)&gt;" in t and "&lt;b&gt;bold&lt;/b&gt;" in t
    assert client.get("/hits/NOPE").status_code == 404
    t = client.get("/hits/A00007").text
    assert "incomplete" in t and "body_limit" in t  # completeness


def test_evidence_image_is_reencoded(client: TestClient, env: Env) -> None:
    login(client, "viewer")
    t = client.get("/hits/A00040").text
    assert 'src="/hits/A00040/evidence/0/0.png"' in t
    r = client.get("/hits/A00040/evidence/0/0.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert Image.open(io.BytesIO(r.content)).format == "PNG"
    # a polyglot (PNG with HTML after it) comes back as a clean PNG without the payload
    thumb = env.settings.evidence_dir / "thumbs" / "F0040.jpg"
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, "PNG")
    thumb.write_bytes(buf.getvalue() + b"<html><script>alert(1)</script></html>")
    r = client.get("/hits/A00040/evidence/0/0.png")
    assert r.status_code == 200 and b"<script>" not in r.content
    thumb.write_bytes(b"<html><script>alert(1)</script></html>")
    assert client.get("/hits/A00040/evidence/0/0.png").status_code == 415
    assert client.get("/hits/A00001/evidence/0/0.png").status_code == 404  # no ref
    assert client.get("/hits/A00040/evidence/5/0.png").status_code == 404


def test_evidence_refs_cannot_escape_the_directory(tmp_path: Path) -> None:
    from webui.images import safe_join

    (tmp_path / "ev").mkdir()
    (tmp_path / "secret.png").write_bytes(b"x")
    (tmp_path / "ev" / "ok.png").write_bytes(b"x")
    assert safe_join(tmp_path / "ev", "ok.png") is not None
    for ref in ("../secret.png", str(tmp_path / "secret.png"), "a/../../secret.png", "ok.png\x00"):
        assert safe_join(tmp_path / "ev", ref) is None


BROKEN_WEIGHT = "      - {text: \"Project Nightjar\", weight: heavy}"


def test_policy_edit_validate_diff_save_history_rollback(client: TestClient, app, env: Env) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "analyst")
    page = client.get("/policy").text
    base = page.split('name="base_version" value="')[1].split('"')[0]
    original = env.settings.policy_path.read_text()
    broken = original.replace('      - {text: "Project Nightjar", weight: 10}', BROKEN_WEIGHT)
    assert broken != original
    line = broken.splitlines().index(BROKEN_WEIGHT) + 1
    r = client.post("/policy", data={"csrf": csrf, "text": broken, "base_version": base, "action": "preview"})
    assert r.status_code == 422 and "not saved" in r.text
    assert f'data-line="{line}"' in r.text and f'<tr id="L{line}" class="err">' in r.text
    assert env.settings.policy_path.read_text() == original
    fixed = original.replace("weight: 10}   ", "weight: 12}   ").replace(
        '      - {text: "Project Nightjar", weight: 10}', '      - {text: "Project Nightjar", weight: 12}')
    fixed = fixed.replace("- {text: 机密, weight: 3}",
                          "- {text: 机密, weight: 3}\n      - {text: \"Operation Kestrel\", weight: 10}")
    r = client.post("/policy", data={"csrf": csrf, "text": fixed.replace("\n", "\r\n"), "base_version": base,
                                     "action": "preview"})
    assert r.status_code == 200 and 'id="diff"' in r.text
    assert '<span class="add">+      - {text: &#34;Operation Kestrel&#34;, weight: 10}' in r.text
    r = client.post("/policy", data={"csrf": csrf, "text": fixed, "base_version": base, "action": "save",
                                     "comment": "add Kestrel"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/policy/versions"
    assert env.settings.policy_path.read_text() == fixed
    versions = client.get("/policy/versions").text
    assert "add Kestrel" in versions and "the file as found" in versions
    audit = app.state.db.rows("SELECT * FROM audit WHERE action = 'policy.save'")
    assert len(audit) == 1 and json.loads(audit[0]["before"])["version"] == base
    # a stale base version is refused (someone else saved meanwhile)
    r = client.post("/policy", data={"csrf": csrf, "text": fixed + "# more\n", "base_version": base,
                                     "action": "save"})
    assert r.status_code == 409 and "changed since you started" in r.text
    # history page and rollback (diff first, then save)
    assert "Operation Kestrel" in client.get("/policy/versions/2").text
    r = client.post("/policy/versions/1/rollback", data={"csrf": csrf})
    assert r.status_code == 200 and "rollback to history #1" in r.text and "-      - {text: &#34;Operation" in r.text
    new_base = r.text.split('name="base_version" value="')[1].split('"')[0]
    r = client.post("/policy", data={"csrf": csrf, "text": original, "base_version": new_base, "action": "save",
                                     "comment": "rollback"}, follow_redirects=False)
    assert r.status_code == 303 and env.settings.policy_path.read_text() == original
    assert len(app.state.db.policy_versions()) == 3
    # a viewer sees the policy read-only
    v = TestClient(app)
    login(v, "viewer")
    assert "readonly" in v.get("/policy").text


def test_policy_text_is_never_taken_as_a_path(client: TestClient) -> None:
    csrf = login(client, "analyst")
    r = client.post("/policy", data={"csrf": csrf, "text": "/etc/passwd", "action": "validate", "base_version": ""})
    assert r.status_code == 422 and "root:" not in r.text


def test_policy_reload_signals_the_sensor(env: Env, tmp_path: Path) -> None:
    flag = tmp_path / "hup"
    child = subprocess.Popen([sys.executable, "-c", (
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGHUP, lambda *a: (open({str(flag)!r}, 'w').write('x'), sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(30)\n")], stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"ready"
        (tmp_path / "sensor.pid").write_text(f"{child.pid}\n")
        app = env.app(sensor_pid_file=tmp_path / "sensor.pid")
        add_users(app)
        with TestClient(app) as c:
            csrf = login(c, "analyst")
            r = c.post("/policy/reload", data={"csrf": csrf})
            assert r.status_code == 200 and f"reload signal sent to the sensor (pid {child.pid})" in r.text
        assert child.wait(10) == 0 and flag.exists()
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            child.wait()
    with TestClient(app) as c:
        csrf = login(c, "analyst")
        assert "is not running" in c.post("/policy/reload", data={"csrf": csrf}).text


def test_users_admin(client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "admin")
    r = client.post("/users", data={"csrf": csrf, "username": "carol", "role": "analyst", "password": ""})
    assert r.status_code == 200 and "Password for <strong>carol</strong>" in r.text
    pw = r.text.split('<code class="secret">')[1].split("<")[0]
    assert client.post("/users", data={"csrf": csrf, "username": "carol", "role": "viewer", "password": ""}
                       ).status_code == 422
    assert client.post("/users", data={"csrf": csrf, "username": "dan", "role": "viewer", "password": "short"}
                       ).status_code == 422
    uid = app.state.db.user_by_name("carol")["id"]
    c2 = TestClient(app)
    login(c2, "carol", pw)
    assert client.post(f"/users/{uid}", data={"csrf": csrf, "action": "role", "role": "viewer"},
                       follow_redirects=False).status_code == 303
    assert c2.get("/hits", follow_redirects=False).status_code == 303  # role change ends sessions
    assert app.state.db.user_by_name("carol")["role"] == "viewer"
    client.post(f"/users/{uid}", data={"csrf": csrf, "action": "disable"})
    page = c2.get("/login")
    assert c2.post("/login", data={"csrf": csrf_of(page.text), "username": "carol", "password": pw}).status_code == 401
    client.post(f"/users/{uid}", data={"csrf": csrf, "action": "enable"})
    r = client.post(f"/users/{uid}", data={"csrf": csrf, "action": "reset_password"})
    assert "Password for <strong>carol</strong>" in r.text
    client.post(f"/users/{uid}", data={"csrf": csrf, "action": "reset_totp"})
    assert client.post(f"/users/{uid}", data={"csrf": csrf, "action": "delete"}, follow_redirects=False
                       ).status_code == 303
    assert app.state.db.user_by_name("carol") is None
    me = app.state.db.user_by_name("admin")["id"]
    assert client.post(f"/users/{me}", data={"csrf": csrf, "action": "role", "role": "viewer"}).status_code == 409
    assert client.post(f"/users/{me}", data={"csrf": csrf, "action": "delete"}).status_code == 409
    assert client.post("/users/9999", data={"csrf": csrf, "action": "unlock"}).status_code == 404
    actions = {a["action"] for a in app.state.db.audit_page(100, 0)[1]}
    assert {"user.add", "user.role", "user.disable", "user.enable", "user.password", "user.totp_reset",
            "user.delete"} <= actions
    t = client.get("/audit?action=user.role").text
    assert "user.role" in t and '"role": "analyst"}' in t and '{"role": "viewer"}' in t and "user.delete" not in t


def test_account_tokens_and_api(client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "analyst")
    r = client.post("/account/tokens", data={"csrf": csrf, "name": "siem"})
    token = r.text.split('id="new-token">')[1].split("<")[0]
    h = {"Authorization": f"Bearer {token}"}
    fresh = TestClient(app)
    page = fresh.get("/api/v1/hits?category=fraud&limit=2", headers=h).json()
    assert page["total"] == 6 and len(page["items"]) == 2 and page["items"][0]["category"] == "fraud"
    assert fresh.get("/api/v1/hits?q=Nightjar&triage=new", headers=h).json()["total"] >= 10
    hit = fresh.get("/api/v1/hits/A00066", headers=h).json()
    assert hit["record"]["tapsift"]["alert_id"] == "A00066" and hit["verdicts"] == []
    r = fresh.post("/api/v1/hits/A00066/triage", json={"verdict": "confirmed", "note": "real"}, headers=h)
    assert r.status_code == 200 and r.json()["user"] == "analyst"
    assert fresh.post("/api/v1/hits/A00066/triage", json={"verdict": "bogus"}, headers=h).status_code == 422
    assert fresh.post("/api/v1/hits/NOPE/triage", json={"verdict": "confirmed"}, headers=h).status_code == 404
    assert fresh.get("/api/v1/hits/A00066", headers=h).json()["triage"] == "confirmed"
    stats = fresh.get("/api/v1/stats", headers=h).json()
    assert stats["store"]["alerts"] == 32 and stats["sensor"]["state"] == "ok"
    assert any(q["tp"] == 1 for q in stats["rules"])
    # tokens do not work outside /api and /metrics, and revoked tokens stop working
    assert fresh.get("/hits", headers=h, follow_redirects=False).status_code == 303
    tid = app.state.db.scalar("SELECT id FROM api_tokens")
    client.post(f"/account/tokens/{tid}/delete", data={"csrf": csrf})
    assert fresh.get("/api/v1/hits", headers=h).status_code == 401


def test_api_policy(app, env: Env) -> None:  # type: ignore[no-untyped-def]
    h = _token(app, "analyst")
    with TestClient(app) as c:
        cur = c.get("/api/v1/policy", headers=h).json()
        assert cur["version"] and "zones:" in cur["text"]
        bad = c.post("/api/v1/policy/validate", json={"text": cur["text"].replace("cidrs: [10.20.0.0/16]",
                                                                                   "cidrs: [10.20.1.0/16]")},
                     headers=h).json()
        assert not bad["ok"] and "host bits set" in bad["issues"][0]["message"] and bad["issues"][0]["line"] > 0
        r = c.put("/api/v1/policy", json={"text": "zones: [\n", "base_version": cur["version"]}, headers=h)
        assert r.status_code == 422
        new = cur["text"] + "# tuned by the API\n"
        r = c.put("/api/v1/policy", json={"text": new, "base_version": cur["version"], "comment": "api"},
                  headers=h)
        assert r.status_code == 200 and r.json()["reloaded"] is False
        assert env.settings.policy_path.read_text() == new
        r = c.put("/api/v1/policy", json={"text": new + "#\n", "base_version": cur["version"]}, headers=h)
        assert r.status_code == 409
        versions = c.get("/api/v1/policy/versions", headers=h).json()
        assert [v["comment"] for v in versions] == ["api", "the file as found"]
        r = c.post("/api/v1/policy/reload", headers=h).json()
        assert r["sent"] is False and "no sensor pid file" in r["message"]


def test_metrics_and_openapi(app) -> None:  # type: ignore[no-untyped-def]
    h = _token(app, "viewer")
    with TestClient(app) as c:
        m = c.get("/metrics", headers=h)
        assert m.status_code == 200 and m.headers["content-type"].startswith("text/plain; version=0.0.4")
        t = m.text
        assert "tapsift_alerts 32" in t and 'tapsift_alerts_by_category{category="fraud"} 6' in t
        assert "tapsift_sensor_packets_total 1.25e+06" in t and 'tapsift_sensor_queue_depth{queue="expensive"} 3' in t
        assert "tapsift_store_up 1" in t
        spec = c.get("/api/v1/openapi.json", headers=h).json()
        paths = set(spec["paths"])
        assert {"/api/v1/hits", "/api/v1/hits/{alert_id}", "/api/v1/hits/{alert_id}/triage", "/api/v1/stats",
                "/api/v1/policy", "/api/v1/policy/validate", "/api/v1/policy/versions", "/api/v1/policy/reload",
                "/api/v1/fingerprints", "/api/v1/fingerprints/{fid}", "/metrics"} <= paths
        assert not any(p.startswith(("/hits", "/login", "/users")) for p in paths)
        assert c.get("/openapi.json").status_code == 404 and c.get("/docs").status_code == 404


def test_store_missing_is_a_clear_error(env: Env, tmp_path: Path) -> None:
    if env.dsn is not None:  # one database for everything: the console cannot start without it
        from appliance.store import StoreError

        missing = env.dsn.replace(env.dsn.split("?")[0].rsplit("/", 1)[1], "nope", 1)
        with pytest.raises(StoreError, match='database "nope" does not exist'):
            env.app(alert_db=missing, console_db=missing)
        return
    app = env.app(alert_db=tmp_path / "nope.db")
    add_users(app)
    with TestClient(app) as c:
        login(c, "viewer")
        r = c.get("/hits")
        assert r.status_code == 503 and "no alert store" in r.text
        assert c.get("/api/v1/hits", headers=_token(app, "viewer")).status_code == 503
        assert "tapsift_store_up 0" in c.get("/metrics", headers=_token(app, "viewer")).text


def _png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    im = Image.new("RGB", (64, 48), color)
    for x in range(0, 64, 8):
        im.paste((255 - color[0], 0, 0), (x, 0, x + 4, 48))
    im.save(buf, "PNG")
    return buf.getvalue()


def test_fingerprint_library_pages_and_api(env: Env, tmp_path: Path) -> None:
    app = env.app(fingerprint_library=tmp_path / "lib" / "fingerprints.db")
    add_users(app)
    with TestClient(app) as c:
        csrf = login(c, "analyst")
        assert "No entries" in c.get("/fingerprints").text
        r = c.post("/fingerprints", data={"csrf": csrf, "kind": "files", "label": "", "category": "prohibited"},
                   files=[("files", ("banned-logo.png", _png((10, 200, 30)), "image/png")),
                          ("files", ("leak.txt", b"secret plans", "text/plain"))], follow_redirects=False)
        assert r.status_code == 303
        t = c.get("/fingerprints").text
        assert "Library: 2 added" in t and "banned-logo.png" in t and "leak.txt" in t and "phash" in t
        assert 'src="/fingerprints/1/image.png"' in t
        img = c.get("/fingerprints/1/image.png")
        assert img.status_code == 200 and img.content.startswith(b"\x89PNG")
        assert c.get("/fingerprints/2/image.png").status_code == 404
        r = c.post("/fingerprints", data={"csrf": csrf, "kind": "hashes", "label": "ioc", "category": "malware"},
                   files=[("files", ("iocs.txt", b"d41d8cd98f00b204e9800998ecf8427e known-empty\nnot-a-hash\n",
                                        "text/plain"))], follow_redirects=False)
        t = c.get("/fingerprints").text
        assert "1 added" in t and "not a hash" in t
        assert "known-empty" in c.get("/fingerprints?q=d41d8cd98f00b204e9800998ecf8427e").text
        t = c.get("/fingerprints?q=banned").text
        assert "banned-logo.png" in t and "leak.txt" not in t
        assert c.post("/fingerprints/1/delete", data={"csrf": csrf}, follow_redirects=False).status_code == 303
        assert "<td>banned-logo.png</td>" not in c.get("/fingerprints").text
        assert c.get("/fingerprints/1/image.png").status_code == 404
        # API
        h = _token(app, "analyst")
        page = c.get("/api/v1/fingerprints", headers=h).json()
        assert page["total"] == 2 and {e["label"] for e in page["items"]} == {"leak.txt", "known-empty"}
        r = c.post("/api/v1/fingerprints", headers=h, data={"kind": "files", "category": "x"},
                   files=[("files", ("b.png", _png((200, 10, 10)), "image/png"))])
        assert r.status_code == 200 and r.json()["added"] == 1
        fid = c.get("/api/v1/fingerprints?q=b.png", headers=h).json()["items"][0]["id"]
        assert c.delete(f"/api/v1/fingerprints/{fid}", headers=h).json() == {"removed": fid}
        assert c.delete(f"/api/v1/fingerprints/{fid}", headers=h).status_code == 404
        actions = [a["action"] for a in app.state.db.audit_page(100, 0)[1]]
        assert actions.count("fingerprint.add") == 3 and actions.count("fingerprint.remove") == 2
    app2 = env.app()
    add_users(app2)
    with TestClient(app2) as c:
        login(c, "viewer")
        assert "no fingerprint library is configured" in c.get("/fingerprints").text


def test_cli_user_add_then_login(env: Env) -> None:
    from appliance.cli import main

    db = env.settings.console_db
    import os
    import subprocess as sp

    cfg = env.tmp / "console.yaml"
    cfg.write_text("web:\n  argon2_time_cost: 1\n  argon2_memory_kib: 256\n  argon2_parallelism: 1\n")
    r = sp.run([sys.executable, "-m", "appliance.cli", "user", "add", "erin", "--role", "analyst",
                "--password-stdin", "--console-db", str(db), "--config", str(cfg)], input="erin-password-1\n",
               capture_output=True, text=True, env={**os.environ})
    assert r.returncode == 0, r.stderr
    assert main(["user", "list", "--console-db", str(db)]) == 0
    app = env.app()
    with TestClient(app) as c:
        login(c, "erin", "erin-password-1")
        assert c.get("/policy").status_code == 200
    assert main(["user", "add", "erin", "--console-db", str(db), "--generate"]) == 1


def test_first_start_creates_an_admin_once(tmp_path: Path) -> None:
    from webui.db import ConsoleDB
    from webui.security import Passwords
    from webui.services.users import ensure_first_admin

    db, pw = ConsoleDB(tmp_path / "c.db"), Passwords(1, 256, 1)
    password = ensure_first_admin(db, pw)
    assert password and len(password) >= 16
    assert ensure_first_admin(db, pw) is None
    assert pw.verify(db.user_by_name("admin")["pw_hash"], password)
