#!/usr/bin/env python3
"""Extraction benchmark: throughput per type (MB/s, objects/s) and bomb outcomes with peak RSS.

    .venv/bin/python bench/extract_bench.py [--seconds 2] [--workers 2] [--no-bombs] [--json OUT.json]
    .venv/bin/python bench/extract_bench.py --html-walk 9 [--ref REV]   # the HTML walk alone, vs a revision

Samples are generated (``tests/inspectors/extract/samples.py``) at realistic sizes: HTML of
about 1 MB with a stylesheet, 200-paragraph DOCX, 2000-row XLSX, 20-slide PPTX, ODT, 20-page
PDF with an embedded CJK font, RTF, XLS, EML, ZIP of documents, TAR, GZIP, JSON and forms. Each
type is extracted through the dispatcher (``inspectors.extract.extract``) repeatedly for
``--seconds`` from one thread: sandboxed types include the round trip to a worker (pickling the
object in, the result and children out) and the making of child objects. MB/s = input MB / s.

Bombs are run in a fresh pool whose RLIMIT_AS is ``--cap-mib``; for each: outcome (truncated
reasons, anomalies), time, the worker's peak RSS and the growth of this process's peak RSS.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inspectors.extract import Budget, extract, extract_tree  # noqa: E402
from inspectors.extract.sandbox import Sandbox, vm_hwm  # noqa: E402
from reassembly.objects import ObjectFactory  # noqa: E402
from tests.inspectors.extract import samples as S  # noqa: E402


def html_page() -> bytes:
    css = "<style>" + "".join(f".c{i}{{color:#{i % 255:02x}0000}} " for i in range(200)) + \
          ".h{display:none} div.box p.t{font-size:0}</style>"
    block = ('<div class="box c7"><p class="t">hidden para</p><p>Visible paragraph with <a href="/l{i}">link {i}'
             '</a> and <span class="c3">styled</span> text 中文内容 {zh}.</p><div class="h">gone</div></div>\n')
    body = "".join(block.replace("{i}", str(i)).replace("{zh}", S.ZH) for i in range(5000))
    return f"<html><head><title>{S.EN}</title>{css}</head><body>{body}</body></html>".encode()


def cases() -> dict[str, tuple[bytes, dict[str, str]]]:
    docs = S.zip_of({"a.docx": S.docx(50), "b.xlsx": S.xlsx(200), "c.pdf": S.pdf(5), "d.txt": S.EN.encode() * 100})
    return {
        "html": (html_page(), {"mime": "text/html"}),
        "json": (json.dumps([{"title": S.EN, "zh": S.ZH, "n": i} for i in range(20000)]).encode(), {}),
        "form": (("&".join(f"f{i}={S.EN.replace(' ', '+')}" for i in range(20000))).encode(),
                 {"mime": "application/x-www-form-urlencoded"}),
        "docx": (S.docx(200), {"filename": "a.docx"}),
        "xlsx": (S.xlsx(2000), {"filename": "a.xlsx"}),
        "pptx": (S.pptx(20), {"filename": "a.pptx"}),
        "odt": (S.odf("odt"), {"filename": "a.odt"}),
        "pdf": (S.pdf(20), {"filename": "a.pdf"}),
        "rtf": (S.rtf() * 1, {"filename": "a.rtf"}),
        "xls": (S.xls(), {"filename": "a.xls", "mime": "application/vnd.ms-excel"}),
        "eml": (S.eml(), {"mime": "message/rfc822"}),
        "zip": (docs, {"filename": "docs.zip"}),
        "tar": (S.tar_of({f"f{i}.txt": S.EN.encode() * 200 for i in range(100)}), {}),
        "gzip": (gzip.compress(S.EN.encode() * 100000), {"filename": "t.txt.gz"}),
    }


def bench_types(seconds: float, sb: Sandbox, factory: ObjectFactory) -> list[dict[str, object]]:
    rows = []
    budget = Budget()
    for name, (data, kw) in cases().items():
        o = S.sniffed(data, factory, **kw)
        ex = extract(o, budget, factory, sandbox=sb)  # warm-up (imports in the worker)
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds or n < 3:
            ex = extract(o, budget, factory, sandbox=sb)
            n += 1
        dt = (time.perf_counter() - t0) / n
        rows.append({"type": name, "bytes": len(data), "ms": round(dt * 1000, 2),
                     "MB/s": round(len(data) / dt / 1e6, 2), "objects/s": round(1 / dt, 1),
                     "text_chars": len(ex.text or ""), "children": len(ex.children),
                     "phrases": "n/a (members)" if name in ("zip", "tar", "gzip") else
                     S.EN in (ex.text or "") and (S.ZH in (ex.text or "") or name == "form")})
    return rows


def bench_bombs(cap: int, factory: ObjectFactory) -> list[dict[str, object]]:
    rows = []
    bombs = {
        "zip deflate 1 GiB": (S.zip_bomb_deflate, {}),
        "zip bzip2 1 GiB": (lambda: S.zip_bomb_bzip2(S.GiB), {}),
        "zip bzip2 forged size": (S.zip_bomb_forged_size, {}),
        "xlsx with bzip2 member 256 MiB": (S.xlsx_bzip2_bomb, {"filename": "b.xlsx"}),
        "gzip-in-gzip body 1 GiB": (S.gzip_gzip_bomb, {"filename": "body.gz"}),
        "PDF FlateDecode x2 1 GiB": (S.pdf_bomb, {}),
        "PDF image 10 Gpx": (S.pdf_pixel_bomb, {}),
        "nested zip x12": (lambda: S.nested_zip(12), {}),
        "DOCX billion laughs": (S.docx_entity_bomb, {}),
        "DOCX 64 MiB of <w:p/>": (lambda: S.docx_many_elements(64), {}),
    }
    for name, (make, kw) in bombs.items():
        data = make()
        sb = Sandbox(workers=1, memory_bytes=cap, cpu_seconds=30)
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        base = vm_hwm(os.getpid())
        t = time.perf_counter()
        tree = extract_tree(S.sniffed(data, factory, **kw), Budget(max_memory_bytes=cap, max_expanded_bytes=64 << 20,
                                                                    max_seconds=20), factory, sandbox=sb)
        dt = time.perf_counter() - t
        grown = vm_hwm(os.getpid()) - base
        truncated = sorted({r for o, ex in tree for r in (*ex.truncated, *o.truncated)})
        anomalies = sorted({a for o, ex in tree for a in (*ex.anomalies, *o.anomalies)} - {"extract_partial_input"})
        rows.append({"bomb": name, "bytes": len(data), "seconds": round(dt, 2), "objects": len(tree),
                     "truncated": truncated, "anomalies": anomalies, "worker_peak_MiB": round(sb.peak_rss / 2**20, 1),
                     "sensor_growth_MiB": round(grown / 2**20, 1), "cap_MiB": cap >> 20})
        sb.close()
    return rows


def html_walk_pages() -> dict[str, str]:
    """The HTML walk's bench corpus: the 1 MB styled page, 300 small site pages without scripts,
    and 300 script-heavy ones (legitimate pages with scripts/comments/banners, and injected ones)."""
    import random

    from bench.darkword_bench import ENCODINGS, POSITIONS, injected_page, legit_page, legit_variant, make_sites

    rng = random.Random(1)
    sites = make_sites(12, 1)
    plain = [legit_page(*sites[i % len(sites)], rng) for i in range(300)]
    small = []
    for i in range(150):
        host, topic = sites[i % len(sites)]
        small.append(legit_variant(host, topic, rng))
        small.append(injected_page(host, topic, rng, POSITIONS[i % len(POSITIONS)],
                                   None if i % 3 == 0 else ENCODINGS[i % len(ENCODINGS)]))
    return {"1 MB styled page": html_page().decode(), "300 plain pages": "\x00".join(plain),
            "300 script pages": "\x00".join(small)}


def bench_html_walk(rounds: int, ref: str | None) -> list[dict[str, object]]:
    """Median time of ``inspectors.extract.html.analyze`` per corpus, and of the same function at
    git revision ``ref`` (loaded from ``git show``) for comparison."""
    import importlib.util
    import statistics
    import subprocess
    import tempfile

    from inspectors.extract import html as cur

    impls = {"this tree": cur.analyze}
    if ref:
        src = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:inspectors/extract/html.py"], check=True,
                             capture_output=True, text=True).stdout
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
            f.write(src)
        spec = importlib.util.spec_from_file_location("html_ref", f.name)
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        sys.modules["html_ref"] = mod  # dataclasses look their module up
        spec.loader.exec_module(mod)
        impls[f"at {ref}"] = mod.analyze
    rows = []
    for name, doc in html_walk_pages().items():
        docs = doc.split("\x00")
        times: dict[str, list[float]] = {label: [] for label in impls}
        cpu: dict[str, list[float]] = {label: [] for label in impls}
        for _ in range(rounds):  # interleaved, so both see the same machine load
            for label, fn in impls.items():
                t, c = time.perf_counter(), time.process_time()
                for d in docs:
                    fn(d)
                times[label].append(time.perf_counter() - t)
                cpu[label].append(time.process_time() - c)
        for label, ts in times.items():
            rows.append({"corpus": name, "impl": label, "bytes": sum(map(len, docs)),
                         "median_ms": round(statistics.median(ts) * 1000, 1), "min_ms": round(min(ts) * 1000, 1),
                         "cpu_median_ms": round(statistics.median(cpu[label]) * 1000, 1)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cap-mib", type=int, default=512)
    ap.add_argument("--no-bombs", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--html-walk", type=int, metavar="ROUNDS", help="only time the HTML walk, ROUNDS times")
    ap.add_argument("--ref", help="with --html-walk: also time inspectors/extract/html.py at this git revision")
    args = ap.parse_args()
    if args.html_walk:
        for r in bench_html_walk(args.html_walk, args.ref):
            print(f"{r['corpus']:18} {r['impl']:16} {r['bytes']:>9} chars  median {r['median_ms']:>8} ms  "
                  f"min {r['min_ms']:>8} ms  CPU median {r['cpu_median_ms']:>8} ms")
        return
    factory = ObjectFactory()
    out: dict[str, object] = {}
    with Sandbox(workers=args.workers, memory_bytes=1 << 30, cpu_seconds=30) as sb:
        rows = bench_types(args.seconds, sb, factory)
    out["types"] = rows
    print(f"{'type':6} {'bytes':>9} {'ms':>8} {'MB/s':>7} {'obj/s':>7} {'chars':>8} {'kids':>4} phrases")
    for r in rows:
        print(f"{r['type']:6} {r['bytes']:>9} {r['ms']:>8} {r['MB/s']:>7} {r['objects/s']:>7} {r['text_chars']:>8} "
              f"{r['children']:>4} {r['phrases']}")
    if not args.no_bombs:
        bombs = bench_bombs(args.cap_mib << 20, factory)
        out["bombs"] = bombs
        print()
        for b in bombs:
            print(f"{b['bomb']:32} {b['bytes']:>8} B {b['seconds']:>5}s worker {b['worker_peak_MiB']:>6} MiB "
                  f"(cap {b['cap_MiB']}) sensor +{b['sensor_growth_MiB']} MiB  truncated={b['truncated']} "
                  f"anomalies={b['anomalies']}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
