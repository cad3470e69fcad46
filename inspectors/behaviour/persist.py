"""Saving and loading the stage to and from its state file, and applying analysts' verdicts.

The stage calls these; nothing else needs them. What is kept: every entity (baselines, daily
upload sums, known destinations, periodic tracks, and its open window, so that a window cut by
the end of one capture is completed by the next), every zone (peer-forest ring, destination
prevalence), and the stage's clock (open window, pending observations of the next one, the day
being summed). A blob that does not decode drops that entity (counted as ``state_corrupt``); a
file written with another layout (window length, weeks, features) is not loaded (counted as
``state_layout_changed``) and is overwritten by the next save.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np

from inspectors.behaviour.baseline import DAYS
from inspectors.behaviour.decide import Raised
from inspectors.behaviour.detectors import TRACK_EVENTS, DaySeries, Track
from inspectors.behaviour.entities import DAY_DESTS, MAX_DEST_SERIES, DestTable, Entity, ZoneState
from inspectors.behaviour.features import FEATURES, MAX_WINDOW_DESTS, SEASONAL, Observation, Window
from inspectors.behaviour.forest import DIM
from inspectors.behaviour.stage import KNOWN_SITES_MAX
from inspectors.behaviour.state import BehaviourState, StateError, pack, unpack

if TYPE_CHECKING:
    from inspectors.behaviour.stage import BehaviourStage

log = logging.getLogger(__name__)


def open_state(path: str) -> BehaviourState:
    return BehaviourState(path)


def _layout(stage: BehaviourStage) -> dict[str, Any]:
    return {"window_s": stage.cfg.window_s, "weeks": stage.cfg.history_weeks,
            "features": [f.name for f in FEATURES], "seasonal": list(SEASONAL), "days": DAYS, "forest_dim": DIM}


# --------------------------------------------------------------------------- entities


def _window_header(w: Window | None) -> dict[str, Any] | None:
    if w is None:
        return None
    return {"v": w.v, "dest_bytes": w.dest_bytes, "dest_max": w.dest_max, "minutes": sorted(w.minutes),
            "up_minutes": sorted(w.up_minutes), "new_up": w.new_up, "top": w.top}


def _window_from(h: dict[str, Any] | None) -> Window | None:
    """An open window back (the per-window look-up cache is not kept: it is rebuilt on use)."""
    if not h:
        return None
    w = Window()
    v = [float(x) for x in h["v"]]
    if len(v) != len(w.v):
        raise StateError("window vector length")
    w.v = v
    dests = dict(h["dest_bytes"])
    if len(dests) > MAX_WINDOW_DESTS + 1:
        raise StateError("window destinations")
    w.dest_bytes = {str(k): float(b) for k, b in dests.items()}
    w.dest_max = {str(k): float(b) for k, b in dict(h.get("dest_max") or {}).items() if k in w.dest_bytes}
    w.minutes = {int(m) for m in h["minutes"][:1440]}
    w.up_minutes = {int(m) for m in h["up_minutes"][:1440]}
    w.new_up = {str(d): int(n) for d, n in list(dict(h.get("new_up") or {}).items())[:MAX_WINDOW_DESTS]}
    top = h.get("top")
    if top is not None:
        if len(top) != len(w.v):
            raise StateError("window top length")
        w.top = [float(x) for x in top]
    return w


def entity_blob(e: Entity) -> bytes:
    """One entity as a blob (`pack`): its baselines, day sums, destinations, tracks and open window."""
    header: dict[str, Any] = {"window": _window_header(e.window), "level_day": e.level_day}
    arrays: dict[str, np.ndarray] = {"ring": e.seasonal.ring, "count": e.seasonal.count}
    if e.level is not None:
        arrays |= {"level_med": e.level[0], "level_scale": e.level[1], "level_n": np.asarray(e.level[2], np.float64)}
    if e.is_host:
        items = e.dests.items()  # type: ignore[union-attr]
        header |= {
            "total_n": e.total_days.n,  # type: ignore[union-attr]
            "dest_days": {d: s.n for d, s in e.dest_days.items()},
            "day": [e.day_total, e.day_largest, e.hold], "day_dests": e.day_dests,
            "tracks": [[d, t.n, t.first_s, t.bytes, t.known, t.last_eval, list(t.times)] for d, t in e.tracks.items()],
        }
        arrays |= {
            "total": e.total_days.values,  # type: ignore[union-attr]
            "dest_k": np.array([k for k, _, _ in items], dtype=np.uint64),
            "dest_d": np.array([d for _, d, _ in items], dtype=np.uint16),
            "dest_f": np.array([f for _, _, f in items], dtype=np.uint8),
        }
        for i, s in enumerate(e.dest_days.values()):
            arrays[f"dd{i}"] = s.values
    return pack(header, arrays)


def entity_from(stage: BehaviourStage, key: str, zone: str, first: int, last: int, windows: int,
                blob: bytes) -> Entity:
    """The inverse of `entity_blob`; raises `StateError` (or KeyError/TypeError/ValueError) on a bad blob."""
    header, a = unpack(blob)
    cfg = stage.cfg
    e = Entity(key, zone, int(first), weeks=cfg.history_weeks, max_dests=cfg.max_destinations)
    e.last_ns, e.windows = int(last), int(windows)
    if a["ring"].shape != e.seasonal.ring.shape or a["count"].shape != e.seasonal.count.shape:
        raise StateError("baseline shape")
    e.seasonal.ring, e.seasonal.count = a["ring"], a["count"].astype(np.uint16)
    e.window = _window_from(header.get("window"))
    if "level_med" in a:
        lv = (a["level_med"], a["level_scale"], a["level_n"])
        if any(x.shape != (len(SEASONAL),) for x in lv):
            raise StateError("level shape")
        e.level, e.level_day = lv, int(header.get("level_day", -1))
    if not e.is_host:
        return e
    if a["total"].shape != (DAYS,):
        raise StateError("day series shape")
    e.total_days = DaySeries(int(header["total_n"]))
    e.total_days.values = a["total"].astype(np.float32)
    for i, (dest, n) in enumerate(list(dict(header.get("dest_days") or {}).items())[:MAX_DEST_SERIES]):
        vals = a.get(f"dd{i}")
        if vals is None or vals.shape != (DAYS,):
            raise StateError("destination day series")
        s = DaySeries(int(n))
        s.values = vals.astype(np.float32)
        e.dest_days[str(dest)] = s
    total, largest, hold = header["day"]
    e.day_total, e.day_largest, e.hold = float(total), float(largest), int(hold)
    e.day_dests = {str(k): [float(v[0]), float(v[1])]
                   for k, v in list(dict(header.get("day_dests") or {}).items())[:DAY_DESTS]}
    k, d, f = a["dest_k"], a["dest_d"], a["dest_f"]
    if not (k.shape == d.shape == f.shape) or k.ndim != 1:
        raise StateError("destination table")
    e.dests = DestTable.from_items(cfg.max_destinations, list(zip(k.tolist(), d.tolist(), f.tolist(), strict=True)))
    for dest, n, first_s, nbytes, known, last_eval, times in header.get("tracks", [])[-cfg.max_tracks:]:
        t = Track()
        if len(times) != TRACK_EVENTS:
            raise StateError("track length")
        t.n, t.first_s, t.bytes = int(n), int(first_s), int(nbytes)
        t.known, t.last_eval = bool(known), int(last_eval)
        t.times[:] = type(t.times)("q", (int(x) for x in times))
        e.tracks[str(dest)] = t
    return e


def zone_blob(z: ZoneState) -> bytes:
    keys = np.fromiter(z.prevalence.keys(), dtype=np.uint64, count=len(z.prevalence))
    counts = np.fromiter(z.prevalence.values(), dtype=np.uint32, count=len(z.prevalence))
    f = z.forest
    return pack({"n": f.n, "trained_ns": f.trained_ns},
                {"ring": f.ring, "trained": f.trained, "prev_k": keys, "prev_c": counts})


def zone_from(stage: BehaviourStage, hosts: int, trained_ns: int, blob: bytes) -> ZoneState:
    header, a = unpack(blob)
    cfg = stage.cfg
    z = ZoneState(forest_capacity=cfg.forest_capacity, trees=cfg.forest_trees, seed=cfg.seed)
    z.hosts = int(hosts)
    if a["ring"].shape == z.forest.ring.shape:
        z.forest.ring = a["ring"]
        z.forest.n = int(header["n"])
    if len(a["prev_k"]) != len(a["prev_c"]):
        raise StateError("prevalence")
    z.prevalence = {int(k): int(c) for k, c in zip(a["prev_k"].tolist(), a["prev_c"].tolist(), strict=True)}
    trained = a.get("trained")
    if trained_ns and trained is not None and len(trained):
        z.forest.train(int(trained_ns), 1, trained.astype(np.float32))  # same windows, same seed: same forest
    return z


# --------------------------------------------------------------------------- stage


def save(stage: BehaviourStage) -> None:
    """Write everything (one transaction)."""
    st = stage.state
    if st is None:
        return
    rows = [(e.key, e.key.partition(":")[0], e.zone, e.first_ns, e.last_ns, e.windows, entity_blob(e))
            for e in (*stage.hosts.values(), *stage.groups.values())]
    zones = [(name, z.hosts, z.forest.trained_ns, zone_blob(z)) for name, z in stage.zones.items()]
    meta = {
        "layout": _layout(stage), "win_start": stage.win_start, "win_end": stage.win_end, "win_obs": stage.win_obs,
        "day": stage.day.isoformat() if stage.day else None, "day_windows": stage.day_windows,
        "day_masks": stage.day_masks, "ids": stage.ids, "counters": dict(stage.counters),
        "pending": [list(o) for o in stage.pending], "workdays": stage.workdays,
        "known_periodic": list(stage.known_periodic),
        "suppression": [[*k, *v] for k, v in stage.decider._open.items()],
    }
    with st.tx() as db:
        st.put_entities(db, rows)
        st.delete_entities(db, stage.evicted)
        st.put_zones(db, zones)
        for r in stage.raised:
            _store_raised(st, db, r)
        st.put_meta(db, meta)
    stage.evicted.clear()
    stage.raised.clear()


def _store_raised(st: BehaviourState, db: Any, r: Raised) -> None:
    if r.first_id:
        st.bump_suppressed(db, r.first_id)
        return
    a, al = r.anomaly, r.alert
    st.add_anomaly(db, {
        "id": al.id, "ts_ns": al.ts_ns, "detector": a.detector, "kind": a.kind, "subject": a.subject,
        "subject_kind": a.subject_kind, "zone": a.zone, "dst_zone": a.dst_zone, "window_start_ns": a.start_ns,
        "window_end_ns": a.end_ns, "score": float(a.score), "threshold": float(r.threshold), "policy": al.policy,
        "profile": al.profile, "severity": int(al.severity), "destination": a.destination,
        "explanation": a.explain()[:4000],
        "deviations": json.dumps([[d.feature, d.value, d.usual, d.z] for d in a.deviations]),
    })


def load(stage: BehaviourStage) -> None:
    """Restore the stage from its state file (a fresh file: nothing to do)."""
    st = stage.state
    assert st is not None
    meta = st.get_meta()
    if not meta:
        return
    if meta.get("layout") != _layout(stage):
        stage.counters["state_layout_changed"] += 1
        log.warning("behaviour: %s was written with another layout; starting afresh", st.path)
        return
    for key, zone, first, last, windows, blob in st.entities():
        try:
            e = entity_from(stage, key, zone, first, last, windows, blob)
        except (StateError, KeyError, TypeError, ValueError) as exc:
            stage.counters["state_corrupt"] += 1
            log.warning("behaviour: dropping %s from the state file: %s", key, exc)
            continue
        (stage.hosts if e.is_host else stage.groups)[key] = e
    for name, hosts, trained, blob in st.zones():
        try:
            stage.zones[name] = zone_from(stage, hosts, trained, blob)
        except (StateError, KeyError, TypeError, ValueError) as exc:
            stage.counters["state_corrupt"] += 1
            log.warning("behaviour: dropping zone %s from the state file: %s", name, exc)
    stage.win_start, stage.win_end = int(meta.get("win_start") or 0), int(meta.get("win_end") or 0)
    stage.win_obs = int(meta.get("win_obs") or 0)
    stage.day = date.fromisoformat(meta["day"]) if meta.get("day") else None
    stage.day_windows = [int(s) for s in meta.get("day_windows", [])]
    stage.day_masks = {str(k): int(v) for k, v in (meta.get("day_masks") or {}).items()}
    stage.ids = int(meta.get("ids", 0))
    stage.counters.update({str(k): int(v) for k, v in (meta.get("counters") or {}).items()})
    stage.pending = [Observation(*o) for o in meta.get("pending", [])]
    stage.workdays = [int(x) for x in meta.get("workdays", [])]
    stage.known_periodic = dict.fromkeys(str(x) for x in meta.get("known_periodic", [])[-KNOWN_SITES_MAX:])
    for rule, profile, subject, detector, first_id, first_ns, window_ns in meta.get("suppression", []):
        stage.decider._open[(str(rule), str(profile), str(subject), str(detector))] = (
            str(first_id), int(first_ns), int(window_ns))
    while len(stage.hosts) > stage.cfg.max_hosts:
        stage._evict(next(iter(stage.hosts)))


def apply_pending(stage: BehaviourStage) -> None:
    """Apply verdicts and rebaselines written to the state file (by the console or `stage`)."""
    st = stage.state
    if st is None:
        return
    rows = st.pending()
    if not rows:
        return
    done = []
    for seq, anomaly_id, subject, action in rows:
        done.append(seq)
        stage.counters[f"verdict_{action}"] += 1
        if action == "rebaseline":
            stage.apply_rebaseline(subject)
        elif action == "false_positive" and anomaly_id:
            row = st.anomaly(anomaly_id)
            if row is not None:
                stage.learn_destination(row["subject"], row["destination"], int(row["window_end_ns"]),
                                        row["detector"])
    st.mark_applied(done)
