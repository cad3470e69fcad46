"""Hashing: digests, hex forms, image decoding and perceptual hashes."""

from __future__ import annotations

import hashlib
import io

import imagehash
import pytest
from PIL import Image

from bench.perceptual_bench import encode, scene
from fingerprints import hashing as hx


def test_file_digests_bytes_path_and_stream(tmp_path):
    data = b"x" * (3 << 20) + b"tail"
    p = tmp_path / "f.bin"
    p.write_bytes(data)
    want = (hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest())
    assert hx.file_digests(data) == want
    assert hx.file_digests(p) == want
    with open(p, "rb") as fh:
        assert hx.file_digests(fh) == want


def test_normalize_hex_and_guess():
    assert hx.normalize_hex(" D41D8CD98F00B204E9800998ECF8427E ", "md5") == "d41d8cd98f00b204e9800998ecf8427e"
    with pytest.raises(ValueError):
        hx.normalize_hex("abc", "md5")
    with pytest.raises(ValueError):
        hx.normalize_hex("zz" * 8, "phash")
    assert hx.guess_algorithm("a" * 32) == "md5" and hx.guess_algorithm("a" * 64) == "sha256"
    assert hx.guess_algorithm("a" * 16) == "phash" and hx.guess_algorithm("a") is None
    assert hx.to_hex(1, "phash") == "0000000000000001"
    assert hx.hamming(0b1011, 0b0001) == 2


def test_hashes_equal_imagehash_hex():
    img = scene(3)
    data = encode(img)
    h = hx.image_hashes(data)
    ref = Image.open(io.BytesIO(data))
    assert hx.to_hex(h.phash, "phash") == str(imagehash.phash(ref))
    assert hx.to_hex(h.dhash, "dhash") == str(imagehash.dhash(ref))
    assert (h.width, h.height) == img.size


def test_jpeg_draft_decoding_stays_close():
    img = scene(5).resize((1600, 1200))
    data = encode(img, "JPEG", 90)
    drafted = hx.open_image(data)
    assert max(drafted.size) < 1600  # decoded at a DCT scale
    full = hx.image_hashes(hx.open_image(data, draft=False))
    assert hx.hamming(hx.phash(drafted), full.phash) <= 4


def test_transparency_and_modes():
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    out = hx.open_image(encode(rgba))
    assert out.mode == "RGB" and out.getpixel((1, 1)) == (255, 255, 255)
    assert hx.open_image(encode(Image.new("L", (20, 20), 7))).mode == "RGB"


def test_pixel_cap_and_garbage():
    with pytest.raises(hx.ImageError, match="over the cap"):
        hx.open_image(encode(Image.new("RGB", (400, 300))), max_pixels=1000)
    with pytest.raises(hx.ImageError):
        hx.open_image(b"not an image")
    with pytest.raises(hx.ImageError):
        hx.image_hashes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
