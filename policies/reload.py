"""Atomic policy reload: the running policy is replaced only by a valid new one.

A worker takes ``holder.current`` once per object and uses that snapshot (policy, zone map,
engine) for the whole object, so a reload never mixes two policies in one decision. The swap is
one attribute assignment. Signal handlers call `PolicyHolder.request_reload` (it only sets a
flag); the worker loop calls `PolicyHolder.reload_if_requested` at a safe point.

A policy can be valid and still name something that cannot run (a model file that is missing or
not a model, an empty fingerprint set). With a ``check`` (``inspectors.registry.profile_problems``,
passed in by the caller: policies do not import inspectors), a reload builds the new policy's
inspectors first; a profile whose inspectors cannot be built keeps its running definition (and
so its running inspectors), the rest of the new policy takes effect, and the error is logged and
counted (``counters["policy_reload_inspector_errors"]``, one per profile kept).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from policies.engine import AlertIds, PolicyEngine, Suppressor
from policies.schema import DEFAULT_INSPECTORS, DEFAULT_MODEL_DIR, Policy, PolicyError, load_policy
from policies.zones import ZoneMap

log = logging.getLogger(__name__)

ProfileCheck = Callable[[Policy], Mapping[str, list[str]]]
"""Profile name → why its inspectors cannot run (``FILE:LINE:COLUMN: …`` lines); see
``inspectors.registry.profile_problems``."""


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
                 ids: AlertIds | None = None, check: ProfileCheck | None = None,
                 model_dir: str | Path = DEFAULT_MODEL_DIR) -> None:
        self.inspectors = frozenset(inspectors)
        self.model_dir = model_dir
        self.check = check
        self.counters: Counter[str] = Counter()
        self.problems: list[str] = []
        """Why inspectors of the active policy cannot run (``check``; empty without one)."""
        if isinstance(policy, Policy):
            self.path: Path | None = Path(policy.source) if Path(policy.source).is_file() else None
        else:
            self.path = Path(policy)
            policy = load_policy(self.path, inspectors=self.inspectors, model_dir=model_dir)
        if check is not None:
            self.problems = [p for ps in check(policy).values() for p in ps]
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
                new = load_policy(p, inspectors=self.inspectors, model_dir=self.model_dir)
            except PolicyError as exc:
                return False, (f"{p}: invalid, not reloaded; keeping version {old.policy.version} "
                               f"({len(exc.issues)} problem{'s' if len(exc.issues) != 1 else ''}):\n{exc}")
            self.path = p
            if new.version == old.policy.version and new.source == old.policy.source:
                return True, f"{p}: unchanged (version {new.version})"
            note = ""
            if self.check is not None:
                new, note = self._keep_running(new, old.policy)
            self.suppressor.configure_for(new)
            self._active = self._build(new, old.generation + 1)
            return True, f"{p}: reloaded, version {old.policy.version} -> {new.version} ({new.summary()}){note}"

    def _keep_running(self, new: Policy, old: Policy) -> tuple[Policy, str]:
        """``new`` with every profile whose inspectors cannot be built replaced by its running
        definition (a new profile has none: it stays, and its inspectors do not run)."""
        assert self.check is not None
        bad = dict(self.check(new))
        self.problems = [p for ps in bad.values() for p in ps]
        if not bad:
            return new, ""
        profiles = dict(new.profiles)
        kept, broken = [], []
        for name in bad:
            if name in old.profiles:
                profiles[name] = old.profiles[name]
                kept.append(name)
            else:
                broken.append(name)
        self.counters["policy_reload_inspector_errors"] += len(bad)
        lines = "\n".join(self.problems)
        log.error("policy %s: %d profile(s) cannot build their inspectors; kept at version %s: %s; "
                  "not running: %s\n%s", new.source, len(bad), old.version, ", ".join(kept) or "-",
                  ", ".join(broken) or "-", lines)
        merged = dataclasses.replace(new, profiles=profiles, version=f"{new.version}+kept")
        note = (f"; inspectors cannot be built for {', '.join(sorted(bad))}: "
                + (f"{', '.join(kept)} kept as in version {old.version}" if kept else "")
                + ("; " if kept and broken else "") + (f"{', '.join(broken)} not running" if broken else "")
                + f"\n{lines}")
        return merged, note
