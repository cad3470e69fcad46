"""``tapsift inspect-worker``: expensive inspection for the fleet, on any host.

A worker takes jobs (`appliance.jobs.redis.RedisJobQueue`, group ``tapsift-inspect``), inspects
each object as the sensor's inspection pool would (extraction within the ``inspection`` budgets,
every inspector its policy's rules select) and finishes the job in one atomic step: the alert
records go to the alert stream, the children's ``fileinfo`` events to the events stream, and the
job is acknowledged and deleted — only if it was still pending, so a job two workers both
inspected (a slow worker whose job was claimed meanwhile) publishes its results once.

Why results go to the streams rather than the database: a worker then needs no database
credentials (only its Redis ACL), a job's acknowledgement and its results are one Redis
transaction (no window where one exists without the other), the ingester stays the one place
that handles database outages and duplicates, and the SIEM forwarding sees worker alerts too.

A worker killed mid-job leaves the job pending; a live worker claims it after
``inspection.remote.claim_idle_s`` (`RedisJobQueue.recover`); a job already delivered
``max_attempts`` times is recorded as not inspected (reason ``crashed``) instead. While the alert
stream is at its high-water mark (the ingester is behind) the worker stops taking jobs, so the
job streams fill and the sensors fall back to their local rules.

Alert ids: a job's alerts are numbered from its sensor, content id and hash (`JobAlertIds`), so
the same job inspected again gives the same ids, and no two workers or sensors collide. (A stop-gap
until alert ids are derived from what they identify everywhere — the trust-b branch — after which
the policy engine's own ids do this.)
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from appliance.bus.base import EVE_FIELD, SENSOR_FIELD, BusError, open_bus
from appliance.bus.publish import HIGH_WATER
from appliance.eve import fileinfo_event, not_inspected_event
from appliance.fleet.consumer import Backoff
from appliance.fleet.jobwire import decode_object
from appliance.fleet.remote import EXPENSIVE, job_queue
from appliance.fleet.sensorlink import Heartbeat
from appliance.jobs.base import Job
from appliance.model import ContentObject
from appliance.outputs.alertjson import alert_record, dumps
from policies.engine import AlertIds

if TYPE_CHECKING:
    from appliance.inspection import InspectionResult
    from appliance.jobs.redis import RedisJobQueue
    from appliance.settings import Settings

__all__ = ["InspectWorker", "JobAlertIds"]

log = logging.getLogger("tapsift.worker")

_B32 = "0123456789abcdefghjkmnpqrstvwxyz"


class JobAlertIds(AlertIds):
    """Alert ids derived from the job being inspected (see the module doc): ``A`` + 16 base32."""

    def __init__(self) -> None:
        super().__init__(1, 1)
        self.scope = b""
        self.n = 0

    def begin(self, *parts: str) -> None:
        """The next ids belong to the job identified by *parts*."""
        self.scope = "\x00".join(parts).encode("utf-8", "surrogatepass")
        self.n = 0

    def next(self) -> str:
        self.n += 1
        h = int.from_bytes(hashlib.blake2b(self.scope + b"\x00%d" % self.n, digest_size=10).digest(), "big")
        return "A" + "".join(_B32[(h >> (5 * i)) & 31] for i in range(15, -1, -1))


def _not_inspected(job: Job, reason: str) -> dict[str, Any]:
    """A ``not_inspected`` record from the job's meta (the payload may be unreadable)."""
    m = job.meta
    ev = not_inspected_event(ContentObject(str(m.get("content_id", "?")), "", 0, None, 0, int(m.get("size", 0) or 0),
                                           str(m.get("md5", "")), str(m.get("sha256", ""))), reason)
    ev["tapsift"]["sensor"] = str(m.get("sensor", ""))
    return ev


class InspectWorker:
    """One worker process's loop (module doc). *inspect* replaces the inspection stage (tests)."""

    def __init__(self, settings: Settings, name: str, *, classes: Sequence[str] = (EXPENSIVE,),
                 inspect: Callable[[ContentObject], InspectionResult] | None = None,
                 queue: RedisJobQueue | None = None) -> None:
        bus = settings.output.bus
        if bus is None:
            raise ValueError("no bus configured (output.bus)")
        self.settings = settings
        self.bus = bus
        self.name = name
        self.classes = tuple(classes)
        self.queue = queue or job_queue(settings, consumer=name)
        self.ids = JobAlertIds()
        self.holder: Any = None
        self._inspect = inspect or self._make_stage()
        self.counters: Counter[str] = Counter()
        """``done``, ``lost_race`` (another worker finished the job first), ``alerts``, ``bad_job``,
        ``crashed`` (recorded as not inspected), ``held_back``, ``bus_errors``."""
        self.backoff = Backoff(0.2, bus.retry_max_s)
        self._alerts_bus: Any = None
        self._next_recover = 0.0
        self._next_check = 0.0
        self._paused = False
        self.follower: Any = None

    def _make_stage(self) -> Callable[[ContentObject], InspectionResult]:
        from appliance.pipeline import make_inspection
        from policies.reload import PolicyHolder
        from reassembly.objects import ObjectFactory

        s = self.settings
        if not s.inspection.policy:
            raise ValueError("an inspection worker needs inspection.policy")
        self.holder = PolicyHolder(s.inspection.policy, ids=self.ids)
        tag = hashlib.blake2b(self.name.encode(), digest_size=4).hexdigest()
        factory = ObjectFactory(keep_bytes=s.content.keep_bytes, head_bytes=s.content.magic_bytes, prefix=f"F{tag}x")
        stage = make_inspection(s, self.holder, factory)
        stage.warm()
        return lambda obj: stage.inspect(obj, obj.ts_ns)

    # -- one job -------------------------------------------------------------------------------
    def process(self, job: Job) -> bool:
        """Inspect *job* and finish it; True if this worker's results were the ones published."""
        b = self.bus
        sensor = str(job.meta.get("sensor", ""))
        try:
            obj, _mode = decode_object(job.payload)
        except ValueError as exc:
            log.warning("job %s: %s; recorded as not inspected", job.id, exc)
            self.counters["bad_job"] += 1
            return self._finish(job, [(b.events_key, self._fields(_not_inspected(job, "bad_job"), sensor))])
        self.ids.begin(sensor, obj.id, obj.sha256)
        res = self._inspect(obj)
        out = [(b.events_key, self._fields(fileinfo_event(c), sensor)) for c in res.children]
        for alert, target in res.alerts:
            rec = alert_record(alert, target)
            ts = rec.setdefault("tapsift", {})
            ts.update(ts_ns=alert.ts_ns, sensor=sensor, inspected_by=self.name)
            out.append((b.alerts_key, self._fields(rec, sensor)))
        for sup in res.suppressed:
            out.append((b.alerts_key, self._fields({"event_type": "suppressed",
                                                    "tapsift": {"alert_id": sup.first_id}}, sensor)))
        ok = self._finish(job, out)
        if ok:
            self.counters["alerts"] += len(res.alerts)
        return ok

    @staticmethod
    def _fields(rec: dict[str, Any], sensor: str) -> dict[str, bytes | str]:
        return {EVE_FIELD: dumps(rec).encode("utf-8"), SENSOR_FIELD: sensor}

    def _finish(self, job: Job, out: list[tuple[str, dict[str, bytes | str]]]) -> bool:
        ok = self.queue.finish(job, out, self.bus.maxlen)
        self.counters["done" if ok else "lost_race"] += 1
        if not ok:
            log.info("job %s was finished by another worker first; results of this one dropped", job.id)
        return ok

    # -- the loop ------------------------------------------------------------------------------
    def step(self, wait_s: float = 1.0) -> bool:
        """Recover stale jobs when due, then take and process one job; True if one was processed."""
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + 1.0
            self._paused = self._alerts_backlog() >= int(self.bus.maxlen * HIGH_WATER)
            if self._paused:
                self.counters["held_back"] += 1
        if self._paused:
            time.sleep(min(wait_s, 0.5))
            return False
        if now >= self._next_recover:
            self._next_recover = now + max(1.0, self.queue.claim_idle_s / 2)
            for job in self.queue.recover():
                self.counters["crashed"] += 1
                log.error("job %s (content %s) was delivered %d times without being finished: recorded as not "
                          "inspected", job.id, job.meta.get("content_id"), job.attempts)
                self._finish(job, [(self.bus.events_key, self._fields(_not_inspected(job, "crashed"),
                                                                       str(job.meta.get("sensor", ""))))])
        job = self.queue.wait(self.classes, wait_s)
        if job is None:
            return False
        self.process(job)
        return True

    def _alerts_backlog(self) -> int:
        if self._alerts_bus is None:
            self._alerts_bus = open_bus(self.bus)
        return self._alerts_bus.length(self.bus.alerts_key)

    def counters_now(self) -> dict[str, float]:
        out: dict[str, float] = dict(self.counters)
        try:
            for cls in self.classes:
                out[f"queue.{cls}"] = self.queue.depth(cls)
                age = self.queue.oldest_age(cls, time.time_ns())
                out[f"queue.{cls}.oldest_s"] = round(age or 0.0, 3)
        except BusError:
            pass
        return out

    def run(self, stop: threading.Event) -> None:
        """Serve jobs until *stop* is set; heartbeats and the policy follower in threads."""
        beat = Heartbeat(self.bus, self.name, "inspect-worker", self.counters_now, self._policy_version)
        beat.start()
        follow = threading.Thread(target=self._follow, args=(stop,), name="tapsift-policy", daemon=True)
        if self.bus.follow_policy and self.holder is not None:
            follow.start()
        try:
            while not stop.is_set():
                try:
                    self.step()
                    self.backoff.reset()
                except BusError as exc:
                    self.counters["bus_errors"] += 1
                    if self.backoff.failures == 0:
                        log.warning("%s: %s (retrying with back-off)", self.name, exc)
                    self._alerts_bus = None
                    stop.wait(self.backoff.next())
        finally:
            beat.stop()

    def _policy_version(self) -> str:
        return str(self.holder.current.policy.version) if self.holder is not None else ""

    def _follow(self, stop: threading.Event) -> None:
        from appliance.fleet.policy import PolicyFollower

        def reload() -> None:
            ok, msg = self.holder.reload()
            (log.info if ok else log.error)("policy reload: %s", msg)

        self.follower = PolicyFollower(lambda: open_bus(self.bus), self.bus, self.settings.inspection.policy or "",
                                       reload, model_dir=self.settings.inspection.model_dir)
        self.follower.run(stop)


def default_name() -> str:
    """``<host>-<pid>``: unique among the workers of a host."""
    import socket

    return f"{socket.gethostname()}-{os.getpid()}"
