"""Findings (what an inspector saw) and alerts (what a policy decided)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from appliance.model.content import FlowRef


class Severity(IntEnum):
    """Alert severity; the numbers follow Suricata (1 = highest)."""

    CRITICAL = 1
    HIGH = 2
    MEDIUM = 3
    LOW = 4
    INFO = 5


@dataclass(slots=True, frozen=True)
class Evidence:
    """Where a finding is in the object's text (or bytes): offsets and a bounded snippet."""

    start: int = 0
    end: int = 0
    snippet: str = ""
    ref: str = ""
    """A thumbnail or transcript reference, when the evidence is not text."""


@dataclass(slots=True, frozen=True)
class Finding:
    """One inspector result on one content object."""

    inspector: str
    content_id: str
    rule: str
    score: float = 1.0
    evidence: tuple[Evidence, ...] = ()
    detail: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True, frozen=True)
class Alert:
    """A policy decision: one per (object, profile) with all its findings, each counted once.

    ``policy`` is the first rule (in file order) that applied the profile; ``rules`` lists every
    rule that matched the object and applied it (``policy`` first). Empty ``rules`` (alerts made
    before the field existed) means ``(policy,)``. A behaviour anomaly makes one alert with
    ``subject`` and its window set and ``content_id`` empty."""

    id: str
    ts_ns: int
    policy: str
    profile: str
    severity: Severity
    category: str
    content_id: str
    flow: FlowRef | None
    findings: tuple[Finding, ...]
    src_zone: str = "any"
    dst_zone: str = "any"
    complete: bool = True
    rules: tuple[str, ...] = ()
    subject: str = ""
    """What a behaviour alert is about when it is not one content object: ``host:10.1.2.3``,
    ``zone:office`` or ``ua:curl`` (empty for content alerts)."""
    window_start_ns: int = 0
    """Start of the time window a behaviour alert covers (0 for content alerts)."""
    window_end_ns: int = 0
    """End (exclusive) of the time window a behaviour alert covers."""

    @property
    def matched_rules(self) -> tuple[str, ...]:
        """Every rule that matched and applied the profile (at least ``policy``)."""
        return self.rules or (self.policy,)
