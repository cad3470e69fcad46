"""The store on a real PostgreSQL server as a fleet uses it: roles, TLS from the DSN, several writers at once,
the ``tapsift db`` command; and the Redis fixture the next part of the fleet work needs."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from appliance.store import AlertStore, Dsn, StoreError
from appliance.store.roles import init_roles
from appliance.store.schema_alerts import ALERT_MIGRATIONS
from appliance.store.schema_console import CONSOLE_MIGRATIONS
from appliance.store.schema_content import CONTENT_MIGRATIONS
from tests.appliance.test_store import _alert, _obj
from tests.fleet_fixtures import PostgresServer, RedisServer

pytestmark = pytest.mark.fleet


def _dbname(dsn: str) -> str:
    return dsn.split("?")[0].rsplit("/", 1)[1]


def test_roles_give_each_program_only_what_it_needs(postgres_server: PostgresServer, pg_template: str) -> None:
    from webui.alerts import ViewFactory
    from webui.db import ConsoleDB

    name = postgres_server.create_database(pg_template)
    try:
        prefix = f"r{os.getpid()}"
        roles = init_roles(postgres_server.dsn(name), prefix)
        assert init_roles(postgres_server.dsn(name), prefix) == roles  # idempotent
        for kind, role in roles.items():
            postgres_server.sql(f"CREATE ROLE {prefix}_{kind}_login LOGIN IN ROLE {role}")
        as_role = {kind: postgres_server.dsn(name, user=f"{prefix}_{kind}_login") for kind in roles}
        denied = psycopg.errors.InsufficientPrivilege

        with AlertStore(as_role["ingest"]) as sensor:  # the schema is current: no DDL attempted
            assert sensor.add(_alert(1), _obj(1)) and sensor.bump_suppressed("A000001", 2)
            sensor.sensors.heartbeat("edge-1", 10.0, policy_version="v1", counters={"packets": 5})
            sensor.sensors.heartbeat("edge-1", 20.0, policy_version="v2")
            for stmt in ("DELETE FROM alerts", "SELECT * FROM users", "INSERT INTO verdicts (alert_id, verdict, ts) "
                         "VALUES ('A000001', 'confirmed', 1)", "UPDATE alerts SET category = 'x'"):
                with pytest.raises(denied):
                    sensor.db.execute(stmt)

        console = ConsoleDB(as_role["console"])
        views = ViewFactory(as_role["console"], console)
        try:
            uid = console.accounts.add("alice", "analyst", "hash")
            with console.tx() as tx:
                tx.verdicts.set("A000001", "confirmed", "ok", "alice", 1.0)
                console.audit(tx, "alice", "hit.triage", "A000001", {"verdict": "new"}, {"verdict": "confirmed"})
            with views() as view:
                assert view.get("A000001")["triage"] == "confirmed"  # type: ignore[index]
                assert view.stats()["by_triage"] == {"confirmed": 1}
            assert console.users()[0]["id"] == uid
            for stmt in ("UPDATE audit SET action = 'nothing'", "DELETE FROM audit", "DELETE FROM alerts",
                         "INSERT INTO alerts (id, ts_ns, severity, category, policy, profile, src_zone, dst_zone, "
                         "json) VALUES ('X', 1, 1, 'c', 'p', 'q', 'a', 'b', '{}')", "UPDATE sensors SET name = 'x'"):
                with pytest.raises(denied):
                    console.execute(stmt)
        finally:
            views.close()
            console.close()

        with AlertStore.reader(as_role["reader"]) as report:
            assert report.count() == 1 and report.sensors.get("edge-1")["policy_version"] == "v2"  # type: ignore[index]
            assert report.db.scalar("SELECT verdict FROM verdicts") == "confirmed"
            for stmt in ("SELECT * FROM users", "SELECT * FROM audit", "SELECT * FROM sessions",
                         "SELECT * FROM api_tokens"):
                with pytest.raises(denied):
                    report.db.rows(stmt)
    finally:
        postgres_server.drop_database(name)


def test_tls_is_configured_in_the_dsn(postgres_server: PostgresServer, pg_dsn: str, tmp_path: Path) -> None:
    db = _dbname(pg_dsn)
    good = postgres_server.tcp_dsn(db, sslmode="verify-full", sslrootcert=str(postgres_server.cert))
    with AlertStore.reader(good) as s:
        assert s.count() == 0
        assert s.db.scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
    other = tmp_path / "other-ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "1", "-subj", "/CN=someone else", "-keyout", str(tmp_path / "k"), "-out", str(other)],
                   check=True, capture_output=True)
    with pytest.raises(StoreError, match="certificate verify failed"):
        AlertStore.reader(postgres_server.tcp_dsn(db, sslmode="verify-full", sslrootcert=str(other)))
    with AlertStore.reader(postgres_server.tcp_dsn(db, sslmode="disable")) as plain:
        assert plain.db.scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is False


def test_dsn_parsing_and_redaction() -> None:
    assert Dsn.parse("/var/lib/tapsift/alerts.db").path == Path("/var/lib/tapsift/alerts.db")
    assert Dsn.parse("sqlite:////var/lib/a.db").path == Path("/var/lib/a.db")
    assert Dsn.parse("sqlite:///rel/a.db").path == Path("rel/a.db")
    pg = Dsn.parse("postgresql://console:s3cret@db.example:5433/tapsift?sslmode=verify-full&password=x")
    assert pg.dialect == "postgresql" and "s3cret" not in pg.redacted and "password=x" not in pg.redacted
    assert pg.redacted.startswith("postgresql://console:***@db.example:5433/tapsift?sslmode=verify-full")
    assert Dsn.parse("postgres://u@h/db").dialect == "postgresql"
    for bad in ("", "mysql://h/db", "postgresql://host:5432", "sqlite://x"):
        with pytest.raises(ValueError):
            Dsn.parse(bad)


def test_writers_at_once_on_an_empty_database(postgres_server: PostgresServer) -> None:
    """Four sensors start together on a new database: one migrates, the others wait; all their alerts land."""
    name = postgres_server.create_database()
    dsn = postgres_server.dsn(name)
    start, errors = threading.Barrier(4), []

    def sensor(k: int) -> None:
        try:
            start.wait()
            with AlertStore(dsn) as s:
                s.add_many([(_alert(i), _obj(i)) for i in range(k * 50, k * 50 + 50)])
                s.add_many([(_alert(i), _obj(i)) for i in range(0, 10)])  # the same alerts from everyone
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sensor, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        with AlertStore.reader(dsn) as r:
            assert r.count() == 200 and r.schema_version() == len(ALERT_MIGRATIONS)
            assert r.db.scalar("SELECT COUNT(*) FROM objects") == 200
    finally:
        postgres_server.drop_database(name)


def test_db_command_migrates_and_reports(postgres_server: PostgresServer, tmp_path: Path) -> None:
    name = postgres_server.create_database()
    dsn = postgres_server.dsn(name)
    env = {**os.environ}
    try:
        def tapsift(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "appliance.cli", "db", *args], capture_output=True,
                                  text=True, env=env)

        va, vc = len(ALERT_MIGRATIONS), len(CONSOLE_MIGRATIONS)
        assert f"alerts: schema v0 (this tapsift: v{va})" in tapsift("status", dsn).stdout
        r = tapsift("migrate", dsn)
        assert r.returncode == 0 and r.stdout.split() == ["alerts:", "schema", f"v{va}", "console:", "schema", f"v{vc}",
                                                  "content:", "schema", f"v{len(CONTENT_MIGRATIONS)}"]
        assert f"alerts: schema v{va} (this tapsift: v{va})" in tapsift("status", dsn).stdout
        r = tapsift("init-roles", dsn, "--prefix", f"c{os.getpid()}")
        assert r.returncode == 0 and f"ingest: c{os.getpid()}_ingest" in r.stdout
        assert tapsift("init-roles", dsn, "--prefix", "Bad-Name").returncode == 1
        assert tapsift("migrate", str(tmp_path / "alerts.db")).stdout == f"alerts: schema v{va}\n"
    finally:
        postgres_server.drop_database(name)


def test_redis_server_fixture(redis_server: RedisServer) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    assert client.ping() and client.set("tapsift:k", "v") and client.get("tapsift:k") == b"v"
    client.close()
