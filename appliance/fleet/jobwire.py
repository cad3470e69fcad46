"""A content object as a job's payload, and back (no pickle: a job crosses hosts).

The layout is the ``capacity`` branch's work-item format for an object (``appliance.jobs.codec``,
``ObjectWork``): ``TSW1``, a 4-byte big-endian header length, a UTF-8 JSON header
``{"t": "object", "mode": …, "obj": {…}, "blobs": [sizes]}``, then the object's bytes raw. NOTE
for the merge: replace this module with that codec (``encode_work(ObjectWork(obj))`` /
``decode_work``); the bytes are the same.

Decoding builds only a `ContentObject` from plain JSON values; anything else is a `ValueError`.
"""

from __future__ import annotations

import json
import struct
from dataclasses import fields
from typing import Any

from appliance.model import ContentObject
from appliance.model.content import FlowRef, Link
from appliance.model.streams import Direction

__all__ = ["decode_object", "encode_object"]

_MAGIC = b"TSW1"
_LEN = struct.Struct(">I")
_FIELDS = tuple(f.name for f in fields(ContentObject))


def _enc(o: ContentObject, blobs: list[bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in _FIELDS:
        v = getattr(o, name)
        if name == "data":
            if v is not None:
                blobs.append(bytes(v))
                v = len(blobs) - 1
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


def _dec(d: dict[str, Any], blobs: list[bytes]) -> ContentObject:
    kw: dict[str, Any] = {}
    for name in _FIELDS:
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


def encode_object(obj: ContentObject, mode: str = "full") -> bytes:
    """The payload of a job that inspects *obj* (``full``: extraction and every inspector)."""
    blobs: list[bytes] = []
    head = {"t": "object", "mode": mode, "obj": _enc(obj, blobs), "blobs": [len(b) for b in blobs]}
    text = json.dumps(head, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return b"".join([_MAGIC, _LEN.pack(len(text)), text, *blobs])


def decode_object(blob: bytes) -> tuple[ContentObject, str]:
    """(object, mode) from a payload; `ValueError` for anything else."""
    if blob[:4] != _MAGIC or len(blob) < 8:
        raise ValueError("not a work item")
    (n,) = _LEN.unpack_from(blob, 4)
    try:
        head = json.loads(bytes(blob[8:8 + n]).decode("utf-8", "surrogatepass"))
        if head.get("t") != "object":
            raise ValueError(f"unsupported work item {head.get('t')!r}")
        blobs: list[bytes] = []
        pos = 8 + n
        for size in head["blobs"]:
            blobs.append(bytes(blob[pos:pos + int(size)]))
            pos += int(size)
        if pos != len(blob):
            raise ValueError("work item length mismatch")
        return _dec(head["obj"], blobs), str(head["mode"])
    except (KeyError, TypeError, IndexError, UnicodeDecodeError, AttributeError) as exc:
        raise ValueError(f"bad work item: {exc!r}") from exc
