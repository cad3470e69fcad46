"""Numbers: the dashboard's charts, the API's statistics and the Prometheus exposition."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from webui import charts
from webui.alerts import AlertView
from webui.errors import ServiceError
from webui.sensorstats import read_sensor_stats

RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400, "all": 0}
HOUR_NS = 3_600_000_000_000
MIN_ZOOM_NS = 60 * 10**9
SNAP_ABOVE_NS = 2 * HOUR_NS
"""Zoomed ranges longer than this are widened to whole hours (the rollups answer them)."""
TOP_CATEGORIES = 6
_SEV = {"1": "critical", "2": "high", "3": "medium", "4": "low", "5": "info"}


def _range(view: AlertView, name: str, tz: Any) -> tuple[int, int, str]:
    """(since, until, caption): whole hours ending with the newest hit's hour (so a replayed capture shows too)."""
    first, last = view.time_bounds()
    if last is None:
        now = time.time_ns() // HOUR_NS * HOUR_NS + HOUR_NS
        return now - 24 * HOUR_NS, now, "no hits yet"
    until = (last // HOUR_NS + 1) * HOUR_NS
    secs = RANGES.get(name, 86400)
    since = ((first or last) // HOUR_NS * HOUR_NS) if secs == 0 else until - secs * 10**9
    return since, until, f"up to the newest hit ({charts.fmt_ts(last, tz)})"


def zoom(since: str, until: str) -> tuple[int, int] | None:
    """A zoomed range from the chart's links (ns); None for none; `ServiceError` for a bad one."""
    if not since and not until:
        return None
    try:
        a, b = int(since), int(until)
    except ValueError:
        raise ServiceError("the zoom range is not a time range (follow the chart's links)", 400) from None
    if b - a < MIN_ZOOM_NS:
        raise ServiceError("the zoom range is shorter than a minute", 400)
    if b - a > SNAP_ABOVE_NS:
        a, b = a // HOUR_NS * HOUR_NS, -(-b // HOUR_NS) * HOUR_NS
    return a, b


def _categories(view: AlertView, since: int, until: int, tz: Any) -> charts.StackChart:
    top = [k for k, _ in view.top("category", since, until, TOP_CATEGORIES)]
    width, series = view.series("category", since, until, 48, top)
    n = -(-(until - since) // width)
    return charts.stack_chart(since, width, {k: v[:n] for k, v in series.items()} or {"": [0] * n}, tz=tz,
                              until=until)


def dashboard(view: AlertView, settings: Any, range_name: str, tz: Any = None,
              zoomed: tuple[int, int] | None = None) -> dict[str, Any]:
    from datetime import UTC

    tz = tz or UTC
    rng = range_name if range_name in RANGES else "24h"
    if zoomed is not None:
        since, until = zoomed
        caption = f"{charts.fmt_ts(since, tz)} – {charts.fmt_ts(until, tz)}"
    else:
        since, until, caption = _range(view, rng, tz)
    sev = [(_SEV.get(k, k), n) for k, n in sorted(view.top("severity", since, until, 5))]
    return {
        "range": rng if zoomed is None else "", "ranges": list(RANGES), "caption": caption,
        "total": view.count_range(since, until),
        "chart": charts.time_chart(view.histogram(since, until), tz=tz, until=until),
        "categories": _categories(view, since, until, tz),
        "by_severity": charts.bars(sev, 140),
        "by_zone": charts.bars(view.top("zones", since, until), 140),
        "by_category": charts.bars(view.top("category", since, until), 140),
        "by_policy": charts.bars(view.top("policy", since, until), 140),
        "by_host": charts.bars(view.top("host", since, until), 140),
        "by_client": charts.bars(view.top("client", since, until), 140),
        "by_server": charts.bars(view.top("server", since, until), 140),
        "by_triage": charts.bars(view.top("triage", since, until), 140),
        "stats": view.totals(), "since": since, "until": until, "zoomed": zoomed is not None,
        "sensor": read_sensor_stats(settings.stats_file, settings.stats_stale_s),
    }


def api_stats(view: AlertView, settings: Any) -> dict[str, Any]:
    return {"store": view.stats(), "rules": view.rule_quality(), "lists": view.list_quality(),
            "sensor": read_sensor_stats(settings.stats_file, settings.stats_stale_s)}


def _label(v: Any) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")[:200]


class Exposition:
    """Prometheus text format, one metric family at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, help_: str, samples: list[tuple[dict[str, Any], float | None]]) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if value is None:
                continue
            lab = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{lab}}} {float(value):g}" if lab else f"{name} {float(value):g}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _store_metrics(out: Exposition, open_view: Callable[[], AlertView]) -> None:
    up = "1 when the alert store could be read."
    try:
        with open_view() as view:
            stats = view.stats()
    except Exception:  # a scrape reports the store as down rather than failing
        out.metric("tapsift_store_up", "gauge", up, [({}, 0)])
        return
    out.metric("tapsift_alerts", "gauge", "Alerts in the store.", [({}, stats["alerts"])])
    out.metric("tapsift_alerts_by_severity", "gauge", "Alerts in the store by severity (1 = critical).",
               [({"severity": k}, v) for k, v in stats["by_severity"].items()])
    out.metric("tapsift_alerts_by_category", "gauge", "Alerts in the store by category.",
               [({"category": k}, v) for k, v in stats["by_category"].items()])
    out.metric("tapsift_alerts_by_triage", "gauge", "Alerts by triage state.",
               [({"state": k}, v) for k, v in stats["by_triage"].items()])
    out.metric("tapsift_store_bytes", "gauge", "Size of the alert store.", [({}, stats["db_bytes"])])
    out.metric("tapsift_store_up", "gauge", up, [({}, 1)])


def metrics_text(open_view: Callable[[], AlertView], settings: Any, counters: dict[str, int]) -> str:
    """The whole ``/metrics`` page."""
    out = Exposition()
    _store_metrics(out, open_view)
    sensor = read_sensor_stats(settings.stats_file, settings.stats_stale_s)
    if sensor["state"] in ("ok", "stale"):
        out.metric("tapsift_sensor_packets_total", "counter", "Packets the sensor read.", [({}, sensor["packets"])])
        out.metric("tapsift_sensor_bytes_total", "counter", "Bytes the sensor read.", [({}, sensor["bytes"])])
        out.metric("tapsift_sensor_drops_total", "counter", "Packets dropped (kernel and queues).",
                   [({}, sensor["drops"])])
        out.metric("tapsift_sensor_flows", "gauge", "Flows in the flow table.", [({}, sensor["flows"])])
        out.metric("tapsift_sensor_queue_depth", "gauge", "Items waiting per queue.",
                   [({"queue": k}, v) for k, v in sensor["queue_depths"].items()])
        out.metric("tapsift_sensor_stats_age_seconds", "gauge", "Age of the sensor's stats file.",
                   [({}, sensor["age_s"])])
    out.metric("tapsift_sensor_stats_up", "gauge", "1 when fresh sensor stats were read.",
               [({}, 1 if sensor["state"] == "ok" else 0)])
    c = counters
    out.metric("tapsift_console_logins_total", "counter", "Successful console logins.", [({}, c["logins"])])
    out.metric("tapsift_console_logins_failed_total", "counter", "Failed console logins.",
               [({}, c["logins_failed"])])
    out.metric("tapsift_console_rate_limited_total", "counter", "Login attempts refused by the throttle.",
               [({}, c["rate_limited"])])
    out.metric("tapsift_console_csrf_refused_total", "counter", "Requests refused for a bad CSRF token.",
               [({}, c["csrf_refused"])])
    return out.text()
