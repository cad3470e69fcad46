"""Feature windows: packet time, the site's clock, bounded state, and persistence across restarts
(a stage stopped mid-window and restarted from its state file raises what one run raises)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from inspectors.behaviour.clock import Clock
from inspectors.behaviour.config import BehaviourConfig
from inspectors.behaviour.features import INDEX
from inspectors.behaviour.stage import BehaviourStage
from policies.behaviour import behaviour_configs
from policies.schema import load_policy
from tests.inspectors.behaviour.series import DAY, HOUR, NS, START_NS, feed, host, obs, routine

POLICY = """\
zones:
  office: {cidrs: [10.10.0.0/24]}
lists:
  paste: {type: domains, domains: [paste.example], options: {category: paste}}
profiles:
  anomalies: {category: anomaly, behaviour: {subjects: [host, zone]}}
policies:
  - {name: office-behaviour, source_zone: office, profiles: [anomalies]}
"""
CATEGORIES = {"paste.example": "paste"}


def _stage(state: Path | None = None, **kw: object) -> BehaviourStage:
    cfg = BehaviourConfig(state_path=str(state) if state else None, **kw)  # type: ignore[arg-type]
    return BehaviourStage(cfg, rules=behaviour_configs(load_policy(POLICY)), categories=CATEGORIES)


def _month() -> list:
    """Ten days of routine, then on day 9 a bulk upload to a paste site and a beacon."""
    out = list(routine(10))
    bulk = START_NS + 9 * DAY + 14 * HOUR
    out += [obs(bulk + i * 40 * NS, host(0), "paste.example", 80_000, cls=0) for i in range(60)]
    beacon = START_NS + 9 * DAY + 10 * HOUR
    out += [obs(beacon + i * 90 * NS, host(1), "cdn-metrics.example", 150) for i in range(60)]
    return sorted(out)


def _key(alerts: list) -> list[tuple]:
    return [(a.id, a.subject, a.findings[0].inspector, a.window_start_ns, a.window_end_ns,
             round(a.findings[0].score, 6)) for a in alerts]


def test_clock_windows_follow_the_site_time_zone() -> None:
    c = Clock("+05:30", 3600, holidays=("2026-03-04",))
    ts = START_NS + 10 * HOUR + 7 * 60 * NS  # Monday 10:07 UTC = 15:37 local
    assert c.window_start(ts) == START_NS + 10 * HOUR - 30 * 60 * NS  # 15:00 local
    assert c.slot(ts)[0] == 15  # Monday 15:00 local
    holiday = START_NS + 2 * DAY + 6 * HOUR  # Wednesday, a holiday: a Sunday slot
    assert c.slot(holiday)[0] == 6 * 24 + 11
    with pytest.raises(ValueError):
        Clock("UTC", 7 * 60)  # does not divide a day


def test_windows_close_on_packet_time() -> None:
    s = _stage()
    t = START_NS + 9 * HOUR + 5 * 60 * NS
    s.observe_record(obs(t, host(0), "crm.saas.example", 500))
    assert s.win_start == START_NS + 9 * HOUR
    s.tick(START_NS + 10 * HOUR + 30 * NS)  # past the end, within the grace
    assert s.counters["windows"] == 0
    late = obs(START_NS + 10 * HOUR + 10 * NS, host(0), "crm.saas.example", 700)
    s.observe_record(late)  # the next window's object waits for the grace to pass
    assert s.pending == [late]
    s.tick(START_NS + 10 * HOUR + 61 * NS)
    assert s.counters["windows"] == 1
    assert s.win_start == START_NS + 10 * HOUR and not s.pending
    w = s.hosts["host:" + host(0)].window
    assert w is not None and w.v[INDEX["up_bytes"]] == 700


def test_no_learning_from_windows_without_traffic() -> None:
    s = _stage()
    s.observe_record(obs(START_NS + 9 * HOUR, host(0), "crm.saas.example", 500))
    s.observe_record(obs(START_NS + 3 * DAY + 9 * HOUR, host(0), "crm.saas.example", 500))
    s.tick(START_NS + 3 * DAY + 11 * HOUR)
    assert s.counters["windows"] == 2  # the two observed hours, not the 3 days between them
    assert s.counters["windows_unobserved"] <= 1


def test_state_is_bounded_per_host() -> None:
    s = _stage(max_hosts=16, max_destinations=16, max_tracks=2)
    t = START_NS + 9 * HOUR
    for i in range(40):
        for d in range(50):
            s.observe_record(obs(t + i * NS + d, f"10.10.1.{i}", f"site{d}.example", 100))
    s.tick(t + 2 * HOUR)
    assert len(s.hosts) == 16
    assert s.counters["hosts_evicted"] == 24
    for e in s.hosts.values():
        assert len(e.dests) <= 16 and len(e.tracks) <= 2
    m = s.memory()
    assert m["hosts"] == 16 and 0 < m["bytes_per_host"] < 200_000


def test_restart_mid_window_raises_what_one_run_raises(tmp_path: Path) -> None:
    month = _month()
    one = _stage(tmp_path / "one.db")
    alerts_one = feed(one, month) + one.close(final=True)
    assert {a.findings[0].inspector for a in alerts_one} >= {"behaviour.novelty", "behaviour.periodicity"}
    assert any(a.subject == "host:" + host(0) for a in alerts_one)

    cut = START_NS + 9 * DAY + 14 * HOUR + 20 * 60 * NS  # inside the bulk upload's window
    first = _stage(tmp_path / "two.db")
    alerts_two = feed(first, [o for o in month if o.ts_ns < cut])
    alerts_two += first.close()
    second = _stage(tmp_path / "two.db")  # a new process: everything from the state file
    assert second.win_start == START_NS + 9 * DAY + 14 * HOUR
    assert len(second.hosts) == 6
    alerts_two += feed(second, [o for o in month if o.ts_ns >= cut]) + second.close(final=True)
    assert _key(alerts_two) == _key(alerts_one)


def test_a_corrupt_entity_is_dropped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    s = _stage(path)
    feed(s, routine(3))
    s.close()
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE entities SET state = ? WHERE key = ?", (b"TSB1\xff\xff\xff\xffjunk", "host:" + host(2)))
        db.execute("UPDATE entities SET state = substr(state, 1, 40) WHERE key = ?", ("host:" + host(3),))
    db.close()
    again = _stage(path)
    assert again.counters["state_corrupt"] == 2
    assert "host:" + host(2) not in again.hosts and "host:" + host(0) in again.hosts
    feed(again, (o for o in routine(5) if o.ts_ns >= START_NS + 3 * DAY))  # and it carries on
    assert again.counters["windows"] > 0


def test_a_state_file_of_another_layout_is_not_loaded(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    s = _stage(path)
    feed(s, routine(2))
    s.close()
    other = _stage(path, window_s=1800)
    assert other.counters["state_layout_changed"] == 1 and not other.hosts
