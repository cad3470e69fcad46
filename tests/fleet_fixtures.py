"""Real PostgreSQL and Redis servers for the fleet tests, one of each per test session (per xdist worker).

`PostgresServer`: ``initdb`` into a fresh directory under /tmp, then ``postgres`` as a child of
the test process, listening on a unix socket in that directory and on a free loopback port
with TLS (a self-signed certificate for 127.0.0.1). PostgreSQL refuses to run as root: as
root, both run as the Debian ``postgres`` user (set in the child before exec). Durability is
off (``fsync``, ``synchronous_commit``): the cluster is thrown away. Each test gets its own
database, copied from a template that already has the schema (`pg_dsn`).

`RedisServer`: ``redis-server`` on a unix socket, no persistence (nothing uses it yet).

Both children get SIGTERM if the test process dies (``PR_SET_PDEATHSIG``), and their
directories are removed at the end. A missing server is a failure, not a skip: ``scripts/setup.sh
test`` installs both (Debian ``postgresql``, ``redis-server``).

Use: ``from tests.fleet_fixtures import BACKENDS, pg_dsn, postgres_server, redis_server`` in a
test module or conftest (importing a fixture registers it there).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

__all__ = ["BACKENDS", "PostgresServer", "RedisServer", "pg_dsn", "pg_template", "postgres_server", "redis_server"]

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.fleet)]
"""Parameters of a store fixture: every test runs on both backends (PostgreSQL ones are marked ``fleet``)."""

SUPERUSER = "tapsift"
TEMPLATE = "tapsift_template"
_PR_SET_PDEATHSIG = 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _child_setup(uid: int | None, gid: int | None) -> Callable[[], None]:
    """In the child before exec: drop to *uid*/*gid* (when root), then die with the parent."""

    def setup() -> None:
        if uid is not None and gid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return setup


def pg_bindir() -> Path | None:
    """The newest PostgreSQL server binaries (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).resolve().parent if which else None


class PostgresServer:
    """A throwaway PostgreSQL cluster (see the module doc)."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="tapsift-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._admin = None
        self._names = itertools.count(1)
        self._free: list[str] = []
        self._lock = threading.Lock()
        self.uid = self.gid = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
            os.chown(self.root, pw.pw_uid, pw.pw_gid)

    # -- life ----------------------------------------------------------------------------------

    def _run(self, *cmd: str) -> None:
        subprocess.run(cmd, check=True, capture_output=True, preexec_fn=_child_setup(self.uid, self.gid))

    def _tls(self) -> None:
        self.cert, self.key = self.root / "server.crt", self.root / "server.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(self.key), "-out", str(self.cert)], check=True, capture_output=True)
        os.chmod(self.key, 0o600)
        if self.uid is not None:
            for p in (self.cert, self.key):
                os.chown(p, self.uid, self.gid)  # type: ignore[arg-type]

    def start(self) -> None:
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                  "--locale=C.UTF-8", "-N")
        self._tls()
        for _ in range(5):  # another worker may take the free port first
            self.port = _free_port()
            if self._launch():
                return
        raise RuntimeError(f"PostgreSQL did not start: {(self.root / 'log').read_text(errors='replace')[-2000:]}")

    def _launch(self) -> bool:
        import psycopg

        opts = {"listen_addresses": "127.0.0.1", "port": self.port, "unix_socket_directories": self.root,
                "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off", "max_connections": 300,
                "shared_buffers": "64MB", "ssl": "on", "ssl_cert_file": self.cert, "ssl_key_file": self.key}
        args = [str(self.bindir / "postgres"), "-D", str(self.data)]
        for k, v in opts.items():
            args += ["-c", f"{k}={v}"]
        with open(self.root / "log", "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                         preexec_fn=_child_setup(self.uid, self.gid))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                time.sleep(0.05)
        self.stop_process()
        return False

    def stop_process(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
        self.stop_process()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- use -----------------------------------------------------------------------------------

    def dsn(self, dbname: str, user: str = SUPERUSER) -> str:
        """Over the unix socket (no TLS)."""
        return f"postgresql://{user}@/{dbname}?host={self.root}&port={self.port}"

    def tcp_dsn(self, dbname: str, user: str = SUPERUSER, **params: str) -> str:
        """Over TCP to 127.0.0.1 (TLS when *params* ask for it: ``sslmode``, ``sslrootcert``…)."""
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}" + (f"?{query}" if query else "")

    def sql(self, statement: str, params: tuple[object, ...] | None = None, dbname: str = "postgres") -> list[tuple]:
        """One statement as the superuser (autocommit); its rows."""
        import psycopg

        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn:
            cur = conn.execute(statement.encode() if params is None else statement, params)
            return cur.fetchall() if cur.description else []

    def create_database(self, template: str | None = None) -> str:
        with self._lock:
            name = f"t{os.getpid()}_{next(self._names)}"
        tpl = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""
        self.sql(f"CREATE DATABASE {name}{tpl}")
        return name

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def take_database(self, template: str) -> str:
        """A database equal to *template*: a recycled one (`give_back`) or a new copy."""
        with self._lock:
            if self._free:
                return self._free.pop()
        return self.create_database(template)

    def give_back(self, name: str, template: str) -> None:
        """Empty *name* for the next test (every row deleted, identities restarted); a database whose
        schema versions no longer match the template's is dropped instead."""
        import psycopg

        self.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                 "AND pid <> pg_backend_pid()", (name,))
        want = self.sql("SELECT component, version FROM tapsift_schema ORDER BY 1", dbname=template)
        try:
            with psycopg.connect(self.dsn(name)) as conn:
                if conn.execute("SELECT component, version FROM tapsift_schema ORDER BY 1").fetchall() != want:
                    raise ValueError("schema changed")
                conn.execute("SET session_replication_role = replica")
                tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                      "AND tablename <> 'tapsift_schema'").fetchall()
                for (t,) in tables:
                    conn.execute(f'DELETE FROM "{t}"'.encode())
                for rel, col in conn.execute(
                        "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
                        "AND a.attidentity <> ''").fetchall():
                    conn.execute("SELECT setval(pg_get_serial_sequence(%s, %s), 1, false)", (rel, col))
        except (psycopg.Error, ValueError):
            self.drop_database(name)
            return
        with self._lock:
            self._free.append(name)


class RedisServer:
    """``redis-server`` on a unix socket in a temporary directory, without persistence."""

    def __init__(self, binary: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tapsift-redis-"))
        self.socket = self.root / "redis.sock"
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700", "--save", "",
             "--appendonly", "no", "--dir", str(self.root), "--logfile", str(self.root / "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_child_setup(None, None))
        deadline = time.monotonic() + 15
        while not self._ping():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def _ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(1)
                s.connect(str(self.socket))
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """This session's (this xdist worker's) PostgreSQL cluster."""
    bindir = pg_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL is not installed: scripts/setup.sh test (Debian package postgresql)")
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_template(postgres_server: PostgresServer) -> str:
    """A database with the whole schema (alerts and console), the template of every test's database."""
    from webui.db import ConsoleDB

    postgres_server.sql(f"CREATE DATABASE {TEMPLATE}")
    ConsoleDB(postgres_server.dsn(TEMPLATE)).close()
    return TEMPLATE


@pytest.fixture
def pg_dsn(postgres_server: PostgresServer, pg_template: str) -> Iterator[str]:
    """A database with the schema and no rows, for one test. Databases are recycled (emptied after
    the test; copying the template costs ~0.6 s, emptying ~0.05 s): a test that changes the schema
    or the roles takes its own with ``postgres_server.create_database()``."""
    name = postgres_server.take_database(pg_template)
    yield postgres_server.dsn(name)
    postgres_server.give_back(name, pg_template)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        pytest.fail("redis-server is not installed: scripts/setup.sh test (Debian package redis-server)")
    server = RedisServer(binary)
    yield server
    server.stop()
