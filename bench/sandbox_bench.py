#!/usr/bin/env python3
"""Document extraction throughput through the sandbox: one round trip per object vs batches.

    .venv/bin/python bench/sandbox_bench.py [--docs 120] [--runs 3]

Generates PDF and DOCX documents like `make_workload.py`'s (prose, 3-160 lines / 3-60
paragraphs), then per type and mode reports objects/s (wall) and the CPU seconds of the calling
process and of the workers (``RUSAGE_CHILDREN`` of a fresh pool, closed after each mode):

- ``in-process``: the extractor called directly (no isolation; the floor);
- ``run``: ``Sandbox.run`` per document (a round trip each, as before the batching);
- ``run_batch``: ``Sandbox.run_batch`` over all documents (shared over the two workers).

Medians of ``--runs``; a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspectors.extract.archives import extract_zip
from inspectors.extract.parts import Limits
from inspectors.extract.pdf import extract_pdf
from inspectors.extract.sandbox import Sandbox
from tools import synth as S


def documents(n: int, seed: int = 1) -> dict[str, list[bytes]]:
    rng = random.Random(seed)
    corpus = S.text(rng, 60_000)

    def prose(k: int) -> str:
        s = rng.randrange(0, len(corpus) - k)
        return corpus[s:s + k]

    return {
        "pdf": [S.pdf_document(f"Report {i}", [prose(90) for _ in range(rng.randint(3, 160))], compress=i % 2 == 0)
                for i in range(n)],
        "docx": [S.docx_document(f"Memo {i}", [prose(rng.randint(200, 3000)) for _ in range(rng.randint(3, 60))])
                 for i in range(n)],
    }


TASKS = {"pdf": ("inspectors.extract.pdf:extract_pdf", extract_pdf),
         "docx": ("inspectors.extract.archives:extract_zip", extract_zip)}


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _proc_cpu(pids: list[int]) -> float:
    """CPU seconds (user+sys) of live processes, from /proc (the workers are the fork server's
    children, so the parent's RUSAGE_CHILDREN never sees them)."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def one(kind: str, mode: str, docs: list[bytes]) -> tuple[float, float, float]:
    """(objects/s, parent CPU s, worker CPU s) for one mode."""
    name, func = TASKS[kind]
    lim = Limits()
    if mode == "in-process":
        func(docs[0], limits=lim)  # warm
        c0 = _cpu(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        for d in docs:
            func(d, limits=lim)
        return len(docs) / (time.perf_counter() - t0), _cpu(resource.RUSAGE_SELF) - c0, 0.0
    with Sandbox(workers=2, memory_bytes=1024 << 20, cpu_seconds=30) as sb:
        sb.run_batch(name, [(docs[0], {"limits": lim})] * 2, 30)  # both workers up and warm
        pids = sb.pids()
        k0, c0 = _proc_cpu(pids), _cpu(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        if mode == "run":
            for d in docs:
                sb.run(name, d, 30, limits=lim)
        else:
            sb.run_batch(name, [(d, {"limits": lim}) for d in docs], 30)
        wall = time.perf_counter() - t0
        return len(docs) / wall, _cpu(resource.RUSAGE_SELF) - c0, _proc_cpu(pids) - k0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=120)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args(argv)
    docs = documents(a.docs)
    print(f"{a.docs} documents per type; medians of {a.runs} runs; 2 workers\n")
    print("| type | mode | objects/s (wall) | parent CPU ms/object | worker CPU ms/object |\n|---|---|---|---|---|")
    for kind, ds in docs.items():
        for mode in ("in-process", "run", "run_batch"):
            got = [one(kind, mode, ds) for _ in range(a.runs)]
            rate = statistics.median(g[0] for g in got)
            parent = statistics.median(g[1] for g in got) / len(ds) * 1e3
            child = statistics.median(g[2] for g in got) / len(ds) * 1e3
            print(f"| {kind} ({sum(map(len, ds)) / len(ds) / 1e3:.0f} KB avg) | {mode} | {rate:,.0f} | "
                  f"{parent:.2f} | {child:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
