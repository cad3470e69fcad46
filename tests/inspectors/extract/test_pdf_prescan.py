"""The PDF pre-scan: every bomb shape is measured and kept from PDFium; honest files reach it.

The bomb samples were checked against PDFium itself (each makes it inflate hundreds of MB or
abort at a 1.5 GiB address-space limit); here PDFium is replaced by a trap so a missed bomb
fails the test instead of taking the test process down.
"""

from __future__ import annotations

import base64
import random
import zlib

import pypdfium2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspectors.extract.bounded import inflate
from inspectors.extract.parts import Clock, Limits
from inspectors.extract.pdf import extract_pdf
from inspectors.extract.pdfscan import decode_chain, parse_object, prescan, streams
from tests.inspectors.extract import pdf_samples as P

MiB = P.MiB


@pytest.fixture
def pdfium_trap(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """PDFium must not open the file: any attempt is recorded and refused."""
    calls: list[int] = []

    def trap(data: object, *a: object, **kw: object) -> None:
        calls.append(len(data) if isinstance(data, bytes | bytearray) else -1)
        raise AssertionError("PDFium was given a bomb")

    monkeypatch.setattr(pypdfium2, "PdfDocument", trap)
    return calls


@pytest.mark.parametrize("name", sorted(P.BOMBS))
def test_every_bomb_is_flagged_and_never_reaches_pdfium(name: str, pdfium_trap: list[int]) -> None:
    data = P.BOMBS[name]()  # type: ignore[operator]
    part = extract_pdf(data, limits=Limits())
    assert pdfium_trap == []
    assert "pdf_ratio" in part.truncated and "pdf_bomb" in part.anomalies, (part.truncated, part.anomalies)
    assert "decode" in part.meta["pdf_bomb"] and "pdf_salvaged" in part.anomalies
    assert part.expanded <= Limits().max_expanded_bytes


@pytest.mark.parametrize("make", [P.honest, P.honest_lzw, P.honest_hex_flate, P.honest_a85_flate,
                                  P.honest_in_object_stream, P.honest_white_mask])
def test_honest_files_are_read_by_pdfium(make) -> None:  # type: ignore[no-untyped-def]
    part = extract_pdf(make(), limits=Limits())
    assert "pdf_bomb" not in part.anomalies and "pdf_salvaged" not in part.anomalies
    assert part.text == "Project Nightjar budget" and part.meta["pages"] == "1"


@pytest.mark.parametrize(("size", "ratio", "bomb"), [
    (32 * MiB, 1000, False),   # small enough for PDFium whatever the ratio
    (80 * MiB, 1000, True),    # beyond a child's 64 MiB at a bomb's ratio
    (100 * MiB, 30, False),    # big but ordinary compression
    (100 * MiB, 150, True),
    (300 * MiB, 30, True),     # beyond the task's 256 MiB at any ratio
])
def test_sizes_and_ratios(size: int, ratio: int, bomb: bool) -> None:
    data = P.with_content(P.spaces(size) if ratio == 1000 else P.sparse(size, ratio))
    scan = prescan(data, 100.0, Clock(30))
    assert scan.bomb is bomb, scan.reason
    if not bomb:
        assert scan.expanded == size


def test_the_prescan_is_not_fooled_by_a_dictionary_it_cannot_resolve() -> None:
    """A /Filter pointing at a missing object: the stream is decoded by what it looks like."""
    data = P.with_content(P.spaces(256 * MiB), b"/Filter 99 0 R")
    (info,) = [s for s in streams(data) if s.number == 4]
    assert info.filters is None
    assert prescan(data, 100.0, Clock(30)).bomb


def test_out_of_time_is_not_read_by_pdfium(pdfium_trap: list[int]) -> None:
    part = extract_pdf(P.honest(), limits=Limits(max_seconds=0))
    assert pdfium_trap == [] and "pdf_unscanned" in part.anomalies and "time" in part.truncated


def test_encrypted_files_are_read_and_said_unscanned() -> None:
    fpdf = pytest.importorskip("fpdf")
    doc = fpdf.FPDF()
    doc.add_page()
    doc.set_font("helvetica", size=12)
    doc.cell(text="Project Nightjar")
    doc.set_encryption(owner_password="owner", encryption_method="RC4")
    part = extract_pdf(bytes(doc.output()), limits=Limits())
    assert "Project Nightjar" in (part.text or "") and "pdf_encrypted_unscanned" in part.anomalies


# --- the pieces ---------------------------------------------------------------------------------


def test_inflate_counts_consumed_input_exactly() -> None:
    """The output cap leaves input in zlib's ``unconsumed_tail``: it is not counted, so the ratio
    of a bomb is its true ratio (it read as ~16:1 when whole 64 KiB chunks were counted)."""
    bomb = P.spaces(64 * MiB)
    r = inflate(bomb, MiB, wbits=15)
    assert not r.complete and r.reason == "limit" and len(r.data) == MiB
    whole = zlib.decompressobj(15)
    assert len(whole.decompress(bomb[:r.consumed])) >= MiB  # the bytes counted do give the output
    assert len(zlib.decompressobj(15).decompress(bomb[:r.consumed - 64])) < MiB
    assert len(r.data) / r.consumed > 500
    # a finished stream: trailing bytes are not consumed
    small = zlib.compress(b"x" * 5000)
    r = inflate(small + b"TRAILER", MiB, wbits=15)
    assert r.complete and r.consumed == len(small)


def _runlength_encode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        run = 1
        while i + run < len(data) and run < 128 and data[i + run] == data[i]:
            run += 1
        if run > 1:
            out += bytes([257 - run, data[i]])
            i += run
            continue
        lit = data[i:i + 128]
        out += bytes([len(lit) - 1]) + lit
        i += len(lit)
    return bytes(out) + b"\x80"


ENCODERS = {
    "FlateDecode": lambda b: zlib.compress(b),
    "ASCIIHexDecode": lambda b: b.hex().encode() + b">",
    "ASCII85Decode": lambda b: b"<~" + base64.a85encode(b, wrapcol=75) + b"~>",
    "RunLengthDecode": _runlength_encode,
    "LZWDecode": P.lzw_encode,
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=3000), st.builds(lambda n, b: b * n, st.integers(1, 40_000),
                                                          st.binary(min_size=1, max_size=3))),
       names=st.lists(st.sampled_from(sorted(ENCODERS)), min_size=1, max_size=3))
def test_filter_chains_round_trip(data: bytes, names: list[str]) -> None:
    """Each decoder, alone and chained, gives back exactly what its encoder took, whatever the
    piece boundaries (runs up to 120 KB cross the 16 KiB source pieces)."""
    enc = data
    for n in reversed(names):
        enc = ENCODERS[n](enc)
    dec = decode_chain(enc, [n.encode() for n in names], keep=1 << 24)
    assert dec.data == data and dec.size == len(data) and dec.whole


def test_lzw_agrees_with_pdfium_on_long_text() -> None:
    """Enough text to fill the LZW table several times (clear codes, every code width)."""
    words = [f"w{i * 7919 % 100_003}" for i in range(5000)]
    lines = [" ".join(words[i:i + 30]) for i in range(0, len(words), 30)]
    body = b"BT /F1 3 Tf 4 TL 10 780 Td " + b" ".join(b"(%s) Tj T*" % ln.encode() for ln in lines) + b" ET"
    data = P.with_content(P.lzw_encode(body), b"/Filter /LZWDecode")
    (info,) = [s for s in streams(data) if s.number == 4]
    assert decode_chain(data[info.start:info.end], info.filters, keep=1 << 20).data == body
    part = extract_pdf(data, limits=Limits())
    assert (part.text or "").split() == words


def test_parse_object_reads_what_pdfs_write() -> None:
    buf = b"<< /Filter [/Fl#61te /AHx] /DP << /EarlyChange 0 >> /Length 12 0 R /S (a (b) \\) c) /H <41> /N -1.5 >>"
    value, end = parse_object(buf, 0, len(buf))
    assert end == len(buf)
    assert value == {b"Filter": [b"Flate", b"AHx"], b"DP": {b"EarlyChange": 0}, b"Length": (12, 0),
                     b"S": b"a (b) \\) c", b"H": b"41", b"N": -1.5}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([b"<<", b">>", b"[", b"]", b"(", b")", b"/Filter", b"/Length", b"/Type", b"/ObjStm",
                                 b" 1 0 R", b" 2 0 obj ", b"stream\n", b"stream\r", b"endstream", b"x\x9c", b"\x00",
                                 b"/FlateDecode", b"/N 3", b"/First 2", b"%", b"\n", b"9"]) | st.binary(max_size=8),
                max_size=60).map(b"".join))
def test_prescan_never_raises(data: bytes) -> None:
    scan = prescan(data, 100.0, Clock(5))
    assert scan.streams >= 0


def test_random_noise_streams_are_not_bombs() -> None:
    rng = random.Random(1)
    data = P.page(extra={4: P.stream(zlib.compress(P.CONTENT))} | {
        10 + i: P.stream(rng.randbytes(50_000), b"/Filter /DCTDecode") for i in range(5)})
    scan = prescan(data, 100.0, Clock(30))
    assert not scan.bomb and scan.streams == 6
