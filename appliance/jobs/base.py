"""The job-queue interface: inspection work between the processes that find objects and those
that inspect them (a minimal stand-in for the ``capacity`` branch's interface, same names).

A `Job` carries an opaque ``payload`` (an encoded work item, never a pickle: a job may cross
hosts), its cost class ``cls`` (``cheap``, ``expensive``), a ``priority`` (0 first) and a small
JSON ``meta`` (enough to write a ``not_inspected`` record without the payload). Producers `put`;
consumers `get` → inspect → `ack`, or `nack` to give a job back.

What every backend keeps:

- `put` never blocks: ``None`` when queued, else why not (``queue_full``: a cap is reached;
  ``error``: the backend is unreachable). The caller falls back (local inspection, or a
  ``not_inspected`` record naming the reason): nothing is refused silently.
- `get(classes)` claims the next job of the first class in *classes* that has one: lowest
  priority number first, then the oldest.
- At least once: a claimed job stays with its consumer until `ack` (deleted) or `nack` (queued
  again, ``attempts`` + 1). A consumer that dies leaves its jobs claimed; `recover` takes them
  back and returns those that reached ``max_attempts`` (a job that kills every consumer), which
  the caller records as not inspected and acks.
- `depth(cls)` (jobs waiting, not claimed) and `oldest_age(cls, now_ns)` per class.
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
    priority: int
    payload: bytes
    meta: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    """Set by the backend at `JobQueue.put` (and `get`)."""
    enqueued_ns: int = 0
    """Wall-clock ns of the first `put`."""
    attempts: int = 0
    """Deliveries that ended without `ack`."""
    restored: bool = False
    size: int = 0
    """Bytes the job takes in the backend (payload and header)."""


class JobQueue(ABC):
    """Classes × priorities of jobs (see the module doc)."""

    max_attempts: int = 3

    @abstractmethod
    def put(self, job: Job) -> str | None:
        """Queue *job* without blocking: None when queued, else why not."""

    @abstractmethod
    def get(self, classes: Sequence[str]) -> Job | None:
        """Claim the next job of the first of *classes* that has one; None when all are empty. Never blocks."""

    @abstractmethod
    def ack(self, job: Job) -> None:
        """*job* is done (inspected, or recorded as not inspected): delete it."""

    @abstractmethod
    def nack(self, job: Job) -> None:
        """Give *job* back: queued again (attempts + 1)."""

    @abstractmethod
    def depth(self, cls: str) -> int:
        """Jobs of *cls* waiting (not claimed)."""

    @abstractmethod
    def oldest_age(self, cls: str, now_ns: int) -> float | None:
        """Seconds the oldest job of *cls* has waited at *now_ns*; None when empty."""

    @abstractmethod
    def recover(self, consumer: str | None = None) -> list[Job]:
        """Take back jobs their consumers left claimed; returns those at ``max_attempts``."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release handles."""
