"""PostgreSQL under the store interface (psycopg 3): SQL translation, text cleaning and a small pool.

The pool has no background threads: a connection is opened when none is idle (up to *size* at
once; more callers wait up to *timeout* seconds), handed back after use when it is healthy and
idle, and pinged before reuse when it has sat idle a while (a restarted server leaves dead
sockets behind). TLS, passwords files and the rest are libpq's, named in the DSN.

psycopg is imported when a PostgreSQL store is first opened, not with this module (a SQLite-only
sensor does not pay its import time).
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from appliance.store.backend import Dialect, Executor, Params, StoreError
from appliance.store.dsn import Dsn

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresBackend", "PostgresExecutor", "to_pg"]

_SURROGATES = re.compile("[\ud800-\udfff]")
PING_AFTER_S = 30.0


@functools.lru_cache(maxsize=2048)
def to_pg(sql: str) -> str:
    """``?`` placeholders → ``%s`` and ``%`` → ``%%`` outside quoted strings and identifiers."""
    out: list[str] = []
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
            out.append("%%" if ch == "%" else ch)
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


def pg_text(s: str) -> str:
    """Text PostgreSQL accepts: NUL and lone surrogates become U+FFFD (SQLite keeps NUL)."""
    if "\x00" in s:
        s = s.replace("\x00", "\ufffd")
    if _SURROGATES.search(s):
        s = _SURROGATES.sub("\ufffd", s)
    return s


def _param(v: Any) -> Any:
    if isinstance(v, str):
        return pg_text(v)
    if isinstance(v, list):
        return [_param(x) for x in v]
    return v


def _params(params: Params) -> list[Any]:
    return [_param(p) for p in params]


class PostgresExecutor(Executor):
    """An `Executor` on one psycopg connection."""

    dialect: Dialect = "postgresql"

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self._piped = 0

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row

        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(to_pg(sql), _params(params))
            return cur.fetchall()

    def insert(self, sql: str, params: Params, key: str) -> Any:
        with self.conn.cursor() as cur:
            cur.execute(to_pg(sql) + f" RETURNING {key}", _params(params))
            row = cur.fetchone()
        return row[0] if row else None

    def execute(self, sql: str, params: Params = ()) -> int:
        with self.conn.cursor() as cur:
            cur.execute(to_pg(sql), _params(params))
            return -1 if self._piped else cur.rowcount

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        if not rows:
            return
        with self.conn.cursor() as cur:
            cur.executemany(to_pg(sql), [_params(r) for r in rows])

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        with self.conn.pipeline():
            self._piped += 1
            try:
                yield
            finally:
                self._piped -= 1

    def script(self, sql: str) -> None:
        """Several statements, no parameters (migrations)."""
        self.conn.execute(sql.encode())


class _Pool:
    def __init__(self, dsn: Dsn, size: int, timeout: float, readonly: bool) -> None:
        self.dsn, self.timeout, self.readonly = dsn, timeout, readonly
        self._slots = threading.BoundedSemaphore(size)
        self._idle: list[tuple[psycopg.Connection[Any], float]] = []
        self._lock = threading.Lock()
        self._closed = False

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg

        try:
            conn = psycopg.connect(self.dsn.url, autocommit=True)
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {self.dsn.redacted}: {str(exc).strip()}") from None
        if self.readonly:
            conn.execute("SET default_transaction_read_only = on")
        return conn

    def _take(self) -> psycopg.Connection[Any]:
        import psycopg

        while True:
            with self._lock:
                if not self._idle:
                    break
                conn, since = self._idle.pop()
            if time.monotonic() - since < PING_AFTER_S:
                return conn
            try:
                conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                conn.close()
        return self._connect()

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._closed:
            raise StoreError(f"the store {self.dsn.redacted} is closed")
        if not self._slots.acquire(timeout=self.timeout):
            raise StoreError(f"no free connection to {self.dsn.redacted} within {self.timeout:g} s")
        try:
            conn = self._take()
            try:
                yield conn
            finally:
                self._give_back(conn)
        finally:
            self._slots.release()

    def _give_back(self, conn: psycopg.Connection[Any]) -> None:
        import psycopg

        healthy = not conn.closed and not conn.broken and \
            conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with self._lock:
            if healthy and not self._closed:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()


class PostgresBackend(Executor):
    """A PostgreSQL database: each call borrows a pooled connection (autocommit); ``tx()`` one transaction."""

    dialect: Dialect = "postgresql"

    def __init__(self, dsn: str | Dsn, *, pool_size: int = 4, timeout: float = 10.0, readonly: bool = False) -> None:
        self.dsn = Dsn.parse(dsn)
        if self.dsn.dialect != "postgresql":
            raise ValueError("not a PostgreSQL DSN")
        self.readonly = readonly
        self._pool = _Pool(self.dsn, pool_size, timeout, readonly)

    def close(self) -> None:
        self._pool.close()

    @contextlib.contextmanager
    def connection(self) -> Iterator[PostgresExecutor]:
        """One connection for a series of autocommit statements (a console request's reads)."""
        with self._pool.connection() as conn:
            yield PostgresExecutor(conn)

    @contextlib.contextmanager
    def tx(self) -> Iterator[PostgresExecutor]:
        if self.readonly:
            raise StoreError("read-only store")
        with self._pool.connection() as conn, conn.transaction():
            yield PostgresExecutor(conn)

    def execute(self, sql: str, params: Params = ()) -> int:
        with self.connection() as ex:
            return ex.execute(sql, params)

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        with self.connection() as ex:
            return ex.rows(sql, params)

    def insert(self, sql: str, params: Params, key: str) -> Any:
        with self.connection() as ex:
            return ex.insert(sql, params, key)

    def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        with self.connection() as ex:
            ex.executemany(sql, rows)

    def size_bytes(self) -> int:
        return int(self.scalar("SELECT pg_database_size(current_database())") or 0)
