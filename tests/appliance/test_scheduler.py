"""Scheduling of inspection work, driven by a fake clock: lanes keep the cheap class timely under a
burst of expensive work, priorities order each class, budgets shed with records; and the job
queue's own guarantees (claims, caps, give-back after a consumer died, the shutdown spool)."""

from __future__ import annotations

import hashlib
import heapq
from pathlib import Path
from typing import Any

import pytest

from appliance.jobs.base import Job
from appliance.jobs.codec import FollowUpWork, ObjectWork, decode_work, encode_work
from appliance.jobs.local import ClassLimits, JobDirLocked, LocalJobQueue
from appliance.model import ContentObject, Direction, Finding, FlowRef
from appliance.model.alerts import Evidence
from appliance.scheduler import Lane, Priorities, PriorityRule, Scheduler, job_record, not_inspected_record

S = 1_000_000_000


class Clock:
    def __init__(self) -> None:
        self.t = 10**18  # wall-clock-like ns

    def __call__(self) -> int:
        return self.t


def _queue(tmp_path: Path, clock: Clock, *, cheap: int = 100_000, expensive: int = 100_000,
           spool: bool = True) -> LocalJobQueue:
    limits = {"cheap": ClassLimits(cheap, 1 << 30), "expensive": ClassLimits(expensive, 1 << 30)}
    q = LocalJobQueue(tmp_path / "jobs", limits,
                      spool_path=tmp_path / "jobs.spool" if spool else None, slots=8, clock=clock, refresh_s=0)
    q.open()
    return q


def _job(cls: str, n: int, prio: int = 1) -> Job:
    return Job(cls, prio, b"w%d" % n, {"n": n, "content_id": f"F{n}"})


# -- lanes and budgets ----------------------------------------------------------------------

def _simulate(tmp_path: Path, kinds: tuple[str, ...]) -> tuple[dict[str, list[int]], list[dict[str, Any]]]:
    """200 OCR jobs of 5 s each arrive at once, then a text object (10 ms of work) every 0.25 s
    for a minute; lanes of ``kinds`` work on them in simulated time. Returns the waits per class
    and the records of what was shed."""
    clock = Clock()
    q = _queue(tmp_path, clock)
    budgets = {"cheap": 2.0, "expensive": 30.0}
    costs = {"cheap": S // 100, "expensive": 5 * S}
    q.bind(1, "w0")
    for n in range(200):
        assert q.put(_job("expensive", n)) is None
    arrivals = [clock.t + k * S // 4 for k in range(240)]
    lanes = []
    for slot, kind in enumerate(kinds, start=2):
        lq = LocalJobQueue(q.root, q.limits, clock=clock, refresh_s=0, slots=8)
        lq._counts = q._counts  # the same shared counters, as after a fork
        lq.opened_ns = q.opened_ns
        lq.bind(slot, f"p{slot}")
        lanes.append({"sched": Scheduler(lq, Lane.make(kind), budgets, clock=clock), "free_at": clock.t})
    records: list[dict[str, Any]] = []
    waits: dict[str, list[int]] = {"cheap": [], "expensive": []}
    events = [(t, k) for k, t in enumerate(arrivals)]
    heapq.heapify(events)
    while True:
        busy = [lane["free_at"] for lane in lanes if lane["free_at"] > clock.t]
        if not events and not busy and not any(q.depth(c) for c in ("cheap", "expensive")):
            break
        clock.t = min([*([events[0][0]] if events else []), *busy], default=clock.t)
        while events and events[0][0] <= clock.t:
            _, k = heapq.heappop(events)
            assert q.put(_job("cheap", 10_000 + k)) is None
        for lane in lanes:
            if lane["free_at"] > clock.t:
                continue
            job = lane["sched"].next(records.append)
            if job is None:
                continue
            waits[job.cls].append(clock.t - job.enqueued_ns)
            lane["free_at"] = clock.t + costs[job.cls]
            lane["sched"].queue.ack(job)
    return waits, records


def test_a_burst_of_ocr_never_delays_text_beyond_its_budget(tmp_path: Path) -> None:
    """The cheap lane inspects every text object within its budget (here: at once) while the
    expensive lane works through the OCR in FIFO order and sheds, with records, what waited
    past the expensive budget."""
    waits, records = _simulate(tmp_path, ("cheap", "expensive"))
    assert len(waits["cheap"]) == 240 and max(waits["cheap"]) <= 2 * S
    shed = [r for r in records if r["anomaly"]["reason"] == "too_old"]
    assert shed and all(r["anomaly"]["class"] == "expensive" for r in shed)
    assert len(waits["expensive"]) + len(shed) == 200  # every OCR job inspected or recorded
    assert all(w <= 30 * S for w in waits["expensive"])


def test_without_a_cheap_lane_text_waits_for_the_ocr_in_hand(tmp_path: Path) -> None:
    """The contrast: one lane serving both classes, cheap first, still makes a text object wait
    for the 5-s OCR job it is busy with: past the 2-s budget, so text is shed."""
    _waits, records = _simulate(tmp_path, ("expensive",))
    assert any(r["anomaly"]["class"] == "cheap" and r["anomaly"]["reason"] == "too_old" for r in records)


def test_priorities_order_a_class_then_fifo(tmp_path: Path) -> None:
    clock = Clock()
    q = _queue(tmp_path, clock)
    q.bind(1, "w0")
    for n, prio in enumerate([1, 0, 1, 0, 2, 0]):
        clock.t += 1
        assert q.put(_job("expensive", n, prio)) is None
    q.bind(2, "p0")
    got = []
    while (job := q.get(["expensive"])) is not None:
        got.append((job.priority, job.meta["n"]))
        q.ack(job)
    assert got == [(0, 1), (0, 3), (0, 5), (1, 0), (1, 2), (2, 4)]


def test_priority_rules() -> None:
    flow = FlowRef("C1", 1, "10.20.0.5", 40000, "192.0.2.9", 80, "TCP", 0, "", "office", "any")
    up = ContentObject("F1", "http", Direction.TO_SERVER, flow, 0, 1, "", "")
    down = ContentObject("F2", "http", Direction.TO_CLIENT, flow, 0, 1, "", "")
    default = Priorities()
    assert (default.of(up), default.of(down)) == (0, 1)  # uploads first by default
    rules = Priorities([PriorityRule(2, source_zone="office", direction="upload"),
                        PriorityRule(0, direction="download")], default=5)
    assert (rules.of(up), rules.of(down)) == (2, 0)
    dmz = FlowRef("C2", 2, "10.30.0.5", 40000, "192.0.2.9", 80, "TCP", 0, "", "dmz", "any")
    assert rules.of(ContentObject("F3", "http", Direction.TO_SERVER, dmz, 0, 1, "", "")) == 5


def test_a_cheap_lane_never_takes_expensive_work_an_expensive_lane_helps_with_cheap(tmp_path: Path) -> None:
    clock = Clock()
    q = _queue(tmp_path, clock)
    q.bind(1, "w0")
    assert q.put(_job("expensive", 1)) is None
    cheap = Scheduler(q, Lane.make("cheap"), {"cheap": 60, "expensive": 60}, clock=clock)
    assert cheap.next(lambda r: None) is None
    assert q.put(_job("cheap", 2)) is None
    exp = Scheduler(q, Lane.make("expensive"), {"cheap": 60, "expensive": 60}, clock=clock)
    first = exp.next(lambda r: None)
    second = exp.next(lambda r: None)
    assert first is not None and second is not None and (first.cls, second.cls) == ("cheap", "expensive")


def test_too_old_jobs_are_shed_with_their_record_restored_ones_never(tmp_path: Path) -> None:
    clock = Clock()
    q = _queue(tmp_path, clock)
    q.bind(1, "w0")
    assert q.put(_job("cheap", 1)) is None
    clock.t += 11 * S
    assert q.put(_job("cheap", 2)) is None
    sched = Scheduler(q, Lane.make("cheap"), {"cheap": 10}, clock=clock)
    records: list[dict[str, Any]] = []
    job = sched.next(records.append)
    assert job is not None and job.meta["n"] == 2
    assert [(r["anomaly"]["reason"], r["anomaly"]["class"], r["tapsift"]["content_id"]) for r in records] == [
        ("too_old", "cheap", "F1")]
    assert sched.counters["shed.cheap.too_old"] == 1
    # a job from before this queue was opened (the previous run's spool) is inspected, however old
    q.ack(job)
    assert q.put(_job("cheap", 3)) is None
    q.shutdown()
    q.close()
    clock.t += 3600 * S
    q2 = _queue(tmp_path, clock)
    q2.bind(2, "p0")
    sched2 = Scheduler(q2, Lane.make("cheap"), {"cheap": 10}, clock=clock)
    job = sched2.next(records.append)
    assert job is not None and job.meta["n"] == 3 and job.restored and len(records) == 1


def test_not_inspected_record_names_class_and_reason() -> None:
    flow = FlowRef("C1", 1, "10.0.0.1", 40000, "192.0.2.9", 80, "TCP", 0, "")
    obj = ContentObject("F9", "http", Direction.TO_SERVER, flow, 0, 3, "x", "y")
    ev = not_inspected_record(obj, "expensive", "queue_full", partial=True)
    assert ev["event_type"] == "anomaly" and ev["src_ip"] == "10.0.0.1" and "timestamp" in ev
    assert ev["tapsift"]["content_id"] == "F9"
    assert ev["anomaly"] == {"type": "inspection", "event": "not_inspected", "reason": "queue_full",
                             "class": "expensive", "partial": True}
    # a job whose payload cannot be read still leaves a record, from its meta
    job = Job("cheap", 1, b"damaged", {"content_id": "F8", "md5": "m", "size": 3})
    ev = job_record(job, "error")
    assert ev["tapsift"] == {"content_id": "F8", "md5": "m", "size": 3} and ev["anomaly"]["class"] == "cheap"
    assert job_record(Job("cheap", 1, encode_work(ObjectWork(obj)), {}), "too_old")["src_ip"] == "10.0.0.1"


# -- the local job queue --------------------------------------------------------------------

def test_caps_refuse_without_blocking(tmp_path: Path) -> None:
    clock = Clock()
    q = _queue(tmp_path, clock, cheap=2)
    q.bind(1, "w0")
    assert [q.put(_job("cheap", n)) for n in range(3)] == [None, None, "queue_full"]
    assert q.depth("cheap") == 2
    q.bind(2, "p0")
    job = q.get(["cheap"])
    assert job is not None and q.depth("cheap") == 1  # claimed jobs leave the count
    q.bind(1, "w0")
    assert q.put(_job("cheap", 4)) is None


def test_two_consumers_never_get_the_same_job(tmp_path: Path) -> None:
    clock = Clock()
    q = _queue(tmp_path, clock)
    q.bind(1, "w0")
    for n in range(50):
        q.put(_job("cheap", n))
    a = LocalJobQueue(q.root, q.limits, clock=clock, refresh_s=10, slots=8)
    b = LocalJobQueue(q.root, q.limits, clock=clock, refresh_s=10, slots=8)
    a.bind(2, "pa")
    b.bind(3, "pb")
    seen: list[int] = []
    for _ in range(50):  # both list the same files; a claim is a rename, so only one wins each
        for c in (a, b):
            job = c.get(["cheap"])
            if job is not None:
                seen.append(job.meta["n"])
                c.ack(job)
    assert sorted(seen) == list(range(50))


def test_a_dead_consumers_jobs_come_back_then_are_recorded(tmp_path: Path) -> None:
    clock = Clock()
    q = _queue(tmp_path, clock)
    q.bind(1, "w0")
    q.put(_job("expensive", 7))
    for attempt in range(1, q.max_attempts + 1):
        q.bind(2, "p0")
        job = q.get(["expensive"])
        assert job is not None and job.attempts == attempt - 1
        # p0 is killed holding it; its successor gives it back
        q.bind(2, "p0")
        dead = q.recover("p0")
        if attempt < q.max_attempts:
            assert dead == [] and q.depth("expensive") == 1
    assert [j.meta["n"] for j in dead] == [7]  # it killed its consumer every time: recorded, not retried
    q.ack(dead[0])
    assert q.get(["expensive"]) is None and not list((q.root / "claimed" / "p0").iterdir())


def test_spool_keeps_queued_and_claimed_jobs_and_is_bounded(tmp_path: Path) -> None:
    clock = Clock()
    q = _queue(tmp_path, clock)
    q.bind(1, "w0")
    for n in range(10):
        q.put(_job("cheap" if n % 2 else "expensive", n, prio=n % 3))
    q.bind(2, "p0")
    held = q.get(["cheap"])  # claimed by a consumer that did not finish
    assert held is not None
    q.bind(0, "sup")
    assert q.shutdown() == []
    q.close()
    assert not list(q.root.glob("ready/*/*/*.job")) and (tmp_path / "jobs.spool").exists()
    q2 = _queue(tmp_path, clock)
    assert q2.depth("cheap") + q2.depth("expensive") == 10 and not (tmp_path / "jobs.spool").exists()
    # a spool cap keeps what fits and returns the rest to be recorded
    q2.spool_bytes = 3 * (held.size + 8)
    refused = q2.shutdown()
    q2.close()
    assert len(refused) == 7
    q3 = _queue(tmp_path, clock)
    assert q3.depth("cheap") + q3.depth("expensive") == 3


def test_one_sensor_per_job_directory(tmp_path: Path) -> None:
    clock = Clock()
    q = _queue(tmp_path, clock)
    with pytest.raises(JobDirLocked):
        _queue(tmp_path, clock)
    q.close()
    _queue(tmp_path, clock).close()


# -- work items -----------------------------------------------------------------------------

def test_work_items_round_trip_without_pickle() -> None:
    flow = FlowRef("C1", 1, "10.0.0.2", 40000, "192.0.2.9", 80, "TCP", 7, "eth1", "office", "any")
    data = "夜鹰计划 \udcff".encode("utf-8", "surrogatepass") + bytes(range(256))
    obj = ContentObject("F1", "http", Direction.TO_SERVER, flow, 123, len(data), hashlib.md5(data).hexdigest(),
                        hashlib.sha256(data).hexdigest(), declared_mime="text/plain", data=data,
                        truncated=("gap",), anomalies=("x",), meta={"charset": "utf-8"}, filename="a.txt")
    assert decode_work(encode_work(ObjectWork(obj, "cheap"))) == ObjectWork(obj, "cheap")
    f = Finding("keyword", "F1c1", "projects", 10.0, (Evidence(1, 5, "Proj", ""),), {"child": "F1c1"})
    fu = FollowUpWork(obj, [obj], [obj], [f], ["leak"])
    assert decode_work(encode_work(fu)) == fu
    with pytest.raises(ValueError):
        decode_work(b"\x80\x04pickle")


def test_a_lane_whose_supervisor_died_keeps_its_job_for_the_next_start(tmp_path: Path) -> None:
    """After a kill -9 of the supervisor, a pool process's results reach no alert writer: the
    job in hand is not acknowledged (it stays claimed), the lane takes no more, and the next
    start gives both back to be inspected."""
    from appliance.inspection import InspectionResult
    from appliance.scheduler import Outputs, serve

    clock = Clock()
    q = _queue(tmp_path, clock)
    q.bind(1, "w0")
    flow = FlowRef("C1", 1, "10.0.0.2", 40000, "192.0.2.9", 80, "TCP", 7, "eth1", "office", "any")
    for n in range(2):
        data = b"page %d" % n
        obj = ContentObject(f"F{n}", "http", Direction.TO_CLIENT, flow, 123, len(data), hashlib.md5(data).hexdigest(),
                            hashlib.sha256(data).hexdigest(), declared_mime="text/plain", data=data)
        assert q.put(Job("cheap", 1, encode_work(ObjectWork(obj, "cheap")), {"content_id": obj.id})) is None
    alive = [True]
    inspected: list[str] = []

    class Stage:
        def inspect(self, obj: ContentObject, now_ns: int, mode: str = "full") -> InspectionResult:
            inspected.append(obj.id)
            alive[0] = False  # the supervisor is killed while this object is inspected
            return InspectionResult()

    q.bind(2, "p0")
    out = Outputs(lambda ev: None, lambda rec, ts: None, reachable=lambda: alive[0])
    serve(q, Scheduler(q, Lane.make("cheap"), {"cheap": 60.0}, clock=clock), Stage, out, lambda: False,
          sleep=lambda s: None)
    assert inspected == ["F0"] and q.depth("cheap") == 1
    q.bind(0, "sup")
    assert q.shutdown() == []
    q.close()
    again = _queue(tmp_path, clock)  # the next start: the claimed job and the waiting one
    assert again.depth("cheap") == 2
