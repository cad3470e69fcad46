"""The signature/text sniffer agrees with libmagic on the types it answers for."""

from __future__ import annotations

import gzip
import io
import json
import zipfile

import magic
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from reassembly.sniff import mime_from_description, sniff_signature, sniff_text
from tools import synth


def _image(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, fmt)
    return buf.getvalue()


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(40):
            z.writestr(f"dir/file{i}.bin", bytes(range(256)) * 20)
    return buf.getvalue()


SAMPLES = {
    "png": _image("PNG"),
    "jpeg": _image("JPEG"),
    "gif": _image("GIF"),
    "bmp": _image("BMP"),
    "tiff": _image("TIFF"),
    "webp": _image("WEBP"),
    "pdf": synth.pdf_document("Title", ("Hello world", "Second line")),
    "docx": synth.docx_document("Title", ("Hello world",)),
    "gzip": gzip.compress(b"hello" * 100),
    "zip": _zip(),
    "html": b"<!DOCTYPE html>\n<html><head><title>x</title></head><body><p>Hello</p></body></html>\n",
    "json": json.dumps({"a": [1, 2, 3], "b": "text"}).encode(),
    "text": b"Dear colleague,\nthe meeting moves to Thursday.\nRegards\n",
    "utf8": "会议改到星期四。\n谢谢\n".encode(),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_fast_mime_equals_libmagic(name: str) -> None:
    data = SAMPLES[name]
    mime, desc = sniff_signature(data)
    if not mime:
        mime, desc = sniff_text(data)
    assert mime, f"{name}: the fast path should recognise it"
    assert desc
    assert mime == magic.from_buffer(data, mime=True), name


def test_scripts_and_unknown_go_to_libmagic() -> None:
    assert sniff_text(b"#!/bin/sh\necho hi\n") == ("", "")
    assert sniff_text(b"-----BEGIN CERTIFICATE-----\nMIIB\n") == ("", "")
    assert sniff_text("中文".encode("gbk")) == ("", "")  # not UTF-8: libmagic guesses the charset
    assert sniff_signature(b"\x00\x01\x02\x03garbage") == ("", "")


def test_description_mapping() -> None:
    assert mime_from_description("HTML document, ASCII text") == "text/html"
    assert mime_from_description("data") == "application/octet-stream"
    assert mime_from_description("database file") == ""


@given(st.binary(max_size=300))
def test_never_raises(data: bytes) -> None:
    sniff_signature(data)
    sniff_text(data)
