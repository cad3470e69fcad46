"""Events a TCP reassembler emits: in-order data, gaps, and the end of a stream.

These are made once per data packet, so they are slotted but not frozen (a frozen
dataclass costs 4x as much to build); consumers treat them as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from appliance.model.flows import Flow


class Direction(IntEnum):
    """Which way bytes travel within a flow."""

    TO_SERVER = 0
    TO_CLIENT = 1

    @property
    def other(self) -> Direction:
        return Direction(1 - self)

    @property
    def label(self) -> str:
        """``upload`` for client→server bytes, ``download`` for server→client."""
        return "upload" if self is Direction.TO_SERVER else "download"


@dataclass(slots=True)
class StreamData:
    """In-order bytes of one direction starting at stream ``offset`` (0 = first byte)."""

    flow: Flow
    direction: Direction
    offset: int
    data: bytes
    ts_ns: int


@dataclass(slots=True)
class StreamGap:
    """``length`` bytes at ``offset`` that will never be seen (lost, capped, or timed out)."""

    flow: Flow
    direction: Direction
    offset: int
    length: int
    ts_ns: int
    reason: str = "lost"


@dataclass(slots=True)
class StreamClosed:
    """The end of one direction of a stream (FIN, RST, timeout, eviction, end of capture)."""

    flow: Flow
    direction: Direction
    offset: int
    ts_ns: int
    reason: str = "fin"


StreamEvent = StreamData | StreamGap | StreamClosed
