"""`extract_media`: dispatch by sniffed MIME, budgets, the sandbox path."""

from __future__ import annotations

import pytest

from inspectors.extract.base import Budget
from inspectors.extract.media import MediaConfig, extract_media, media_kind
from inspectors.extract.sandbox import Sandbox
from reassembly.objects import ObjectFactory
from tests.inspectors.extract import media_samples as ms

NO_OCR = MediaConfig(ocr_engine="none")


@pytest.fixture(scope="module")
def factory() -> ObjectFactory:
    return ObjectFactory()


def test_media_kind_by_sniffed_mime(factory: ObjectFactory) -> None:
    img = ms.media_obj(ms.ocr_sample_set()[0].data, factory)
    assert media_kind(img) == "image"
    assert media_kind(ms.media_obj(b"hello", factory, sniffed_mime="text/plain")) is None
    assert media_kind(ms.media_obj(b"x", factory, sniffed_mime="video/mp4")) == "video"
    assert media_kind(ms.media_obj(b"x", factory, sniffed_mime="audio/mpeg")) == "audio"
    assert media_kind(ms.media_obj(b"x", factory, sniffed_mime="audio/ogg")) == "video"  # may hold Theora
    assert media_kind(ms.media_obj(b"<svg/>", factory, sniffed_mime="image/svg+xml")) is None
    # unsniffed: the factory looks at the bytes
    unsniffed = ms.media_obj(ms.ocr_sample_set()[1].data, factory, sniffed_mime="")
    assert media_kind(unsniffed, factory) == "image"


def test_unsupported_and_empty(factory: ObjectFactory) -> None:
    assert extract_media(ms.media_obj(b"plain", factory), Budget(), factory).meta == {"media": "unsupported"}
    empty = ms.media_obj(b"", factory, sniffed_mime="image/png", data=None)
    ext = extract_media(empty, Budget(), factory)
    assert ext.truncated == ["no_data"] and ext.anomalies == ["media_no_data"]


def test_spooled_object_is_read(tmp_path, factory: ObjectFactory) -> None:
    data = ms.ocr_sample_set()[0].data
    p = tmp_path / "img.png"
    p.write_bytes(data)
    obj = ms.media_obj(data, factory, data=None, spool_path=str(p))
    ext = extract_media(obj, Budget(), factory, config=NO_OCR)
    assert ext.meta["format"] == "PNG" and len(ext.children) == 1


def test_child_and_byte_budgets(factory: ObjectFactory) -> None:
    obj = ms.media_obj(ms.ocr_sample_set()[0].data, factory)
    ext = extract_media(obj, Budget(max_children=0), factory, config=NO_OCR)
    assert ext.children == [] and "children" in ext.truncated and "extract_child_limit" in ext.anomalies
    ext = extract_media(obj, Budget(max_expanded_bytes=100), factory, config=NO_OCR)
    assert ext.children == [] and "expanded_bytes" in ext.truncated


def test_child_identity(factory: ObjectFactory) -> None:
    obj = ms.media_obj(ms.ocr_sample_set()[0].data, factory, depth=1, filename="cat.png", tx_id=3,
                       url="http://x/cat.png", host="x")
    [thumb] = extract_media(obj, Budget(), factory, config=NO_OCR).children
    assert thumb.parent_id == obj.id and thumb.depth == 2 and thumb.tx_id == 3 and thumb.source == "extract"
    assert thumb.filename == "cat.png/thumbnail.jpg" and thumb.url == obj.url and thumb.md5 and thumb.sha256
    assert thumb.size == len(thumb.data or b"") and thumb.complete


@pytest.mark.slow
def test_through_the_sandbox(factory: ObjectFactory) -> None:
    """Worker tasks are importable by name, params and results pickle, failures become data."""
    sample = ms.ocr_sample_set()[0]
    with Sandbox(workers=1, memory_bytes=1024 << 20, cpu_seconds=60) as sb:
        ext = extract_media(ms.media_obj(sample.data, factory), Budget(), factory, sandbox=sb)
        assert ms.words_found(sample.words, ext.text or "") >= len(sample.words) - 1
        assert [c.kind for c in ext.children] == ["thumbnail"]
        bomb = extract_media(ms.media_obj(ms.png_pixel_bomb(), factory), Budget(), factory, sandbox=sb)
        assert bomb.truncated == ["pixel_limit"]
        if ms.have_espeak():
            wav = ms.espeak_wav(ms.POSITIVE_SENTENCES[0][0], ms.VOICES[0])
            ext = extract_media(ms.media_obj(wav, factory), Budget(), factory, sandbox=sb, keywords=["password"])
            assert ext.children and ext.children[0].text == "[00:00] password", ext.meta
        assert sb.peak_rss < Budget().max_memory_bytes
    closed = extract_media(ms.media_obj(sample.data, factory), Budget(), factory, sandbox=sb)
    assert closed.truncated == ["closed"] and closed.anomalies == ["extract_closed"]
