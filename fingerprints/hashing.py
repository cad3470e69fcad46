"""Hashes of files and images: streaming MD5/SHA-256, pHash/dHash (imagehash), optional PDQ.

Perceptual hashes are 64-bit unsigned ``int`` values (PDQ: 256-bit ``int``), written as
lower-case hex of fixed width (16 / 64 digits) — the same text ``str(imagehash.phash(img))``
gives, so lists made with imagehash elsewhere load unchanged. Every library entry and every
inspected image goes through `open_image` + `image_hashes` so both sides are hashed the same
way: JPEGs are decoded in draft mode (DCT-domain downscale, measured distance 0 against a full
decode for pHash), images over ``max_pixels`` are refused before their pixels are decoded.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageFile, ImageOps

CHUNK = 1 << 20
DEFAULT_MAX_PIXELS = 50_000_000
DRAFT_SIZE = (256, 256)
"""JPEG draft target: the decoder picks the smallest DCT scale at least this large."""

HEX_DIGITS: dict[str, int] = {"md5": 32, "sha256": 64, "phash": 16, "dhash": 16, "pdq": 64}
"""Hex length of each algorithm's hash."""
EXACT = ("md5", "sha256")
PERCEPTUAL = ("phash", "dhash", "pdq")
BITS: dict[str, int] = {"phash": 64, "dhash": 64, "pdq": 256}


class ImageError(ValueError):
    """An image that cannot (or must not) be decoded: unknown format, pixel cap, broken data."""


# --------------------------------------------------------------------------- exact


def file_digests(src: str | os.PathLike[str] | bytes | BinaryIO) -> tuple[str, str]:
    """(md5, sha256) hex of a path, bytes or binary file object, read in 1 MiB chunks."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    if isinstance(src, bytes | bytearray | memoryview):
        md5.update(src)
        sha.update(src)
        return md5.hexdigest(), sha.hexdigest()
    fh: BinaryIO
    close = False
    if isinstance(src, str | os.PathLike):
        fh, close = open(src, "rb"), True  # noqa: SIM115
    else:
        fh = src
    try:
        while chunk := fh.read(CHUNK):
            md5.update(chunk)
            sha.update(chunk)
    finally:
        if close:
            fh.close()
    return md5.hexdigest(), sha.hexdigest()


def normalize_hex(value: str, algorithm: str) -> str:
    """``value`` as lower-case hex of the algorithm's length; ValueError otherwise."""
    v = value.strip().lower()
    if v.startswith("0x"):
        v = v[2:]
    want = HEX_DIGITS.get(algorithm)
    if want is None:
        raise ValueError(f"unknown algorithm {algorithm!r} (one of {', '.join(HEX_DIGITS)})")
    if len(v) != want or any(c not in "0123456789abcdef" for c in v):
        raise ValueError(f"not a {algorithm} hash ({want} hex digits): {value!r}")
    return v


def guess_algorithm(value: str) -> str | None:
    """The exact algorithm a hex string's length implies (16 digits: ``phash``), or None."""
    n = len(value.strip())
    return {32: "md5", 64: "sha256", 16: "phash"}.get(n)


def to_hex(value: int, algorithm: str) -> str:
    """An integer hash as fixed-width hex."""
    return format(value, f"0{HEX_DIGITS[algorithm]}x")


def hamming(a: int, b: int) -> int:
    """Bits that differ between two hashes."""
    return (a ^ b).bit_count()


# --------------------------------------------------------------------------- images


def open_image(data: bytes | str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS,
               draft: bool = True) -> Image.Image:
    """Decode an image (first frame) to RGB, refusing more than ``max_pixels`` before decoding.

    Transparency is composited over white (a transparent logo hashes like its flat rendering),
    EXIF orientation is applied, JPEGs are decoded in draft mode.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            src = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
            img = Image.open(src)
            w, h = img.size
            if w <= 0 or h <= 0 or w * h > max_pixels:
                raise ImageError(f"image of {w}x{h} pixels is over the cap of {max_pixels}")
            if draft and img.format == "JPEG":
                img.draft("RGB", DRAFT_SIZE)
            try:
                img.seek(0)
            except EOFError:
                pass
            prev, ImageFile.LOAD_TRUNCATED_IMAGES = ImageFile.LOAD_TRUNCATED_IMAGES, True
            try:
                img.load()
            finally:
                ImageFile.LOAD_TRUNCATED_IMAGES = prev
            try:
                img = ImageOps.exif_transpose(img) or img
            except Exception:  # a broken EXIF block is not a broken image
                pass
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                rgba = img.convert("RGBA")
                bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                img = Image.alpha_composite(bg, rgba).convert("RGB")
            elif img.mode != "RGB":
                img = img.convert("RGB")
            return img
    except ImageError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, EOFError) as exc:
        raise ImageError(f"cannot decode image: {exc}") from None


def _bits_to_int(bits: Iterable[bool]) -> int:
    out = 0
    for b in bits:
        out = (out << 1) | int(bool(b))
    return out


def phash(img: Image.Image) -> int:
    """imagehash's pHash (32×32 DCT, 8×8 low frequencies vs their median) as a 64-bit int."""
    import imagehash

    return _bits_to_int(imagehash.phash(img).hash.flatten())


def dhash(img: Image.Image) -> int:
    """imagehash's dHash (9×8 horizontal gradient signs) as a 64-bit int."""
    import imagehash

    return _bits_to_int(imagehash.dhash(img).hash.flatten())


def pdq_available() -> bool:
    """Whether the optional ``pdqhash`` package can be imported."""
    try:
        import pdqhash  # noqa: F401
    except Exception:
        return False
    return True


def pdq(img: Image.Image) -> tuple[int, int]:
    """PDQ (256-bit int, quality 0-100); needs the optional ``pdqhash`` package."""
    import numpy as np
    import pdqhash

    vec, quality = pdqhash.compute(np.asarray(img.convert("RGB")))
    return _bits_to_int(vec.tolist()), int(quality)


@dataclass(slots=True, frozen=True)
class ImageHashes:
    """The perceptual hashes of one image (``pdq`` None unless asked for and available)."""

    phash: int
    dhash: int
    width: int
    height: int
    pdq: int | None = None
    pdq_quality: int = 0

    def get(self, algorithm: str) -> int | None:
        return {"phash": self.phash, "dhash": self.dhash, "pdq": self.pdq}[algorithm]


def image_hashes(data: bytes | str | os.PathLike[str] | Image.Image, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 with_pdq: bool = False) -> ImageHashes:
    """pHash and dHash (and PDQ if ``with_pdq`` and installed) of an image; ImageError if not one."""
    img = data if isinstance(data, Image.Image) else open_image(data, max_pixels=max_pixels)
    p, q = None, 0
    if with_pdq and pdq_available():
        p, q = pdq(img)
    return ImageHashes(phash(img), dhash(img), img.width, img.height, p, q)
