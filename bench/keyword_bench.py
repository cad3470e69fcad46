#!/usr/bin/env python3
"""Keyword inspector benchmark: recall/false positives and MB/s with 10,000 keywords (EN + ZH).

    .venv/bin/python bench/keyword_bench.py [--mb 64] [--doc-kb 1024] [--keywords 10000] [--runs 3]
                                            [--json OUT.json]

Keywords: the obfuscation corpus's 60 (``bench/obfuscation_corpus.py``) plus generated ones up
to ``--keywords`` (30 % Chinese, 2-4 characters; the rest Latin pseudo-words of 6-12 letters).
Text: ``--mb`` MB (UTF-8) of mixed English/Chinese paragraphs in ``--doc-kb`` documents, with
keyword hits in about 0.4 % of the sentences (a quarter of them obfuscated). Each document goes
through ``KeywordEngine.scan`` (normalisation, stream scans, offset mapping, findings), one
thread. Configurations:

* ``raw``: no normalisation, one literal database (``CASELESS``) over the original UTF-8;
* ``n1``: N1 normalisation (NFKC, case, t2s, invisible, diacritics, homoglyphs), one scan;
* ``full``: N1 + N2 (separators, leetspeak), two scans: the inspector's default.

Also timed alone: the normalisation (``normalize`` and ``loosen``). Every figure is the median
of ``--runs`` runs; MB/s = original text MB / seconds. Recall and false positives are measured
on the seeded corpus with the 10,000-keyword databases (only the corpus keywords count).
Prints Markdown tables; nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.obfuscation_corpus import (  # noqa: E402
    EN_KEYWORDS,
    ZH_KEYWORDS,
    bench_keywords,
    build,
    evaluate,
    keyword_lists,
    mixed_text,
)
from inspectors import normalize as nz  # noqa: E402
from inspectors.keyword import KeywordEngine  # noqa: E402


def _median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=64.0, help="text size in MB (UTF-8), default 64")
    ap.add_argument("--doc-kb", type=int, default=1024, help="document size in KB, default 1024")
    ap.add_argument("--keywords", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = ap.parse_args(argv)

    corpus_kws = list(EN_KEYWORDS) + list(ZH_KEYWORDS)
    extra = bench_keywords(max(0, args.keywords - len(corpus_kws)), seed=args.seed)
    lists = keyword_lists(extra)
    n_kw = sum(len(spec.keywords) for spec in lists)
    n_zh = sum(1 for spec in lists for k in spec.keywords if nz.CJK_RE.search(k.text))
    print(f"keywords: {n_kw} ({n_zh} Chinese)", file=sys.stderr)

    t = time.perf_counter()
    nz.tables()
    table_s = time.perf_counter() - t
    engines: dict[str, KeywordEngine] = {}
    compile_s: dict[str, float] = {}
    for name, kw in (("raw", {"normalise": False}), ("n1", {"separators": False}), ("full", {})):
        t = time.perf_counter()
        engines[name] = KeywordEngine(lists, **kw)
        compile_s[name] = time.perf_counter() - t
        print(f"compiled {name} in {compile_s[name]:.2f} s", file=sys.stderr)

    # recall / false positives with the big databases
    corpus = build(seed=20240601, variants=5, decoys=3000)
    quality = {}
    for name in ("raw", "full"):
        e = engines[name]
        score = evaluate(corpus, lambda text, e=e: {f.detail["keyword"] for f in e.scan(text).findings
                                                    if "keyword" in f.detail})
        quality[name] = {"recall": score.recall, "fp_rate": score.fp_rate, "positives": score.positives,
                         "decoys": score.decoys, "false_positives": len(score.false_positives),
                         "by_transform": score.by_transform}

    # throughput material
    rng = random.Random(args.seed)
    hit_kws = rng.sample(extra, min(2000, len(extra))) + corpus_kws
    doc_bytes = args.doc_kb * 1024
    docs: list[str] = []
    total = 0
    t = time.perf_counter()
    while total < args.mb * 1e6:
        d = mixed_text(doc_bytes, hit_kws, seed=args.seed * 1000 + len(docs))
        docs.append(d)
        total += len(d.encode("utf-8"))
    mb = total / 1e6
    print(f"generated {mb:.1f} MB in {len(docs)} documents in {time.perf_counter() - t:.1f} s", file=sys.stderr)

    speed: dict[str, dict[str, float]] = {}

    def norm_only() -> None:
        for d in docs:
            nz.normalize(d)

    def norm_both() -> None:
        for d in docs:
            nz.loosen(nz.normalize(d).text)

    for label, fn in (("normalise N1 only", norm_only), ("normalise N1 + N2", norm_both)):
        s = _median_time(fn, args.runs)
        speed[label] = {"seconds": s, "mb_s": mb / s}
        print(f"{label}: {mb / s:.1f} MB/s", file=sys.stderr)
    findings: dict[str, int] = {}
    for name, e in engines.items():
        counter = [0]

        def run(e: KeywordEngine = e, counter: list[int] = counter) -> None:
            counter[0] = 0
            for d in docs:
                counter[0] += len(e.scan(d, max_text_chars=len(d) + 1).findings)

        s = _median_time(run, args.runs)
        speed[f"scan {name}"] = {"seconds": s, "mb_s": mb / s}
        findings[name] = counter[0]
        print(f"scan {name}: {mb / s:.1f} MB/s, {counter[0]} findings", file=sys.stderr)

    print(f"\n### Keyword inspector, {n_kw:,} keywords ({n_zh:,} Chinese), {mb:.0f} MB mixed EN/ZH text, "
          f"{len(docs)} documents of {args.doc_kb} KB, median of {args.runs}\n")
    print("| configuration | MB/s | findings | compile (s) |")
    print("|---|---:|---:|---:|")
    labels = {"raw": "no normalisation (raw UTF-8, CASELESS literals)",
              "n1": "N1: NFKC + case + t2s + invisible + diacritics + homoglyphs",
              "full": "N1 + N2: also separators and leetspeak (default)"}
    for name in ("raw", "n1", "full"):
        print(f"| {labels[name]} | {speed[f'scan {name}']['mb_s']:.1f} | {findings[name]:,} | "
              f"{compile_s[name]:.2f} |")
    for label in ("normalise N1 only", "normalise N1 + N2"):
        print(f"| {label} (no matching) | {speed[label]['mb_s']:.1f} | | |")
    print(f"\nNormalisation tables built once per process in {table_s:.2f} s.\n")
    print(f"### Obfuscation corpus (seed 20240601): {quality['full']['positives']:,} obfuscated occurrences, "
          f"{quality['full']['decoys']:,} clean decoys, {n_kw:,}-keyword databases\n")
    print("| configuration | recall | false positives |")
    print("|---|---:|---:|")
    for name in ("raw", "full"):
        q = quality[name]
        print(f"| {labels[name]} | {q['recall']:.2%} | {q['fp_rate']:.2%} ({q['false_positives']}) |")
    print("\n| transform | recall (full) | recall (raw) |")
    print("|---|---:|---:|")
    for key, (hit, n) in quality["full"]["by_transform"].items():
        rh, rn = quality["raw"]["by_transform"][key]
        print(f"| {key} | {hit}/{n} | {rh}/{rn} |")
    if args.json:
        args.json.write_text(json.dumps({"keywords": n_kw, "chinese": n_zh, "mb": mb, "docs": len(docs),
                                         "speed": speed, "compile_s": compile_s, "findings": findings,
                                         "quality": quality}, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
