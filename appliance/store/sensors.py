"""The sensor registry: one row per sensor — when it was last heard of, which policy it applies, its counters.

A sensor (or the ingester on its behalf) calls `SensorRepo.heartbeat` every few seconds; the
fleet console lists the rows. Counters are a flat JSON object of numbers (``packets``,
``bytes``, ``drops``, ``flows``, ``alerts``, queue depths…), replaced at each heartbeat.
"""

from __future__ import annotations

import json
import math
from typing import Any

from appliance.outputs.alertjson import clean
from appliance.store.backend import Executor

__all__ = ["SensorRepo"]

MAX_COUNTERS = 64


def _counters(counters: dict[str, Any]) -> str:
    out: dict[str, float | int] = {}
    for k, v in list(counters.items())[:MAX_COUNTERS]:
        if isinstance(v, bool) or not isinstance(v, int | float) or (isinstance(v, float) and not math.isfinite(v)):
            continue
        out[clean(str(k))[:64]] = v
    return json.dumps(out, sort_keys=True)


class SensorRepo:
    """Sensors over an `Executor`."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex

    def heartbeat(self, name: str, ts: float, *, policy_version: str = "", counters: dict[str, Any] | None = None,
                  software: str = "") -> None:
        """Insert or update the sensor *name*: last seen at *ts* (Unix time), its policy and counters."""
        name = clean(str(name)).strip()[:128]
        if not name:
            raise ValueError("a sensor needs a name")
        self.ex.execute(
            "INSERT INTO sensors (name, first_seen, last_seen, policy_version, software, counters) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen, "
            "policy_version = excluded.policy_version, software = excluded.software, counters = excluded.counters",
            (name, float(ts), float(ts), clean(str(policy_version))[:128], clean(str(software))[:128],
             _counters(counters or {})))

    def _decode(self, row: dict[str, Any]) -> dict[str, Any]:
        row["counters"] = json.loads(row["counters"] or "{}")
        return row

    def get(self, name: str) -> dict[str, Any] | None:
        row = self.ex.one("SELECT * FROM sensors WHERE name = ?", (name,))
        return self._decode(row) if row else None

    def list(self) -> list[dict[str, Any]]:
        """Every sensor, most recently seen first."""
        return [self._decode(r) for r in self.ex.rows("SELECT * FROM sensors ORDER BY last_seen DESC, name")]

    def forget(self, name: str) -> bool:
        return self.ex.execute("DELETE FROM sensors WHERE name = ?", (name,)) == 1
