"""Image extraction: formats, thumbnail child, OCR triage, pixel bombs, broken files."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from inspectors.extract.base import Budget
from inspectors.extract.images import ImageParams, analyze_image
from inspectors.extract.media import MediaConfig, extract_media
from inspectors.extract.ocr import OcrParams
from reassembly.objects import ObjectFactory
from tests.inspectors.extract import media_samples as ms

ROOT = Path(__file__).resolve().parents[3]
NO_OCR = MediaConfig(ocr_engine="none")


@pytest.fixture(scope="module")
def factory() -> ObjectFactory:
    return ObjectFactory()


@pytest.mark.parametrize("sample", ms.ocr_sample_set()[:6], ids=lambda s: s.name)
def test_formats_decode_with_thumbnail(sample: ms.TextImage, factory: ObjectFactory) -> None:
    obj = ms.media_obj(sample.data, factory)
    ext = extract_media(obj, Budget(), factory, config=NO_OCR)
    img = Image.open(io.BytesIO(sample.data))
    assert ext.meta["width"] == str(img.width) and ext.meta["height"] == str(img.height)
    assert ext.meta["format"] == img.format and not ext.truncated and not ext.anomalies
    assert ext.text is None and ext.meta["ocr"] == "off"
    [thumb] = ext.children
    assert thumb.kind == "thumbnail" and thumb.sniffed_mime == "image/jpeg"
    assert thumb.parent_id == obj.id and thumb.depth == 1 and thumb.source == "extract"
    assert ext.meta["thumbnail_id"] == thumb.id
    t = Image.open(io.BytesIO(thumb.data))
    assert max(t.size) == 256 and len(thumb.data) < 40_000


def test_thumbnail_object_is_not_extracted_again(factory: ObjectFactory) -> None:
    obj = ms.media_obj(ms.ocr_sample_set()[0].data, factory)
    thumb = extract_media(obj, Budget(), factory, config=NO_OCR).children[0]
    assert extract_media(thumb, Budget(), factory).meta == {"media": "evidence"}


def test_small_image_gets_no_thumbnail_and_no_ocr(factory: ObjectFactory) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (12, 12), "red").save(buf, "PNG")
    ext = extract_media(ms.media_obj(buf.getvalue(), factory), Budget(), factory)
    assert ext.children == [] and ext.meta["ocr"] == "skipped:size" and ext.text is None


def test_photo_without_text_skips_ocr() -> None:
    part = analyze_image(ms.photo_like_image(), ImageParams())
    assert part.meta["ocr"] == "skipped:no_text_likely" and part.text is None
    assert [c.meta["role"] for c in part.children] == ["thumbnail"]


def test_rgba_and_palette_transparency_flatten() -> None:
    img = Image.new("RGBA", (400, 100), (0, 0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    part = analyze_image(buf.getvalue(), ImageParams(ocr=False))
    assert part.meta["mode"] == "RGBA" and not part.anomalies


def test_animated_gif_first_frame_only() -> None:
    frames = [Image.new("RGB", (300, 80), (40 * i, 0, 255 - 40 * i)) for i in range(5)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    part = analyze_image(buf.getvalue(), ImageParams(ocr=False))
    assert part.meta["frames"] == "5" and not part.truncated


def test_png_pixel_bomb_is_flagged_without_decoding(factory: ObjectFactory) -> None:
    bomb = ms.png_pixel_bomb()
    ext = extract_media(ms.media_obj(bomb, factory), Budget(), factory)
    assert ext.truncated == ["pixel_limit"] and "image_pixel_bomb" in ext.anomalies
    assert ext.children == [] and ext.text is None


def test_pixel_cap_from_budget(factory: ObjectFactory) -> None:
    """Below Pillow's own guard but above the budget: still not decoded."""
    bomb = ms.png_pixel_bomb(6000, 6000)
    ext = extract_media(ms.media_obj(bomb, factory), Budget(max_pixels=10_000_000), factory)
    assert ext.truncated == ["pixel_limit"] and ext.anomalies == ["image_pixel_bomb"]
    assert ext.meta["width"] == "6000"


@pytest.mark.slow
def test_pixel_bomb_peak_rss_under_cap() -> None:
    """The whole sensor-side path on the 2.5-gigapixel bomb stays far below the 1 GiB worker cap."""
    code = (
        "import json\n"
        "def hwm():  # VmHWM (KiB): ru_maxrss would carry the forking parent's peak across exec\n"
        "    for line in open('/proc/self/status'):\n"
        "        if line.startswith('VmHWM:'):\n"
        "            return int(line.split()[1])\n"
        "from inspectors.extract.base import Budget\n"
        "from inspectors.extract.media import extract_media\n"
        "from reassembly.objects import ObjectFactory\n"
        "from tests.inspectors.extract import media_samples as ms\n"
        "f = ObjectFactory(); bomb = ms.png_pixel_bomb()\n"
        "before = hwm()\n"
        "e = extract_media(ms.media_obj(bomb, f), Budget(), f)\n"
        "print(json.dumps({'truncated': e.truncated, 'before': before,\n"
        "                  'peak': hwm()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["truncated"] == ["pixel_limit"]
    cap_kib = Budget().max_memory_bytes // 1024
    assert res["peak"] < cap_kib // 4, res  # KiB; in practice ~100 MB, most of it imports
    assert res["peak"] - res["before"] < 32 * 1024, res


def test_truncated_png_decodes_what_is_there() -> None:
    data = ms.ocr_sample_set()[0].data
    part = analyze_image(data[: len(data) // 2], ImageParams(ocr=False))
    assert "image_truncated" in part.truncated or "decode_error" in part.truncated
    assert part.anomalies


@pytest.mark.parametrize("blob", [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff" + b"\x00" * 100, b"GIF89a" * 50,
                                  bytes(range(256)) * 10, b"II*\x00" + b"\xff" * 64])
def test_garbage_never_raises(blob: bytes) -> None:
    part = analyze_image(blob, ImageParams(ocr_params=OcrParams(engine="none")))
    assert part.truncated and part.anomalies and part.text is None


def test_ocr_text_becomes_extraction_text(factory: ObjectFactory) -> None:
    sample = ms.ocr_sample_set()[0]
    ext = extract_media(ms.media_obj(sample.data, factory), Budget(), factory)
    assert ext.meta["ocr"] in ("rapidocr", "tesseract")
    assert ms.words_found(sample.words, ext.text or "") >= len(sample.words) - 1
