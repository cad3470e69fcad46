#!/usr/bin/env python3
"""Live capture benchmark: the highest tcpreplay rate each receiver takes with < 0.1 % loss.

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
    ap.add_argument("--inspect-workers", type=int, default=1, help="pool processes of the tapsiftNkw receivers")
    args = ap.parse_args()
    if args.nice:
        NICE[:] = ["nice", "-n", str(args.nice)]
    why = netns_unavailable()
    if why:
        print(f"live_bench: {why}", file=sys.stderr)
        return 1
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
