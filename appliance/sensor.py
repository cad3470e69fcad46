"""The composition root: the only place that knows the stage order.

frames → capture.decode → reassembly.tcp → protocol detection → HTTP / SMTP / FTP parsers →
content objects → outputs. Each stage is sans-IO; this module wires them, routes stream
events to the parser of their flow, and counts what happened. Time is packet time.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any

from appliance.model import (
    Alert,
    ContentObject,
    Direction,
    Flow,
    Frame,
    StreamClosed,
    StreamData,
    StreamEvent,
    StreamGap,
)
from appliance.settings import Settings
from capture.decode import Decoder
from reassembly import detect, ftp, irc, smb, smtp
from reassembly.content import HttpContentAssembler
from reassembly.http1 import Http1Parser
from reassembly.objects import ObjectBuilder, ObjectFactory, flow_ref
from reassembly.sniff import sniff_signature
from reassembly.tcp import TcpReassembler

if TYPE_CHECKING:  # the inspection stage is imported only when a policy is in use
    from appliance.inspection import InspectionStage
    from capture.live import RingReader
    from capture.pcapfile import CaptureFile
    from policies.engine import Suppressed

_NONE: list[ContentObject] = []
"""Shared empty result (never appended to)."""

_DETECT_LIMIT = 8192
"""Bytes per direction looked at before a flow is given up as an unknown protocol."""

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


@dataclass
class Stats:
    """What the sensor did; reported in the closing ``stats`` event and the CLI summary."""

    packets: int = 0
    bytes: int = 0
    tcp_packets: int = 0
    udp_packets: int = 0
    other_packets: int = 0
    objects: int = 0
    children: int = 0
    alerts: int = 0
    suppressed: int = 0
    first_ts_ns: int = 0
    last_ts_ns: int = 0
    anomalies: Counter[str] = field(default_factory=Counter)
    app_protos: Counter[str] = field(default_factory=Counter)
    inspector_errors: int = 0


class _Http:
    """Routes one flow's stream events through its HTTP parser and the content assembler."""

    __slots__ = ("assembler", "parser")

    def __init__(self, flow: Flow, assembler: HttpContentAssembler, settings: Settings) -> None:
        self.parser = Http1Parser(
            flow, max_header_bytes=settings.http.max_header_bytes, body_limit=settings.http.body_limit
        )
        self.assembler = assembler

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        hevs = self.parser.feed(ev)
        if not hevs:
            return _NONE
        feed = self.assembler.feed
        if len(hevs) == 1:
            return feed(hevs[0])
        out: list[ContentObject] = []
        for hev in hevs:
            objs = feed(hev)
            if objs:
                out.extend(objs)
        return out

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        return self.assembler.close_flow(flow, ts_ns)


class _RawStream:
    """An unrecognised TCP stream: each direction kept as one object, reported only when it
    starts with a known file signature (a DCC or netcat transfer, a bare file push)."""

    __slots__ = ("builders", "factory")

    def __init__(self, factory: ObjectFactory, limit: int) -> None:
        self.factory = factory
        self.builders = (factory.builder(limit=limit), factory.builder(limit=limit))

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        b = self.builders[ev.direction]
        if isinstance(ev, StreamData):
            b.add(ev.data)
        elif isinstance(ev, StreamGap):
            b.add_gap(ev.length)
        return []

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        out = []
        for d in (Direction.TO_SERVER, Direction.TO_CLIENT):
            b: ObjectBuilder = self.builders[d]
            if b.size < 64:
                continue
            # Only unambiguous file signatures: libmagic's weaker rules (TGA, "data" variants)
            # match random binary chatter.
            head = b.head
            if not (sniff_signature(head)[0] or head.startswith(_OLE_MAGIC)):
                continue
            out.append(self.factory.finish(
                b, source="tcp-stream", direction=d, flow=flow_ref(flow, d), ts_ns=ts_ns, kind="stream",
            ))
        return out


class _Ignore:
    """A flow whose protocol tapsift does not inspect (TLS, SSH, …)."""

    __slots__ = ()

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        return []

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        return []


_IGNORE = _Ignore()


class _Pending:
    """Stream events held while a flow's protocol is not yet known."""

    __slots__ = ("events", "seen", "skip")

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []
        self.seen = [b"", b""]
        self.skip: list[StreamGap | None] = [None, None]


class Sensor:
    """Runs the whole pipeline over frames and hands content objects to ``on_object``."""

    def __init__(
        self,
        settings: Settings,
        on_object: Callable[[ContentObject], None],
        on_flow_end: Callable[[Flow], None] | None = None,
        *,
        inspection: InspectionStage | None = None,
        on_alert: Callable[[Alert, ContentObject], None] | None = None,
        on_suppressed: Callable[[Suppressed], None] | None = None,
        zone_of: Callable[[Flow], tuple[str, str]] | None = None,
        id_prefix: str = "F",
    ) -> None:
        self.settings = settings
        self.on_object = on_object
        self.on_flow_end = on_flow_end
        self.inspection = inspection
        self.on_alert = on_alert
        self.on_suppressed = on_suppressed
        self.zone_of = zone_of if zone_of is not None else (inspection.zones if inspection is not None else None)
        """(source zone, destination zone) of a new flow; None = every flow is any→any."""
        cs, rs, hs = settings.capture, settings.reassembly, settings.http
        self.decoder = Decoder(
            verify_checksums=cs.verify_checksums,
            defrag_timeout_ns=int(cs.defrag_timeout_s * 1e9),
            defrag_memcap=cs.defrag_memcap,
        )
        self.tcp = TcpReassembler(
            max_flows=rs.max_flows,
            stream_memcap=rs.stream_memcap,
            memcap=rs.memcap,
            overlap_policy=rs.overlap_policy,
            established_timeout_ns=int(rs.established_timeout_s * 1e9),
            closed_timeout_ns=int(rs.closed_timeout_s * 1e9),
            ack_gap_delay_ns=int(rs.ack_gap_delay_s * 1e9),
        )
        # several capture workers: a prefix per worker keeps content ids unique across them
        self.factory = ObjectFactory(keep_bytes=settings.content.keep_bytes, head_bytes=settings.content.magic_bytes,
                                     prefix=id_prefix)
        self.http = HttpContentAssembler(
            self.factory,
            body_limit=hs.body_limit,
            max_decoded=hs.max_decoded_bytes,
            max_ratio=hs.max_decompression_ratio,
            max_layers=hs.max_encoding_layers,
            range_budget=hs.range_reassembly_bytes,
        )
        self.ftp_expect = ftp.FtpExpectations()
        if inspection is not None and inspection.extractor is None:
            from appliance.inspection import make_extractor
            from inspectors.extract.base import Budget

            ins = settings.inspection
            budget = Budget(max_depth=ins.max_depth, max_children=ins.max_children,
                            max_expanded_bytes=ins.max_expanded_bytes, max_seconds=ins.time_budget_s,
                            max_memory_bytes=ins.worker_memory_bytes, max_pixels=ins.max_pixels,
                            vosk_model_dir=ins.vosk_model_dir)
            inspection.extractor = make_extractor(self.factory, budget, keywords=inspection.policy_keywords)
        self.stats = Stats()
        self._apps: dict[str, object] = {}
        self._pending: dict[str, _Pending] = {}
        self._closed: dict[str, int] = {}
        self._expire_every = int(rs.expire_interval_s * 1e9)
        self._next_expire = 0
        self.cpu_started = time.process_time()
        self.fast_path_counters: dict[str, int] | None = None
        """What the C fast path did in the last `run_records`/`run_batched`/`run_ring` (None: it
        was not used)."""

    # -- frames -----------------------------------------------------------------------------
    def run(self, frames: Iterable[Frame], progress: Callable[[], None] | None = None,
            on_stats: Callable[[int], None] | None = None, stats_every_ns: int = 0) -> None:
        """Process every frame (calling ``progress`` every 65,536 frames, and ``on_stats`` with the
        packet time every ``stats_every_ns`` of packet time when both are given)."""
        decode = self.decoder.decode
        tcp_feed = self.tcp.feed
        dispatch = self._dispatch
        st = self.stats
        n = nbytes = ntcp = nudp = 0
        base, b0, t0, u0 = st.packets, st.bytes, st.tcp_packets, st.udp_packets
        next_expire = self._next_expire
        last = st.last_ts_ns
        next_stats = 0 if on_stats is not None and stats_every_ns > 0 else 1 << 62
        try:
            for frame in frames:
                n += 1
                nbytes += frame[2]
                pkt = decode(frame)
                if pkt is not None:  # None: a fragment held for reassembly (its time still counts)
                    proto = pkt.proto
                    if proto == 6:
                        ntcp += 1
                        events = tcp_feed(pkt)
                        if events:
                            dispatch(events)
                    elif proto == 17:
                        nudp += 1
                ts = frame[0]
                if ts > last:
                    last = ts
                    if ts >= next_stats:
                        if next_stats:  # not on the first packet: the first interval starts there
                            st.packets, st.last_ts_ns = base + n, last
                            st.bytes, st.tcp_packets, st.udp_packets = b0 + nbytes, t0 + ntcp, u0 + nudp
                            on_stats(ts)  # type: ignore[misc]
                        next_stats = ts + stats_every_ns
                    if ts >= next_expire:
                        if not st.first_ts_ns:
                            st.first_ts_ns = ts
                        next_expire = ts + self._expire_every
                        self.decoder.expire(ts)
                        expired = self.tcp.expire(ts)
                        if expired:
                            dispatch(expired)
                if progress is not None and not n & 0xFFFF:
                    st.packets, st.last_ts_ns = base + n, last
                    progress()
        finally:
            st.packets = base + n
            st.bytes = b0 + nbytes
            st.tcp_packets = t0 + ntcp
            st.udp_packets = u0 + nudp
            st.other_packets += n - ntcp - nudp
            st.last_ts_ns = last
            self._next_expire = next_expire

    def run_records(self, cap: CaptureFile, progress: Callable[[], None] | None = None,
                    on_stats: Callable[[int], None] | None = None, stats_every_ns: int = 0) -> bool:
        """`run` over a classic pcap file's raw records through the C fast path
        (`capture.fastpath`). Returns False, having read nothing, when the fast path is not
        available or disabled (use `run(cap.frames())` then), or the file is not classic pcap
        (`run_batched(in_batches(cap.frames()))`).

        Same objects as `run`, with two differences: the in-order payload of consecutive
        segments of one direction arrives as one joined `StreamData` carrying the time of its
        last segment (an object's time can be a few ms later), and events of different flows
        may interleave differently.
        """
        rf = cap.record_format
        if rf is None:
            return False
        drv = _FastDriver.start(self, cap.linktype, progress, on_stats, stats_every_ns)
        if drv is None:
            return False
        big, nsec, hlen, max_rec = rf
        run_pcap = drv.fp.pcap

        def consume(buf: bytes, off: int) -> int:
            while True:
                n0 = drv.fp.frames
                off, status = run_pcap(buf, off, big, nsec, hlen, max_rec, drv.stop_ts(), 1 << 16)
                drv.after(n0)
                if not status:
                    return off

        try:
            cap.feed_records(consume)
        finally:
            drv.close()
        return True

    def run_batched(self, batches: Iterable[list[Frame]], progress: Callable[[], None] | None = None,
                    on_stats: Callable[[int], None] | None = None, stats_every_ns: int = 0) -> bool:
        """`run` through the C fast path over frames Python already holds, a list at a time
        (``FastPath.take_frames``): pcapng files (`in_batches`), the libpcap backend, several
        merged rings. Returns False, having read nothing, when the fast path cannot be used."""
        drv = _FastDriver.start(self, 1, progress, on_stats, stats_every_ns)
        if drv is None:
            return False
        run = drv.fp.take_frames
        try:
            for chunk in batches:
                i = 0
                while i < len(chunk):
                    n0 = drv.fp.frames
                    i = run(chunk, i, drv.stop_ts())
                    drv.after(n0)
        finally:
            drv.close()
        return True

    def run_ring(self, reader: RingReader, stop: Callable[[], bool], tick: Callable[[], None] | None = None) -> bool:
        """`run` over a live TPACKET_V3 ring (one interface) through the C fast path; False,
        having read nothing, when it cannot be used (use `run(reader.frames(...))` then)."""
        if len(reader.rings) != 1:  # several rings are merged in Python (`run_batched`)
            return False
        drv = _FastDriver.start(self, reader.rings[0].linktype, None, None, 0)
        if drv is None:
            return False
        walk = drv.fp.tpacket

        def consume(mm: object, off: int, count: int, lt: int, iface: str) -> tuple[int, int, int]:
            nbytes = nvlan = ntrunc = 0
            while count:
                n0 = drv.fp.frames
                off, count, b, v, t = walk(mm, off, count, lt, iface, drv.stop_ts())
                nbytes += b
                nvlan += v
                ntrunc += t
                drv.after(n0)
            return nbytes, nvlan, ntrunc

        try:
            reader.feed_blocks(consume, stop, tick)
        finally:
            drv.close()
        return True

    def finish(self) -> None:
        """End of input: flush every stream and finish every object still open."""
        events = self.tcp.flush()
        if events:
            self._dispatch(events)
        for uid in list(self._apps):
            self._apps.pop(uid, None)
        self.stats.anomalies.update(self.decoder.counters)

    # -- stream events ----------------------------------------------------------------------
    def _dispatch(self, events: list[StreamEvent]) -> None:
        apps = self._apps
        for ev in events:
            flow = ev.flow
            app = apps.get(flow.uid)
            if app is None:
                app = self._classify(ev)
                if app is None:
                    continue
                # _classify replays the held events itself
                continue
            objs = app.feed(ev)  # type: ignore[attr-defined]
            if objs:
                self._emit(objs)
            if type(ev) is StreamClosed:
                self._closed_dir(flow, app, ev)

    def _closed_dir(self, flow: Flow, app: object, ev: StreamClosed) -> None:
        n = self._closed.get(flow.uid, 0) + 1
        if n >= 2:
            self._closed.pop(flow.uid, None)
            objs = app.close(flow, ev.ts_ns)  # type: ignore[attr-defined]
            if objs:
                self._emit(objs)
            self._apps.pop(flow.uid, None)
            self.stats.app_protos[flow.app_proto or "unknown"] += 1
            if self.on_flow_end is not None:
                self.on_flow_end(flow)
        else:
            self._closed[flow.uid] = n

    def _classify(self, ev: StreamEvent) -> object | None:
        """Hold events of a new flow until its protocol is known, then replay them."""
        flow = ev.flow
        pend = self._pending.get(flow.uid)
        if pend is None:
            if self.zone_of is not None:
                flow.src_zone, flow.dst_zone = self.zone_of(flow)
            ctx = self.ftp_expect.match(flow)
            if ctx is not None:
                limit = self.settings.http.body_limit
                data_parser: object
                if isinstance(ctx, irc.DccContext):
                    flow.app_proto = "irc-dcc"
                    data_parser = irc.DccDataParser(flow, ctx, self.factory, limit)
                else:
                    flow.app_proto = "ftp-data"
                    data_parser = ftp.FtpDataParser(flow, ctx, self.factory, limit)
                return self._start(flow, data_parser, [ev])
            pend = self._pending[flow.uid] = _Pending()
        d = ev.direction
        if isinstance(ev, StreamData) and flow.midstream and not pend.seen[1 - d] and (
            pend.skip[d] is not None or len(pend.seen[d]) + len(ev.data) > _DETECT_LIMIT
        ):
            # Picked up mid-stream and only one side talks (the rest of a big body): hold no
            # bytes, only a gap, until the other side says something a parser can lock on to.
            # A long chunk (the fast path joins segments) is first looked at as the segments
            # before it would have been: up to just under the detection limit.
            if pend.skip[d] is None and len(pend.seen[d]) < _DETECT_LIMIT - 1:
                before = pend.seen[d]
                pend.seen[d] = before + ev.data[: _DETECT_LIMIT - 1 - len(before)]
                app = self._detect(flow, pend, ev)
                if app is not None:
                    pend.events.append(ev)
                    del self._pending[flow.uid]
                    return self._start(flow, app, pend.events)
                pend.seen[d] = before
            self._skip(pend, ev)
            return None
        pend.events.append(ev)
        if isinstance(ev, StreamData) and len(pend.seen[d]) < _DETECT_LIMIT:
            pend.seen[d] += ev.data[: _DETECT_LIMIT - len(pend.seen[d])]
        app = self._detect(flow, pend, ev)
        if app is None:
            return None
        del self._pending[flow.uid]
        return self._start(flow, app, pend.events)

    @staticmethod
    def _skip(pend: _Pending, ev: StreamData) -> None:
        d = ev.direction
        gap = pend.skip[d]
        if gap is None:
            held = [e for e in pend.events if e.direction == d and isinstance(e, StreamData)]
            start = held[0].offset if held else ev.offset
            pend.events = [e for e in pend.events if not (e.direction == d and isinstance(e, StreamData))]
            gap = pend.skip[d] = StreamGap(ev.flow, d, start, 0, ev.ts_ns, "midstream")
            pend.events.append(gap)
            pend.seen[d] = b""
        gap.length = ev.offset + len(ev.data) - gap.offset
        gap.ts_ns = ev.ts_ns

    def _start(self, flow: Flow, app: object, events: list[StreamEvent]) -> object:
        self._apps[flow.uid] = app
        for held in events:
            objs = app.feed(held)  # type: ignore[attr-defined]
            if objs:
                self._emit(objs)
            if isinstance(held, StreamClosed):
                self._closed_dir(flow, app, held)
        return app

    def _detect(self, flow: Flow, pend: _Pending, ev: StreamEvent) -> object | None:
        cli, srv = pend.seen[Direction.TO_SERVER], pend.seen[Direction.TO_CLIENT]
        req = detect.looks_like_http_request(cli) if cli else None
        resp = detect.looks_like_http_response(srv) if srv else None
        if req or resp:
            flow.app_proto = "http"
            return _Http(flow, self.http, self.settings)
        sm = smtp.looks_like_smtp(srv, cli)
        if sm:
            flow.app_proto = "smtp"
            return smtp.SmtpParser(flow, self.factory, body_limit=self.settings.http.body_limit)
        fp = ftp.looks_like_ftp(srv, cli)
        if fp:
            flow.app_proto = "ftp"
            return ftp.FtpControlParser(flow, self.ftp_expect)
        ir = irc.looks_like_irc(srv, cli)
        if ir:
            flow.app_proto = "irc"
            return irc.IrcParser(flow, self.ftp_expect)
        sb = smb.looks_like_smb(cli, srv, midstream=flow.midstream)
        if sb:
            flow.app_proto = "smb"
            return smb.SmbParser(flow, self.factory, body_limit=self.settings.http.body_limit)
        if cli[:1] == b"\x16" or srv[:1] == b"\x16":
            flow.app_proto = "tls"
            return _IGNORE
        if srv.startswith(b"SSH-") or cli.startswith(b"SSH-"):
            flow.app_proto = "ssh"
            return _IGNORE
        # Decide "unknown" once every detector has said no, or enough bytes were seen,
        # or the flow ended before anyone could tell.
        all_no = (cli or srv) and None not in (req, resp, sm, fp, ir, sb)
        both_closed = isinstance(ev, StreamClosed) and sum(isinstance(e, StreamClosed) for e in pend.events) >= 2
        if all_no or both_closed or len(cli) >= _DETECT_LIMIT or len(srv) >= _DETECT_LIMIT:
            flow.app_proto = flow.app_proto or ""
            return _RawStream(self.factory, self.settings.http.body_limit)
        return None

    def _emit(self, objs: list[ContentObject]) -> None:
        for obj in objs:
            self.stats.objects += 1
            self.on_object(obj)
            if self.inspection is None:
                continue
            res = self.inspection.inspect(obj, obj.ts_ns)
            for child in res.children:
                self.stats.children += 1
                self.on_object(child)
            if self.on_alert is not None:
                for alert, target in res.alerts:
                    self.stats.alerts += 1
                    self.on_alert(alert, target)
            if self.on_suppressed is not None:
                for sup in res.suppressed:
                    self.stats.suppressed += 1
                    self.on_suppressed(sup)


def in_batches(frames: Iterable[Frame], size: int = 512) -> Iterator[list[Frame]]:
    """``frames`` as lists of up to ``size`` (for `Sensor.run_batched`; a source that can block
    waiting for traffic must hand over its own batches instead)."""
    it = iter(frames)
    while chunk := list(islice(it, size)):
        yield chunk


class _FastDriver:
    """Runs a `Sensor` through a ``capture._fastpath.FastPath``: the callbacks that take
    what the C side hands back, and the per-batch bookkeeping `Sensor.run` does per packet
    (statistics, idle expiry on packet time, progress)."""

    def __init__(self, sensor: Sensor, fp: Any, progress: Callable[[], None] | None,
                 on_stats: Callable[[int], None] | None, stats_every_ns: int, counts: list[int]) -> None:
        self.sensor = sensor
        self.fp = fp
        self.progress = progress
        self.on_stats = on_stats
        self.every = stats_every_ns
        self.counts = counts
        st = sensor.stats
        self.base = (st.packets, st.bytes, st.tcp_packets, st.udp_packets)
        self.next_stats = 0 if on_stats is not None and stats_every_ns > 0 else 1 << 62
        self.last = st.last_ts_ns
        self.f0, self.w0, self.k0 = fp.frames, fp.wire_bytes, fp.fast_tcp

    @classmethod
    def start(cls, sensor: Sensor, linktype: int, progress: Callable[[], None] | None,
              on_stats: Callable[[int], None] | None, stats_every_ns: int) -> _FastDriver | None:
        from capture.fastpath import new_fast_path

        if not sensor.settings.reassembly.fast_path:
            return None
        tcp = sensor.tcp
        decode = sensor.decoder.decode
        tcp_feed = tcp.feed_synced
        apply_run = tcp.apply_run
        dispatch = sensor._dispatch
        counts = [0, 0]  # TCP and UDP packets that took the Python path

        def on_frame(frame: Frame) -> None:
            pkt = decode(frame)
            if pkt is None:
                return
            proto = pkt.proto
            if proto == 6:
                counts[0] += 1
                events = tcp_feed(pkt)
                if events:
                    dispatch(events)
            elif proto == 17:
                counts[1] += 1

        def on_run(h: Any, data: bytes | None, npkts: int, ts: int) -> None:
            ev = apply_run(h, data, npkts, ts)
            if ev is not None:
                dispatch([ev])

        fp = new_fast_path(on_frame, on_run, verify_checksums=sensor.settings.capture.verify_checksums,
                           linktype=linktype)
        if fp is None:
            return None
        tcp.attach_fast_path(fp)
        return cls(sensor, fp, progress, on_stats, stats_every_ns, counts)

    def stop_ts(self) -> int:
        """Packet time after which the C side must return (next expiry or statistics)."""
        return min(self.sensor._next_expire, self.next_stats)

    def sync(self) -> None:
        fp, (p0, b0, t0, u0) = self.fp, self.base
        st = self.sensor.stats
        st.packets = p0 + fp.frames - self.f0
        st.bytes = b0 + fp.wire_bytes - self.w0
        st.tcp_packets = t0 + self.counts[0] + fp.fast_tcp - self.k0
        st.udp_packets = u0 + self.counts[1]
        st.last_ts_ns = self.last

    def after(self, frames_before: int) -> None:
        """Bookkeeping after one call into the C side (which stopped at `stop_ts` at the latest)."""
        s = self.sensor
        ts = self.fp.last_ts
        if ts > self.last:
            self.last = ts
            if ts >= self.next_stats:
                if self.next_stats:
                    self.sync()
                    self.on_stats(ts)  # type: ignore[misc]
                self.next_stats = ts + self.every
            if ts >= s._next_expire:
                st = s.stats
                if not st.first_ts_ns:
                    st.first_ts_ns = ts
                s._next_expire = ts + s._expire_every
                s.decoder.expire(ts)
                expired = s.tcp.expire(ts)
                if expired:
                    s._dispatch(expired)
        if self.progress is not None and (self.fp.frames - self.f0) >> 16 != (frames_before - self.f0) >> 16:
            self.sync()
            self.progress()

    def close(self) -> None:
        self.sync()
        st = self.sensor.stats
        n = self.fp.frames - self.f0
        st.other_packets += n - (st.tcp_packets - self.base[2]) - (st.udp_packets - self.base[3])
        self.sensor.fast_path_counters = self.fp.counters()
