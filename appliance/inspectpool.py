"""The live sensor's inspection pool: lanes of processes over one job queue.

`InspectionPool.from_settings` sizes it: ``live.cheap_workers`` cheap lanes (cheap work only)
and ``live.inspect_workers`` expensive lanes (``auto``: the cores the capture workers leave, at
least one), over a `LocalJobQueue` in ``live.job_dir``. The supervisor opens it before forking
(`open`: the previous run's spool and leftovers come back first), gives each capture worker a
`JobOffer` (`offer`), runs `run_lane` in each pool process, reads `stats` for its snapshot
and calls `shutdown` last (spool what is still queued).

Alert ids stay unique across processes: capture worker i of W numbers i+1, i+1+(W+K), …; pool
process k of K numbers W+k+1, … (its child objects get the prefix ``F<W+k>x``).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from appliance.jobs.base import CLASSES, JobQueue
from appliance.jobs.local import ClassLimits, LocalJobQueue, default_job_dir
from appliance.scheduler import (
    JobOffer,
    Lane,
    Outputs,
    Priorities,
    PriorityRule,
    Scheduler,
    exit_after,
    job_record,
    serve,
    shed_counts,
)
from appliance.settings import Settings

log = logging.getLogger("tapsift.pool")

__all__ = ["InspectionPool", "auto_workers", "inspection_snapshot", "priorities_from", "record_all"]


def auto_workers(cpus: int, capture_workers: int) -> int:
    """``inspect_workers: auto``: the cores the capture workers leave, at least 1."""
    return max(1, cpus - capture_workers)


def priorities_from(settings: Settings) -> Priorities:
    """The priority rules of ``inspection.priorities``."""
    ins = settings.inspection
    return Priorities([PriorityRule(r.priority, r.source_zone, r.destination_zone, r.direction)
                       for r in ins.priorities], ins.default_priority)


class InspectionPool:
    """Lanes (one process each) over ``queue``; see the module doc."""

    def __init__(self, settings: Settings, queue: JobQueue, lanes: list[Lane], capture_workers: int) -> None:
        self.settings = settings
        self.queue = queue
        self.lanes = lanes
        self.capture_workers = capture_workers
        live = settings.live
        self.budgets = {"cheap": live.cheap_budget_s, "expensive": live.expensive_budget_s}
        self.priorities = priorities_from(settings)
        self.drain_s = max(1.0, live.shutdown_timeout_s - 5.0)
        """At shutdown, how long the pool keeps inspecting before what is left is spooled."""
        self.counters: Counter[str] = Counter()
        """The supervisor's own sheds (jobs that crashed their consumer, a spool too small)."""
        self.pending: list[dict[str, Any]] = []
        """Records the supervisor writes (from `open` and `shutdown`)."""

    @property
    def processes(self) -> int:
        return len(self.lanes)

    @classmethod
    def from_settings(cls, settings: Settings, capture_workers: int, cpus: int | None = None) -> InspectionPool | None:
        """The pool of a sensor with a policy (None without one, or with ``inspect_workers: 0``)."""
        live = settings.live
        if not settings.inspection.policy:
            return None
        n = live.inspect_workers
        if n == "auto":
            n = auto_workers(cpus or os.cpu_count() or 1, capture_workers)
        if n == 0:
            return None
        lanes = [Lane.make("cheap") for _ in range(live.cheap_workers)] + [Lane.make("expensive") for _ in range(n)]
        limits = {"cheap": ClassLimits(live.cheap_queue, live.cheap_queue_mb << 20),
                  "expensive": ClassLimits(live.inspect_queue, live.inspect_queue_mb << 20)}
        root = live.job_dir or default_job_dir(settings.output.state_dir)
        queue = LocalJobQueue(root, limits, spool_path=Path(settings.output.state_dir) / "jobs.spool",
                              spool_bytes=live.spool_mb << 20, slots=1 + capture_workers + len(lanes))
        return cls(settings, queue, lanes, capture_workers)

    # -- supervisor -------------------------------------------------------------------------
    def open(self) -> None:
        """Take the queue; the previous run's jobs (spool, leftovers of a crash) come back, and
        those that crashed their consumer too often are recorded. Raises `JobDirLocked`/`OSError`."""
        assert isinstance(self.queue, LocalJobQueue)
        self.queue.open()
        for job in self.queue.recover(None):
            self.counters[f"shed.{job.cls}.crashed"] += 1
            self.pending.append(job_record(job, "crashed"))
            self.queue.ack(job)
        waiting = sum(self.queue.depth(c) for c in CLASSES)
        if waiting:
            log.info("inspection queue: %d job(s) from the previous run are inspected first", waiting)

    def shutdown(self) -> None:
        """Every pool process has exited: spool what is queued; what does not fit is recorded."""
        for job in self.queue.shutdown():
            self.counters[f"shed.{job.cls}.spool_full"] += 1
            self.pending.append(job_record(job, "spool_full"))
            self.queue.ack(job)
        if isinstance(self.queue, LocalJobQueue) and self.queue.empty():
            self.queue.remove()  # everything is in the spool (or recorded): no tmpfs directory left behind
        else:
            self.queue.close()

    def stats(self) -> dict[str, Any]:
        """Per class: waiting jobs, their bytes, the oldest one's age (seconds)."""
        now = time.time_ns()
        out: dict[str, Any] = {}
        for c in CLASSES:
            age = self.queue.oldest_age(c, now)
            out[c] = {"queued": self.queue.depth(c), "queued_bytes": self.queue.bytes_queued(c),
                      "oldest_age_s": round(age, 3) if age is not None else 0.0}
        return out

    def in_hand(self) -> int:
        """Jobs the pool processes are working on (claimed, not yet acknowledged)."""
        count = getattr(self.queue, "in_hand", None)
        return int(count()) if count is not None else 0

    # -- capture workers --------------------------------------------------------------------
    def offer(self, slot: int, name: str, counters: Counter[str] | None = None) -> JobOffer:
        """The producer side for capture worker ``slot`` (call in the worker, after the fork)."""
        self.queue.bind(1 + slot, name)  # type: ignore[attr-defined]
        return JobOffer(self.queue, self.priorities, counters)

    # -- pool processes ---------------------------------------------------------------------
    def run_lane(self, k: int, name: str, out: Outputs, stop: Callable[[], bool], *,
                 reload_requested: Callable[[], bool], report: Callable[[dict[str, Any]], None],
                 report_s: float = 1.0) -> None:
        """Body of pool process ``k``: take its queue slot, give back what a dead predecessor
        left claimed, then `serve` until stopped (and drained)."""
        lane = self.lanes[k]
        nice = self.settings.live.cheap_nice if lane.name == "cheap" else self.settings.live.inspect_nice
        if nice:
            try:
                os.nice(nice)  # capture keeps the CPU; its extraction sandboxes inherit this
            except OSError:
                log.warning("cannot lower the priority of inspection process %s", name)
        self.queue.bind(1 + self.capture_workers + k, name)  # type: ignore[attr-defined]
        sched = Scheduler(self.queue, lane, self.budgets)
        for job in self.queue.recover(name):  # this process's predecessor died with these
            sched.shed(job, "crashed", out.event)
        holder: list[Any] = []

        def stage() -> Any:
            if not holder:
                holder.append(self._make_stage(k))
            return holder[0]

        next_report = [0.0]

        def tick() -> None:
            if reload_requested() and holder:
                ok, msg = holder[0].holder.reload()
                (log.info if ok else log.error)("policy reload: %s", msg)
            now = time.monotonic()
            if now >= next_report[0]:
                next_report[0] = now + report_s
                report(self.lane_counters(sched, holder[0] if holder else None))

        self._arm_watchdog_at_term()
        serve(self.queue, sched, stage, out, stop, tick=tick, drain_s=self.drain_s)
        report(self.lane_counters(sched, holder[0] if holder else None))

    def _arm_watchdog_at_term(self) -> None:
        """At SIGTERM, start the clock at once: the drain ends on time even when the job in hand
        (an OCR in a sandbox) holds this process past it (`exit_after`; its job stays claimed and
        is spooled). The process's own handler (the stop flag) still runs first."""
        prev = signal.getsignal(signal.SIGTERM)
        armed: list[bool] = []

        def on_term(signum: int, frame: Any) -> None:
            if callable(prev):
                prev(signum, frame)
            if not armed:
                armed.append(True)
                exit_after(self.drain_s + 1.0)

        signal.signal(signal.SIGTERM, on_term)

    @staticmethod
    def lane_counters(sched: Scheduler, stage: Any) -> dict[str, Any]:
        """What a pool process reports (the supervisor sums it over processes and restarts)."""
        from appliance.pipeline import inspector_errors

        sched_counts = dict(sched.counters)
        if stage is not None:
            sched_counts["cache_hits"] = stage.counters["cache_hits"]
            sched_counts["cache_misses"] = stage.counters["cache_misses"]
        return {"pid": os.getpid(), "not_inspected": shed_counts(sched.counters), "alerts": sched.counters["alerts"],
                "inspector_errors": inspector_errors(stage.counters) if stage is not None else 0,
                "sched": sched_counts}

    def _make_stage(self, k: int) -> Any:
        """The inspection stage of pool process ``k`` (extraction, cheap extraction, cache)."""
        from appliance.pipeline import make_inspection, policy_holder
        from reassembly.objects import ObjectFactory

        slot = self.capture_workers + k
        holder = policy_holder(self.settings, slot, self.capture_workers + self.processes)
        assert holder is not None
        # children get ids of their own: a prefix per pool process keeps them unique across processes
        factory = ObjectFactory(keep_bytes=self.settings.content.keep_bytes,
                                head_bytes=self.settings.content.magic_bytes, prefix=f"F{slot}x")
        stage = make_inspection(self.settings, holder, factory)
        stage.warm()
        return stage


def record_all(records: list[dict[str, Any]], write: Callable[[dict[str, Any]], None]) -> None:
    """Write and forget ``records`` (the supervisor's pending not_inspected records)."""
    while records:
        write(records.pop(0))


def inspection_snapshot(queues: Mapping[str, Mapping[str, Any]], sched: Mapping[str, int],
                        in_hand: int = 0) -> dict[str, Any]:
    """The ``inspection`` part of the stats: per class queued/oldest age (from the queue) and
    offered/inspected/shed by reason (summed over processes), the jobs being inspected, and the
    result cache's hit rate."""
    classes: dict[str, Any] = {}
    for c in CLASSES:
        shed = {k.split(".", 2)[2]: int(n) for k, n in sorted(sched.items()) if k.startswith(f"shed.{c}.")}
        classes[c] = {**queues.get(c, {}), "offered": int(sched.get(f"offered.{c}", 0)),
                      "inspected": int(sched.get(f"inspected.{c}", 0)), "shed": shed}
    hits, misses = int(sched.get("cache_hits", 0)), int(sched.get("cache_misses", 0))
    lookups = hits + misses
    return {"classes": classes, "in_hand": in_hand,
            "cache": {"hits": hits, "lookups": lookups, "hit_rate": round(hits / lookups, 4) if lookups else 0.0}}
