"""Atomic policy reload: the running policy is replaced only by a valid new one.

A worker takes ``holder.current`` once per object and uses that snapshot (policy, zone map,
engine) for the whole object, so a reload never mixes two policies in one decision. The swap is
one attribute assignment. Signal handlers call `PolicyHolder.request_reload` (it only sets a
flag); the worker loop calls `PolicyHolder.reload_if_requested` at a safe point.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from policies.engine import AlertIds, PolicyEngine, Suppressor
from policies.schema import DEFAULT_INSPECTORS, Policy, PolicyError, load_policy
from policies.zones import ZoneMap


@dataclass(slots=True, frozen=True)
class ActivePolicy:
    """Everything derived from one policy version, swapped as a unit."""

    policy: Policy
    zones: ZoneMap
    engine: PolicyEngine
    generation: int
    """1 for the first policy, +1 per successful reload that changed it."""


class PolicyHolder:
    """Holds the active policy; `reload` swaps it atomically or keeps the old one and says why.

    The alert id counter and the suppressor are shared by every version, so ids stay unique and
    suppression windows survive a reload. The initial load raises `PolicyError` when invalid.
    """

    def __init__(self, policy: Policy | str | Path, *, inspectors: Iterable[str] = DEFAULT_INSPECTORS,
                 ids: AlertIds | None = None) -> None:
        self.inspectors = frozenset(inspectors)
        if isinstance(policy, Policy):
            self.path: Path | None = Path(policy.source) if Path(policy.source).is_file() else None
        else:
            self.path = Path(policy)
            policy = load_policy(self.path, inspectors=self.inspectors)
        self.ids = ids or AlertIds()
        self.suppressor = Suppressor.for_policy(policy)
        self._lock = threading.Lock()
        self._requested = False
        self._active = self._build(policy, 1)

    def _build(self, policy: Policy, generation: int) -> ActivePolicy:
        return ActivePolicy(policy, ZoneMap(policy),
                            PolicyEngine(policy, ids=self.ids, suppressor=self.suppressor), generation)

    @property
    def current(self) -> ActivePolicy:
        return self._active

    def request_reload(self) -> None:
        """Async-signal-safe: mark that a reload is wanted (e.g. from a SIGHUP handler)."""
        self._requested = True

    def reload_if_requested(self) -> tuple[bool, str] | None:
        if not self._requested:
            return None
        self._requested = False
        return self.reload()

    def reload(self, path: str | Path | None = None) -> tuple[bool, str]:
        """Load ``path`` (default: the current file); on success swap, else keep the old policy.

        Returns (ok, message); the message names the file, the versions and, on failure, every
        problem (one ``file:line:column: …`` line each).
        """
        with self._lock:
            old = self._active
            p = Path(path) if path is not None else self.path
            if p is None:
                return False, f"no policy file to reload; keeping version {old.policy.version}"
            try:
                new = load_policy(p, inspectors=self.inspectors)
            except PolicyError as exc:
                return False, (f"{p}: invalid, not reloaded; keeping version {old.policy.version} "
                               f"({len(exc.issues)} problem{'s' if len(exc.issues) != 1 else ''}):\n{exc}")
            self.path = p
            if new.version == old.policy.version and new.source == old.policy.source:
                return True, f"{p}: unchanged (version {new.version})"
            self.suppressor.configure_for(new)
            self._active = self._build(new, old.generation + 1)
            return True, f"{p}: reloaded, version {old.policy.version} -> {new.version} ({new.summary()})"
