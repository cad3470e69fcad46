"""Policy edited centrally, pushed to the sensors.

The console versions every saved policy in the store (``policy_versions``). In a fleet the newest
saved version is the fleet's policy:

- `PolicyRelay` (a thread of ``tapsift ingest`` on PostgreSQL) listens on the channel
  ``tapsift_policy`` (the console's "push" sends a ``NOTIFY``) and also looks every
  ``policy_poll_s``; when the newest version differs from the newest entry of the policy stream,
  it appends that version (its text, history id, author) to the stream (``MAXLEN ~ 100``).
- `PolicyFollower` (a thread of a live sensor) reads the stream's newest entry at start and every
  new one after; an entry whose version the sensor does not run is checked with the sensor's own
  loader (the validation of a SIGHUP reload), written over the sensor's policy file (atomically)
  and the sensor reloads as on SIGHUP. An invalid one is refused, counted and logged: the sensor
  keeps its running policy. The version it applies is in its heartbeats (the sensors page).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.bus.base import EVE_FIELD, Bus, BusError
from appliance.fleet.consumer import Backoff

if TYPE_CHECKING:
    from appliance.settings import BusSettings

__all__ = ["CHANNEL", "PolicyFollower", "PolicyRelay", "policy_version", "write_atomic"]

log = logging.getLogger("tapsift.policy")

CHANNEL = "tapsift_policy"
"""The PostgreSQL notification channel of a push."""
POLICY_MAXLEN = 100


def policy_version(text: str | bytes) -> str:
    """A policy's version: the first 12 hex digits of SHA-256 of its bytes (as the sensor logs it)."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(raw).hexdigest()[:12]


def write_atomic(path: Path, text: str) -> None:
    """Replace *path* with *text*: a temporary file in the same folder, fsync, rename."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o640
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class PolicyRelay:
    """The store's newest policy version → the policy stream (module doc)."""

    def __init__(self, dsn: str, connect: Callable[[], Bus], bus: BusSettings) -> None:
        self.dsn = dsn
        self.connect = connect
        self.key = bus.policy_key
        self.poll_s = bus.policy_poll_s
        self.backoff = Backoff(0.5, bus.retry_max_s)
        self.published = ""
        self.counters: Counter[str] = Counter()

    def run(self, stop: threading.Event) -> None:
        import psycopg

        from appliance.store.dsn import Dsn

        url = Dsn.parse(self.dsn).url
        while not stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.backoff.reset()
                    while not stop.is_set():
                        self.check(conn)
                        deadline = time.monotonic() + self.poll_s
                        while not stop.is_set() and time.monotonic() < deadline:
                            if list(conn.notifies(timeout=min(1.0, self.poll_s), stop_after=1)):
                                break
            except (psycopg.Error, BusError, OSError) as exc:
                self.counters["errors"] += 1
                level = logging.WARNING if self.backoff.failures == 0 else logging.DEBUG
                log.log(level, "policy relay: %s (retrying)", exc)
                stop.wait(self.backoff.next())

    def check(self, conn: Any) -> bool:
        """Publish the newest saved version if the stream does not have it; True if published."""
        row = conn.execute('SELECT id, version, text, "user", ts FROM policy_versions ORDER BY id DESC LIMIT 1'
                           ).fetchone()
        if row is None or row[1] == self.published:
            return False
        vid, version, text, user, ts = row
        bus = self.connect()
        try:
            last = bus.last(self.key)
            if last is not None:
                with contextlib.suppress(ValueError, AttributeError):
                    if last.json().get("version") == version:
                        self.published = version
                        return False
            entry = {"event_type": "policy", "version": version, "history_id": vid, "user": user, "ts": ts,
                     "text": text}
            bus.publish(self.key, [{EVE_FIELD: json.dumps(entry, ensure_ascii=False)}], POLICY_MAXLEN)
        finally:
            bus.close()
        self.published = version
        self.counters["published"] += 1
        log.info("policy version %s (history #%s, by %s) published to the sensors", version, vid, user)
        return True


class PolicyFollower:
    """A sensor's side: apply the versions pushed on the policy stream (module doc).

    *apply_file* is the sensor's policy file; *reload* makes the sensor reload it (as SIGHUP does).
    """

    def __init__(self, connect: Callable[[], Bus], bus: BusSettings, apply_file: str | Path,
                 reload: Callable[[], None], *, model_dir: str | Path | None = None) -> None:
        self.connect = connect
        self.key = bus.policy_key
        self.path = Path(apply_file)
        self.reload = reload
        self.model_dir = model_dir
        self.backoff = Backoff(0.5, bus.retry_max_s)
        try:
            self.version = policy_version(self.path.read_bytes())
        except OSError:
            self.version = ""
        """The version of the policy file the sensor runs."""
        self.counters: Counter[str] = Counter()
        """``applied``, ``rejected``, ``errors``."""
        self.last_error = ""
        self._after: str | None = None

    def run(self, stop: threading.Event) -> None:
        bus: Bus | None = None
        while not stop.is_set():
            try:
                if bus is None:
                    bus = self.connect()
                self.step(bus, block_s=1.0)
                self.backoff.reset()
            except BusError as exc:
                self.counters["errors"] += 1
                if self.backoff.failures == 0:
                    log.warning("policy follower: %s (retrying)", exc)
                if bus is not None:
                    bus.close()
                    bus = None
                stop.wait(self.backoff.next())
        if bus is not None:
            bus.close()

    def step(self, bus: Bus, block_s: float = 0.0) -> None:
        """Apply the newest entry not seen yet (at first: the stream's newest)."""
        if self._after is None:
            last = bus.last(self.key)
            self._after = last.id if last is not None else "0-0"
            if last is not None:
                self.offer(last.eve)
            return
        got = bus.read_after(self.key, self._after, 16, block_s)
        if got:
            self._after = got[-1].id
            self.offer(got[-1].eve)

    def offer(self, raw: bytes) -> bool:
        """Check and apply one pushed version; True if it is now the running one."""
        try:
            entry = json.loads(raw)
            text, version = entry["text"], entry["version"]
            if not isinstance(text, str) or not isinstance(version, str):
                raise TypeError("text and version must be strings")
        except (ValueError, KeyError, TypeError) as exc:
            return self._reject("?", f"not a policy entry: {exc}")
        if version == self.version:
            return True
        if policy_version(text) != version:
            return self._reject(version, "its text does not have this version")
        from policies.schema import PolicyError, load_policy

        kw: dict[str, Any] = {"source": str(self.path)}
        if self.model_dir is not None:
            kw["model_dir"] = self.model_dir
        try:
            load_policy(text.encode("utf-8"), **kw)
        except PolicyError as exc:
            return self._reject(version, f"invalid ({len(exc.issues)} problems): {str(exc)[:2000]}")
        try:
            write_atomic(self.path, text)
        except OSError as exc:
            return self._reject(version, f"cannot write {self.path}: {exc.strerror or exc}")
        old, self.version = self.version, version
        self.counters["applied"] += 1
        log.info("policy version %s pushed (was %s): %s rewritten, reloading", version, old or "-", self.path)
        self.reload()
        return True

    def _reject(self, version: str, why: str) -> bool:
        self.counters["rejected"] += 1
        self.last_error = f"version {version}: {why}"
        log.error("pushed policy version %s refused, keeping version %s: %s", version, self.version or "-", why)
        return False
