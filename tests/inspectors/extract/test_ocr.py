"""OCR word recovery on the generated English/Chinese sample set (done-when: ≥ 90 % of words)."""

from __future__ import annotations

import pytest

from inspectors.extract.images import ImageParams, analyze_image
from inspectors.extract.ocr import OcrParams, available_engines, tidy_cjk
from tests.inspectors.extract import media_samples as ms


def _recovery(engine: str, lang: str, *, memes: bool = True) -> tuple[int, int, list[str]]:
    p = ImageParams(thumbnail=False, ocr_params=OcrParams(engine=engine, fallback=False))
    found = total = 0
    misses = []
    for s in ms.ocr_sample_set():
        if s.lang != lang or (not memes and s.name.endswith("_meme")):
            continue
        part = analyze_image(s.data, p)
        assert part.meta.get("ocr") == engine, (s.name, part.meta)
        n = ms.words_found(s.words, part.text or "")
        found += n
        total += len(s.words)
        if n < len(s.words):
            misses.append(f"{s.name}: {part.text!r}")
    return found, total, misses


def test_tidy_cjk() -> None:
    assert tidy_cjk("翻 墙 软件  比特 币\n\n\nVPN  account 免 费") == "翻墙软件比特币\nVPN  account 免费"
    assert tidy_cjk("hello world") == "hello world"


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_rapidocr_word_recovery(lang: str) -> None:
    if "rapidocr" not in available_engines():
        pytest.skip("rapidocr/onnxruntime not installed")
    found, total, misses = _recovery("rapidocr", lang)
    assert found / total >= 0.9, misses


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_tesseract_word_recovery_clean_images(lang: str) -> None:
    """tesseract, the light fallback: ≥ 90 % on clean renderings (memes are rapidocr's job)."""
    if "tesseract" not in available_engines():
        pytest.skip("tesseract-ocr not installed")
    found, total, misses = _recovery("tesseract", lang, memes=False)
    assert found / total >= 0.9, misses


def test_engine_none_and_fallback() -> None:
    data = ms.ocr_sample_set()[0].data
    assert analyze_image(data, ImageParams(ocr_params=OcrParams(engine="none"))).text is None
    part = analyze_image(data, ImageParams(ocr_params=OcrParams(engine="no-such-engine")))
    if available_engines():
        assert part.meta["ocr"] in available_engines() and part.text
