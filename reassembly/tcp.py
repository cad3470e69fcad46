"""TCP stream reassembly: packets in, ordered `StreamData` / `StreamGap` / `StreamClosed` out.

Sans-IO: ``feed(packet)``, ``expire(now_ns)`` and ``flush()`` return events; time is packet time.

Rules (see also DESIGN.md, "Stage contracts"):

* **Roles.** The sender of a SYN is the client; if a SYN-ACK is the first packet seen, its receiver
  is. A flow picked up mid-stream gets ``flow.midstream = True`` and the server is guessed by port
  (`guess_server_is_dst`: a port < 1024 or a well-known server port, else the lower port).
* **Offsets.** Each direction counts bytes from 0 = ISN + 1 (mid-stream: the first sequence number
  seen from that side). Sequence numbers are mapped to unbounded offsets relative to the next
  expected byte, so 32-bit wraparound and streams > 4 GiB work.
* **Delivery.** `StreamData` is emitted strictly in order per direction, each byte at most once;
  retransmitted bytes are never re-delivered. Out-of-order segments wait in a per-direction buffer
  bounded by ``stream_memcap`` and a global ``memcap`` (each buffered segment is charged its length
  plus ``SEG_OVERHEAD``).
* **Overlaps.** Bytes already delivered always stay as delivered. For buffered bytes,
  ``overlap_policy="first"`` keeps the bytes seen first, ``"last"`` lets the newer segment win.
  Overlapping bytes that differ (from buffered bytes, or from delivered bytes still in the small
  per-direction history of the last few delivered segments) add ``tcp.overlap_conflict`` to
  ``flow.anomalies`` (once per flow; every occurrence is counted).
* **Gaps.** A hole becomes a `StreamGap` (its exact length is always known) when the peer ACKs
  past it while data (or the FIN) is buffered beyond it (reason ``"acked"``; an ACK alone, with
  nothing buffered, never opens a gap, so a forged ACK cannot make the reassembler skip data);
  when a direction's buffer exceeds ``stream_memcap`` or the global buffer exceeds ``memcap``
  (``"memcap"``: skip to the earliest buffered segment, repeatedly); and when a direction closes by
  RST, timeout, eviction, port reuse or end of capture with data or a FIN buffered past a hole
  (``"lost"``). A FIN that arrives before a hole is filled waits for the hole (filled, ACKed, or
  lost at close time).
* **Close.** Every flow that saw any TCP packet gets exactly one `StreamClosed` per direction, also
  directions that never carried a byte. Reasons: ``"fin"`` (the FIN's sequence number reached),
  ``"rst"`` (both directions; only for an RST whose sequence number is within ``[next - 64 KiB,
  next + rst_window]`` of the sender's next expected byte, else anomaly
  ``tcp.rst_out_of_window`` and the RST is ignored), ``"timeout"`` (`expire`), ``"evicted"``
  (flow table full), ``"reused"`` (a new SYN with a new ISN on a closed or stale flow: the old
  flow is closed and a new `Flow` with a new uid starts), ``"eof"`` (`flush`). When both
  directions are closed the flow is finished (state CLOSED); it stays in the table until its
  short timeout to absorb late packets (ignored, counted), then leaves without further events.
* **Performance.** In-order data with nothing buffered and pure ACKs take a short fast path: one
  dict lookup on the directional 5-tuple, no allocation besides the emitted event.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Literal

from appliance.model.flows import Flow, FlowKey, FlowState
from appliance.model.packets import Packet
from appliance.model.streams import Direction, StreamClosed, StreamData, StreamEvent, StreamGap
from reassembly.flows import FlowTable, guess_server_is_dst

__all__ = ["SEG_OVERHEAD", "TcpReassembler"]

_MASK = 0xFFFFFFFF
_HALF = 0x80000000
_WRAP = 1 << 32
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_SEC = 1_000_000_000
_RST_BEHIND = 65536

SEG_OVERHEAD = 64
"""Bytes charged per buffered out-of-order segment on top of its length (list slots, object)."""
_HIST_MAX = 8
_HIST_KEEP = 4
_HIST_TAIL = 16384
"""Bytes of a joined fast-path run kept for the retransmission check."""

_TO_SERVER = Direction.TO_SERVER
_TO_CLIENT = Direction.TO_CLIENT
_ESTABLISHED = FlowState.ESTABLISHED
_CLOSING = FlowState.CLOSING
_CLOSED = FlowState.CLOSED
_COUNTER_NAMES = (
    "packets", "payload_bytes", "syn_retransmissions", "retransmissions", "overlaps",
    "overlap_conflicts", "ooo_segments", "gaps", "gap_bytes", "gaps_acked", "gaps_memcap",
    "gaps_lost", "rst", "rst_out_of_window", "fin", "data_after_close", "late_packets",
    "flows_midstream", "flows_reused",
)


class _Half:
    """State of one direction of a connection, named after its sender."""

    __slots__ = (
        "base",
        "closed",
        "dir",
        "exp",
        "fast",
        "fin_off",
        "flow",
        "hist",
        "hist_off",
        "isn",
        "key",
        "nxt",
        "off",
        "oo_bytes",
        "oo_d",
        "oo_s",
        "peer",
        "pending",
        "ack_arm_ts",
        "ack_arm_off",
    )

    def __init__(self, flow: Flow, d: Direction, key: tuple) -> None:
        self.flow = flow
        self.dir = d
        self.peer: _Half = _DEAD
        self.key = key
        self.fast = False
        """Packets from this side may take the fast path (handshake done, base known)."""
        self.base = -1
        """Absolute sequence number of offset 0 (-1: not known yet)."""
        self.nxt = -1
        """Absolute sequence number of the next expected byte (== base + off mod 2**32)."""
        self.exp = -1
        """``nxt`` when in-order data may be delivered directly, else -1."""
        self.off = 0
        """Offset of the next expected byte: bytes delivered plus gaps."""
        self.isn = -1
        self.oo_s: list[int] | None = None
        """Sorted start offsets of the buffered (disjoint) out-of-order segments."""
        self.oo_d: list[bytes] | None = None
        self.oo_bytes = 0
        self.pending = False
        """Data or a FIN is buffered beyond a hole."""
        self.hist: list[bytes] = []
        """The last few delivered chunks, contiguous, ending at ``off``."""
        self.hist_off = 0
        self.fin_off = -1
        self.closed = False
        self.ack_arm_ts = -1
        """Packet time of the first peer ACK past the current hole (-1: none yet)."""
        self.ack_arm_off = -1
        """``off`` when that ACK was seen (progress since then re-arms the delay)."""


class TcpReassembler:
    """Reassembles the TCP packets of many flows into per-direction stream events.

    ``feed`` takes any `Packet` (non-TCP packets return no events). ``expire(now_ns)`` should
    be called regularly on packet time (e.g. once per second of capture) and ``flush()`` at the
    end of the capture. ``flows`` is the `FlowTable`; ``counters`` and ``memory_in_use`` report.

    Parameters: ``max_flows`` caps the flow table (eviction: closed flows first, then the
    earliest idle deadline); ``stream_memcap`` bounds the out-of-order buffer of one direction
    and ``memcap`` all of them; ``overlap_policy`` decides which buffered bytes win;
    ``established_timeout_ns`` (alias ``idle_timeout_ns``) is the idle timeout of established
    or closing flows, ``closed_timeout_ns`` that of half-open and closed flows;
    ``rst_window`` is how far past the next expected byte an RST is still accepted; ``seed``
    separates the flow ids of parallel workers (a second `FlowTable`, e.g. for UDP, needs a
    seed of its own too).
    """

    def __init__(
        self,
        max_flows: int = 1_000_000,
        *,
        stream_memcap: int = 16 << 20,
        memcap: int = 1 << 30,
        overlap_policy: Literal["first", "last"] = "first",
        established_timeout_ns: int = 300 * _SEC,
        closed_timeout_ns: int = 30 * _SEC,
        idle_timeout_ns: int | None = None,
        rst_window: int = 1 << 20,
        seed: int = 0,
        ack_gap_delay_ns: int = 0,
    ) -> None:
        if overlap_policy not in ("first", "last"):
            raise ValueError(f"overlap_policy must be 'first' or 'last', not {overlap_policy!r}")
        self.stream_memcap = int(stream_memcap)
        self.memcap = int(memcap)
        self.overlap_policy = overlap_policy
        self._last_wins = overlap_policy == "last"
        self.rst_window = int(rst_window)
        self.ack_gap_delay_ns = int(ack_gap_delay_ns)
        """How long (packet time) an ACK past a hole waits before the hole becomes a gap: a
        mirror that merges several ports (or a split tap) can deliver the peer's ACK a few ms
        before the retransmission that fills the hole."""
        if idle_timeout_ns is not None:  # alias
            established_timeout_ns = idle_timeout_ns
        self.flows = FlowTable(max_flows, established_timeout_ns=established_timeout_ns,
                               closed_timeout_ns=closed_timeout_ns, seed=seed, on_evict=self._on_evict)
        self._idx: dict[tuple, _Half] = {}
        self._mem = 0
        self._out: list[StreamEvent] = []
        self._c: dict[str, int] = dict.fromkeys(_COUNTER_NAMES, 0)
        self._npkts = 0
        self._nbytes = 0
        self._fp: object | None = None

    # -- reporting ------------------------------------------------------------------------
    @property
    def memory_in_use(self) -> int:
        """Bytes charged for buffered out-of-order segments, over all flows."""
        return self._mem

    @property
    def counters(self) -> dict[str, int]:
        """A snapshot of the counters (packets, gaps, anomalies by code, flow table counters...)."""
        c = dict(self._c)
        c["packets"] = self._npkts
        c["payload_bytes"] = self._nbytes
        c["memory_in_use"] = self._mem
        c.update(self.flows.counters)
        return c

    # -- packets --------------------------------------------------------------------------
    def feed(self, pkt: Packet) -> list[StreamEvent]:
        """Process one packet; returns the stream events it caused, in order."""
        if pkt.proto != 6:
            return []
        self._npkts += 1
        h = self._idx.get((pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.vlan))
        flags = pkt.flags
        if h is None or flags & 7 or not h.fast:
            return self._slow(pkt, h)
        if flags & _ACK:
            p = h.peer
            if p.pending and 0 < ((pkt.ack - p.nxt) & _MASK) < _HALF:
                return self._slow(pkt, h)
        payload = pkt.payload
        flow = h.flow
        if payload:
            seq = pkt.seq
            if seq != h.exp:
                return self._slow(pkt, h)
            n = len(payload)
            if type(payload) is not bytes:
                payload = bytes(payload)
            ts = pkt.ts_ns
            flow.last_ts_ns = ts
            d = h.dir
            flow.pkts[d] += 1
            flow.bytes[d] += n
            self._nbytes += n
            off = h.off
            h.off = off + n
            h.nxt = h.exp = (seq + n) & _MASK
            hist = h.hist
            hist.append(payload)
            if len(hist) > _HIST_MAX:
                _trim(h)
            return [StreamData(flow, d, off, payload, ts)]
        flow.last_ts_ns = pkt.ts_ns
        flow.pkts[h.dir] += 1
        return []

    # -- C fast path (capture/fastpath.py) ----------------------------------------------
    def attach_fast_path(self, fp: object) -> None:
        """Let ``fp`` (a ``capture._fastpath.FastPath``) carry in-order data of armed directions.

        From now on the directions in the table are announced to it (``known``/``forget``),
        and `feed_synced` (not `feed`) must be used for the packets it hands back, so that the
        arming follows every change Python makes. Call before the first packet.
        """
        self._fp = fp
        for h in self._idx.values():
            fp.known(h.key)  # type: ignore[attr-defined]
            self._sync(h)

    def feed_synced(self, pkt: Packet) -> list[StreamEvent]:
        """`feed`, then re-arm (or disarm) both directions of the packet's flow in the fast path."""
        out = self.feed(pkt)
        if pkt.proto == 6:
            h = self._idx.get((pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.vlan))
            if h is not None:
                self._sync(h)
                self._sync(h.peer)
        return out

    def _sync(self, h: _Half) -> None:
        fp = self._fp
        if h.fast:
            fp.arm(h.key, h, h.exp, not h.peer.pending)  # type: ignore[attr-defined]
        else:
            fp.disarm(h.key)  # type: ignore[attr-defined]

    def apply_run(self, h: _Half, data: bytes | None, npkts: int, ts: int) -> StreamData | None:
        """Account ``npkts`` packets the fast path took for ``h`` (the last at ``ts``) and
        deliver their joined in-order payload ``data`` (None: only ACKs)."""
        flow = h.flow
        if ts > flow.last_ts_ns:
            flow.last_ts_ns = ts
        d = h.dir
        flow.pkts[d] += npkts
        self._npkts += npkts
        if data is None:
            return None
        n = len(data)
        flow.bytes[d] += n
        self._nbytes += n
        off = h.off
        h.off = end = off + n
        h.nxt = h.exp = (h.exp + n) & _MASK
        hist = h.hist
        if n >= _HIST_TAIL:
            # keep only the tail of a long run for the retransmission check
            hist.clear()
            hist.append(data[-_HIST_TAIL:])
            h.hist_off = end - _HIST_TAIL
        else:
            hist.append(data)
            kept = sum(map(len, hist))
            while kept > _HIST_TAIL:
                first = hist.pop(0)
                kept -= len(first)
                h.hist_off += len(first)
        return StreamData(flow, d, off, data, ts)

    def expire(self, now_ns: int) -> list[StreamEvent]:
        """Close and remove the flows idle past their timeout at packet time ``now_ns``."""
        out: list[StreamEvent] = []
        self._out = out
        for flow in self.flows.expire(now_ns):
            self._finish(flow, "timeout", now_ns, out)
        return out

    def flush(self, now_ns: int | None = None) -> list[StreamEvent]:
        """End of capture: close every open direction (``"eof"``) and empty the flow table.

        Events carry ``now_ns``, or each flow's ``last_ts_ns`` if it is None.
        """
        out: list[StreamEvent] = []
        self._out = out
        for flow in self.flows.clear():
            self._finish(flow, "eof", flow.last_ts_ns if now_ns is None else now_ns, out)
        return out

    # -- slow path ------------------------------------------------------------------------
    def _slow(self, pkt: Packet, h: _Half | None) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        self._out = out
        flags = pkt.flags
        ts = pkt.ts_ns
        seq = pkt.seq & _MASK
        new = h is None
        if h is None:
            h = self._create(pkt)
        elif flags & (_SYN | _ACK | _RST) == _SYN and self._is_reuse(h, pkt):
            self._c["flows_reused"] += 1
            self._retire(h.flow, "reused", ts, out)
            h = self._create(pkt)
            new = True
        flow = h.flow
        p = h.peer
        d = h.dir
        flow.last_ts_ns = ts
        flow.pkts[d] += 1
        payload = pkt.payload
        n = len(payload)
        if n:
            flow.bytes[d] += n
            self._nbytes += n
        if flow.state == _CLOSED and h.closed and p.closed:
            self._c["late_packets"] += 1
            if n and h.base >= 0:
                self._data(h, (seq + 1) & _MASK if flags & _SYN else seq, payload, ts, out)
            return out
        if flags & _RST:
            self._rst(h, seq, ts, out)
            return out
        if flags & _SYN:
            if not new:
                self._syn(h, pkt, seq)
            seq = (seq + 1) & _MASK
        elif flow.state < _ESTABLISHED:
            flow.state = _ESTABLISHED
        if flags & _ACK:
            if p.base < 0:
                if not flow.midstream:
                    _set_base(p, pkt.ack & _MASK)
            elif p.pending:
                a = (pkt.ack - p.nxt) & _MASK
                if 0 < a < _HALF:
                    if not self.ack_gap_delay_ns:
                        self._acked(p, p.off + a, ts, out)
                    elif p.ack_arm_ts < 0 or p.ack_arm_off != p.off:
                        p.ack_arm_ts, p.ack_arm_off = ts, p.off
                    elif ts - p.ack_arm_ts >= self.ack_gap_delay_ns:
                        p.ack_arm_ts = -1
                        self._acked(p, p.off + a, ts, out)
        if h.base < 0:
            _set_base(h, seq)
        if n:
            self._data(h, seq, payload, ts, out)
        if flags & _FIN:
            self._fin(h, (seq + n) & _MASK, ts, out)
        self._fix(h)
        self._fix(p)
        return out

    def _create(self, pkt: Packet) -> _Half:
        flags = pkt.flags
        src, sport, dst, dport, vlan = pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.vlan
        syn = flags & (_SYN | _RST) == _SYN
        server_is_dst = not (flags & _ACK) if syn else guess_server_is_dst(sport, dport)
        if server_is_dst:
            cip, cport, sip, sport_ = src, sport, dst, dport
        else:
            cip, cport, sip, sport_ = dst, dport, src, sport
        key = FlowKey.of(src, sport, dst, dport, 6, vlan)
        flow = self.flows.create(key, cip, cport, sip, sport_, pkt.ts_ns, pkt.iface)
        h0 = _Half(flow, _TO_SERVER, (cip, cport, sip, sport_, vlan))
        h1 = _Half(flow, _TO_CLIENT, (sip, sport_, cip, cport, vlan))
        h0.peer = h1
        h1.peer = h0
        idx = self._idx
        idx[h0.key] = h0
        idx[h1.key] = h1
        flow.ext["tcp"] = (h0, h1)
        fp = self._fp
        if fp is not None:
            fp.known(h0.key)  # type: ignore[attr-defined]
            fp.known(h1.key)  # type: ignore[attr-defined]
        h = h0 if server_is_dst else h1
        if syn:
            h.isn = pkt.seq & _MASK
            _set_base(h, (pkt.seq + 1) & _MASK)
            if flags & _ACK:
                flow.state = FlowState.SYN_RECEIVED
                _set_base(h.peer, pkt.ack & _MASK)
            else:
                flow.state = FlowState.SYN_SENT
        else:
            flow.midstream = True
            flow.state = _ESTABLISHED
            self._c["flows_midstream"] += 1
        return h

    def _is_reuse(self, h: _Half, pkt: Packet) -> bool:
        """A bare SYN with a new ISN on a closing/closed flow (or one idle past the short
        timeout) starts a new connection."""
        flow = h.flow
        if flow.state >= _CLOSING or pkt.ts_ns - flow.last_ts_ns >= self.flows.closed_timeout_ns:
            seq = pkt.seq & _MASK
            return seq != h.isn and not (h.isn < 0 and (seq + 1) & _MASK == h.base)
        return False

    def _syn(self, h: _Half, pkt: Packet, seq: int) -> None:
        """A SYN or SYN-ACK on an existing flow (not a port reuse)."""
        flow = h.flow
        if seq == h.isn or (h.isn < 0 and (seq + 1) & _MASK == h.base):
            # a retransmitted SYN, or a late one that matches the numbering already in use
            h.isn = seq
            self._c["syn_retransmissions"] += 1
            return
        synack = bool(pkt.flags & _ACK)
        if (h.dir is _TO_CLIENT) != synack:
            self._anomaly(flow, "tcp.synack_from_client" if synack else "tcp.syn_from_server")
            return
        if h.off or h.pending or h.closed or flow.state >= _ESTABLISHED:
            # A new ISN after data or after the handshake: keep the old numbering (a forged
            # SYN must not resynchronise the stream).
            self._anomaly(flow, "tcp.syn_isn_changed" if h.isn >= 0 else "tcp.syn_unexpected")
            return
        h.isn = seq
        _set_base(h, (seq + 1) & _MASK)
        if synack:
            p = h.peer
            ack = pkt.ack & _MASK
            if p.base < 0:
                _set_base(p, ack)
            elif ack != p.base and p.off == 0:
                self._anomaly(flow, "tcp.synack_bad_ack")
            if flow.state < FlowState.SYN_RECEIVED:
                flow.state = FlowState.SYN_RECEIVED

    def _rst(self, h: _Half, seq: int, ts: int, out: list[StreamEvent]) -> None:
        if h.base >= 0:
            r = (seq - h.nxt) & _MASK
            if r >= _HALF:
                r -= _WRAP
            if not -_RST_BEHIND <= r <= self.rst_window:
                self._c["rst_out_of_window"] += 1
                self._anomaly(h.flow, "tcp.rst_out_of_window")
                self._fix(h)
                self._fix(h.peer)
                return
        self._c["rst"] += 1
        h0, h1 = h.flow.ext["tcp"]
        self._close(h0, "rst", ts, out)
        self._close(h1, "rst", ts, out)

    def _fin(self, h: _Half, fin_seq: int, ts: int, out: list[StreamEvent]) -> None:
        if h.closed:
            return
        if h.base < 0:
            _set_base(h, fin_seq)
        r = (fin_seq - h.nxt) & _MASK
        if r >= _HALF:
            # A FIN before bytes already delivered: not a real FIN of this stream.
            self._anomaly(h.flow, "tcp.fin_in_past")
            return
        off = h.off + r
        if h.fin_off >= 0:
            if off != h.fin_off:
                self._anomaly(h.flow, "tcp.fin_changed")
            return
        self._c["fin"] += 1
        h.fin_off = off
        flow = h.flow
        if flow.state < _CLOSING:
            flow.state = _CLOSING
        ss = h.oo_s
        if ss and ss[-1] + len(h.oo_d[-1]) > off:  # type: ignore[index]
            self._anomaly(flow, "tcp.data_after_fin")
            self._truncate(h, off)
        if h.off >= off:
            self._close(h, "fin", ts, out)

    # -- data -----------------------------------------------------------------------------
    def _data(self, h: _Half, seq: int, payload: bytes, ts: int, out: list[StreamEvent]) -> None:
        """Place ``payload`` (first byte at absolute ``seq``) into the stream of ``h``."""
        n = len(payload)
        r = (seq - h.nxt) & _MASK
        off = h.off + r if r < _HALF else h.off + r - _WRAP
        end = off + n
        data = payload if type(payload) is bytes else bytes(payload)
        limit = h.fin_off if h.fin_off >= 0 else (h.off if h.closed else -1)
        if limit >= 0 and end > limit:
            if h.closed:
                self._c["data_after_close"] += 1
            self._anomaly(h.flow, "tcp.data_after_fin" if h.fin_off >= 0 else "tcp.data_after_close")
            if off >= limit:
                return
            data = data[: limit - off]
            end = limit
        cur = h.off
        if off < cur:
            self._c["retransmissions"] += 1
            self._check_delivered(h, off, data[: min(end, cur) - off])
            if end <= cur:
                return
            data = data[cur - off:]
            off = cur
        if off == cur and not h.oo_s:
            h.off = end
            h.nxt = (h.base + end) & _MASK
            hist = h.hist
            hist.append(data)
            if len(hist) > _HIST_MAX:
                _trim(h)
            out.append(StreamData(h.flow, h.dir, off, data, ts))
        else:
            if off > cur:
                self._c["ooo_segments"] += 1
            self._insert(h, off, data)
            self._drain(h, ts, out)
            if h.oo_bytes > self.stream_memcap or self._mem > self.memcap:
                self._memcap(h, ts, out)
        if h.fin_off >= 0 and h.off >= h.fin_off:
            self._close(h, "fin", ts, out)

    def _check_delivered(self, h: _Half, off: int, data: bytes) -> None:
        """Compare retransmitted bytes with the delivered history (what is still kept)."""
        hs = h.hist_off
        end = off + len(data)
        if end <= hs or not h.hist:
            return
        s = max(off, hs)
        old = b"".join(h.hist)[s - hs: end - hs]
        if old != data[s - off: s - off + len(old)]:
            self._c["overlap_conflicts"] += 1
            self._anomaly(h.flow, "tcp.overlap_conflict")

    def _insert(self, h: _Half, off: int, data: bytes) -> None:
        """Buffer ``data`` at ``off`` (>= h.off), resolving overlaps by the policy."""
        ss = h.oo_s
        if ss is None:
            ss = h.oo_s = []
            dd = h.oo_d = []
        else:
            dd = h.oo_d
            assert dd is not None
        end = off + len(data)
        i = bisect_right(ss, off) - 1
        if i < 0 or ss[i] + len(dd[i]) <= off:
            i += 1
        j = i
        nseg = len(ss)
        while j < nseg and ss[j] < end:
            j += 1
        if j == i:
            ss.insert(i, off)
            dd.insert(i, data)
            cost = len(data) + SEG_OVERHEAD
            h.oo_bytes += cost
            self._mem += cost
            return
        self._c["overlaps"] += 1
        conflict = False
        new_s: list[int] = []
        new_d: list[bytes] = []
        old_cost = 0
        if self._last_wins:
            es, ed = ss[i], dd[i]
            if es < off:
                new_s.append(es)
                new_d.append(ed[: off - es])
            new_s.append(off)
            new_d.append(data)
            for k in range(i, j):
                es, ed = ss[k], dd[k]
                old_cost += len(ed) + SEG_OVERHEAD
                lo, hi = max(es, off), min(es + len(ed), end)
                if ed[lo - es: hi - es] != data[lo - off: hi - off]:
                    conflict = True
            ee = es + len(ed)
            if ee > end:
                new_s.append(end)
                new_d.append(ed[end - es:])
        else:
            pos = off
            for k in range(i, j):
                es, ed = ss[k], dd[k]
                ee = es + len(ed)
                old_cost += len(ed) + SEG_OVERHEAD
                lo, hi = max(es, off), min(ee, end)
                if ed[lo - es: hi - es] != data[lo - off: hi - off]:
                    conflict = True
                if es > pos:
                    new_s.append(pos)
                    new_d.append(data[pos - off: es - off])
                new_s.append(es)
                new_d.append(ed)
                if ee > pos:
                    pos = ee
            if pos < end:
                new_s.append(pos)
                new_d.append(data[pos - off:])
        ss[i:j] = new_s
        dd[i:j] = new_d
        delta = sum(map(len, new_d)) + SEG_OVERHEAD * len(new_d) - old_cost
        h.oo_bytes += delta
        self._mem += delta
        if conflict:
            self._c["overlap_conflicts"] += 1
            self._anomaly(h.flow, "tcp.overlap_conflict")

    def _drain(self, h: _Half, ts: int, out: list[StreamEvent]) -> None:
        """Deliver buffered segments that became contiguous."""
        ss = h.oo_s
        if not ss or ss[0] > h.off:
            return
        dd = h.oo_d
        assert dd is not None
        flow, d, off, hist = h.flow, h.dir, h.off, h.hist
        k = 0
        nseg = len(ss)
        freed = 0
        while k < nseg and ss[k] <= off:
            s = ss[k]
            data = dd[k]
            freed += len(data) + SEG_OVERHEAD
            if s < off:
                data = data[off - s:]
            if data:
                out.append(StreamData(flow, d, off, data, ts))
                off += len(data)
                hist.append(data)
            k += 1
        del ss[:k]
        del dd[:k]
        h.oo_bytes -= freed
        self._mem -= freed
        h.off = off
        h.nxt = (h.base + off) & _MASK
        if len(hist) > _HIST_MAX:
            _trim(h)

    def _gap(self, h: _Half, length: int, reason: str, ts: int, out: list[StreamEvent]) -> None:
        out.append(StreamGap(h.flow, h.dir, h.off, length, ts, reason))
        c = self._c
        c["gaps"] += 1
        c["gap_bytes"] += length
        c["gaps_" + reason] += 1
        h.off += length
        h.nxt = (h.base + h.off) & _MASK
        h.hist.clear()
        h.hist_off = h.off

    def _skip_holes(self, h: _Half, limit: int, reason: str, ts: int, out: list[StreamEvent]) -> None:
        """Gap over holes before buffered data (or a FIN) up to ``limit``, delivering as we go."""
        while h.off < limit:
            ss = h.oo_s
            if ss:
                first = ss[0]
                if first > h.off:
                    self._gap(h, min(limit, first) - h.off, reason, ts, out)
                if h.off >= first:
                    self._drain(h, ts, out)
                else:
                    break
            elif h.fin_off > h.off:
                self._gap(h, min(limit, h.fin_off) - h.off, reason, ts, out)
            else:
                break

    def _acked(self, p: _Half, ack_off: int, ts: int, out: list[StreamEvent]) -> None:
        """The peer of ``p`` acknowledged ``p``'s stream up to ``ack_off``."""
        self._skip_holes(p, ack_off, "acked", ts, out)
        if p.fin_off >= 0 and p.off >= p.fin_off:
            self._close(p, "fin", ts, out)
        self._fix(p)

    def _memcap(self, h: _Half, ts: int, out: list[StreamEvent]) -> None:
        while h.oo_s and (h.oo_bytes > self.stream_memcap or self._mem > self.memcap):
            first = h.oo_s[0]
            if first > h.off:
                self._gap(h, first - h.off, "memcap", ts, out)
            self._drain(h, ts, out)

    def _truncate(self, h: _Half, limit: int) -> None:
        """Drop buffered bytes at or beyond ``limit``."""
        ss, dd = h.oo_s, h.oo_d
        if not ss or dd is None:
            return
        freed = 0
        while ss and ss[-1] >= limit:
            ss.pop()
            freed += len(dd.pop()) + SEG_OVERHEAD
        if ss and ss[-1] + len(dd[-1]) > limit:
            freed += len(dd[-1]) - (limit - ss[-1])
            dd[-1] = dd[-1][: limit - ss[-1]]
        h.oo_bytes -= freed
        self._mem -= freed

    # -- closing --------------------------------------------------------------------------
    def _close(self, h: _Half, reason: str, ts: int, out: list[StreamEvent]) -> None:
        if h.closed:
            return
        if h.pending or h.oo_s:
            limit = max(h.fin_off, h.off)
            if h.oo_s:
                ss, dd = h.oo_s, h.oo_d
                assert dd is not None
                limit = max(limit, ss[-1] + len(dd[-1]))
            self._skip_holes(h, limit, "lost", ts, out)
        out.append(StreamClosed(h.flow, h.dir, h.off, ts, reason))
        h.closed = True
        h.pending = False
        h.exp = -1
        h.hist = []
        if h.oo_bytes:  # defensive: nothing should be left
            self._mem -= h.oo_bytes
            h.oo_bytes = 0
        h.oo_s = h.oo_d = None
        flow = h.flow
        if h.peer.closed:
            if flow.state != _CLOSED:
                flow.state = _CLOSED
                self.flows.mark_closed(flow)
        elif flow.state < _CLOSING:
            flow.state = _CLOSING

    def _finish(self, flow: Flow, reason: str, ts: int, out: list[StreamEvent]) -> None:
        """Close both directions of a flow that leaves the table and drop its index entries."""
        h0, h1 = flow.ext["tcp"]
        self._close(h0, reason, ts, out)
        self._close(h1, reason, ts, out)
        idx = self._idx
        fp = self._fp
        for h in (h0, h1):
            if idx.get(h.key) is h:
                del idx[h.key]
                if fp is not None:
                    fp.forget(h.key)  # type: ignore[attr-defined]
        # no reference cycles left: a finished flow is freed by reference counting, not the GC
        del flow.ext["tcp"]
        h0.peer = h1.peer = _DEAD

    def _retire(self, flow: Flow, reason: str, ts: int, out: list[StreamEvent]) -> None:
        self._finish(flow, reason, ts, out)
        self.flows.remove(flow)

    def _on_evict(self, flow: Flow, ts: int) -> None:
        if "tcp" in flow.ext:
            self._finish(flow, "evicted", ts, self._out)

    def _anomaly(self, flow: Flow, code: str) -> None:
        """Record ``code`` on the flow (once) and count every occurrence."""
        self._c[code] = self._c.get(code, 0) + 1
        if code not in flow.anomalies:
            flow.anomalies.append(code)

    def _fix(self, h: _Half) -> None:
        """Recompute the derived fast-path fields of ``h``."""
        if h.closed:
            h.pending = False
            h.exp = -1
        else:
            h.pending = bool(h.oo_s) or h.fin_off > h.off
            h.exp = -1 if h.pending or h.base < 0 else h.nxt
        h.fast = h.base >= 0 and h.flow.state >= _ESTABLISHED


_DEAD = _Half.__new__(_Half)  # peer of the halves of a finished flow (breaks the h0 <-> h1 cycle)


def _set_base(h: _Half, seq: int) -> None:
    h.base = h.nxt = seq
    h.off = 0
    h.hist_off = 0


def _trim(h: _Half) -> None:
    hist = h.hist
    cut = len(hist) - _HIST_KEEP
    h.hist_off += sum(map(len, hist[:cut]))
    del hist[:cut]
