#!/usr/bin/env python3
"""Perceptual matching robustness: recall on benign transforms, false matches on unrelated images.

    .venv/bin/python bench/perceptual_bench.py [--images 150] [--unrelated 150] [--seed 1] [--json OUT]

1. Draws ``--images`` "known" scenes with Pillow (gradient or textured background, 8-30 shapes,
   lines, text, noise patches; 320-1024 px) and imports them into a fingerprint library.
2. Makes the issue's benign transforms of each: resize 50/75/150/200 %, JPEG quality 30/50/75/95,
   brightness -20/+20 %, grayscale, crop 2 % per side, PNG→JPEG and JPEG→PNG.
3. Runs the ``perceptual`` inspector (pHash list, ``max_distance`` 8, dual-hash confirmation
   9-14 with dHash ≤ 10) on every variant: **recall** = variants matched to their own original.
4. Draws ``--unrelated`` other scenes (different seeds), makes the same variants, and runs the
   inspector on them: **false matches** = (variant, library image) pairs that matched. Also
   counts unrelated original pairs inside the known set (N·(N-1)/2) by the same rule.

Prints the per-transform recall, the distance distributions and the false-match rate over all
unrelated pairs compared (known × unrelated variants + known × known). Exits 1 if recall < 99 %
or the false-match rate > 0.01 %.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

WORDS = ("sale", "news", "photo", "travel", "garden", "city", "music", "market", "river", "sport",
         "晚报", "公园", "天气", "旅游", "美食", "音乐", "2024", "NO.7", "OPEN", "HELLO")


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _color(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def scene(seed: int) -> Image.Image:
    """A drawn RGB scene; different seeds give unrelated images."""
    rng = random.Random(seed)
    w, h = rng.randrange(320, 1025), rng.randrange(240, 769)
    a, b = np.array(_color(rng), float), np.array(_color(rng), float)
    kind = rng.randrange(4)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    if kind == 0:  # linear gradient at a random angle
        ang = rng.uniform(0, 2 * np.pi)
        t = (xx * np.cos(ang) + yy * np.sin(ang))
    elif kind == 1:  # radial
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        t = np.hypot(xx - cx, yy - cy)
    elif kind == 2:  # waves
        fx, fy = rng.uniform(0.005, 0.05), rng.uniform(0.005, 0.05)
        t = np.sin(xx * fx + rng.uniform(0, 6)) + np.cos(yy * fy + rng.uniform(0, 6))
    else:  # smooth random field (upsampled noise)
        small = np.random.default_rng(seed).random((rng.randrange(3, 9), rng.randrange(3, 9)))
        t = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC), float)
    t = (t - t.min()) / max(np.ptp(t), 1e-9)
    bg = (a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]).astype(np.uint8)
    img = Image.fromarray(bg, "RGB")
    d = ImageDraw.Draw(img)
    for _ in range(rng.randrange(8, 31)):
        x0, y0 = rng.randrange(-w // 4, w), rng.randrange(-h // 4, h)
        x1, y1 = x0 + rng.randrange(w // 20, w // 2), y0 + rng.randrange(h // 20, h // 2)
        shape = rng.randrange(5)
        col = _color(rng)
        if shape == 0:
            d.rectangle((x0, y0, x1, y1), fill=col)
        elif shape == 1:
            d.ellipse((x0, y0, x1, y1), fill=col, outline=_color(rng), width=rng.randrange(1, 6))
        elif shape == 2:
            pts = [(rng.randrange(w), rng.randrange(h)) for _ in range(rng.randrange(3, 7))]
            d.polygon(pts, fill=col)
        elif shape == 3:
            d.line([(rng.randrange(w), rng.randrange(h)) for _ in range(rng.randrange(2, 6))], fill=col,
                   width=rng.randrange(2, 14))
        else:
            d.text((x0, y0), " ".join(rng.choice(WORDS) for _ in range(rng.randrange(1, 4))), fill=col,
                   font=_font(rng.randrange(14, 64)))
    nrng = np.random.default_rng(seed + 7)
    arr = np.asarray(img).astype(np.int16)
    for _ in range(rng.randrange(0, 4)):  # noisy patches (texture)
        x0, y0 = rng.randrange(w), rng.randrange(h)
        pw, ph = rng.randrange(20, max(21, w // 3)), rng.randrange(20, max(21, h // 3))
        patch = arr[y0:y0 + ph, x0:x0 + pw]
        patch += nrng.integers(-60, 61, size=patch.shape, dtype=np.int16)
    arr += nrng.integers(-6, 7, size=arr.shape, dtype=np.int16)  # sensor-like noise
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def encode(img: Image.Image, fmt: str = "PNG", quality: int = 90) -> bytes:
    b = io.BytesIO()
    if fmt == "JPEG":
        img.convert("RGB").save(b, "JPEG", quality=quality)
    else:
        img.save(b, fmt, compress_level=1)
    return b.getvalue()


def _crop(img: Image.Image, frac: float) -> Image.Image:
    w, h = img.size
    dx, dy = round(w * frac), round(h * frac)
    return img.crop((dx, dy, w - dx, h - dy))


TRANSFORMS: dict[str, object] = {
    "resize 50%": lambda im: encode(im.resize((im.width // 2, im.height // 2), Image.LANCZOS)),
    "resize 75%": lambda im: encode(im.resize((im.width * 3 // 4, im.height * 3 // 4), Image.LANCZOS)),
    "resize 150%": lambda im: encode(im.resize((im.width * 3 // 2, im.height * 3 // 2), Image.BICUBIC)),
    "resize 200%": lambda im: encode(im.resize((im.width * 2, im.height * 2), Image.BICUBIC)),
    "JPEG q30": lambda im: encode(im, "JPEG", 30),
    "JPEG q50": lambda im: encode(im, "JPEG", 50),
    "JPEG q75": lambda im: encode(im, "JPEG", 75),
    "JPEG q95": lambda im: encode(im, "JPEG", 95),
    "brightness -20%": lambda im: encode(ImageEnhance.Brightness(im).enhance(0.8)),
    "brightness +20%": lambda im: encode(ImageEnhance.Brightness(im).enhance(1.2)),
    "grayscale": lambda im: encode(ImageOps.grayscale(im)),
    "crop 2%": lambda im: encode(_crop(im, 0.02)),
    "PNG→JPEG": lambda im: encode(im, "JPEG", 85),
    "JPEG→PNG": lambda im: encode(Image.open(io.BytesIO(encode(im, "JPEG", 85))).convert("RGB")),
}
"""Name → function(original image) -> encoded variant bytes (the originals are stored as PNG)."""


def variants(img: Image.Image) -> dict[str, bytes]:
    return {name: fn(img) for name, fn in TRANSFORMS.items()}  # type: ignore[operator]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=150)
    ap.add_argument("--unrelated", type=int, default=150)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threshold", type=int, default=8)
    ap.add_argument("--margin", type=int, default=6)
    ap.add_argument("--confirm", type=int, default=10)
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from appliance.model.inspection import InspectorConfig, ListSpec
    from fingerprints import hashing as hx
    from fingerprints.library import Library
    from inspectors.base import InspectContext
    from inspectors.perceptual import PerceptualInspector
    from tests.inspectors.factories import make_obj

    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="tapsift-pbench-"))
    known_dir = tmp / "known"
    known_dir.mkdir()
    known = [scene(args.seed * 100_000 + i) for i in range(args.images)]
    for i, im in enumerate(known):
        (known_dir / f"known{i:04d}.png").write_bytes(encode(im))
    lib_path = tmp / "lib.db"
    with Library(lib_path) as lib:
        st = lib.import_directory(known_dir, category="test")
    t_lib = time.perf_counter() - t0
    print(f"library: {st} from {args.images} drawn scenes ({t_lib:.1f} s)")

    ins = PerceptualInspector()
    ins.configure(InspectorConfig("perceptual", (ListSpec(
        "known", "fingerprints", options={"algorithm": "phash", "path": str(lib_path),
                                          "max_distance": args.threshold, "margin": args.margin,
                                          "confirm": args.confirm}),)))
    name_of = {f"known{i:04d}.png": i for i in range(args.images)}

    def run(data: bytes, oid: str) -> tuple[list, hx.ImageHashes]:
        ctx = InspectContext()
        found = list(ins.inspect(make_obj(data, mime="image/jpeg" if data[:2] == b"\xff\xd8" else "image/png",
                                          oid=oid), ctx))
        return found, ctx.cache[(oid, "imagehashes")]

    # ---- recall
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    dists: dict[str, list[int]] = defaultdict(list)
    confirmed = 0
    misses: list[str] = []
    t1 = time.perf_counter()
    hash_times: list[float] = []
    for i, im in enumerate(known):
        orig = hx.image_hashes(im)
        for name, data in variants(im).items():
            ts = time.perf_counter()
            found, vh = run(data, f"Fk{i}")
            hash_times.append(time.perf_counter() - ts)
            dists[name].append(hx.hamming(orig.phash, vh.phash))
            ok = any(name_of.get(f.detail["label"]) == i for f in found)
            per[name][0] += ok
            per[name][1] += 1
            if ok and any("confirm_distance" in f.detail for f in found if name_of.get(f.detail["label"]) == i):
                confirmed += 1
            if not ok:
                misses.append(f"{name} of known{i:04d}: phash {dists[name][-1]}, "
                              f"dhash {hx.hamming(orig.dhash, vh.dhash)}")
    t_recall = time.perf_counter() - t1
    hits = sum(v[0] for v in per.values())
    total = sum(v[1] for v in per.values())
    recall = hits / total

    # ---- false matches: unrelated variants against the library
    t2 = time.perf_counter()
    false = 0
    compared = 0
    false_examples: list[str] = []
    unrelated_orig_hashes = []
    for j in range(args.unrelated):
        im = scene(args.seed * 100_000 + 50_000 + j)
        datas = {"original": encode(im), **variants(im)}
        unrelated_orig_hashes.append(hx.image_hashes(im))
        for name, data in datas.items():
            found, _ = run(data, f"Fu{j}")
            compared += args.images
            false += len(found)
            for f in found[:1]:
                false_examples.append(f"unrelated{j} {name} ~ {f.detail['label']} (phash {f.detail['distance']}"
                                      f", dhash {f.detail.get('confirm_distance', '-')})")
    # known × known (unrelated originals), by the same rule
    kh = [hx.image_hashes(im) for im in known]
    kk_pairs = kk_false = 0
    nearest: list[int] = []
    for a in range(len(kh)):
        for b in range(a + 1, len(kh)):
            dp = hx.hamming(kh[a].phash, kh[b].phash)
            dd = hx.hamming(kh[a].dhash, kh[b].dhash)
            nearest.append(dp)
            kk_pairs += 1
            if dp <= args.threshold or (dp <= args.threshold + args.margin and dd <= args.confirm):
                kk_false += 1
    t_false = time.perf_counter() - t2
    pairs = compared + kk_pairs
    fm = false + kk_false
    fm_rate = fm / pairs
    near = np.asarray(nearest)

    print(f"\n## Recall on benign transforms ({total} variants of {args.images} images; rule: pHash ≤ "
          f"{args.threshold}, or ≤ {args.threshold + args.margin} with dHash ≤ {args.confirm})\n")
    print("| transform | recall | pHash distance median / p95 / max |")
    print("|---|---|---|")
    for name in TRANSFORMS:
        h, n = per[name]
        d = np.asarray(dists[name])
        print(f"| {name} | {h}/{n} ({100 * h / n:.1f} %) | {int(np.median(d))} / {int(np.percentile(d, 95))} / "
              f"{int(d.max())} |")
    print(f"| **all** | **{hits}/{total} ({100 * recall:.2f} %)** | |")
    print(f"\nmatches that needed dHash confirmation: {confirmed}")
    for m in misses[:10]:
        print(f"  miss: {m}")
    print(f"\n## False matches\n\n- unrelated variants × library: {false} of {compared:,} pairs"
          f"\n- library × library (unrelated originals): {kk_false} of {kk_pairs:,} pairs"
          f"\n- **total: {fm} of {pairs:,} unrelated pairs = {100 * fm_rate:.4f} %**"
          f"\n- pHash distance between unrelated originals: min {int(near.min())}, p1 "
          f"{int(np.percentile(near, 1))}, p5 {int(np.percentile(near, 5))}, median {int(np.median(near))}")
    for ex in false_examples[:10]:
        print(f"  false: {ex}")
    ht = np.asarray(hash_times) * 1000
    print(f"\ninspector time per image (decode + hash + search): median {np.median(ht):.1f} ms, "
          f"p95 {np.percentile(ht, 95):.1f} ms; wall: library {t_lib:.0f} s, recall {t_recall:.0f} s, "
          f"false {t_false:.0f} s")
    ok = recall >= 0.99 and fm_rate <= 0.0001 and pairs >= 10_000
    print("\nPASS" if ok else "\nFAIL", f"(recall ≥ 99 %: {recall >= 0.99}; false ≤ 0.01 %: {fm_rate <= 0.0001}; "
          f"pairs ≥ 10,000: {pairs >= 10_000})")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "recall": recall, "per_transform": {k: v[0] / v[1] for k, v in per.items()}, "false_matches": fm,
            "pairs": pairs, "false_rate": fm_rate, "confirmed": confirmed,
            "unrelated_phash_min": int(near.min()), "ms_per_image": float(np.median(ht)),
            "misses": Counter(m.split(" of ")[0] for m in misses)}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
