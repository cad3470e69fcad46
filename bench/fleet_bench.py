#!/usr/bin/env python3
"""The fleet's throughput, cost per component and outages, on throwaway PostgreSQL and Redis servers.

    .venv/bin/python bench/fleet_bench.py [--objects 40] [--alerts 20000] [--outage-s 60]
                                          [--parts inspect,ingest,faults] [--json OUT]

- **inspect**: *objects* expensive objects (DOCX, PDF and PNG screenshots read by OCR, in turn;
  each names the project the policy looks for), inspected (a) locally, one after the other in one
  process, as ``tapsift read`` does;
  (b) as jobs on Redis by 1, then 2 ``tapsift inspect-worker`` processes (started and warmed first;
  timed from the first job put to the last one finished). Reported: objects/s, the ratio to
  local, CPU seconds per object of the whole process tree (parser sandboxes included, from /proc).
- **ingest**: *alerts* alert records published through a sensor's spooled stream output (sensor
  side: records/s), then one ingester (batches of ``--batch``) writes them into PostgreSQL:
  alerts/s, and CPU seconds per 1,000 alerts of the ingester, Redis and PostgreSQL (from /proc);
  Redis memory and PostgreSQL bytes per alert.
- **faults**: Redis stopped for ``--outage-s`` while a sensor publishes alerts, then PostgreSQL
  stopped as long while the ingester runs: alerts counted before and after (none lost, none
  doubled) and the time to catch up.

No pass/fail; the figures go in docs/fleet.md. The machine's other load shows in every figure:
read the ratios, not the absolute rates.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TICK = os.sysconf("SC_CLK_TCK")
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


# --------------------------------------------------------------------------- helpers


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of *root* and every live descendant, from /proc."""
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        parent[int(d)] = int(fields[1])
        cpu[int(d)] = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / TICK
    total, todo = 0.0, [root]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo += [c for c, pp in parent.items() if pp == p]
    return total


def objects(n: int, seed: int) -> list[Any]:
    """*n* expensive objects, in turn: a DOCX and a PDF of 1,000 lines each naming the project, and a
    PNG screenshot of text (read by OCR)."""
    from appliance.model import ContentObject, Direction, FlowRef
    from tools import synth as S

    rng = random.Random(seed)
    out = []
    for i in range(n):
        lines = [S.text(rng, 12) for _ in range(1000)] + ["Milestones for Project Nightjar."]
        if i % 3 == 0:
            data, mime = S.docx_document(f"d{i}", tuple(lines)), DOCX
        elif i % 3 == 1:
            data, mime = S.pdf_document(f"p{i}", lines), "application/pdf"
        else:
            data, mime = _screenshot(rng, [*lines[:12], "Milestones for Project Nightjar."]), "image/png"
        flow = FlowRef(f"C{i}", i, f"10.20.1.{i % 200 + 1}", 40000 + i, "198.51.1.1", 80, "TCP", 0, "eth0",
                       "office", "any")
        out.append(ContentObject(f"F{i:06d}", "http", Direction.TO_SERVER, flow, 1_700_000_000_000_000_000 + i,
                                 len(data), hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest(),
                                 declared_mime=mime, sniffed_mime=mime, filename=f"doc{i}", data=data))
    return out


def _screenshot(rng: random.Random, lines: list[str]) -> bytes:
    """A PNG of black text on white, as a screenshot of a document is."""
    import io

    from PIL import Image, ImageDraw

    img = Image.new("RGB", (1000, 40 + 24 * len(lines)), (255, 255, 255))
    d = ImageDraw.Draw(img)
    for k, line in enumerate(lines):
        d.text((20, 20 + 24 * k), line[:110], fill=(0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def settings_for(tmp: Path, url: str, policy: Path, name: str = "bench") -> Any:
    from tests.fleet.conftest import fleet_settings

    s = fleet_settings(tmp, url, policy=policy, name=name, remote=True, follow_policy=False, heartbeat_s=1.0)
    s.inspection.remote.max_backlog = 100_000
    return s


def wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out: {what}")
        time.sleep(0.02)


# --------------------------------------------------------------------------- inspect


def local_inspect(policy: Path, n: int, seed: int) -> dict[str, float]:
    """Inspect the objects one after the other in this process (the ``tapsift read`` way)."""
    from appliance.pipeline import make_inspection, policy_holder
    from appliance.settings import Settings
    from reassembly.objects import ObjectFactory

    s = Settings.model_validate({"inspection": {"policy": str(policy)}})
    stage = make_inspection(s, policy_holder(s), ObjectFactory(prefix="Fb"))
    stage.warm()
    objs = objects(n, seed)
    stage.inspect(objs[0], 1)  # the parser sandbox starts
    cpu0, t0 = tree_cpu(os.getpid()), time.perf_counter()
    alerts = sum(len(stage.inspect(o, o.ts_ns).alerts) for o in objs)
    wall, cpu = time.perf_counter() - t0, tree_cpu(os.getpid()) - cpu0
    return {"objects": n, "alerts": alerts, "wall_s": round(wall, 2), "objects_per_s": round(n / wall, 2),
            "cpu_s_per_object": round(cpu / n, 4)}


def remote_inspect(tmp: Path, url: str, policy: Path, workers: int, n: int, seed: int) -> dict[str, float]:
    from appliance.bus.redis import RedisBus
    from appliance.fleet.jobwire import encode_object
    from appliance.fleet.remote import job_queue
    from appliance.jobs.base import Job

    s = settings_for(tmp / f"w{workers}", url, policy)
    cfg = tmp / f"w{workers}.yaml"
    from tests.fleet.conftest import write_settings

    write_settings(cfg, s)
    bus = RedisBus(url)
    bus.r.flushall()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    tapsift = str(Path(sys.executable).with_name("tapsift"))
    procs = [subprocess.Popen([tapsift, "inspect-worker", "--config", str(cfg), "--name", f"b{workers}-{k}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env) for k in range(workers)]
    try:
        wait(lambda: bus.length(s.output.bus.sensors_key) >= workers, 300, "the workers' first heartbeats")
        q = job_queue(s)
        warm = objects(1, seed + 1)[0]
        for _ in range(workers):  # one job each first: the parser sandboxes start
            q.put(Job("expensive", 0, encode_object(warm), {"sensor": "bench"}))
        wait(lambda: q.backlog("expensive") == 0, 300, "the warm-up jobs")
        bus.r.delete(s.output.bus.alerts_key)
        payloads = [encode_object(o) for o in objects(n, seed)]
        cpu0 = sum(tree_cpu(p.pid) for p in procs)
        t0 = time.perf_counter()
        for i, p in enumerate(payloads):
            assert q.put(Job("expensive", 0, p, {"sensor": "bench", "content_id": f"F{i}"})) is None
        wait(lambda: q.backlog("expensive") == 0, 1800, "the jobs")
        wall = time.perf_counter() - t0
        cpu = sum(tree_cpu(p.pid) for p in procs) - cpu0
        alerts = bus.length(s.output.bus.alerts_key)
        q.close()
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
        bus.close()
    return {"workers": workers, "objects": n, "alerts": alerts, "wall_s": round(wall, 2),
            "objects_per_s": round(n / wall, 2), "cpu_s_per_object": round(cpu / n, 4),
            "job_bytes_per_object": round(sum(map(len, payloads)) / n)}


# --------------------------------------------------------------------------- ingest


def records(n: int) -> list[dict[str, Any]]:
    from appliance.outputs.alertjson import alert_record
    from tests.appliance.outputs.alert_factories import alert, content

    out = []
    for i in range(n):
        rec = alert_record(alert(i), content(i))
        rec["tapsift"]["sensor"] = f"edge-{i % 4}"
        out.append(rec)
    return out


def ingest(tmp: Path, url: str, dsn: str, redis_pid: int, pg_pid: int, n: int, batch: int) -> dict[str, Any]:
    from appliance.bus.publish import alert_stream
    from appliance.bus.redis import RedisBus
    from appliance.store import AlertStore
    from tests.fleet.conftest import fleet_settings, ingest_until_idle

    s = fleet_settings(tmp / "ingest", url, batch=batch, maxlen=max(1_000_000, 2 * n))
    bus = RedisBus(url)
    bus.r.flushall()
    mem0 = int(bus.r.info("memory")["used_memory"])
    recs = records(n)
    out = alert_stream(s.output, "edge-0", start=False)
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, n, 256):
        out.send_many(recs[i:i + 256])
    spool_s = time.perf_counter() - t0
    assert out.flush(600)
    pub_wall, pub_cpu = time.perf_counter() - t0, time.process_time() - c0
    out.close(0)
    mem = (int(bus.r.info("memory")["used_memory"]) - mem0) / n
    with AlertStore(dsn) as st:
        size0 = st.db.size_bytes()
    r0, p0, c0 = tree_cpu(redis_pid), tree_cpu(pg_pid), time.process_time()
    t0 = time.perf_counter()
    ing = ingest_until_idle(s, dsn, timeout=3600)
    wall = time.perf_counter() - t0
    cpu_ing, cpu_redis, cpu_pg = time.process_time() - c0, tree_cpu(redis_pid) - r0, tree_cpu(pg_pid) - p0
    with AlertStore(dsn) as st:
        stored, size = st.count(), st.db.size_bytes() - size0
    bus.close()
    k = n / 1000
    return {"alerts": n, "stored": stored, "inserted": ing.counters["inserted"], "batch": batch,
            "sensor_spool_records_per_s": round(n / spool_s), "sensor_publish_records_per_s": round(n / pub_wall),
            "sensor_cpu_s_per_1000": round(pub_cpu / k, 3), "ingest_alerts_per_s": round(n / wall),
            "ingester_cpu_s_per_1000": round(cpu_ing / k, 3), "redis_cpu_s_per_1000": round(cpu_redis / k, 3),
            "postgres_cpu_s_per_1000": round(cpu_pg / k, 3), "redis_bytes_per_alert": round(mem),
            "postgres_bytes_per_alert": round(size / n)}


# --------------------------------------------------------------------------- faults


def faults(tmp: Path, redis: Any, pg: Any, dsn: str, outage_s: float, rate: float) -> dict[str, Any]:
    """Redis, then PostgreSQL, away for *outage_s* while alerts flow at *rate* per second."""
    from appliance.bus.publish import alert_stream
    from appliance.fleet.ingest import Ingester
    from appliance.store import AlertStore
    from tests.fleet.conftest import fleet_settings

    s = fleet_settings(tmp / "faults", redis.url, retry_max_s=2.0, maxlen=1_000_000)
    recs = records(int(rate * outage_s * 3) + 10)
    with AlertStore(dsn) as st:
        st.db.execute("DELETE FROM alerts")
    out = alert_stream(s.output, "edge-f")
    ing = Ingester(s, dsn, relay_policy=False)
    stop = ing.start()
    sent = [0]
    stop_send = threading.Event()

    def send() -> None:
        while not stop_send.is_set() and sent[0] < len(recs):
            out.send(recs[sent[0]])
            sent[0] += 1
            time.sleep(1 / rate)

    def count() -> int:
        with AlertStore.reader(dsn) as st:
            return st.count()

    t = threading.Thread(target=send)
    t.start()
    res: dict[str, Any] = {"outage_s": outage_s, "rate_alerts_per_s": rate}
    try:
        for name, down, up in (("redis", redis.stop, redis.start), ("postgresql", pg.stop_process, pg._launch)):
            time.sleep(2)
            before = count()
            down()
            time.sleep(outage_s)
            up()
            t0 = time.monotonic()
            mark = sent[0]
            wait(lambda m=mark: count() >= m, 600, f"catching up after the {name} outage")
            res[name] = {"stored_before": before, "sent_by_end_of_outage": mark, "stored_after": count(),
                         "catch_up_s": round(time.monotonic() - t0, 1), "spooled_max": None}
    finally:
        stop_send.set()
        t.join()
        out.close(60)
        wait(lambda: count() >= sent[0], 600, "the last alerts")
        stop.set()
        ing.join()
        ing.close()
    res["sent"], res["stored"] = sent[0], count()
    res["duplicates"] = ing.counters["duplicate"]
    res["lost"] = sent[0] - res["stored"]
    return res


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=40)
    ap.add_argument("--alerts", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--outage-s", type=float, default=60.0)
    ap.add_argument("--fault-rate", type=float, default=50.0, help="alerts per second during the fault runs")
    ap.add_argument("--parts", default="inspect,ingest,faults")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    parts = set(args.parts.split(","))

    from tests.fleet.conftest import POLICY, RedisProcess
    from tests.fleet_fixtures import PostgresServer, pg_bindir
    from webui.db import ConsoleDB

    results: dict[str, Any] = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="tapsift-fleet-bench-") as d:
        tmp = Path(d)
        policy = tmp / "policy.yaml"
        policy.write_text(POLICY)
        redis = RedisProcess()
        pg = PostgresServer(pg_bindir())  # type: ignore[arg-type]
        pg.start()
        try:
            pg.sql("CREATE DATABASE bench")
            dsn = pg.dsn("bench")
            ConsoleDB(dsn).close()
            if "inspect" in parts:
                results["inspect_local"] = local_inspect(policy, args.objects, args.seed)
                print("local", results["inspect_local"], file=sys.stderr)
                for w in (1, 2):
                    results[f"inspect_remote_{w}"] = remote_inspect(tmp, redis.url, policy, w, args.objects,
                                                                    args.seed)
                    print(f"remote {w}", results[f"inspect_remote_{w}"], file=sys.stderr)
            if "ingest" in parts:
                assert redis.proc is not None and pg.proc is not None
                results["ingest"] = ingest(tmp, redis.url, dsn, redis.proc.pid, pg.proc.pid, args.alerts, args.batch)
                print("ingest", results["ingest"], file=sys.stderr)
            if "faults" in parts:
                results["faults"] = faults(tmp, redis, pg, dsn, args.outage_s, args.fault_rate)
                print("faults", results["faults"], file=sys.stderr)
        finally:
            redis.close()
            pg.stop()
    results["load_average_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
