"""The fallback: a stream no probe claims, kept only when a file signature starts it.

Each direction is one object candidate (a DCC or netcat transfer, a bare file push); it is
reported when at least 64 bytes start with an unambiguous signature (libmagic's weaker rules,
such as TGA or "data", match random binary chatter).
"""

from __future__ import annotations

from appliance.model import ContentObject, Direction, Flow, StreamData, StreamEvent, StreamGap
from reassembly.applayer.base import AppProtocol, Limits, ParserContext
from reassembly.objects import ObjectFactory, flow_ref
from reassembly.sniff import sniff_signature

_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MIN = 64


class RawStream:
    """Both directions of an unrecognised stream, hashed as they pass."""

    __slots__ = ("builders", "factory")

    def __init__(self, factory: ObjectFactory, limit: int) -> None:
        self.factory = factory
        self.builders = (factory.builder(limit=limit), factory.builder(limit=limit))

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        b = self.builders[ev.direction]
        if type(ev) is StreamData:
            b.add(ev.data)
        elif type(ev) is StreamGap:
            b.add_gap(ev.length)
        return []

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        out = []
        for d in (Direction.TO_SERVER, Direction.TO_CLIENT):
            b = self.builders[d]
            if b.size < _MIN:
                continue
            head = b.head
            if not (sniff_signature(head)[0] or head.startswith(_OLE_MAGIC)):
                continue
            out.append(self.factory.finish(
                b, source="tcp-stream", direction=d, flow=flow_ref(flow, d), ts_ns=ts_ns, kind="stream",
            ))
        return out


def parser(flow: Flow, ctx: ParserContext) -> RawStream:
    return RawStream(ctx.factory, ctx.limits.body_limit)


RAW = AppProtocol("raw", parser, fallback=True, limits=Limits())
