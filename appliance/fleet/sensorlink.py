"""A sensor's link to the fleet: its bus outputs, heartbeats into the registry, pushed policies.

`attach_supervisor` (``tapsift run``) and `ReadLink` (``tapsift read``) wire a sensor whose
settings name ``output.bus``:

- EVE events go to the events stream (`EveTee`; alerts go with the alert writer's outputs,
  `appliance.bus.publish.alert_stream`), through disk spools (Redis may be away);
- `Heartbeat` publishes, every ``heartbeat_s``, the sensor's name, role, policy version,
  software and counters (packets, bytes, kernel drops, flows, objects, alerts, queue depths,
  spool and job counters, and rates over the last interval) on the heartbeat stream; the
  ingester writes them into the sensor registry (the console's sensors page). Heartbeats are
  not spooled: a lost one is superseded by the next;
- a live sensor follows the policy stream (`PolicyFollower`) and reloads as on SIGHUP;
- with ``inspection.remote.enabled``, expensive objects become jobs (`RemoteOffload`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from appliance import __version__
from appliance.bus.base import EVE_FIELD, SENSOR_FIELD, Bus, BusError, open_bus
from appliance.bus.publish import EveTee, StreamOutput, event_stream

if TYPE_CHECKING:
    from appliance.fleet.policy import PolicyFollower
    from appliance.pipeline import Outputs, Pipeline
    from appliance.settings import BusSettings, Settings

__all__ = ["HEARTBEAT_MAXLEN", "Heartbeat", "ReadLink", "attach_supervisor", "flat_counters"]

log = logging.getLogger("tapsift.fleet")

HEARTBEAT_MAXLEN = 100_000
_RATES = {"packets": "packets_per_s", "bytes": "mbit_per_s", "alerts": "alerts_per_s", "drops": "drops_per_s",
          "objects": "objects_per_s"}


def flat_counters(snap: dict[str, Any]) -> dict[str, float]:
    """The numbers of a supervisor snapshot (or any nested dict) the registry keeps, flat."""
    out: dict[str, float] = {}
    for k in ("packets", "bytes", "flows", "objects", "alerts", "not_inspected", "inspected_in_worker",
              "inspector_errors", "events_dropped", "worker_restarts", "uptime", "reloads"):
        v = snap.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[k] = v
    cap = snap.get("capture")
    if isinstance(cap, dict):
        out["drops"] = cap.get("kernel_drops", 0)
    for q, v in (snap.get("queues") or {}).items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[f"queue.{q}"] = v
    return out


class Heartbeat:
    """Publishes a process's state on the heartbeat stream (module doc); `beat` once, `start` a thread."""

    def __init__(self, bus: BusSettings, name: str, role: str, counters: Callable[[], dict[str, float]],
                 policy_version: Callable[[], str] = lambda: "", connect: Callable[[], Bus] | None = None) -> None:
        self.settings = bus
        self.name = name
        self.role = role
        self.counters = counters
        self.policy_version = policy_version
        self.connect = connect or (lambda: open_bus(bus))
        self.sent = 0
        self.failed = 0
        self._bus: Bus | None = None
        self._prev: tuple[float, dict[str, float]] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def _with_rates(self, now: float, c: dict[str, float]) -> dict[str, float]:
        out = dict(c)
        if self._prev is not None:
            t0, c0 = self._prev
            dt = now - t0
            if dt > 0:
                for k, name in _RATES.items():
                    if k in c and k in c0:
                        d = max(0.0, c[k] - c0[k])
                        out[name] = round(d * 8 / 1e6 / dt if k == "bytes" else d / dt, 3)
        self._prev = (now, c)
        return out

    def message(self) -> dict[str, Any]:
        now = time.time()
        return {"event_type": "heartbeat", "sensor": self.name, "role": self.role, "ts": now,
                "software": f"tapsift/{__version__} {self.role}", "policy_version": self.policy_version(),
                "counters": self._with_rates(now, self.counters())}

    def beat(self) -> bool:
        """Publish one heartbeat now; False (counted) when the bus is away."""
        try:
            msg = self.message()
            if self._bus is None:
                self._bus = self.connect()
            self._bus.publish(self.settings.sensors_key, [{
                EVE_FIELD: json.dumps(msg, separators=(",", ":")), SENSOR_FIELD: self.name}], HEARTBEAT_MAXLEN)
        except BusError as exc:
            self.failed += 1
            if self.failed == 1 or self.failed % 100 == 0:
                log.warning("heartbeat of %s not sent (%d so far): %s", self.name, self.failed, exc)
            self._close_bus()
            return False
        except Exception:  # a counter callback failing must not stop the heartbeats
            self.failed += 1
            log.exception("heartbeat of %s failed", self.name)
            return False
        self.sent += 1
        return True

    def _close_bus(self) -> None:
        if self._bus is not None:
            self._bus.close()
            self._bus = None

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_s):
            self.beat()

    def start(self) -> None:
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="tapsift-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, final: bool = True) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if final:
            self.beat()
        self._close_bus()


def _output_counters(outputs: list[StreamOutput]) -> dict[str, float]:
    out: dict[str, float] = {}
    for o in outputs:
        kind = o.stream.rsplit(":", 1)[-1]
        out[f"bus.{kind}.pending"] = len(o.spool)
        out[f"bus.{kind}.dropped"] = o.spool.dropped_full
        out[f"bus.{kind}.held_back"] = o.held_back
        out[f"bus.{kind}.sent"] = o.delivered
    return out


def _bus_outputs(alerts: Any, tee: Any) -> list[StreamOutput]:
    found = [o for o in getattr(alerts, "outputs", []) if isinstance(o, StreamOutput)]
    if isinstance(tee, EveTee):
        found.append(tee.events)
    return found


# --------------------------------------------------------------------------- tapsift run


class _SupervisorLink:
    """What `attach_supervisor` starts after the privileges are dropped, and stops at shutdown."""

    def __init__(self, sup: Any) -> None:
        self.sup = sup
        s: Settings = sup.settings
        assert s.output.bus is not None
        self.follower: PolicyFollower | None = None
        if s.output.bus.follow_policy and s.inspection.policy:
            from appliance.fleet.policy import PolicyFollower

            self.follower = PolicyFollower(lambda: open_bus(s.output.bus), s.output.bus, s.inspection.policy,
                                           self._reload, model_dir=s.inspection.model_dir)
        self.heartbeat = Heartbeat(s.output.bus, s.sensor.name, "sensor", self.counters, self.policy_version)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _reload(self) -> None:
        self.sup._hup = True  # the supervisor's main loop reloads as on SIGHUP

    def policy_version(self) -> str:
        return self.follower.version if self.follower is not None else ""

    def counters(self) -> dict[str, float]:
        c = flat_counters(self.sup.snapshot())
        c.update(_output_counters(_bus_outputs(self.sup.alerts, self.sup.eve)))
        if self.follower is not None:
            c.update({f"policy.{k}": v for k, v in self.follower.counters.items()})
        return c

    def start(self) -> None:
        self.heartbeat.start()
        if self.follower is not None:
            self._thread = threading.Thread(target=self.follower.run, args=(self._stop,), name="tapsift-policy",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.heartbeat.stop()


def attach_supervisor(sup: Any) -> _SupervisorLink:
    """Wire a `Supervisor` whose settings name ``output.bus`` (after its EVE writer is open): EVE
    events to the bus; returns the link to `start` once privileges are dropped and `stop` at the end."""
    s: Settings = sup.settings
    if s.output.bus is not None and s.output.bus.events:
        sup.eve = EveTee(sup.eve, event_stream(s.output, s.sensor.name))
    return _SupervisorLink(sup)


# --------------------------------------------------------------------------- tapsift read


class ReadLink:
    """The fleet side of one ``tapsift read``: remote inspection, EVE events to the bus, heartbeats.

    Made before the pipeline (it sets ``outputs.offload`` when ``inspection.remote.enabled``);
    `bind` the pipeline, `tee` the EVE writer, `start`; `close` at the end."""

    def __init__(self, settings: Settings, outputs: Outputs) -> None:
        assert settings.output.bus is not None
        self.settings = settings
        self.outputs = outputs
        self.pipeline: Pipeline | None = None
        self.offload: Any = None
        self._local_stage: Any = None
        if settings.inspection.remote.enabled and settings.inspection.policy:
            from appliance.fleet.remote import RemoteOffload

            self.offload = RemoteOffload(settings, lambda ev: outputs.event(ev), self._inspect_here)
            outputs.offload = self._offer
        self.eve: Any = None
        self.writer: Any = None
        self.heartbeat = Heartbeat(settings.output.bus, settings.sensor.name, "sensor", self.counters,
                                   self._policy_version)

    def _offer(self, obj: Any, cls: str) -> str | None:
        """The pipeline's ``Outputs.offload`` (given the object's cost class): every object goes to
        the remote workers; `RemoteOffload` falls back to inspecting it here or writes its record."""
        return None if self.offload(obj) else "queue_full"

    def _policy_version(self) -> str:
        if self.pipeline is not None and self.pipeline.holder is not None:
            return str(self.pipeline.holder.current.policy.version)
        return ""

    def bind(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def _inspect_here(self, obj: Any) -> bool:
        """The local fallback of `RemoteOffload`: inspect inline, as ``tapsift read`` does without a bus."""
        p = self.pipeline
        if p is None or p.holder is None:
            return False
        if self._local_stage is None:
            from appliance.pipeline import make_inspection

            self._local_stage = make_inspection(self.settings, p.holder, p.sensor.factory)
        p._results(self._local_stage.inspect(obj, obj.ts_ns))  # the pipeline's own delivery of a result
        return True

    def tee(self, eve: Any) -> Any:
        """*eve* with the events also going to the bus (``output.bus.events``)."""
        bus = self.settings.output.bus
        assert bus is not None
        if bus.events:
            eve = EveTee(eve, event_stream(self.settings.output, self.settings.sensor.name))
        self.eve = eve
        return eve

    def counters(self) -> dict[str, float]:
        c: dict[str, float] = {}
        p = self.pipeline
        if p is not None:
            st = p.sensor.stats
            c.update(packets=st.packets, bytes=st.bytes, objects=st.objects, alerts=st.alerts,
                     not_inspected=p.counters["not_inspected"])
        c.update(_output_counters(_bus_outputs(self.writer, self.eve)))
        if self.offload is not None:
            c.update({f"jobs.{k}": v for k, v in self.offload.counters.items()})
        return c

    def start(self, writer: Any) -> None:
        self.writer = writer
        self.heartbeat.start()

    def close(self) -> None:
        """The last heartbeat (with the final counters); the job queue's connection."""
        self.heartbeat.stop()
        if self.offload is not None:
            self.offload.close()
