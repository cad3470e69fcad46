"""The job queue on Redis Streams, the job payload, and a sensor's offer of expensive objects."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from appliance.bus.redis import RedisBus
from appliance.fleet.jobwire import decode_object, encode_object
from appliance.fleet.remote import RemoteOffload
from appliance.jobs.base import Job
from appliance.jobs.redis import RedisJobQueue
from appliance.model import ContentObject, Direction
from appliance.model.content import FlowRef, Link
from tests.fleet.conftest import fleet_settings


def _queue(url: str, consumer: str = "w1", **kw: Any) -> RedisJobQueue:
    kw.setdefault("claim_idle_s", 0.05)
    return RedisJobQueue(RedisBus(url), "jobs", consumer=consumer, **kw)


def _job(n: int, cls: str = "expensive", prio: int = 0, size: int = 10) -> Job:
    return Job(cls, prio, bytes([n % 256]) * size, {"content_id": f"F{n}"})


def test_an_object_survives_the_trip(tmp_path: Path) -> None:
    obj = ContentObject(
        id="F1", source="http", direction=Direction.TO_SERVER, ts_ns=5, size=4, md5="m", sha256="s",
        flow=FlowRef("C1", 7, "10.0.0.1", 1, "10.0.0.2", 80, "TCP", 0, "eth1", "office", "any"),
        parent_id=None, tx_id=3, declared_mime="text/plain", filename="a.txt", data=b"\x00\xffab",
        truncated=("body_limit",), anomalies=("x",), links=(Link("http://a", "b", True, "css"),),
        meta={"k": "v"}, text="née")
    back, mode = decode_object(encode_object(obj))
    assert back == obj and mode == "full"
    bad_kind = b'TSW1\x00\x00\x00\x0b{"t":"x"}  '
    for bad in (b"", b"TSW1", b"TSW1\x00\x00\x00\x02{}", encode_object(obj)[:-1], bad_kind):
        with pytest.raises(ValueError):
            decode_object(bad)


def test_priorities_classes_caps_and_counts(redis_url: str) -> None:
    q = _queue(redis_url, max_jobs=5, max_bytes=1000)
    assert q.put(_job(1, prio=1)) is None
    assert q.put(_job(2, prio=0)) is None
    assert q.put(_job(3, cls="cheap")) is None
    assert q.depth("expensive") == 2 and q.bytes_queued("expensive") > 20
    assert q.oldest_age("expensive", time.time_ns()) is not None and q.oldest_age("cheap", 0) is not None
    with pytest.raises(ValueError):
        q.put(_job(9, cls="nonsense"))
    assert q.put(_job(4, size=2000)) == "queue_full"  # the byte cap
    first = q.get(["cheap", "expensive"])
    assert first is not None and first.meta["content_id"] == "F3"  # the first class listed
    second = q.get(["expensive"])
    assert second is not None and second.meta["content_id"] == "F2"  # priority 0 before 1
    assert q.depth("expensive") == 1  # one waiting, one claimed
    for n in range(5, 8):
        assert q.put(_job(n)) is None
    assert q.put(_job(8)) == "queue_full"  # five jobs of the class in Redis (waiting or claimed)
    q.ack(second)
    assert q.put(_job(8)) is None
    q.ack(first)
    assert q.bytes_queued("cheap") == 0
    q.close()


def test_a_job_given_back_or_left_by_a_dead_worker_is_served_again(redis_url: str) -> None:
    q = _queue(redis_url, max_attempts=2)
    q.put(_job(1))
    j = q.get(["expensive"])
    assert j is not None
    q.nack(j)
    again = q.get(["expensive"])
    assert again is not None and again.meta == j.meta and again.attempts == 1
    # its worker dies: another recovers it once it has been idle long enough
    other = _queue(redis_url, consumer="w2", max_attempts=3)
    assert other.get(["expensive"]) is None
    time.sleep(0.1)
    assert other.recover() == []
    taken = other.get(["expensive"])
    assert taken is not None and taken.id == again.id and taken.attempts >= 1
    time.sleep(0.1)
    dead = _queue(redis_url, consumer="w3", max_attempts=2).recover()
    assert [d.id for d in dead] == [again.id]  # delivered too often: recorded as not inspected by the caller
    q.close()
    other.close()


def test_a_job_finished_by_two_workers_publishes_once(redis_url: str) -> None:
    q1, q2 = _queue(redis_url, "w1"), _queue(redis_url, "w2")
    q1.put(_job(1))
    j1 = q1.get(["expensive"])
    time.sleep(0.1)
    q2.recover()
    j2 = q2.get(["expensive"])
    assert j1 is not None and j2 is not None and j1.id == j2.id
    out = [("alerts", {"eve": b'{"n":1}'}), ("events", {"eve": b'{"n":2}'})]
    assert q2.finish(j2, out) is True
    assert q1.finish(j1, out) is False  # the slow worker: its results are dropped
    bus = RedisBus(redis_url)
    assert bus.length("alerts") == 1 and bus.length("events") == 1 and bus.length("jobs:expensive:0") == 0
    assert q1.bytes_queued("expensive") == 0
    bus.close()


def test_the_sensor_offers_what_fits_and_falls_back_for_the_rest(redis_url: str, tmp_path: Path) -> None:
    s = fleet_settings(tmp_path, redis_url, policy=tmp_path / "p.yaml", remote=True)
    s.inspection.remote.inline_max_bytes = 1024
    s.inspection.remote.max_backlog = 2
    events: list[dict] = []
    local: list[str] = []

    def obj(i: int, size: int) -> ContentObject:
        return ContentObject(f"F{i}", "http", Direction.TO_SERVER, None, 0, size, "m", "s", data=b"x" * size)

    off = RemoteOffload(s, events.append, lambda o: bool(local.append(o.id)) or len(local) < 3)
    assert off(obj(1, 10)) and off(obj(2, 10))  # offered
    assert off(obj(3, 2000))  # too large: inspected locally
    assert off(obj(4, 10))  # the workers are behind (two jobs waiting): locally too
    assert off(obj(5, 10))  # and the local pool is full: shed, with a record
    assert dict(off.counters) == {"offered": 2, "oversize": 1, "refused.queue_full": 2, "local": 2, "shed": 1}
    assert local == ["F3", "F4", "F5"]
    assert [(e["tapsift"]["content_id"], e["anomaly"]["reason"]) for e in events] == [("F5", "queue_full")]
    s.inspection.remote.oversize = "shed"
    nolocal = RemoteOffload(s, events.append)
    assert nolocal(obj(6, 5000))
    assert events[-1]["anomaly"]["reason"] == "too_large_for_remote"
    off.close()
    # Redis away: the local rules, counted as errors
    s.output.bus.url = f"unix://{tmp_path}/nowhere.sock"  # type: ignore[union-attr]
    away = RemoteOffload(s, events.append)
    assert away(obj(7, 10)) and away.counters["refused.error"] == 1 and events[-1]["anomaly"]["reason"] == "error"
