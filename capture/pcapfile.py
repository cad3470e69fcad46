"""Fast pcap / pcapng file reader (optionally gzip-compressed).

The file is read in large chunks (raw, or stream-decompressed when it starts with the gzip
magic ``1f 8b``); record headers are parsed with precompiled ``struct.Struct.unpack_from`` on
the chunk buffer and frame bytes are sliced out of it, so the per-packet cost is one header
unpack, one slice and one `Frame` tuple.

Everything in the file is attacker-controlled: a damaged file never raises from `frames()`.
A truncated last record, an impossible record or block length, or a corrupt gzip stream ends
iteration and is counted in `CaptureFile.anomalies` (e.g. ``{"pcap.truncated_record": 1}``).
Only `open_capture` raises, with `CaptureError`, for files that cannot be opened or are not
captures at all.

Formats: classic pcap in both byte orders with microsecond (``a1b2c3d4``), nanosecond
(``a1b23c4d``) and Kuznetzov's modified-pcap (``a1b2cd34``) magic; pcapng with any number of
sections (each with its own byte order), interfaces (each with its own link type,
``if_tsresol`` and ``if_tsoffset``), Enhanced, Simple and obsolete Packet Blocks; other block
types are skipped.

Interface names (`Frame.iface`): pcap frames carry ``""``. pcapng frames carry the
interface's ``if_name`` option; an unnamed interface is ``""`` if it is interface 0 of its
section and ``"if<N>"`` otherwise, so that frames of different interfaces stay distinct.
Simple Packet Blocks carry no timestamp; they get the last timestamp seen in the file.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator
from itertools import islice
from struct import Struct
from typing import BinaryIO

from appliance.model import Frame

__all__ = ["CaptureError", "CaptureFile", "open_capture"]

CHUNK = 8 << 20
"""Bytes read from the file (or produced by the decompressor) per refill."""
GZ_IN_CHUNK = 64 << 10
"""Compressed bytes fed to the decompressor per step."""
MAX_RECORD = 64 << 20
"""Larger record/block lengths are treated as garbage (the file is damaged)."""

_PCAP_MAGIC_US = 0xA1B2C3D4
_PCAP_MAGIC_NS = 0xA1B23C4D
_PCAP_MAGIC_KUZ = 0xA1B2CD34  # Kuznetzov's modified pcap: 24-byte record headers
_PCAPNG_SHB = 0x0A0D0D0A
_BOM = 0x1A2B3C4D
_GZIP = b"\x1f\x8b"
_OTHER_COMPRESSION = {
    b"\x28\xb5\x2f\xfd": "zstd",
    b"\xfd\x37\x7a\x58": "xz",
    b"\x42\x5a\x68": "bzip2",
    b"\x04\x22\x4d\x18": "lz4",
}

_new_frame = tuple.__new__


class CaptureError(Exception):
    """A capture file cannot be read at all (missing, unreadable, not a capture)."""


def open_capture(path: str | os.PathLike[str]) -> CaptureFile:
    """Open a pcap or pcapng file (possibly gzip-compressed); raise `CaptureError` if it is not one."""
    return CaptureFile(path)


def _raw_chunks(fh: BinaryIO, first: bytes) -> Iterator[bytes]:
    if first:
        yield first
    read = fh.read
    while chunk := read(CHUNK):
        yield chunk


class CaptureFile:
    """An open capture file. Iterate `frames()` once; `position`/`size` give progress."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.anomalies: dict[str, int] = {}
        """Damage found while reading: anomaly code → count."""
        self.format = ""
        """``"pcap"`` or ``"pcapng"``."""
        self.compressed = False
        """True when the file is gzip-compressed."""
        self.linktype = -1
        """pcap: the file's link type. pcapng: the link type of the first interface (-1 before it)."""
        self.snaplen = 0
        self._fh: BinaryIO | None = None
        self._closed_pos = 0
        self._started = False
        self._done = False
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - kept open until close()
        except FileNotFoundError:
            raise CaptureError(f"{self.path}: no such file") from None
        except IsADirectoryError:
            raise CaptureError(f"{self.path}: is a directory") from None
        except PermissionError:
            raise CaptureError(f"{self.path}: permission denied") from None
        except OSError as e:
            raise CaptureError(f"{self.path}: cannot open: {e.strerror or e}") from None
        self._fh = fh
        try:
            self.size = os.fstat(fh.fileno()).st_size
            """Bytes on disk (compressed size for gzip files)."""
            head = fh.read(CHUNK)
        except OSError as e:
            fh.close()
            raise CaptureError(f"{self.path}: cannot read: {e.strerror or e}") from None
        if not head:
            fh.close()
            raise CaptureError(f"{self.path}: empty file")
        if head[:2] == _GZIP:
            self.compressed = True
            self._chunks = self._gz_chunks(fh, head)
        else:
            for magic, name in _OTHER_COMPRESSION.items():
                if head.startswith(magic):
                    fh.close()
                    raise CaptureError(f"{self.path}: {name}-compressed; only gzip is read directly")
            self._chunks = _raw_chunks(fh, head)
        try:
            self._buf = self._fill(b"", 28)
        except CaptureError:
            fh.close()
            raise
        self._probe()

    # -- input -------------------------------------------------------------------------------

    def _note(self, code: str) -> None:
        self.anomalies[code] = self.anomalies.get(code, 0) + 1

    def _gz_chunks(self, fh: BinaryIO, first: bytes) -> Iterator[bytes]:
        """Decompressed data in chunks of at most `CHUNK`; handles multi-member gzip."""
        d = zlib.decompressobj(31)
        src = memoryview(first)
        pos = 0
        read = fh.read
        n = GZ_IN_CHUNK
        while True:
            if pos >= len(src):
                src = memoryview(read(n))
                pos = 0
                if not src:
                    if not d.eof:
                        self._note("gzip.truncated")
                    return
            try:
                out = d.decompress(src[pos:pos + n], CHUNK)
            except zlib.error:
                self._note("gzip.corrupt")
                return
            pos += n
            tail = d.unconsumed_tail
            if tail:  # output limit reached: continue with the unconsumed input first
                src = memoryview(bytes(tail) + bytes(src[pos:]))
                pos = 0
            if out:
                yield out
            if d.eof:
                rest = d.unused_data + bytes(src[pos:])
                if not rest:
                    rest = read(n)
                    if not rest:
                        return
                if rest[:2] != _GZIP:
                    if rest.strip(b"\0"):
                        self._note("gzip.trailing_garbage")
                    return
                d = zlib.decompressobj(31)
                src = memoryview(rest)
                pos = 0

    def _fill(self, buf: bytes, need: int) -> bytes:
        """Append chunks to ``buf`` until it holds ``need`` bytes or the input ends."""
        parts = [buf]
        have = len(buf)
        while have < need:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            parts.append(chunk)
            have += len(chunk)
        return b"".join(parts) if len(parts) > 1 else buf

    def _probe(self) -> None:
        buf = self._buf
        what = "not a pcap or pcapng file"
        if self.compressed:
            what = "gzip data is not a pcap or pcapng file"
        if len(buf) < 4:
            self._fh_close()
            if self.anomalies:
                raise CaptureError(f"{self.path}: corrupt or truncated gzip data")
            raise CaptureError(f"{self.path}: {what} (too short)")
        m_le = int.from_bytes(buf[:4], "little")
        m_be = int.from_bytes(buf[:4], "big")
        if m_le in (_PCAP_MAGIC_US, _PCAP_MAGIC_NS, _PCAP_MAGIC_KUZ) or m_be in (
            _PCAP_MAGIC_US, _PCAP_MAGIC_NS, _PCAP_MAGIC_KUZ,
        ):
            if len(buf) < 24:
                self._fh_close()
                raise CaptureError(f"{self.path}: truncated pcap file header")
            self.format = "pcap"
            bo = "<" if m_le in (_PCAP_MAGIC_US, _PCAP_MAGIC_NS, _PCAP_MAGIC_KUZ) else ">"
            magic = m_le if bo == "<" else m_be
            _maj, _min, _zone, _sig, snap, lt = Struct(bo + "HHiIII").unpack_from(buf, 4)
            self._bo = bo
            self._magic = magic
            self.snaplen = snap
            self.linktype = lt & 0xFFFF
        elif m_le == _PCAPNG_SHB:
            if len(buf) < 12 or int.from_bytes(buf[8:12], "little") not in (_BOM, 0x4D3C2B1A):
                self._fh_close()
                raise CaptureError(f"{self.path}: {what} (bad pcapng section header)")
            self.format = "pcapng"
        else:
            self._fh_close()
            raise CaptureError(f"{self.path}: {what}")

    # -- progress / lifetime -----------------------------------------------------------------

    @property
    def position(self) -> int:
        """Bytes of the file read so far (read ahead in chunks); `size` once `frames()` has ended."""
        if self._done:
            return self.size
        fh = self._fh
        if fh is None:
            return self._closed_pos
        try:
            return fh.tell()
        except (OSError, ValueError):
            return self._closed_pos

    def _fh_close(self) -> None:
        fh = self._fh
        if fh is not None:
            try:
                self._closed_pos = fh.tell()
            except (OSError, ValueError):
                pass
            fh.close()
            self._fh = None

    def close(self) -> None:
        """Close the file; a running `frames()` iterator stops at its next refill."""
        self._fh_close()
        self._chunks = iter(())

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CaptureFile({self.path!r} {self.format} gzip={self.compressed})"

    # -- frames ------------------------------------------------------------------------------

    def frames(self) -> Iterator[Frame]:
        """Yield every frame in file order. Never raises on damaged data (see `anomalies`)."""
        if self._started:
            return
        self._started = True
        buf, self._buf = self._buf, b""
        try:
            if self.format == "pcap":
                yield from self._pcap_frames(buf)
            else:
                yield from self._pcapng_frames(buf)
        except (OSError, ValueError):
            # I/O error on the underlying file (or the file was closed under us).
            self._note("io.read_error")
        self._done = True

    def _pcap_frames(self, buf: bytes) -> Iterator[Frame]:
        bo = self._bo
        magic = self._magic
        hlen = 24 if magic == _PCAP_MAGIC_KUZ else 16
        hdr = Struct(bo + "IIII").unpack_from
        mult = 1 if magic == _PCAP_MAGIC_NS else 1000
        sec_mult = 1_000_000_000
        lt = self.linktype
        # a record longer than this is garbage (damaged file), as in libpcap/Wireshark
        max_rec = max(262144, min(self.snaplen, MAX_RECORD))
        fill = self._fill
        new = _new_frame
        F = Frame
        off = 24
        while True:
            end = len(buf)
            limit = end - hlen
            while off <= limit:
                sec, frac, incl, orig = hdr(buf, off)
                start = off + hlen
                nxt = start + incl
                if nxt > end:
                    break
                yield new(F, (sec * sec_mult + frac * mult, buf[start:nxt], orig, lt, ""))
                off = nxt
            # the rest of the buffer holds less than one record: refill
            tail = end - off
            need = self._record_need(buf, off, hdr, hlen, max_rec)
            if need < 0:
                return
            more = fill(buf[off:], need)
            if len(more) == tail:
                if tail:
                    self._note("pcap.truncated_record")
                return
            buf = more
            off = 0

    def _record_need(self, buf: bytes | memoryview, off: int, hdr: Callable[..., tuple[int, ...]], hlen: int,
                     max_rec: int) -> int:
        """Bytes to hold from ``off`` (less than a record) to read the next record whole; -1
        when its header announces more than ``max_rec`` (a damaged file: ``pcap.bad_record``)."""
        tail = len(buf) - off
        need = tail + CHUNK
        if tail >= hlen:
            incl = hdr(buf, off)[2]
            if incl > max_rec:
                self._note("pcap.bad_record")
                return -1
            need = max(need, hlen + incl)
        return need

    @property
    def fast_input(self) -> str:
        """What this source offers a consumer such as the C fast path: ``"records"`` (classic
        pcap: `feed_records`) or ``"batches"`` (pcapng: `batches`). `frames` always works."""
        return "records" if self.format == "pcap" else "batches"

    def batches(self, size: int = 512) -> Iterator[list[Frame]]:
        """`frames` as lists of up to ``size``."""
        it = self.frames()
        while chunk := list(islice(it, size)):
            yield chunk

    @property
    def record_format(self) -> tuple[bool, bool, int, int] | None:
        """For classic pcap: (big_endian, nanosecond, record header length, max record length)
        as `feed_records` consumers need them; None for pcapng."""
        if self.format != "pcap":
            return None
        hlen = 24 if self._magic == _PCAP_MAGIC_KUZ else 16
        return self._bo == ">", self._magic == _PCAP_MAGIC_NS, hlen, max(262144, min(self.snaplen, MAX_RECORD))

    def feed_records(self, consume: Callable[[bytes, int], int]) -> None:
        """Classic pcap only: the raw-record counterpart of `frames()`.

        ``consume(buf, off)`` gets the file contents read so far (``buf[off:]`` starts at a
        record header) and returns the offset of the first record it did not take: an
        incomplete one (more is read and it is called again) or one longer than the maximum
        record length (the file is damaged: ``pcap.bad_record``, reading stops). Truncated and
        damaged files are noted in `anomalies` exactly as by `frames()`.
        """
        if self._started or self.format != "pcap":
            return
        self._started = True
        buf, self._buf = self._buf, b""
        rf = self.record_format
        assert rf is not None
        _big, _ns, hlen, max_rec = rf
        hdr = Struct(self._bo + "IIII").unpack_from
        off = 24
        # uncompressed files are read into one reused buffer: a fresh 8 MiB bytes object per
        # chunk costs more in page faults than the copy itself
        fh = None if self.compressed else self._fh
        ba: bytearray | None = None
        try:
            while True:
                off = consume(buf, off)
                tail = len(buf) - off
                need = self._record_need(buf, off, hdr, hlen, max_rec)
                if need < 0:
                    break
                if fh is None:
                    more = self._fill(bytes(buf[off:]), need)
                    got = len(more)
                else:
                    rest = bytes(buf[off:])
                    if isinstance(buf, memoryview):
                        buf.release()
                    if ba is None or len(ba) < need:
                        ba = bytearray(need)
                    ba[:tail] = rest
                    got = tail
                    mv = memoryview(ba)
                    while got < need:
                        k = fh.readinto(mv[got:need])
                        if not k:
                            break
                        got += k
                    more = mv[:got]
                    mv.release()
                if got == tail:
                    if tail:
                        self._note("pcap.truncated_record")
                    break
                buf = more
                off = 0
        except (OSError, ValueError):
            self._note("io.read_error")
        if isinstance(buf, memoryview):
            buf.release()
        self._done = True

    def _pcapng_frames(self, buf: bytes) -> Iterator[Frame]:
        fill = self._fill
        new = _new_frame
        F = Frame
        max_rec = MAX_RECORD
        ifaces: list[tuple[int, str, int, int, int, int]] = []
        # per section: block header, EPB, SPB, PB, u32 structs in the section's byte order
        bh = epb = pb = u32 = None
        order = "little"
        last_ts = 0
        off = 0
        while True:
            end = len(buf)
            while off + 12 <= end:
                if buf[off:off + 4] == b"\x0a\x0d\x0d\x0a":
                    bom = buf[off + 8:off + 12]
                    if bom == b"\x4d\x3c\x2b\x1a":
                        bo, order = "<", "little"
                    elif bom == b"\x1a\x2b\x3c\x4d":
                        bo, order = ">", "big"
                    else:
                        self._note("pcapng.bad_section")
                        return
                    bh = Struct(bo + "II").unpack_from
                    epb = Struct(bo + "IIIII").unpack_from
                    pb = Struct(bo + "HHIIII").unpack_from
                    u32 = Struct(bo + "I").unpack_from
                    ifaces = []
                elif bh is None:
                    self._note("pcapng.bad_section")
                    return
                btype, blen = bh(buf, off)
                if blen < 12 or blen & 3 or blen > max_rec:
                    self._note("pcapng.bad_block")
                    return
                nxt = off + blen
                if nxt > end:
                    break
                if u32(buf, nxt - 4)[0] != blen:
                    self._note("pcapng.bad_block")
                    return
                if btype == 6:  # Enhanced Packet Block
                    if blen < 32:
                        self._note("pcapng.bad_block")
                    else:
                        ifid, hi, lo, cap, orig = epb(buf, off + 8)
                        if ifid >= len(ifaces):
                            self._note("pcapng.unknown_interface")
                        else:
                            if cap > blen - 32:
                                self._note("pcapng.bad_packet_length")
                                cap = blen - 32
                            lt, name, mul, div, toff, _snap = ifaces[ifid]
                            last_ts = ((hi << 32 | lo) * mul) // div + toff
                            yield new(F, (last_ts, buf[off + 28:off + 28 + cap], orig, lt, name))
                elif btype == 3:  # Simple Packet Block
                    if not ifaces:
                        self._note("pcapng.unknown_interface")
                    elif blen >= 16:
                        orig = u32(buf, off + 8)[0]
                        lt, name, _m, _d, _o, snap = ifaces[0]
                        cap = min(orig, blen - 16)
                        if snap:
                            cap = min(cap, snap)
                        yield new(F, (last_ts, buf[off + 12:off + 12 + cap], orig, lt, name))
                elif btype == 1:  # Interface Description Block
                    ifaces.append(self._idb(buf, off, blen, order, len(ifaces)))
                    if self.linktype < 0:
                        self.linktype = ifaces[-1][0]
                        self.snaplen = ifaces[-1][5]
                elif btype == 2:  # obsolete Packet Block
                    if blen < 32:
                        self._note("pcapng.bad_block")
                    else:
                        ifid, _drops, hi, lo, cap, orig = pb(buf, off + 8)
                        if ifid >= len(ifaces):
                            self._note("pcapng.unknown_interface")
                        else:
                            if cap > blen - 32:
                                self._note("pcapng.bad_packet_length")
                                cap = blen - 32
                            lt, name, mul, div, toff, _snap = ifaces[ifid]
                            last_ts = ((hi << 32 | lo) * mul) // div + toff
                            yield new(F, (last_ts, buf[off + 28:off + 28 + cap], orig, lt, name))
                off = nxt
            # refill
            tail = end - off
            need = tail + CHUNK
            if tail >= 12 and bh is not None:
                # (an SHB at ``off`` already set ``bh`` to its own byte order above)
                blen = bh(buf, off)[1]
                if blen > max_rec:
                    self._note("pcapng.bad_block")
                    return
                need = max(need, blen)
            more = fill(buf[off:], need)
            if len(more) == tail:
                if tail:
                    self._note("pcapng.truncated_block")
                return
            buf = more
            off = 0

    def _idb(
        self, buf: bytes, off: int, blen: int, order: str, idx: int,
    ) -> tuple[int, str, int, int, int, int]:
        """Parse an IDB: (linktype, name, ts multiplier, ts divisor, ts offset ns, snaplen)."""
        if blen < 20:
            self._note("pcapng.bad_block")
            return (-1, f"if{idx}" if idx else "", 1000, 1, 0, 0)
        lt = int.from_bytes(buf[off + 8:off + 10], order)
        snap = int.from_bytes(buf[off + 12:off + 16], order)
        name = ""
        mul, div, toff = 1000, 1, 0
        p = off + 16
        end = off + blen - 4
        while p + 4 <= end:
            code = int.from_bytes(buf[p:p + 2], order)
            olen = int.from_bytes(buf[p + 2:p + 4], order)
            val = buf[p + 4:p + 4 + olen]
            if code == 0 or p + 4 + olen > end:
                break
            if code == 2:  # if_name
                name = val.split(b"\0", 1)[0].decode("utf-8", "replace")
            elif code == 9 and olen >= 1:  # if_tsresol
                r = val[0]
                if r & 0x80:
                    exp = r & 0x7F
                    if exp <= 64:
                        mul, div = 1_000_000_000, 1 << exp
                    else:
                        self._note("pcapng.bad_tsresol")
                else:
                    if r <= 9:
                        mul, div = 10 ** (9 - r), 1
                    elif r <= 30:
                        mul, div = 1, 10 ** (r - 9)
                    else:
                        self._note("pcapng.bad_tsresol")
            elif code == 14 and olen >= 8:  # if_tsoffset, seconds
                toff = int.from_bytes(val[:8], order, signed=True) * 1_000_000_000
            p += 4 + ((olen + 3) & ~3)
        if not name and idx:
            name = f"if{idx}"
        return (lt, name, mul, div, toff, snap)
