#!/usr/bin/env python3
"""Media extraction benchmark: throughput per type, OCR word recovery, keyword-spotting figures.

    .venv/bin/python bench/media_bench.py [--runs 3] [--kws-voices] [--json OUT.json]

All samples are generated (``tests/inspectors/extract/media_samples.py``: Pillow + Debian fonts,
espeak-ng, PyAV). Everything runs in this process, one thread per engine (onnxruntime
``intra_op_num_threads=1``, tesseract ``OMP_THREAD_LIMIT=1``); a sensor gets more by running
more sandbox workers. Engines are warmed up before timing. MB/s = input bytes / seconds;
objects/s = objects / seconds; × real time = media seconds / seconds. Figures are medians of
``--runs`` runs. Prints Markdown tables; nothing is asserted.

Rows:

* images, decode + thumbnail only (no OCR), and with OCR per engine (the 16-image OCR set);
* OCR word recovery per engine and language (the test set, incl. small low-contrast text and
  memes);
* audio, decode to 16 kHz mono per container, and decode + pocketsphinx keyword spotting
  (8 keywords) over the 30 KWS clips; with ``--kws-voices`` also recall / false alarms for
  other espeak-ng voices;
* with ``--spoken`` (alone): the held-out-style spoken-keyword set — out-of-vocabulary words,
  five English voices and Mandarin, clean and with white noise at 20 and 10 dB SNR;
* video: keyframes + audio track per container (6 s, 640×360, 3 keyframes) and a 60 s 720p
  H.264 clip with a keyframe every 2 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from inspectors.extract.audio import AudioParams, analyze_audio, decode_pcm  # noqa: E402
from inspectors.extract.images import ImageParams, analyze_image  # noqa: E402
from inspectors.extract.ocr import OcrParams, available_engines  # noqa: E402
from inspectors.extract.video import VideoParams, analyze_video  # noqa: E402
from tests.inspectors.extract import media_samples as ms  # noqa: E402


def _timed(fn: object, items: list, runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        for it in items:
            fn(it)  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _row(name: str, n: int, nbytes: int, secs: float, media_s: float = 0.0) -> dict:
    r = {"what": name, "objects": n, "MB": nbytes / 1e6, "seconds": secs, "MB/s": nbytes / 1e6 / secs,
         "objects/s": n / secs, "ms/object": 1000 * secs / n}
    if media_s:
        r["x_realtime"] = media_s / secs
    return r


def bench_images(runs: int) -> tuple[list[dict], list[dict]]:
    samples = ms.ocr_sample_set()
    data = [s.data for s in samples]
    nbytes = sum(map(len, data))
    rows = [_row("image: decode + thumbnail", len(data), nbytes,
                 _timed(lambda d: analyze_image(d, ImageParams(ocr=False)), data, runs))]
    recovery = []
    for eng in available_engines():
        p = ImageParams(thumbnail=False, ocr_params=OcrParams(engine=eng, fallback=False))
        analyze_image(data[0], p)  # warm-up (model load)
        rows.append(_row(f"image: decode + OCR ({eng})", len(data), nbytes,
                         _timed(lambda d, p=p: analyze_image(d, p), data, runs)))
        for lang in ("en", "zh"):
            for subset in ("all", "clean"):
                found = total = 0
                for s in samples:
                    if s.lang != lang or (subset == "clean" and s.name.endswith(("_meme", "_small"))):
                        continue
                    found += ms.words_found(s.words, analyze_image(s.data, p).text or "")
                    total += len(s.words)
                recovery.append({"engine": eng, "lang": lang, "set": subset, "found": found, "words": total,
                                 "recovery": found / total})
    return rows, recovery


def _kws_eval(voices: tuple[str, ...]) -> dict:
    ok = fa_neg = fa_pos = 0
    for _, wav, exp in ms.kws_clips(voices):
        part = analyze_audio(wav, AudioParams(keywords=ms.KEYWORDS))
        hits = {line.split("] ", 1)[1] for c in part.children for line in c.data.decode().splitlines()}
        ok += bool(exp) and set(exp) <= hits
        if hits - set(exp):
            if exp:
                fa_pos += 1
            else:
                fa_neg += 1
    return {"voices": "+".join(voices), "recall": f"{ok}/20", "negatives_with_hits": f"{fa_neg}/10",
            "positives_with_extra": f"{fa_pos}/20"}


def bench_audio(runs: int, voices: bool) -> tuple[list[dict], list[dict]]:
    clips = ms.kws_clips()
    rows = []
    base = clips[0][1]
    for fmt in ms.AUDIO_FORMATS:
        data = [ms.encode_audio(w, fmt) for _, w, _ in clips[:10]]
        secs = sum(decode_pcm(d, 600).seconds for d in data)
        rows.append(_row(f"audio {fmt}: decode → 16 kHz", len(data), sum(map(len, data)),
                         _timed(lambda d: decode_pcm(d, 600), data, runs), secs))
    wavs = [w for _, w, _ in clips]
    secs = sum(decode_pcm(w, 600).seconds for w in wavs)
    p = AudioParams(keywords=ms.KEYWORDS)
    analyze_audio(base, p)
    rows.append(_row("audio wav: decode + KWS (8 keywords)", len(wavs), sum(map(len, wavs)),
                     _timed(lambda d: analyze_audio(d, p), wavs, runs), secs))
    figures = [_kws_eval(ms.VOICES)]
    if voices:
        figures += [_kws_eval((v,)) for v in ms.ALL_VOICES if (v,) != ms.VOICES]
    return rows, figures


def bench_spoken(noise: tuple[float | None, ...] = (None, 20.0, 10.0)) -> list[dict]:
    """The held-out-style spoken set (``media_samples.spoken_clips``): OOV words, five English
    voices and Mandarin, clean and with white noise; per voice × noise: clips whose keywords were
    all spotted, negatives with a hit, and whether three runs of the first clip agreed."""
    rows = []
    for lang, kws in (("en", ms.SPOKEN_KEYWORDS_EN), ("zh", ms.SPOKEN_KEYWORDS_ZH)):
        groups: dict[str, list[int]] = {}
        per_kw: dict[str, list[int]] = {}
        for name, wav, exp in ms.spoken_clips(lang, noise=noise):
            g = name.rsplit("/", 1)[0]
            part = analyze_audio(wav, AudioParams(keywords=kws))
            hits = {line.split("] ", 1)[1] for c in part.children for line in c.data.decode().splitlines()}
            row = groups.setdefault(g, [0, 0, 0, 0])
            if exp:
                row[0] += set(exp) <= hits
                row[1] += 1
                for k in exp:
                    per_kw.setdefault(k, [0, 0])
                    per_kw[k][0] += k in hits
                    per_kw[k][1] += 1
            else:
                row[2] += bool(hits)
                row[3] += 1
        tot = [sum(r[i] for r in groups.values()) for i in range(4)]
        for g, r in groups.items():
            rows.append({"lang": lang, "voice/noise": g, "recall": f"{r[0]}/{r[1]}", "negatives_hit": f"{r[2]}/{r[3]}"})
        rows.append({"lang": lang, "voice/noise": "ALL", "recall": f"{tot[0]}/{tot[1]} ({100 * tot[0] / tot[1]:.0f} %)",
                     "negatives_hit": f"{tot[2]}/{tot[3]}",
                     "per keyword": ", ".join(f"{k} {a}/{b}" for k, (a, b) in per_kw.items())})
    return rows


def bench_video(runs: int) -> list[dict]:
    wav = ms.kws_clips()[0][1]
    rows = []
    scenes = ["Buy cheap VPN now", "Password hunter two", "Meet at the harbour"]
    for fmt in ms.VIDEO_FORMATS:
        d = ms.make_video(scenes, fmt=fmt, audio_wav=wav)
        rows.append(_row(f"video {fmt} 6 s 360p: keyframes + audio", 1, len(d),
                         _timed(lambda x: analyze_video(x, VideoParams()), [d], runs), 6.0))
    long = ms.make_video([f"Slide {i}: quarterly numbers" for i in range(30)], seconds_per_scene=2.0, fps=25,
                         size=(1280, 720), fmt="mp4")
    rows.append(_row("video mp4 60 s 720p: keyframes only", 1, len(long),
                     _timed(lambda x: analyze_video(x, VideoParams(max_frames=64, audio=False)), [long], runs), 60.0))
    rows.append(_row("video mp4 60 s 720p: sampled (no keyframe path)", 1, len(long),
                     _timed(lambda x: analyze_video(x, VideoParams(max_frames=64, audio=False, min_keyframes=999,
                                                                   sample_every=2.0)), [long], runs), 60.0))
    return rows


def _table(rows: list[dict]) -> str:
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        out.append("| " + " | ".join(f"{r[k]:.3g}" if isinstance(r.get(k), float) else str(r.get(k, ""))
                                     for k in keys) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--kws-voices", action="store_true", help="also KWS figures for other espeak-ng voices")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--spoken", action="store_true", help="only the held-out-style spoken keyword figures")
    a = ap.parse_args()
    if a.spoken:
        print(_table(bench_spoken()))
        return
    img_rows, recovery = bench_images(a.runs)
    aud_rows, kws = bench_audio(a.runs, a.kws_voices) if ms.have_espeak() else ([], [])
    vid_rows = bench_video(a.runs) if ms.have_espeak() else []
    print("## Throughput (one process, one thread per engine)\n")
    print(_table(img_rows + aud_rows + vid_rows))
    print("\n## OCR word recovery\n")
    print(_table(recovery))
    print("\n## Keyword spotting (pocketsphinx, 20 positive + 10 negative clips)\n")
    print(_table(kws))
    if a.json:
        a.json.write_text(json.dumps({"throughput": img_rows + aud_rows + vid_rows, "ocr": recovery, "kws": kws},
                                     indent=1))


if __name__ == "__main__":
    main()
