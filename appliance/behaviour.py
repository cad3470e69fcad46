"""The behaviour stage in a pipeline: objects in, anomaly alerts out through the same outputs.

`BehaviourHook` is what `appliance.pipeline` holds when ``behaviour.enabled`` and a zone policy
are set. Every top-level object, after inspection, is observed with the findings and alerts it
raised; the stage's clock is packet time (the objects' own timestamps), ticked once a minute of
packet time; its alerts go to ``Outputs.alert`` with no object (store, EVE, SIEM as any alert)
and its suppressed repeats to ``Outputs.suppressed``. `finish` persists the state file: the
window open at the end of one `tapsift read` is completed by the next run over the following
capture.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.model import Alert, ContentObject, Finding
from appliance.settings import Settings

if TYPE_CHECKING:
    from inspectors.behaviour.stage import BehaviourStage
    from policies.reload import PolicyHolder

log = logging.getLogger("tapsift.behaviour")

TICK_NS = 60 * 1_000_000_000
"""Packet time between two ticks of the stage (windows close at most this late)."""


def state_file(settings: Settings, suffix: str = "") -> str:
    """``behaviour.state_path``; else ``behaviour.db`` next to a SQLite alert store; else in
    ``output.state_dir``. ``suffix`` (``-w2``) names one capture worker's file when several
    workers each follow the share of the traffic they see."""
    b = settings.behaviour
    path = b.state_path
    if not path:
        store = settings.output.store
        if store and "://" not in store.removeprefix("sqlite:///"):
            local = store.removeprefix("sqlite:///")
            path = str(Path(local).resolve().parent / "behaviour.db")
        else:
            path = b.state_file(settings.output.state_dir)
    if suffix:
        p = Path(path)
        path = str(p.with_name(p.stem + suffix + p.suffix))
    return path


def observer(settings: Settings, send: Callable[[tuple[Any, ...]], None]
             ) -> Callable[[ContentObject, list[tuple[Alert, ContentObject]]], None]:
    """For a live capture worker: objects (with their alerts) → observations sent to the
    supervisor, whose one stage sees every worker's share of each host."""
    from inspectors.behaviour.features import Internal, observation

    b = settings.behaviour
    internal = Internal(b.internal_cidrs, b.internal_zones)

    def observe(obj: ContentObject, alerts: list[tuple[Alert, ContentObject]]) -> None:
        als = [a for a, _ in alerts]
        try:
            o = observation(obj, [f for a in als for f in a.findings], als, internal)
        except Exception:  # one odd object never stops the worker
            log.debug("behaviour: cannot observe %s", obj.id, exc_info=True)
            return
        if o is not None:
            send(tuple(o))

    return observe


class BehaviourHook:
    """One pipeline's behaviour stage (see the module doc)."""

    def __init__(self, settings: Settings, holder: PolicyHolder, outputs: Any, *, persist: bool = True,
                 suffix: str = "") -> None:
        from inspectors.behaviour.config import BehaviourConfig
        from inspectors.behaviour.stage import BehaviourStage

        cfg = settings.behaviour.model_dump()
        cfg["state_path"] = state_file(settings, suffix) if persist else None
        self.outputs = outputs
        self.holder = holder
        self.generation = -1
        self.stage: BehaviourStage = BehaviourStage(BehaviourConfig.from_mapping(cfg))
        self._configure()
        self.next_tick = 0
        self.last_ns = 0
        self.alerts = 0
        self.stats: Any = None
        """The sensor's counters (`appliance.sensor.Stats`): behaviour alerts count as alerts."""

    def _configure(self) -> None:
        """The current policy's behaviour profiles and destination categories (after a reload too)."""
        from inspectors.behaviour.features import DomainCategories
        from policies.behaviour import behaviour_configs, destination_categories

        active = self.holder.current
        if active.generation == self.generation:
            return
        self.generation = active.generation
        self.stage.configure(behaviour_configs(active.policy))
        self.stage.categories = DomainCategories(destination_categories(active.policy))

    def object(self, obj: ContentObject, alerts: list[tuple[Alert, ContentObject]]) -> None:
        """A top-level object after inspection, with the alerts it and its children raised."""
        als = [a for a, _ in alerts]
        findings: list[Finding] = [f for a in als for f in a.findings]
        self.stage.observe(obj, findings, als)
        ts = obj.ts_ns
        if ts > self.last_ns:
            self.last_ns = ts
        if ts >= self.next_tick:
            self.next_tick = ts + TICK_NS
            self._configure()
            self._emit(self.stage.tick(ts))

    def record(self, fields: tuple[Any, ...] | list[Any]) -> None:
        """An observation made by a capture worker (`observer`); malformed ones are counted."""
        from inspectors.behaviour.features import Observation

        try:
            o = Observation(*fields)
            ts = int(o.ts_ns)
            self.stage.observe_record(o)
        except Exception:  # a malformed record never stops the supervisor's writer thread
            self.stage.counters["bad_observations"] += 1
            return
        if ts > self.last_ns:
            self.last_ns = ts
        if ts >= self.next_tick:
            self.next_tick = ts + TICK_NS
            self._configure()
            self._emit(self.stage.tick(ts))

    def _emit(self, alerts: list[Alert]) -> None:
        out = self.outputs
        if out.alert is not None:
            for a in alerts:
                self.alerts += 1
                if self.stats is not None:
                    self.stats.alerts += 1
                out.alert(a, None)
        repeats = self.stage.take_repeats()
        if out.suppressed is not None and repeats:
            from policies.engine import Suppressed

            for first_id, a in repeats:
                if self.stats is not None:
                    self.stats.suppressed += 1
                out.suppressed(Suppressed(a, first_id, 1, a.subject.partition(":")[2]))

    def finish(self) -> None:
        """End of input: close what packet time closed, persist (the open window carries over)."""
        if self.last_ns:
            self._emit(self.stage.tick(self.last_ns))
        self._emit(self.stage.close())
        c = self.stage.counters
        log.info("behaviour: %d alerts, %d anomalies, %d hosts followed", self.alerts, c["anomalies"],
                 len(self.stage.hosts))
