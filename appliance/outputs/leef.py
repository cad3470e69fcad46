"""IBM QRadar Log Event Extended Format 2.0 rendering of the alert record.

``LEEF:2.0|tapsift|tapsift|<version>|<category>|x5E|key=value^key=value...``

The attribute delimiter is configurable (default ``^``, written in the header as ``x5E``;
a tab is written ``x09``). LEEF defines no escape for the delimiter inside a value, so values
are sanitised instead: CR, LF and TAB become spaces, the delimiter character and other
controls (C0, DEL, C1, U+2028/2029, BOM) become U+FFFD, and values are trimmed. In the
header ``\\`` and ``|`` are backslash-escaped.

``src``/``srcPort`` are always the client (who opened the connection) and ``dst``/``dstPort`` the
server, as ``srcZone``/``dstZone``; the custom key ``direction`` (``upload``: the client sent the
content; ``download``: the server sent it) says which way it went, ``rules`` every rule that
matched. Times use ``devTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from appliance import __version__
from appliance.outputs.fields import CONTROL, fit_pairs, flat

__all__ = ["DEV_TIME_FORMAT", "delimiter_spec", "escape_header", "leef_message", "sanitize"]

DEV_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSZ"
_DROP_FIRST = ("evidence", "userAgent", "findings")
_KEEP = ("devTime", "devTimeFormat", "alertId", "cat", "sev", "src", "dst", "srcPort", "dstPort",
         "proto", "direction", "policy", "profile", "srcZone", "dstZone", "sha256", "findingCount")
_PROTECT = frozenset({"devTime", "devTimeFormat", "md5", "sha256"})
_WS = re.compile(r"[\r\n\t]")


def delimiter_spec(delim: str) -> str:
    """The header field naming *delim*: ``x5E`` for ``^``, ``x09`` for a tab."""
    if len(delim) != 1 or delim in " =|\\\r\n" or CONTROL.match(delim) or ord(delim) > 0x7E:
        raise ValueError(f"unusable LEEF delimiter {delim!r}")
    return f"x{ord(delim):02X}"


def sanitize(value: Any, delim: str = "^") -> str:
    """Text as LEEF carries it: no delimiter, TAB, CR, LF or control characters; trimmed."""
    s = CONTROL.sub("\ufffd", str(value))
    if delim not in "\t\r\n":
        s = s.replace(delim, "\ufffd")
    return _WS.sub(" ", s).strip(" ")


def escape_header(value: Any) -> str:
    """A LEEF header field: sanitised, ``\\`` → ``\\\\`` and ``|`` → ``\\|``, at most 64 characters."""
    s = _WS.sub(" ", CONTROL.sub("\ufffd", str(value))).strip(" ")[:64]
    return s.replace("\\", "\\\\").replace("|", "\\|")


def _dev_time(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+0000"


def _pairs(f: dict[str, Any], delim: str) -> list[tuple[str, str]]:
    mapping = [
        ("devTime", _dev_time(f["ts_ms"])),
        ("devTimeFormat", DEV_TIME_FORMAT),
        ("alertId", f["alert_id"]),
        ("cat", f["category"]),
        ("sev", f["severity10"]),
        ("src", f["src_ip"]),
        ("srcPort", f["src_port"]),
        ("dst", f["dest_ip"]),
        ("dstPort", f["dest_port"]),
        ("proto", f["proto"]),
        ("direction", f["direction"]),
        ("appProto", f["app_proto"]),
        ("vSrc", f["vlan"]),
        ("iface", f["in_iface"]),
        ("policy", f["policy"]),
        ("rules", f["rules"]),
        ("profile", f["profile"]),
        ("srcZone", f["src_zone"]),
        ("dstZone", f["dst_zone"]),
        ("findingCount", f["finding_count"]),
        ("identHostName", f["http_host"]),
        ("method", f["http_method"]),
        ("url", f["http_url"]),
        ("userAgent", f["http_user_agent"]),
        ("fileName", f["filename"]),
        ("fileSize", f["file_size"]),
        ("md5", f["md5"]),
        ("sha256", f["sha256"]),
        ("fileState", f["file_state"]),
        ("contentId", f["content_id"]),
        ("flowId", f["flow_id"]),
        ("findings", f["findings"]),
        ("evidence", f["evidence"]),
    ]
    out = []
    for k, v in mapping:
        s = sanitize(v, delim) if v is not None else ""
        if s:
            out.append((k, s))
    return out


def leef_message(record: dict[str, Any], max_bytes: int = 1 << 20, delimiter: str = "^") -> str:
    """The LEEF 2.0 line for an alert record, at most *max_bytes* UTF-8 bytes (≥ about 256 to be useful).

    Over budget, ``evidence``, ``userAgent`` and ``findings`` go first, then values are cut with
    ``…``, then only the essential keys stay; a cut message has ``truncated=1``.
    """
    spec = delimiter_spec(delimiter)
    f = flat(record)
    header = "|".join([
        "LEEF:2.0", "tapsift", "tapsift", escape_header(__version__),
        escape_header(f["category"] or "alert"), spec,
    ]) + "|"

    def render(pairs: list[tuple[str, str]], truncated: bool) -> str:
        parts = [f"{k}={v}" for k, v in pairs]
        if truncated:
            parts.append("truncated=1")
        return header + delimiter.join(parts)

    return fit_pairs(_pairs(f, delimiter), render, max_bytes, _DROP_FIRST, _KEEP, _PROTECT)
