"""Bounded decompression and ZIP pre-checks: never inflate more than the caller allows.

Every helper takes a hard output cap and reports whether the output is whole; none holds more
than the cap (plus one input chunk) in memory. ZIP-based formats are checked from their central
directory (declared sizes, member count, compression ratio) before anything is inflated.
CPython's `zipfile` stops a member at its declared ``file_size`` (a forged small size ends in
"Bad CRC-32"), so the declared size bounds what `ZipFile.open` yields; `read_member` adds its
own cap on top.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO

CHUNK = 64 * 1024


@dataclass(slots=True)
class Inflated:
    """Output of a bounded decompression."""

    data: bytes
    complete: bool
    """True when the stream ended within the cap."""
    consumed: int
    """Input bytes used (the rest is trailing data, e.g. a second gzip member)."""
    reason: str = ""
    """Why it is incomplete: ``limit`` (cap reached), ``eof`` (input ended early), ``error``."""


def _run(d: object, data: bytes, max_out: int) -> Inflated:
    """Feed ``data`` to decompressor ``d`` in chunks, stopping at ``max_out`` output bytes.

    ``consumed`` is exact for zlib: input the decompressor holds back (``unconsumed_tail``, when
    the output cap stopped it; ``unused_data``, after the end of the stream) is not counted, so
    ``len(data) / consumed`` is the true compression ratio of what was inflated. bz2 and lzma
    buffer their input internally; for them it is the input fed so far (at most one `CHUNK` more).
    """
    out: list[bytes] = []
    n = 0
    pos = 0

    def used() -> int:
        return pos - len(getattr(d, "unconsumed_tail", b""))

    try:
        while True:
            room = max_out - n
            tail = getattr(d, "unconsumed_tail", b"")
            if tail:
                chunk = tail  # already counted in ``pos``
            elif not getattr(d, "needs_input", True):
                chunk = b""  # bz2/lzma: output pending inside the decompressor
            elif pos < len(data):
                if room <= 0:
                    return Inflated(b"".join(out), False, used(), "limit")
                chunk = data[pos:pos + CHUNK]
                pos += len(chunk)
            else:
                break
            if room <= 0:
                return Inflated(b"".join(out), False, used(), "limit")
            piece = d.decompress(chunk, room)  # type: ignore[attr-defined]
            out.append(piece)
            n += len(piece)
            if d.eof:  # type: ignore[attr-defined]
                unused = len(getattr(d, "unused_data", b""))
                return Inflated(b"".join(out), True, used() - unused, "")
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError):
        return Inflated(b"".join(out), False, used(), "error")
    return Inflated(b"".join(out), False, used(), "limit" if n >= max_out else "eof")


def inflate(data: bytes, max_out: int, *, wbits: int = 47) -> Inflated:
    """zlib/gzip/raw DEFLATE (``wbits`` as for `zlib.decompressobj`; 47 = auto zlib/gzip)."""
    return _run(zlib.decompressobj(wbits), data, max_out)


def bunzip2(data: bytes, max_out: int) -> Inflated:
    """One bzip2 stream, bounded."""
    return _run(bz2.BZ2Decompressor(), data, max_out)


def unxz(data: bytes, max_out: int) -> Inflated:
    """One xz/lzma stream, bounded."""
    return _run(lzma.LZMADecompressor(), data, max_out)


def gunzip_members(data: bytes, max_out: int, max_members: int = 16) -> Inflated:
    """All concatenated gzip members of ``data`` (as ``gzip`` does), bounded in total."""
    out: list[bytes] = []
    n = 0
    pos = 0
    for _ in range(max_members):
        r = inflate(data[pos:], max_out - n, wbits=31)
        out.append(r.data)
        n += len(r.data)
        pos += r.consumed
        if not r.complete:
            return Inflated(b"".join(out), False, pos, r.reason)
        if not data.startswith(b"\x1f\x8b", pos):
            break
    return Inflated(b"".join(out), True, pos, "")


def read_stream(f: IO[bytes], max_out: int) -> tuple[bytes, bool]:
    """Read a file-like object up to ``max_out`` bytes; (data, whole)."""
    out: list[bytes] = []
    n = 0
    while n < max_out:
        piece = f.read(min(CHUNK, max_out - n))
        if not piece:
            return b"".join(out), True
        out.append(piece)
        n += len(piece)
    return b"".join(out), not f.read(1)


# --- ZIP -----------------------------------------------------------------------------------


@dataclass(slots=True)
class ZipLimits:
    """What a ZIP-based file may declare before anything is inflated."""

    max_members: int = 10_000
    max_total: int = 256 * 1024 * 1024
    """Sum of declared uncompressed sizes."""
    max_ratio: float = 100.0
    ratio_floor: int = 1024 * 1024
    """Members smaller than this are never judged by ratio."""


@dataclass(slots=True)
class ZipCheck:
    """Outcome of `check_zip`: problems found and members to treat as bombs."""

    problems: list[str] = field(default_factory=list)
    suspicious: set[str] = field(default_factory=set)
    """Members whose ratio is beyond the limit: read at most a small slice of them."""
    encrypted: list[str] = field(default_factory=list)
    total: int = 0


def check_zip(zf: zipfile.ZipFile, limits: ZipLimits) -> ZipCheck:
    """Check the central directory of ``zf`` (costs well under 1 ms for normal files)."""
    res = ZipCheck()
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        res.problems.append(f"zip_members:{len(infos)}")
    for zi in infos:
        res.total += zi.file_size
        if zi.flag_bits & 0x1:
            res.encrypted.append(zi.filename)
        if zi.file_size > limits.ratio_floor and zi.file_size > limits.max_ratio * max(zi.compress_size, 1):
            res.suspicious.add(zi.filename)
    if res.total > limits.max_total:
        res.problems.append(f"zip_declared_size:{res.total}")
    if res.suspicious:
        res.problems.append(f"zip_ratio:{len(res.suspicious)}")
    return res


def raw_member(zf: zipfile.ZipFile, zi: zipfile.ZipInfo) -> bytes:
    """The compressed bytes of a member, read through its local header (bounded by ``compress_size``)."""
    fp = zf.fp
    if fp is None:
        raise ValueError("closed zip")
    fp.seek(zi.header_offset)
    hdr = fp.read(_LFH.size)
    if len(hdr) < _LFH.size or hdr[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile("bad local header")
    nlen, xlen = struct.unpack_from("<HH", hdr, 26)
    fp.seek(zi.header_offset + _LFH.size + nlen + xlen)
    return fp.read(zi.compress_size)


def _unlzma_zip(raw: bytes, max_out: int) -> Inflated:
    if len(raw) < 4:
        return Inflated(b"", False, 0, "eof")
    psize = int.from_bytes(raw[2:4], "little")
    try:
        filt = lzma._decode_filter_properties(lzma.FILTER_LZMA1, raw[4:4 + psize])  # type: ignore[attr-defined]
        d = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[filt])
    except (lzma.LZMAError, ValueError):
        return Inflated(b"", False, 0, "error")
    return _run(d, raw[4 + psize:], max_out)


def read_member(zf: zipfile.ZipFile, zi: zipfile.ZipInfo, max_out: int) -> tuple[bytes, str]:
    """A member's bytes up to ``max_out``; (data, problem) with problem '' when whole.

    DEFLATE and stored members go through `ZipFile.open` (which bounds each read); bzip2 and
    LZMA members are inflated here from their raw bytes, because CPython's `ZipExtFile` calls
    those decompressors without ``max_length`` (one read of a 1 KB bzip2 member can yield 1 GiB).
    """
    try:
        if zi.compress_type in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA) and not zi.flag_bits & 1:
            raw = raw_member(zf, zi)
            cap = min(max_out, zi.file_size) if zi.file_size else max_out
            r = bunzip2(raw, cap) if zi.compress_type == zipfile.ZIP_BZIP2 else _unlzma_zip(raw, cap)
            if r.complete:
                return r.data, ""
            if r.reason == "limit" and len(r.data) < max_out and len(r.data) >= zi.file_size:
                return r.data, "error:size_mismatch"
            return r.data, "limit" if r.reason == "limit" else f"error:{r.reason}"
        with zf.open(zi) as f:
            data, whole = read_stream(f, max_out)
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError, RuntimeError, ValueError,
            lzma.LZMAError) as exc:
        return b"", f"error:{type(exc).__name__}"
    return data, "" if whole else "limit"


@dataclass(slots=True)
class LocalEntry:
    """A member found by walking local file headers (salvage of a ZIP without its directory)."""

    name: str
    data: bytes
    complete: bool
    encrypted: bool
    method: int


_LFH = struct.Struct("<4sHHHHHIIIHH")


def walk_local_headers(buf: bytes, max_member: int, max_total: int, max_members: int = 10_000) -> list[LocalEntry]:
    """Members of a ZIP found from its local headers: works on a capture cut before the directory.

    Stored and DEFLATE members are recovered (bounded), others are listed without data.
    """
    out: list[LocalEntry] = []
    pos = buf.find(b"PK\x03\x04")
    total = 0
    while pos >= 0 and pos + _LFH.size <= len(buf) and len(out) < max_members:
        (_sig, _ver, flags, method, _t, _d, _crc, csize, _usize, nlen, xlen) = _LFH.unpack_from(buf, pos)
        start = pos + _LFH.size + nlen + xlen
        name = buf[pos + _LFH.size:pos + _LFH.size + nlen].decode("utf-8" if flags & 0x800 else "cp437", "replace")
        enc = bool(flags & 1)
        body = buf[start:start + csize] if csize and not flags & 0x8 else buf[start:]
        room = max(0, min(max_member, max_total - total))
        data = b""
        complete = False
        used = len(body)
        if enc:
            pass
        elif method == 0:
            data = body[:room] if csize or not flags & 0x8 else b""
            complete = bool(csize) and len(body) == csize and csize <= room
        elif method == 8:
            r = inflate(body, room, wbits=-15)
            data, complete, used = r.data, r.complete, r.consumed
        elif method == 12:
            r = bunzip2(body, room)
            data, complete, used = r.data, r.complete, r.consumed
        total += len(data)
        out.append(LocalEntry(name, data, complete, enc, method))
        nxt = start + (csize if csize and not flags & 0x8 else used)
        pos = buf.find(b"PK\x03\x04", max(nxt, pos + 4))
    return out
