"""Chart geometry computed server-side; templates/_charts.html draws it as inline SVG (labels escaped there)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(slots=True, frozen=True)
class Column:
    x: float
    y: float
    w: float
    h: float
    value: int
    label: str


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


def time_chart(buckets: list[tuple[int, int]], width: int = 720, height: int = 160) -> TimeChart:
    """Columns for (bucket start ns, count) pairs."""
    top = nice_max(max((c for _, c in buckets), default=0))
    plot_h = height - 20
    n = max(len(buckets), 1)
    slot = (width - 40) / n
    cols = []
    for i, (t, c) in enumerate(buckets):
        h = plot_h * c / top if top else 0
        cols.append(Column(40 + i * slot + 1, plot_h - h, max(slot - 2, 1), h, c, fmt_ts(t)))
    span = (buckets[-1][0] - buckets[0][0]) if len(buckets) > 1 else 0
    fmt = "%H:%M" if span < 2 * 86400 * 10**9 else "%m-%d"
    ticks = [(40 + i * slot, datetime.fromtimestamp(buckets[i][0] / 1e9, UTC).strftime(fmt))
             for i in range(0, len(buckets), max(1, len(buckets) // 6))]
    return TimeChart(width, height, cols, top, ticks)


@dataclass(slots=True, frozen=True)
class Bar:
    label: str
    value: int
    w: float


def bars(pairs: list[tuple[str, int]], width: int = 200) -> list[Bar]:
    top = max((v for _, v in pairs), default=0)
    return [Bar(k, v, max(1.0, width * v / top) if top else 0) for k, v in pairs]


def fmt_ts(ts_ns: int | None) -> str:
    if ts_ns is None:
        return ""
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
