"""The application-layer stage, by scripted stream events: one table, detection by content
(port hints only order the probes), expectations, handoffs, datagram routing, limits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from appliance.model import AppEvent, ContentObject, Direction, Flow, Packet, StreamData, StreamEvent
from reassembly.applayer import AppProtocol, Limits, ParserContext
from reassembly.applayer.stage import DETECT_LIMIT, MAX_HANDOFFS, AppLayer
from reassembly.applayer.table import PROTOCOLS
from reassembly.objects import ObjectFactory, flow_ref
from tests.reassembly.factories import C, S, Stream, make_flow

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"


class Recorder:
    """A test protocol's parser: keeps what it was fed; one object per direction at close."""

    def __init__(self, flow: Flow, ctx: ParserContext) -> None:
        self.flow, self.ctx = flow, ctx
        self.events: list[StreamEvent] = []
        self.closed = 0

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        self.events.append(ev)
        if type(ev) is StreamData and ev.data.startswith(b"EVENT"):
            self.ctx.emit_event("hello", {"said": ev.data.decode()}, ev.ts_ns, ev.direction)
        if type(ev) is StreamData and b"SWITCH" in ev.data:  # hand the rest after "SWITCH\n" on
            cut = ev.data.index(b"SWITCH") + 7
            at = [0, 0]
            at[ev.direction] = ev.offset + cut
            replay = [b"", b""]
            replay[ev.direction] = ev.data[cut:]
            return self.ctx.handoff((at[0], at[1]), ev.ts_ns, replay=(replay[0], replay[1]),
                                    meta={"via": "switch"}, host="switched.example")
        return []

    def data(self, d: Direction) -> bytes:
        return b"".join(e.data for e in self.events if type(e) is StreamData and e.direction == d)

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        self.closed += 1
        out = []
        for d in (Direction.TO_SERVER, Direction.TO_CLIENT):
            data = self.data(d)
            if data:
                b = self.ctx.factory.builder(limit=self.ctx.limits.body_limit)
                b.add(data)
                out.append(self.ctx.factory.finish(b, source=flow.app_proto, direction=d,
                                                   flow=flow_ref(flow, d), ts_ns=ts_ns))
        return out


def _starts(prefix: bytes):  # a probe: the client's first bytes start with ``prefix``
    def probe(client: bytes, server: bytes, flow: Flow) -> bool | None:
        if len(client) < len(prefix):
            return None if prefix.startswith(client) else False
        return client.startswith(prefix)
    return probe


class Run:
    """An AppLayer over a table, recording what comes out, in order."""

    def __init__(self, table: tuple[AppProtocol, ...], **kw: object) -> None:
        self.out: list[tuple[str, object]] = []
        self.parsers: list[Recorder] = []
        self.layer = AppLayer(table, ObjectFactory(), emit=lambda objs: self.out.extend(("obj", o) for o in objs),
                              on_flow_end=lambda f: self.out.append(("end", f.uid)),
                              on_event=lambda e: self.out.append(("event", e)), **kw)  # type: ignore[arg-type]

    def feed(self, events: list[StreamEvent]) -> None:
        self.layer.feed_all(events)

    @property
    def objects(self) -> list[ContentObject]:
        return [o for k, o in self.out if k == "obj"]  # type: ignore[misc]


def recording(name: str, **kw: object) -> tuple[AppProtocol, list[Recorder]]:
    made: list[Recorder] = []

    def factory(flow: Flow, ctx: ParserContext) -> Recorder:
        r = Recorder(flow, ctx)
        made.append(r)
        return r

    return AppProtocol(name, factory, **kw), made  # type: ignore[arg-type]


def test_every_table_entry_is_one_protocol() -> None:
    names = [p.name for p in PROTOCOLS]
    assert len(names) == len(set(names))
    assert [p.name for p in PROTOCOLS if p.fallback] == ["raw"]
    # reached without probing: through an expectation (their contexts name them) or a handoff (HTTP's 101)
    assert {p.name for p in PROTOCOLS if p.probe is None and not p.fallback} == {"ftp-data", "irc-dcc", "websocket"}
    assert all(isinstance(p.limits, Limits) for p in PROTOCOLS)


def test_detection_by_content_and_replay_from_offset_zero() -> None:
    echo, made = recording("echo", probe=_starts(b"ECHO "))
    run = Run((echo, *PROTOCOLS))
    s = Stream(make_flow(sport=443))  # the port says TLS, the bytes say echo
    run.feed(s.data(C, b"EC") + s.data(C, b"HO one\n") + s.data(S, b"ONE\n") + s.close(C) + s.close(S))
    (r,) = made
    assert s.flow.app_proto == "echo" and r.data(C) == b"ECHO one\n" and r.data(S) == b"ONE\n"
    assert r.closed == 1 and run.out[-1] == ("end", s.flow.uid)
    assert [o.direction for o in run.objects] == [C, S]  # the objects come before the flow's end
    assert run.layer.app_protos == {"echo": 1} and not run.layer._apps and not run.layer._closes


def test_port_hints_order_probes_but_are_never_required() -> None:
    first, _ = recording("first", probe=_starts(b"HI"))
    second, _ = recording("second", probe=_starts(b"HI"), ports=frozenset({7000}))
    run = Run((first, second))
    a, b = Stream(make_flow("Ca", sport=7000)), Stream(make_flow("Cb", sport=7001))
    run.feed(a.data(C, b"HI there") + b.data(C, b"HI there") + a.close(C) + a.close(S) + b.close(C) + b.close(S))
    assert (a.flow.app_proto, b.flow.app_proto) == ("second", "first")  # the hint breaks the tie
    only, _ = recording("only", probe=_starts(b"HI"), ports=frozenset({1}))
    c = Stream(make_flow("Cc", sport=9))
    Run((only,)).feed(c.data(C, b"HI") + c.close(C) + c.close(S))
    assert c.flow.app_proto == "only"


def test_unknown_stream_goes_to_the_fallback_once_every_probe_said_no() -> None:
    run = Run(PROTOCOLS)
    s = Stream()
    run.feed(s.data(C, PDF) + s.close(C) + s.close(S))
    (obj,) = run.objects
    assert obj.source == "tcp-stream" and obj.md5 == hashlib.md5(PDF).hexdigest()
    assert s.flow.app_proto == "" and run.layer.app_protos == {"unknown": 1}
    # undecided (a probe keeps saying "need more") until the detection limit
    slow, _ = recording("slow", probe=lambda c, srv, f: None)
    run = Run((slow, *PROTOCOLS))
    t = Stream(make_flow("Cx"))
    run.feed(t.data(C, PDF[:100]))
    assert run.layer.parser_of(t.flow).__class__.__name__ == "_Detect"
    run.feed(t.data(C, bytes(DETECT_LIMIT)))
    assert run.layer.parser_of(t.flow).__class__.__name__ == "RawStream"


def test_expected_connection_skips_probing() -> None:
    data, made = recording("data")

    @dataclass
    class Ctx:
        protocol: str = "data"
        data_uid: str = ""

    run = Run((data, *PROTOCOLS))
    ctx = Ctx()
    flow = make_flow("Cdata", cport=50000, sport=20)
    run.layer.expectations.expect(flow.server_ip, 20, ctx, now_ns=0)
    s = Stream(flow)
    run.feed(s.data(S, b"GET / HTTP/1.1\r\n\r\n") + s.close(S) + s.close(C))  # looks like HTTP: not probed
    (r,) = made
    assert flow.app_proto == "data" and r.ctx.expected is ctx and ctx.data_uid == "Cdata"


def test_handoff_replays_the_rest_to_detection_and_tags_later_objects() -> None:
    outer, outer_made = recording("outer", probe=_starts(b"OUTER"))
    inner, inner_made = recording("inner", probe=_starts(b"INNER"))
    run = Run((outer, inner))
    s = Stream()
    run.feed(s.data(S, b"banner\n") + s.close(S))  # one direction closed before the handoff
    run.feed(s.data(C, b"OUTER hello\nSWITCH\nINN") + s.data(C, b"ER payload"))
    run.feed(s.close(C))
    (o,), (i,) = outer_made, inner_made
    assert o.data(C) == b"OUTER hello\nSWITCH\nINN"  # fed that event whole, it handed its tail on
    assert [(type(e).__name__, e.direction, e.offset) for e in i.events] == [
        ("StreamData", C, 19), ("StreamClosed", S, 7), ("StreamData", C, 22), ("StreamClosed", C, 32)]
    assert i.data(C) == b"INNER payload" and s.flow.app_proto == "inner"
    assert o.closed == i.closed == 1  # the retired parser is closed too, first
    objs = run.objects
    assert [o.meta for o in objs[-1:]] == [{"via": "switch"}] and objs[-1].host == "switched.example"
    assert "via" not in objs[0].meta  # the outer parser's own objects are untouched


def test_handoff_to_a_named_protocol_or_to_nothing() -> None:
    class Switch(Recorder):
        def feed(self, ev: StreamEvent) -> list[ContentObject]:
            self.events.append(ev)
            if type(ev) is StreamData and ev.data == b"GO":
                return self.ctx.handoff((ev.offset + 2, 0), ev.ts_ns, protocol=self.flow.uid.lower())
            return []

    start = AppProtocol("start", Switch, probe=_starts(b"GO"))
    named, made = recording("cnamed")
    run = Run((start, named))
    a, b = Stream(make_flow("Cnamed")), Stream(make_flow("Cmissing"))
    run.feed(a.data(C, b"GO") + a.data(C, b"later") + b.data(C, b"GO") + b.data(C, b"dropped"))
    assert a.flow.app_proto == "cnamed" and made[0].data(C) == b"later"
    assert b.flow.app_proto == "start"  # no entry of that name: the rest is not looked into


def test_a_handoff_loop_is_cut() -> None:
    class Again(Recorder):
        def feed(self, ev: StreamEvent) -> list[ContentObject]:
            if type(ev) is StreamData and ev.data:
                return self.ctx.handoff((ev.offset + 1, 0), ev.ts_ns, protocol="again", replay=(ev.data[1:], b""))
            return []

    run = Run((AppProtocol("again", Again, probe=_starts(b"A")),))
    s = Stream()
    run.feed(s.data(C, b"A" * 50) + s.close(C) + s.close(S))
    assert "applayer.too_many_handoffs" in s.flow.anomalies and MAX_HANDOFFS < 50
    assert run.out[-1] == ("end", s.flow.uid)


def test_metadata_events_reach_on_event() -> None:
    talk, _ = recording("talk", probe=_starts(b"EVENT"))
    run = Run((talk,))
    s = Stream()
    run.feed(s.data(C, b"EVENT one") + s.close(C) + s.close(S))
    (ev,) = [e for k, e in run.out if k == "event"]
    assert isinstance(ev, AppEvent) and ev.event_type == "hello" and ev.fields == {"said": "EVENT one"}
    assert ev.flow.uid == s.flow.uid and ev.flow.dest_port == s.flow.server_port


class Datagrams:
    """A datagram protocol: an event per datagram, one object of all payloads at close."""

    def __init__(self, flow: Flow, ctx: ParserContext) -> None:
        self.ctx, self.seen = ctx, []

    def feed_datagram(self, pkt: Packet, direction: Direction) -> list[ContentObject]:
        self.seen.append((direction, pkt.payload))
        self.ctx.emit_event("ping", {"n": len(self.seen)}, pkt.ts_ns, direction)
        return []

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        b = self.ctx.factory.builder()
        b.add(b"".join(p for _, p in self.seen))
        return [self.ctx.factory.finish(b, source="ping", direction=Direction.TO_SERVER, flow=flow_ref(flow),
                                        ts_ns=ts_ns)]


def _udp(src: tuple[str, int], dst: tuple[str, int], payload: bytes, ts: int) -> Packet:
    import ipaddress

    return Packet(ts, "eth0", 0, ipaddress.ip_address(src[0]).packed, ipaddress.ip_address(dst[0]).packed,
                  src[1], dst[1], 17, 0, 0, 0, 0, payload)


def test_datagrams_are_routed_by_content_and_unclaimed_ones_cost_one_lookup() -> None:
    ping = AppProtocol("ping", Datagrams, probe=lambda c, s, f: c.startswith(b"PING"), transport="udp")
    run = Run((*PROTOCOLS, ping))
    assert run.layer.datagrams
    a, b = ("10.0.0.1", 5000), ("10.0.0.2", 9999)  # no port hint: content decides
    feed = run.layer.feed_datagram
    feed(_udp(a, b, b"PING 1", 1_000))
    feed(_udp(b, a, b"PONG 1", 2_000))
    feed(_udp(("10.0.0.3", 53), b, b"\x12\x34junk", 3_000))
    feed(_udp(b, ("10.0.0.3", 53), b"more junk", 4_000))
    assert [e.fields["n"] for k, e in run.out if k == "event"] == [1, 2]
    routes = run.layer._udp
    assert len(routes) == 4 and sum(r[0] is None for r in routes.values()) == 2  # one decision per direction
    run.layer.expire(400 * 10**9)  # idle conversations end (packet time)
    (obj,) = run.objects
    assert obj.source == "ping" and obj.md5 == hashlib.md5(b"PING 1PONG 1").hexdigest()
    assert run.out[-1][0] == "end" and run.layer.app_protos == {"ping": 1}
    assert Run(PROTOCOLS).layer.datagrams  # the default table takes DNS and QUIC


def test_new_limits_apply_to_new_flows() -> None:
    rec, _ = recording("rec", probe=_starts(b"R"))
    run = Run((rec,), limits={"rec": Limits(body_limit=5)})
    a = Stream(make_flow("Ca"))
    run.feed(a.data(C, b"R" + b"x" * 20))
    run.layer.set_limits({"rec": Limits(body_limit=50)})
    b = Stream(make_flow("Cb"))
    run.feed(b.data(C, b"R" + b"y" * 20) + a.close(C) + a.close(S) + b.close(C) + b.close(S))
    assert [(o.size, o.truncated) for o in run.objects] == [(5, ("body_limit",)), (21, ())]



def test_a_parser_that_raises_costs_its_flow_not_the_stage() -> None:
    class Broken(Recorder):
        def feed(self, ev: StreamEvent) -> list[ContentObject]:
            if type(ev) is StreamData and b"boom" in ev.data:
                raise ValueError("parser bug")
            return super().feed(ev)

    def bad_probe(client: bytes, server: bytes, flow: Flow) -> bool:
        raise RuntimeError("probe bug")

    run = Run((AppProtocol("flaky", lambda c, s, f: None, probe=bad_probe),
               AppProtocol("broken", Broken, probe=_starts(b"B")), *PROTOCOLS))
    a, b = Stream(make_flow("Ca")), Stream(make_flow("Cb"))
    run.feed(a.data(C, b"B boom") + a.data(C, b"more") + b.data(C, PDF) + a.close(C) + a.close(S)
             + b.close(C) + b.close(S))
    assert a.flow.anomalies == ["applayer.parser_error"] and a.flow.app_proto == "broken"
    assert [o.source for o in run.objects] == ["tcp-stream"]  # the other flow is untouched
    assert [k for k, _ in run.out].count("end") == 2
