"""Chart geometry computed server-side; templates/_charts.html draws it as inline SVG (labels escaped there)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


@dataclass(slots=True, frozen=True)
class Column:
    x: float
    y: float
    w: float
    h: float
    value: int
    label: str
    since: int = 0
    until: int = 0
    """The bucket's time range (a click zooms into it)."""


@dataclass(slots=True, frozen=True)
class Segment:
    y: float
    h: float
    value: int
    series: int
    """Index of the series (its colour class)."""
    name: str


@dataclass(slots=True, frozen=True)
class StackColumn:
    x: float
    w: float
    label: str
    since: int
    until: int
    total: int
    segments: list[Segment]


@dataclass(slots=True, frozen=True)
class StackChart:
    width: int
    height: int
    columns: list[StackColumn]
    max_value: int
    ticks: list[tuple[float, str]]
    names: list[str]


@dataclass(slots=True, frozen=True)
class TimeChart:
    width: int
    height: int
    columns: list[Column]
    max_value: int
    ticks: list[tuple[float, str]]
    """(x, label) under the axis."""


def nice_max(n: int) -> int:
    """A round axis maximum ≥ n."""
    if n <= 5:
        return max(n, 1)
    mag = 10 ** (len(str(n)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        if n <= step * mag:
            return int(step * mag)
    return n


def _ticks(starts: list[int], slot: float, tz: tzinfo) -> list[tuple[float, str]]:
    span = (starts[-1] - starts[0]) if len(starts) > 1 else 0
    fmt = "%H:%M" if span < 2 * 86400 * 10**9 else "%m-%d"
    return [(40 + i * slot, datetime.fromtimestamp(starts[i] / 1e9, tz).strftime(fmt))
            for i in range(0, len(starts), max(1, len(starts) // 6))]


def time_chart(buckets: list[tuple[int, int]], width: int = 720, height: int = 160, tz: tzinfo = UTC,
               until: int | None = None) -> TimeChart:
    """Columns for (bucket start ns, count) pairs (each knows its range, for zooming; *until* ends the last)."""
    top = nice_max(max((c for _, c in buckets), default=0))
    plot_h = height - 20
    n = max(len(buckets), 1)
    slot = (width - 40) / n
    cols = []
    for i, (t, c) in enumerate(buckets):
        h = plot_h * c / top if top else 0
        end = buckets[i + 1][0] if i + 1 < len(buckets) else (until if until is not None else t + 1)
        cols.append(Column(40 + i * slot + 1, plot_h - h, max(slot - 2, 1), h, c, fmt_ts(t, tz), t, end))
    ticks = _ticks([t for t, _ in buckets], slot, tz) if buckets else []
    return TimeChart(width, height, cols, top, ticks)


def stack_chart(since: int, width_ns: int, series: dict[str, list[int]], width: int = 720, height: int = 180,
                tz: tzinfo = UTC, until: int | None = None) -> StackChart:
    """Stacked columns: one per bucket of *width_ns* from *since*, one segment per series (largest at the bottom)."""
    names = sorted(series, key=lambda k: -sum(series[k]))
    n = max((len(v) for v in series.values()), default=0)
    totals = [sum(series[k][i] for k in names) for i in range(n)]
    top = nice_max(max(totals, default=0))
    plot_h = height - 20
    slot = (width - 40) / max(n, 1)
    cols = []
    for i in range(n):
        y, segs = float(plot_h), []
        for si, name in enumerate(names):
            v = series[name][i]
            if not v:
                continue
            h = plot_h * v / top if top else 0
            y -= h
            segs.append(Segment(y, h, v, si % 8, name))
        start = since + i * width_ns
        end = min(start + width_ns, until) if until is not None else start + width_ns
        cols.append(StackColumn(40 + i * slot + 1, max(slot - 2, 1), fmt_ts(start, tz), start, end, totals[i], segs))
    ticks = _ticks([since + i * width_ns for i in range(n)], slot, tz) if n else []
    return StackChart(width, height, cols, top, ticks, names)


@dataclass(slots=True, frozen=True)
class Bar:
    label: str
    value: int
    w: float


def bars(pairs: list[tuple[str, int]], width: int = 200) -> list[Bar]:
    top = max((v for _, v in pairs), default=0)
    return [Bar(k, v, max(1.0, width * v / top) if top else 0) for k, v in pairs]


def fmt_ts(ts_ns: int | None, tz: tzinfo = UTC) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in *tz* (UTC by default)."""
    if ts_ns is None:
        return ""
    return datetime.fromtimestamp(ts_ns / 1e9, tz).strftime("%Y-%m-%d %H:%M:%S")


def zone(name: str | None) -> tzinfo:
    """The time zone named *name* (IANA, e.g. ``Asia/Shanghai``); UTC for unknown names."""
    if not name or name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC
