"""Inspection: content object → extraction → inspectors chosen by the zone policy → alerts.

The sensor calls `InspectionStage.inspect` for every object it extracts. The active policy
(a `PolicyHolder` snapshot) picks the rules for the object's zone pair, direction and
protocol; the inspectors those rules name run on the object and on the children extraction
made of it (a DOCX's images, a ZIP's members), each inspector compiled once per policy
version; the policy engine turns the findings into alerts and suppresses repeats.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from appliance.model import Alert, ContentObject, Finding, InspectorConfig
from inspectors.base import InspectContext, Inspector, InspectorConfigError, guarded, needs_of
from inspectors.extract import apply, extract_tree
from inspectors.extract.base import Budget
from inspectors.registry import create
from policies.engine import Decision, Suppressed
from policies.reload import ActivePolicy, PolicyHolder

log = logging.getLogger(__name__)


@dataclass(slots=True)
class InspectionResult:
    """What inspecting one top-level object produced."""

    alerts: list[tuple[Alert, ContentObject]] = field(default_factory=list)
    suppressed: list[Suppressed] = field(default_factory=list)
    children: list[ContentObject] = field(default_factory=list)
    findings: int = 0
    top: ContentObject | None = None
    """The object as extraction left it (with its text), when it was extracted (content retention keeps it)."""


Extractor = Callable[..., tuple[ContentObject, list[ContentObject]]]
"""Turns an object into (the object with its text, its children); see `InspectionStage`. One
that has a true ``takes_needs`` attribute (`make_extractor`'s) is called as
``extractor(obj, needs=...)`` with what the selected inspectors need (`inspectors.base.NEEDS`)."""

CHEAP_MIMES = frozenset({
    "text/plain", "text/css", "text/csv", "text/javascript", "application/javascript",
    "application/x-javascript", "application/json", "application/xml", "text/xml",
    "application/x-www-form-urlencoded",
})
"""Types whose text is their bytes (after the charset): no extraction needed."""


class InspectionStage:
    """Runs the policy's inspectors on objects; one per worker process."""

    def __init__(self, holder: PolicyHolder, *, extractor: Extractor | None = None,
                 max_text_bytes: int = 32 * 1024 * 1024, time_budget_s: float = 30.0) -> None:
        self.holder = holder
        self.extractor = extractor
        self.max_text_bytes = max_text_bytes
        self.time_budget_s = time_budget_s
        self.counters: Counter[str] = Counter()
        self._generation = -1
        self._inspectors: dict[int, Inspector | None] = {}
        self._keywords: list[str] = []
        self._kw_generation = -1
        self._needs: dict[tuple[int, ...], frozenset[str]] = {}
        self._meta_generation = -1
        self._meta_wanted = False

    @property
    def active(self) -> ActivePolicy:
        return self.holder.current

    def policy_keywords(self) -> list[str]:
        """The literal keywords of the active policy's keyword lists (for speech spotting)."""
        active = self.holder.current
        if self._kw_generation != active.generation:
            words: dict[str, None] = {}
            for spec in active.policy.lists.values():
                if spec.kind == "keywords":
                    for k in spec.keywords:
                        if k.mode != "regex":
                            words[k.text] = None
            self._keywords = list(words)
            self._kw_generation = active.generation
        return self._keywords

    def zones(self, flow: object) -> tuple[str, str]:
        """(source zone, destination zone) of a flow under the active policy."""
        return self.holder.current.zones.zones_for(flow)

    def _inspector(self, config: InspectorConfig) -> Inspector | None:
        """The configured inspector for ``config`` (compiled once per policy version)."""
        key = id(config)
        if key in self._inspectors:
            return self._inspectors[key]
        try:
            insp = create(config.inspector)
            insp.configure(config)
        except (KeyError, TypeError, InspectorConfigError) as exc:
            log.error("inspector %s cannot run with this policy: %s", config.inspector, exc)
            self.counters[f"inspector_config_errors.{config.inspector}"] += 1
            insp = None
        self._inspectors[key] = insp
        return insp

    def inspect(self, obj: ContentObject, now_ns: int) -> InspectionResult:
        """Extract, inspect and decide for ``obj`` and its children. Never raises."""
        active, selections = self._select(obj)
        if not selections:
            return InspectionResult()
        return self._run(active, obj, selections, now_ns, self.extractor)

    def inspect_cheap(self, obj: ContentObject, now_ns: int, max_bytes: int) -> InspectionResult | None:
        """Inspect ``obj`` here if that is cheap, else return None (it needs `inspect` with
        extraction, in the inspection pool).

        Cheap: a plain-text body (text/plain, CSS, CSV, JavaScript, JSON, XML, form data; not
        HTML, whose visible/hidden text needs the CSS walk) of at most ``max_bytes`` that is
        held whole, and every inspector its rules select declares ``cost = "cheap"`` (keyword,
        data class, MD5, dark words, hidden links; not perceptual hashes or ML). An object no
        rule selects is cheap too (nothing to do). Never raises.
        """
        active, selections = self._select(obj)
        if not selections:
            return InspectionResult()
        mime = (obj.sniffed_mime or obj.declared_mime).split(";", 1)[0].strip().lower()
        if (obj.data is None or len(obj.data) != obj.size or obj.size > max_bytes or mime not in CHEAP_MIMES
                or any(not self._cheap(c) for c in active.engine.configs(selections))):
            return None
        self.counters["inspected_cheap"] += 1
        return self._run(active, obj, selections, now_ns, None)

    def wants_metadata(self) -> bool:
        """Whether the active policy runs an inspector on metadata records (``metadata = True``,
        e.g. ``domains``); cached per policy version."""
        active = self._refresh()
        if self._meta_generation != active.generation:
            self._meta_wanted = any(getattr(self._inspector(c), "metadata", False)
                                    for p in active.policy.profiles.values() for c in p.configs)
            self._meta_generation = active.generation
        return self._meta_wanted

    def inspect_metadata(self, obj: ContentObject, now_ns: int) -> InspectionResult:
        """A metadata record (a TLS, QUIC or DNS event as a bytes-less object of kind
        ``metadata``): the selected rules' metadata inspectors only, no extraction. Never raises."""
        active, selections = self._select(obj)
        if not selections:
            return InspectionResult()
        self.counters["metadata_inspected"] += 1
        return self._run(active, obj, selections, now_ns, None, metadata=True)

    def _cheap(self, config: InspectorConfig) -> bool:
        """Whether the inspector of ``config`` declares itself cheap (one that cannot be
        configured runs nowhere, so it does not hold the object back either)."""
        insp = self._inspector(config)
        return insp is None or getattr(insp, "cost", "expensive") == "cheap"

    def needs(self, configs: list[InspectorConfig]) -> frozenset[str]:
        """Union of what the inspectors of ``configs`` need from extraction (`needs_of`), cached
        per policy version and selection."""
        key = tuple(id(c) for c in configs)
        got = self._needs.get(key)
        if got is None:
            out: set[str] = set()
            for c in configs:
                insp = self._inspector(c)
                if insp is not None:
                    out |= needs_of(insp, c)
            got = self._needs[key] = frozenset(out)
        return got

    def warm(self) -> None:
        """Configure (compile) every inspector the active policy names, ahead of the first object."""
        active = self._refresh()
        for profile in active.policy.profiles.values():
            for config in profile.configs:
                self._inspector(config)

    def _select(self, obj: ContentObject) -> tuple[ActivePolicy, list[Any]]:
        """The active policy and the rule selections for ``obj``'s zones (none: counted)."""
        active = self._refresh()
        flow = obj.flow
        src_zone, dst_zone = (flow.src_zone, flow.dst_zone) if flow is not None else ("any", "any")
        selections = active.engine.select(src_zone, dst_zone, obj)
        if not selections:
            self.counters["objects_no_rule"] += 1
        return active, selections

    def _refresh(self) -> ActivePolicy:
        active = self.holder.current
        if active.generation != self._generation:
            self._inspectors.clear()  # configs of the old policy are gone with it
            self._needs.clear()
            self._generation = active.generation
        return active

    def _run(self, active: ActivePolicy, obj: ContentObject, selections: list[Any], now_ns: int,
             extractor: Extractor | None, *, metadata: bool = False) -> InspectionResult:
        result = InspectionResult()
        engine = active.engine
        configs = engine.configs(selections)  # merged across rules: each inspector runs once
        ctx = InspectContext(
            deadline=time.monotonic() + self.time_budget_s, counters=self.counters,
            max_text_bytes=self.max_text_bytes,
        )
        targets = [obj]
        if extractor is not None:
            try:
                if getattr(extractor, "takes_needs", False):
                    obj, children = extractor(obj, needs=self.needs(configs))
                else:
                    obj, children = extractor(obj)
                # thumbnails are evidence made by the extractor, not content that crossed the wire
                children = [c for c in children if c.kind != "thumbnail"]
                result.top = obj
                targets = [obj, *children]
                result.children = children
            except Exception as exc:  # extraction failures are counted, never fatal
                self.counters["extract_errors"] += 1
                if self.counters["extract_errors"] == 1:
                    log.exception("extraction failed for %s (further failures are counted)", obj.id)
                else:
                    log.debug("extraction failed for %s: %r", obj.id, exc)
        findings: list[Finding] = []
        seen: set[int] = set()
        for config in configs:
            if id(config) in seen:
                continue
            seen.add(id(config))
            insp = self._inspector(config)
            if insp is None or (metadata and not getattr(insp, "metadata", False)):
                continue
            for target in targets:
                if insp.kinds and not _kind_matches(insp.kinds, target):
                    continue
                found = guarded(insp, target, ctx)
                if found:
                    # findings on a child count for the top-level object the policy judged
                    findings.extend(found if target is obj else (replace(f, detail={
                        **f.detail, "child": target.id, "child_filename": target.filename}) for f in found))
        for target in targets:
            ctx.forget(target)
        result.findings = len(findings)
        self.counters["findings"] += len(findings)
        if not findings:
            return result
        decision: Decision = engine.process(obj, selections, findings, now_ns)
        result.alerts = [(a, obj) for a in decision.alerts]
        result.suppressed = decision.suppressed
        self.counters["alerts"] += len(decision.alerts)
        self.counters["suppressed"] += len(decision.suppressed)
        return result


def make_extractor(factory: object, budget: Budget, sandbox: object | None = None,
                   keywords: Callable[[], list[str]] | None = None) -> Extractor:
    """An `Extractor` over `inspectors.extract`: the object with its text, hidden text and
    links, and every child within ``budget`` (each with its own text), breadth first.
    ``keywords`` gives the active policy's keywords for spotting in speech; ``needs`` (per call)
    limits media decoding to what the inspectors look at."""

    def run(obj: ContentObject, needs: frozenset[str] | None = None) -> tuple[ContentObject, list[ContentObject]]:
        kws = keywords() if keywords is not None else None
        tree = extract_tree(obj, budget, factory, sandbox=sandbox, keywords=kws,  # type: ignore[arg-type]
                            needs=needs)
        top = apply(tree[0][0], tree[0][1])
        return top, [apply(child, ex) for child, ex in tree[1:]]

    run.takes_needs = True  # type: ignore[attr-defined]
    return run


_TEXT_MIMES = ("text/", "application/json", "application/xml", "application/javascript",
               "application/x-www-form-urlencoded", "message/")


def _kind_matches(kinds: frozenset[str], obj: ContentObject) -> bool:
    """Whether an inspector for ``kinds`` (``any``, ``text``, ``image``, ``binary``…) looks at ``obj``."""
    if "any" in kinds or "binary" in kinds:
        return True
    mime = obj.sniffed_mime or obj.declared_mime
    if "text" in kinds and (obj.text is not None or mime.startswith(_TEXT_MIMES) or not mime):
        return True
    if "html" in kinds and (obj.links or "html" in mime):
        return True
    if "image" in kinds and mime.startswith("image/"):
        return True
    if "audio" in kinds and mime.startswith("audio/"):
        return True
    if "video" in kinds and mime.startswith("video/"):
        return True
    return obj.kind in kinds
