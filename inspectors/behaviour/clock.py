"""Windows on packet time, in the site's time zone: where a window starts, its hour-of-week slot,
its local day and whether that day is a working day.

Windows are ``window_s`` long and start on local boundaries (a window of an hour starts at a
local full hour, also in zones offset by half an hour). Across a DST change a window keeps its
length in real time: the spring-forward hour simply does not occur as a slot; in autumn the
repeated local hour gives two windows of the same slot. Holidays (site calendar, ``YYYY-MM-DD``)
count as Sundays.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

_OFFSET = re.compile(r"^(?:UTC)?([+-])(\d{1,2}):?(\d{2})$")
NS = 1_000_000_000


def load_tz(name: str) -> tzinfo:
    """``UTC``, a fixed offset (``+08:00``, ``UTC-05:30``) or an IANA name (``Europe/Berlin``)."""
    if name in ("UTC", "Z", "utc", ""):
        return UTC
    m = _OFFSET.match(name)
    if m:
        sign = 1 if m.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (install tzdata, or use UTC or +HH:MM)") from exc


class Clock:
    """Window arithmetic for one time zone, window length and holiday calendar."""

    def __init__(self, tz: str | tzinfo = "UTC", window_s: int = 3600, holidays: tuple[str, ...] = ()) -> None:
        if window_s <= 0 or 86400 % window_s:
            raise ValueError("window_s must divide a day (e.g. 900, 1800, 3600)")
        self.tz = load_tz(tz) if isinstance(tz, str) else tz
        self.window_ns = window_s * NS
        self.holidays = frozenset(date.fromisoformat(d) for d in holidays)
        self._offset = lru_cache(maxsize=4096)(self._offset_of_hour)

    def _offset_of_hour(self, utc_hour: int) -> int:
        try:
            off = datetime.fromtimestamp(utc_hour * 3600, UTC).astimezone(self.tz).utcoffset()
        except (OverflowError, OSError, ValueError):
            return 0
        return int(off.total_seconds()) * NS if off is not None else 0

    def offset_ns(self, ts_ns: int) -> int:
        """The site's UTC offset at ``ts_ns`` (cached per UTC hour)."""
        return self._offset(ts_ns // (3600 * NS))

    def window_start(self, ts_ns: int) -> int:
        """Start (UTC ns) of the window holding ``ts_ns``."""
        off = self.offset_ns(ts_ns)
        return (ts_ns + off) // self.window_ns * self.window_ns - off

    def local(self, ts_ns: int) -> datetime:
        try:
            return datetime.fromtimestamp(ts_ns / NS, UTC).astimezone(self.tz)
        except (OverflowError, OSError, ValueError):
            return datetime.fromtimestamp(0, UTC)

    def working_day(self, d: date) -> bool:
        return d.weekday() < 5 and d not in self.holidays

    def slot(self, ts_ns: int) -> tuple[int, date]:
        """(hour-of-week slot 0..167, Monday 00:00 = 0, holidays as Sunday; local date) of ``ts_ns``."""
        lt = self.local(ts_ns)
        d = lt.date()
        dow = 6 if d in self.holidays else lt.weekday()
        return dow * 24 + lt.hour, d

    def day_start(self, d: date) -> int:
        """UTC ns of local midnight starting ``d``."""
        dt = datetime(d.year, d.month, d.day, tzinfo=self.tz)
        return int(dt.timestamp()) * NS
