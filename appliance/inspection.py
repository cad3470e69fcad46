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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from appliance.jobs.codec import FollowUpWork, strip
from appliance.model import Alert, ContentObject, Finding, InspectorConfig
from appliance.resultcache import CachedResult, ResultCache, rebuild
from inspectors.base import InspectContext, Inspector, InspectorConfigError, guarded, needs_of
from inspectors.extract import apply, extract_tree
from inspectors.extract.base import Budget
from inspectors.extract.cost import (
    EXTRACTOR_COSTS,
    ExtractorCost,
    extract_cheap,
    family,
    family_cost,
    media_decode_needed,
)
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
    followup: FollowUpWork | None = None
    """A cheap pass that deferred expensive children: the rest of the work (for the expensive queue)."""
    cached: bool = False
    """The findings came from the result cache (the content was inspected before)."""
    top: ContentObject | None = None
    """The object as extraction left it (with its text), when it was extracted (content retention keeps it)."""


Extractor = Callable[..., tuple[ContentObject, list[ContentObject]]]
"""Turns an object into (the object with its text, its children); see `InspectionStage`. One
that has a true ``takes_needs`` attribute (`make_extractor`'s) is called as
``extractor(obj, needs=...)`` with what the selected inspectors need (`inspectors.base.NEEDS`)."""

CheapExtractor = Callable[[ContentObject, frozenset[str]],
                          tuple[ContentObject, list[ContentObject], list[ContentObject]]]
"""Turns an object into (the object with its text, its children, the children deferred to the
expensive queue), extracting only what the cost table calls cheap, given what the selected
inspectors need (`inspectors.base.NEEDS`: media are decoded only for those)."""

_WITH_CHILDREN = frozenset({"ooxml", "zip", "tar", "compressed", "eml", "rtf", "pdf", "ole", "media"})
"""Families whose extraction can make children (every inspector may then apply)."""
_TRANSIENT = ("extract_worker_", "extract_error", "extract_time_limit")

CHEAP_MIMES = frozenset({
    "text/plain", "text/css", "text/csv", "text/javascript", "application/javascript",
    "application/x-javascript", "application/json", "application/xml", "text/xml",
    "application/x-www-form-urlencoded",
})
"""Types whose text is their bytes (after the charset): no extraction needed."""


class InspectionStage:
    """Runs the policy's inspectors on objects; one per worker process."""

    def __init__(self, holder: PolicyHolder, *, extractor: Extractor | None = None,
                 max_text_bytes: int = 32 * 1024 * 1024, time_budget_s: float = 30.0,
                 cache: ResultCache | None = None) -> None:
        self.holder = holder
        self.extractor = extractor
        self.cheap_extractor: CheapExtractor | None = None
        """Extraction of the cheap part only (`inspect` with ``mode="cheap"``)."""
        self.new_id: Callable[[], str] | None = None
        """Ids for children rebuilt from the cache (the extractor's object factory)."""
        self.costs: Mapping[str, ExtractorCost] = EXTRACTOR_COSTS
        """Extractor family → cost class (`inspectors.extract.cost`; settings may override rows)."""
        self.cache = cache
        self.max_text_bytes = max_text_bytes
        self.time_budget_s = time_budget_s
        self.counters: Counter[str] = Counter()
        self._generation = -1
        self._inspectors: dict[int, Inspector | None] = {}
        self._keywords: list[str] = []
        self._kw_generation = -1
        self._config_keys: dict[tuple[int, ...], tuple[Any, ...]] = {}
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

    def inspect(self, obj: ContentObject, now_ns: int, mode: str = "full") -> InspectionResult:
        """Extract, inspect and decide for ``obj`` and its children. Never raises.

        ``mode`` ``cheap``: extract only what the cost table calls cheap (the object must be of
        the cheap class, `cost_class`); children whose extraction is expensive are reported but
        deferred: ``result.followup`` carries them to `follow_up` (the expensive queue).
        Content inspected before under the same configuration comes from the result cache."""
        active, selections = self._select(obj)
        if not selections:
            return InspectionResult()
        needs = self.needs(active.engine.configs(selections))
        extractor: Any = self._full_extractor(needs)
        if mode == "cheap" and self.cheap_extractor is not None:
            cheap = self.cheap_extractor
            extractor = lambda o: cheap(o, needs)  # noqa: E731
        return self._run(active, obj, selections, now_ns, extractor, mode=mode)

    def _full_extractor(self, needs: frozenset[str]) -> Any:
        """The full extractor called with ``needs`` (when it takes them), as a one-argument call."""
        full = self.extractor
        if full is None or not getattr(full, "takes_needs", False):
            return full
        return lambda o: full(o, needs=needs)

    def follow_up(self, work: FollowUpWork, now_ns: int) -> InspectionResult:
        """The expensive rest of an object (`inspect` with ``mode="cheap"`` deferred it): extract
        the deferred children fully, inspect them, and decide on these findings together with
        the cheap pass's; profiles that alerted then are not raised again. Never raises."""
        obj = work.obj
        active, selections = self._select(obj)
        if not selections:
            return InspectionResult()
        needs = self.needs(active.engine.configs(selections))
        return self._run(active, obj, selections, now_ns, self._full_extractor(needs), mode="followup", work=work)

    def cost_class(self, obj: ContentObject) -> tuple[str | None, str]:
        """(cost class, extractor family) of inspecting ``obj`` under the active policy: None
        when no rule selects it (nothing to do), ``cheap`` when its extraction is cheap at its
        size and every inspector that may look at it or its children declares ``cost = "cheap"``
        (media count as cheap only when no selected inspector needs them decoded), else
        ``expensive``. Never raises."""
        active, selections = self._select(obj)
        if not selections:
            return None, ""
        try:
            fam = family(obj)
        except Exception:  # a hostile header must not stop classification
            fam = "unknown"
        configs = active.engine.configs(selections)
        if fam == "media":
            decode = media_decode_needed(obj, self.needs(configs))
            cost = "expensive" if decode else family_cost("media-raw", obj.size, self.costs)
        else:
            cost = family_cost(fam, obj.size, self.costs)
        if cost == "cheap":
            for config in configs:
                insp = self._inspector(config)
                if insp is None or getattr(insp, "cost", "expensive") == "cheap":
                    continue
                if fam in _WITH_CHILDREN or not insp.kinds or _kind_matches(insp.kinds, obj):
                    cost = "expensive"
                    break
        return cost, fam

    def inspect_cheap(self, obj: ContentObject, now_ns: int, max_bytes: int) -> InspectionResult | None:
        """Inspect ``obj`` here if that is cheap, else return None (it needs `inspect` with
        extraction, in the inspection pool).

        Cheap: a plain-text body (text/plain, CSS, CSV, JavaScript, JSON, XML, form data; not
        HTML, whose visible/hidden text needs the CSS walk) of at most ``max_bytes`` that is
        held whole, and every inspector its rules select declares ``cost = "cheap"`` (keyword,
        data class, MD5, dark words, hidden links, perceptual hashes, text ML). An object no
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
        return self._run(active, obj, selections, now_ns, None, mode="bytes")

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
        return self._run(active, obj, selections, now_ns, None, mode="metadata")

    def _cheap(self, config: InspectorConfig) -> bool:
        """Whether the inspector of ``config`` declares itself cheap (one that cannot be
        configured runs nowhere, so it does not hold the object back either)."""
        insp = self._inspector(config)
        return insp is None or getattr(insp, "cost", "expensive") == "cheap"

    def needs(self, configs: Sequence[InspectorConfig]) -> frozenset[str]:
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
            self._config_keys.clear()
            self._needs.clear()
            self._generation = active.generation
        return active

    def _run(self, active: ActivePolicy, obj: ContentObject, selections: list[Any], now_ns: int,
             extractor: Any, *, mode: str, work: FollowUpWork | None = None) -> InspectionResult:
        result = InspectionResult()
        engine = active.engine
        configs = engine.configs(selections)  # merged across rules: each inspector runs once
        key = self._cache_key(active, obj, configs, mode)
        hit = self.cache.get(key) if key is not None and self.cache is not None else None
        carried = work.children if work is not None else []
        if hit is not None:  # the same content under the same configuration: its findings, made ours
            self.counters["cache_hits"] += 1
            findings, children = rebuild(hit, obj, self._child_id(obj), [c.id for c in carried])
            result.children = children[len(carried):]  # the cheap pass reported the others
            result.cached = True
        else:
            if key is not None:
                self.counters["cache_misses"] += 1
            self.counters[f"inspected_{mode}"] += 1
            extracted = extractor is not None and work is None
            obj, findings, children, deferred, whole = self._inspect(obj, configs, extractor, work,
                                                                     metadata=mode == "metadata")
            result.children = children
            result.top = obj if extracted else None
            if work is not None:
                findings = [*work.findings, *findings]
            if deferred:
                result.followup = FollowUpWork(strip(obj), [strip(c) for c in children],
                                               [strip(c, keep_data=True) for c in deferred], list(findings))
            elif whole and key is not None and self.cache is not None:
                self.cache.put(key, CachedResult.make(obj.id, findings, [*carried, *children]))
        result.findings = len(findings)
        self.counters["findings"] += len(findings)
        if not findings:
            return result
        if work is None:
            decision: Decision = engine.process(obj, selections, findings, now_ns)
        else:  # the cheap pass's alerts stand; only profiles it did not raise may alert now
            done = set(work.done_profiles)
            fresh = [a for a in engine.decide(obj, selections, findings, now_ns) if a.profile not in done]
            decision = engine.suppressor.filter(fresh, now_ns, obj)
        result.alerts = [(a, obj) for a in decision.alerts]
        result.suppressed = decision.suppressed
        if result.followup is not None:
            result.followup.done_profiles = [a.profile for a in decision.alerts] + [
                x.alert.profile for x in decision.suppressed]
        self.counters["alerts"] += len(decision.alerts)
        self.counters["suppressed"] += len(decision.suppressed)
        return result

    def _inspect(self, obj: ContentObject, configs: Sequence[InspectorConfig], extractor: Any,
                 work: FollowUpWork | None, *, metadata: bool = False,
                 ) -> tuple[ContentObject, list[Finding], list[ContentObject], list[ContentObject], bool]:
        """Extract and run the inspectors: (object with its text, findings, children reported
        now, children deferred, whether the result is whole enough to cache). ``metadata``: only
        the inspectors that read metadata records run."""
        ctx = InspectContext(
            deadline=time.monotonic() + self.time_budget_s, counters=self.counters,
            max_text_bytes=self.max_text_bytes,
        )
        errors = sum(v for k, v in self.counters.items() if k.startswith("inspector_errors."))
        targets: list[ContentObject] = [obj] if work is None else []
        children: list[ContentObject] = []
        deferred: list[ContentObject] = []
        for item in [obj] if work is None else work.deferred:
            if extractor is None:
                continue
            try:
                got = extractor(item)
                top, kids = got[0], got[1]
                deferred += got[2] if len(got) > 2 else []
                # thumbnails are evidence made by the extractor, not content that crossed the wire
                kids = [c for c in kids if c.kind != "thumbnail"]
                if work is None:
                    obj = top
                    targets = [obj, *kids, *deferred]
                else:
                    targets += [top, *kids]
                children += kids
            except Exception as exc:  # extraction failures are counted, never fatal
                self.counters["extract_errors"] += 1
                if self.counters["extract_errors"] == 1:
                    log.exception("extraction failed for %s (further failures are counted)", item.id)
                else:
                    log.debug("extraction failed for %s: %r", item.id, exc)
                targets += [item] if work is not None else []
        children += deferred
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
        whole = (not any("deadline" in fl for fl in ctx.flags.values())
                 and errors == sum(v for k, v in self.counters.items() if k.startswith("inspector_errors."))
                 and not any(a.startswith(_TRANSIENT) for t in targets for a in t.anomalies)
                 and not any(t.truncated and "time" in t.truncated for t in targets))
        return obj, findings, children, deferred, whole

    def _cache_key(self, active: ActivePolicy, obj: ContentObject, configs: Sequence[InspectorConfig],
                   mode: str) -> tuple[Any, ...] | None:
        """What inspecting ``obj`` depends on (see `appliance.resultcache`); None: not cacheable."""
        if self.cache is None or not obj.sha256 or not obj.size:
            return None
        ids = tuple(id(c) for c in configs)
        ck = self._config_keys.get(ids)
        if ck is None:
            context: set[str] = set()
            parts = []
            cacheable = True
            for c in configs:
                insp = self._inspector(c)
                declared = getattr(insp, "cache_context", None) if insp is not None else ()
                if declared is None:  # it did not say what it reads besides the bytes: never reuse its result
                    cacheable = False
                    break
                context.update(declared)
                parts.append((c.inspector, tuple(spec.name for spec in c.lists), repr(sorted(c.params.items()))))
            ck = self._config_keys[ids] = (tuple(sorted(parts)), tuple(sorted(context))) if cacheable else ()
        if not ck:
            return None
        name = obj.filename or obj.url.split("?", 1)[0]
        ext = name.rsplit(".", 1)[-1].lower() if "." in name.rsplit("/", 1)[-1] else ""
        return (obj.sha256, active.generation, ck[0], mode, obj.kind, obj.declared_mime, obj.sniffed_mime, ext,
                obj.meta.get("charset", ""), bool(obj.truncated or obj.missing_bytes),
                tuple(str(getattr(obj, a, "")) for a in ck[1]))

    def _child_id(self, obj: ContentObject) -> Callable[[], str]:
        if self.new_id is not None:
            return self.new_id
        seq = iter(range(1, 1 << 30))
        return lambda: f"{obj.id}c{next(seq)}"


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


def make_cheap_extractor(factory: object, budget: Budget, costs: Mapping[str, ExtractorCost],
                         sandbox: object | None = None,
                         keywords: Callable[[], list[str]] | None = None) -> CheapExtractor:
    """A `CheapExtractor` over `inspectors.extract.cost.extract_cheap` (see `make_extractor`)."""

    def run(obj: ContentObject,
            needs: frozenset[str]) -> tuple[ContentObject, list[ContentObject], list[ContentObject]]:
        kws = keywords() if keywords is not None else None
        tree, deferred = extract_cheap(obj, budget, factory, costs=costs, needs=needs, sandbox=sandbox, keywords=kws)
        top = apply(tree[0][0], tree[0][1])
        return top, [apply(child, ex) for child, ex in tree[1:]], deferred

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
