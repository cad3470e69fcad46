#!/usr/bin/env python3
"""Behaviour anomaly benchmark: precision, recall and F1 per anomaly kind on a labelled month.

    .venv/bin/python bench/anomaly_bench.py [--seed 2] [--no-feedback] [--no-e2e] [--json OUT]

1. The month (`bench/anomaly_world.py`, seeds and parameters fixed before the detectors were
   tuned: seed 1 tuned on, seed 2 held out) is turned into content objects and fed to the
   behaviour stage the way the sensor does: in packet-time order, ``observe`` per object,
   ``tick`` every minute of packet time, alerts collected. The policy is a YAML file loaded by
   ``policies.schema.load_policy`` (`POLICY`), so thresholds take the same path as at a site.
2. An analyst works the queue (unless ``--no-feedback``): every alert gets a verdict the next
   morning (true or false positive from the labels); a false positive also rebaselines the host
   (volume, off-hours, sustained, peer-outlier alerts) or teaches the destination (new
   destination, beaconing), as an analyst would with the console.
3. Scoring: an alert is true when it names the anomaly's subject (the host; for a zone burst the
   zone or one of the hosts that took part) and its window overlaps the anomaly's span (one window
   of slack on each side). Recall per kind counts anomalies with at least one true alert (a zone
   burst needs the zone alert); precision per kind counts the alerts of the detector kinds that
   answer it. False alerts are also given per 100 hosts per day.
4. End to end once (unless ``--no-e2e``): a series of daily captures written with tools/synth.py
   (`bench/anomaly_capture.py`) is read by ``tapsift read`` one file after the other with
   ``behaviour.enabled`` (the state file carries baselines and the open window between runs);
   the injected upload burst and beacon must come back as EVE alerts naming the host and window.

Prints Markdown tables and a line ``overall F1 X.XX``; nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from appliance.model import Alert, ContentObject, Direction, Finding, FlowRef  # noqa: E402
from bench.anomaly_world import TUNE_SEED, VALIDATE_SEED, Truth, World, build  # noqa: E402
from inspectors.behaviour.config import BehaviourConfig  # noqa: E402
from inspectors.behaviour.stage import BehaviourStage  # noqa: E402

POLICY = """\
zones:
  office-a: {cidrs: [10.10.0.0/16]}
  office-b: {cidrs: [10.20.0.0/16]}
  eng: {cidrs: [10.30.0.0/16]}
  servers: {cidrs: [10.90.0.0/24]}
profiles:
  anomalies:
    category: anomaly
    severity: medium
    behaviour:
      subjects: [host, zone]
policies:
  - name: internal-behaviour
    source_zone: [office-a, office-b, eng, servers]
    profiles: [anomalies]
"""

KIND_OF_ALERT = {
    "volume": "bulk", "offhours": "offhours", "sustained": "slow", "new-destination": "newdest",
    "beaconing": "beacon", "peer-outlier": "peer-outlier",
}
"""Which truth kind each alert kind answers (a zone's volume alert answers ``zoneburst``)."""
KINDS = ("bulk", "slow", "newdest", "offhours", "beacon", "zoneburst")


def _policy_rules() -> tuple:
    from policies.behaviour import behaviour_configs
    from policies.schema import load_policy

    return behaviour_configs(load_policy(POLICY))


def _objects(world: World):
    """(object, findings) for every transfer, in time order."""
    zone_of = {h.ip: h.zone for h in world.hosts}
    sip = world.server_ip
    for n, t in enumerate(world.transfers(), start=1):
        zone = zone_of.get(t.client, "any")
        server = sip.get(t.server, "203.0.113.9")
        server_zone = "servers" if server.startswith("10.90.") else "any"
        d = Direction.TO_SERVER if t.upload else Direction.TO_CLIENT
        if t.upload:
            ref = FlowRef(f"C{n}", n, t.client, 50000 + n % 10000, server, 443, "TCP", 0, "eth0", zone, server_zone)
        else:
            ref = FlowRef(f"C{n}", n, server, 443, t.client, 50000 + n % 10000, "TCP", 0, "eth0", zone, server_zone)
        obj = ContentObject(id=f"F{n}", source="http", direction=d, flow=ref, ts_ns=t.ts_ns, size=t.size, md5="",
                            sha256="", declared_mime=t.mime, sniffed_mime=t.mime, host=t.domain,
                            method="POST" if t.upload else "GET", user_agent=t.user_agent)
        findings: list[Finding] = []
        if t.dataclass_hits:
            findings.append(Finding("dataclass", obj.id, "pii", 1.0, detail={"count": str(t.dataclass_hits)}))
        if t.keyword_hits:
            findings.append(Finding("keyword", obj.id, "confidential", 1.0, detail={"count": str(t.keyword_hits)}))
        yield obj, findings


def _matches(a: Alert, t: Truth, slack_ns: int) -> bool:
    """Whether alert ``a`` is about anomaly ``t``: same host (a zone burst: the zone, or a host
    that took part) and overlapping windows. A zone's alert during a host's anomaly in that zone
    is about it too (the zone's sums moved because of it), though it does not detect it."""
    subj_kind, _, name = a.subject.partition(":")
    if t.kind == "zoneburst":
        ok = (subj_kind == "zone" and name == t.zone) or (subj_kind == "host" and name in t.participants)
    else:
        ok = (subj_kind == "host" and name == t.subject) or (subj_kind == "zone" and name == t.zone)
    return ok and a.window_start_ns <= t.end_ns + slack_ns and a.window_end_ns >= t.start_ns - slack_ns


def _kind(a: Alert) -> str:
    d = a.findings[0].detail if a.findings else {}
    k = d.get("kind", "")
    if a.subject.startswith("zone:"):
        return "zoneburst"
    return KIND_OF_ALERT.get(k, k)


class Analyst:
    """Works the alert queue the next morning at 09:00 (site time) with the labels' answers."""

    def __init__(self, stage: BehaviourStage, world: World) -> None:
        self.stage = stage
        self.world = world
        self.todo: list[tuple[int, Alert, bool]] = []
        self.done = Counter()

    def see(self, alert: Alert, true: bool) -> None:
        local = datetime.fromtimestamp(alert.ts_ns / 1e9, self.world.tz) + timedelta(hours=15)
        due = local.replace(hour=9, minute=0, second=0, microsecond=0)
        if due < local - timedelta(hours=15):
            due += timedelta(days=1)
        self.todo.append((int(due.timestamp() * 1e9), alert, true))

    def work(self, now_ns: int) -> None:
        keep = []
        for due, alert, true in self.todo:
            if due > now_ns:
                keep.append((due, alert, true))
                continue
            verdict = "true_positive" if true else "false_positive"
            self.stage.record_verdict(alert.id, verdict, user="bench-analyst")
            self.done[verdict] += 1
            kind = alert.findings[0].detail.get("kind", "") if alert.findings else ""
            if not true and kind in ("volume", "offhours", "sustained", "peer-outlier"):
                self.stage.rebaseline(alert.subject, user="bench-analyst")
                self.done["rebaseline"] += 1
        self.todo = keep


def run(seed: int, *, feedback: bool = True, verbose: bool = False) -> dict:
    world = build(seed)
    p = world.params
    cfg = BehaviourConfig(timezone=p.timezone, holidays=p.holidays, internal_cidrs=world.internal_cidrs)
    stage = BehaviourStage(cfg, rules=_policy_rules(), categories=world.categories)
    stage.anomaly_log = [] if verbose else None
    analyst = Analyst(stage, world) if feedback else None
    alerts: list[Alert] = []
    slack = cfg.window_s * 10**9
    truth = world.truth
    t0 = time.process_time()
    next_tick = 0
    objects = 0

    repeats: list[Alert] = []

    def collect(batch: list[Alert], now: int) -> None:
        repeats.extend(a for _, a in stage.take_repeats())
        for a in batch:
            alerts.append(a)
            if analyst is not None:
                analyst.see(a, any(_matches(a, t, slack) for t in truth))

    for obj, findings in _objects(world):
        objects += 1
        stage.observe(obj, findings)
        if obj.ts_ns >= next_tick:
            collect(stage.tick(obj.ts_ns), obj.ts_ns)
            if analyst is not None:
                analyst.work(obj.ts_ns)
            next_tick = obj.ts_ns + 60 * 10**9
    end = world.end_ns + 2 * 3600 * 10**9
    collect(stage.tick(end), end)
    collect(stage.close(final=True), end)
    cpu = time.process_time() - t0
    return score(world, alerts, repeats, stage, cpu, objects, analyst)


def score(world: World, alerts: list[Alert], repeats: list[Alert], stage: BehaviourStage, cpu: float, objects: int,
          analyst: Analyst | None) -> dict:
    """Figures of one run; a suppressed repeat (counted on its first alert in the store) detects
    an anomaly but is not an alert of its own."""
    slack = stage.cfg.window_s * 10**9
    truth = world.truth
    detected = [t for t in truth if any(_matches(a, t, slack) and a.subject.startswith(
        "zone:" if t.kind == "zoneburst" else "host:") for a in (*alerts, *repeats))]
    tp_alerts = [a for a in alerts if any(_matches(a, t, slack) for t in truth)]
    fp_alerts = [a for a in alerts if a not in tp_alerts]
    rows = []
    for k in KINDS:
        n = sum(1 for t in truth if t.kind == k)
        det = sum(1 for t in detected if t.kind == k)
        tp = sum(1 for a in tp_alerts if any(_matches(a, t, slack) and t.kind == k for t in truth))
        fp = sum(1 for a in fp_alerts if _kind(a) == k)
        rows.append(_prf(k, n, det, tp, fp))
    fp_other = sum(1 for a in fp_alerts if _kind(a) not in KINDS)
    overall = _prf("overall", len(truth), len(detected), len(tp_alerts), len(fp_alerts))
    hosts = len(world.hosts)
    fp_rate = len(fp_alerts) / (hosts * world.params.days / 100)
    by_detector = Counter((a.findings[0].inspector, a in tp_alerts) for a in alerts)
    mem = stage.memory()
    result = {
        "seed": world.seed, "hosts": hosts, "days": world.params.days, "objects": objects,
        "anomalies": len(truth), "alerts": len(alerts), "true_alerts": len(tp_alerts), "false_alerts": len(fp_alerts),
        "false_alerts_per_100_hosts_day": fp_rate, "kinds": rows, "overall": overall, "false_other": fp_other,
        "detectors": {f"{d} {'TP' if ok else 'FP'}": n for (d, ok), n in sorted(by_detector.items())},
        "cpu_s": cpu, "memory": mem, "counters": dict(stage.counters),
        "missed": [f"{t.kind} {t.subject} {t.note}" for t in truth if t not in detected],
        "false": [_describe(a) for a in fp_alerts],
        "analyst": dict(analyst.done) if analyst else {},
        "precision_by_detector": stage.detector_precision(),
    }
    if stage.anomaly_log is not None:
        result["scores"] = _score_table(stage.anomaly_log, truth, slack)
        result["_anomalies"] = stage.anomaly_log
    return result


def _score_table(anomalies: list, truth: list[Truth], slack: int) -> list[str]:
    """Reported anomalies (alerted or not) per detector/kind: scores of true and false ones."""
    import numpy as np

    groups: dict[tuple[str, str, bool], list[float]] = defaultdict(list)
    for a in anomalies:
        al = Alert(id="", ts_ns=a.end_ns, policy="", profile="", severity=3, category="", content_id="", flow=None,
                   findings=(), subject=a.subject, window_start_ns=a.start_ns, window_end_ns=a.end_ns)
        ok = any(_matches(al, t, slack) for t in truth)
        groups[(a.detector, a.kind if not a.subject.startswith("zone:") else "zone", ok)].append(a.score)
    out = []
    for (d, k, ok), xs in sorted(groups.items()):
        q = np.percentile(xs, [0, 10, 50, 90, 100])
        out.append(f"{d:11s} {k:16s} {'TRUE ' if ok else 'false'} n={len(xs):5d} "
                   + " ".join(f"{v:6.2f}" for v in q))
    return out


def _describe(a: Alert) -> str:
    f = a.findings[0]
    start = datetime.utcfromtimestamp(a.window_start_ns / 1e9).strftime("%m-%d %H:%M")
    return f"{a.subject} {start} {f.inspector} {f.score:.2f} {f.evidence[0].snippet[:160]}"


def _prf(kind: str, n: int, det: int, tp: int, fp: int) -> dict:
    recall = det / n if n else 0.0
    precision = tp / (tp + fp) if tp + fp else (1.0 if not fp else 0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"kind": kind, "anomalies": n, "detected": det, "true_alerts": tp, "false_alerts": fp,
            "precision": precision, "recall": recall, "f1": f1}


def report(r: dict, *, verbose: bool = False) -> None:
    tag = "tuning" if r["seed"] == TUNE_SEED else "held out" if r["seed"] == VALIDATE_SEED else "other"
    print(f"\n### seed {r['seed']} ({tag}): {r['hosts']} hosts, {r['days']} days, {r['objects']:,} objects, "
          f"{r['anomalies']} injected anomalies\n")
    print("| kind | anomalies | detected | true alerts | false alerts | precision | recall | F1 |")
    print("|---|---|---|---|---|---|---|---|")
    for row in [*r["kinds"], r["overall"]]:
        print(f"| {row['kind']} | {row['anomalies']} | {row['detected']} | {row['true_alerts']} | "
              f"{row['false_alerts']} | {row['precision']:.2f} | {row['recall']:.2f} | {row['f1']:.2f} |")
    print(f"\nfalse alerts per 100 hosts per day: {r['false_alerts_per_100_hosts_day']:.2f} "
          f"({r['false_alerts']} false of {r['alerts']} alerts; {r['false_other']} from the peer forest)")
    print("alerts by detector: " + ", ".join(f"{k} {v}" for k, v in r["detectors"].items()))
    m = r["memory"]
    print(f"memory: {m['hosts']} hosts, {m['bytes_per_host']:,} B per host (upper estimate), "
          f"{m['total_bytes'] / 1e6:.1f} MB in all; CPU {r['cpu_s']:.0f} s "
          f"({r['cpu_s'] * 1e6 / r['objects']:.1f} µs per object)")
    if r["analyst"]:
        print("analyst: " + ", ".join(f"{k} {v}" for k, v in sorted(r["analyst"].items())))
    if verbose:
        for line in r.get("scores", []):
            print("  scores:", line)
        for line in r["missed"]:
            print("  missed:", line)
        for line in r["false"]:
            print("  false:", line)
    print(f"\noverall F1 {r['overall']['f1']:.2f}")


def end_to_end(days: int = 10) -> dict:
    """`tapsift read` over a series of daily captures (bench/anomaly_capture.py), one run per file
    with the state file carried between runs; the EVE alerts that name a subject are scored
    against the injected anomalies (same host, overlapping window)."""
    import os
    import subprocess
    import tempfile

    from bench.anomaly_capture import POLICY as CAPTURE_POLICY
    from bench.anomaly_capture import write_days

    with tempfile.TemporaryDirectory(prefix="tapsift-behaviour-") as tmp:
        d = Path(tmp)
        t0 = time.monotonic()
        paths, injected = write_days(d / "caps", days)
        (d / "policy.yaml").write_text(CAPTURE_POLICY)
        (d / "settings.yaml").write_text(f"inspection: {{policy: {d / 'policy.yaml'}}}\n"
                                         f"output: {{store: {d / 'alerts.db'}}}\nbehaviour: {{enabled: true}}\n")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        tapsift = [sys.executable, "-m", "appliance.cli"]
        alerts = []
        for p in paths:
            eve = d / f"{p.stem}.json"
            subprocess.run([*tapsift, "read", "--config", str(d / "settings.yaml"), "--eve", str(eve), "-q", str(p)],
                           check=True, env=env, capture_output=True)
            for line in eve.read_text().splitlines():
                rec = json.loads(line)
                ts = rec.get("tapsift") or {}
                if rec.get("event_type") == "alert" and ts.get("subject"):
                    alerts.append(ts)
        wall = time.monotonic() - t0

    def ns(iso: str) -> int:
        return int(datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1e9)

    def hit(a: dict, t: object) -> bool:
        return (a["subject"] == f"host:{t.host}" and ns(a["window_start"]) < t.end_ns  # type: ignore[attr-defined]
                and ns(a["window_end"]) > t.start_ns)  # type: ignore[attr-defined]

    found = [t for t in injected if any(hit(a, t) for a in alerts)]
    false = [a for a in alerts if not any(hit(a, t) for t in injected)]
    return {"days": days, "injected": len(injected), "found": len(found), "alerts": len(alerts),
            "false": len(false), "wall_s": wall,
            "lines": [f"{a['subject']} {a['window_start'][:16]}..{a['window_end'][11:16]} "
                      f"{a['findings'][0]['inspector']} {a['findings'][0]['score']}" for a in alerts]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seed", type=int, default=VALIDATE_SEED, help=f"world seed (tuning {TUNE_SEED}, "
                    f"held out {VALIDATE_SEED}; default the held-out one)")
    ap.add_argument("--no-feedback", action="store_true", help="no analyst verdicts")
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end run through tapsift read")
    ap.add_argument("-v", "--verbose", action="store_true", help="list missed anomalies and false alerts")
    ap.add_argument("--json", metavar="OUT", help="write the figures as JSON")
    args = ap.parse_args(argv)
    r = run(args.seed, feedback=not args.no_feedback, verbose=args.verbose)
    report(r, verbose=args.verbose)
    if not args.no_e2e:
        e = end_to_end()
        r["end_to_end"] = e
        print(f"\nend to end (tapsift read over {e['days']} daily captures, state carried between runs): "
              f"{e['found']}/{e['injected']} injected anomalies alerted with host and window, "
              f"{e['false']} false of {e['alerts']} behaviour alerts ({e['wall_s']:.0f} s)")
        for line in e["lines"]:
            print("  e2e alert:", line)
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in r.items() if not k.startswith("_")}, indent=2,
                                              default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
