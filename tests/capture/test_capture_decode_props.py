"""Property tests: decoding is total on attacker-controlled bytes."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.model import Frame, LinkType, Packet
from capture.decode import Decoder, decode

LINKTYPES = [int(lt) for lt in LinkType] + [9999]

# structured prefixes that steer random bytes deep into the decoder
PREFIXES = [
    b"",
    b"\x00" * 12 + b"\x08\x00\x45\x00",
    b"\x00" * 12 + b"\x86\xdd\x60\x00\x00\x00",
    b"\x00" * 12 + b"\x81\x00\x00\x05\x88\x47",
    b"\x00" * 12 + b"\x88\x64\x11\x00\x00\x01\x00\x10\x00\x21",
    b"\x00" * 12 + b"\x08\x00\x45\x00\x00\x60\x00\x01\x00\x00\x40\x2f\x00\x00" + b"\x0a\0\0\1\x0a\0\0\2",
    b"\x00" * 12 + b"\x08\x00\x45\x00\x00\x60\x00\x01\x20\x00\x40\x11\x00\x00" + b"\x0a\0\0\1\x0a\0\0\2"
    + b"\x12\xb5\x12\xb5\x00\x4c\x00\x00\x08\x00\x00\x00",
    b"\x45\x00\x00\x40\x00\x01\x00\x00\x40\x04\x00\x00" + b"\x0a\0\0\1\x0a\0\0\2",
    b"\x60\x00\x00\x00\x00\x30\x2c\x40" + b"\0" * 32,
]


def check(p: Packet | None) -> None:
    if p is None:
        return
    assert isinstance(p.payload, bytes)
    assert "decode.internal_error" not in p.anomalies
    assert 0 <= p.proto <= 255
    assert 0 <= p.vlan <= 4095


@settings(max_examples=1500, deadline=None)
@given(lt=st.sampled_from(LINKTYPES), prefix=st.sampled_from(PREFIXES), data=st.binary(max_size=200),
       checksums=st.booleans())
def test_decode_never_raises(lt: int, prefix: bytes, data: bytes, checksums: bool) -> None:
    raw = prefix + data
    check(decode(Frame(0, raw, len(raw), lt, ""), checksums))


@st.composite
def fragment_frames(draw: st.DrawFn) -> list[Frame]:
    out = []
    ts = 0
    for _ in range(draw(st.integers(1, 25))):
        ts += draw(st.integers(0, 20_000_000_000))
        ident = draw(st.integers(0, 3))
        off = draw(st.integers(0, 0x1FFF))
        if draw(st.booleans()):
            off = draw(st.integers(0, 12))
        mf = draw(st.booleans())
        data = draw(st.binary(max_size=64))
        if draw(st.booleans()):
            data = data[: len(data) // 8 * 8]
        proto = draw(st.sampled_from([6, 17, 47, 4, 1]))
        tot = 20 + len(data)
        if draw(st.integers(0, 9)) == 0:
            tot = draw(st.integers(0, 0xFFFF))
        if draw(st.booleans()):
            hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, tot, ident, (0x2000 if mf else 0) | off, 64, proto, 0,
                              b"\x0a\0\0\x01", b"\x0a\0\0\x02")
        else:
            nh = proto if proto != 4 else 59
            hdr = struct.pack("!IHBB16s16s", 0x60000000, 8 + len(data), 44, 64, b"\1" * 16, b"\2" * 16)
            hdr += struct.pack("!BBHI", nh, 0, (off << 3) | int(mf), ident)
        out.append(Frame(ts, hdr + data, len(hdr) + len(data), 101, ""))
    return out


@settings(max_examples=400, deadline=None)
@given(frames=fragment_frames(), memcap=st.sampled_from([600, 4096, 1 << 20]))
def test_decoder_never_raises_on_fragment_sequences(frames: list[Frame], memcap: int) -> None:
    d = Decoder(defrag_timeout_ns=30e9, defrag_memcap=memcap, defrag_max_fragments=8)
    for f in frames:
        check(d.decode(f))
        assert d.defrag.held <= max(memcap, 0) or len(d.defrag) == 0
    d.flush()
    assert len(d.defrag) == 0 and d.defrag.held == 0
    assert "decode.internal_error" not in d.counters


@settings(max_examples=300, deadline=None)
@given(chunks=st.lists(st.tuples(st.integers(0, 50), st.integers(1, 50)), min_size=1, max_size=12),
       order=st.randoms(use_true_random=False))
def test_defrag_reassembles_any_cover(chunks: list[tuple[int, int]], order) -> None:
    """Fragments that together cover the datagram reassemble to the original (no conflicts)."""
    payload = bytes(range(256)) * 2
    n = len(payload) // 8  # 64 units of 8 bytes
    pieces = [(min(s, n - 1), min(s + ln, n)) for s, ln in chunks]
    pieces += [(0, n // 2), (n // 2, n)]  # make sure it is covered
    order.shuffle(pieces)
    d = Decoder()
    out = []
    for s, e in pieces:
        data = payload[s * 8:e * 8]
        more = 0x2000 if e < n else 0
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(data), 1, more | s, 64, 200, 0,
                          b"\x0a\0\0\x01", b"\x0a\0\0\x02")
        p = d.decode(Frame(0, hdr + data, 20 + len(data), 101, ""))
        if p is not None:
            out.append(p)
            break
    assert len(out) == 1
    assert out[0].proto == 200 and out[0].payload == payload
    assert "frag.overlap_conflict" not in out[0].anomalies
