"""capture.Decoder: IPv4/IPv6 fragment reassembly (first-wins overlaps, timeouts, memcap)."""

from __future__ import annotations

import random

from scapy.all import IP, TCP, UDP, IPv6, IPv6ExtHdrFragment, fragment, fragment6

from capture.decode import Decoder
from tests.capture.capture_helpers import eth, frame

A, B = "192.0.2.1", "198.51.100.7"
PAYLOAD = bytes(range(256)) * 12  # 3072 bytes


def frags(payload: bytes = PAYLOAD, size: int = 800, ident: int = 7, proto=UDP) -> list:
    l4 = UDP(sport=1111, dport=2222) if proto is UDP else TCP(sport=1111, dport=80, flags="PA")
    return fragment(IP(src=A, dst=B, id=ident) / l4 / payload, fragsize=size)


def feed(d: Decoder, pkts: list, ts0: int = 1_000_000_000, step: int = 1000) -> list:
    out = []
    for i, p in enumerate(pkts):
        r = d.decode(frame(eth() / p, ts=ts0 + i * step))
        if r is not None:
            out.append(r)
    return out


def test_in_order() -> None:
    d = Decoder()
    fs = frags()
    assert len(fs) == 4
    out = feed(d, fs)
    assert len(out) == 1
    p = out[0]
    assert (p.proto, p.sport, p.dport, p.payload, p.anomalies) == (17, 1111, 2222, PAYLOAD, ())
    assert p.ts_ns == 1_000_000_000 + 3 * 1000
    assert d.counters == {} and len(d.defrag) == 0 and d.defrag.held == 0


def test_out_of_order_and_tcp_checksum_over_reassembly() -> None:
    fs = frags(proto=TCP)
    for seed in range(5):
        order = fs[:]
        random.Random(seed).shuffle(order)
        d = Decoder()
        out = feed(d, order)
        assert len(out) == 1 and out[0].payload == PAYLOAD and out[0].anomalies == ()


def test_duplicate_and_overlap_first_wins() -> None:
    fs = frags()
    d = Decoder()
    # a duplicate of fragment 1 with different bytes: first copy wins
    raw = bytearray(bytes(fs[1]))
    raw[20:28] = b"EVILEVIL"
    evil = IP(bytes(raw))
    out = feed(d, [fs[0], fs[1], evil, fs[2], fs[3]])
    assert len(out) == 1
    assert out[0].payload == PAYLOAD  # first wins
    assert set(out[0].anomalies) == {"frag.overlap", "frag.overlap_conflict"}
    assert d.counters == {"frag.overlap": 1, "frag.overlap_conflict": 1}


def test_partial_overlap_fills_holes_only() -> None:
    datagram = bytes(IP(src=A, dst=B, id=9) / UDP(sport=1, dport=2) / PAYLOAD)
    body = datagram[20:]

    def piece(start: int, end: int, more: bool, fill: bytes | None = None) -> IP:
        data = body[start:end] if fill is None else fill * (end - start)
        return IP(src=A, dst=B, id=9, proto=17, frag=start // 8, flags="MF" if more else 0) / data

    d = Decoder()
    out = feed(d, [piece(0, 1600, True), piece(800, 2400, True, b"Z"), piece(2400, len(body), False)])
    assert len(out) == 1
    assert out[0].payload[:1592] == PAYLOAD[:1592]  # bytes 8..1600 kept from the first fragment
    assert out[0].payload[1592:2392] == b"Z" * 800  # the hole 1600..2400 filled by the overlapper
    assert "frag.overlap_conflict" in out[0].anomalies


def test_timeout_on_packet_time() -> None:
    fs = frags(ident=1)
    d = Decoder(defrag_timeout_ns=1e9)
    assert feed(d, fs[:2], ts0=0) == []
    # another datagram 2 s later expires the first one
    assert feed(d, frags(ident=2)[:1], ts0=2_000_000_000) == []
    assert d.counters == {"frag.timeout": 1}
    # the rest of datagram 1 arrives too late: never completes
    assert feed(d, fs[2:], ts0=2_100_000_000) == []
    d.expire(10**12)
    assert d.counters["frag.timeout"] == 3 and len(d.defrag) == 0 and d.defrag.held == 0


def test_memcap_evicts_oldest() -> None:
    d = Decoder(defrag_memcap=4500)
    feed(d, frags(ident=1)[:2])  # ~2 KB held (payload + overhead)
    feed(d, frags(ident=2)[:2])  # ~4 KB
    out = feed(d, frags(ident=3))  # exceeds the cap: datagrams 1 then 2 are dropped
    assert len(out) == 1 and out[0].payload == PAYLOAD
    assert d.counters == {"frag.memcap": 2}
    assert len(d.defrag) == 0 and d.defrag.held == 0


def test_too_big_and_bad_length() -> None:
    d = Decoder()
    big = IP(src=A, dst=B, id=5, proto=17, frag=8190, flags=0) / (b"x" * 100)
    assert d.decode(frame(eth() / big)) is None
    assert d.counters == {"frag.too_big": 1}
    odd = IP(src=A, dst=B, id=6, proto=17, frag=0, flags="MF") / (b"x" * 13)
    assert d.decode(frame(eth() / odd)) is None
    assert d.counters["frag.bad_length"] == 1


def test_fragments_with_bad_checksum_are_reported_once() -> None:
    fs = frags()
    fs[0].chksum = 0x0BAD
    d = Decoder()
    out = feed(d, fs)
    assert out[0].anomalies == ("ipv4.bad_checksum",)
    assert d.counters == {"ipv4.bad_checksum": 1}


def test_flush_counts_incomplete() -> None:
    d = Decoder()
    feed(d, frags()[:3])
    d.flush()
    assert d.counters == {"frag.incomplete": 1} and d.defrag.held == 0


def test_ipv6_fragments() -> None:
    pkt = IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrFragment(id=77) / UDP(sport=5, dport=6)
    pkt = pkt / PAYLOAD
    fs = fragment6(pkt, 1000)
    assert len(fs) > 2
    d = Decoder()
    out = feed(d, list(reversed(fs)))
    assert len(out) == 1
    assert (out[0].proto, out[0].dport, out[0].payload, out[0].anomalies) == (17, 6, PAYLOAD, ())


def test_fragmented_tunnel_carrier() -> None:
    """An ERSPAN/GRE carrier fragmented on the mirror path is reassembled, then opened."""
    from scapy.all import GRE

    inner = eth() / IP(src=A, dst=B) / TCP(sport=1, dport=80, flags="PA") / PAYLOAD[:1400]
    carrier = IP(src="10.0.0.1", dst="10.0.0.2", id=3) / GRE(proto=0x6558) / inner
    d = Decoder()
    out = feed(d, fragment(carrier, fragsize=600))
    assert len(out) == 1
    p = out[0]
    assert (p.proto, p.dport, p.tunnel, p.payload) == (6, 80, "gre", PAYLOAD[:1400])
