"""Anomalies → alerts, by the policy's behaviour profiles (thresholds, severity, zone pair, suppression).

The policy reaches this stage as kernel `InspectorConfig`s (``inspector="behaviour"``), one per
(rule, behaviour profile) in file order, made by `policies.behaviour.behaviour_configs`; their
``params`` carry the rule's zones and direction, the profile's category and severity, and the
per-detector thresholds. An anomaly is matched against the rules in that order; the first rule
that matches decides (the next ones too while rules say ``continue``); each of its behaviour
profiles raises an alert when the anomaly's detector is enabled there and its score reaches the
threshold. Repeats of (rule, profile, subject, detector) within the suppression window are
counted on the first alert, not raised again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from appliance.model import Alert, Evidence, Finding, FlowRef, InspectorConfig, Severity
from inspectors.behaviour.detectors import DEFAULT_THRESHOLDS, DETECTORS, REPORT_FLOORS, Anomaly

log = logging.getLogger(__name__)

SUBJECT_KINDS = ("host", "zone", "ua")
"""``ua`` = user-agent family (the policy writes ``user-agent``)."""
_SUBJECT_NAMES = {"host": "host", "zone": "zone", "user-agent": "ua", "ua": "ua"}


@dataclass(frozen=True, slots=True)
class DetectorRule:
    enabled: bool = True
    threshold: float = 0.0
    severity: Severity | None = None


@dataclass(frozen=True, slots=True)
class BehaviourRule:
    """One (policy rule, behaviour profile) pair."""

    rule: str
    profile: str
    severity: Severity
    category: str
    src_zones: frozenset[str] | None = None
    dst_zones: frozenset[str] | None = None
    direction: str | None = None
    continue_: bool = False
    suppression_ns: int = 6 * 3600 * 10**9
    subjects: frozenset[str] = frozenset({"host", "zone"})
    detectors: Mapping[str, DetectorRule] = field(default_factory=dict)

    def matches(self, a: Anomaly) -> bool:
        return ((self.src_zones is None or a.zone in self.src_zones)
                and (self.dst_zones is None or a.dst_zone in self.dst_zones)
                and (self.direction is None or self.direction == ("upload" if a.upload else "download"))
                and a.subject_kind in self.subjects)

    def detector(self, name: str) -> DetectorRule:
        return self.detectors.get(name) or DetectorRule(True, DEFAULT_THRESHOLDS.get(name, 0.0))


def _zones(v: Any) -> frozenset[str] | None:
    if v is None:
        return None
    vals = frozenset(str(x) for x in v)
    return None if not vals or "any" in vals else vals


def rule_from_config(c: InspectorConfig) -> BehaviourRule:
    """A `BehaviourRule` from the params `policies.behaviour.behaviour_configs` writes."""
    p = c.params
    detectors = {}
    for name, d in (p.get("detectors") or {}).items():
        if name not in DETECTORS:
            log.warning("behaviour: unknown detector %r in profile %s ignored", name, p.get("profile"))
            continue
        d = d or {}
        thr = d.get("threshold")
        thr = DEFAULT_THRESHOLDS[name] if thr is None else max(float(thr), REPORT_FLOORS[name])
        sev = d.get("severity")
        detectors[name] = DetectorRule(bool(d.get("enabled", True)), thr, Severity(int(sev)) if sev else None)
    subjects = frozenset(_SUBJECT_NAMES.get(str(s), str(s)) for s in (p.get("subjects") or ("host", "zone")))
    return BehaviourRule(
        rule=str(p.get("rule", "behaviour")), profile=str(p.get("profile", "behaviour")),
        severity=Severity(int(p.get("severity", Severity.MEDIUM))), category=str(p.get("category", "anomaly")),
        src_zones=_zones(p.get("src_zones")), dst_zones=_zones(p.get("dst_zones")),
        direction=p.get("direction") or None, continue_=bool(p.get("continue", False)),
        suppression_ns=int(float(p.get("suppression_window_s", 21600)) * 1e9),
        subjects=subjects, detectors=detectors,
    )


@dataclass(slots=True)
class Raised:
    """An alert with the anomaly behind it; ``first_id`` is set for a suppressed repeat."""

    alert: Alert
    anomaly: Anomaly
    threshold: float
    first_id: str = ""


class Decider:
    """Matches anomalies to rules, applies thresholds and suppresses repeats."""

    def __init__(self, rules: Sequence[BehaviourRule], new_id: Callable[[], str], *, max_keys: int = 100_000) -> None:
        self.rules = tuple(rules)
        self.new_id = new_id
        self.max_keys = max_keys
        self._open: dict[tuple[str, str, str, str], tuple[str, int, int]] = {}
        """(rule, profile, subject, detector) → (first alert id, first time, window length)."""

    def configure(self, rules: Sequence[BehaviourRule]) -> None:
        self.rules = tuple(rules)

    def decide(self, anomalies: Sequence[Anomaly]) -> list[Raised]:
        """Alerts (and suppressed repeats) for ``anomalies``: the first matching rule's behaviour
        profiles decide, and the following matching rules' while rules say ``continue``."""
        out: list[Raised] = []
        for a in anomalies:
            stop = ""
            for r in self.rules:
                if stop and r.rule != stop:
                    break
                if not r.matches(a):
                    continue
                d = r.detector(a.detector)
                if d.enabled and a.score >= d.threshold:
                    out.append(self._raise(r, d, a))
                if not r.continue_:
                    stop = r.rule  # the rest of this rule's profiles, then stop
        return out

    def _raise(self, r: BehaviourRule, d: DetectorRule, a: Anomaly) -> Raised:
        key = (r.rule, r.profile, a.subject, a.detector)
        now = a.end_ns
        alert = make_alert(self.new_id(), r, d, a)
        hit = self._open.get(key)
        if hit is not None and now - hit[1] < hit[2]:
            return Raised(alert, a, d.threshold, first_id=hit[0])
        self._open.pop(key, None)
        self._open[key] = (alert.id, now, r.suppression_ns)
        while len(self._open) > self.max_keys:
            self._open.pop(next(iter(self._open)))
        return Raised(alert, a, d.threshold)


def make_alert(alert_id: str, r: BehaviourRule, d: DetectorRule, a: Anomaly) -> Alert:
    """The alert for an anomaly: a host subject is the flow's source address; the explanation is
    the finding's evidence; subject and window are in the alert and in the finding's detail."""
    host = a.subject_name if a.subject_kind == "host" else ""
    flow = FlowRef(uid="", flow_id=0, src_ip=host, src_port=0, dest_ip="", dest_port=0, proto="", vlan=0,
                   iface="", src_zone=a.zone, dst_zone=a.dst_zone)
    detail = {
        "subject": a.subject, "kind": a.kind, "window_start": iso(a.start_ns), "window_end": iso(a.end_ns),
        "window_start_ns": str(a.start_ns), "window_end_ns": str(a.end_ns), "score": f"{a.score:.3f}",
        "threshold": f"{d.threshold:g}",
        **({"destination": a.destination} if a.destination else {}),
        **{k: str(v) for k, v in a.detail.items()},
        **{f"z.{dv.feature}": f"{dv.value:.6g}/{dv.usual:.6g}/{dv.z:.2f}" for dv in a.deviations[:8]},
    }
    text = a.explain()[:1024]
    finding = Finding(inspector=f"behaviour.{a.detector}", content_id="", rule=f"{a.detector}:{a.kind}",
                      score=round(a.score, 4), evidence=(Evidence(0, 0, text),), detail=detail)
    return Alert(
        id=alert_id, ts_ns=a.end_ns, policy=r.rule, profile=r.profile, severity=d.severity or r.severity,
        category=r.category, content_id="", flow=flow, findings=(finding,), src_zone=a.zone, dst_zone=a.dst_zone,
        complete=True, subject=a.subject, window_start_ns=a.start_ns, window_end_ns=a.end_ns,
    )


def iso(ts_ns: int) -> str:
    """UTC ISO 8601 with seconds (the window bounds as analysts and SIEMs read them)."""
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return ""
