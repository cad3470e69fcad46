"""The policy's behaviour profiles, as the behaviour stage consumes them.

Pure: `behaviour_configs` walks the rules in file order and, for each profile of a rule that has
a ``behaviour`` section, makes one kernel `InspectorConfig` (``inspector="behaviour"``) whose
``params`` carry everything the stage needs to turn an anomaly into an alert: the rule's zones,
direction and ``continue``, the profile's category and severity, the subjects it covers, the
suppression window (the rule's ``suppression_window_s`` when set, else the profile's) and the
per-detector ``enabled``/``threshold``/``severity`` (None = the detector's default).

Only rules with a behaviour profile take part in matching anomalies (content rules before them do
not shadow them); rules restricted to protocols do not match anomalies, which span protocols.
"""

from __future__ import annotations

from appliance.model import InspectorConfig
from policies.schema import Policy


def behaviour_configs(policy: Policy) -> tuple[InspectorConfig, ...]:
    """One config per (rule, behaviour profile), in the order anomalies are matched."""
    out = []
    for rule in policy.rules:
        if rule.protocols is not None:
            continue
        for name in rule.profiles:
            prof = policy.profiles.get(name)
            if prof is None or prof.behaviour is None:
                continue
            b = prof.behaviour
            window = rule.suppression_window_s if rule.suppression_window_s is not None else b["suppression_window_s"]
            out.append(InspectorConfig("behaviour", (), {
                "rule": rule.name, "profile": name, "severity": int(prof.severity), "category": prof.category,
                "src_zones": sorted(rule.src_zones) if rule.src_zones is not None else None,
                "dst_zones": sorted(rule.dst_zones) if rule.dst_zones is not None else None,
                "direction": rule.direction, "continue": rule.continue_, "suppression_window_s": window,
                "subjects": list(b["subjects"]),
                "detectors": {k: dict(v) for k, v in b["detectors"].items()},
            }))
    return tuple(out)


def destination_categories(policy: Policy) -> dict[str, str]:
    """Domain → destination category from the policy's ``domains`` lists: the list's
    ``options.category`` when set, else the list's name (a list ``file-sharing`` makes its
    domains ``file-sharing`` destinations for the behaviour stage's novelty detector)."""
    out: dict[str, str] = {}
    for name, spec in policy.lists.items():
        if spec.kind != "domains":
            continue
        cat = str(spec.options.get("category") or name)
        for d in spec.options.get("domains", ()):
            key = str(d).strip().lower().removeprefix("*.").rstrip(".")
            if key:
                out.setdefault(key, cat)
    return out
