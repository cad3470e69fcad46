"""Stitching 206 Partial Content pieces back into whole files, across connections.

A download manager or a resumed browser download fetches one URL in ranges, often over
several connections. Each piece is kept (within a memory budget) under the key
(host, URL, total length, validator); when the pieces cover ``[0, total)`` the whole file
is rebuilt in order. Pieces that disagree where they overlap are reported, the first
piece's bytes win.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field

_CONTENT_RANGE = re.compile(rb"^\s*bytes\s+(\d+)\s*-\s*(\d+)\s*/\s*(\d+|\*)\s*$", re.I)


def parse_content_range(value: bytes | None) -> tuple[int, int, int | None] | None:
    """``bytes first-last/total`` → (first, last, total or None); None if malformed."""
    if not value:
        return None
    m = _CONTENT_RANGE.match(value)
    if not m:
        return None
    first, last = int(m.group(1)), int(m.group(2))
    total = None if m.group(3) == b"*" else int(m.group(3))
    if last < first or (total is not None and last >= total):
        return None
    return first, last, total


@dataclass
class _File:
    total: int
    pieces: dict[int, bytes] = field(default_factory=dict)
    """offset → bytes"""
    bytes_held: int = 0
    conflicts: int = 0
    meta: dict[str, object] = field(default_factory=dict)


class RangeStitcher:
    """Keeps range pieces per file key and returns the whole file once they cover it.

    ``budget`` bounds the bytes held over all files; when it is exceeded the least
    recently touched files are dropped (and counted in ``dropped``).
    """

    def __init__(self, budget: int = 256 * 1024 * 1024, max_total: int = 1 << 31) -> None:
        self.budget = budget
        self.max_total = max_total
        self._files: OrderedDict[tuple, _File] = OrderedDict()
        self.held = 0
        self.dropped = 0
        self.completed = 0
        self.conflicts = 0

    def add(self, key: tuple, first: int, total: int, data: bytes, meta: dict[str, object]) -> bytes | None:
        """Add a piece starting at ``first``; returns the whole file when now complete."""
        if not self.budget or total <= 0 or total > self.max_total or not data:
            return None
        data = data[: max(0, total - first)]
        if len(data) > self.budget:
            return None
        full_key = (*key, total)
        f = self._files.get(full_key)
        if f is None:
            f = self._files[full_key] = _File(total=total, meta=dict(meta))
        self._files.move_to_end(full_key)
        prev = f.pieces.get(first)
        if prev is not None and len(prev) >= len(data):
            if not prev.startswith(data):
                f.conflicts += 1
                self.conflicts += 1
            return None
        if prev is not None:
            f.bytes_held -= len(prev)
            self.held -= len(prev)
        f.pieces[first] = data
        f.bytes_held += len(data)
        self.held += len(data)
        whole = self._assemble(f)
        if whole is not None:
            del self._files[full_key]
            self.held -= f.bytes_held
            self.completed += 1
            return whole
        while self.held > self.budget and self._files:
            _, old = self._files.popitem(last=False)
            self.held -= old.bytes_held
            self.dropped += 1
        return None

    def _assemble(self, f: _File) -> bytes | None:
        pos = 0
        out: list[bytes] = []
        for off in sorted(f.pieces):
            piece = f.pieces[off]
            if off > pos:
                return None
            end = off + len(piece)
            if end <= pos:
                continue  # wholly inside what is already assembled
            out.append(piece[pos - off:])
            pos = end
            if pos >= f.total:
                break
        if pos < f.total:
            return None
        return b"".join(out)[: f.total]

    def pending(self) -> int:
        """Number of files with pieces still missing."""
        return len(self._files)
