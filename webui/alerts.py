"""Alerts as the console shows them: the alert store read with analysts' verdicts joined on.

The console never writes the alerts (on SQLite the sensor's alert writer is their only writer:
it holds ``<db>.lock``); verdicts go to the console's ``verdicts`` table (`webui.db`) and every
read joins them by alert id (`appliance.store.alerts.AlertRepo`), so filtering and counting by
verdict see the analysts' state. The join is plain SQL on both backends:

- SQLite: each view is a fresh read-only connection to the alert store with the console's file
  attached read-only as ``console`` (the join reads ``console.verdicts``);
- PostgreSQL: each view borrows a read-only connection from the console's view pool (alerts and
  verdicts are in the same database).
"""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any

from appliance.store import ALERT_MIGRATIONS, TRIAGE_STATES, AlertQuery, AlertRepo, Dsn, SqliteBackend, StoreError
from appliance.store.migrations import migrate_backend, schema_version
from appliance.store.postgres import PostgresBackend
from webui.db import ConsoleDB

__all__ = ["TRIAGE_STATES", "AlertQuery", "AlertView", "StoreError", "ViewFactory", "open_view"]


class AlertView:
    """Read-only alerts with the console's verdicts overlaid; one per request (not thread-safe)."""

    def __init__(self, alerts: AlertRepo, stack: contextlib.ExitStack) -> None:
        self.alerts = alerts
        self._stack = stack

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> AlertView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def query(self, q: AlertQuery, limit: int = 100, offset: int = 0, total: int | None = None) -> list[dict[str, Any]]:
        return self.alerts.query(q, limit, offset, total)

    def count(self, q: AlertQuery | None = None, cap: int | None = None) -> int:
        return self.alerts.count(q, cap)

    def by_ids(self, ids: list[str]) -> list[dict[str, Any]]:
        return self.alerts.by_ids(ids)

    def of_flow(self, flow_uid: str) -> list[dict[str, Any]]:
        return self.alerts.of_flow(flow_uid)

    def max_seq(self) -> int:
        return self.alerts.max_seq()

    def count_range(self, since_ns: int, until_ns: int) -> int:
        return self.alerts._stats.count_range(since_ns, until_ns)

    def series(self, dim: str, since_ns: int, until_ns: int, buckets: int,
               values: list[str] | None = None) -> tuple[int, dict[str, list[int]]]:
        """Counts per value of *dim* in *buckets* slices (rollups for whole hours, else the time index)."""
        return self.alerts._stats.series_any(dim, since_ns, until_ns, buckets, values)

    def get(self, alert_id: str) -> dict[str, Any] | None:
        return self.alerts.get(alert_id)

    def stats(self) -> dict[str, Any]:
        """Totals, groupings, the store's schema version and size."""
        return {**self.alerts.stats(), **self._store()}

    def totals(self) -> dict[str, Any]:
        """Alerts, first and last time, suppressed repeats, schema version and size (the dashboard's)."""
        return {**self.alerts.totals(), **self._store()}

    def _store(self) -> dict[str, Any]:
        ex = self.alerts.ex
        size = ex.size_bytes() if isinstance(ex, SqliteBackend) else \
            int(ex.scalar("SELECT pg_database_size(current_database())") or 0)
        return {"schema_version": schema_version(ex, "alerts"), "db_bytes": size}

    def distinct(self, col: str, limit: int = 200) -> list[str]:
        return self.alerts.distinct(col, limit)

    def inspectors(self) -> list[str]:
        return self.alerts.inspectors()

    def zones(self) -> list[str]:
        return self.alerts.zones()

    def time_bounds(self) -> tuple[int | None, int | None]:
        return self.alerts.time_bounds()

    def histogram(self, since_ns: int, until_ns: int, buckets: int = 48) -> list[tuple[int, int]]:
        return self.alerts.histogram(since_ns, until_ns, buckets)

    def top(self, group: str, since_ns: int, until_ns: int, limit: int = 10) -> list[tuple[str, int]]:
        return self.alerts.top(group, since_ns, until_ns, limit)

    def rule_quality(self) -> list[dict[str, Any]]:
        return self.alerts.rule_quality()

    def list_quality(self) -> list[dict[str, Any]]:
        return self.alerts.list_quality()


def open_view(alert_db: str, console: ConsoleDB, pool: PostgresBackend | None = None) -> AlertView:
    """An `AlertView`, or `StoreError` when the store is missing or of another schema."""
    stack = contextlib.ExitStack()
    try:
        dsn = Dsn.parse(alert_db)
        if dsn.path is not None:
            if console.path is None:
                raise StoreError("a SQLite alert store needs a SQLite console database")
            backend = SqliteBackend(dsn.path, readonly=True, timeout=5.0, attach={"console": console.path},
                                    what="alert store")
            stack.callback(backend.close)
            migrate_backend(backend, "alerts", ALERT_MIGRATIONS, what="alert store")
            return AlertView(AlertRepo(backend, "console.verdicts"), stack)
        if pool is None:
            raise StoreError("no connection pool for the alert store")
        ex = stack.enter_context(pool.connection())
        return AlertView(AlertRepo(ex, "verdicts"), stack)
    except sqlite3.Error as exc:
        stack.close()
        raise StoreError(f"cannot read the alert store {alert_db}: {exc}") from exc
    except BaseException:
        stack.close()
        raise


class ViewFactory:
    """Opens `AlertView`s for the console: a callable, closed with the app (it owns PostgreSQL's view pool)."""

    def __init__(self, alert_db: str, console: ConsoleDB, pool_size: int = 8) -> None:
        self.alert_db, self.console = alert_db, console
        dsn = Dsn.parse(alert_db)
        self.pool = None if dsn.path is not None else PostgresBackend(dsn, pool_size=pool_size, readonly=True)

    def __call__(self) -> AlertView:
        return open_view(self.alert_db, self.console, self.pool)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
