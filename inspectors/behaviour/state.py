"""The behaviour state file: baselines that survive restarts and consecutive ``tapsift read`` runs,
and the anomaly and verdict tables the console reads and writes.

SQLite in WAL mode (the sensor writes baselines and anomalies; the console writes verdicts; each
waits up to 5 s for the other's lock). Tables (``PRAGMA user_version`` = `SCHEMA_VERSION`):

``meta(key, value)``
    the open window, the day being summed, counters, the alert-id counter, the last verdict
    applied, and the layout (window length, weeks, feature names) the blobs were written with.
``entities(key, kind, zone, first_seen_ns, last_seen_ns, windows, state)``
    one row per host / zone / user-agent family; ``state`` is a blob (`pack`): a JSON header and
    raw numpy arrays, validated on load (a bad blob drops that entity and is counted).
``zones(zone, hosts, trained_ns, state)``
    the peer forest's ring of recent windows and the destination prevalence of each zone.
``anomalies(id, …)``
    every raised behaviour alert (``id`` = the alert id): detector, kind, subject, zones, window,
    score, threshold, rule/profile, severity, destination, explanation, deviations (JSON),
    suppressed repeats, and the analyst's verdict.
``verdicts(seq, ts, anomaly_id, subject, action, user, note, applied)``
    the verdict log: ``true_positive`` / ``false_positive`` on an anomaly, ``rebaseline`` of a
    subject; rows with ``applied = 0`` are picked up by the running stage at its next tick.
``detector_precision`` (view)
    per detector: alerts, true and false positives, precision over the judged ones.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import struct
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
VERDICTS = ("true_positive", "false_positive")
ACTIONS = (*VERDICTS, "rebaseline")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entities (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    zone TEXT NOT NULL,
    first_seen_ns INTEGER NOT NULL,
    last_seen_ns INTEGER NOT NULL,
    windows INTEGER NOT NULL,
    state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS zones (
    zone TEXT PRIMARY KEY,
    hosts INTEGER NOT NULL,
    trained_ns INTEGER NOT NULL,
    state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS anomalies (
    id TEXT PRIMARY KEY,
    ts_ns INTEGER NOT NULL,
    detector TEXT NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    subject_kind TEXT NOT NULL,
    zone TEXT NOT NULL,
    dst_zone TEXT NOT NULL,
    window_start_ns INTEGER NOT NULL,
    window_end_ns INTEGER NOT NULL,
    score REAL NOT NULL,
    threshold REAL NOT NULL,
    policy TEXT NOT NULL,
    profile TEXT NOT NULL,
    severity INTEGER NOT NULL,
    destination TEXT NOT NULL DEFAULT '',
    explanation TEXT NOT NULL,
    deviations TEXT NOT NULL DEFAULT '[]',
    suppressed INTEGER NOT NULL DEFAULT 0,
    verdict TEXT NOT NULL DEFAULT '',
    verdict_user TEXT NOT NULL DEFAULT '',
    verdict_note TEXT NOT NULL DEFAULT '',
    verdict_ts REAL
);
CREATE INDEX IF NOT EXISTS anomalies_ts ON anomalies(ts_ns);
CREATE INDEX IF NOT EXISTS anomalies_subject_ts ON anomalies(subject, ts_ns);
CREATE INDEX IF NOT EXISTS anomalies_detector ON anomalies(detector, verdict);
CREATE TABLE IF NOT EXISTS verdicts (
    seq INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    anomaly_id TEXT,
    subject TEXT NOT NULL,
    action TEXT NOT NULL,
    user TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    applied INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS verdicts_pending ON verdicts(applied, seq);
CREATE VIEW IF NOT EXISTS detector_precision AS
    SELECT detector,
           COUNT(*) AS alerts,
           SUM(verdict = 'true_positive') AS true_positives,
           SUM(verdict = 'false_positive') AS false_positives,
           CAST(SUM(verdict = 'true_positive') AS REAL)
               / NULLIF(SUM(verdict IN ('true_positive', 'false_positive')), 0) AS precision
    FROM anomalies GROUP BY detector;
"""

_MAGIC = b"TSB1"
_DTYPES = frozenset({"uint8", "uint16", "uint32", "uint64", "int64", "float32", "float64"})
MAX_BLOB = 64 * 1024 * 1024


class StateError(ValueError):
    """A state blob or file that cannot be used."""


def pack(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """A blob: magic, header length, JSON header (with the arrays' names, dtypes and shapes), raw arrays."""
    meta = [[name, str(a.dtype), list(a.shape)] for name, a in arrays.items()]
    head = json.dumps({**header, "_arrays": meta}, separators=(",", ":")).encode()
    return b"".join([_MAGIC, struct.pack("<I", len(head)), head,
                     *(np.ascontiguousarray(a).tobytes() for a in arrays.values())])


def unpack(blob: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The inverse of `pack`; raises `StateError` on anything malformed."""
    if not isinstance(blob, bytes | memoryview) or len(blob) < 8 or bytes(blob[:4]) != _MAGIC:
        raise StateError("not a behaviour state blob")
    blob = bytes(blob)
    (n,) = struct.unpack_from("<I", blob, 4)
    if 8 + n > len(blob) or len(blob) > MAX_BLOB:
        raise StateError("truncated header")
    try:
        header = json.loads(blob[8: 8 + n])
        specs = header.pop("_arrays")
    except (ValueError, KeyError, TypeError) as exc:
        raise StateError(f"bad header: {exc}") from None
    if not isinstance(header, dict) or not isinstance(specs, list):
        raise StateError("bad header")
    arrays: dict[str, np.ndarray] = {}
    off = 8 + n
    for spec in specs:
        try:
            name, dtype, shape = spec
            shape = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            raise StateError("bad array spec") from None
        if dtype not in _DTYPES or any(s < 0 for s in shape) or len(shape) > 4:
            raise StateError(f"bad array {name!r}")
        size = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if off + size > len(blob):
            raise StateError(f"array {name!r} is truncated")
        arrays[str(name)] = np.frombuffer(blob, dtype=dtype, count=size // np.dtype(dtype).itemsize,
                                          offset=off).reshape(shape).copy()
        off += size
    if off != len(blob):
        raise StateError("trailing bytes")
    return header, arrays


class BehaviourState:
    """The state file (see the module doc). One instance per process; not thread-safe."""

    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly:
            self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5.0)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=5.0)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(f"{self.path}: state file from a newer tapsift (schema {version})")
            with self.db:
                self.db.executescript(_SCHEMA)
                self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self.db:
            yield self.db

    # -- meta ---------------------------------------------------------------------------------
    def get_meta(self) -> dict[str, Any]:
        out = {}
        for k, v in self.db.execute("SELECT key, value FROM meta"):
            with contextlib.suppress(ValueError):
                out[k] = json.loads(v)
        return out

    def put_meta(self, db: sqlite3.Connection, meta: dict[str, Any]) -> None:
        db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                       [(k, json.dumps(v)) for k, v in meta.items()])

    # -- entities and zones -------------------------------------------------------------------
    def put_entities(self, db: sqlite3.Connection, rows: Iterable[tuple[str, str, str, int, int, int, bytes]]) -> None:
        db.executemany("INSERT OR REPLACE INTO entities (key, kind, zone, first_seen_ns, last_seen_ns, windows, state) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def delete_entities(self, db: sqlite3.Connection, keys: Iterable[str]) -> None:
        db.executemany("DELETE FROM entities WHERE key = ?", [(k,) for k in keys])

    def entities(self) -> Iterator[tuple[str, str, int, int, int, bytes]]:
        """(key, zone, first_seen_ns, last_seen_ns, windows, blob), most recently seen last."""
        yield from self.db.execute("SELECT key, zone, first_seen_ns, last_seen_ns, windows, state FROM entities "
                                   "ORDER BY last_seen_ns, key")

    def put_zones(self, db: sqlite3.Connection, rows: Iterable[tuple[str, int, int, bytes]]) -> None:
        db.executemany("INSERT OR REPLACE INTO zones (zone, hosts, trained_ns, state) VALUES (?, ?, ?, ?)", rows)

    def zones(self) -> Iterator[tuple[str, int, int, bytes]]:
        yield from self.db.execute("SELECT zone, hosts, trained_ns, state FROM zones ORDER BY zone")

    # -- anomalies and verdicts ---------------------------------------------------------------
    def add_anomaly(self, db: sqlite3.Connection, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        db.execute(f"INSERT OR IGNORE INTO anomalies ({cols}) VALUES ({', '.join('?' * len(row))})",
                   list(row.values()))

    def bump_suppressed(self, db: sqlite3.Connection, first_id: str, n: int = 1) -> None:
        db.execute("UPDATE anomalies SET suppressed = suppressed + ? WHERE id = ?", (n, first_id))

    def anomaly(self, anomaly_id: str) -> dict[str, Any] | None:
        cur = self.db.execute("SELECT * FROM anomalies WHERE id = ?", (anomaly_id,))
        row = cur.fetchone()
        return dict(zip([c[0] for c in cur.description], row, strict=True)) if row else None

    def record_verdict(self, anomaly_id: str, verdict: str, *, user: str = "", note: str = "",
                       ts: float | None = None) -> bool:
        """An analyst's verdict on an anomaly (``true_positive`` / ``false_positive``); False if
        there is no such anomaly. Safe to call from another process (the console)."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
        ts = time.time() if ts is None else ts
        with self.tx() as db:
            row = db.execute("SELECT subject FROM anomalies WHERE id = ?", (anomaly_id,)).fetchone()
            if row is None:
                return False
            db.execute("UPDATE anomalies SET verdict = ?, verdict_user = ?, verdict_note = ?, verdict_ts = ? "
                       "WHERE id = ?", (verdict, user[:200], note[:8000], ts, anomaly_id))
            db.execute("INSERT INTO verdicts (ts, anomaly_id, subject, action, user, note) VALUES (?, ?, ?, ?, ?, ?)",
                       (ts, anomaly_id, row[0], verdict, user[:200], note[:8000]))
        return True

    def request_rebaseline(self, subject: str, *, user: str = "", note: str = "", ts: float | None = None) -> None:
        """Ask the stage to take ``subject``'s recent behaviour as its new normal."""
        ts = time.time() if ts is None else ts
        with self.tx() as db:
            db.execute("INSERT INTO verdicts (ts, anomaly_id, subject, action, user, note) "
                       "VALUES (?, NULL, ?, ?, ?, ?)", (ts, subject, "rebaseline", user[:200], note[:8000]))

    def pending(self) -> list[tuple[int, str | None, str, str]]:
        """Verdicts not yet applied by the stage: (seq, anomaly id, subject, action)."""
        return list(self.db.execute("SELECT seq, anomaly_id, subject, action FROM verdicts WHERE applied = 0 "
                                    "ORDER BY seq LIMIT 1000"))

    def mark_applied(self, seqs: Iterable[int]) -> None:
        with self.tx() as db:
            db.executemany("UPDATE verdicts SET applied = 1 WHERE seq = ?", [(s,) for s in seqs])

    def detector_precision(self) -> dict[str, dict[str, Any]]:
        """Per detector: alerts, true_positives, false_positives, precision (None until judged)."""
        cur = self.db.execute("SELECT detector, alerts, true_positives, false_positives, precision "
                              "FROM detector_precision ORDER BY detector")
        return {d: {"alerts": a, "true_positives": tp or 0, "false_positives": fp or 0, "precision": p}
                for d, a, tp, fp, p in cur}
