"""The fingerprint library: one SQLite file of known files and images with label, category, source.

One row per known item (a file or an image). An item imported from a directory has all its
hashes (MD5, SHA-256, and pHash/dHash if it is an image, PDQ if asked for); an item imported
from a hash list has the one hash the list gives. Exact digests and PDQ are BLOBs, pHash/dHash
signed 64-bit INTEGERs (SQLite's integer), so 10 M MD5s take ~0.5 GB on disk and load through
one ``SELECT``. ``key`` (the item's strongest hash, e.g. ``md5:…``) is unique: importing the
same item twice adds it once.

Importers: hash lists (one hash per line, optional text after it becomes the label; as
Suricata's ``filemd5`` lists), CSV (header naming any of ``md5, sha256, phash, dhash, pdq,
label, category, source``), directories (every file hashed; images also perceptually).
Exporters: a hash list for one algorithm, or CSV with every column.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from fingerprints import hashing as hx

SCHEMA_VERSION = 1
ALGORITHMS = ("md5", "sha256", "phash", "dhash", "pdq")
_INT_ALGOS = ("phash", "dhash")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS fingerprints (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    md5 BLOB, sha256 BLOB, phash INTEGER, dhash INTEGER, pdq BLOB, pdq_quality INTEGER,
    label TEXT NOT NULL DEFAULT '', category TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '',
    size INTEGER, width INTEGER, height INTEGER,
    added_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS fp_md5 ON fingerprints(md5) WHERE md5 IS NOT NULL;
CREATE INDEX IF NOT EXISTS fp_sha256 ON fingerprints(sha256) WHERE sha256 IS NOT NULL;
CREATE INDEX IF NOT EXISTS fp_phash ON fingerprints(phash) WHERE phash IS NOT NULL;
CREATE INDEX IF NOT EXISTS fp_category ON fingerprints(category);
"""
SQLITE_MAGIC = b"SQLite format 3\x00"


def is_library(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is an SQLite file (a library) rather than a text hash list."""
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == SQLITE_MAGIC
    except OSError:
        return False


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _unsigned(v: int) -> int:
    return v + (1 << 64) if v < 0 else v


@dataclass(slots=True)
class Entry:
    """One library item. Hashes are hex (None when unknown)."""

    id: int = 0
    md5: str | None = None
    sha256: str | None = None
    phash: str | None = None
    dhash: str | None = None
    pdq: str | None = None
    pdq_quality: int | None = None
    label: str = ""
    category: str = ""
    source: str = ""
    size: int | None = None
    width: int | None = None
    height: int | None = None
    added_ns: int = 0

    def key(self) -> str:
        for algo in ("md5", "sha256", "pdq", "phash", "dhash"):
            v = getattr(self, algo)
            if v:
                return f"{algo}:{v}" if algo != "phash" or not self.dhash else f"phash:{v}:{self.dhash}"
        raise ValueError("an entry needs at least one hash")

    def hashes(self) -> dict[str, str]:
        return {a: getattr(self, a) for a in ALGORITHMS if getattr(self, a)}


@dataclass(slots=True)
class ImportStats:
    """What an import did."""

    added: int = 0
    duplicates: int = 0
    invalid: int = 0
    problems: list[str] = field(default_factory=list)

    def problem(self, msg: str) -> None:
        self.invalid += 1
        if len(self.problems) < 20:
            self.problems.append(msg)

    def __str__(self) -> str:
        return f"{self.added} added, {self.duplicates} already present, {self.invalid} invalid"


class Library:
    """A fingerprint library file (created on first open unless ``readonly``)."""

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.path = str(path)
        if readonly:
            self.db = sqlite3.connect(f"file:{Path(self.path).resolve()}?mode=ro", uri=True)
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(_SCHEMA)
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing

    def add(self, entries: Iterable[Entry], stats: ImportStats | None = None) -> ImportStats:
        """Insert entries (one transaction); an entry whose key exists is counted as a duplicate."""
        stats = stats or ImportStats()
        now = time.time_ns()
        sql = ("INSERT OR IGNORE INTO fingerprints (key, md5, sha256, phash, dhash, pdq, pdq_quality, label, "
               "category, source, size, width, height, added_ns) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
        with self.db:
            cur = self.db.cursor()
            batch: list[tuple[Any, ...]] = []

            def flush() -> None:
                before = self.db.total_changes
                cur.executemany(sql, batch)
                n = self.db.total_changes - before
                stats.added += n
                stats.duplicates += len(batch) - n
                batch.clear()

            for e in entries:
                try:
                    row = self._row(e, now)
                except ValueError as exc:
                    stats.problem(str(exc))
                    continue
                batch.append(row)
                if len(batch) >= 50_000:
                    flush()
            if batch:
                flush()
        return stats

    @staticmethod
    def _row(e: Entry, now: int) -> tuple[Any, ...]:
        h: dict[str, Any] = {}
        for algo in ALGORITHMS:
            v = getattr(e, algo)
            if v is None or v == "":
                h[algo] = None
                continue
            v = hx.normalize_hex(v, algo)
            setattr(e, algo, v)
            h[algo] = _signed(int(v, 16)) if algo in _INT_ALGOS else bytes.fromhex(v)
        return (e.key(), h["md5"], h["sha256"], h["phash"], h["dhash"], h["pdq"], e.pdq_quality,
                e.label, e.category, e.source, e.size, e.width, e.height, e.added_ns or now)

    def remove(self, ident: str) -> int:
        """Remove by row id or by any hash (hex); returns the number of rows removed."""
        with self.db:
            if ident.isdigit() and len(ident) < 16:
                return self.db.execute("DELETE FROM fingerprints WHERE id=?", (int(ident),)).rowcount
            v = ident.strip().lower()
            algo = hx.guess_algorithm(v)
            if algo is None:
                raise ValueError(f"not a row id or a hash: {ident!r}")
            n = 0
            candidates = ("sha256", "pdq") if algo == "sha256" else (("phash", "dhash") if algo == "phash" else (algo,))
            for a in candidates:
                val: Any = _signed(int(v, 16)) if a in _INT_ALGOS else bytes.fromhex(v)
                n += self.db.execute(f"DELETE FROM fingerprints WHERE {a}=?", (val,)).rowcount
            return n

    # ------------------------------------------------------------------ reading

    def __len__(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM fingerprints").fetchone()[0])

    def counts(self) -> dict[str, int]:
        """Rows having each algorithm's hash."""
        row = self.db.execute("SELECT " + ", ".join(f"count({a})" for a in ALGORITHMS)
                              + " FROM fingerprints").fetchone()
        return dict(zip(ALGORITHMS, (int(x) for x in row)))

    @staticmethod
    def _entry(row: sqlite3.Row) -> Entry:
        def hexof(a: str) -> str | None:
            v = row[a]
            if v is None:
                return None
            return hx.to_hex(_unsigned(v), a) if a in _INT_ALGOS else bytes(v).hex()

        return Entry(id=row["id"], md5=hexof("md5"), sha256=hexof("sha256"), phash=hexof("phash"),
                     dhash=hexof("dhash"), pdq=hexof("pdq"), pdq_quality=row["pdq_quality"], label=row["label"],
                     category=row["category"], source=row["source"], size=row["size"], width=row["width"],
                     height=row["height"], added_ns=row["added_ns"])

    def entries(self, *, algorithm: str | None = None, category: str | None = None, label: str | None = None,
                limit: int | None = None, offset: int = 0) -> Iterator[Entry]:
        """Entries (having ``algorithm``'s hash, in ``category``, label containing ``label``), by id."""
        where, args = [], []
        if algorithm:
            if algorithm not in ALGORITHMS:
                raise ValueError(f"unknown algorithm {algorithm!r}")
            where.append(f"{algorithm} IS NOT NULL")
        if category:
            where.append("category = ?")
            args.append(category)
        if label:
            where.append("instr(label, ?) > 0")
            args.append(label)
        sql = "SELECT * FROM fingerprints" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        for row in self.db.execute(sql, args):
            yield self._entry(row)

    def get(self, row_id: int) -> Entry | None:
        row = self.db.execute("SELECT * FROM fingerprints WHERE id=?", (row_id,)).fetchone()
        return self._entry(row) if row else None

    def find(self, algorithm: str, value: str) -> list[Entry]:
        """Entries whose ``algorithm`` hash equals ``value`` (hex)."""
        v = hx.normalize_hex(value, algorithm)
        val: Any = _signed(int(v, 16)) if algorithm in _INT_ALGOS else bytes.fromhex(v)
        return [self._entry(r) for r in self.db.execute(f"SELECT * FROM fingerprints WHERE {algorithm}=?", (val,))]

    def column(self, algorithm: str) -> tuple[list[int], list[Any]]:
        """(row ids, raw values) of every row that has ``algorithm``'s hash (BLOBs or signed ints)."""
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown algorithm {algorithm!r}")
        ids: list[int] = []
        vals: list[Any] = []
        cur = self.db.execute(f"SELECT id, {algorithm} FROM fingerprints WHERE {algorithm} IS NOT NULL")
        while rows := cur.fetchmany(100_000):
            for i, v in rows:
                ids.append(i)
                vals.append(v)
        return ids, vals

    def perceptual_rows(self, primary: str) -> list[tuple[int, int, int | None, int | None]]:
        """(id, phash, dhash, pdq) as unsigned ints for rows with ``primary`` (phash, dhash or pdq)."""
        out = []
        for i, p, d, q in self.db.execute(
                f"SELECT id, phash, dhash, pdq FROM fingerprints WHERE {primary} IS NOT NULL ORDER BY id"):
            out.append((i, None if p is None else _unsigned(p), None if d is None else _unsigned(d),
                        None if q is None else int.from_bytes(q, "big")))
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------ export

    def export_hashes(self, out: TextIO, algorithm: str, *, with_label: bool = False) -> int:
        """One hash per line (optionally ``hash<TAB>label``); returns the number of lines."""
        n = 0
        for e in self.entries(algorithm=algorithm):
            h = getattr(e, algorithm)
            out.write(f"{h}\t{e.label}\n" if with_label and e.label else f"{h}\n")
            n += 1
        return n

    def export_csv(self, out: TextIO) -> int:
        cols = ["id", *ALGORITHMS, "pdq_quality", "label", "category", "source", "size", "width", "height"]
        w = csv.writer(out)
        w.writerow(cols)
        n = 0
        for e in self.entries():
            w.writerow(["" if getattr(e, c) is None else getattr(e, c) for c in cols])
            n += 1
        return n

    # ------------------------------------------------------------------ import

    def import_hash_list(self, src: str | os.PathLike[str] | TextIO, algorithm: str | None = None, *,
                         label: str = "", category: str = "", source: str = "") -> ImportStats:
        """A hash list: the first field of each line is the hash, the rest (if any) its label."""
        stats = ImportStats()
        fh: TextIO = open(src, encoding="utf-8", errors="replace") if isinstance(src, str | os.PathLike) else src  # noqa: SIM115
        src_name = source or (str(src) if isinstance(src, str | os.PathLike) else "")

        def gen() -> Iterator[Entry]:
            for lineno, line in enumerate(fh, 1):
                s = line.strip()
                if not s or s.startswith("#"):
                    continue
                parts = re.split(r"[\s,;]+", s, maxsplit=1)
                h = parts[0]
                algo = algorithm or hx.guess_algorithm(h)
                if algo is None:
                    stats.problem(f"line {lineno}: not a hash: {h[:80]!r}")
                    continue
                e = Entry(label=(parts[1].strip() if len(parts) > 1 else "") or label, category=category,
                          source=src_name)
                try:
                    setattr(e, algo, hx.normalize_hex(h, algo))
                except ValueError as exc:
                    stats.problem(f"line {lineno}: {exc}")
                    continue
                yield e

        try:
            return self.add(gen(), stats)
        finally:
            if fh is not src:
                fh.close()

    def import_csv(self, src: str | os.PathLike[str] | TextIO, *, label: str = "", category: str = "",
                   source: str = "") -> ImportStats:
        """A CSV file whose header names any of md5, sha256, phash, dhash, pdq, label, category, source."""
        stats = ImportStats()
        fh: TextIO = open(src, encoding="utf-8-sig", newline="") if isinstance(src, str | os.PathLike) else src  # noqa: SIM115
        src_name = source or (str(src) if isinstance(src, str | os.PathLike) else "")
        try:
            reader = csv.DictReader(fh)
            cols = {c.strip().lower(): c for c in reader.fieldnames or []}
            if not any(a in cols for a in ALGORITHMS):
                raise ValueError(f"CSV header names no hash column ({', '.join(ALGORITHMS)})")

            def gen() -> Iterator[Entry]:
                for lineno, row in enumerate(reader, 2):
                    def col(name: str, row: dict = row) -> str:
                        return (row.get(cols[name]) or "").strip() if name in cols else ""

                    e = Entry(label=col("label") or label, category=col("category") or category,
                              source=col("source") or src_name)
                    try:
                        for a in ALGORITHMS:
                            if col(a):
                                setattr(e, a, hx.normalize_hex(col(a), a))
                        e.key()
                    except ValueError as exc:
                        stats.problem(f"line {lineno}: {exc}")
                        continue
                    yield e

            return self.add(gen(), stats)
        finally:
            if fh is not src:
                fh.close()

    def import_directory(self, root: str | os.PathLike[str], *, category: str = "", source: str = "",
                         label: str = "", images_only: bool = False, with_pdq: bool = False,
                         max_pixels: int = hx.DEFAULT_MAX_PIXELS) -> ImportStats:
        """Every file under ``root``: MD5/SHA-256, plus pHash/dHash (and PDQ) for images."""
        stats = ImportStats()
        paths = sorted(p for p in Path(root).rglob("*") if p.is_file()) if Path(root).is_dir() else [Path(root)]
        return self.add(self._files(paths, stats, category=category, source=source or str(root), label=label,
                                    images_only=images_only, with_pdq=with_pdq, max_pixels=max_pixels), stats)

    def add_files(self, paths: Iterable[str | os.PathLike[str]], *, category: str = "", source: str = "",
                  label: str = "", with_pdq: bool = False) -> ImportStats:
        """Hash and add the given files."""
        stats = ImportStats()
        return self.add(self._files([Path(p) for p in paths], stats, category=category, source=source,
                                    label=label, images_only=False, with_pdq=with_pdq,
                                    max_pixels=hx.DEFAULT_MAX_PIXELS), stats)

    @staticmethod
    def _files(paths: list[Path], stats: ImportStats, *, category: str, source: str, label: str,
               images_only: bool, with_pdq: bool, max_pixels: int) -> Iterator[Entry]:
        for p in paths:
            try:
                data = p.read_bytes()
            except OSError as exc:
                stats.problem(f"{p}: {exc.strerror or exc}")
                continue
            md5, sha = hx.file_digests(data)
            e = Entry(md5=md5, sha256=sha, label=label or p.name, category=category, source=source or str(p),
                      size=len(data))
            try:
                ih = hx.image_hashes(data, max_pixels=max_pixels, with_pdq=with_pdq)
            except hx.ImageError:
                if images_only:
                    continue
            else:
                e.phash, e.dhash = hx.to_hex(ih.phash, "phash"), hx.to_hex(ih.dhash, "dhash")
                e.width, e.height = ih.width, ih.height
                if ih.pdq is not None:
                    e.pdq, e.pdq_quality = hx.to_hex(ih.pdq, "pdq"), ih.pdq_quality
            yield e


def sniff_format(path: str | os.PathLike[str]) -> str:
    """``library``, ``dir``, ``csv`` or ``hashes`` for an import source."""
    p = Path(path)
    if p.is_dir():
        return "dir"
    if is_library(p):
        return "library"
    if p.suffix.lower() == ".csv":
        return "csv"
    try:
        with open(p, encoding="utf-8", errors="replace") as fh:
            head = fh.read(4096)
    except OSError:
        return "hashes"
    first = next((ln for ln in io.StringIO(head) if ln.strip() and not ln.startswith("#")), "")
    if "," in first and any(a in first.lower() for a in ALGORITHMS):
        return "csv"
    return "hashes"
