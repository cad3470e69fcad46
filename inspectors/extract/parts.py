"""Picklable pieces that cross the sandbox boundary: limits in, partial extractions out.

A worker cannot use the sensor's `ObjectFactory` (ids are per-run counters, libmagic handles
are per-process), so a worker returns `Child` specs (bytes, name, type hint) and the
dispatcher turns them into `ContentObject`s in the sensor process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from appliance.model import Link


@dataclass(slots=True, frozen=True)
class Limits:
    """What one extraction task may use (derived from the `Budget` and what is left of it)."""

    max_children: int = 256
    max_child_bytes: int = 64 * 1024 * 1024
    """Bytes one child may expand to (and be returned with)."""
    max_expanded_bytes: int = 256 * 1024 * 1024
    """Bytes everything this task inflates may add up to (members, streams, XML parts)."""
    max_text_chars: int = 4 * 1024 * 1024
    max_seconds: float = 30.0
    max_pixels: int = 50_000_000
    max_xml_elements: int = 5_000_000
    """Elements parsed in all XML parts of one document (a "millions of tiny elements" DOCX)."""
    max_ratio: float = 100.0
    """Compression ratio beyond which a ZIP member over 1 MiB is treated as a bomb."""
    make_children: bool = True
    """False when the object is already at the depth limit."""


@dataclass(slots=True)
class Child:
    """A member, attachment or embedded image to become a child object."""

    name: str
    data: bytes
    size: int
    """Bytes the member expands to as far as known (``len(data)`` unless truncated)."""
    mime: str = ""
    truncated: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Partial:
    """What a worker extracted (an `Extraction` whose children are still `Child` specs)."""

    text: str | None = None
    hidden_text: str | None = None
    links: list[Link] = field(default_factory=list)
    children: list[Child] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    expanded: int = 0
    """Bytes inflated while extracting (members, streams, parts)."""

    def flag(self, reason: str, anomaly: str | None = None) -> None:
        """Mark truncated for ``reason`` (once) and record ``anomaly`` (default: the reason)."""
        if reason not in self.truncated:
            self.truncated.append(reason)
        a = anomaly or f"extract_{reason.split(':')[0]}"
        if a not in self.anomalies:
            self.anomalies.append(a)

    def note(self, anomaly: str) -> None:
        """Record an anomaly once."""
        if anomaly not in self.anomalies:
            self.anomalies.append(anomaly)


class TextSink:
    """Collects text up to ``limit`` characters; past it, drops text and says so."""

    __slots__ = ("_parts", "full", "limit", "n")

    def __init__(self, limit: int) -> None:
        self._parts: list[str] = []
        self.n = 0
        self.limit = limit
        self.full = False

    def add(self, s: str) -> bool:
        """Append ``s``; False once the limit is reached."""
        if self.full:
            return False
        room = self.limit - self.n
        if len(s) > room:
            s = s[:room]
            self.full = True
        self._parts.append(s)
        self.n += len(s)
        return not self.full

    def text(self) -> str:
        return "".join(self._parts)


class Clock:
    """A deadline for one task."""

    __slots__ = ("deadline",)

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def over(self) -> bool:
        return time.monotonic() > self.deadline


def add_child(part: Partial, limits: Limits, child: Child) -> bool:
    """Append ``child`` within the child-count and byte limits; False (and flagged) when over."""
    if not limits.make_children:
        part.flag("depth", "extract_depth_limit")
        return False
    if len(part.children) >= limits.max_children:
        part.flag("children", "extract_child_limit")
        return False
    used = sum(len(c.data) for c in part.children)
    if used + len(child.data) > limits.max_expanded_bytes:
        part.flag("expanded_bytes", "extract_expanded_limit")
        room = max(0, limits.max_expanded_bytes - used)
        if room == 0:
            return False
        child.data = child.data[:room]
        if "expanded_bytes" not in child.truncated:
            child.truncated.append("expanded_bytes")
    part.children.append(child)
    return True
