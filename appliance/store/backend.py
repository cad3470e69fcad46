"""The thin backend under the repositories: a connection, transactions, and the dialect differences.

Repositories write their SQL once, with ``?`` placeholders, in the subset both engines run
(``INSERT … ON CONFLICT … DO NOTHING / DO UPDATE SET x = excluded.x`` is the upsert of both;
the column ``"user"`` is always quoted, as PostgreSQL reserves the word). What differs goes
through an `Executor`:

- placeholders: ``?`` becomes ``%s`` on PostgreSQL (`to_pg`);
- the id of an inserted row: `Executor.insert` (``lastrowid`` / ``RETURNING``), None when an
  ``ON CONFLICT DO NOTHING`` skipped the row;
- aggregates that differ: `Executor.agg_distinct` (``group_concat`` / ``string_agg``);
- planner hints: `Executor.unindexed` (SQLite's ``+col``);
- text PostgreSQL cannot hold (NUL, lone surrogates) becomes U+FFFD on the way in;
- full-text search and DDL: `appliance.store.textindex` and the migrations.

`SqliteBackend` is one connection serialised by a lock (WAL, one writer per file, as before);
`appliance.store.postgres.PostgresBackend` a small pool. Both are `Executor`s whose calls run
in their own (autocommit) statement, and both hand out a `Tx` (an `Executor` inside one
transaction) from ``tx()``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = ["Executor", "SqliteBackend", "SqliteExecutor", "StoreError", "StoreLocked"]

Dialect = Literal["sqlite", "postgresql"]
Params = Sequence[Any]


class StoreError(RuntimeError):
    """The store cannot be opened or used as asked."""


class StoreLocked(StoreError):
    """Another writer holds the (SQLite) store."""


class Executor:
    """Runs ``?``-parameterised SQL; rows come back as dicts."""

    dialect: Dialect

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        raise NotImplementedError

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        raise NotImplementedError

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        """One statement for each parameter row (batch inserts: SQLite's ``executemany``, psycopg's pipeline)."""
        raise NotImplementedError

    def insert(self, sql: str, params: Params, key: str) -> Any:
        """Run an INSERT; the new row's *key* column (SQLite: its rowid), or None when no row was inserted."""
        raise NotImplementedError

    def batch(self) -> contextlib.AbstractContextManager[Any]:
        """Statements sent without waiting for each answer (PostgreSQL's pipeline mode; nothing on SQLite).
        Inside, `execute` does not wait and returns -1: read results with `insert`, `rows`, `one`…"""
        return contextlib.nullcontext()

    def one(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        got = self.rows(sql, params)
        return got[0] if got else None

    def scalar(self, sql: str, params: Params = ()) -> Any:
        row = self.one(sql, params)
        return next(iter(row.values())) if row else None

    def column(self, sql: str, params: Params = ()) -> list[Any]:
        """The first column of every row."""
        return [next(iter(r.values())) for r in self.rows(sql, params)]

    def unindexed(self, col: str) -> str:
        """*col* in a condition the planner should not answer with an index on *col* alone: SQLite's
        planner, without statistics on ranges, would fetch every row of a wide time range through the
        time index instead of scanning a covering index of the grouped columns."""
        return f"+{col}" if self.dialect == "sqlite" else col

    def agg_distinct(self, expr: str) -> str:
        """Comma-joined distinct values of *expr* (an aggregate)."""
        if self.dialect == "sqlite":
            return f"group_concat(DISTINCT {expr})"
        return f"string_agg(DISTINCT {expr}, ',')"


class SqliteExecutor(Executor):
    """An `Executor` on one SQLite connection (the caller serialises access)."""

    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Params = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        self.conn.executemany(sql, rows)

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]

    def insert(self, sql: str, params: Params, key: str) -> Any:
        cur = self.conn.execute(sql, params)
        return cur.lastrowid if cur.rowcount == 1 else None


class SqliteBackend(SqliteExecutor):
    """One SQLite file: WAL, foreign keys, a lock around the connection.

    ``writer=True`` also takes ``<path>.lock`` (flock) so that a second writer of the same file
    fails with `StoreLocked` (the alert store's single-writer rule); ``readonly=True`` opens
    ``mode=ro``; *attach* maps schema names to other files attached read-only.
    """

    def __init__(self, path: str | Path, *, readonly: bool = False, writer: bool = False, synchronous: str = "normal",
                 timeout: float = 10.0, attach: dict[str, Path] | None = None, private: bool = False,
                 what: str = "store") -> None:
        self.path = Path(path)
        self.readonly = readonly
        self.what = what
        self._lock = threading.RLock()
        self._lockfd: int | None = None
        if synchronous not in ("normal", "full"):
            raise ValueError("synchronous must be 'normal' or 'full'")
        if readonly:
            if not self.path.exists():
                raise StoreError(f"no {what} at {self.path}")
            conn = sqlite3.connect(_ro_uri(self.path), uri=True, isolation_level=None, timeout=timeout,
                                   check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if writer:
                self._take_lock()
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=timeout, check_same_thread=False)
        super().__init__(conn)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            if not readonly:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"cannot put {self.path} in WAL mode (got {mode})")
                conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
                conn.execute("PRAGMA foreign_keys=ON")
                if private:
                    with contextlib.suppress(OSError):
                        self.path.chmod(0o600)
            for name, other in (attach or {}).items():
                conn.execute(f"ATTACH DATABASE ? AS {_ident(name)}", (_ro_uri(Path(other)),))
        except BaseException:
            self.close()
            raise

    def _take_lock(self) -> None:
        self._lockfd = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT, 0o640)
        try:
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lockfd)
            self._lockfd = None
            raise StoreLocked(f"{self.what} {self.path} already has a writer") from None

    def close(self) -> None:
        with self._lock:
            conn = getattr(self, "conn", None)
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    if not self.readonly:
                        conn.execute("PRAGMA optimize")
                    conn.close()
                self.conn = None  # type: ignore[assignment]
        if self._lockfd is not None:
            os.close(self._lockfd)
            self._lockfd = None

    @contextlib.contextmanager
    def tx(self) -> Iterator[SqliteExecutor]:
        """One write transaction (``BEGIN IMMEDIATE``: the write lock is taken up front)."""
        if self.readonly:
            raise StoreError("read-only store")
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield SqliteExecutor(self.conn)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def execute(self, sql: str, params: Params = ()) -> int:
        with self._lock:
            return super().execute(sql, params)

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        with self._lock:
            return super().rows(sql, params)

    def insert(self, sql: str, params: Params, key: str) -> Any:
        with self._lock:
            return super().insert(sql, params, key)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        with self._lock:
            super().executemany(sql, rows)

    def pragma(self, name: str) -> Any:
        """The value of a read-only PRAGMA (journal_mode, synchronous, page_count…)."""
        if not name.replace("_", "").isalnum():
            raise ValueError("bad pragma name")
        with self._lock:
            return self.conn.execute(f"PRAGMA {name}").fetchone()[0]

    def size_bytes(self) -> int:
        return int(self.pragma("page_size")) * int(self.pragma("page_count"))


def _ro_uri(path: Path) -> str:
    return "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"


def _ident(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"bad schema name {name!r}")
    return name
