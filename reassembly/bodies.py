"""Content decoding of HTTP bodies, as a browser would do it, with bomb limits.

`body_decoder(tx, direction, ...)` reads the Content-Encoding header(s) of the message and
returns a streaming `BodyDecoder`: ``feed(data) -> bytes``, ``finish() -> bytes``,
``gap()``, ``anomalies`` and ``truncated`` (a reason string or None).

Browser-like leniency (each recorded as an anomaly code):
- several Content-Encoding headers and comma lists stack; decoding runs last-applied first;
  ``identity`` and empty tokens are skipped; junk bytes inside tokens (NUL, controls,
  non-ASCII) are dropped (``def\\0late`` → ``deflate``); ``x-gzip``/``x-deflate`` are aliases.
- ``deflate`` is zlib-wrapped or raw deflate, told apart by the zlib header like browsers do;
  a gzip stream under ``deflate`` is gunzipped.
- gzip headers are parsed here, leniently: reserved flags, bad header CRC and bad or missing
  trailers (CRC32/ISIZE) do not stop decoding; concatenated members are decoded.
- a layer that fails before producing any output (the server lied about the encoding) is
  dropped and its input passed on unchanged (``encoding.<name>_not_applied``); a layer that
  fails later keeps what it decoded and sets ``truncated = "corrupt_encoding"``.

Limits: output is produced in bounded pieces (``zlib`` ``max_length`` + ``unconsumed_tail``,
brotli ``output_buffer_limit``, zstd fed in small input pieces, lzma ``max_length``), so a
gzip-in-gzip bomb never holds more than ``max_output`` plus one piece per layer. Past
``max_output`` → ``truncated = "decompression_limit"``; past ``max_ratio`` x input (once the
output exceeds ``ratio_floor``) → ``"decompression_ratio"``.
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import brotli
import zstandard

from appliance.model.streams import Direction

if TYPE_CHECKING:
    from appliance.model.http import HttpTransaction

PIECE = 256 * 1024
"""Largest output one layer produces per step."""
_HOLD_MAX = 64 * 1024
"""Input kept per layer until it produces output, to fall back to identity."""
_ZSTD_MAX_EXPANSION = 32768
"""Worst-case zstd output per input byte (RLE block: 4 bytes → 128 KiB)."""
_ZSTD_STEP_MAX = 8 << 20
"""zstd cannot bound one call's output: input pieces are sized so one step stays below this."""

_JUNK = bytes(range(0x00, 0x09)) + bytes(range(0x0E, 0x20)) + b"\x7f" + bytes(range(0x80, 0x100))
_SEPS = bytes.maketrans(b"\t\r\n\x0b\x0c,;:\"'", b"          ")

ALIASES = {
    b"gzip": "gzip", b"x-gzip": "gzip", b"deflate": "deflate", b"x-deflate": "deflate",
    b"br": "br", b"zstd": "zstd", b"lzma": "lzma", b"xz": "lzma", b"x-xz": "lzma", b"x-lzma": "lzma",
}
_SKIP = frozenset({b"", b"identity", b"none", b"chunked"})


_CANON: dict[bytes, bytes] = {}


def canonical_name(name: bytes) -> bytes:
    """A header name as browsers end up matching it: lower case, junk bytes removed."""
    c = _CANON.get(name)
    if c is not None:
        return c
    c = _canonical(name)
    if len(_CANON) < 4096 and len(name) < 64:
        _CANON[name] = c
    return c


def _canonical(name: bytes) -> bytes:
    n = name.lower()
    if n.isascii() and n.replace(b"-", b"").isalnum():
        return n
    return n.translate(None, _JUNK).replace(b" ", b"").replace(b"\t", b"").replace(b"\x0b", b"").replace(
        b"\x0c", b"").replace(b"\r", b"").replace(b"\n", b"")


def value_tokens(value: bytes) -> list[bytes]:
    """Comma/space separated tokens of a header value, lower case, junk bytes dropped."""
    return value.lower().translate(None, _JUNK).translate(_SEPS).split()


def content_encodings(headers: list[tuple[bytes, bytes]]) -> tuple[list[bytes], list[str]]:
    """All Content-Encoding tokens in header order, and anomalies seen parsing them."""
    tokens: list[bytes] = []
    anomalies: list[str] = []
    n = 0
    for name, value in headers:
        if canonical_name(name) != b"content-encoding":
            continue
        n += 1
        if name.lower() != b"content-encoding":
            anomalies.append("encoding.odd_header_name")
        if value.translate(None, _JUNK) != value:
            anomalies.append("encoding.junk_in_value")
        tokens.extend(value_tokens(value))
    if n > 1:
        anomalies.append("encoding.multiple_headers")
    return tokens, anomalies


# -- layers ---------------------------------------------------------------------------------------


class _DecodeError(Exception):
    pass


class _Layer:
    """One decoding step. ``step(data, limit)`` consumes input (keeping what it cannot
    process yet) and returns at most ``limit`` bytes; ``pending`` says more output may come
    without new input."""

    name = "identity"
    produced = 0

    def step(self, data: bytes, limit: int) -> bytes:
        raise NotImplementedError

    @property
    def pending(self) -> bool:
        return False

    def end(self) -> tuple[bytes, list[str]]:
        """Flush at end of input: remaining output and anomalies (e.g. truncated stream)."""
        return b"", []

    def fallback(self) -> _Layer | None:
        """What to use instead when this layer fails before any output (None = identity)."""
        return None


class _Identity(_Layer):
    def __init__(self) -> None:
        self._buf = b""

    def step(self, data: bytes, limit: int) -> bytes:
        if self._buf:
            data = self._buf + data
        out, self._buf = data[:limit], data[limit:]
        return out

    @property
    def pending(self) -> bool:
        return bool(self._buf)


class _Inflate(_Layer):
    """Raw deflate with bounded output; after the stream ends, keeps ``unused`` input."""

    name = "deflate"

    def __init__(self) -> None:
        self.d = zlib.decompressobj(-15)
        self.more = False
        self.unused = b""
        self.error = False

    def _salvage(self, d: zlib._Decompress, data: bytes, limit: int) -> bytes:
        """Replay a failed call byte by byte from its snapshot: the output before the error."""
        out = bytearray()
        for i in range(len(data)):
            try:
                out += d.decompress(data[i:i + 1], max(1, limit - len(out)))
                while d.unconsumed_tail and len(out) < limit:
                    out += d.decompress(d.unconsumed_tail, limit - len(out))
            except zlib.error:
                break
            if len(out) >= limit or d.eof:
                break
        return bytes(out[:limit])

    def inflate(self, data: bytes, limit: int) -> bytes:
        d = self.d
        if d.eof:
            self.unused += data
            return b""
        if self.error:
            raise _DecodeError("corrupt deflate stream")
        if d.unconsumed_tail:
            data = d.unconsumed_tail + data
        snap = d.copy()  # ~1 µs: lets a failing call be replayed to keep its output
        try:
            out = d.decompress(data, limit)
        except zlib.error:
            out = self._salvage(snap, data, limit)
            self.error = True
            self.more = True  # so the pump calls again and sees the error
            return out
        self.more = len(out) >= limit or bool(d.unconsumed_tail)
        if d.eof:
            self.unused += d.unused_data
            self.more = False
        return out


class _Deflate(_Inflate):
    """HTTP ``deflate``: zlib-wrapped if the first two bytes are a valid zlib header, else raw."""

    def __init__(self, force_raw: bool = False) -> None:
        super().__init__()
        self.head = b""
        self.mode = "raw" if force_raw else ""  # "", "zlib", "raw", "gzip"
        self.gz: _Gzip | None = None
        self.anomalies: list[str] = []

    def step(self, data: bytes, limit: int) -> bytes:
        if self.gz is not None:
            return self.gz.step(data, limit)
        if not self.mode:
            self.head += data
            if len(self.head) < 2:
                return b""
            data, self.head = self.head, b""
            cmf, flg = data[0], data[1]
            if data[:2] == b"\x1f\x8b":
                self.anomalies.append("encoding.gzip_as_deflate")
                self.gz = _Gzip()
                return self.gz.step(data, limit)
            if cmf & 0x0F == 8 and cmf >> 4 <= 7 and ((cmf << 8) | flg) % 31 == 0 and not flg & 0x20:
                self.mode = "zlib"
                data = data[2:]
            else:
                self.mode = "raw"
                self.anomalies.append("encoding.raw_deflate")
        out = self.inflate(data, limit)
        if self.d.eof and self.unused and len(self.unused) > (4 if self.mode == "zlib" else 0):
            if "encoding.trailing_data" not in self.anomalies:
                self.anomalies.append("encoding.trailing_data")
            self.unused = b""
        return out

    @property
    def pending(self) -> bool:
        return self.gz.pending if self.gz is not None else self.more

    def end(self) -> tuple[bytes, list[str]]:
        if self.gz is not None:
            out, an = self.gz.end()
            return out, self.anomalies + an
        if not self.d.eof and self.mode:
            return b"", [*self.anomalies, "encoding.deflate_truncated"]
        return b"", self.anomalies

    def fallback(self) -> _Layer | None:
        if self.mode == "zlib":
            layer = _Deflate(force_raw=True)
            layer.anomalies.append("encoding.zlib_retry_raw")
            return layer
        return None


class _Gzip(_Inflate):
    """gzip members (RFC 1952), parsed leniently; concatenated members are decoded."""

    name = "gzip"

    def __init__(self) -> None:
        super().__init__()
        self.state = 0  # 0 header, 1 deflate, 2 trailer, 3 junk after members
        self.hbuf = b""
        self.crc = 0
        self.size = 0
        self.members = 0
        self.anomalies: list[str] = []
        self.raw: _Deflate | None = None

    def _header(self) -> bool:
        """Parse the member header in ``hbuf``; True when complete (rest left in hbuf)."""
        b = self.hbuf
        if len(b) < 10:
            return False
        flags = b[3]
        if b[2] != 8:
            self.anomalies.append("gzip.bad_method")
        if flags & 0xE0:
            self.anomalies.append("gzip.reserved_flags")
        i = 10
        if flags & 4:  # FEXTRA
            if len(b) < i + 2:
                return False
            i += 2 + (b[i] | b[i + 1] << 8)
        for bit in (8, 16):  # FNAME, FCOMMENT
            if flags & bit:
                z = b.find(b"\x00", i)
                if z < 0:
                    if len(b) > _HOLD_MAX:
                        raise _DecodeError("gzip header too long")
                    return False
                i = z + 1
        if flags & 2:  # FHCRC: skipped, not checked (as browsers do)
            i += 2
        if len(b) < i:
            return False
        self.hbuf = b[i:]
        return True

    def step(self, data: bytes, limit: int) -> bytes:
        if self.raw is not None:
            return self.raw.step(data, limit)
        out = b""
        while True:
            if self.state == 0:
                self.hbuf += data
                data = b""
                if self.members == 0 and len(self.hbuf) >= 2 and self.hbuf[:2] != b"\x1f\x8b":
                    self.anomalies.append("gzip.no_magic")
                    self.raw = _Deflate()
                    rest, self.hbuf = self.hbuf, b""
                    return self.raw.step(rest, limit)
                if not self._header():
                    return out
                data, self.hbuf = self.hbuf, b""
                self.state = 1
                self.d = zlib.decompressobj(-15)
                self.unused = b""
                self.crc = 0
                self.size = 0
            if self.state == 1:
                piece = self.inflate(data, limit - len(out))
                data = b""
                self.crc = zlib.crc32(piece, self.crc)
                self.size += len(piece)
                out += piece
                if not self.d.eof:
                    return out
                self.state = 2
                self.members += 1
                data, self.unused = self.unused, b""
            if self.state == 2:
                self.hbuf += data
                data = b""
                if len(self.hbuf) < 8:
                    return out
                t = self.hbuf[:8]
                if int.from_bytes(t[:4], "little") != self.crc & 0xFFFFFFFF:
                    self.anomalies.append("gzip.crc_mismatch")
                if int.from_bytes(t[4:], "little") != self.size & 0xFFFFFFFF:
                    self.anomalies.append("gzip.size_mismatch")
                data, self.hbuf = self.hbuf[8:], b""
                self.state = 0 if data[:2] == b"\x1f\x8b" else 3
                if self.state == 0:
                    self.anomalies.append("gzip.multiple_members")
                    if len(out) >= limit:
                        self.hbuf, data = data, b""
                        self.more = True
                        return out
                    continue
            if self.state == 3:
                if data.strip(b"\x00") and "gzip.trailing_data" not in self.anomalies:
                    self.anomalies.append("gzip.trailing_data")
                return out
            if not data:
                return out

    @property
    def pending(self) -> bool:
        if self.raw is not None:
            return self.raw.pending
        return self.more and self.state in (0, 1)

    def end(self) -> tuple[bytes, list[str]]:
        if self.raw is not None:
            out, an = self.raw.end()
            return out, self.anomalies + an
        an = list(self.anomalies)
        if self.state == 1 or (self.state == 0 and self.members == 0 and self.hbuf):
            an.append("gzip.truncated")
        elif self.state == 2:
            an.append("gzip.trailer_missing")
        return b"", an


class _Brotli(_Layer):
    name = "br"

    def __init__(self) -> None:
        self.d = brotli.Decompressor()
        self.inq: list[bytes] = []

    def step(self, data: bytes, limit: int) -> bytes:
        if data:
            self.inq.append(data)
        try:
            if not self.d.can_accept_more_data():
                return self.d.process(b"", output_buffer_limit=limit)
            if not self.inq:
                return b""
            buf = b"".join(self.inq) if len(self.inq) > 1 else self.inq[0]
            self.inq = []
            return self.d.process(buf, output_buffer_limit=limit)
        except brotli.error as e:
            raise _DecodeError(str(e)) from None

    @property
    def pending(self) -> bool:
        return bool(self.inq) or not self.d.can_accept_more_data()

    def end(self) -> tuple[bytes, list[str]]:
        return b"", [] if self.d.is_finished() else ["encoding.br_truncated"]


class _Zstd(_Layer):
    """zstd has no output bound per call here: input is fed in pieces small enough that the
    worst-case expansion stays within ``limit``."""

    name = "zstd"

    def __init__(self) -> None:
        self.d = zstandard.ZstdDecompressor(max_window_size=1 << 23).decompressobj()
        self.inq = b""
        self.done = False

    def step(self, data: bytes, limit: int) -> bytes:
        if data:
            self.inq += data
        if self.done:
            self.inq = b""
            return b""
        size = max(16, _ZSTD_STEP_MAX // _ZSTD_MAX_EXPANSION)  # worst case ≤ 8 MiB out per step
        piece, self.inq = self.inq[:size], self.inq[size:]
        try:
            out = self.d.decompress(piece)
        except zstandard.ZstdError as e:
            raise _DecodeError(str(e)) from None
        if self.d.eof:
            self.done = True
        return out

    @property
    def pending(self) -> bool:
        return bool(self.inq) and not self.done

    def end(self) -> tuple[bytes, list[str]]:
        return b"", [] if self.done else ["encoding.zstd_truncated"]


class _Lzma(_Layer):
    name = "lzma"

    def __init__(self) -> None:
        self.d = lzma.LZMADecompressor(lzma.FORMAT_AUTO, memlimit=128 << 20)
        self.inq = b""

    def step(self, data: bytes, limit: int) -> bytes:
        if self.d.eof:
            return b""
        try:
            out = self.d.decompress(data, limit)
        except lzma.LZMAError as e:
            raise _DecodeError(str(e)) from None
        return out

    @property
    def pending(self) -> bool:
        return not self.d.eof and not self.d.needs_input

    def end(self) -> tuple[bytes, list[str]]:
        return b"", [] if self.d.eof else ["encoding.lzma_truncated"]


_LAYERS: dict[str, type[_Layer]] = {"gzip": _Gzip, "deflate": _Deflate, "br": _Brotli, "zstd": _Zstd,
                                    "lzma": _Lzma}


# -- the decoder ----------------------------------------------------------------------------------


class BodyDecoder:
    """Streaming decoder for one body: ``feed`` → decoded bytes, ``finish`` at the end."""

    __slots__ = (
        "_out",
        "_stopped",
        "anomalies",
        "dead",
        "encodings",
        "held",
        "layers",
        "max_output",
        "max_ratio",
        "ratio_floor",
        "total_in",
        "total_out",
        "truncated",
    )

    def __init__(self, encodings: list[str], *, max_output: int = 256 << 20, max_ratio: int = 1000,
                 ratio_floor: int = 1 << 20, anomalies: list[str] | None = None) -> None:
        self.encodings = list(encodings)
        self.layers: list[_Layer] = [_LAYERS[e]() for e in encodings]
        self.held: list[bytearray | None] = [bytearray() for _ in encodings]
        self.dead = [False] * len(encodings)
        self.anomalies: list[str] = list(anomalies or [])
        self.truncated: str | None = None
        self.max_output = max_output
        self.max_ratio = max_ratio
        self.ratio_floor = ratio_floor
        self.total_in = 0
        self.total_out = 0
        self._out: list[bytes] = []
        self._stopped = False

    @property
    def is_identity(self) -> bool:
        return not self.layers

    def feed(self, data: bytes) -> bytes:
        """Decode the next piece of (transfer-decoded) body; returns decoded bytes."""
        if not self.layers:
            return data
        if self._stopped or not data:
            return b""
        self.total_in += len(data)
        self._push(0, data)
        return self._take()

    def feed_pieces(self, data: bytes, piece: int = 16384) -> Iterator[bytes]:
        """`feed` for a long input (the C fast path joins segments into runs of up to 256 KiB):
        the decoded bytes of each ``piece`` bytes of input in turn. The ratio limit applies
        after every piece, so a bomb's output is consumed and dropped piece by piece, never
        held whole (one call of `feed` could return max_ratio × the whole input)."""
        if not self.layers or len(data) <= piece:
            yield self.feed(data)
            return
        raw = memoryview(data)
        for i in range(0, len(raw), piece):
            yield self.feed(bytes(raw[i:i + piece]))

    def finish(self) -> bytes:
        """End of body: flush every layer; records truncated streams as anomalies."""
        if not self.layers or self._stopped:
            return self._take()
        for k, layer in enumerate(self.layers):
            if self._stopped:
                break
            if self.dead[k]:
                continue
            try:
                out, an = layer.end()
            except Exception:  # never raise on wire data
                out, an = b"", ["encoding.error"]
            for a in an:
                if a not in self.anomalies:
                    self.anomalies.append(a)
            if self.held[k] and layer.produced == 0:
                # the layer swallowed input and never produced anything: pass it on unchanged
                held = bytes(self.held[k] or b"")
                self.held[k] = None
                self.anomalies.append(f"encoding.{layer.name}_not_applied")
                self.layers[k] = _Identity()
                self._route(k, held)
            elif out:
                self._route(k, out)
        return self._take()

    def gap(self) -> None:
        """Bytes were lost: a compressed stream cannot continue past them."""
        if self.layers and not self._stopped:
            self._stopped = True
            self.truncated = self.truncated or "encoded_gap"

    # -- internals --------------------------------------------------------------------------
    def _take(self) -> bytes:
        if not self._out:
            return b""
        out = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out = []
        return out

    def _emit(self, data: bytes) -> None:
        room = self.max_output - self.total_out
        if len(data) > room:
            data = data[:room]
            self._stop("decompression_limit")
        self.total_out += len(data)
        if data:
            self._out.append(data)
        if (self.total_out > self.ratio_floor and self.total_out > self.max_ratio * max(self.total_in, 1)
                and not self._stopped):
            self._stop("decompression_ratio")

    def _stop(self, reason: str) -> None:
        self._stopped = True
        if self.truncated is None:
            self.truncated = reason

    def _route(self, k: int, out: bytes) -> None:
        if k + 1 < len(self.layers):
            self._push(k + 1, out)
        else:
            self._emit(out)

    def _push(self, k: int, data: bytes) -> None:
        """Feed ``data`` into layer k and pump its output onward in bounded pieces."""
        if self.dead[k] or self._stopped:
            return
        layer = self.layers[k]
        held = self.held[k]
        if held is not None:
            held += data
        while True:
            try:
                out = layer.step(data, PIECE)
            except Exception:  # _DecodeError, or anything a library raises on junk
                if self._fail(k):
                    return  # replaced by a fallback layer, which was fed the held input
                return
            data = b""
            if out:
                layer.produced += len(out)
                if held is not None:
                    self.held[k] = held = None
                self._route(k, out)
                if self._stopped:
                    return
            elif held is not None and len(held) > _HOLD_MAX:
                self.held[k] = held = None
            if not layer.pending:
                return

    def _fail(self, k: int) -> bool:
        layer = self.layers[k]
        held = self.held[k]
        if held is None or layer.produced:
            self.dead[k] = True
            self.anomalies.append(f"encoding.{layer.name}_corrupt")
            if self.truncated is None:
                self.truncated = "corrupt_encoding"
            return False
        replacement = layer.fallback()
        self.held[k] = bytearray() if replacement is not None else None
        if replacement is None:
            self.anomalies.append(f"encoding.{layer.name}_not_applied")
            replacement = _Identity()
        self.layers[k] = replacement
        self._push(k, bytes(held))
        return True


def decoder_for(encodings: list[bytes], *, max_output: int = 256 << 20, max_ratio: int = 1000,
                max_layers: int = 3, anomalies: list[str] | None = None) -> BodyDecoder:
    """A decoder for Content-Encoding tokens given in header order (applied first → last)."""
    an = list(anomalies or [])
    steps: list[str] = []
    for tok in encodings:
        if tok in _SKIP:
            if tok == b"identity":
                an.append("encoding.identity")
            continue
        name = ALIASES.get(tok)
        if name is None:
            an.append("encoding.unknown")
            continue
        if tok.startswith(b"x-"):
            an.append("encoding.alias")
        steps.append(name)
    steps.reverse()  # decode the last-applied encoding first
    if len(steps) > max_layers:
        an.append("encoding.too_many_layers")
        steps = steps[:max_layers]
    if len(steps) > 1:
        an.append("encoding.stacked")
    return BodyDecoder(steps, max_output=max_output, max_ratio=max_ratio, anomalies=an)


def body_decoder(tx: HttpTransaction, direction: Direction, *, max_output: int = 256 << 20,
                 max_ratio: int = 1000, max_layers: int = 3) -> BodyDecoder:
    """The decoder for the request (TO_SERVER) or response (TO_CLIENT) body of ``tx``."""
    headers = tx.request_headers if direction is Direction.TO_SERVER else tx.response_headers
    tokens, an = content_encodings(headers)
    return decoder_for(tokens, max_output=max_output, max_ratio=max_ratio, max_layers=max_layers,
                       anomalies=an)
