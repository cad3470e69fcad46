"""E-mail messages (message/rfc822, .eml): headers a reader sees, text and HTML bodies, attachments
as children. HTML bodies go through `inspectors.extract.html` (visible text here, hidden text and
links kept). Parts are bounded in number; decoded bodies are bounded by the input's size."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

from inspectors.extract.html import analyze
from inspectors.extract.parts import Child, Clock, Limits, Partial, TextSink, add_child

MAX_PARTS = 1000


def _payload_text(part: EmailMessage) -> str:
    try:
        return str(part.get_content())
    except (LookupError, ValueError, AssertionError, KeyError):
        raw = part.get_payload(decode=True) or b""
        return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)


def extract_eml(data: bytes, *, limits: Limits) -> Partial:
    """Text, hidden text, links and attachment children of an e-mail message."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    part = Partial(meta={"format": "eml"})
    sink = TextSink(limits.max_text_chars)
    hidden: list[str] = []
    clock = Clock(limits.max_seconds)
    for h in ("From", "To", "Cc", "Subject", "Date"):
        try:
            v = msg.get(h)
        except (ValueError, IndexError, AttributeError):
            v = None
        if v:
            sink.add(f"{h}: {v}\n")
    sink.add("\n")
    n = 0
    for p in msg.walk():
        n += 1
        if n > MAX_PARTS:
            part.flag("children", "eml_many_parts")
            break
        if clock.over():
            part.flag("time", "extract_time_limit")
            break
        if p.is_multipart():
            continue
        ctype = p.get_content_type()
        disp = p.get_content_disposition()
        fname = p.get_filename() or ""
        if disp != "attachment" and not fname and ctype == "text/plain":
            sink.add(_payload_text(p) + "\n")  # type: ignore[arg-type]
        elif disp != "attachment" and not fname and ctype == "text/html":
            res = analyze(_payload_text(p), max_chars=limits.max_text_chars)  # type: ignore[arg-type]
            sink.add(res.text + "\n")
            if res.hidden_text:
                hidden.append(res.hidden_text)
            part.links.extend(res.links)
        else:
            body = p.get_payload(decode=True)
            if not isinstance(body, bytes):
                continue
            name = fname or f"part{n}"
            if len(body) > limits.max_child_bytes:
                part.flag("expanded_bytes", "extract_expanded_limit")
                body = body[: limits.max_child_bytes]
            c = Child(name, body, len(body), ctype if ctype != "application/octet-stream" else "")
            if p.get("Content-ID"):
                c.meta["content_id"] = str(p.get("Content-ID"))[:200]
            add_child(part, limits, c)
        if sink.full:
            part.flag("text_limit")
            break
    if msg.defects:
        part.note("eml_defects")
    part.text = sink.text().strip()
    part.hidden_text = "\n".join(hidden) or None
    return part
