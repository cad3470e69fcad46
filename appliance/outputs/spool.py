"""A durable, ordered, bounded disk queue, and the delivery loop that drains it.

The spool is one SQLite database per output (``<spool_dir>/spool.sqlite3``, WAL mode): a
message is appended in its own transaction and deleted only once the output has delivered it
(for syslog over TCP/TLS: once the receiver has provably had it, see ``syslog.py``). Sequence
numbers come from ``AUTOINCREMENT`` and are never reused, so delivery order is append order,
across restarts too.

Durability: ``sync="normal"`` (default) survives a crash or ``kill -9`` of the process (every
committed append is in the WAL, which the OS keeps); ``sync="full"`` also survives a power cut
or kernel crash, at one fsync per append.

Bounds: when the spool holds ``max_bytes`` of messages, new messages are refused and counted
(``dropped_full``, also persisted): the oldest undelivered alerts are kept and order is never
broken. A lock file stops two processes from draining one spool.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["Spool", "SpoolLocked", "SpooledOutput"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class SpoolLocked(RuntimeError):
    """Another process (or output) already drains this spool directory."""


class Spool:
    """Append-only FIFO of byte messages in SQLite; ``peek`` after a cursor, ``ack`` up to a sequence."""

    def __init__(
        self, spool_dir: str | Path | None, max_bytes: int = DEFAULT_MAX_BYTES, sync: str = "normal"
    ) -> None:
        if sync not in ("normal", "full"):
            raise ValueError("sync must be 'normal' or 'full'")
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._lockfd: int | None = None
        if spool_dir is None:
            self.path = ":memory:"
        else:
            d = Path(spool_dir)
            d.mkdir(parents=True, exist_ok=True)
            self.path = str(d / "spool.sqlite3")
            self._lockfd = os.open(d / "spool.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(self._lockfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._lockfd)
                raise SpoolLocked(f"spool {d} is in use by another output") from None
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={sync.upper()}")
        self._db.executescript(
            """
            CREATE TABLE IF NOT EXISTS queue (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                ts REAL NOT NULL,
                msg BLOB NOT NULL
            );
            CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            """
        )
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(length(msg)), 0) FROM queue").fetchone()
        self._count, self._bytes = int(row[0]), int(row[1])
        got = self._db.execute("SELECT value FROM counters WHERE name = 'dropped_full'").fetchone()
        self.dropped_full = int(got[0]) if got else 0

    def __len__(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        """Bytes of messages waiting."""
        return self._bytes

    def append(self, msg: bytes) -> bool:
        """Queue one message durably; False (and counted) when the spool is full."""
        return self.append_many([msg]) == 1

    def append_many(self, msgs: Iterable[bytes]) -> int:
        """Queue messages in one transaction, in order; returns how many fitted (the rest are counted)."""
        now = time.time()
        with self._lock:
            rows, size, refused = [], self._bytes, 0
            for m in msgs:
                if refused or size + len(m) > self.max_bytes:
                    refused += 1  # never skip ahead: keep order, refuse the rest
                    continue
                rows.append((now, bytes(m)))
                size += len(m)
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO queue (ts, msg) VALUES (?, ?)", rows)
                if refused:
                    self._db.execute(
                        "INSERT INTO counters (name, value) VALUES ('dropped_full', ?) "
                        "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                        (refused,),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count += len(rows)
            self._bytes = size
            if refused:
                self.dropped_full += refused
                log.warning(
                    "spool %s full (%d bytes): %d message(s) dropped", self.path, self.max_bytes, refused
                )
            return len(rows)

    def peek(self, after: int = 0, limit: int = 256) -> list[tuple[int, bytes]]:
        """Up to *limit* oldest messages with sequence number above *after*."""
        with self._lock:
            return [
                (int(s), bytes(m))
                for s, m in self._db.execute(
                    "SELECT seq, msg FROM queue WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
                )
            ]

    def ack(self, upto: int) -> int:
        """Delete every message with sequence number ≤ *upto* (delivered); returns how many."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(length(msg)), 0) FROM queue WHERE seq <= ?", (upto,)
            ).fetchone()
            if not row[0]:
                return 0
            self._db.execute("DELETE FROM queue WHERE seq <= ?", (upto,))
            self._count -= int(row[0])
            self._bytes -= int(row[1])
            return int(row[0])

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            if self._lockfd is not None:
                os.close(self._lockfd)
                self._lockfd = None


class SpooledOutput(ABC):
    """An output that renders records, spools them, and delivers them in order from a thread.

    ``send(record)`` never blocks on the network: it renders and appends to the spool. Delivery
    happens in ``pump()`` (called by the background thread from ``start()``, or by tests),
    which reconnects with exponential backoff after an error. Subclasses implement ``render``
    and ``_pump``.
    """

    name = "output"

    def __init__(
        self,
        spool_dir: str | Path | None,
        *,
        max_spool_bytes: int = DEFAULT_MAX_BYTES,
        spool_sync: str = "normal",
        batch: int = 256,
        backoff_min: float = 0.5,
        backoff_max: float = 10.0,
    ) -> None:
        self.spool = Spool(spool_dir, max_spool_bytes, spool_sync)
        self.batch = batch
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.delivered = 0
        self.errors = 0
        self.render_errors = 0
        self.last_error = ""
        self._failing = 0
        self._pump_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @abstractmethod
    def render(self, record: dict[str, Any]) -> bytes:
        """The message for one alert record, as spooled and sent (without transport framing)."""

    @abstractmethod
    def _pump(self) -> tuple[int, BaseException | None]:
        """Deliver what is pending now; (messages written, the error that stopped delivery)."""

    def _idle_wait(self) -> float:
        """How long the thread may sleep with nothing new to send."""
        return 1.0

    def _disconnect(self) -> None:  # noqa: B027 - optional hook
        """Drop any connection (subclasses with connections override)."""

    def send(self, record: dict[str, Any]) -> bool:
        """Render and spool one alert record; False when it could not be queued (counted)."""
        return self.send_many([record]) == 1

    def send_many(self, records: Iterable[dict[str, Any]]) -> int:
        """Render and spool records in one transaction; returns how many were queued."""
        msgs = []
        for r in records:
            try:
                msgs.append(self.render(r))
            except Exception:  # a record that cannot be rendered must not stop the others
                self.render_errors += 1
                log.exception("%s: cannot render alert record", self.name)
        n = self.spool.append_many(msgs) if msgs else 0
        self._wake.set()
        return n

    def pump(self) -> int:
        """Deliver pending messages once; returns how many were written. Errors are recorded, not raised."""
        with self._pump_lock:
            n, err = self._pump()
        if err is not None:
            self.errors += 1
            self._failing += 1
            self.last_error = f"{type(err).__name__}: {err}"
            level = logging.WARNING if self._failing == 1 else logging.DEBUG
            log.log(level, "%s: delivery failed, will retry: %s", self.name, self.last_error)
        elif self._failing and n:
            log.warning("%s: delivery resumed after %d failed attempt(s)", self.name, self._failing)
            self._failing = 0
        return n

    def _pump_ok(self) -> tuple[int, bool]:
        errors = self.errors
        n = self.pump()
        return n, self.errors == errors

    def start(self) -> None:
        """Deliver from a background thread until ``close()``."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"tapsift-{self.name}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        backoff = self.backoff_min
        while not self._stop.is_set():
            self._wake.clear()
            try:
                n, ok = self._pump_ok()
            except Exception:  # never let the delivery thread die
                log.exception("%s: unexpected error in delivery", self.name)
                n, ok = 0, False
            if not ok:
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.backoff_max)
                continue
            backoff = self.backoff_min
            if n == 0:
                self._wake.wait(self._idle_wait())

    def stop(self) -> None:
        """Stop the background thread (messages stay spooled)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def flush(self, timeout: float = 10.0) -> bool:
        """Deliver until the spool is empty or *timeout* passes; True when everything was delivered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, ok = self._pump_ok()
            if len(self.spool) == 0:
                return True
            time.sleep(0.05 if ok else min(0.5, max(0.0, deadline - time.monotonic())))
        return len(self.spool) == 0

    def close(self, flush_timeout: float = 5.0) -> bool:
        """Stop the thread, try to deliver what is left, release the spool; True if nothing was left."""
        self.stop()
        done = self.flush(flush_timeout) if flush_timeout > 0 else len(self.spool) == 0
        with self._pump_lock:
            self._disconnect()
        left = len(self.spool)
        self.spool.close()
        return done and left == 0

    def stats(self) -> dict[str, Any]:
        """Counters for the console and Prometheus."""
        return {
            "output": self.name,
            "pending": len(self.spool),
            "pending_bytes": self.spool.bytes,
            "delivered": self.delivered,
            "errors": self.errors,
            "render_errors": self.render_errors,
            "dropped_full": self.spool.dropped_full,
            "last_error": self.last_error,
        }
