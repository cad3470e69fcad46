"""Hits: filtering, one hit with its flow oriented, triage verdicts, CSV export, evidence images."""

from __future__ import annotations

import csv
import dataclasses
import io
import ipaddress
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from appliance.outputs.alertjson import clean
from appliance.store import NOTE_MAX, TRIAGE_STATES, AlertQuery
from appliance.store.querylang import QueryError, parse, parse_time
from webui import charts, images
from webui.alerts import AlertView
from webui.db import ConsoleDB
from webui.errors import ServiceError
from webui.evidence import object_image
from webui.services.sessions import Principal

FILTERS = ("since", "until", "zone", "severity", "category", "policy", "inspector", "host", "triage", "q")
CSV_COLUMNS = ("id", "time_utc", "severity", "category", "policy", "profile", "src_zone", "dst_zone", "src_ip",
               "src_port", "dest_ip", "dest_port", "http_host", "http_url", "file_name", "file_sha256",
               "inspectors", "finding_count", "triage", "assignee", "complete")
MAX_EVIDENCE_FILE = 64 * 1024 * 1024
COUNT_CAP = 10_000
"""Matches counted at most (a big store's list says "10,000+" instead of reading every match)."""
BULK_MAX = 1000
_SEVERITY = {"critical": 1, "high": 2, "medium": 3, "low": 4, "info": 5}
_LABELS = {"since": "From", "until": "To", "severity": "Severity", "triage": "Triage", "q": "Query",
           "before": "Page", "host": "Host or IP"}


@dataclass(slots=True, frozen=True)
class FilterError:
    """A filter that cannot be used: which parameter, why, and (for a query) the character position."""

    param: str
    message: str
    position: int | None = None

    @property
    def label(self) -> str:
        return _LABELS.get(self.param, self.param)

    def as_dict(self) -> dict[str, Any]:
        return {"param": self.param, "message": self.message, "position": self.position}


def _time_param(name: str, v: str, tz: Any, errors: list[FilterError], end: bool = False) -> int | None:
    v = (v or "").strip()
    if not v:
        return None
    try:
        return parse_time(v, tz, end=end)
    except ValueError as exc:
        errors.append(FilterError(name, str(exc)))
        return None


def parse_filters(params: dict[str, str], view: AlertView | None = None, *, tz: Any = UTC, user: str = "",
                  baseline_seq: int = 0) -> tuple[AlertQuery, list[FilterError]]:
    """An `AlertQuery` from the hits page's (or the API's) parameters, and every problem with them.

    Nothing is silently dropped: a time, severity or triage state that cannot be read, a query with a
    syntax error (its position) or an unknown field or value (checked by compiling it on *view*), a
    broken page cursor — each is a `FilterError`, and the caller shows them instead of any hits."""
    errors: list[FilterError] = []
    q = AlertQuery()
    q.since_ns = _time_param("since", params.get("since", ""), tz, errors)
    q.until_ns = _time_param("until", params.get("until", ""), tz, errors)
    if q.since_ns is not None and q.until_ns is not None and q.until_ns <= q.since_ns:
        errors.append(FilterError("until", "the end is not after the start"))
    sev = params.get("severity", "").strip().lower()
    if sev:
        n = _SEVERITY.get(sev) or (int(sev) if sev.isdigit() else None)
        if n is None or not 1 <= n <= 5:
            errors.append(FilterError("severity", f"{sev!r} is not a severity (1-5, or critical … info)"))
        q.severity = n if n is not None and 1 <= n <= 5 else None
    for name in ("zone", "category", "policy", "inspector", "rule"):
        v = params.get(name, "").strip()
        if v:
            setattr(q, name, v[:200])
    tri = params.get("triage", "").strip()
    if tri:
        if tri not in TRIAGE_STATES:
            errors.append(FilterError("triage", f"{tri!r} is not a triage state ({', '.join(TRIAGE_STATES)})"))
        q.triage = tri if tri in TRIAGE_STATES else None
    host = params.get("host", "").strip()[:255]
    if host:
        try:
            q.ip = str(ipaddress.ip_address(host))
        except ValueError:
            q.host = host
    before = params.get("before", "").strip()
    if before:
        try:
            ts, seq = before.split(":", 1)
            q.before = (int(ts), int(seq))
        except ValueError:
            errors.append(FilterError("before", "not a page of this list (follow the list's own links)"))
    text = params.get("q", "").strip()
    if text:
        q.ctx = {"tz": tz, "user": user, "baseline_seq": baseline_seq}
        try:
            q.expr = parse(text)
            if q.expr is not None and view is not None:
                view.alerts.compile(q.expr, q.ctx)  # unknown fields and bad values, before any row is read
        except QueryError as exc:
            errors.append(FilterError("q", exc.message, exc.position))
            q.expr = None
    return q, errors


def query_from(params: dict[str, str], view: AlertView | None = None, **kw: Any) -> AlertQuery:
    """`parse_filters` for callers that refuse any problem: `ServiceError` (400) naming them."""
    q, errors = parse_filters(params, view, **kw)
    if errors:
        raise ServiceError("; ".join(f"{e.label}: {e.message}" + (f" (at character {e.position + 1})"
                                                                   if e.position is not None else "")
                                     for e in errors), 400)
    return q


def list_hits(view: AlertView, q: AlertQuery, limit: int, offset: int = 0,
              cap: int | None = COUNT_CAP) -> tuple[int, list[dict[str, Any]]]:
    """(matches — at most *cap* + 1 —, one page of rows newest first, each with ``server``: its HTTP host or
    server address, and ``client``: the client's address)."""
    counted = dataclasses.replace(q, before=None)
    total = view.count(counted, cap)
    rows = view.query(q, limit, offset, total)
    for r in rows:
        down = r.get("direction") == "download"
        server = r.get("src_ip") if down else r.get("dest_ip")
        r["server"] = r.get("http_host") or server or r.get("dest_ip") or ""
        r["server_ip"] = server
        r["client"] = r.get("dest_ip") if down else r.get("src_ip")
    return total, rows


def cursor(rows: list[dict[str, Any]]) -> str:
    """The ``before`` parameter of the page after *rows* (empty when it was the last)."""
    return f"{rows[-1]['ts_ns']}:{rows[-1]['seq']}" if rows else ""


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


def _assignee(db: ConsoleDB, assignee: str | None) -> str | None:
    """None: keep; "": unassign; a user name: that user (who must exist)."""
    if assignee is None:
        return None
    a = assignee.strip()[:100]
    if a and db.user_by_name(a) is None:
        raise ServiceError(f"no user {a!r} to assign to", 422)
    return a


def set_verdict(db: ConsoleDB, view: AlertView, who: Principal, alert_id: str, verdict: str, note: str,
                ip: str = "", assignee: str | None = None) -> dict[str, Any]:
    """Record an analyst's verdict (and assignee) in the console DB (the alert store is the sensor's alone)."""
    if verdict not in TRIAGE_STATES:
        raise ServiceError(f"verdict must be one of {', '.join(TRIAGE_STATES)}", 422)
    hit = view.get(alert_id)
    if hit is None:
        raise ServiceError("no such hit", 404)
    note = clean(str(note))[:NOTE_MAX]
    assignee = _assignee(db, assignee)
    before = {"verdict": hit["triage"], "note": hit["triage_note"], "assignee": hit.get("assignee")}
    after = {"verdict": verdict, "note": note, **({"assignee": assignee} if assignee is not None else {})}
    now = time.time()
    with db.tx() as tx:
        tx.verdicts.set(alert_id, verdict, note, who.username, now, assignee)
        db.audit(tx, who.username, "hit.triage", alert_id, before, after, ip)
    return {"alert_id": alert_id, "verdict": verdict, "note": note, "user": who.username, "ts": now,
            "assignee": assignee if assignee is not None else hit.get("assignee")}


@dataclass(slots=True)
class BulkResult:
    changed: int
    missing: list[str]
    case_id: int | None = None
    added_to_case: int = 0


def bulk_triage(db: ConsoleDB, view: AlertView, who: Principal, ids: list[str], *, verdict: str = "",
                assignee: str | None = None, note: str = "", case_id: int | None = None, new_case: str = "",
                ip: str = "") -> BulkResult:
    """Set the verdict and/or assignee of many hits at once and/or put them in a case (new or existing);
    one transaction, one audit entry (and each hit's own verdict history)."""
    from webui.services import cases as case_svc

    ids = list(dict.fromkeys(str(i) for i in ids if str(i).strip()))
    if not ids:
        raise ServiceError("select at least one hit", 422)
    if len(ids) > BULK_MAX:
        raise ServiceError(f"at most {BULK_MAX} hits at once", 422)
    if verdict and verdict not in TRIAGE_STATES:
        raise ServiceError(f"verdict must be one of {', '.join(TRIAGE_STATES)}", 422)
    assignee = _assignee(db, assignee)
    if not verdict and assignee is None and case_id is None and not new_case.strip():
        raise ServiceError("choose a verdict, an assignee or a case", 422)
    found = {r["id"]: r for r in view.alerts.by_ids(ids)}
    missing = [i for i in ids if i not in found]
    note = clean(str(note))[:NOTE_MAX]
    now = time.time()
    out = BulkResult(0, missing)
    with db.tx() as tx:
        if verdict or assignee is not None:
            for alert_id, row in found.items():
                tx.verdicts.set(alert_id, verdict or row["triage"], note, who.username, now, assignee)
                out.changed += 1
        if new_case.strip():
            case_id = case_svc.create_in(tx, who, new_case, "", assignee or "", now)
        if case_id is not None:
            out.case_id = case_id
            out.added_to_case = case_svc.add_hits_in(tx, who, case_id, list(found), now)
        db.audit(tx, who.username, "hit.bulk", f"{len(found)} hits", None,
                 {"ids": list(found)[:200], "verdict": verdict or None, "assignee": assignee, "note": note,
                  "case": case_id}, ip)
    return out


def evidence_png(view: AlertView, alert_id: str, fi: int, ei: int, evidence_dir: Path | None,
                 max_pixels: int, content: Any = None) -> bytes:
    """The image evidence *ei* of finding *fi*, decoded and re-encoded as a fresh PNG: the file its reference
    names in the evidence folder, else the retained bytes of the object the alert is about."""
    hit = view.get(alert_id)
    try:
        ref = hit["findings"][fi]["evidence"][ei].get("ref", "") if hit else ""
    except (IndexError, KeyError, TypeError):
        ref = ""
    path = images.safe_join(evidence_dir, str(ref))
    if path is None and ref and hit is not None:
        path = object_image(evidence_dir, hit["findings"][fi].get("content_id"))
    data = None
    if path is not None and path.stat().st_size <= MAX_EVIDENCE_FILE:
        data = path.read_bytes()
    elif ref and hit is not None and content is not None and hit.get("content_id"):
        row = content.get(hit["content_id"])
        if row is not None and row.get("has_bytes") and row.get("sha256"):
            data = content.blob(row["sha256"])
    if data is None:
        raise ServiceError("no image", 404)
    try:
        return images.reencode_png(data, max_pixels)
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
        q = dataclasses.replace(q)
        while done < max_rows:
            rows = view.query(q, min(batch, max_rows - done), 0)
            if not rows:
                break
            q.before = (rows[-1]["ts_ns"], rows[-1]["seq"])
            buf.seek(0)
            buf.truncate()
            for r in rows:
                r["time_utc"] = charts.fmt_ts(r["ts_ns"])
                w.writerow([_csv_cell(r.get(c)) for c in CSV_COLUMNS])
            done += len(rows)
            yield buf.getvalue()
