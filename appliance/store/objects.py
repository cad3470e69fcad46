"""Content objects' metadata (``objects``): one row per content id, shared by the alerts on it."""

from __future__ import annotations

import enum
from typing import Any

from appliance.model import ContentObject
from appliance.outputs.alertjson import clean, dumps
from appliance.store.backend import Executor

__all__ = ["AddResult", "ObjectRepo", "insert_sql", "int64"]


class AddResult(enum.Enum):
    """What storing a row did: a new row, the same row again, or another row under the same id."""

    INSERTED = "inserted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


def int64(v: Any) -> int | None:
    """An INTEGER column value: ints that fit in 64 bits (wrapping unsigned 64-bit ids), else NULL."""
    if not isinstance(v, int) or isinstance(v, bool):
        return None
    if (1 << 63) <= v < (1 << 64):
        return v - (1 << 64)
    return v if -(1 << 63) <= v < (1 << 63) else None


def insert_sql(table: str, row: dict[str, Any], conflict: str | None = None) -> str:
    """An INSERT of our own fixed column names (never alert content), values as parameters;
    ``ON CONFLICT (conflict) DO NOTHING`` when *conflict* names the unique key."""
    sql = f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})"
    return sql + (f" ON CONFLICT ({conflict}) DO NOTHING" if conflict else "")


_SAME = ("sha256", "size", "source", "parent_id")
"""Columns that must agree for a second insert of a content id to be the same object."""


class ObjectRepo:
    """Objects' metadata over an `Executor` (a transaction when writing)."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex

    def add(self, obj: ContentObject, direction: str | None = None) -> AddResult:
        row = clean({
            "content_id": obj.id, "parent_id": obj.parent_id, "source": obj.source, "kind": obj.kind,
            "direction": direction, "ts_ns": int64(obj.ts_ns), "size": int64(obj.size),
            "md5": obj.md5, "sha256": obj.sha256, "declared_mime": obj.declared_mime,
            "sniffed_mime": obj.sniffed_mime, "magic": obj.magic, "filename": obj.filename,
            "url": obj.url, "host": obj.host, "missing_bytes": int64(obj.missing_bytes),
            "truncated": dumps(clean(list(obj.truncated))), "anomalies": dumps(clean(list(obj.anomalies))),
        })
        if self.ex.insert(insert_sql("objects", row, "content_id"), list(row.values()), "content_id") is not None:
            return AddResult.INSERTED
        old = self.ex.one(f"SELECT {', '.join(_SAME)} FROM objects WHERE content_id = ?", (obj.id,))
        same = old is not None and all(old[k] == row[k] for k in _SAME)
        return AddResult.DUPLICATE if same else AddResult.CONFLICT

    def get(self, content_id: str | None) -> dict[str, Any] | None:
        if content_id is None:
            return None
        return self.ex.one("SELECT * FROM objects WHERE content_id = ?", (content_id,))

    def purge_orphans(self) -> int:
        """Delete objects no alert refers to any more (after a purge of alerts)."""
        return self.ex.execute("DELETE FROM objects WHERE content_id NOT IN "
                               "(SELECT content_id FROM alerts WHERE content_id IS NOT NULL)")
