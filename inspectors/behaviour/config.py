"""The stage's modelling parameters (the ``behaviour`` section of the settings, passed in as a
plain mapping: inspectors do not import the appliance's settings). Detector thresholds are not
here: they belong to the policy's behaviour profiles (per zone pair)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_CATEGORY_RISK: Mapping[str, float] = {
    "paste": 1.0, "file-sharing": 1.0, "webmail": 1.0, "anonymizer": 1.0, "cloud-storage": 0.6,
    "": 0.3, "web": 0.2, "social": 0.3,
}
"""Risk of uploading to a category for the novelty detector; ``""`` is an uncategorised
destination, other categories get `DEFAULT_RISK`. Categories at 1.0 are also the "risky" ones of
the ``risky_up_bytes`` feature."""
DEFAULT_RISK = 0.1


@dataclass(frozen=True, slots=True)
class BehaviourConfig:
    """See docs/configuration.md (``behaviour``) and docs/behaviour.md."""

    state_path: str | None = None
    """SQLite state file; None keeps everything in memory (tests, benchmarks)."""
    timezone: str = "UTC"
    holidays: tuple[str, ...] = ()
    window_s: int = 3600
    grace_s: float = 60.0
    internal_cidrs: tuple[str, ...] = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
    internal_zones: tuple[str, ...] | None = None
    warmup_days: float = 7.0
    history_weeks: int = 4
    min_samples: int = 6
    max_hosts: int = 10_000
    max_destinations: int = 512
    max_tracks: int = 16
    idle_days: float = 35.0
    user_agents: bool = True
    offhours_peer_share: float = 0.003
    common_share: float = 0.05
    category_risk: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_CATEGORY_RISK))
    min_events: int = 12
    min_period_s: float = 10.0
    max_period_s: float = 3600.0
    retrain_interval_s: float = 86400.0
    forest_capacity: int = 8192
    forest_trees: int = 100
    forest_min_samples: int = 512
    persist_interval_s: float = 21600.0
    seed: int = 0

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any] | None) -> BehaviourConfig:
        """From the settings section (``settings.behaviour.model_dump()``); unknown keys (such as
        ``enabled``) are ignored, lists become tuples."""
        if not m:
            return cls()
        names = {f.name for f in fields(cls)}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in m.items() if k in names}
        if "category_risk" in kw and kw["category_risk"] is not None:
            kw["category_risk"] = {**DEFAULT_CATEGORY_RISK, **kw["category_risk"]}
        elif "category_risk" in kw:
            kw.pop("category_risk")
        return cls(**kw)

    def risk(self, category: str) -> float:
        return float(self.category_risk.get(category, DEFAULT_RISK))
