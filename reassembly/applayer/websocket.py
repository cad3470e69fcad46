"""WebSocket (RFC 6455, RFC 7692): the messages of an upgraded connection as content objects.

Reached by the HTTP/1 ``101`` handoff (``Upgrade: websocket``); the handoff passes the
response's ``Sec-WebSocket-Extensions`` (``ctx.meta["websocket_extensions"]``), the upgrading
URL and the Host. A hand-written frame reader (a passive observer needs none of an endpoint's
state machine, and it bounds everything itself) follows both directions: FIN/continuation
fragments, client masks (any position mod 4, across segments), control frames between the
fragments of a message, close frames. permessage-deflate is inflated per direction with
context takeover unless ``client_no_context_takeover`` / ``server_no_context_takeover`` was
negotiated (``*_max_window_bits`` needs no setting: a 2^15 window inflates any smaller one).

Objects (``source="websocket"``, the upgrade's URL and host): one per message (``kind=
"message"``, ``tx_id`` = its index on the connection, from 1; text messages are declared
``text/plain`` for the keyword inspectors, binary ones are sniffed). Text messages shorter than
``coalesce_max_message`` are joined (one ``\\n`` between them) per direction into one object
(``kind="messages"``) of up to ``coalesce_bytes``, flushed when it is full, when a message that
is not joined comes in that direction, and at the end: chat traffic gives a few objects, not
thousands. ``meta``: ``websocket_opcode``, ``websocket_messages`` (``first-last`` indexes) and
``websocket_compressed``.

Bounds: ``max_messages`` per connection (then ``websocket.too_many_messages``), ``body_limit``
per message, inflating stops at ``max_decoded_bytes`` per message or beyond
``max_decompression_ratio`` after 1 MiB (``websocket.inflate_limit``; that direction's later
compressed messages cannot be inflated when contexts are kept).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from dataclasses import dataclass

from appliance.model import ContentObject, Direction, Flow, StreamData, StreamEvent, StreamGap
from reassembly.applayer.base import AppProtocol, Limits, MiB, ParserContext
from reassembly.objects import ObjectBuilder, flow_ref

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_NONE: list[ContentObject] = []
_CONT, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0, 1, 2, 8, 9, 10
_TAIL = b"\x00\x00\xff\xff"
_RATIO_AFTER = MiB


@dataclass(frozen=True, slots=True)
class WebSocketLimits(Limits):
    max_messages: int = 10000
    """Messages made into objects per connection; later ones are counted and skipped."""
    coalesce_max_message: int = 1024
    """Text messages shorter than this are joined per direction (0 = every message alone)."""
    coalesce_bytes: int = 64 * 1024
    """Size of one object of joined small messages."""
    max_decoded_bytes: int = 64 * MiB
    """Inflated bytes of one permessage-deflate message."""
    max_decompression_ratio: int = 1000


def accept_key(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept a server must answer to Sec-WebSocket-Key ``key``."""
    return base64.b64encode(hashlib.sha1(key.strip() + GUID).digest())


def deflate_params(extensions: str) -> dict[str, str] | None:
    """The parameters of permessage-deflate in a Sec-WebSocket-Extensions value (None: not there)."""
    for ext in extensions.split(","):
        parts = [p.strip() for p in ext.split(";")]
        if parts[0].lower() == "permessage-deflate":
            out = {}
            for p in parts[1:]:
                k, _, v = p.partition("=")
                out[k.strip().lower()] = v.strip().strip('"')
            return out
    return None


def _unmask(data: bytes, key: bytes, off: int) -> bytes:
    """XOR ``data`` with the 4-byte ``key`` starting at key position ``off`` (big-int speed)."""
    n = len(data)
    if not n:
        return data
    k = key[off % 4:] + key[:off % 4]
    mask = (k * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")


class _Msg:
    """One message being read."""

    __slots__ = ("builder", "compressed", "index", "inflated", "inflater", "opcode", "raw", "ts_ns")

    def __init__(self, opcode: int, index: int, builder: ObjectBuilder, compressed: bool, ts_ns: int) -> None:
        self.opcode = opcode
        self.index = index
        self.builder = builder
        self.compressed = compressed
        self.inflater: zlib._Decompress | None = None
        self.inflated = 0
        self.raw = 0
        self.ts_ns = ts_ns


class _Dir:
    __slots__ = ("batch", "batch_first", "batch_last", "closed", "dead", "fin", "hdr", "inflater", "key", "left",
                 "masked", "msg", "need", "off", "opcode", "rsv1", "skipping", "takeover")

    def __init__(self, takeover: bool) -> None:
        self.hdr = bytearray()
        self.need = 2
        """Header bytes needed (2, then 2 + extended length + mask)."""
        self.left = 0
        """Payload bytes of the current frame still to come (-1: reading a header)."""
        self.opcode = 0
        self.fin = False
        self.rsv1 = False
        self.masked = False
        self.key = b""
        self.off = 0
        self.msg: _Msg | None = None
        self.inflater: zlib._Decompress | None = None
        self.takeover = takeover
        self.batch: ObjectBuilder | None = None
        self.batch_first = self.batch_last = 0
        self.closed = False
        self.dead = False
        self.skipping = False
        """The current message is past ``max_messages`` (its fragments are skipped)."""


class WebSocketParser:
    """Both directions of one WebSocket connection → message objects."""

    def __init__(self, flow: Flow, ctx: ParserContext) -> None:
        self.flow = flow
        self.ctx = ctx
        lim = ctx.limits
        self.lim = lim
        meta = ctx.meta
        params = deflate_params(meta.get("websocket_extensions", ""))
        self.deflate = params is not None
        p = params or {}
        self.dirs = (_Dir("client_no_context_takeover" not in p), _Dir("server_no_context_takeover" not in p))
        self.url = meta.get("upgrade_url", "")
        self.messages = 0
        self.anomalies: list[str] = []
        self.out: list[ContentObject] = []
        self.ts_ns = 0
        if meta.get("websocket_accept") == "invalid":
            self._anomaly("websocket.bad_accept")

    # -- stream events ----------------------------------------------------------------------------
    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        d = ev.direction
        D = self.dirs[d]
        self.ts_ns = ev.ts_ns
        if type(ev) is StreamData:
            if not D.dead:
                self._bytes(d, D, ev.data)
        elif type(ev) is StreamGap:
            self._gap(d, D, ev.length)
        else:
            self._end_dir(d, D, "eof")
        if not self.out:
            return _NONE
        out, self.out = self.out, []
        return out

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        self.ts_ns = ts_ns or self.ts_ns
        for d, D in enumerate(self.dirs):
            self._end_dir(d, D, "eof")
        out, self.out = self.out, []
        return out

    # -- framing ------------------------------------------------------------------------------------
    def _bytes(self, d: int, D: _Dir, data: bytes) -> None:
        pos, n = 0, len(data)
        while pos < n and not D.dead:
            if D.left > 0:
                take = min(D.left, n - pos)
                chunk = data[pos:pos + take]
                if D.masked:
                    chunk = _unmask(chunk, D.key, D.off)
                    D.off += take
                D.left -= take
                pos += take
                self._payload(d, D, chunk)
                if D.left == 0:
                    self._frame_end(d, D)
                continue
            take = min(D.need - len(D.hdr), n - pos)
            D.hdr += data[pos:pos + take]
            pos += take
            if len(D.hdr) == D.need:
                self._header(d, D)

    def _header(self, d: int, D: _Dir) -> None:
        h = D.hdr
        if D.need == 2:
            ln = h[1] & 0x7F
            D.need = 2 + (2 if ln == 126 else 8 if ln == 127 else 0) + (4 if h[1] & 0x80 else 0)
            if D.need > 2:
                return
        b0, b1 = h[0], h[1]
        ln = b1 & 0x7F
        pos = 2
        if ln == 126:
            ln, pos = int.from_bytes(h[2:4], "big"), 4
        elif ln == 127:
            ln, pos = int.from_bytes(h[2:10], "big"), 10
            if ln >> 63:
                self._fail(d, D, "websocket.bad_frame")
                return
        D.fin, D.rsv1, D.opcode = bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F
        D.masked = bool(b1 & 0x80)
        D.key = bytes(h[pos:pos + 4]) if D.masked else b""
        D.off = 0
        D.hdr = bytearray()
        D.need = 2
        D.left = ln
        if b0 & 0x30 or D.opcode in (3, 4, 5, 6, 7) or D.opcode > 10 or (D.opcode >= 8 and (ln > 125 or not D.fin)):
            self._fail(d, D, "websocket.bad_frame")
            return
        if d == Direction.TO_SERVER and not D.masked:
            self._anomaly("websocket.unmasked_client_frame")
        self._frame_start(d, D)
        if D.left == 0:
            self._frame_end(d, D)

    def _frame_start(self, d: int, D: _Dir) -> None:
        op = D.opcode
        if op >= _CLOSE:
            return
        if op == _CONT:
            if D.msg is None and not D.skipping:
                self._anomaly("websocket.orphan_continuation")
            return
        D.skipping = False
        if D.msg is not None:  # a new message while a fragmented one is open
            self._anomaly("websocket.unfinished_message")
            self._finish(d, D, "interrupted")
        if D.closed:
            self._anomaly("websocket.data_after_close")
        compressed = D.rsv1
        if compressed and not self.deflate:
            self._anomaly("websocket.unnegotiated_compression")
        self.messages += 1
        if self.messages > self.lim.max_messages:
            if self.messages == self.lim.max_messages + 1:
                self._anomaly("websocket.too_many_messages")
            D.skipping = True
            return
        D.msg = _Msg(op, self.messages, self.ctx.factory.builder(limit=self.lim.body_limit), compressed, self.ts_ns)
        if compressed:
            if D.inflater is None or not D.takeover or D.inflater.eof:
                D.inflater = zlib.decompressobj(-15)
            D.msg.inflater = D.inflater

    def _payload(self, d: int, D: _Dir, chunk: bytes) -> None:
        msg = D.msg
        if D.opcode >= _CLOSE or msg is None or (D.opcode != _CONT and D.opcode != msg.opcode):
            return
        if not msg.compressed:
            msg.builder.add(chunk)
            return
        self._inflate(d, D, msg, chunk)

    def _inflate(self, d: int, D: _Dir, msg: _Msg, chunk: bytes) -> None:
        inf = msg.inflater
        if inf is None:
            return
        msg.raw += len(chunk)
        try:
            out = inf.decompress(chunk, max(1, self.lim.max_decoded_bytes - msg.inflated + 1))
        except zlib.error:
            self._anomaly("websocket.bad_deflate")
            self._broken_context(D, msg, "corrupt_encoding")
            return
        msg.inflated += len(out)
        if msg.inflated > self.lim.max_decoded_bytes or inf.unconsumed_tail or (
                msg.inflated > _RATIO_AFTER and msg.inflated > msg.raw * self.lim.max_decompression_ratio):
            self._anomaly("websocket.inflate_limit")
            msg.builder.add(out)
            self._broken_context(D, msg, "decompression_limit")
            return
        msg.builder.add(out)

    @staticmethod
    def _broken_context(D: _Dir, msg: _Msg, reason: str) -> None:
        msg.builder.truncate(reason)
        msg.inflater = None
        D.inflater = None  # the shared window is lost: the next message starts afresh (and may fail)

    def _frame_end(self, d: int, D: _Dir) -> None:
        op = D.opcode
        if op == _CLOSE:
            D.closed = True
            return
        if op >= _CLOSE or not D.fin or D.msg is None:
            return
        msg = D.msg
        if msg.compressed and msg.inflater is not None:
            self._inflate(d, D, msg, _TAIL)
        self._finish(d, D, "")

    # -- messages → objects -------------------------------------------------------------------------
    def _finish(self, d: int, D: _Dir, truncated: str) -> None:
        msg = D.msg
        D.msg = None
        if msg is None:
            return
        b = msg.builder
        if truncated:
            b.truncate(truncated)
        small = self.lim.coalesce_max_message
        if (msg.opcode == _TEXT and small and b.size < small and not b.truncated and not b.missing
                and b.kept_complete):
            self._coalesce(d, D, msg)
            return
        self._flush_batch(d, D)
        meta = {"websocket_opcode": "text" if msg.opcode == _TEXT else "binary",
                "websocket_messages": str(msg.index)}
        if msg.compressed:
            meta["websocket_compressed"] = "1"
        self._emit(d, b, "message", msg.index, "text/plain" if msg.opcode == _TEXT else "", meta, msg.ts_ns)

    def _coalesce(self, d: int, D: _Dir, msg: _Msg) -> None:
        data = msg.builder.data()
        if D.batch is not None and D.batch.size + len(data) + 1 > self.lim.coalesce_bytes:
            self._flush_batch(d, D)
        if D.batch is None:
            D.batch = self.ctx.factory.builder(limit=self.lim.body_limit)
            D.batch_first = msg.index
        else:
            D.batch.add(b"\n")
        D.batch.add(data)
        D.batch_last = msg.index

    def _flush_batch(self, d: int, D: _Dir) -> None:
        b = D.batch
        if b is None:
            return
        D.batch = None
        first, last = D.batch_first, D.batch_last
        meta = {"websocket_opcode": "text", "websocket_messages": f"{first}-{last}" if last != first else str(first)}
        self._emit(d, b, "messages", first, "text/plain", meta, self.ts_ns)

    def _emit(self, d: int, b: ObjectBuilder, kind: str, index: int, mime: str, meta: dict[str, str],
              ts_ns: int) -> None:
        direction = Direction(d)
        self.out.append(self.ctx.factory.finish(
            b, source="websocket", direction=direction, flow=flow_ref(self.flow, direction), ts_ns=ts_ns, kind=kind,
            tx_id=index, url=self.url, host=self.ctx.host, declared_mime=mime, meta=meta,
            anomalies=list(self.anomalies),
        ))

    # -- gaps and ends ------------------------------------------------------------------------------
    def _gap(self, d: int, D: _Dir, length: int) -> None:
        if D.dead or length <= 0:
            return
        if 0 < length <= D.left and D.opcode < _CLOSE:
            msg = D.msg  # inside a data frame's payload: the message misses bytes, framing goes on
            if msg is not None:
                if msg.compressed:
                    self._broken_context(D, msg, "gap")
                msg.builder.add_gap(length)
            D.left -= length
            D.off += length
            if D.left == 0:
                self._frame_end(d, D)
            return
        self._fail(d, D, "websocket.gap")

    def _fail(self, d: int, D: _Dir, code: str) -> None:
        """Framing is lost in this direction: what is open ends truncated, the rest is skipped."""
        self._anomaly(code)
        if D.msg is not None:
            if code == "websocket.gap":
                D.msg.builder.add_gap(0)
            self._finish(d, D, "gap" if code == "websocket.gap" else "corrupt_encoding")
        self._flush_batch(d, D)
        D.dead = True

    def _end_dir(self, d: int, D: _Dir, reason: str) -> None:
        if D.msg is not None:
            self._finish(d, D, reason)
        self._flush_batch(d, D)
        D.dead = True

    def _anomaly(self, code: str) -> None:
        if code not in self.anomalies and len(self.anomalies) < 16:
            self.anomalies.append(code)
            if code not in self.flow.anomalies:
                self.flow.anomalies.append(code)


def parser(flow: Flow, ctx: ParserContext) -> WebSocketParser:
    return WebSocketParser(flow, ctx)


WEBSOCKET = AppProtocol("websocket", parser, limits=WebSocketLimits())
"""Reached only by the HTTP ``101`` handoff (the Upgrade token names it): no probe."""
