"""SCTP (RFC 9260) as a transport beside TCP: DATA chunks → one byte stream per SCTP stream.

``SctpReassembler.feed(packet) -> list[StreamEvent]`` takes decoded IP packets of protocol
132 (``Packet.payload`` is the SCTP packet: common header and chunks; the decoder parses no
ports for it) and emits the same `StreamData` / `StreamGap` / `StreamClosed` events as
`reassembly.tcp`, one `Flow` per (association, stream id): the application layer consumes them
unchanged (an HTTP exchange on stream 3 is a flow of its own, both directions).

Reassembly follows the TSN, the association-wide sequence number of each direction: chunks
are delivered in TSN order (out-of-order ones are held, duplicates dropped), each chunk's
payload appended to its stream's bytes. In TSN order the fragments of a message are
contiguous and ordered messages of a stream come in stream-sequence order, so a message need
not be held whole (a 10 MB message streams through, as partial delivery does in a receiver).
DATA and I-DATA (RFC 8260) chunks are read; unordered messages are delivered where their TSNs
put them.

A hole (a TSN never seen) is given up — as a `StreamGap` of the stream it most likely belongs
to (the message in progress, else the stream of the chunk after it) with its length estimated
as missing TSNs × the largest chunk seen (``sctp.gap_estimated``) — when the peer's SACK (or
SHUTDOWN) acknowledges past it (the tap lost it), when FORWARD-TSN abandons it, when the held
chunks pass `MAX_HELD_CHUNKS`, ``memcap`` or ``global_memcap``, and when the association ends.
The INIT sender is the client (INIT-ACK's receiver); an association picked up mid-way guesses
by port and starts at the first TSN seen (``midstream``). SHUTDOWN-ACK and SHUTDOWN-COMPLETE end
an association (``fin``), ABORT (``rst``), idle time (``timeout``), the table cap (``evicted``)
and the end of input (``eof``); every stream flow of it then gets its two `StreamClosed`.
Checksums (CRC32c) are not checked.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterator

from appliance.model import Direction, Flow, FlowKey, Packet, StreamClosed, StreamData, StreamEvent, StreamGap
from appliance.model.flows import FlowState
from reassembly.flows import guess_server_is_dst, make_flow_id, make_uid

PROTO = 132
MAX_HELD_CHUNKS = 4096
"""Out-of-order chunks held per direction before the oldest hole is given up."""
_M32 = 0xFFFFFFFF
_HDR = struct.Struct("!HHII")
_DATA = struct.Struct("!IHHI")
_IDATA = struct.Struct("!IHHII")
_DATA_T, _INIT, _INIT_ACK, _SACK, _ABORT, _SHUTDOWN, _SHUTDOWN_ACK, _SHUTDOWN_COMPLETE = 0, 1, 2, 3, 6, 7, 8, 14
_IDATA_T, _FORWARD_TSN, _IFORWARD_TSN = 64, 192, 194
_E_FLAG, _B_FLAG = 0x01, 0x02
_UID_SPACE = 1 << 39
"""Set in the counter behind a stream flow's uid: SCTP flows never share a uid with TCP's."""


def _before(a: int, b: int) -> bool:
    """Serial-number order of 32-bit TSNs (RFC 1982): ``a`` comes before ``b``."""
    return a != b and (b - a) & _M32 < 0x80000000


class _Chunk:
    __slots__ = ("data", "first", "last", "sid", "tsn")

    def __init__(self, tsn: int, sid: int, first: bool, last: bool, data: bytes) -> None:
        self.tsn, self.sid, self.first, self.last, self.data = tsn, sid, first, last, data


class _Half:
    """One direction of an association: where its TSNs stand and what is held."""

    __slots__ = ("held", "held_bytes", "last", "max_chunk", "next_tsn")

    def __init__(self) -> None:
        self.next_tsn: int | None = None
        self.held: dict[int, _Chunk] = {}
        self.held_bytes = 0
        self.last: _Chunk | None = None
        """The last chunk delivered (is a message in progress, and on which stream?)."""
        self.max_chunk = 1


class _Assoc:
    """One association: its endpoints, both directions, and its stream flows."""

    __slots__ = ("client", "halves", "iface", "key", "last_ts", "midstream", "offs", "streams")

    def __init__(self, key: FlowKey, client: tuple[bytes, int], iface: str, ts: int, midstream: bool) -> None:
        self.key = key
        self.client = client
        self.iface = iface
        self.last_ts = ts
        self.midstream = midstream
        self.halves = (_Half(), _Half())
        self.streams: dict[int, Flow] = {}
        self.offs: dict[int, list[int]] = {}


class SctpReassembler:
    """SCTP associations → per-stream `StreamEvent`s (see the module docstring)."""

    def __init__(self, *, max_associations: int = 4096, timeout_ns: int = 300 * 10**9, memcap: int = 4 << 20,
                 global_memcap: int = 64 << 20, seed: int = 0) -> None:
        self.max_associations = max(1, max_associations)
        self.timeout_ns = timeout_ns
        self.memcap = memcap
        """Bytes of out-of-order chunks held per direction."""
        self.global_memcap = global_memcap
        """Bytes of out-of-order chunks held by all associations together."""
        self.held_total = 0
        self.seed = seed & 0x7FF
        self._assocs: dict[FlowKey, _Assoc] = {}
        self._n = 0
        self.counters: Counter[str] = Counter()

    # -- input ------------------------------------------------------------------------------
    def feed(self, pkt: Packet) -> list[StreamEvent]:
        """One SCTP packet; never raises on wire data (malformed chunks are counted)."""
        p = pkt.payload
        out: list[StreamEvent] = []
        if len(p) < 12:
            self.counters["sctp.truncated"] += 1
            return out
        sport, dport, _vtag, _crc = _HDR.unpack_from(p)
        chunks = list(self._chunks(p))
        key = FlowKey.of(pkt.src, sport, pkt.dst, dport, PROTO, pkt.vlan)
        a = self._assocs.get(key)
        types = {t for t, _, _ in chunks}
        if _INIT in types and a is not None and a.streams:  # a restart: the old association is over
            self._end(a, "reused", pkt.ts_ns, out)
            a = None
        if a is None:
            if not types & {_INIT, _INIT_ACK, _DATA_T, _IDATA_T}:
                return out
            a = self._open(key, pkt, sport, dport, types, out)
        a.last_ts = max(a.last_ts, pkt.ts_ns)
        d = Direction.TO_SERVER if (pkt.src, sport) == a.client else Direction.TO_CLIENT
        for t, flags, value in chunks:
            if key not in self._assocs:
                break  # ended by an earlier chunk of this packet
            self._chunk(a, d, t, flags, value, pkt.ts_ns, out)
        return out

    def _chunks(self, p: bytes) -> Iterator[tuple[int, int, bytes]]:
        i, n = 12, len(p)
        while i + 4 <= n:
            t, flags, length = p[i], p[i + 1], p[i + 2] << 8 | p[i + 3]
            if length < 4 or i + length > n:
                self.counters["sctp.bad_chunk"] += 1
                return
            yield t, flags, p[i + 4:i + length]
            i += (length + 3) & ~3

    def _open(self, key: FlowKey, pkt: Packet, sport: int, dport: int, types: set[int],
              out: list[StreamEvent]) -> _Assoc:
        if _INIT in types:
            client, midstream = (pkt.src, sport), False
        elif _INIT_ACK in types:
            client, midstream = (pkt.dst, dport), False
        else:
            server_is_dst = guess_server_is_dst(sport, dport)
            client, midstream = ((pkt.src, sport) if server_is_dst else (pkt.dst, dport)), True
        while len(self._assocs) >= self.max_associations:
            oldest = min(self._assocs.values(), key=lambda x: x.last_ts)
            self._end(oldest, "evicted", pkt.ts_ns, out)
        a = self._assocs[key] = _Assoc(key, client, pkt.iface, pkt.ts_ns, midstream)
        self.counters["associations"] += 1
        return a

    def _chunk(self, a: _Assoc, d: Direction, t: int, flags: int, value: bytes, ts: int,
               out: list[StreamEvent]) -> None:
        if t in (_DATA_T, _IDATA_T):
            self._data(a, d, t, flags, value, ts, out)
        elif t in (_INIT, _INIT_ACK) and len(value) >= 16:
            half = a.halves[d]
            if half.next_tsn is None:
                half.next_tsn = int.from_bytes(value[12:16], "big")  # the initial TSN
        elif t in (_SACK, _SHUTDOWN) and len(value) >= 4:
            self._acked(a, Direction(1 - d), int.from_bytes(value[:4], "big"), ts, out)
        elif t in (_FORWARD_TSN, _IFORWARD_TSN) and len(value) >= 4:
            self._abandoned(a, d, int.from_bytes(value[:4], "big"), ts, out)
        elif t == _ABORT:
            self._end(a, "rst", ts, out)
        elif t in (_SHUTDOWN_ACK, _SHUTDOWN_COMPLETE):
            self._end(a, "fin", ts, out)

    # -- data -------------------------------------------------------------------------------
    def _data(self, a: _Assoc, d: Direction, t: int, flags: int, value: bytes, ts: int,
              out: list[StreamEvent]) -> None:
        if t == _DATA_T:
            if len(value) < 12:
                self.counters["sctp.bad_chunk"] += 1
                return
            tsn, sid, _ssn, _ppid = _DATA.unpack_from(value)
            data = value[12:]
        else:
            if len(value) < 16:
                self.counters["sctp.bad_chunk"] += 1
                return
            tsn, sid, _res, _mid, _fsn = _IDATA.unpack_from(value)
            data = value[16:]
        self.counters["chunks"] += 1
        half = a.halves[d]
        if half.next_tsn is None:
            half.next_tsn = tsn
        if _before(tsn, half.next_tsn) or tsn in half.held:
            self.counters["duplicates"] += 1
            return
        half.max_chunk = max(half.max_chunk, len(data))
        chunk = _Chunk(tsn, sid, bool(flags & _B_FLAG), bool(flags & _E_FLAG), data)
        if tsn != half.next_tsn:
            half.held[tsn] = chunk
            half.held_bytes += len(data)
            self.held_total += len(data)
            if (len(half.held) > MAX_HELD_CHUNKS or half.held_bytes > self.memcap
                    or self.held_total > self.global_memcap):
                self._skip(a, d, self._first_held(half), "memcap", ts, out)
            return
        self._deliver(a, d, chunk, ts, out)
        self._drain(a, d, ts, out)

    def _deliver(self, a: _Assoc, d: Direction, c: _Chunk, ts: int, out: list[StreamEvent]) -> None:
        half = a.halves[d]
        half.next_tsn = (c.tsn + 1) & _M32
        half.last = c
        if not c.data:
            return
        flow = self._stream(a, c.sid, ts)
        offs = a.offs[c.sid]
        out.append(StreamData(flow, d, offs[d], c.data, ts))
        offs[d] += len(c.data)
        flow.pkts[d] += 1
        flow.bytes[d] += len(c.data)
        if ts > flow.last_ts_ns:
            flow.last_ts_ns = ts

    def _drain(self, a: _Assoc, d: Direction, ts: int, out: list[StreamEvent]) -> None:
        half = a.halves[d]
        held = half.held
        while held and half.next_tsn in held:
            c = held.pop(half.next_tsn)  # type: ignore[arg-type]
            half.held_bytes -= len(c.data)
            self.held_total -= len(c.data)
            self._deliver(a, d, c, ts, out)

    @staticmethod
    def _first_held(half: _Half) -> int:
        base = half.next_tsn or 0
        return min(half.held, key=lambda tsn: (tsn - base) & _M32)

    def _skip(self, a: _Assoc, d: Direction, upto: int, reason: str, ts: int, out: list[StreamEvent]) -> None:
        """TSNs from the next expected one up to ``upto`` (excluded) will never be seen: a gap
        on the stream they most likely belong to, then whatever is held after them."""
        half = a.halves[d]
        if half.next_tsn is None or not _before(half.next_tsn, upto):
            return
        missing = (upto - half.next_tsn) & _M32
        after = half.held.get(upto)
        last = half.last
        sid = last.sid if last is not None and not last.last else after.sid if after is not None else None
        if sid is None and last is not None:
            sid = last.sid
        self.counters["gaps"] += 1
        if sid is not None:
            flow = self._stream(a, sid, ts)
            offs = a.offs[sid]
            length = missing * half.max_chunk
            out.append(StreamGap(flow, d, offs[d], length, ts, reason))
            offs[d] += length
            if "sctp.gap_estimated" not in flow.anomalies:
                flow.anomalies.append("sctp.gap_estimated")
        half.next_tsn = upto
        half.last = None
        self._drain(a, d, ts, out)

    def _acked(self, a: _Assoc, d: Direction, cum: int, ts: int, out: list[StreamEvent]) -> None:
        """The receiver of direction ``d`` has every TSN up to ``cum``: holes before it are the tap's."""
        half = a.halves[d]
        end = (cum + 1) & _M32
        while half.next_tsn is not None and _before(half.next_tsn, end):
            target = end
            if half.held:
                first = self._first_held(half)
                if _before(first, end):
                    target = first
            self._skip(a, d, target, "lost", ts, out)

    def _abandoned(self, a: _Assoc, d: Direction, new_cum: int, ts: int, out: list[StreamEvent]) -> None:
        """FORWARD-TSN: the sender gave up on every TSN up to ``new_cum`` (partial reliability)."""
        self._skip(a, d, (new_cum + 1) & _M32, "abandoned", ts, out)

    def _stream(self, a: _Assoc, sid: int, ts: int) -> Flow:
        flow = a.streams.get(sid)
        if flow is None:
            self._n += 1
            n = (self.seed << 40) | _UID_SPACE | self._n
            (cip, cport) = a.client
            k = a.key
            sip, sport = (k.ip_b, k.port_b) if (k.ip_a, k.port_a) == a.client else (k.ip_a, k.port_a)
            flow = Flow(make_uid(n), make_flow_id(n), k, cip, cport, sip, sport, a.iface, ts)
            flow.state = FlowState.ESTABLISHED
            flow.midstream = a.midstream
            flow.ext["sctp_stream"] = sid
            a.streams[sid] = flow
            a.offs[sid] = [0, 0]
            self.counters["streams"] += 1
        return flow

    # -- ends -------------------------------------------------------------------------------
    def _end(self, a: _Assoc, reason: str, ts: int, out: list[StreamEvent]) -> None:
        """The association is over: give up its holes, close both directions of every stream."""
        if self._assocs.get(a.key) is a:
            del self._assocs[a.key]
        for d in (Direction.TO_SERVER, Direction.TO_CLIENT):
            half = a.halves[d]
            while half.held:
                self._skip(a, d, self._first_held(half), "lost", ts, out)
        for sid, flow in a.streams.items():
            offs = a.offs[sid]
            flow.state = FlowState.CLOSED
            out.append(StreamClosed(flow, Direction.TO_SERVER, offs[0], ts, reason))
            out.append(StreamClosed(flow, Direction.TO_CLIENT, offs[1], ts, reason))

    def expire(self, now_ns: int) -> list[StreamEvent]:
        """End the associations idle for ``timeout_ns`` at packet time ``now_ns``."""
        out: list[StreamEvent] = []
        for a in [a for a in self._assocs.values() if a.last_ts + self.timeout_ns <= now_ns]:
            self._end(a, "timeout", now_ns, out)
        return out

    def flush(self) -> list[StreamEvent]:
        """End of input: end every association (``eof``, at its last packet's time)."""
        out: list[StreamEvent] = []
        for a in list(self._assocs.values()):
            self._end(a, "eof", a.last_ts, out)
        return out

    def __len__(self) -> int:
        return len(self._assocs)
