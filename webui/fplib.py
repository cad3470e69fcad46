"""The fingerprint library as the console edits it: uploads, search, removal, thumbnails.

Entries live in the library file (`fingerprints.library.Library`); the library keeps hashes only,
so for images uploaded here the console keeps a re-encoded PNG thumbnail in ``<library>.thumbs/``
(named by entry id) to show beside matched images on the hit page.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fingerprints import hashing as hx
from fingerprints.library import ALGORITHMS, Entry, ImportStats, Library
from webui.images import ImageRefused, reencode_png

MAX_FILES = 200


class LibraryMissing(LookupError):
    """No fingerprint library is configured."""


@dataclass(slots=True)
class Upload:
    filename: str
    data: bytes


def library_path(settings: Any) -> Path:
    if settings.fingerprint_library is None:
        raise LibraryMissing("no fingerprint library is configured (fingerprint_library)")
    return Path(settings.fingerprint_library)


def thumbs_dir(path: Path) -> Path:
    return path.with_name(path.name + ".thumbs")


def open_library(settings: Any) -> Library:
    return Library(library_path(settings))


def search(lib: Library, text: str = "", category: str = "", limit: int = 100, offset: int = 0
           ) -> tuple[list[Entry], bool]:
    """Entries matching a hash (any algorithm), else a label substring; (entries, more pages exist)."""
    text = text.strip()
    algo = hx.guess_algorithm(text.lower()) if text else None
    if algo is not None:
        found: list[Entry] = []
        for a in ("sha256", "pdq") if algo == "sha256" else ("phash", "dhash") if algo == "phash" else (algo,):
            try:
                found += lib.find(a, text)
            except ValueError:
                pass
        return found[:limit], False
    got = list(lib.entries(label=text or None, category=category or None, limit=limit + 1, offset=offset))
    return got[:limit], len(got) > limit


def add_uploads(lib: Library, uploads: list[Upload], *, label: str, category: str, source: str,
                thumbs: Path, max_pixels: int) -> ImportStats:
    """Hash uploaded files (images also perceptually) and add them; keep PNG thumbnails of images."""
    if len(uploads) > MAX_FILES:
        raise ValueError(f"at most {MAX_FILES} files per upload")
    total = ImportStats()
    with tempfile.TemporaryDirectory(prefix="tapsift-upload-") as tmp:
        for i, up in enumerate(uploads):
            p = Path(tmp) / f"{i:04d}"
            p.write_bytes(up.data)
            st = lib.add_files([p], category=category, source=source, label=label or up.filename[:200])
            total.added += st.added
            total.duplicates += st.duplicates
            for msg in st.problems:
                total.problem(f"{up.filename[:200]}: {msg}")
            md5, _ = hx.file_digests(up.data)
            for e in lib.find("md5", md5):
                if not e.phash:
                    continue
                try:
                    png = reencode_png(up.data, max_pixels, box=320)
                except ImageRefused:
                    continue
                thumbs.mkdir(parents=True, exist_ok=True)
                (thumbs / f"{e.id}.png").write_bytes(png)
    return total


def add_hash_list(lib: Library, data: bytes, filename: str, *, label: str, category: str, source: str
                  ) -> ImportStats:
    """A text hash list (one hash per line, optional label) or a CSV with a header of hash columns."""
    text = data.decode("utf-8-sig", "replace")
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")), "")
    src = source or filename
    if filename.lower().endswith(".csv") or ("," in first and any(a in first.lower() for a in ALGORITHMS)):
        return lib.import_csv(io.StringIO(text, newline=""), label=label, category=category, source=src)
    return lib.import_hash_list(io.StringIO(text), label=label, category=category, source=src)
