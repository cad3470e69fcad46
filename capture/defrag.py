"""IP fragment reassembly (IPv4, RFC 791/815; IPv6 fragment headers, RFC 8200).

Policy (documented, tested):

- **Overlaps: first wins.** Bytes already held are never replaced; a later fragment only fills
  holes. Every overlapping fragment adds ``frag.overlap`` to its datagram, and
  ``frag.overlap_conflict`` when the overlapping bytes differ (an evasion attempt: an IDS
  and the end host may reassemble differently).
- **Time** is packet time: a datagram whose first fragment is older than ``timeout_ns``
  when another fragment arrives (or `Defragmenter.expire` is called) is dropped
  (``frag.timeout``).
- **Memory**: held payload bytes plus a fixed per-datagram and per-fragment overhead are
  capped by ``memcap``; the oldest datagrams are dropped first (``frag.memcap``). A datagram
  is capped at ``max_fragments`` pieces (``frag.too_many``) to bound CPU on tiny-fragment floods.
- A datagram whose reassembled size would exceed 65535 bytes is dropped (``frag.too_big``);
  a non-last fragment whose length is not a multiple of 8 (``frag.bad_length``), a fragment
  past the known end or a second, different last fragment (``frag.inconsistent``) and a
  fragment cut short by the capture snap length (``frag.truncated``) are dropped alone.

Anomaly codes seen on fragments that are held are kept with their datagram and reported once:
on the reassembled packet, or counted when the datagram is dropped.
"""

from __future__ import annotations

__all__ = ["Defragmenter"]

_DGRAM_OVERHEAD = 256
_FRAG_OVERHEAD = 64
_MAX_DATAGRAM = 65535


class _Dgram:
    __slots__ = ("anoms", "first_ts", "nbytes", "pieces", "proto", "total")

    def __init__(self, ts: int, proto: int) -> None:
        self.first_ts = ts
        self.pieces: list[tuple[int, int, bytes]] = []
        """Sorted, non-overlapping (start, end, data)."""
        self.total = -1
        self.nbytes = 0
        self.anoms: list[str] = []
        self.proto = proto


class Defragmenter:
    """Holds fragments per (version, src, dst, id, proto, vlan) until a datagram is whole."""

    def __init__(
        self,
        counters: dict[str, int],
        timeout_ns: int = 30_000_000_000,
        memcap: int = 32 << 20,
        max_fragments: int = 256,
    ) -> None:
        self.counters = counters
        """Shared anomaly counters (anomaly code → count)."""
        self.timeout_ns = int(timeout_ns)
        self.memcap = int(memcap)
        self.max_fragments = max_fragments
        self.held = 0
        """Bytes currently accounted against `memcap`."""
        self.reassembled = 0
        """Datagrams completed so far."""
        self._dgrams: dict[tuple, _Dgram] = {}

    def __len__(self) -> int:
        return len(self._dgrams)

    def _drop(self, key: tuple, reason: str) -> None:
        d = self._dgrams.pop(key)
        self.held -= d.nbytes
        c = self.counters
        c[reason] = c.get(reason, 0) + 1
        for a in d.anoms:
            c[a] = c.get(a, 0) + 1

    def _count(self, codes: list[str] | None, *more: str) -> None:
        c = self.counters
        for a in (*(codes or ()), *more):
            c[a] = c.get(a, 0) + 1

    def expire(self, now_ns: int) -> None:
        """Drop datagrams whose first fragment is older than the timeout at packet time ``now_ns``."""
        limit = now_ns - self.timeout_ns
        dgrams = self._dgrams
        while dgrams:
            key = next(iter(dgrams))
            if dgrams[key].first_ts >= limit:
                break
            self._drop(key, "frag.timeout")

    def flush(self) -> None:
        """Drop everything still held (end of input), counting ``frag.incomplete``."""
        for key in list(self._dgrams):
            self._drop(key, "frag.incomplete")

    def add(
        self,
        version: int,
        src: bytes,
        dst: bytes,
        ident: int,
        proto: int,
        vlan: int,
        offset: int,
        more: int,
        data: bytes,
        truncated: bool,
        ts: int,
        anoms: list[str] | None,
    ) -> tuple[int, bytes, list[str] | None] | None:
        """Add one fragment; return ``(proto, payload, anomalies)`` when the datagram is complete.

        ``proto`` is the IPv4 protocol or, for IPv6, the fragment header's next header (taken
        from the fragment at offset 0); the payload is the reassembled fragmentable part.
        """
        dgrams = self._dgrams
        if dgrams:
            first = dgrams[next(iter(dgrams))]
            if first.first_ts < ts - self.timeout_ns:
                self.expire(ts)
        n = len(data)
        if truncated:
            self._count(anoms, "frag.truncated")
            return None
        if more and n & 7:
            self._count(anoms, "frag.bad_length")
            return None
        end = offset + n
        key = (version, src, dst, ident, proto if version == 4 else 0, vlan)
        d = dgrams.get(key)
        if end + (20 if version == 4 else 0) > _MAX_DATAGRAM:
            if d is not None:
                self._drop(key, "frag.too_big")
                self._count(anoms)
            else:
                self._count(anoms, "frag.too_big")
            return None
        if d is None:
            d = _Dgram(ts, proto)
            dgrams[key] = d
            d.nbytes = _DGRAM_OVERHEAD
            self.held += _DGRAM_OVERHEAD
        if anoms:
            for a in anoms:
                if a not in d.anoms:
                    d.anoms.append(a)
        if offset == 0:
            d.proto = proto
        # the last fragment fixes the total length
        if not more:
            if d.total >= 0 and d.total != end:
                self._note(d, "frag.inconsistent")
                return None
            if d.pieces and d.pieces[-1][1] > end:
                self._note(d, "frag.inconsistent")
                return None
            d.total = end
        elif d.total >= 0 and end > d.total:
            self._note(d, "frag.inconsistent")
            return None
        if len(d.pieces) >= self.max_fragments:
            self._drop(key, "frag.too_many")
            return None
        self._insert(d, offset, end, data)
        # memcap: evict the oldest datagrams (possibly this one)
        if self.held > self.memcap:
            while self.held > self.memcap and dgrams:
                self._drop(next(iter(dgrams)), "frag.memcap")
            if key not in dgrams:
                return None
        # complete?
        if d.total < 0:
            return None
        pos = 0
        for s, e, _ in d.pieces:
            if s > pos:
                return None
            pos = e
        if pos < d.total:
            return None
        del dgrams[key]
        self.held -= d.nbytes
        self.reassembled += 1
        payload = b"".join(p[2] for p in d.pieces)
        return d.proto, payload, (d.anoms or None)

    @staticmethod
    def _note(d: _Dgram, code: str) -> None:
        if code not in d.anoms:
            d.anoms.append(code)

    def _insert(self, d: _Dgram, start: int, end: int, data: bytes) -> None:
        """Insert [start, end) keeping only the bytes that fill holes (first wins)."""
        pieces = d.pieces
        if start >= end:
            return
        if not pieces or start >= pieces[-1][1]:
            pieces.append((start, end, data))
            self._account(d, end - start)
            return
        new: list[tuple[int, int, bytes]] = []
        pos = start
        overlap = conflict = False
        for s, e, b in pieces:
            if e <= pos or s >= end:
                continue
            # piece [s, e) overlaps [pos, end)
            overlap = True
            if s > pos:
                new.append((pos, s, data[pos - start:s - start]))
            lo, hi = max(s, pos), min(e, end)
            if not conflict and b[lo - s:hi - s] != data[lo - start:hi - start]:
                conflict = True
            pos = max(pos, e)
            if pos >= end:
                break
        if pos < end:
            new.append((pos, end, data[pos - start:]))
        if overlap:
            self._note(d, "frag.overlap")
            if conflict:
                self._note(d, "frag.overlap_conflict")
        if new:
            pieces.extend(new)
            pieces.sort(key=lambda p: p[0])
            self._account(d, sum(e - s for s, e, _ in new))

    def _account(self, d: _Dgram, nbytes: int) -> None:
        n = nbytes + _FRAG_OVERHEAD
        d.nbytes += n
        self.held += n
