"""Content objects: the files, bodies and parts that crossed the wire (and their children)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from appliance.model.streams import Direction


class FlowRef(NamedTuple):
    """Enough of a flow to report on it after the flow itself is gone."""

    uid: str
    flow_id: int
    src_ip: str
    src_port: int
    dest_ip: str
    dest_port: int
    proto: str
    vlan: int
    iface: str
    src_zone: str = "any"
    """Zone of the session's client (who opened the connection), whatever the transfer direction."""
    dst_zone: str = "any"
    """Zone of the session's server."""


class Truncation(NamedTuple):
    """Why an object is incomplete: a short code (``body_limit``, ``gap``, ``eof``…) and detail."""

    reason: str
    detail: str = ""


class Link(NamedTuple):
    """A link found in a page: where it points, its anchor text, and whether a reader sees it."""

    url: str
    text: str = ""
    hidden: bool = False
    reason: str = ""
    """Why it is hidden (``display:none``, ``off-screen``, ``font-size:0``, ``script``…), empty if visible."""


@dataclass(slots=True, frozen=True)
class ContentObject:
    """A body, part, attachment or extracted child, with hashes computed while it streamed.

    ``data`` holds the bytes when they were kept (up to the configured in-memory limit);
    ``spool_path`` names a file holding them otherwise. ``size`` counts every byte that was
    received (excluding ``missing_bytes`` lost in gaps); ``md5``/``sha256`` are over those
    bytes in order.
    """

    id: str
    """``F`` + base62, unique per run."""
    source: str
    """Carrier protocol: ``http``, ``smtp``, ``ftp-data``, or ``extract`` for children."""
    direction: Direction
    flow: FlowRef | None
    ts_ns: int
    size: int
    md5: str
    sha256: str
    parent_id: str | None = None
    depth: int = 0
    tx_id: int | None = None
    kind: str = "body"
    """``body``, ``part`` (multipart), ``range`` (stitched 206 pieces), ``child``…"""
    declared_mime: str = ""
    sniffed_mime: str = ""
    magic: str = ""
    """libmagic's description of the first bytes."""
    filename: str = ""
    url: str = ""
    host: str = ""
    method: str = ""
    status: int = 0
    user_agent: str = ""
    missing_bytes: int = 0
    gaps: bool = False
    truncated: tuple[str, ...] = ()
    """Truncation reasons (empty when the object is whole)."""
    data: bytes | None = None
    spool_path: str | None = None
    text: str | None = None
    """Visible text an extractor made of the object (None until extracted)."""
    hidden_text: str | None = None
    """Text present in the object but hidden from a reader (CSS tricks), with its reasons."""
    links: tuple[Link, ...] = ()
    anomalies: tuple[str, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return not self.truncated and not self.missing_bytes

    @property
    def state(self) -> str:
        """Suricata's fileinfo state: CLOSED for whole files, TRUNCATED otherwise."""
        return "CLOSED" if self.complete else "TRUNCATED"
