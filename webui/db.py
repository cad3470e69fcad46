"""The console's database: users, sessions, API tokens, audit log, verdicts, policy versions, login throttling
and trusted devices — the repositories of `appliance.store.console` over one backend.

SQLite (``console_db`` a path): its own file, apart from the alert store, which has one writer
(the sensor's alert writer); one connection serialised by a lock (the console is one process
and every transaction is short). PostgreSQL (``console_db`` the same DSN as ``alert_db``): the
fleet's one database, through a small pool; opening it brings both the alert and the console
schema up to date (when the role may). Analysts' verdicts live in ``verdicts`` and are joined
onto alerts when read (`webui.alerts`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from appliance.store import ALERT_MIGRATIONS, CONSOLE_MIGRATIONS, Dsn, Executor, SqliteBackend
from appliance.store.console import ConsoleRepos
from appliance.store.migrations import migrate_backend
from appliance.store.postgres import PostgresBackend

__all__ = ["ConsoleDB", "ConsoleTx"]


class _Delegate(ConsoleRepos):
    """Plain SQL on the executor, for tools and tests (``?`` placeholders, as everywhere)."""

    ex: Executor

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> int:
        return self.ex.execute(sql, params)

    def rows(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        return self.ex.rows(sql, params)

    def one(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> dict[str, Any] | None:
        return self.ex.one(sql, params)

    def scalar(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        return self.ex.scalar(sql, params)


class ConsoleTx(_Delegate):
    """The repositories inside one transaction."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex


class ConsoleDB(_Delegate):
    """The console database named by *dsn* (a path, ``sqlite:///…`` or ``postgresql://…``)."""

    def __init__(self, dsn: str | Path | Dsn, *, pool_size: int = 8, timeout: float = 10.0) -> None:
        self.dsn = Dsn.parse(dsn)
        self.backend: SqliteBackend | PostgresBackend
        if self.dsn.path is not None:
            self.backend = SqliteBackend(self.dsn.path, private=True, timeout=timeout, what="console database")
        else:
            self.backend = PostgresBackend(self.dsn, pool_size=pool_size, timeout=timeout)
        self.ex = self.backend
        try:
            if isinstance(self.backend, PostgresBackend):
                from appliance.store.schema_content import CONTENT_MIGRATIONS

                migrate_backend(self.backend, "alerts", ALERT_MIGRATIONS, what="the database")
                migrate_backend(self.backend, "content", CONTENT_MIGRATIONS, what="the database")
            migrate_backend(self.backend, "console", CONSOLE_MIGRATIONS, what="console database")
        except BaseException:
            self.backend.close()
            raise

    @property
    def path(self) -> Path | None:
        return self.dsn.path

    def close(self) -> None:
        self.backend.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[ConsoleTx]:
        """One write transaction; its repositories (``tx.accounts``, ``tx.audit_log``…) commit together."""
        with self.backend.tx() as ex:
            yield ConsoleTx(ex)

    # -- shorthands the services and the CLI use ---------------------------------------------------

    def audit(self, tx: ConsoleTx | None, user: str, action: str, target: str = "", before: Any = None,
              after: Any = None, ip: str = "") -> None:
        """Record a change (inside the caller's transaction when *tx* is given)."""
        (tx or self).audit_log.add(user, action, target, before, after, ip)

    def audit_page(self, limit: int, offset: int, action: str | None = None,
                   user: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        return self.audit_log.page(limit, offset, action, user)

    def user_count(self) -> int:
        return self.accounts.count()

    def user_by_name(self, username: str) -> dict[str, Any] | None:
        return self.accounts.by_name(username)

    def user_by_id(self, uid: int) -> dict[str, Any] | None:
        return self.accounts.by_id(uid)

    def users(self) -> list[dict[str, Any]]:
        return self.accounts.list()

    def admin_count(self) -> int:
        return self.accounts.admin_count()

    def verdict_log(self, alert_id: str) -> list[dict[str, Any]]:
        return self.verdicts.log(alert_id)

    def policy_versions(self) -> list[dict[str, Any]]:
        return self.policies.list()

    def policy_version(self, vid: int) -> dict[str, Any] | None:
        return self.policies.get(vid)
