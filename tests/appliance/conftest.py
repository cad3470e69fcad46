"""The fleet's real servers (PostgreSQL, Redis) for the appliance tests: see tests/fleet_fixtures.py."""

from tests.fleet_fixtures import pg_dsn, pg_template, postgres_server, redis_server

__all__ = ["pg_dsn", "pg_template", "postgres_server", "redis_server"]
