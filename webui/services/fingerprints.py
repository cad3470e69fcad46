"""The fingerprint library as the console edits it: search, add (files, images, hash lists), remove, thumbnails."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fingerprints.library import Entry, ImportStats
from webui import fplib, images
from webui.db import ConsoleDB
from webui.errors import ServiceError
from webui.services.sessions import Principal

KINDS = ("files", "hashes")


@dataclass(slots=True)
class SearchResult:
    entries: list[Entry]
    more: bool
    total: int
    counts: dict[str, Any] = field(default_factory=dict)
    with_thumb: set[int] = field(default_factory=set)


def _missing(exc: fplib.LibraryMissing) -> ServiceError:
    return ServiceError(str(exc), 404)


def search(settings: Any, q: str = "", category: str = "", limit: int = 100, offset: int = 0) -> SearchResult:
    """Entries matching a hash or a label; `ServiceError` 404 when no library is configured."""
    try:
        with fplib.open_library(settings) as lib:
            entries, more = fplib.search(lib, q, category, limit, offset)
            total, counts = len(lib), lib.counts()
        thumbs = fplib.thumbs_dir(fplib.library_path(settings))
    except fplib.LibraryMissing as exc:
        raise _missing(exc) from None
    return SearchResult(entries, more, total, counts, {e.id for e in entries if (thumbs / f"{e.id}.png").is_file()})


def add(db: ConsoleDB, settings: Any, who: Principal, uploads: list[fplib.Upload], *, kind: str, label: str,
        category: str, via: str, ip: str = "") -> ImportStats:
    """Add uploaded files/images (``kind="files"``) or the first upload as a hash list/CSV (``"hashes"``)."""
    if kind not in KINDS:
        raise ServiceError(f"kind must be one of {', '.join(KINDS)}", 422)
    if not uploads:
        raise ServiceError("choose at least one file", 422)
    label, category = label[:200].strip(), category[:100].strip()
    source = f"{via} upload by {who.username}"
    try:
        with fplib.open_library(settings) as lib:
            if kind == "hashes":
                stats = fplib.add_hash_list(lib, uploads[0].data, uploads[0].filename, label=label,
                                            category=category, source=source)
            else:
                stats = fplib.add_uploads(lib, uploads, label=label, category=category, source=source,
                                          thumbs=fplib.thumbs_dir(fplib.library_path(settings)),
                                          max_pixels=settings.image_max_pixels)
    except fplib.LibraryMissing as exc:
        raise _missing(exc) from None
    except ValueError as exc:
        raise ServiceError(str(exc), 422) from None
    db.audit(None, who.username, "fingerprint.add", ", ".join(u.filename[:80] for u in uploads[:10]), None,
             {"kind": kind, "label": label, "category": category, "added": stats.added,
              "duplicates": stats.duplicates, "invalid": stats.invalid}, ip)
    return stats


def remove(db: ConsoleDB, settings: Any, who: Principal, fid: int, ip: str = "") -> Entry:
    """Remove an entry and its thumbnail; returns the removed entry."""
    try:
        with fplib.open_library(settings) as lib:
            entry = lib.get(fid)
            if entry is None:
                raise ServiceError("no such fingerprint", 404)
            lib.remove(str(fid))
        thumbs = fplib.thumbs_dir(fplib.library_path(settings))
    except fplib.LibraryMissing as exc:
        raise _missing(exc) from None
    (thumbs / f"{fid}.png").unlink(missing_ok=True)
    db.audit(None, who.username, "fingerprint.remove", str(fid),
             {"label": entry.label, "category": entry.category, **entry.hashes()}, None, ip)
    return entry


def thumbnail_png(settings: Any, fid: int) -> bytes:
    """The entry's thumbnail, re-encoded (our own PNG, but the directory is writable by others)."""
    try:
        path = fplib.thumbs_dir(fplib.library_path(settings)) / f"{fid}.png"
    except fplib.LibraryMissing:
        raise ServiceError("no library", 404) from None
    if not path.is_file():
        raise ServiceError("no image for this fingerprint", 404)
    try:
        return images.reencode_png(path.read_bytes(), settings.image_max_pixels)
    except images.ImageRefused as exc:
        raise ServiceError(str(exc), 415) from None
