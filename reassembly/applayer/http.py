"""HTTP/1.x: `Http1Parser` events through the content assembler, as one table entry.

CONNECT answered 2xx hands the rest of the stream back to detection (a proxied HTTP, TLS…);
its objects carry the CONNECT target in ``meta["connect_host"]`` (and in ``host`` when they
have none). A ``101`` upgrade hands it to the entry named by the Upgrade token (``h2c`` is the
``http2`` entry), if the table has one (else the rest is ignored, as before); the next parser
gets the upgrading request in ``ctx.meta`` (``upgrade_method``, ``upgrade_url``, and
``websocket_extensions`` / ``websocket_protocol`` from the 101, ``websocket_accept``: whether
the 101's Sec-WebSocket-Accept answers the key) and its Host as ``ctx.host``.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.model import ContentObject, Flow, HttpTransaction, HttpTxStart, StreamEvent
from reassembly.applayer.base import AppProtocol, Limits, MiB, ParserContext
from reassembly.applayer.websocket import accept_key
from reassembly.content import HttpContentAssembler, host_without_port
from reassembly.detect import looks_like_http_request, looks_like_http_response
from reassembly.http1 import Http1Parser, Tunnel
from reassembly.objects import ObjectFactory

_NONE: list[ContentObject] = []
"""Shared empty result (never appended to)."""
_MAX_TARGET = 1024
"""Longest CONNECT target carried into the tunnel's objects."""
UPGRADE_ENTRIES = {"h2c": "http2"}
"""Upgrade tokens whose table entry has another name."""


@dataclass(frozen=True, slots=True)
class HttpLimits(Limits):
    body_limit: int = 100 * MiB
    """Bytes of a decoded body to hash and keep; beyond it the object is TRUNCATED (0 = no limit)."""
    max_header_bytes: int = 64 * 1024
    max_decoded_bytes: int = 256 * MiB
    """Hard cap on the output of content decoding of one body."""
    max_decompression_ratio: int = 1000
    """Output/input ratio above which a compressed body is treated as a bomb (after 1 MiB)."""
    max_encoding_layers: int = 3
    range_reassembly_bytes: int = 256 * MiB
    """Memory for stitching 206 pieces back into whole files (0 = off)."""


def probe(client: bytes, server: bytes, flow: Flow) -> bool | None:
    """A request line from the client or a status line from the server (any port)."""
    req = looks_like_http_request(client) if client else None
    resp = looks_like_http_response(server) if server else None
    if req or resp:
        return True
    if req is None or resp is None:
        return None
    return False


def assembler(factory: ObjectFactory, limits: HttpLimits) -> HttpContentAssembler:
    """The content assembler every HTTP flow of a stage shares (206 pieces meet across flows)."""
    return HttpContentAssembler(
        factory,
        body_limit=limits.body_limit,
        max_decoded=limits.max_decoded_bytes,
        max_ratio=limits.max_decompression_ratio,
        max_layers=limits.max_encoding_layers,
        range_budget=limits.range_reassembly_bytes,
    )


class HttpParser:
    """One flow's HTTP: parser events through the shared assembler into objects."""

    __slots__ = ("assembler", "ctx", "parser")

    def __init__(self, flow: Flow, ctx: ParserContext) -> None:
        lim = ctx.limits
        self.parser = Http1Parser(flow, max_header_bytes=lim.max_header_bytes, body_limit=lim.body_limit or None)
        self.assembler: HttpContentAssembler = ctx.shared  # type: ignore[assignment]
        self.ctx = ctx

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        hevs = self.parser.feed(ev)
        if not hevs:
            return _NONE
        feed = self.assembler.feed
        if len(hevs) == 1:  # the per-packet case (a tunnel starts with two events or more)
            return feed(hevs[0])
        out: list[ContentObject] = []
        for hev in hevs:
            objs = feed(hev)
            if objs:
                out.extend(objs)
        if self.parser.handoff is not None:  # handed off once this event's objects are assembled
            up = next((h.tx for h in reversed(hevs) if type(h) is HttpTxStart and h.tx.status == 101), None)
            out.extend(self._handoff(ev.ts_ns, up))
        return out

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        return self.assembler.close_flow(flow, ts_ns)

    def _handoff(self, ts_ns: int, up: HttpTransaction | None = None) -> list[ContentObject]:
        t: Tunnel = self.parser.handoff  # type: ignore[assignment]
        self.parser.handoff = None
        if t.protocol is None:  # CONNECT: whatever the tunnel carries is detected afresh
            target = t.target[:_MAX_TARGET]
            return self.ctx.handoff(t.at, ts_ns, replay=t.replay, meta={"connect_host": target},
                                    host=host_without_port(target))
        meta, host = {}, ""
        if up is not None:  # the 101: what the next protocol needs to know of the upgrade
            meta = {"upgrade_method": up.method.decode("latin-1")[:32], "upgrade_url": t.target[:_MAX_TARGET]}
            for key, header in (("websocket_extensions", b"sec-websocket-extensions"),
                                ("websocket_protocol", b"sec-websocket-protocol")):
                value = up.response_header(header)
                if value:
                    meta[key] = value.decode("latin-1")[:_MAX_TARGET]
            key, accept = up.request_header(b"sec-websocket-key"), up.response_header(b"sec-websocket-accept")
            if key is not None:
                meta["websocket_accept"] = "missing" if accept is None else (
                    "valid" if accept.strip() == accept_key(key) else "invalid")
            host = host_without_port(up.host)[:_MAX_TARGET]
        return self.ctx.handoff(t.at, ts_ns, protocol=UPGRADE_ENTRIES.get(t.protocol, t.protocol), replay=t.replay,
                                meta=meta, host=host)


HTTP = AppProtocol("http", HttpParser, probe=probe, ports=frozenset({80, 3128, 8000, 8080, 8888}),
                   limits=HttpLimits(), shared=assembler)
