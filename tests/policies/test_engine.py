"""Rule selection, thresholds and alerts, suppression."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.inspection import InspectionStage
from appliance.model import Direction, InspectorConfig, ListSpec, Severity
from policies.engine import (
    AlertIds,
    PolicyEngine,
    Suppressor,
    base62,
    finding_matches,
    inspector_configs,
    merge_configs,
)
from policies.reload import PolicyHolder
from tests.policies.factories import finding, flow_ref, obj, policy

UP, DOWN = Direction.TO_SERVER, Direction.TO_CLIENT
S = 1_000_000_000

POLICY = """
    zones:
      office: {cidrs: [10.20.0.0/16]}
      finance: {cidrs: [10.20.50.0/24]}
      dmz: {cidrs: [192.0.2.0/24]}
    lists:
      secret: {type: keywords, keywords: [{text: Nightjar, weight: 10}, {text: internal, weight: 3}]}
      gambling: {type: keywords, keywords: [{text: 赌博, weight: 3}]}
      ids: {type: dataclass, class: prc_id, weight: 2}
      cards: {type: dataclass, class: bank_card, weight: 2}
    profiles:
      leak:
        category: data-leak/confidential
        severity: high
        inspect: [{inspector: keyword, lists: [secret]}]
        threshold: {weight: 10}
      pii:
        category: data-leak/pii
        severity: medium
        inspect: [{inspector: dataclass, lists: [ids, cards]}]
        threshold: {weight: 10, count: 4}
      gamble:
        category: fraud
        severity: low
        inspect:
          - {inspector: keyword, lists: [gambling]}
          - {inspector: ml_text}
        threshold: {count: 2}
    policies:
      - name: finance-exempt
        source_zone: finance
        destination_zone: dmz
        profiles: []
      - name: office-up
        source_zone: [office, finance]
        direction: upload
        profiles: [leak, pii]
        continue: true
      - name: office-web
        source_zone: [office, finance]
        protocol: [http]
        profiles: [gamble]
      - name: office-mail-down
        source_zone: office
        direction: download
        protocol: smtp
        profiles: [leak]
      - name: to-dmz
        destination_zone: dmz
        profiles: [leak]
"""


@pytest.fixture
def engine() -> PolicyEngine:
    return PolicyEngine(policy(POLICY))


def names(sel: list) -> list[str]:
    return [s.rule.name for s in sel]


# --------------------------------------------------------------------------- select


def test_first_match_and_continue(engine: PolicyEngine) -> None:
    assert names(engine.select("office", "any", obj(UP, "http"))) == ["office-up", "office-web"]
    assert names(engine.select("office", "any", obj(UP, "smtp"))) == ["office-up", "to-dmz"][:1]
    assert names(engine.select("office", "dmz", obj(UP, "smtp"))) == ["office-up", "to-dmz"]


def test_direction_filter(engine: PolicyEngine) -> None:
    assert names(engine.select("office", "any", obj(DOWN, "http"))) == ["office-web"]
    assert names(engine.select("office", "any", obj(DOWN, "smtp"))) == ["office-mail-down"]
    assert names(engine.select("office", "any", obj(DOWN, "ftp-data"))) == []


def test_protocol_filter_and_override(engine: PolicyEngine) -> None:
    child = obj(DOWN, "extract")
    assert names(engine.select("office", "any", child)) == []
    assert names(engine.select("office", "any", child, protocol="http")) == ["office-web"]
    assert names(engine.select("office", "any", obj(DOWN, "HTTP"))) == ["office-web"]


def test_zone_wildcards_and_exempt_rule(engine: PolicyEngine) -> None:
    assert names(engine.select("any", "dmz", obj(DOWN, "ftp-data"))) == ["to-dmz"]
    assert names(engine.select("any", "any", obj(UP, "http"))) == []
    sel = engine.select("finance", "dmz", obj(UP, "http"))
    assert names(sel) == ["finance-exempt"] and sel[0].profiles == () and inspector_configs(sel) == ()


def test_selection_configs(engine: PolicyEngine) -> None:
    sel = engine.select("office", "any", obj(UP, "http"))
    cfgs = inspector_configs(sel)
    assert [(c.inspector, [s.name for s in c.lists]) for c in cfgs] == [
        ("keyword", ["secret", "gambling"]), ("dataclass", ["ids", "cards"]), ("ml_text", [])]
    assert sel[0].src_zone == "office" and sel[0].dst_zone == "any"
    # cached selections are equal and the configs are the same objects (inspectors compile once)
    again = engine.select("office", "any", obj(UP, "http"))
    assert again == sel and again[0].configs[0] is sel[0].configs[0]


def test_merge_configs_keeps_distinct_params() -> None:
    a, b = ListSpec("a", "keywords"), ListSpec("b", "keywords")
    merged = merge_configs([InspectorConfig("keyword", (a,)), InspectorConfig("keyword", (b, a)),
                            InspectorConfig("keyword", (b,), {"fold": True})])
    assert [(c.inspector, [s.name for s in c.lists], c.params) for c in merged] == [
        ("keyword", ["a", "b"], {}), ("keyword", ["b"], {"fold": True})]


# --------------------------------------------------------------------------- thresholds and alerts


def decide(engine: PolicyEngine, findings: list, o=None, src: str = "office", dst: str = "any",
           now: int = 5 * S) -> list:
    o = o or obj(UP, "http")
    return engine.decide(o, engine.select(src, dst, o), findings, now)


def test_weight_threshold_below_and_at(engine: PolicyEngine) -> None:
    assert decide(engine, [finding("secret", 3, evidence=1, at=i) for i in range(3)]) == []
    alerts = decide(engine, [finding("secret", 3, evidence=1, at=0), finding("secret", 3, evidence=1, at=1),
                             finding("secret", 4, evidence=1, at=2)])
    assert [(a.policy, a.profile) for a in alerts] == [("office-up", "leak")]
    assert decide(engine, [finding("secret", 9.99)]) == []
    tenths = [finding("secret", 0.1, evidence=1, at=i) for i in range(100)]
    assert len(decide(engine, tenths)) == 1  # float sums are not off by epsilon


def test_count_threshold_below_and_at(engine: PolicyEngine) -> None:
    # pii: weight 10 or count 4; each ID weighs 2 → 3 IDs is 6 and 3 matches: nothing
    assert decide(engine, [finding("ids", 2, "dataclass")] * 3) == []
    alerts = decide(engine, [finding("ids", 2, "dataclass", evidence=1, at=i) for i in range(2)]
                    + [finding("cards", 2, "dataclass", evidence=1, at=i) for i in range(2)])
    assert [a.profile for a in alerts] == ["pii"]
    # one finding standing for 4 matches (detail count) or carrying 4 evidence items
    assert [a.profile for a in decide(engine, [finding("ids", 2, "dataclass", count="4")])] == ["pii"]
    assert [a.profile for a in decide(engine, [finding("ids", 2, "dataclass", evidence=4)])] == ["pii"]
    assert [a.profile for a in decide(engine, [finding("ids", 2, "dataclass", evidence=3)])] == []


def test_finding_matches() -> None:
    assert finding_matches(finding("x")) == 1
    assert finding_matches(finding("x", evidence=3)) == 3
    assert finding_matches(finding("x", evidence=3, count="7")) == 7
    assert finding_matches(finding("x", count="junk")) == 1


def test_only_the_profiles_lists_count(engine: PolicyEngine) -> None:
    # right list, wrong inspector; wrong list; list:detail form counts
    wrong = [finding("secret", 10, "dataclass"), finding("gambling", 10)]
    assert decide(engine, wrong, o=obj(UP, "smtp")) == []
    alerts = decide(engine, [finding("secret:Nightjar", 10)], o=obj(UP, "smtp"))
    assert [a.profile for a in alerts] == ["leak"]
    assert decide(engine, [finding("secretive", 10)], o=obj(UP, "smtp")) == []


def test_inspector_without_lists_counts_all_its_findings(engine: PolicyEngine) -> None:
    alerts = decide(engine, [finding("gambling-model-v2", 0.9, "ml_text"), finding("gambling", 3)],
                    o=obj(DOWN, "http"))
    assert [a.profile for a in alerts] == ["gamble"] and len(alerts[0].findings) == 2


def test_alert_fields(engine: PolicyEngine) -> None:
    o = obj(UP, "http", id="F00000x", flow=flow_ref("10.20.1.5", "192.0.2.80"), truncated=("body_limit",))
    fs = [finding("secret", 10, content_id="F00000x"), finding("ids", 2, "dataclass", content_id="F00000x")]
    (a,) = decide(engine, fs, o=o, dst="dmz", now=7 * S)
    assert a.id == "A000001" and a.ts_ns == 7 * S and a.content_id == "F00000x"
    assert (a.policy, a.profile, a.severity, a.category) == ("office-up", "leak", Severity.HIGH,
                                                             "data-leak/confidential")
    assert (a.src_zone, a.dst_zone) == ("office", "dmz")
    assert a.flow is not None and (a.flow.src_zone, a.flow.dst_zone) == ("office", "dmz")
    assert a.flow.dest_ip == "192.0.2.80"
    assert a.findings == (fs[0],) and a.complete is False


def test_one_alert_per_profile_naming_every_rule(engine: PolicyEngine) -> None:
    fs = [finding("secret", 10), finding("ids", 2, "dataclass", count="5")]
    alerts = decide(engine, fs, o=obj(UP, "smtp"), dst="dmz")
    # office-up (continue) and to-dmz both apply leak: one leak alert that names both rules
    assert [(a.policy, a.profile, a.rules) for a in alerts] == [
        ("office-up", "leak", ("office-up", "to-dmz")), ("office-up", "pii", ("office-up",))]
    assert [a.id for a in alerts] == ["A000001", "A000002"]
    assert alerts[0].findings == (fs[0],)


def test_ids_are_deterministic_and_shardable() -> None:
    assert base62(0) == "0" and base62(61) == "z" and base62(62, 3) == "010"
    ids = AlertIds(start=2, step=4)
    assert [ids.next() for _ in range(3)] == ["A000002", "A000006", "A00000A"]
    p = policy(POLICY)
    runs = []
    for _ in range(2):
        e = PolicyEngine(p)
        runs.append([a.id for a in decide(e, [finding("secret", 10)]) + decide(e, [finding("secret", 10)])])
    assert runs[0] == runs[1] == ["A000001", "A000002"]
    with pytest.raises(ValueError):
        AlertIds(step=0)


# --------------------------------------------------------------------------- suppression


def test_repeats_are_counted_not_lost(engine: PolicyEngine) -> None:
    sel = engine.select("office", "any", obj(UP, "smtp"))
    fs = [finding("secret", 10)]
    d1 = engine.process(obj(UP, "smtp"), sel, fs, 10 * S)
    assert len(d1.alerts) == 1 and d1.suppressed == []
    first = d1.alerts[0].id
    d2 = engine.process(obj(UP, "smtp"), sel, fs, 100 * S)
    d3 = engine.process(obj(UP, "smtp"), sel, fs, 309 * S)
    assert d2.alerts == d3.alerts == []
    assert [(s.first_id, s.count, s.host) for s in d2.suppressed + d3.suppressed] == [
        (first, 1, "upload.example.net"), (first, 2, "upload.example.net")]
    assert d3.suppressed[0].alert.findings == tuple(fs)  # the whole repeat is kept
    # the window (300 s from the first alert) has ended: a new alert, and the old window's summary
    d4 = engine.process(obj(UP, "smtp"), sel, fs, 310 * S)
    assert len(d4.alerts) == 1 and d4.alerts[0].id != first
    summaries = [c for c in d4.closed if c.first_id == first]
    assert [(c.count, c.first_ts_ns, c.last_ts_ns) for c in summaries] == [(2, 10 * S, 309 * S)]


def test_different_hosts_profiles_rules_are_separate(engine: PolicyEngine) -> None:
    fs = [finding("secret", 10)]
    o1, o2 = obj(UP, "smtp", host="a.example"), obj(UP, "smtp", host="b.example")
    o3 = obj(UP, "smtp", host="", flow=flow_ref(dst="192.0.2.1"))
    for o in (o1, o2, o3):
        d = engine.process(o, engine.select("office", "any", o), fs, S)
        assert len(d.alerts) == 1
    # to-dmz/leak is a different rule
    d = engine.process(o3, engine.select("any", "dmz", o3), fs, 2 * S)
    assert [a.policy for a in d.alerts] == ["to-dmz"] and d.suppressed == []
    # office-up/leak to 192.0.2.1 repeats (to-dmz also applies leak: the same, single alert)
    d = engine.process(o3, engine.select("office", "dmz", o3), fs, 3 * S)
    assert d.alerts == [] and [(s.host, s.alert.rules) for s in d.suppressed] == [
        ("192.0.2.1", ("office-up", "to-dmz"))]


def test_window_zero_and_per_rule_override() -> None:
    s = Suppressor(0)
    e = PolicyEngine(policy(POLICY), suppressor=s)
    o = obj(UP, "smtp")
    sel = e.select("office", "any", o)
    assert all(len(e.process(o, sel, [finding("secret", 10)], S).alerts) == 1 for _ in range(3))
    s.configure(0, per_rule={"office-up": 10})
    assert len(e.process(o, sel, [finding("secret", 10)], 20 * S).alerts) == 1
    assert len(e.process(o, sel, [finding("secret", 10)], 29 * S).suppressed) == 1
    assert len(e.process(o, sel, [finding("secret", 10)], 30 * S).alerts) == 1


def test_policy_suppression_settings() -> None:
    p = policy(POLICY.replace("        profiles: [leak, pii]\n",
                              "        profiles: [leak, pii]\n        suppression_window_s: 5\n")
               + "    suppression: {window_s: 60, key: source}\n")
    s = Suppressor.for_policy(p)
    assert (s.window_ns, s.key, s.per_rule_ns) == (60 * S, "source", {"office-up": 5 * S})


def test_keys_source_and_pair() -> None:
    e = PolicyEngine(policy(POLICY), suppressor=Suppressor(60, key="source"))
    a = obj(UP, "smtp", host="x.example", flow=flow_ref("10.20.1.1"))
    b = obj(UP, "smtp", host="y.example", flow=flow_ref("10.20.1.1"))
    fs = [finding("secret", 10)]
    assert len(e.process(a, e.select("office", "any", a), fs, S).alerts) == 1
    assert [s.host for s in e.process(b, e.select("office", "any", b), fs, S).suppressed] == ["10.20.1.1"]
    e.suppressor.configure(60, key="pair")
    assert len(e.process(b, e.select("office", "any", b), fs, S).alerts) == 1  # a new key
    assert e.process(b, e.select("office", "any", b), fs, S).suppressed[0].host == "10.20.1.1>y.example"
    with pytest.raises(ValueError):
        Suppressor(1, key="nope")


def test_expire_flush_and_capacity() -> None:
    e = PolicyEngine(policy(POLICY), suppressor=Suppressor(100, max_keys=2))
    fs = [finding("secret", 10)]
    hosts = ["a", "b", "c"]
    for h in hosts:
        o = obj(UP, "smtp", host=h)
        e.process(o, e.select("office", "any", o), fs, S)
        e.process(o, e.select("office", "any", o), fs, 2 * S)  # one repeat each
    # 'a' was closed early to keep 2 windows open; its count was reported, not lost
    assert e.suppressor.open_windows == 2
    assert [c.host for c in e.suppressor.expire(50 * S)] == []
    closed = e.suppressor.flush()
    assert sorted(c.host for c in closed) == ["b", "c"] and all(c.count == 1 for c in closed)
    assert e.suppressor.open_windows == 0


def test_expire_reports_finished_windows() -> None:
    s = Suppressor(10)
    e = PolicyEngine(policy(POLICY), suppressor=s)
    o = obj(UP, "smtp")
    sel = e.select("office", "any", o)
    e.process(o, sel, [finding("secret", 10)], 0)
    e.process(o, sel, [finding("secret", 10)], 1 * S)
    assert s.expire(9 * S) == []
    (c,) = s.expire(10 * S)
    assert (c.profile, c.count) == ("leak", 1) and s.open_windows == 0


# --------------------------------------------------------------------------- rules sharing a profile

SHARED = """
    lists:
      words: {type: keywords, keywords: [{text: Nightjar, weight: 5}]}
    profiles:
      leak:
        category: data-leak/confidential
        severity: high
        inspect: [{inspector: keyword, lists: [words]}]
        threshold: {weight: 8}
    policies:
      - {name: first, profiles: [leak], continue: true}
      - {name: second, profiles: [leak]}
"""


def test_two_rules_applying_one_profile_count_each_finding_once() -> None:
    """The reported case: one keyword of weight 5 against a threshold of 8 raised two alerts
    (the inspector ran once per rule and each alert summed both runs)."""
    e = PolicyEngine(policy(SHARED))
    sel = e.select("any", "any", obj(UP, "http"))
    assert names(sel) == ["first", "second"]
    once = finding("words", 5, evidence=1)
    assert e.decide(obj(UP, "http"), sel, [once, once], S) == []  # two runs of one inspector: one fact
    (a,) = e.decide(obj(UP, "http"), sel, [once, finding("words", 5, evidence=1, at=9)], S)
    assert (a.policy, a.rules, a.matched_rules) == ("first", ("first", "second"), ("first", "second"))
    # the configs of both rules are merged: the keyword inspector runs once, with the same object
    assert [c.inspector for c in e.configs(sel)] == ["keyword"] and e.configs(sel) is e.configs(list(sel))


def test_inspection_stage_runs_a_shared_inspector_once(tmp_path: Path) -> None:
    """End to end with the real keyword inspector: weight 5 < 8 is no alert; 5 + 5 is one alert."""
    p = tmp_path / "policy.yaml"
    p.write_text(textwrap.dedent(SHARED), encoding="utf-8")
    stage = InspectionStage(PolicyHolder(p))
    one = obj(UP, "http", declared_mime="text/plain", data=b"the Nightjar plan")
    assert stage.inspect(one, S).alerts == [] and stage.counters["findings"] == 1
    two = obj(UP, "http", declared_mime="text/plain", data=b"Nightjar, again Nightjar")
    ((a, _),) = stage.inspect(two, 2 * S).alerts
    assert (a.profile, a.rules, sum(f.score for f in a.findings)) == ("leak", ("first", "second"), 10)


PROFILES = {"p0": ("l0", 4), "p1": ("l1", 6), "p2": ("l2", 3)}
"""profile → (its keyword list, weight threshold)."""


def _policy_text(rules: list[tuple[str, tuple[str, ...], bool]]) -> str:
    lists = "".join(f"  {lst}: {{type: keywords, keywords: [{{text: w{lst}, weight: 1}}]}}\n"
                    for lst, _ in PROFILES.values())
    profiles = "".join(
        f"  {p}:\n    category: fraud\n    severity: high\n"
        f"    inspect: [{{inspector: keyword, lists: [{lst}]}}]\n    threshold: {{weight: {t}}}\n"
        for p, (lst, t) in PROFILES.items())
    pol = "".join(f"  - {{name: {n}, profiles: [{', '.join(ps)}], continue: {str(c).lower()}}}\n"
                  for n, ps, c in rules)
    return f"lists:\n{lists}profiles:\n{profiles}policies:\n{pol}"


rule_sets = st.lists(
    st.tuples(st.lists(st.sampled_from(sorted(PROFILES)), min_size=1, max_size=3, unique=True).map(tuple),
              st.booleans()),
    min_size=1, max_size=5,
).map(lambda rs: [(f"r{i}", ps, c) for i, (ps, c) in enumerate(rs)])
facts = st.lists(st.tuples(st.sampled_from([lst for lst, _ in PROFILES.values()]),
                           st.integers(1, 4), st.integers(0, 6)), max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=rule_sets, order=st.randoms(use_true_random=False), found=facts, repeats=st.integers(1, 3))
def test_any_rule_order_and_continue_flags_give_the_same_alerts(
        rules: list[tuple[str, tuple[str, ...], bool]], order: Any, found: list[tuple[str, int, int]],
        repeats: int) -> None:
    """Whatever the order of the rules and their ``continue`` flags, each profile that the selected
    rules apply alerts at most once, exactly when its findings (each counted once, however often
    the inspectors reported it) reach its threshold, naming every selected rule that applies it."""
    shuffled = list(rules)
    order.shuffle(shuffled)
    e = PolicyEngine(policy(_policy_text(shuffled)))
    o = obj(UP, "http")
    sel = e.select("any", "any", o)
    fs = [finding(lst, w, evidence=1, at=at) for lst, w, at in found]
    alerts = e.decide(o, sel, fs * repeats, S)  # an inspector run once per rule repeats its findings

    selected = names(sel)
    # the model: first match, plus followers while `continue`
    expect_sel = []
    for n, _, c in shuffled:
        expect_sel.append(n)
        if not c:
            break
    assert selected == expect_sel
    applying: dict[str, list[str]] = {}
    for n, ps, _ in shuffled[:len(expect_sel)]:
        for p in ps:
            applying.setdefault(p, []).append(n)
    unique = {(lst, w, at) for lst, w, at in found}
    expect = {}
    for p, rs in applying.items():
        lst, threshold = PROFILES[p]
        mine = {u for u in unique if u[0] == lst}
        if sum(w for _, w, _ in mine) >= threshold:
            expect[p] = (frozenset(mine), tuple(rs))
    got = {a.profile: (frozenset((f.rule, int(f.score), f.evidence[0].start) for f in a.findings), a.rules)
           for a in alerts}
    assert len(alerts) == len(got) == len(expect)  # one alert per profile
    assert got == expect
    assert all(a.policy == a.rules[0] for a in alerts)
