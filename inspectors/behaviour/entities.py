"""The state kept per entity (internal host, zone, user-agent family) and per zone.

An `Entity` holds its open window and its hour-of-week baseline; a host also holds its upload
bytes per working day, in total and to its busiest destinations (`DaySeries`, at most
`MAX_DEST_SERIES`), the destinations it has contacted and uploaded to (`DestTable`: a bounded
hash table, least recently seen forgotten first) and the upload times of its recent
destinations (`Track`s, least recently used evicted). `ZoneState` holds the zone's peer forest and
how many of the zone's hosts upload to each destination (bounded). Everything is numpy arrays or
small Python containers with a cap, so `Entity.nbytes` is an honest upper estimate.
"""

from __future__ import annotations

from array import array

import numpy as np

from inspectors.behaviour.baseline import Seasonal
from inspectors.behaviour.detectors import DaySeries, Track
from inspectors.behaviour.features import SEASONAL, Window
from inspectors.behaviour.forest import PeerForest

TRACK_BYTES = 420
"""Estimated bytes of one `Track` (its array, slots, dict entry and key)."""
WINDOW_BYTES = 2048
"""Estimated bytes of an open window (vector, minute sets, a few destinations)."""
MAX_DEST_SERIES = 8
"""Destinations per host whose daily upload bytes are kept (for the sustained detector)."""
DAY_DESTS = 64
"""Destinations per host whose bytes are summed over the current day."""


class DestTable:
    """The destinations a host has contacted (and whether it uploaded to them): an open-addressing
    hash table of 63-bit destination hashes with the day each was last seen, at most ``cap``
    entries; when full, the least recently seen eighth is forgotten. Plain ``array``s, so a
    look-up costs a few hundred nanoseconds and memory grows with use (up to about 22 bytes per
    entry at the cap)."""

    __slots__ = ("cap", "days", "flags", "keys", "size")

    def __init__(self, cap: int, slots: int = 64) -> None:
        self.cap = cap
        self.size = 0
        self._alloc(slots)

    def _alloc(self, slots: int) -> None:
        self.keys = array("Q", bytes(8 * slots))
        self.days = array("H", bytes(2 * slots))
        self.flags = array("B", bytes(slots))
        """0: empty slot; 1: contacted; 3: contacted and uploaded to."""

    def __len__(self) -> int:
        return self.size

    @property
    def nbytes(self) -> int:
        return 11 * len(self.keys)

    def _slot(self, h: int) -> int:
        keys, flags = self.keys, self.flags
        mask = len(keys) - 1
        i = h & mask
        while flags[i] and keys[i] != h:
            i = (i + 1) & mask
        return i

    def get(self, h: int) -> int:
        """0 (unknown), 1 (contacted) or 3 (uploaded to)."""
        return self.flags[self._slot(h)]

    def mark(self, h: int, day: int, flag: int) -> int:
        """Record contact (``flag`` 1) or upload (3) on ``day``; returns the previous flags."""
        i = self._slot(h)
        old = self.flags[i]
        if not old:
            if self.size >= self.cap or (self.size + 1) * 4 > len(self.keys) * 3:
                self._grow_or_forget()
                i = self._slot(h)
            self.keys[i] = h
            self.size += 1
        self.flags[i] = old | flag
        self.days[i] = day
        return old

    def _grow_or_forget(self) -> None:
        entries = [(self.days[i], self.keys[i], self.flags[i]) for i in range(len(self.keys)) if self.flags[i]]
        if len(entries) >= self.cap:
            entries.sort()
            entries = entries[len(entries) // 8 or 1:]
        slots = len(self.keys)
        while len(entries) * 4 >= slots * 3 or slots < 64:
            slots *= 2
        self._alloc(slots)
        self.size = 0
        for day, key, flag in entries:
            i = self._slot(key)
            self.keys[i], self.days[i], self.flags[i] = key, day, flag
            self.size += 1

    def items(self) -> list[tuple[int, int, int]]:
        """(hash, day, flags) of every entry."""
        return [(self.keys[i], self.days[i], self.flags[i]) for i in range(len(self.keys)) if self.flags[i]]

    @classmethod
    def from_items(cls, cap: int, items: list[tuple[int, int, int]]) -> DestTable:
        t = cls(cap)
        for key, day, flag in items[-cap:]:
            t.mark(int(key), int(day), int(flag) & 3 or 1)
        return t


class Entity:
    """One host, zone or user-agent family."""

    __slots__ = ("day_dests", "day_largest", "day_total", "dest_days", "dests", "first_ns", "hold", "key", "last_ns",
                 "level", "level_day", "seasonal", "total_days", "tracks", "window", "windows", "zone")

    def __init__(self, key: str, zone: str, first_ns: int, *, weeks: int, max_dests: int = 0) -> None:
        self.key = key
        self.zone = zone
        self.first_ns = first_ns
        self.last_ns = first_ns
        self.windows = 0
        """Observed windows closed since the entity was first seen."""
        self.seasonal = Seasonal(len(SEASONAL), weeks)
        self.window: Window | None = None
        host = key.startswith("host:")
        self.total_days = DaySeries() if host else None
        self.dest_days: dict[str, DaySeries] = {}
        self.day_total = 0.0
        """Upload bytes since the last working day was recorded (weekends carry over)."""
        self.day_largest = 0.0
        """The largest single object among them."""
        self.day_dests: dict[str, list[float]] = {}
        """Per destination (at most `DAY_DESTS`): [bytes, largest object]."""
        self.hold = 0
        """Working days the sustained detector stays quiet after an alert (its sums still hold
        the days it alerted on)."""
        self.dests = DestTable(max_dests) if host else None
        self.tracks: dict[str, Track] = {}
        self.level: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        """`Seasonal.active_level`, recomputed once a day (`level_day`)."""
        self.level_day = -1

    def active_level(self, day: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.level is None or self.level_day != day:
            self.level = self.seasonal.active_level()
            self.level_day = day
        return self.level

    @property
    def is_host(self) -> bool:
        return self.dests is not None

    @property
    def name(self) -> str:
        return self.key.partition(":")[2]

    def nbytes(self, max_tracks: int) -> int:
        """Upper estimate of the entity's memory (arrays at their caps, tracks at the cap)."""
        n = 400 + self.seasonal.nbytes + WINDOW_BYTES
        if self.is_host:
            cap = self.dests.cap  # type: ignore[union-attr]
            slots = 64
            while slots * 3 < cap * 4:
                slots *= 2
            n += (self.total_days.nbytes * (1 + MAX_DEST_SERIES) + 11 * slots * 2  # type: ignore[union-attr]
                  + max_tracks * TRACK_BYTES + DAY_DESTS * 120)
        return n

    def add_day(self, total: float, largest: float, dest_bytes: dict[str, float], dest_max: dict[str, float]) -> None:
        """Add a closed window's uploads to the day's sums."""
        self.day_total += total
        self.day_largest = max(self.day_largest, largest)
        dd = self.day_dests
        for dest, b in dest_bytes.items():
            if not dest:
                continue
            cur = dd.get(dest)
            if cur is None:
                if len(dd) >= DAY_DESTS:
                    continue
                cur = dd[dest] = [0.0, 0.0]
            cur[0] += b
            cur[1] = max(cur[1], dest_max.get(dest, 0.0))

    def trimmed_day(self) -> tuple[float, dict[str, float]]:
        """The day's upload bytes without its largest object, in total and per destination (one
        large legitimate upload is not a trend; several are)."""
        return (max(0.0, self.day_total - self.day_largest),
                {d: max(0.0, b - m) for d, (b, m) in self.day_dests.items()})

    def rebaseline(self) -> None:
        """The entity's recent behaviour becomes its normal (see docs/behaviour.md: verdicts)."""
        self.seasonal.reset_to_recent()
        self.level = None
        for series in (self.total_days, *self.dest_days.values()):
            if series is not None:
                series.reset_to_recent()
        for t in self.tracks.values():
            t.known = True


class ZoneState:
    """A zone's peer forest and how many of its hosts upload to each destination."""

    __slots__ = ("cap", "forest", "hosts", "prevalence")

    def __init__(self, *, forest_capacity: int, trees: int, seed: int, cap: int = 100_000) -> None:
        self.forest = PeerForest(forest_capacity, trees=trees, seed=seed)
        self.prevalence: dict[int, int] = {}
        """Destination hash → number of the zone's hosts that uploaded to it (insertion order ≈ age)."""
        self.cap = cap
        self.hosts = 0

    def count_uploader(self, h: int) -> None:
        p = self.prevalence
        p[h] = p.pop(h, 0) + 1
        while len(p) > self.cap:
            p.pop(next(iter(p)))

    def share(self, h: int) -> float:
        """Share of the zone's hosts that upload to ``h``."""
        return self.prevalence.get(h, 0) / max(1, self.hosts)

    @property
    def nbytes(self) -> int:
        return self.forest.nbytes + 100 * len(self.prevalence)
