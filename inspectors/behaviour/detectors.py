"""The detectors: pure functions and small state objects over baselines and windows.

- `zscore`: robust z-scores (median/MAD on a log scale) of a window against the entity's own
  hour-of-week baseline. When the entity is never active at that hour, mere activity is only
  unusual if its peers (the zone) are not active then either ("off-hours"); otherwise the window
  is compared with what the entity does when it is active.
- `sustained`: slow exfiltration that stays under every per-window threshold: the robust z of
  the last three working days' upload bytes, in total and to each busy destination, against the
  host's own history of such sums.
- `novelty`: uploads to a destination the host never uploaded to, weighted by the destination's
  category risk and how few peers use it.
- `Track` / `regularity`: beaconing: inter-upload intervals to one destination that are too
  regular (robust coefficient of variation) over enough events.
- The peer-group Isolation Forest lives in `forest.py`.

Each detector returns its score and the `Deviation`s that explain it; the stage makes `Anomaly`s.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from inspectors.behaviour.baseline import DAYS, Seasonal, from_log, to_log
from inspectors.behaviour.features import (
    ACTIVE_MINUTES,
    FEATURES,
    I_ACTIVE_HOSTS,
    I_ACTIVE_MIN,
    SEASONAL,
)

DETECTORS: tuple[str, ...] = ("zscore", "offhours", "sustained", "novelty", "periodicity", "iforest")
"""Detector names (the policy's ``behaviour.detectors`` keys); ``offhours`` is the z-score
detector when the entity and its peers are usually idle at that hour."""

DEFAULT_THRESHOLDS: Mapping[str, float] = {
    "zscore": 6.0, "offhours": 4.5, "sustained": 3.5, "novelty": 2.0, "periodicity": 0.8, "iforest": 0.75,
}
"""Alert thresholds when a profile does not set its own (see docs/behaviour.md: tuning)."""

REPORT_FLOORS: Mapping[str, float] = {
    "zscore": 4.0, "offhours": 3.5, "sustained": 3.0, "novelty": 1.0, "periodicity": 0.6, "iforest": 0.65,
}
"""Below these a detector does not report at all (thresholds may not be set lower)."""


@dataclass(frozen=True, slots=True)
class Deviation:
    """One feature's deviation: its value and usual value (natural units) and robust z."""

    feature: str
    value: float
    usual: float
    z: float

    def text(self) -> str:
        f = next((x for x in FEATURES if x.name == self.feature), None)
        label = f.label if f is not None else self.feature
        fmt = _bytes if f is not None and f.bytes else _count
        return f"{label} {fmt(self.value)} vs usual {fmt(self.usual)} (z {self.z:.1f})"


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _count(n: float) -> str:
    return f"{n:.0f}" if abs(n - round(n)) < 0.05 else f"{n:.1f}"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """What a detector found about one subject over one window."""

    detector: str
    kind: str
    """``volume``, ``offhours``, ``sustained``, ``new-destination``, ``beaconing``, ``peer-outlier``."""
    subject: str
    """``host:ADDRESS``, ``zone:NAME`` or ``ua:FAMILY``."""
    zone: str
    start_ns: int
    end_ns: int
    score: float
    deviations: tuple[Deviation, ...] = ()
    dst_zone: str = "any"
    destination: str = ""
    upload: bool = True
    detail: Mapping[str, str] = field(default_factory=dict)

    @property
    def subject_kind(self) -> str:
        return self.subject.partition(":")[0]

    @property
    def subject_name(self) -> str:
        return self.subject.partition(":")[2]

    def explain(self) -> str:
        """One line for the analyst: what deviates and by how much."""
        parts = [d.text() for d in self.deviations[:4]]
        extra = "; ".join(f"{k} {v}" for k, v in self.detail.items() if k in _EXPLAINED)
        if self.destination:
            parts.insert(0, f"destination {self.destination}")
        if extra:
            parts.append(extra)
        return f"{self.kind}: " + "; ".join(parts)


_EXPLAINED = ("period", "regularity", "events", "category", "peers", "days")


# --------------------------------------------------------------------------- z-scores

_SEASONAL_FEATURES = tuple(FEATURES[i] for i in SEASONAL)
UNITS_S = np.array([f.unit for f in _SEASONAL_FEATURES])
FLOORS_S = np.array([f.floor for f in _SEASONAL_FEATURES])
MINIMA_S = np.array([f.minimum for f in _SEASONAL_FEATURES])
ALERTING_S = np.array([f.alerting for f in _SEASONAL_FEATURES])
OFFHOURS_S = np.array([f.alerting or f.offhours for f in _SEASONAL_FEATURES])
UPLOAD_S = np.array([f.upload for f in _SEASONAL_FEATURES])
_POS_ACTIVE_MIN = SEASONAL.index(I_ACTIVE_MIN)
_POS_ACTIVE_HOSTS = SEASONAL.index(I_ACTIVE_HOSTS)
_QUIET = math.log1p(ACTIVE_MINUTES) / 2
IDLE_SHARE = 0.05
"""An entity is idle at an hour of the week when it was active in at most this share of its
past windows there (a night owl who works late one evening in five is not idle then)."""


@dataclass(frozen=True, slots=True)
class ZResult:
    score: float
    kind: str
    deviations: tuple[Deviation, ...]
    upload: bool


SUPPORT = 5
"""Non-zero windows a feature needs in the entity's history before it may raise on its own when
this hour's usual value is zero (an upload of a class the host rarely sends is compared with
what it does when it does send one; with no such history the feature only explains)."""


def zscore(seasonal: Seasonal, slot: int, window: list[float], *, min_samples: int,
           peers_quiet: bool, level: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
           floor_scale: float = 1.0) -> ZResult | None:
    """Robust z-scores of a window's seasonal features against ``slot``'s pooled baseline.

    Per feature: when the hour's median is above zero, the ordinary robust z. When it is zero:
    if the entity is idle at this hour and ``peers_quiet`` (its zone is hardly ever active then
    either), any activity is compared with nothing (``offhours``); otherwise the value is compared
    with the entity's usual non-zero level of that feature (``level``, from
    `Seasonal.active_level`), and a feature without enough such history only explains.
    ``floor_scale`` multiplies the features' scale floors (aggregates of many hosts vary less).
    """
    st = seasonal.stats(slot)
    if st is None or st.n < min_samples:
        return None
    x_nat = np.array([window[i] for i in SEASONAL])
    x = to_log(x_nat, UNITS_S)
    floors = FLOORS_S * floor_scale
    z = (x - st.median) / np.maximum(st.scale, floors)
    usual = st.median.copy()
    idle = st.median[_POS_ACTIVE_MIN] < _QUIET and st.mean[_POS_ACTIVE_HOSTS] <= IDLE_SHARE
    offhours = idle and peers_quiet
    alerting = (OFFHOURS_S if offhours else ALERTING_S).copy()
    zero = st.median <= 0
    if zero.any() and not offhours:
        med, sc, nnz = level if level is not None else seasonal.active_level()
        supported = nnz >= SUPPORT
        z_level = (x - med) / np.maximum(sc, floors)
        z = np.where(zero & supported, z_level, z)
        usual = np.where(zero & supported, med, usual)
        alerting &= ~zero | supported
    live = alerting & (x_nat >= MINIMA_S) & np.isfinite(z)
    if not live.any():
        return None
    zl = np.where(live, z, -np.inf)
    best = int(np.argmax(zl))
    order = np.argsort(-z)
    devs = []
    for i in order[:8]:
        if z[i] < 2.0 or x_nat[i] <= 0:
            break
        devs.append(Deviation(_SEASONAL_FEATURES[i].name, float(x_nat[i]),
                              float(from_log(usual[i], UNITS_S[i])), float(z[i])))
    return ZResult(float(zl[best]), "offhours" if offhours else "volume", tuple(devs), bool(UPLOAD_S[best]))


# --------------------------------------------------------------------------- sustained (multi-day sums)

SUSTAIN_DAYS = 3
"""Working days summed by the sustained detector."""
SUSTAIN_UNIT = 64 * 1024.0
SUSTAIN_FLOOR = 0.6
SPIKE_PENALTY = 1.5
SUSTAIN_MINIMUM = 16 * 1024 * 1024
"""Below this many bytes in `SUSTAIN_DAYS` a rise is not worth an alert."""


class DaySeries:
    """Upload bytes per working day (the last `DAYS`), of a host or of one host → destination;
    bytes of weekends and holidays count with the next working day."""

    __slots__ = ("n", "values")

    def __init__(self, n: int = 0) -> None:
        self.values = np.zeros(DAYS, dtype=np.float32)
        self.n = n
        """Working days recorded (the ring holds the last `DAYS`)."""

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes) + 64

    def push(self, x: float) -> None:
        self.values[self.n % DAYS] = x
        self.n += 1

    def last(self, k: int) -> np.ndarray:
        """The last ``k`` days, oldest first."""
        k = min(k, self.n, DAYS)
        return np.array([self.values[(self.n - k + i) % DAYS] for i in range(k)], dtype=np.float64)

    def reset_to_recent(self, days: int = 5) -> None:
        recent = self.last(days)
        self.values[:] = 0
        self.n = 0
        for x in recent:
            self.push(float(x))


def sustained(series: DaySeries, *, days: int = SUSTAIN_DAYS, min_history: int = 12,
              min_active: int = 2) -> tuple[float, float, float] | None:
    """How unusual the last ``days`` working days are, together and day by day.

    The robust z of their sum against the sums of ``days`` consecutive days before them (log
    scale), capped by the z of their *second* largest day against the earlier days (same scale):
    a trend needs at least two heavy days. A single day counts too, scored against single days
    less `SPIKE_PENALTY`. Returns (score, sum now, usual sum), or None without enough history (``min_history``
    earlier days, ``min_active`` of them with uploads)."""
    hist = series.last(DAYS)
    if len(hist) < days + min_history:
        return None
    past, recent = hist[:-days], hist[-days:]
    if np.count_nonzero(past) < min_active:
        return None
    now = float(recent.sum())
    sums = np.log1p(np.convolve(past, np.ones(days), mode="valid") / SUSTAIN_UNIT)
    med = float(np.median(sums))
    mad = float(np.median(np.abs(sums - med)))
    p90 = float(np.percentile(sums, 90))
    scale = max(1.4826 * mad, (p90 - med) / 1.2816, SUSTAIN_FLOOR)
    z_sum = (math.log1p(now / SUSTAIN_UNIT) - med) / scale
    daily = np.log1p(past / SUSTAIN_UNIT)
    day_med = float(np.median(daily))
    second = float(np.sort(recent)[-2]) if days > 1 else now
    z = min(z_sum, (math.log1p(second / SUSTAIN_UNIT) - day_med) / scale)
    # one very heavy day (several large objects: the largest is already left out) also counts,
    # against the spread of single days and with a penalty
    day_scale = max(1.4826 * float(np.median(np.abs(daily - day_med))),
                    (float(np.percentile(daily, 90)) - day_med) / 1.2816, SUSTAIN_FLOOR)
    z = max(z, (math.log1p(float(recent[-1]) / SUSTAIN_UNIT) - day_med) / day_scale - SPIKE_PENALTY)
    if now < SUSTAIN_MINIMUM:
        z = min(z, 0.0)
    return z, now, float(np.expm1(med) * SUSTAIN_UNIT)


# --------------------------------------------------------------------------- novelty


NOVELTY_CAP = 4 * 1024 * 1024
"""Volume beyond this adds nothing to the novelty score (how much is the z-scores' business;
novelty is about where): one upload of any size to an unknown site of a harmless-looking kind
stays below the default threshold, one document to a paste site does not."""


def novelty(up_bytes: float, risk: float, peer_share: float, *, common_share: float, objects: int = 1) -> float:
    """Score of uploads to a destination new to the host: category risk x log2 of the volume
    (in 64 KiB, capped at `NOVELTY_CAP`) x the square root of the number of objects, fading to 0
    as the share of peers that use the destination reaches ``common_share``."""
    if up_bytes <= 0 or risk <= 0:
        return 0.0
    rarity = max(0.0, 1.0 - peer_share / common_share) if common_share > 0 else 1.0
    volume = math.log2(1.0 + min(up_bytes, NOVELTY_CAP) / 65536.0)
    return risk * volume * math.sqrt(max(1, objects)) * rarity


# --------------------------------------------------------------------------- periodicity

TRACK_EVENTS = 32
"""Upload times kept per (host, destination)."""


class Track:
    """Recent upload times (seconds) of one host to one destination."""

    __slots__ = ("bytes", "first_s", "known", "last_eval", "n", "times")

    def __init__(self) -> None:
        self.times = array("q", [0] * TRACK_EVENTS)
        self.n = 0
        self.first_s = 0
        self.bytes = 0
        self.known = False
        """Periodic before (learnt during warm-up, alerted once, or judged normal)."""
        self.last_eval = 0

    def add(self, ts_s: int, size: int) -> None:
        if self.n and ts_s - self.times[(self.n - 1) % TRACK_EVENTS] < 1:
            return  # the same exchange (request and response), not a new beat
        if not self.n:
            self.first_s = ts_s
        self.times[self.n % TRACK_EVENTS] = ts_s
        self.n += 1
        self.bytes += size

    def recent(self) -> list[int]:
        k = min(self.n, TRACK_EVENTS)
        return [self.times[(self.n - k + i) % TRACK_EVENTS] for i in range(k)]

    @property
    def mean_size(self) -> float:
        return self.bytes / self.n if self.n else 0.0


def regularity(times: list[int], *, min_events: int, min_period: float, max_period: float) -> tuple[float, float]:
    """(period, regularity) of event times: period is the median interval, regularity
    ``1 - robust CV`` of the intervals (1 = a metronome). (0, 0) when too few events or the
    period is out of range."""
    if len(times) < min_events:
        return 0.0, 0.0
    iv = np.diff(np.asarray(times, dtype=np.float64))
    iv = iv[iv > 0]
    if len(iv) < min_events - 1:
        return 0.0, 0.0
    med = float(np.median(iv))
    if not (min_period <= med <= max_period):
        return med, 0.0
    mad = float(np.median(np.abs(iv - med)))
    cv = 1.4826 * mad / med
    # a beat missed by the tap doubles one interval; more than a few of those is not a metronome
    off = float(np.mean(np.abs(iv - med) > 0.5 * med))
    return med, max(0.0, 1.0 - cv - off)
