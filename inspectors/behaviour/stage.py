"""The behaviour stage: sans-IO, on packet time. Objects in, alerts out at window ends.

    stage = BehaviourStage(BehaviourConfig.from_mapping(settings.behaviour.model_dump()),
                           rules=behaviour_configs(policy), categories=domain_to_category)
    stage.observe(obj, findings, alerts)     # every top-level object, after inspection
    alerts = stage.tick(now_ns)              # now and then, with the packet clock
    stage.close()                            # end of input: persist (open windows continue next run)

Observations are summed per internal host (and per zone and user-agent family) into windows of
``window_s`` in the site's time zone. A window closes once packet time passes its end by
``grace_s`` (objects of the next window that arrive meanwhile wait in a bounded queue). Closing
a window runs the per-window detectors (z-scores, novelty, periodicity, peer forest) and feeds
the baselines; closing a local day runs the sustained detector. Anomalies go through the policy's
behaviour profiles (`decide.py`) and come back from `tick` as `Alert`s. Windows without any
observation (the sensor was down, or between two captures of a series) are not learnt from.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import date

import numpy as np

from appliance.model import Alert, ContentObject, Finding, InspectorConfig
from inspectors.behaviour.baseline import quantise
from inspectors.behaviour.clock import NS, Clock
from inspectors.behaviour.config import BehaviourConfig
from inspectors.behaviour.decide import Decider, Raised, rule_from_config
from inspectors.behaviour.detectors import (
    REPORT_FLOORS,
    SUSTAIN_DAYS,
    Anomaly,
    DaySeries,
    Deviation,
    Track,
    novelty,
    regularity,
    sustained,
    zscore,
)
from inspectors.behaviour.entities import MAX_DEST_SERIES, Entity, ZoneState
from inspectors.behaviour.features import (
    FEATURES,
    I_ACTIVE_HOSTS,
    I_LARGEST_UP,
    I_NEW_DESTS,
    I_UP_BYTES,
    MAX_WINDOW_DESTS,
    MAX_WINDOW_LOOKUPS,
    SEASONAL,
    DomainCategories,
    Internal,
    Observation,
    Window,
    dest_hash,
    observation,
    site_of,
)
from inspectors.behaviour.forest import vector

log = logging.getLogger(__name__)

PENDING_MAX = 100_000
"""Observations of the next window held while the current one waits out its grace."""
_UNITS_S = np.array([FEATURES[i].unit for i in SEASONAL])
_ZEROS_S = np.zeros(len(SEASONAL), dtype=np.uint8)
_SUSTAIN_DEST_MIN = 64 * 1024
"""A destination gets its own daily series once it receives this much in a day."""
KNOWN_SITES_MAX = 4096
"""Sites remembered as normally periodic (`learn_destination`)."""
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _b62(n: int, width: int) -> str:
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_B62[r])
    return "".join(reversed(out)).rjust(width, "0")


class BehaviourStage:
    """Per-host, per-zone and per-user-agent behaviour baselines and anomaly detectors."""

    def __init__(self, config: BehaviourConfig | None = None, *, rules: Sequence[InspectorConfig] = (),
                 categories: Callable[[str], str] | Mapping[str, str] | None = None,
                 new_id: Callable[[], str] | None = None) -> None:
        self.cfg = cfg = config or BehaviourConfig()
        self.clock = Clock(cfg.timezone, cfg.window_s, cfg.holidays)
        self.internal = Internal(cfg.internal_cidrs, cfg.internal_zones)
        self.categories: Callable[[str], str] = (categories if callable(categories)
                                                 else DomainCategories(categories))
        self.decider = Decider([], new_id or self._next_id)
        self.configure(rules)
        self.hosts: dict[str, Entity] = {}
        """Host entities, least recently active first."""
        self.groups: dict[str, Entity] = {}
        """Zone and user-agent entities."""
        self.zones: dict[str, ZoneState] = {}
        self.counters: Counter[str] = Counter()
        self.win_start = 0
        self.win_end = 0
        self.win_obs = 0
        self.day: date | None = None
        self.day_windows: list[int] = []
        """Slots of today's observed windows (for the zeros of idle hosts at the day's end)."""
        self.day_masks: dict[str, int] = {}
        """Host → bit mask of today's windows it was active in."""
        self.workdays: list[int] = []
        """Starts of the last `SUSTAIN_DAYS` working days (the sustained detector's window)."""
        self.pending: list[Observation] = []
        self.queue: list[Alert] = []
        self.repeats: list[tuple[str, Alert]] = []
        """Suppressed repeats (first alert id, the repeat) since the last `take_repeats`."""
        self.raised: list[Raised] = []
        """Raised alerts with their anomalies, for the state file (drained by `_persist`)."""
        self.ids = 0
        self.anomaly_log: list[Anomaly] | None = None
        """Set to a list to collect every anomaly reported, alerted or not (tuning, benchmarks)."""
        self.last_persist_ns = 0
        self.known_periodic: dict[str, None] = {}
        """Sites whose periodic uploads an analyst judged normal (bounded, oldest first)."""
        self.state = None
        if cfg.state_path:
            from inspectors.behaviour.persist import load, open_state

            self.state = open_state(cfg.state_path)
            load(self)

    # -- configuration ------------------------------------------------------------------------
    def configure(self, rules: Sequence[InspectorConfig]) -> None:
        """(Re)load the policy's behaviour profiles (after a policy reload); baselines stay."""
        self.decider.configure([rule_from_config(c) for c in rules if c.inspector == "behaviour"])

    def _next_id(self) -> str:
        self.ids += 1
        return "B" + _b62(self.ids, 7)

    # -- input ----------------------------------------------------------------------------------
    def observe(self, obj: ContentObject, findings: Sequence[Finding] = (), alerts: Sequence[Alert] = ()) -> None:
        """One top-level content object with the findings and alerts it (and its children) raised."""
        try:
            o = observation(obj, findings, alerts, self.internal)
        except Exception:  # never let one odd object stop the stage
            self.counters["observe_errors"] += 1
            log.debug("behaviour: cannot observe %s", obj.id, exc_info=True)
            return
        if o is None:
            self.counters["not_internal"] += 1
            return
        self.observe_record(o)

    def observe_record(self, o: Observation) -> None:
        """An `Observation` made elsewhere (a capture worker): same as `observe`."""
        ts = o.ts_ns
        if not self.win_start:
            self._open(ts)
        if ts >= self.win_end:
            if ts < self.win_end + int(self.cfg.grace_s * NS) and len(self.pending) < PENDING_MAX:
                self.pending.append(o)
                return
            self._advance(ts)
        if ts < self.win_start:
            self.counters["late"] += 1
        self._add(o)

    def tick(self, now_ns: int) -> list[Alert]:
        """Close the windows that ended (packet time), apply analysts' verdicts, persist when due;
        returns the alerts raised since the last call."""
        if self.win_start and now_ns >= self.win_end + int(self.cfg.grace_s * NS):
            self._advance(now_ns)
        if self.state is not None:
            from inspectors.behaviour.persist import apply_pending, save

            apply_pending(self)
            if now_ns - self.last_persist_ns >= self.cfg.persist_interval_s * NS:
                save(self)
                self.last_persist_ns = now_ns
        out, self.queue = self.queue, []
        return out

    def close(self, *, final: bool = False) -> list[Alert]:
        """End of input. ``final``: also close the open window (no more captures follow);
        otherwise it is persisted and continued by the next run. Returns the last alerts."""
        if final and self.win_start:
            self._advance(self.win_end + int(self.cfg.grace_s * NS) + max((o.ts_ns for o in self.pending), default=0)
                          * 0 + self.clock.window_ns * (2 if self.pending else 1))
        if self.state is not None:
            from inspectors.behaviour.persist import save

            save(self)
            self.state.close()
            self.state = None
        out, self.queue = self.queue, []
        return out

    def take_repeats(self) -> list[tuple[str, Alert]]:
        """Repeats suppressed since the last call: (id of the alert they repeat, the repeat);
        count them on the first alert (``AlertWriter.suppressed_repeat(first_id)``)."""
        out, self.repeats = self.repeats, []
        return out

    # -- verdicts -------------------------------------------------------------------------------
    def record_verdict(self, anomaly_id: str, verdict: str, *, user: str = "", note: str = "",
                       ts: float | None = None) -> bool:
        """True/false positive for a raised anomaly (its alert id). A false positive also teaches
        the stage: the destination or periodic pair it was about becomes known for that host."""
        if self.state is None:
            return self._learn(anomaly_id, verdict)
        ok = self.state.record_verdict(anomaly_id, verdict, user=user, note=note, ts=ts)
        from inspectors.behaviour.persist import apply_pending

        apply_pending(self)
        return ok

    def rebaseline(self, subject: str, *, user: str = "", note: str = "", ts: float | None = None) -> bool:
        """Take ``subject``'s (``host:…``, ``zone:…``, ``ua:…``) recent behaviour as its normal."""
        if self.state is not None:
            self.state.request_rebaseline(subject, user=user, note=note, ts=ts)
            from inspectors.behaviour.persist import apply_pending

            apply_pending(self)
            return subject in self.hosts or subject in self.groups
        return self.apply_rebaseline(subject)

    def apply_rebaseline(self, subject: str) -> bool:
        e = self.hosts.get(subject) or self.groups.get(subject)
        if e is None:
            return False
        e.rebaseline()
        self.counters["rebaselines"] += 1
        return True

    def _learn(self, anomaly_id: str, verdict: str) -> bool:
        """Apply a verdict in memory (no state file): false positives teach the stage."""
        hit = next((r for r in self.raised_log if r.alert.id == anomaly_id), None)
        if hit is None:
            return False
        self.counters[f"verdict_{verdict}"] += 1
        self.verdicts[hit.anomaly.detector][verdict] += 1
        if verdict == "false_positive":
            self.learn_false_positive(hit.anomaly)
        return True

    def learn_false_positive(self, a: Anomaly) -> None:
        """What a false positive teaches: its destination becomes known for the host."""
        self.learn_destination(a.subject, a.destination, a.end_ns, a.detector)

    def learn_destination(self, subject: str, destination: str, end_ns: int, detector: str = "") -> None:
        """``destination`` becomes a known upload destination (and periodic pair) of host
        ``subject``; after a false beaconing alert, periodic uploads to its site (registrable
        domain) are normal for every host (a vendor's telemetry, judged once)."""
        if detector == "periodicity" and destination:
            kp = self.known_periodic
            kp[site_of(destination)] = None
            while len(kp) > KNOWN_SITES_MAX:
                del kp[next(iter(kp))]
        host = self.hosts.get(subject)
        if host is None or not destination:
            return
        day = int(end_ns // (86400 * NS)) & 0xFFFF
        host.dests.mark(dest_hash(destination), day, 3)  # type: ignore[union-attr]
        t = host.tracks.get(destination)
        if t is not None:
            t.known = True

    @property
    def raised_log(self) -> list[Raised]:
        """Raised alerts kept in memory when there is no state file (bounded)."""
        if not hasattr(self, "_raised_log"):
            self._raised_log: list[Raised] = []
        return self._raised_log

    @property
    def verdicts(self) -> dict[str, Counter[str]]:
        if not hasattr(self, "_verdicts"):
            self._verdicts: dict[str, Counter[str]] = {}
        return _DefaultCounters(self._verdicts)

    def detector_precision(self) -> dict[str, dict[str, float | int | None]]:
        """Per detector: alerts, true/false positives judged, precision (None until judged)."""
        if self.state is not None:
            return self.state.detector_precision()
        alerts = Counter(r.anomaly.detector for r in self.raised_log if not r.first_id)
        out: dict[str, dict[str, float | int | None]] = {}
        for d, n in sorted(alerts.items()):
            c = self.verdicts[d]
            tp, fp = c["true_positive"], c["false_positive"]
            out[d] = {"alerts": n, "true_positives": tp, "false_positives": fp,
                      "precision": tp / (tp + fp) if tp + fp else None}
        return out

    # -- memory ---------------------------------------------------------------------------------
    def memory(self) -> dict[str, int]:
        """Entities tracked and an upper estimate of their memory (bytes)."""
        mt = self.cfg.max_tracks
        hosts = sum(e.nbytes(mt) for e in self.hosts.values())
        groups = sum(e.nbytes(mt) for e in self.groups.values())
        zones = sum(z.nbytes for z in self.zones.values())
        return {"hosts": len(self.hosts), "groups": len(self.groups), "zones": len(self.zones),
                "host_bytes": hosts, "group_bytes": groups, "zone_bytes": zones,
                "bytes_per_host": hosts // max(1, len(self.hosts)), "total_bytes": hosts + groups + zones,
                "evicted": self.counters["hosts_evicted"]}

    # -- windows --------------------------------------------------------------------------------
    def _open(self, ts: int) -> None:
        self.win_start = self.clock.window_start(ts)
        self.win_end = self.win_start + self.clock.window_ns
        self.win_obs = 0
        _, d = self.clock.slot(self.win_start)
        if self.day is None:
            self.day = d
        elif d != self.day:
            self._close_day(d)

    def _advance(self, now: int) -> None:
        """Close windows until the open one is the one ``now`` falls in (minus the grace)."""
        grace = int(self.cfg.grace_s * NS)
        while self.win_end + grace <= now or len(self.pending) >= PENDING_MAX:
            self._close_window()
            nxt = self.win_end
            held, self.pending = self.pending, []
            if not held and now - nxt > self.clock.window_ns:
                self._open(now - grace if now - grace >= nxt else nxt)  # skip the empty stretch
            else:
                self._open(nxt)
            for o in held:
                if o.ts_ns >= self.win_end:
                    self.pending.append(o)
                else:
                    self._add(o)

    def _host(self, o: Observation) -> Entity:
        key = "host:" + o.host
        e = self.hosts.get(key)
        if e is None:
            cfg = self.cfg
            e = Entity(key, o.zone, o.ts_ns, weeks=cfg.history_weeks, max_dests=cfg.max_destinations)
            self.hosts[key] = e
            self._zone(o.zone).hosts += 1
            if len(self.hosts) > cfg.max_hosts:
                self._evict(next(iter(self.hosts)))
        if e.window is None:
            e.window = Window()
            del self.hosts[key]  # most recently active last
            self.hosts[key] = e
        return e

    def _evict(self, key: str) -> None:
        e = self.hosts.pop(key)
        z = self.zones.get(e.zone)
        if z is not None:
            z.hosts = max(0, z.hosts - 1)
        self.day_masks.pop(key, None)
        self.counters["hosts_evicted"] += 1
        self.evicted.append(key)

    @property
    def evicted(self) -> list[str]:
        """Keys evicted since the last save (their rows leave the state file)."""
        if not hasattr(self, "_evicted"):
            self._evicted: list[str] = []
        return self._evicted

    def _group(self, key: str, zone: str, ts: int) -> Entity:
        e = self.groups.get(key)
        if e is None:
            e = self.groups[key] = Entity(key, zone, ts, weeks=self.cfg.history_weeks)
        return e

    def _zone(self, zone: str) -> ZoneState:
        z = self.zones.get(zone)
        if z is None:
            cfg = self.cfg
            z = self.zones[zone] = ZoneState(forest_capacity=cfg.forest_capacity, trees=cfg.forest_trees,
                                             seed=cfg.seed)
        return z

    def _add(self, o: Observation) -> None:
        e = self._host(o)
        w = e.window
        seen = w.dests.get(o.dest)  # type: ignore[union-attr]
        if seen is None:
            # first object to this destination in this window: hash, category, known or new
            h = dest_hash(o.dest)
            cat = self.categories(o.dest)
            day = int(o.ts_ns // (86400 * NS)) & 0xFFFF
            seen = [h, self.cfg.risk(cat) >= 1.0, not cat, False]
            if not e.dests.mark(h, day, 1):  # type: ignore[union-attr]
                w.v[I_NEW_DESTS] += 1  # type: ignore[union-attr]
            if len(w.dests) < MAX_WINDOW_LOOKUPS:  # type: ignore[union-attr]
                w.dests[o.dest] = seen  # type: ignore[union-attr]
        if o.upload:
            if not seen[3]:
                seen[3] = True
                if e.dests.mark(seen[0], int(o.ts_ns // (86400 * NS)) & 0xFFFF, 3) != 3:  # type: ignore[union-attr]
                    self._zone(e.zone).count_uploader(seen[0])
                    if len(w.new_up) < MAX_WINDOW_DESTS:  # type: ignore[union-attr]
                        w.new_up[o.dest] = 0  # type: ignore[union-attr]
            self._track(e, o)
        w.add(o, seen[1], seen[2])  # type: ignore[union-attr]
        if self.cfg.user_agents and o.ua != "none":
            g = self.groups.get("ua:" + o.ua) or self._group("ua:" + o.ua, "any", o.ts_ns)
            if g.window is None:
                g.window = Window()
            g.window.add(o, seen[1], seen[2])
        if o.ts_ns > e.last_ns:
            e.last_ns = o.ts_ns
        self.win_obs += 1

    def _track(self, e: Entity, o: Observation) -> None:
        t = e.tracks.pop(o.dest, None)  # re-inserted last: least recently used first
        if t is None:
            t = Track()
            if len(e.tracks) >= self.cfg.max_tracks:
                e.tracks.pop(next(iter(e.tracks)))
        e.tracks[o.dest] = t
        t.add(o.ts_ns // NS, o.size)

    # -- closing a window ---------------------------------------------------------------------------
    def _close_window(self) -> None:
        start, end = self.win_start, self.win_end
        if not self.win_obs:
            self.counters["windows_unobserved"] += 1
            return
        self.counters["windows"] += 1
        slot, d = self.clock.slot(start)
        hour, weekend = slot % 24, not self.clock.working_day(d)
        widx = len(self.day_windows)
        self.day_windows.append(slot)
        anomalies: list[Anomaly] = []
        zone_windows: dict[str, Window] = {}
        forest_rows: dict[str, list[tuple[Entity, np.ndarray]]] = {}
        warm_ns = int(self.cfg.warmup_days * 86400 * NS)
        quiet = {z: self._peers_quiet(z, slot) for z in self.zones}
        for e in list(self.hosts.values())[::-1]:
            w = e.window
            if w is None:
                break  # most recently active last: the rest were idle this window
            e.window = None
            v = w.finish()
            zw = zone_windows.get(e.zone)
            if zw is None:
                zw = zone_windows[e.zone] = Window()
            zw.merge(w)
            warm = end - e.first_ns >= warm_ns
            if warm:
                anomalies.extend(self._score(e, slot, v, start, end, quiet.get(e.zone, False)))
            anomalies.extend(self._novelty(e, w, start, end, warm))
            anomalies.extend(self._periodic(e, end, warm))
            forest_rows.setdefault(e.zone, []).append((e, vector(v, hour, weekend)))
            self._day_add(e, w, v)
            if v[I_ACTIVE_HOSTS] or any(v):
                self.day_masks[e.key] = self.day_masks.get(e.key, 0) | (1 << widx)
                e.seasonal.push(slot, quantise(np.array([v[i] for i in SEASONAL]), _UNITS_S))
                e.windows += 1
        for zone, zw in zone_windows.items():
            g = self._group("zone:" + zone, zone, start)
            g.window = zw
        for g in self.groups.values():
            w = g.window
            g.window = None
            if w is None:
                g.seasonal.push(slot, _ZEROS_S)
                continue
            v = w.finish()
            if end - g.first_ns >= warm_ns:
                anomalies.extend(self._score(g, slot, w.without_top() if w.top else v, start, end, True))
            g.seasonal.push(slot, quantise(np.array([v[i] for i in SEASONAL]), _UNITS_S))
            g.windows += 1
        anomalies.extend(self._forest(forest_rows, start, end))
        self._decide(anomalies)

    def _peers_quiet(self, zone: str, slot: int) -> bool:
        """Hardly any of the zone's hosts are ever active at this hour of the day (on any day of
        the week: a Sunday afternoon is not off-hours for a zone that works afternoons)."""
        g = self.groups.get("zone:" + zone)
        z = self.zones.get(zone)
        if g is None or z is None or not z.hosts:
            return False
        st = g.seasonal.stats(slot, all_days=True)
        if st is None or st.n < self.cfg.min_samples:
            return False
        active = float(st.mean[SEASONAL.index(I_ACTIVE_HOSTS)])
        return active / z.hosts <= self.cfg.offhours_peer_share

    def _score(self, e: Entity, slot: int, v: list[float], start: int, end: int, peers_quiet: bool) -> list[Anomaly]:
        r = zscore(e.seasonal, slot, v, min_samples=self.cfg.min_samples, peers_quiet=peers_quiet,
                   level=e.active_level(int(start // (86400 * NS))), floor_scale=1.0 if e.is_host else 0.5)
        detector = "offhours" if r is not None and r.kind == "offhours" else "zscore"
        if r is None or r.score < REPORT_FLOORS[detector]:
            return []
        return [Anomaly(detector, r.kind, e.key, e.zone, start, end, r.score, r.deviations, upload=r.upload)]

    def _novelty(self, e: Entity, w: Window, start: int, end: int, warm: bool) -> list[Anomaly]:
        out = []
        z = self.zones.get(e.zone)
        hosts = max(1, z.hosts if z else 1)
        for d, objects in w.new_up.items():
            b = w.dest_bytes.get(d, 0.0)
            cat = self.categories(d)
            risk = self.cfg.risk(cat)
            h = dest_hash(d)
            others = max(0, (z.prevalence.get(h, 1) if z else 1) - 1)
            if not warm and (others or risk < 1.0):
                continue  # in warm-up only a destination nobody in the zone uses, of a risky kind
            share = others / hosts
            score = novelty(b, risk, share, common_share=self.cfg.common_share, objects=objects)
            if score < REPORT_FLOORS["novelty"]:
                continue
            detail = {"category": cat or "uncategorised", "peers": str(others), "objects": str(objects)}
            out.append(Anomaly("novelty", "new-destination", e.key, e.zone, start, end, score,
                               _bytes_dev("new_dest_up_bytes", b), destination=d, detail=detail))
        return out

    def _periodic(self, e: Entity, end: int, warm: bool) -> list[Anomaly]:
        out = []
        cfg = self.cfg
        z = self.zones.get(e.zone)
        for dest, t in e.tracks.items():
            if t.known or t.n == t.last_eval or t.n < cfg.min_events:
                continue
            if self.known_periodic and site_of(dest) in self.known_periodic:
                t.known = True
                continue
            t.last_eval = t.n
            times = t.recent()
            period, reg = regularity(times, min_events=cfg.min_events, min_period=cfg.min_period_s,
                                     max_period=cfg.max_period_s)
            if reg < REPORT_FLOORS["periodicity"]:
                continue
            others = max(0, (z.prevalence.get(dest_hash(dest), 1) if z else 1) - 1)
            if not warm or (z is not None and others / max(1, z.hosts) >= cfg.common_share):
                t.known = True  # learnt: periodic since before we watched, or common in the zone
                continue
            detail = {"period": f"{period:.0f}s", "regularity": f"{reg:.2f}", "events": str(t.n),
                      "mean_upload": f"{t.mean_size:.0f}B", "peers": str(others)}
            out.append(Anomaly("periodicity", "beaconing", e.key, e.zone, times[0] * NS, max(end, times[-1] * NS),
                               reg, (), destination=dest, detail=detail))
        return out

    def _forest(self, rows: dict[str, list[tuple[Entity, np.ndarray]]], start: int, end: int) -> list[Anomaly]:
        out = []
        cfg = self.cfg
        for zone, items in rows.items():
            z = self._zone(zone)
            f = z.forest
            if f.model is not None:
                scores = f.score(np.stack([v for _, v in items]))
                warm_ns = int(cfg.warmup_days * 86400 * NS)
                for (e, v), s in zip(items, scores, strict=True):
                    if s >= REPORT_FLOORS["iforest"] and end - e.first_ns >= warm_ns:
                        out.append(Anomaly("iforest", "peer-outlier", e.key, e.zone, start, end, float(s),
                                           f.explain(v)))
            for _, v in items:
                f.add(v)
            if (f.model is None or end - f.trained_ns >= cfg.retrain_interval_s * NS) and f.train(
                    end, cfg.forest_min_samples):
                self.counters["forest_trainings"] += 1
        return out

    def _decide(self, anomalies: list[Anomaly]) -> None:
        if not anomalies:
            return
        self.counters["anomalies"] += len(anomalies)
        if self.anomaly_log is not None:
            self.anomaly_log.extend(anomalies)
        for r in self.decider.decide(anomalies):
            if r.first_id:
                self.counters["suppressed"] += 1
                if len(self.repeats) < PENDING_MAX:
                    self.repeats.append((r.first_id, r.alert))
            else:
                self.queue.append(r.alert)
                self.counters["alerts"] += 1
                a = r.anomaly
                if a.detector == "sustained":
                    host = self.hosts.get(a.subject)
                    if host is not None:
                        host.hold = SUSTAIN_DAYS  # its sums hold the days alerted on
                elif a.detector == "periodicity":
                    host = self.hosts.get(a.subject)
                    t = host.tracks.get(a.destination) if host else None
                    if t is not None:
                        t.known = True  # one alert per new periodic pair
            self.raised.append(r)
            if self.state is None:
                log_ = self.raised_log
                log_.append(r)
                if len(log_) > 100_000:
                    del log_[: len(log_) // 2]

    # -- days -------------------------------------------------------------------------------
    def _day_add(self, e: Entity, w: Window, v: list[float]) -> None:
        if e.is_host:
            e.add_day(v[I_UP_BYTES], v[I_LARGEST_UP], w.dest_bytes, w.dest_max)

    def _close_day(self, new_day: date) -> None:
        d = self.day
        self.day = new_day
        if d is None or not self.day_windows:
            self.day_windows, self.day_masks = [], {}
            return
        working = self.clock.working_day(d)
        start = self.clock.day_start(d)
        end = self.clock.day_start(new_day) if new_day > d else start + 86400 * NS
        if working:
            self.workdays = [*self.workdays[-(SUSTAIN_DAYS - 1):], start]
        anomalies = []
        slots = self.day_windows
        warm_ns = int(self.cfg.warmup_days * 86400 * NS)
        for e in self.hosts.values():
            mask = self.day_masks.get(e.key, 0)
            if not mask and (working or e.first_ns > start):
                continue  # absent on a working day (leave, sick day): not learnt as "normal"
            for i, slot in enumerate(slots):
                if not mask >> i & 1:
                    e.seasonal.push(slot, _ZEROS_S)
            if working:
                a = self._sustained(e, self.workdays[0], end, end - e.first_ns >= warm_ns)
                if a is not None:
                    anomalies.append(a)
        self.day_windows, self.day_masks = [], {}
        self._decide(anomalies)
        self._expire_idle(end)

    def _sustained(self, e: Entity, start: int, end: int, warm: bool) -> Anomaly | None:
        """Record a working day's upload bytes (with the weekend's before it) and score the last
        `SUSTAIN_DAYS` working days, in total and per destination."""
        total = e.total_days
        if total is None:
            return None
        day_total, today = e.trimmed_day()
        total.push(day_total)
        for dest, b in today.items():
            if dest not in e.dest_days and b >= _SUSTAIN_DEST_MIN:
                if len(e.dest_days) >= MAX_DEST_SERIES:
                    drop = min(e.dest_days, key=lambda k: float(e.dest_days[k].values.sum()))
                    del e.dest_days[drop]
                e.dest_days[dest] = DaySeries(max(0, total.n - 1))  # before today: below the minimum
        best: tuple[float, str, float, float] | None = None
        for dest, series in (("", total), *e.dest_days.items()):
            if dest:
                series.push(today.get(dest, 0.0))
            r = sustained(series) if warm else None
            if r is not None and (best is None or r[0] > best[0]):
                best = (r[0], dest, r[1], r[2])
        e.day_total, e.day_largest, e.day_dests = 0.0, 0.0, {}
        if e.hold:
            e.hold -= 1
            return None
        if best is None or best[0] < REPORT_FLOORS["sustained"]:
            return None
        z, dest, now, usual = best
        feature = "dest_up_bytes_3_days" if dest else "up_bytes_3_days"
        return Anomaly("sustained", "sustained", e.key, e.zone, start, end, z,
                       (Deviation(feature, now, usual, z),), destination=dest,
                       detail={"days": str(SUSTAIN_DAYS)})

    def _expire_idle(self, now: int) -> None:
        idle = int(self.cfg.idle_days * 86400 * NS)
        for key in [k for k, e in self.hosts.items() if now - e.last_ns > idle]:
            self._evict(key)
            self.counters["hosts_evicted"] -= 1
            self.counters["hosts_expired"] += 1


def _bytes_dev(feature: str, b: float) -> tuple:
    from inspectors.behaviour.detectors import Deviation

    return (Deviation(feature, b, 0.0, 0.0),)


class _DefaultCounters(dict):
    """A view that creates a Counter for a detector on first access."""

    def __init__(self, backing: dict[str, Counter[str]]) -> None:
        super().__init__()
        self.backing = backing

    def __getitem__(self, key: str) -> Counter[str]:
        c = self.backing.get(key)
        if c is None:
            c = self.backing[key] = Counter()
        return c

