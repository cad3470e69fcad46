"""The fleet as the console shows it: the sensor registry, each sensor's hits, pushing the policy.

Sensors, inspection workers and ingesters report to the registry (``sensors`` in the store:
heartbeats through the bus and the ingester, docs/fleet.md). A row's state comes from the age of
its last heartbeat: ``up`` (under `LATE_S`), ``late``, ``down`` (over `DOWN_S`). The policy a
sensor applies is compared with the newest saved version — the fleet's policy: the ingester
publishes it to the sensors within ``policy_poll_s``, at once when an analyst pushes it (a
``NOTIFY`` on the channel the ingester listens to).
"""

from __future__ import annotations

import json
import time
from typing import Any

from appliance.fleet.policy import CHANNEL
from appliance.store import AlertQuery
from appliance.store.sensors import SensorRepo
from webui.alerts import AlertView
from webui.db import ConsoleDB
from webui.errors import ServiceError
from webui.services.hits import list_hits
from webui.services.sessions import Principal

__all__ = ["DOWN_S", "LATE_S", "fleet", "push_policy", "sensor_detail"]

LATE_S = 30.0
DOWN_S = 300.0
_COLUMNS = ("packets_per_s", "mbit_per_s", "alerts_per_s", "drops", "alerts", "objects", "done", "lost_race")


def _role(software: str) -> str:
    parts = software.split()
    return parts[1] if len(parts) > 1 else "sensor"


def _row(r: dict[str, Any], now: float, newest: str | None) -> dict[str, Any]:
    c = r.get("counters") or {}
    age = max(0.0, now - float(r.get("last_seen") or 0))
    r["role"] = _role(str(r.get("software") or ""))
    r["age_s"] = age
    r["state"] = "up" if age < LATE_S else "late" if age < DOWN_S else "down"
    r["queued"] = sum(v for k, v in c.items() if k.startswith("queue.") and not k.endswith("_s"))
    r["spooled"] = sum(v for k, v in c.items() if k.startswith("bus.") and k.endswith(".pending"))
    r["dropped"] = sum(v for k, v in c.items() if k.endswith(".dropped") or k == "events_dropped") + \
        c.get("jobs.shed", 0) + c.get("not_inspected", 0)
    r["cols"] = {k: c.get(k) for k in _COLUMNS}
    version = str(r.get("policy_version") or "")
    r["policy_current"] = None if not version or newest is None or r["role"] == "ingester" else version == newest
    return r


def fleet(view: AlertView, db: ConsoleDB, now: float | None = None) -> dict[str, Any]:
    """The registry's rows (with state, role and a few counters) and the fleet's policy version."""
    versions = db.policy_versions()
    newest = versions[0] if versions else None
    now = time.time() if now is None else now
    rows = [_row(r, now, newest["version"] if newest else None) for r in SensorRepo(view.alerts.ex).list()]
    return {"sensors": rows, "newest": newest, "fleet": db.path is None,
            "counts": {s: sum(1 for r in rows if r["state"] == s) for s in ("up", "late", "down")}}


def sensor_detail(view: AlertView, db: ConsoleDB, name: str, page: int, size: int) -> dict[str, Any]:
    """One registry row with every counter, and that sensor's hits (newest first)."""
    row = SensorRepo(view.alerts.ex).get(name)
    if row is None:
        raise ServiceError("no such sensor", 404)
    versions = db.policy_versions()
    r = _row(row, time.time(), versions[0]["version"] if versions else None)
    total, hits = list_hits(view, AlertQuery(sensor=name), size, (page - 1) * size)
    return {"s": r, "counters": sorted((r.get("counters") or {}).items()), "hits": hits, "total": total,
            "page": page, "pages": max(1, (total + size - 1) // size)}


def push_policy(db: ConsoleDB, who: Principal, ip: str = "") -> str:
    """Ask the ingester to publish the newest saved policy to the sensors now (PostgreSQL only); audited."""
    if db.path is not None:
        raise ServiceError("pushing a policy needs the fleet's PostgreSQL database (one box: save and reload)", 400)
    versions = db.policy_versions()
    if not versions:
        raise ServiceError("no saved policy version to push yet", 400)
    newest = versions[0]
    payload = json.dumps({"id": newest["id"], "version": newest["version"]})
    with db.tx() as tx:
        tx.scalar("SELECT pg_notify(?, ?)", (CHANNEL, payload))
        db.audit(tx, who.username, "policy.push", f"history #{newest['id']}", None,
                 {"version": newest["version"]}, ip)
    return newest["version"]
