"""Hits: filtering, one hit with its flow oriented, triage verdicts, CSV export, evidence images."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from appliance.outputs.alertjson import clean
from appliance.store import NOTE_MAX, TRIAGE_STATES, AlertQuery
from webui import charts, images
from webui.alerts import AlertView
from webui.db import ConsoleDB
from webui.errors import ServiceError
from webui.services.sessions import Principal

FILTERS = ("since", "until", "zone", "severity", "category", "policy", "inspector", "host", "triage", "q")
CSV_COLUMNS = ("id", "time_utc", "severity", "category", "policy", "profile", "src_zone", "dst_zone", "src_ip",
               "src_port", "dest_ip", "dest_port", "http_host", "http_url", "file_name", "file_sha256",
               "inspectors", "finding_count", "triage", "complete")
MAX_EVIDENCE_FILE = 64 * 1024 * 1024


def _parse_time(v: str | None) -> int | None:
    if not v:
        return None
    try:
        dt = datetime.fromisoformat(v.strip())
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1e9)


def query_from(params: dict[str, str]) -> AlertQuery:
    """An `AlertQuery` from the hits page's (or the API's) filter parameters."""
    q = AlertQuery()
    q.since_ns, q.until_ns = _parse_time(params.get("since")), _parse_time(params.get("until"))
    sev = params.get("severity", "")
    q.severity = int(sev) if sev.isdigit() and 1 <= int(sev) <= 5 else None
    for name in ("zone", "category", "policy", "inspector", "rule"):
        v = params.get(name, "").strip()
        if v:
            setattr(q, name, v[:200])
    tri = params.get("triage", "")
    q.triage = tri if tri in TRIAGE_STATES else None
    host = params.get("host", "").strip()[:255]
    if host:
        try:
            q.ip = str(ipaddress.ip_address(host))
        except ValueError:
            q.host = host
    text = params.get("q", "").strip()[:500]
    q.text = text or None
    return q


def list_hits(view: AlertView, q: AlertQuery, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
    """(total matching, one page of rows newest first, each with ``server``: its HTTP host or server address)."""
    total = view.count(q)
    rows = view.query(q, limit, offset, total)
    for r in rows:
        server = r.get("src_ip") if r.get("direction") == "download" else r.get("dest_ip")
        r["server"] = r.get("http_host") or server or r.get("dest_ip") or ""
    return total, rows


# --------------------------------------------------------------------------- one hit


@dataclass(slots=True, frozen=True)
class Endpoint:
    ip: str | None
    port: int | None
    zone: str

    @property
    def address(self) -> str:
        if not self.ip:
            return "–"
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}" if self.port is not None else host


@dataclass(slots=True, frozen=True)
class FlowEnds:
    """A hit's flow as people read it: who opened the connection (client) and who answered (server).

    EVE's ``src_*``/``dest_*`` follow the transfer (for a download the source is the server) while
    ``tapsift.src_zone``/``dst_zone`` are the session's (client's zone, server's zone); see
    docs/eve.md. ``direction`` is ``upload`` (client → server), ``download`` (server → client) or
    None when the record does not say; then ``client``/``server`` are EVE's source and destination.
    """

    direction: str | None
    client: Endpoint
    server: Endpoint

    @property
    def transfer(self) -> str:
        return {"upload": "client → server", "download": "server → client"}.get(self.direction or "", "")

    def as_dict(self) -> dict[str, Any]:
        return {"direction": self.direction,
                "client": {"ip": self.client.ip, "port": self.client.port, "zone": self.client.zone},
                "server": {"ip": self.server.ip, "port": self.server.port, "zone": self.server.zone}}


def flow_ends(hit: dict[str, Any]) -> FlowEnds:
    record = hit.get("record") or {}
    direction = (record.get("tapsift") or {}).get("direction") or (hit.get("object") or {}).get("direction")
    direction = direction if direction in ("upload", "download") else None
    src, dest = (hit.get("src_ip"), hit.get("src_port")), (hit.get("dest_ip"), hit.get("dest_port"))
    client, server = (dest, src) if direction == "download" else (src, dest)
    return FlowEnds(direction, Endpoint(*client, hit.get("src_zone") or "any"),
                    Endpoint(*server, hit.get("dst_zone") or "any"))


def get_hit(view: AlertView, db: ConsoleDB, alert_id: str) -> dict[str, Any]:
    """One hit: columns, EVE ``record``, findings, object, ``verdicts`` (the console's history) and ``flow``."""
    hit = view.get(alert_id)
    if hit is None:
        raise ServiceError("no such hit", 404)
    hit["verdicts"] = db.verdict_log(alert_id)
    hit["flow"] = flow_ends(hit)
    return hit


def record_json(hit: dict[str, Any]) -> str:
    return json.dumps(hit.get("record"), indent=2, ensure_ascii=False)


def set_verdict(db: ConsoleDB, view: AlertView, who: Principal, alert_id: str, verdict: str, note: str,
                ip: str = "") -> dict[str, Any]:
    """Record an analyst's verdict in the console DB (the alert store is the sensor's alone)."""
    if verdict not in TRIAGE_STATES:
        raise ServiceError(f"verdict must be one of {', '.join(TRIAGE_STATES)}", 422)
    hit = view.get(alert_id)
    if hit is None:
        raise ServiceError("no such hit", 404)
    note = clean(str(note))[:NOTE_MAX]
    before = {"verdict": hit["triage"], "note": hit["triage_note"]}
    now = time.time()
    with db.tx() as tx:
        tx.verdicts.set(alert_id, verdict, note, who.username, now)
        db.audit(tx, who.username, "hit.triage", alert_id, before, {"verdict": verdict, "note": note}, ip)
    return {"alert_id": alert_id, "verdict": verdict, "note": note, "user": who.username, "ts": now}


def evidence_png(view: AlertView, alert_id: str, fi: int, ei: int, evidence_dir: Path | None,
                 max_pixels: int) -> bytes:
    """The image evidence *ei* of finding *fi*, decoded and re-encoded as a fresh PNG."""
    hit = view.get(alert_id)
    try:
        ref = hit["findings"][fi]["evidence"][ei].get("ref", "") if hit else ""
    except (IndexError, KeyError, TypeError):
        ref = ""
    path = images.safe_join(evidence_dir, str(ref))
    if path is None or path.stat().st_size > MAX_EVIDENCE_FILE:
        raise ServiceError("no image", 404)
    try:
        return images.reencode_png(path.read_bytes(), max_pixels)
    except images.ImageRefused as exc:
        raise ServiceError(str(exc), 415) from None


# --------------------------------------------------------------------------- CSV


def _csv_cell(v: Any) -> str:
    """Neutralise spreadsheet formulas (CSV injection): a leading = + - @ TAB CR gets a quote."""
    s = "" if v is None else str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s


def csv_rows(open_view: Callable[[], AlertView], q: AlertQuery, max_rows: int, batch: int = 1000) -> Iterator[str]:
    """The CSV export in pieces (the view is opened when the first rows are needed, closed at the end)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    yield buf.getvalue()
    with open_view() as view:
        done = 0
        while done < max_rows:
            rows = view.query(q, min(batch, max_rows - done), done)
            if not rows:
                break
            buf.seek(0)
            buf.truncate()
            for r in rows:
                r["time_utc"] = charts.fmt_ts(r["ts_ns"])
                w.writerow([_csv_cell(r.get(c)) for c in CSV_COLUMNS])
            done += len(rows)
            yield buf.getvalue()
