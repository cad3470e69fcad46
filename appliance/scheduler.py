"""Inspection scheduling: cost classes, priorities, time budgets, and the inspection processes' loop.

Producers (the capture workers) decide each object's **cost class** (`InspectionStage.cost_class`:
``cheap`` when its extraction and every inspector that may look at it are cheap, at its size)
and its **priority** (`Priorities`: by default uploads before downloads; rules per zone pair in
``inspection.priorities``), and put a job on the queue (`JobOffer`); nothing waits.

Consumers are **lanes**: a cheap lane takes only cheap jobs, so a burst of OCR never delays a
keyword scan of a page; an expensive lane takes cheap jobs first when there are any (it helps a
cheap backlog) and expensive ones otherwise. Within a class the queue serves the lowest priority
number first, then the oldest. A job that waited longer than its class's **budget**
(``live.cheap_budget_s``, generous; ``live.expensive_budget_s``) is shed with a ``not_inspected``
record (reason ``too_old``) instead of being inspected late; jobs restored from the previous
run's spool are inspected first and never shed as too old.

A cheap pass that finds expensive children (the images of a DOCX to OCR) reports the object's
cheap findings at once and puts the rest on the expensive queue (`FollowUpWork`).

Every shed job leaves a record naming its class and reason (``queue_full``, ``spool_full``,
``too_old``, ``crashed``, ``error``, ``shutdown``); `Scheduler` and `serve` take the clock as a
parameter, so the tests drive them with a fake one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.jobs.base import CLASSES, Job, JobQueue
from appliance.jobs.codec import FollowUpWork, ObjectWork, decode_work, encode_work
from appliance.model import ContentObject

log = logging.getLogger("tapsift.scheduler")

__all__ = ["JobOffer", "Lane", "Outputs", "PriorityRule", "Priorities", "Scheduler", "exit_after", "inspect_job",
           "job_meta", "job_record", "not_inspected_record", "serve", "shed_counts"]

REASONS = ("queue_full", "spool_full", "too_old", "crashed", "error", "shutdown")
"""Why a job is shed (the ``reason`` of its ``not_inspected`` record)."""


# --------------------------------------------------------------------------------------------
# priorities
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PriorityRule:
    """Objects of this zone pair and direction get ``priority`` (0 first); ``None`` matches any."""

    priority: int
    source_zone: str | None = None
    destination_zone: str | None = None
    direction: str | None = None
    """``upload`` (client to server) or ``download``."""

    def matches(self, src: str, dst: str, direction: str) -> bool:
        return ((self.source_zone is None or self.source_zone == src)
                and (self.destination_zone is None or self.destination_zone == dst)
                and (self.direction is None or self.direction == direction))


class Priorities:
    """The first matching rule's priority, else ``default`` (see `DEFAULT_RULES`)."""

    DEFAULT_RULES = (PriorityRule(0, direction="upload"),)
    """Uploads (data leaving through the client) before downloads."""

    def __init__(self, rules: Sequence[PriorityRule] | None = None, default: int = 1) -> None:
        self.rules = tuple(rules) if rules is not None else self.DEFAULT_RULES
        self.default = default
        self._memo: dict[tuple[str, str, str], int] = {}

    def of(self, obj: ContentObject) -> int:
        f = obj.flow
        key = (f.src_zone if f is not None else "any", f.dst_zone if f is not None else "any", obj.direction.label)
        got = self._memo.get(key)
        if got is None:
            got = next((r.priority for r in self.rules if r.matches(*key)), self.default)
            if len(self._memo) < 4096:
                self._memo[key] = got
        return got


# --------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------

def job_meta(obj: ContentObject) -> dict[str, Any]:
    """What a job says about its object without decoding the payload (kept small: it is
    written with every job)."""
    return {"content_id": obj.id, "md5": obj.md5, "size": obj.size}


def not_inspected_record(obj: ContentObject | Mapping[str, Any], cls: str, reason: str, *,
                         partial: bool = False) -> dict[str, Any]:
    """The ``not_inspected`` anomaly record of an object (or, when only a job's ``meta`` is
    left, of its content id and hashes), naming the cost class and why (wall-clock time: the
    shedding happens now, not at the object's packet time)."""
    from appliance.eve import eve_timestamp, not_inspected_event

    if isinstance(obj, ContentObject):
        ev = not_inspected_event(obj, reason)
    else:
        ev = {"timestamp": eve_timestamp(time.time_ns()), "event_type": "anomaly",
              "tapsift": {k: obj[k] for k in ("content_id", "md5", "size") if k in obj}}
    an = ev.setdefault("anomaly", {})
    an.update(type="inspection", event="not_inspected", reason=reason, **{"class": cls})
    if partial:
        an["partial"] = True  # the cheap part was inspected; this is the expensive rest
    return ev


def job_record(job: Job, reason: str) -> dict[str, Any]:
    """The record of a shed job: from its object when the payload decodes, else from its meta."""
    try:
        obj: ContentObject | Mapping[str, Any] = decode_work(job.payload).obj
    except ValueError:
        obj = job.meta
    return not_inspected_record(obj, job.cls, reason, partial=bool(job.meta.get("partial")))


def shed_counts(counters: Mapping[str, int]) -> int:
    """Jobs shed, from counters named ``shed.<class>.<reason>``."""
    return sum(v for k, v in counters.items() if k.startswith("shed."))


# --------------------------------------------------------------------------------------------
# producer side
# --------------------------------------------------------------------------------------------

class JobOffer:
    """Puts an object's inspection on the queue without waiting: `__call__` returns None when
    queued, else the reason it was refused (the caller writes the record)."""

    def __init__(self, queue: JobQueue, priorities: Priorities, counters: Counter[str] | None = None) -> None:
        self.queue = queue
        self.priorities = priorities
        self.counters: Counter[str] = counters if counters is not None else Counter()

    def __call__(self, obj: ContentObject, cls: str) -> str | None:
        mode = "cheap" if cls == "cheap" else "full"
        try:
            payload = encode_work(ObjectWork(obj, mode))
        except (TypeError, ValueError) as exc:
            log.error("cannot encode %s for inspection: %s", obj.id, exc)
            return "error"
        reason = self.queue.put(Job(cls, self.priorities.of(obj), payload, job_meta(obj)))
        if reason is None:
            self.counters[f"offered.{cls}"] += 1
        else:
            self.counters[f"shed.{cls}.{reason}"] += 1
        return reason


# --------------------------------------------------------------------------------------------
# consumer side
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Lane:
    """What an inspection process serves, in order: ``("cheap",)`` or ``("cheap", "expensive")``."""

    name: str
    serves: tuple[str, ...]

    @classmethod
    def make(cls, kind: str) -> Lane:
        return cls(kind, ("cheap",) if kind == "cheap" else CLASSES)


class Scheduler:
    """Hands a lane its next job; sheds the too-old ones on the way (`next`)."""

    def __init__(self, queue: JobQueue, lane: Lane, budgets: Mapping[str, float],
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.queue = queue
        self.lane = lane
        self.budgets_ns = {c: int(b * 1e9) for c, b in budgets.items()}
        self.clock = clock
        self.counters: Counter[str] = Counter()

    def next(self, record: Callable[[dict[str, Any]], None]) -> Job | None:
        """The next job this lane should inspect, or None when its classes are empty. Jobs that
        waited past their class budget are acked with a ``too_old`` record (via ``record``)."""
        while True:
            job = self.queue.get(self.lane.serves)
            if job is None:
                return None
            budget = self.budgets_ns.get(job.cls, 0)
            if budget and not job.restored and self.clock() - job.enqueued_ns > budget:
                self.shed(job, "too_old", record)
                continue
            return job

    def shed(self, job: Job, reason: str, record: Callable[[dict[str, Any]], None]) -> None:
        """Drop ``job`` with its record (claimed jobs only: it is acked)."""
        self.counters[f"shed.{job.cls}.{reason}"] += 1
        record(job_record(job, reason))
        self.queue.ack(job)


class Orphaned(Exception):
    """The process that takes this lane's results is gone: stop, leave the job in hand claimed."""


class Outputs:
    """Where a lane's results go (a capture worker's `_Outbox` in the sensor, lists in tests).
    ``reachable`` (optional) says whether they still reach the alert writer: when it turns false
    the job in hand is not acknowledged (`Orphaned`), so the next start inspects it again."""

    def __init__(self, event: Callable[[dict[str, Any]], None], alert: Callable[[dict[str, Any], int], None],
                 suppressed: Callable[[str], None] | None = None,
                 reachable: Callable[[], bool] | None = None) -> None:
        self.event = event
        self.alert = alert
        self.suppressed = suppressed
        self.reachable = reachable


def inspect_job(job: Job, stage: Any, sched: Scheduler, out: Outputs, offer_followup: Callable[[Job], str | None],
                clock: Callable[[], int] = time.time_ns) -> None:
    """Inspect one claimed job and write its results; the job is acked (or shed) when this returns."""
    from appliance.eve import eve_timestamp, fileinfo_event
    from appliance.outputs.alertjson import alert_record

    try:
        work = decode_work(job.payload)
    except ValueError as exc:
        log.error("job %s: %s", job.id, exc)
        sched.shed(job, "error", out.event)
        return
    obj = work.obj
    try:
        if isinstance(work, FollowUpWork):
            res = stage.follow_up(work, obj.ts_ns)
        else:
            res = stage.inspect(obj, obj.ts_ns, mode=work.mode)
    except Exception:  # InspectionStage never raises; this is the last guard
        log.exception("inspection of %s failed", obj.id)
        sched.shed(job, "error", out.event)
        return
    sched.counters[f"inspected.{job.cls}"] += 1
    for child in res.children:
        out.event(fileinfo_event(child))
    now = clock()
    info = {"class": job.cls, "priority": job.priority, "waited_ms": max(0, (now - job.enqueued_ns) // 1_000_000),
            "done": eve_timestamp(now), "cached": res.cached}
    sched.counters["alerts"] += len(res.alerts)
    for alert, target in res.alerts:
        rec = alert_record(alert, target)
        rec.setdefault("tapsift", {})["inspection"] = info
        out.alert(rec, alert.ts_ns)
    if out.suppressed is not None:
        for sup in res.suppressed:
            out.suppressed(sup.first_id)
    if res.followup is not None:
        meta = {**job.meta, "partial": True}
        rest = Job("expensive", job.priority, encode_work(res.followup), meta, enqueued_ns=job.enqueued_ns)
        reason = offer_followup(rest)
        if reason is None:
            sched.counters["offered.expensive"] += 1
        else:
            sched.counters[f"shed.expensive.{reason}"] += 1
            out.event(not_inspected_record(obj, "expensive", reason, partial=True))
    if out.reachable is not None and not out.reachable():
        raise Orphaned(job.id)  # its alerts may not have reached the writer: keep the claim
    sched.queue.ack(job)


def serve(queue: JobQueue, sched: Scheduler, stage: Callable[[], Any], out: Outputs, stop: Callable[[], bool], *,
          tick: Callable[[], None] | None = None, drain_s: float = 10.0, idle_s: float = 0.5,
          poll_s: float = 0.02, sleep: Callable[[float], None] = time.sleep,
          monotonic: Callable[[], float] = time.monotonic,
          watchdog: Callable[[float], None] | None = None) -> None:
    """The loop of one inspection process: take jobs (`Scheduler.next`), inspect them
    (`inspect_job`), call ``tick`` between jobs (counters, reloads); ``stage()`` gives the
    inspection stage (made on first use). After ``stop()`` it keeps inspecting until the queue
    has been empty for ``idle_s`` or ``drain_s`` passed; what is left stays queued (the sensor
    spools it). ``watchdog(seconds)`` (the sensor passes `exit_after`) ends the process if one job
    holds it past the drain (its job stays claimed: the spool keeps it)."""
    stopping_at: float | None = None
    idle_since: float | None = None
    while True:
        if out.reachable is not None and not out.reachable():
            log.warning("the sensor's supervisor is gone: queued jobs stay for the next start")
            return
        if tick is not None:
            tick()
        now = monotonic()
        if stopping_at is None and stop():
            stopping_at = now
            if watchdog is not None:
                watchdog(drain_s + 1.0)
        if stopping_at is not None and now - stopping_at >= drain_s:
            return
        job = sched.next(out.event)
        if job is None:
            if stopping_at is not None:
                idle_since = now if idle_since is None else idle_since
                if now - idle_since >= idle_s:
                    return
            sleep(poll_s)
            continue
        idle_since = None
        try:
            inspect_job(job, stage(), sched, out, queue.put, sched.clock)
        except Orphaned:
            log.warning("the sensor's supervisor is gone: job %s stays claimed for the next start", job.id)
            return


def exit_after(seconds: float) -> None:
    """End this process after ``seconds`` (a job that outlives the drain must not make the
    supervisor kill the pool: its job stays claimed and goes to the spool)."""

    def fire() -> None:
        log.warning("inspection still busy at the end of the drain: leaving the job for the spool")
        logging.shutdown()
        os._exit(0)

    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()
