"""The alert store as the sensor and the CLI use it: one object per DSN, writer or reader.

SQLite (the embedded default): one writer (the alert writer process) holds a read-write
connection and an exclusive lock file (``<db>.lock``); readers open read-only connections
(``mode=ro``) and never block the writer (WAL). Durability: ``journal_mode=WAL`` with
``synchronous=NORMAL``: a committed transaction is in the WAL once ``add``/``add_many``
returns, so a crash or ``kill -9`` of the process loses no committed alert; a power cut may lose
the last transactions since the last checkpoint (the database stays consistent);
``synchronous="full"`` closes that window at one fsync per commit.

PostgreSQL (the fleet): any number of writers (sensors, ingesters) and readers; a committed
transaction is durable as the server is configured (``synchronous_commit``).

Opening a writer applies the missing steps of `ALERT_MIGRATIONS`; a reader only checks the version.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from appliance.model import Alert, ContentObject
from appliance.outputs.alertjson import alert_record
from appliance.store.alerts import AlertQuery, AlertRepo
from appliance.store.backend import SqliteBackend, StoreError
from appliance.store.dsn import Dsn
from appliance.store.migrations import migrate_backend, schema_version
from appliance.store.objects import AddResult
from appliance.store.postgres import PostgresBackend
from appliance.store.schema_alerts import ALERT_MIGRATIONS
from appliance.store.sensors import SensorRepo

__all__ = ["AlertStore"]

Item = tuple[Alert, ContentObject | None] | tuple[Alert, ContentObject | None, Any]


class AlertStore:
    """``AlertStore(dsn)`` writes; ``AlertStore.reader(dsn)`` reads. *dsn*: a path, ``sqlite:///…`` or ``postgresql://…``.

    ``check_same_thread`` is accepted for compatibility and ignored: calls are serialised
    internally, so the store may be opened in one thread and used from another.
    """

    def __init__(self, dsn: str | Path | Dsn, *, synchronous: str = "normal", readonly: bool = False,
                 timeout: float = 10.0, check_same_thread: bool = True, pool_size: int = 2) -> None:
        try:
            self.dsn = Dsn.parse(dsn)
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        self.readonly = readonly
        self.db: SqliteBackend | PostgresBackend
        if self.dsn.path is not None:
            self.db = SqliteBackend(self.dsn.path, readonly=readonly, writer=not readonly, synchronous=synchronous,
                                    timeout=timeout, what="alert store")
        else:
            self.db = PostgresBackend(self.dsn, pool_size=pool_size, timeout=timeout, readonly=readonly)
        try:
            migrate_backend(self.db, "alerts", ALERT_MIGRATIONS, what="alert store")
        except BaseException:
            self.db.close()
            raise
        self.sensors = SensorRepo(self.db)

    @classmethod
    def reader(cls, dsn: str | Path | Dsn, **kw: Any) -> AlertStore:
        """A read-only view (another process or thread than the writer)."""
        return cls(dsn, readonly=True, **kw)

    @property
    def path(self) -> Path | None:
        """The SQLite file (None on PostgreSQL)."""
        return self.dsn.path

    @property
    def _db(self) -> sqlite3.Connection:
        """The SQLite connection (tests and tools)."""
        if not isinstance(self.db, SqliteBackend):
            raise StoreError("not a SQLite store")
        return self.db.conn

    @property
    def alerts(self) -> AlertRepo:
        """Reads (each call its own statement)."""
        return AlertRepo(self.db)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> AlertStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        return schema_version(self.db, "alerts")

    def pragma(self, name: str) -> Any:
        """A SQLite PRAGMA's value (journal_mode, synchronous…)."""
        if not isinstance(self.db, SqliteBackend):
            raise StoreError("PRAGMA is SQLite's")
        return self.db.pragma(name)

    # -- writing ------------------------------------------------------------------------------

    def add_alert(self, record: dict[str, Any], obj: ContentObject | None, ts_ns: int) -> AddResult:
        """Store one alert record (`alert_record`) at packet time *ts_ns*, committed when this returns:
        ``INSERTED``, ``DUPLICATE`` (its id with the same record) or ``CONFLICT`` (its id with another)."""
        with self.db.tx() as tx:
            return AlertRepo(tx).add(record, obj, ts_ns)

    def add(self, alert: Alert, obj: ContentObject | None = None, record: dict[str, Any] | None = None) -> bool:
        """Store one alert; False if its id was already stored."""
        return self.add_many([(alert, obj, record)]) == 1

    def add_record(self, record: dict[str, Any], ts_ns: int) -> bool:
        """Store one alert given as its record (`alert_record`), as the live supervisor's single
        writer receives it from a worker process; False if its id was already stored."""
        return self.add_alert(record, None, ts_ns) is AddResult.INSERTED

    def add_many(self, items: Iterable[Item]) -> int:
        """Store alerts in one transaction; returns how many were new. ``record`` (the third item,
        optional) is the precomputed :func:`alert_record`."""
        n = 0
        with self.db.tx() as tx, tx.batch():
            repo = AlertRepo(tx)
            for item in items:
                alert, obj = item[0], item[1]
                record = item[2] if len(item) > 2 and item[2] is not None else alert_record(alert, obj)
                n += repo.add(record, obj, alert.ts_ns) is AddResult.INSERTED
        return n

    def set_triage(self, alert_id: str, verdict: str, note: str = "", user: str = "") -> bool:
        """Record a verdict in the store itself (kept in ``triage_log``); False if the alert is unknown."""
        with self.db.tx() as tx:
            return AlertRepo(tx).set_triage(alert_id, verdict, note, user)

    def bump_suppressed(self, alert_id: str, n: int = 1) -> bool:
        """Count *n* more repeats folded into this alert; False if the alert is unknown."""
        with self.db.tx() as tx:
            return AlertRepo(tx).bump_suppressed(alert_id, n)

    def purge(self, before_ns: int) -> int:
        """Delete alerts older than *before_ns* (retention); returns how many."""
        with self.db.tx() as tx:
            return AlertRepo(tx).purge(before_ns)

    # -- reading ------------------------------------------------------------------------------

    def _where(self, q: AlertQuery | dict[str, Any] | None) -> tuple[str, list[Any]]:
        return self.alerts.where(q)

    def query(self, filters: AlertQuery | dict[str, Any] | None = None, limit: int = 100,
              offset: int = 0) -> list[dict[str, Any]]:
        """Alert summaries matching *filters*, newest first."""
        return self.alerts.query(filters, limit, offset)

    def count(self, filters: AlertQuery | dict[str, Any] | None = None) -> int:
        return self.alerts.count(filters)

    def search(self, text: str, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """Full-text search (substrings, any language; terms AND-ed), newest first."""
        return self.query(AlertQuery(text=text), limit, offset) if text.strip() else []

    def get(self, alert_id: str) -> dict[str, Any] | None:
        """One alert: its columns, the full ``record``, its ``findings``, ``object`` and ``triage_log``."""
        return self.alerts.get(alert_id)

    def stats(self) -> dict[str, Any]:
        """Totals for the console's dashboard."""
        return {**self.alerts.stats(), "schema_version": self.schema_version(), "db_bytes": self.db.size_bytes()}
