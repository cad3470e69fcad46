"""Exceptions from a false positive: an entry in the policy file's ``exceptions:`` section.

The sensor applies them (`policies.engine.PolicyEngine.except_`) after a reload, so they live in the
policy file, saved like every other policy edit (validated, versioned, audited, reload if asked).
The file is edited as text — the entry is appended to the section (created when missing), comments
and layout elsewhere stay as they are — and then checked by the sensor's own loader before saving.
Every value is written as a YAML double-quoted string, escaped, so no analyst text becomes YAML.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from appliance.outputs.alertjson import clean
from webui import policyedit
from webui.db import ConsoleDB
from webui.errors import ServiceError
from webui.services import policy as policy_svc
from webui.services.sessions import Principal

SCOPES = ("host", "url", "filename", "sha256", "md5", "client", "src_zone", "dst_zone")
_SECTION = re.compile(r"^exceptions\s*:\s*(#.*)?$")
_INLINE_EMPTY = re.compile(r"^exceptions\s*:\s*\[\s*\]\s*(#.*)?$")
_TOP_KEY = re.compile(r"^[^\s#-]")
DEFAULT_DAYS = 30


def yaml_str(value: str) -> str:
    """*value* as a YAML double-quoted scalar: JSON escapes, plus escapes for what YAML treats as line breaks
    or refuses (U+2028/2029, NEL, BOM, other control and format characters)."""
    out = []
    for ch in json.dumps(str(value), ensure_ascii=False):
        if ch in "\u2028\u2029\x85\ufeff" or (ord(ch) >= 0x7F and unicodedata.category(ch) in ("Cc", "Cf", "Co",
                                                                                                  "Cn", "Cs")):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(slots=True)
class Proposal:
    """What the exception form offers for a hit (each scope with the hit's value)."""

    rule: str
    profile: str
    values: dict[str, str]
    reason: str
    expires: str


def proposal(hit: dict[str, Any]) -> Proposal:
    flow = hit.get("flow")
    values = {
        "host": hit.get("http_host") or "", "url": hit.get("http_url") or "", "filename": hit.get("file_name") or "",
        "sha256": hit.get("file_sha256") or "", "md5": hit.get("file_md5") or "",
        "client": (flow.client.ip if flow is not None else "") or "",
        "src_zone": hit.get("src_zone") or "", "dst_zone": hit.get("dst_zone") or "",
    }
    expires = (datetime.now(UTC) + timedelta(days=DEFAULT_DAYS)).date().isoformat()
    return Proposal(hit.get("policy") or "", hit.get("profile") or "", {k: v for k, v in values.items() if v},
                    hit.get("triage_note") or "", expires)


def entry_lines(fields: dict[str, str], indent: str = "  ") -> list[str]:
    """The YAML lines of one list item (keys are ours; values quoted)."""
    keys = [k for k in ("rule", "profile", *SCOPES, "expires", "by", "reason", "created", "alert") if fields.get(k)]
    return [f"{indent}{'- ' if i == 0 else '  '}{k}: {yaml_str(fields[k])}" for i, k in enumerate(keys)]


def insert_entry(text: str, fields: dict[str, str]) -> str:
    """*text* with an item added to its ``exceptions:`` section (made at the end when there is none)."""
    lines = text.split("\n")
    idx = next((i for i, ln in enumerate(lines) if _SECTION.match(ln) or _INLINE_EMPTY.match(ln)), None)
    if idx is None:
        body = text.rstrip("\n")
        return body + "\n\nexceptions:\n" + "\n".join(entry_lines(fields)) + "\n"
    if _INLINE_EMPTY.match(lines[idx]):
        lines[idx] = "exceptions:"
    end = next((i for i in range(idx + 1, len(lines)) if _TOP_KEY.match(lines[i])), len(lines))
    items = [ln for ln in lines[idx + 1:end] if ln.lstrip().startswith("- ")]
    indent = re.match(r"^(\s*)", items[0]).group(1) if items else "  "  # type: ignore[union-attr]
    pos = end
    while pos - 1 > idx and not lines[pos - 1].strip():
        pos -= 1
    lines[pos:pos] = entry_lines(fields, indent)
    return "\n".join(lines)


def remove_entry(text: str, line: int, next_line: int | None) -> str:
    """*text* without the item starting at 1-based *line* (up to *next_line*, or the section's end)."""
    lines = text.split("\n")
    start = line - 1
    if not 0 <= start < len(lines) or not lines[start].lstrip().startswith("- "):
        raise ServiceError("the policy file changed; reload the page", 409)
    end = next_line - 1 if next_line else next((i for i in range(start + 1, len(lines)) if _TOP_KEY.match(lines[i])
                                                or lines[i].lstrip().startswith("- ")), len(lines))
    while end - 1 > start and not lines[end - 1].strip():
        end -= 1
    del lines[start:end]
    return "\n".join(lines)


def _expires(v: str) -> str:
    v = v.strip()
    if not v:
        return ""
    try:
        d = date.fromisoformat(v)
    except ValueError:
        raise ServiceError("the expiry must be a date (YYYY-MM-DD)", 422) from None
    if d <= datetime.now(UTC).date():
        raise ServiceError("the expiry must be in the future", 422)
    return d.isoformat()


def add_for_hit(db: ConsoleDB, settings: Any, who: Principal, hit: dict[str, Any], scopes: list[str], *,
                use_profile: bool = False, url_prefix: bool = False, expires: str = "", reason: str = "",
                reload: bool = False, ip: str = "") -> policy_svc.SaveResult:
    """Add an exception for *hit*'s rule (or profile) on the chosen *scopes* of the hit; save the policy."""
    prop = proposal(hit)
    chosen = [s for s in scopes if s in SCOPES]
    if not chosen:
        raise ServiceError("choose what the exception covers (host, URL, hash, client, zone…)", 422)
    missing = [s for s in chosen if s not in prop.values]
    if missing:
        raise ServiceError(f"the hit has no {', '.join(missing)}", 422)
    reason = clean(str(reason)).strip()[:500]
    if not reason:
        raise ServiceError("say why (the reason is kept in the policy)", 422)
    fields = {("profile" if use_profile else "rule"): prop.profile if use_profile else prop.rule}
    for s in chosen:
        v = prop.values[s]
        fields[s] = v + "*" if s == "url" and url_prefix else v
    fields.update(expires=_expires(expires), by=who.username, reason=reason,
                  created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), alert=str(hit["id"]))
    current = policy_svc.current_policy(db, settings)
    text = insert_entry(current, fields)
    val = policy_svc.validate(settings, text)
    if not val.ok:
        raise ServiceError("the exception would make the policy invalid: " + "; ".join(str(i) for i in val.issues),
                           422)
    comment = f"exception for hit {hit['id']}: {reason}"[:500]
    res = policy_svc.save_policy(db, settings, who, text, policyedit.version_of(current), comment, reload, ip)
    db.audit(None, who.username, "policy.exception", str(hit["id"]), None,
             {k: v for k, v in fields.items() if k not in ("by",)}, ip)
    return res


def remove(db: ConsoleDB, settings: Any, who: Principal, index: int, base_version: str, reload: bool = False,
           ip: str = "") -> policy_svc.SaveResult:
    """Remove exception number *index* (as the policy page lists them) and save the policy."""
    current = policy_svc.current_policy(db, settings)
    if base_version and base_version != policyedit.version_of(current):
        raise ServiceError("the policy file changed since the page was shown; reload it", 409)
    val = policy_svc.validate(settings, current)
    excs = val.policy.exceptions if val.policy is not None else ()
    if not 0 <= index < len(excs):
        raise ServiceError("no such exception", 404)
    e = excs[index]
    nxt = excs[index + 1].line if index + 1 < len(excs) else None
    text = remove_entry(current, e.line, nxt)
    if len(excs) == 1:  # the section is empty now
        text = re.sub(r"(?m)^exceptions\s*:\s*(#.*)?$", "exceptions: []", text, count=1)
    res = policy_svc.save_policy(db, settings, who, text, policyedit.version_of(current),
                                 f"removed the exception for {e.rule or e.profile} ({e.reason})"[:500], reload, ip)
    db.audit(None, who.username, "policy.exception_removed", e.alert or str(index), {"rule": e.rule, "by": e.by,
                                                                                      "reason": e.reason}, None, ip)
    return res


def listing(val: policyedit.Validation) -> list[dict[str, Any]]:
    """The policy's exceptions for the policy page (with whether each has expired by the wall clock)."""
    now = time.time_ns()
    out = []
    for e in (val.policy.exceptions if val.policy is not None else ()):
        scope = {k: getattr(e, k) for k in ("host", "url", "filename", "sha256", "md5", "zone", "src_zone",
                                           "dst_zone") if getattr(e, k)}
        if e.client is not None:
            scope["client"] = str(e.client)
        out.append({"index": e.index, "rule": e.rule, "profile": e.profile, "scope": scope, "expires": e.expires,
                    "expired": e.expires_ns is not None and e.expires_ns <= now, "by": e.by, "reason": e.reason,
                    "created": e.created, "alert": e.alert, "line": e.line})
    return out
