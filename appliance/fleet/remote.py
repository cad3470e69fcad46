"""A sensor's side of remote inspection: expensive objects offered as jobs on the bus.

`RemoteOffload` is a pipeline's ``Outputs.offload`` (`appliance.pipeline`): an object the sensor
does not inspect itself is

- put on the job stream of its class (``expensive``) with its bytes inline, when it is held
  whole in memory and not larger than ``inspection.remote.inline_max_bytes``;
- otherwise (too large, or its bytes are in a spool file) handled by ``oversize``: ``local`` —
  the local fallback (the inspection pool of ``tapsift run``, inline inspection in ``tapsift
  read``), ``shed`` — a ``not_inspected`` record (reason ``too_large_for_remote``);
- and when the queue refuses it (``queue_full``: the workers are behind — back-pressure — or
  ``error``: Redis is away), handled by the local rules: the local fallback when there is one
  (which sheds with its own ``not_inspected`` record when full), else a ``not_inspected`` record.

Every outcome is counted (`counters`): ``offered``, ``oversize``, ``refused.queue_full``,
``refused.error``, ``local``, ``shed``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from appliance.bus.base import BusError, open_bus
from appliance.eve import not_inspected_event
from appliance.fleet.jobwire import encode_object
from appliance.jobs.base import Job
from appliance.model import ContentObject

if TYPE_CHECKING:
    from appliance.jobs.redis import RedisJobQueue
    from appliance.settings import Settings

__all__ = ["RemoteOffload", "job_queue"]

log = logging.getLogger("tapsift.remote")

EXPENSIVE = "expensive"


def job_queue(settings: Settings, consumer: str = "") -> RedisJobQueue:
    """The job queue of *settings* (``output.bus`` and ``inspection.remote``)."""
    from appliance.bus.redis import RedisBus
    from appliance.jobs.redis import RedisJobQueue

    bus = settings.output.bus
    if bus is None:
        raise BusError("remote inspection needs output.bus")
    conn = open_bus(bus)
    if not isinstance(conn, RedisBus):
        raise BusError("remote inspection needs a Redis bus")
    rem = settings.inspection.remote
    return RedisJobQueue(conn, bus.jobs_key, group=rem.group, consumer=consumer, max_jobs=rem.max_backlog,
                         max_bytes=rem.max_backlog_mb << 20, claim_idle_s=rem.claim_idle_s)


class RemoteOffload:
    """``offload(obj) -> bool`` for a pipeline (module doc). True: the object is taken care of."""

    def __init__(self, settings: Settings, event: Callable[[dict[str, Any]], None],
                 local: Callable[[ContentObject], bool] | None = None, queue: RedisJobQueue | None = None) -> None:
        self.settings = settings
        self.rem = settings.inspection.remote
        self.sensor = settings.sensor.name
        self.event = event
        self.local = local
        self._queue = queue
        self.counters: Counter[str] = Counter()

    @property
    def queue(self) -> RedisJobQueue:
        if self._queue is None:
            self._queue = job_queue(self.settings)
        return self._queue

    def __call__(self, obj: ContentObject) -> bool:
        data = obj.data
        if data is None or obj.spool_path is not None or len(data) > self.rem.inline_max_bytes:
            self.counters["oversize"] += 1
            if self.rem.oversize == "local" and self.local is not None:
                return self._local(obj, "too_large_for_remote")
            return self._shed(obj, "too_large_for_remote")
        meta = {"content_id": obj.id, "md5": obj.md5, "sha256": obj.sha256, "size": obj.size, "sensor": self.sensor}
        try:
            why = self.queue.put(Job(EXPENSIVE, 0, encode_object(obj), meta))
        except BusError:
            why = "error"
        if why is None:
            self.counters["offered"] += 1
            return True
        self.counters[f"refused.{why}"] += 1
        if self.local is not None:
            return self._local(obj, why)
        return self._shed(obj, why)

    def _local(self, obj: ContentObject, why: str) -> bool:
        assert self.local is not None
        if self.local(obj):
            self.counters["local"] += 1
            return True
        return self._shed(obj, why)

    def _shed(self, obj: ContentObject, why: str) -> bool:
        self.counters["shed"] += 1
        self.event(not_inspected_event(obj, why))
        return True

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()
            self._queue = None
