"""OCR of decoded images: rapidocr (default) or tesseract (light fallback), English and Chinese.

rapidocr 3.x ships its PP-OCRv6 detection/recognition ONNX models in the wheel and reads
Chinese and stylised text (memes, screenshots) well; it runs on onnxruntime with one intra-op
thread (parallelism comes from worker processes). tesseract (Debian ``tesseract-ocr`` +
``tesseract-ocr-chi-sim``) is run as a subprocess with ``OMP_THREAD_LIMIT=1``; it is light
(30 MB of debs, no Python ML stack) and good on clean text, but puts spaces between Chinese
characters, which `tidy_cjk` removes. Engines are created once per process and cached.

Everything here runs inside a sandbox worker (see `inspectors.extract.images.analyze_image`).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image

ENGINES = ("rapidocr", "tesseract")

_CJK = r"\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_GAP = re.compile(rf"(?<=[{_CJK}])[ \t\u3000]+(?=[{_CJK}])")
_BLANK_LINES = re.compile(r"\n\s*\n+")


@dataclass(frozen=True, slots=True)
class OcrParams:
    """How to OCR one image."""

    engine: str = "auto"
    """``auto`` (rapidocr if installed, else tesseract), ``rapidocr``, ``tesseract`` or ``none``."""
    fallback: bool = True
    """Try the other engine when the chosen one is missing or fails."""
    max_side: int = 2000
    """Longer side the image is scaled down to before OCR (bounds time and memory)."""
    det_side: int = 1280
    """rapidocr: the detector sees the image scaled so its longer side is at most this. (The
    packaged default scales the *shorter* side up to 736 px: 10× slower on text banners, no
    better on the test set.)"""
    min_score: float = 0.5
    """rapidocr: drop recognised lines scoring below this."""
    tesseract_langs: str = "eng+chi_sim"
    timeout: float = 20.0
    """tesseract subprocess timeout, seconds."""
    threads: int = 1
    """onnxruntime intra-op threads (and OMP_THREAD_LIMIT for tesseract)."""


@dataclass(slots=True)
class OcrResult:
    text: str = ""
    engine: str = ""
    """Engine that produced ``text`` (empty: none ran)."""
    seconds: float = 0.0
    lines: int = 0
    error: str = ""
    """Why no engine ran or the last engine's failure."""


def tidy_cjk(text: str) -> str:
    """Drop the spaces OCR puts between CJK characters; collapse blank lines."""
    text = _CJK_GAP.sub("", text)
    return _BLANK_LINES.sub("\n", text).strip()


@cache
def rapidocr_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import rapidocr  # noqa: F401
    except Exception:  # missing or broken install
        return False
    return True


@cache
def tesseract_langs() -> frozenset[str]:
    """Languages the installed tesseract knows (empty if tesseract is missing)."""
    exe = shutil.which("tesseract")
    if exe is None:
        return frozenset()
    try:
        out = subprocess.run([exe, "--list-langs"], capture_output=True, timeout=10, text=True).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(line.strip() for line in out.splitlines()[1:] if line.strip())


def available_engines() -> list[str]:
    """Installed engines, preferred first."""
    out = []
    if rapidocr_available():
        out.append("rapidocr")
    if "eng" in tesseract_langs():
        out.append("tesseract")
    return out


_rapid: dict[tuple[int, int], Any] = {}
_rapid_lock = threading.Lock()


def _rapidocr(threads: int, det_side: int) -> Any:
    with _rapid_lock:
        eng = _rapid.get((threads, det_side))
        if eng is None:
            from rapidocr import RapidOCR

            eng = RapidOCR(params={
                "Global.log_level": "error",
                "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                "Det.limit_type": "max",
                "Det.limit_side_len": det_side,
            })
            _rapid[(threads, det_side)] = eng
        return eng


def _run_rapidocr(img: Image, p: OcrParams) -> tuple[str, int]:
    import numpy as np

    eng = _rapidocr(p.threads, p.det_side)
    arr = np.asarray(img.convert("RGB"))[:, :, ::-1]  # rapidocr takes BGR like cv2
    res = eng(np.ascontiguousarray(arr))
    txts = getattr(res, "txts", None) or ()
    scores = getattr(res, "scores", None) or (1.0,) * len(txts)
    boxes = getattr(res, "boxes", None)
    items = []
    for i, (t, s) in enumerate(zip(txts, scores)):
        if s < p.min_score or not t.strip():
            continue
        if boxes is not None and len(boxes) > i:
            ys = [pt[1] for pt in boxes[i]]
            xs = [pt[0] for pt in boxes[i]]
            items.append((min(ys), max(ys), min(xs), t))
        else:
            items.append((float(i), float(i), 0.0, t))
    lines = _reading_order(items)
    return "\n".join(lines), len(lines)


def _reading_order(items: list[tuple[float, float, float, str]]) -> list[str]:
    """Group boxes (top, bottom, left, text) into lines top to bottom, left to right."""
    items.sort(key=lambda b: (b[0], b[2]))
    rows: list[list[tuple[float, float, float, str]]] = []
    for b in items:
        if rows:
            last = rows[-1]
            top, bottom = last[0][0], last[0][1]
            mid = (b[0] + b[1]) / 2
            if top <= mid <= bottom:
                last.append(b)
                continue
        rows.append([b])
    return [" ".join(t for *_, t in sorted(r, key=lambda b: b[2])) for r in rows]


def _run_tesseract(img: Image, p: OcrParams) -> tuple[str, int]:
    exe = shutil.which("tesseract")
    if exe is None:
        raise RuntimeError("tesseract not installed")
    known = tesseract_langs()
    langs = "+".join(lang for lang in p.tesseract_langs.split("+") if lang in known) or "eng"
    buf = io.BytesIO()
    img.convert("L").save(buf, "PNG", compress_level=1)
    env = {**os.environ, "OMP_THREAD_LIMIT": str(max(1, p.threads))}
    proc = subprocess.run([exe, "stdin", "stdout", "-l", langs, "--psm", "3"], input=buf.getvalue(),
                          capture_output=True, timeout=p.timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"tesseract exit {proc.returncode}: {proc.stderr[-200:].decode(errors='replace')}")
    text = proc.stdout.decode("utf-8", errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "\n".join(lines), len(lines)


_RUNNERS = {"rapidocr": _run_rapidocr, "tesseract": _run_tesseract}


def ocr_image(img: Image, params: OcrParams | None = None) -> OcrResult:
    """OCR a decoded Pillow image; never raises (failures are in ``error``)."""
    p = params or OcrParams()
    if p.engine == "none":
        return OcrResult(error="disabled")
    avail = available_engines()
    order = [p.engine] if p.engine in ENGINES else list(avail)
    if p.fallback:
        order += [e for e in avail if e not in order]
    order = [e for e in order if e in avail]
    if not order:
        return OcrResult(error="no OCR engine installed")
    w, h = img.size
    if max(w, h) > p.max_side:
        s = p.max_side / max(w, h)
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))))
    err = ""
    for name in order:
        t0 = time.perf_counter()
        try:
            text, n = _RUNNERS[name](img, p)
        except Exception as exc:  # an engine failure falls through to the next
            err = f"{name}: {type(exc).__name__}: {str(exc)[:200]}"
            continue
        return OcrResult(tidy_cjk(text), name, time.perf_counter() - t0, n)
    return OcrResult(error=err)
