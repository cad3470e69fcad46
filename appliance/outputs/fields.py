"""Flat alert fields for key=value formats (CEF, LEEF) and fitting them into a byte budget."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from appliance.outputs.alertjson import TRUNC_MARK

# Characters that must never reach a key=value line raw: C0 (but TAB/CR/LF, handled per format),
# DEL, C1, Unicode line/paragraph separators, BOM, lone surrogates.
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufeff\ud800-\udfff]")

SEVERITY_10 = {1: 10, 2: 8, 3: 5, 4: 3, 5: 1}
"""Suricata-style severity (1 = highest) → the 0-10 scale of CEF and LEEF."""


def epoch_ms(timestamp: str) -> int:
    """Milliseconds since the epoch from an EVE timestamp (0 when unparsable)."""
    try:
        return int(datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000)
    except (TypeError, ValueError):
        return 0


def findings_summary(findings: list[dict[str, Any]]) -> str:
    """``inspector:rule(score)`` for each finding, comma separated."""
    parts = []
    for f in findings:
        score = f.get("score")
        sc = f"({score:g})" if isinstance(score, (int, float)) else ""
        parts.append(f"{f.get('inspector', '')}:{f.get('rule', '')}{sc}")
    return ", ".join(parts)


def evidence_text(findings: list[dict[str, Any]]) -> str:
    """Evidence snippets of all findings, `` | `` separated."""
    return " | ".join(
        str(e.get("snippet", "")) for f in findings for e in f.get("evidence", []) if e.get("snippet")
    )


DIRECTIONS = {"upload": "1", "download": "0"}
"""Transfer direction → CEF ``deviceDirection``: 1 outbound (the content left the client, src),
0 inbound (it came to the client from the server, dst)."""


def transfer_summary(f: dict[str, Any]) -> str:
    """Who sent the content to whom, in words (CEF ``msg``): src is always the client."""
    client = f"client {f['src_ip']}" if f["src_ip"] else "the client"
    server = f"server {f['dest_ip']}" if f["dest_ip"] else "the server"
    if f["http_host"]:
        server += f" ({f['http_host']})"
    if f["direction"] == "upload":
        what = f"upload: {client} sent the content to {server}"
    elif f["direction"] == "download":
        what = f"download: {server} sent the content to {client}"
    else:
        what = f"between {client} and {server}"
    return f"{what}; rules: {f['rules']}" if f["rules"] else what


def flat(record: dict[str, Any]) -> dict[str, Any]:
    """The fields every key=value format reports, from the canonical alert record."""
    alert = record.get("alert") or {}
    ts = record.get("tapsift") or {}
    http = record.get("http") or {}
    fi = record.get("fileinfo") or {}
    findings = ts.get("findings") or []
    sev = alert.get("severity", 3)
    return {
        "ts_ms": epoch_ms(record.get("timestamp", "")),
        "timestamp": record.get("timestamp", ""),
        "severity": sev,
        "severity10": SEVERITY_10.get(sev, 5),
        "signature": alert.get("signature", ""),
        "signature_id": alert.get("signature_id", 0),
        "category": alert.get("category", ""),
        "policy": ts.get("policy", ""),
        "profile": ts.get("profile", ""),
        "src_zone": ts.get("src_zone", ""),
        "dst_zone": ts.get("dst_zone", ""),
        "alert_id": ts.get("alert_id", ""),
        "content_id": ts.get("content_id", ""),
        "flow_uid": ts.get("flow_uid") or "",
        "direction": ts.get("direction", ""),
        "direction_code": DIRECTIONS.get(ts.get("direction", ""), ""),
        "rules": ", ".join(str(r) for r in ts.get("rules") or ([ts["policy"]] if ts.get("policy") else [])),
        "complete": ts.get("complete", True),
        "src_ip": record.get("src_ip", ""),
        "src_port": record.get("src_port", ""),
        "dest_ip": record.get("dest_ip", ""),
        "dest_port": record.get("dest_port", ""),
        "proto": record.get("proto", ""),
        "flow_id": record.get("flow_id", ""),
        "vlan": (record.get("vlan") or [""])[0],
        "in_iface": record.get("in_iface", ""),
        "app_proto": record.get("app_proto", ""),
        "http_host": http.get("hostname", ""),
        "http_url": http.get("url", ""),
        "http_method": http.get("http_method", ""),
        "http_status": http.get("status", ""),
        "http_user_agent": http.get("http_user_agent", ""),
        "filename": fi.get("filename", ""),
        "file_size": fi.get("size", ""),
        "md5": fi.get("md5", ""),
        "sha256": fi.get("sha256", ""),
        "file_state": fi.get("state", ""),
        "findings": findings_summary(findings),
        "finding_count": len(findings),
        "evidence": evidence_text(findings),
    }


def cut(value: str, n: int) -> str:
    return value if len(value) <= n else value[:n] + TRUNC_MARK


def fit_pairs(
    pairs: list[tuple[str, str]],
    render: Callable[[list[tuple[str, str]], bool], str],
    max_bytes: int,
    drop_first: tuple[str, ...],
    keep: tuple[str, ...],
    protect: frozenset[str] = frozenset(),
) -> str:
    """Render *pairs* within *max_bytes*, shrinking gracefully.

    Order: drop the *drop_first* keys; cap values (at least 16 characters kept, ``…`` marks a
    cut; *protect* keys, such as times and hashes, are never cut, only dropped); drop the other
    keys from the last one up; then the *keep* keys from the last one up.
    ``render(pairs, truncated)`` makes the line; values are capped before escaping, so an escape
    sequence is never cut in half.
    """

    def size(p: list[tuple[str, str]]) -> int:
        return len(render(p, True).encode("utf-8"))

    line = render(pairs, False)
    if len(line.encode("utf-8")) <= max_bytes:
        return line
    for key in drop_first:
        pairs = [(k, v) for k, v in pairs if k != key]
        if size(pairs) <= max_bytes:
            return render(pairs, True)
    order = [k for k, _ in reversed(pairs) if k not in keep] + [k for k, _ in reversed(pairs) if k in keep]
    for key in [None, *order]:
        if key is not None:
            pairs = [(k, v) for k, v in pairs if k != key]
        best = _best_cap(pairs, size, max_bytes, protect)
        if best is not None and (best[1] >= 16 or best[0] == pairs):
            return render(best[0], True)
    return render([], True)


def _best_cap(
    pairs: list[tuple[str, str]],
    size: Callable[[list[tuple[str, str]]], int],
    max_bytes: int,
    protect: frozenset[str] = frozenset(),
) -> tuple[list[tuple[str, str]], int] | None:
    """The pairs with the longest value cap that fits, and that cap (None if even cap 0 does not fit)."""
    hi = max((len(v) for k, v in pairs if k not in protect), default=0)
    lo, best = 0, None
    while lo <= hi:
        mid = (lo + hi) // 2
        capped = [(k, v if k in protect else cut(v, mid)) for k, v in pairs]
        if size(capped) <= max_bytes:
            best, lo = (capped, mid), mid + 1
        else:
            hi = mid - 1
    return best
