"""Each detector on constructed series: robust z with hour-of-week seasonality, off-hours, warm-up,
sustained 3-day sums, novelty, periodicity, and the peer-group Isolation Forest."""

from __future__ import annotations

import random

import numpy as np

from inspectors.behaviour.baseline import Seasonal, quantise
from inspectors.behaviour.config import BehaviourConfig
from inspectors.behaviour.detectors import DaySeries, novelty, regularity, sustained, zscore
from inspectors.behaviour.features import FEATURES, INDEX, SEASONAL, F
from inspectors.behaviour.forest import PeerForest, vector
from inspectors.behaviour.stage import BehaviourStage
from tests.inspectors.behaviour.series import DAY, HOUR, NS, START_NS, feed, host, obs, routine

UNITS_S = np.array([FEATURES[i].unit for i in SEASONAL])


def _window(**values: float) -> list[float]:
    v = [0.0] * F
    for k, x in values.items():
        v[INDEX[k]] = x
    return v


def _office_hours(rng: random.Random, weeks: int = 4) -> Seasonal:
    """A host that works 09-17 on weekdays: a few uploads and active minutes, idle otherwise."""
    s = Seasonal(len(SEASONAL), weeks)
    for _ in range(weeks):
        for slot in range(168):
            dow, hour = divmod(slot, 24)
            if dow < 5 and 9 <= hour < 17:
                v = _window(up_objects=rng.randint(1, 4), up_bytes=rng.randint(2000, 9000),
                            down_objects=rng.randint(5, 12), down_bytes=rng.randint(40_000, 90_000),
                            active_minutes=rng.randint(15, 40), upload_minutes=rng.randint(1, 4), active_hosts=1,
                            up_destinations=1, top_dest_up_bytes=3000, up_bytes_trimmed=2000)
            else:
                v = _window()
            s.push(slot, quantise(np.array([v[i] for i in SEASONAL]), UNITS_S))
    return s


def test_zscore_flags_a_burst_against_the_same_hour_and_names_the_features() -> None:
    s = _office_hours(random.Random(1))
    tue_15 = 24 + 15
    usual = _window(up_objects=3, up_bytes=6000, down_objects=8, down_bytes=60_000, active_minutes=30,
                    upload_minutes=3, active_hosts=1, up_destinations=1, top_dest_up_bytes=3000,
                    up_bytes_trimmed=2500)
    r = zscore(s, tue_15, usual, min_samples=6, peers_quiet=False)
    assert r is None or r.score < 4
    burst = list(usual)
    for k, x in (("up_objects", 400), ("up_objects_document", 400), ("up_bytes", 400 * 80_000),
                 ("up_bytes_document", 400 * 80_000), ("up_bytes_trimmed", 399 * 80_000), ("upload_minutes", 50)):
        burst[INDEX[k]] = x
    r = zscore(s, tue_15, burst, min_samples=6, peers_quiet=False)
    assert r is not None and r.kind == "volume" and r.score >= 6
    names = {d.feature for d in r.deviations}
    assert "up_objects" in names or "up_bytes_trimmed" in names
    top = r.deviations[0]
    assert top.value > top.usual and top.z >= 4


def test_offhours_only_when_host_and_peers_are_idle() -> None:
    s = _office_hours(random.Random(2))
    wed_03 = 2 * 24 + 3
    night = _window(up_bytes=30 * 2**20, up_objects=40, active_minutes=35, upload_minutes=30, active_hosts=1,
                    up_bytes_trimmed=29 * 2**20, down_objects=5, down_bytes=10_000)
    r = zscore(s, wed_03, night, min_samples=6, peers_quiet=True)
    assert r is not None and r.kind == "offhours" and r.score >= 4.5
    r = zscore(s, wed_03, night, min_samples=6, peers_quiet=False)  # colleagues work nights: not off-hours
    assert r is None or r.kind == "volume"


def test_no_score_before_enough_samples() -> None:
    s = Seasonal(len(SEASONAL), 4)
    assert zscore(s, 10, _window(up_objects=1000), min_samples=6, peers_quiet=False) is None


def test_warm_up_keeps_a_new_host_quiet() -> None:
    cfg = BehaviourConfig(warmup_days=7)
    stage = BehaviourStage(cfg)
    stage.configure([])
    stage.anomaly_log = []
    obsv = list(routine(5))
    t = START_NS + 4 * DAY + 14 * HOUR
    obsv += [obs(t + i * 30 * NS, host(0), "crm.saas.example", 200_000, cls=0) for i in range(100)]
    feed(stage, sorted(obsv))
    stage.tick(START_NS + 5 * DAY)
    assert not [a for a in stage.anomaly_log if a.detector in ("zscore", "offhours", "iforest")]


def _days(values: list[float]) -> DaySeries:
    s = DaySeries()
    for x in values:
        s.push(x)
    return s


def test_sustained_sees_three_heavy_days_not_one_ordinary_week() -> None:
    rng = random.Random(3)
    normal = [rng.uniform(0.5, 2.0) * 2**20 for _ in range(20)]
    steady = sustained(_days([*normal, 1.2 * 2**20, 0.8 * 2**20, 1.5 * 2**20]))
    assert steady is not None and steady[0] < 3
    slow = sustained(_days([*normal, 40 * 2**20, 45 * 2**20, 38 * 2**20]))
    assert slow is not None and slow[0] >= 4 and slow[1] > 100 * 2**20
    assert sustained(_days(normal[:5])) is None  # not enough history


def test_novelty_weighs_category_volume_and_peers() -> None:
    risky = novelty(3 * 2**20, 1.0, 0.0, common_share=0.05, objects=20)
    assert risky >= 2
    assert novelty(3 * 2**20, 1.0, 0.2, common_share=0.05, objects=20) == 0  # a fifth of the zone uses it
    assert novelty(50_000, 0.2, 0.0, common_share=0.05) < 1  # one form to an ordinary site
    assert novelty(0, 1.0, 0.0, common_share=0.05) == 0


def test_periodicity_tells_a_metronome_from_a_person() -> None:
    rng = random.Random(4)
    t, beacon = 0.0, []
    for _ in range(32):
        t += 60 + rng.uniform(-1.5, 1.5)
        beacon.append(int(t))
    period, reg = regularity(beacon, min_events=12, min_period=10, max_period=3600)
    assert 55 <= period <= 65 and reg >= 0.9
    t, human = 0.0, []
    for _ in range(32):
        t += rng.expovariate(1 / 300)
        human.append(int(t))
    assert regularity(human, min_events=12, min_period=10, max_period=3600)[1] < 0.6
    assert regularity(beacon[:8], min_events=12, min_period=10, max_period=3600) == (0.0, 0.0)


def _peer(rng: random.Random) -> np.ndarray:
    return vector(_window(up_objects=rng.randint(1, 5), up_bytes=rng.randint(2000, 20_000),
                          down_objects=rng.randint(5, 20), down_bytes=rng.randint(40_000, 200_000),
                          active_minutes=rng.randint(10, 50), active_hosts=1), rng.randint(9, 16), False)


def test_isolation_forest_isolates_a_peer_outlier() -> None:
    """A window unlike its zone's in several ways at once (uploads without browsing, at night)
    scores above every ordinary window. (A forest cannot tell how far beyond its training range
    a value lies, only that it is at the edge: sheer volume is the z-scores' business.)"""
    rng = random.Random(5)
    f = PeerForest(2048, trees=100, seed=0)
    for _ in range(1000):
        f.add(_peer(rng))
    assert not PeerForest(2048).train(0, 512)  # too few windows
    assert f.train(0, 512)
    normal = np.stack([_peer(rng) for _ in range(200)])
    odd = vector(_window(up_objects=300, up_bytes=900 * 2**20, active_minutes=60, active_hosts=1), 3, False)
    s_normal, s_odd = f.score(normal), f.score(odd[None])[0]
    assert s_odd > s_normal.max() and s_odd >= 0.6
    names = [d.feature for d in f.explain(odd)]
    assert {"up_bytes", "up_objects", "down_bytes", "down_objects"} & set(names)
    both = np.vstack([normal[:5], odd[None]])
    np.testing.assert_allclose(f.score(both), -f.model.score_samples(both), rtol=1e-6)  # fast path = sklearn
    again = PeerForest(2048, trees=100, seed=0)
    assert again.train(0, 1, f.trained)  # a restart refits the same forest from the same windows
    np.testing.assert_allclose(again.score(both), f.score(both))
