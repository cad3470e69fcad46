"""Generated HTTP framing evasions, checked against a small reference model of browser reading.

Hypothesis builds responses from a grammar of the tricks evasion tools use (Transfer-Encoding
and Content-Length combinations and orders, TE values with case, whitespace, commas and
``identity``, chunk-size lines with junk, extensions, leading zeros, ``0x``, whitespace, line
endings ``\\n``/``\\r\\n``/``\\r\\r\\n``/bare CR, folded and NUL-prefixed continuations, duplicate
headers, gzip/deflate/br layers) and checks that the parser + content assembler give the body
the reference reader gives.

The reference reader (`reference`) is written from RFC 9112 and Chromium's documented code
(``HttpUtil::LocateEndOfHeaders``, ``AssembleRawHeaders``, ``HttpResponseHeaders::IsChunkEncoded``,
``HttpUtil::ParseContentLength``), with the two places tapsift follows another reader on
purpose (docs/carriers.md, "HTTP framing: whose reading"):

- chunk-size lines are read as Firefox reads them (``strtoul(line, 16)``: a hex prefix, junk
  after it ignored; Chromium rejects the body), and chunked is decoded on HTTP/1.0 too;
- a line that starts with NUL continues the previous header (libhtp's folding);
- a Content-Length Chromium rejects (``68;``, ``+68``) but Firefox reads (its leading number)
  has two readings: Firefox's is the body, Chromium's (to the close) is reported as well.
"""

from __future__ import annotations

import gzip
import re
import zlib

import brotli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.model import ContentObject
from reassembly.content import ALTERNATE
from tests.reassembly.factories import http_objects

REQ = b"GET /file.bin HTTP/1.1\r\nHost: evader.example\r\n\r\n"

# -- the reference reader ----------------------------------------------------------------------


def _end_of_headers(buf: bytes) -> int | None:
    """Chromium's ``LocateEndOfHeaders``: LF, an optional CR, LF."""
    was_lf = False
    last = 0
    for i, c in enumerate(buf):
        if c == 10:
            if was_lf:
                return i + 1
            was_lf = True
        elif c != 13 or last != 10:
            was_lf = False
        last = c
    return None


def _fields(block: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Status line and header fields: lines split on runs of CR/LF, a line starting with
    SP/HT (or NUL) continues the previous one, NULs dropped, values trimmed (SP/HT)."""
    m = re.search(rb"[\r\n]", block)
    status, rest = (block[:m.start()], block[m.start():]) if m else (block, b"")
    lines: list[bytes] = []
    for line in re.split(rb"[\r\n]+", rest):
        if not line:
            continue
        if lines and line[:1] in (b" ", b"\t", b"\0"):
            lines[-1] += b" " + line.lstrip(b" \t\0")
        else:
            lines.append(line)
    fields = []
    for line in lines:
        name, sep, value = line.replace(b"\0", b"").partition(b":")
        if sep:
            fields.append((name.strip(b" \t").lower(), value.strip(b" \t")))
    return status, fields


def _strtoul16(s: bytes) -> int | None:
    s = s.lstrip(b" \t\n\v\f\r")
    if s[:1] == b"+":
        s = s[1:]
    if s[:2].lower() == b"0x" and s[2:3] and s[2:3] in b"0123456789abcdefABCDEF":
        s = s[2:]
    m = re.match(rb"[0-9a-fA-F]+", s)
    return int(m.group(), 16) if m else None


def _dechunk(data: bytes) -> bytes | None:
    """Firefox's ``nsHttpChunkedDecoder``: lines end at LF (one CR before it dropped), empty
    lines are skipped, the size is ``strtoul`` of the line cut at ``;``/NUL."""
    out, pos, last = [], 0, False
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            return None
        line = data[pos:nl]
        pos = nl + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if last:
            if not line:
                return b"".join(out)
            continue  # a trailer
        if not line:
            continue
        size = _strtoul16(line.split(b";", 1)[0].split(b"\0", 1)[0])
        if size is None:
            return None
        if size == 0:
            last = True
            continue
        out.append(data[pos:pos + size])
        pos += size


def _decode(body: bytes, codings: list[bytes]) -> bytes:
    """Content decoding, last-applied first; bytes after a compressed stream's end are dropped."""
    for c in reversed(codings):
        if c == b"br":
            body = brotli.decompress(body)
            continue
        d = zlib.decompressobj(31 if c == b"gzip" else 15)
        try:
            body = d.decompress(body) + d.flush()
        except zlib.error:
            if c == b"gzip":
                raise
            d = zlib.decompressobj(-15)  # deflate without the zlib wrapper (both browsers retry so)
            body = d.decompress(body) + d.flush()
    return body


def reference(raw: bytes) -> tuple[bytes, bytes | None]:
    """(the body, Chromium's reading of a Content-Length it rejects and Firefox reads, or None)."""
    end = _end_of_headers(raw)
    assert end is not None, "the grammar always ends the header section"
    _, fields = _fields(raw[:end])
    data = raw[end:]
    te = [e.strip(b" \t").lower() for n, v in fields if n == b"transfer-encoding" for e in v.split(b",")]
    cls = [v for n, v in fields if n == b"content-length"]
    ce = [e.strip(b" \t").lower() for n, v in fields if n == b"content-encoding" for e in v.split(b",")]
    ce = [c for c in ce if c not in (b"", b"identity")]
    other = None
    if b"chunked" in te:
        body = _dechunk(data)
        assert body is not None, "the grammar only makes chunk framing Firefox reads"
    elif cls and cls[0].isdigit():
        body = data[:int(cls[0])]
    elif cls and (m := re.match(rb"[ \t\n\v\f\r]*\+?([0-9]+)", cls[0])):
        body, other = data[:int(m.group(1))], data
    else:
        body = data
    if other is not None:
        try:
            other = _decode(other, ce)
        except brotli.error:  # bytes after a brotli stream: that reading fails
            other = None
    return _decode(body, ce), other


# -- the grammar -------------------------------------------------------------------------------

EOL = st.sampled_from([b"\r\n", b"\n", b"\r\r\n"])
FOLD = st.sampled_from([b" ", b"\t", b"\0", b"\0 ", b" \t"])


@st.composite
def header(draw: st.DrawFn, name: bytes, value: bytes) -> list[bytes]:
    """One header field as wire pieces (its line ending added by the caller): maybe with odd
    name case, maybe folded (the value on a continuation line, behind SP/HT/NUL)."""
    name = draw(st.sampled_from([name, name.lower(), name.upper()]))
    if draw(st.booleans()) and value:
        return [name + b":" + draw(st.sampled_from([b"", b" "])), draw(FOLD) + value]
    return [name + b":" + draw(st.sampled_from([b" ", b"", b"\t", b"  "])) + value
            + draw(st.sampled_from([b"", b" ", b"\t"]))]


@st.composite
def chunk_line(draw: st.DrawFn, size: int) -> bytes:
    """A chunk-size line (without its line ending) Firefox reads as ``size``."""
    digits = b"%x" % size
    digits = draw(st.sampled_from([digits, digits.upper()]))
    lead = draw(st.sampled_from([b"", b"0", b"000", b"0000000"]))
    prefix = draw(st.sampled_from([b"", b"", b" ", b"\t", b"0x", b"+"]))
    if prefix == b"0x":
        lead = b""
    junk = draw(st.sampled_from([b"", b"", b";ext=1", b" ;a=b", b"x", b"\0", b" ", b"\0junk", b"zz"]))
    return prefix + lead + digits + junk


@st.composite
def chunked_body(draw: st.DrawFn, data: bytes) -> bytes:
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=4))))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True) if b > a]
    out = []
    for p in pieces:
        out.append(draw(chunk_line(len(p))) + draw(EOL) + p + draw(st.sampled_from([b"\r\n", b"\n"])))
        out.append(draw(st.sampled_from([b"", b"", b"\r\n", b"\n"])))  # extra blank lines
    out.append(draw(chunk_line(0)) + draw(EOL))
    out.append(draw(st.sampled_from([b"", b"X-Trailer: 1\r\n"])) + draw(st.sampled_from([b"\r\n", b"\n"])))
    return b"".join(out)


def _encode(data: bytes, codings: list[bytes], raw_deflate: bool) -> bytes:
    for c in codings:
        if c == b"gzip":
            data = gzip.compress(data, mtime=0)
        elif c == b"deflate":
            co = zlib.compressobj(6, zlib.DEFLATED, -15 if raw_deflate else 15)
            data = co.compress(data) + co.flush()
        elif c == b"br":
            data = brotli.compress(data, quality=4)
    return data


@st.composite
def evasive_response(draw: st.DrawFn) -> bytes:
    content = draw(st.one_of(st.binary(min_size=1, max_size=400),
                             st.text(min_size=1, max_size=300).map(lambda s: s.encode())))
    codings = draw(st.lists(st.sampled_from([b"gzip", b"deflate", b"br"]), max_size=2))
    body = _encode(content, codings, draw(st.booleans()))
    headers: list[list[bytes]] = []
    if codings:
        names = [draw(st.sampled_from([c, c.upper(), c.title()])) for c in codings]
        if draw(st.booleans()):
            names.insert(draw(st.integers(0, len(names))), b"identity")
        if len(names) > 1 and draw(st.booleans()):  # one header per coding
            headers += [draw(header(b"Content-Encoding", n)) for n in names]
        else:
            sep = draw(st.sampled_from([b", ", b",", b" , ", b",\t"]))
            headers.append(draw(header(b"Content-Encoding", sep.join(names))))
    framing = draw(st.sampled_from(["chunked", "length", "close"]))
    version = b"HTTP/1.1"
    if framing == "chunked":
        te = draw(st.sampled_from([b"chunked", b"Chunked", b"CHUNKED", b"identity, chunked",
                                   b"chunked, identity", b"chunked,", b",chunked", b" chunked ", b"gzip, chunked"]))
        if draw(st.booleans()):  # the elements over two headers
            headers.append(draw(header(b"Transfer-Encoding", b"identity")))
        headers.append(draw(header(b"Transfer-Encoding", te)))
        version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]))
        if draw(st.booleans()):  # a Content-Length too: right, short or long
            n = max(0, len(body) + draw(st.sampled_from([0, -1, -len(body) // 2, 7])))
            headers.append(draw(header(b"Content-Length", b"%d" % n)))
        wire = draw(chunked_body(body))
    elif framing == "length":
        value = draw(st.sampled_from([b"%d", b" %d ", b"%d;", b"%d,", b"%dx", b"+%d", b"%d.9", b"%d junk"]))
        value = value % len(body) if b"%" in value else value
        headers.append(draw(header(b"Content-Length", value)))
        if draw(st.booleans()):
            headers.append(draw(header(b"Content-Length", value)))  # the same again
        wire = body + draw(st.sampled_from([b"", b"trailing junk the close ends"]))
    else:
        wire = body
    headers.append(draw(header(b"Content-Type", b"application/octet-stream")))
    ce_headers = [h for h in headers if h[0].lower().startswith(b"content-encoding")]
    headers = draw(st.permutations(headers))
    ce_slots = iter(ce_headers)  # the Content-Encoding headers keep their order (it is the decoding order)
    headers = [next(ce_slots) if h[0].lower().startswith(b"content-encoding") else h for h in headers]
    lines = [version + b" 200 OK"] + [piece for h in headers for piece in h]
    out = [lines[0] + draw(st.sampled_from([b"\r\n", b"\n"]))]
    for k, line in enumerate(lines[1:]):
        nxt_is_fold = k + 2 < len(lines) and lines[k + 2][:1] in (b" ", b"\t", b"\0")
        last = k + 2 == len(lines)
        # a bare CR may end a line that is not the last (the section must end on LF), but not
        # one before a NUL-continuation (a reader that drops NULs first sees SP)
        choices = [b"\r\n", b"\n", b"\r\r\n"] + ([b"\r"] if not last and not nxt_is_fold else [])
        out.append(line + draw(st.sampled_from(choices)))
    out.append(draw(st.sampled_from([b"\r\n", b"\n", b"\r\r\n\r\n"])))
    return b"".join(out) + wire


# -- the check ---------------------------------------------------------------------------------


def _objects(raw: bytes, cuts: list[int]) -> list[ContentObject]:
    return http_objects(REQ, raw, cuts=cuts)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(evasive_response(), st.lists(st.integers(1, 2000), max_size=6))
def test_evasive_framing_gives_the_browser_body(raw: bytes, cuts: list[int]) -> None:
    body, other = reference(raw)
    objs = _objects(raw, cuts)
    # bytes after a body that ended (junk before the close) are an HTTP/0.9-style leftover
    main = [o for o in objs if ALTERNATE not in o.anomalies and "http.response_without_request" not in o.anomalies]
    extra = [o.data for o in objs if ALTERNATE in o.anomalies]
    assert len(main) <= 1, [o.anomalies for o in main]
    assert (main[0].data if main else b"") == body, (raw, main[0].anomalies if main else None)
    assert all(not o.truncated for o in main), main[0].truncated
    if other is not None and other != body:
        assert other in extra, (raw, extra)


def test_reference_reader_reads_the_known_tricks() -> None:
    """The model itself, on the tricks from the issue (so a wrong model cannot pass silently)."""
    eicar = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
    gz = gzip.compress(eicar, mtime=0)
    cases = [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 34\r\n\r\n44\r\n" + eicar + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n44x\r\n" + eicar + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n44\0\r\n" + eicar + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\0chunked\r\n\r\n44\r\n" + eicar + b"\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding:\r\n\0 gzip\r\n\r\n" + gz,
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\n\r\r\n\r\n" % len(gz) + gz,
    ]
    for raw in cases:
        assert reference(raw) == (eicar, None), raw
        objs = _objects(raw, [])
        assert [o.data for o in objs if ALTERNATE not in o.anomalies] == [eicar], raw
    assert reference(b"HTTP/1.1 200 OK\r\nContent-Length: 68 136\r\n\r\n" + eicar * 2) == (eicar, eicar * 2)
