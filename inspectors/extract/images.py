"""Images: header check, bounded decode, evidence thumbnail and OCR (a sandbox worker task).

`analyze_image` is the worker function (``inspectors.extract.images:analyze_image``):

1. Pillow opens the image lazily (header only). A declared size over ``max_pixels`` is a pixel
   bomb: nothing is decoded, the result is truncated ``pixel_limit`` with anomaly
   ``image_pixel_bomb``. Pillow's own decompression-bomb guard is handled the same way.
2. JPEGs are decoded with ``draft()`` at the smallest scale still large enough for OCR
   (or for the thumbnail when OCR is off). Animated GIF/WebP and multi-page TIFF: first frame.
   A file cut short (a capture gap) is decoded as far as it goes (truncated ``image_truncated``).
3. A thumbnail (longer side ≤ 256 px, JPEG) is returned as a child spec with
   ``meta["role"] = "thumbnail"``: evidence for the console, not content to inspect.
4. OCR runs only on images that plausibly hold text (`text_likelihood`: share of strong
   horizontal edges on a small greyscale copy) and are large enough; one OCR per object.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

from inspectors.extract.ocr import OcrParams, ocr_image
from inspectors.extract.parts import Child, Partial

FORMAT_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp",
               "BMP": "image/bmp", "TIFF": "image/tiff", "ICO": "image/vnd.microsoft.icon", "MPO": "image/jpeg"}
ALLOWED_FORMATS = frozenset(FORMAT_MIME)
"""Formats Pillow may try; anything else (PSD, EPS → Ghostscript!, …) is not decoded."""


@dataclass(frozen=True, slots=True)
class ImageParams:
    """Limits and switches for one image."""

    max_pixels: int = 50_000_000
    thumbnail: bool = True
    thumb_side: int = 256
    thumb_quality: int = 75
    ocr: bool = True
    ocr_params: OcrParams = field(default_factory=OcrParams)
    min_ocr_side: int = 16
    """Images whose shorter side is below this are not OCRed (icons, spacers, tracking pixels)."""
    min_ocr_pixels: int = 8_000
    min_text_likelihood: float = 0.008
    """Share of strong horizontal edges below which an image is taken to hold no text."""
    max_text_chars: int = 100_000


def _flag(p: Partial, reason: str, anomaly: str) -> None:
    if reason not in p.truncated:
        p.truncated.append(reason)
    if anomaly not in p.anomalies:
        p.anomalies.append(anomaly)


def text_likelihood(img: object) -> float:
    """Share of pixels with a strong horizontal brightness step on a ≤ 512 px greyscale copy.

    Rendered text gives 2–15 %; photos, gradients and flat graphics mostly stay below 1 %.
    """
    import numpy as np
    from PIL import Image

    assert isinstance(img, Image.Image)
    g = img.convert("L")
    if max(g.size) > 512:
        g.thumbnail((512, 512))
    a = np.asarray(g, dtype=np.int16)
    if a.shape[1] < 2:
        return 0.0
    dx = np.abs(np.diff(a, axis=1))
    return float((dx > 60).mean())


def _flatten(img: object) -> object:
    """RGB copy, transparency composited over white."""
    from PIL import Image

    assert isinstance(img, Image.Image)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGB", rgba.size, "white")
        bg.paste(rgba, mask=rgba.getchannel("A"))
        return bg
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np

        a = np.asarray(img, dtype=np.float32)
        hi = float(a.max()) or 1.0
        return Image.fromarray((a * (255.0 / hi)).clip(0, 255).astype("uint8")).convert("RGB")
    return img.convert("RGB")


def analyze_image(data: bytes, params: ImageParams | None = None) -> Partial:
    """Decode, thumbnail and OCR one image (worker task); never raises on bad input."""
    p = params or ImageParams()
    out = Partial()
    try:
        _analyze(data, p, out)
    except MemoryError:
        _flag(out, "memory", "image_memory")
    except Exception as exc:  # hostile input: report, never raise
        out.anomalies.append("image_decode_error")
        out.meta["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        if "decode_error" not in out.truncated:
            out.truncated.append("decode_error")
    return out


def _formats() -> list[str]:
    from PIL import Image

    Image.init()
    return sorted(f for f in ALLOWED_FORMATS if f in Image.OPEN)


def _analyze(data: bytes, p: ImageParams, out: Partial) -> None:
    from PIL import Image, ImageFile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            img = Image.open(io.BytesIO(data), formats=_formats())
        except Image.DecompressionBombError as exc:
            out.meta["error"] = str(exc)[:200]
            _flag(out, "pixel_limit", "image_pixel_bomb")
            return
        except (Image.UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
            out.meta["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            _flag(out, "decode_error", "image_unreadable")
            return
        w, h = img.size
        fmt = img.format or ""
        out.meta.update(format=fmt, width=str(w), height=str(h), mode=img.mode)
        n_frames = getattr(img, "n_frames", 1)
        if n_frames > 1:
            out.meta["frames"] = str(n_frames)
        if w <= 0 or h <= 0:
            _flag(out, "decode_error", "image_bad_size")
            return
        if w * h > p.max_pixels:
            _flag(out, "pixel_limit", "image_pixel_bomb")
            return
        want_ocr = p.ocr and p.ocr_params.engine != "none" and min(w, h) >= p.min_ocr_side \
            and w * h >= p.min_ocr_pixels
        if fmt == "JPEG":
            side = p.ocr_params.max_side if want_ocr else p.thumb_side
            s = min(1.0, side / max(w, h))
            img.draft("RGB", (max(1, int(w * s)), max(1, int(h * s))))
        try:
            img.load()
        except OSError as exc:  # cut short: decode what is there
            if "truncated" not in str(exc) and "broken data stream" not in str(exc):
                raise
            ImageFile.LOAD_TRUNCATED_IMAGES = True
            try:
                img = Image.open(io.BytesIO(data), formats=_formats())
                img.load()
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = False
            _flag(out, "image_truncated", "image_truncated")
        rgb = _flatten(img)
        img.close()
    if p.thumbnail and max(w, h) > p.thumb_side:
        th = rgb.copy()  # type: ignore[attr-defined]
        th.thumbnail((p.thumb_side, p.thumb_side))
        buf = io.BytesIO()
        th.save(buf, "JPEG", quality=p.thumb_quality, optimize=True)
        tb = buf.getvalue()
        out.children.append(Child("thumbnail.jpg", tb, len(tb), "image/jpeg",
                                  meta={"role": "thumbnail", "width": str(th.width), "height": str(th.height)}))
    if not want_ocr:
        out.meta["ocr"] = "skipped:size" if p.ocr else "off"
        return
    score = text_likelihood(rgb)
    out.meta["text_likelihood"] = f"{score:.4f}"
    if score < p.min_text_likelihood:
        out.meta["ocr"] = "skipped:no_text_likely"
        return
    res = ocr_image(rgb, p.ocr_params)  # type: ignore[arg-type]
    if not res.engine:
        out.meta["ocr"] = "failed"
        out.meta["ocr_error"] = res.error
        out.anomalies.append("ocr_failed")
        return
    out.meta.update(ocr=res.engine, ocr_seconds=f"{res.seconds:.3f}", ocr_lines=str(res.lines))
    text = res.text
    if len(text) > p.max_text_chars:
        text = text[: p.max_text_chars]
        _flag(out, "text_limit", "extract_text_limit")
    out.text = text
