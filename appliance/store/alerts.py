"""Alerts and their findings: how one is stored, the console's filters, and every read the console makes.

`AlertRepo` works over any `Executor`. Writes run inside a transaction (``store.tx()``);
reads take an optional *verdicts* table: the console's verdicts (``verdicts`` on PostgreSQL,
``console.verdicts`` — the console's SQLite file, attached read-only — on SQLite) joined by
alert id, whose verdict, when there is one, is the alert's triage state in every result,
filter and count. Every statement is parameterised; nothing from an alert is spliced into SQL.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from appliance.model import ContentObject
from appliance.outputs.alertjson import clean, dumps
from appliance.store.alertfields import HIT_FIELDS
from appliance.store.alertstats import AlertStats
from appliance.store.backend import Executor
from appliance.store.objects import AddResult, ObjectRepo, insert_sql, int64
from appliance.store.querylang import CompileCtx, Compiler, Node, ip_hex
from appliance.store.rollup import HOUR_NS, RollupBatch, dims_of, rebuild_hours
from appliance.store.textindex import TextIndex

__all__ = ["ALERTS_TEXT", "NOTE_MAX", "TRIAGE_STATES", "AlertQuery", "AlertRepo", "alert_row"]

TRIAGE_STATES = ("new", "investigating", "confirmed", "false_positive", "resolved", "ignored")
NOTE_MAX = 8000

ALERTS_TEXT = TextIndex("alerts", ("evidence", "url", "filename", "host", "rules"), pg_key="alert_seq")
"""The alerts' search index: findings' snippets, URL, file name, host, ``inspector:rule`` names."""

log = logging.getLogger(__name__)

_SUMMARY = (
    "alerts.seq, id, ts_ns, severity, category, policy, profile, src_zone, dst_zone, flow_uid, src_ip, src_port, "
    "dest_ip, dest_port, proto, app_proto, alerts.content_id, http_host, http_url, file_name, file_sha256, "
    "file_size, file_state, complete, direction, sensor, {triage} AS triage, {triage_user} AS triage_user, "
    "{triage_ts} AS triage_ts, {assignee} AS assignee, suppressed, "
    "(SELECT COUNT(*) FROM findings f WHERE f.alert_seq = alerts.seq) AS finding_count, "
    "(SELECT {inspectors} FROM findings f WHERE f.alert_seq = alerts.seq) AS inspectors"
)
MANY_MATCHES = 5000
"""Matches beyond which walking the newest alerts finds a page sooner than collecting every match first."""
_DISTINCT = frozenset({"category", "policy", "profile", "src_zone", "dst_zone"})
_LEADING = {"category": "alerts", "policy": "alerts", "src_zone": "alerts", "dst_zone": "alerts",
            "inspector": "findings"}
"""Columns that lead an index: their distinct values are found by one index seek each (`distinct_values`)."""


def distinct_values(ex: Executor, table: str, col: str, limit: int) -> list[Any]:
    """The first *limit* distinct non-NULL values of an indexed column, in order: a loose index scan
    (a recursive query that seeks the next larger value), not a walk over every row."""
    return ex.column(
        f"WITH RECURSIVE d(v, n) AS (SELECT MIN({col}), 1 FROM {table} UNION ALL "
        f"SELECT (SELECT MIN({col}) FROM {table} WHERE {col} > d.v), d.n + 1 FROM d "
        "WHERE d.v IS NOT NULL AND d.n < ?) SELECT v FROM d WHERE v IS NOT NULL", (limit,))


@dataclass(slots=True)
class AlertQuery:
    """Console filters; every field is optional and they combine with AND."""

    since_ns: int | None = None
    until_ns: int | None = None
    """Half-open time range ``[since_ns, until_ns)``."""
    severity: int | None = None
    """At least this severe (1 = critical): ``severity <= n``."""
    category: str | None = None
    policy: str | None = None
    profile: str | None = None
    src_zone: str | None = None
    dst_zone: str | None = None
    zone: str | None = None
    """Either end of the zone pair."""
    inspector: str | None = None
    rule: str | None = None
    ip: str | None = None
    """Source or destination address."""
    host: str | None = None
    triage: str | None = None
    content_id: str | None = None
    hash: str | None = None
    """File MD5 or SHA-256."""
    text: str | None = None
    """Full-text search over evidence, URL, file name, host and rule names (see `appliance.store.textindex`)."""
    expr: Node | None = None
    """A parsed query (`appliance.store.querylang.parse`), compiled with `HIT_FIELDS`."""
    ctx: dict[str, Any] | None = None
    """What compiling *expr* needs besides the tree: ``tz`` (a tzinfo), ``now_ns``, ``user``,
    ``baseline_seq`` (``is:new``)."""
    before: tuple[int, int] | None = None
    """Keyset page: only alerts older than this (ts_ns, seq), newest first."""
    after_seq: int | None = None
    """Only alerts stored after this ``seq`` (auto-refresh)."""
    sensor: str | None = None
    """The sensor that raised it (fleet, docs/fleet.md)."""


def alert_row(rec: dict[str, Any], ts_ns: int) -> dict[str, Any]:
    """The ``alerts`` columns of an alert record (`alert_record`)."""
    al, ts = rec.get("alert", {}), rec.get("tapsift", {})
    http, fi = rec.get("http") or {}, rec.get("fileinfo") or {}
    return {
        "id": ts.get("alert_id"), "ts_ns": int64(ts_ns), "severity": int64(al.get("severity", 3)),
        "category": al.get("category", ""), "policy": ts.get("policy", ""),
        "profile": ts.get("profile", ""), "src_zone": ts.get("src_zone", "any"),
        "dst_zone": ts.get("dst_zone", "any"), "flow_uid": ts.get("flow_uid"),
        "flow_id": int64(rec.get("flow_id")), "src_ip": rec.get("src_ip"),
        "src_port": int64(rec.get("src_port")), "dest_ip": rec.get("dest_ip"),
        "dest_port": int64(rec.get("dest_port")), "proto": rec.get("proto"),
        "vlan": int64((rec.get("vlan") or [None])[0]), "iface": rec.get("in_iface"),
        "app_proto": rec.get("app_proto"), "content_id": ts.get("content_id"),
        "http_host": http.get("hostname"), "http_url": http.get("url"),
        "http_method": http.get("http_method"), "http_status": int64(http.get("status")),
        "http_user_agent": http.get("http_user_agent"), "file_name": fi.get("filename"),
        "file_md5": fi.get("md5"), "file_sha256": fi.get("sha256"), "file_size": int64(fi.get("size")),
        "file_state": fi.get("state"), "file_mime": ts.get("mime"),
        "complete": int(bool(ts.get("complete", True))), "direction": ts.get("direction"),
        "sensor": ts.get("sensor"), "src_ipx": ip_hex(rec.get("src_ip")), "dest_ipx": ip_hex(rec.get("dest_ip")),
        "json": dumps(rec),
    }


def _query(q: AlertQuery | dict[str, Any] | None) -> AlertQuery:
    if q is None:
        return AlertQuery()
    return AlertQuery(**q) if isinstance(q, dict) else q


class AlertRepo:
    """Alerts over an `Executor`; *verdicts* names the console's verdicts table to overlay (None: none)."""

    def __init__(self, ex: Executor, verdicts: str | None = None) -> None:
        self.ex = ex
        self.verdicts = verdicts
        self._stats = AlertStats(ex, verdicts)
        if verdicts:
            self._join = f" LEFT JOIN {verdicts} v ON v.alert_id = alerts.id"
            self._tri = {"triage": "COALESCE(v.verdict, alerts.triage)", "triage_user": 'COALESCE(v."user", '
                         "alerts.triage_user)", "triage_ts": "COALESCE(v.ts, alerts.triage_ts)",
                         "assignee": "v.assignee"}
        else:
            self._join = ""
            self._tri = {k: f"alerts.{k}" for k in ("triage", "triage_user", "triage_ts")}
            self._tri["assignee"] = "NULL"

    def triage_is(self, state: str) -> tuple[str, list[Any]]:
        """The alerts whose effective triage state is *state* (the verdict, else their own), kept indexable.

        ``new`` is most alerts: the scan stays in time order and leaves out the few with another verdict.
        Any other state is rare: the alerts with that verdict plus those of that own state without one."""
        if not self.verdicts:
            return "alerts.triage = ?", [state]
        v, own = self.verdicts, self.ex.unindexed("alerts.triage")
        if state == "new":
            return (f"alerts.id NOT IN (SELECT alert_id FROM {v} WHERE verdict <> ?) AND ({own} = ? OR "
                    f"alerts.id IN (SELECT alert_id FROM {v} WHERE verdict = ?))", [state] * 3)
        return (f"alerts.seq IN (SELECT t.seq FROM {v} w CROSS JOIN alerts t WHERE t.id = w.alert_id AND "
                f"w.verdict = ? UNION ALL SELECT t.seq FROM alerts t WHERE t.triage = ? AND NOT EXISTS "
                f"(SELECT 1 FROM {v} w WHERE w.alert_id = t.id))", [state, state])

    # -- writing (inside a transaction) ------------------------------------------------------------

    def add(self, rec: dict[str, Any], obj: ContentObject | None, ts_ns: int,
            rollup: RollupBatch | None = None) -> AddResult:
        """Store one alert record, its findings, search entry, object and rollup counts; the same id again
        is a ``DUPLICATE`` when the record is identical, a ``CONFLICT`` (nothing stored) when not. With
        *rollup* the counts are gathered there for the caller to flush once per transaction."""
        row = alert_row(rec, ts_ns)
        seq = self.ex.insert(insert_sql("alerts", row, "id"), list(row.values()), "seq")
        if seq is None:
            old = self.ex.scalar("SELECT json FROM alerts WHERE id = ?", (row["id"],))
            return AddResult.DUPLICATE if old == row["json"] else AddResult.CONFLICT
        findings = (rec.get("tapsift") or {}).get("findings") or []
        snippets = []
        for i, f in enumerate(findings):
            ev = f.get("evidence") or []
            snip = "\n".join(str(e.get("snippet", "")) for e in ev if e.get("snippet"))
            snippets.append(snip)
            frow = {
                "alert_seq": seq, "idx": i, "inspector": f.get("inspector", ""), "rule": f.get("rule", ""),
                "score": f.get("score"), "content_id": f.get("content_id"), "snippet": snip,
                "evidence": dumps(ev), "detail": dumps(f.get("detail") or {}),
            }
            self.ex.execute(insert_sql("findings", frow), list(frow.values()))
        rules = " ".join(f"{f.get('inspector', '')}:{f.get('rule', '')}" for f in findings)
        batch = rollup if rollup is not None else RollupBatch()
        batch.add(row["ts_ns"], dims_of(row, ((str(f.get("inspector", "")), str(f.get("rule", ""))) for f in findings)))
        if rollup is None:
            batch.flush(self.ex)
        ALERTS_TEXT.add(self.ex, seq, ["\n".join(s for s in snippets if s), row["http_url"], row["file_name"],
                                       row["http_host"], rules])
        if obj is not None and ObjectRepo(self.ex).add(obj, row["direction"]) is AddResult.CONFLICT:
            log.warning("content id %r stored before with other metadata; the first is kept", obj.id[:100])
        return AddResult.INSERTED

    def bump_suppressed(self, alert_id: str, n: int = 1) -> bool:
        return self.ex.execute("UPDATE alerts SET suppressed = suppressed + ? WHERE id = ?", (int(n), alert_id)) == 1

    def set_triage(self, alert_id: str, verdict: str, note: str = "", user: str = "") -> bool:
        """The store's own triage columns and log (the console keeps its verdicts apart: `TriageRepo`)."""
        if verdict not in TRIAGE_STATES:
            raise ValueError(f"verdict must be one of {', '.join(TRIAGE_STATES)}")
        note, user = clean(str(note))[:NOTE_MAX], clean(str(user))[:200]
        row = self.ex.one("SELECT * FROM alerts WHERE id = ?", (alert_id,))
        if row is None:
            return False
        seq = row["seq"]
        if row["triage"] != verdict:  # move the alert's rollup counts from its old state to the new one
            lists = [(r["inspector"], r["rule"]) for r in self.ex.rows(
                "SELECT inspector, rule FROM findings WHERE alert_seq = ?", (seq,))]
            moved = RollupBatch()
            old = [(d, v) for d, v in dims_of(row, lists) if d in ("triage", "rule", "list")]
            moved.add(row["ts_ns"], old, -1)
            new = [(d, v) for d, v in dims_of({**row, "triage": verdict}, lists) if d in ("triage", "rule", "list")]
            moved.add(row["ts_ns"], new, 1)
            moved.flush(self.ex)
        now = time.time()
        self.ex.execute("UPDATE alerts SET triage = ?, triage_note = ?, triage_user = ?, triage_ts = ? WHERE seq = ?",
                        (verdict, note, user, now, seq))
        self.ex.execute('INSERT INTO triage_log (alert_seq, ts, verdict, note, "user") VALUES (?,?,?,?,?)',
                        (seq, now, verdict, note, user))
        return True

    def purge(self, before_ns: int) -> int:
        """Delete alerts older than *before_ns* and the objects no alert refers to; returns how many alerts."""
        ALERTS_TEXT.remove(self.ex, "SELECT seq FROM alerts WHERE ts_ns < ?", (before_ns,))
        n = self.ex.execute("DELETE FROM alerts WHERE ts_ns < ?", (before_ns,))
        ObjectRepo(self.ex).purge_orphans()
        edge = int(before_ns) // HOUR_NS
        self.ex.execute("DELETE FROM alert_rollup WHERE hour < ?", (edge,))
        rebuild_hours(self.ex, edge, edge)
        return n

    # -- filters -----------------------------------------------------------------------------------

    def where(self, q: AlertQuery | dict[str, Any] | None, many: bool = False) -> tuple[str, list[Any]]:
        """`` WHERE …`` for the filters (or ``""``) and its parameters (*many*: see `TextIndex.condition`)."""
        conds, params = self.conditions(_query(q), many)
        return (" WHERE " + " AND ".join(conds)) if conds else "", params

    def conditions(self, q: AlertQuery, many: bool = False) -> tuple[list[str], list[Any]]:
        """The filters as conditions on ``alerts`` (AND-ed) and their parameters."""
        conds: list[str] = []
        params: list[Any] = []
        for cond, value in (("ts_ns >= ?", q.since_ns), ("ts_ns < ?", q.until_ns), ("severity <= ?", q.severity)):
            if value is not None:
                conds.append(cond)
                params.append(int(value))
        for col, value in (("category", q.category), ("policy", q.policy), ("profile", q.profile),
                           ("src_zone", q.src_zone), ("dst_zone", q.dst_zone), ("http_host", q.host),
                           ("alerts.content_id", q.content_id), ("sensor", q.sensor)):
            if value is not None:
                conds.append(f"{col} = ?")
                params.append(value)
        if q.triage is not None:
            cond, p = self.triage_is(q.triage)
            conds.append(cond)
            params += p
        for cols, value in ((("src_zone", "dst_zone"), q.zone), (("src_ip", "dest_ip"), q.ip),
                            (("file_sha256", "file_md5"), q.hash.lower() if q.hash is not None else None)):
            if value is not None:
                conds.append(f"({cols[0]} = ? OR {cols[1]} = ?)")
                params += [value, value]
        for col, value in (("inspector", q.inspector), ("rule", q.rule)):
            if value is not None:
                conds.append(f"alerts.seq IN (SELECT alert_seq FROM findings WHERE {col} = ?)")
                params.append(value)
        if q.text:
            cond, p = ALERTS_TEXT.condition(self.ex.dialect, q.text, "alerts.seq", many)
            if cond:
                conds.append(cond)
                params += p
        if q.expr is not None:
            cond, p = self.compile(q.expr, q.ctx or {}, many)
            conds.append(cond)
            params += p
        if q.before is not None:
            conds.append("alerts.ts_ns <= ? AND (alerts.ts_ns < ? OR alerts.seq < ?)")
            params += [int(q.before[0]), int(q.before[0]), int(q.before[1])]
        if q.after_seq is not None:
            conds.append("alerts.seq > ?")
            params.append(int(q.after_seq))
        return conds, params

    def compile(self, expr: Node, extra: dict[str, Any], many: bool = False) -> tuple[str, list[Any]]:
        """A parsed query as one condition on ``alerts`` (`HIT_FIELDS`); `QueryError` for a bad field or value."""
        from datetime import UTC

        dialect = self.ex.dialect
        ctx = CompileCtx(dialect, tz=extra.get("tz") or UTC, now_ns=extra.get("now_ns"),
                         text=lambda terms, m: ALERTS_TEXT.condition(dialect, terms, "alerts.seq", m),
                         extra={**extra, "repo": self, "many": many})
        return Compiler(HIT_FIELDS, ctx).compile(expr)

    # -- reading -----------------------------------------------------------------------------------

    def query(self, q: AlertQuery | dict[str, Any] | None = None, limit: int = 100, offset: int = 0,
              total: int | None = None) -> list[dict[str, Any]]:
        """Alert summaries matching *q*, newest first. *total*, when the caller has counted the matches, lets
        a search with many matches walk the newest alerts (see `TextIndex.condition`)."""
        where, params = self.where(q, many=total is not None and total > MANY_MATCHES)
        cols = _SUMMARY.format(inspectors=self.ex.agg_distinct("f.inspector"), **self._tri)
        # the page's rows first, then their summaries (PostgreSQL computes select-list subqueries for skipped rows)
        sql = (f"SELECT {cols} FROM (SELECT alerts.seq AS page_seq FROM alerts{where} ORDER BY ts_ns DESC, "
               f"alerts.seq DESC LIMIT ? OFFSET ?) page JOIN alerts ON alerts.seq = page.page_seq{self._join} "
               "ORDER BY ts_ns DESC, alerts.seq DESC")
        return self.ex.rows(sql, [*params, max(0, min(int(limit), 10_000)), max(0, int(offset))])

    def by_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        """Summaries of the alerts with these ids (unknown ids are left out), newest first."""
        ids = [str(i) for i in ids][:1000]
        if not ids:
            return []
        cols = _SUMMARY.format(inspectors=self.ex.agg_distinct("f.inspector"), **self._tri)
        marks = ", ".join("?" * len(ids))
        return self.ex.rows(f"SELECT {cols} FROM alerts{self._join} WHERE alerts.id IN ({marks}) "
                            "ORDER BY ts_ns DESC, alerts.seq DESC", ids)

    def of_flow(self, flow_uid: str, limit: int = 200) -> list[dict[str, Any]]:
        """The alerts of one session (flow id), oldest first."""
        cols = _SUMMARY.format(inspectors=self.ex.agg_distinct("f.inspector"), **self._tri)
        return self.ex.rows(f"SELECT {cols} FROM alerts{self._join} WHERE alerts.flow_uid = ? "
                            "ORDER BY ts_ns, alerts.seq LIMIT ?", (flow_uid, limit))

    def count(self, q: AlertQuery | dict[str, Any] | None = None, cap: int | None = None) -> int:
        """How many alerts match *q*; with *cap*, counting stops after ``cap + 1`` (a big store's
        page says "more than …" instead of reading every match)."""
        q = _query(q)
        if cap is None and self.verdicts and q.triage == "new" and q.expr is None:
            return self._count_new(q)
        where, params = self.where(q)
        if not where and q.before is None:
            return self._stats.total()
        if cap is not None:
            return int(self.ex.scalar(f"SELECT COUNT(*) FROM (SELECT 1 FROM alerts{where} LIMIT ?) AS c",
                                      [*params, int(cap) + 1]))
        return int(self.ex.scalar(f"SELECT COUNT(*) FROM alerts{where}", params))

    def max_seq(self) -> int:
        """The newest alert's ``seq`` (0 for none)."""
        return int(self.ex.scalar("SELECT COALESCE(MAX(seq), 0) FROM alerts") or 0)

    def seq_before(self, ts_ns: int) -> int:
        """The largest ``seq`` of an alert older than *ts_ns* (0 for none)."""
        return int(self.ex.scalar("SELECT COALESCE(MAX(seq), 0) FROM alerts WHERE ts_ns < ?", (int(ts_ns),)) or 0)

    def _count_new(self, q: AlertQuery) -> int:
        """Untriaged alerts matching *q*: those whose own state is new (an index count), less those a verdict
        moved away, plus those a verdict moved back to new (the verdicts are few)."""
        conds, params = self.conditions(dataclasses.replace(q, triage=None))
        own = int(self.ex.scalar("SELECT COUNT(*) FROM alerts WHERE " + " AND ".join([*conds, "alerts.triage = ?"]),
                                 [*params, "new"]))
        moved = self.ex.scalar(
            "SELECT COALESCE(SUM(CASE WHEN alerts.triage = 'new' THEN -1 ELSE 1 END), 0) FROM "
            f"{self.verdicts} v CROSS JOIN alerts WHERE " + " AND ".join(
                ["alerts.id = v.alert_id", "(alerts.triage = 'new') <> (v.verdict = 'new')", *conds]), params)
        return own + int(moved)

    def get(self, alert_id: str) -> dict[str, Any] | None:
        """One alert: its columns, the full ``record``, its ``findings``, ``object`` and ``triage_log``."""
        out = self.ex.one("SELECT * FROM alerts WHERE id = ?", (alert_id,))
        if out is None:
            return None
        out["record"] = json.loads(out.pop("json"))
        out["findings"] = self.ex.rows(
            "SELECT inspector, rule, score, content_id, snippet, evidence, detail FROM findings "
            "WHERE alert_seq = ? ORDER BY idx", (out["seq"],))
        for f in out["findings"]:
            f["evidence"], f["detail"] = json.loads(f["evidence"]), json.loads(f["detail"])
        out["object"] = ObjectRepo(self.ex).get(out["content_id"])
        out["triage_log"] = self.ex.rows(
            'SELECT ts, verdict, note, "user" FROM triage_log WHERE alert_seq = ? ORDER BY ts', (out["seq"],))
        if self.verdicts:
            v = self.ex.one(f'SELECT verdict, note, "user", ts, assignee FROM {self.verdicts} WHERE alert_id = ?',
                            (alert_id,))
            out["assignee"] = v["assignee"] if v is not None else None
            if v is not None:
                out.update(triage=v["verdict"], triage_note=v["note"], triage_user=v["user"], triage_ts=v["ts"])
        return out

    def stats(self) -> dict[str, Any]:
        """Totals and groupings for ``/metrics`` and the API (see `AlertStats`)."""
        return self._stats.stats()

    def totals(self) -> dict[str, Any]:
        return self._stats.totals()

    def distinct(self, col: str, limit: int = 200) -> list[str]:
        """Values of a filterable column (for the filter drop-downs)."""
        if col not in _DISTINCT:
            raise ValueError(col)
        if col in _LEADING:
            return distinct_values(self.ex, "alerts", col, limit)
        return self.ex.column(f"SELECT DISTINCT {col} FROM alerts WHERE {col} IS NOT NULL ORDER BY 1 LIMIT ?",
                              (limit,))

    def inspectors(self) -> list[str]:
        return distinct_values(self.ex, "findings", "inspector", 100)

    def zones(self) -> list[str]:
        return sorted(set(self.distinct("src_zone")) | set(self.distinct("dst_zone")))

    def time_bounds(self) -> tuple[int | None, int | None]:
        row = self.ex.one("SELECT MIN(ts_ns) AS a, MAX(ts_ns) AS b FROM alerts")
        return (row["a"], row["b"]) if row else (None, None)

    def histogram(self, since_ns: int, until_ns: int, buckets: int = 48) -> list[tuple[int, int]]:
        return self._stats.histogram(since_ns, until_ns, buckets)

    def top(self, group: str, since_ns: int, until_ns: int, limit: int = 10) -> list[tuple[str, int]]:
        return self._stats.top(group, since_ns, until_ns, limit)

    def rule_quality(self) -> list[dict[str, Any]]:
        return self._stats.rule_quality()

    def list_quality(self) -> list[dict[str, Any]]:
        return self._stats.list_quality()
