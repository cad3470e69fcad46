"""Hamming-radius search over perceptual hashes: multi-index hashing (default), BK-tree, brute force.

All indexes answer ``search(query, radius) -> list[(position, distance)]`` (positions into the
hash array they were built from, sorted by distance then position) and hold nothing but numpy
arrays (the BK-tree: Python lists). ``bench/index_bench.py`` measures the three on 1 M hashes.

**Multi-index hashing** (Norouzi et al., 2012): the 64 bits are cut into ``m`` chunks of about
log2(N) bits. If two hashes are within ``r`` bits, then by the pigeonhole principle some chunk is
within ``r // m`` bits, so a query probes, in each chunk's table, every key within ``r // m`` bits
of its own chunk and verifies the few candidates with a popcount. The tables are in CSR form (a
sorted id array and an offsets array of 2^w + 1 entries per chunk, all chunks in one array) so
one query is a handful of vectorised numpy operations. Wider hashes (PDQ, 256 bits) are searched
by brute force (`BruteIndex`), a vectorised XOR + popcount over all of them.
"""

from __future__ import annotations

import math
from functools import cache
from itertools import combinations
from typing import Protocol

import numpy as np

BRUTE_BELOW = 4096
"""Below this many hashes brute force is as fast as any index (and has no tables)."""
MAX_CHUNK_BITS = 24


class HammingIndex(Protocol):
    """What the perceptual matcher needs from an index."""

    def __len__(self) -> int: ...

    def search(self, query: int, radius: int) -> list[tuple[int, int]]: ...

    @property
    def nbytes(self) -> int: ...


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x)


def as_words(values: list[int] | np.ndarray, bits: int = 64) -> np.ndarray:
    """Integer hashes → ``uint64`` array (64 bits) or ``(n, bits // 64)`` array, most significant word first."""
    if isinstance(values, np.ndarray):
        return values.astype(np.uint64)
    nw = bits // 64
    if nw == 1:
        return np.fromiter((v & 0xFFFFFFFFFFFFFFFF for v in values), dtype=np.uint64, count=len(values))
    out = np.zeros((len(values), nw), dtype=np.uint64)
    for i, v in enumerate(values):
        for j in range(nw):
            out[i, nw - 1 - j] = (v >> (64 * j)) & 0xFFFFFFFFFFFFFFFF
    return out


def _result(pos: np.ndarray, dist: np.ndarray) -> list[tuple[int, int]]:
    order = np.lexsort((pos, dist))
    return [(int(p), int(d)) for p, d in zip(pos[order], dist[order])]


class BruteIndex:
    """Linear scan: XOR and popcount over every hash (64-bit or multi-word)."""

    def __init__(self, hashes: np.ndarray) -> None:
        self.hashes = np.ascontiguousarray(hashes, dtype=np.uint64)

    def __len__(self) -> int:
        return int(self.hashes.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.hashes.nbytes)

    def distances(self, query: int) -> np.ndarray:
        if self.hashes.ndim == 1:
            return _popcount(self.hashes ^ np.uint64(query & 0xFFFFFFFFFFFFFFFF)).astype(np.int32)
        q = as_words([query], 64 * self.hashes.shape[1])[0]
        return _popcount(self.hashes ^ q).sum(axis=1, dtype=np.int32)

    def search(self, query: int, radius: int) -> list[tuple[int, int]]:
        if not len(self):
            return []
        d = self.distances(query)
        pos = np.flatnonzero(d <= radius)
        return _result(pos, d[pos])


@cache
def _masks(width: int, k: int) -> np.ndarray:
    """Every ``width``-bit value with at most ``k`` bits set (the XOR probes of a chunk)."""
    out = [0]
    for j in range(1, k + 1):
        for bits in combinations(range(width), j):
            v = 0
            for b in bits:
                v |= 1 << b
            out.append(v)
    return np.asarray(out, dtype=np.int64)


def _probe_count(width: int, k: int) -> int:
    return sum(math.comb(width, j) for j in range(min(k, width) + 1))


class MIHIndex:
    """Multi-index hashing over 64-bit hashes (see the module docstring)."""

    def __init__(self, hashes: np.ndarray, chunks: int | None = None) -> None:
        h = np.ascontiguousarray(hashes, dtype=np.uint64)
        if h.ndim != 1:
            raise ValueError("MIHIndex takes 64-bit hashes")
        self.hashes = h
        n = max(int(h.size), 2)
        if chunks is None:
            chunks = max(2, min(8, round(64 / max(8.0, math.log2(n)))))
        while 64 / chunks > MAX_CHUNK_BITS:
            chunks += 1
        self.m = chunks
        base, extra = divmod(64, chunks)
        self.widths = [base + (1 if i >= chunks - extra else 0) for i in range(chunks)]
        self.shifts = [sum(self.widths[:i]) for i in range(chunks)]
        self.bases: list[int] = []
        counts: list[np.ndarray] = []
        ids: list[np.ndarray] = []
        base_off = 0
        for w, s in zip(self.widths, self.shifts):
            keys = ((h >> np.uint64(s)) & np.uint64((1 << w) - 1)).astype(np.int64)
            counts.append(np.bincount(keys, minlength=1 << w))
            ids.append(np.argsort(keys, kind="stable").astype(np.int32))
            self.bases.append(base_off)
            base_off += 1 << w
        self.offsets = np.zeros(base_off + 1, dtype=np.int64 if 3 * h.size > 2**31 else np.int32)
        np.cumsum(np.concatenate(counts), out=self.offsets[1:])
        self.ids = np.concatenate(ids) if ids else np.zeros(0, np.int32)

    def __len__(self) -> int:
        return int(self.hashes.size)

    @property
    def nbytes(self) -> int:
        return int(self.hashes.nbytes + self.offsets.nbytes + self.ids.nbytes)

    def expected_candidates(self, radius: int) -> float:
        k = radius // self.m
        return sum(_probe_count(w, k) * len(self) / (1 << w) for w in self.widths)

    def search(self, query: int, radius: int) -> list[tuple[int, int]]:
        if not len(self):
            return []
        q = query & 0xFFFFFFFFFFFFFFFF
        k = radius // self.m
        if self.expected_candidates(radius) > len(self) / 4 or k > 6:
            return BruteIndex(self.hashes).search(q, radius)  # the pigeonhole bound is too loose
        probes = np.concatenate([
            (((q >> s) & ((1 << w) - 1)) ^ _masks(w, k)) + b
            for w, s, b in zip(self.widths, self.shifts, self.bases)])
        starts = self.offsets[probes]
        lens = self.offsets[probes + 1] - starts
        total = int(lens.sum())
        if not total:
            return []
        nz = lens > 0
        starts, lens = starts[nz], lens[nz]
        # positions starts[i] .. starts[i] + lens[i] - 1, concatenated
        step = np.ones(total, dtype=np.int64)
        step[0] = starts[0]
        if lens.size > 1:
            ends_at = np.cumsum(lens)[:-1]
            step[ends_at] = starts[1:] - (starts[:-1] + lens[:-1] - 1)
        cand = self.ids[np.cumsum(step)]
        d = _popcount(self.hashes[cand] ^ np.uint64(q)).astype(np.int32)
        keep = d <= radius
        cand, d = cand[keep], d[keep]
        if cand.size > 1:  # a hash near the query in several chunks was found once per chunk
            cand, first = np.unique(cand, return_index=True)
            d = d[first]
        return _result(cand, d)


class BKTree:
    """A BK-tree (Burkhard–Keller) over 64-bit ints: pure Python, for comparison and small sets."""

    __slots__ = ("children", "n", "positions", "values")

    def __init__(self, hashes: np.ndarray | list[int]) -> None:
        self.values: list[int] = []
        self.positions: list[list[int]] = []
        self.children: list[dict[int, int]] = []
        self.n = 0
        for pos, v in enumerate(hashes.tolist() if isinstance(hashes, np.ndarray) else hashes):
            self.add(int(v), pos)

    def add(self, value: int, position: int) -> None:
        self.n += 1
        if not self.values:
            self.values.append(value)
            self.positions.append([position])
            self.children.append({})
            return
        node = 0
        values, children = self.values, self.children
        while True:
            d = (values[node] ^ value).bit_count()
            if d == 0:
                self.positions[node].append(position)
                return
            nxt = children[node].get(d)
            if nxt is None:
                children[node][d] = len(values)
                values.append(value)
                self.positions.append([position])
                children.append({})
                return
            node = nxt

    def __len__(self) -> int:
        return self.n

    @property
    def nbytes(self) -> int:
        """A rough estimate: ~200 bytes per node (an int, a list, a dict)."""
        return 200 * len(self.values)

    def search(self, query: int, radius: int) -> list[tuple[int, int]]:
        if not self.values:
            return []
        out: list[tuple[int, int]] = []
        values, children, positions = self.values, self.children, self.positions
        stack = [0]
        while stack:
            node = stack.pop()
            d = (values[node] ^ query).bit_count()
            if d <= radius:
                out.extend((p, d) for p in positions[node])
            lo, hi = d - radius, d + radius
            for cd, child in children[node].items():
                if lo <= cd <= hi:
                    stack.append(child)
        out.sort(key=lambda x: (x[1], x[0]))
        return out


def build_index(hashes: np.ndarray, kind: str = "auto") -> HammingIndex:
    """An index for ``hashes``: ``auto`` (MIH for ≥ 4096 64-bit hashes, else brute force), ``mih``,
    ``bktree`` or ``brute``."""
    h = np.asarray(hashes, dtype=np.uint64)
    if kind == "brute" or (kind == "auto" and (h.ndim != 1 or h.shape[0] < BRUTE_BELOW)):
        return BruteIndex(h)
    if kind in ("auto", "mih"):
        return MIHIndex(h)
    if kind == "bktree":
        return BKTree(h)
    raise ValueError(f"unknown index kind {kind!r} (auto, mih, bktree, brute)")
