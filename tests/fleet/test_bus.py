"""The bus on a real redis-server: publishing, groups, claiming, trimming, the sensors' spooled output."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from appliance.bus.base import BusError
from appliance.bus.publish import BackPressure, StreamOutput
from appliance.bus.redis import RedisBus, redacted
from tests.fleet.conftest import RedisProcess, wait_for


def _entries(n: int, start: int = 0) -> list[dict[str, bytes | str]]:
    return [{"eve": json.dumps({"n": i}), "sensor": "s1"} for i in range(start, start + n)]


def test_a_group_reads_each_entry_once_and_a_dead_consumers_entries_are_claimed(redis_url: str) -> None:
    bus = RedisBus(redis_url)
    bus.ensure_group("s", "g")
    bus.ensure_group("s", "g")  # idempotent
    ids = bus.publish("s", _entries(5), maxlen=1000)
    assert len(ids) == 5 and bus.length("s") == 5
    a = bus.read_group(["s"], "g", "a", 3, 0.1)
    b = bus.read_group(["s"], "g", "b", 10, 0.1)
    assert [m.json()["n"] for m in a] == [0, 1, 2] and [m.json()["n"] for m in b] == [3, 4]
    assert all(m.sensor == "s1" for m in a + b)
    assert bus.read_group(["s"], "g", "b", 10, 0.05) == []
    assert bus.ack("s", "g", [m.id for m in b]) == 2
    # "a" dies without acknowledging: its own entries come back to it after a restart ...
    assert [m.id for m in bus.read_group(["s"], "g", "a", 10, 0, own=True)] == [m.id for m in a]
    # ... or another consumer takes them once they have been idle long enough
    assert bus.claim_stale("s", "g", "b", idle_s=60, count=10) == []
    time.sleep(0.05)
    claimed = bus.claim_stale("s", "g", "b", idle_s=0.01, count=10)
    assert sorted(m.id for m in claimed) == sorted(m.id for m in a)
    assert bus.ack("s", "g", [m.id for m in claimed]) == 3
    assert bus.groups("s")[0]["pending"] == 0
    bus.close()


def test_trimming_keeps_what_some_group_still_needs(redis_url: str) -> None:
    bus = RedisBus(redis_url)
    assert bus.trim_consumed("s") == 0  # no stream, no group
    bus.ensure_group("s", "fast")
    bus.ensure_group("s", "slow")
    bus.publish("s", _entries(10), maxlen=1000)
    fast = bus.read_group(["s"], "fast", "c", 10, 0.1)
    bus.ack("s", "fast", [m.id for m in fast])
    slow = bus.read_group(["s"], "slow", "c", 4, 0.1)
    assert bus.trim_consumed("s") == 0  # "slow" has not acknowledged its first entry
    bus.ack("s", "slow", [m.id for m in slow[:2]])
    assert bus.trim_consumed("s") == 2  # its oldest pending entry is the third
    bus.ack("s", "slow", [m.id for m in slow[2:]])
    assert bus.trim_consumed("s") == 2 and bus.length("s") == 6  # the six "slow" has not read yet
    assert bus.oldest_age_s("s", "slow") >= 0 and bus.oldest_age_s("s", "fast") == 0
    bus.close()


def test_a_group_comes_back_after_redis_lost_it(own_redis: RedisProcess) -> None:
    bus = RedisBus(own_redis.url)
    bus.ensure_group("s", "g")
    bus.r.delete("s")  # as a Redis without persistence that restarted
    bus.publish("s", _entries(2), maxlen=100)
    assert len(bus.read_group(["s"], "g", "c", 10, 0.1)) == 2  # NOGROUP → the group is made again
    bus.close()


def test_errors_name_the_server_without_its_password(tmp_path: Path) -> None:
    assert redacted("redis://sensor:s3cret@redis.example:6380/0") == "redis://sensor:***@redis.example:6380/0"
    bus = RedisBus(f"unix://{tmp_path}/none.sock", password="s3cret", timeout_s=1)
    with pytest.raises(BusError) as exc:
        bus.ping()
    assert "none.sock" in str(exc.value) and "s3cret" not in str(exc.value)
    with pytest.raises(BusError):
        RedisBus("redis://localhost:1/0", ca_file="/etc/ssl/certs/ca-certificates.crt")


# --------------------------------------------------------------------------- the sensor's output


def _output(url: str, spool: Path, stream: str = "alerts", maxlen: int = 1000,
            max_spool: int = 1 << 20) -> StreamOutput:
    return StreamOutput(lambda: RedisBus(url, timeout_s=1), stream, "edge-1", spool, maxlen=maxlen,
                        max_spool_bytes=max_spool, batch=16)


def _stream(url: str, stream: str = "alerts") -> list[dict]:
    bus = RedisBus(url)
    try:
        return [json.loads(f[b"eve"]) for _, f in bus.r.xrange(stream)]
    finally:
        bus.close()


def test_redis_down_the_sensor_spools_in_order_and_catches_up(own_redis: RedisProcess, tmp_path: Path) -> None:
    out = _output(own_redis.url, tmp_path / "spool")
    for i in range(10):
        out.send({"event_type": "alert", "n": i, "tapsift": {"alert_id": f"A{i}"}})
    assert out.pump() == 10
    own_redis.stop()
    for i in range(10, 40):
        assert out.send({"event_type": "alert", "n": i, "tapsift": {"alert_id": f"A{i}"}})
    assert out.pump() == 0 and len(out.spool) == 30 and out.errors == 1  # nothing lost: on disk, in order
    out.spool.close()
    # the sensor is restarted meanwhile: the new process finds the spool
    out = _output(own_redis.url, tmp_path / "spool")
    assert len(out.spool) == 30
    own_redis.start()  # the same data (append-only file): the first ten are still there
    assert out.flush(30)
    got = _stream(own_redis.url)
    assert [r["n"] for r in got] == list(range(40))
    assert all(r["tapsift"]["sensor"] == "edge-1" for r in got)
    out.close(0)


def test_a_full_stream_holds_the_sensor_back_and_a_full_spool_drops_counting(redis_url: str, tmp_path: Path) -> None:
    out = _output(redis_url, tmp_path / "spool", stream="eve", maxlen=1000, max_spool=4000)
    bus = RedisBus(redis_url)
    bus.publish("eve", _entries(950), maxlen=100_000)  # a backlog at 95 % of maxlen: consumers are behind
    lines = [json.dumps({"event_type": "fileinfo", "n": i, "pad": "x" * 80}) for i in range(60)]
    assert out.send_lines(lines) < 60  # the spool holds 4000 bytes: the rest is refused ...
    assert out.spool.dropped_full == 60 - len(out.spool) > 0  # ... and counted
    n, err = out._pump()
    assert n == 0 and isinstance(err, BackPressure) and out.held_back == 1
    assert bus.length("eve") == 950  # nothing trimmed away unread
    bus.r.xtrim("eve", maxlen=0)  # the consumers caught up
    assert out.flush(10)
    kept = 60 - out.spool.dropped_full
    assert out.delivered == kept  # the oldest lines, in order
    assert [json.loads(f[b"eve"])["n"] for _, f in bus.r.xrange("eve")] == list(range(kept))
    out.close(0)
    bus.close()


def test_the_spool_drains_from_its_thread(redis_url: str, tmp_path: Path) -> None:
    out = _output(redis_url, tmp_path / "spool")
    out.start()
    for i in range(50):
        out.send({"event_type": "alert", "n": i, "tapsift": {}})
    wait_for(lambda: len(_stream(redis_url)) == 50, 30, "the spool to drain")
    assert out.close(5)
