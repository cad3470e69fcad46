"""The job-queue interface: inspection work between the processes that find objects and those
that inspect them.

A `Job` is one unit of inspection work: an opaque ``payload`` (a work item encoded by
`appliance.jobs.codec`, never a pickle), the cost ``cls`` it belongs to (``cheap``,
``expensive``), a ``priority`` (0 first) and a small JSON ``meta`` that is enough to write the
``not_inspected`` record when the job is shed without reading the payload. Producers `put`,
consumers `get` → work → `ack`; a consumer that gives a job back calls `nack`.

Semantics every backend keeps (the local one, `appliance.jobs.local`; the fleet's Redis
Streams one):

- **Never blocks the producer.** `put` returns at once: ``None`` when the job is queued, else
  the reason it was refused (``queue_full``: the class is at its count or byte cap;
  ``spool_full``: no room where jobs are kept; ``error``: the store failed). The caller writes
  the ``not_inspected`` record with that reason: nothing is refused silently.
- **Order.** `get(classes)` claims the next job of the first class in ``classes`` that has one:
  the lowest priority number first, then the oldest (FIFO within a priority). Classes are
  independent queues: a backlog of one never delays another (the consumer decides which
  classes it serves and in which order; see `appliance.scheduler`).
- **At-least-once.** A claimed job stays owned by its consumer until `ack` (done: deleted) or
  `nack` (back in the queue, ``attempts`` + 1). A consumer that dies leaves its jobs claimed;
  `recover` gives them back (``attempts`` + 1) and returns those that reached
  ``max_attempts`` (a job that kills its consumer every time): the caller records them as not
  inspected (reason ``crashed``) and acks them. A job is therefore inspected, or recorded as
  not inspected, exactly once barring a crash between the alert and the ``ack`` (then it is
  inspected twice).
- **Durable across process deaths.** A job is stored before `put` returns (write-ahead): a
  ``kill -9`` of any consumer, producer or the supervisor loses no queued job.
- **Age.** ``enqueued_ns`` is wall-clock time (`time.time_ns`) when the job was first put: queue
  age is a processing-time quantity, unlike the packet time of the objects themselves.
  ``restored`` marks a job that was queued before this queue was opened (the previous run's
  spool): the scheduler inspects those first and never sheds them as too old.
- **Observability.** `depth(cls)` and `oldest_age(cls)` per class; both may be approximate
  (counts race with concurrent puts) but never drift.

A Redis Streams backend maps this as: one stream per (class, priority)
(``tapsift:jobs:<cls>:<prio>``) with a consumer group ``inspect``; `put` = ``XADD`` with
``MAXLEN``-free length check (``XLEN`` against the cap; refuse, do not trim); `get` =
``XREADGROUP … COUNT 1`` over the class's streams in priority order; `ack` = ``XACK`` + ``XDEL``;
`nack` = re-``XADD`` with attempts + 1 then ``XACK``; `recover` = ``XAUTOCLAIM`` of entries idle
longer than a consumer's heartbeat, ``XPENDING``'s delivery count as ``attempts``; `depth` = sum of
``XLEN``s minus pending; `oldest_age` from the first entry id's millisecond part. ``meta`` and
``payload`` are stream fields; `close` does nothing (Redis keeps the jobs), so
`shutdown` returns no refused jobs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CLASSES", "Job", "JobQueue"]

CLASSES: tuple[str, ...] = ("cheap", "expensive")
"""The cost classes, in the order a consumer that serves both takes them."""


@dataclass(slots=True)
class Job:
    """One unit of inspection work (see the module doc)."""

    cls: str
    """Cost class: ``cheap`` or ``expensive``."""
    priority: int
    """0 is served first (see `appliance.scheduler.Priorities`)."""
    payload: bytes
    """The encoded work item (`appliance.jobs.codec`)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Small JSON: the ``not_inspected`` record's fields (content id, hashes, size, flow)."""
    id: str = ""
    """Set by the backend at `JobQueue.put`."""
    enqueued_ns: int = 0
    """Wall-clock ns of the first `put` (kept across `nack` and restarts)."""
    attempts: int = 0
    """Deliveries that ended without `ack` (a consumer that died, a `nack`)."""
    restored: bool = False
    """Queued before this queue was opened (a previous run's spool): inspected first, never too old."""
    size: int = 0
    """Bytes the job takes in the store (header and payload), set by the backend."""


class JobQueue(ABC):
    """Classes × priorities of jobs; see the module doc for what every backend guarantees."""

    max_attempts: int = 3

    @abstractmethod
    def put(self, job: Job) -> str | None:
        """Queue ``job`` without blocking: None when queued, else why not (``queue_full``,
        ``spool_full``, ``error``). Sets ``job.id``, ``job.enqueued_ns`` (if 0), ``job.size``."""

    @abstractmethod
    def get(self, classes: Sequence[str]) -> Job | None:
        """Claim the next job of the first of ``classes`` that has one (priority, then age);
        None when they are all empty. Never blocks."""

    @abstractmethod
    def ack(self, job: Job) -> None:
        """``job`` is done (inspected, or recorded as not inspected): delete it."""

    @abstractmethod
    def nack(self, job: Job) -> None:
        """Give ``job`` back: it is queued again (same class, priority and age; attempts + 1)."""

    @abstractmethod
    def depth(self, cls: str) -> int:
        """Jobs of ``cls`` waiting (not claimed)."""

    @abstractmethod
    def oldest_age(self, cls: str, now_ns: int) -> float | None:
        """Seconds the oldest waiting job of ``cls`` has waited at ``now_ns``; None when empty."""

    @abstractmethod
    def recover(self, consumer: str | None = None) -> list[Job]:
        """Give back the jobs claimed by ``consumer`` (None: by every consumer; call it only
        when none is running). Returns, claimed by the caller, those that reached
        ``max_attempts``: record them as not inspected and `ack` them."""

    def bytes_queued(self, cls: str) -> int:
        """Bytes of waiting jobs of ``cls`` (0 when the backend does not know)."""
        return 0

    def shutdown(self) -> list[Job]:
        """The sensor stops: keep what is still queued for the next start where the backend
        can (the local one writes its on-disk spool). Returns the jobs it could not keep
        (claimed by the caller: record them, then `ack`)."""
        return []

    def close(self) -> None:  # noqa: B027 (optional: most backends hold nothing to release)
        """Release handles (a process that only produced or consumed)."""
