"""The ingester on real servers: alerts and heartbeats from Redis into PostgreSQL, exactly once."""

from __future__ import annotations

import json
import time
from pathlib import Path

from appliance.bus.redis import RedisBus
from appliance.fleet.ingest import INGEST_GROUP, Ingester, alert_ts_ns
from appliance.outputs.alertjson import alert_record, dumps
from appliance.settings import SyslogSettings
from appliance.store import AlertStore
from tests.appliance.outputs.alert_factories import alert, content
from tests.fleet.conftest import alert_count, fleet_settings


def record(i: int, sensor: str = "edge-1") -> dict:
    rec = alert_record(alert(i), content(i))
    rec["tapsift"]["sensor"] = sensor
    return rec


def publish(url: str, stream: str, recs: list[dict | bytes], sensor: str = "edge-1") -> None:
    bus = RedisBus(url)
    bus.publish(stream, [{"eve": r if isinstance(r, bytes) else dumps(r), "sensor": sensor} for r in recs], 100_000)
    bus.close()


def drain(ing: Ingester, rounds: int = 50) -> None:
    """Step the store consumer until a round reads nothing (in this thread: deterministic)."""
    c = ing.consumers[0]
    idle = 0
    for _ in range(rounds):
        before = c.counters["acked"]
        c.step()
        idle = idle + 1 if c.counters["acked"] == before and not c.held else 0
        if idle >= 2:
            return


def test_timestamps_of_records(tmp_path: Path) -> None:
    rec = record(1)
    assert alert_ts_ns(rec) == (alert(1).ts_ns // 1000) * 1000  # the EVE timestamp keeps microseconds
    rec["tapsift"]["ts_ns"] = 123
    assert alert_ts_ns(rec) == 123
    assert alert_ts_ns({"timestamp": "yesterday"}) == 0


def test_each_alert_is_stored_once_whatever_the_bus_delivers(pg_dsn: str, redis_url: str, tmp_path: Path) -> None:
    s = fleet_settings(tmp_path, redis_url, batch=7)
    recs = [record(i) for i in range(20)]
    before = alert_count(pg_dsn)
    publish(redis_url, s.output.bus.alerts_key, recs[:12])
    publish(redis_url, s.output.bus.alerts_key, recs)  # the first twelve again: a sensor resent a batch
    other = record(3)
    other["tapsift"]["policy"] = "another"  # another record under a stored id
    publish(redis_url, s.output.bus.alerts_key, [other, b"{not json", json.dumps({"event_type": "alert"}).encode(),
                                                 dumps({"event_type": "suppressed", "tapsift": {"alert_id": recs[0][
                                                     "tapsift"]["alert_id"]}}).encode()])
    beat = {"event_type": "heartbeat", "sensor": "edge-1"}
    publish(redis_url, s.output.bus.sensors_key, [
        {**beat, "ts": 100.0, "policy_version": "v1", "counters": {"packets": 1}},
        {**beat, "ts": 101.0, "policy_version": "v2", "counters": {"packets": 9}},
    ])
    ing = Ingester(s, pg_dsn, relay_policy=False)
    drain(ing)
    assert alert_count(pg_dsn) - before == 20
    c = ing.counters
    assert (c["inserted"], c["duplicate"], c["conflict"], c["rejected"], c["suppressed"]) == (20, 12, 1, 2, 1)
    with AlertStore.reader(pg_dsn) as store:
        hit = store.get(recs[3]["tapsift"]["alert_id"])
        assert hit is not None and hit["policy"] == recs[3]["tapsift"]["policy"]  # the first record is kept
        assert store.get(recs[0]["tapsift"]["alert_id"])["suppressed"] == 1  # type: ignore[index]
        assert {r["sensor"] for r in store.db.rows("SELECT sensor FROM alerts")} == {"edge-1"}
        row = store.sensors.get("edge-1")
        assert row is not None and row["policy_version"] == "v2" and row["counters"] == {"packets": 9}
    bus = RedisBus(redis_url)
    rejected = bus.r.xrange(s.output.bus.alerts_key + ":rejected")
    assert [f[b"reason"] for _, f in rejected] == [b"not JSON", b"no tapsift.alert_id"]
    # acknowledged, and trimmed once every group has them
    assert bus.groups(s.output.bus.alerts_key)[0]["pending"] == 0
    ing.consumers[0].housekeeping(bus)  # type: ignore[misc]
    assert bus.length(s.output.bus.alerts_key) == 0
    bus.close()
    ing.close()


def test_an_ingester_restarted_under_its_name_finishes_its_own_batch_first(pg_dsn: str, redis_url: str,
                                                                           tmp_path: Path) -> None:
    s = fleet_settings(tmp_path, redis_url, batch=5)
    publish(redis_url, s.output.bus.alerts_key, [record(i) for i in range(5)])
    bus = RedisBus(redis_url)
    bus.ensure_group(s.output.bus.alerts_key, INGEST_GROUP)
    took = bus.read_group([s.output.bus.alerts_key], INGEST_GROUP, s.output.bus.consumer, 5, 0.1)
    assert len(took) == 5  # taken by this consumer, then it "died"
    ing = Ingester(s, pg_dsn, relay_policy=False)
    drain(ing)
    assert ing.consumers[0].counters["own_pending"] == 5 and alert_count(pg_dsn) == 5
    bus.close()
    ing.close()


def test_siem_forwarding_from_the_stream(pg_dsn: str, redis_url: str, tmp_path: Path) -> None:
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]
    s = fleet_settings(tmp_path, redis_url)
    s.output.syslog = [SyslogSettings(host="127.0.0.1", port=port, transport="tcp", format="json")]
    publish(redis_url, s.output.bus.alerts_key, [record(i) for i in range(3)])
    ing = Ingester(s, None, relay_policy=False)
    assert [c.name for c in ing.consumers] == ["siem"]
    c = ing.consumers[0]
    for _ in range(5):
        c.step()
    assert ing.counters["forwarded"] == 3
    conn, _ = srv.accept()
    conn.settimeout(30)
    got = b""
    deadline = time.monotonic() + 30
    while got.count(b"A0000000") < 3 and time.monotonic() < deadline:
        got += conn.recv(65536)
    assert all(f"A{i:08d}".encode() in got for i in range(3))
    conn.close()
    srv.close()
    ing.close()
