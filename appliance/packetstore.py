"""The packet store: a ring of recent traffic on disk, from which the console cuts a flow's (or a time range's) PCAP.

Each capture worker writes its own rotating pcap files under one directory::

    <dir>/<worker>-<first packet time, ns, 20 digits>.pcap

A file is closed and the next one started when it reaches ``file_bytes`` (or the link type or
record format changes); at each rotation the oldest files are removed while all of them together
exceed ``max_bytes`` or a file ended more than ``max_age_s`` (packet time) before the newest
packet. Files are plain pcap (the capture's own record format when records are copied raw, else
nanosecond little-endian), so tcpdump and Wireshark read them directly.

Writing costs little on the packet path: classic pcap records from a capture file are copied as
the byte ranges the reader already holds (`tee`, one ``write`` per chunk); frames from a live ring
are appended as records in one ``write`` per batch.

The sensor's hook (the lead wires it into each capture worker)::

    store = PacketStore(settings.packet_store.dir, worker=str(slot), max_bytes=…, max_age_s=…, file_bytes=…)
    source = tee(source, store)          # before ``pipeline.drive(source, …)``
    store.close()                        # at the end

`PacketReader.cut` finds the files that overlap a time range and writes the packets of one flow
(both directions, matched by addresses and ports after decapsulation, as the sensor sees them)
into a new pcap. `appliance.packetserver` serves cuts to a fleet console over HTTPS with a token.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from appliance.model import Frame

__all__ = ["FlowMatch", "PacketReader", "PacketStore", "tee"]

_NAME = re.compile(r"^([A-Za-z0-9_.-]{1,64})-(\d{20})\.pcap$")
_REC_LE = struct.Struct("<IIII")
_REC_BE = struct.Struct(">IIII")
_SNAPLEN = 262144
MAGIC_NS = 0xA1B23C4D
MAGIC_US = 0xA1B2C3D4


def _header(big: bool, nsec: bool, linktype: int) -> bytes:
    return struct.pack(">IHHiIII" if big else "<IHHiIII", MAGIC_NS if nsec else MAGIC_US, 2, 4, 0, 0, _SNAPLEN,
                       linktype)


@dataclass(slots=True)
class _Open:
    path: Path
    fh: IO[bytes]
    fmt: tuple[bool, bool, int]
    """(big endian, nanosecond, link type)."""
    size: int


class PacketStore:
    """The writer of one capture worker (see the module doc). Not thread-safe: one per worker."""

    def __init__(self, directory: str | os.PathLike[str], *, worker: str = "0", max_bytes: int = 10 << 30,
                 max_age_s: float = 86400.0, file_bytes: int = 64 << 20) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", worker):
            raise ValueError("worker names are letters, digits, '_', '-', '.'")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.worker = worker
        self.max_bytes, self.max_age_ns, self.file_bytes = max_bytes, int(max_age_s * 1e9), file_bytes
        self.cur: _Open | None = None
        self.newest = 0
        self.counters = {"packets": 0, "bytes": 0, "files": 0, "removed": 0, "write_errors": 0}

    def _open(self, ts_ns: int, fmt: tuple[bool, bool, int]) -> _Open:
        self._close_file()
        path = self.dir / f"{self.worker}-{max(0, ts_ns):020d}.pcap"
        n = 0
        while path.exists():  # the same first packet time twice (a restart): keep both
            n += 1
            path = self.dir / f"{self.worker}-{max(0, ts_ns) + n:020d}.pcap"
        fh = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - kept open until rotation
        fh.write(_header(*fmt))
        self.cur = _Open(path, fh, fmt, 24)
        self.counters["files"] += 1
        self._enforce()
        return self.cur

    def _file(self, ts_ns: int, fmt: tuple[bool, bool, int], need: int) -> _Open:
        cur = self.cur
        if cur is None or cur.fmt != fmt or cur.size + need > self.file_bytes:
            cur = self._open(ts_ns, fmt)
        return cur

    def _write(self, cur: _Open, data: bytes | memoryview, packets: int, last_ts: int) -> None:
        try:
            cur.fh.write(data)
        except OSError:
            self.counters["write_errors"] += 1
            return
        cur.size += len(data)
        self.counters["packets"] += packets
        self.counters["bytes"] += len(data)
        if last_ts > self.newest:
            self.newest = last_ts

    def write_frames(self, frames: Iterable[Frame]) -> None:
        """Append frames (any source) as nanosecond records; one write per link type run."""
        parts: list[bytes] = []
        fmt: tuple[bool, bool, int] | None = None
        first = last = 0
        for f in frames:
            ts, data, wirelen, lt = f[0], f[1], f[2], f[3]
            if fmt is not None and fmt[2] != lt:
                self._flush_parts(parts, fmt, first, last)
                parts = []
            if not parts:
                fmt, first = (False, True, lt), ts
            parts.append(_REC_LE.pack(ts // 1_000_000_000, ts % 1_000_000_000, len(data), wirelen))
            parts.append(bytes(data))
            last = ts
        if parts and fmt is not None:
            self._flush_parts(parts, fmt, first, last)

    def _flush_parts(self, parts: list[bytes], fmt: tuple[bool, bool, int], first: int, last: int) -> None:
        blob = b"".join(parts)
        self._write(self._file(first, fmt, len(blob)), blob, len(parts) // 2, last)

    def write_records(self, buf: bytes | memoryview, start: int, end: int, big: bool, nsec: bool, hlen: int,
                      linktype: int) -> None:
        """Append the classic pcap records ``buf[start:end]`` as they are (the capture's own format), in slices
        cut at record boundaries so that files keep to ``file_bytes`` (the walk reads headers only)."""
        if end <= start:
            return
        if hlen != 16:  # Kuznetzov's 24-byte headers: re-frame as standard records
            self.write_frames(_records(buf, start, end, big, nsec, hlen, linktype))
            return
        unpack = (_REC_BE if big else _REC_LE).unpack_from
        mult = 1 if nsec else 1000
        fmt = (big, nsec, linktype)
        mv = memoryview(buf)
        seg = off = start
        n = 0
        first_ts = last_ts = 0
        while off < end:
            sec, frac, incl, _ = unpack(buf, off)
            ts = sec * 1_000_000_000 + frac * mult
            size = 16 + incl
            cur = self.cur
            room = self.file_bytes - (cur.size if cur is not None and cur.fmt == fmt else 24)
            if n and off - seg + size > room:  # this record starts the next file
                self._write(self._file(first_ts, fmt, off - seg), mv[seg:off], n, last_ts)
                self._open(ts, fmt)
                seg, n = off, 0
            if not n:
                first_ts = ts
            last_ts = ts
            n += 1
            off += size
        if n:
            self._write(self._file(first_ts, fmt, off - seg), mv[seg:off], n, last_ts)
        mv.release()

    def _close_file(self) -> None:
        if self.cur is not None:
            with contextlib.suppress(OSError):
                self.cur.fh.close()
            self.cur = None

    def close(self) -> None:
        self._close_file()
        self._enforce()

    def __enter__(self) -> PacketStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _enforce(self) -> None:
        """Remove the oldest files (of every worker) while over the size or age limit; never the open one."""
        files = list_files(self.dir)
        total = sum(f.size for f in files)
        open_path = self.cur.path if self.cur is not None else None
        for i, f in enumerate(files):
            ended = files[i + 1].first_ts if i + 1 < len(files) else self.newest
            too_old = self.newest and ended < self.newest - self.max_age_ns
            if f.path == open_path or (total <= self.max_bytes and not too_old):
                continue
            with contextlib.suppress(OSError):
                f.path.unlink()
                total -= f.size
                self.counters["removed"] += 1


def _records(buf: bytes | memoryview, start: int, end: int, big: bool, nsec: bool, hlen: int,
             linktype: int) -> Iterator[Frame]:
    rec = struct.Struct((">" if big else "<") + "IIII")
    off = start
    while off + hlen <= end:
        sec, frac, incl, orig = rec.unpack_from(buf, off)
        data = bytes(buf[off + hlen:off + hlen + incl])
        yield Frame(sec * 1_000_000_000 + frac * (1 if nsec else 1000), data, orig, linktype, "")
        off += hlen + incl


@dataclass(slots=True, frozen=True)
class StoredFile:
    path: Path
    worker: str
    first_ts: int
    size: int


def list_files(directory: Path) -> list[StoredFile]:
    """The store's files, oldest first (by their first packet's time)."""
    out = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for e in entries:
        m = _NAME.match(e.name)
        if m and e.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                out.append(StoredFile(Path(e.path), m.group(1), int(m.group(2)), e.stat().st_size))
    return sorted(out, key=lambda f: (f.first_ts, f.worker))


# --------------------------------------------------------------------------- the sensor's tee


class _Tee:
    """A packet source that also writes what it delivers to a `PacketStore` (see `tee`)."""

    def __init__(self, source: Any, store: PacketStore) -> None:
        self._source = source
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    def frames(self, *a: Any, **kw: Any) -> Iterator[Frame]:
        batch: list[Frame] = []
        for f in self._source.frames(*a, **kw):
            batch.append(f)
            if len(batch) >= 256:
                self._store.write_frames(batch)
                batch = []
            yield f
        self._store.write_frames(batch)

    def batches(self, *a: Any, **kw: Any) -> Iterator[list[Frame]]:
        for chunk in self._source.batches(*a, **kw):
            self._store.write_frames(chunk)
            yield chunk

    def feed_records(self, consume: Callable[[Any, int], int]) -> None:
        big, nsec, hlen, _max = self._source.record_format
        lt, store = self._source.linktype, self._store

        def both(buf: Any, off: int) -> int:
            new = consume(buf, off)
            store.write_records(buf, off, new, big, nsec, hlen, lt)
            return new

        self._source.feed_records(both)

    def feed_blocks(self, consume: Callable[..., tuple[int, int, int]], *a: Any, **kw: Any) -> None:
        store = self._store
        hdr = struct.Struct("=IIIIIIHHIIH").unpack_from

        def both(mm: Any, off: int, count: int, lt: int, iface: str) -> tuple[int, int, int]:
            frames, o = [], off
            for _ in range(count):  # the ring's frame headers (802.1Q tags the kernel moved are put back)
                nxt, sec, nsec, snap, wlen, st, mac, _net, _h, tci, tpid = hdr(mm, o)
                s = o + mac
                data = (mm[s:s + 12] + struct.pack("!HH", tpid if st & 0x40 else 0x8100, tci) + mm[s + 12:s + snap]
                        if st & 0x10 else mm[s:s + snap])
                frames.append(Frame(sec * 1_000_000_000 + nsec, data, wlen + (4 if st & 0x10 else 0), lt, iface))
                o += nxt
            store.write_frames(frames)
            return consume(mm, off, count, lt, iface)

        self._source.feed_blocks(both, *a, **kw)


def tee(source: Any, store: PacketStore | None) -> Any:
    """*source* (a capture file or live source) whose packets also go to *store* (None: *source* itself)."""
    return source if store is None else _Tee(source, store)


# --------------------------------------------------------------------------- reading


@dataclass(slots=True, frozen=True)
class FlowMatch:
    """The packets of one flow: its two endpoints (either direction), optionally the transport protocol."""

    ip_a: str
    port_a: int | None
    ip_b: str
    port_b: int | None
    proto: int | None = None

    def __post_init__(self) -> None:
        ipaddress.ip_address(self.ip_a)
        ipaddress.ip_address(self.ip_b)

    @property
    def packed(self) -> tuple[bytes, bytes]:
        return ipaddress.ip_address(self.ip_a).packed, ipaddress.ip_address(self.ip_b).packed

    def matches(self, src: bytes, sport: int, dst: bytes, dport: int, proto: int) -> bool:
        a, b = self.packed
        if self.proto is not None and proto != self.proto:
            return False
        fwd = src == a and dst == b and self.port_a in (None, sport) and self.port_b in (None, dport)
        rev = src == b and dst == a and self.port_b in (None, sport) and self.port_a in (None, dport)
        return fwd or rev


class PacketReader:
    """Cuts PCAPs out of a packet store directory (any worker's files)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.dir = Path(directory)

    def files(self, since_ns: int, until_ns: int) -> list[StoredFile]:
        """The files that may hold packets of [since, until): a file runs until the worker's next file starts."""
        files = list_files(self.dir)
        out = []
        for i, f in enumerate(files):
            nxt = next((g.first_ts for g in files[i + 1:] if g.worker == f.worker), None)
            if f.first_ts < until_ns and (nxt is None or nxt > since_ns):
                out.append(f)
        return out

    def cut(self, out: IO[bytes], since_ns: int, until_ns: int, flow: FlowMatch | None = None,
            max_bytes: int = 256 << 20) -> dict[str, int]:
        """Write the packets of [since, until) (of *flow* only, when given) to *out* as one nanosecond pcap,
        in time order; at most *max_bytes*. Returns counters (packets, bytes, files, truncated)."""
        from capture.decode import decode
        from capture.pcapfile import CaptureError, open_capture

        stats = {"packets": 0, "bytes": 24, "files": 0, "truncated": 0, "other_linktype": 0}
        frames: list[Frame] = []
        packed = flow.packed if flow is not None else None
        linktype: int | None = None
        for f in self.files(since_ns, until_ns):
            try:
                cap = open_capture(f.path)
            except CaptureError:
                continue
            stats["files"] += 1
            with cap:
                for fr in cap.frames():
                    if not since_ns <= fr.ts_ns < until_ns:
                        continue
                    if packed is not None:
                        data = fr.data
                        if packed[0] not in data or packed[1] not in data:
                            continue
                        p = decode(fr, verify_checksums=False)
                        if not flow.matches(p.src, p.sport, p.dst, p.dport, p.proto):  # type: ignore[union-attr]
                            continue
                    if linktype is None:
                        linktype = fr.linktype
                    elif fr.linktype != linktype:
                        stats["other_linktype"] += 1
                        continue
                    frames.append(fr)
        frames.sort(key=lambda fr: fr.ts_ns)
        out.write(_header(False, True, linktype if linktype is not None else 1))
        for fr in frames:
            rec = _REC_LE.pack(fr.ts_ns // 1_000_000_000, fr.ts_ns % 1_000_000_000, len(fr.data), fr.wirelen)
            if stats["bytes"] + len(rec) + len(fr.data) > max_bytes:
                stats["truncated"] = 1
                break
            out.write(rec)
            out.write(fr.data)
            stats["packets"] += 1
            stats["bytes"] += len(rec) + len(fr.data)
        return stats
