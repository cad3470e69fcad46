"""The SQLite alert store: WAL, migrations, queries and indexes, FTS, triage, kill -9 durability."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from appliance.model import Alert, ContentObject, Direction, Evidence, Finding, FlowRef, Severity
from appliance.store import MIGRATIONS, AlertQuery, AlertStore, StoreError, StoreLocked, migrate

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


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    with AlertStore(tmp_path / "alerts.db") as s:
        yield s


def test_wal_schema_and_single_writer(store: AlertStore, tmp_path: Path) -> None:
    assert store.pragma("journal_mode") == "wal"
    assert store.pragma("synchronous") == 1  # NORMAL
    assert store.schema_version() == len(MIGRATIONS)
    with pytest.raises(StoreLocked):
        AlertStore(tmp_path / "alerts.db")


def test_add_get_and_duplicate_ids(store: AlertStore) -> None:
    a, obj = _alert(1), _obj(1)
    assert store.add(a, obj)
    assert not store.add(a, obj)  # same id: ignored
    got = store.get("A000001")
    assert got is not None
    assert got["ts_ns"] == a.ts_ns and got["severity"] == 2 and got["category"] == "data-leak"
    assert (got["src_zone"], got["dst_zone"], got["src_ip"], got["dest_port"]) == ("lan", "wan", "10.0.0.2", 80)
    assert got["http_url"] == "/upload/plan.docx" and got["file_sha256"] == f"{1:064x}"
    assert got["record"]["event_type"] == "alert" and got["record"]["tapsift"]["alert_id"] == "A000001"
    assert got["findings"][0]["inspector"] == "keyword" and got["findings"][0]["detail"] == {"w": "2.5"}
    assert got["object"]["filename"] == "plan.docx" and got["triage"] == "new"
    assert store.get("nope") is None


def test_add_many_is_one_transaction(store: AlertStore) -> None:
    assert store.add_many([(_alert(i), _obj(i)) for i in range(3)]) == 3
    with pytest.raises(AttributeError):  # the second item fails after the first was inserted
        store.add_many([(_alert(10), _obj(10)), (_alert(11), object())])  # type: ignore[list-item]
    assert store.count() == 3 and store.get("A000010") is None


def test_hostile_content_is_stored_verbatim_not_executed(store: AlertStore) -> None:
    evil = "'); DROP TABLE alerts; -- \x00 \ud800 \r\n"
    store.add(_alert(1, snippet=evil, category=evil, policy=evil), _obj(1, url=evil, filename=evil))
    got = store.get("A000001")
    assert got is not None and got["category"] == evil.replace("\ud800", "\ufffd")
    assert store.count({"category": evil.replace("\ud800", "\ufffd")}) == 1
    assert store.search("DROP TABLE")[0]["id"] == "A000001"


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
    assert store.query({"severity": 1, "category": "malware"})[0]["finding_count"] == 1
    with pytest.raises(TypeError):
        store.query({"no_such_filter": 1})


def test_console_queries_use_indexes(store: AlertStore) -> None:
    store.add_many([(_alert(i), _obj(i)) for i in range(50)])
    db = store._db
    db.execute("ANALYZE")
    for filters, index in [
        ({"since_ns": 1, "until_ns": 2}, "alerts_ts"),
        ({"category": "x"}, "alerts_category_ts"),
        ({"policy": "x"}, "alerts_policy_ts"),
        ({"triage": "new"}, "alerts_triage_ts"),
        ({"host": "h"}, "alerts_host_ts"),
        ({"inspector": "keyword"}, "findings_inspector"),
        ({"src_zone": "lan", "dst_zone": "wan"}, "alerts_zones_ts"),
    ]:
        where, params = store._where(filters)
        plan = " ".join(r[3] for r in db.execute(
            f"EXPLAIN QUERY PLAN SELECT seq FROM alerts{where} ORDER BY ts_ns DESC, seq DESC LIMIT 10", params))
        assert index in plan, (filters, plan)


def test_full_text_search(store: AlertStore) -> None:
    store.add(_alert(1, snippet="内部机密文件 confidential"), _obj(1, url="/a/secret-roadmap.pdf"))
    store.add(_alert(2, snippet="harmless"), _obj(2, filename="Budget_2025.xlsx", host="cdn.evil.example"))
    store.add(_alert(3, snippet="merger"), _obj(3))
    assert [r["id"] for r in store.search("机密")] == ["A000001"]  # CJK substring (short term)
    assert [r["id"] for r in store.search("confidential")] == ["A000001"]
    assert [r["id"] for r in store.search("ROADMAP")] == ["A000001"]  # URL, case-insensitive
    assert [r["id"] for r in store.search("budget_2025")] == ["A000002"]  # file name
    assert [r["id"] for r in store.search("evil.example")] == ["A000002"]  # host
    assert [r["id"] for r in store.search("merger plan.docx")] == ["A000003"]  # terms AND-ed
    assert store.search('"unbalanced AND OR NEAR(') == []  # user text is never FTS syntax
    assert store.count({"text": "keyword:secret", "severity": 2}) == 3


def test_triage_and_suppression(store: AlertStore) -> None:
    store.add(_alert(1), _obj(1))
    assert store.set_triage("A000001", "confirmed", "leak of plan", "alice")
    assert store.set_triage("A000001", "resolved", "", "bob")
    assert not store.set_triage("A999999", "confirmed")
    with pytest.raises(ValueError):
        store.set_triage("A000001", "whatever")
    got = store.get("A000001")
    assert got is not None and got["triage"] == "resolved" and got["triage_user"] == "bob"
    assert [t["verdict"] for t in got["triage_log"]] == ["confirmed", "resolved"]
    assert store.count({"triage": "resolved"}) == 1
    assert store.bump_suppressed("A000001", 5) and store.bump_suppressed("A000001")
    assert not store.bump_suppressed("nope")
    assert store.get("A000001")["suppressed"] == 6  # type: ignore[index]
    st = store.stats()
    assert st["alerts"] == 1 and st["suppressed"] == 6 and st["by_triage"] == {"resolved": 1}
    assert st["by_inspector"] == {"keyword": 1} and st["by_severity"] == {2: 1}


def test_purge(store: AlertStore) -> None:
    store.add_many([(_alert(i), _obj(i)) for i in range(10)])
    assert store.purge(BASE_TS + 5 * 10**9) == 5
    assert store.count() == 5 and store.search("merger") and len(store.search("merger")) == 5
    assert store._db.execute("SELECT COUNT(*) FROM findings").fetchone()[0] == 5
    assert store._db.execute("SELECT COUNT(*) FROM objects").fetchone()[0] == 5


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


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        AlertStore(path)


def test_reader_sees_commits_while_writer_writes(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    writer = AlertStore(path)
    reader = AlertStore.reader(path, check_same_thread=False)
    with pytest.raises(StoreError):
        reader.set_triage("A000001", "confirmed")
    with pytest.raises(sqlite3.OperationalError):
        reader._db.execute("DELETE FROM alerts")
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


def test_kill_9_loses_no_committed_alert(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), str(Path(__file__).parent)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    printed = []
    for line in proc.stdout:
        printed.append(line.strip())
        if len(printed) >= 500:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    printed += proc.stdout.read().split()
    with AlertStore(path) as s:  # the lock died with the process
        ids = {r["id"] for r in s.query(limit=100_000)}
        assert set(printed) <= ids
        assert s._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
