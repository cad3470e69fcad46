"""The canonical JSON record of an alert: Suricata's EVE ``alert`` layout plus ``tapsift``.

Every output starts from :func:`alert_record`: the SQLite store keeps it, the EVE file writes
it, syslog/CEF/LEEF/webhooks render it. Everything in an alert came off the wire, so the
record is sanitised once here: strings are valid Unicode (lone surrogates become U+FFFD),
numbers are finite, and :func:`dumps` emits one line of UTF-8 JSON in which no character
can end a log line (C0/C1 controls, DEL, U+2028/2029 and BOM are ``\\u`` escapes).

:func:`fit_json` makes the JSON fit a byte budget (SIEMs cut syslog messages at 480-2048
bytes) without ever breaking it: it drops finding details, then evidence snippets, then caps
long strings with a ``…`` marker, then drops findings, and marks the record
``"truncated": true``.
"""

from __future__ import annotations

import copy
import json
import math
import re
import zlib
from typing import Any

from appliance.eve import eve_timestamp, fileinfo_event
from appliance.model import Alert, ContentObject, Direction, Finding, FlowRef

__all__ = ["MIN_JSON_BYTES", "alert_record", "clean", "dumps", "fit_json", "signature_id"]

MIN_JSON_BYTES = 128
"""The smallest budget :func:`fit_json` guarantees to meet (the bare skeleton fits in it)."""

TRUNC_MARK = "…"

_SURROGATES = re.compile("[\ud800-\udfff]")
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufff9-\ufffb]")
_FLOW_KEYS = ("flow_id", "src_ip", "src_port", "dest_ip", "dest_port", "proto", "vlan", "in_iface")
_APP_KEYS = ("http", "smtp", "email", "ftp_data")
_PROTECTED = frozenset({"timestamp", "event_type", "md5", "sha256"})
"""Never cut (a cut hash or time would mislead); these are dropped whole instead."""


def clean(value: Any) -> Any:
    """Make wire-derived data JSON-safe: valid Unicode strings, finite numbers, plain containers."""
    if isinstance(value, str):
        return _SURROGATES.sub("\ufffd", value) if _SURROGATES.search(value) else value
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(clean(str(k))): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [clean(v) for v in value]
    return clean(str(value))


def dumps(record: Any) -> str:
    """One line of compact UTF-8 JSON; characters that could split or spoof a log line are escaped."""
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def signature_id(policy: str, profile: str) -> int:
    """A stable Suricata-style numeric signature id for a (policy, profile) pair."""
    return zlib.crc32(f"{policy}/{profile}".encode("utf-8", "replace")) & 0x7FFFFFFF


def _finding(f: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {
        "inspector": f.inspector,
        "rule": f.rule,
        "score": f.score,
        "content_id": f.content_id,
        "evidence": [
            {"start": e.start, "end": e.end, "snippet": e.snippet, **({"ref": e.ref} if e.ref else {})}
            for e in f.evidence
        ],
    }
    if f.detail:
        out["detail"] = dict(f.detail)
    return out


def alert_record(alert: Alert, obj: ContentObject | None = None) -> dict[str, Any]:
    """The EVE ``alert`` event for *alert* on content object *obj* (sanitised; see module doc)."""
    rec: dict[str, Any] = {"timestamp": eve_timestamp(alert.ts_ns), "event_type": "alert"}
    flow: FlowRef | None = alert.flow or (obj.flow if obj is not None else None)
    fev: dict[str, Any] = fileinfo_event(obj) if obj is not None else {}
    if flow is not None:
        rec.update(
            flow_id=flow.flow_id, src_ip=flow.src_ip, src_port=flow.src_port, dest_ip=flow.dest_ip,
            dest_port=flow.dest_port, proto=flow.proto,
        )
        if flow.vlan:
            rec["vlan"] = [flow.vlan]
        if flow.iface:
            rec["in_iface"] = flow.iface
    rec["app_proto"] = obj.source if obj is not None else "unknown"
    sig = f"{alert.policy}/{alert.profile}"
    rec["alert"] = {
        "action": "allowed",
        "gid": 1,
        "signature_id": signature_id(alert.policy, alert.profile),
        "rev": 1,
        "signature": sig,
        "category": alert.category,
        "severity": int(alert.severity),
    }
    for key in _APP_KEYS:
        if key in fev:
            rec[key] = fev[key]
    if "fileinfo" in fev:
        rec["fileinfo"] = fev["fileinfo"]
    ts: dict[str, Any] = {
        "alert_id": alert.id,
        "policy": alert.policy,
        "rules": list(alert.matched_rules),
        "profile": alert.profile,
        "src_zone": alert.src_zone,
        "dst_zone": alert.dst_zone,
        "content_id": alert.content_id,
        "flow_uid": flow.uid if flow is not None else None,
    }
    if obj is not None:
        ts["direction"] = Direction(obj.direction).label
        ts["kind"] = obj.kind
        ts["mime"] = obj.sniffed_mime or obj.declared_mime
        if obj.parent_id:
            ts["parent_id"] = obj.parent_id
        if obj.truncated:
            ts["object_truncated"] = list(obj.truncated)
    if alert.subject:  # a behaviour anomaly: what it is about and the window it covers
        ts["subject"] = alert.subject
        ts["window_start"] = eve_timestamp(alert.window_start_ns)
        ts["window_end"] = eve_timestamp(alert.window_end_ns)
    ts["findings"] = [_finding(f) for f in alert.findings]
    ts["complete"] = bool(alert.complete)
    rec["tapsift"] = ts
    return clean(rec)


def _size(rec: Any) -> int:
    return len(dumps(rec).encode("utf-8"))


def _cap(value: Any, n: int, key: str = "") -> Any:
    if isinstance(value, str):
        if key in _PROTECTED or len(value) <= n:
            return value
        return value[:n] + TRUNC_MARK
    if isinstance(value, dict):
        return {k: _cap(v, n, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_cap(v, n, key) for v in value]
    return value


def _longest(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((_longest(v) for k, v in value.items() if k not in _PROTECTED), default=0)
    if isinstance(value, list):
        return max((_longest(v) for v in value), default=0)
    return 0


def _best_cap(rec: dict[str, Any], max_bytes: int, lo: int) -> str | None:
    """The JSON of *rec* with the longest string cap ≥ *lo* that fits, or None."""
    hi = _longest(rec)
    best = None
    if _size(_cap(rec, lo)) > max_bytes:
        return None
    while lo <= hi:
        mid = (lo + hi) // 2
        text = dumps(_cap(rec, mid))
        if len(text.encode("utf-8")) <= max_bytes:
            best, lo = text, mid + 1
        else:
            hi = mid - 1
    return best


def _findings(rec: dict[str, Any]) -> list[dict[str, Any]]:
    ts = rec.get("tapsift")
    fs = ts.get("findings") if isinstance(ts, dict) else None
    return fs if isinstance(fs, list) else []


# Fields given up (in this order) when capping strings is not enough; findings go after these.
_OPTIONAL: tuple[tuple[str, ...], ...] = (
    ("fileinfo", "stored"), ("fileinfo", "gaps"), ("fileinfo", "tx_id"), ("fileinfo", "magic"),
    ("http", "http_content_type"), ("http", "length"), ("alert", "gid"), ("alert", "rev"),
    ("tapsift", "kind"), ("tapsift", "parent_id"), ("tapsift", "object_truncated"),
    ("tapsift", "findings", "*", "content_id"), ("tapsift", "findings", "*", "evidence_count"),
    ("tapsift", "rules"),
    ("http", "http_user_agent"), ("in_iface",), ("vlan",), ("tapsift", "mime"), ("tapsift", "flow_uid"),
    ("tapsift", "direction"), ("http", "status"), ("fileinfo", "md5"), ("alert", "action"),
    ("alert", "signature_id"), ("flow_id",), ("app_proto",), ("tapsift", "content_id"),
    ("tapsift", "complete"), ("tapsift", "policy"), ("tapsift", "profile"),
)


def _drop(rec: Any, path: tuple[str, ...]) -> None:
    if not isinstance(rec, dict) or not path:
        return
    head, rest = path[0], path[1:]
    if not rest:
        rec.pop(head, None)
        return
    child = rec.get(head)
    if isinstance(child, list) and rest[0] == "*":
        for item in child:
            _drop(item, rest[1:])
    else:
        _drop(child, rest)


def fit_json(record: dict[str, Any], max_bytes: int) -> str:
    """Serialise *record* in at most *max_bytes* UTF-8 bytes, shrinking it gracefully if needed.

    The result is always one valid JSON object. When anything was removed or shortened it has
    ``"truncated": true`` at the top level. Order: finding details; evidence snippets
    (shortened, then removed, keeping ``evidence_count``); long strings capped with ``…``
    (at least 24 characters kept); minor fields; findings (``tapsift.findings_total`` keeps
    the count); finally a skeleton (time, addresses, signature, category, severity, alert id,
    zones). Budgets below :data:`MIN_JSON_BYTES` may yield ``{}``.
    """
    text = dumps(record)
    if len(text.encode("utf-8")) <= max_bytes:
        return text
    rec = copy.deepcopy(record)
    rec["truncated"] = True
    fs = _findings(rec)
    steps = [
        lambda: [f.pop("detail", None) for f in fs],
        lambda: [e.update(snippet=_cap(e.get("snippet", ""), 48)) for f in fs for e in f.get("evidence", [])],
        lambda: [e.pop("snippet", None) for f in fs for e in f.get("evidence", [])],
        lambda: [f.update(evidence_count=len(f.pop("evidence", []))) for f in fs if "evidence" in f],
    ]
    for step in steps:
        step()
        if _size(rec) <= max_bytes:
            return dumps(rec)
    best = _best_cap(rec, max_bytes, 24)
    if best is not None:
        return best
    for path in _OPTIONAL:
        _drop(rec, path)
        if _size(_cap(rec, 24)) <= max_bytes:
            return _best_cap(rec, max_bytes, 24) or dumps(_cap(rec, 24))
    if fs:
        ts = rec["tapsift"]
        ts["findings_total"] = len(fs)
        lo, hi, keep = 0, len(fs), -1
        while lo <= hi:
            mid = (lo + hi) // 2
            ts["findings"] = fs[:mid]
            if _size(_cap(rec, 24)) <= max_bytes:
                keep, lo = mid, mid + 1
            else:
                hi = mid - 1
        ts["findings"] = fs[: max(keep, 0)]
        if keep >= 0:
            return _best_cap(rec, max_bytes, 24) or dumps(_cap(rec, 24))
    # A skeleton: who, what, where.
    alert = rec.get("alert") if isinstance(rec.get("alert"), dict) else {}
    ts = rec.get("tapsift") if isinstance(rec.get("tapsift"), dict) else {}
    skel: dict[str, Any] = {"timestamp": rec.get("timestamp", ""), "event_type": "alert", "truncated": True}
    for k in ("src_ip", "dest_ip", "dest_port"):
        if k in rec:
            skel[k] = rec[k]
    skel["alert"] = {k: alert[k] for k in ("signature", "category", "severity") if k in alert}
    skel["tapsift"] = {k: ts[k] for k in ("alert_id", "src_zone", "dst_zone") if k in ts}
    for lo in (16, 4, 0):
        best = _best_cap(skel, max_bytes, lo)
        if best is not None:
            return best
    for tiny in ({"event_type": "alert", "truncated": True}, {"truncated": True}, {}):
        text = dumps(tiny)
        if len(text) <= max_bytes:
            return text
    return ""
