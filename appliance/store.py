"""The alert store: SQLite in WAL mode, the embedded default and the console's source.

One writer (the alert writer process) owns a read-write connection and an exclusive lock file
(``<db>.lock``); readers (the web console, the CLI, other processes) open read-only
connections (``file:…?mode=ro``) and never block the writer (WAL).

Durability: ``journal_mode=WAL`` with ``synchronous=NORMAL``. A committed transaction is in the
WAL file once ``add``/``add_many`` returns, so a crash or ``kill -9`` of the process loses no
committed alert; a power cut or kernel crash may lose the last transactions since the last
checkpoint (the database stays consistent). ``synchronous="full"`` closes that window at one
fsync per commit.

Schema: ``PRAGMA user_version`` counts the steps of :data:`MIGRATIONS` applied; opening a store
applies the missing ones in order, each in its own transaction. Every statement is
parameterised; nothing from an alert is ever spliced into SQL.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.model import Alert, ContentObject
from appliance.outputs.alertjson import alert_record, clean, dumps

__all__ = ["MIGRATIONS", "TRIAGE_STATES", "AlertQuery", "AlertStore", "StoreError", "StoreLocked"]

TRIAGE_STATES = ("new", "investigating", "confirmed", "false_positive", "resolved", "ignored")
NOTE_MAX = 8000

MIGRATIONS: list[str] = [
    # v1: alerts, findings, content metadata, and the indexes of the console's queries.
    """
    CREATE TABLE alerts (
        seq INTEGER PRIMARY KEY,
        id TEXT NOT NULL UNIQUE,
        ts_ns INTEGER NOT NULL,
        severity INTEGER NOT NULL,
        category TEXT NOT NULL,
        policy TEXT NOT NULL,
        profile TEXT NOT NULL,
        src_zone TEXT NOT NULL,
        dst_zone TEXT NOT NULL,
        flow_uid TEXT,
        flow_id INTEGER,
        src_ip TEXT,
        src_port INTEGER,
        dest_ip TEXT,
        dest_port INTEGER,
        proto TEXT,
        vlan INTEGER,
        iface TEXT,
        app_proto TEXT,
        content_id TEXT,
        http_host TEXT,
        http_url TEXT,
        http_method TEXT,
        http_status INTEGER,
        http_user_agent TEXT,
        file_name TEXT,
        file_md5 TEXT,
        file_sha256 TEXT,
        file_size INTEGER,
        file_state TEXT,
        file_mime TEXT,
        complete INTEGER NOT NULL DEFAULT 1,
        triage TEXT NOT NULL DEFAULT 'new',
        triage_note TEXT NOT NULL DEFAULT '',
        triage_user TEXT NOT NULL DEFAULT '',
        triage_ts REAL,
        suppressed INTEGER NOT NULL DEFAULT 0,
        json TEXT NOT NULL
    );
    CREATE TABLE findings (
        alert_seq INTEGER NOT NULL REFERENCES alerts(seq) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        inspector TEXT NOT NULL,
        rule TEXT NOT NULL,
        score REAL,
        content_id TEXT,
        snippet TEXT NOT NULL DEFAULT '',
        evidence TEXT NOT NULL DEFAULT '[]',
        detail TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (alert_seq, idx)
    ) WITHOUT ROWID;
    CREATE TABLE objects (
        content_id TEXT PRIMARY KEY,
        parent_id TEXT,
        source TEXT,
        kind TEXT,
        direction TEXT,
        ts_ns INTEGER,
        size INTEGER,
        md5 TEXT,
        sha256 TEXT,
        declared_mime TEXT,
        sniffed_mime TEXT,
        magic TEXT,
        filename TEXT,
        url TEXT,
        host TEXT,
        missing_bytes INTEGER,
        truncated TEXT NOT NULL DEFAULT '[]',
        anomalies TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX alerts_ts ON alerts(ts_ns);
    CREATE INDEX alerts_severity_ts ON alerts(severity, ts_ns);
    CREATE INDEX alerts_category_ts ON alerts(category, ts_ns);
    CREATE INDEX alerts_policy_ts ON alerts(policy, ts_ns);
    CREATE INDEX alerts_zones_ts ON alerts(src_zone, dst_zone, ts_ns);
    CREATE INDEX alerts_dst_zone_ts ON alerts(dst_zone, ts_ns);
    CREATE INDEX alerts_src_ip_ts ON alerts(src_ip, ts_ns);
    CREATE INDEX alerts_dest_ip_ts ON alerts(dest_ip, ts_ns);
    CREATE INDEX alerts_host_ts ON alerts(http_host, ts_ns);
    CREATE INDEX alerts_triage_ts ON alerts(triage, ts_ns);
    CREATE INDEX alerts_sha256 ON alerts(file_sha256);
    CREATE INDEX alerts_md5 ON alerts(file_md5);
    CREATE INDEX alerts_content ON alerts(content_id);
    CREATE INDEX findings_inspector ON findings(inspector, alert_seq);
    CREATE INDEX findings_rule ON findings(rule, alert_seq);
    """,
    # v2: full-text search (trigram: substrings of URLs, hashes, file names and CJK text) and
    # the triage audit trail. Existing alerts are indexed.
    """
    CREATE VIRTUAL TABLE alerts_fts USING fts5(evidence, url, filename, host, rules, tokenize = 'trigram');
    INSERT INTO alerts_fts (rowid, evidence, url, filename, host, rules)
        SELECT a.seq,
               COALESCE((SELECT group_concat(f.snippet, char(10)) FROM findings f
                         WHERE f.alert_seq = a.seq AND f.snippet != ''), ''),
               COALESCE(a.http_url, ''), COALESCE(a.file_name, ''), COALESCE(a.http_host, ''),
               COALESCE((SELECT group_concat(f.inspector || ':' || f.rule, ' ') FROM findings f
                         WHERE f.alert_seq = a.seq), '')
        FROM alerts a;
    CREATE TABLE triage_log (
        alert_seq INTEGER NOT NULL REFERENCES alerts(seq) ON DELETE CASCADE,
        ts REAL NOT NULL,
        verdict TEXT NOT NULL,
        note TEXT NOT NULL,
        user TEXT NOT NULL
    );
    CREATE INDEX triage_log_alert ON triage_log(alert_seq, ts);
    """,
]

_SUMMARY = (
    "seq, id, ts_ns, severity, category, policy, profile, src_zone, dst_zone, flow_uid, src_ip, src_port, "
    "dest_ip, dest_port, proto, app_proto, content_id, http_host, http_url, file_name, file_sha256, "
    "file_size, file_state, complete, triage, triage_user, triage_ts, suppressed, "
    "(SELECT COUNT(*) FROM findings f WHERE f.alert_seq = alerts.seq) AS finding_count, "
    "(SELECT group_concat(DISTINCT f.inspector) FROM findings f WHERE f.alert_seq = alerts.seq) AS inspectors"
)


class StoreError(RuntimeError):
    """The store cannot be opened or used as asked."""


class StoreLocked(StoreError):
    """Another writer holds the store."""


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
    """Full-text search over evidence, URL, file name, host and rule names."""


def _fts_terms(text: str) -> tuple[str | None, list[str]]:
    """(an FTS5 MATCH expression of quoted trigram phrases, the terms too short for trigrams)."""
    long_terms, short = [], []
    for term in text.split():
        (long_terms if len(term) >= 3 else short).append(term)
    match = " AND ".join('"' + t.replace('"', '""') + '"' for t in long_terms) or None
    return match, short


def _fts_where(text: str) -> tuple[str, list[Any]]:
    match, short = _fts_terms(text)
    sub, params = ["SELECT rowid FROM alerts_fts WHERE 1"], []
    if match:
        sub.append("AND alerts_fts MATCH ?")
        params.append(match)
    for term in short:
        sub.append(
            "AND (instr(lower(evidence), lower(?)) OR instr(lower(url), lower(?)) OR instr(lower(filename), "
            "lower(?)) OR instr(lower(host), lower(?)) OR instr(lower(rules), lower(?)))"
        )
        params.extend([term] * 5)
    return "seq IN (" + " ".join(sub) + ")", params


class AlertStore:
    """SQLite alert store. ``AlertStore(path)`` is the single writer; ``AlertStore.reader(path)`` reads."""

    def __init__(self, path: str | Path, *, synchronous: str = "normal", readonly: bool = False,
                 timeout: float = 10.0, check_same_thread: bool = True) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lockfd: int | None = None
        if readonly:
            if not self.path.exists():
                raise StoreError(f"no alert store at {self.path}")
            uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=timeout,
                                       check_same_thread=check_same_thread)
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            version = self.schema_version()
            if version != len(MIGRATIONS):
                self._db.close()
                raise StoreError(f"alert store {self.path} has schema v{version}, this code reads "
                                 f"v{len(MIGRATIONS)} (the writer upgrades it when it opens)")
            return
        if synchronous not in ("normal", "full"):
            raise ValueError("synchronous must be 'normal' or 'full'")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lockfd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lockfd)
            raise StoreLocked(f"alert store {self.path} already has a writer") from None
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=timeout,
                                       check_same_thread=check_same_thread)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"cannot put {self.path} in WAL mode (got {mode})")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            migrate(self._db)
        except BaseException:
            self.close()
            raise

    @classmethod
    def reader(cls, path: str | Path, **kw: Any) -> AlertStore:
        """A read-only view (another process or thread than the writer)."""
        return cls(path, readonly=True, **kw)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                if not self.readonly:
                    db.execute("PRAGMA optimize")
                db.close()
            self._db = None  # type: ignore[assignment]
        if self._lockfd is not None:
            os.close(self._lockfd)
            self._lockfd = None

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def pragma(self, name: str) -> Any:
        """The value of a read-only PRAGMA (journal_mode, synchronous…), for checks and the console."""
        if not name.replace("_", "").isalnum():
            raise ValueError("bad pragma name")
        return self._db.execute(f"PRAGMA {name}").fetchone()[0]

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self.readonly:
            raise StoreError("read-only store")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- writing ------------------------------------------------------------------------------

    def add(
        self, alert: Alert, obj: ContentObject | None = None, record: dict[str, Any] | None = None
    ) -> bool:
        """Store one alert (committed when this returns); False if its id was already stored."""
        return self.add_many([(alert, obj, record)]) == 1

    def add_record(self, record: dict[str, Any], ts_ns: int) -> bool:
        """Store one alert given as its record (`alert_record`), as the live supervisor's single
        writer receives it from a worker process; False if its id was already stored."""
        with self._tx() as db:
            return self._insert(db, record, None, ts_ns) == 1

    def add_many(
        self, items: Iterable[tuple[Alert, ContentObject | None] | tuple[Alert, ContentObject | None, Any]]
    ) -> int:
        """Store alerts in one transaction; returns how many were new. ``record`` (the third item,
        optional) is the precomputed :func:`alert_record`."""
        n = 0
        with self._tx() as db:
            for item in items:
                alert, obj = item[0], item[1]
                record = item[2] if len(item) > 2 and item[2] is not None else alert_record(alert, obj)
                n += self._insert(db, record, obj, alert.ts_ns)
        return n

    def _insert(
        self, db: sqlite3.Connection, rec: dict[str, Any], obj: ContentObject | None, ts_ns: int
    ) -> int:
        al, ts = rec.get("alert", {}), rec.get("tapsift", {})
        http, fi = rec.get("http") or {}, rec.get("fileinfo") or {}
        findings = ts.get("findings") or []
        row = {
            "id": ts.get("alert_id"), "ts_ns": _int(ts_ns), "severity": _int(al.get("severity", 3)),
            "category": al.get("category", ""), "policy": ts.get("policy", ""),
            "profile": ts.get("profile", ""), "src_zone": ts.get("src_zone", "any"),
            "dst_zone": ts.get("dst_zone", "any"), "flow_uid": ts.get("flow_uid"),
            "flow_id": _int(rec.get("flow_id")), "src_ip": rec.get("src_ip"),
            "src_port": _int(rec.get("src_port")), "dest_ip": rec.get("dest_ip"),
            "dest_port": _int(rec.get("dest_port")), "proto": rec.get("proto"),
            "vlan": _int((rec.get("vlan") or [None])[0]), "iface": rec.get("in_iface"),
            "app_proto": rec.get("app_proto"), "content_id": ts.get("content_id"),
            "http_host": http.get("hostname"), "http_url": http.get("url"),
            "http_method": http.get("http_method"), "http_status": _int(http.get("status")),
            "http_user_agent": http.get("http_user_agent"), "file_name": fi.get("filename"),
            "file_md5": fi.get("md5"), "file_sha256": fi.get("sha256"), "file_size": _int(fi.get("size")),
            "file_state": fi.get("state"), "file_mime": ts.get("mime"),
            "complete": int(bool(ts.get("complete", True))), "json": dumps(rec),
        }
        cur = db.execute(_insert_sql("INSERT OR IGNORE", "alerts", row), list(row.values()))
        if cur.rowcount == 0:
            return 0
        seq = cur.lastrowid
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
            db.execute(_insert_sql("INSERT", "findings", frow), list(frow.values()))
        db.execute(
            "INSERT INTO alerts_fts (rowid, evidence, url, filename, host, rules) VALUES (?,?,?,?,?,?)",
            (seq, "\n".join(s for s in snippets if s), http.get("url") or "", fi.get("filename") or "",
             http.get("hostname") or "",
             " ".join(f"{f.get('inspector', '')}:{f.get('rule', '')}" for f in findings)),
        )
        if obj is not None:
            orow = clean({
                "content_id": obj.id, "parent_id": obj.parent_id, "source": obj.source, "kind": obj.kind,
                "direction": ts.get("direction"), "ts_ns": _int(obj.ts_ns), "size": _int(obj.size),
                "md5": obj.md5, "sha256": obj.sha256, "declared_mime": obj.declared_mime,
                "sniffed_mime": obj.sniffed_mime, "magic": obj.magic, "filename": obj.filename,
                "url": obj.url, "host": obj.host, "missing_bytes": _int(obj.missing_bytes),
                "truncated": dumps(clean(list(obj.truncated))),
                "anomalies": dumps(clean(list(obj.anomalies))),
            })
            db.execute(_insert_sql("INSERT OR IGNORE", "objects", orow), list(orow.values()))
        return 1

    def set_triage(self, alert_id: str, verdict: str, note: str = "", user: str = "") -> bool:
        """Record an analyst's verdict (kept in the audit trail); False if the alert is unknown."""
        if verdict not in TRIAGE_STATES:
            raise ValueError(f"verdict must be one of {', '.join(TRIAGE_STATES)}")
        note, user = clean(str(note))[:NOTE_MAX], clean(str(user))[:200]
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT seq FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None:
                return False
            db.execute(
                "UPDATE alerts SET triage = ?, triage_note = ?, triage_user = ?, triage_ts = ? WHERE seq = ?",
                (verdict, note, user, now, row[0]),
            )
            db.execute(
                "INSERT INTO triage_log (alert_seq, ts, verdict, note, user) VALUES (?,?,?,?,?)",
                (row[0], now, verdict, note, user),
            )
        return True

    def bump_suppressed(self, alert_id: str, n: int = 1) -> bool:
        """Count *n* more repeats folded into this alert; False if the alert is unknown."""
        with self._tx() as db:
            cur = db.execute("UPDATE alerts SET suppressed = suppressed + ? WHERE id = ?", (int(n), alert_id))
        return cur.rowcount == 1

    def purge(self, before_ns: int) -> int:
        """Delete alerts older than *before_ns* (retention); returns how many."""
        with self._tx() as db:
            db.execute("DELETE FROM alerts_fts WHERE rowid IN (SELECT seq FROM alerts WHERE ts_ns < ?)",
                       (before_ns,))
            n = db.execute("DELETE FROM alerts WHERE ts_ns < ?", (before_ns,)).rowcount
            db.execute("DELETE FROM objects WHERE content_id NOT IN "
                       "(SELECT content_id FROM alerts WHERE content_id IS NOT NULL)")
        return n

    # -- reading ------------------------------------------------------------------------------

    def _where(self, q: AlertQuery | dict[str, Any] | None) -> tuple[str, list[Any]]:
        if q is None:
            q = AlertQuery()
        elif isinstance(q, dict):
            q = AlertQuery(**q)
        conds: list[str] = []
        params: list[Any] = []

        def eq(col: str, value: Any) -> None:
            conds.append(f"{col} = ?")
            params.append(value)

        if q.since_ns is not None:
            conds.append("ts_ns >= ?")
            params.append(int(q.since_ns))
        if q.until_ns is not None:
            conds.append("ts_ns < ?")
            params.append(int(q.until_ns))
        if q.severity is not None:
            conds.append("severity <= ?")
            params.append(int(q.severity))
        for col, value in (("category", q.category), ("policy", q.policy), ("profile", q.profile),
                           ("src_zone", q.src_zone), ("dst_zone", q.dst_zone), ("http_host", q.host),
                           ("triage", q.triage), ("content_id", q.content_id)):
            if value is not None:
                eq(col, value)
        if q.zone is not None:
            conds.append("(src_zone = ? OR dst_zone = ?)")
            params += [q.zone, q.zone]
        if q.ip is not None:
            conds.append("(src_ip = ? OR dest_ip = ?)")
            params += [q.ip, q.ip]
        if q.hash is not None:
            conds.append("(file_sha256 = ? OR file_md5 = ?)")
            params += [q.hash.lower(), q.hash.lower()]
        if q.inspector is not None:
            conds.append("seq IN (SELECT alert_seq FROM findings WHERE inspector = ?)")
            params.append(q.inspector)
        if q.rule is not None:
            conds.append("seq IN (SELECT alert_seq FROM findings WHERE rule = ?)")
            params.append(q.rule)
        if q.text:
            sql, p = _fts_where(q.text)
            conds.append(sql)
            params += p
        return (" WHERE " + " AND ".join(conds)) if conds else "", params

    def query(self, filters: AlertQuery | dict[str, Any] | None = None, limit: int = 100,
              offset: int = 0) -> list[dict[str, Any]]:
        """Alert summaries matching *filters*, newest first."""
        where, params = self._where(filters)
        sql = f"SELECT {_SUMMARY} FROM alerts{where} ORDER BY ts_ns DESC, seq DESC LIMIT ? OFFSET ?"
        return self._rows(sql, [*params, max(0, min(int(limit), 10_000)), max(0, int(offset))])

    def count(self, filters: AlertQuery | dict[str, Any] | None = None) -> int:
        where, params = self._where(filters)
        return int(self._db.execute(f"SELECT COUNT(*) FROM alerts{where}", params).fetchone()[0])

    def search(self, text: str, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Full-text search (substrings, any language; terms AND-ed), newest first."""
        return self.query(AlertQuery(text=text), limit, offset) if text.strip() else []

    def get(self, alert_id: str) -> dict[str, Any] | None:
        """One alert: its columns, the full ``record``, its ``findings``, ``object`` and ``triage_log``."""
        rows = self._rows("SELECT * FROM alerts WHERE id = ?", [alert_id])
        if not rows:
            return None
        out = rows[0]
        out["record"] = json.loads(out.pop("json"))
        out["findings"] = self._rows(
            "SELECT inspector, rule, score, content_id, snippet, evidence, detail FROM findings "
            "WHERE alert_seq = ? ORDER BY idx", [out["seq"]])
        for f in out["findings"]:
            f["evidence"], f["detail"] = json.loads(f["evidence"]), json.loads(f["detail"])
        objs = self._rows("SELECT * FROM objects WHERE content_id = ?", [out["content_id"]])
        out["object"] = objs[0] if objs else None
        out["triage_log"] = self._rows(
            "SELECT ts, verdict, note, user FROM triage_log WHERE alert_seq = ? ORDER BY ts", [out["seq"]])
        return out

    def stats(self) -> dict[str, Any]:
        """Totals for the console's dashboard."""
        db = self._db

        def grouped(col: str, limit: int = 50) -> dict[Any, int]:
            return dict(db.execute(
                f"SELECT {col}, COUNT(*) AS n FROM alerts GROUP BY {col} ORDER BY n DESC LIMIT ?", (limit,)))

        total, first, last, suppressed = db.execute(
            "SELECT COUNT(*), MIN(ts_ns), MAX(ts_ns), COALESCE(SUM(suppressed), 0) FROM alerts").fetchone()
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        return {
            "alerts": total,
            "first_ts_ns": first,
            "last_ts_ns": last,
            "suppressed": suppressed,
            "by_severity": grouped("severity"),
            "by_category": grouped("category"),
            "by_triage": grouped("triage"),
            "by_policy": grouped("policy"),
            "by_inspector": dict(db.execute(
                "SELECT inspector, COUNT(DISTINCT alert_seq) AS n FROM findings GROUP BY inspector "
                "ORDER BY n DESC LIMIT 50")),
            "schema_version": self.schema_version(),
            "db_bytes": page_size * pages,
        }

    def _rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        cur = self._db.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def migrate(db: sqlite3.Connection, target: int | None = None) -> int:
    """Apply the missing :data:`MIGRATIONS` steps (up to *target*), each atomically; returns the version."""
    target = len(MIGRATIONS) if target is None else target
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise StoreError(f"alert store schema v{version} is newer than this tapsift (v{len(MIGRATIONS)})")
    for step in range(version, target):
        try:
            db.executescript(
                f"BEGIN IMMEDIATE;\n{MIGRATIONS[step]}\nPRAGMA user_version = {step + 1};\nCOMMIT;"
            )
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return max(version, target)


def _insert_sql(verb: str, table: str, row: dict[str, Any]) -> str:
    """An INSERT for our own fixed column names (never alert content), values as parameters."""
    return f"{verb} INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"


def _int(v: Any) -> int | None:
    """An INTEGER column value: ints that fit in 64 bits (wrapping unsigned 64-bit ids), else NULL."""
    if not isinstance(v, int) or isinstance(v, bool):
        return None
    if (1 << 63) <= v < (1 << 64):
        return v - (1 << 64)
    return v if -(1 << 63) <= v < (1 << 63) else None
