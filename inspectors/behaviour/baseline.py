"""Baselines: what an entity usually does, in hour-of-week slots and in days.

`Seasonal` keeps, for each of the 168 hours of the week, the last K windows' seasonal features,
each quantised to one byte on a log scale (``round(8 * log1p(value / unit))``: 12 % steps, up to
e^31). Asked about an hour, it pools the same hour and its two neighbours on every day of the
same type (Monday-Friday, or Saturday-Sunday and holidays): with K = 4 weeks that is up to 60
windows for a working hour, 24 for a weekend hour. Memory: 168 x S x K bytes (S seasonal
features) plus 168 counters.

Robust statistics over log values: median, MAD, and a quantile scale ``(p90 - p50) / 1.2816``
that stays meaningful when more than half the windows are empty (a MAD of 0 would make every
upload "infinitely" unusual).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SLOTS = 168
Q = 8.0
"""Quantisation steps per unit of log1p."""
DAYS = 28
"""Working days kept by the sustained detector's series."""


def quantise(values: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Natural values → one byte each on the log scale."""
    q = np.rint(Q * np.log1p(np.maximum(values, 0.0) / units))
    return np.clip(q, 0, 255).astype(np.uint8)


def to_log(values: np.ndarray | Sequence[float], units: np.ndarray) -> np.ndarray:
    """Natural values → the log scale the baselines use (``log1p(value / unit)``)."""
    return np.log1p(np.maximum(np.asarray(values, dtype=np.float64), 0.0) / units)


def from_log(x: np.ndarray | float, units: np.ndarray | float) -> np.ndarray | float:
    """The log scale back to natural units."""
    return np.expm1(x) * units


def _pools() -> tuple[np.ndarray, ...]:
    """For each slot (weekday * 24 + hour, Monday = 0): the slots pooled with it."""
    out = []
    for slot in range(SLOTS):
        dow, hour = divmod(slot, 24)
        days = range(5) if dow < 5 else range(5, 7)
        out.append(np.array([d * 24 + (hour + dh) % 24 for d in days for dh in (-1, 0, 1)], dtype=np.int16))
    return tuple(out)


POOLS = _pools()
HOUR_POOLS = tuple(np.array([d * 24 + (slot % 24 + dh) % 24 for d in range(7) for dh in (-1, 0, 1)], dtype=np.int16)
                   for slot in range(SLOTS))
"""For each slot: the same hour of the day and its neighbours on every day of the week."""


@dataclass(slots=True)
class Stats:
    """Robust statistics of a pooled slot, per feature (log scale)."""

    n: int
    median: np.ndarray
    scale: np.ndarray
    """max(1.4826 MAD, (p90 - p50) / 1.2816); the caller applies its floors."""
    mean: np.ndarray
    """Arithmetic mean in natural units (divided by the feature's unit)."""


def robust(vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(median, scale) along axis 0 of ``vals`` (n, S)."""
    med = np.median(vals, axis=0)
    mad = np.median(np.abs(vals - med), axis=0)
    p90 = np.percentile(vals, 90, axis=0)
    return med, np.maximum(1.4826 * mad, (p90 - med) / 1.2816)


class Seasonal:
    """Hour-of-week baseline of one entity (see the module doc)."""

    __slots__ = ("count", "ring")

    def __init__(self, features: int, weeks: int) -> None:
        self.ring = np.zeros((SLOTS, features, weeks), dtype=np.uint8)
        self.count = np.zeros(SLOTS, dtype=np.uint16)
        """Windows written per slot (saturates at 65535; the ring index is count % weeks)."""

    @property
    def weeks(self) -> int:
        return int(self.ring.shape[2])

    @property
    def nbytes(self) -> int:
        return int(self.ring.nbytes + self.count.nbytes)

    def push(self, slot: int, q: np.ndarray) -> None:
        """Record one window's quantised seasonal features in ``slot``."""
        c = int(self.count[slot])
        self.ring[slot, :, c % self.weeks] = q
        if c < 65535:
            self.count[slot] = c + 1

    def samples(self, slot: int, pools: tuple[np.ndarray, ...] = POOLS) -> np.ndarray:
        """Pooled samples of ``slot`` as (n, S) log values."""
        pool = pools[slot]
        filled = np.minimum(self.count[pool], self.weeks)
        if not filled.any():
            return np.zeros((0, self.ring.shape[1]), dtype=np.float64)
        mask = np.arange(self.weeks)[None, :] < filled[:, None]  # (pool, K)
        vals = self.ring[pool].transpose(0, 2, 1)[mask]  # (n, S)
        return vals.astype(np.float64) / Q

    def stats(self, slot: int, *, all_days: bool = False) -> Stats | None:
        """Statistics of ``slot`` pooled with its neighbours on days of its kind (``all_days``:
        on every day of the week)."""
        vals = self.samples(slot, HOUR_POOLS if all_days else POOLS)
        if not len(vals):
            return None
        med, scale = robust(vals)
        return Stats(len(vals), med, scale, np.expm1(vals).mean(axis=0))

    def active_level(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Over every stored window: (median, scale, count) of the non-zero values per feature
        (what the entity does when it does something), log scale."""
        filled = np.minimum(self.count, self.weeks)
        mask = np.arange(self.weeks)[None, :] < filled[:, None]
        vals = self.ring.transpose(0, 2, 1)[mask].astype(np.float64) / Q  # (n, S)
        if not len(vals):
            z = np.zeros(self.ring.shape[1])
            return z, z, z
        nz = np.where(vals > 0, vals, np.nan)
        n = np.sum(vals > 0, axis=0)
        with np.errstate(all="ignore"), _quiet():
            med = np.nanmedian(nz, axis=0)
            mad = np.nanmedian(np.abs(nz - med), axis=0)
            p90 = np.nanpercentile(nz, 90, axis=0)
        scale = np.maximum(1.4826 * mad, (p90 - med) / 1.2816)
        return np.nan_to_num(med), np.nan_to_num(scale), n

    def reset_to_recent(self) -> None:
        """Make the most recent window of each slot its whole history (a rebaseline: the last
        week is the new normal)."""
        k = self.weeks
        for slot in range(SLOTS):
            c = int(self.count[slot])
            if c == 0:
                continue
            last = self.ring[slot, :, (c - 1) % k].copy()
            self.ring[slot] = last[:, None]
            self.count[slot] = min(c, k)


class _quiet:
    """Silence numpy's all-NaN slice warnings (an entity that never uploads has no active level)."""

    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._w.__exit__(*exc)


def finite(x: float) -> float:
    return x if math.isfinite(x) else 0.0
