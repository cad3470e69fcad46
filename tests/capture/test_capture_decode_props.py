"""Property tests: decoding is total on attacker-controlled bytes."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.model import Frame, LinkType, Packet
from capture.decode import Decoder, decode

LINKTYPES = [int(lt) for lt in LinkType] + [239, 9999]  # 239: NFLOG

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
    # UDP on an unregistered port with a VXLAN / Geneve header: the content rules
    b"\x00" * 12 + b"\x08\x00\x45\x00\x00\x60\x00\x01\x00\x00\x40\x11\x00\x00" + b"\x0a\0\0\1\x0a\0\0\2"
    + b"\x9c\x40\x27\x0f\x00\x4c\x00\x00\x08\x00\x00\x00\x00\x00\x01\x00",
    b"\x00" * 12 + b"\x08\x00\x45\x00\x00\x60\x00\x01\x00\x00\x40\x11\x00\x00" + b"\x0a\0\0\1\x0a\0\0\2"
    + b"\x9c\x40\x27\x0f\x00\x4c\x00\x00\x02\x00\x65\x58\x00\x00\x01\x00",
    # NFLOG: header, then a payload TLV
    b"\x02\x00\x00\x05\x30\x00\x09\x00",
    b"\x0a\x00\x00\x05\x00\x30\x00\x09\x60",
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


# -- no tunnel where there is none ----------------------------------------------------------------

_TUNNEL_PORTS = {4789, 8472, 6081}
_ports = st.integers(1, 65535).filter(lambda p: p not in _TUNNEL_PORTS)


def _udp_frame(sport: int, dport: int, payload: bytes) -> Frame:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 1, 0, 64, 17, 0, b"\x0a\0\0\1", b"\x0a\0\0\2")
    raw = b"\x00" * 12 + b"\x08\x00" + ip + struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    return Frame(0, raw, len(raw), 1, "")


def _inner_valid(name: str, payload: bytes) -> bool:
    """An independent oracle (scapy parses the layers): the tunnel payload holds an IPv4 header
    whose checksum holds, or an IPv6 header whose payload length matches the bytes after it."""
    from scapy.all import IP, Dot1AD, Dot1Q, Ether, IPv6
    from scapy.utils import checksum

    if name == "vxlan":
        pkt = Ether(payload[8:])
    else:
        body = payload[8 + ((payload[0] & 0x3F) << 2):]
        proto = payload[2] << 8 | payload[3]
        pkt = Ether(body) if proto == 0x6558 else IP(body) if proto == 0x0800 else IPv6(body)
    while isinstance(pkt, Ether | Dot1Q | Dot1AD) and pkt.payload:
        pkt = pkt.payload
    raw = bytes(pkt)
    if isinstance(pkt, IP):
        hl = pkt.ihl * 4
        return hl >= 20 and len(raw) >= hl and hl <= pkt.len <= len(raw) and checksum(raw[:hl]) == 0
    if isinstance(pkt, IPv6):
        return pkt.plen > 0 and (40 + pkt.plen == len(raw) or 40 + pkt.plen < len(raw) <= 46)
    return False


def _dns(draw: st.DrawFn) -> bytes:
    qid, flags = draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF))
    counts = draw(st.tuples(*[st.integers(0, 3)] * 4))
    name = b"".join(bytes([len(w)]) + w for w in draw(st.lists(st.binary(min_size=1, max_size=12), max_size=4)))
    return struct.pack("!HHHHHH", qid, flags, *counts) + name + b"\0\0\x01\0\x01" + draw(st.binary(max_size=60))


def _quic(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):  # long header: form and fixed bits, version, connection ids
        first = 0xC0 | draw(st.integers(0, 0x3F))
        return bytes([first]) + draw(st.sampled_from([b"\0\0\0\1", b"\x6b\x33\x43\xcf"])) + draw(
            st.binary(min_size=20, max_size=120))
    return bytes([0x40 | draw(st.integers(0, 0x3F))]) + draw(st.binary(min_size=20, max_size=120))


@st.composite
def ordinary_udp(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["random", "dns", "quic", "vxlan-header", "geneve-header"]))
    if kind == "dns":
        return _dns(draw)
    if kind == "quic":
        return _quic(draw)
    body = draw(st.binary(max_size=120))
    if kind == "vxlan-header":  # a valid-looking header, random bytes after it
        return struct.pack("!II", 0x08000000, draw(st.integers(0, 0xFFFFFF)) << 8) + body
    if kind == "geneve-header":
        return struct.pack("!BBHI", 0, 0, draw(st.sampled_from([0x6558, 0x0800, 0x86DD])), 0) + body
    return body


@settings(max_examples=2000, deadline=None)
@given(sport=_ports, dport=_ports, payload=ordinary_udp())
def test_ordinary_udp_is_not_taken_for_a_tunnel(sport: int, dport: int, payload: bytes) -> None:
    """On ports other than VXLAN's and Geneve's, DNS, QUIC and random bytes (even behind a valid
    VXLAN or Geneve header) stay UDP, unless they really hold a valid inner IP header."""
    p = decode(_udp_frame(sport, dport, payload))
    check(p)
    if p.tunnel:
        assert p.tunnel in ("vxlan", "geneve") and _inner_valid(p.tunnel, payload), payload
    else:
        assert (p.proto, p.payload) == (17, payload)


@st.composite
def real_tunnels(draw: st.DrawFn) -> tuple[str, bytes]:
    """A VXLAN or Geneve payload around a real inner packet (what the content rule must find)."""
    from scapy.all import IP, TCP, UDP, IPv6

    data = draw(st.binary(max_size=80))
    l4 = TCP(sport=draw(st.integers(1, 65535)), dport=80) if draw(st.booleans()) else UDP(sport=1, dport=2)
    ip = IP(src="192.0.2.1", dst="192.0.2.2") if draw(st.booleans()) else IPv6(src="2001:db8::1", dst="2001:db8::2")
    pkt = bytes(ip / l4 / data)
    et = 0x0800 if pkt[0] >> 4 == 4 else 0x86DD
    if draw(st.booleans()):
        tags = b"".join(struct.pack("!HH", 0x8100, v) for v in draw(st.lists(st.integers(0, 4095), max_size=2)))
        frame = b"\x02" * 6 + b"\x04" * 6 + tags + et.to_bytes(2, "big") + pkt
        return "vxlan", struct.pack("!II", 0x08000000, 7 << 8) + frame
    return "geneve", struct.pack("!BBHI", 0, 0, et, 9 << 8) + pkt


@settings(max_examples=300, deadline=None)
@given(sport=_ports, dport=_ports, t=real_tunnels())
def test_real_tunnels_are_found_on_any_port(sport: int, dport: int, t: tuple[str, bytes]) -> None:
    name, payload = t
    p = decode(_udp_frame(sport, dport, payload))
    assert p.tunnel == name and p.proto in (6, 17) and "decode.internal_error" not in p.anomalies
