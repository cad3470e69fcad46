#!/usr/bin/env python3
"""The console's queries on a big store, SQLite and PostgreSQL side by side.

    .venv/bin/python bench/store_bench.py [--alerts 200000] [--backends sqlite,postgresql]
                                          [--pg-dsn postgresql://…] [--sqlite-dir DIR] [--runs 5] [--json OUT]

Fills each backend with the same generated alerts (seeded: 30 days, 40 hosts, 6 categories,
5 policies, 4 zone pairs, a third with Chinese evidence, one finding each, 1 % with an analyst's
verdict), then times what the console runs for a page: the dashboard (range "30d" and "all"),
the hit list (count + one page + the filter drop-downs) unfiltered, deep in the pages, and
filtered by category, triage state, host, and search terms of each kind (a word, a two- and a
one-character Chinese term, a two-character Latin term), and the policy page's rule quality.
Reported: the insert rate and the median milliseconds of *runs* runs (warm caches). No pass/fail:
figures go in the report. PostgreSQL: a throwaway server (tests/fleet_fixtures.py) unless
``--pg-dsn`` names a database; a database (or ``--sqlite-dir``) that already holds *alerts* alerts is
measured without filling it again (the insert rate is then not reported).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from appliance.model import Alert, ContentObject, Direction, Evidence, Finding, FlowRef, Severity  # noqa: E402
from appliance.store import AlertStore  # noqa: E402

DAY_NS = 86_400 * 10**9
BASE = 1_714_564_800_000_000_000
HOSTS = [f"files{i}.example.{tld}" for i in range(40) for tld in ("com",)]
CATEGORIES = ["data-leak/confidential", "data-leak/pii", "fraud", "prohibited", "malware", "gambling"]
POLICIES = ["office-uploads", "office-web-content", "dmz-out", "guest", "lab"]
ZONES = [("office", "any"), ("dmz", "any"), ("guest", "any"), ("lab", "office")]
ZH = ["内部机密文件", "客户名单与身份证号", "网络赌场 百家乐", "季度财务报表 绝密", "项目代号 夜鹰"]
EN = ["quarterly merger plan", "Project Nightjar roadmap slips to Q3", "customer list export", "board minutes"]


def alerts(n: int, seed: int) -> Iterator[tuple[Alert, ContentObject]]:
    rng = random.Random(seed)
    for i in range(n):
        ts = BASE + rng.randrange(30 * DAY_NS)
        src_zone, dst_zone = ZONES[i % len(ZONES)]
        client = f"10.{i % 7}.{(i // 7) % 250}.{i % 200 + 1}"
        server = f"203.0.113.{i % 250 + 1}"
        down = rng.random() < 0.3
        flow = FlowRef(f"C{i}", i, server if down else client, 80 if down else 40000 + i % 20000,
                       client if down else server, 40000 + i % 20000 if down else 80, "TCP", 0, "eth1",
                       src_zone, dst_zone)
        snippet = rng.choice(ZH) if rng.random() < 0.33 else rng.choice(EN)
        host = rng.choice(HOSTS)
        direction = Direction.TO_CLIENT if down else Direction.TO_SERVER
        obj = ContentObject(id=f"F{i:07d}", source="http", direction=direction, flow=flow, ts_ns=ts,
                            size=1000 + i % 5000, md5=f"{i:032x}", sha256=f"{i:064x}", filename=f"doc-{i}.docx",
                            url=f"/share/{i}", host=host, method="POST", status=200)
        f = Finding("keyword", obj.id, rng.choice(["confidential-projects", "prc-id", "gambling"]), 10.0,
                    (Evidence(10, 10 + len(snippet), snippet),), {"list": "x"})
        yield (Alert(f"A{i:07d}", ts, rng.choice(POLICIES), "dlp", Severity(i % 5 + 1), rng.choice(CATEGORIES),
                     obj.id, flow, (f,), src_zone, dst_zone), obj)


def fill(dsn: str, n: int, seed: int) -> float | None:
    """Insert *n* alerts in batches of 1,000; returns alerts per second (None: they were there already)."""
    with AlertStore(dsn) as store:
        if store.count() == n:
            return None
    t0 = time.perf_counter()
    with AlertStore(dsn) as store:
        batch = []
        for item in alerts(n, seed):
            batch.append(item)
            if len(batch) == 1000:
                store.add_many(batch)
                batch = []
        if batch:
            store.add_many(batch)
    return n / (time.perf_counter() - t0)


def timed(fn: Callable[[], Any], runs: int) -> float:
    fn()  # warm
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def measure(alert_db: str, console_db: str, n: int, runs: int) -> dict[str, float]:
    from webui.alerts import ViewFactory
    from webui.db import ConsoleDB
    from webui.services import hits, stats
    from webui.settings import ConsoleSettings

    console = ConsoleDB(console_db)
    rng = random.Random(3)
    with console.tx() as tx:
        for i in rng.sample(range(n), max(1, n // 100)):
            tx.verdicts.set(f"A{i:07d}", rng.choice(["confirmed", "false_positive", "resolved"]), "", "bench", 1.0)
    views = ViewFactory(alert_db, console)
    settings = ConsoleSettings(alert_db=alert_db, console_db=console_db)

    def page(params: dict[str, str], offset: int = 0) -> Callable[[], Any]:
        def run() -> None:
            with views() as view:
                hits.list_hits(view, hits.query_from(params), 50, offset)
                view.zones(), view.distinct("category"), view.distinct("policy"), view.inspectors()
        return run

    def dash(rng_name: str) -> Callable[[], Any]:
        def run() -> None:
            with views() as view:
                stats.dashboard(view, settings, rng_name)
        return run

    def quality() -> None:
        with views() as view:
            view.rule_quality(), view.list_quality()

    cases: dict[str, Callable[[], Any]] = {
        "dashboard 30d": dash("30d"), "dashboard all": dash("all"),
        "hits: page 1": page({}), "hits: page 100": page({}, 4950),
        "hits: category": page({"category": "fraud"}), "hits: triage=confirmed": page({"triage": "confirmed"}),
        "hits: host": page({"host": HOSTS[3]}), "hits: q=Nightjar": page({"q": "Nightjar"}),
        "hits: q=机密 (2 CJK)": page({"q": "机密"}), "hits: q=赌 (1 CJK)": page({"q": "赌"}),
        "hits: q=Q3 (2 Latin)": page({"q": "Q3"}), "hits: q=机密 fraud-word": page({"q": "机密 quarterly"}),
        "policy page: rule quality": quality,
    }
    out = {name: round(timed(fn, runs), 1) for name, fn in cases.items()}
    views.close()
    console.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alerts", type=int, default=200_000)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--pg-dsn", help="an empty PostgreSQL database (default: start a throwaway server)")
    ap.add_argument("--sqlite-dir", type=Path, help="keep (or reuse) the SQLite files here")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    results: dict[str, dict[str, Any]] = {}
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            if backend == "sqlite":
                where = args.sqlite_dir or Path(tmp)
                where.mkdir(parents=True, exist_ok=True)
                alert_db, console_db = str(where / "alerts.db"), str(where / "console.db")
            else:
                if args.pg_dsn:
                    alert_db = args.pg_dsn
                else:
                    from tests.fleet_fixtures import PostgresServer, pg_bindir

                    server = PostgresServer(pg_bindir())  # type: ignore[arg-type]
                    server.start()
                    server.sql("CREATE DATABASE bench")
                    alert_db = server.dsn("bench")
                console_db = alert_db
            rate = fill(alert_db, args.alerts, args.seed)
            if backend == "postgresql" and rate is not None:
                with AlertStore(alert_db) as s:
                    s.db.execute("VACUUM ANALYZE")
            results[backend] = {"insert_alerts_per_s": round(rate) if rate else "-",
                                **measure(alert_db, console_db, args.alerts, args.runs)}
            print(f"{backend}: {results[backend]}", file=sys.stderr)
    if server is not None:
        server.stop()
    names = list(next(iter(results.values())))
    print(f"| {args.alerts:,} alerts | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    for name in names:
        unit = "" if name.startswith("insert") else " ms"
        print(f"| {name} | " + " | ".join(f"{r[name]:,}{unit}" if r[name] != "-" else "-" for r in results.values())
              + " |")
    if args.json:
        args.json.write_text(json.dumps({"alerts": args.alerts, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
