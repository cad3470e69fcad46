"""The hourly rollups agree with counting the alerts themselves: on insert, after triage changes, purges and
the migration of a store written before them."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from appliance.model import Alert, ContentObject, Direction, Evidence, Finding, FlowRef, Severity
from appliance.store import AlertStore
from appliance.store.rollup import HOUR_NS, SEP
from tests.fleet_fixtures import BACKENDS, pg_dsn, pg_template, postgres_server  # noqa: F401

BASE = 1_714_564_800_000_000_000


def _items(n: int, seed: int = 7) -> list[tuple[Alert, ContentObject]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ts = BASE + rng.randrange(72 * HOUR_NS)
        down = rng.random() < 0.4
        client, server = f"10.0.{i % 3}.{i % 7}", f"203.0.113.{i % 5}"
        src, dst = (server, client) if down else (client, server)
        zone = rng.choice(["office", "guest"])
        flow = FlowRef(f"C{i}", i, src, 80, dst, 4000, "TCP", 0, "eth0", zone, "any")
        host = rng.choice(["a.example", "b.example", None])
        obj = ContentObject(id=f"F{i}", source="http", direction=Direction.TO_CLIENT if down else Direction.TO_SERVER,
                            flow=flow, ts_ns=ts, size=10, md5="0" * 32, sha256="0" * 64, host=host or "")
        fs = tuple(Finding(insp, obj.id, rule, 5.0, (Evidence(0, 1, "x"),), {})
                   for insp, rule in rng.sample([("keyword", "a"), ("keyword", "b"), ("dataclass", "c")], 2))
        out.append((Alert(f"A{i:05d}", ts, rng.choice(["p1", "p2"]), rng.choice(["x", "y"]),
                          Severity(rng.randint(1, 5)), rng.choice(["fraud", "spam", "data-leak"]), obj.id, flow, fs,
                          zone, "any"), obj))
    return out


def _direct(store: AlertStore) -> dict[str, Counter[tuple[int, str]]]:
    """Each rollup dimension counted from the alerts themselves (as `rollup.dims_of` defines it)."""
    out: dict[str, Counter[tuple[int, str]]] = {}
    rows = store.db.rows("SELECT * FROM alerts")
    lists = {}
    for r in store.db.rows("SELECT alert_seq, inspector, rule FROM findings"):
        lists.setdefault(r["alert_seq"], set()).add((r["inspector"], r["rule"]))
    for r in rows:
        h = r["ts_ns"] // HOUR_NS
        down = r["direction"] == "download"
        server, client = (r["src_ip"], r["dest_ip"]) if down else (r["dest_ip"], r["src_ip"])
        vals = {"all": "", "severity": str(r["severity"]), "category": r["category"],
                "zones": f"{r['src_zone']} → {r['dst_zone']}", "policy": r["policy"], "triage": r["triage"],
                "rule": f"{r['policy']}{SEP}{r['profile']}{SEP}{r['triage']}",
                "host": r["http_host"] if r["http_host"] is not None else server, "client": client, "server": server}
        for dim, v in vals.items():
            out.setdefault(dim, Counter())[(h, v)] += 1
        for insp, rule in lists.get(r["seq"], ()):
            out.setdefault("list", Counter())[(h, f"{insp}{SEP}{rule}{SEP}{r['triage']}")] += 1
    return out


def _rolled(store: AlertStore) -> dict[str, Counter[tuple[int, str]]]:
    out: dict[str, Counter[tuple[int, str]]] = {}
    for r in store.db.rows("SELECT dim, hour, value, n FROM alert_rollup WHERE n <> 0"):
        out.setdefault(r["dim"], Counter())[(int(r["hour"]), r["value"])] += int(r["n"])
    return out


@pytest.fixture(params=BACKENDS)
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return request.getfixturevalue("pg_dsn") if request.param == "postgresql" else str(tmp_path / "a.db")


def test_rollups_follow_inserts_triage_and_purges(dsn: str) -> None:
    items = _items(300)
    with AlertStore(dsn) as store:
        store.add_many(items[:200])
        for a, o in items[200:]:
            store.add(a, o)  # one transaction each
        store.add(*items[5])  # a duplicate counts nothing
        assert _rolled(store) == _direct(store)
        store.set_triage("A00003", "confirmed")
        store.set_triage("A00003", "false_positive")
        store.set_triage("A00010", "resolved")
        assert _rolled(store) == _direct(store)
        cut = BASE + 30 * HOUR_NS + HOUR_NS // 2  # inside an hour: that hour is recounted
        store.purge(cut)
        assert _rolled(store) == _direct(store)
        st = store.alerts._stats
        assert st.total() == store.count() == store.db.scalar("SELECT COUNT(*) FROM alerts")
        lo, hi = BASE + 40 * HOUR_NS, BASE + 60 * HOUR_NS
        assert st.count_range(lo, hi) == store.db.scalar("SELECT COUNT(*) FROM alerts WHERE ts_ns >= ? "
                                                         "AND ts_ns < ?", (lo, hi))
        # a time series from the rollups equals one from the time index
        _width, rolled = st.series("category", lo, hi, 10)
        _w2, direct = st.series_any("category", lo, hi - 1, 10)  # not whole hours: read from the alerts
        assert sum(map(sum, rolled.values())) == sum(map(sum, direct.values()))


def test_a_store_from_before_the_rollups_is_counted_when_migrated(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    with AlertStore(path) as store:
        store.add_many(_items(80))
    db = sqlite3.connect(path)  # as a v3 store: no rollups, no address columns
    db.executescript("DROP TABLE alert_rollup; DROP INDEX alerts_src_ipx; DROP INDEX alerts_dest_ipx; "
                     "DROP INDEX alerts_flow; ALTER TABLE alerts DROP COLUMN src_ipx; "
                     "ALTER TABLE alerts DROP COLUMN dest_ipx; PRAGMA user_version = 3;")
    db.close()
    with AlertStore(path) as store:
        assert store.schema_version() == 4
        assert _rolled(store) == _direct(store)
        assert store.db.scalar("SELECT COUNT(*) FROM alerts WHERE src_ipx IS NULL") == 0
