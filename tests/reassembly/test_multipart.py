"""MultipartSplitter: form-data with filenames, byteranges, leniency, streaming."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reassembly.multipart import (
    MultipartSplitter,
    PartData,
    PartEnd,
    PartStart,
    boundary_from_content_type,
    parse_disposition,
)

B = b"----WebKitFormBoundary7MA4YWxkTrZu0gW"


def form(parts: list[tuple[bytes, bytes]], *, final: bool = True, nl: bytes = b"\r\n") -> bytes:
    out = b"preamble" + nl
    for headers, data in parts:
        out += b"--" + B + nl + headers.replace(b"\r\n", nl) + nl + data + nl
    return out + (b"--" + B + b"--" + nl + b"epilogue" if final else b"")


def split(body: bytes, piece: int = 0, boundary: bytes = B) -> tuple[list, MultipartSplitter]:
    sp = MultipartSplitter(boundary)
    evs = []
    if piece:
        for i in range(0, len(body), piece):
            evs += sp.feed(body[i:i + piece])
    else:
        evs += sp.feed(body)
    return evs + sp.finish(), sp


def parts_of(evs: list) -> list[tuple[PartStart, bytes, bool]]:
    out, cur, data = [], None, b""
    for e in evs:
        if isinstance(e, PartStart):
            cur, data = e, b""
        elif isinstance(e, PartData):
            data += e.data
        elif isinstance(e, PartEnd):
            out.append((cur, data, e.complete))
    return out


BODY = form([
    (b'Content-Disposition: form-data; name="field"\r\n', b"value"),
    (b'Content-Disposition: form-data; name="file"; filename="a b.txt"\r\nContent-Type: text/plain\r\n',
     b"line1\r\n--not-a-boundary\r\nline3"),
    (b"Content-Disposition: form-data; name=f2; filename=\"x.bin\"; "
     b"filename*=UTF-8''%E2%82%AC%20rates.pdf\r\n",
     bytes(range(256))),
])


def test_form_data_parts_names_filenames():
    for piece in (0, 1, 3, 17, 64):
        ps = parts_of(split(BODY, piece)[0])
        assert [p[0].name for p in ps] == ["field", "file", "f2"], piece
        assert [p[0].filename for p in ps] == [None, "a b.txt", "€ rates.pdf"]
        assert [p[1] for p in ps] == [b"value", b"line1\r\n--not-a-boundary\r\nline3", bytes(range(256))]
        assert all(p[2] for p in ps)
        assert ps[1][0].content_type == "text/plain"


def test_missing_final_boundary_flags_incomplete():
    ps = parts_of(split(form([(b"Content-Disposition: form-data; name=a\r\n", b"data")], final=False))[0])
    assert ps[-1][1].startswith(b"data") and ps[-1][2] is False


def test_bare_lf_multipart():
    ps = parts_of(split(form([(b"Content-Disposition: form-data; name=a\r\n", b"x\ny")], nl=b"\n"))[0])
    assert ps[0][1] == b"x\ny" and ps[0][0].name == "a"


def test_byteranges():
    b = b"THIS_STRING_SEPARATES"
    body = (b"--" + b + b"\r\nContent-Type: application/pdf\r\nContent-Range: bytes 0-4/10\r\n\r\nhello\r\n"
            b"--" + b + b"\r\nContent-Type: application/pdf\r\nContent-Range: bytes 5-9/10\r\n\r\nworld\r\n"
            b"--" + b + b"--\r\n")
    ps = parts_of(split(body, 4, b)[0])
    assert [p[1] for p in ps] == [b"hello", b"world"]
    assert (b"Content-Range", b"bytes 5-9/10") in ps[1][0].headers


def test_boundary_from_content_type():
    assert boundary_from_content_type(b'Multipart/Form-Data; BOUNDARY="a b;c"') == b"a b;c"
    assert boundary_from_content_type(b"multipart/byteranges; boundary=xyz; charset=x") == b"xyz"
    assert boundary_from_content_type(b"text/html; boundary=x") is None


def test_parse_disposition_rfc2231_continuations():
    v = b"attachment; filename*0*=UTF-8''%E2%82%AC; filename*1=\"uro.txt\""
    assert parse_disposition(v) == (None, "€uro.txt")
    assert parse_disposition(b'form-data; name="a\\"b"; filename="c.txt"') == ('a"b', "c.txt")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, len(BODY)), max_size=10))
def test_random_splits_same_parts(cuts):
    sp = MultipartSplitter(B)
    evs, prev = [], 0
    for c in [*sorted(set(cuts)), len(BODY)]:
        evs += sp.feed(BODY[prev:c])
        prev = c
    assert parts_of(evs + sp.finish()) == parts_of(split(BODY)[0])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.integers(1, 50))
def test_never_raises(data, piece):
    split(b"--" + B + b"\r\n" + data, piece)


# -- delimiters that do not spell the declared boundary ------------------------------------------

SHELL = b"<?php system($_GET['c']); ?>\n"
FIELD = b'Content-Disposition: form-data; name="f"; filename="s.php"\r\nContent-Type: text/plain\r\n\r\n'


@st.composite
def boundary_variant(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(declared boundary as the Content-Type carries it after parsing, boundary the body uses)
    for the mistakes clients make and servers forgive."""
    core = draw(st.text("abcdefXYZ0123456789-_'()+,./:=?", min_size=4, max_size=40)).encode()
    core = core.strip(b"-'") or b"b0und"
    kind = draw(st.sampled_from(["quoted", "space", "case", "dashes", "exact"]))
    if kind == "quoted":  # the client kept the quotes in the body, or the declaration kept them
        return draw(st.sampled_from([(b'"' + core + b'"', core), (core, b'"' + core + b'"')]))
    if kind == "space":
        return core + b" ", core
    if kind == "case":
        return core.upper(), core.lower() if core.lower() != core.upper() else core + b"x"[:0]
    if kind == "dashes":  # the declaration already carries the leading "--"
        return b"--" + core, core
    return core, core


@settings(max_examples=150, deadline=None)
@given(boundary_variant(), st.integers(0, 60), st.booleans())
def test_delimiter_variants_are_tolerated(bv: tuple[bytes, bytes], piece: int, preamble: bool) -> None:
    declared, used = bv
    body = (b"junk line\r\n--not it\r\n" if preamble else b"") + b"--" + used + b"\r\n" + FIELD + SHELL \
        + b"\r\n--" + used + b"--\r\n"
    evs, sp = split(body, piece, boundary=declared)
    ((start, data, complete),) = parts_of(evs)
    assert start.filename == "s.php" and data == SHELL and complete
    assert ("multipart.boundary_variant" in sp.anomalies) == (declared != used)


def test_a_delimiter_that_matches_nothing_finds_no_part() -> None:
    body = b"--AaB03x\r\n" + FIELD + SHELL + b"\r\n--AaB03x--\r\n"
    evs, sp = split(body, 7, boundary=b"something-else")
    assert parts_of(evs) == [] and sp.parts == 0 and "multipart.no_boundary" in sp.anomalies
