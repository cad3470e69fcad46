"""policies stage of tapsift: zones, the validated policy file, and the pure policy engine.

    policy = load_policy("policy.yaml")          # or PolicyHolder("policy.yaml") for reloads
    zones, engine = ZoneMap(policy), PolicyEngine(policy)
    src, dst = zones.zones_for(obj.flow)
    selections = engine.select(src, dst, obj)
    configs = inspector_configs(selections)      # run these inspectors → findings
    decision = engine.process(obj, selections, findings, now_ns)
"""

from policies.engine import (
    AlertIds,
    Decision,
    PolicyEngine,
    Selection,
    Suppressed,
    SuppressionSummary,
    Suppressor,
    inspector_configs,
    merge_configs,
)
from policies.reload import ActivePolicy, PolicyHolder
from policies.schema import (
    DEFAULT_INSPECTORS,
    Policy,
    PolicyError,
    PolicyIssue,
    check_command,
    load_policy,
)
from policies.zones import ZoneMap

__all__ = [
    "DEFAULT_INSPECTORS",
    "ActivePolicy",
    "AlertIds",
    "Decision",
    "Policy",
    "PolicyEngine",
    "PolicyError",
    "PolicyHolder",
    "PolicyIssue",
    "Selection",
    "Suppressed",
    "SuppressionSummary",
    "Suppressor",
    "ZoneMap",
    "check_command",
    "inspector_configs",
    "load_policy",
    "merge_configs",
]
