"""Evidence images: decoded with Pillow under a pixel limit and re-encoded as a fresh PNG.

Nothing that came off the wire is served with its original bytes or type: the browser only
ever receives a PNG this process encoded (no metadata, no trailing data, no polyglot).
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps

THUMB_MAX = 480
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff")


class ImageRefused(ValueError):
    """Not an image we will decode."""


def reencode_png(data: bytes, max_pixels: int = 40_000_000, box: int = THUMB_MAX) -> bytes:
    """Decode *data*, fit it in *box*×*box*, return PNG bytes; `ImageRefused` on anything odd."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > max_pixels:
                raise ImageRefused(f"image too large ({im.width}x{im.height})")
            im.draft("RGB", (box, box))
            im.seek(0)
            im.load()
            im = ImageOps.exif_transpose(im)
            im = im.convert("RGBA" if im.mode in ("RGBA", "LA", "P", "PA") else "RGB")
            im.thumbnail((box, box))
            out = io.BytesIO()
            im.save(out, "PNG", optimize=True)
            return out.getvalue()
    except ImageRefused:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ImageRefused(f"cannot decode image: {exc}") from None


def safe_join(base: Path | None, ref: str) -> Path | None:
    """*ref* resolved inside *base*, or None (absolute paths, ``..`` and symlinks out are refused)."""
    if base is None or not ref or "\x00" in ref:
        return None
    root = Path(base).resolve()
    try:
        p = (root / ref).resolve()
    except (OSError, RuntimeError):
        return None
    return p if p.is_relative_to(root) and p.is_file() else None
