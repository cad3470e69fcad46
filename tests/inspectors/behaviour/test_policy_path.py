"""Anomaly profiles through the policy: schema, thresholds, severity, zones, rule order,
suppression, and the alert path (EVE record, SQLite store) end to end through `tapsift read`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from appliance.model import Severity
from appliance.outputs.alertjson import alert_record
from inspectors.behaviour.decide import Decider, rule_from_config
from inspectors.behaviour.detectors import Anomaly, Deviation
from policies.behaviour import behaviour_configs, destination_categories
from policies.schema import PolicyError, load_policy
from tests.inspectors.behaviour.series import HOUR, START_NS

POLICY = """\
zones:
  office: {cidrs: [10.10.0.0/24]}
  lab: {cidrs: [10.20.0.0/24]}
lists:
  drops: {type: domains, domains: ["*.paste.example", transfer.example]}
profiles:
  strict:
    category: anomaly
    severity: low
    behaviour:
      subjects: [host]
      suppression_window_s: 7200
      detectors:
        zscore: {threshold: 8}
        novelty: {threshold: 3, severity: critical}
        iforest: {enabled: false}
  lenient: {category: anomaly, behaviour: {subjects: [host, zone, user-agent]}}
policies:
  - {name: web-only, source_zone: office, protocol: http, profiles: [strict]}
  - {name: office, source_zone: office, profiles: [strict], continue: true}
  - {name: office-too, source_zone: office, profiles: [lenient]}
  - {name: lab, source_zone: lab, profiles: [lenient]}
"""


def _anomaly(detector: str, score: float, *, subject: str = "host:10.10.0.5", zone: str = "office",
             end_ns: int = START_NS + HOUR) -> Anomaly:
    return Anomaly(detector, {"zscore": "volume", "novelty": "new-destination"}.get(detector, detector), subject,
                   zone, end_ns - HOUR, end_ns, score, (Deviation("up_objects", 400, 3, score),),
                   destination="x.paste.example" if detector == "novelty" else "")


def _decider() -> Decider:
    n = iter(range(1, 1000))
    return Decider([rule_from_config(c) for c in behaviour_configs(load_policy(POLICY))], lambda: f"B{next(n)}")


def test_profiles_become_stage_configs_in_rule_order() -> None:
    p = load_policy(POLICY)
    cfgs = behaviour_configs(p)
    assert [(c.params["rule"], c.params["profile"]) for c in cfgs] == [
        ("office", "strict"), ("office-too", "lenient"), ("lab", "lenient")]  # the protocol rule is left out
    assert cfgs[0].params["suppression_window_s"] == 7200
    assert destination_categories(p) == {"paste.example": "drops", "transfer.example": "drops"}


@pytest.mark.parametrize("text", [
    "profiles: {p: {category: anomaly}}",  # neither inspect nor behaviour
    "profiles: {p: {category: anomaly, behaviour: {detectors: {magic: {}}}}}",
    "profiles: {p: {category: anomaly, behaviour: {subjects: [printer]}}}",
    "profiles: {p: {category: anomaly, behaviour: {detectors: {zscore: {threshold: -1}}}}}",
])
def test_bad_behaviour_profiles_are_rejected(text: str) -> None:
    with pytest.raises(PolicyError):
        load_policy(text + "\npolicies: [{name: r, profiles: [p]}]\n")


def test_thresholds_severity_and_continue() -> None:
    d = _decider()
    assert [(r.alert.policy, r.alert.profile) for r in d.decide([_anomaly("zscore", 7.0)])] == [
        ("office-too", "lenient")]  # below strict's 8, above the default 6
    out = d.decide([_anomaly("zscore", 9.0, end_ns=START_NS + 5 * HOUR)])
    assert [(r.alert.profile, r.alert.severity) for r in out] == [("strict", Severity.LOW),
                                                                   ("lenient", Severity.MEDIUM)]
    out = d.decide([_anomaly("novelty", 3.5)])
    assert out[0].alert.severity == Severity.CRITICAL  # the detector's own severity
    assert [r.alert.profile for r in d.decide([_anomaly("iforest", 0.99)])] == ["lenient"]  # off in strict
    assert d.decide([_anomaly("zscore", 2.0)]) == []


def test_subjects_and_zones_select_rules() -> None:
    d = _decider()
    zone = d.decide([_anomaly("zscore", 9.0, subject="zone:office")])
    assert [r.alert.profile for r in zone] == ["lenient"]  # strict covers hosts only
    assert [r.alert.policy for r in d.decide([_anomaly("zscore", 7.0, subject="host:10.20.0.9", zone="lab")])] == [
        "lab"]
    assert d.decide([_anomaly("zscore", 9.0, subject="host:192.0.2.1", zone="any")]) == []


def test_repeats_are_suppressed_within_the_window() -> None:
    d = _decider()
    first = d.decide([_anomaly("zscore", 9.0)])
    again = d.decide([_anomaly("zscore", 9.5, end_ns=START_NS + 2 * HOUR)])
    assert all(r.first_id for r in again)
    assert {r.first_id for r in again} == {r.alert.id for r in first}
    later = d.decide([_anomaly("zscore", 9.5, end_ns=START_NS + 10 * HOUR)])  # past 2 h and 6 h
    assert not any(r.first_id for r in later)


def test_alert_record_names_subject_window_and_deviations() -> None:
    [r, _] = _decider().decide([_anomaly("zscore", 9.0)])
    rec = alert_record(r.alert, None)
    ts = rec["tapsift"]
    assert rec["src_ip"] == "10.10.0.5" and rec["alert"]["category"] == "anomaly"
    assert ts["subject"] == "host:10.10.0.5"
    assert ts["window_start"].startswith("2026-03-02T00:00:00") and ts["window_end"].startswith("2026-03-02T01:00")
    f = ts["findings"][0]
    assert f["inspector"] == "behaviour.zscore" and f["detail"]["z.up_objects"] == "400/3/9.00"
    assert "objects up 400 vs usual 3" in f["evidence"][0]["snippet"]


def test_tapsift_read_series_raises_anomaly_alerts_into_eve_and_store(tmp_path: Path) -> None:
    """Nine daily captures read one after the other; the state file carries the baselines; on the
    last day the bulk upload and the beacon are alerts in EVE and in the store."""
    from appliance.cli import main
    from bench.anomaly_capture import POLICY as SERIES_POLICY
    from bench.anomaly_capture import write_days

    paths, injected = write_days(tmp_path / "caps", 9, hosts=4)
    (tmp_path / "policy.yaml").write_text(SERIES_POLICY)
    store = tmp_path / "alerts.db"
    (tmp_path / "settings.yaml").write_text(
        f"inspection: {{policy: {tmp_path / 'policy.yaml'}}}\noutput: {{store: {store}}}\n"
        "behaviour: {enabled: true, warmup_days: 6}\n")
    eve = tmp_path / "eve.json"
    for p in paths:
        assert main(["read", "--config", str(tmp_path / "settings.yaml"), "--eve", str(eve), "-q", str(p)]) == 0
    assert (tmp_path / "behaviour.db").exists()  # next to the store
    recs = [json.loads(x) for x in eve.read_text().splitlines()]
    alerts = [r["tapsift"] for r in recs if r["event_type"] == "alert" and r["tapsift"].get("subject")]
    by_kind = {i.kind: i for i in injected}
    bulk = [a for a in alerts if a["subject"] == f"host:{by_kind['bulk'].host}"]
    beacon = [a for a in alerts if a["subject"] == f"host:{by_kind['beacon'].host}"]
    assert any(a["findings"][0]["inspector"] == "behaviour.novelty" for a in bulk)
    assert any(a["findings"][0]["inspector"] == "behaviour.periodicity" for a in beacon)
    assert len(alerts) == len(bulk) + len(beacon)  # nothing about the ordinary hosts
    db = sqlite3.connect(store)
    stored = {r[0] for r in db.execute("SELECT id FROM alerts WHERE category = 'anomaly'")}
    db.close()
    assert stored == {a["alert_id"] for a in alerts}
