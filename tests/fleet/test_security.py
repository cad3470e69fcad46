"""Bus security on a real redis-server: ACL users with only what each program needs; TLS with a CA file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import redis

from appliance.bus.acl import acl_rules, setuser_commands
from appliance.bus.base import BusError
from appliance.bus.publish import StreamOutput
from appliance.bus.redis import RedisBus
from appliance.fleet.ingest import Ingester
from appliance.fleet.policy import PolicyFollower
from appliance.fleet.remote import RemoteOffload
from appliance.fleet.sensorlink import Heartbeat
from appliance.fleet.worker import InspectWorker
from appliance.inspection import InspectionResult
from appliance.model import ContentObject, Direction
from tests.fleet.conftest import RedisProcess, alert_count, fleet_settings, free_port

PASSWORD = {"sensor": "s-pass-1", "worker": "w-pass-1", "ingester": "i-pass-1"}


@pytest.fixture
def acl_redis(tmp_path: Path) -> RedisProcess:
    r = RedisProcess(aof=False)
    admin = RedisBus(r.url)
    s = fleet_settings(tmp_path, r.url)
    assert s.output.bus is not None
    for role, rules in acl_rules(s.output.bus).items():
        admin.r.execute_command("ACL", "SETUSER", f"tapsift-{role}", "reset", "on", f">{PASSWORD[role]}",
                                *rules.split())
    admin.r.execute_command("ACL", "SETUSER", "default", "off")  # no anonymous access
    admin.close()
    yield r  # type: ignore[misc]
    r.close()


def _as(r: RedisProcess, role: str, tmp_path: Path, **kw: object):  # type: ignore[no-untyped-def]
    pw = tmp_path / f"{role}.pass"
    pw.write_text(PASSWORD[role] + "\n")
    pw.chmod(0o600)
    url = f"unix://tapsift-{role}@{r.socket}"
    return fleet_settings(tmp_path / role, url, password_file=str(pw), **kw)


def test_each_program_holds_only_the_rights_it_needs(acl_redis: RedisProcess, tmp_path: Path, pg_dsn: str,
                                                    policy_file: Path) -> None:
    from tests.fleet.test_ingest import record

    with pytest.raises(BusError, match=r"NOAUTH|Authentication|WRONGPASS|NOPERM"):
        RedisBus(acl_redis.url).ping()  # the default user is off
    sensor = _as(acl_redis, "sensor", tmp_path, policy=policy_file, remote=True)
    sb = sensor.output.bus
    assert sb is not None
    # the sensor: alerts, events, heartbeats, jobs; the policy stream read-only
    out = StreamOutput(lambda: RedisBus.from_settings(sb), sb.alerts_key, "edge-1", tmp_path / "spool", maxlen=1000,
                       max_spool_bytes=1 << 20)
    for i in range(3):
        out.send(record(i))
    assert out.flush(10)
    assert Heartbeat(sb, "edge-1", "sensor", lambda: {"packets": 1}).beat()
    obj = ContentObject("F1", "http", Direction.TO_SERVER, None, 0, 3, "m", "s", data=b"abc")
    off = RemoteOffload(sensor, lambda ev: None)
    assert off(obj) and off.counters["offered"] == 1
    follower = PolicyFollower(lambda: RedisBus.from_settings(sb), sb, tmp_path / "p.yaml", lambda: None)
    bus = RedisBus.from_settings(sb)
    follower.step(bus)
    for cmd in (lambda: bus.read_group([sb.alerts_key], "g", "c", 1, 0.01), lambda: bus.r.xrange(sb.alerts_key),
                lambda: bus.r.xtrim(sb.alerts_key, maxlen=0), lambda: bus.r.delete(sb.alerts_key),
                lambda: bus.publish(sb.policy_key, [{"eve": "{}"}], 10), lambda: bus.r.keys("*"),
                lambda: bus.r.flushall(), lambda: bus.r.set("other", 1)):
        with pytest.raises((BusError, redis.RedisError), match=r"NOPERM|no permissions|can.t access"):
            cmd()
    bus.close()
    # the worker: its jobs, its results; not the alerts themselves
    worker = _as(acl_redis, "worker", tmp_path, policy=policy_file, remote=True)
    w = InspectWorker(worker, "w1", inspect=lambda o: InspectionResult())
    assert w.step(1.0) and w.counters["done"] == 1
    wb = RedisBus.from_settings(worker.output.bus)  # type: ignore[arg-type]
    for cmd in (lambda: wb.read_group([sb.alerts_key], "g", "c", 1, 0.01), lambda: wb.r.xrange(sb.alerts_key),
                lambda: wb.publish(sb.policy_key, [{"eve": "{}"}], 10),
                lambda: wb.r.eval("return redis.call('XRANGE', KEYS[1], '-', '+')", 1, sb.alerts_key)):
        with pytest.raises((BusError, redis.RedisError), match=r"NOPERM|no permissions|can.t access"):
            cmd()
    wb.close()
    # the ingester: reads the streams through its group into the store; no jobs
    ing_settings = _as(acl_redis, "ingester", tmp_path)
    ing = Ingester(ing_settings, pg_dsn, relay_policy=False)
    for _ in range(6):
        ing.consumers[0].step()
    assert alert_count(pg_dsn) == 3 and ing.counters["heartbeats"] >= 1
    ib = RedisBus.from_settings(ing_settings.output.bus)  # type: ignore[arg-type]
    with pytest.raises((BusError, redis.RedisError), match=r"NOPERM|no permissions|can.t access"):
        ib.r.xrange(f"{sb.jobs_key}:expensive:0")
    ib.publish(sb.policy_key, [{"eve": json.dumps({"version": "x", "text": ""})}], 10)  # the relay's right
    ib.close()
    ing.close()
    out.close(0)
    assert all(line.startswith("ACL SETUSER tapsift-") for line in setuser_commands(sb))


def test_tls_with_a_ca_file(tmp_path: Path) -> None:
    ca, key, cert = tmp_path / "ca.pem", tmp_path / "srv.key", tmp_path / "srv.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    ca.write_bytes(cert.read_bytes())
    port = free_port()
    r = RedisProcess("--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                     "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no", aof=False)
    try:
        bus = RedisBus(f"rediss://127.0.0.1:{port}/0", ca_file=str(ca))
        assert bus.publish("s", [{"eve": "{}"}], 10) and bus.length("s") == 1
        bus.close()
        # a server whose certificate another CA signed is refused
        other = tmp_path / "other.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", str(tmp_path / "o.key"), "-out",
                        str(other)], check=True, capture_output=True)
        with pytest.raises(BusError, match=r"certificate|SSL"):
            RedisBus(f"rediss://127.0.0.1:{port}/0", ca_file=str(other), timeout_s=3).ping()
        with pytest.raises(BusError):  # plain text to the TLS port
            RedisBus(f"redis://127.0.0.1:{port}/0", timeout_s=3).ping()
    finally:
        r.close()
