"""Faults on real servers: each test counts the alerts in PostgreSQL before and after — none lost, none doubled.

Outages are short here (a second or two); ``bench/fleet_bench.py --outage-s 60`` runs the same
scenarios with a minute each.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from appliance.bus.redis import RedisBus
from appliance.fleet.ingest import INGEST_GROUP, Ingester
from appliance.fleet.worker import InspectWorker
from appliance.inspection import InspectionResult
from tests.fleet.conftest import (
    RedisProcess,
    alert_count,
    alert_ids,
    fleet_settings,
    ingest_until_idle,
    make_capture,
    read_in_process,
    spawn_tapsift,
    wait_for,
    write_settings,
)
from tests.fleet_fixtures import PostgresServer

FORK = mp.get_context("fork")


def _pending(url: str, stream: str, group: str, consumer: str | None = None) -> int:
    bus = RedisBus(url)
    try:
        info = bus.r.xpending(stream, group)
        if consumer is None:
            return int(info["pending"])
        return sum(int(c["pending"]) for c in info["consumers"] if c["name"].decode() == consumer)
    except Exception:
        return 0
    finally:
        bus.close()


def _spool_rows(state: Path, stream: str) -> int:
    db = state / "spool" / f"bus-{stream.replace(':', '_')}" / "spool.sqlite3"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as c:
            return int(c.execute("SELECT COUNT(*) FROM queue").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_redis_down_sensors_spool_and_catch_up_in_order(own_redis: RedisProcess, pg_dsn: str, tmp_path: Path,
                                                         policy_file: Path) -> None:
    from appliance.bus.publish import alert_stream, event_stream

    pcap = tmp_path / "a.pcap"
    n = make_capture(pcap, 6, seed=1, net=1)
    s = fleet_settings(tmp_path, own_redis.url, policy=policy_file, name="edge-r", retry_max_s=0.2)
    cfg = write_settings(tmp_path / "s.yaml", s)
    key = s.output.bus.alerts_key  # type: ignore[union-attr]
    before = alert_count(pg_dsn)
    own_redis.stop()
    assert read_in_process(pcap, cfg, tmp_path / "a.json") == 0  # Redis away: alerts and events spooled
    assert _spool_rows(tmp_path / "state", key) == n
    events = _spool_rows(tmp_path / "state", s.output.bus.events_key)  # type: ignore[union-attr]
    assert events > n
    own_redis.start()
    for out in (alert_stream(s.output, "edge-r", start=False), event_stream(s.output, "edge-r", start=False)):
        assert out.close(60)  # the sensor's next start drains its spools first
    bus = RedisBus(own_redis.url)
    got = [json.loads(f[b"eve"]) for _, f in bus.r.xrange(key)]
    assert bus.length(s.output.bus.events_key) == events  # type: ignore[union-attr]
    bus.close()
    eve = [json.loads(line) for line in (tmp_path / "a.json").read_text().splitlines()]
    assert [r["tapsift"]["alert_id"] for r in got] == [e["tapsift"]["alert_id"] for e in eve
                                                        if e["event_type"] == "alert"]  # in order
    ing = ingest_until_idle(s, pg_dsn)
    assert alert_count(pg_dsn) - before == n and ing.counters["duplicate"] == 0


def test_postgresql_down_the_ingester_retries_and_loses_nothing(postgres_server: PostgresServer, pg_dsn: str,
                                                                 redis_url: str, tmp_path: Path) -> None:
    from tests.fleet.test_ingest import publish, record

    s = fleet_settings(tmp_path, redis_url, retry_max_s=0.2)
    before = alert_count(pg_dsn)
    ing = Ingester(s, pg_dsn, relay_policy=False)
    stop = ing.start()
    try:
        publish(redis_url, s.output.bus.alerts_key, [record(i) for i in range(10)])  # type: ignore[union-attr]
        wait_for(lambda: ing.counters["inserted"] == 10, 60, "the first alerts")
        postgres_server.stop_process()
        try:
            publish(redis_url, s.output.bus.alerts_key, [record(i) for i in range(10, 30)])  # type: ignore[union-attr]
            wait_for(lambda: ing.consumers[0].counters["retries"] >= 3, 60, "the ingester to retry")
            assert _pending(redis_url, s.output.bus.alerts_key, INGEST_GROUP) > 0  # held, not acknowledged
        finally:
            assert postgres_server._launch()
        wait_for(lambda: ing.counters["inserted"] == 30, 60, "the ingester to catch up")
    finally:
        stop.set()
        ing.join()
        ing.close()
    assert alert_count(pg_dsn) - before == 30 and ing.counters["duplicate"] == 0


class _DieAfterCommit(Ingester):
    """An ingester killed (-9) between its store commit and its acknowledgement."""

    def handle(self, msgs: list[Any]) -> None:
        super().handle(msgs)
        os.kill(os.getpid(), signal.SIGKILL)


def test_kill_9_of_the_ingester_between_commit_and_ack(pg_dsn: str, redis_url: str, tmp_path: Path) -> None:
    from tests.fleet.test_ingest import publish, record

    s = fleet_settings(tmp_path, redis_url, batch=8, claim_idle_s=0.5)
    before = alert_count(pg_dsn)
    publish(redis_url, s.output.bus.alerts_key, [record(i) for i in range(20)])  # type: ignore[union-attr]

    def child() -> None:
        ing = _DieAfterCommit(s, pg_dsn, relay_policy=False)
        ing.consumers[0].consumer = "doomed"
        while True:
            ing.consumers[0].step()

    p = FORK.Process(target=child)
    p.start()
    p.join(120)
    assert p.exitcode == -signal.SIGKILL
    assert alert_count(pg_dsn) - before == 8  # its batch is committed ...
    assert _pending(redis_url, s.output.bus.alerts_key, INGEST_GROUP, "doomed") == 8  # ... and not acknowledged
    time.sleep(0.6)  # another ingester takes the batch over once idle for claim_idle_s
    ing = ingest_until_idle(s, pg_dsn)
    assert alert_count(pg_dsn) - before == 20
    assert ing.consumers[0].counters["claimed"] == 8 and ing.counters["duplicate"] == 8


def _slow_inspect(obj: Any) -> InspectionResult:
    time.sleep(3600)
    return InspectionResult()


def test_kill_9_of_a_worker_mid_job_and_a_slow_worker(redis_url: str, pg_dsn: str, tmp_path: Path,
                                                       policy_file: Path) -> None:
    pcap = tmp_path / "w.pcap"
    n = make_capture(pcap, 4, seed=3, net=3)
    s = fleet_settings(tmp_path, redis_url, policy=policy_file, name="edge-w", remote=True)
    s.inspection.remote.claim_idle_s = 1.0
    cfg = write_settings(tmp_path / "s.yaml", s)
    before = alert_count(pg_dsn)
    assert read_in_process(pcap, cfg, tmp_path / "eve.json") == 0
    key = f"{s.output.bus.jobs_key}:expensive:0"  # type: ignore[union-attr]

    def doomed() -> None:  # a worker that takes a job and never finishes it
        InspectWorker(s, "doomed", inspect=_slow_inspect).step(5.0)

    p = FORK.Process(target=doomed)
    p.start()
    wait_for(lambda: _pending(redis_url, key, s.inspection.remote.group, "doomed") == 1, 60, "the job to be taken")
    os.kill(p.pid, signal.SIGKILL)  # kill -9 mid-job
    p.join(30)
    # a slow worker: it takes a job, and another worker finishes that job before it does
    release = threading.Event()
    slow = InspectWorker(s, "slow", inspect=lambda obj: release.wait(120) and InspectionResult())
    t = threading.Thread(target=slow.step, args=(5.0,))
    t.start()
    wait_for(lambda: _pending(redis_url, key, s.inspection.remote.group, "slow") == 1, 60, "the slow worker's job")
    time.sleep(1.1)  # both held jobs are now idle for claim_idle_s
    good = InspectWorker(s, "good")
    good._next_recover = 0.0
    wait_for(lambda: good.step(0.2) is False and good.queue.depth("expensive") == 0
             and _pending(redis_url, key, s.inspection.remote.group, "good") == 0
             and good.counters["done"] == n, 120, "the good worker to do every job")
    release.set()
    t.join(60)
    assert slow.counters["lost_race"] == 1 and slow.counters["done"] == 0  # its results were dropped
    ing = ingest_until_idle(s, pg_dsn)
    assert alert_count(pg_dsn) - before == n and ing.counters["duplicate"] == 0
    ids = alert_ids(pg_dsn)
    assert len(ids) == len(set(ids))


def test_kill_9_of_a_sensor_and_its_restart(own_redis: RedisProcess, pg_dsn: str, tmp_path: Path,
                                            policy_file: Path) -> None:
    pcap = tmp_path / "k.pcap"
    n = make_capture(pcap, 30, seed=4, net=4)
    s = fleet_settings(tmp_path, own_redis.url, policy=policy_file, name="edge-k", retry_max_s=0.2)
    cfg = write_settings(tmp_path / "s.yaml", s)
    key = s.output.bus.alerts_key  # type: ignore[union-attr]
    before = alert_count(pg_dsn)
    own_redis.stop()
    proc = spawn_tapsift("read", str(pcap), "--config", str(cfg), "--eve", str(tmp_path / "eve.json"), "-q",
                         log=tmp_path / "sensor.log")
    wait_for(lambda: _spool_rows(tmp_path / "state", key) >= 5, 180, "alerts in the sensor's spool")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    spooled = _spool_rows(tmp_path / "state", key)
    assert 5 <= spooled <= n
    own_redis.start()
    assert read_in_process(pcap, cfg, tmp_path / "eve2.json") == 0  # restarted: the spool, then the capture again
    ing = ingest_until_idle(s, pg_dsn)
    assert alert_count(pg_dsn) - before == n
    assert ing.counters["inserted"] == n and ing.counters["duplicate"] == spooled  # the re-read's copies


def test_duplicate_delivery_is_stored_once(redis_url: str, pg_dsn: str, tmp_path: Path) -> None:
    from tests.fleet.test_ingest import publish, record

    s = fleet_settings(tmp_path, redis_url)
    key = s.output.bus.alerts_key  # type: ignore[union-attr]
    before = alert_count(pg_dsn)
    publish(redis_url, key, [record(i) for i in range(15)])
    bus = RedisBus(redis_url)
    again = [f for _, f in bus.r.xrange(key)]  # a batch whose XADD reply was lost is sent again
    bus.publish(key, [{k.decode(): v for k, v in f.items()} for f in again], 100_000)
    bus.close()
    ing = ingest_until_idle(s, pg_dsn)
    assert alert_count(pg_dsn) - before == 15
    assert (ing.counters["inserted"], ing.counters["duplicate"]) == (15, 15)
