"""Inspect each distinct content once: a bounded LRU of inspection results.

An entry is what inspecting one object produced before the policy decided: its findings (on
the object and its extracted children) and its children (metadata only: what their
``fileinfo`` records need). A repeat of the same content is looked up instead of extracted and
inspected again; `rebuild` makes the entry the repeat's own (its object id, flow, time, fresh
child ids) and the policy engine then decides on those findings exactly as on fresh ones, so
alerts, thresholds and the repeat-suppression window are those without the cache.

The key (built by `appliance.inspection.InspectionStage`) is the content (``sha256``), the
policy version, the set of inspector configurations that ran (a zone pair selecting other
profiles has its own entries), the inspection mode, and the object attributes that the
extraction and those inspectors read besides the bytes (MIME types, charset, file extension,
and what an inspector declares in ``cache_context``: the site for dark words, the URL for
hidden links, the file name for MD5 reports). An inspector that declares no ``cache_context``
(a plug-in, say) makes the object uncacheable: a result is reused only when every inspector
said what, besides the bytes, it depends on.

Bounds: ``max_entries`` and ``max_bytes`` (an estimate of each entry's size); the least
recently used entries go first. Results cut short (deadline, a failed extraction worker, an
inspector error) are not stored: the next copy gets a full try.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace

from appliance.model import ContentObject, Finding

__all__ = ["CachedResult", "ResultCache", "rebuild"]


@dataclass(slots=True, frozen=True)
class CachedResult:
    """Findings and children of one inspected object (``obj_id``: the id they name)."""

    obj_id: str
    findings: tuple[Finding, ...]
    children: tuple[ContentObject, ...]
    size: int = 0
    """Estimated bytes (the cache's byte cap counts this)."""

    @classmethod
    def make(cls, obj_id: str, findings: Sequence[Finding], children: Sequence[ContentObject]) -> CachedResult:
        kids = tuple(replace(c, data=None, text=None, hidden_text=None, links=()) for c in children)
        size = 200 + sum(_finding_size(f) for f in findings) + sum(_child_size(c) for c in kids)
        return cls(obj_id, tuple(findings), kids, size)


def _finding_size(f: Finding) -> int:
    return (160 + len(f.rule) + sum(48 + len(e.snippet) + len(e.ref) for e in f.evidence)
            + sum(len(str(k)) + len(str(v)) + 16 for k, v in f.detail.items()))


def _child_size(c: ContentObject) -> int:
    return (600 + len(c.filename) + len(c.url) + len(c.magic) + sum(len(t) for t in c.truncated)
            + sum(len(k) + len(str(v)) for k, v in c.meta.items()))


class ResultCache:
    """LRU of `CachedResult` by key, bounded in entries and estimated bytes."""

    def __init__(self, max_entries: int = 100_000, max_bytes: int = 64 << 20) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._d: OrderedDict[Hashable, CachedResult] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._d)

    def get(self, key: Hashable) -> CachedResult | None:
        got = self._d.get(key)
        if got is None:
            self.misses += 1
            return None
        self._d.move_to_end(key)
        self.hits += 1
        return got

    def put(self, key: Hashable, value: CachedResult) -> None:
        if self.max_entries <= 0 or value.size > self.max_bytes:
            return
        old = self._d.pop(key, None)
        if old is not None:
            self.bytes -= old.size
        self._d[key] = value
        self.bytes += value.size + sys.getsizeof(key)
        while self._d and (len(self._d) > self.max_entries or self.bytes > self.max_bytes):
            k, v = self._d.popitem(last=False)
            self.bytes -= v.size + sys.getsizeof(k)
            self.evictions += 1

    def clear(self) -> None:
        self._d.clear()
        self.bytes = 0

    def counters(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self._d), "bytes": self.bytes,
                "evictions": self.evictions}


def rebuild(cached: CachedResult, obj: ContentObject, new_id: Callable[[], str],
            ids: Sequence[str] = ()) -> tuple[list[Finding], list[ContentObject]]:
    """``cached`` made ``obj``'s own: children with fresh ids (``ids`` first, in order, then
    ``new_id()``), re-parented and placed in ``obj``'s flow and time; findings renamed to match."""
    idmap = {cached.obj_id: obj.id}
    children: list[ContentObject] = []
    for i, c in enumerate(cached.children):
        nid = ids[i] if i < len(ids) else new_id()
        idmap[c.id] = nid
        children.append(replace(c, id=nid, parent_id=idmap.get(c.parent_id or "", obj.id), flow=obj.flow,
                                ts_ns=obj.ts_ns, direction=obj.direction, url=obj.url, host=obj.host,
                                tx_id=obj.tx_id))
    findings = []
    for f in cached.findings:
        detail = f.detail
        if detail and "child" in detail and detail["child"] in idmap:
            detail = {**detail, "child": idmap[detail["child"]]}
        findings.append(replace(f, content_id=idmap.get(f.content_id, f.content_id), detail=detail))
    return findings, children
