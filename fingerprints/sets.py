"""Fingerprint sets as inspectors use them: loaded once per policy version, then only looked up.

A set comes from a policy list's ``path`` (a library file, a hash list or a CSV) and/or its
inline ``hashes``. `load_exact` gives an `ExactFingerprints` (MD5 or SHA-256), `load_perceptual`
a `PerceptualFingerprints` (pHash, dHash or PDQ) with the dual-hash rule. Loaded sets are cached
by (path, size, mtime, hashes), so a policy reload that does not change a 10 M-entry list does
not parse it again.

Labels and categories stay in the library and are read only for a match (a short read-only
SQLite query), so a set costs its arrays and nothing per entry.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fingerprints import hashing as hx
from fingerprints.exact import ExactSet, parse_hash_file
from fingerprints.index import HammingIndex, as_words, build_index
from fingerprints.library import Entry, Library, sniff_format

DEFAULT_THRESHOLDS: dict[str, int] = {"phash": 8, "dhash": 10, "pdq": 31}
"""Measured match thresholds (notes/components.md §3) used when a list gives ``max_distance: 0``."""
DEFAULT_CONFIRM: dict[str, int] = {"phash": 10, "dhash": 8}
"""Secondary-hash distance that confirms a candidate in the margin (pHash list → dHash ≤ 10)."""
SECONDARY: dict[str, str] = {"phash": "dhash", "dhash": "phash"}

_cache: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_cache_lock = threading.Lock()
CACHE_SIZE = 8


def _cached(key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    value = make()
    with _cache_lock:
        _cache[key] = value
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return value


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _stamp(path: str) -> tuple[str, int, int]:
    if not path:
        return ("", 0, 0)
    st = os.stat(path)
    return (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@dataclass(slots=True, frozen=True)
class Hit:
    """A match against a set: the entry (label, category, source when known) and how close."""

    hash: str
    """The matched fingerprint (hex)."""
    entry_id: int = 0
    """Library row id (0 for inline hashes and hash-list files)."""
    label: str = ""
    category: str = ""
    source: str = ""
    distance: int = 0
    confirm_distance: int | None = None
    """Secondary-hash distance when the match needed confirmation, else None."""


_local = threading.local()


def _lookup_entry(path: str, entry_id: int) -> Entry | None:
    """A library row, through a read-only connection kept per thread and process."""
    conns: dict[tuple[int, str], Library] = _local.__dict__.setdefault("conns", {})
    key = (os.getpid(), path)
    lib = conns.get(key)
    try:
        if lib is None:
            lib = conns[key] = Library(path, readonly=True)
        return lib.get(entry_id)
    except sqlite3.Error:
        conns.pop(key, None)
        return None


# --------------------------------------------------------------------------- exact


class ExactFingerprints:
    """An MD5 or SHA-256 set with the way back to each entry's label."""

    def __init__(self, algorithm: str, exact: ExactSet, library: str = "", labels: dict[str, str] | None = None,
                 source: str = "") -> None:
        self.algorithm = algorithm
        self.set = exact
        self.library = library
        self.labels = labels or {}
        self.source = source

    def __len__(self) -> int:
        return len(self.set)

    def lookup(self, digest: str) -> Hit | None:
        """The hit for a hex digest, or None."""
        digest = digest.strip().lower()
        pos = self.set.position(digest)
        if pos < 0:
            return None
        row = self.set.payload_at(pos) or 0
        if row > 0 and self.library:
            e = _lookup_entry(self.library, row)
            if e is not None:
                return Hit(digest, row, e.label, e.category, e.source)
        return Hit(digest, 0, self.labels.get(digest, ""), source=self.source)


def load_exact(algorithm: str, path: str = "", hashes: Sequence[str] = ()) -> ExactFingerprints:
    """MD5/SHA-256 set from a library file, a hash list or CSV (``path``) plus inline ``hashes``."""
    if algorithm not in hx.EXACT:
        raise ValueError(f"{algorithm!r} is not an exact hash algorithm (md5, sha256)")
    key = ("exact", algorithm, _stamp(path), tuple(hashes))
    return _cached(key, lambda: _load_exact(algorithm, path, hashes))


def _load_exact(algorithm: str, path: str, hashes: Sequence[str]) -> ExactFingerprints:
    size = 16 if algorithm == "md5" else 32
    parts: list[np.ndarray] = []
    pays: list[np.ndarray] = []
    library = ""
    labels: dict[str, str] = {}
    if path:
        fmt = sniff_format(path)
        if fmt == "library":
            library = path
            with Library(path, readonly=True) as lib:
                ids, vals = lib.column(algorithm)
            words = np.frombuffer(b"".join(vals), dtype=">u8").astype(np.uint64).reshape(-1, size // 8)
            parts.append(words)
            pays.append(np.asarray(ids, dtype=np.int64))
        elif fmt == "csv":
            import csv

            with open(path, encoding="utf-8-sig", newline="") as fh:
                rows = [r for r in csv.DictReader(fh)]
            col = {k.strip().lower(): k for k in (rows[0].keys() if rows else [])}
            got = []
            for r in rows:
                v = (r.get(col.get(algorithm, ""), "") or "").strip().lower()
                if len(v) == size * 2:
                    got.append(v)
                    if col.get("label") and r.get(col["label"]):
                        labels[v] = r[col["label"]]
            ex = ExactSet.from_hex(got, size)
            parts.append(np.column_stack([ex.first, ex.rest]))
            pays.append(np.zeros(len(ex), dtype=np.int64))
        else:
            words = parse_hash_file(path, size)
            parts.append(words)
            pays.append(np.zeros(len(words), dtype=np.int64))
    if hashes:
        ex = ExactSet.from_hex([hx.normalize_hex(h, algorithm) for h in hashes], size)
        parts.append(np.column_stack([ex.first, ex.rest]))
        pays.append(np.zeros(len(ex), dtype=np.int64))
    if parts:
        words = np.concatenate(parts)
        pay = np.concatenate(pays)
    else:
        words, pay = np.zeros((0, size // 8), np.uint64), np.zeros(0, np.int64)
    # payload 0 for non-library entries; library rows win over inline duplicates (dedupe keeps the first)
    exact = ExactSet(words, size, pay if library else None)
    return ExactFingerprints(algorithm, exact, library, labels, source=path)


# --------------------------------------------------------------------------- perceptual


class PerceptualFingerprints:
    """Perceptual hashes with a Hamming index per hash, and the dual-hash rule.

    An image matches an entry when its primary-hash distance is ≤ ``threshold``, or when it is
    ≤ ``threshold + margin`` *and* the entry has a secondary hash (dHash for pHash lists, and the
    reverse) within ``confirm`` of the image's: a near-threshold candidate must be near in both.
    """

    def __init__(self, algorithm: str, rows: list[tuple[int, int, int | None]], *, library: str = "",
                 labels: dict[int, str] | None = None, source: str = "", index_kind: str = "auto") -> None:
        self.algorithm = algorithm
        self.library = library
        self.source = source
        self.labels = labels or {}
        bits = hx.BITS[algorithm]
        self.ids = np.asarray([r[0] for r in rows], dtype=np.int64)
        self.primary = as_words([r[1] for r in rows], bits) if rows else np.zeros(
            (0,) if bits == 64 else (0, bits // 64), np.uint64)
        self.index: HammingIndex = build_index(self.primary, index_kind)
        self.has_secondary = np.asarray([r[2] is not None for r in rows], dtype=bool)
        self.secondary = np.asarray([(r[2] or 0) & 0xFFFFFFFFFFFFFFFF for r in rows], dtype=np.uint64)
        sec_pos = np.flatnonzero(self.has_secondary)
        self.sec_pos = sec_pos
        self.sec_index: HammingIndex | None = (build_index(self.secondary[sec_pos], index_kind)
                                                if algorithm in SECONDARY and sec_pos.size else None)

    def __len__(self) -> int:
        return int(self.ids.size)

    @property
    def nbytes(self) -> int:
        sec = self.sec_index.nbytes if self.sec_index is not None else 0
        return int(self.index.nbytes + sec + self.ids.nbytes + self.secondary.nbytes)

    def _primary_distance(self, pos: int, query: int) -> int:
        v = self.primary[pos]
        if self.primary.ndim == 1:
            return (int(v) ^ query).bit_count()
        return sum((int(w) ^ ((query >> (64 * (len(v) - 1 - i))) & 0xFFFFFFFFFFFFFFFF)).bit_count()
                   for i, w in enumerate(v))

    def match(self, primary: int, secondary: int | None, threshold: int, margin: int = 0,
              confirm: int = 0) -> list[tuple[int, int, int | None]]:
        """[(position, primary distance, secondary distance or None)] sorted by distance."""
        out: dict[int, tuple[int, int | None]] = {}
        for pos, d in self.index.search(primary, threshold):
            out[pos] = (d, None)
        if margin > 0 and secondary is not None and self.sec_index is not None:
            for spos, sd in self.sec_index.search(secondary, confirm):
                pos = int(self.sec_pos[spos])
                if pos in out:
                    continue
                d = self._primary_distance(pos, primary)
                if d <= threshold + margin:
                    out[pos] = (d, sd)
        return sorted(((p, d, sd) for p, (d, sd) in out.items()), key=lambda x: (x[1], x[0]))

    def hit(self, pos: int, distance: int, confirm_distance: int | None) -> Hit:
        bits = hx.BITS[self.algorithm]
        v = self.primary[pos]
        val = int(v) if bits == 64 else int.from_bytes(np.asarray(v, dtype=">u8").tobytes(), "big")
        h = hx.to_hex(val, self.algorithm)
        row = int(self.ids[pos])
        if row > 0 and self.library:
            e = _lookup_entry(self.library, row)
            if e is not None:
                return Hit(h, row, e.label, e.category, e.source, distance, confirm_distance)
        return Hit(h, 0, self.labels.get(pos, ""), "", self.source, distance, confirm_distance)


def load_perceptual(algorithm: str, path: str = "", hashes: Sequence[str] = (), *,
                    index_kind: str = "auto") -> PerceptualFingerprints:
    """pHash/dHash/PDQ set from a library (with secondary hashes), hash list or CSV, plus inline hashes.

    Inline and hash-list entries may be written ``primary:secondary`` (``phash:dhash``) to allow
    dual-hash confirmation.
    """
    if algorithm not in hx.PERCEPTUAL:
        raise ValueError(f"{algorithm!r} is not a perceptual hash algorithm (phash, dhash, pdq)")
    key = ("perceptual", algorithm, _stamp(path), tuple(hashes), index_kind)
    return _cached(key, lambda: _load_perceptual(algorithm, path, hashes, index_kind))


def _parse_pair(text: str, algorithm: str) -> tuple[int, int | None]:
    first, _, second = text.strip().partition(":")
    p = int(hx.normalize_hex(first, algorithm), 16)
    s = int(hx.normalize_hex(second, SECONDARY[algorithm]), 16) if second and algorithm in SECONDARY else None
    return p, s


def _load_perceptual(algorithm: str, path: str, hashes: Sequence[str], index_kind: str) -> PerceptualFingerprints:
    rows: list[tuple[int, int, int | None]] = []
    labels: dict[int, str] = {}
    library = ""
    sec = SECONDARY.get(algorithm)
    if path:
        fmt = sniff_format(path)
        if fmt == "library":
            library = path
            with Library(path, readonly=True) as lib:
                for rid, ph, dh, pq in lib.perceptual_rows(algorithm):
                    vals = {"phash": ph, "dhash": dh, "pdq": pq}
                    rows.append((rid, vals[algorithm], vals[sec] if sec else None))  # type: ignore[arg-type]
        elif fmt == "csv":
            import csv

            with open(path, encoding="utf-8-sig", newline="") as fh:
                for r in csv.DictReader(fh):
                    col = {k.strip().lower(): (v or "").strip() for k, v in r.items() if k}
                    if not col.get(algorithm):
                        continue
                    p = int(hx.normalize_hex(col[algorithm], algorithm), 16)
                    s = int(hx.normalize_hex(col[sec], sec), 16) if sec and col.get(sec) else None
                    if col.get("label"):
                        labels[len(rows)] = col["label"]
                    rows.append((0, p, s))
        else:
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    s_ = line.strip()
                    if not s_ or s_.startswith("#"):
                        continue
                    first, _, rest = s_.partition(" ") if " " in s_ else s_.partition("\t")
                    try:
                        p, s2 = _parse_pair(first, algorithm)
                    except ValueError:
                        continue
                    if rest.strip():
                        labels[len(rows)] = rest.strip()
                    rows.append((0, p, s2))
    for h in hashes:
        p, s2 = _parse_pair(h, algorithm)
        rows.append((0, p, s2))
    return PerceptualFingerprints(algorithm, rows, library=library, labels=labels, source=path,
                                  index_kind=index_kind)
