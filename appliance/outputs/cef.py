"""ArcSight Common Event Format (CEF:0) rendering of the alert record.

``CEF:0|tapsift|tapsift|<version>|<signature_id>|<name>|<severity 0-10>|key=value ...``

``src``/``spt`` are always the client (who opened the connection) and ``dst``/``dpt`` the server,
as the zone pair ``cs3``/``cs4`` (``srcZone``/``dstZone``); ``deviceDirection`` says which way the
content went (1 outbound: upload, the client sent it; 0 inbound: download, the server sent it) and
``msg`` says it in words with every rule that matched.

Escaping follows the CEF spec: in the header ``\\`` and ``|`` are backslash-escaped; in
extension values ``\\``, ``=`` are escaped and CR/LF become the two-character sequences
``\\r``/``\\n``. Wire-derived text is sanitised first: TAB becomes a space, other control
characters (C0, DEL, C1, U+2028/2029, BOM) become U+FFFD, and leading/trailing spaces are
dropped, so a value can neither end the syslog line nor forge another key. The field mapping
is in ``docs/siem.md``.
"""

from __future__ import annotations

import re
from typing import Any

from appliance import __version__
from appliance.outputs.fields import CONTROL, cut, fit_pairs, flat, transfer_summary

__all__ = ["cef_message", "escape_ext", "escape_header", "sanitize"]

NAME_MAX = 64
_MINIMAL = "cn3=1 cn3Label=truncated"

LABELS = {
    "cs1": "policy",
    "cs2": "profile",
    "cs3": "srcZone",
    "cs4": "dstZone",
    "cs5": "findings",
    "cs6": "evidence",
    "cn1": "findingCount",
    "cn2": "vlan",
    "cn3": "truncated",
    "flexString1": "md5",
    "flexString2": "fileState",
}

_DROP_FIRST = ("cs6", "msg", "requestClientApplication", "cs5")
_KEEP = ("rt", "externalId", "cat", "src", "spt", "dst", "dpt", "proto", "deviceDirection", "cs1", "cs2", "cs3",
         "cs4", "fileHash", "cn1")
_PROTECT = frozenset({"rt", "fileHash", "flexString1"})
_NEWLINES = re.compile(r"\r\n|\r|\n")


def sanitize(value: Any) -> str:
    """Text as CEF will carry it (before escaping): no TAB or control characters, trimmed."""
    s = str(value).replace("\t", " ")
    return CONTROL.sub("\ufffd", s).strip(" ")


def escape_header(value: Any) -> str:
    """A CEF header field: ``\\`` → ``\\\\``, ``|`` → ``\\|``; line breaks become spaces."""
    s = _NEWLINES.sub(" ", sanitize(value))
    return s.replace("\\", "\\\\").replace("|", "\\|")


def escape_ext(value: Any) -> str:
    """A CEF extension value: ``\\`` → ``\\\\``, ``=`` → ``\\=``, CR/LF → ``\\r``/``\\n``."""
    s = sanitize(value).replace("\\", "\\\\").replace("=", "\\=")
    return s.replace("\r", "\\r").replace("\n", "\\n")


def _pairs(f: dict[str, Any]) -> list[tuple[str, str]]:
    mapping = [
        ("rt", f["ts_ms"]),
        ("externalId", f["alert_id"]),
        ("cat", f["category"]),
        ("act", "allowed"),
        ("src", f["src_ip"]),
        ("spt", f["src_port"]),
        ("dst", f["dest_ip"]),
        ("dpt", f["dest_port"]),
        ("proto", f["proto"]),
        ("deviceDirection", f["direction_code"]),
        ("app", f["app_proto"]),
        ("deviceInboundInterface", f["in_iface"]),
        ("cs1", f["policy"]),
        ("cs2", f["profile"]),
        ("cs3", f["src_zone"]),
        ("cs4", f["dst_zone"]),
        ("cn1", f["finding_count"]),
        ("cn2", f["vlan"]),
        ("dhost", f["http_host"]),
        ("requestMethod", f["http_method"]),
        ("request", f["http_url"]),
        ("requestClientApplication", f["http_user_agent"]),
        ("fname", f["filename"]),
        ("fsize", f["file_size"]),
        ("fileHash", f["sha256"]),
        ("flexString1", f["md5"]),
        ("flexString2", f["file_state"]),
        ("fileId", f["content_id"]),
        ("msg", transfer_summary(f)),
        ("cs5", f["findings"]),
        ("cs6", f["evidence"]),
    ]
    return [(k, sanitize(v)) for k, v in mapping if v is not None and sanitize(v) != ""]


def cef_message(record: dict[str, Any], max_bytes: int = 1 << 20) -> str:
    """The CEF line for an alert record, at most *max_bytes* UTF-8 bytes (≥ about 256 to be useful).

    Over budget, the evidence (``cs6``), user agent and findings summary go first, then values
    are cut with ``…``, then only the essential keys stay; a cut message has ``cn3=1``
    (``cn3Label=truncated``).
    """
    f = flat(record)
    name = sanitize(f"{f['category']}: {f['signature']}")

    def make_header(n: int) -> str:
        return "|".join([
            "CEF:0", "tapsift", "tapsift", escape_header(__version__), escape_header(f["signature_id"]),
            escape_header(cut(name, n)), str(f["severity10"]),
        ]) + "|"

    # the name is cut to NAME_MAX characters; with wide characters (4 UTF-8 bytes each) the
    # header alone could fill a small budget, so it shrinks until the shortest message fits
    limit = NAME_MAX
    header = make_header(limit)
    while limit > 8 and len((header + _MINIMAL).encode()) > max_bytes:
        limit = limit * 3 // 4
        header = make_header(limit)

    def render(pairs: list[tuple[str, str]], truncated: bool) -> str:
        parts = []
        for k, v in pairs:
            parts.append(f"{k}={escape_ext(v)}")
            if k in LABELS:
                parts.append(f"{k}Label={LABELS[k]}")
        if truncated:
            parts.append("cn3=1 cn3Label=truncated")
        return header + " ".join(parts)

    return fit_pairs(_pairs(f), render, max_bytes, _DROP_FIRST, _KEEP, _PROTECT)
