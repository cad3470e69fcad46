"""Content decoding: each encoding, stacking, browser leniency, bombs bounded."""

from __future__ import annotations

import gzip
import tracemalloc
import zlib

import brotli
import zstandard

from appliance.model.http import HttpTransaction
from appliance.model.streams import Direction
from reassembly.bodies import body_decoder, decoder_for

DATA = b"The quick brown fox jumps over the lazy dog. " * 200


def raw_deflate(b: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(b) + c.flush()


def decode(encodings: list[bytes], body: bytes, piece: int = 0, **kw) -> tuple[bytes, object]:
    d = decoder_for(encodings, **kw)
    out = b"".join(d.feed(body[i:i + piece]) for i in range(0, len(body), piece)) if piece else d.feed(body)
    return out + d.finish(), d


def test_identity_is_pass_through():
    d = decoder_for([b"identity"])
    assert d.is_identity and d.feed(b"abc") == b"abc" and d.finish() == b""


def test_each_encoding():
    cases = {
        b"gzip": gzip.compress(DATA), b"x-gzip": gzip.compress(DATA), b"deflate": zlib.compress(DATA),
        b"br": brotli.compress(DATA), b"zstd": zstandard.ZstdCompressor().compress(DATA),
    }
    for enc, body in cases.items():
        for piece in (0, 1, 7):
            out, d = decode([enc], body, piece)
            assert out == DATA, (enc, piece)
            assert d.truncated is None


def test_raw_deflate_detected():
    out, d = decode([b"deflate"], raw_deflate(DATA), 3)
    assert out == DATA and "encoding.raw_deflate" in d.anomalies


def test_stacked_encodings_decode_in_reverse_order():
    body = raw_deflate(gzip.compress(DATA))  # gzip applied first, then deflate
    assert decode([b"gzip", b"deflate"], body)[0] == DATA
    tx = HttpTransaction("C1", 0, 0)
    tx.response_headers = [(b"Content-Encoding", b"gzip"), (b"Content-Encoding", b"deflate")]
    d = body_decoder(tx, Direction.TO_CLIENT)
    assert d.feed(body) + d.finish() == DATA and "encoding.multiple_headers" in d.anomalies


def test_junk_in_header_name_and_value_like_browsers():
    tx = HttpTransaction("C1", 0, 0)
    tx.response_headers = [(b"Content\x00-Encoding", b"\xa0gzip,")]
    d = body_decoder(tx, Direction.TO_CLIENT)
    assert d.feed(gzip.compress(DATA)) + d.finish() == DATA


def test_wrong_encoding_falls_back_to_identity():
    out, d = decode([b"deflate"], DATA)
    assert out == DATA and "encoding.deflate_not_applied" in d.anomalies and d.truncated is None
    out, d = decode([b"gzip", b"deflate"], gzip.compress(DATA))  # only gzip really applied
    assert out == DATA


def test_unknown_encoding_passes_through():
    out, d = decode([b"compress"], b"abc")
    assert out == b"abc" and "encoding.unknown" in d.anomalies


def test_gzip_members_concatenated_and_lenient_header():
    out, d = decode([b"gzip"], gzip.compress(DATA[:100]) + gzip.compress(DATA[100:]), 5)
    assert out == DATA and "gzip.multiple_members" in d.anomalies
    g = bytearray(gzip.compress(DATA))
    g[3] |= 0x20  # reserved flag
    g[-8] ^= 0xFF  # bad CRC
    out, d = decode([b"gzip"], bytes(g))
    assert out == DATA and {"gzip.reserved_flags", "gzip.crc_mismatch"} <= set(d.anomalies)
    named = bytearray(gzip.compress(DATA))
    named[3] = 0x08 | 0x10 | 0x02
    named[10:10] = b"name\x00comment\x00\x00\x00"
    assert decode([b"gzip"], bytes(named), 3)[0] == DATA


def test_truncated_gzip_keeps_what_was_decoded():
    body = gzip.compress(DATA)
    out, d = decode([b"gzip"], body[: len(body) // 2])
    assert DATA.startswith(out) and len(out) > 0 and "gzip.truncated" in d.anomalies
    out, d = decode([b"gzip"], body[:-8])
    assert out == DATA and "gzip.trailer_missing" in d.anomalies


def test_corrupt_mid_stream_flagged():
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + c.compress(DATA) + c.flush(zlib.Z_FULL_FLUSH)
    out, d = decode([b"gzip"], body + b"\xff" * 16, 64)
    assert out == DATA and d.truncated == "corrupt_encoding" and "encoding.gzip_corrupt" in d.anomalies


def _peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gzip_in_gzip_bomb_is_bounded():
    inner = gzip.compress(b"\x00" * (1 << 20), 9) * 1024  # 1 GiB of zeros in 1024 members, ~1 MiB
    bomb = gzip.compress(inner, 9)
    res = {}

    def go():
        res["out"], res["d"] = decode([b"gzip", b"gzip"], bomb, 4096, max_output=8 << 20)

    peak = _peak(go)
    assert res["d"].truncated in ("decompression_ratio", "decompression_limit")
    assert len(res["out"]) <= 8 << 20 and peak < 40 << 20


def test_ratio_limit():
    out, d = decode([b"gzip"], gzip.compress(b"a" * (32 << 20)), 0, max_output=1 << 30, max_ratio=100)
    assert d.truncated == "decompression_ratio" and len(out) < 32 << 20


def test_brotli_and_zstd_bombs_bounded():
    payload = b"\x00" * (128 << 20)
    for enc, body in ((b"br", brotli.compress(payload, quality=5)),
                      (b"zstd", zstandard.ZstdCompressor(level=3).compress(payload))):
        res = {}

        def go(enc=enc, body=body, res=res):
            res["out"], res["d"] = decode([enc], body, 0, max_output=4 << 20, max_ratio=10**9)

        peak = _peak(go)
        assert res["d"].truncated == "decompression_limit", enc
        assert len(res["out"]) == 4 << 20 and peak < 24 << 20, (enc, peak)


def test_gap_stops_compressed_stream():
    d = decoder_for([b"gzip"])
    d.feed(gzip.compress(DATA)[:20])
    d.gap()
    assert d.truncated == "encoded_gap" and d.feed(b"more") == b""
