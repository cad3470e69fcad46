"""The composition root: the only place that knows the stage order.

frames → capture.decode → reassembly.tcp (and reassembly.sctp) → reassembly.applayer → content objects
→ ``on_object``
(inspection and outputs: `appliance.pipeline` builds that part). Each stage is sans-IO; this
module wires them, drives them over a packet source on packet time, and counts.

Two drivers: the C fast path (`capture.fastpath`) over what the source declares it offers
(``source.fast_input``: ``records`` — raw classic pcap records, ``blocks`` — TPACKET_V3 ring
blocks, ``batches`` — lists of frames Python holds), and the pure-Python loop over
``source.frames()`` when the fast path is off (``reassembly.fast_path: false``) or not built.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from appliance.model import AppEvent, ContentObject, Flow, Frame
from appliance.settings import Settings
from capture.decode import Decoder
from reassembly.applayer import AppProtocol
from reassembly.applayer.stage import AppLayer
from reassembly.applayer.table import PROTOCOLS
from reassembly.objects import ObjectFactory
from reassembly.sctp import SctpReassembler
from reassembly.tcp import TcpReassembler


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
    """Inspector runs that raised (counted by the inspection stage, summed here)."""


class Sensor:
    """Runs decode → TCP → application layer over frames and hands content objects to ``on_object``."""

    def __init__(
        self,
        settings: Settings,
        on_object: Callable[[ContentObject], None],
        on_flow_end: Callable[[Flow], None] | None = None,
        *,
        on_event: Callable[[AppEvent], None] | None = None,
        zone_of: Callable[[Flow], tuple[str, str]] | None = None,
        id_prefix: str = "F",
        seed: int = 0,
        protocols: Iterable[AppProtocol] | None = None,
    ) -> None:
        self.settings = settings
        self.on_object = on_object
        cs, rs = settings.capture, settings.reassembly
        self.decoder = Decoder(
            checksums=cs.checksums,
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
            seed=seed,
        )
        self.sctp = SctpReassembler(timeout_ns=int(rs.established_timeout_s * 1e9), seed=seed)
        """SCTP associations: per-stream events for the application layer, as TCP's."""
        # several capture workers: a prefix per worker keeps content ids unique across them
        self.factory = ObjectFactory(keep_bytes=settings.content.keep_bytes, head_bytes=settings.content.magic_bytes,
                                     prefix=id_prefix)
        table = PROTOCOLS if protocols is None else protocols
        self.applayer = AppLayer(table, self.factory, emit=self._emit, limits=settings.applayer.limits(),
                                 on_flow_end=on_flow_end, on_event=on_event, zone_of=zone_of,
                                 udp_seed=1024 + seed)
        self.stats = Stats(app_protos=self.applayer.app_protos)
        self._expire_every = int(rs.expire_interval_s * 1e9)
        self._next_expire = 0
        self.fast_path_counters: dict[str, int] | None = None
        """What the C fast path did in the last `drive` (None: it was not used)."""

    def reload(self, settings: Settings) -> None:
        """Take the application-layer limits of ``settings`` (new flows use them)."""
        self.applayer.set_limits(settings.applayer.limits())

    # -- drivers ----------------------------------------------------------------------------
    def drive(self, source: Any, *, stop: Callable[[], bool] | None = None, tick: Callable[[], None] | None = None,
              progress: Callable[[], None] | None = None, on_stats: Callable[[int], None] | None = None,
              stats_every_ns: int = 0) -> None:
        """Process everything ``source`` delivers, through the C fast path when possible.

        A live source takes ``stop``/``tick`` (see `capture.live`); ``progress`` is called every
        65,536 frames, ``on_stats`` with the packet time every ``stats_every_ns`` of packet time.
        The fast path gives the same objects as `run`, with two differences: the in-order payload
        of consecutive segments of one direction arrives as one joined `StreamData` carrying the
        time of its last segment (an object's time can be a few ms later), and events of
        different flows may interleave differently.
        """
        live = () if stop is None else (stop, tick)
        drv = _FastDriver.start(self, source, progress, on_stats, stats_every_ns)
        if drv is None:
            self.run(source.frames(*live), progress, on_stats, stats_every_ns)
            return
        try:
            drv.run(source, live)
        finally:
            drv.close()

    def run(self, frames: Iterable[Frame], progress: Callable[[], None] | None = None,
            on_stats: Callable[[int], None] | None = None, stats_every_ns: int = 0) -> None:
        """The pure-Python path over ``frames`` (``progress``/``on_stats`` as in `drive`)."""
        decode = self.decoder.decode
        tcp_feed = self.tcp.feed
        sctp_feed = self.sctp.feed
        dispatch = self.applayer.feed_all
        datagram = self.applayer.feed_datagram if self.applayer.datagrams else None
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
                        if datagram is not None:
                            datagram(pkt)
                    elif proto == 132:
                        events = sctp_feed(pkt)
                        if events:
                            dispatch(events)
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
                        next_expire = ts + self._expire_every
                        self._expire(ts)
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

    def finish(self) -> None:
        """End of input: flush every stream and finish every object still open."""
        events = self.tcp.flush()
        events += self.sctp.flush()
        if events:
            self.applayer.feed_all(events)
        self.applayer.finish()
        self.stats.anomalies.update(self.decoder.counters)

    # -- wiring -----------------------------------------------------------------------------
    def _expire(self, ts: int) -> None:
        """Packet time ``ts`` reached the next expiry: idle fragments, flows, expectations."""
        if not self.stats.first_ts_ns:
            self.stats.first_ts_ns = ts
        self.decoder.expire(ts)
        expired = self.tcp.expire(ts)
        if self.sctp:
            expired += self.sctp.expire(ts)
        if expired:
            self.applayer.feed_all(expired)
        self.applayer.expire(ts)

    def _emit(self, objs: list[ContentObject]) -> None:
        st = self.stats
        on_object = self.on_object
        for obj in objs:
            st.objects += 1
            on_object(obj)


class _FastDriver:
    """Runs a `Sensor` through a ``capture._fastpath.FastPath``: the callbacks that take what
    the C side hands back, and the per-call bookkeeping `Sensor.run` does per packet
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
    def start(cls, sensor: Sensor, source: Any, progress: Callable[[], None] | None,
              on_stats: Callable[[int], None] | None, stats_every_ns: int) -> _FastDriver | None:
        """A driver for ``source``, or None when the fast path is off, not built, or the source
        offers nothing it takes."""
        from capture.fastpath import new_fast_path

        kind = getattr(source, "fast_input", None)
        if not sensor.settings.reassembly.fast_path or kind not in ("records", "blocks", "batches"):
            return None
        if kind == "records" and source.record_format is None:
            return None
        decode = sensor.decoder.decode
        tcp = sensor.tcp
        tcp_feed = tcp.feed_synced
        sctp_feed = sensor.sctp.feed
        apply_run = tcp.apply_run
        applayer = sensor.applayer
        dispatch = applayer.feed_all
        feed = applayer.feed
        datagram = applayer.feed_datagram if applayer.datagrams else None
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
                if datagram is not None:
                    datagram(pkt)
            elif proto == 132:
                events = sctp_feed(pkt)
                if events:
                    dispatch(events)

        def on_run(h: Any, data: bytes | None, npkts: int, ts: int) -> None:
            ev = apply_run(h, data, npkts, ts)
            if ev is not None:
                feed(ev)

        linktype = source.linktype if kind != "batches" else 1
        # the decoder's checksum tracker itself: both halves share one offload state
        fp = new_fast_path(on_frame, on_run, checksums=sensor.decoder.checksums, linktype=linktype)
        if fp is None:
            return None
        tcp.attach_fast_path(fp)
        return cls(sensor, fp, progress, on_stats, stats_every_ns, counts)

    def run(self, source: Any, live: tuple[Any, ...]) -> None:
        """Feed the source's input of its declared kind to the C side."""
        kind = source.fast_input
        fp = self.fp
        if kind == "records":
            big, nsec, hlen, max_rec = source.record_format
            run_pcap = fp.pcap

            def records(buf: bytes, off: int) -> int:
                while True:
                    n0 = fp.frames
                    off, status = run_pcap(buf, off, big, nsec, hlen, max_rec, self.stop_ts(), 1 << 16)
                    self.after(n0)
                    if not status:
                        return off

            source.feed_records(records)
        elif kind == "blocks":
            walk = fp.tpacket

            def blocks(mm: object, off: int, count: int, lt: int, iface: str) -> tuple[int, int, int]:
                nbytes = nvlan = ntrunc = 0
                while count:
                    n0 = fp.frames
                    off, count, b, v, t = walk(mm, off, count, lt, iface, self.stop_ts())
                    nbytes += b
                    nvlan += v
                    ntrunc += t
                    self.after(n0)
                return nbytes, nvlan, ntrunc

            source.feed_blocks(blocks, *live)
        else:
            take = fp.take_frames
            for chunk in source.batches(*live):
                i = 0
                while i < len(chunk):
                    n0 = fp.frames
                    i = take(chunk, i, self.stop_ts())
                    self.after(n0)

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
                s._next_expire = ts + s._expire_every
                s._expire(ts)
        if self.progress is not None and (self.fp.frames - self.f0) >> 16 != (frames_before - self.f0) >> 16:
            self.sync()
            self.progress()

    def close(self) -> None:
        self.sync()
        st = self.sensor.stats
        n = self.fp.frames - self.f0
        st.other_packets += n - (st.tcp_packets - self.base[2]) - (st.udp_packets - self.base[3])
        self.sensor.fast_path_counters = self.fp.counters()
