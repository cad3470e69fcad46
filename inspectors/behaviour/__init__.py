"""Behaviour anomalies: hosts, zones and user-agent families that move content as they never did.

A sans-IO stage on packet time (see docs/behaviour.md):

- `features`: what one content object contributes (bytes and objects up/down by content class,
  destination, category, findings, alerts) and the window vector;
- `baseline`: hour-of-week and daily baselines (robust statistics on a log scale);
- `detectors`: robust z-scores, the sustained 3-day sums, novelty, periodicity; `forest`: the
  peer-group Isolation Forest;
- `decide`: anomalies → alerts through the policy's behaviour profiles;
- `stage`: `BehaviourStage` (``observe`` / ``tick`` / ``close``, verdicts, memory);
- `state` / `persist`: the SQLite state file (baselines, anomalies, verdicts).

This package imports only the kernel (``appliance.model``); names are loaded lazily so that the
settings can validate a time zone without importing numpy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BehaviourConfig", "BehaviourStage", "Observation", "observation"]


def __getattr__(name: str) -> Any:
    if name == "BehaviourStage":
        from inspectors.behaviour.stage import BehaviourStage

        return BehaviourStage
    if name == "BehaviourConfig":
        from inspectors.behaviour.config import BehaviourConfig

        return BehaviourConfig
    if name in ("Observation", "observation"):
        from inspectors.behaviour import features

        return getattr(features, name)
    raise AttributeError(name)
