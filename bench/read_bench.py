#!/usr/bin/env python3
"""Offline read benchmark: tapsift side by side with tshark and tcpflow on one capture.

    .venv/bin/python bench/read_bench.py CAPTURE [--runs 3] [--manifest M.json] [--json OUT.json]
        [--config SETTINGS.yaml] [--offload]

Each run executes, one after the other, ``tapsift read X --eve TMP``, ``tshark -r X -q
--export-objects http,DIR`` and ``tcpflow -r X -e http -o DIR``. Per command it takes the
child's CPU time (user+sys) and peak RSS from ``os.wait4`` and the wall time; it reports the
median over runs, Mbit/s per CPU-second (capture frame bits / CPU s) and the ratios tapsift/tshark
and tapsift/tcpflow. With a manifest (``make_workload.py`` writes one next to the capture) it
counts how many objects each tool recovered md5-exact: tapsift from its EVE fileinfo md5s,
tshark and tcpflow by hashing the files they wrote. Prints a Markdown table, writes JSON.
``--config`` passes a settings file to tapsift (``reassembly.fast_path: false`` for the pure-Python
path); ``--offload`` also reads a copy of the capture as made on its servers (their TCP/UDP
checksums unfinished, as transmit checksum offload leaves them: `tools.synth.offload_capture`) and
reports its throughput relative to the clean capture in the same run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def frame_bytes(path: Path) -> int:
    """Sum of captured frame lengths of a classic pcap (file size for anything else)."""
    with path.open("rb") as f:
        head = f.read(24)
        if len(head) < 24 or head[:4] not in (
            b"\xd4\xc3\xb2\xa1",
            b"\x4d\x3c\xb2\xa1",
            b"\xa1\xb2\xc3\xd4",
            b"\xa1\xb2\x3c\x4d",
        ):
            return path.stat().st_size
        rec = struct.Struct("<IIII" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">IIII")
        total = 0
        while True:
            h = f.read(16)
            if len(h) < 16:
                return total
            caplen = rec.unpack(h)[2]
            total += caplen
            f.seek(caplen, 1)


def measure(cmd: list[str], cwd: Path | None = None) -> dict[str, Any]:
    """Run ``cmd``; CPU (user+sys), peak RSS and wall time of that child alone."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert p.stderr is not None
    # stderr is small for these tools; read it only after exit to keep timing clean
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode("utf-8", "replace")
    p.stderr.close()
    return {
        "cmd": cmd,
        "exit": p.returncode,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "user_s": ru.ru_utime,
        "sys_s": ru.ru_stime,
        "wall_s": wall,
        "rss_mb": ru.ru_maxrss / 1024,
        "stderr_tail": "\n".join(err.strip().splitlines()[-5:]),
    }


def hash_dir(d: Path) -> set[str]:
    out = set()
    for root, _, files in os.walk(d):
        for name in files:
            h = hashlib.md5()
            with open(os.path.join(root, name), "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            out.add(h.hexdigest())
    return out


def eve_md5s(path: Path) -> set[str]:
    out = set()
    if path.exists():
        with path.open() as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if ev.get("event_type") == "fileinfo" and ev.get("fileinfo", {}).get("md5"):
                    out.add(ev["fileinfo"]["md5"])
    return out


def tools(capture: Path, tapsift: Path, config: Path | None = None, offload: Path | None = None) -> dict[str, Any]:
    """name → function(workdir) -> (command, function() -> md5 set)."""
    extra = ["--config", str(config)] if config else []

    def t_tapsift(w: Path):
        eve = w / "eve.json"
        return [str(tapsift), "read", str(capture), "--eve", str(eve), "--workers", "1", *extra], \
            lambda: eve_md5s(eve)

    def t_tapsift_offload(w: Path):
        eve = w / "eve.json"
        return [str(tapsift), "read", str(offload), "--eve", str(eve), "--workers", "1", *extra], \
            lambda: eve_md5s(eve)

    def t_tshark(w: Path):
        return ["tshark", "-r", str(capture), "-q", "--export-objects", f"http,{w}"], lambda: hash_dir(w)

    def t_tcpflow(w: Path):
        return ["tcpflow", "-r", str(capture), "-e", "http", "-o", str(w)], lambda: hash_dir(w)

    return {"tapsift": t_tapsift, "tapsift-offload": t_tapsift_offload, "tshark": t_tshark, "tcpflow": t_tcpflow}


def found(objects: list[dict[str, Any]], md5s: set[str]) -> dict[str, int]:
    hit = [o for o in objects if {o.get("md5"), o.get("md5_wire"), o.get("md5_body")} & md5s]
    return {
        "found": len(hit),
        "found_complete": sum(1 for o in hit if not o.get("lossy")),
        "downloads": sum(1 for o in hit if o.get("direction") == "download"),
        "uploads": sum(1 for o in hit if o.get("direction") == "upload"),
    }


# --------------------------------------------------------------------------- issue 14: inspection speed

PR_SET_CHILD_SUBREAPER = 36


def measure_tree(cmd: list[str], cwd: Path | None = None, linger_s: float = 10.0) -> dict[str, Any]:
    """`measure`, with the CPU time of every descendant added: this process becomes a child
    subreaper, so the orphaned grandchildren (the extraction sandbox's fork server and its
    workers) are re-parented here and reaped, and ``RUSAGE_CHILDREN`` counts them all.
    ``main_cpu_s`` is what `measure` reports (the command and the children it reaped itself)."""
    import ctypes
    import resource

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = measure(cmd, cwd)
    deadline = time.monotonic() + linger_s
    while time.monotonic() < deadline:  # descendants that outlive the command
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.05)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    r["main_cpu_s"] = r["cpu_s"]
    r["cpu_s"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return r


def inspection_tools(capture: Path, tapsift: Path, policies: dict[str, Path]) -> dict[str, Any]:
    """The issue-14 variants of ``tapsift read``: each policy on one core (``--workers 1``), and
    the first policy and no policy with 2 workers (wall-clock speed-up)."""

    def read(extra: list[str]) -> Any:
        def t(w: Path):
            eve = w / "eve.json"
            return [str(tapsift), "read", str(capture), "--eve", str(eve), *extra], lambda: eve_md5s(eve)

        return t

    out: dict[str, Any] = {}
    for i, (name, path) in enumerate(policies.items()):
        out[f"tapsift+{name}"] = read(["--policy", str(path), "--workers", "1"])
        if i == 0:
            out[f"tapsift+{name}/2w"] = read(["--policy", str(path), "--workers", "2"])
    out["tapsift/2w"] = read(["--workers", "2"])
    return out


def inspection_ratios(results: dict[str, Any]) -> list[str]:
    """Report lines: each policy against no policy and against tshark (per CPU-s), and the
    2-worker wall-clock speed-ups."""
    lines: list[str] = []
    base, tshark = results.get("tapsift", {}), results.get("tshark", {})
    for name, res in results.items():
        if not name.startswith("tapsift+") or "cpu_s" not in res:
            continue
        if name.endswith("/2w"):
            one = results.get(name[:-3], {})
            if "wall_s" in one:
                lines.append(f"- {name}: wall x{one['wall_s'] / res['wall_s']:.2f} faster than 1 worker "
                             f"(CPU {res['cpu_s']:.2f} s vs {one['cpu_s']:.2f} s)")
            continue
        parts = []
        if "cpu_s" in base:
            parts.append(f"x{base['cpu_s'] / res['cpu_s']:.2f} of no policy")
        if "cpu_s" in tshark:
            parts.append(f"x{tshark['cpu_s'] / res['cpu_s']:.2f} of tshark")
        lines.append(f"- {name} per CPU-s (children included): " + ", ".join(parts))
    two = results.get("tapsift/2w", {})
    if "wall_s" in two and "wall_s" in base:
        lines.append(f"- tapsift/2w: wall x{base['wall_s'] / two['wall_s']:.2f} faster than 1 worker "
                     f"(CPU {two['cpu_s']:.2f} s vs {base['cpu_s']:.2f} s)")
    return lines


def startup(tapsift: Path, policy: Path, runs: int = 5) -> dict[str, float]:
    """Median CPU seconds (children included) of ``tapsift read`` on a one-request capture, with
    and without ``policy``."""
    sys.path.insert(0, str(ROOT))
    from tools import synth as S

    with tempfile.TemporaryDirectory() as d:
        pcap = Path(d) / "tiny.pcap"
        t = S.Trace()
        sess = t.session(("10.0.0.2", 40000), ("192.0.2.9", 80), at=0.0)
        sess.http(S.http_request("GET", "/", "example.com"),
                  S.http_response(200, b"<html><body>hello Project Nightjar</body></html>", content_type="text/html"))
        sess.close()
        t.write(str(pcap))
        out = {}
        for name, extra in (("no policy", []), ("policy", ["--policy", str(policy)])):
            cpu = [measure_tree([str(tapsift), "read", str(pcap), "--eve", str(Path(d) / "e.json"), "-q", *extra])
                   ["cpu_s"] for _ in range(runs)]
            out[name] = statistics.median(cpu)
        return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("capture", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--manifest", type=Path, help="default: CAPTURE's .manifest.json next to it, if any")
    ap.add_argument("--tools", default="all", help="comma-separated tool names (default: all of them)")
    ap.add_argument("--tapsift", type=Path, default=Path(sys.executable).parent / "tapsift")
    ap.add_argument("--config", type=Path, help="settings file for tapsift (e.g. reassembly.fast_path: false)")
    ap.add_argument("--offload", action="store_true",
                    help="also read a copy of CAPTURE as made on its servers (transmit checksum offload: their "
                         "TCP/UDP checksums unfinished) and compare its throughput with the clean capture's")
    ap.add_argument("--json", type=Path, help="results file (default bench/out/read_bench-<capture>.json)")
    ap.add_argument("--workdir", type=Path, help="where tools write (default: a temp dir, removed)")
    ap.add_argument("--policies", default=f"kw_dc={ROOT / 'bench' / 'kw_dc_policy.yaml'},"
                                          f"sample={ROOT / 'policies' / 'sample.yaml'}",
                    help="NAME=FILE,... policies for the tapsift+NAME tools (issue 14)")
    ap.add_argument("--startup", action="store_true", help="also measure start-up on a one-request capture")
    a = ap.parse_args(argv)

    capture = a.capture.resolve()
    manifest_path = a.manifest or capture.with_name(capture.name.rsplit(".", 1)[0] + ".manifest.json")
    objects: list[dict[str, Any]] = []
    if manifest_path.exists():
        m = json.loads(manifest_path.read_text())
        objects = m["objects"] if isinstance(m, dict) else m
    nbytes = frame_bytes(capture)
    bits = nbytes * 8
    policies = {k: Path(v) for k, v in (x.split("=", 1) for x in a.policies.split(",") if "=" in x)}
    names = [*tools(capture, a.tapsift), *inspection_tools(capture, a.tapsift, policies)]
    names.remove("tapsift-offload")  # added below with --offload
    selected = names if a.tools == "all" else [t.strip() for t in a.tools.split(",") if t.strip()]
    base = Path(tempfile.mkdtemp(prefix="read_bench-", dir=a.workdir))
    offload = None
    if a.offload:
        sys.path.insert(0, str(ROOT))
        from tools.synth import offload_capture

        offload = base / f"{capture.stem}-offload.pcap"
        n = offload_capture(capture, offload)
        print(f"offload copy: {n} packets with unfinished checksums", file=sys.stderr)
        selected.insert(selected.index("tapsift") + 1 if "tapsift" in selected else 0, "tapsift-offload")
    table = tools(capture, a.tapsift, a.config, offload)
    table.update(inspection_tools(capture, a.tapsift, policies))
    results: dict[str, Any] = {n: {"runs": []} for n in selected}
    try:
        for run in range(a.runs):
            for name in selected:
                w = base / f"{name}-{run}"
                w.mkdir(parents=True)
                cmd, collect = table[name](w)
                if shutil.which(cmd[0]) is None and not Path(cmd[0]).exists():
                    results[name]["runs"].append({"cmd": cmd, "exit": None, "error": "not installed"})
                    continue
                r = measure_tree(cmd) if name.startswith("tapsift") else measure(cmd)
                if run == 0 and objects:
                    r["md5"] = found(objects, collect())
                results[name]["runs"].append(r)
                shutil.rmtree(w, ignore_errors=True)
                print(
                    f"run {run + 1}/{a.runs} {name}: exit {r['exit']} cpu {r['cpu_s']:.2f}s "
                    f"wall {r['wall_s']:.2f}s rss {r['rss_mb']:.0f}MB",
                    file=sys.stderr,
                )
    finally:
        shutil.rmtree(base, ignore_errors=True)

    for res in results.values():
        ok = [r for r in res["runs"] if r.get("exit") == 0]
        res["ok_runs"] = len(ok)
        if ok:
            cpu = statistics.median(r["cpu_s"] for r in ok)
            res.update(
                cpu_s=cpu,
                wall_s=statistics.median(r["wall_s"] for r in ok),
                rss_mb=max(r["rss_mb"] for r in ok),
                mbit_per_cpu_s=bits / 1e6 / cpu if cpu else None,
            )
        first = res["runs"][0] if res["runs"] else {}
        res["md5"] = first.get("md5")

    complete = sum(1 for o in objects if not o.get("lossy"))
    lines = [
        f"Capture `{capture.name}`: {nbytes / 1e6:.1f} MB of frames ({bits / 1e6:.0f} Mbit), "
        f"median of {a.runs} run(s)"
        + (f"; manifest: {len(objects)} objects, {complete} without tap loss" if objects else ""),
        "",
        "| tool | CPU s | wall s | peak RSS MB | Mbit/s per CPU-s | md5 found (all / complete) | exit |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        md = res.get("md5")
        fnd = f"{md['found']}/{len(objects)} / {md['found_complete']}/{complete}" if md else "-"
        exits = ",".join(str(r.get("exit")) for r in res["runs"])
        if "cpu_s" in res:
            lines.append(
                f"| {name} | {res['cpu_s']:.2f} | {res['wall_s']:.2f} | {res['rss_mb']:.0f} | "
                f"{res['mbit_per_cpu_s']:.0f} | {fnd} | {exits} |"
            )
        else:
            lines.append(f"| {name} | - | - | - | - | {fnd} | {exits} |")
    ratios = {}
    ts = results.get("tapsift", {})
    off = results.get("tapsift-offload", {})
    if "cpu_s" in ts and "cpu_s" in off:
        ratios["tapsift-offload/tapsift"] = {"cpu": off["cpu_s"] / ts["cpu_s"], "wall": off["wall_s"] / ts["wall_s"],
                                             "throughput": ts["cpu_s"] / off["cpu_s"]}
    for other in ("tshark", "tcpflow"):
        o = results.get(other, {})
        if "cpu_s" in ts and "cpu_s" in o:
            ratios[f"tapsift/{other}"] = {
                "cpu": ts["cpu_s"] / o["cpu_s"],
                "wall": ts["wall_s"] / o["wall_s"],
                "throughput": o["cpu_s"] / ts["cpu_s"],
            }
    if ratios:
        lines.append("")
        for k, v in ratios.items():
            lines.append(
                f"- {k}: CPU time x{v['cpu']:.2f}, wall x{v['wall']:.2f} "
                f"(throughput per core x{v['throughput']:.2f})"
            )
    lines.extend(inspection_ratios(results))
    if a.startup and policies:
        st = startup(a.tapsift, next(iter(policies.values())))
        results["startup"] = st
        lines.append("- start-up on a one-request capture (CPU s, children included, median of 5): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in st.items()))
    for name, res in results.items():
        if "runs" not in res:
            continue
        bad = [r for r in res["runs"] if r.get("exit") not in (0,)]
        if bad:
            lines.append(f"- {name} failed: {bad[0].get('error') or bad[0].get('stderr_tail')!s:.300}")
    report = "\n".join(lines)
    print(report)

    out = a.json or ROOT / "bench" / "out" / f"read_bench-{capture.name.rsplit('.', 1)[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "capture": str(capture),
                "frame_bytes": nbytes,
                "runs": a.runs,
                "objects": len(objects),
                "complete_objects": complete,
                "tools": results,
                "ratios": ratios,
                "cpu_count": os.cpu_count(),
                "loadavg": os.getloadavg(),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            indent=1,
        )
        + "\n"
    )
    print(f"\nresults: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
