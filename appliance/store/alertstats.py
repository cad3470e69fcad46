"""Aggregates over alerts for the dashboard, ``/metrics`` and the policy page — fast on big stores.

Two rules keep them bounded by index sizes rather than by the alerts table (whose rows carry the
whole EVE record, so a table scan of 200,000 alerts reads ~500 MB on SQLite):

- every grouping reads a covering index (``alerts_category_ts``, ``alerts_zones_ts``,
  ``alerts_policy_profile``, ``findings_inspector_rule``…). On SQLite the time range is written
  ``+ts_ns`` (`Executor.unindexed`) so the planner scans the grouping's covering index instead of
  fetching every row of the range through ``alerts_ts``; PostgreSQL's planner has statistics and
  needs no hint.
- analysts' verdicts are not joined onto every alert: counts by the alerts' own triage state come
  from the index, then each verdict moves its alert from its own state to the verdict's (a join of
  the verdicts, which are few, with their alerts).

Where a question covers whole hours it is answered from the hourly rollups (`appliance.store.rollup`):
totals, the time series and top-N of the dashboard over its hour-aligned ranges, ``/metrics``, rule
and list quality. Other ranges (a zoom into one hour) read the indexes as above.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from appliance.store.backend import Executor
from appliance.store.rollup import HOUR_NS, SEP

__all__ = ["AlertStats"]

Key = tuple[Any, ...]
ROLLUP_MIN_NS = 12 * HOUR_NS
"""Time series over at least this many whole hours come from the rollups (hourly columns or wider)."""

_GROUPS = {  # name: (the value shown, the columns grouped by: an index's leading columns, in its order)
    "zones": ("src_zone || ' → ' || dst_zone", "src_zone, dst_zone"), "category": ("category", "category"),
    "policy": ("policy", "policy"), "src_ip": ("src_ip", "src_ip"), "severity": ("severity", "severity"),
}


class AlertStats:
    """Aggregates over an `Executor`; *verdicts* names the console's verdicts table (None: no verdicts)."""

    def __init__(self, ex: Executor, verdicts: str | None = None) -> None:
        self.ex, self.verdicts = ex, verdicts
        ts = ex.unindexed("ts_ns")
        self._range = f"{ts} >= ? AND {ts} < ?"

    def _moves(self, keys: list[str], joins: str = "", cond: str = "", params: tuple[Any, ...] = (),
               count: str = "COUNT(*)") -> dict[Key, Counter[str]]:
        """Per group of *keys*: the change of each state's count that the verdicts make. The verdicts drive
        the join (``CROSS JOIN`` fixes that order on SQLite; PostgreSQL plans it as any inner join)."""
        out: dict[Key, Counter[str]] = defaultdict(Counter)
        if not self.verdicts:
            return out
        cols = "".join(f"{k} AS k{i}, " for i, k in enumerate(keys))
        group = "".join(f"{k}, " for k in keys)
        rows = self.ex.rows(
            f"SELECT {cols}alerts.triage AS own, v.verdict AS now, {count} AS n FROM {self.verdicts} v "
            f"CROSS JOIN alerts{joins} WHERE alerts.id = v.alert_id{' AND ' + cond if cond else ''} "
            f"GROUP BY {group}alerts.triage, v.verdict", params)
        for r in rows:
            key = tuple(r[f"k{i}"] for i in range(len(keys)))
            out[key][r["own"]] -= int(r["n"])
            out[key][r["now"]] += int(r["n"])
        return out

    def _triage(self, cond: str = "", params: tuple[Any, ...] = ()) -> Counter[str]:
        where = f" WHERE {cond}" if cond else ""
        own = Counter({r["k"]: int(r["n"]) for r in self.ex.rows(
            f"SELECT triage AS k, COUNT(*) AS n FROM alerts{where} GROUP BY triage", params)})
        own.update(self._moves([], cond=cond, params=params).get((), Counter()))
        return +own  # drops states left at zero

    # -- rollups ---------------------------------------------------------------------------------

    def rolled(self, dim: str, since_ns: int | None = None, until_ns: int | None = None) -> dict[str, int]:
        """Alerts per value of a rollup dimension over whole hours [since, until) (None: all)."""
        cond, params = self._hours(since_ns, until_ns)
        rows = self.ex.rows(f"SELECT value AS k, SUM(n) AS n FROM alert_rollup WHERE dim = ?{cond} GROUP BY value",
                            (dim, *params))
        return {r["k"]: int(r["n"]) for r in rows if int(r["n"])}

    @staticmethod
    def _hours(since_ns: int | None, until_ns: int | None) -> tuple[str, list[int]]:
        cond, params = "", []
        if since_ns is not None:
            cond += " AND hour >= ?"
            params.append(int(since_ns) // HOUR_NS)
        if until_ns is not None:
            cond += " AND hour < ?"
            params.append(-(-int(until_ns) // HOUR_NS))
        return cond, params

    @staticmethod
    def aligned(since_ns: int, until_ns: int) -> bool:
        """Whether [since, until) is made of whole hours (then the rollups answer exactly)."""
        return since_ns % HOUR_NS == 0 and until_ns % HOUR_NS == 0

    def total(self) -> int:
        """Alerts stored (from the rollup)."""
        return int(self.ex.scalar("SELECT COALESCE(SUM(n), 0) FROM alert_rollup WHERE dim = 'all'") or 0)

    def count_range(self, since_ns: int, until_ns: int) -> int:
        """Alerts in [since, until): the rollup when the range is whole hours, else the time index."""
        if self.aligned(since_ns, until_ns):
            return sum(self.rolled("all", since_ns, until_ns).values())
        return int(self.ex.scalar("SELECT COUNT(*) FROM alerts WHERE ts_ns >= ? AND ts_ns < ?",
                                  (since_ns, until_ns)))

    def series(self, dim: str, since_ns: int, until_ns: int, buckets: int, values: list[str] | None = None
               ) -> tuple[int, dict[str, list[int]]]:
        """Per value of *dim* (only *values* when given): counts in *buckets* equal slices of whole hours
        (the width is rounded up to hours). Returns (bucket width ns, value → counts)."""
        hours = max(1, (until_ns - since_ns) // HOUR_NS)
        per = max(1, -(-hours // buckets))
        buckets = -(-hours // per)
        h0 = since_ns // HOUR_NS
        cond, params = self._hours(since_ns, until_ns)
        extra = ""
        if values is not None:
            extra = f" AND value IN ({', '.join('?' * len(values))})" if values else " AND FALSE"
            params += values
        rows = self.ex.rows(f"SELECT value AS k, hour AS h, n FROM alert_rollup WHERE dim = ?{cond}{extra}",
                            (dim, *params))
        out: dict[str, list[int]] = {}
        for r in rows:
            b = (int(r["h"]) - h0) // per
            if 0 <= b < buckets:
                out.setdefault(r["k"], [0] * buckets)[b] += int(r["n"])
        return per * HOUR_NS, out

    _SERIES_COLS = {"category": "category", "severity": "CAST(severity AS TEXT)", "policy": "policy",
                    "all": "''"}

    def series_any(self, dim: str, since_ns: int, until_ns: int, buckets: int, values: list[str] | None = None
                   ) -> tuple[int, dict[str, list[int]]]:
        """`series` from the rollup when [since, until) is whole hours, else from the time index (a zoom into
        less than a few hours reads those alerts' rows): (bucket width ns, value → counts)."""
        if self.aligned(since_ns, until_ns) and until_ns - since_ns >= ROLLUP_MIN_NS:
            return self.series(dim, since_ns, until_ns, buckets, values)
        col = self._SERIES_COLS[dim]
        width = max(1, -(-(until_ns - since_ns) // buckets))
        rows = self.ex.rows(f"SELECT {col} AS k, (ts_ns - ?) / ? AS b, COUNT(*) AS n FROM alerts "
                            "WHERE ts_ns >= ? AND ts_ns < ? GROUP BY 1, 2", (since_ns, width, since_ns, until_ns))
        out: dict[str, list[int]] = {}
        for r in rows:
            if values is not None and r["k"] not in values:
                continue
            b = int(r["b"])
            if 0 <= b < buckets:
                out.setdefault(str(r["k"]), [0] * buckets)[b] += int(r["n"])
        return width, out

    def totals(self) -> dict[str, Any]:
        """Alerts stored, the first and last alert's time, suppressed repeats."""
        row = self.ex.one("SELECT MIN(ts_ns) AS a, MAX(ts_ns) AS b FROM alerts") or {}
        suppressed = self.ex.scalar("SELECT COALESCE(SUM(suppressed), 0) FROM alerts WHERE suppressed > 0")
        return {"alerts": self.total(), "first_ts_ns": row.get("a"), "last_ts_ns": row.get("b"),
                "suppressed": int(suppressed or 0)}

    def stats(self) -> dict[str, Any]:
        """`totals` and the alerts by severity, category, triage state, policy and inspector (from the rollups)."""

        def top(d: dict[str, int], limit: int = 50) -> dict[str, int]:
            return dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:limit])

        inspectors: Counter[str] = Counter()
        for k, n in self.rolled("list").items():
            inspectors[k.split(SEP, 1)[0]] += n
        triage = Counter(self.rolled("triage"))
        triage.update(self._moves([]).get((), Counter()))
        return {
            **self.totals(), "by_severity": {int(k): n for k, n in top(self.rolled("severity")).items()},
            "by_category": top(self.rolled("category")), "by_triage": dict((+triage).most_common(50)),
            "by_policy": top(self.rolled("policy")), "by_inspector": top(dict(inspectors)),
        }

    def histogram(self, since_ns: int, until_ns: int, buckets: int = 48) -> list[tuple[int, int]]:
        """(bucket start ns, hits) for *buckets* equal slices of [since, until) (whole hours: the rollup,
        each slice a whole number of hours; else the time index)."""
        if self.aligned(since_ns, until_ns) and until_ns - since_ns >= ROLLUP_MIN_NS:
            width, got = self.series("all", since_ns, until_ns, buckets)
            n = -(-(until_ns - since_ns) // width)
            counts = got.get("", [0] * n)
            return [(since_ns + i * width, counts[i]) for i in range(n)]
        width = max(1, (until_ns - since_ns + buckets - 1) // buckets)
        rows = self.ex.rows("SELECT (ts_ns - ?) / ? AS b, COUNT(*) AS n FROM alerts WHERE ts_ns >= ? AND ts_ns < ? "
                            "GROUP BY 1", (since_ns, width, since_ns, until_ns))
        counts = {int(r["b"]): int(r["n"]) for r in rows}
        return [(since_ns + i * width, counts.get(i, 0)) for i in range(buckets)]

    def top(self, group: str, since_ns: int, until_ns: int, limit: int = 10) -> list[tuple[str, int]]:
        """The *limit* most frequent values of a fixed grouping (never user input) in [since, until)."""
        rng = (since_ns, until_ns)
        if self.aligned(since_ns, until_ns) and group in ("zones", "category", "policy", "src_ip", "severity",
                                                          "host", "client", "server", "triage"):
            counts = Counter(self.rolled({"src_ip": "client"}.get(group, group), since_ns, until_ns))
            if group == "triage":
                counts.update(self._moves([], cond=self._range, params=rng).get((), Counter()))
            counts.pop("", None)
            return [(str(k), n) for k, n in sorted((+counts).items(), key=lambda kv: (-kv[1], str(kv[0])))[:limit]]
        if group in ("client", "server"):
            side = {"client": ("dest_ip", "src_ip"), "server": ("src_ip", "dest_ip")}[group]
            expr = f"CASE direction WHEN 'download' THEN {side[0]} ELSE {side[1]} END"
            sql = (f"SELECT {expr} AS k, COUNT(*) AS n FROM alerts WHERE {self._range} GROUP BY {expr} "
                   "ORDER BY n DESC, k LIMIT ?")
            got = self.ex.rows(sql, (*rng, limit + 1))
            return [(str(r["k"]), int(r["n"])) for r in got if r["k"] is not None][:limit]
        if group == "triage":
            counts = self._triage(self._range, rng)
            return [(str(k), n) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:limit]]
        if group == "host":  # the HTTP host, else the server's address (from the row: few such alerts)
            server = "CASE direction WHEN 'download' THEN src_ip ELSE dest_ip END"
            sql = (f"SELECT k, SUM(n) AS n FROM (SELECT http_host AS k, COUNT(*) AS n FROM alerts WHERE "
                   f"http_host IS NOT NULL AND {self._range} GROUP BY http_host UNION ALL SELECT {server} AS k, "
                   f"COUNT(*) AS n FROM alerts WHERE http_host IS NULL AND {self._range} GROUP BY {server}) AS t "
                   "WHERE k IS NOT NULL GROUP BY k ORDER BY n DESC, k LIMIT ?")
            return [(str(r["k"]), int(r["n"])) for r in self.ex.rows(sql, (*rng, *rng, limit))]
        expr, by = _GROUPS[group]
        not_null = " AND ".join(f"{c} IS NOT NULL" for c in by.split(", "))
        sql = (f"SELECT {expr} AS k, COUNT(*) AS n FROM alerts WHERE {self._range} AND {not_null} "
               f"GROUP BY {by} ORDER BY n DESC, k LIMIT ?")
        return [(str(r["k"]), int(r["n"])) for r in self.ex.rows(sql, (*rng, limit))]

    def rule_quality(self) -> list[dict[str, Any]]:
        """Per policy rule and profile: hits, true/false positives, untriaged, precision, last hit."""
        groups: dict[Key, dict[str, Any]] = {}
        for k, n in self.rolled("rule").items():
            policy, profile, triage = ([*k.split(SEP), "", "", ""])[:3]
            g = groups.setdefault((policy, profile), {"hits": 0, "last": None, "states": Counter()})
            g["hits"] += n
            g["states"][triage] += n
        for (policy, profile), g in groups.items():  # one index seek per group
            g["last"] = self.ex.scalar("SELECT MAX(ts_ns) FROM alerts WHERE policy = ? AND profile = ?",
                                       (policy, profile))
        for key, moves in self._moves(["alerts.policy", "alerts.profile"]).items():
            if key in groups:
                groups[key]["states"].update(moves)
        out = []
        for (policy, profile), g in groups.items():
            tp, fp = g["states"]["confirmed"], g["states"]["false_positive"]
            out.append({"policy": policy, "profile": profile, "hits": g["hits"], "tp": tp, "fp": fp,
                        "untriaged": g["states"]["new"], "last_ts_ns": g["last"],
                        "precision": tp / (tp + fp) if tp + fp else None})
        return sorted(out, key=lambda r: (-r["hits"], r["policy"], r["profile"]))

    def list_quality(self) -> list[dict[str, Any]]:
        """Per inspector list (finding rule): hits, true/false positives and precision."""
        keys = ["f.inspector", "f.rule"]
        hits: Counter[Key] = Counter()
        states: dict[Key, Counter[str]] = defaultdict(Counter)
        for k, n in self.rolled("list").items():
            inspector, rule, triage = ([*k.split(SEP), "", "", ""])[:3]
            hits[(inspector, rule)] += n
            states[(inspector, rule)][triage] += n
        joins = " JOIN findings f ON f.alert_seq = alerts.seq"
        for key, moves in self._moves(keys, joins, count="COUNT(DISTINCT alerts.seq)").items():
            states[key].update(moves)
        out = []
        for (inspector, rule), n in hits.items():
            tp, fp = states[(inspector, rule)]["confirmed"], states[(inspector, rule)]["false_positive"]
            out.append({"inspector": inspector, "rule": rule, "hits": n, "tp": tp, "fp": fp,
                        "precision": tp / (tp + fp) if tp + fp else None})
        return sorted(out, key=lambda r: (-r["hits"], r["inspector"], r["rule"]))
