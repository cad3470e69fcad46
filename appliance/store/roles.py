"""PostgreSQL roles for the fleet: what each program may do to the shared database, and no more.

Three group roles (``NOLOGIN``; login roles are made members of them, see docs/fleet.md):

- ``<prefix>_ingest`` — sensors and the ingester: insert alerts, findings, objects and their
  search entries, count suppressed repeats, upsert their own sensor row; read alerts (to tell a
  duplicate from a conflict) and the saved policy versions (the ingester relays the newest to the
  sensors). No other console table, no deletes.
- ``<prefix>_console`` — the web console: read alerts and sensors; read/write verdicts, users,
  sessions, API tokens, trusted devices, login throttling; append to the audit log and the
  policy history (never change or delete them).
- ``<prefix>_reader`` — analysts' reporting: read alerts, findings, objects, verdicts, policy
  history and sensors; nothing of users, sessions, tokens, devices, throttling or the audit log
  (password hashes, TOTP secrets, token hashes).

Schema changes stay with the database owner (``tapsift db migrate``). `grant_statements` is
idempotent: run ``tapsift db init-roles`` again after an upgrade that adds tables.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

from appliance.store.dsn import Dsn

__all__ = ["ROLE_KINDS", "grant_statements", "init_roles", "role_names"]

ROLE_KINDS = ("ingest", "console", "reader")
_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,40}")

ALERT_TABLES = ("alerts", "findings", "objects", "alerts_text", "triage_log", "sensors", "alert_rollup")
CONTENT_TABLES = ("content", "content_text", "flows", "app_events", "content_blobs", "content_hours")
CASE_TABLES = ("cases", "case_hits", "case_log")
_GRANTS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "ingest": [
        ("SELECT, INSERT", ("alerts", "findings", "objects", "alerts_text")),
        ("UPDATE (suppressed)", ("alerts",)),
        ("SELECT, INSERT, UPDATE", ("sensors", "alert_rollup")),
        ("SELECT, INSERT, UPDATE, DELETE", CONTENT_TABLES),
        ("SELECT", ("policy_versions",)),  # the ingester relays the newest saved policy to the sensors (fleet)
    ],
    "console": [
        ("SELECT", (*ALERT_TABLES, *CONTENT_TABLES)),
        ("SELECT, INSERT, UPDATE, DELETE", ("users", "sessions", "api_tokens", "trusted_devices", "login_throttle",
                                            "verdicts", "user_state", "saved_searches", "cases", "case_hits")),
        ("SELECT, INSERT", ("audit", "verdict_log", "policy_versions", "case_log")),
    ],
    "reader": [
        ("SELECT", (*ALERT_TABLES, *CONTENT_TABLES, "verdicts", "verdict_log", "policy_versions", *CASE_TABLES)),
    ],
}


def role_names(prefix: str = "tapsift") -> dict[str, str]:
    """Kind → role name (``tapsift_ingest``…); the prefix is checked (lower-case letters, digits, ``_``)."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError("a role prefix is lower-case letters, digits and _ (not starting with a digit)")
    return {k: f"{prefix}_{k}" for k in ROLE_KINDS}


def grant_statements(prefix: str, database: str) -> list[sql.Composed]:
    """Create the roles (if missing) and grant them their rights on *database*'s tables."""
    names = role_names(prefix)
    out: list[sql.Composed] = []
    for role in names.values():
        out.append(sql.SQL("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {lit}) THEN "
                           "CREATE ROLE {role} NOLOGIN; END IF; END $$").format(lit=sql.Literal(role),
                                                                                 role=sql.Identifier(role)))
    everyone = sql.SQL(", ").join(sql.Identifier(r) for r in names.values())
    out.append(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), everyone))
    out.append(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(everyone))
    out.append(sql.SQL("GRANT SELECT ON tapsift_schema TO {}").format(everyone))
    for kind, grants in _GRANTS.items():
        for privileges, tables in grants:
            out.append(sql.SQL("GRANT " + privileges + " ON {} TO {}").format(
                sql.SQL(", ").join(sql.Identifier(t) for t in tables), sql.Identifier(names[kind])))
    writers = sql.SQL(", ").join(sql.Identifier(names[k]) for k in ("ingest", "console"))
    out.append(sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(writers))
    return out


def init_roles(dsn: str | Dsn, prefix: str = "tapsift") -> dict[str, str]:
    """Run `grant_statements` as the database owner (a role that may create roles); returns the role names."""
    d = Dsn.parse(dsn)
    if d.dialect != "postgresql":
        raise ValueError("roles are PostgreSQL's: give a postgresql:// DSN")
    names = role_names(prefix)
    with psycopg.connect(d.url) as conn:
        database = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        for stmt in grant_statements(prefix, database):
            conn.execute(stmt)
    return names
