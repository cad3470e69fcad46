"""The one pipeline builder: `tapsift read` and every live capture worker build theirs here.

``build_pipeline(settings, outputs, ...)`` makes the `Sensor` (decode → TCP → application
layer), the zone policy holder, the inspection stage and the callbacks that turn objects,
application events, alerts and the per-flow ``anomaly`` events into output. Two inspection
modes:

- inline (`tapsift read`, a worker without pool): every object is extracted and inspected
  here; its children and alerts follow its ``fileinfo`` event;
- metadata: a ``tls``, ``quic`` or ``dns`` event is inspected here, as a bytes-less object of
  kind ``metadata``, by the policy's metadata inspectors (``domains``), when it has any;
- offload (a worker with an inspection pool, ``outputs.offload`` given): each object's cost
  class is decided here (`InspectionStage.cost_class`) and the object is queued for the pool's
  cheap or expensive lanes (`appliance.scheduler`); plain-text objects may be inspected here
  instead (``live.worker_inspect_bytes``). An object the queue refuses is shed with a counted
  ``not_inspected`` record naming its class and the reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from appliance.eve import app_event, fileinfo_event, flow_anomaly_events
from appliance.model import Alert, AppEvent, ContentObject, Flow
from appliance.sensor import Sensor, Stats
from appliance.settings import Settings

if TYPE_CHECKING:  # the inspection side is imported only when a policy is in use
    from appliance.behaviour import BehaviourHook
    from appliance.inspection import InspectionResult, InspectionStage
    from policies.engine import Suppressed
    from policies.reload import PolicyHolder
    from reassembly.applayer import AppProtocol
    from reassembly.objects import ObjectFactory

log = logging.getLogger("tapsift.pipeline")

_METADATA_EVENTS = frozenset({"tls", "quic", "dns"})
"""Application events whose names the policy's metadata inspectors (``domains``) look at."""

__all__ = ["Outputs", "Pipeline", "build_pipeline", "inspector_errors", "make_inspection", "policy_holder"]


@dataclass(slots=True)
class Outputs:
    """Where a pipeline's results go."""

    event: Callable[[dict[str, Any]], None]
    """One EVE record: ``fileinfo``, ``anomaly``, application metadata (``tls``, ``dns``…)."""
    alert: Callable[[Alert, ContentObject | None], None] | None = None
    """An alert and the object it is about (after that object's ``fileinfo`` record); no object
    for a behaviour anomaly (the alert names its subject and window)."""
    suppressed: Callable[[Suppressed], None] | None = None
    """A repeat the policy suppressed."""
    offload: Callable[[ContentObject, str], str | None] | None = None
    """Inspection elsewhere (the pool's queue), given the object and its cost class: None when
    queued, else why it was refused (``queue_full``…: the object is shed with a record)."""
    observe: Callable[[tuple[Any, ...]], None] | None = None
    """Behaviour observations (`inspectors.behaviour.Observation`) for a stage elsewhere: a live
    capture worker sends them to the supervisor's single behaviour stage."""
    retain: Any | None = None
    """Content retention (`appliance.retention.RetentionWriter`): every object with its text, flows, records."""


def policy_holder(settings: Settings, slot: int = 0, slots: int = 1) -> PolicyHolder | None:
    """The zone policy of process ``slot`` of ``slots`` numbering alerts (ids k+1, k+1+N, …);
    None without ``inspection.policy``. Raises `PolicyError` / `OSError` for a bad file."""
    if not settings.inspection.policy:
        return None
    from policies.engine import AlertIds
    from policies.reload import PolicyHolder

    return PolicyHolder(settings.inspection.policy, ids=AlertIds(slot + 1, slots))


def make_inspection(settings: Settings, holder: PolicyHolder, factory: ObjectFactory | None) -> InspectionStage:
    """An inspection stage for ``holder``; with ``factory``, it extracts children (budgets from
    ``inspection``; the cheap part alone for the cheap lane), else it inspects objects as they
    are (the cheap checks). Results are cached by content (``inspection.result_cache_*``)."""
    from appliance.inspection import InspectionStage, make_cheap_extractor, make_extractor
    from appliance.resultcache import ResultCache
    from inspectors.extract.base import Budget
    from inspectors.extract.cost import EXTRACTOR_COSTS, ExtractorCost

    ins = settings.inspection
    # content retention keeps every object's own extracted text: a cache hit has none, so no cache there
    cached = ins.result_cache_entries > 0 and not settings.retention.store
    cache = ResultCache(ins.result_cache_entries, ins.result_cache_mb << 20) if cached else None
    stage = InspectionStage(holder, max_text_bytes=ins.max_text_bytes, time_budget_s=ins.time_budget_s, cache=cache)
    stage.costs = {**EXTRACTOR_COSTS, **{fam: ExtractorCost(c.cost, c.max_bytes)
                                         for fam, c in ins.extractor_costs.items()}}
    if factory is not None:
        budget = Budget(max_depth=ins.max_depth, max_children=ins.max_children,
                        max_expanded_bytes=ins.max_expanded_bytes, max_seconds=ins.time_budget_s,
                        max_memory_bytes=ins.worker_memory_bytes, max_pixels=ins.max_pixels,
                        vosk_model_dir=ins.vosk_model_dir)
        stage.extractor = make_extractor(factory, budget, keywords=stage.policy_keywords)
        stage.cheap_extractor = make_cheap_extractor(factory, budget, stage.costs, keywords=stage.policy_keywords)
        stage.new_id = factory.new_id
    return stage


def inspector_errors(counters: Mapping[str, int]) -> int:
    """Inspector runs that raised, from an inspection stage's counters."""
    return sum(v for k, v in counters.items() if k.startswith("inspector_errors."))


class Pipeline:
    """A built pipeline: drive it over a source, then `finish`; `reload` on SIGHUP."""

    def __init__(self, settings: Settings, outputs: Outputs, holder: PolicyHolder | None, *, id_prefix: str,
                 seed: int, warm: bool, cheap_bytes: int, protocols: Iterable[AppProtocol] | None,
                 behaviour_suffix: str = "") -> None:
        self.outputs = outputs
        self.holder = holder
        self.counters: Counter[str] = Counter()
        """``inspected_in_worker`` and ``not_inspected`` (offload mode)."""
        self.inspection: InspectionStage | None = None
        """The inline stage, or (offload mode) the stage for cheap objects; None without policy."""
        self.cheap_bytes = cheap_bytes
        zone_of = None
        if holder is not None:
            zone_of = lambda flow: holder.current.zones.zones_for(flow)  # noqa: E731
        self.sensor = Sensor(settings, self._inline if outputs.offload is None else self._offload,
                             self._flow_end, on_event=self._app_event, zone_of=zone_of, id_prefix=id_prefix,
                             seed=seed, protocols=protocols)
        if holder is not None:
            extract = self.sensor.factory if outputs.offload is None else None  # offload: no extraction here
            self.inspection = make_inspection(settings, holder, extract)
            if warm:
                self.inspection.warm()  # compile the inspectors before the first object, not on it
        self.behaviour: BehaviourHook | None = None
        """Behaviour anomalies here (``behaviour.enabled`` with a zone policy; `tapsift read`)."""
        self.observer: Callable[[ContentObject, list[tuple[Alert, ContentObject]]], None] | None = None
        """Or: observations sent to the stage elsewhere (``outputs.observe``: live workers)."""
        if holder is not None and settings.behaviour.enabled and outputs.observe is not None:
            from appliance.behaviour import observer

            self.observer = observer(settings, outputs.observe)
        elif holder is not None and settings.behaviour.enabled and outputs.offload is None:
            from appliance.behaviour import BehaviourHook

            self.behaviour = BehaviourHook(settings, holder, outputs, suffix=behaviour_suffix)
            self.behaviour.stats = self.sensor.stats

    @property
    def stats(self) -> Stats:
        """The sensor's counters (with the inspector errors so far)."""
        st = self.sensor.stats
        if self.inspection is not None:
            st.inspector_errors = inspector_errors(self.inspection.counters)
        return st

    def drive(self, source: Any, **kw: Any) -> None:
        """`Sensor.drive`: the whole source, through the C fast path when it can."""
        self.sensor.drive(source, **kw)

    def finish(self) -> None:
        """End of input: objects still open come out (truncated); the behaviour state is saved."""
        self.sensor.finish()
        if self.behaviour is not None:
            self.behaviour.finish()
            self.behaviour = None

    def reload(self, settings: Settings | None = None) -> None:
        """SIGHUP: the zone policy (the old one stays if the new file is invalid) and, given
        new ``settings``, the application-layer limits for flows from now on."""
        if settings is not None:
            self.sensor.reload(settings)
            log.info("reload: application-layer limits taken (new flows use them)")
        if self.holder is not None:
            ok, msg = self.holder.reload()
            (log.info if ok else log.error)("policy reload: %s", msg)

    # -- callbacks --------------------------------------------------------------------------
    def _inline(self, obj: ContentObject) -> None:
        self.outputs.event(fileinfo_event(obj))
        res = self.inspection.inspect(obj, obj.ts_ns) if self.inspection is not None else None
        if res is not None:
            self._results(res)
        if obj.depth == 0:
            if self.behaviour is not None:
                self.behaviour.object(obj, res.alerts if res is not None else [])
            elif self.observer is not None:
                self.observer(obj, res.alerts if res is not None else [])
        if self.outputs.retain is not None:  # content retention: the object as inspected, its children
            self.outputs.retain.object(res.top or obj if res else obj, res.children if res else (),
                                       alerted=bool(res and res.alerts))

    def _offload(self, obj: ContentObject) -> None:
        out = self.outputs
        out.event(fileinfo_event(obj))
        if self.inspection is None:
            return
        cls, _family = self.inspection.cost_class(obj)
        if cls is None:
            return  # no rule selects it: nothing to inspect
        if cls == "cheap" and self.cheap_bytes > 0:
            res = self.inspection.inspect_cheap(obj, obj.ts_ns, self.cheap_bytes)
            if res is not None:
                self.counters["inspected_in_worker"] += 1
                self._results(res)
                if self.observer is not None and obj.depth == 0:
                    self.observer(obj, res.alerts)
                return
        if self.observer is not None and obj.depth == 0:
            self.observer(obj, [])  # its findings are the pool's; the volumes and destinations count
        reason = out.offload(obj, cls)  # type: ignore[misc]
        if reason is not None:
            from appliance.scheduler import not_inspected_record

            self.counters["not_inspected"] += 1
            out.event(not_inspected_record(obj, cls, reason))

    def _results(self, res: InspectionResult) -> None:
        st = self.sensor.stats
        out = self.outputs
        for child in res.children:
            st.children += 1
            out.event(fileinfo_event(child))
        if out.alert is not None:
            for alert, target in res.alerts:
                st.alerts += 1
                out.alert(alert, target)
        if out.suppressed is not None:
            for sup in res.suppressed:
                st.suppressed += 1
                out.suppressed(sup)

    def _flow_end(self, flow: Flow) -> None:
        for ev in flow_anomaly_events(flow):
            self.outputs.event(ev)
        if self.outputs.retain is not None:
            self.outputs.retain.flow(flow)

    def _app_event(self, ev: AppEvent) -> None:
        self.outputs.event(app_event(ev))
        ins = self.inspection
        if ins is not None and ev.event_type in _METADATA_EVENTS and ins.wants_metadata():
            from inspectors.domains import metadata_object  # a policy with a metadata inspector needs it

            obj = metadata_object(self.sensor.factory.new_id(), ev.ts_ns, ev.flow, ev.event_type, dict(ev.fields))
            self._results(ins.inspect_metadata(obj, ev.ts_ns))
        if self.outputs.retain is not None:
            self.outputs.retain.event(ev)


def build_pipeline(settings: Settings, outputs: Outputs, *, slot: int = 0, slots: int = 1,
                   workers: int = 1, warm: bool = False, protocols: Iterable[AppProtocol] | None = None) -> Pipeline:
    """The pipeline of capture process ``slot`` of ``workers`` (alert ids numbered among
    ``slots`` processes: the workers, plus the pool's when there is one). ``warm`` compiles the
    policy's inspectors now; ``protocols`` replaces the protocol table (tests, experiments).

    Raises `PolicyError` / `OSError` when the zone policy cannot be loaded.
    """
    holder = policy_holder(settings, slot, slots)
    return Pipeline(settings, outputs, holder, id_prefix="F" if workers == 1 else f"F{slot}w", seed=slot,
                    warm=warm, cheap_bytes=settings.live.worker_inspect_bytes, protocols=protocols,
                    behaviour_suffix=f"-w{slot}" if workers > 1 else "")

