"""The console's own SQLite database: users, sessions, API tokens, audit log, verdicts, policy versions,
login throttling and trusted devices.

Kept apart from the alert store, which has one writer (the sensor's alert writer). Analysts'
verdicts live here (table ``verdicts``) and are joined onto alerts when displayed (see
``webui.alerts``). One connection, serialised by a lock: the console is one process and every
transaction is short.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from appliance.outputs.alertjson import clean

SCHEMA: list[str] = [
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        username TEXT NOT NULL UNIQUE COLLATE NOCASE,
        role TEXT NOT NULL,
        pw_hash TEXT NOT NULL,
        totp_secret TEXT,
        totp_pending TEXT,
        totp_last_step INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        locked_until REAL NOT NULL DEFAULT 0,
        disabled INTEGER NOT NULL DEFAULT 0,
        created REAL NOT NULL,
        last_login REAL
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        stage TEXT NOT NULL,
        created REAL NOT NULL,
        last_seen REAL NOT NULL,
        ip TEXT NOT NULL DEFAULT '',
        user_agent TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created REAL NOT NULL,
        last_used REAL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        user TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        before TEXT,
        after TEXT,
        ip TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX audit_ts ON audit(ts);
    CREATE TABLE verdicts (
        alert_id TEXT PRIMARY KEY,
        verdict TEXT NOT NULL,
        note TEXT NOT NULL DEFAULT '',
        user TEXT NOT NULL DEFAULT '',
        ts REAL NOT NULL
    );
    CREATE INDEX verdicts_verdict ON verdicts(verdict);
    CREATE TABLE verdict_log (
        id INTEGER PRIMARY KEY,
        alert_id TEXT NOT NULL,
        ts REAL NOT NULL,
        verdict TEXT NOT NULL,
        note TEXT NOT NULL,
        user TEXT NOT NULL
    );
    CREATE INDEX verdict_log_alert ON verdict_log(alert_id, ts);
    CREATE TABLE policy_versions (
        id INTEGER PRIMARY KEY,
        ts REAL NOT NULL,
        user TEXT NOT NULL,
        version TEXT NOT NULL,
        text TEXT NOT NULL,
        comment TEXT NOT NULL DEFAULT ''
    );
    """,
    # v2: login throttling replaces the account lock (users.failed/locked_until are no longer used).
    """
    CREATE TABLE login_throttle (
        scope TEXT NOT NULL,
        user TEXT NOT NULL DEFAULT '',
        ip TEXT NOT NULL DEFAULT '',
        failures INTEGER NOT NULL,
        last_failure REAL NOT NULL,
        blocked_until REAL NOT NULL DEFAULT 0,
        refused INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (scope, user, ip)
    ) WITHOUT ROWID;
    CREATE INDEX login_throttle_last ON login_throttle(last_failure);
    CREATE INDEX login_throttle_user ON login_throttle(user);
    CREATE TABLE trusted_devices (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created REAL NOT NULL,
        last_used REAL NOT NULL
    );
    CREATE INDEX trusted_devices_user ON trusted_devices(user_id, last_used);
    UPDATE users SET failed = 0, locked_until = 0;
    """,
]


class ConsoleDB:
    """Thread-safe access to the console database (WAL, foreign keys, migrations by user_version)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=10000")
        with contextlib.suppress(OSError):
            self.path.chmod(0o600)
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for step in range(version, len(SCHEMA)):
            self._db.executescript(f"BEGIN IMMEDIATE;\n{SCHEMA[step]}\nPRAGMA user_version={step + 1};\nCOMMIT;")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def rows(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, params).fetchall()]

    def one(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> dict[str, Any] | None:
        got = self.rows(sql, params)
        return got[0] if got else None

    def scalar(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> Any:
        with self._lock:
            row = self._db.execute(sql, params).fetchone()
        return row[0] if row else None

    # -- audit --------------------------------------------------------------------------------

    def audit(self, db: sqlite3.Connection | None, user: str, action: str, target: str = "",
              before: Any = None, after: Any = None, ip: str = "") -> None:
        """Record a change (inside the caller's transaction when *db* is given)."""
        row = (time.time(), user, action, clean(str(target))[:500],
               None if before is None else json.dumps(clean(before), ensure_ascii=False),
               None if after is None else json.dumps(clean(after), ensure_ascii=False), ip)
        sql = "INSERT INTO audit (ts, user, action, target, before, after, ip) VALUES (?,?,?,?,?,?,?)"
        if db is not None:
            db.execute(sql, row)
        else:
            with self.tx() as conn:
                conn.execute(sql, row)

    def audit_page(self, limit: int, offset: int, action: str | None = None,
                   user: str | None = None) -> tuple[int, list[dict[str, Any]]]:
        conds, params = [], []
        if action:
            conds.append("action = ?")
            params.append(action)
        if user:
            conds.append("user = ?")
            params.append(user)
        where = (" WHERE " + " AND ".join(conds)) if conds else ""
        total = int(self.scalar(f"SELECT COUNT(*) FROM audit{where}", params))
        got = self.rows(f"SELECT * FROM audit{where} ORDER BY id DESC LIMIT ? OFFSET ?", [*params, limit, offset])
        for r in got:
            for k in ("before", "after"):
                r[k] = json.loads(r[k]) if r[k] is not None else None
        return total, got

    # -- users ---------------------------------------------------------------------------------

    def user_count(self) -> int:
        return int(self.scalar("SELECT COUNT(*) FROM users"))

    def user_by_name(self, username: str) -> dict[str, Any] | None:
        return self.one("SELECT * FROM users WHERE username = ?", (username,))

    def user_by_id(self, uid: int) -> dict[str, Any] | None:
        return self.one("SELECT * FROM users WHERE id = ?", (uid,))

    def users(self) -> list[dict[str, Any]]:
        return self.rows("SELECT id, username, role, disabled, created, last_login, "
                         "totp_secret IS NOT NULL AS totp FROM users ORDER BY username")

    def admin_count(self) -> int:
        return int(self.scalar("SELECT COUNT(*) FROM users WHERE role = 'admin' AND disabled = 0"))

    # -- verdicts ------------------------------------------------------------------------------

    def verdict_log(self, alert_id: str) -> list[dict[str, Any]]:
        return self.rows("SELECT ts, verdict, note, user FROM verdict_log WHERE alert_id = ? ORDER BY id",
                         (alert_id,))

    # -- policy versions -------------------------------------------------------------------------

    def policy_versions(self) -> list[dict[str, Any]]:
        return self.rows("SELECT id, ts, user, version, comment, length(text) AS size FROM policy_versions "
                         "ORDER BY id DESC")

    def policy_version(self, vid: int) -> dict[str, Any] | None:
        return self.one("SELECT * FROM policy_versions WHERE id = ?", (vid,))
