"""reassembly.mime: transfer decoders, header helpers, and the line-driven MIME parser."""

from __future__ import annotations

import base64
import hashlib
import itertools
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from reassembly.mime import (
    Base64Decoder,
    MimeParser,
    QuotedPrintableDecoder,
    b64_lenient,
    decode_words,
    parse_params,
)
from reassembly.objects import ObjectFactory


def _lines(raw: bytes):
    for line in raw.splitlines(keepends=True):
        if line.endswith(b"\r\n"):
            yield line[:-2], b"\r\n"
        elif line.endswith(b"\n"):
            yield line[:-1], b"\n"
        else:
            yield line, b""


def parse(raw: bytes, **kw):
    fac = ObjectFactory(keep_bytes=1 << 20)
    p = MimeParser(lambda: fac.builder(), **kw)
    done = []
    for content, eol in _lines(raw):
        done += p.feed_line(content, eol)
    done += p.finish()
    return p, [(info, b.data(), b) for b, info in done]


# -- base64 / quoted-printable


def test_base64_lenient_junk_and_missing_padding():
    data = os.urandom(1000)
    enc = base64.b64encode(data)
    assert b64_lenient(enc.rstrip(b"=")) == data
    junky = b"!!".join(enc[i : i + 7] for i in range(0, len(enc), 7))
    assert b64_lenient(junky) == data
    assert b64_lenient(b"aGVsbG8") == b"hello"
    assert b64_lenient(b"aGVsbG8=d29ybGQ=") == b"helloworld"  # concatenated encodings
    assert b64_lenient(b"a") == b""


@given(st.binary(max_size=300), st.lists(st.integers(0, 420), max_size=8))
def test_base64_streaming_any_split(data, cuts):
    enc = base64.encodebytes(data)
    d = Base64Decoder()
    out, prev = [], 0
    for c in [*sorted(set(cuts)), len(enc)]:
        out.append(d.feed(enc[prev:c]))
        prev = max(prev, c)
    out.append(d.finish())
    assert b"".join(out) == data


def test_quoted_printable_soft_breaks_and_escapes():
    d = QuotedPrintableDecoder()
    out = d.line(b"caf=C3=A9 au lait=", b"\r\n") + d.line(b"  suite   ", b"\r\n")
    out += d.line(b"=3D end", b"\r\n") + d.finish()
    assert out == "café au lait  suite\r\n= end\r\n".encode()
    d = QuotedPrintableDecoder()
    assert d.line(b"bad =ZZ and =4", b"") + d.line(b"1x", b"\n") + d.finish() == b"bad =ZZ and Ax\n"


# -- header helpers


def test_decode_words():
    assert decode_words("=?UTF-8?B?Q2Fmw6k=?= =?UTF-8?Q?_au_lait?=") == "Café au lait"
    # a multi-byte character split over two adjacent words
    assert decode_words("=?utf-8?b?4oI=?= =?utf-8?b?rA==?= rest") == "€ rest"
    assert decode_words("Re: =?iso-8859-1?q?caf=E9?=") == "Re: café"
    assert decode_words("=?x-unknown?Q?abc?=") == "abc"
    assert decode_words("plain =?broken") == "plain =?broken"


def test_parse_params_rfc2231_and_quotes():
    main, p = parse_params('attachment; filename="a;b \\"c\\".pdf"; size=3')
    assert main == "attachment" and p["filename"] == 'a;b "c".pdf' and p["size"] == "3"
    _, p = parse_params("attachment; filename*=UTF-8''%E2%82%AC%20rates.pdf")
    assert p["filename"] == "€ rates.pdf"
    _, p = parse_params(
        "attachment; filename*0*=iso-8859-1'fr'caf%E9-; filename*1=long-name; filename*2*=%2Etxt"
    )
    assert p["filename"] == "café-long-name.txt"
    _, p = parse_params('application/pdf; name="=?UTF-8?B?0YTQsNC50LsucGRm?="')
    assert p["name"] == "файл.pdf"


# -- the parser


MSG = (
    b"From: a@example.org\r\n"
    b"Subject: =?UTF-8?Q?h=C3=A9llo?=\r\n"
    b"Content-Type: multipart/mixed;\r\n boundary=\"outer\"\r\n"
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b"Content-Type: multipart/alternative; boundary=inner\r\n"
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"plain text\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>html</p>\r\n"
    b"\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    + base64.encodebytes(b"\x00\x01binary\xff" * 50).replace(b"\n", b"\r\n")
    + b"--outer--\r\n"
    b"epilogue\r\n"
)


def test_nested_multipart_and_boundary_crlf_convention():
    p, parts = parse(MSG)
    assert [(i.content_type, i.path) for i, _, _ in parts] == [
        ("text/plain", "1.1.1"),
        ("text/html", "1.1.2"),
        ("application/octet-stream", "1.2"),
    ]
    # RFC 2046: the CRLF before a delimiter belongs to the delimiter
    assert parts[0][1] == b"plain text"
    assert parts[1][1] == b"<p>html</p>\r\n"
    assert parts[2][1] == b"\x00\x01binary\xff" * 50 and parts[2][0].filename == "data.bin"
    assert p.header("subject") == "héllo"


def test_single_part_keeps_final_line_ending():
    _, parts = parse(b"Subject: x\r\n\r\nline one\r\nline two\r\n")
    assert parts[0][1] == b"line one\r\nline two\r\n"


def test_rfc822_recursed_and_encoded_rfc822_peek():
    inner = b"Subject: inner\r\nContent-Type: text/plain; name=in.txt\r\n\r\ninner body\r\n"
    raw = (b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n"
           + inner + b"--b--\r\n")
    _, parts = parse(raw)
    assert [(i.filename, d, i.in_rfc822) for i, d, _ in parts] == [("in.txt", b"inner body", True)]
    # message/rfc822 declared base64 but holding a plain message (evasion): parsed into
    raw2 = raw.replace(b"message/rfc822\r\n", b"message/rfc822\r\nContent-Transfer-Encoding: base64\r\n")
    p, parts = parse(raw2)
    assert [d for _, d, _ in parts] == [b"inner body"] and "mime.rfc822_encoding_ignored" in p.anomalies
    # really base64-encoded: one leaf, decoded
    raw3 = raw2.replace(inner, base64.encodebytes(inner).replace(b"\n", b"\r\n"))
    _, parts = parse(raw3)
    assert [(i.content_type, d) for i, d, _ in parts] == [("message/rfc822", inner)]


def test_digest_default_type_and_part_cap():
    raw = b"Content-Type: multipart/digest; boundary=d\r\n\r\n" + b"".join(
        b"--d\r\n\r\nSubject: m%d\r\n\r\nbody %d\r\n" % (i, i) for i in range(5)
    ) + b"--d--\r\n"
    p, parts = parse(raw, max_parts=3)
    assert [d for _, d, _ in parts] == [b"body 0", b"body 1", b"body 2"]
    assert "mime.too_many_parts" in p.anomalies


def test_endless_headers_are_capped():
    fac = ObjectFactory(keep_bytes=0)
    p = MimeParser(lambda: fac.builder())
    for i in range(100_000):
        p.feed_line(b"X-H%d: %s" % (i, b"v" * 50), b"\r\n")
    assert len(p.top_headers) <= 256 and "mime.header_overflow" in p.anomalies


def test_gap_in_base64_part_realigns():
    data = os.urandom(3000)
    enc = base64.encodebytes(data)
    lines = enc.splitlines()
    fac = ObjectFactory(keep_bytes=1 << 20)
    p = MimeParser(lambda: fac.builder())
    p.feed_line(b"Content-Transfer-Encoding: base64", b"\r\n")
    p.feed_line(b"", b"\r\n")
    for ln in lines[:5]:
        p.feed_line(ln, b"\r\n")
    p.gap(100)
    p.feed_line(lines[6][30:], b"\r\n")  # the cut line is dropped
    for ln in lines[7:]:
        p.feed_line(ln, b"\r\n")
    [(b, _)] = p.finish()
    assert b.gaps and b.missing == 75
    assert b.data() == data[: 5 * 57] + data[7 * 57 :]
    assert hashlib.md5(b.data()).hexdigest() == b.digests()[0]


@settings(max_examples=200)
@given(st.lists(st.binary(max_size=80), max_size=40))
def test_parser_never_raises(lines):
    fac = ObjectFactory(keep_bytes=0)
    p = MimeParser(lambda: fac.builder())
    for i, ln in enumerate(lines):
        p.feed_line(ln, b"\r\n" if i % 3 else b"")
        if i % 7 == 6:
            p.gap(i)
    p.finish()


MIME_LINES = st.sampled_from([
    b"Content-Type: multipart/mixed; boundary=a", b"Content-Type: multipart/alternative; boundary=b",
    b"Content-Type: message/rfc822", b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable", b"", b"--a", b"--a--", b"--b", b"--b--", b"--ab",
    b"QUJDRA==", b"QUJ", b"text =41 line=", b".dot", b"Subject: x",
])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(MIME_LINES, st.sampled_from([b"\r\n", b"\n"])), max_size=40),
       st.lists(st.integers(0, 40), max_size=6))
def test_block_and_line_paths_agree(lines, cuts):
    fac = ObjectFactory(keep_bytes=1 << 20)
    a = MimeParser(lambda: fac.builder())
    got_a = [x for c, e in lines for x in a.feed_line(c, e)] + a.finish()
    b = MimeParser(lambda: fac.builder())
    got_b = []
    bounds = [0, *sorted(set(cuts)), len(lines)]
    for lo, hi in itertools.pairwise(bounds):
        if hi > lo:
            got_b += b.feed_block(b"".join(c + e for c, e in lines[lo:hi]))
    got_b += b.finish()
    assert [(i.path, x.data()) for x, i in got_a] == [(i.path, x.data()) for x, i in got_b]
