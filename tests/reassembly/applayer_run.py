"""Drive the real application layer (the default protocol table) with scripted conversations."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Sequence

from appliance.model import AppEvent, ContentObject, Direction, Flow, StreamEvent
from reassembly.applayer.stage import AppLayer
from reassembly.applayer.table import PROTOCOLS
from reassembly.objects import ObjectFactory
from tests.reassembly.factories import Stream, make_flow


class Layer:
    """An `AppLayer` over ``PROTOCOLS``; objects and metadata events land in lists."""

    def __init__(self, **kw: object) -> None:
        self.objects: list[ContentObject] = []
        self.events: list[AppEvent] = []
        self.ended: list[Flow] = []
        self.layer = AppLayer(PROTOCOLS, ObjectFactory(keep_bytes=64 * 1024 * 1024), emit=self.objects.extend,
                              on_event=self.events.append, on_flow_end=self.ended.append, **kw)  # type: ignore[arg-type]

    def run(self, chunks: Iterable[tuple[Direction, bytes]], *, flow: Flow | None = None, piece: int = 0,
            close: bool = True) -> Stream:
        """Feed ``chunks`` as one flow (each cut into ``piece``-byte events when given), then close."""
        st = Stream(flow or make_flow(sport=8080))
        for d, data in chunks:
            cuts: Sequence[int] = range(piece, len(data), piece) if piece else ()
            self.layer.feed_all(st.data(d, data, pieces=cuts))
        if close:
            self.close(st)
        return st

    def close(self, st: Stream) -> None:
        evs: list[StreamEvent] = [*st.close(Direction.TO_SERVER), *st.close(Direction.TO_CLIENT)]
        self.layer.feed_all(evs)

    def by_md5(self) -> dict[str, ContentObject]:
        return {o.md5: o for o in self.objects}


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)
