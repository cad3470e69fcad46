"""EVE events back into what the behaviour stage observes: for offline runs over ``tapsift read
--eve`` output, and for tests that drive the stage the way the sensor does.

`objects_from_eve` turns each ``fileinfo`` event into a `ContentObject` (the fields the stage
reads: flow, direction, time, size, MIME types, file name, HTTP host and user agent, zones) and
gathers the findings and alerts of the ``alert`` events that name the same content id, so
``stage.observe(obj, findings, alerts)`` sees what it would have seen in the pipeline. Events that
do not parse are skipped (counted), never raised.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from appliance.model import Alert, ContentObject, Direction, Evidence, Finding, FlowRef, Severity


def eve_time_ns(ts: str) -> int:
    """Suricata's ``2024-05-01T12:00:00.123456+0000`` as nanoseconds since the epoch."""
    dt = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%f%z")
    return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000


def object_from_fileinfo(ev: dict[str, Any]) -> ContentObject:
    """A `ContentObject` from a ``fileinfo`` event (raises on a malformed one)."""
    ts = ev["tapsift"]
    fi = ev["fileinfo"]
    http = ev.get("http") or {}
    direction = Direction.TO_SERVER if ts.get("direction") == "upload" else Direction.TO_CLIENT
    vlan = ev.get("vlan") or [0]
    flow = None
    if "src_ip" in ev:
        flow = FlowRef(str(ts.get("flow_uid") or ""), int(ev.get("flow_id") or 0), str(ev["src_ip"]),
                       int(ev.get("src_port") or 0), str(ev["dest_ip"]), int(ev.get("dest_port") or 0),
                       str(ev.get("proto") or ""), int(vlan[0] or 0), str(ev.get("in_iface") or ""),
                       str(ts.get("src_zone") or "any"), str(ts.get("dst_zone") or "any"))
    return ContentObject(
        id=str(ts["content_id"]), source=str(ev.get("app_proto") or ""), direction=direction, flow=flow,
        ts_ns=eve_time_ns(ev["timestamp"]), size=int(fi.get("size") or 0), md5=str(fi.get("md5") or ""),
        sha256=str(fi.get("sha256") or ""), parent_id=ts.get("parent_id"), kind=str(ts.get("kind") or "body"),
        declared_mime=str(ts.get("declared_mime") or ""), sniffed_mime=str(ts.get("sniffed_mime") or ""),
        filename=str(fi.get("filename") or ""), url=str(http.get("url") or ""), host=str(http.get("hostname") or ""),
        method=str(http.get("http_method") or ""), status=int(http.get("status") or 0),
        user_agent=str(http.get("http_user_agent") or ""), missing_bytes=int(ts.get("missing_bytes") or 0),
        depth=1 if ts.get("parent_id") else 0,
    )


def alert_from_record(ev: dict[str, Any]) -> tuple[Alert, str]:
    """(Alert, content id) from an ``alert`` event (the findings keep inspector, rule, count)."""
    ts = ev["tapsift"]
    al = ev["alert"]
    findings = tuple(
        Finding(str(f.get("inspector", "")), str(f.get("content_id") or ""), str(f.get("rule", "")),
                float(f.get("score") or 1.0),
                tuple(Evidence(int(e.get("start", 0)), int(e.get("end", 0)), str(e.get("snippet", "")))
                      for e in f.get("evidence") or []),
                {str(k): str(v) for k, v in (f.get("detail") or {}).items()})
        for f in ts.get("findings") or []
    )
    alert = Alert(id=str(ts["alert_id"]), ts_ns=eve_time_ns(ev["timestamp"]), policy=str(ts.get("policy", "")),
                  profile=str(ts.get("profile", "")), severity=Severity(int(al.get("severity", 3))),
                  category=str(al.get("category", "")), content_id=str(ts.get("content_id") or ""), flow=None,
                  findings=findings, src_zone=str(ts.get("src_zone", "any")), dst_zone=str(ts.get("dst_zone", "any")))
    return alert, alert.content_id


def read_eve(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict):
            yield ev


def objects_from_eve(events: Iterable[dict[str, Any]], counters: Counter[str] | None = None
                     ) -> list[tuple[ContentObject, list[Finding], list[Alert]]]:
    """Every top-level object with its findings and alerts, in packet-time order.

    Alerts come after their object in EVE, so the whole file is read first (a day of objects is
    small next to the capture it came from)."""
    counters = counters if counters is not None else Counter()
    objs: dict[str, ContentObject] = {}
    order: list[str] = []
    alerts: dict[str, list[Alert]] = {}
    for ev in events:
        kind = ev.get("event_type")
        try:
            if kind == "fileinfo":
                obj = object_from_fileinfo(ev)
                if obj.id not in objs:
                    order.append(obj.id)
                objs[obj.id] = obj
            elif kind == "alert" and "alert_id" in (ev.get("tapsift") or {}):
                alert, cid = alert_from_record(ev)
                if cid:
                    alerts.setdefault(cid, []).append(alert)
        except (KeyError, TypeError, ValueError):
            counters["eve_unparsed"] += 1
    out = []
    for cid in order:
        obj = objs[cid]
        if obj.parent_id:
            continue
        als = alerts.get(cid, [])
        out.append((obj, [f for a in als for f in a.findings], als))
    out.sort(key=lambda t: t[0].ts_ns)
    return out
