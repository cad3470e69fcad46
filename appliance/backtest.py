"""Policy back-test: what a policy change would have raised over the retained content of a period.

The retained objects (`appliance.store.content`) of [since, until) are rebuilt as content objects —
metadata, the stored text, the stored children (the objects extraction made of them), and the
bytes when they were kept — and run through the real inspection stage
(`appliance.inspection.InspectionStage`) once under the current policy and once under the proposed
one; the alerts are compared per object and profile:

- **new**: the proposed policy raises it, the current does not;
- **lost**: the current raises it, the proposed does not;
- **changed**: both raise it, with another rule, severity, category or other lists matched.

Suppression of repeats is off (every decision counts); analysts' exceptions apply. Objects whose
bytes were not kept are tested on their stored text (cut at ``retention.max_text_bytes``) and
metadata: inspectors that need the bytes (perceptual image hashes, image classifiers) cannot
fire on them (``text_only`` counts them).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from appliance.model import Alert, ContentObject, Direction, FlowRef
from appliance.store.content import ContentRepo
from policies.engine import PolicyEngine, Suppressor
from policies.reload import ActivePolicy
from policies.schema import Policy
from policies.zones import ZoneMap

__all__ = ["BacktestResult", "backtest", "row_object"]

MAX_SAMPLES = 50


def row_object(row: dict[str, Any], data: bytes | None = None) -> ContentObject:
    """A content object rebuilt from its retained row (zones as the sensor recorded them)."""
    flow = None
    if row.get("src_ip") or row.get("dest_ip"):
        flow = FlowRef(row.get("flow_uid") or "", 0, row.get("src_ip") or "", int(row.get("src_port") or 0),
                       row.get("dest_ip") or "", int(row.get("dest_port") or 0), row.get("proto") or "TCP",
                       int(row.get("vlan") or 0), row.get("iface") or "", row.get("src_zone") or "any",
                       row.get("dst_zone") or "any")

    def js(k: str, default: Any) -> Any:
        try:
            v = json.loads(row.get(k) or "null")
        except (TypeError, ValueError):
            return default
        return v if isinstance(v, type(default)) else default

    return ContentObject(
        id=row["content_id"], source=row.get("source") or "http",
        direction=Direction.TO_CLIENT if row.get("direction") == "download" else Direction.TO_SERVER,
        flow=flow, ts_ns=int(row["ts_ns"]), size=int(row.get("size") or 0), md5=row.get("md5") or "",
        sha256=row.get("sha256") or "", parent_id=row.get("parent_id"), depth=int(row.get("depth") or 0),
        tx_id=row.get("tx_id"), kind=row.get("kind") or "body", declared_mime=row.get("declared_mime") or "",
        sniffed_mime=row.get("sniffed_mime") or "", magic=row.get("magic") or "", filename=row.get("filename") or "",
        url=row.get("url") or "", host=row.get("host") or "", method=row.get("method") or "",
        status=int(row.get("status") or 0), user_agent=row.get("user_agent") or "",
        missing_bytes=int(row.get("missing_bytes") or 0), truncated=tuple(js("truncated", [])),
        anomalies=tuple(js("anomalies", [])), data=data, text=row.get("text") or "",
        hidden_text=row.get("hidden_text"), meta={str(k): str(v) for k, v in js("meta", {}).items()},
    )


class _Fixed:
    """A policy holder that never reloads, with suppression off (the back-test counts every decision)."""

    def __init__(self, policy: Policy) -> None:
        self.current = ActivePolicy(policy, ZoneMap(policy), PolicyEngine(policy, suppressor=Suppressor(0)), 1)


def _rezoned(obj: ContentObject, zones: ZoneMap) -> ContentObject:
    """*obj* with its session's zones as *zones* names them (a policy change may redraw zones)."""
    f = obj.flow
    if f is None:
        return obj
    down = obj.direction == Direction.TO_CLIENT
    client, server = (f.dest_ip, f.src_ip) if down else (f.src_ip, f.dest_ip)
    z = (zones.zone_of(client, f.iface, f.vlan), zones.zone_of(server, f.iface, f.vlan))
    return obj if z == (f.src_zone, f.dst_zone) else _replace(obj, flow=f._replace(src_zone=z[0], dst_zone=z[1]))


def _replace(obj: ContentObject, **kw: Any) -> ContentObject:
    import dataclasses

    return dataclasses.replace(obj, **kw)


Key = tuple[str, str]
"""(content id, profile)."""


@dataclass(slots=True)
class BacktestResult:
    since_ns: int
    until_ns: int
    objects: int = 0
    children: int = 0
    text_only: int = 0
    """Objects tested on their text alone (their bytes were not kept)."""
    seconds: float = 0.0
    truncated: bool = False
    """Stopped at the object limit or time budget before the end of the period."""
    rules: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    """(policy rule, profile) → counts: ``current``, ``proposed``, ``new``, ``lost``, ``changed``."""
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"new": [], "lost": [], "changed": []})

    @property
    def objects_per_s(self) -> float:
        return self.objects / self.seconds if self.seconds > 0 else 0.0

    def totals(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for c in self.rules.values():
            out.update(c)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"since_ns": self.since_ns, "until_ns": self.until_ns, "objects": self.objects,
                "children": self.children, "text_only": self.text_only, "seconds": round(self.seconds, 3),
                "objects_per_s": round(self.objects_per_s, 1), "truncated": self.truncated,
                "totals": dict(self.totals()),
                "rules": [{"policy": p, "profile": q, **c} for (p, q), c in sorted(self.rules.items())],
                "samples": self.samples}


def _summary(a: Alert, obj: ContentObject) -> dict[str, Any]:
    return {"content_id": obj.id, "ts_ns": obj.ts_ns, "policy": a.policy, "profile": a.profile,
            "severity": int(a.severity), "category": a.category, "host": obj.host, "url": obj.url,
            "filename": obj.filename, "flow_uid": obj.flow.uid if obj.flow else "",
            "lists": sorted({f"{f.inspector}:{f.rule}" for f in a.findings})}


def _inspect(stage: Any, obj: ContentObject) -> dict[Key, dict[str, Any]]:
    res = stage.inspect(_rezoned(obj, stage.holder.current.zones), obj.ts_ns)
    return {(o.id, a.profile): _summary(a, o) for a, o in res.alerts}


def backtest(repo: ContentRepo, proposed: Policy, current: Policy | None, since_ns: int, until_ns: int, *,
             max_objects: int = 1_000_000, time_budget_s: float = 600.0, progress: Callable[[int], None] | None = None,
             inspect_budget_s: float = 5.0) -> BacktestResult:
    """Run *proposed* (and *current*, when given) over the retained content of [since, until) (module doc)."""
    from appliance.inspection import InspectionStage

    out = BacktestResult(since_ns, until_ns)
    stages = {}
    for name, pol in (("proposed", proposed), ("current", current)):
        if pol is None:
            continue
        stage = InspectionStage(_Fixed(pol), time_budget_s=inspect_budget_s)  # type: ignore[arg-type]
        stage.extractor = _StoredChildren(repo, out)
        stages[name] = stage
    t0 = time.monotonic()
    for batch in repo.scan(since_ns, until_ns):
        for row in batch:
            if out.objects >= max_objects or time.monotonic() - t0 > time_budget_s:
                out.truncated = True
                break
            data = repo.blob(row["sha256"]) if row.get("has_bytes") and row.get("sha256") else None
            if data is None:
                out.text_only += 1
            obj = row_object(row, data)
            got = {name: _inspect(stage, obj) for name, stage in stages.items()}
            out.objects += 1
            _compare(out, got.get("current", {}), got["proposed"], current is not None)
        if out.truncated:
            break
        if progress is not None:
            progress(out.objects)
    out.seconds = time.monotonic() - t0
    return out


def _compare(out: BacktestResult, old: dict[Key, dict[str, Any]], new: dict[Key, dict[str, Any]],
             diff: bool) -> None:
    def bump(s: dict[str, Any], what: str) -> None:
        out.rules.setdefault((s["policy"], s["profile"]), Counter())[what] += 1

    for s in old.values():
        bump(s, "current")
    for s in new.values():
        bump(s, "proposed")
    if not diff:
        return
    for k in new.keys() - old.keys():
        bump(new[k], "new")
        _sample(out, "new", new[k])
    for k in old.keys() - new.keys():
        bump(old[k], "lost")
        _sample(out, "lost", old[k])
    for k in new.keys() & old.keys():
        a, b = old[k], new[k]
        if (a["policy"], a["severity"], a["category"], a["lists"]) != (b["policy"], b["severity"], b["category"],
                                                                          b["lists"]):
            bump(b, "changed")
            _sample(out, "changed", {**b, "before": {k2: a[k2] for k2 in ("policy", "severity", "category",
                                                                          "lists")}})


def _sample(out: BacktestResult, kind: str, s: dict[str, Any]) -> None:
    if len(out.samples[kind]) < MAX_SAMPLES:
        out.samples[kind].append(s)


class _StoredChildren:
    """The inspection stage's extractor: the object as stored (text included) and its stored children."""

    takes_needs = False

    def __init__(self, repo: ContentRepo, out: BacktestResult) -> None:
        self.repo, self.out = repo, out
        self._cache: tuple[str, list[ContentObject]] | None = None

    def __call__(self, obj: ContentObject) -> tuple[ContentObject, list[ContentObject]]:
        if self._cache is not None and self._cache[0] == obj.id:  # the second policy: the same children
            return obj, self._cache[1]
        kids = list(self._descendants(obj.id, 3))
        self.out.children += len(kids)
        self._cache = (obj.id, kids)
        return obj, kids

    def _descendants(self, parent_id: str, depth: int) -> Iterator[ContentObject]:
        if depth <= 0:
            return
        for row in self.repo.children(parent_id):
            data = self.repo.blob(row["sha256"]) if row.get("has_bytes") and row.get("sha256") else None
            yield row_object(row, data)
            yield from self._descendants(row["content_id"], depth - 1)
