"""The store: alerts, content objects, the console's tables and the sensor registry, on SQLite or PostgreSQL.

One interface, two backends, chosen by a DSN (`Dsn`): a path or ``sqlite:///…`` (embedded,
the default) or ``postgresql://…`` (the fleet's central database). Repositories hold the SQL,
written once for both engines, over a thin backend (`backend`, `postgres`) that knows the
dialects' differences:

- `alerts.AlertRepo` — alerts and findings: add (inserted / duplicate / conflict), filters, search,
  the dashboard's and hit list's reads, with the console's verdicts joined on;
- `objects.ObjectRepo` — content objects' metadata;
- `console` — triage verdicts, users, sessions, API tokens, trusted devices, audit, policy
  versions, login throttling (`console.ConsoleRepos` bundles them);
- `sensors.SensorRepo` — the sensor registry;
- `textindex.TextIndex` — substring search in any language (trigrams + CJK n-grams);
- `migrations` with `schema_alerts` / `schema_console` — versioned SQL per dialect;
- `alertstore.AlertStore` — the sensor's and CLI's handle on the alert store.

See docs/fleet.md.
"""

from __future__ import annotations

import sqlite3

from appliance.store.alerts import NOTE_MAX, TRIAGE_STATES, AlertQuery, AlertRepo
from appliance.store.alertstore import AlertStore
from appliance.store.backend import Executor, SqliteBackend, StoreError, StoreLocked
from appliance.store.dsn import Dsn
from appliance.store.migrations import Migration, migrate_sqlite
from appliance.store.objects import AddResult, ObjectRepo
from appliance.store.schema_alerts import ALERT_MIGRATIONS
from appliance.store.schema_console import CONSOLE_MIGRATIONS

__all__ = [
    "ALERT_MIGRATIONS", "CONSOLE_MIGRATIONS", "MIGRATIONS", "NOTE_MAX", "TRIAGE_STATES", "AddResult", "AlertQuery",
    "AlertRepo", "AlertStore", "Dsn", "Executor", "Migration", "ObjectRepo", "SqliteBackend", "StoreError",
    "StoreLocked", "migrate",
]

MIGRATIONS = ALERT_MIGRATIONS
"""The alert store's steps (the name earlier versions exported)."""


def migrate(db: sqlite3.Connection, target: int | None = None) -> int:
    """Apply the missing alert-store steps (up to *target*) to a SQLite connection; returns the version."""
    return migrate_sqlite(db, ALERT_MIGRATIONS, target, what="alert store")
