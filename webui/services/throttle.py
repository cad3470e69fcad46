"""Login throttling: exponential back-off per (user name, address), per address and per user name.

Nothing is ever locked hard. Each key counts consecutive failures; once its free attempts are
spent, each further failure makes it wait ``base * 2**n`` seconds (up to ``max``) before the
next attempt is even checked. The keys:

- ``user_ip`` (user name, address): someone guessing one account from one place;
- ``ip`` (address, any user name): someone trying many names from one place;
- ``user`` (user name, any address): a guess spread over many addresses. It applies only to
  browsers without that account's device cookie (set at each successful login), so an attacker
  cannot keep the real user out, whatever they hammer from wherever.

Keys use the name as typed (lower-cased), whether or not such a user exists, so throttling
says nothing about which accounts exist. State lives in the console database, so that
``tapsift user unlock`` (another process) can clear it. Concurrent attempts are admitted only
within the free budget; beyond it, one at a time per key (``admit``/``release`` run on the
event loop, between awaits, so the in-flight counts need no lock).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from webui.db import ConsoleDB

Key = tuple[str, str, str]
"""(scope, user name, address)."""

MAX_ROWS = 200_000
"""Beyond this many tracked keys the oldest are dropped (a spray of names and addresses)."""


def norm_name(username: str) -> str:
    return username.strip().lower()[:64]


@dataclass(slots=True, frozen=True)
class Refusal:
    """An attempt refused unchecked: which key, and seconds until it may try again."""

    scope: str
    retry_after: float

    @property
    def retry_after_s(self) -> int:
        """Whole seconds for ``Retry-After`` (never 0)."""
        return max(1, math.ceil(self.retry_after))


class LoginThrottle:
    """Exponential back-off of failed logins (see the module doc)."""

    def __init__(self, db: ConsoleDB, *, free: int, source_free: int, account_free: int, base_s: float,
                 max_s: float, forget_s: float, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.free = {"user_ip": free, "ip": source_free, "user": account_free}
        self.base_s, self.max_s, self.forget_s = base_s, max_s, forget_s
        self.clock = clock
        self._inflight: Counter[Key] = Counter()
        self._writes = 0

    @classmethod
    def from_settings(cls, db: ConsoleDB, settings: Any) -> LoginThrottle:
        return cls(db, free=settings.login_free_attempts, source_free=settings.login_source_free_attempts,
                   account_free=settings.login_account_free_attempts, base_s=settings.login_backoff_base_s,
                   max_s=settings.login_backoff_max_s, forget_s=settings.login_backoff_forget_s)

    @staticmethod
    def keys(username: str, ip: str, trusted_device: bool) -> list[Key]:
        name = norm_name(username)
        keys: list[Key] = [("user_ip", name, ip), ("ip", "", ip)]
        if not trusted_device:
            keys.append(("user", name, ""))
        return keys

    def backoff(self, scope: str, failures: int) -> float:
        """The wait after *failures* consecutive failures on a key of *scope* (0 within the free ones)."""
        over = failures - self.free[scope]
        if over <= 0:
            return 0.0
        return min(self.max_s, self.base_s * 2.0 ** min(over - 1, 60))

    def _rows(self, keys: Iterable[Key]) -> dict[Key, dict[str, Any]]:
        out = {}
        for k in keys:
            row = self.db.login_throttle.get(k)
            if row is not None:
                out[k] = row
        return out

    def admit(self, keys: list[Key], *, audit_user: str = "") -> Refusal | None:
        """None: go ahead (then call `release`); else the attempt is refused without checking it.

        The first refusal of each back-off period is audited (``login.throttled``)."""
        now = self.clock()
        rows = self._rows(keys)
        worst: Refusal | None = None
        blocked: list[tuple[Key, dict[str, Any]]] = []
        for k in keys:
            row = rows.get(k)
            fresh = row is not None and now - row["last_failure"] < self.forget_s
            failures = row["failures"] if fresh and row is not None else 0
            if fresh and row is not None and row["blocked_until"] > now:
                wait = row["blocked_until"] - now
                blocked.append((k, row))
            elif self._inflight[k] and failures + self._inflight[k] >= self.free[k[0]]:
                wait = self.base_s  # its free attempts are all under way: one at a time from here
            else:
                continue
            if worst is None or wait > worst.retry_after:
                worst = Refusal(k[0], wait)
        if worst is not None:
            self._refused(blocked, worst, audit_user, now)
            return worst
        for k in keys:
            self._inflight[k] += 1
        return None

    def _refused(self, blocked: list[tuple[Key, dict[str, Any]]], worst: Refusal, who: str, now: float) -> None:
        first = [(k, r) for k, r in blocked if r["refused"] == 0]
        with self.db.tx() as tx:
            for k, _ in blocked:
                tx.login_throttle.refused(k)
            for (scope, _, ip), r in first:
                self.db.audit(tx, who[:64], "login.throttled", who[:64], None,
                              {"scope": scope, "failures": r["failures"],
                               "retry_after_s": round(r["blocked_until"] - now, 1)}, ip or "")

    def release(self, keys: list[Key]) -> None:
        """The admitted attempt is over (whatever its result)."""
        for k in keys:
            self._inflight[k] -= 1
            if self._inflight[k] <= 0:
                del self._inflight[k]

    def failed(self, keys: list[Key]) -> float:
        """Count a failure on each key; returns the longest back-off it started (0: none)."""
        now = self.clock()
        rows = self._rows(keys)
        longest = 0.0
        with self.db.tx() as tx:
            for k in keys:
                row = rows.get(k)
                fresh = row is not None and now - row["last_failure"] < self.forget_s
                failures = (row["failures"] if fresh and row is not None else 0) + 1
                wait = self.backoff(k[0], failures)
                longest = max(longest, wait)
                tx.login_throttle.failed(k, failures, now, now + wait if wait else 0)
            tx.login_throttle.forget_before(now - self.forget_s)
            self._writes += 1
            if self._writes % 1000 == 0:
                tx.login_throttle.keep_newest(MAX_ROWS)
        return longest

    def succeeded(self, keys: list[Key]) -> None:
        """A full login: the user's keys start again (the address keeps its count)."""
        with self.db.tx() as tx:
            for k in keys:
                if k[0] != "ip":
                    tx.login_throttle.delete(k)

    def throttled_users(self) -> dict[str, float]:
        return throttled_users(self.db, self.clock())


def throttled_users(db: ConsoleDB, now: float | None = None) -> dict[str, float]:
    """User name (lower case) → until when some login key of theirs is waiting."""
    return db.login_throttle.waiting_users(time.time() if now is None else now)


def clear_throttle(db: ConsoleDB, *, username: str | None = None, ip: str | None = None) -> int:
    """Forget the failures of a user name (all addresses) and/or of an address; returns keys removed."""
    with db.tx() as tx:
        return tx.login_throttle.clear(user=None if username is None else norm_name(username), ip=ip)
