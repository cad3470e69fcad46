"""Analysts' verdicts through the state file: per-detector precision, a false beacon teaches the
site, a rebaseline makes recent behaviour the new normal."""

from __future__ import annotations

from pathlib import Path

from inspectors.behaviour.config import BehaviourConfig
from inspectors.behaviour.features import site_of
from inspectors.behaviour.stage import BehaviourStage
from inspectors.behaviour.state import BehaviourState
from policies.behaviour import behaviour_configs
from policies.schema import load_policy
from tests.inspectors.behaviour.series import DAY, HOUR, NS, START_NS, feed, host, obs, routine
from tests.inspectors.behaviour.test_windows import POLICY


def _stage(path: Path) -> BehaviourStage:
    return BehaviourStage(BehaviourConfig(state_path=str(path)), rules=behaviour_configs(load_policy(POLICY)))


def _beacon(h: int, day: int, dest: str) -> list:
    t = START_NS + day * DAY + 10 * HOUR
    return [obs(t + i * 120 * NS, host(h), dest, 300) for i in range(40)]


def test_site_of() -> None:
    assert site_of("telemetry-3.vendor.io") == "vendor.io"
    assert site_of("a.b.example.co.uk") == "example.co.uk"
    assert site_of("vendor.io") == "vendor.io" and site_of("10.1.2.3") == "10.1.2.3"


def test_a_false_beacon_teaches_its_site_and_counts_in_precision(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    s = _stage(path)
    series = sorted([*routine(9), *_beacon(1, 8, "telemetry-1.vendor.example")])
    alerts = [a for a in feed(s, series) if a.findings[0].inspector == "behaviour.periodicity"]
    assert [a.subject for a in alerts] == ["host:" + host(1)]
    console = BehaviourState(path)  # the console's side: another connection to the same file
    assert console.record_verdict(alerts[0].id, "false_positive", user="ana")
    assert not console.record_verdict("B-unknown", "true_positive")
    console.close()
    later = sorted(o for o in [*routine(11), *_beacon(2, 9, "telemetry-2.vendor.example"),
                               *_beacon(3, 10, "cdn-77.badsite.example")] if o.ts_ns > series[-1].ts_ns)
    alerts = [a for a in feed(s, later) + s.close(final=True) if a.findings[0].inspector == "behaviour.periodicity"]
    assert [a.subject for a in alerts] == ["host:" + host(3)]  # the vendor's other host is not alerted
    st = BehaviourState(path)
    assert st.detector_precision()["periodicity"] == {"alerts": 2, "true_positives": 0, "false_positives": 1,
                                                      "precision": 0.0}
    st.close()


def test_rebaseline_takes_the_recent_week_as_normal(tmp_path: Path) -> None:
    s = _stage(tmp_path / "b.db")
    feed(s, routine(8))
    e = s.hosts["host:" + host(0)]
    slot = 24 + 10  # Tuesday 10:00: seen twice, in two weeks
    last = e.seasonal.ring[slot, :, (int(e.seasonal.count[slot]) - 1) % e.seasonal.weeks].copy()
    assert s.rebaseline("host:" + host(0), user="ana")
    assert s.counters["rebaselines"] == 1
    assert (e.seasonal.ring[slot] == last[:, None]).all()  # every week of that slot is now the last one
    assert not s.rebaseline("host:10.99.0.1")
    s.close()
