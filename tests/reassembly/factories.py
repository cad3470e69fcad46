"""Test factories for reassembly: flows, stream events, and feeding whole conversations."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from appliance.model.content import ContentObject
from appliance.model.flows import Flow, FlowKey
from appliance.model.http import (
    HttpBodyData,
    HttpBodyEnd,
    HttpBodyGap,
    HttpEvent,
    HttpTransaction,
    HttpTxStart,
)
from appliance.model.streams import Direction, StreamClosed, StreamData, StreamEvent, StreamGap

C = Direction.TO_SERVER
S = Direction.TO_CLIENT


def make_flow(uid: str = "Ctest", cport: int = 40000, sport: int = 80) -> Flow:
    cip, sip = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    key = FlowKey.of(cip, cport, sip, sport, 6)
    return Flow(uid, 1, key, cip, cport, sip, sport, "test0", 0)


class Stream:
    """Builds in-order stream events for both directions of one flow, tracking offsets."""

    def __init__(self, flow: Flow | None = None) -> None:
        self.flow = flow or make_flow()
        self.off = [0, 0]
        self.ts = 1_000_000_000

    def _tick(self) -> int:
        self.ts += 1000
        return self.ts

    def data(self, direction: Direction, data: bytes, *,
             pieces: Sequence[int] | None = None) -> list[StreamEvent]:
        """``data`` as one event, or split at the given cut points."""
        cuts = sorted({c for c in (pieces or ()) if 0 < c < len(data)})
        out: list[StreamEvent] = []
        prev = 0
        for c in [*cuts, len(data)]:
            if c > prev:
                out.append(StreamData(self.flow, direction, self.off[direction], data[prev:c], self._tick()))
                self.off[direction] += c - prev
            prev = c
        return out

    def gap(self, direction: Direction, length: int) -> list[StreamEvent]:
        ev = StreamGap(self.flow, direction, self.off[direction], length, self._tick())
        self.off[direction] += length
        return [ev]

    def close(self, direction: Direction) -> list[StreamEvent]:
        return [StreamClosed(self.flow, direction, self.off[direction], self._tick())]


def feed_all(parser, events: Iterable[StreamEvent]) -> list[HttpEvent]:
    out: list[HttpEvent] = []
    for ev in events:
        out.extend(parser.feed(ev))
    return out


ALT = "http.alternate_framing"


class Collected:
    """HTTP events grouped per (tx, direction): starts, body bytes, gaps, ends.

    Alternate readings of a body (transactions flagged ``http.alternate_framing``) are kept
    apart, in ``alt`` (tx id, direction) → body bytes, and ``alt_ends``.
    """

    def __init__(self, events: Iterable[HttpEvent]) -> None:
        self.events = list(events)
        self.txs: list[HttpTransaction] = []
        self.body: dict[tuple[int, int], bytes] = {}
        self.gaps: dict[tuple[int, int], int] = {}
        self.ends: dict[tuple[int, int], HttpBodyEnd] = {}
        self.starts: list[tuple[int, int]] = []
        self.alt: dict[tuple[int, int], bytes] = {}
        self.alt_ends: dict[tuple[int, int], HttpBodyEnd] = {}
        for ev in self.events:
            key = (ev.tx.tx_id, int(ev.direction))
            if ALT in ev.tx.anomalies:
                if isinstance(ev, HttpBodyData):
                    self.alt[key] = self.alt.get(key, b"") + ev.data
                elif isinstance(ev, HttpBodyEnd):
                    assert key not in self.alt_ends, f"two alternate ends for {key}"
                    self.alt_ends[key] = ev
                    self.alt.setdefault(key, b"")
                continue
            if isinstance(ev, HttpTxStart):
                self.starts.append(key)
                if ev.tx not in self.txs:
                    self.txs.append(ev.tx)
            elif isinstance(ev, HttpBodyData):
                self.body[key] = self.body.get(key, b"") + ev.data
            elif isinstance(ev, HttpBodyGap):
                self.gaps[key] = self.gaps.get(key, 0) + ev.length
            elif isinstance(ev, HttpBodyEnd):
                assert key not in self.ends, f"two ends for {key}"
                self.ends[key] = ev

    def req(self, tx_id: int) -> bytes:
        return self.body.get((tx_id, 0), b"")

    def resp(self, tx_id: int) -> bytes:
        return self.body.get((tx_id, 1), b"")


def http_objects(request: bytes, response: bytes, *, cuts: Sequence[int] = (), keep: int = 1 << 20,
                 flow: Flow | None = None) -> list[ContentObject]:
    """Content objects of one HTTP conversation (parser + content assembler), bytes kept."""
    from reassembly.content import HttpContentAssembler
    from reassembly.http1 import Http1Parser
    from reassembly.objects import ObjectFactory

    s = Stream(flow)
    parser = Http1Parser(s.flow)
    asm = HttpContentAssembler(ObjectFactory(keep_bytes=keep))
    events = s.data(C, request, pieces=cuts) + s.data(S, response, pieces=cuts) + s.close(C) + s.close(S)
    out: list[ContentObject] = []
    for ev in events:
        for hev in parser.feed(ev):
            out += asm.feed(hev)
    out += asm.close_flow(s.flow, s.ts)
    return out
