"""What a job carries, and its byte format (no pickle: a job may cross hosts in a fleet).

Two work items:

- `ObjectWork`: inspect a content object, in the ``cheap`` pass (extract only what the cost
  table calls cheap, defer the rest) or in ``full`` (everything);
- `FollowUpWork`: finish an object whose cheap pass deferred expensive children (an image in a
  DOCX to OCR, a PDF in a ZIP): those children with their bytes, the cheap pass's children
  (metadata only, as they were reported) and findings, and the profiles that already alerted.

Format: ``TSW1``, a 4-byte big-endian header length, a UTF-8 JSON header, then the byte blobs the
header refers to by index (object bodies travel raw, not as base64). Decoding builds only the
types below from plain JSON values.
"""

from __future__ import annotations

import json
import struct
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from appliance.model import ContentObject, Finding
from appliance.model.alerts import Evidence
from appliance.model.content import FlowRef, Link
from appliance.model.streams import Direction

__all__ = ["FollowUpWork", "ObjectWork", "decode_work", "encode_work", "strip"]

_MAGIC = b"TSW1"
_LEN = struct.Struct(">I")
_OBJ_FIELDS = tuple(f.name for f in fields(ContentObject))
_SIMPLE_DEFAULTS = {f.name: f.default for f in fields(ContentObject)
                    if f.default is not MISSING and f.name not in ("data", "links", "truncated", "anomalies")}
"""Fields written only when they differ from their default (a smaller, faster header)."""


@dataclass(slots=True)
class ObjectWork:
    """Inspect ``obj``: ``mode`` ``cheap`` (cheap extraction, expensive children deferred) or ``full``."""

    obj: ContentObject
    mode: str = "full"


@dataclass(slots=True)
class FollowUpWork:
    """The expensive rest of an object whose cheap pass is done (see the module doc)."""

    obj: ContentObject
    """The top-level object (without its bytes)."""
    children: list[ContentObject] = field(default_factory=list)
    """The cheap pass's children in order, as reported (without bytes or text)."""
    deferred: list[ContentObject] = field(default_factory=list)
    """Children whose extraction is the expensive part (with their bytes)."""
    findings: list[Finding] = field(default_factory=list)
    """The cheap pass's findings (they count towards thresholds together with the new ones)."""
    done_profiles: list[str] = field(default_factory=list)
    """Profiles that alerted in the cheap pass (not raised again)."""


Work = ObjectWork | FollowUpWork


def strip(obj: ContentObject, *, keep_data: bool = False) -> ContentObject:
    """``obj`` without what a follow-up does not need (bytes unless ``keep_data``, text, links)."""
    from dataclasses import replace

    return replace(obj, data=obj.data if keep_data else None, text=None, hidden_text=None, links=())


class _Enc:
    def __init__(self) -> None:
        self.blobs: list[bytes] = []

    def obj(self, o: ContentObject) -> dict[str, Any]:
        out: dict[str, Any] = {}
        defaults = _SIMPLE_DEFAULTS
        for name in _OBJ_FIELDS:
            v = getattr(o, name)
            if name in defaults and v == defaults[name]:
                continue
            if name == "data":
                if v is not None:
                    self.blobs.append(bytes(v))
                    v = len(self.blobs) - 1
            elif name == "direction":
                v = int(v)
            elif name == "flow":
                v = list(v) if v is not None else None
            elif name in ("truncated", "anomalies"):
                v = list(v)
            elif name == "links":
                v = [list(link) for link in v]
            elif name == "meta":
                v = dict(v)
            out[name] = v
        return out

    @staticmethod
    def finding(f: Finding) -> dict[str, Any]:
        return {"inspector": f.inspector, "content_id": f.content_id, "rule": f.rule, "score": f.score,
                "evidence": [[e.start, e.end, e.snippet, e.ref] for e in f.evidence],
                "detail": {str(k): v for k, v in f.detail.items()}}


def _dec_obj(d: dict[str, Any], blobs: list[bytes]) -> ContentObject:
    kw: dict[str, Any] = {}
    for name in _OBJ_FIELDS:
        if name not in d:
            continue
        v = d[name]
        if name == "data":
            v = blobs[int(v)] if v is not None else None
        elif name == "direction":
            v = Direction(int(v))
        elif name == "flow":
            v = FlowRef(*v) if v is not None else None
        elif name in ("truncated", "anomalies"):
            v = tuple(str(x) for x in v)
        elif name == "links":
            v = tuple(Link(*x) for x in v)
        elif name == "meta":
            v = {str(k): x for k, x in v.items()}
        kw[name] = v
    return ContentObject(**kw)


def _dec_finding(d: dict[str, Any]) -> Finding:
    return Finding(inspector=str(d["inspector"]), content_id=str(d["content_id"]), rule=str(d["rule"]),
                   score=float(d["score"]), evidence=tuple(Evidence(int(a), int(b), str(s), str(r))
                                                           for a, b, s, r in d["evidence"]),
                   detail=dict(d["detail"]))


def encode_work(work: Work) -> bytes:
    """The bytes of a work item."""
    enc = _Enc()
    if isinstance(work, ObjectWork):
        head: dict[str, Any] = {"t": "object", "mode": work.mode, "obj": enc.obj(work.obj)}
    else:
        head = {"t": "followup", "obj": enc.obj(work.obj), "children": [enc.obj(c) for c in work.children],
                "deferred": [enc.obj(c) for c in work.deferred],
                "findings": [enc.finding(f) for f in work.findings], "done": list(work.done_profiles)}
    head["blobs"] = [len(b) for b in enc.blobs]
    text = json.dumps(head, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return b"".join([_MAGIC, _LEN.pack(len(text)), text, *enc.blobs])


def decode_work(blob: bytes) -> Work:
    """A work item from its bytes; raises `ValueError` for anything else."""
    if blob[:4] != _MAGIC or len(blob) < 8:
        raise ValueError("not a work item")
    (n,) = _LEN.unpack_from(blob, 4)
    try:
        head = json.loads(bytes(blob[8:8 + n]).decode("utf-8", "surrogatepass"))
        blobs: list[bytes] = []
        pos = 8 + n
        for size in head["blobs"]:
            blobs.append(bytes(blob[pos:pos + int(size)]))
            pos += int(size)
        if pos != len(blob):
            raise ValueError("work item length mismatch")
        if head["t"] == "object":
            return ObjectWork(_dec_obj(head["obj"], blobs), str(head["mode"]))
        if head["t"] == "followup":
            return FollowUpWork(_dec_obj(head["obj"], blobs), [_dec_obj(c, blobs) for c in head["children"]],
                                [_dec_obj(c, blobs) for c in head["deferred"]],
                                [_dec_finding(f) for f in head["findings"]], [str(p) for p in head["done"]])
    except (KeyError, TypeError, IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"bad work item: {exc!r}") from exc
    raise ValueError(f"unknown work item type {head.get('t')!r}")
