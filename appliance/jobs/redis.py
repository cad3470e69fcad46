"""The fleet's job queue on Redis Streams: sensors offer expensive inspection, workers on any host take it.

Layout (``prefix`` = ``inspection.remote``'s bus ``jobs_key``, ``tapsift:jobs``)::

    <prefix>:<class>:<priority>   a stream of jobs; group ``tapsift-inspect``; fields payload,
                                  meta (JSON), enq (ns), attempts
    <prefix>:<class>:bytes        bytes of the class's jobs in Redis (payload + meta)

- `put`: refused with ``queue_full`` when the class holds ``max_jobs`` jobs or ``max_bytes``
  (Redis memory stays bounded: jobs are never trimmed, they are refused); then ``XADD`` and
  ``INCRBY`` in one transaction. ``error`` when Redis cannot be reached.
- `get` / `wait`: ``XREADGROUP … COUNT 1`` over the class's priority streams in order (`wait`
  blocks on all of them when they are empty).
- `finish` (the worker's end of a job) is one Lua script: ``XACK`` the job and, only if it was
  still pending — no other worker finished it first — append the results (alert records, events)
  to their streams, ``XDEL`` the job and decrement the byte count. A slow worker whose job was
  claimed by another, or a job handed twice, therefore publishes its results once. `ack` is
  `finish` with no results; `nack` puts the job back at the end of its stream (attempts + 1).
- `recover`: jobs idle (claimed, not finished) for ``claim_idle_s`` — their worker was killed or
  is stuck — are claimed (``XPENDING … IDLE`` + ``XCLAIM``) and served by this consumer next;
  those delivered ``max_attempts`` times already are returned instead, to be recorded as not
  inspected (a job that kills every worker must not go round forever).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import redis

from appliance.bus.base import BusError, Fields
from appliance.bus.redis import RedisBus
from appliance.jobs.base import CLASSES, Job, JobQueue

__all__ = ["RedisJobQueue"]

_FINISH = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local i = 6
for e = 1, tonumber(ARGV[5]) do
  local k = tonumber(ARGV[i]); local n = tonumber(ARGV[i + 1]); i = i + 2
  local cmd = {'XADD', KEYS[k], 'MAXLEN', '~', ARGV[3], '*'}
  for j = 1, 2 * n do cmd[#cmd + 1] = ARGV[i]; i = i + 1 end
  redis.call(unpack(cmd))
end
redis.call('XDEL', KEYS[1], ARGV[2])
if tonumber(ARGV[4]) > 0 then redis.call('DECRBY', KEYS[2], ARGV[4]) end
return 1
"""

_NACK = """
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XADD', KEYS[1], '*', 'payload', ARGV[3], 'meta', ARGV[4], 'enq', ARGV[5], 'attempts', ARGV[6])
redis.call('XDEL', KEYS[1], ARGV[2])
return 1
"""


def _s(v: Any) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


class RedisJobQueue(JobQueue):
    """Jobs on Redis streams (see the module doc). One instance per process (producer or consumer)."""

    def __init__(self, bus: RedisBus, prefix: str = "tapsift:jobs", *, group: str = "tapsift-inspect",
                 consumer: str = "", max_jobs: int = 1000, max_bytes: int = 1 << 30, claim_idle_s: float = 120.0,
                 priorities: int = 2, classes: Sequence[str] = CLASSES, max_attempts: int = 3) -> None:
        self.bus = bus
        self.r = bus.r
        self.prefix = prefix
        self.group = group
        self.consumer = consumer
        self.max_jobs = max_jobs
        self.max_bytes = max_bytes
        self.claim_idle_s = claim_idle_s
        self.priorities = priorities
        self.classes = tuple(classes)
        self.max_attempts = max_attempts
        self._finish = self.r.register_script(_FINISH)
        self._nack = self.r.register_script(_NACK)
        self._grouped = False
        self._ready: list[Job] = []
        """Jobs claimed by this consumer and not handed out yet (a blocking read, `recover`)."""

    # -- keys ----------------------------------------------------------------------------------
    def key(self, cls: str, priority: int) -> str:
        return f"{self.prefix}:{cls}:{priority}"

    def bytes_key(self, cls: str) -> str:
        return f"{self.prefix}:{cls}:bytes"

    def _streams(self, classes: Sequence[str]) -> list[tuple[str, int, str]]:
        return [(c, p, self.key(c, p)) for c in classes for p in range(self.priorities)]

    def _groups(self) -> None:
        if not self._grouped:
            for _, _, key in self._streams(self.classes):
                self.bus.ensure_group(key, self.group)
            self._grouped = True

    def _check(self, cls: str, priority: int) -> None:
        if cls not in self.classes:
            raise ValueError(f"unknown job class {cls!r}")
        if not 0 <= priority < self.priorities:
            raise ValueError(f"priority {priority} outside 0..{self.priorities - 1}")

    # -- producing -----------------------------------------------------------------------------
    def put(self, job: Job) -> str | None:
        self._check(job.cls, job.priority)
        meta = json.dumps(job.meta, ensure_ascii=False, separators=(",", ":"))
        job.enqueued_ns = job.enqueued_ns or time.time_ns()
        job.size = len(job.payload) + len(meta)
        try:
            pipe = self.r.pipeline(transaction=False)
            for _, _, key in self._streams([job.cls]):
                pipe.xlen(key)
            pipe.get(self.bytes_key(job.cls))
            *lens, nbytes = pipe.execute()
            if sum(lens) >= self.max_jobs or int(nbytes or 0) + job.size > self.max_bytes:
                return "queue_full"
            pipe = self.r.pipeline(transaction=True)
            pipe.xadd(self.key(job.cls, job.priority), {"payload": job.payload, "meta": meta,
                                                        "enq": job.enqueued_ns, "attempts": job.attempts})
            pipe.incrby(self.bytes_key(job.cls), job.size)
            job.id = _s(pipe.execute()[0])
        except (redis.RedisError, OSError):
            return "error"
        return None

    def backlog(self, cls: str) -> int:
        """Jobs of *cls* in Redis, waiting or being worked on (what `put` caps)."""
        try:
            return sum(int(self.r.xlen(k)) for _, _, k in self._streams([cls]))
        except redis.RedisError as exc:
            raise BusError(f"XLEN {self.prefix}:{cls}: {exc}") from None

    # -- consuming -----------------------------------------------------------------------------
    def _job(self, cls: str, priority: int, mid: Any, f: dict[bytes, bytes], delivered: int = 1) -> Job:
        payload = f.get(b"payload", b"")
        meta_raw = f.get(b"meta", b"{}")
        try:
            meta = json.loads(meta_raw)
        except ValueError:
            meta = {}
        return Job(cls, priority, payload, meta if isinstance(meta, dict) else {}, _s(mid),
                   int(f.get(b"enq", b"0") or 0), max(int(f.get(b"attempts", b"0") or 0), delivered - 1),
                   size=len(payload) + len(meta_raw))

    def get(self, classes: Sequence[str]) -> Job | None:
        if self._ready:
            return self._pop(classes)
        try:
            self._groups()
            for cls, prio, key in self._streams(classes):
                got = self.r.xreadgroup(self.group, self.consumer, {key: ">"}, count=1)
                for _, entries in got or []:
                    for mid, f in entries:
                        if f is not None:
                            return self._job(cls, prio, mid, f)
        except redis.RedisError as exc:
            self._grouped = False
            raise BusError(f"XREADGROUP {self.prefix}: {exc}") from None
        return None

    def wait(self, classes: Sequence[str], timeout_s: float) -> Job | None:
        """`get`, or wait up to *timeout_s* for a job of *classes*."""
        job = self.get(classes)
        if job is not None:
            return job
        streams = self._streams(classes)
        try:
            got = self.r.xreadgroup(self.group, self.consumer, {k: ">" for _, _, k in streams}, count=1,
                                    block=max(1, int(timeout_s * 1000)))
        except redis.RedisError as exc:
            self._grouped = False
            raise BusError(f"XREADGROUP {self.prefix}: {exc}") from None
        where = {k: (c, p) for c, p, k in streams}
        for name, entries in got or []:
            cls, prio = where[_s(name)]
            self._ready += [self._job(cls, prio, mid, f) for mid, f in entries if f is not None]
        return self._pop(classes) if self._ready else None

    def _pop(self, classes: Sequence[str]) -> Job | None:
        order = {c: i for i, c in enumerate(classes)}
        mine = [j for j in self._ready if j.cls in order]
        if not mine:
            return None
        best = min(mine, key=lambda j: (order[j.cls], j.priority, j.id))
        self._ready.remove(best)
        return best

    def finish(self, job: Job, out: Sequence[tuple[str, Fields]] = (), maxlen: int = 1_000_000) -> bool:
        """Acknowledge *job* and append *out* atomically, only if it was still pending (module doc).
        False: another consumer finished it first; nothing was appended."""
        keys = [self.key(job.cls, job.priority), self.bytes_key(job.cls)]
        args: list[Any] = [self.group, job.id, maxlen, job.size, len(out)]
        for target, fields in out:
            if target not in keys:
                keys.append(target)
            args += [keys.index(target) + 1, len(fields)]
            for k, v in fields.items():
                args += [k, v]
        try:
            return int(self._finish(keys=keys, args=args)) == 1
        except redis.RedisError as exc:
            raise BusError(f"finishing job {job.id}: {exc}") from None

    def ack(self, job: Job) -> None:
        self.finish(job)

    def nack(self, job: Job) -> None:
        meta = json.dumps(job.meta, ensure_ascii=False, separators=(",", ":"))
        try:
            self._nack(keys=[self.key(job.cls, job.priority)],
                       args=[self.group, job.id, job.payload, meta, job.enqueued_ns, job.attempts + 1])
        except redis.RedisError as exc:
            raise BusError(f"giving back job {job.id}: {exc}") from None

    def recover(self, consumer: str | None = None) -> list[Job]:
        """Claim jobs idle for ``claim_idle_s`` (of *consumer*, or of anyone); they are served
        next by `get`; returns those already delivered ``max_attempts`` times (claimed by us)."""
        dead: list[Job] = []
        idle_ms = int(self.claim_idle_s * 1000)
        try:
            self._groups()
            for cls, prio, key in self._streams(self.classes):
                stale = self.r.xpending_range(key, self.group, min="-", max="+", count=100, idle=idle_ms,
                                              consumername=consumer)
                if not stale:
                    continue
                delivered = {_s(p["message_id"]): int(p["times_delivered"]) for p in stale}
                claimed = self.r.xclaim(key, self.group, self.consumer, idle_ms, list(delivered))
                for mid, f in claimed:
                    if f is None:
                        continue
                    job = self._job(cls, prio, mid, f, delivered.get(_s(mid), 1) + 1)
                    (dead if job.attempts >= self.max_attempts else self._ready).append(job)
        except redis.RedisError as exc:
            self._grouped = False
            raise BusError(f"recovering jobs of {self.prefix}: {exc}") from None
        return dead

    # -- observing -----------------------------------------------------------------------------
    def depth(self, cls: str) -> int:
        try:
            total = 0
            for _, _, key in self._streams([cls]):
                total += int(self.r.xlen(key))
                try:
                    total -= int(self.r.xpending(key, self.group).get("pending", 0))
                except redis.ResponseError:  # no group yet: nothing claimed
                    pass
            return max(0, total)
        except redis.RedisError as exc:
            raise BusError(f"depth of {self.prefix}:{cls}: {exc}") from None

    def bytes_queued(self, cls: str) -> int:
        try:
            return int(self.r.get(self.bytes_key(cls)) or 0)
        except redis.RedisError as exc:
            raise BusError(f"GET {self.bytes_key(cls)}: {exc}") from None

    def oldest_age(self, cls: str, now_ns: int) -> float | None:
        try:
            firsts = [self.r.xrange(k, count=1) for _, _, k in self._streams([cls])]
        except redis.RedisError as exc:
            raise BusError(f"XRANGE {self.prefix}:{cls}: {exc}") from None
        ms = [int(_s(f[0][0]).split("-")[0]) for f in firsts if f]
        return max(0.0, now_ns / 1e9 - min(ms) / 1000) if ms else None

    def close(self) -> None:
        self.bus.close()
