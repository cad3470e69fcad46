"""Retained content as the console reads it (`appliance.store.content`), one read-only handle per request.

SQLite: the retention writer's file opened read-only; PostgreSQL: a connection from the console's
read-only content pool (the same database as the alerts in a fleet). None when no ``content_db``
is configured: pages that can do without it (a session from its alerts alone) say so.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from appliance.store import Dsn, SqliteBackend
from appliance.store.content import ContentRepo
from appliance.store.migrations import migrate_backend
from appliance.store.postgres import PostgresBackend
from appliance.store.schema_content import CONTENT_MIGRATIONS

__all__ = ["ContentViews"]


class ContentViews:
    """Opens read-only `ContentRepo`s; owns PostgreSQL's pool (closed with the app)."""

    def __init__(self, dsn: str | None, pool_size: int = 4) -> None:
        self.dsn = Dsn.parse(dsn) if dsn else None
        self.pool = None
        if self.dsn is not None and self.dsn.path is None:
            self.pool = PostgresBackend(self.dsn, pool_size=pool_size, readonly=True)

    @property
    def enabled(self) -> bool:
        return self.dsn is not None

    @contextlib.contextmanager
    def open(self) -> Iterator[ContentRepo | None]:
        """A repository for this request (None: no content store configured); `StoreError` when unreadable."""
        if self.dsn is None:
            yield None
            return
        if self.pool is not None:
            with self.pool.connection() as ex:
                yield ContentRepo(ex)
            return
        assert self.dsn.path is not None
        backend = SqliteBackend(self.dsn.path, readonly=True, timeout=5.0, what="content store")
        try:
            migrate_backend(backend, "content", CONTENT_MIGRATIONS, what="content store")
            yield ContentRepo(backend)
        finally:
            backend.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
