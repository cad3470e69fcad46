"""HTTP/2 in clear text (prior knowledge, ``Upgrade: h2c``, a decrypted or mirrored session).

A passive observer of both directions: frames are read as they pass (``hyperframe`` parses the
bodies of control and header frames; DATA payloads stream through without being buffered),
header blocks (HEADERS/PUSH_PROMISE + CONTINUATION) are decoded with ``hpack``, one decoder per
direction whose allowed table size follows the peer's SETTINGS_HEADER_TABLE_SIZE. Nothing is
ever answered. Each stream is an `HttpTransaction` (method, ``:path`` as the URL, ``:authority``
as the Host, status, headers) whose request and response bodies go through the same content
assembler as HTTP/1 (`reassembly.content`): Content-Encoding decoding, multipart parts,
filenames from Content-Disposition, 206 pieces marked and stitched. Objects carry
``meta["http_version"] = "2"`` and ``meta["http2_stream"]``.

Handled: padding, PRIORITY (frame and HEADERS flag), CONTINUATION, trailers, 1xx interim
responses, RST_STREAM (the stream's open bodies end truncated ``stream_reset``), GOAWAY (an error
code is an anomaly), server push (the promised request, then its response), a client that does
not start with the preface (``http2.missing_preface``: parsed as frames, usually after an h2c
upgrade or a mid-stream pickup), HPACK state lost (``http2.hpack_error``), a gap inside a DATA
payload (the body gets ``missing_bytes``, framing goes on) or elsewhere (that direction stops).

Bounds: ``max_streams`` open streams, ``max_header_block`` bytes per header block,
``max_frame_bytes`` per non-DATA frame (a larger one is skipped), ``body_limit`` per body and
``max_connection_bytes`` of DATA per connection (beyond it bodies end truncated
``connection_limit``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from appliance.model import (
    ContentObject,
    Direction,
    Flow,
    HttpBodyData,
    HttpBodyEnd,
    HttpBodyGap,
    HttpTransaction,
    StreamData,
    StreamEvent,
    StreamGap,
)
from reassembly.applayer.base import AppProtocol, MiB, ParserContext
from reassembly.applayer.http import HttpLimits, assembler
from reassembly.content import HttpContentAssembler

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

_DATA, _HEADERS, _PRIORITY, _RST, _SETTINGS, _PUSH, _PING, _GOAWAY, _WINDOW, _CONT = range(10)
_END_STREAM, _END_HEADERS, _PADDED = 0x1, 0x4, 0x8
_HDR, _BODY, _DPAD, _DBODY, _SKIP = range(5)
_NONE: list[ContentObject] = []
_MAX_TABLE = 1 * MiB
"""Largest HPACK table size a SETTINGS frame may allow the decoders."""


@dataclass(frozen=True, slots=True)
class H2Limits(HttpLimits):
    max_streams: int = 512
    """Streams followed at once; more are flagged (``http2.too_many_streams``) and their bodies skipped."""
    max_connection_bytes: int = 1024 * MiB
    """DATA bytes per connection made into objects (0 = no limit)."""
    max_header_block: int = 256 * 1024
    """Bytes of one header block (HEADERS/PUSH_PROMISE + CONTINUATION) before decoding."""
    max_frame_bytes: int = 1 * MiB
    """Largest non-DATA frame read; a larger one is skipped (``http2.frame_too_large``)."""


def _frame_chain(b: bytes, frames: int = 3) -> bool:
    """``frames`` consecutive plausible frame headers from the start of ``b``."""
    pos = 0
    for _ in range(frames):
        if len(b) < pos + 9:
            return False
        length = int.from_bytes(b[pos:pos + 3], "big")
        ftype, sid = b[pos + 3], int.from_bytes(b[pos + 5:pos + 9], "big")
        if ftype > _CONT or sid & 0x80000000 or length > 16384 or (ftype in (_SETTINGS, _PING, _GOAWAY)) != (sid == 0):
            return False
        pos += 9 + length
    return True


def probe(client: bytes, server: bytes, flow: Flow) -> bool | None:
    """The client connection preface (from its first five bytes), or, for a flow picked up
    mid-stream, a run of well-formed frames."""
    if client:
        n = min(len(client), len(PREFACE))
        if client[:n] == PREFACE[:n]:
            return True if n >= 5 else None
    if flow.midstream and (_frame_chain(client) or _frame_chain(server)):
        return True
    if not client and server[:9].startswith(b"\x00\x00") and server[3:4] == b"\x04" and server[5:9] == b"\0\0\0\0":
        return None  # the server's SETTINGS came first: wait for the client's preface
    return False


class _Stream:
    __slots__ = ("got", "id", "length", "open", "tx")

    def __init__(self, sid: int, tx: HttpTransaction) -> None:
        self.id = sid
        self.tx = tx
        self.open = [True, True]
        """Whether each direction's half of the stream may still carry body bytes."""
        self.got = [0, 0]
        self.length: list[int | None] = [None, None]


class _Dir:
    """Framing state of one direction."""

    __slots__ = ("block", "block_end", "block_kind", "block_promised", "block_sid", "body", "dead", "decoder",
                 "dstream", "flags", "ftype", "hdr", "in_frame", "left", "length", "pad", "preface", "sid",
                 "skip_data")

    def __init__(self, preface: int) -> None:
        from hpack import Decoder

        self.preface = preface
        """Bytes of the connection preface still expected (client side only)."""
        self.decoder = Decoder()
        self.hdr = bytearray()
        self.body = bytearray()
        self.ftype = self.flags = self.sid = self.length = 0
        self.in_frame = False
        self.left = 0
        """Bytes of the current frame's payload (or DATA content) still to come."""
        self.pad = 0
        """DATA padding to skip after the content."""
        self.dstream: _Stream | None = None
        self.skip_data = False
        self.block = bytearray()
        self.block_sid = 0
        self.block_kind = 0
        self.block_end = False
        self.block_promised = 0
        self.dead = False


class H2Parser:
    """Both directions of one HTTP/2 connection → the bodies of its streams as objects."""

    def __init__(self, flow: Flow, ctx: ParserContext) -> None:
        self.flow = flow
        self.ctx = ctx
        self.lim: H2Limits = ctx.limits  # the entry's limits, or the settings section with the same names
        self.assembler: HttpContentAssembler = ctx.shared  # type: ignore[assignment]
        self.dirs = (_Dir(len(PREFACE)), _Dir(0))
        self.streams: dict[int, _Stream] = {}
        self.next_tx = 0
        self.conn_bytes = 0
        self.capped = False
        self.anomalies: list[str] = []
        self.out: list[ContentObject] = []
        self.ts_ns = 0

    # -- stream events --------------------------------------------------------------------------
    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        d = ev.direction
        D = self.dirs[d]
        self.ts_ns = ev.ts_ns
        if type(ev) is StreamData:
            if not D.dead:
                self._bytes(d, D, ev.data)
        elif type(ev) is StreamGap:
            self._gap(d, D, ev.length)
        if not self.out:
            return _NONE
        out, self.out = self.out, []
        return out

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        self.ts_ns = ts_ns or self.ts_ns
        for s in list(self.streams.values()):
            for d in (0, 1):
                if s.open[d]:
                    self._end(s, d, False, "flow_closed")
        self.streams.clear()
        out, self.out = self.out, []
        out.extend(self._tag(self.assembler.close_flow(flow, self.ts_ns), 0))
        return out

    # -- framing --------------------------------------------------------------------------------
    def _bytes(self, d: int, D: _Dir, data: bytes) -> None:
        pos, n = 0, len(data)
        if D.preface:
            take = min(D.preface, n)
            at = len(PREFACE) - D.preface
            if data[:take] == PREFACE[at:at + take]:
                D.preface -= take
                pos = take
            else:
                self._anomaly("http2.missing_preface")
                D.preface = 0
        while pos < n and not D.dead:
            pos = self._payload(d, D, data, pos) if D.in_frame else self._header(d, D, data, pos)

    def _header(self, d: int, D: _Dir, data: bytes, pos: int) -> int:
        take = min(9 - len(D.hdr), len(data) - pos)
        D.hdr += data[pos:pos + take]
        pos += take
        if len(D.hdr) < 9:
            return pos
        h = D.hdr
        D.length = int.from_bytes(h[:3], "big")
        D.ftype, D.flags, D.sid = h[3], h[4], int.from_bytes(h[5:9], "big") & 0x7FFFFFFF
        D.left = D.length
        D.body = bytearray()
        if D.block and D.ftype != _CONT:
            self._anomaly("http2.continuation_missing")
            self._drop_block(D)
        if D.ftype == _DATA:
            D.dstream = self.streams.get(D.sid)
            D.skip_data = D.dstream is None or not D.dstream.open[d]
            if D.dstream is None and D.sid:
                self._anomaly("http2.data_unknown_stream")
            D.pad = -1 if D.flags & _PADDED and D.length else 0
            if D.flags & _PADDED and not D.length:
                self._anomaly("http2.bad_padding")
        elif D.length > self.lim.max_frame_bytes:
            self._anomaly("http2.frame_too_large")
            if D.ftype in (_HEADERS, _PUSH, _CONT):
                self._anomaly("http2.hpack_error")  # the header block is lost, and the table with it
            D.ftype = -2  # skipped
        D.in_frame = True
        if D.left == 0 and D.pad != -1:
            self._frame_done(d, D)
        return pos

    def _payload(self, d: int, D: _Dir, data: bytes, pos: int) -> int:
        n = len(data)
        if D.ftype == _DATA:
            if D.pad == -1:  # the pad length byte of a PADDED frame
                D.pad = data[pos]
                pos += 1
                D.left -= 1
                if D.pad > D.left:
                    self._anomaly("http2.bad_padding")
                    D.pad = D.left
                D.left -= D.pad
            take = min(D.left, n - pos)
            if take and not D.skip_data:
                self._body(d, D.dstream, data[pos:pos + take])  # type: ignore[arg-type]
            D.left -= take
            pos += take
            if D.left == 0 and D.pad > 0:
                skip = min(D.pad, n - pos)
                D.pad -= skip
                pos += skip
            if D.left == 0 and D.pad <= 0:
                self._frame_done(d, D)
            return pos
        take = min(D.left, n - pos)
        if D.ftype != -2:
            D.body += data[pos:pos + take]
        D.left -= take
        pos += take
        if D.left == 0:
            self._frame_done(d, D)
        return pos

    def _frame_done(self, d: int, D: _Dir) -> None:
        ftype, flags, sid, body = D.ftype, D.flags, D.sid, bytes(D.body)
        D.in_frame = False
        D.hdr = bytearray()
        D.body = bytearray()
        D.ftype = 0
        D.pad = 0
        if ftype == _DATA:
            s = D.dstream
            D.dstream = None
            if s is not None and flags & _END_STREAM and s.open[d]:
                self._end(s, d, True, "")
            return
        if ftype < 0:
            return
        try:
            self._control(d, D, ftype, flags, sid, body)
        except Exception:  # hyperframe rejected the frame (bad padding, short body…)
            self._anomaly("http2.bad_frame")
            if ftype in (_HEADERS, _PUSH, _CONT):
                self._anomaly("http2.hpack_error")
                self._drop_block(D)

    def _control(self, d: int, D: _Dir, ftype: int, flags: int, sid: int, body: bytes) -> None:
        from hyperframe import frame as hf

        if ftype in (_HEADERS, _PUSH):
            f: Any = (hf.HeadersFrame if ftype == _HEADERS else hf.PushPromiseFrame)(sid)
            f.parse_flags(flags)
            f.parse_body(memoryview(body))
            D.block_sid, D.block_kind = sid, ftype
            D.block_end = bool(flags & _END_STREAM) and ftype == _HEADERS
            D.block_promised = getattr(f, "promised_stream_id", 0)
            self._block(d, D, f.data, bool(flags & _END_HEADERS))
        elif ftype == _CONT:
            if not D.block_kind or sid != D.block_sid:
                self._anomaly("http2.unexpected_continuation")
                return
            self._block(d, D, body, bool(flags & _END_HEADERS))
        elif ftype == _SETTINGS and not flags & 0x1:
            f = hf.SettingsFrame(sid)
            f.parse_body(memoryview(body))
            size = f.settings.get(hf.SettingsFrame.HEADER_TABLE_SIZE)
            if size is not None:  # what this side's peer may use when encoding towards it
                self.dirs[1 - d].decoder.max_allowed_table_size = min(int(size), _MAX_TABLE)
        elif ftype == _RST:
            s = self.streams.pop(sid, None)
            if s is not None:
                for k in (0, 1):
                    if s.open[k]:
                        self._end(s, k, False, "stream_reset")
        elif ftype == _GOAWAY:
            f = hf.GoAwayFrame(sid)
            f.parse_body(memoryview(body))
            if f.error_code:
                self._anomaly("http2.goaway_error")

    def _block(self, d: int, D: _Dir, fragment: bytes, end: bool) -> None:
        if len(D.block) + len(fragment) > self.lim.max_header_block:
            self._anomaly("http2.header_block_too_long")
            self._anomaly("http2.hpack_error")
            self._drop_block(D)
            return
        D.block += fragment
        if not end:
            return
        block, kind, sid, end_stream, promised = bytes(D.block), D.block_kind, D.block_sid, D.block_end, \
            D.block_promised
        self._drop_block(D)
        try:
            headers = D.decoder.decode(block, raw=True)
        except Exception:  # HPACK errors, an oversized list: this direction's table is unreliable now
            self._anomaly("http2.hpack_error")
            return
        if kind == _PUSH:
            self._request(promised, headers, True, pushed=True)
        elif d == Direction.TO_SERVER:
            self._request(sid, headers, end_stream)
        else:
            self._response(sid, headers, end_stream)

    @staticmethod
    def _drop_block(D: _Dir) -> None:
        D.block = bytearray()
        D.block_kind = D.block_sid = D.block_promised = 0
        D.block_end = False

    # -- streams ----------------------------------------------------------------------------------
    def _new_stream(self, sid: int) -> _Stream | None:
        if len(self.streams) >= self.lim.max_streams:
            self._anomaly("http2.too_many_streams")
            return None
        tx = HttpTransaction(self.flow.uid, self.next_tx, self.ts_ns)
        self.next_tx += 1
        tx.request_version = tx.response_version = b"HTTP/2"
        s = self.streams[sid] = _Stream(sid, tx)
        return s

    def _request(self, sid: int, headers: list[tuple[bytes, bytes]], end_stream: bool, *,
                 pushed: bool = False) -> None:
        s = self.streams.get(sid)
        if s is not None and s.tx.method:  # trailers
            if end_stream and s.open[0]:
                self._end(s, 0, True, "")
            return
        s = s or self._new_stream(sid)
        if s is None:
            return
        tx = s.tx
        authority = b""
        for k, v in headers:
            if k == b":method":
                tx.method = v
            elif k == b":path":
                tx.uri = v
            elif k == b":authority":
                authority = v
            elif not k.startswith(b":") and len(tx.request_headers) < 256:
                tx.request_headers.append((k, v))
        if authority and tx.request_header(b"host") is None:
            tx.request_headers.append((b"host", authority))
        if tx.method.upper() == b"CONNECT" and not tx.uri:
            tx.uri = authority
        if pushed:
            tx.anomalies.append("http2.server_push")
        s.length[0] = _content_length(tx.request_headers)
        if end_stream:
            self._end(s, 0, True, "")

    def _response(self, sid: int, headers: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        s = self.streams.get(sid)
        if s is None:
            s = self._new_stream(sid)
            if s is None:
                return
            self._upgraded_request(s)
        tx = s.tx
        if tx.status:  # trailers
            if end_stream and s.open[1]:
                self._end(s, 1, True, "")
            return
        status = next((v for k, v in headers if k == b":status"), b"")
        code = int(status) if status.isdigit() and len(status) == 3 else 0
        if 100 <= code < 200 and not end_stream:
            return  # interim: the final response follows
        tx.status = code
        tx.response_headers = [(k, v) for k, v in headers if not k.startswith(b":")][:256]
        s.length[1] = _content_length(tx.response_headers)
        if not code:
            self._anomaly("http2.bad_status")
        if end_stream:
            self._end(s, 1, True, "")

    def _upgraded_request(self, s: _Stream) -> None:
        """A response on a stream whose request was not seen: stream 1 of an h2c upgrade (the
        HTTP/1 request, named in the handoff), else a lost request (flagged)."""
        meta = self.ctx.meta
        if s.id == 1 and meta.get("upgrade_url") is not None:
            s.tx.method = meta.get("upgrade_method", "GET").encode("latin-1", "replace")
            s.tx.uri = meta["upgrade_url"].encode("latin-1", "replace")
            if self.ctx.host:
                s.tx.request_headers.append((b"host", self.ctx.host.encode("latin-1", "replace")))
        else:
            self._anomaly("http2.response_without_request")
        s.open[0] = False

    def _body(self, d: int, s: _Stream, data: bytes) -> None:
        if self.capped:
            return
        lim = self.lim.max_connection_bytes
        if lim and self.conn_bytes + len(data) > lim:
            room = lim - self.conn_bytes
            if room > 0:
                s.got[d] += room
                self._assemble(s, HttpBodyData(self.flow, s.tx, Direction(d), data[:room], self.ts_ns))
            self.capped = True
            self._anomaly("http2.connection_limit")
            for st in list(self.streams.values()):
                for k in (0, 1):
                    if st.open[k]:
                        self._end(st, k, False, "connection_limit")
            return
        self.conn_bytes += len(data)
        s.got[d] += len(data)
        self._assemble(s, HttpBodyData(self.flow, s.tx, Direction(d), data, self.ts_ns))

    def _end(self, s: _Stream, d: int, complete: bool, reason: str) -> None:
        s.open[d] = False
        if complete and s.length[d] is not None and s.got[d] != s.length[d]:
            s.tx.anomalies.append("http2.content_length_mismatch")
        self._assemble(s, HttpBodyEnd(self.flow, s.tx, Direction(d), self.ts_ns, complete, reason))
        if not (s.open[0] or s.open[1]):
            self.streams.pop(s.id, None)

    def _assemble(self, s: _Stream, ev: Any) -> None:
        objs = self.assembler.feed(ev)
        if objs:
            self.out.extend(self._tag(objs, s.id))

    @staticmethod
    def _tag(objs: list[ContentObject], sid: int) -> list[ContentObject]:
        extra = {"http_version": "2"}
        if sid:
            extra["http2_stream"] = str(sid)
        return [replace(o, meta={**o.meta, **extra}) for o in objs]

    # -- gaps and anomalies -------------------------------------------------------------------------
    def _gap(self, d: int, D: _Dir, length: int) -> None:
        if D.dead or length <= 0:
            return
        if D.in_frame and D.ftype == _DATA and D.pad != -1 and length <= D.left:
            s = D.dstream  # the hole is inside a DATA payload: the body misses bytes, framing goes on
            if s is not None and not D.skip_data:
                self._assemble(s, HttpBodyGap(self.flow, s.tx, Direction(d), length, self.ts_ns))
            D.left -= length
            if D.left == 0 and D.pad <= 0:
                self._frame_done(d, D)
            return
        self._anomaly("http2.gap")
        D.dead = True
        for s in list(self.streams.values()):
            if s.open[d]:
                self._assemble(s, HttpBodyGap(self.flow, s.tx, Direction(d), 0, self.ts_ns))
                self._end(s, d, False, "gap")

    def _anomaly(self, code: str) -> None:
        if code not in self.anomalies and len(self.anomalies) < 32:
            self.anomalies.append(code)
            if code not in self.flow.anomalies:
                self.flow.anomalies.append(code)


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for k, v in headers:
        if k == b"content-length":
            v = v.strip()
            return int(v) if v.isdigit() and len(v) < 19 else None
    return None


def parser(flow: Flow, ctx: ParserContext) -> H2Parser:
    return H2Parser(flow, ctx)


HTTP2 = AppProtocol("http2", parser, probe=probe, ports=frozenset({80, 3128, 8000, 8080, 8888}),
                    limits=H2Limits(), shared=assembler)
