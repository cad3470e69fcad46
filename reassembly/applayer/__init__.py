"""The application layer: protocol detection by content and dispatch, as one sans-IO stage.

``AppLayer`` (`reassembly.applayer.stage`) takes the `StreamEvent`s of TCP reassembly and of
SCTP reassembly (`reassembly.sctp`: one flow per association and stream id), and UDP packets,
and hands each flow to the parser of its protocol, found in ONE protocol table
(`reassembly.applayer.table.PROTOCOLS`), as Suricata's app-layer registration does. Parsers
return `ContentObject`s; the stage gives them to its ``emit`` callback, metadata records
(`AppEvent`) to ``on_event``, and finished flows to ``on_flow_end``.

Adding a protocol is a new module with one `AppProtocol` and one line in ``table.PROTOCOLS``
(plus, to make its limits configurable, a section under ``applayer:`` in the settings).

The table entry::

    @dataclass(frozen=True, slots=True)
    class AppProtocol:
        name: str                       # flow.app_proto once chosen; key of its settings section
        factory: Callable[[Flow, ParserContext], Parser]
        probe: Probe | None = None      # None: reached by expectation, handoff or as fallback
        ports: frozenset[int] = frozenset()   # hints: order probes, never required
        limits: Limits = Limits()       # defaults (frozen dataclass; body_limit at least)
        limits_from: str = ""           # use another entry's settings section (ftp-data → ftp)
        transport: Literal["tcp", "udp"] = "tcp"
        fallback: bool = False          # the parser of a stream no probe claims
        shared: Callable[[ObjectFactory, Limits], object] | None = None   # per-stage state

Probe: ``probe(client_bytes: bytes, server_bytes: bytes, flow: Flow) -> bool | None`` — the
first bytes (up to 8 KiB) each side sent; True = mine, False = not mine, None = need more bytes.
Detection order: entries whose ``ports`` hold the flow's server port, then table order; the
first True wins. A flow for which every probe said False, or whose 8 KiB per direction or both
directions ran out, goes to the fallback entry (``raw``: kept only when a file signature starts
it). Before probing, a new flow is looked up in the expectation table (`Expectations`: FTP data
connections, IRC DCC): a context there names the entry (``ctx.protocol``) that parses the flow.

Parser (stream): built by ``factory(flow, ctx)``; ``feed(ev: StreamEvent) -> list[ContentObject]``
gets every in-order `StreamData` / `StreamGap` / `StreamClosed` of both directions (the events
held during detection are replayed first, from offset 0 or from the handoff offset);
``close(flow: Flow, ts_ns: int) -> list[ContentObject]`` is called once both directions
closed (or the flow was evicted / the capture ended). Parsers never raise on wire data and bound
their memory. Every protocol returns objects the same way, HTTP included (its entry wraps
`Http1Parser` and the content assembler).

Datagram parser (``transport="udp"``): ``feed_datagram(pkt: Packet, direction: Direction) ->
list[ContentObject]`` and ``close(flow, ts_ns)``. The first datagram of a conversation with a
payload is probed (as ``client_bytes``; None counts as no); a conversation no entry claims
costs one dict lookup per packet from then on.

`ParserContext` (``ctx``), one per flow: ``factory`` (`ObjectFactory`), ``limits`` (this
protocol's limits object), ``expectations`` (the expectation table), ``expected`` (the context
an expectation matched, else None), ``shared`` (the entry's per-stage state), and

- ``ctx.emit_event(event_type, fields, ts_ns, direction=TO_SERVER)``: a metadata record
  (`AppEvent`; written as an EVE event of that type);
- ``ctx.handoff(at, ts_ns, *, protocol=None, replay=(b"", b""), meta=None, host="") ->
  list[ContentObject]``: give the rest of the stream to detection (``protocol=None``) or to a
  named entry from stream offset ``at[d]`` in each direction; ``replay[d]`` are the bytes from
  ``at[d]`` the parser was already fed. Used by HTTP CONNECT (a 2xx answer: the tunnel is
  detected afresh; its objects carry ``meta["connect_host"]``), SOCKS (the same, once the proxy
  granted the request) and ``101`` upgrades (to the entry named by the Upgrade token, if the
  table has one).

Limits: each entry's ``limits`` default is overridden by the settings section
``applayer.<name>`` (``limits_from`` to share one); the stage's limits can be replaced at run
time (`AppLayer.set_limits`), new flows then use the new ones.
"""

from reassembly.applayer.base import (
    IGNORE,
    AppProtocol,
    DatagramParser,
    Limits,
    Parser,
    ParserContext,
    Probe,
    ignore,
)
from reassembly.applayer.expect import Expectations

__all__ = [
    "IGNORE",
    "AppProtocol",
    "DatagramParser",
    "Expectations",
    "Limits",
    "Parser",
    "ParserContext",
    "Probe",
    "ignore",
]
