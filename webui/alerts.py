"""Alerts as the console shows them: the store (read-only) with analysts' verdicts joined on.

The alert store has exactly one writer, the sensor's alert writer (it holds ``<db>.lock``;
a second ``AlertStore(path)`` raises ``StoreLocked``). The console therefore never writes the
alerts database: verdicts are written to the console database (``verdicts``), and each read
connection attaches that database read-only and defines a TEMP view named ``alerts`` that
shadows ``main.alerts`` with the verdict columns overlaid (SQLite resolves an unqualified name
in ``temp`` first). The store's own query code (filters, FTS, stats) then sees the overlaid
triage state, so filtering and counting by verdict work without duplicating that code.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from pathlib import Path
from typing import Any

from appliance.store import TRIAGE_STATES, AlertQuery, AlertStore, StoreError

__all__ = ["TRIAGE_STATES", "AlertQuery", "AlertView", "StoreError", "open_view"]

_OVERLAY = {
    "triage": "COALESCE(v.verdict, a.triage)",
    "triage_note": "COALESCE(v.note, a.triage_note)",
    "triage_user": "COALESCE(v.user, a.triage_user)",
    "triage_ts": "COALESCE(v.ts, a.triage_ts)",
}


SERVER_ADDRESS = "CASE json_extract(json, '$.tapsift.direction') WHEN 'download' THEN src_ip ELSE dest_ip END"
"""The server's address of an alert: EVE's source for a download, its destination otherwise."""


class AlertView:
    """A read-only `AlertStore` with the console's verdicts overlaid; one per request (not thread-safe)."""

    def __init__(self, alert_db: Path, console_db: Path) -> None:
        self.store = AlertStore.reader(alert_db, timeout=5.0)
        # The store has no public hook for extra SQL; this module is the one place that uses its
        # connection, to attach the verdicts and run the dashboard's grouped queries.
        self.db: sqlite3.Connection = self.store._db
        uri = "file:" + urllib.parse.quote(str(Path(console_db).resolve())) + "?mode=ro"
        self.db.execute("ATTACH DATABASE ? AS console", (uri,))
        cols = [r[1] for r in self.db.execute("PRAGMA main.table_info(alerts)")]
        select = ", ".join(f"{_OVERLAY[c]} AS {c}" if c in _OVERLAY else f"a.{c} AS {c}" for c in cols)
        self.db.execute(f"CREATE TEMP VIEW alerts AS SELECT {select} FROM main.alerts a "
                        "LEFT JOIN console.verdicts v ON v.alert_id = a.id")

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> AlertView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the store's API, overlaid -------------------------------------------------------------

    def query(self, q: AlertQuery, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        return self.store.query(q, limit, offset)

    def count(self, q: AlertQuery | None = None) -> int:
        return self.store.count(q)

    def get(self, alert_id: str) -> dict[str, Any] | None:
        return self.store.get(alert_id)

    def stats(self) -> dict[str, Any]:
        return self.store.stats()

    # -- console queries -------------------------------------------------------------------------

    def _rows(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        cur = self.db.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def distinct(self, col: str, limit: int = 200) -> list[str]:
        """Values of a filterable column (for the filter drop-downs)."""
        if col not in {"category", "policy", "profile", "src_zone", "dst_zone"}:
            raise ValueError(col)
        return [r[0] for r in self.db.execute(
            f"SELECT DISTINCT {col} FROM main.alerts WHERE {col} IS NOT NULL ORDER BY 1 LIMIT ?", (limit,))]

    def inspectors(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT inspector FROM findings ORDER BY 1 LIMIT 100")]

    def zones(self) -> list[str]:
        return sorted(set(self.distinct("src_zone")) | set(self.distinct("dst_zone")))

    def time_bounds(self) -> tuple[int | None, int | None]:
        row = self.db.execute("SELECT MIN(ts_ns), MAX(ts_ns) FROM main.alerts").fetchone()
        return row[0], row[1]

    def histogram(self, since_ns: int, until_ns: int, buckets: int = 48) -> list[tuple[int, int]]:
        """(bucket start ns, hits) for *buckets* equal slices of [since, until)."""
        width = max(1, (until_ns - since_ns + buckets - 1) // buckets)
        counts = dict(self.db.execute(
            "SELECT (ts_ns - ?) / ?, COUNT(*) FROM main.alerts WHERE ts_ns >= ? AND ts_ns < ? GROUP BY 1",
            (since_ns, width, since_ns, until_ns)).fetchall())
        return [(since_ns + i * width, int(counts.get(i, 0))) for i in range(buckets)]

    def top(self, expr: str, since_ns: int, until_ns: int, limit: int = 10) -> list[tuple[str, int]]:
        """Top values of a fixed grouping expression in the range (never user input)."""
        exprs = {
            "zones": "src_zone || ' → ' || dst_zone", "category": "category", "policy": "policy",
            "host": f"COALESCE(http_host, {SERVER_ADDRESS})", "src_ip": "src_ip", "triage": "triage",
            "severity": "severity",
        }
        sql = (f"SELECT {exprs[expr]} AS k, COUNT(*) AS n FROM alerts WHERE ts_ns >= ? AND ts_ns < ? "
               "AND k IS NOT NULL GROUP BY k ORDER BY n DESC, k LIMIT ?")
        return [(str(k), int(n)) for k, n in self.db.execute(sql, (since_ns, until_ns, limit)).fetchall()]

    def servers(self, alert_ids: list[str]) -> dict[str, str]:
        """Alert id → its server's address (see `SERVER_ADDRESS`)."""
        if not alert_ids:
            return {}
        marks = ",".join("?" * len(alert_ids))
        sql = f"SELECT id, {SERVER_ADDRESS} FROM main.alerts WHERE id IN ({marks})"
        return {k: v for k, v in self.db.execute(sql, alert_ids).fetchall() if v}

    def rule_quality(self) -> list[dict[str, Any]]:
        """Per policy rule and profile: hits, true/false positives and precision from verdicts."""
        got = self._rows(
            "SELECT policy, profile, COUNT(*) AS hits, SUM(triage = 'confirmed') AS tp, "
            "SUM(triage = 'false_positive') AS fp, SUM(triage = 'new') AS untriaged, MAX(ts_ns) AS last_ts_ns "
            "FROM alerts GROUP BY policy, profile ORDER BY hits DESC")
        for r in got:
            judged = (r["tp"] or 0) + (r["fp"] or 0)
            r["precision"] = (r["tp"] / judged) if judged else None
        return got

    def list_quality(self) -> list[dict[str, Any]]:
        """Per inspector list (finding rule): hits, true/false positives and precision."""
        got = self._rows(
            "SELECT f.inspector AS inspector, f.rule AS rule, COUNT(DISTINCT a.seq) AS hits, "
            "COUNT(DISTINCT CASE WHEN a.triage = 'confirmed' THEN a.seq END) AS tp, "
            "COUNT(DISTINCT CASE WHEN a.triage = 'false_positive' THEN a.seq END) AS fp "
            "FROM findings f JOIN alerts a ON a.seq = f.alert_seq GROUP BY f.inspector, f.rule ORDER BY hits DESC")
        for r in got:
            judged = r["tp"] + r["fp"]
            r["precision"] = (r["tp"] / judged) if judged else None
        return got


def open_view(alert_db: Path, console_db: Path) -> AlertView:
    """An `AlertView`, or `StoreError` when the store is missing or of another schema."""
    try:
        return AlertView(alert_db, console_db)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the alert store {alert_db}: {exc}") from exc
