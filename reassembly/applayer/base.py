"""The application layer's contract: table entries, parsers, probes and the parser context.

See the package docstring (`reassembly.applayer`) for the rules; this module only holds the
types, so that protocol modules can import them without importing the stage or the table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from appliance.model import AppEvent, ContentObject, Direction, Flow, Packet, StreamEvent
from reassembly.objects import ObjectFactory, flow_ref

if TYPE_CHECKING:
    from reassembly.applayer.expect import Expectations

MiB = 1024 * 1024

Probe = Callable[[bytes, bytes, Flow], "bool | None"]
"""``probe(client_bytes, server_bytes, flow) -> True | False | None``: does this stream (or, for
a datagram entry, this first datagram, as ``client_bytes``) belong to the protocol? ``None`` =
need more bytes. Both byte strings are the first bytes each side sent (up to 8 KiB), either may
be empty. Must be cheap and never raise."""


class Parser(Protocol):
    """One flow's parser (a stream protocol). Sans-IO, never raises on wire data."""

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        """Consume one in-order stream event of either direction; return the objects it finished."""
        ...

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        """Both directions are over (or the flow was evicted): finish what is still open."""
        ...


class DatagramParser(Protocol):
    """One UDP conversation's parser (a datagram protocol)."""

    def feed_datagram(self, pkt: Packet, direction: Direction) -> list[ContentObject]:
        """Consume one datagram (``pkt.payload``) sent in ``direction``."""
        ...

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        """The conversation timed out, was evicted, or the capture ended."""
        ...


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-protocol limits; a protocol with more subclasses this (frozen, with defaults).

    The settings file overrides them (``applayer.<protocol>.<key>``, see docs/configuration.md);
    the stage hands each parser its protocol's object as ``ctx.limits``.
    """

    body_limit: int = 100 * MiB
    """Bytes of an object to hash and keep; beyond it the object is TRUNCATED (0 = no limit)."""


@dataclass(frozen=True, slots=True)
class AppProtocol:
    """One entry of the protocol table (cf. Suricata's app-layer registration)."""

    name: str
    """The flow's ``app_proto`` once chosen (``http``, ``smtp``…); also the key of its limits."""
    factory: Callable[[Flow, ParserContext], Any]
    """``factory(flow, ctx) -> parser`` (a `Parser`, or a `DatagramParser` for ``udp``)."""
    probe: Probe | None = None
    """Detection by content; None: never probed (reached by an expectation, a handoff, or as
    the fallback)."""
    ports: frozenset[int] = frozenset()
    """Port hints: entries hinting the server port are probed first. Never required."""
    limits: Limits = field(default_factory=Limits)
    """Default limits (the settings override them by ``limits_from`` or ``name``)."""
    limits_from: str = ""
    """Take the limits of another entry's settings section (``ftp-data`` uses ``ftp``'s)."""
    transport: Literal["tcp", "udp"] = "tcp"
    fallback: bool = False
    """The parser of a stream no probe claims (one per table; it does not label the flow)."""
    shared: Callable[[ObjectFactory, Any], object] | None = None
    """``shared(factory, limits)``: state shared by every flow of this protocol in one stage
    (made on first use; e.g. HTTP's content assembler, which stitches 206 pieces across flows).
    Given to the parser as ``ctx.shared``."""


class ParserContext:
    """What a parser factory gets for one flow: services of the stage.

    ``factory`` (`ObjectFactory`) makes content objects; ``limits`` is this protocol's limits
    object; ``expectations`` is the table of expected connections (FTP data, DCC); ``expected``
    is the context an expectation matched for this flow (else None); ``shared`` is the
    protocol's per-stage state (`AppProtocol.shared`).
    """

    __slots__ = ("_handoff", "_on_event", "expectations", "expected", "factory", "flow", "handoffs", "host",
                 "limits", "meta", "shared")

    def __init__(self, flow: Flow, factory: ObjectFactory, limits: Any, expectations: Expectations,
                 on_event: Callable[[AppEvent], None] | None, handoff: Callable[..., list[ContentObject]],
                 *, expected: object = None, shared: object = None, meta: Mapping[str, str] | None = None,
                 host: str = "", handoffs: int = 0) -> None:
        self.flow = flow
        self.factory = factory
        self.limits = limits
        self.expectations = expectations
        self.expected = expected
        self.shared = shared
        self.meta: Mapping[str, str] = meta or {}
        """Metadata every object of this flow's parser carries (set by a handoff, e.g. the CONNECT target)."""
        self.host = host
        """Host name objects without one carry (set by a handoff)."""
        self.handoffs = handoffs
        """Handoffs this flow went through before this parser."""
        self._on_event = on_event
        self._handoff = handoff

    def emit_event(self, event_type: str, fields: Mapping[str, object], ts_ns: int,
                   direction: Direction = Direction.TO_SERVER) -> None:
        """Report protocol metadata (an EVE ``event_type`` record such as ``tls`` or ``dns``)."""
        if self._on_event is not None:
            self._on_event(AppEvent(ts_ns, flow_ref(self.flow, direction), event_type, dict(fields)))

    def handoff(self, at: tuple[int, int], ts_ns: int, *, protocol: str | None = None,
                replay: tuple[bytes, bytes] = (b"", b""), meta: Mapping[str, str] | None = None,
                host: str = "") -> list[ContentObject]:
        """Give the rest of this flow's stream to detection (``protocol=None``) or to the
        named table entry, and return the objects that replaying made.

        ``at[d]`` is the stream offset where the next protocol starts in direction ``d``;
        ``replay[d]`` holds the bytes from ``at[d]`` that this parser was already fed (they are
        replayed first; later events go to the next parser directly). ``meta``/``host`` are
        added to every later object of the flow. This parser receives no more events; its
        `close` is still called when the flow ends. An unknown ``protocol`` name (no entry)
        drops the rest of the stream.
        """
        return self._handoff(self, at, ts_ns, protocol, replay, meta or {}, host)


class Tagged:
    """Wraps a parser whose objects carry handoff metadata (``ctx.meta``, ``ctx.host``)."""

    __slots__ = ("host", "inner", "meta")

    def __init__(self, inner: Any, meta: Mapping[str, str], host: str) -> None:
        self.inner = inner
        self.meta = dict(meta)
        self.host = host

    def _tag(self, objs: list[ContentObject]) -> list[ContentObject]:
        if not objs:
            return objs
        return [replace(o, meta={**self.meta, **o.meta}, host=o.host or self.host) for o in objs]

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        return self._tag(self.inner.feed(ev))

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        return self._tag(self.inner.close(flow, ts_ns))


class Ignore:
    """The parser of a flow tapsift does not look into (TLS, SSH, an unknown handoff)."""

    __slots__ = ()

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        return []

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        return []


IGNORE = Ignore()


def ignore(flow: Flow, ctx: ParserContext) -> Ignore:
    """Factory of `Ignore` (one shared instance: it holds no state)."""
    return IGNORE
