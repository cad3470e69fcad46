"""Fixtures of the fleet tests: real PostgreSQL and Redis servers, generated captures, settings.

Every test here runs against real servers (marked ``fleet``): the session's PostgreSQL and
``redis-server`` (tests/fleet_fixtures.py), and for the fault tests a Redis of their own that can
be stopped and started again on the same socket (`RedisProcess`, append-only file on, so what
it held survives a restart as it does in production).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.bus.redis import RedisBus
from appliance.settings import Settings
from appliance.store import AlertStore
from tests.fleet_fixtures import PostgresServer, pg_dsn, pg_template, postgres_server, redis_server
from tools import synth as S

__all__ = ["pg_dsn", "pg_template", "postgres_server", "redis_server"]

ROOT = Path(__file__).resolve().parents[2]
TAPSIFT = str(Path(sys.executable).with_name("tapsift"))
SECRET = "Milestones for Project Nightjar."

POLICY = """\
zones:
  office: {cidrs: [10.20.0.0/16]}
lists:
  secrets:
    type: keywords
    keywords:
      - {text: "Project Nightjar", weight: 10}
profiles:
  leak:
    category: data-leak/confidential
    severity: high
    inspect:
      - inspector: keyword
        lists: [secrets]
    threshold: {weight: 10}
policies:
  - name: uploads
    source_zone: office
    direction: upload
    profiles: [leak]
suppression: {window_s: 0}
"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.fleet)


# --------------------------------------------------------------------------- captures


def make_capture(path: Path, docs: int, *, seed: int, net: int = 7, secret_every: int = 1,
                 size: int = 0) -> int:
    """A capture of *docs* DOCX uploads from 10.20.<net>.x, one per server (no suppression);
    every *secret_every*-th names the project (an alert). *size*: filler paragraphs per document.
    Returns how many alerts the policy raises on it."""
    t = S.Trace(seed=seed)
    alerts = 0
    for i in range(docs):
        secret = i % secret_every == 0
        alerts += secret
        lines = [SECRET if secret else "Milestones for the picnic.", f"sensor net {net}, document {i}"]
        lines += [f"Filler paragraph {k} of document {i} on network {net}." for k in range(size)]
        doc = S.docx_document(f"doc {i}", tuple(lines))
        body, ctype = S.multipart_body(files=[("file", f"plan-{net}-{i}.docx", "application/octet-stream", doc)])
        s = t.session((f"10.20.{net}.{1 + i % 200}", 40000 + i), (f"198.51.{net}.{1 + i % 250}", 80), at=i * 0.01)
        s.http(S.http_request("POST", f"/upload/{i}", f"share{i}.example.net", body=body, content_type=ctype),
               S.http_response(200, b"ok", content_type="text/plain"))
        s.close()
    t.write(path)
    return alerts


@pytest.fixture(scope="session")
def policy_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("policy") / "policy.yaml"
    p.write_text(POLICY)
    return p


@pytest.fixture(scope="session")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int]]:
    """Two small captures (one per sensor): name → (path, alerts the policy raises on it)."""
    d = tmp_path_factory.mktemp("captures")
    out = {}
    for name, net, docs in (("edge-a", 7, 12), ("edge-b", 8, 9)):
        out[name] = (d / f"{name}.pcap", make_capture(d / f"{name}.pcap", docs, seed=net, net=net, secret_every=1))
    return out


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisProcess:
    """A ``redis-server`` of one test: stop and start it again (same socket, same data)."""

    def __init__(self, *extra: str, port: int = 0, aof: bool = True) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tapsift-redis-"))
        self.socket = self.root / "redis.sock"
        self.port = port
        self.args = ["redis-server", "--port", str(port), "--unixsocket", str(self.socket), "--unixsocketperm", "700",
                     "--save", "", "--appendonly", "yes" if aof else "no", "--appendfsync", "always",
                     "--dir", str(self.root), "--logfile", str(self.root / "log"), *extra]
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> None:
        from appliance.bus.redis import wait_until_up

        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        bus = RedisBus(self.url, timeout_s=2)
        try:
            if not wait_until_up(bus, 15):
                raise RuntimeError("redis-server did not start: " + (self.root / "log").read_text()[-1000:])
        finally:
            bus.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def _die_with_parent() -> None:
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    """A Redis of this test alone (the fault tests stop it)."""
    r = RedisProcess()
    yield r
    r.close()


@pytest.fixture
def redis_url(redis_server: Any) -> Iterator[str]:
    """The session's Redis, emptied for this test."""
    bus = RedisBus(redis_server.url)
    bus.r.flushall()
    bus.close()
    yield redis_server.url


# --------------------------------------------------------------------------- settings and counts


def fleet_settings(tmp: Path, bus_url: str, *, policy: Path | None = None, name: str = "edge-a",
                   remote: bool = False, **bus: Any) -> Settings:
    """Settings of a fleet process: the bus at *bus_url*, spools under *tmp*, short timeouts."""
    b = {"url": bus_url, "heartbeat_s": 0.5, "claim_idle_s": 2.0, "retry_max_s": 0.5, "policy_poll_s": 0.5,
         "timeout_s": 3.0, "batch": 50, **bus}
    raw: dict[str, Any] = {
        "sensor": {"name": name},
        "output": {"state_dir": str(tmp / "state"), "bus": b},
    }
    if policy is not None:
        raw["inspection"] = {"policy": str(policy), "remote": {"enabled": remote, "claim_idle_s": 2.0}}
    return Settings.model_validate(raw)


def write_settings(path: Path, settings: Settings) -> Path:
    import yaml

    path.write_text(yaml.safe_dump(json.loads(settings.model_dump_json(exclude_defaults=False))))
    return path


def alert_count(dsn: str) -> int:
    with AlertStore.reader(dsn) as s:
        return s.count()


def alert_ids(dsn: str) -> list[str]:
    with AlertStore.reader(dsn) as s:
        return [r["id"] for r in s.db.rows("SELECT id FROM alerts ORDER BY id")]


def wait_for(pred: Callable[[], bool], timeout: float = 60.0, what: str = "the condition",
             every: float = 0.05) -> None:
    """Poll *pred* until true; fail after *timeout* seconds (generous: the machine is shared)."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def run_tapsift(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([TAPSIFT, *args], capture_output=True, text=True, timeout=timeout, env=env)


def spawn_tapsift(*args: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with open(log, "ab") as fh:
        return subprocess.Popen([TAPSIFT, *args], stdout=fh, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=_die_with_parent)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(10)


__all__ += ["PostgresServer"]


def ingest_until_idle(settings: Settings, dsn: str, timeout: float = 60.0) -> Any:
    """Run an ingester in this thread until the alert stream is consumed (backlog and pending 0);
    returns it (closed) for its counters."""
    from appliance.fleet.ingest import INGEST_GROUP, Ingester

    ing = Ingester(settings, dsn, relay_policy=False)
    c = ing.consumers[0]
    key = settings.output.bus.alerts_key  # type: ignore[union-attr]
    deadline = time.monotonic() + timeout
    try:
        while True:
            wait = c.step()
            if wait:
                time.sleep(wait)
            elif c.bus is not None and not c.held:
                g = {g["name"]: g for g in c.bus.groups(key)}.get(INGEST_GROUP)
                last = c.bus.last(key)
                if g is not None and g["pending"] == 0 and (last is None or g["last_delivered"] == last.id):
                    return ing
            if time.monotonic() > deadline:
                raise AssertionError(f"the ingester did not finish: {ing.summary()}")
    finally:
        ing.close()


def read_in_process(pcap: Path, config: Path, eve: Path) -> int:
    """``tapsift read`` in this process (its imports are paid already)."""
    from appliance.cli import main

    return main(["read", str(pcap), "--config", str(config), "--eve", str(eve), "-q", "--workers", "1"])
