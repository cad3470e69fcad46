"""Generated PDFs for the pre-scan tests: honest files and decompression bombs of every shape
(single and stacked Flate, filter arrays, escaped and indirect filter names, object streams, LZW,
many small streams). Bombs are written without inflating anything big: a DEFLATE block that
repeats after a full flush is stored once and repeated."""

from __future__ import annotations

import base64
import random
import zlib
from functools import cache

MiB = 1024 * 1024
GiB = 1024 * MiB
CONTENT = b"BT /F1 24 Tf 72 700 Td (Project Nightjar budget) Tj ET"


def zlib_repeat(chunk: bytes, times: int, level: int = 9) -> bytes:
    """A valid zlib stream of ``chunk * times`` made by compressing ``chunk`` once."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    block = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(level, zlib.DEFLATED, -15).flush()  # an empty final block
    adler = 1
    for _ in range(times):
        adler = zlib.adler32(chunk, adler)
    return b"\x78\xda" + block * times + end + adler.to_bytes(4, "big")


@cache
def spaces(total: int) -> bytes:
    """zlib of ``total`` spaces (a multiple of 1 MiB): ratio about 1000."""
    return zlib_repeat(b" " * MiB, total // MiB)


@cache
def sparse(total: int, ratio: int, seed: int = 7) -> bytes:
    """zlib of ``total`` bytes compressing about ``ratio``:1 (spaces with random bytes sprinkled)."""
    rng = random.Random(seed)
    chunk = bytearray(b" " * MiB)
    for _ in range(MiB // (ratio * 4)):
        chunk[rng.randrange(MiB)] = rng.randrange(256)
    return zlib_repeat(bytes(chunk), total // MiB)


def noise(n: int, seed: int = 3) -> bytes:
    """zlib of ``n`` random bytes (ratio about 1)."""
    return zlib.compress(random.Random(seed).randbytes(n), 1)


def lzw_pack(codes: list[int], early: int = 1) -> bytes:
    """Pack LZW ``codes`` (256 = clear, 257 = end) MSB first with PDF's code widths."""
    bits = 0
    nbits = 0
    out = bytearray()
    width = 9
    size = 258  # the decoder's table after the codes so far
    fresh = True
    for code in codes:
        bits = (bits << width) | code
        nbits += width
        while nbits >= 8:
            nbits -= 8
            out.append((bits >> nbits) & 0xFF)
        bits &= (1 << nbits) - 1
        if code == 256:
            width, size, fresh = 9, 258, True
            continue
        if not fresh and size < 4096:
            size += 1
        fresh = False
        while size + early >= (1 << width) and width < 12:
            width += 1
    if nbits:
        out.append((bits << (8 - nbits)) & 0xFF)
    return bytes(out)


def lzw_encode(data: bytes) -> bytes:
    """PDF LZW (EarlyChange 1) of ``data``, as a writer would make it."""
    codes = [256]
    table = {bytes([i]): i for i in range(256)}
    w = b""
    for byte in data:
        wc = w + bytes([byte])
        if wc in table:
            w = wc
            continue
        codes.append(table[w])
        table[wc] = len(table) + 2
        w = bytes([byte])
        if len(table) + 2 >= 4094:
            codes.append(256)
            table = {bytes([i]): i for i in range(256)}
    if w:
        codes.append(table[w])
    codes.append(257)
    return lzw_pack(codes)


@cache
def lzw_spaces(cycles: int) -> bytes:
    """LZW of runs of spaces: each cycle adds codes for 1, 2, 3… spaces (about 7 MB in 5.7 KB)."""
    codes: list[int] = []
    for _ in range(cycles):
        codes += [256, 32, *range(258, 4094)]
    codes.append(257)
    return lzw_pack(codes)


def lzw_spaces_size(cycles: int) -> int:
    return cycles * (1 + sum(range(2, 4094 - 258 + 2)))


def build(objs: dict[int, bytes], *, packed: dict[int, bytes] | None = None, objstm_filter: bytes = b"/FlateDecode",
          objstm_data: bytes | None = None) -> bytes:
    """A PDF of ``objs`` (number → object body; a body may end in a stream). With ``packed``,
    those objects go into one object stream (number max+1) and the file gets a cross-reference
    stream; ``objstm_data`` replaces the object stream's (compressed) data."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    for num, body in sorted(objs.items()):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    if not packed:
        size = max(objs) + 1
        xref = len(out)
        out += b"xref\n0 %d\n0000000000 65535 f \n" % size
        for num in range(1, size):
            out += b"%010d 00000 n \n" % offsets[num] if num in offsets else b"0000000000 65535 f \n"
        out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
        return bytes(out)
    stm = max(max(objs), max(packed)) + 1
    header = b""
    body = b""
    index: dict[int, int] = {}
    for i, (num, obj) in enumerate(sorted(packed.items())):
        header += b"%d %d " % (num, len(body))
        index[num] = i
        body += obj + b"\n"
    data = objstm_data if objstm_data is not None else zlib.compress(header + body)
    offsets[stm] = len(out)
    out += (b"%d 0 obj\n<< /Type /ObjStm /N %d /First %d /Filter %s /Length %d >>\nstream\n"
            % (stm, len(packed), len(header), objstm_filter, len(data)) + data + b"\nendstream\nendobj\n")
    xnum = stm + 1
    offsets[xnum] = len(out)
    rows = bytearray()
    for num in range(xnum + 1):
        if num in offsets:
            rows += b"\x01" + offsets[num].to_bytes(4, "big") + b"\x00\x00"
        elif num in packed:
            rows += b"\x02" + stm.to_bytes(4, "big") + index[num].to_bytes(2, "big")
        else:
            rows += b"\x00" + b"\x00" * 4 + b"\xff\xff"
    out += (b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Length %d >>\nstream\n"
            % (xnum, xnum + 1, len(rows)) + bytes(rows) + b"\nendstream\nendobj\n")
    out += b"startxref\n%d\n%%%%EOF\n" % offsets[xnum]
    return bytes(out)


def page(contents: bytes = b"4 0 R", extra: dict[int, bytes] | None = None, **kw: object) -> bytes:
    """One page whose ``/Contents`` is ``contents``; objects 1–3 and 5 (font) are given."""
    objs = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents " + contents
           + b" /Resources << /Font << /F1 5 0 R >> >> >>",
        5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    objs.update(extra or {})
    return build(objs, **kw)  # type: ignore[arg-type]


def stream(data: bytes, entries: bytes = b"/Filter /FlateDecode", keyword: bytes = b"stream\n") -> bytes:
    """A stream object body: ``<< /Length n entries >>`` then the data."""
    return b"<< /Length %d %s >>" % (len(data), entries) + keyword + data + b"\nendstream"


def with_content(data: bytes, entries: bytes = b"/Filter /FlateDecode", keyword: bytes = b"stream\n",
                 extra: dict[int, bytes] | None = None, **kw: object) -> bytes:
    """One page whose content stream (object 4) is ``data``."""
    return page(extra={4: stream(data, entries, keyword), **(extra or {})}, **kw)


# --- honest files -----------------------------------------------------------------------------


def honest() -> bytes:
    return with_content(zlib.compress(CONTENT))


def honest_white_mask(side: int = 2000) -> bytes:
    """A page with a ``side``×``side`` all-white soft mask (ratio about 1000, a few MB decoded)."""
    img = zlib.compress(b"\xff" * side * side, 9)
    body = CONTENT + b" q 100 0 0 100 72 500 cm /Im1 Do Q"
    objs = {
        6: stream(img, b"/Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray "
                       b"/BitsPerComponent 8 /Filter /FlateDecode" % (side, side)),
    }
    pdf = page(extra={4: stream(zlib.compress(body)), **objs})
    return pdf.replace(b"/Font << /F1 5 0 R >>", b"/Font << /F1 5 0 R >> /XObject << /Im1 6 0 R >>")


def honest_lzw() -> bytes:
    return with_content(lzw_encode(CONTENT), b"/Filter /LZWDecode")


def honest_hex_flate() -> bytes:
    return with_content(zlib.compress(CONTENT).hex().encode() + b">", b"/Filter [/AHx /Fl]")


def honest_a85_flate() -> bytes:
    return with_content(base64.a85encode(zlib.compress(CONTENT)) + b"~>", b"/Filter [/A85 /FlateDecode]")


def honest_in_object_stream() -> bytes:
    """The content stream's /Filter is ``6 0 R``, an array stored in an object stream."""
    return page(extra={4: stream(zlib.compress(CONTENT), b"/Filter 6 0 R")}, packed={6: b"[/FlateDecode]"})


# --- bombs ------------------------------------------------------------------------------------


BOMBS: dict[str, object] = {}


def bomb(fn):  # type: ignore[no-untyped-def]
    BOMBS[fn.__name__] = fn
    return fn


@bomb
def flate_1gib() -> bytes:
    """The reported file: one content stream, ``/FlateDecode``, 1 GiB of spaces in about 1 MB."""
    return with_content(spaces(GiB))


@bomb
def flate_80mib() -> bytes:
    return with_content(spaces(80 * MiB))


@bomb
def flate_ratio_150_of_300mib() -> bytes:
    return with_content(sparse(300 * MiB, 150))


@bomb
def flate_ratio_150_of_100mib() -> bytes:
    return with_content(sparse(100 * MiB, 150))


@bomb
def flate_behind_honest_padding() -> bytes:
    """8 MiB of noise (ratio 1) then 512 MiB of spaces: the overall ratio is only about 60."""
    c = zlib.compressobj(1)
    head = c.compress(random.Random(5).randbytes(8 * MiB)) + c.flush(zlib.Z_FULL_FLUSH)
    return with_content(head + _space_blocks(512) + b"\0\0\0\0")  # (the checksum is wrong: read to the end)


def _space_blocks(mib: int) -> bytes:
    """Raw DEFLATE blocks of ``mib`` MiB of spaces, then an empty final block."""
    d = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = d.compress(b" " * MiB) + d.flush(zlib.Z_FULL_FLUSH)
    return block * mib + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


@bomb
def flate_flate() -> bytes:
    return with_content(zlib.compress(spaces(GiB), 9), b"/Filter [/FlateDecode /FlateDecode]")


@bomb
def hex_then_flate() -> bytes:
    return with_content(spaces(256 * MiB).hex().encode() + b">", b"/Filter [/ASCIIHexDecode /FlateDecode]")


@bomb
def a85_then_flate() -> bytes:
    return with_content(base64.a85encode(spaces(256 * MiB)) + b"~>", b"/Filter [/A85 /Fl]")


@bomb
def escaped_name() -> bytes:
    return with_content(spaces(GiB), b"/Filter /Fl#61te#44ecode")


@bomb
def indirect_filter() -> bytes:
    return with_content(spaces(GiB), b"/Filter 6 0 R", extra={6: b"/FlateDecode"})


@bomb
def filter_in_object_stream() -> bytes:
    return page(extra={4: stream(spaces(GiB), b"/Filter 6 0 R")}, packed={6: b"[/FlateDecode]"})


@bomb
def length_in_object_stream() -> bytes:
    """/Length points into an object stream and the data holds a fake ``endstream`` early on."""
    word = b"\nendstream\n"
    stored = b"\x00" + len(word).to_bytes(2, "little") + (~len(word) & 0xFFFF).to_bytes(2, "little") + word
    data = spaces(GiB)
    data = data[:2] + stored + data[2:]
    return page(extra={4: b"<< /Length 6 0 R /Filter /FlateDecode >>stream\n" + data + b"\nendstream"},
                packed={6: b"%d" % len(data)})


@bomb
def nested_dictionary_after_filter() -> bytes:
    return with_content(spaces(GiB), b"/Filter /FlateDecode /DecodeParms << /Predictor 1 >>")


@bomb
def padded_dictionary() -> bytes:
    return with_content(spaces(GiB), b"/Filter /FlateDecode %" + b"x" * 8000 + b"\n/Foo (<< >>) /Bar 1")


@bomb
def fake_header_in_string() -> bytes:
    return with_content(spaces(GiB), b"/Filter /FlateDecode /X (9 0 obj << /Filter [] >>)")


@bomb
def lone_cr_after_keyword() -> bytes:
    return with_content(spaces(GiB), keyword=b"stream\r")


@bomb
def lzw() -> bytes:
    return with_content(lzw_spaces(40), b"/Filter /LZWDecode")  # about 280 MB


@bomb
def object_stream_itself() -> bytes:
    """The object stream holding the font decodes to 1 GiB (the font, then spaces)."""
    body = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>\n"
    header = b"5 0 "
    c = zlib.compressobj(9)
    head = c.compress(header + body) + c.flush(zlib.Z_FULL_FLUSH)
    objs = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
           b" /Resources << /Font << /F1 5 0 R >> >> >>",
        4: stream(zlib.compress(CONTENT)),
    }
    return build(objs, packed={5: body}, objstm_data=head + _space_blocks(1024) + b"\0\0\0\0")


@bomb
def many_small_streams() -> bytes:
    """400 content streams of 1 MiB each (1 KB compressed): none is big, together 400 MiB."""
    one = spaces(MiB)
    n = 400
    extra = {10 + i: stream(one) for i in range(n)}
    refs = b"[" + b" ".join(b"%d 0 R" % (10 + i) for i in range(n)) + b"]"
    return page(contents=refs, extra=extra)
