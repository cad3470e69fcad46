"""Hourly rollups of the alerts: counts per dimension value and hour, kept up to date on insert.

The dashboard, ``/metrics`` and the policy page read these instead of the alerts table, so they
cost the same with ten thousand alerts or ten million (a month is 720 hours × a few hundred
values). One table, both backends::

    alert_rollup (dim, hour, value, n)   PRIMARY KEY (dim, hour, value)

``hour`` is ``ts_ns // 3600e9`` (packet time). The dimensions (`dims_of` gives an alert's):

=========  ==================================================================
``all``    ``''`` — every alert
severity   ``'1'`` … ``'5'``
category   the category
zones      ``'src_zone → dst_zone'``
policy     the policy rule
host       the HTTP host, else the server's address
client     the client's address (the internal side for the office's uploads and downloads)
server     the server's address
triage     the store's own triage state (analysts' verdicts are applied when read)
rule       ``policy \\x1f profile \\x1f triage``
list       ``inspector \\x1f list \\x1f triage``, once per alert and list
=========  ==================================================================

Writers count into a `RollupBatch` and `flush` it once per transaction (one upsert per distinct
key). `rebuild_hours` recomputes whole hours from the alerts (after a purge, in migrations).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from appliance.store.backend import Executor

__all__ = ["HOUR_NS", "ROLLUP_DIMS", "RollupBatch", "dims_of", "rebuild_hours", "rollup_backfill_sql"]

HOUR_NS = 3_600_000_000_000
SEP = "\x1f"
MAX_VALUE = 200
ROLLUP_DIMS = ("all", "severity", "category", "zones", "policy", "host", "client", "server", "triage", "rule", "list")

_UPSERT = ("INSERT INTO alert_rollup (dim, hour, value, n) VALUES (?, ?, ?, ?) ON CONFLICT (dim, hour, value) "
           "DO UPDATE SET n = alert_rollup.n + excluded.n")


def _v(x: Any) -> str:
    return ("" if x is None else str(x))[:MAX_VALUE]


def server_of(row: dict[str, Any]) -> str | None:
    return row.get("src_ip") if row.get("direction") == "download" else row.get("dest_ip")


def client_of(row: dict[str, Any]) -> str | None:
    return row.get("dest_ip") if row.get("direction") == "download" else row.get("src_ip")


def dims_of(row: dict[str, Any], lists: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """(dim, value) pairs an alert row (``alerts`` columns) counts for; *lists*: its findings' (inspector, rule)."""
    tri = _v(row.get("triage") or "new")
    out = [("all", ""), ("severity", _v(row.get("severity"))), ("category", _v(row.get("category"))),
           ("zones", _v(f"{row.get('src_zone')} → {row.get('dst_zone')}")), ("policy", _v(row.get("policy"))),
           ("triage", tri), ("rule", _v(f"{row.get('policy')}{SEP}{row.get('profile')}{SEP}{tri}"))]
    host = row.get("http_host") if row.get("http_host") is not None else server_of(row)
    if host is not None:
        out.append(("host", _v(host)))
    for dim, val in (("client", client_of(row)), ("server", server_of(row))):
        if val is not None:
            out.append((dim, _v(val)))
    for inspector, rule in sorted(set(lists)):
        out.append(("list", _v(f"{inspector}{SEP}{rule}{SEP}{tri}")))
    return out


class RollupBatch:
    """Counts gathered in one transaction, written by `flush` (one upsert per distinct key)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, int, str]] = Counter()

    def add(self, ts_ns: int, pairs: Iterable[tuple[str, str]], n: int = 1) -> None:
        hour = int(ts_ns) // HOUR_NS
        for dim, value in pairs:
            self.counts[(dim, hour, value)] += n

    def flush(self, ex: Executor) -> None:
        rows = [(d, h, v, n) for (d, h, v), n in self.counts.items() if n]
        self.counts.clear()
        if rows:
            ex.executemany(_UPSERT, rows)


def rollup_backfill_sql(where: str = "") -> list[str]:
    """INSERT … SELECT statements that count the alerts matching *where* (``WHERE …`` on ``alerts``)
    into the rollup, per dimension — the same values as `dims_of`."""
    h = "CAST(ts_ns / 3600000000000 AS BIGINT)"
    server = "CASE direction WHEN 'download' THEN src_ip ELSE dest_ip END"
    client = "CASE direction WHEN 'download' THEN dest_ip ELSE src_ip END"
    exprs = {
        "all": "''", "severity": "CAST(severity AS TEXT)", "category": "category",
        "zones": "src_zone || ' → ' || dst_zone", "policy": "policy", "triage": "triage",
        "rule": f"policy || '{SEP}' || profile || '{SEP}' || triage",
        "host": f"COALESCE(http_host, {server})", "client": client, "server": server,
    }
    out = []
    for dim, expr in exprs.items():
        cond = f"{where} {'AND' if where else 'WHERE'} ({expr}) IS NOT NULL"
        out.append(f"INSERT INTO alert_rollup (dim, hour, value, n) SELECT '{dim}', {h}, "
                   f"substr({expr}, 1, {MAX_VALUE}), COUNT(*) FROM alerts {cond} "
                   f"GROUP BY {h}, substr({expr}, 1, {MAX_VALUE}) "
                   "ON CONFLICT (dim, hour, value) DO UPDATE SET n = alert_rollup.n + excluded.n")
    lst = f"f.inspector || '{SEP}' || f.rule || '{SEP}' || a.triage"
    out.append("INSERT INTO alert_rollup (dim, hour, value, n) SELECT 'list', CAST(a.ts_ns / 3600000000000 AS BIGINT), "
               f"substr({lst}, 1, {MAX_VALUE}), COUNT(DISTINCT a.seq) FROM alerts a JOIN findings f "
               f"ON f.alert_seq = a.seq {where.replace('ts_ns', 'a.ts_ns')} GROUP BY 2, 3 "
               "ON CONFLICT (dim, hour, value) DO UPDATE SET n = alert_rollup.n + excluded.n")
    return out


def rebuild_hours(ex: Executor, first_hour: int, last_hour: int) -> None:
    """Recount hours [first_hour, last_hour] from the alerts (after deleting alerts in them)."""
    ex.execute("DELETE FROM alert_rollup WHERE hour >= ? AND hour <= ?", (first_hour, last_hour))
    lo, hi = first_hour * HOUR_NS, (last_hour + 1) * HOUR_NS
    for sql in rollup_backfill_sql(f"WHERE ts_ns >= {int(lo)} AND ts_ns < {int(hi)}"):
        ex.execute(sql)
