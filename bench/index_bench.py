#!/usr/bin/env python3
"""Fingerprint index figures: 1 M perceptual hashes (MIH, BK-tree, brute force) and 10 M MD5s.

    .venv/bin/python bench/index_bench.py [--phashes 1000000] [--md5s 10000000] [--bk 1000000]
                                          [--library 1000000] [--queries 2000] [--json OUT]

Perceptual: ``--phashes`` random 64-bit pHashes and as many dHashes (random data is the hard
case for MIH's bucket balance only if it is skewed; real pHashes are not uniform, so a skewed
set with 25 % of the hashes in near-duplicate clusters is used), queries are 50 % planted
neighbours at 0-14 bits and 50 % misses. Figures: build time, index memory (arrays), lookup
time (mean, p50, p99) at radius 8, 10 and 14, and the full dual-hash rule
(``PerceptualFingerprints.match``: pHash ≤ 8, or ≤ 14 with dHash ≤ 10). The BK-tree is built
over ``--bk`` of the hashes (pure Python). Brute force is a numpy XOR + popcount over all.

Exact: ``--md5s`` random MD5s written as a hash list (one per line), then loaded with
``ExactSet.from_hash_list`` (vectorised) and, for comparison, into a Python ``set`` of 16-byte
``bytes``; the SQLite library path (import + load of ``--library`` MD5s) is timed too. Memory is
the resident-set growth of a forked child doing only that step. Results as Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def hwm() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


BASE = {"rss": 0}


def held() -> float:
    """Resident-set growth (MB) since the child started its step: call while the structure is alive."""
    return round((rss() - BASE["rss"]) / 1e6, 1)


def _child(fn: Callable[..., dict[str, Any]], args: tuple[Any, ...], q: Any) -> None:
    BASE["rss"] = rss()
    out = fn(*args)
    out.setdefault("rss_mb", 0.0)
    out["peak_mb"] = round((hwm() - BASE["rss"]) / 1e6, 1)
    q.put(out)


def in_child(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``fn`` in a fresh (spawned) interpreter; adds ``rss_mb``/``peak_mb`` (resident-set growth)."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(fn, args, q))
    p.start()
    res = q.get()
    p.join()
    return res


def stats_us(times: list[float]) -> str:
    a = np.asarray(times) * 1e6
    return f"{a.mean():.0f} / {np.percentile(a, 50):.0f} / {np.percentile(a, 99):.0f}"


def make_hashes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ph = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    dh = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    # 25 % in clusters: copies of 1 % of the hashes with 1-6 bits flipped (near-duplicate images)
    k = n // 4
    src = rng.integers(0, n // 100 + 1, size=k)
    flips = np.zeros(k, dtype=np.uint64)
    for _ in range(3):
        flips |= np.uint64(1) << rng.integers(0, 64, size=k).astype(np.uint64)
    ph[n - k:] = ph[src] ^ flips
    dh[n - k:] = dh[src] ^ flips
    return ph, dh


def queries(ph: np.ndarray, dh: np.ndarray, m: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed + 1)
    out = []
    for i in range(m):
        if i % 2:
            out.append((int(rng.integers(0, 2**64, dtype=np.uint64)), int(rng.integers(0, 2**64, dtype=np.uint64))))
            continue
        j = int(rng.integers(0, ph.size))
        fp = fd = 0
        for b in rng.choice(64, size=int(rng.integers(0, 15)), replace=False):
            fp |= 1 << int(b)
        for b in rng.choice(64, size=int(rng.integers(0, 11)), replace=False):
            fd |= 1 << int(b)
        out.append((int(ph[j]) ^ fp, int(dh[j]) ^ fd))
    return out


def bench_mih(n: int, nq: int, seed: int) -> dict[str, Any]:
    from fingerprints.index import BruteIndex, MIHIndex
    from fingerprints.sets import PerceptualFingerprints

    ph, dh = make_hashes(n, seed)
    qs = queries(ph, dh, nq, seed)
    t = time.perf_counter()
    idx = MIHIndex(ph)
    build = time.perf_counter() - t
    out: dict[str, Any] = {"n": n, "build_s": round(build, 2), "nbytes_mb": round(idx.nbytes / 1e6, 1),
                           "chunks": idx.m, "widths": idx.widths, "rss_mb": held()}
    brute = BruteIndex(ph)
    for r in (8, 10, 14):
        times = []
        for q, _ in qs:
            t = time.perf_counter()
            idx.search(q, r)
            times.append(time.perf_counter() - t)
        out[f"mih_r{r}"] = stats_us(times)
        out[f"mih_r{r}_mean_us"] = float(np.mean(times) * 1e6)
    # correctness spot check against brute force
    for q, _ in qs[:50]:
        assert idx.search(q, 14) == brute.search(q, 14)
    times = []
    for q, _ in qs[:100]:
        t = time.perf_counter()
        brute.search(q, 14)
        times.append(time.perf_counter() - t)
    out["brute_r14"] = stats_us(times)
    del idx
    t = time.perf_counter()
    rows = list(zip(range(1, n + 1), ph.tolist(), dh.tolist()))
    fps = PerceptualFingerprints("phash", rows)
    del rows
    out["set_build_s"] = round(time.perf_counter() - t, 2)
    out["set_nbytes_mb"] = round(fps.nbytes / 1e6, 1)
    times = []
    found = 0
    for q, d in qs:
        t = time.perf_counter()
        found += bool(fps.match(q, d, 8, 6, 10))
        times.append(time.perf_counter() - t)
    out["dual_rule"] = stats_us(times)
    out["dual_rule_mean_us"] = float(np.mean(times) * 1e6)
    out["dual_rule_found"] = found
    return out


def bench_bk(n: int, nq: int, seed: int) -> dict[str, Any]:
    from fingerprints.index import BKTree

    ph, dh = make_hashes(n, seed)
    qs = queries(ph, dh, 40, seed)
    t = time.perf_counter()
    tree = BKTree(ph)
    out: dict[str, Any] = {"n": n, "build_s": round(time.perf_counter() - t, 1), "rss_mb": held()}
    for r in (8, 14):
        times = []
        for q, _ in qs[: 40 if r == 8 else 10]:
            t = time.perf_counter()
            tree.search(q, r)
            times.append(time.perf_counter() - t)
        out[f"bk_r{r}"] = stats_us(times)
    return out


def write_md5_list(path: Path, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
    hexed = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    out = np.empty((n, 33), dtype=np.uint8)
    out[:, 0:32:2] = hexed[raw >> 4]
    out[:, 1:32:2] = hexed[raw & 15]
    out[:, 32] = 0x0A
    with open(path, "wb") as fh:
        fh.write(out.tobytes())
    return raw[: 1000].copy()


def bench_exact_load(path: str, sample: np.ndarray) -> dict[str, Any]:
    from fingerprints.exact import ExactSet

    t = time.perf_counter()
    s = ExactSet.from_hash_list(path)
    load = time.perf_counter() - t
    hits = [bytes(r).hex() for r in sample]
    rng = np.random.default_rng(99)
    misses = [bytes(rng.integers(0, 256, 16, dtype=np.uint8)).hex() for _ in range(1000)]
    times = []
    for h in hits + misses:
        t = time.perf_counter()
        s.position(h)
        times.append(time.perf_counter() - t)
    assert all(h in s for h in hits[:100]) and not any(h in s for h in misses[:100])
    return {"n": len(s), "load_s": round(load, 2), "nbytes_mb": round(s.nbytes / 1e6, 1), "lookup": stats_us(times),
            "rss_mb": held()}


def bench_exact_irregular(path: str) -> dict[str, Any]:
    """The regex path: CRLF lines with a label after the hash."""
    from fingerprints.exact import ExactSet, parse_hash_list

    with open(path, "rb") as fh:
        data = fh.read()
    data = data.replace(b"\n", b"  sample.exe\r\n")
    t = time.perf_counter()
    s = ExactSet(parse_hash_list(data, 16))
    load = time.perf_counter() - t
    del data
    return {"n": len(s), "load_s": round(load, 2), "rss_mb": held()}


def bench_pyset(path: str) -> dict[str, Any]:
    t = time.perf_counter()
    with open(path, "rb") as fh:
        s = {bytes.fromhex(line[:32].decode()) for line in fh}
    load = time.perf_counter() - t
    return {"n": len(s), "load_s": round(load, 2), "rss_mb": held()}


def bench_library(path: str, n: int) -> dict[str, Any]:
    from fingerprints.library import Library
    from fingerprints.sets import clear_cache, load_exact

    db = Path(path).with_suffix(".db")
    head = Path(path).with_suffix(".head")
    with open(path, "rb") as src, open(head, "wb") as dst:
        dst.write(src.read(33 * n))
    t = time.perf_counter()
    with Library(db) as lib:
        st = lib.import_hash_list(str(head), "md5")
    imp = time.perf_counter() - t
    clear_cache()
    t = time.perf_counter()
    fps = load_exact("md5", str(db))
    load = time.perf_counter() - t
    t = time.perf_counter()
    with open(head) as fh:
        first = fh.readline().strip()
    hit = fps.lookup(first)
    lk = time.perf_counter() - t
    return {"n": st.added, "import_s": round(imp, 1), "load_s": round(load, 2), "db_mb": round(db.stat().st_size / 1e6),
            "hit_with_label_us": round(lk * 1e6), "hit": bool(hit), "rss_mb": held()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--phashes", type=int, default=1_000_000)
    ap.add_argument("--bk", type=int, default=1_000_000)
    ap.add_argument("--md5s", type=int, default=10_000_000)
    ap.add_argument("--library", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--no-pyset", action="store_true", help="skip the Python set comparison")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    res: dict[str, Any] = {}

    if not args.phashes:
        args.bk = 0
    else:
        print(f"## Perceptual index: {args.phashes:,} pHashes (+ as many dHashes)\n")
        m = res["mih"] = in_child(bench_mih, args.phashes, args.queries, args.seed)
        print(f"MIH: {m['chunks']} chunks of {m['widths']} bits, built in {m['build_s']} s, arrays "
              f"{m['nbytes_mb']} MB (RSS +{m['rss_mb']} MB, peak +{m['peak_mb']} MB)\n")
        print("| lookup (µs: mean / p50 / p99) | time |\n|---|---|")
        for r in (8, 10, 14):
            print(f"| MIH radius {r} | {m[f'mih_r{r}']} |")
        print(f"| dual-hash rule (pHash ≤ 8, or ≤ 14 with dHash ≤ 10; two MIH indexes) | {m['dual_rule']} |")
        print(f"| brute force radius 14 (numpy) | {m['brute_r14']} |")
        print(f"\nperceptual set (pHash + dHash indexes): built in {m['set_build_s']} s, {m['set_nbytes_mb']} MB; "
              f"{m['dual_rule_found']} of {args.queries} queries matched")
    if args.bk:
        b = res["bk"] = in_child(bench_bk, args.bk, args.queries, args.seed)
        print(f"\nBK-tree over {b['n']:,}: built in {b['build_s']} s (RSS +{b['rss_mb']} MB); lookup µs "
              f"(mean / p50 / p99): radius 8 {b['bk_r8']}, radius 14 {b['bk_r14']}")

    if not args.md5s:
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2))
        return 0
    with tempfile.TemporaryDirectory(prefix="tapsift-ibench-") as tmp:
        path = str(Path(tmp) / "md5.txt")
        t = time.perf_counter()
        sample = write_md5_list(Path(path), args.md5s, args.seed)
        print(f"\n## Exact set: {args.md5s:,} MD5s ({os.path.getsize(path) / 1e6:.0f} MB hash list, "
              f"written in {time.perf_counter() - t:.1f} s)\n")
        e = res["exact"] = in_child(bench_exact_load, path, sample)
        print("| structure | load | memory (RSS growth / peak) | lookup µs (mean / p50 / p99) |\n|---|---|---|---|")
        print(f"| ExactSet (sorted uint64 arrays) | {e['load_s']} s | {e['rss_mb']} MB / {e['peak_mb']} MB "
              f"(arrays {e['nbytes_mb']} MB) | {e['lookup']} |")
        ir = res["exact_irregular"] = in_child(bench_exact_irregular, path)
        print(f"| ExactSet, CRLF lines with labels (regex path) | {ir['load_s']} s | {ir['rss_mb']} MB / "
              f"{ir['peak_mb']} MB | |")
        if not args.no_pyset:
            p = res["pyset"] = in_child(bench_pyset, path)
            print(f"| Python set of 16-byte bytes | {p['load_s']} s | {p['rss_mb']} MB / {p['peak_mb']} MB | |")
        if args.library:
            lb = res["library"] = in_child(bench_library, path, args.library)
            print(f"\nSQLite library, {lb['n']:,} MD5s: import {lb['import_s']} s ({lb['db_mb']} MB file), "
                  f"load into an ExactSet {lb['load_s']} s (RSS +{lb['rss_mb']} MB), "
                  f"hit with label lookup {lb['hit_with_label_us']} µs")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
