"""SctpReassembler: generated associations (tools.synth) decoded by capture.decode, then
reassembled into per-stream events; reordering, duplicates, tap losses, I-DATA, IPv6, ends."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.model import Frame, StreamClosed, StreamData, StreamEvent, StreamGap
from capture.decode import decode
from reassembly.sctp import SctpReassembler
from tools import synth as S


def events_of(trace: S.Trace, r: SctpReassembler | None = None, flush: bool = True) -> list[StreamEvent]:
    r = SctpReassembler() if r is None else r
    out: list[StreamEvent] = []
    for ts, frame in trace.frames():
        pkt = decode(Frame(ts, frame, len(frame), trace.link.linktype))
        assert pkt.proto == 132, pkt.anomalies
        out += r.feed(pkt)
    return out + (r.flush() if flush else [])


def streams(events: list[StreamEvent]) -> dict[tuple[int, int], bytes]:
    """(stream id, direction) → bytes, checking offsets are contiguous (gaps count as zeros)."""
    out: dict[tuple[int, int], bytearray] = {}
    for ev in events:
        key = (ev.flow.ext["sctp_stream"], int(ev.direction))
        buf = out.setdefault(key, bytearray())
        if isinstance(ev, StreamData):
            assert ev.offset == len(buf), (key, ev.offset, len(buf))
            buf += ev.data
        elif isinstance(ev, StreamGap):
            assert ev.offset == len(buf)
            buf += bytes(ev.length)
    return {k: bytes(v) for k, v in out.items()}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.integers(1, 9000)), min_size=1, max_size=6),
       st.booleans(), st.booleans(), st.integers(0, 1 << 30), st.data())
def test_streams_come_out_whole_through_reordering_and_duplicates(messages, idata, v6, seed, data) -> None:
    rng = random.Random(seed)
    t = S.Trace(seed=seed)
    a = t.sctp(("2001:db8::1" if v6 else "10.0.0.1", 5000), ("2001:db8::2" if v6 else "10.0.0.2", 80),
               idata=idata)
    want: dict[tuple[int, int], bytes] = {}
    for sid, to_client, size in messages:
        msg = rng.randbytes(size)
        n = -(-size // a.max_data)
        swap = data.draw(st.sets(st.integers(0, max(0, n - 2)), max_size=2)) if n > 1 else set()
        dup = data.draw(st.sets(st.integers(0, n - 1), max_size=2))
        a.send(int(to_client), msg, stream=sid, swap=swap, dup=dup)
        want[(sid, int(to_client))] = want.get((sid, int(to_client)), b"") + msg
    a.close()
    evs = events_of(t)
    assert {k: v for k, v in streams(evs).items() if v} == want
    assert not [e for e in evs if isinstance(e, StreamGap)]
    closed = [e for e in evs if isinstance(e, StreamClosed)]
    assert {(e.flow.ext["sctp_stream"], int(e.direction)) for e in closed} == \
        {(sid, d) for sid, _ in want for d in (0, 1)} and {e.reason for e in closed} == {"fin"}
    flows = {e.flow.uid: e.flow for e in evs}
    assert len(flows) == len({sid for sid, _ in want})
    assert all(f.client_port == 5000 and f.server_port == 80 and f.proto == 132 for f in flows.values())


def test_a_chunk_the_tap_lost_is_a_gap_of_its_stream_once_the_peer_acks_it() -> None:
    t = S.Trace(seed=5)
    a = t.sctp(("10.0.0.1", 5000), ("10.0.0.2", 80))
    big = random.Random(5).randbytes(20_000)
    a.send(S.C2S, b"GET / HTTP/1.1\r\n\r\n", stream=4)
    a.send(S.S2C, big, stream=4, drop=[3])
    a.send(S.S2C, b"tail", stream=4)
    a.close()
    evs = events_of(t, flush=False)  # the SACK, not the end, gives the hole up
    got = streams(evs)[(4, 1)]
    cut = 3 * a.max_data
    gap = [e for e in evs if isinstance(e, StreamGap)]
    assert len(gap) == 1 and gap[0].length == a.max_data and gap[0].flow.anomalies == ["sctp.gap_estimated"]
    assert got[:cut] == big[:cut] and got[cut + a.max_data:] == big[cut + a.max_data:] + b"tail"


def test_abort_timeout_and_restart_end_the_association() -> None:
    for how, reason in (("abort", "rst"), ("idle", "timeout")):
        t = S.Trace(seed=9)
        a = t.sctp(("10.0.0.1", 5000), ("10.0.0.2", 80))
        a.send(S.C2S, b"hello", stream=0)
        if how == "abort":
            a.close(abort=True)
        r = SctpReassembler(timeout_ns=10**9)
        evs = events_of(t, r, flush=False)
        if how == "idle":
            evs += r.expire(a.now + 2 * 10**9)
        assert [e.reason for e in evs if isinstance(e, StreamClosed)] == [reason, reason] and len(r) == 0


def test_midstream_association_and_garbage_never_raise() -> None:
    t = S.Trace(seed=2)
    a = t.sctp(("10.0.0.1", 40000), ("10.0.0.2", 8080), handshake=False)
    a.send(S.S2C, b"x" * 3000, stream=1)
    evs = events_of(t)
    (flow,) = {e.flow for e in evs}
    assert flow.midstream and flow.server_port == 8080 and streams(evs)[(1, 1)] == b"x" * 3000
    r = SctpReassembler()
    rng = random.Random(1)
    for _ in range(300):
        frame = bytes.fromhex("45000050000040008084") + bytes(10) + rng.randbytes(rng.randint(0, 120))
        pkt = decode(Frame(0, frame, len(frame), 101))
        if pkt.proto == 132:
            r.feed(pkt)
    r.flush()


def test_held_chunks_are_bounded_and_the_hole_becomes_a_gap() -> None:
    """A hole nothing acknowledges (one-sided capture): the chunks behind it are held up to
    the memcap, then the hole is given up; the total held stays under the global cap."""
    t = S.Trace(seed=4)
    a = t.sctp(("10.0.0.1", 5000), ("10.0.0.2", 80))
    big = random.Random(4).randbytes(60_000)
    a.send(S.S2C, big, stream=0, drop=[0])
    frames = [(ts, f) for ts, f in t.frames()]
    r = SctpReassembler(memcap=10_000, global_memcap=20_000)
    evs: list[StreamEvent] = []
    for ts, frame in frames:
        pkt = decode(Frame(ts, frame, len(frame), t.link.linktype))
        if b"\x03\x00\x00\x10" in pkt.payload[12:16]:  # the peer's SACKs are not captured
            continue
        evs += r.feed(pkt)
        assert r.held_total <= 20_000 + a.max_data
    got = streams(evs)[(0, 1)]
    assert got[a.max_data:] == big[a.max_data:len(got)] and any(isinstance(e, StreamGap) for e in evs)
