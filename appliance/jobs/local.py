"""The one-box job queue: a job is a file, a claim is a rename, the spool is one file on disk.

Layout under ``root`` (by default on a tmpfs: ``$RUNTIME_DIRECTORY/jobs`` under systemd, else
``/dev/shm/tapsift-…``; see `default_job_dir`)::

    lock                                    held (flock) by the sensor that owns the queue
    tmp/                                    a job being written (renamed into ready/ when whole)
    ready/<class>/<priority>/<name>.job     waiting
    claimed/<consumer>/<name>.job           taken by a consumer, until ack (unlink) or nack

``<name>`` is ``<enqueued_ns, 20 digits>-<id>.<attempts>``: a directory listing sorted by name
is the FIFO order of a priority, and the file itself carries the job (``TSJ1``, a 4-byte
big-endian header length, the JSON header, the payload). A rename is atomic, so two consumers
never get the same job; a job file exists from `put` to `ack`, so the queue survives a
``kill -9`` of any process (the write-ahead record *is* the job). On a tmpfs a put costs a
file create and write (~30 µs on the development VM; the same on its ext4 root costs ~0.9 ms,
hence tmpfs).

Counts per class (jobs and bytes waiting) live in a shared-memory array made before the
processes fork: one row per process (`bind`), written only by that process, so the sum is
exact without a lock. The caps (``max_jobs``/``max_bytes`` per class) are checked against it.

At shutdown (`shutdown`, by the supervisor once every child has exited) everything still
queued or claimed goes into the on-disk spool ``spool_path`` (one file, records in queue order,
fsync'd, at most ``spool_bytes``); `open` puts the spool's jobs back (``restored``) at the next
start, before any child runs. What does not fit is returned to be recorded as not inspected.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import multiprocessing as mp
import os
import shutil
import struct
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from appliance.jobs.base import CLASSES, Job, JobQueue

log = logging.getLogger("tapsift.jobs")

__all__ = ["ClassLimits", "JobDirLocked", "LocalJobQueue", "default_job_dir", "read_job_file"]

_MAGIC = b"TSJ1"
_HDR = struct.Struct(">I")


class JobDirLocked(RuntimeError):
    """Another sensor owns this job directory."""


class ClassLimits:
    """Caps of one class's waiting jobs."""

    __slots__ = ("max_bytes", "max_jobs")

    def __init__(self, max_jobs: int, max_bytes: int) -> None:
        self.max_jobs = max_jobs
        self.max_bytes = max_bytes


def default_job_dir(state_dir: str) -> str:
    """Where the queue lives unless ``live.job_dir`` says: the systemd runtime directory (a
    tmpfs kept across restarts with ``RuntimeDirectoryPreserve=restart``), else a directory on
    /dev/shm named after ``state_dir`` (so the next start with the same settings finds it)."""
    run = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if run:
        return os.path.join(run, "jobs")
    tag = hashlib.sha1(os.path.abspath(state_dir).encode()).hexdigest()[:12]
    base = "/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"
    return os.path.join(base, f"tapsift-jobs-{tag}")


def _header(job: Job) -> bytes:
    head = json.dumps({"cls": job.cls, "prio": job.priority, "meta": job.meta, "id": job.id,
                       "enq": job.enqueued_ns}, separators=(",", ":")).encode()
    return _MAGIC + _HDR.pack(len(head)) + head



def _decode(blob: bytes) -> Job:
    if blob[:4] != _MAGIC or len(blob) < 8:
        raise ValueError("not a job record")
    (n,) = _HDR.unpack_from(blob, 4)
    head = json.loads(blob[8:8 + n])
    return Job(cls=str(head["cls"]), priority=int(head["prio"]), payload=blob[8 + n:], meta=dict(head["meta"]),
               id=str(head["id"]), enqueued_ns=int(head["enq"]), size=len(blob))


def read_job_file(path: str | os.PathLike[str]) -> Job:
    """A job file (or raises `ValueError` / `OSError`); ``attempts`` from its name."""
    with open(path, "rb") as fh:
        job = _decode(fh.read())
    job.attempts = _attempts(os.path.basename(path))
    return job


def _name(job: Job) -> str:
    return f"{job.enqueued_ns:020d}-{job.id}.{job.attempts}.job"


def _attempts(name: str) -> int:
    try:
        return int(name[:-4].rsplit(".", 1)[1])
    except (IndexError, ValueError):
        return 0


def _job_id(name: str) -> str:
    return name[21:-4].rsplit(".", 1)[0]


class LocalJobQueue(JobQueue):
    """`JobQueue` on a directory (see the module doc). Make it in the supervisor before
    forking (`open`), `bind` it in each child, `shutdown` it last."""

    def __init__(self, root: str | os.PathLike[str], limits: Mapping[str, ClassLimits], *,
                 spool_path: str | os.PathLike[str] | None = None, spool_bytes: int = 256 << 20,
                 slots: int = 64, clock: Callable[[], int] = time.time_ns, refresh_s: float = 0.05) -> None:
        self.root = Path(root)
        self.limits = dict(limits)
        self.classes = tuple(c for c in CLASSES if c in self.limits) + tuple(c for c in self.limits if c not in CLASSES)
        self.spool_path = Path(spool_path) if spool_path is not None else None
        self.spool_bytes = spool_bytes
        self.clock = clock
        self.refresh_ns = int(refresh_s * 1e9)
        self.opened_ns = 0
        # per process and class: jobs waiting, their bytes, jobs ever queued (put or given back)
        self._counts = np.frombuffer(mp.get_context("fork").RawArray("q", slots * len(self.classes) * 3),
                                     dtype=np.int64).reshape(slots, len(self.classes), 3)
        self._cix = {c: i for i, c in enumerate(self.classes)}
        self._slot = 0
        self._name = "sup"
        self._seq = 0
        self._lockfd: int | None = None
        self._dirs: set[str] = set()
        self._claimed: dict[str, Path] = {}
        self._listing: dict[str, deque[tuple[int, str]]] = {}
        self._listed_at: dict[str, tuple[int, int]] = {}

    # -- set-up -----------------------------------------------------------------------------
    def open(self) -> int:
        """Take the directory (lock), clear half-written jobs, count what a previous run left
        (ready or claimed: the sensor was killed) and put the spool's jobs back. Returns how
        many jobs are waiting. Raises `JobDirLocked` when another sensor owns ``root``."""
        self.opened_ns = self.clock()
        for sub in ("tmp", "ready", "claimed"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        self._lockfd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lockfd)
            self._lockfd = None
            raise JobDirLocked(f"job directory {self.root} is in use by another sensor "
                               "(give each sensor its own output.state_dir or live.job_dir)") from None
        for p in (self.root / "tmp").iterdir():
            with contextlib.suppress(OSError):
                p.unlink()
        self._restore_spool()
        self._counts[:] = 0
        for cls in self.classes:
            for _prio, path in self._scan(cls):
                try:
                    size = path.stat().st_size
                except OSError:
                    continue
                self._add(cls, 1, size)
        return sum(self.depth(c) for c in self.classes)

    def bind(self, slot: int, name: str) -> None:
        """This process is ``name`` (producer id, consumer directory) and writes counter row ``slot``."""
        if not 0 <= slot < self._counts.shape[0]:
            raise ValueError(f"job queue slot {slot} out of range")
        self._slot = slot
        self._name = name
        self._seq = 0
        (self.root / "claimed" / name).mkdir(parents=True, exist_ok=True)
        self._claimed.clear()
        self._listing.clear()
        self._listed_at.clear()
        self._dirs.clear()

    # -- producer ---------------------------------------------------------------------------
    def put(self, job: Job) -> str | None:
        cls = job.cls
        lim = self.limits.get(cls)
        if lim is None:
            raise ValueError(f"unknown job class {cls!r}")
        if not job.id:
            self._seq += 1
            job.id = f"{self._name}.{os.getpid()}.{self._seq}"
        if not job.enqueued_ns:
            job.enqueued_ns = self.clock()
        head = _header(job)
        job.size = size = len(head) + len(job.payload)
        waiting = self._counts[:, self._cix[cls], :2].sum(axis=0)
        if waiting[0] >= lim.max_jobs or waiting[1] + size > lim.max_bytes:
            return "queue_full"
        tmp = f"{self.root}/tmp/{job.id}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                done = os.writev(fd, [head, job.payload])
                if done < size:  # a short write (rare on a tmpfs): the rest in a loop
                    view = memoryview(head + job.payload)[done:]
                    while view:
                        view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.rename(tmp, self._ready_dir(cls, job.priority) + _name(job))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return "spool_full"
            log.error("cannot queue job %s: %s", job.id, exc)
            return "error"
        self._add(cls, 1, size)
        return None

    # -- consumer ---------------------------------------------------------------------------
    def get(self, classes: Sequence[str]) -> Job | None:
        for cls in classes:
            job = self._take(cls)
            if job is not None:
                return job
        return None

    def _take(self, cls: str) -> Job | None:
        # the listing is re-read when it is used up, or when jobs were queued since and it is
        # older than ``refresh_s`` (a new job of a better priority must not wait long)
        now = self.clock()
        listing = self._listing.get(cls)
        queued = int(self._counts[:, self._cix[cls], 2].sum())
        at, seen = self._listed_at.get(cls, (0, -1))
        if not listing or (queued != seen and now - at >= self.refresh_ns):
            listing = self._listing[cls] = deque(sorted(self._names(cls)))
            self._listed_at[cls] = (now, queued)
        mine = self.root / "claimed" / self._name
        base = f"{self.root}/ready/{cls}/"
        while listing:
            prio, name = listing.popleft()
            src = f"{base}{prio}/{name}"
            dst = mine / name
            try:
                os.rename(src, dst)
            except FileNotFoundError:
                if not mine.is_dir():
                    mine.mkdir(parents=True, exist_ok=True)
                    listing.appendleft((prio, name))
                continue  # another consumer took it
            try:
                job = read_job_file(dst)
            except (OSError, ValueError) as exc:  # a damaged file: drop it (counted by the caller's log)
                log.error("job file %s unreadable (%s): removed", dst, exc)
                with contextlib.suppress(OSError):
                    size = dst.stat().st_size
                    dst.unlink()
                    self._add(cls, -1, -size)
                continue
            job.restored = job.enqueued_ns < self.opened_ns
            self._add(cls, -1, -job.size)
            self._claimed[job.id] = dst
            return job
        return None

    def ack(self, job: Job) -> None:
        path = self._claimed.pop(job.id, None)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def nack(self, job: Job) -> None:
        path = self._claimed.pop(job.id, None)
        if path is None:
            return
        job.attempts += 1
        try:
            os.rename(path, self._ready_dir(job.cls, job.priority) + _name(job))
        except OSError as exc:
            log.error("cannot give job %s back: %s", job.id, exc)
            return
        self._add(job.cls, 1, job.size)

    def recover(self, consumer: str | None = None) -> list[Job]:
        base = self.root / "claimed"
        dirs = [base / consumer] if consumer is not None else [p for p in base.iterdir() if p.is_dir()]
        dead: list[Job] = []
        for d in dirs:
            if not d.is_dir():
                continue
            for path in sorted(d.iterdir()):
                try:
                    job = read_job_file(path)
                except (OSError, ValueError) as exc:
                    log.error("job file %s unreadable (%s): removed", path, exc)
                    with contextlib.suppress(OSError):
                        path.unlink()
                    continue
                job.attempts += 1
                if job.attempts >= self.max_attempts:
                    mine = self.root / "claimed" / self._name
                    mine.mkdir(parents=True, exist_ok=True)
                    dst = mine / _name(job)
                    os.rename(path, dst)
                    self._claimed[job.id] = dst
                    dead.append(job)
                    continue
                try:
                    os.rename(path, self._ready_dir(job.cls, job.priority) + _name(job))
                except OSError as exc:
                    log.error("cannot give job %s back: %s", job.id, exc)
                    continue
                self._add(job.cls, 1, job.size)
        return dead

    # -- counters ---------------------------------------------------------------------------
    def depth(self, cls: str) -> int:
        return int(self._counts[:, self._cix[cls], 0].sum())

    def in_hand(self) -> int:
        """Jobs claimed by consumers (being inspected), all classes: one listing per consumer."""
        base = self.root / "claimed"
        try:
            return sum(len(os.listdir(d)) for d in base.iterdir() if d.is_dir())
        except OSError:
            return 0

    def bytes_queued(self, cls: str) -> int:
        return int(self._counts[:, self._cix[cls], 1].sum())

    def oldest_age(self, cls: str, now_ns: int) -> float | None:
        oldest = None
        for _prio, name in self._names(cls):
            try:
                enq = int(name[:20])
            except ValueError:
                continue
            oldest = enq if oldest is None else min(oldest, enq)
        return None if oldest is None else max(0.0, (now_ns - oldest) / 1e9)

    def _add(self, cls: str, n: int, nbytes: int) -> None:
        row = self._counts[self._slot, self._cix[cls]]
        row[0] += n
        row[1] += nbytes
        if n > 0:
            row[2] += n

    # -- shutdown and the spool -------------------------------------------------------------
    def shutdown(self) -> list[Job]:
        """Spool every job still here (claimed ones first go back to their queue); returns
        those beyond ``spool_bytes`` (claimed by this process: record them and `ack`). Call
        once every other process that uses the queue has exited."""
        refused = self.recover(None)
        if self.spool_path is None:
            return refused
        try:
            return refused + self._write_spool(self.spool_path)
        except OSError as exc:
            log.error("cannot write the job spool %s: %s", self.spool_path, exc)
            return refused + [j for c in self.classes for _p, path in list(self._scan(c))
                              if (j := self._claim_path(c, path)) is not None]

    def _write_spool(self, spool: Path) -> list[Job]:
        refused: list[Job] = []
        tmp = spool.with_name(spool.name + ".tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        total = 0
        with open(tmp, "wb") as out:
            for cls in self.classes:
                for _prio, path in sorted(self._scan(cls), key=lambda x: (x[0], x[1].name)):
                    try:
                        blob = path.read_bytes()
                    except OSError:
                        continue
                    if total + len(blob) + 8 > self.spool_bytes:
                        job = self._claim_path(cls, path)
                        if job is not None:
                            refused.append(job)
                        continue
                    out.write(struct.pack(">II", len(blob), _attempts(path.name)))
                    out.write(blob)
                    total += len(blob) + 8
                    written.append(path)
                    self._add(cls, -1, -len(blob))
            out.flush()
            os.fsync(out.fileno())
        if written:
            os.replace(tmp, spool)
            _fsync_dir(spool.parent)
        else:
            tmp.unlink()
        for path in written:
            with contextlib.suppress(OSError):
                path.unlink()
        if written:
            log.info("spooled %d queued job(s), %d bytes, to %s", len(written), total, spool)
        return refused

    def _claim_path(self, cls: str, path: Path) -> Job | None:
        try:
            job = read_job_file(path)
        except (OSError, ValueError):
            return None
        mine = self.root / "claimed" / self._name
        mine.mkdir(parents=True, exist_ok=True)
        dst = mine / path.name
        os.rename(path, dst)
        self._add(cls, -1, -job.size)
        self._claimed[job.id] = dst
        return job

    def _restore_spool(self) -> None:
        """The previous run's spool back into ready/ (jobs a kill -9 also left here win)."""
        if self.spool_path is None or not self.spool_path.exists():
            return
        present = {_job_id(p.name) for cls in self.classes for _prio, p in self._scan(cls)}
        present |= {_job_id(p.name) for d in (self.root / "claimed").iterdir() if d.is_dir() for p in d.iterdir()}
        n = 0
        for blob, attempts in _spool_records(self.spool_path):
            try:
                job = _decode(blob)
            except (ValueError, KeyError) as exc:
                log.error("a spooled job is unreadable (%s): skipped", exc)
                continue
            if job.id in present or job.cls not in self.limits:
                continue
            job.attempts = attempts
            dst = self._ready_dir(job.cls, job.priority) + _name(job)
            tmp = self.root / "tmp" / f"{job.id}.tmp"
            tmp.write_bytes(blob)
            os.rename(tmp, dst)
            n += 1
        self.spool_path.unlink()
        log.info("restored %d job(s) from the spool %s", n, self.spool_path)

    # -- helpers ----------------------------------------------------------------------------
    def _ready_dir(self, cls: str, prio: int) -> str:
        """The directory of (class, priority), with a trailing slash (made on first use)."""
        d = f"{self.root}/ready/{cls}/{int(prio)}/"
        if d not in self._dirs:
            os.makedirs(d, exist_ok=True)
            self._dirs.add(d)
        return d

    def _names(self, cls: str) -> Iterator[tuple[int, str]]:
        """(priority, file name) of the waiting jobs of ``cls`` (the consumer's fast listing)."""
        base = f"{self.root}/ready/{cls}"
        try:
            prios = [e.name for e in os.scandir(base) if e.name.isdigit()]
        except FileNotFoundError:
            return
        for p in prios:
            prio = int(p)
            try:
                names = os.listdir(f"{base}/{p}")
            except FileNotFoundError:
                continue
            for name in names:
                if name.endswith(".job"):
                    yield prio, name

    def _scan(self, cls: str) -> Iterator[tuple[int, Path]]:
        base = self.root / "ready" / cls
        try:
            prios = [e for e in os.scandir(base) if e.is_dir()]
        except FileNotFoundError:
            return
        for e in prios:
            try:
                prio = int(e.name)
            except ValueError:
                continue
            try:
                for f in os.scandir(e.path):
                    if f.name.endswith(".job"):
                        yield prio, Path(f.path)
            except FileNotFoundError:
                continue

    def close(self) -> None:
        if self._lockfd is not None:
            os.close(self._lockfd)
            self._lockfd = None

    def empty(self) -> bool:
        """Whether no job file is left (queued, claimed or half-written; the lock does not count)."""
        return not any(p.is_file() and p.name != "lock" for p in self.root.rglob("*"))

    def remove(self) -> None:
        """Delete the directory (tests; a sensor keeps it for the next start)."""
        self.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def stats(self, now_ns: int | None = None) -> dict[str, dict[str, Any]]:
        """Per class: waiting jobs, their bytes and the oldest one's age (seconds)."""
        now = self.clock() if now_ns is None else now_ns
        return {c: {"depth": self.depth(c), "bytes": self.bytes_queued(c),
                    "oldest_age_s": round(self.oldest_age(c, now) or 0.0, 3)} for c in self.classes}


def _spool_records(path: Path) -> Iterator[tuple[bytes, int]]:
    """(job blob, attempts) of every whole record of a spool file (a torn tail is ignored)."""
    with open(path, "rb") as fh:
        while True:
            head = fh.read(8)
            if len(head) < 8:
                return
            n, attempts = struct.unpack(">II", head)
            blob = fh.read(n)
            if len(blob) < n:
                log.warning("spool %s ends in a torn record: ignored", path)
                return
            yield blob, attempts


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
