#!/usr/bin/env python3
"""Live capture benchmark: capture capacity (a loss sweep) and inspection at line rate (planted).

**Inspection at line rate** (``--planted``): a capture made by ``bench/make_planted.py`` (the HTTP
mix with ≥ 500 planted violations of each kind: HTML page, plain-text upload, JSON API body,
DOCX, PDF, image with rendered text) replayed at each rate into ``tapsift run --workers 2`` with
its inspection pool (auto-sized), once per policy (``kw``: ``bench/live_policy.yaml``, keywords
and data classes; ``sample``: ``policies/sample.yaml``; both with repeat suppression off, so
that every planted object may alert):

    sudo .venv/bin/python bench/live_bench.py bench/data/planted.pcap --planted \\
        --rates 100,500,1000 --policies kw,sample

Per policy and rate: kernel drops, objects, jobs offered/inspected/shed per cost class (by
reason), planted violations alerted per kind (and why the others were not: shed, still queued
and spooled at SIGTERM, or inspected without an alert), the median and p99 latency from the
object's capture to its alert (``tapsift.inspection.done`` − the alert's packet timestamp), the
sensor's exit status at SIGTERM and the load average. After the replay the run waits until both
queues are empty (or ``--wait`` seconds), then stops the sensor (SIGTERM: drain, spool).

**Capture capacity** (default): the highest tcpreplay rate each receiver takes with < 0.1 % loss.

    sudo .venv/bin/python bench/live_bench.py bench/data/workload.pcap \\
        --rates 300,600,900,1200,1500,2000,top --receivers tcpdump,tapsift1,tapsift2

For every receiver and rate (ascending, one run after the other in this one invocation):
a fresh pair of network namespaces joined by a veth (tests/live/netns.py), the receiver on the
capture end, ``tcpreplay --preload-pcap --mbps R`` (``top`` = ``--topspeed``) pinned to core 0 on
the sender end, then the receiver is stopped once it has taken everything the kernel offered.

Receivers: ``tcpdump`` = ``tcpdump -w /dev/null -B <ring>`` (the C reference, libpcap's
TPACKET_V3 ring of the same size as one tapsift worker's); ``tapsiftN`` = ``tapsift run`` with N
workers, the full cheap path (decode, reassembly, HTTP/SMTP/FTP/SMB parsing, content objects,
md5/sha256, libmagic, EVE); ``tapsiftNkw`` = the same with ``--policy bench/live_policy.yaml
--inspect-workers 1``: the workers scan plain-text objects for keywords and data classes
themselves and offer the rest (HTML, documents, images) to the pool, which sheds what it cannot
take (counted, never blocking capture). Loss = (tcpreplay's "Actual" packets − packets the receiver
processed) / sent; kernel drops (PACKET_STATISTICS / pcap_stats) are reported beside it. A
receiver's sweep stops after its second lossy rate. CPU seconds are the receiver's own
(wait4, including its worker processes).

Output: a Markdown table on stdout and JSON in ``bench/out/live_bench-<capture>.json``.
Nothing leaves the namespaces: the capture's addresses only exist on the veth pair.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.live.harness import TAPSIFT, read_events  # noqa: E402
from tests.live.netns import VethPair, netns_unavailable  # noqa: E402

LOSS_LIMIT = 0.001
NICE: list[str] = []
"""``nice -n N`` for receiver and sender (``--nice``): shields the runs from co-tenant load."""


def _wait4(proc: subprocess.Popen[str], timeout: float) -> float:
    """Wait for ``proc``; its CPU seconds (user + sys, with reaped descendants)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid, _status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = 0
            return ru.ru_utime + ru.ru_stime
        time.sleep(0.05)
    proc.kill()
    _pid, _status, ru = os.wait4(proc.pid, 0)
    return ru.ru_utime + ru.ru_stime


def run_tcpdump(pair: VethPair, pcap: Path, replay_args: list[str], ring_mb: int, workdir: Path) -> dict:
    err = workdir / "tcpdump.err"
    with err.open("w") as fh:
        proc = subprocess.Popen(pair.exec_rx(*NICE, "tcpdump", "-i", pair.rx_if, "-w", "/dev/null", "-n", "-B",
                                             str(ring_mb * 1024), "-s", "262144"), stderr=fh, text=True)
    time.sleep(1.0)
    sent = pair.replay(pcap, *replay_args, timeout=900)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    cpu = _wait4(proc, 30)
    text = err.read_text()
    got = int(next(ln.split()[0] for ln in text.splitlines() if "captured" in ln))
    kdrop = int(next(ln.split()[0] for ln in text.splitlines() if "dropped by kernel" in ln))
    return {"sent": sent, "received": got, "kernel_drops": kdrop, "cpu_s": round(cpu, 2)}


def run_tapsift(pair: VethPair, pcap: Path, replay_args: list[str], workers: int, ring_mb: int,
                workdir: Path, extra: list[str] | None = None) -> dict:
    eve = workdir / f"eve-{workers}.json"
    eve.unlink(missing_ok=True)
    err = workdir / "tapsift.err"
    with err.open("w") as fh:
        proc = subprocess.Popen(pair.exec_rx(*NICE, TAPSIFT, "run", "-i", pair.rx_if, "--workers", str(workers),
                                             "--ring-mb", str(ring_mb), "--eve", str(eve), "--metrics", "",
                                             "--stats-interval", "0.5", "--no-check", *(extra or [])),
                                stderr=fh, text=True)
    deadline = time.monotonic() + 30
    while not any(e["event_type"] == "stats" for e in read_events(eve)) and time.monotonic() < deadline:
        time.sleep(0.1)
    sent = pair.replay(pcap, *replay_args, timeout=900)
    # wait until the workers have taken everything the kernel offered (or 60 s)
    deadline = time.monotonic() + 60
    last = None
    while time.monotonic() < deadline:
        stats = [e["stats"] for e in read_events(eve) if e["event_type"] == "stats"]
        if stats:
            st = stats[-1]
            done = st["packets"] + st["capture"]["kernel_drops"]
            if st["capture"]["kernel_packets"] >= sent["packets"] and done >= st["capture"]["kernel_packets"]:
                break
            if last == done:
                pass
            last = done
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    cpu = _wait4(proc, 60)
    final = [e["stats"] for e in read_events(eve) if e["event_type"] == "stats"][-1]
    eve.unlink(missing_ok=True)
    return {"sent": sent, "received": final["packets"], "kernel_drops": final["capture"]["kernel_drops"],
            "objects": final["objects"], "cpu_s": round(cpu, 2), "alerts": final.get("alerts", 0),
            "inspected_in_worker": final.get("inspected_in_worker", 0), "not_inspected": final.get("not_inspected", 0),
            "per_worker_packets": {k: w["packets"] for k, w in final["workers"].items()}}


# --------------------------------------------------------------------------------------------
# inspection at line rate (--planted)
# --------------------------------------------------------------------------------------------

POLICIES = {"kw": ROOT / "bench" / "live_policy.yaml", "sample": ROOT / "policies" / "sample.yaml"}


def _no_suppression(src: Path, dst: Path) -> Path:
    """``src`` with repeat suppression off (every planted object may alert on its own)."""
    text = src.read_text(encoding="utf-8")
    if "\nsuppression:" in text:
        head, _, tail = text.partition("\nsuppression:")
        rest = tail.split("\n\n", 1)
        text = head + "\nsuppression:\n  window_s: 0\n" + ("\n" + rest[1] if len(rest) > 1 else "")
    else:
        text += "\nsuppression:\n  window_s: 0\n"
    dst.write_text(text, encoding="utf-8")
    return dst


def _ts_ns(text: str) -> int:
    from datetime import datetime

    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1e9)


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(q * len(v)))], 2)


def _score(events: list[dict], planted: list[dict]) -> dict:
    """Planted violations alerted per kind, why the others were not, and alert latencies."""
    by_url = {p["url"]: p for p in planted}
    by_md5 = {p["md5"]: p for p in planted}
    alerted: dict[str, float | None] = {}
    for e in events:
        if e["event_type"] != "alert":
            continue
        p = by_url.get(e.get("http", {}).get("url", ""))
        if p is None or e.get("fileinfo", {}).get("md5") != p["md5"] or p["url"] in alerted:
            continue
        info = e.get("tapsift", {}).get("inspection") or {}
        alerted[p["url"]] = (_ts_ns(info["done"]) - _ts_ns(e["timestamp"])) / 1e9 if "done" in info else None
    shed: dict[str, str] = {}
    for e in events:
        an = e.get("anomaly", {})
        if an.get("event") == "not_inspected":
            p = by_md5.get(e.get("tapsift", {}).get("md5", ""))
            if p is not None and p["url"] not in alerted:
                shed[p["url"]] = f"{an.get('class', '?')}:{an.get('reason', '?')}"
    kinds: dict[str, dict] = {}
    for p in planted:
        k = kinds.setdefault(p["kind"], {"planted": 0, "alerted": 0, "shed": {}, "latency": []})
        k["planted"] += 1
        if p["url"] in alerted:
            k["alerted"] += 1
            if alerted[p["url"]] is not None:
                k["latency"].append(alerted[p["url"]])
        elif p["url"] in shed:
            k["shed"][shed[p["url"]]] = k["shed"].get(shed[p["url"]], 0) + 1
    for k in kinds.values():
        lat = k.pop("latency")
        k["recall"] = round(k["alerted"] / k["planted"], 4) if k["planted"] else 0.0
        k["latency_s"] = {"median": _pct(lat, 0.5), "p99": _pct(lat, 0.99)}
    return kinds


def _wait_queues(sensor_eve: Path, sent: int, wait_s: float) -> dict:
    """After the replay: until the workers took every packet, then until both inspection queues
    are empty (or ``wait_s``); the last stats and when the cheap queue emptied."""
    t0 = time.monotonic()
    st: dict = {}
    cheap_empty = None
    while time.monotonic() - t0 < wait_s:
        stats = [e["stats"] for e in read_events(sensor_eve) if e["event_type"] == "stats"]
        if stats:
            st = stats[-1]
            cap = st["capture"]
            taken = st["packets"] + cap["kernel_drops"] >= cap["kernel_packets"] >= sent
            q = {c: v["queued"] for c, v in st.get("inspection", {}).get("classes", {}).items()}
            if taken and q.get("cheap", 0) == 0 and cheap_empty is None:
                cheap_empty = round(time.monotonic() - t0, 1)
            if taken and not any(q.values()):
                break
        time.sleep(1.0)
    return {"stats": st, "cheap_drained_s": cheap_empty, "waited_s": round(time.monotonic() - t0, 1)}


def run_planted(pair: VethPair, pcap: Path, rate: str, policy: Path, workers: int, ring_mb: int, workdir: Path,
                wait_s: float, extra: list[str]) -> dict:
    eve = workdir / "eve.json"
    eve.unlink(missing_ok=True)
    state = workdir / "state"
    subprocess.run(["rm", "-rf", str(state)], check=True)
    err = workdir / "tapsift.err"
    with err.open("w") as fh:
        proc = subprocess.Popen(pair.exec_rx(*NICE, TAPSIFT, "run", "-i", pair.rx_if, "--workers", str(workers),
                                             "--ring-mb", str(ring_mb), "--eve", str(eve), "--metrics", "",
                                             "--stats-interval", "1", "--no-check", "--policy", str(policy),
                                             "--state-dir", str(state), *extra), stderr=fh, text=True)
    deadline = time.monotonic() + 60
    while not any(e["event_type"] == "stats" for e in read_events(eve)) and time.monotonic() < deadline:
        time.sleep(0.2)
    load0 = os.getloadavg()
    sent = pair.replay(pcap, "--preload-pcap", "--mbps", rate, timeout=900)
    after = _wait_queues(eve, sent["packets"], wait_s)
    load1 = os.getloadavg()
    t_stop = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    cpu = _wait4(proc, 120)
    stop_s = round(time.monotonic() - t_stop, 1)
    events = read_events(eve)
    final = [e["stats"] for e in events if e["event_type"] == "stats"][-1]
    cap = final["capture"]
    spooled = next((int(ln.split("spooled ", 1)[1].split()[0]) for ln in err.read_text().splitlines()
                    if "spooled " in ln and "queued job" in ln), 0)
    return {"sent": sent, "kernel_packets": cap["kernel_packets"], "kernel_drops": cap["kernel_drops"],
            "drop_ratio": round(cap["kernel_drops"] / max(1, cap["kernel_packets"]), 6), "objects": final["objects"],
            "alerts": final["alerts"], "inspection": final.get("inspection"), "events": events, "cpu_s": round(cpu, 2),
            "exit": proc.returncode, "stop_s": stop_s, "spooled_at_stop": spooled, "load": [load0, load1],
            "cheap_drained_s": after["cheap_drained_s"], "waited_s": after["waited_s"],
            "queues_at_stop": {c: v["queued"] for c, v in (after["stats"].get("inspection") or {}).get(
                "classes", {}).items()}}


def planted(args: argparse.Namespace) -> int:
    """Inspection at line rate (see the module doc)."""
    manifest = json.loads(args.capture.with_name(args.capture.stem + ".manifest.json").read_text())
    plants = manifest["planted"]
    workdir = Path("/tmp") / f"tapsift-live-bench-{os.getpid()}"
    workdir.mkdir(exist_ok=True)
    extra = args.extra.split()
    results = []
    for pol in [p.strip() for p in args.policies.split(",") if p.strip()]:
        policy = _no_suppression(POLICIES[pol], workdir / f"{pol}.yaml")
        for rate in [r.strip() for r in args.rates.split(",") if r.strip()]:
            with VethPair(tag="p") as pair:
                pair.sender_cpu = 0
                pair.sender_nice = args.nice
                r = run_planted(pair, args.capture, rate, policy, args.workers, args.ring_mb, workdir, args.wait,
                                extra)
            r["kinds"] = _score(r.pop("events"), plants)
            r.update(policy=pol, rate=rate,
                     achieved_mbps=round(r["sent"]["bytes"] * 8 / r["sent"]["seconds"] / 1e6, 1))
            results.append(r)
            print(_line(r), file=sys.stderr, flush=True)
    _table(results, args, manifest["summary"])
    out = args.json or ROOT / "bench" / "out" / f"live_bench-planted-{args.capture.stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"capture": str(args.capture), "summary": manifest["summary"], "cpus": os.cpu_count(),
                               "runs": results}, indent=1))
    print(f"\nJSON: {out}")
    return 0


def _line(r: dict) -> str:
    ins = r.get("inspection") or {}
    cls = "; ".join(f"{c}: offered {v['offered']}, inspected {v['inspected']}, shed {v['shed'] or 0}"
                    for c, v in ins.get("classes", {}).items())
    kinds = ", ".join(f"{k} {v['alerted']}/{v['planted']}" for k, v in r["kinds"].items())
    return (f"{r['policy']:6} {r['rate']:>5} Mbit/s ({r['achieved_mbps']}): drops {r['kernel_drops']} "
            f"({r['drop_ratio'] * 100:.3f} %), objects {r['objects']}; {cls}; planted alerted: {kinds}; "
            f"cheap drained after {r['cheap_drained_s']} s; exit {r['exit']} after {r['stop_s']} s, "
            f"spooled {r['spooled_at_stop']}; load {r['load'][0][0]:.1f}→{r['load'][1][0]:.1f}")


def _io(classes: dict, cls: str) -> str:
    v = classes.get(cls, {})
    return f"{v.get('inspected', 0):,} / {sum(v.get('shed', {}).values()):,} {v.get('shed') or ''}".strip()


def _table(results: list[dict], args: argparse.Namespace, summary: dict) -> None:
    kinds = ["html", "text", "json", "docx", "pdf", "image"]
    print(f"\nCapture: {args.capture.name} ({summary.get('frame_bytes', 0) / 1e6:.0f} MB, {summary.get('objects')} "
          f"objects, {summary.get('planted')} planted); {args.workers} capture workers, ring {args.ring_mb} MiB; "
          f"nice {args.nice}; {os.cpu_count()} CPUs\n")
    print("| policy | rate (Mbit/s) | kernel drops | cheap: inspected / shed | expensive: inspected / shed | "
          + " | ".join(kinds) + " | latency median / p99 (s) | exit | load |")
    print("|---|---|---|---|---|" + "---|" * len(kinds) + "---|---|---|")
    for r in results:
        c = (r.get("inspection") or {}).get("classes", {})
        cells = []
        for k in kinds:
            v = r["kinds"].get(k)
            cells.append(f"{v['recall'] * 100:.1f} %" if v else "—")
        lat = [x for v in r["kinds"].values() for x in (v["latency_s"]["median"],) if x is not None]
        p99 = [v["latency_s"]["p99"] for v in r["kinds"].values() if v["latency_s"]["p99"] is not None]

        print(f"| {r['policy']} | {r['rate']} ({r['achieved_mbps']:,}) | {r['kernel_drops']:,} "
              f"({r['drop_ratio'] * 100:.3f} %) | {_io(c, 'cheap')} | {_io(c, 'expensive')} | " + " | ".join(cells)
              + f" | {min(lat) if lat else '—'} / {max(p99) if p99 else '—'} | {r['exit']} | "
              f"{r['load'][0][0]:.1f}–{r['load'][1][0]:.1f} |")


def _autogroup(nice: int) -> None:
    """With the kernel's autogroup scheduling, CPU is shared between sessions first and ``nice``
    only orders the processes inside one: give this session (sender, receiver and their children)
    the same niceness, so that ``--nice`` shields the runs from co-tenant load as intended."""
    try:
        with open("/proc/sys/kernel/sched_autogroup_enabled", encoding="ascii") as fh:
            if fh.read().strip() != "1":
                return
        with open("/proc/self/autogroup", "w", encoding="ascii") as fh:
            fh.write(str(nice))
        print(f"live_bench: autogroup scheduling is on: this session's autogroup niceness set to {nice}",
              file=sys.stderr)
    except OSError as exc:
        print(f"live_bench: cannot set the autogroup niceness ({exc}): co-tenant load will show", file=sys.stderr)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture", type=Path, nargs="?", default=ROOT / "bench" / "data" / "workload.pcap")
    ap.add_argument("--rates", default="300,600,900,1200,1500,2000,top",
                    help="Mbit/s, ascending, comma-separated; 'top' = --topspeed")
    ap.add_argument("--receivers", default="tcpdump,tapsift1,tapsift2")
    ap.add_argument("--ring-mb", type=int, default=64, help="ring per worker (tcpdump: -B of the same size)")
    ap.add_argument("--min-seconds", type=float, default=4.0, help="loop the capture to last at least this long")
    ap.add_argument("--nice", type=int, default=-10,
                    help="niceness of receiver and sender (as in shared/notes/performance.md; 0 = off)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--policy", type=Path, default=ROOT / "bench" / "live_policy.yaml",
                    help="policy of the tapsiftNkw receivers (keyword scan of every object)")
    ap.add_argument("--inspect-workers", default="1", help="pool processes of the tapsiftNkw receivers")
    ap.add_argument("--planted", action="store_true",
                    help="inspection at line rate on a bench/make_planted.py capture (see the module doc)")
    ap.add_argument("--policies", default="kw,sample", help="--planted: kw (bench/live_policy.yaml), sample")
    ap.add_argument("--workers", type=int, default=2, help="--planted: capture workers")
    ap.add_argument("--wait", type=float, default=180.0,
                    help="--planted: seconds after the replay to wait for the inspection queues to empty")
    ap.add_argument("--extra", default="", help="--planted: more `tapsift run` arguments (space-separated)")
    args = ap.parse_args()
    if args.nice:
        NICE[:] = ["nice", "-n", str(args.nice)]
        _autogroup(args.nice)
    why = netns_unavailable()
    if why:
        print(f"live_bench: {why}", file=sys.stderr)
        return 1
    return planted(args) if args.planted else sweep(args)


def sweep(args: argparse.Namespace) -> int:
    """The capture-capacity sweep (see the module doc)."""
    size_bits = args.capture.stat().st_size * 8
    rates = [r.strip() for r in args.rates.split(",") if r.strip()]
    results: list[dict] = []
    workdir = Path("/tmp") / f"tapsift-live-bench-{os.getpid()}"
    workdir.mkdir(exist_ok=True)
    load0 = os.getloadavg()
    for receiver in [r.strip() for r in args.receivers.split(",")]:
        lossy = 0
        for rate in rates:
            if rate == "top":
                replay = ["--preload-pcap", "--topspeed"]
                loops = 2
            else:
                loops = max(1, math.ceil(args.min_seconds / (size_bits / (float(rate) * 1e6))))
                replay = ["--preload-pcap", "--mbps", rate]
            if loops > 1:
                replay += ["--loop", str(loops)]
            with VethPair(tag="b") as pair:
                pair.sender_cpu = 0
                pair.sender_nice = args.nice
                if receiver == "tcpdump":
                    r = run_tcpdump(pair, args.capture, replay, args.ring_mb, workdir)
                else:
                    name = receiver.removeprefix("tapsift")
                    extra = []
                    if name.endswith("kw"):  # with the keyword policy: cheap scan in workers, the rest pooled
                        name = name.removesuffix("kw")
                        extra = ["--policy", str(args.policy), "--inspect-workers", str(args.inspect_workers)]
                    r = run_tapsift(pair, args.capture, replay, int(name), args.ring_mb, workdir, extra)
            sent = r["sent"]["packets"]
            r.update(receiver=receiver, rate=rate, loops=loops, loss=round((sent - r["received"]) / sent, 6),
                     achieved_mbps=round(r["sent"]["bytes"] * 8 / r["sent"]["seconds"] / 1e6, 1),
                     kpps=round(sent / r["sent"]["seconds"] / 1e3, 1))
            results.append(r)
            print(f"{receiver:9} {rate:>5} Mbit/s: sent {sent:,} at {r['achieved_mbps']:,} Mbit/s, "
                  f"received {r['received']:,}, loss {r['loss'] * 100:.3f} %, kernel drops {r['kernel_drops']:,}, "
                  f"{r['cpu_s']} CPU-s" + (f"; objects {r['objects']:,}: {r['inspected_in_worker']:,} inspected in "
                                           f"the workers, {r['not_inspected']:,} shed by the pool, "
                                           f"{r['alerts']} alerts" if receiver.endswith("kw") else ""),
                  file=sys.stderr, flush=True)
            if r["loss"] >= LOSS_LIMIT:
                lossy += 1
                if lossy >= 2:
                    break
    load1 = os.getloadavg()
    print(f"\nCapture: {args.capture.name} ({args.capture.stat().st_size / 1e6:.1f} MB); ring {args.ring_mb} MiB per "
          f"worker; nice {args.nice}; sender on CPU 0; {os.cpu_count()} CPUs; "
          f"load average {load0[0]:.2f} → {load1[0]:.2f}\n")
    print("| receiver | loss-free up to (every lower rate < 0.1 %) | highest rate with < 0.1 % loss | first rate with "
          "loss | receiver CPU-s per GB |")
    print("|---|---|---|---|---|")
    summary = {}
    for receiver in dict.fromkeys(r["receiver"] for r in results):
        rs = [r for r in results if r["receiver"] == receiver]
        ok = [r for r in rs if r["loss"] < LOSS_LIMIT]
        bad = [r for r in rs if r["loss"] >= LOSS_LIMIT]
        best = max(ok, key=lambda r: r["achieved_mbps"]) if ok else None
        first_bad = bad[0] if bad else None
        clean = [r for r in ok if first_bad is None or r["achieved_mbps"] < first_bad["achieved_mbps"]]
        strict = f"{clean[-1]['achieved_mbps']:,} Mbit/s" if clean else "—"
        summary[receiver] = {
            "loss_free_mbps": best["achieved_mbps"] if best else None,
            "loss_free_all_below_mbps": clean[-1]["achieved_mbps"] if clean else None,
            "first_lossy": first_bad and {"mbps": first_bad["achieved_mbps"], "loss": first_bad["loss"]},
        }
        best_txt = f"{best['achieved_mbps']:,} Mbit/s ({best['kpps']} kpps, requested {best['rate']})" if best else "—"
        bad_txt = (f"{first_bad['achieved_mbps']:,} Mbit/s: {first_bad['loss'] * 100:.2f} %" if first_bad
                   else "none up to the sender's maximum")
        cpu_txt = f"{best['cpu_s'] / (best['sent']['bytes'] / 1e9):.2f}" if best else "—"
        print(f"| {receiver} | {strict} | {best_txt} | {bad_txt} | {cpu_txt} |")
    out = args.json or ROOT / "bench" / "out" / f"live_bench-{args.capture.stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"capture": str(args.capture), "ring_mb": args.ring_mb, "cpus": os.cpu_count(),
                               "load": [load0, load1], "runs": results, "summary": summary}, indent=1))
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
