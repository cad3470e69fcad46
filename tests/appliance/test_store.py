"""The alert store on both backends (SQLite file, real PostgreSQL server): schema and migrations, queries and
their indexes, search in any language (1-2 character CJK terms too), triage, the sensor registry, kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from appliance.model import Alert, ContentObject, Direction, Evidence, Finding, FlowRef, Severity
from appliance.outputs.alertjson import alert_record
from appliance.store import MIGRATIONS, AddResult, AlertQuery, AlertStore, StoreError, StoreLocked, migrate
from tests.fleet_fixtures import BACKENDS, PostgresServer

BASE_TS = 1_714_564_800_000_000_000


def _flow(i: int, src_zone: str = "lan", dst_zone: str = "wan") -> FlowRef:
    return FlowRef(f"C{i}", 10_000 + i, f"10.0.0.{i % 200 + 1}", 40000 + i, "192.0.2.80", 80, "TCP", 0, "eth1",
                   src_zone, dst_zone)


def _obj(i: int, url: str = "/upload/plan.docx", filename: str = "plan.docx", host: str = "files.example.com"
         ) -> ContentObject:
    return ContentObject(id=f"F{i}", source="http", direction=Direction.TO_SERVER, flow=_flow(i),
                         ts_ns=BASE_TS + i, size=100 + i, md5=f"{i:032x}", sha256=f"{i:064x}", filename=filename,
                         url=url, host=host, method="POST", status=200, truncated=("body_limit",) if i % 7 == 0 else ())


def _alert(i: int, *, snippet: str = "quarterly merger plan", severity: Severity = Severity.HIGH,
           category: str = "data-leak", policy: str = "lan-to-wan", inspector: str = "keyword",
           src_zone: str = "lan", dst_zone: str = "wan") -> Alert:
    f = Finding(inspector, f"F{i}", "secret-words", 2.5, (Evidence(3, 3 + len(snippet), snippet),), {"w": "2.5"})
    return Alert(f"A{i:06d}", BASE_TS + i * 1_000_000_000, policy, "dlp", severity, category, f"F{i}",
                 _flow(i, src_zone, dst_zone), (f,), src_zone, dst_zone)


@pytest.fixture(params=BACKENDS)
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty store's location on each backend: a SQLite path, a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "alerts.db")
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def store(dsn: str) -> Iterator[AlertStore]:
    with AlertStore(dsn) as s:
        yield s


def _pg(store: AlertStore) -> bool:
    return store.dsn.dialect == "postgresql"


def test_wal_schema_and_single_writer(tmp_path: Path) -> None:
    with AlertStore(tmp_path / "alerts.db") as store:
        assert store.pragma("journal_mode") == "wal"
        assert store.pragma("synchronous") == 1  # NORMAL
        assert store.schema_version() == len(MIGRATIONS)
        with pytest.raises(StoreLocked):
            AlertStore(tmp_path / "alerts.db")


def test_add_get_and_duplicate_ids(store: AlertStore) -> None:
    a, obj = _alert(1), _obj(1)
    assert store.add(a, obj)
    assert not store.add(a, obj)  # same id: ignored
    assert store.schema_version() == len(MIGRATIONS)
    got = store.get("A000001")
    assert got is not None
    assert got["ts_ns"] == a.ts_ns and got["severity"] == 2 and got["category"] == "data-leak"
    assert (got["src_zone"], got["dst_zone"], got["src_ip"], got["dest_port"]) == ("lan", "wan", "10.0.0.2", 80)
    assert got["http_url"] == "/upload/plan.docx" and got["file_sha256"] == f"{1:064x}"
    assert got["direction"] == "upload"
    assert got["record"]["event_type"] == "alert" and got["record"]["tapsift"]["alert_id"] == "A000001"
    assert got["findings"][0]["inspector"] == "keyword" and got["findings"][0]["detail"] == {"w": "2.5"}
    assert got["object"]["filename"] == "plan.docx" and got["triage"] == "new"
    assert store.get("nope") is None


def test_add_alert_tells_inserted_duplicate_and_conflict(store: AlertStore) -> None:
    a, obj = _alert(1), _obj(1)
    rec = alert_record(a, obj)
    assert store.add_alert(rec, obj, a.ts_ns) is AddResult.INSERTED
    assert store.add_alert(rec, obj, a.ts_ns) is AddResult.DUPLICATE
    other = alert_record(_alert(1, snippet="something else entirely"), obj)  # same id, other content
    assert store.add_alert(other, obj, a.ts_ns) is AddResult.CONFLICT
    assert store.get("A000001")["findings"][0]["snippet"] == "quarterly merger plan"  # type: ignore[index]
    assert store.count() == 1 and not store.search("entirely")


def test_add_many_is_one_transaction(store: AlertStore) -> None:
    assert store.add_many([(_alert(i), _obj(i)) for i in range(3)]) == 3
    with pytest.raises(AttributeError):  # the second item fails after the first was inserted
        store.add_many([(_alert(10), _obj(10)), (_alert(11), object())])  # type: ignore[list-item]
    assert store.count() == 3 and store.get("A000010") is None


def test_hostile_content_is_stored_verbatim_not_executed(store: AlertStore) -> None:
    evil = "'); DROP TABLE alerts; -- \x00 \ud800 \r\n % ? $1 %s"
    store.add(_alert(1, snippet=evil, category=evil, policy=evil), _obj(1, url=evil, filename=evil))
    want = evil.replace("\ud800", "\ufffd")
    if _pg(store):  # PostgreSQL text cannot hold NUL
        want = want.replace("\x00", "\ufffd")
    got = store.get("A000001")
    assert got is not None and got["category"] == want and got["http_url"] == want
    assert got["record"]["alert"]["category"] == evil.replace("\ud800", "\ufffd")  # the record keeps NUL (escaped)
    assert store.count({"category": evil.replace("\ud800", "\ufffd")}) == 1
    assert store.search("DROP TABLE")[0]["id"] == "A000001"
    assert store.search("% ?")[0]["id"] == "A000001" and store.search("%s $1")[0]["id"] == "A000001"
    assert store.search("_x%") == []  # LIKE wildcards in a term are literal


def test_query_filters(store: AlertStore) -> None:
    items = []
    for i in range(40):
        items.append((_alert(i, severity=Severity(i % 5 + 1), category=("malware", "data-leak")[i % 2],
                             policy=("p1", "p2")[i % 3 == 0], inspector=("keyword", "md5")[i % 4 == 0],
                             src_zone=("lan", "dmz")[i % 2], dst_zone=("wan", "lan")[i % 5 == 0]), _obj(i)))
    store.add_many(items)
    q = store.query(limit=5)
    assert [r["id"] for r in q] == [f"A{i:06d}" for i in range(39, 34, -1)]  # newest first
    assert [r["id"] for r in store.query(limit=5, offset=5)] == [f"A{i:06d}" for i in range(34, 29, -1)]
    assert store.count(AlertQuery(since_ns=BASE_TS + 10 * 10**9, until_ns=BASE_TS + 20 * 10**9)) == 10
    assert store.count({"severity": 2}) == 16  # critical and high
    assert store.count({"category": "malware"}) == 20
    assert store.count({"policy": "p2"}) == 14
    assert store.count({"inspector": "md5"}) == 10
    assert store.count({"src_zone": "dmz", "dst_zone": "lan"}) == 4
    assert store.count({"zone": "lan"}) == 20 + 4
    assert store.count({"ip": "10.0.0.4"}) == 1 and store.count({"ip": "192.0.2.80"}) == 40
    assert store.count({"host": "files.example.com"}) == 40
    assert store.count({"hash": f"{5:064x}"}) == 1 and store.count({"hash": f"{5:032x}"}) == 1
    top = store.query({"severity": 1, "category": "malware"})[0]
    assert top["finding_count"] == 1 and top["inspectors"] in ("keyword", "md5")
    with pytest.raises(TypeError):
        store.query({"no_such_filter": 1})


INDEXED = [
    ({"since_ns": 1, "until_ns": 2}, "alerts_ts"),
    ({"category": "x"}, "alerts_category_ts"),
    ({"policy": "x"}, "alerts_policy_ts|alerts_policy_profile"),
    ({"triage": "investigating"}, "alerts_triage_ts"),
    ({"host": "h"}, "alerts_host_ts"),
    ({"inspector": "keyword"}, "findings_inspector"),
    ({"src_zone": "dmz", "dst_zone": "lan"}, "alerts_zones_ts"),
    ({"text": "机密"}, "grams"),  # a two-character CJK term: the n-gram index
    ({"text": "confidential"}, "_trgm|alerts_fts"),  # the trigram index
]


def test_console_queries_use_indexes(store: AlertStore) -> None:
    store.add_many([(_alert(i, src_zone=("lan", "dmz")[i % 10 == 0], dst_zone=("wan", "lan")[i % 20 == 0]), _obj(i))
                    for i in range(200)])
    for filters, index in INDEXED:
        where, params = store._where(filters)
        sql = f"SELECT seq FROM alerts{where} ORDER BY ts_ns DESC, seq DESC LIMIT 10"
        if _pg(store):
            with store.db.connection() as ex:  # a small table: walking all of it (or its primary key) is cheap
                ex.execute("ANALYZE")
                ex.execute("SET enable_seqscan = off")
                ex.execute("SET enable_indexscan = off")  # so every index used shows as a bitmap scan by name
                plan = " ".join(r["QUERY PLAN"] for r in ex.rows(f"EXPLAIN {sql}", params))
                ex.execute("RESET ALL")
        else:
            store._db.execute("ANALYZE")
            plan = " ".join(r[3] for r in store._db.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        want = {"grams": "alerts_text_grams" if _pg(store) else "alerts_grams"}.get(index, index)
        assert any(w in plan for w in want.split("|")), (filters, plan)


def test_full_text_search(store: AlertStore) -> None:
    store.add(_alert(1, snippet="内部机密文件 confidential"), _obj(1, url="/a/secret-roadmap.pdf"))
    store.add(_alert(2, snippet="harmless"), _obj(2, filename="Budget_2025.xlsx", host="cdn.evil.example"))
    store.add(_alert(3, snippet="merger"), _obj(3))
    store.add(_alert(4, snippet="한국 기밀 문서, roadmap slips to Q3"), _obj(4))
    store.add(_alert(5, snippet="社外秘の資料です"), _obj(5))

    def ids(text: str) -> list[str]:
        return sorted(r["id"] for r in store.search(text))

    assert ids("机密") == ["A000001"]  # CJK, two characters (the n-gram index)
    assert ids("密") == ["A000001"] and ids("部机") == ["A000001"]  # one character; a pair across words
    assert ids("密文件") == ["A000001"]  # three characters (the trigram index)
    assert ids("机文") == [] and ids("件内") == []  # characters present but not adjacent
    assert ids("기밀") == ["A000004"] and ids("밀") == ["A000004"]  # Hangul
    assert ids("外秘") == ["A000005"] and ids("の") == ["A000005"]  # kana and kanji
    assert ids("机密 confidential") == ["A000001"] and ids("机密 merger") == []  # mixed terms AND-ed
    assert ids("Q3") == ["A000004"] and ids("q3 roadmap") == ["A000004"]  # short Latin: a substring test
    assert ids("confidential") == ["A000001"]
    assert ids("ROADMAP") == ["A000001", "A000004"]  # URL and evidence, case-insensitive
    assert ids("budget_2025") == ["A000002"]  # file name
    assert ids("evil.example") == ["A000002"]  # host
    assert ids("merger plan.docx") == ["A000003"]  # terms AND-ed
    assert store.search('"unbalanced AND OR NEAR(') == []  # user text is never FTS syntax
    assert store.count({"text": "keyword:secret", "severity": 2}) == 5


def test_triage_and_suppression(store: AlertStore) -> None:
    store.add(_alert(1), _obj(1))
    assert store.set_triage("A000001", "confirmed", "leak of plan", "alice")
    assert store.set_triage("A000001", "resolved", "", "bob")
    assert not store.set_triage("A999999", "confirmed")
    with pytest.raises(ValueError):
        store.set_triage("A000001", "whatever")
    got = store.get("A000001")
    assert got is not None and got["triage"] == "resolved" and got["triage_user"] == "bob"
    assert [(t["verdict"], t["user"]) for t in got["triage_log"]] == [("confirmed", "alice"), ("resolved", "bob")]
    assert store.count({"triage": "resolved"}) == 1
    assert store.bump_suppressed("A000001", 5) and store.bump_suppressed("A000001")
    assert not store.bump_suppressed("nope")
    assert store.get("A000001")["suppressed"] == 6  # type: ignore[index]
    st = store.stats()
    assert st["alerts"] == 1 and st["suppressed"] == 6 and st["by_triage"] == {"resolved": 1}
    assert st["by_inspector"] == {"keyword": 1} and st["by_severity"] == {2: 1}
    assert st["schema_version"] == len(MIGRATIONS) and st["db_bytes"] > 0


def test_console_aggregates_see_verdicts(dsn: str, tmp_path: Path) -> None:
    """Every count the console shows agrees with the alerts' effective state (verdict, else the store's own)."""
    from collections import Counter

    from webui.alerts import ViewFactory
    from webui.db import ConsoleDB

    with AlertStore(dsn) as store:
        store.add_many([(_alert(i, policy=("p1", "p2")[i % 2], inspector=("keyword", "md5")[i % 3 == 0]), _obj(i))
                        for i in range(12)])
        assert store.set_triage("A000003", "investigating") and store.set_triage("A000004", "false_positive")
    console = ConsoleDB(dsn if dsn.startswith("postgresql") else tmp_path / "console.db")
    views = ViewFactory(dsn, console)
    with console.tx() as tx:
        for alert_id, verdict in (("A000001", "confirmed"), ("A000002", "false_positive"), ("A000003", "confirmed"),
                                  ("A000005", "new"), ("A999999", "confirmed")):  # the last: no such alert
            tx.verdicts.set(alert_id, verdict, "", "alice", 1.0)
    try:
        with views() as view:
            rows = view.query(AlertQuery(), limit=100)
            want = Counter(r["triage"] for r in rows)
            assert want == {"new": 8, "confirmed": 2, "false_positive": 2}
            assert view.stats()["by_triage"] == dict(want)
            assert dict(view.top("triage", BASE_TS, BASE_TS + 100 * 10**9)) == dict(want)
            assert dict(view.top("triage", BASE_TS + 2 * 10**9, BASE_TS + 5 * 10**9)) == {"confirmed": 1,
                                                                                          "false_positive": 2}
            for state, n in [*want.items(), ("investigating", 0)]:
                assert view.count(AlertQuery(triage=state)) == n
                assert len(view.query(AlertQuery(triage=state))) == n
            by_rule = {(r["policy"], r["profile"]): r for r in view.rule_quality()}
            for policy in ("p1", "p2"):
                mine = [r for r in rows if r["policy"] == policy]
                got = by_rule[(policy, "dlp")]
                assert (got["hits"], got["untriaged"], got["last_ts_ns"]) == (
                    len(mine), sum(r["triage"] == "new" for r in mine), max(r["ts_ns"] for r in mine))
                assert (got["tp"], got["fp"]) == (sum(r["triage"] == "confirmed" for r in mine),
                                                  sum(r["triage"] == "false_positive" for r in mine))
            for q in view.list_quality():
                mine = [r for r in rows if r["inspectors"] == q["inspector"]]
                assert (q["hits"], q["tp"], q["fp"]) == (len(mine), sum(r["triage"] == "confirmed" for r in mine),
                                                         sum(r["triage"] == "false_positive" for r in mine))
    finally:
        views.close()
        console.close()


def test_purge(store: AlertStore) -> None:
    store.add_many([(_alert(i), _obj(i)) for i in range(10)])
    assert store.purge(BASE_TS + 5 * 10**9) == 5
    assert store.count() == 5 and store.search("merger") and len(store.search("merger")) == 5
    assert store.db.scalar("SELECT COUNT(*) FROM findings") == 5
    assert store.db.scalar("SELECT COUNT(*) FROM objects") == 5


def test_sensor_registry(store: AlertStore) -> None:
    reg = store.sensors
    reg.heartbeat("edge-1", 100.0, policy_version="3f2a", software="tapsift 0.1",
                  counters={"packets": 10, "drops": 0, "bad": "x", "inf": float("inf"), "flag": True})
    reg.heartbeat("edge-2", 105.0)
    reg.heartbeat("edge-1", 110.0, policy_version="9c1d", counters={"packets": 20, "queue_alerts": 1.5})
    got = reg.get("edge-1")
    assert got is not None and (got["first_seen"], got["last_seen"], got["policy_version"]) == (100.0, 110.0, "9c1d")
    assert got["counters"] == {"packets": 20, "queue_alerts": 1.5}
    assert [s["name"] for s in reg.list()] == ["edge-1", "edge-2"]
    assert reg.forget("edge-2") and not reg.forget("edge-2") and reg.get("nope") is None
    with pytest.raises(ValueError):
        reg.heartbeat("  ", 1.0)


def _main_store(path: Path) -> None:
    """A store as the code before the store interface left it (schema v2), with one alert inserted the way it did."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    assert migrate(db, target=2) == 2
    rec = '{"event_type": "alert", "tapsift": {"alert_id": "A1", "direction": "download"}}'
    db.execute(
        "INSERT OR IGNORE INTO alerts (id, ts_ns, severity, category, policy, profile, src_zone, dst_zone, src_ip, "
        "dest_ip, http_url, file_name, json) VALUES ('A1', 1, 2, 'c', 'p', 'q', 'lan', 'wan', '198.51.100.7', "
        "'10.0.0.9', '/old/roadmap.pdf', 'r.pdf', ?)", (rec,))
    db.execute("INSERT INTO findings (alert_seq, idx, inspector, rule, snippet) VALUES (1, 0, 'kw', 'r', "
               "'old secret: 内部机密')")
    db.execute("INSERT INTO alerts_fts (rowid, evidence, url, filename, host, rules) VALUES "
               "(1, 'old secret: 内部机密', '/old/roadmap.pdf', 'r.pdf', '', 'kw:r')")
    db.close()


def test_upgrade_from_v1(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    assert migrate(db, target=1) == 1
    db.execute(
        "INSERT INTO alerts (id, ts_ns, severity, category, policy, profile, src_zone, dst_zone, http_url, "
        "file_name, json) VALUES ('A1', 1, 2, 'c', 'p', 'q', 'lan', 'wan', '/old/roadmap.pdf', 'r.pdf', '{}')")
    db.execute("INSERT INTO findings (alert_seq, idx, inspector, rule, snippet) VALUES (1, 0, 'kw', 'r', 'old secret')")
    db.close()
    with AlertStore(path) as s:
        assert s.schema_version() == len(MIGRATIONS)
        assert [r["id"] for r in s.search("roadmap")] == ["A1"]
        assert [r["id"] for r in s.search("old secret")] == ["A1"]
        assert s.set_triage("A1", "confirmed", "ok", "carol")


def test_upgrade_of_a_store_written_by_the_previous_version(tmp_path: Path) -> None:
    """Migrated in place: the server side of a hit becomes a column, old CJK evidence is found by 1-2 characters."""
    path = tmp_path / "alerts.db"
    _main_store(path)
    with AlertStore(path) as s:
        assert s.schema_version() == len(MIGRATIONS) == 4
        got = s.get("A1")
        assert got is not None and got["direction"] == "download" and got["sensor"] is None
        assert [r["id"] for r in s.search("机密")] == ["A1"] and [r["id"] for r in s.search("密")] == ["A1"]
        assert [r["id"] for r in s.search("roadmap 机密")] == ["A1"]
        assert s.add(_alert(2), _obj(2)) and s.count() == 2
        s.sensors.heartbeat("edge-1", 1.0)
    with AlertStore.reader(path) as r:
        assert r.count() == 2


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        AlertStore(path)


def test_reader_sees_commits_while_writer_writes(dsn: str) -> None:
    writer = AlertStore(dsn)
    reader = AlertStore.reader(dsn, check_same_thread=False)
    with pytest.raises(StoreError):
        reader.set_triage("A000001", "confirmed")
    with pytest.raises((sqlite3.OperationalError, psycopg.errors.ReadOnlySqlTransaction)):
        reader.db.execute("DELETE FROM alerts")
    counts: list[int] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            counts.append(reader.count())

    t = threading.Thread(target=read)
    t.start()
    for i in range(0, 300, 10):
        writer.add_many([(_alert(j), _obj(j)) for j in range(i, i + 10)])
    done.set()
    t.join()
    assert counts == sorted(counts) and all(c % 10 == 0 for c in counts)  # whole transactions only
    assert reader.count() == 300
    reader.close()
    writer.close()


def test_reader_needs_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        AlertStore.reader(tmp_path / "missing.db")


_CHILD = """
import sys
sys.path.insert(0, sys.argv[2])
from test_store import _alert, _obj
from appliance.store import AlertStore
s = AlertStore(sys.argv[1])
print("open", flush=True)
i = 0
while True:
    if i % 3 == 0:
        s.add_many([(_alert(j), _obj(j)) for j in range(i, i + 3)])
        for j in range(i, i + 3):
            print(f"A{j:06d}", flush=True)
        i += 3
    else:
        s.add(_alert(i), _obj(i))
        print(f"A{i:06d}", flush=True)
        i += 1
"""


def test_kill_9_loses_no_committed_alert(dsn: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, dsn, str(Path(__file__).parent)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    printed = []
    for line in proc.stdout:
        if line.strip() != "open":
            printed.append(line.strip())
        if len(printed) >= 500:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    printed += proc.stdout.read().split()
    with AlertStore(dsn) as s:  # the lock died with the process
        ids = {r["id"] for r in s.query(limit=100_000)}
        assert set(printed) <= ids
        if s.path is not None:
            assert s._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# -- PostgreSQL: migrations on an empty database ---------------------------------------------------


@pytest.mark.fleet
def test_postgres_schema_steps_and_versions(postgres_server: PostgresServer) -> None:
    """An empty database is migrated step by step (as a fleet running older code would have left it)."""
    from appliance.store.migrations import migrate_backend
    from appliance.store.postgres import PostgresBackend

    name = postgres_server.create_database()
    dsn = postgres_server.dsn(name)
    try:
        with pytest.raises(StoreError, match=r"v0 .*tapsift db migrate"):
            AlertStore.reader(dsn)
        backend = PostgresBackend(dsn)
        assert migrate_backend(backend, "alerts", MIGRATIONS[:2]) == 2
        backend.execute("INSERT INTO alerts (id, ts_ns, severity, category, policy, profile, src_zone, dst_zone, "
                        "json) VALUES ('A1', 1, 2, 'c', 'p', 'q', 'lan', 'wan', ?)",
                        ('{"tapsift": {"direction": "download", "note": "nul \\u0000 escaped"}}',))
        backend.close()
        with AlertStore(dsn) as s:
            assert s.schema_version() == len(MIGRATIONS)
            assert s.get("A1")["direction"] == "download"  # type: ignore[index]
        postgres_server.sql("UPDATE tapsift_schema SET version = 99 WHERE component = 'alerts'", dbname=name)
        with pytest.raises(StoreError, match="newer"):
            AlertStore(dsn)
    finally:
        postgres_server.drop_database(name)
