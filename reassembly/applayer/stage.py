"""The application-layer stage: detection by content, dispatch to each flow's parser, handoffs.

``AppLayer(protocols, factory, emit=...)`` takes TCP stream events (`feed`, `feed_all`) and UDP
packets (`feed_datagram`); the contract of table entries and parsers is in the package
docstring. Objects go to ``emit(list)``, metadata records to ``on_event``, a finished flow to
``on_flow_end`` (after its last objects). Time is packet time (`expire(now_ns)`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from appliance.model import (
    AppEvent,
    ContentObject,
    Direction,
    Flow,
    FlowKey,
    Packet,
    StreamClosed,
    StreamData,
    StreamEvent,
    StreamGap,
)
from reassembly.applayer.base import IGNORE, AppProtocol, ParserContext, Tagged, ignore
from reassembly.applayer.expect import Expectations
from reassembly.flows import FlowTable
from reassembly.objects import ObjectFactory

log = logging.getLogger("tapsift.applayer")

_NONE: list[ContentObject] = []
"""Shared empty result (never appended to)."""

DETECT_LIMIT = 8192
"""Bytes per direction looked at before a flow is given up as an unknown protocol."""

MAX_HANDOFFS = 8
"""Handoffs one flow may go through (a tunnel in a tunnel…); beyond, the rest is ignored."""

_NO_ROUTE = (None, None, None)
"""The decision for a UDP conversation no datagram entry claims."""

_Lineage = tuple[Mapping[str, str], str, int]
"""(meta, host, handoffs) a flow carries over a handoff."""


class _Detect:
    """A flow whose protocol is not known yet: its events are held and probed."""

    __slots__ = ("events", "flow", "layer", "lineage", "order", "seen", "skip")

    def __init__(self, layer: AppLayer, flow: Flow, lineage: _Lineage | None) -> None:
        self.layer = layer
        self.flow = flow
        self.order = layer.probe_order(flow.server_port)
        self.lineage = lineage
        self.events: list[StreamEvent] = []
        self.seen = [b"", b""]
        self.skip: list[StreamGap | None] = [None, None]

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        d = ev.direction
        seen = self.seen
        if type(ev) is StreamData and self.flow.midstream and not seen[1 - d] and (
            self.skip[d] is not None or len(seen[d]) + len(ev.data) > DETECT_LIMIT
        ):
            # Picked up mid-stream and only one side talks (the rest of a big body): hold no
            # bytes, only a gap, until the other side says something a parser can lock on to.
            # A long chunk (the fast path joins segments) is first looked at as the segments
            # before it would have been: up to just under the detection limit.
            if self.skip[d] is None and len(seen[d]) < DETECT_LIMIT - 1:
                before = seen[d]
                seen[d] = before + ev.data[: DETECT_LIMIT - 1 - len(before)]
                entry = self._decide(ev)
                if entry is not None:
                    self.events.append(ev)
                    return self._start(entry)
                seen[d] = before
            self._skip(ev)
            return _NONE
        self.events.append(ev)
        if type(ev) is StreamData and len(seen[d]) < DETECT_LIMIT:
            seen[d] += ev.data[: DETECT_LIMIT - len(seen[d])]
        entry = self._decide(ev)
        return _NONE if entry is None else self._start(entry)

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        """The flow ended undecided (a handoff during its last event): the fallback takes it."""
        layer = self.layer
        parser = layer.start(flow, layer.fallback, lineage=self.lineage)
        out = layer.replay(flow, self.events)
        out.extend(layer.forget(flow, parser).close(flow, ts_ns))
        return out

    def _decide(self, ev: StreamEvent) -> AppProtocol | None:
        """The entry of the first probe that says yes; the fallback once every probe said no,
        enough bytes were seen, or the flow ended; None to wait for more."""
        flow = self.flow
        cli, srv = self.seen
        all_no = bool(cli or srv)
        for entry in self.order:
            try:
                v = entry.probe(cli, srv, flow)  # type: ignore[misc]
            except Exception:  # a broken probe says no
                v = False
            if v:
                return entry
            if v is None:
                all_no = False
        both_closed = type(ev) is StreamClosed and sum(type(e) is StreamClosed for e in self.events) >= 2
        if all_no or both_closed or len(cli) >= DETECT_LIMIT or len(srv) >= DETECT_LIMIT:
            return self.layer.fallback
        return None

    def _skip(self, ev: StreamData) -> None:
        d = ev.direction
        gap = self.skip[d]
        if gap is None:
            held = [e for e in self.events if e.direction == d and type(e) is StreamData]
            start = held[0].offset if held else ev.offset
            self.events = [e for e in self.events if not (e.direction == d and type(e) is StreamData)]
            gap = self.skip[d] = StreamGap(ev.flow, d, start, 0, ev.ts_ns, "midstream")
            self.events.append(gap)
            self.seen[d] = b""
        gap.length = ev.offset + len(ev.data) - gap.offset
        gap.ts_ns = ev.ts_ns

    def _start(self, entry: AppProtocol) -> list[ContentObject]:
        layer = self.layer
        layer.start(self.flow, entry, lineage=self.lineage)
        return layer.replay(self.flow, self.events)


class AppLayer:
    """Routes each flow's stream events (and UDP packets) to the parser of its protocol."""

    def __init__(
        self,
        protocols: Iterable[AppProtocol],
        factory: ObjectFactory,
        *,
        emit: Callable[[list[ContentObject]], None],
        limits: Mapping[str, Any] | None = None,
        on_flow_end: Callable[[Flow], None] | None = None,
        on_event: Callable[[AppEvent], None] | None = None,
        zone_of: Callable[[Flow], tuple[str, str]] | None = None,
        expectations: Expectations | None = None,
        udp_seed: int = 1024,
        max_udp_flows: int = 65536,
    ) -> None:
        table = tuple(protocols)
        self.factory = factory
        self.emit = emit
        self.on_flow_end = on_flow_end
        self.on_event = on_event
        self.zone_of = zone_of
        """(source zone, destination zone) of a new flow; None = every flow is any→any."""
        self.expectations = expectations if expectations is not None else Expectations()
        self._limits: dict[str, Any] = dict(limits or {})
        self._by_name = {p.name: p for p in table}
        stream = [p for p in table if p.transport == "tcp"]
        fallback = [p for p in stream if p.fallback]
        self.fallback = fallback[0] if fallback else AppProtocol("", ignore, fallback=True)
        self._probed = tuple(p for p in stream if p.probe is not None and not p.fallback)
        self._orders = _port_orders(self._probed)
        dgram = tuple(p for p in table if p.transport == "udp" and p.probe is not None)
        self._dgram_orders = _port_orders(dgram)
        self._dgram = dgram
        self.datagrams = bool(dgram)
        """Whether any entry takes UDP (else the sensor need not hand UDP packets over)."""
        self._apps: dict[str, Any] = {}
        self._closes: dict[str, list[StreamClosed]] = {}
        self._retired: dict[str, list[Any]] = {}
        self._shared: dict[str, object] = {}
        self._udp: dict[tuple[bytes, int, bytes, int, int], tuple[Any, Any, Any]] = {}
        self._udp_cap = 4 * max_udp_flows
        self._udp_flows = FlowTable(max_udp_flows, seed=udp_seed, on_evict=self._udp_evicted)
        self.app_protos: Counter[str] = Counter()
        """Finished flows per ``app_proto`` (``unknown``: none recognised)."""
        self._failures: set[str] = set()
        """Protocols whose parser raised (logged with a traceback once each)."""

    # -- configuration ----------------------------------------------------------------------
    def set_limits(self, limits: Mapping[str, Any]) -> None:
        """New per-protocol limits: flows that start from now on use them (flows in progress
        finish with theirs; shared state such as HTTP's range stitching starts afresh)."""
        self._limits = dict(limits)
        self._shared = {}

    def probe_order(self, server_port: int) -> tuple[AppProtocol, ...]:
        """Probing order for a flow to ``server_port``: entries hinting the port first."""
        return self._orders.get(server_port, self._probed)

    def parser_of(self, flow: Flow) -> Any:
        """The current parser (or detection state) of a flow, None when it has none."""
        return self._apps.get(flow.uid)

    def forget(self, flow: Flow, default: Any = None) -> Any:
        """Drop (and return) the flow's current parser."""
        return self._apps.pop(flow.uid, default)

    # -- streams ----------------------------------------------------------------------------
    def feed(self, ev: StreamEvent) -> None:
        """One stream event (the fast path's runs come one at a time)."""
        flow = ev.flow
        app = self._apps.get(flow.uid)
        if app is None:
            app = self._open(flow)
        try:
            objs = app.feed(ev)
        except Exception:  # a parser bug costs its flow, never the stage
            objs = self._failed(flow, app)
        if objs:
            self.emit(objs)
        if type(ev) is StreamClosed:
            self._closed(flow, ev)

    def feed_all(self, events: list[StreamEvent]) -> None:
        """`feed` for each of ``events`` (what one packet of the Python path caused)."""
        apps = self._apps
        emit = self.emit
        for ev in events:
            flow = ev.flow
            app = apps.get(flow.uid)
            if app is None:
                app = self._open(flow)
            try:
                objs = app.feed(ev)
            except Exception:  # a parser bug costs its flow, never the stage
                objs = self._failed(flow, app)
            if objs:
                emit(objs)
            if type(ev) is StreamClosed:
                self._closed(flow, ev)

    def _failed(self, flow: Flow, app: Any) -> list[ContentObject]:
        """A parser raised: the rest of its flow is ignored, and the flow says so (its anomaly
        ``applayer.parser_error`` is reported when the flow ends)."""
        if "applayer.parser_error" not in flow.anomalies:
            flow.anomalies.append("applayer.parser_error")
        name = flow.app_proto or type(app).__name__
        if name not in self._failures:
            self._failures.add(name)
            log.exception("application-layer parser %s failed on flow %s (further failures are counted)",
                          name, flow.uid)
        if flow.uid in self._apps:
            self._apps[flow.uid] = IGNORE
        return _NONE

    def _open(self, flow: Flow) -> Any:
        """A new flow: its zones, an expected connection, else detection."""
        if self.zone_of is not None:
            flow.src_zone, flow.dst_zone = self.zone_of(flow)
        expected = self.expectations.match(flow)
        if expected is not None:
            entry = self._by_name.get(getattr(expected, "protocol", ""))
            if entry is not None:
                return self.start(flow, entry, expected=expected)
        det = self._apps[flow.uid] = _Detect(self, flow, None)
        return det

    def start(self, flow: Flow, entry: AppProtocol, *, expected: object = None,
              lineage: _Lineage | None = None) -> Any:
        """Make ``entry``'s parser the flow's (labelling the flow unless it is the fallback)."""
        lim = self._limits.get(entry.limits_from or entry.name, entry.limits)
        shared = None
        if entry.shared is not None:
            shared = self._shared.get(entry.name)
            if shared is None:
                shared = self._shared[entry.name] = entry.shared(self.factory, lim)
        meta, host, handoffs = lineage if lineage is not None else ({}, "", 0)
        ctx = ParserContext(flow, self.factory, lim, self.expectations, self.on_event, self._handoff,
                            expected=expected, shared=shared, meta=meta, host=host, handoffs=handoffs)
        parser = entry.factory(flow, ctx)
        if meta or host:
            parser = Tagged(parser, meta, host)
        flow.app_proto = flow.app_proto or "" if entry.fallback else entry.name
        self._apps[flow.uid] = parser
        return parser

    def replay(self, flow: Flow, events: Iterable[StreamEvent]) -> list[ContentObject]:
        """Feed held events to the flow's parser (which a handoff may change on the way)."""
        out: list[ContentObject] = []
        apps, uid = self._apps, flow.uid
        for ev in events:
            objs = apps[uid].feed(ev)
            if objs:
                out.extend(objs)
        return out

    def _closed(self, flow: Flow, ev: StreamClosed) -> None:
        uid = flow.uid
        closes = self._closes.get(uid)
        if closes is None:
            self._closes[uid] = [ev]
            return
        del self._closes[uid]
        self._end(flow, ev.ts_ns)

    def _end(self, flow: Flow, ts_ns: int) -> None:
        """Both directions are over: close the flow's parsers (retired ones first), report."""
        uid = flow.uid
        out: list[ContentObject] = []
        for parser in (*self._retired.pop(uid, ()), self._apps.pop(uid, None)):
            if parser is not None:
                try:
                    objs = parser.close(flow, ts_ns)
                except Exception:
                    objs = self._failed(flow, parser)
                if objs:
                    out.extend(objs)
        if out:
            self.emit(out)
        self.app_protos[flow.app_proto or "unknown"] += 1
        if self.on_flow_end is not None:
            self.on_flow_end(flow)

    def _handoff(self, ctx: ParserContext, at: tuple[int, int], ts_ns: int, protocol: str | None,
                 replay: tuple[bytes, bytes], meta: Mapping[str, str], host: str) -> list[ContentObject]:
        """`ParserContext.handoff`: retire the flow's parser, start the next one, replay."""
        flow = ctx.flow
        uid = flow.uid
        old = self._apps.get(uid)
        if old is not None:
            self._retired.setdefault(uid, []).append(old)
        lineage = ({**ctx.meta, **meta}, host or ctx.host, ctx.handoffs + 1)
        if lineage[2] > MAX_HANDOFFS:
            if "applayer.too_many_handoffs" not in flow.anomalies:
                flow.anomalies.append("applayer.too_many_handoffs")
            self._apps[uid] = IGNORE
            return _NONE
        if protocol is None:
            self._apps[uid] = _Detect(self, flow, lineage)
        else:
            entry = self._by_name.get(protocol)
            if entry is None or entry.transport != "tcp":
                self._apps[uid] = IGNORE  # nothing in the table speaks it: the rest is not looked into
                return _NONE
            self.start(flow, entry, lineage=lineage)
        events: list[StreamEvent] = [StreamData(flow, Direction(d), at[d], replay[d], ts_ns)
                                     for d in (0, 1) if replay[d]]
        events.extend(self._closes.get(uid, ()))
        return self.replay(flow, events)

    # -- datagrams --------------------------------------------------------------------------
    def feed_datagram(self, pkt: Packet) -> None:
        """One UDP packet: a conversation no entry claimed costs this one dict lookup."""
        key = (pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.vlan)
        parser, flow, d = self._udp.get(key) or self._udp_open(pkt, key)
        if parser is None:
            return
        ts = pkt.ts_ns
        if ts > flow.last_ts_ns:
            flow.last_ts_ns = ts
        flow.pkts[d] += 1
        flow.bytes[d] += len(pkt.payload)
        try:
            objs = parser.feed_datagram(pkt, d)
        except Exception:
            objs = self._failed(flow, parser)
        if objs:
            self.emit(objs)

    def _udp_open(self, pkt: Packet, key: tuple[bytes, int, bytes, int, int]) -> tuple[Any, Any, Any]:
        """The first datagram of a conversation: probe it, remember the decision both ways."""
        rkey = (pkt.dst, pkt.dport, pkt.src, pkt.sport, pkt.vlan)
        payload = pkt.payload
        if not payload:
            return _NO_ROUTE  # decided by the first datagram that carries something
        if len(self._udp) >= self._udp_cap:
            self._udp = {k: v for k, v in self._udp.items() if v[0] is not None}
        flows = self._udp_flows
        fk = FlowKey.of(pkt.src, pkt.sport, pkt.dst, pkt.dport, 17, pkt.vlan)
        flow = flows.create(fk, pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.ts_ns, pkt.iface)
        order = self._dgram_orders.get(pkt.dport) or self._dgram_orders.get(pkt.sport) or self._dgram
        entry = next((e for e in order if _probe_datagram(e, payload, flow)), None)
        if entry is None:
            flows.remove(flow)
            self._udp[key] = self._udp[rkey] = _NO_ROUTE
            return _NO_ROUTE
        if self.zone_of is not None:
            flow.src_zone, flow.dst_zone = self.zone_of(flow)
        parser = self.start(flow, entry)
        del self._apps[flow.uid]  # datagram parsers live in the route table
        route = self._udp[key] = (parser, flow, Direction.TO_SERVER)
        self._udp[rkey] = (parser, flow, Direction.TO_CLIENT)
        return route

    def _udp_end(self, flow: Flow, ts_ns: int) -> None:
        fwd = (flow.client_ip, flow.client_port, flow.server_ip, flow.server_port, flow.vlan)
        route = self._udp.pop(fwd, None)
        self._udp.pop((flow.server_ip, flow.server_port, flow.client_ip, flow.client_port, flow.vlan), None)
        if route is None or route[0] is None:
            return
        try:
            objs = route[0].close(flow, ts_ns)
        except Exception:
            objs = self._failed(flow, route[0])
        if objs:
            self.emit(objs)
        self.app_protos[flow.app_proto or "unknown"] += 1
        if self.on_flow_end is not None:
            self.on_flow_end(flow)

    def _udp_evicted(self, flow: Flow, ts_ns: int) -> None:
        self._udp_end(flow, ts_ns)

    # -- time -------------------------------------------------------------------------------
    def expire(self, now_ns: int) -> None:
        """Packet time ``now_ns``: idle UDP conversations time out. (Expectations are checked
        against the new flow's first packet time when matched, and the table is capped.)"""
        if self._udp:
            for flow in self._udp_flows.expire(now_ns):
                self._udp_end(flow, now_ns)

    def finish(self) -> None:
        """End of input, after the TCP flows were flushed: UDP conversations end too."""
        for flow in self._udp_flows.clear():
            self._udp_end(flow, flow.last_ts_ns)
        self._apps.clear()
        self._closes.clear()
        self._retired.clear()


def _probe_datagram(entry: AppProtocol, payload: bytes, flow: Flow) -> bool:
    try:
        return bool(entry.probe(payload, b"", flow))  # type: ignore[misc]
    except Exception:  # a broken probe says no
        return False


def _port_orders(entries: tuple[AppProtocol, ...]) -> dict[int, tuple[AppProtocol, ...]]:
    """Per hinted port: the entries hinting it first, then the rest, each in table order."""
    ports = {port for e in entries for port in e.ports}
    return {port: tuple(e for e in entries if port in e.ports) + tuple(e for e in entries if port not in e.ports)
            for port in ports}
