"""PDF pre-scan: measure how far every stream expands before PDFium inflates anything.

PDFium inflates a stream whole and never stops on its own, so a small PDF can hold a
decompression bomb that takes its worker down. The pre-scan finds every ``stream … endstream``
by scanning the bytes (a damaged cross-reference table cannot hide one), reads the stream's
dictionary with a small tokenizer (nested dictionaries, ``#xx`` name escapes, abbreviations,
filter arrays, ``/Filter 7 0 R`` resolved through plain objects and object streams), and streams
the data through the filter chain (``FlateDecode``, ``LZWDecode``, ``ASCIIHexDecode``,
``ASCII85Decode``, ``RunLengthDecode``), counting the output without holding it (64 KiB at a
time) and the input the first stage really used (zlib's held-back input is not counted). A
stream whose filter cannot be resolved is decoded by sniffing (zlib header, hex, ASCII85), as
PDFium still decodes it.

A stream is a bomb (`Prescan.bomb`) when it decodes beyond ``max_stream`` bytes (a child's
limit) at a ratio beyond ``max_ratio``, or beyond ``max_expanded`` bytes (the task's expansion
limit) at any ratio (honest-looking padding in front of a bomb cannot hide it); the file is one
when its streams together decode beyond ``max_expanded`` at an overall ratio beyond
``max_ratio`` (many small bombs on one page). Counting is bounded by those limits and by the
task's clock (`Prescan.unscanned` when it ran out). An encrypted file's streams are ciphertext
and cannot be measured (`Prescan.encrypted`).

Pure functions on bytes; never raises on hostile input.
"""

from __future__ import annotations

import base64
import bisect
import itertools
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from inspectors.extract.parts import Clock

PRESCAN_OUT = 1024 * 1024
"""Bytes each decoding stage of the pre-scan may produce per stream."""
MAX_STREAMS = 100_000
_DICT_WINDOW = 256 * 1024
"""How far before ``stream`` its ``N G obj`` header may be (a dictionary padded past this is
decoded by sniffing)."""

ALIASES = {b"Fl": b"FlateDecode", b"LZW": b"LZWDecode", b"AHx": b"ASCIIHexDecode", b"A85": b"ASCII85Decode",
           b"RL": b"RunLengthDecode", b"CCF": b"CCITTFaxDecode", b"DCT": b"DCTDecode"}
EXPANDING = frozenset({b"FlateDecode", b"LZWDecode"})
IMAGE_CODECS = frozenset({b"DCTDecode", b"JPXDecode", b"JBIG2Decode", b"CCITTFaxDecode", b"Crypt"})


# --- a small PDF object tokenizer ------------------------------------------------------------


class Name(bytes):
    """A PDF name (``/FlateDecode``), with ``#xx`` escapes decoded."""


class Ref(NamedTuple):
    """An indirect reference ``num gen R``."""

    num: int
    gen: int


_WS = b" \t\r\n\f\x00"
_DELIM = b"()<>[]{}/%"
_NUM = re.compile(rb"[+-]?(?:\d+\.?\d*|\.\d+)")
_REF_TAIL = re.compile(rb"\s+(\d+)\s+R(?![^\s()<>\[\]{}/%])")
_OBJ = re.compile(rb"(\d{1,10})\s+(\d{1,5})\s+obj(?![^\s()<>\[\]{}/%])")
_NAME_ESC = re.compile(rb"#([0-9A-Fa-f]{2})")
_MAX_DEPTH = 32


class _Bad(Exception):
    """Unparseable object (internal: every public function catches it)."""


def _skip(buf: bytes, pos: int, end: int) -> int:
    while pos < end:
        c = buf[pos]
        if c in _WS:
            pos += 1
        elif c == 0x25:  # % comment to end of line
            nl = min((x for x in (buf.find(b"\n", pos, end), buf.find(b"\r", pos, end)) if x >= 0), default=end)
            pos = nl
        else:
            break
    return pos


def parse_object(buf: bytes, pos: int, end: int, depth: int = 0) -> tuple[object, int]:
    """One PDF object at ``pos`` → (value, position after it). Dicts are ``dict[Name, …]``,
    arrays lists, strings bytes, ``None`` for null. Raises `_Bad` on garbage."""
    if depth > _MAX_DEPTH:
        raise _Bad("depth")
    pos = _skip(buf, pos, end)
    if pos >= end:
        raise _Bad("end")
    c = buf[pos:pos + 1]
    if buf.startswith(b"<<", pos):
        out: dict[Name, object] = {}
        pos += 2
        while True:
            pos = _skip(buf, pos, end)
            if buf.startswith(b">>", pos):
                return out, pos + 2
            key, pos = parse_object(buf, pos, end, depth + 1)
            if not isinstance(key, Name):
                raise _Bad("key")
            out[key], pos = parse_object(buf, pos, end, depth + 1)
    if c == b"[":
        items: list[object] = []
        pos += 1
        while True:
            pos = _skip(buf, pos, end)
            if buf.startswith(b"]", pos):
                return items, pos + 1
            item, pos = parse_object(buf, pos, end, depth + 1)
            items.append(item)
    if c == b"/":
        e = pos + 1
        while e < end and buf[e] not in _WS and buf[e] not in _DELIM:
            e += 1
        return Name(_NAME_ESC.sub(lambda m: bytes([int(m.group(1), 16)]), buf[pos + 1:e])), e
    if c == b"<":
        e = buf.find(b">", pos, end)
        if e < 0:
            raise _Bad("hex")
        return buf[pos + 1:e], e + 1
    if c == b"(":
        return _literal_end(buf, pos, end)
    m = _NUM.match(buf, pos, end)
    if m:
        r = _REF_TAIL.match(buf, m.end(), end)
        if r and m.group(0).isdigit():
            return Ref(int(m.group(0)), int(r.group(1))), r.end()
        text = m.group(0)
        return (float(text) if b"." in text else int(text)), m.end()
    for word, value in ((b"true", True), (b"false", False), (b"null", None)):
        if buf.startswith(word, pos):
            return value, pos + len(word)
    raise _Bad("token")


def _literal_end(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    depth = 0
    i = pos
    while i < end:
        ch = buf[i]
        if ch == 0x5C:  # backslash
            i += 2
            continue
        if ch == 0x28:
            depth += 1
        elif ch == 0x29:
            depth -= 1
            if depth == 0:
                return buf[pos + 1:i], i + 1
        i += 1
    raise _Bad("string")


# --- streaming decoders for the stream filters ---------------------------------------------------

PIECE = 64 * 1024
"""Most bytes a decoding stage hands on at once: memory stays bounded however far a stream expands."""
_SRC_PIECE = 16 * 1024


@dataclass(slots=True)
class Stage:
    """One decoding stage: its filter, the bytes it produced and used, whether it finished."""

    filter: bytes
    out: int = 0
    used: int = 0
    whole: bool = False

    @property
    def ratio(self) -> float:
        return self.out / max(1, self.used)


Pieces = Iterator[bytes]


def _source(raw: bytes) -> Pieces:
    for i in range(0, len(raw), _SRC_PIECE):
        yield raw[i:i + _SRC_PIECE]


def _flate(up: Pieces, st: Stage) -> Pieces:
    """zlib streams only, as PDFium reads them (a raw DEFLATE or gzip stream decodes to nothing
    there). ``used`` is exact: input zlib holds back (``unconsumed_tail``) or leaves after the end
    of the stream (``unused_data``) is not counted."""
    d = zlib.decompressobj(15)
    fed = 0
    try:
        for chunk in up:
            fed += len(chunk)
            while True:
                out = d.decompress(chunk, PIECE)
                chunk = d.unconsumed_tail
                st.used = fed - len(chunk) - len(d.unused_data)
                st.whole = d.eof  # before the last yield: the reader may stop there
                if out:
                    st.out += len(out)
                    yield out
                if d.eof:
                    return
                if not chunk and len(out) < PIECE:
                    break
    except zlib.error:
        pass


def _ahx(up: Pieces, st: Stage) -> Pieces:
    odd = b""
    for chunk in up:
        end = chunk.find(b">")
        part = chunk if end < 0 else chunk[:end]
        st.used += len(chunk) if end < 0 else end + 1
        digits = odd + re.sub(rb"[^0-9A-Fa-f]", b"", part)
        if end >= 0 and len(digits) % 2:
            digits += b"0"  # a final odd digit is followed by 0
        odd = digits[len(digits) // 2 * 2:]
        out = bytes.fromhex(digits[:len(digits) // 2 * 2].decode("ascii"))
        st.whole = end >= 0
        if out:
            st.out += len(out)
            yield out
        if end >= 0:
            return


_A85_GROUP = re.compile(rb"z|[!-u]{5}")


def _a85(up: Pieces, st: Stage) -> Pieces:
    buf = b""
    last = b""
    for chunk in up:
        if not st.used and chunk.startswith(b"<~"):
            chunk, st.used = chunk[2:], 2
        at = (last + chunk).find(b"~>")
        found = at >= 0
        end = at - len(last) if found else len(chunk)  # -1: "~" ended the previous piece
        last = chunk[-1:]
        st.used += max(0, end + 2) if found else len(chunk)
        buf += re.sub(rb"[^!-uz]", b"", chunk[:max(0, end)])
        groups = _A85_GROUP.findall(buf)
        taken = sum(len(g) for g in groups)
        if found:
            groups.append(buf[taken:])  # a final partial group
            taken = len(buf)
        buf = buf[taken:]
        try:
            out = base64.a85decode(b"".join(groups))
        except ValueError:
            return
        for i in range(0, len(out), PIECE):
            st.out += len(out[i:i + PIECE])
            st.whole = found and i + PIECE >= len(out)
            yield out[i:i + PIECE]
        if found:
            st.whole = True
            return


def _runlength(up: Pieces, st: Stage) -> Pieces:
    pending = b""
    for chunk in up:
        st.used += len(chunk)
        data = pending + chunk
        out = bytearray()
        i = 0
        while i < len(data):
            n = data[i]
            if n == 128:
                st.used -= len(data) - i - 1
                st.out += len(out)
                st.whole = True
                yield bytes(out)
                return
            need = 2 + n if n < 128 else 2
            if i + need > len(data):
                break
            out += data[i + 1:i + need] if n < 128 else data[i + 1:i + 2] * (257 - n)
            i += need
            if len(out) >= PIECE:
                st.out += len(out)
                yield bytes(out)
                out = bytearray()
        pending = data[i:]
        if out:
            st.out += len(out)
            yield bytes(out)


def _lzw(up: Pieces, st: Stage, early: int = 1) -> Pieces:
    """PDF LZW: MSB first, 9–12 bit codes, 256 clears, 257 ends, ``EarlyChange`` (default 1)."""
    table: list[bytes] = [bytes([i]) for i in range(256)] + [b"", b""]
    width, bits, nbits, prev = 9, 0, 0, b""
    out = bytearray()
    for chunk in up:
        st.used += len(chunk)
        for byte in chunk:
            bits = (bits << 8) | byte
            nbits += 8
            if nbits < width:
                continue
            nbits -= width
            code = bits >> nbits
            bits &= (1 << nbits) - 1
            if code == 256:
                del table[258:]
                width, prev = 9, b""
                continue
            if code == 257:
                st.out += len(out)
                st.whole = True
                yield bytes(out)
                return
            if code < len(table):
                entry = table[code]
            elif code == len(table) and prev:
                entry = prev + prev[:1]
            else:
                return
            out += entry
            if prev and len(table) < 4096:
                table.append(prev + entry[:1])
            prev = entry
            if len(table) + early >= (1 << width) and width < 12:
                width += 1
            if len(out) >= PIECE:
                st.out += len(out)
                yield bytes(out)
                out = bytearray()
    if out:
        st.out += len(out)
        yield bytes(out)


def _identity(up: Pieces, st: Stage) -> Pieces:
    for chunk in up:
        st.used += len(chunk)
        st.out += len(chunk)
        yield chunk
    st.whole = True


_DECODERS = {b"FlateDecode": _flate, b"ASCIIHexDecode": _ahx, b"ASCII85Decode": _a85,
             b"RunLengthDecode": _runlength, b"LZWDecode": _lzw, b"Crypt": _identity}


def _sniff(data: bytes) -> bytes | None:
    """The filter ``data`` looks encoded with (for a stream whose filter cannot be resolved)."""
    if len(data) >= 2 and data[0] & 0x0F == 8 and data[0] >> 4 <= 7 and (data[0] << 8 | data[1]) % 31 == 0:
        return b"FlateDecode"
    head = data[:256].strip()
    if head.startswith(b"<~") or (head and re.fullmatch(rb"[!-uz\s]*~?>?", head) and b"~>" in data[-512:]):
        return b"ASCII85Decode"
    if len(head) >= 16 and re.fullmatch(rb"[0-9A-Fa-f\s]*>?", head):
        return b"ASCIIHexDecode"
    return None


def _peek(pieces: Pieces) -> tuple[bytes, Pieces]:
    first = next(pieces, b"")
    return first, itertools.chain((first,), pieces)


@dataclass(slots=True)
class Decoded:
    """A stream decoded as far as asked: the first bytes kept, the size counted, the stages."""

    data: bytes
    size: int
    """Bytes the chain produced (counting stopped at ``stop_at``)."""
    whole: bool
    """Every stage finished within the limits."""
    stages: list[Stage]
    raw_used: int

    @property
    def ratio(self) -> float:
        """Bytes out per byte of the stream used."""
        return self.size / max(1, self.raw_used)


def decode_chain(raw: bytes, filters: list[bytes] | None, keep: int = PRESCAN_OUT, *,
                 stop_at: int | None = None, lzw_early: int = 1) -> Decoded:
    """Stream ``raw`` through ``filters`` (``None``: unknown, sniffed stage by stage), keeping the
    first ``keep`` output bytes and counting on to ``stop_at`` (default ``keep``) without holding
    them. Stops before an image codec or an unknown filter (what it cannot decode stays as is)."""
    stop = keep if stop_at is None else max(keep, stop_at)
    stages: list[Stage] = []
    pieces: Pieces = _source(raw)
    for k in range(8 if filters is None else len(filters)):
        if filters is None:
            head, pieces = _peek(pieces)
            f = _sniff(head)
        else:
            f = ALIASES.get(filters[k], filters[k])
        if f is None or f not in _DECODERS:
            break
        st = Stage(f)
        stages.append(st)
        pieces = _lzw(pieces, st, lzw_early) if f == b"LZWDecode" else _DECODERS[f](pieces, st)
    kept: list[bytes] = []
    size = 0
    ended = True
    try:
        for piece in pieces:
            if size < keep:
                kept.append(piece[:keep - size])
            size += len(piece)
            if size > stop:
                ended = False
                break
    except (ValueError, IndexError, zlib.error):
        ended = False
    whole = ended and all(s.whole for s in stages)
    raw_used = stages[0].used if stages else len(raw)
    return Decoded(b"".join(kept), size, whole, stages, raw_used)


# --- the file: streams, dictionaries, references ------------------------------------------------

_STREAM = re.compile(rb"(?<!end)stream[ \t\f\x00]*(?:\r\n|\n|\r)")
"""The ``stream`` keyword and its end of line (PDFium also takes a lone CR, and blanks before it)."""


@dataclass(slots=True)
class StreamInfo:
    """One ``stream … endstream``: where it is and what its dictionary says."""

    start: int
    end: int
    filters: list[bytes] | None
    """The filter chain (names); ``None``: unknown (unparsed or unresolved dictionary)."""
    objstm: bool = False
    lzw_early: int = 1
    number: int = -1
    """Object number, when its ``N G obj`` header was found."""


class PdfIndex:
    """Where the objects of a file are (plain ``N G obj`` and, once read, object streams)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offsets: dict[tuple[int, int], int] = {}
        self.headers: list[int] = []
        self.header_ends: list[int] = []
        self.header_nums: list[int] = []
        for m in _OBJ.finditer(data):
            num, gen = int(m.group(1)), int(m.group(2))
            self.offsets[(num, gen)] = m.end()  # a later definition (incremental update) wins
            self.headers.append(m.start())
            self.header_ends.append(m.end())
            self.header_nums.append(num)
        self.packed: dict[int, tuple[bytes, int]] = {}
        """Objects inside object streams: number → (decoded stream, offset)."""

    def resolve(self, value: object, depth: int = 0) -> object:
        """``value`` with an indirect reference followed (a few hops at most)."""
        while isinstance(value, Ref) and depth < 8:
            depth += 1
            at = self.offsets.get((value.num, value.gen))
            try:
                if at is not None:
                    value, _ = parse_object(self.data, at, min(len(self.data), at + 65536))
                elif value.num in self.packed:
                    buf, off = self.packed[value.num]
                    value, _ = parse_object(buf, off, len(buf))
                else:
                    return None
            except _Bad:
                return None
        return value

    def add_object_stream(self, decoded: bytes, dictionary: dict) -> None:
        """Index the objects of a decoded ``/Type /ObjStm`` (``/N`` pairs, ``/First``)."""
        n, first = self.resolve(dictionary.get(Name(b"N"))), self.resolve(dictionary.get(Name(b"First")))
        if not isinstance(n, int) or not isinstance(first, int) or n < 0 or first < 0:
            return
        pos = 0
        for _ in range(min(n, 100_000)):
            try:
                num, pos = parse_object(decoded, pos, first)
                off, pos = parse_object(decoded, pos, first)
            except _Bad:
                return
            if isinstance(num, int) and isinstance(off, int) and num not in self.packed:
                self.packed[num] = (decoded, first + off)

    def dictionary_before(self, stream_kw: int) -> tuple[dict | None, int]:
        """The dictionary of the stream whose keyword is at ``stream_kw`` and its object number:
        the dictionary after the nearest ``N G obj`` before it that ends right at the keyword
        (a header written inside a string or in binary data is passed over); else (None, -1)."""
        i = bisect.bisect_right(self.headers, stream_kw) - 1
        for k in range(i, max(-1, i - 8), -1):
            if stream_kw - self.headers[k] > _DICT_WINDOW:
                break
            try:
                value, after = parse_object(self.data, self.header_ends[k], stream_kw)
            except _Bad:
                continue
            if isinstance(value, dict) and _skip(self.data, after, stream_kw) == stream_kw:
                return value, self.header_nums[k]
        return None, -1


def _filter_names(index: PdfIndex, d: dict) -> list[bytes] | None:
    value = index.resolve(d.get(Name(b"Filter")))
    if value is None:
        return None if Name(b"Filter") in d else []
    if isinstance(value, Name):
        return [ALIASES.get(value, bytes(value))]
    if isinstance(value, list):
        names = [index.resolve(v) for v in value[:16]]
        if all(isinstance(v, Name) for v in names):
            return [ALIASES.get(v, bytes(v)) for v in names]  # type: ignore[arg-type]
    return None


def _early_change(index: PdfIndex, d: dict) -> int:
    parms = index.resolve(d.get(Name(b"DecodeParms")) or d.get(Name(b"DP")))
    if isinstance(parms, list):
        parms = next((index.resolve(p) for p in parms if p is not None), None)
    if isinstance(parms, dict):
        v = index.resolve(parms.get(Name(b"EarlyChange")))
        if v in (0, 1):
            return int(v)  # type: ignore[arg-type]
    return 1


def find_streams(index: PdfIndex, max_streams: int = MAX_STREAMS) -> list[tuple[int, int, dict | None, int]]:
    """(data start, data end, dictionary or None, object number) of every stream, by scanning."""
    data = index.data
    out: list[tuple[int, int, dict | None, int]] = []
    pos = 0
    while len(out) < max_streams:
        m = _STREAM.search(data, pos)
        if not m:
            break
        start = m.end()
        d, num = index.dictionary_before(m.start())
        end = -1
        length = index.resolve(d.get(Name(b"Length"))) if d is not None else None
        if isinstance(length, int) and 0 <= length <= len(data) - start and \
                data[start + length:start + length + 12].lstrip().startswith(b"endstream"):
            end = start + length
        if end < 0:
            e = data.find(b"endstream", start)
            end = e if e >= 0 else len(data)
            if end > start and data[end - 1:end] == b"\n":
                end -= 1
                if data[end - 1:end] == b"\r":
                    end -= 1
        out.append((start, end, d, num))
        pos = max(end, start + 1)
    return out


def streams(data: bytes, index: PdfIndex | None = None) -> list[StreamInfo]:
    """Every stream of ``data`` with its filter chain. Object streams are read first and the
    file scanned again when there are any, so a ``/Length`` or ``/Filter`` stored in one resolves."""
    index = index or PdfIndex(data)
    found = find_streams(index)
    packed = False
    for start, end, d, _num in found:
        if d is not None and index.resolve(d.get(Name(b"Type"))) == b"ObjStm":
            dec = decode_chain(data[start:end], _filter_names(index, d), 4 * PRESCAN_OUT)
            index.add_object_stream(dec.data, d)
            packed = packed or bool(index.packed)
    if packed:
        found = find_streams(index)
    out = []
    for start, end, d, num in found:
        if d is None:
            out.append(StreamInfo(start, end, None, number=num))
            continue
        out.append(StreamInfo(start, end, _filter_names(index, d),
                              objstm=index.resolve(d.get(Name(b"Type"))) == b"ObjStm",
                              lzw_early=_early_change(index, d), number=num))
    return out


# --- the verdict ------------------------------------------------------------------------------


@dataclass(slots=True)
class Prescan:
    """What the pre-scan found: ``bomb`` with a readable ``reason``, stream count, encryption."""

    bomb: bool = False
    reason: str = ""
    streams: int = 0
    encrypted: bool = False
    unscanned: bool = False
    """The time budget ran out before every stream was judged."""
    expanded: int = 0
    """Bytes the judged streams decode to (counting stopped at the limits)."""


def judge_stream(dec: Decoded, max_ratio: float, max_stream: int, max_expanded: int) -> str:
    """Why one decoded stream is a bomb, or ''. ``dec`` was counted up to ``max_expanded`` + 1."""
    if not any(s.filter in EXPANDING for s in dec.stages):
        return ""
    names = "+".join(s.filter.decode("latin-1") for s in dec.stages)
    if dec.size > max_expanded:
        return f"{names} decodes beyond {max_expanded} B"
    if dec.size > max_stream and dec.ratio > max_ratio:
        return f"{names} decodes beyond {max_stream} B at ratio {dec.ratio:.0f}"
    return ""


def prescan(data: bytes, max_ratio: float, clock: Clock, max_expanded: int = 256 * 1024 * 1024,
            max_stream: int = 64 * 1024 * 1024) -> Prescan:
    """Judge every stream of ``data`` (see the module doc); stops at the first bomb."""
    res = Prescan()
    index = PdfIndex(data)
    infos = streams(data, index)
    res.streams = len(infos)
    res.encrypted = bool(re.search(rb"/Encrypt\s*(?:\d+\s+\d+\s+R|<<)", data))
    raw_total = 0
    for info in infos:
        if clock.over():
            res.unscanned = True
            break
        if info.filters == []:
            continue
        raw = data[info.start:info.end]
        dec = decode_chain(raw, info.filters, 0, stop_at=max_stream, lzw_early=info.lzw_early)
        if dec.size > max_stream and dec.ratio <= max_ratio:  # big at a plain ratio: count on
            dec = decode_chain(raw, info.filters, 0, stop_at=max_expanded, lzw_early=info.lzw_early)
        why = judge_stream(dec, max_ratio, max_stream, max_expanded)
        where = f"object {info.number}" if info.number >= 0 else f"offset {info.start}"
        if why:
            res.bomb, res.reason = True, f"{where}: {why}"
            return res
        if any(s.filter in EXPANDING for s in dec.stages):
            res.expanded += dec.size
            raw_total += dec.raw_used
            if res.expanded > max_expanded and res.expanded / max(1, raw_total) > max_ratio:
                res.bomb = True
                res.reason = (f"{len(infos)} streams decode beyond {max_expanded} B "
                              f"at ratio {res.expanded // max(1, raw_total)}")
                return res
    return res


__all__ = ["PRESCAN_OUT", "Decoded", "Prescan", "decode_chain", "judge_stream", "parse_object", "prescan",
           "streams"]
