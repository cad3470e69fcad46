"""TcpReassembler: scripted packet sequences and reassembly properties."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.model import Direction, FlowState, Packet, StreamClosed, StreamData, StreamEvent, StreamGap
from reassembly.tcp import TcpReassembler

SEC = 1_000_000_000
T0 = 1_700_000_000 * SEC
CIP = bytes([10, 0, 0, 1])
SIP = bytes([10, 0, 0, 2])
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
M32 = 0xFFFFFFFF
TS, TC = Direction.TO_SERVER, Direction.TO_CLIENT


class Conn:
    """Builds the packets of one connection; sequence arguments are offsets from ISN + 1."""

    def __init__(self, isn_c: int = 1000, isn_s: int = 5000, cport: int = 40000, sport: int = 80,
                 cip: bytes = CIP, sip: bytes = SIP, t0: int = T0) -> None:
        self.isn = {TS: isn_c, TC: isn_s}
        self.ep = {TS: (cip, sip, cport, sport), TC: (sip, cip, sport, cport)}
        self.ts = t0

    def pkt(self, d: Direction, off: int, data: bytes = b"", flags: int = ACK | PSH,
            ack: int | None = None, ts: int | None = None, raw_seq: int | None = None) -> Packet:
        """A packet from side ``d`` whose first payload byte is at stream offset ``off``."""
        if ts is None:
            self.ts += 1000
            ts = self.ts
        src, dst, sp, dp = self.ep[d]
        seq = raw_seq if raw_seq is not None else (self.isn[d] + 1 + off) & M32
        a = 0 if ack is None else (self.isn[d.other] + 1 + ack) & M32
        if ack is None and flags & ACK:
            a = self.isn[d.other] + 1 & M32
        if not data and flags == ACK | PSH:
            flags = ACK
        return Packet(ts, "eth0", 0, src, dst, sp, dp, 6, seq, a, flags, 65535, data)

    def c(self, off: int, data: bytes = b"", **kw) -> Packet:
        return self.pkt(TS, off, data, **kw)

    def s(self, off: int, data: bytes = b"", **kw) -> Packet:
        return self.pkt(TC, off, data, **kw)

    def handshake(self) -> list[Packet]:
        return [self.c(-1, flags=SYN), self.s(-1, flags=SYN | ACK, ack=0), self.c(0, flags=ACK, ack=0)]


def run(r: TcpReassembler, pkts: list[Packet], flush: bool = False) -> list[StreamEvent]:
    out: list[StreamEvent] = []
    for p in pkts:
        out.extend(r.feed(p))
    if flush:
        out.extend(r.flush())
    return out


def data_of(events: list[StreamEvent], d: Direction, uid: str | None = None) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, StreamData) and e.direction == d
                    and (uid is None or e.flow.uid == uid))


def kinds(events: list[StreamEvent]) -> list[tuple]:
    out: list[tuple] = []
    for e in events:
        if isinstance(e, StreamData):
            out.append(("data", int(e.direction), e.offset, e.data))
        elif isinstance(e, StreamGap):
            out.append(("gap", int(e.direction), e.offset, e.length, e.reason))
        else:
            out.append(("close", int(e.direction), e.offset, e.reason))
    return out


def check_invariants(events: list[StreamEvent], closed: bool = True) -> None:
    """Per (flow, direction): contiguous offsets from 0, at most one close, nothing after it."""
    pos: dict[tuple[str, int], int] = defaultdict(int)
    done: set[tuple[str, int]] = set()
    for e in events:
        k = (e.flow.uid, int(e.direction))
        assert k not in done, f"event after close: {e}"
        assert e.offset == pos[k], f"offset {e.offset} != {pos[k]}: {e}"
        if isinstance(e, StreamData):
            assert isinstance(e.data, bytes) and e.data
            pos[k] += len(e.data)
        elif isinstance(e, StreamGap):
            assert e.length > 0
            pos[k] += e.length
        else:
            done.add(k)
    if closed:
        uids = {k[0] for k in pos} | {k[0] for k in done}
        assert done == {(u, d) for u in uids for d in (0, 1)}


# -- handshake and roles ------------------------------------------------------------------------

def test_handshake_data_fin() -> None:
    r = TcpReassembler()
    k = Conn()
    hs = k.handshake()
    ev = run(r, hs[:1])
    flow = r.flows.get(next(iter(r.flows)).key)
    assert flow is not None and flow.state == FlowState.SYN_SENT
    assert (flow.client_ip, flow.client_port, flow.server_port) == (CIP, 40000, 80)
    ev += run(r, hs[1:2])
    assert flow.state == FlowState.SYN_RECEIVED
    ev += run(r, hs[2:])
    assert flow.state == FlowState.ESTABLISHED and not flow.midstream
    ev += run(r, [k.c(0, b"GET / HTTP/1.1\r\n\r\n", ack=0), k.s(0, b"HTTP/1.1 200 OK\r\n", ack=18),
                  k.s(17, b"\r\nbody", ack=18), k.c(18, flags=ACK, ack=23)])
    assert flow.state == FlowState.ESTABLISHED
    ev += run(r, [k.s(23, flags=FIN | ACK, ack=18)])
    assert flow.state == FlowState.CLOSING
    ev += run(r, [k.c(18, flags=FIN | ACK, ack=24), k.s(24, flags=ACK, ack=19)])
    assert flow.state == FlowState.CLOSED
    assert kinds(ev) == [
        ("data", 0, 0, b"GET / HTTP/1.1\r\n\r\n"),
        ("data", 1, 0, b"HTTP/1.1 200 OK\r\n"),
        ("data", 1, 17, b"\r\nbody"),
        ("close", 1, 23, "fin"),
        ("close", 0, 18, "fin"),
    ]
    assert all(e.flow is flow for e in ev)
    assert flow.pkts == [5, 5] and flow.bytes == [18, 23]
    assert flow.first_ts_ns == T0 + 1000 and flow.last_ts_ns == T0 + 10000
    assert r.flush() == []  # nothing left open
    check_invariants(ev)


def test_synack_first_receiver_is_client() -> None:
    r = TcpReassembler()
    k = Conn(cport=80, sport=40000)  # "client" on the low port: ports must not decide
    ev = run(r, [k.s(-1, flags=SYN | ACK, ack=0), k.c(0, b"hi", ack=0), k.s(0, b"yo", ack=2)], flush=True)
    flow = ev[0].flow
    assert (flow.client_port, flow.server_port, flow.midstream) == (80, 40000, False)
    assert kinds(ev)[:2] == [("data", 0, 0, b"hi"), ("data", 1, 0, b"yo")]
    check_invariants(ev)


def test_syn_with_data_and_syn_retransmission() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [k.c(-1, b"early", flags=SYN), k.c(-1, b"early", flags=SYN),
                 k.s(-1, flags=SYN | ACK, ack=5), k.c(5, b"!", ack=0)], flush=True)
    assert kinds(ev)[:2] == [("data", 0, 0, b"early"), ("data", 0, 5, b"!")]
    assert r.counters["syn_retransmissions"] == 1
    check_invariants(ev)


def test_client_ack_gives_server_base_when_synack_missed() -> None:
    r = TcpReassembler()
    k = Conn()
    # SYN-ACK lost in capture; the server's first segment is lost as well: the client's ACK
    # tells where the server stream starts, so the hole is measured exactly.
    ev = run(r, [k.c(-1, flags=SYN), k.c(0, flags=ACK, ack=0), k.s(10, b"0123456789", ack=0),
                 k.c(0, flags=ACK, ack=20)])
    assert kinds(ev) == [("gap", 1, 0, 10, "acked"), ("data", 1, 10, b"0123456789")]


@pytest.mark.parametrize(("cport", "sport", "server_port"), [
    (51000, 80, 80), (80, 51000, 80), (1025, 8080, 8080), (40000, 30000, 30000)])
def test_midstream_pickup_guesses_server(cport: int, sport: int, server_port: int) -> None:
    r = TcpReassembler()
    k = Conn(isn_c=77777, isn_s=99999, cport=cport, sport=sport)
    ev = run(r, [k.c(500, b"abc", ack=900), k.s(900, b"xyz", ack=503), k.c(503, b"def", ack=903)],
             flush=True)
    flow = ev[0].flow
    assert flow.midstream and flow.server_port == server_port
    # offsets start at the first sequence number seen from each side
    by_sender = {(flow.client_port if e.direction == TS else flow.server_port, e.offset, e.data)
                 for e in ev if isinstance(e, StreamData)}
    assert by_sender == {(cport, 0, b"abc"), (sport, 0, b"xyz"), (cport, 3, b"def")}
    assert [e.reason for e in ev if isinstance(e, StreamClosed)] == ["eof", "eof"]
    check_invariants(ev)


def test_midstream_pure_ack_first() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [k.c(100, flags=ACK, ack=50), k.c(100, b"abc", ack=50), k.s(50, b"Z", ack=103)], flush=True)
    assert kinds(ev)[:2] == [("data", 0, 0, b"abc"), ("data", 1, 0, b"Z")]


# -- ordering, retransmission, overlaps -----------------------------------------------------------

def test_out_of_order_is_buffered_and_released_in_order() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [*k.handshake(), k.c(10, b"KLMNOPQRST"), k.c(5, b"FGHIJ")])
    assert ev == [] and r.memory_in_use > 15
    ev = run(r, [k.c(0, b"ABCDE")])
    assert kinds(ev) == [("data", 0, 0, b"ABCDE"), ("data", 0, 5, b"FGHIJ"), ("data", 0, 10, b"KLMNOPQRST")]
    assert r.memory_in_use == 0 and r.counters["ooo_segments"] == 2


def test_identical_retransmission_not_redelivered() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [*k.handshake(), k.c(0, b"hello "), k.c(6, b"world"), k.c(0, b"hello "),
                                 k.c(3, b"lo wor"), k.c(6, b"world!!")], flush=True)
    assert data_of(ev, TS) == b"hello world!!"
    flow = ev[0].flow
    assert flow.anomalies == [] and r.counters["retransmissions"] == 3
    check_invariants(ev)


def test_conflicting_retransmission_of_delivered_bytes() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [*k.handshake(), k.c(0, b"GET /good"), k.c(5, b"evil"), k.c(9, b" HTTP")], flush=True)
    assert data_of(ev, TS) == b"GET /good HTTP"
    assert "tcp.overlap_conflict" in ev[0].flow.anomalies
    assert r.counters["overlap_conflicts"] == 1


@pytest.mark.parametrize(("policy", "expected"), [("first", b"0123AAAAAA"), ("last", b"0123BBBBBB")])
def test_overlap_policy_on_buffered_bytes(policy: str, expected: bytes) -> None:
    r = TcpReassembler(overlap_policy=policy)  # type: ignore[arg-type]
    k = Conn()
    ev = run(r, [*k.handshake(), k.c(4, b"AAAAAA"), k.c(4, b"BBBBBB"), k.c(0, b"0123")], flush=True)
    assert data_of(ev, TS) == expected
    assert ev[0].flow.anomalies == ["tcp.overlap_conflict"]
    check_invariants(ev)


@pytest.mark.parametrize(("policy", "expected"), [
    ("first", b"0123xxxxAAAxBBBxxxxx"), ("last", b"0123xxxxxxxxxxxxxxxx")])
def test_overlap_spanning_several_buffered_segments(policy: str, expected: bytes) -> None:
    r = TcpReassembler(overlap_policy=policy)  # type: ignore[arg-type]
    k = Conn()
    ev = run(r, [*k.handshake(), k.c(8, b"AAA"), k.c(12, b"BBB"), k.c(6, b"x" * 14), k.c(0, b"0123xx")],
             flush=True)
    assert data_of(ev, TS) == expected
    assert "tcp.overlap_conflict" in ev[0].flow.anomalies
    check_invariants(ev)


def test_consistent_overlaps_spanning_segments_are_not_conflicts() -> None:
    data = bytes(range(40))
    for policy in ("first", "last"):
        r = TcpReassembler(overlap_policy=policy)  # type: ignore[arg-type]
        k = Conn()
        ev = run(r, [*k.handshake(), k.c(10, data[10:14]), k.c(20, data[20:24]), k.c(30, data[30:40]),
                                     k.c(8, data[8:33]), k.c(12, data[12:22]), k.c(0, data[0:10])],
                 flush=True)
        assert data_of(ev, TS) == data
        assert ev[0].flow.anomalies == []
        assert r.counters["overlaps"] >= 2
        check_invariants(ev)


def test_in_order_segment_overlapping_buffer_follows_policy() -> None:
    for policy, expected in (("first", b"abcdXYZ"), ("last", b"abcdefg")):
        r = TcpReassembler(overlap_policy=policy)  # type: ignore[arg-type]
        k = Conn()
        ev = run(r, [*k.handshake(), k.c(4, b"XYZ"), k.c(0, b"abcdefg")], flush=True)
        assert data_of(ev, TS) == expected


# -- gaps ------------------------------------------------------------------------------------------

def test_hole_acked_becomes_gap() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [*k.handshake(), k.s(0, b"0123456789", ack=0), k.s(20, b"KLMNO", ack=0)])
    assert kinds(ev) == [("data", 1, 0, b"0123456789")]
    ev = run(r, [k.c(0, flags=ACK, ack=15)])  # acks into the hole only
    assert kinds(ev) == [("gap", 1, 10, 5, "acked")]
    ev = run(r, [k.c(0, flags=ACK, ack=25)])
    assert kinds(ev) == [("gap", 1, 15, 5, "acked"), ("data", 1, 20, b"KLMNO")]
    ev = run(r, [k.s(25, b"tail", ack=0)])  # back on the fast path
    assert kinds(ev) == [("data", 1, 25, b"tail")]
    assert r.counters["gaps_acked"] == 2 and r.counters["gap_bytes"] == 10


def test_ack_seen_before_the_retransmission_within_the_delay_is_no_gap() -> None:
    """A split tap or merged mirror ports can show the peer's ACK a few ms before the
    retransmission that fills the hole: with a delay, the hole is filled, not declared lost."""
    r = TcpReassembler(ack_gap_delay_ns=200_000_000)
    k = Conn()
    ev = run(r, [*k.handshake(), k.s(0, b"0123456789", ack=0), k.s(20, b"KLMNO", ack=0)])
    t = k.ts
    ev = run(r, [k.c(0, flags=ACK, ack=25, ts=t + 1_000_000),  # the ACK, 1 ms early
                 k.s(10, b"abcdefghij", ack=0, ts=t + 3_000_000)])  # then the retransmission
    assert kinds(ev) == [("data", 1, 10, b"abcdefghij"), ("data", 1, 20, b"KLMNO")]
    assert r.counters["gaps"] == 0


def test_ack_past_a_hole_becomes_a_gap_after_the_delay() -> None:
    r = TcpReassembler(ack_gap_delay_ns=200_000_000)
    k = Conn()
    run(r, [*k.handshake(), k.s(0, b"0123456789", ack=0), k.s(20, b"KLMNO", ack=0)])
    t = k.ts
    assert kinds(run(r, [k.c(0, flags=ACK, ack=25, ts=t + 1_000_000)])) == []  # armed
    assert kinds(run(r, [k.c(0, flags=ACK, ack=25, ts=t + 100_000_000)])) == []  # still within the delay
    ev = run(r, [k.c(0, flags=ACK, ack=25, ts=t + 202_000_000)])
    assert kinds(ev) == [("gap", 1, 10, 10, "acked"), ("data", 1, 20, b"KLMNO")]


def test_ack_without_buffered_data_opens_no_gap() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [*k.handshake(), k.s(0, b"0123456789", ack=0), k.c(0, flags=ACK, ack=5000),
                                 k.s(10, b"more", ack=0)])
    assert kinds(ev) == [("data", 1, 0, b"0123456789"), ("data", 1, 10, b"more")]


def test_hole_before_fin_lost_at_close() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [*k.handshake(), k.c(0, b"abc"), k.c(6, b"ghi", flags=ACK | FIN)])
    assert kinds(ev) == [("data", 0, 0, b"abc")]  # FIN waits for the hole
    ev = run(r, [], flush=True)
    assert kinds(ev) == [("gap", 0, 3, 3, "lost"), ("data", 0, 6, b"ghi"), ("close", 0, 9, "eof"),
                         ("close", 1, 0, "eof")]


def test_hole_before_fin_filled_late() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [*k.handshake(), k.c(0, b"abc"), k.c(6, flags=ACK | FIN), k.c(3, b"def")])
    assert kinds(ev) == [("data", 0, 0, b"abc"), ("data", 0, 3, b"def"), ("close", 0, 6, "fin")]


def test_hole_before_fin_acked() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [*k.handshake(), k.s(0, b"abc", ack=0), k.s(8, flags=ACK | FIN, ack=0),
                                 k.c(0, flags=ACK, ack=9)])
    assert kinds(ev) == [("data", 1, 0, b"abc"), ("gap", 1, 3, 5, "acked"), ("close", 1, 8, "fin")]


def test_stream_memcap_gap() -> None:
    r = TcpReassembler(stream_memcap=400)
    k = Conn()
    ev = run(r, [*k.handshake(), k.c(0, b"a" * 10), k.c(100, b"b" * 100)])
    assert kinds(ev) == [("data", 0, 0, b"a" * 10)]
    ev = run(r, [k.c(300, b"c" * 100)])
    assert ev == []
    ev = run(r, [k.c(200, b"d" * 100)])  # buffer now 3 * (100 + overhead) > 300
    assert kinds(ev) == [("gap", 0, 10, 90, "memcap"), ("data", 0, 100, b"b" * 100),
                         ("data", 0, 200, b"d" * 100), ("data", 0, 300, b"c" * 100)]
    assert r.memory_in_use == 0 and r.counters["gaps_memcap"] == 1


def test_global_memcap_gap() -> None:
    r = TcpReassembler(memcap=1000)
    k1, k2 = Conn(cport=1111), Conn(cport=2222)
    ev = run(r, [*k1.handshake(), *k2.handshake(), k1.c(100, b"x" * 600)])
    assert ev == []
    ev = run(r, [k2.c(50, b"y" * 600)])
    assert kinds(ev) == [("gap", 0, 0, 50, "memcap"), ("data", 0, 50, b"y" * 600)]
    assert ev[0].flow.client_port == 2222
    assert r.memory_in_use == 600 + 64


def test_memcap_skips_repeatedly_until_under_cap() -> None:
    r = TcpReassembler(stream_memcap=250)
    k = Conn()
    ev = run(r, [*k.handshake(), k.c(10, b"a" * 50), k.c(100, b"b" * 50), k.c(200, b"c" * 100)])
    # 3 segments (392 charged) > 250: skip the first hole (still 278), then the second (164)
    assert kinds(ev) == [("gap", 0, 0, 10, "memcap"), ("data", 0, 10, b"a" * 50),
                         ("gap", 0, 60, 40, "memcap"), ("data", 0, 100, b"b" * 50)]
    assert r.memory_in_use == 164
    check_invariants(ev, closed=False)


# -- RST, FIN oddities ---------------------------------------------------------------------------

def test_rst_in_window_closes_both_with_lost_gaps() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [*k.handshake(), k.c(0, b"abc"), k.s(0, b"x", ack=3), k.s(5, b"yy", ack=3),
                                 k.c(3, flags=RST | ACK, ack=1)])
    assert kinds(ev) == [("data", 0, 0, b"abc"), ("data", 1, 0, b"x"), ("close", 0, 3, "rst"),
                         ("gap", 1, 1, 4, "lost"), ("data", 1, 5, b"yy"), ("close", 1, 7, "rst")]
    flow = ev[0].flow
    assert flow.state == FlowState.CLOSED
    # late packets on the closed flow are ignored, no second close
    assert run(r, [k.s(7, b"late", ack=3), k.c(3, flags=ACK, ack=7)]) == []
    assert run(r, [], flush=True) == []


def test_rst_out_of_window_ignored() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [*k.handshake(), k.c(0, b"abc"), k.s(0, flags=RST | ACK, ack=3, raw_seq=123456789),
                                 k.c(3, b"def"), k.s(0, b"ok", ack=6)])
    assert kinds(ev) == [("data", 0, 0, b"abc"), ("data", 0, 3, b"def"), ("data", 1, 0, b"ok")]
    assert ev[0].flow.anomalies == ["tcp.rst_out_of_window"]
    assert r.counters["rst_out_of_window"] == 1
    ev = run(r, [k.s(2, flags=RST)])
    assert [e.reason for e in ev] == ["rst", "rst"]


def test_rst_to_syn_closes_flow_without_data() -> None:
    r = TcpReassembler()
    k = Conn()
    rst = Packet(T0 + 5000, "", 0, SIP, CIP, 80, 40000, 6, 0, 1001, RST | ACK, 0, b"")
    ev = run(r, [k.c(-1, flags=SYN), rst])
    assert kinds(ev) == [("close", 0, 0, "rst"), ("close", 1, 0, "rst")]


def test_data_after_fin_is_dropped() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [*k.handshake(), k.c(0, b"abc", flags=ACK | FIN), k.c(3, b"more"), k.c(0, b"abcdef")])
    assert kinds(ev) == [("data", 0, 0, b"abc"), ("close", 0, 3, "fin")]
    assert "tcp.data_after_fin" in ev[0].flow.anomalies


def test_buffered_data_beyond_fin_is_truncated() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [*k.handshake(), k.c(5, b"56789"), k.c(3, flags=ACK | FIN), k.c(0, b"012")])
    assert kinds(ev) == [("data", 0, 0, b"012"), ("close", 0, 3, "fin")]
    assert r.memory_in_use == 0


def test_pure_flows_get_closes() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [k.c(10, flags=ACK, ack=10)], flush=True)
    assert kinds(ev) == [("close", 0, 0, "eof"), ("close", 1, 0, "eof")]
    ev = run(r, [k.c(10, flags=RST)])
    assert kinds(ev) == [("close", 0, 0, "rst"), ("close", 1, 0, "rst")]


# -- sequence numbers ----------------------------------------------------------------------------

def test_sequence_wraparound() -> None:
    r = TcpReassembler()
    k = Conn(isn_c=M32 - 5)
    pk = [*k.handshake(), k.c(0, b"ab"), k.c(8, b"89ABCDEF"), k.c(2, b"234567"), k.c(16, b"GH")]
    assert pk[3].seq == M32 - 4 and pk[4].seq == 3
    ev = run(r, pk, flush=True)
    assert data_of(ev, TS) == b"ab23456789ABCDEFGH"
    check_invariants(ev)


def test_offsets_beyond_4gib() -> None:
    r = TcpReassembler()
    k = Conn(isn_s=123)
    ev = run(r, [*k.handshake(), k.s(0, b"a", ack=0)])
    off = 1
    for _ in range(3):
        nxt = off + (1 << 31) - 10
        ev += run(r, [k.s(nxt, b"b", ack=0), k.c(0, flags=ACK, ack=nxt + 1)])
        off = nxt + 1
    ev += run(r, [k.s(off, b"end", ack=0)], flush=True)
    assert off > 1 << 32
    assert kinds(ev)[-3] == ("data", 1, off, b"end")
    check_invariants(ev)


# -- time, table, port reuse -------------------------------------------------------------------

def test_idle_timeout_on_packet_time() -> None:
    r = TcpReassembler(established_timeout_ns=300 * SEC, closed_timeout_ns=30 * SEC)
    est = Conn(cport=1000)
    ev = run(r, [*est.handshake(), est.c(0, b"abc"), est.c(5, b"zz")])
    last_est = est.ts
    half = Conn(cport=2000, t0=last_est)
    run(r, [half.c(-1, flags=SYN)])
    last = half.ts
    assert r.expire(last + 30 * SEC - 1) == []
    ev = r.expire(last + 30 * SEC)
    assert kinds(ev) == [("close", 0, 0, "timeout"), ("close", 1, 0, "timeout")]
    assert ev[0].flow.client_port == 2000 and ev[0].ts_ns == last + 30 * SEC
    assert r.expire(last_est + 300 * SEC - 1) == []
    ev = r.expire(last_est + 300 * SEC)
    assert kinds(ev) == [("gap", 0, 3, 2, "lost"), ("data", 0, 5, b"zz"), ("close", 0, 7, "timeout"),
                         ("close", 1, 0, "timeout")]
    assert len(r.flows) == 0 and r.memory_in_use == 0
    assert r.counters["flows_expired"] == 2


def test_closed_flow_leaves_quietly_after_short_timeout() -> None:
    r = TcpReassembler()
    k = Conn()
    run(r, [*k.handshake(), k.c(0, flags=ACK | FIN), k.s(0, flags=ACK | FIN, ack=1)])
    assert len(r.flows) == 1
    assert r.expire(k.ts + 30 * SEC) == [] and len(r.flows) == 0


def test_flow_table_eviction_emits_closes() -> None:
    r = TcpReassembler(max_flows=2)
    a, b, c = Conn(cport=1), Conn(cport=2), Conn(cport=3)
    ev = run(r, [*a.handshake(), a.c(0, b"A"), a.c(5, b"later"), *b.handshake(), b.c(0, b"B")])
    b.ts = a.ts = c.ts = T0 + 10 * SEC
    ev = run(r, [b.c(1, b"b"), c.handshake()[0]])
    assert kinds(ev) == [("data", 0, 1, b"b"), ("gap", 0, 1, 4, "lost"), ("data", 0, 5, b"later"),
                         ("close", 0, 10, "evicted"), ("close", 1, 0, "evicted")]
    assert ev[1].flow.client_port == 1 and r.counters["flows_evicted"] == 1
    ev = run(r, [a.c(10, b"again")])  # the evicted flow comes back as a new mid-stream flow
    # (making room for it evicts the half-open flow c first: shortest idle deadline)
    # (port 1 < port 80: the guess takes the old client for the server)
    assert kinds(ev) == [("close", 0, 0, "evicted"), ("close", 1, 0, "evicted"), ("data", 1, 0, b"again")]
    assert ev[0].flow.client_port == 3 and ev[2].flow.midstream


def test_closed_flows_are_evicted_first() -> None:
    r = TcpReassembler(max_flows=2)
    a, b, c = Conn(cport=1), Conn(cport=2), Conn(cport=3)
    run(r, [*a.handshake(), *b.handshake(), b.c(0, flags=RST)])
    ev = run(r, [a.c(0, b"x"), c.handshake()[0]])
    assert kinds(ev) == [("data", 0, 0, b"x")]  # b (closed) went silently
    assert r.counters["flows_evicted"] == 1 and len(r.flows) == 2


def test_port_reuse_new_flow() -> None:
    r = TcpReassembler()
    k = Conn(isn_c=1000)
    ev = run(r, [*k.handshake(), k.c(0, b"one", flags=ACK | FIN), k.s(0, flags=ACK | FIN, ack=4),
                                 k.c(4, flags=ACK, ack=1)])
    old = ev[0].flow
    # retransmitted old SYN: ignored
    assert run(r, [k.c(-1, flags=SYN)]) == []
    k2 = Conn(isn_c=777777, isn_s=888888, t0=k.ts)
    ev = run(r, [*k2.handshake(), k2.c(0, b"two")], flush=True)
    assert kinds(ev)[0] == ("data", 0, 0, b"two")
    new = ev[0].flow
    assert new is not old and new.uid != old.uid and new.key == old.key
    assert r.counters["flows_reused"] == 1


def test_port_reuse_closes_half_open_old_flow() -> None:
    r = TcpReassembler()
    k = Conn(isn_c=1000)
    run(r, [*k.handshake(), k.c(0, b"req", flags=ACK | FIN)])  # server never closes
    k2 = Conn(isn_c=5555, t0=k.ts)
    ev = run(r, [k2.c(-1, flags=SYN)])
    assert kinds(ev) == [("close", 1, 0, "reused")]
    assert r.flows.get(ev[0].flow.key) is not ev[0].flow


def test_syn_on_established_flow_is_ignored() -> None:
    r = TcpReassembler()
    k = Conn()
    ev = run(r, [*k.handshake(), k.c(0, b"abc"), k.c(99, flags=SYN, raw_seq=424242), k.c(3, b"def")])
    assert data_of(ev, TS) == b"abcdef"
    assert "tcp.syn_isn_changed" in ev[0].flow.anomalies


def test_non_tcp_and_memoryview_payloads() -> None:
    r = TcpReassembler()
    udp = Packet(T0, "", 0, CIP, SIP, 53000, 53, 17, 0, 0, 0, 0, b"dns")
    assert r.feed(udp) == []
    k = Conn()
    buf = memoryview(b"..hello world..")
    ev = run(r, [*k.handshake(), k.c(0, buf[2:7]), k.c(11, buf[13:15]), k.c(5, buf[7:13])])
    assert all(type(e.data) is bytes for e in ev if isinstance(e, StreamData))
    assert data_of(ev, TS) == b"hello world.."


def test_determinism() -> None:
    def scenario() -> list[tuple]:
        rng = random.Random(7)
        r = TcpReassembler(max_flows=5)
        pk: list[Packet] = []
        for i in range(12):
            k = Conn(isn_c=rng.getrandbits(32), isn_s=rng.getrandbits(32), cport=1000 + i, t0=T0 + i * SEC)
            segs = [k.c(j * 10, bytes([65 + j]) * 10) for j in range(6)]
            rng.shuffle(segs)
            pk += k.handshake() + segs
        ev = run(r, pk) + r.expire(T0 + 100 * SEC) + r.flush()
        check_invariants(ev)
        return [(e.flow.uid, e.flow.flow_id, *t) for e, t in zip(ev, kinds(ev))]

    assert scenario() == scenario()


# -- properties ----------------------------------------------------------------------------------

@st.composite
def segmented(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, int]], int, str]:
    data = draw(st.binary(min_size=1, max_size=3000))
    n = len(data)
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=30))) - {n})
    bounds = [0, *[c for c in cuts if 0 < c < n], n]
    segs = [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]
    # duplicates / overlapping retransmissions with the same bytes
    for _ in range(draw(st.integers(0, 8))):
        a = draw(st.integers(0, n - 1))
        b = draw(st.integers(a + 1, min(n, a + 1500)))
        segs.append((a, b))
    isn = draw(st.one_of(st.integers(0, M32), st.integers(M32 - 3000, M32)))
    policy = draw(st.sampled_from(["first", "last"]))
    return data, segs, isn, policy


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segmented(), st.randoms(use_true_random=False), st.booleans())
def test_property_any_segmentation_reassembles(case, rnd: random.Random, with_acks: bool) -> None:
    data, segs, isn, policy = case
    rnd.shuffle(segs)
    r = TcpReassembler(overlap_policy=policy)  # type: ignore[arg-type]
    k = Conn(isn_c=isn, isn_s=rnd.getrandbits(32))
    pk = k.handshake()
    have = 0
    got: set[int] = set()
    for a, b in segs:
        pk.append(k.c(a, data[a:b]))
        got.update(range(a, b))
        while have in got:
            have += 1
        if with_acks:  # a receiver never acks past what it has
            pk.append(k.s(0, flags=ACK, ack=have))
    pk.append(k.c(len(data), flags=ACK | FIN))
    ev = run(r, pk, flush=True)
    assert data_of(ev, TS) == data
    assert not any(isinstance(e, StreamGap) for e in ev)
    assert ev[0].flow.anomalies == []
    assert [e.reason for e in ev if isinstance(e, StreamClosed)] == ["fin", "eof"]
    assert r.memory_in_use == 0
    check_invariants(ev)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segmented(), st.randoms(use_true_random=False), st.integers(0, 2), st.booleans())
def test_property_drops_give_exact_gaps(case, rnd: random.Random, ack_mode: int, fin: bool) -> None:
    data, segs, isn, policy = case
    rnd.shuffle(segs)
    kept = [s for s in segs if rnd.random() < 0.7]
    r = TcpReassembler(overlap_policy=policy, stream_memcap=rnd.choice([1 << 20, 2000]))  # type: ignore[arg-type]
    k = Conn(isn_c=isn)
    pk = k.handshake()
    for a, b in kept:
        pk.append(k.c(a, data[a:b]))
        if ack_mode == 1:  # receiver got everything (the capture lost some): ack what was sent
            pk.append(k.s(0, flags=ACK, ack=b))
    if fin:
        pk.append(k.c(len(data), flags=ACK | FIN))
    if ack_mode == 2:
        pk.append(k.s(0, flags=ACK, ack=len(data) + (1 if fin else 0)))
    ev = run(r, pk, flush=True)
    check_invariants(ev)
    covered = 0
    for e in ev:
        if isinstance(e, StreamData) and e.direction == TS:
            assert data[e.offset:e.offset + len(e.data)] == e.data
            covered = e.offset + len(e.data)
        elif isinstance(e, StreamGap):
            assert e.reason in ("acked", "lost", "memcap")
            covered = e.offset + e.length
    end = max((b for _a, b in kept), default=0)
    closes = [e for e in ev if isinstance(e, StreamClosed) and e.direction == TS]
    if fin:
        assert closes[0].offset == len(data)
    else:
        assert closes[0].offset == end
    assert covered == closes[0].offset
    assert r.memory_in_use == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, M32), st.integers(0, M32), st.integers(0, 255),
                          st.binary(max_size=40), st.integers(0, 3)), max_size=40))
def test_property_garbage_never_raises(pkts: list) -> None:
    r = TcpReassembler(max_flows=3, stream_memcap=100, memcap=300)
    ev: list[StreamEvent] = []
    ts = T0
    for fwd, seq, ack, flags, payload, port in pkts:
        ts += SEC * 3
        src, dst = (CIP, SIP) if fwd else (SIP, CIP)
        sp, dp = (40000 + port, 80) if fwd else (80, 40000 + port)
        ev += r.feed(Packet(ts, "", 0, src, dst, sp, dp, 6, seq, ack, flags, 0, payload))
        if port == 3:
            ev += r.expire(ts)
    ev += r.flush()
    check_invariants(ev)
    assert r.memory_in_use == 0
