"""The sensor's counters, read from the JSON stats file it writes periodically.

Format (one JSON object, replaced atomically by the sensor every few seconds)::

    {"ts": 1714564800.5, "packets": 123456, "bytes": 98765432, "drops": 0, "flows": 4321,
     "queue_depths": {"expensive": 3, "alerts": 0}}

``ts`` is the Unix time of the sample; ``packets``, ``bytes`` and ``drops`` are totals since the
sensor started; ``flows`` is the number of flows in the table now; ``queue_depths`` maps queue
names to items waiting. Rates come from the difference between two successive samples the
console has seen (or from ``packets_per_s``/``mbit_per_s`` if the sensor writes them).
"""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path
from typing import Any

MAX_STATS_BYTES = 1 << 20

_prev: dict[str, list[dict[str, Any]]] = {}
_lock = threading.Lock()


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def read_sensor_stats(path: Path | None, stale_s: float = 60.0, now: float | None = None) -> dict[str, Any]:
    """``{"state": "none"|"missing"|"invalid"|"ok"|"stale", ...counters, rates}``; never raises."""
    if path is None:
        return {"state": "none", "message": "no sensor stats file configured"}
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_STATS_BYTES + 1)
    except OSError as exc:
        return {"state": "missing", "message": f"cannot read {path}: {exc.strerror or exc}"}
    try:
        data = json.loads(raw) if len(raw) <= MAX_STATS_BYTES else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or _num(data.get("ts")) is None:
        return {"state": "invalid", "message": f"{path} is not a stats object with a ts"}
    out: dict[str, Any] = {"ts": _num(data["ts"])}
    for k in ("packets", "bytes", "drops", "flows"):
        out[k] = _num(data.get(k))
    qd = data.get("queue_depths")
    out["queue_depths"] = ({str(k)[:64]: n for k, v in list(qd.items())[:64] if (n := _num(v)) is not None}
                           if isinstance(qd, dict) else {})
    now = time.time() if now is None else now
    out["age_s"] = max(0.0, now - out["ts"])
    out["state"] = "stale" if out["age_s"] > stale_s else "ok"
    pps, mbps = _num(data.get("packets_per_s")), _num(data.get("mbit_per_s"))
    sample = {k: out[k] for k in ("ts", "packets", "bytes", "drops")}
    with _lock:
        hist = _prev.setdefault(str(path), [])
        if not hist or sample["ts"] > hist[-1]["ts"]:
            hist.append(sample)
            del hist[:-2]
        pair = hist[-2:] if len(hist) == 2 and hist[-1]["ts"] == sample["ts"] else None
    if pair is not None:
        a, b = pair
        dt = b["ts"] - a["ts"]
        if pps is None and a["packets"] is not None and b["packets"] is not None:
            pps = max(0.0, (b["packets"] - a["packets"]) / dt)
        if mbps is None and a["bytes"] is not None and b["bytes"] is not None:
            mbps = max(0.0, (b["bytes"] - a["bytes"]) * 8 / dt / 1e6)
        if a["drops"] is not None and b["drops"] is not None:
            out["drops_per_s"] = max(0.0, (b["drops"] - a["drops"]) / dt)
        out["rate_window_s"] = dt
    out["packets_per_s"], out["mbit_per_s"] = pps, mbps
    return out
