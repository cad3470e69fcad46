"""Fixtures for the console tests: a temporary alert store, policy, console DB and one user per role.

Every test that takes ``env`` (or ``app``, ``client``) runs twice: on SQLite files (an alert store and
a console database) and on one PostgreSQL database holding both (marked ``fleet``; a real server,
see tests/fleet_fixtures.py).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from appliance.store import AlertStore
from tests.fleet_fixtures import BACKENDS, pg_dsn, pg_template, postgres_server  # noqa: F401
from tests.webui.factories import copy_policy, fill_store
from webui import ConsoleSettings, create_app
from webui.app import close_app
from webui.services.users import create_user

PASSWORDS = {"admin": "admin-secret-1", "analyst": "analyst-secret-1", "viewer": "viewer-secret-1"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    m = _CSRF.search(html)
    assert m, "no CSRF field in the page"
    return m.group(1)


@dataclass
class Env:
    tmp: Path
    settings: ConsoleSettings
    dsn: str | None = None
    """The PostgreSQL database (None: SQLite files in ``tmp``)."""

    def app(self, **overrides: object):  # type: ignore[no-untyped-def]
        return create_app(self.settings, **overrides)


def make_settings(tmp: Path, dsn: str | None = None, **kw: object) -> ConsoleSettings:
    """Settings over the demo hits: SQLite files in *tmp*, or the PostgreSQL database *dsn*."""
    ev = tmp / "evidence"
    ev.mkdir(exist_ok=True)
    if dsn is not None:
        with AlertStore.reader(dsn) as store:
            empty = store.count() == 0
        if empty:
            fill_store(dsn, ev)
    elif not (tmp / "alerts.db").exists():
        fill_store(tmp / "alerts.db", ev)
    if not (tmp / "policy.yaml").exists():
        copy_policy(tmp / "policy.yaml")
    (tmp / "stats.json").write_text(json.dumps({
        "ts": time.time(), "packets": 1_250_000, "bytes": 980_000_000, "drops": 12, "flows": 3412,
        "queue_depths": {"expensive": 3, "alerts": 0}, "packets_per_s": 41_250.0, "mbit_per_s": 262.4}))
    stores = {"alert_db": dsn, "console_db": dsn} if dsn else {"alert_db": tmp / "alerts.db",
                                                                 "console_db": tmp / "console.db"}
    base = dict(**stores, policy_path=tmp / "policy.yaml",
                stats_file=tmp / "stats.json", evidence_dir=ev, argon2_time_cost=1, argon2_memory_kib=256,
                argon2_parallelism=1)
    base.update(kw)
    return ConsoleSettings(**base)  # type: ignore[arg-type]


def add_users(app) -> None:  # type: ignore[no-untyped-def]
    st = app.state
    for role, pw in PASSWORDS.items():
        if st.db.user_by_name(role) is None:
            create_user(st.db, st.passwords, role, role, pw)


def login(client: TestClient, username: str, password: str | None = None) -> str:
    """Log in through the form; returns the session's CSRF token."""
    page = client.get("/login")
    r = client.post("/login", data={"csrf": csrf_of(page.text), "username": username,
                                    "password": password or PASSWORDS[username], "next": "/"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/account").text)


@pytest.fixture(params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Env:
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgresql" else None
    return Env(tmp_path, make_settings(tmp_path, dsn), dsn)


@pytest.fixture(params=BACKENDS)
def console_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A console database alone: a SQLite file, or a PostgreSQL database."""
    return str(tmp_path / "c.db") if request.param == "sqlite" else str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def app(env: Env):  # type: ignore[no-untyped-def]
    a = env.app()
    add_users(a)
    yield a
    close_app(a)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app) as c:
        yield c
