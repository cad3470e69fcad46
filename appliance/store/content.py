"""Retained content: every object's metadata and text, sessions, protocol records and small objects' bytes.

`ContentRepo` works over any `Executor` of a database holding the ``content`` component
(`appliance.store.schema_content`). The retention writer (`appliance.retention`) adds batches;
the console searches it with the query language (`CONTENT_FIELDS`), shows sessions, serves
retained bytes; the policy back-test (`appliance.backtest`) reads it back in time order.
`ContentStore` opens one by DSN (a SQLite path or ``postgresql://``), as `AlertStore` does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

from appliance.store.backend import Executor, SqliteBackend, StoreError
from appliance.store.dsn import Dsn
from appliance.store.migrations import migrate_backend
from appliance.store.postgres import PostgresBackend
from appliance.store.querylang import (
    Clause,
    CompileCtx,
    Compiler,
    FieldSpec,
    Node,
    Schema,
    address_field,
    bool_field,
    keyword_field,
    number_field,
    parse_size,
    time_field,
)
from appliance.store.schema_content import CONTENT_MIGRATIONS
from appliance.store.textindex import TextIndex

__all__ = ["CONTENT_COLUMNS", "CONTENT_FIELDS", "CONTENT_TEXT", "ContentRepo", "ContentStore"]

CONTENT_TEXT = TextIndex("content", ("body", "names"), pg_key="content_seq")
"""The content's search index: its text (visible and hidden), and its names (file name, URL, host)."""

CONTENT_COLUMNS = (
    "content_id", "ts_ns", "sensor", "flow_uid", "tx_id", "parent_id", "depth", "source", "kind", "direction",
    "src_ip", "src_port", "dest_ip", "dest_port", "src_ipx", "dest_ipx", "proto", "vlan", "iface", "src_zone",
    "dst_zone", "host", "url", "method", "status", "user_agent", "filename", "declared_mime", "sniffed_mime",
    "magic", "size", "md5", "sha256", "missing_bytes", "truncated", "anomalies", "meta", "text", "text_len",
    "hidden_text", "has_bytes", "alerted", "row_bytes",
)
FLOW_COLUMNS = (
    "uid", "flow_id", "sensor", "first_ts_ns", "last_ts_ns", "client_ip", "client_port", "server_ip", "server_port",
    "proto", "vlan", "iface", "app_proto", "src_zone", "dst_zone", "pkts_toserver", "pkts_toclient",
    "bytes_toserver", "bytes_toclient", "state", "midstream", "anomalies",
)
_SUMMARY = ("seq, content_id, ts_ns, sensor, flow_uid, tx_id, parent_id, depth, source, kind, direction, src_ip, "
            "src_port, dest_ip, dest_port, src_zone, dst_zone, host, url, method, status, filename, declared_mime, "
            "sniffed_mime, size, md5, sha256, missing_bytes, truncated, text_len, has_bytes, alerted")
_ROWS_PER_INSERT = 100
HOUR_NS = 3_600_000_000_000


def _mime(c: Clause, ctx: CompileCtx) -> tuple[str, list[Any]]:
    a, pa = keyword_field(("mime",), ("sniffed_mime", "declared_mime"), "").compile(c, ctx)
    return a, pa


def _port(c: Clause, ctx: CompileCtx) -> tuple[str, list[Any]]:
    a, pa = number_field(("port",), "src_port", "").compile(c, ctx)
    b, pb = number_field(("port",), "dest_port", "").compile(c, ctx)
    return f"({a}) OR ({b})", [*pa, *pb]


CONTENT_FIELDS = Schema([
    keyword_field(("id", "content"), ("content_id",), "the object's id"),
    time_field(("ts", "time", "@timestamp"), "ts_ns", "time: 2026-01-07, [2026-01-01 TO 2026-01-07], >now-24h"),
    keyword_field(("host",), ("host",), "HTTP host (*.example.com for a domain)"),
    keyword_field(("url",), ("url",), "URL path (/upload* for a prefix)"),
    keyword_field(("file", "filename"), ("filename",), "file name (*.docx)"),
    FieldSpec(("mime", "type"), "MIME type, declared or sniffed (image/*)", _mime),
    keyword_field(("md5",), ("md5",), "MD5", normalise=lambda v: v.strip().lower()),
    keyword_field(("sha256",), ("sha256",), "SHA-256", normalise=lambda v: v.strip().lower()),
    keyword_field(("hash",), ("sha256", "md5"), "MD5 or SHA-256", normalise=lambda v: v.strip().lower()),
    number_field(("size",), "size", "size: >1MB, [10KB TO 5MB]", conv=parse_size),
    address_field(("ip", "addr"), (("src_ip", "src_ipx"), ("dest_ip", "dest_ipx")), "either address, or a network"),
    address_field(("src", "src_ip"), (("src_ip", "src_ipx"),), "source of the transfer (or a network)"),
    address_field(("dst", "dest", "dest_ip"), (("dest_ip", "dest_ipx"),), "destination of the transfer"),
    FieldSpec(("port",), "either port", _port),
    keyword_field(("zone",), ("src_zone", "dst_zone"), "either zone of the session"),
    keyword_field(("src_zone", "client_zone"), ("src_zone",), "the client's zone"),
    keyword_field(("dst_zone", "server_zone"), ("dst_zone",), "the server's zone"),
    keyword_field(("flow",), ("flow_uid",), "the session (flow id)"),
    keyword_field(("parent",), ("parent_id",), "the object it was extracted from"),
    keyword_field(("kind",), ("kind",), "body, part, child…"),
    keyword_field(("app", "source", "proto"), ("source",), "carrier protocol (http, smtp, ftp-data, extract)"),
    keyword_field(("direction",), ("direction",), "upload or download"),
    keyword_field(("method",), ("method",), "HTTP method"),
    number_field(("status",), "status", "HTTP status"),
    keyword_field(("sensor",), ("sensor",), "the sensor that saw it"),
    bool_field(("alerted",), "alerted", "raised an alert"),
    bool_field(("stored",), "has_bytes", "its bytes are kept (downloadable, back-testable beyond text)"),
])
"""The retained content's fields, first name canonical."""


class ContentRepo:
    """Retained content over an `Executor` (a transaction when writing)."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex

    # -- writing ----------------------------------------------------------------------------------

    def add_rows(self, rows: Sequence[dict[str, Any]], docs: Sequence[tuple[str, str]]) -> int:
        """Insert content rows (`CONTENT_COLUMNS`) with their search documents (body, names); an id
        already stored is skipped. Returns how many were new."""
        new = 0
        for i in range(0, len(rows), _ROWS_PER_INSERT):
            part, part_docs = rows[i:i + _ROWS_PER_INSERT], docs[i:i + _ROWS_PER_INSERT]
            marks = ", ".join("(" + ", ".join("?" * len(CONTENT_COLUMNS)) + ")" for _ in part)
            params = [r.get(c) for r in part for c in CONTENT_COLUMNS]
            got = self.ex.rows(f"INSERT INTO content ({', '.join(CONTENT_COLUMNS)}) VALUES {marks} "
                               "ON CONFLICT (content_id) DO NOTHING RETURNING seq, content_id", params)
            by_id = {r["content_id"]: r["seq"] for r in got}
            CONTENT_TEXT.add_many(self.ex, [(by_id[r["content_id"]], d) for r, d in zip(part, part_docs)
                                            if r["content_id"] in by_id])
            hours: dict[int, list[int]] = {}
            for r in part:
                if r["content_id"] in by_id:
                    h = hours.setdefault(int(r["ts_ns"]) // HOUR_NS, [0, 0])
                    h[0] += 1
                    h[1] += int(r.get("row_bytes") or 0)
            self.ex.executemany("INSERT INTO content_hours (hour, objects, bytes) VALUES (?, ?, ?) ON CONFLICT (hour) "
                                "DO UPDATE SET objects = content_hours.objects + excluded.objects, "
                                "bytes = content_hours.bytes + excluded.bytes",
                                [(h, o, b) for h, (o, b) in hours.items()])
            new += len(got)
        return new

    def retained_bytes(self) -> int:
        """What the retained content holds (text, metadata, kept bytes; `content_row`'s estimate per object)."""
        return int(self.ex.scalar("SELECT COALESCE(SUM(bytes), 0) FROM content_hours") or 0)

    def add_flows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or update sessions (a flow seen again, after a restart of its table, keeps growing)."""
        if not rows:
            return
        cols = ", ".join(FLOW_COLUMNS)
        upd = ", ".join(f"{c} = excluded.{c}" for c in FLOW_COLUMNS if c not in ("uid", "first_ts_ns"))
        self.ex.executemany(f"INSERT INTO flows ({cols}) VALUES ({', '.join('?' * len(FLOW_COLUMNS))}) "
                            f"ON CONFLICT (uid) DO UPDATE SET {upd}", [[r.get(c) for c in FLOW_COLUMNS] for r in rows])

    def add_events(self, rows: Sequence[tuple[str | None, int, str, str]]) -> None:
        """Protocol records: (flow uid, ts_ns, event type, JSON)."""
        if rows:
            self.ex.executemany("INSERT INTO app_events (flow_uid, ts_ns, event_type, json) VALUES (?, ?, ?, ?)", rows)

    def add_blobs(self, rows: Sequence[tuple[str, int, bytes]]) -> None:
        """Kept bytes: (sha256, ts_ns, data); the same bytes are kept once."""
        if rows:
            self.ex.executemany("INSERT INTO content_blobs (sha256, ts_ns, size, data) VALUES (?, ?, ?, ?) "
                                "ON CONFLICT (sha256) DO UPDATE SET ts_ns = excluded.ts_ns",
                                [(h, ts, len(d), d) for h, ts, d in rows])

    def purge(self, before_ns: int) -> int:
        """Delete what is older than *before_ns*; returns how many objects."""
        CONTENT_TEXT.remove(self.ex, "SELECT seq FROM content WHERE ts_ns < ?", (before_ns,))
        n = self.ex.execute("DELETE FROM content WHERE ts_ns < ?", (before_ns,))
        self.ex.execute("DELETE FROM flows WHERE last_ts_ns < ?", (before_ns,))
        self.ex.execute("DELETE FROM app_events WHERE ts_ns < ?", (before_ns,))
        self.ex.execute("DELETE FROM content_blobs WHERE ts_ns < ?", (before_ns,))
        edge = int(before_ns) // HOUR_NS  # whole hours before the cut go; the cut's own hour is recounted
        self.ex.execute("DELETE FROM content_hours WHERE hour <= ?", (edge,))
        row = self.ex.one("SELECT COUNT(*) AS n, COALESCE(SUM(row_bytes), 0) AS b FROM content WHERE ts_ns >= ? "
                          "AND ts_ns < ?", (before_ns, (edge + 1) * HOUR_NS))
        if row and int(row["n"]):
            self.ex.execute("INSERT INTO content_hours (hour, objects, bytes) VALUES (?, ?, ?)",
                            (edge, int(row["n"]), int(row["b"])))
        return n

    def oldest(self) -> int | None:
        return self.ex.scalar("SELECT MIN(ts_ns) FROM content")

    def newest(self) -> int | None:
        return self.ex.scalar("SELECT MAX(ts_ns) FROM content")

    # -- reading ----------------------------------------------------------------------------------

    def compile(self, expr: Node, extra: dict[str, Any], many: bool = False) -> tuple[str, list[Any]]:
        dialect = self.ex.dialect
        ctx = CompileCtx(dialect, tz=extra.get("tz") or UTC, now_ns=extra.get("now_ns"),
                         text=lambda terms, m: CONTENT_TEXT.condition(dialect, terms, "content.seq", m),
                         extra={**extra, "many": many})
        return Compiler(CONTENT_FIELDS, ctx).compile(expr)

    def _where(self, expr: Node | None, extra: dict[str, Any], before: tuple[int, int] | None = None,
               many: bool = False) -> tuple[str, list[Any]]:
        conds, params = [], []
        if expr is not None:
            c, p = self.compile(expr, extra, many)
            conds.append(c)
            params += p
        if before is not None:
            conds.append("ts_ns <= ? AND (ts_ns < ? OR seq < ?)")
            params += [int(before[0]), int(before[0]), int(before[1])]
        return (" WHERE " + " AND ".join(conds)) if conds else "", params

    def search(self, expr: Node | None, extra: dict[str, Any] | None = None, limit: int = 50,
               before: tuple[int, int] | None = None, many: bool = False) -> list[dict[str, Any]]:
        """Objects matching a parsed query, newest first (keyset: older than *before*)."""
        where, params = self._where(expr, extra or {}, before, many)
        return self.ex.rows(f"SELECT {_SUMMARY} FROM content{where} ORDER BY ts_ns DESC, seq DESC LIMIT ?",
                            [*params, max(1, min(int(limit), 1000))])

    def count(self, expr: Node | None, extra: dict[str, Any] | None = None, cap: int = 10_000) -> int:
        where, params = self._where(expr, extra or {})
        return int(self.ex.scalar(f"SELECT COUNT(*) FROM (SELECT 1 FROM content{where} LIMIT ?) AS c",
                                  [*params, cap + 1]))

    def total(self) -> int:
        return int(self.ex.scalar("SELECT COUNT(*) FROM content") or 0)

    def get(self, content_id: str) -> dict[str, Any] | None:
        row = self.ex.one("SELECT * FROM content WHERE content_id = ?", (content_id,))
        if row is not None:
            for k in ("truncated", "anomalies", "meta"):
                try:
                    row[k] = json.loads(row[k] or "null")
                except ValueError:
                    row[k] = None
        return row

    def of_flow(self, flow_uid: str, limit: int = 500) -> list[dict[str, Any]]:
        """The objects of one session, in time order (children after their parents)."""
        return self.ex.rows(f"SELECT {_SUMMARY} FROM content WHERE flow_uid = ? ORDER BY ts_ns, depth, seq LIMIT ?",
                            (flow_uid, limit))

    def children(self, parent_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        return self.ex.rows("SELECT * FROM content WHERE parent_id = ? ORDER BY seq LIMIT ?", (parent_id, limit))

    def flow(self, uid: str) -> dict[str, Any] | None:
        return self.ex.one("SELECT * FROM flows WHERE uid = ?", (uid,))

    def events(self, uid: str, limit: int = 500) -> list[dict[str, Any]]:
        rows = self.ex.rows("SELECT ts_ns, event_type, json FROM app_events WHERE flow_uid = ? ORDER BY ts_ns, seq "
                            "LIMIT ?", (uid, limit))
        for r in rows:
            try:
                r["fields"] = json.loads(r.pop("json"))
            except ValueError:
                r["fields"] = {}
        return rows

    def blob(self, sha256: str) -> bytes | None:
        got = self.ex.scalar("SELECT data FROM content_blobs WHERE sha256 = ?", (sha256,))
        return bytes(got) if got is not None else None

    def scan(self, since_ns: int, until_ns: int, batch: int = 500) -> Iterator[list[dict[str, Any]]]:
        """Top-level objects (depth 0) of [since, until) in time order, *batch* at a time (the back-test)."""
        last = (since_ns - 1, 0)
        while True:
            rows = self.ex.rows(
                "SELECT * FROM content WHERE depth = 0 AND ts_ns < ? AND (ts_ns > ? OR (ts_ns = ? AND seq > ?)) "
                "ORDER BY ts_ns, seq LIMIT ?", (until_ns, last[0], last[0], last[1], batch))
            if not rows:
                return
            yield rows
            last = (rows[-1]["ts_ns"], rows[-1]["seq"])

    def size_bytes(self) -> int:
        """Bytes the retained content takes (SQLite: used pages; PostgreSQL: its tables and indexes)."""
        if self.ex.dialect == "sqlite":
            pages = int(self.ex.scalar("PRAGMA page_count")) - int(self.ex.scalar("PRAGMA freelist_count"))
            return pages * int(self.ex.scalar("PRAGMA page_size"))
        return int(self.ex.scalar(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c WHERE c.relname IN "
            "('content', 'content_text', 'flows', 'app_events', 'content_blobs')") or 0)


class ContentStore:
    """The retained content named by a DSN: ``ContentStore(dsn)`` writes (and migrates), ``.reader(dsn)`` reads."""

    def __init__(self, dsn: str | Path | Dsn, *, readonly: bool = False, pool_size: int = 2,
                 timeout: float = 10.0) -> None:
        try:
            self.dsn = Dsn.parse(dsn)
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        self.db: SqliteBackend | PostgresBackend
        if self.dsn.path is not None:
            self.db = SqliteBackend(self.dsn.path, readonly=readonly, writer=not readonly, timeout=timeout,
                                    what="content store")
        else:
            self.db = PostgresBackend(self.dsn, pool_size=pool_size, timeout=timeout, readonly=readonly)
        try:
            migrate_backend(self.db, "content", CONTENT_MIGRATIONS, what="content store")
        except BaseException:
            self.db.close()
            raise

    @classmethod
    def reader(cls, dsn: str | Path | Dsn, **kw: Any) -> ContentStore:
        return cls(dsn, readonly=True, **kw)

    @property
    def repo(self) -> ContentRepo:
        return ContentRepo(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ContentStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
