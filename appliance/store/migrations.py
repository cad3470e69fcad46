"""Versioned-SQL migrations, one ordered list per component, with per-dialect SQL where needed.

A component is a group of tables that one program owns: ``alerts`` (the sensor's store:
alerts, findings, objects, search index, sensors) and ``console`` (users, sessions, audit,
verdicts, policy versions, login throttling). Step *n* of a component's list takes it from
version *n* to *n + 1*; steps are never edited once released, only appended.

Where the version is kept:

- SQLite: ``PRAGMA user_version`` of the file (each component has its own file, as before);
- PostgreSQL: the table ``tapsift_schema (component, version)`` (every component shares the
  database). Concurrent openers serialise on an advisory lock, so two sensors starting at once
  do not both migrate.

Each step runs in one transaction with its version bump (PostgreSQL's DDL is transactional too),
so a failed step leaves the previous version intact. A step may end with a Python backfill (data
SQL cannot compute, such as the CJK n-grams of existing alerts).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from appliance.store.backend import Executor, SqliteBackend, SqliteExecutor, StoreError
from appliance.store.postgres import PostgresBackend, PostgresExecutor

__all__ = ["Migration", "migrate_backend", "migrate_sqlite", "schema_version"]

PG_LOCK_KEY = 0x7A95_1F7
"""The advisory lock key (any constant) migrations hold on PostgreSQL."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: its SQL per dialect and an optional backfill run after it, in the same transaction."""

    sqlite: str
    postgresql: str
    backfill: Callable[[Executor], None] | None = None

    def sql(self, dialect: str) -> str:
        return self.sqlite if dialect == "sqlite" else self.postgresql


def migrate_sqlite(conn: sqlite3.Connection, steps: list[Migration], target: int | None = None,
                   what: str = "store") -> int:
    """Apply the missing *steps* (up to *target*) to a SQLite connection; returns the version."""
    target = len(steps) if target is None else target
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > len(steps):
        raise StoreError(f"{what} schema v{version} is newer than this tapsift (v{len(steps)})")
    for step in range(version, target):
        m = steps[step]
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{m.sqlite}")
            if m.backfill is not None:
                m.backfill(SqliteExecutor(conn))
            conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return max(version, target)


def _pg_version(ex: Executor, component: str) -> int:
    if ex.scalar("SELECT to_regclass('tapsift_schema') IS NOT NULL") is not True:
        return 0
    return int(ex.scalar("SELECT version FROM tapsift_schema WHERE component = ?", (component,)) or 0)


def _pg_step(ex: PostgresExecutor, component: str, version: int, m: Migration) -> None:
    if version == 0 and ex.scalar("SELECT to_regclass('tapsift_schema') IS NULL"):
        ex.script("CREATE TABLE tapsift_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    ex.script(m.postgresql)
    if m.backfill is not None:
        m.backfill(ex)
    ex.execute("INSERT INTO tapsift_schema (component, version) VALUES (?, ?) ON CONFLICT (component) "
               "DO UPDATE SET version = excluded.version", (component, version + 1))


def _migrate_pg(backend: PostgresBackend, component: str, steps: list[Migration], what: str) -> int:
    import psycopg

    with backend.connection() as ex:
        version = _pg_version(ex, component)
    if version > len(steps):
        raise StoreError(f"{what} schema v{version} ({component}) is newer than this tapsift (v{len(steps)})")
    if version == len(steps):
        return version
    if backend.readonly:
        raise StoreError(f"{what} has schema v{version} ({component}), this code reads v{len(steps)}: "
                         "run `tapsift db migrate` (or start a writer) as the database owner")
    try:
        with backend.connection() as ex:
            # A session lock, and each step in its own transaction started after it is held: a transaction
            # begun before another opener's commit would not see that opener's new tables in its catalog cache.
            ex.execute("SELECT pg_advisory_lock(?)", (PG_LOCK_KEY,))
            try:
                while True:
                    with ex.conn.transaction():
                        version = _pg_version(ex, component)
                        if version >= len(steps):
                            break
                        _pg_step(ex, component, version, steps[version])
            finally:
                ex.execute("SELECT pg_advisory_unlock(?)", (PG_LOCK_KEY,))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise StoreError(f"{what} needs schema v{len(steps)} ({component}) but this role may not migrate it "
                         f"({str(exc).strip()}): run `tapsift db migrate` as the database owner") from None
    return len(steps)


def migrate_backend(backend: SqliteBackend | PostgresBackend, component: str, steps: list[Migration],
                    what: str = "store") -> int:
    """Bring *component* up to date on *backend* (a read-only one is only checked); returns its version."""
    if isinstance(backend, PostgresBackend):
        return _migrate_pg(backend, component, steps, what)
    if backend.readonly:
        version = int(backend.pragma("user_version"))
        if version != len(steps):
            raise StoreError(f"{what} {backend.path} has schema v{version}, this code reads v{len(steps)} "
                             "(the writer upgrades it when it opens)")
        return version
    with backend._lock:
        return migrate_sqlite(backend.conn, steps, what=what)


def schema_version(ex: Executor, component: str) -> int:
    """The version of *component* seen through *ex* (a backend or a connection of one)."""
    if ex.dialect == "sqlite":
        return int(ex.scalar("PRAGMA user_version"))
    return _pg_version(ex, component)
