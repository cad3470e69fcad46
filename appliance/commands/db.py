"""``tapsift db``: the store's schema and, on PostgreSQL, its roles (``migrate``, ``status``, ``init-roles``)."""

from __future__ import annotations

import argparse
import sys


def _migrate(args: argparse.Namespace) -> int:
    from appliance.store import ALERT_MIGRATIONS, CONSOLE_MIGRATIONS, Dsn, SqliteBackend
    from appliance.store.migrations import migrate_backend
    from appliance.store.postgres import PostgresBackend
    from appliance.store.schema_content import CONTENT_MIGRATIONS

    dsn = Dsn.parse(args.dsn)
    if dsn.path is not None:
        steps, component = (CONSOLE_MIGRATIONS, "console") if args.console else (ALERT_MIGRATIONS, "alerts")
        backend: SqliteBackend | PostgresBackend = SqliteBackend(dsn.path, private=args.console)
        todo = [(component, steps)]
    else:
        backend = PostgresBackend(dsn, pool_size=1)
        todo = [("alerts", ALERT_MIGRATIONS), ("console", CONSOLE_MIGRATIONS), ("content", CONTENT_MIGRATIONS)]
    try:
        for component, steps in todo:
            print(f"{component}: schema v{migrate_backend(backend, component, steps, what=dsn.redacted)}")
    finally:
        backend.close()
    return 0


def _status(args: argparse.Namespace) -> int:
    from appliance.store import ALERT_MIGRATIONS, CONSOLE_MIGRATIONS, Dsn, SqliteBackend
    from appliance.store.migrations import schema_version
    from appliance.store.postgres import PostgresBackend
    from appliance.store.schema_content import CONTENT_MIGRATIONS

    dsn = Dsn.parse(args.dsn)
    backend = SqliteBackend(dsn.path, readonly=True) if dsn.path is not None else \
        PostgresBackend(dsn, pool_size=1, readonly=True)
    try:
        components = [("alerts", ALERT_MIGRATIONS), ("console", CONSOLE_MIGRATIONS),
                      ("content", CONTENT_MIGRATIONS)] if dsn.path is None else \
            [("(file)", ALERT_MIGRATIONS)]
        for component, steps in components:
            print(f"{component}: schema v{schema_version(backend, component)} (this tapsift: v{len(steps)})")
    finally:
        backend.close()
    return 0


def _init_roles(args: argparse.Namespace) -> int:
    from appliance.store.roles import init_roles

    names = init_roles(args.dsn, args.prefix)
    for kind, name in names.items():
        print(f"{kind}: {name}")
    print("grant them to login roles, e.g. CREATE ROLE sensor1 LOGIN PASSWORD '…' IN ROLE " + names["ingest"])
    return 0


def _run(args: argparse.Namespace) -> int:
    import psycopg

    from appliance.store import StoreError

    try:
        return int(args.db_func(args))
    except (StoreError, ValueError, psycopg.Error) as exc:
        print(f"tapsift: {str(exc).strip()}", file=sys.stderr)
        return 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("db", help="the store's schema and roles (SQLite or PostgreSQL)")
    dsub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    m = dsub.add_parser("migrate", help="bring the schema up to date (run as the database owner)")
    m.add_argument("dsn", help="a SQLite path or a postgresql:// DSN")
    m.add_argument("--console", action="store_true", help="SQLite: the file is a console database")
    m.set_defaults(db_func=_migrate)
    s = dsub.add_parser("status", help="schema versions")
    s.add_argument("dsn")
    s.set_defaults(db_func=_status)
    r = dsub.add_parser("init-roles", help="PostgreSQL: create the ingest, console and reader roles and grant them")
    r.add_argument("dsn", help="postgresql:// DSN of the database owner (who may create roles)")
    r.add_argument("--prefix", default="tapsift", help="role names are PREFIX_ingest, PREFIX_console, PREFIX_reader")
    r.set_defaults(db_func=_init_roles)
    p.set_defaults(func=_run)
