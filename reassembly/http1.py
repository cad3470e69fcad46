"""HTTP/1.0 and 1.1 parser: stream events of one flow in, HTTP events out.

`Http1Parser(flow).feed(stream_event) -> list[HttpEvent]` takes the in-order `StreamData`,
`StreamGap` and `StreamClosed` events of both directions. It pairs requests and responses
(pipelining: a queue of transactions waiting for their response), and emits:

- `HttpTxStart` when the request headers (TO_SERVER) or response headers (TO_CLIENT) are complete;
- `HttpBodyData` with transfer-decoded (de-chunked) body bytes, not content-decoded;
- `HttpBodyGap` for body bytes lost in a stream gap;
- `HttpBodyEnd(complete, reason)`: exactly one per `HttpTxStart`, also for messages without a
  body (``reason="no_body"``); ``complete=False`` when the framing was cut short.

Parsing follows the browsers (Chromium, and Firefox where Chromium gives up; docs/carriers.md,
"HTTP framing: whose reading"), and every oddity becomes an anomaly code on ``tx.anomalies``
(``http.*``). The rules, in short:

- lines end at LF; a CR before it is dropped; a bare CR inside the header section also ends a
  line (as Chromium tokenises it); the section ends at an empty line; a line of CRs right after
  a bare-LF line ends it too unless an empty line follows (``\\n\\r\\r\\n\\r\\n`` ends at the
  empty line, as in both browsers), and so does a single SP/HT line (LF only, not followed by
  LF, as libhtp);
- leading blank/junk lines before a status line are skipped (``HTTP/`` searched in any case,
  also after a few junk bytes); no status line in the first KiB → HTTP/0.9 body until close;
- obs-fold continuation lines (starting with SP, HT, or NUL as libhtp folds) are joined, unless
  the continuation itself looks like ``Name: value`` (then it is also a header of its own);
  junk bytes in header names are ignored when matching (``Content\\0-Encoding``); whitespace
  before the colon is accepted;
- a Transfer-Encoding element ``chunked`` (any case, any position, several headers) wins over
  Content-Length, whose first bytes are reported as an alternate reading (`_start_alt`); a
  definite ``chunked`` body needs only a hex digit to start; ``chunked`` with junk around it
  (``x chunked``) is used only if the body starts like a chunk-size line, otherwise
  Content-Length or close-delimited framing (``http.chunked_not_chunked``);
- a response's Content-Length is Firefox's leading number; when Chromium rejects the value
  (``68;``, ``68 34``), its reading (to the close) is an alternate reading; a request's is the
  largest number in the value; several differing Content-Length headers: the first;
- chunk sizes as Firefox reads them (`chunk_size`): leading whitespace, ``+``, ``0x`` and
  blank lines skipped, junk after the hex digits ignored, missing final chunk →
  ``complete=False``;
- 1xx are interim (skipped; a 101 only switches protocols if the request asked to upgrade);
  204/304/HEAD have no body unless a 204/304 announces framing and the next bytes are not a
  status line; CONNECT 2xx and 101 switch to tunnel mode (``http.tunnel``), parsing stops;
- after a CONNECT request the client's bytes are held (up to ``max_header_bytes``) until its
  answer: a 2xx makes them the tunnel's first bytes, anything else HTTP again (libhtp's
  CONNECT wait). Entering a tunnel sets ``handoff`` to a `Tunnel`: the stream offsets where it
  starts and the bytes already received past them (the application layer hands the rest of the
  stream to detection, or to the protocol the Upgrade header names);
- a gap that takes a response head pairs the response with the oldest waiting request; unless
  a status line follows the hole, the bytes after it are the rest of that body (`_head_lost`).

Memory: header sections are capped at ``max_header_bytes`` (then that direction is given up,
``http.header_too_long``); body bytes are passed through as slices of the incoming data,
never buffered beyond a chunk-size line or a short sniff window.
"""

from __future__ import annotations

import re
from collections import deque
from typing import NamedTuple

from appliance.model.flows import Flow
from appliance.model.http import (
    Headers,
    HttpBodyData,
    HttpBodyEnd,
    HttpBodyGap,
    HttpEvent,
    HttpTransaction,
    HttpTxStart,
)
from appliance.model.streams import Direction, StreamClosed, StreamData, StreamEvent, StreamGap
from reassembly.bodies import canonical_name, value_tokens
from reassembly.detect import KNOWN_METHODS

# direction states
_START = 0  # waiting for / reading a header section
_CL = 1  # Content-Length body
_CHUNK_SIZE = 2  # reading a chunk-size line
_CHUNK_DATA = 3
_TRAILERS = 4
_CLOSE = 5  # body until the stream closes
_SNIFF = 6  # deciding whether a body is really chunked
_PEEK = 7  # 204/304 with framing headers: body or next status line?
_RESYNC = 8  # after a gap: looking for the next message start
_DEAD = 9  # given up on this direction
_TUNNEL = 10
_WAIT = 11  # request side after a CONNECT: holding bytes until the answer
_HEADLOST = 12  # a gap swallowed a response head: is what follows a status line or body?
_HEADLOST_BODY = 13  # the rest of a response whose head was lost, up to the next status line

_SNIFF_MAX = 64
_CHUNK_LINE_MAX = 4096
_HTTP0_9_AFTER = 1024
_JUNK_LINES_MAX = 8

_HEX = frozenset(b"0123456789abcdefABCDEF")
_TC = (b"t", b"T", b"c", b"C")
_WS = b" \t\r\n\x0b\x0c"
_STATUS_RE = re.compile(rb"[ \t\x0b\x0c\x00]*(\d+)")
_HEADERLIKE_RE = re.compile(rb"[ \t]+[!#$%&'*+.^_`|~0-9A-Za-z-]+[ \t]*:")
_RESYNC_REQ_RE = re.compile(
    rb"(?:^|\n)(?:"
    + b"|".join(sorted(KNOWN_METHODS, key=len, reverse=True)).replace(b"-", rb"\-")
    + rb") [^ \r\n]"
)
_RESYNC_RESP_RE = re.compile(rb"(?:^|\n)[ \t]*HTTP/\d", re.I)
_NEXT_STATUS_RE = re.compile(rb"HTTP/1\.[01] [1-5][0-9][0-9][ \r\n]")
"""A status line inside the rest of a response whose head was lost: where the next one starts."""
_NEXT_STATUS_HOLD = 13
"""Bytes held back at the end of such a body (a status line may be split across segments)."""
_LENIENT_CL_RE = re.compile(rb"[ \t\n\x0b\x0c\r]*\+?([0-9]{1,18})")
_C_SPACE = b" \t\n\x0b\x0c\r"
"""What C's ``isspace`` skips (``strtol``/``strtoul`` before the number)."""


def _upgrade_token(value: bytes | None) -> str | None:
    """The protocol an Upgrade header asks for first (``websocket``, ``h2c``…), lower case."""
    if not value:
        return None
    tok = value.split(b",", 1)[0].strip().split(b"/", 1)[0].strip().lower()
    return tok.decode("latin-1") or None


def parse_content_length(value: bytes) -> int | None:
    """Lenient Content-Length of a request (and of range bookkeeping): digits only, else the
    largest number in the value. Responses are read as the browsers do (`content_length_views`)."""
    v = value.strip(b" \t")
    if v.isdigit():
        return int(v)
    nums = re.findall(rb"\d{1,18}", v)
    if not nums:
        return None
    return max(int(n) for n in nums)


def content_length_views(value: bytes) -> tuple[int | None, int | None]:
    """(Chromium's, Firefox's) reading of a response's Content-Length value.

    Chromium takes the value only when it is digits between optional SP/HT (``68 34``, ``68;``
    and ``+68`` are no length at all: the body runs to the close). Firefox takes the number
    ``strtoll`` reads at the start (whitespace, an optional ``+``, digits; junk after it ignored).
    """
    v = value.strip(b" \t")
    strict = int(v) if v.isdigit() and len(v) <= 18 else None
    m = _LENIENT_CL_RE.match(value)
    return strict, int(m.group(1)) if m else None


def chunk_size(line: bytes) -> tuple[int | None, str]:
    """The size a chunk-size line announces, read as Firefox reads it (``strtoul(line, 16)``),
    and what else the line held: ``""``, ``"extension"`` (``;…``) or ``"junk"``.

    Leading whitespace, a ``+`` and a ``0x`` prefix are skipped; the hex digits that follow are
    the size; whatever comes after them (``fx``, ``f\\0``, ``f ;ext``) is ignored. None when no hex
    digit starts the line, or when the size has more than 15 significant digits.
    """
    s = line.lstrip(_C_SPACE)
    if s[:1] == b"+":
        s = s[1:]
    if s[:2] in (b"0x", b"0X") and s[2:3] and s[2] in _HEX:
        s = s[2:]
    j = 0
    n = len(s)
    while j < n and s[j] in _HEX:
        j += 1
    if j == 0:
        return None, "junk"
    digits = s[:j].lstrip(b"0")
    if len(digits) > 15:
        return None, "overflow"
    rest = s[j:].rstrip(_C_SPACE)
    kind = "" if not rest else "extension" if rest.lstrip(b" \t")[:1] == b";" else "junk"
    return (int(digits, 16) if digits else 0), kind


class Tunnel(NamedTuple):
    """Where a tunnel (CONNECT 2xx, 101 Switching Protocols) starts; see `Http1Parser`."""

    at: tuple[int, int]
    """Stream offset of the tunnel's first byte per direction (meaningful where ``replay`` is not empty)."""
    replay: tuple[bytes, bytes]
    """Bytes from ``at`` the parser already received, per direction."""
    protocol: str | None
    """The Upgrade token of a 101 (``websocket``, ``h2c``…), None for CONNECT (detect afresh)."""
    target: str
    """The request target (for CONNECT, the ``host:port`` authority)."""


class _Dir:
    """Parser state of one direction."""

    __slots__ = (
        "alt",
        "alt_emitted",
        "alt_left",
        "alt_limit_hit",
        "body_len",
        "buf",
        "chunked_definite",
        "cl",
        "closed",
        "direction",
        "emitted",
        "junk",
        "limit_hit",
        "lost_gap",
        "lost_tx",
        "no_body_peek",
        "peek_chunked",
        "prev_bare_lf",
        "remaining",
        "scan",
        "start",
        "state",
        "tail",
        "tx",
    )

    def __init__(self, direction: Direction) -> None:
        self.direction = direction
        self.state = _START
        self.buf = bytearray()
        self.scan = 0  # next unexamined line start in buf (header states)
        self.start = -1  # start of the message's first line in buf (-1 = not found yet)
        self.junk = 0  # junk lines skipped before the start line
        self.prev_bare_lf = False
        self.tx: HttpTransaction | None = None  # the tx whose body is being read
        self.remaining = 0
        self.chunked_definite = False
        self.cl: int | None = None
        self.emitted = 0
        self.body_len = 0
        self.no_body_peek = False
        self.limit_hit = False
        self.closed = False
        self.peek_chunked: bool | None = None
        self.tail = b""  # the bytes after the header section being parsed (for a tunnel's start)
        self.alt: HttpTransaction | None = None
        """The alternate view of a body whose framing browsers read differently (see `_start_alt`)."""
        self.alt_left: int | None = None  # a prefix view: bytes still to give it; None: up to the close
        self.alt_emitted = 0
        self.alt_limit_hit = False
        self.lost_tx: HttpTransaction | None = None  # the request whose response head a gap took
        self.lost_gap = 0

    def reset_header(self) -> None:
        self.buf = bytearray()
        self.scan = 0
        self.start = -1
        self.junk = 0
        self.prev_bare_lf = False


class Http1Parser:
    """HTTP/1.x parser for both directions of one flow (sans-IO, never raises on wire data)."""

    def __init__(self, flow: Flow, *, max_header_bytes: int = 64 * 1024, body_limit: int | None = None,
                 max_pending: int = 256) -> None:
        self.flow = flow
        self.max_header_bytes = max_header_bytes
        self.body_limit = body_limit
        self.max_pending = max_pending
        self.dirs = (_Dir(Direction.TO_SERVER), _Dir(Direction.TO_CLIENT))
        self.pending: deque[HttpTransaction] = deque()  # requests waiting for a response
        self.next_tx_id = 0
        self.anomalies: list[str] = []  # flow-level anomalies (no tx to attach them to)
        self.tunnel = False
        self.handoff: Tunnel | None = None
        """Where the tunnel starts, once one was entered (the consumer takes it and sets None)."""
        self._ev: list[HttpEvent] = []
        self._event: StreamEvent = StreamClosed(flow, Direction.TO_SERVER, 0, 0, "none")
        """The event being fed (its time stamps the HTTP events; its offset places a tunnel)."""
        self._wait_tx: HttpTransaction | None = None
        """The CONNECT whose answer the request side waits for (`_WAIT`)."""
        self._wait_at = -1
        """Stream offset of the first byte held in `_WAIT` (-1: none yet)."""
        self._end_override = -1

    # -- entry point ------------------------------------------------------------------------
    def feed(self, event: StreamEvent) -> list[HttpEvent]:
        """Process one stream event; returns the HTTP events it completes."""
        self._ev = []
        self._event = event
        d = self.dirs[event.direction]
        alt = d.alt if d.alt_left is None else None  # a reading that runs to the close takes every byte
        try:
            if d.closed:
                pass
            elif isinstance(event, StreamData):
                if event.data:
                    self._data(d, event.data)
                    if alt is not None and d.alt is alt:
                        self._alt_data(d, event.data)
            elif isinstance(event, StreamGap):
                if event.length > 0:
                    self._gap(d, event.length)
                    if alt is not None and d.alt is alt:
                        self._alt_gap(d, event.length)
            elif isinstance(event, StreamClosed):
                self._close(d)
                d.closed = True
                if d.alt is not None:
                    self._end_alt(d, True, "close")
        except Exception:  # a bug must not kill the sensor: give this direction up, keep the flow
            self._anomaly(d.tx, "http.parser_error")
            self._end_body(d, False, "parser_error")
            self._end_alt(d, False, "parser_error")
            d.state = _DEAD
            d.buf = bytearray()
        ev, self._ev = self._ev, []
        return ev

    # -- helpers ----------------------------------------------------------------------------
    def _anomaly(self, tx: HttpTransaction | None, code: str) -> None:
        target = tx.anomalies if tx is not None else self.anomalies
        if code not in target:
            target.append(code)

    def _new_tx(self) -> HttpTransaction:
        tx = HttpTransaction(self.flow.uid, self.next_tx_id, self._event.ts_ns)
        self.next_tx_id += 1
        return tx

    def _body_data(self, d: _Dir, data: bytes) -> None:
        if not data:
            return
        tx = d.tx
        if tx is None:
            return
        if d.alt_left:  # a prefix view takes the same bytes first
            self._alt_data(d, data)
        n = len(data)
        d.body_len += n
        if d.direction is Direction.TO_SERVER:
            tx.request_body_len += n
        else:
            tx.response_body_len += n
        limit = self.body_limit
        if limit is not None:
            room = limit - d.emitted
            if room <= 0:
                d.limit_hit = True
                return
            if n > room:
                data = data[:room]
                d.limit_hit = True
        d.emitted += len(data)
        self._ev.append(HttpBodyData(self.flow, tx, d.direction, data, self._event.ts_ns))

    def _body_gap(self, d: _Dir, n: int) -> None:
        if n <= 0 or d.tx is None:
            return
        if d.alt_left:
            self._alt_gap(d, n)
        d.body_len += n
        if d.direction is Direction.TO_SERVER:
            d.tx.request_body_len += n
        else:
            d.tx.response_body_len += n
        self._anomaly(d.tx, "http.body_gap")
        self._ev.append(HttpBodyGap(self.flow, d.tx, d.direction, n, self._event.ts_ns))

    def _end_body(self, d: _Dir, complete: bool, reason: str = "") -> None:
        """End the current message body (if any) and go back to waiting for a message."""
        tx = d.tx
        if tx is not None:
            if d.limit_hit:
                complete, reason = False, "body_limit"
            self._ev.append(HttpBodyEnd(self.flow, tx, d.direction, self._event.ts_ns, complete, reason))
        if d.alt is not None and d.alt_left is not None:  # a prefix view ends with its body
            self._end_alt(d, d.alt_left == 0 or complete, "" if d.alt_left == 0 else reason)
        d.tx = None
        d.cl = None
        d.emitted = 0
        d.body_len = 0
        d.limit_hit = False
        d.no_body_peek = False
        if d.state not in (_DEAD, _TUNNEL, _RESYNC):
            d.state = _START
        d.reset_header()

    # -- alternate views ---------------------------------------------------------------------
    def _start_alt(self, d: _Dir, tx: HttpTransaction, prefix: int | None) -> None:
        """Report a second reading of this body, where browsers frame it differently.

        ``prefix=None``: Chromium's reading of a Content-Length it rejects (``68;``, ``68 34``):
        every byte of this direction from here to the close. ``prefix=n``: the first ``n``
        de-chunked bytes (the Content-Length a chunked body also declared). The view is a
        transaction of its own (same ``tx_id``, anomaly ``http.alternate_framing``); the
        content assembler drops it when it comes out identical to the main reading.
        """
        if d.alt is not None:
            return
        alt = HttpTransaction(tx.flow_uid, tx.tx_id, tx.ts_ns)
        for name in ("method", "uri", "request_version", "request_headers", "status", "reason",
                     "response_version", "response_headers"):
            setattr(alt, name, getattr(tx, name))
        alt.anomalies = [*tx.anomalies, "http.alternate_framing"]
        d.alt = alt
        d.alt_left = prefix
        d.alt_emitted = 0
        d.alt_limit_hit = False
        self._ev.append(HttpTxStart(self.flow, alt, d.direction, self._event.ts_ns))
        if prefix is None and d.tail:
            self._alt_data(d, d.tail)

    def _alt_data(self, d: _Dir, data: bytes) -> None:
        if d.alt_left is not None:
            if len(data) > d.alt_left:
                data = data[:d.alt_left]
            d.alt_left -= len(data)
        if self.body_limit is not None:
            room = self.body_limit - d.alt_emitted
            if len(data) > room:
                data = data[:max(room, 0)]
                d.alt_limit_hit = True
        if data:
            d.alt_emitted += len(data)
            self._ev.append(HttpBodyData(self.flow, d.alt, d.direction, data, self._event.ts_ns))  # type: ignore[arg-type]

    def _alt_gap(self, d: _Dir, n: int) -> None:
        if d.alt_left is not None:
            n = min(n, d.alt_left)
            d.alt_left -= n
        if n > 0:
            self._ev.append(HttpBodyGap(self.flow, d.alt, d.direction, n, self._event.ts_ns))  # type: ignore[arg-type]

    def _end_alt(self, d: _Dir, complete: bool, reason: str) -> None:
        alt = d.alt
        if alt is None:
            return
        if d.alt_limit_hit:
            complete, reason = False, "body_limit"
        d.alt = None
        d.alt_left = None
        self._ev.append(HttpBodyEnd(self.flow, alt, d.direction, self._event.ts_ns, complete, reason))

    # -- data -------------------------------------------------------------------------------
    def _data(self, d: _Dir, data: bytes) -> None:
        i = 0
        n = len(data)
        while i < n:
            st = d.state
            if st == _CL:
                take = min(d.remaining, n - i)
                self._body_data(d, data[i:i + take] if (i or take < n) else data)
                i += take
                d.remaining -= take
                if d.remaining == 0:
                    self._end_body(d, True)
            elif st == _CHUNK_DATA:
                take = min(d.remaining, n - i)
                self._body_data(d, data[i:i + take] if (i or take < n) else data)
                i += take
                d.remaining -= take
                if d.remaining == 0:
                    d.state = _CHUNK_SIZE
            elif st == _CLOSE:
                self._body_data(d, data[i:] if i else data)
                i = n
            elif st in (_CHUNK_SIZE, _TRAILERS):
                j = data.find(b"\n", i)
                if j < 0:
                    d.buf += data[i:]
                    i = n
                    if len(d.buf) > (_CHUNK_LINE_MAX if st == _CHUNK_SIZE else self.max_header_bytes):
                        self._anomaly(d.tx, "http.chunk_line_too_long")
                        d.buf = bytearray()
                        self._end_body(d, False, "chunk_error")
                        d.state = _RESYNC
                    continue
                if d.buf:
                    line = bytes(d.buf) + data[i:j]
                    d.buf = bytearray()
                else:
                    line = data[i:j]
                i = j + 1
                if st == _CHUNK_SIZE:
                    self._chunk_size_line(d, line)
                else:
                    self._trailer_line(d, line)
            elif st == _START:
                d.buf += data[i:] if i else data
                i = n
                rest = self._scan_headers(d)
                if rest is not None:
                    data, i, n = rest, 0, len(rest)
            elif st in (_SNIFF, _PEEK):
                d.buf += data[i:] if i else data
                i = n
                rest = self._sniff(d, False) if st == _SNIFF else self._peek(d, False)
                if rest is not None:
                    data, i, n = rest, 0, len(rest)
            elif st == _RESYNC:
                d.buf += data[i:] if i else data
                i = n
                rest = self._resync(d)
                if rest is not None:
                    data, i, n = rest, 0, len(rest)
            elif st in (_HEADLOST, _HEADLOST_BODY):
                d.buf += data[i:] if i else data
                i = n
                rest = self._head_lost(d, False)
                if rest is not None:
                    data, i, n = rest, 0, len(rest)
            elif st == _WAIT:
                if self._wait_at < 0:
                    self._wait_at = self._data_end() - (n - i)
                d.buf += data[i:] if i else data
                i = n
                if len(d.buf) > self.max_header_bytes:  # no answer to the CONNECT: HTTP again
                    self._anomaly(self._wait_tx, "http.tunnel_reply_missing")
                    data = self._unwait(d)
                    i, n = 0, len(data)
            else:  # _DEAD, _TUNNEL
                return

    # -- header sections --------------------------------------------------------------------
    def _scan_headers(self, d: _Dir) -> bytes | None:
        """Look for the end of the header section in ``d.buf``; on success parse it and
        return the bytes after it (to continue with), else None (need more data)."""
        buf = d.buf
        nbuf = len(buf)
        pos = d.scan
        while True:
            if d.start < 0:
                found = self._find_start(d)
                if found is None:
                    return None
                if found is False:  # HTTP/0.9 response or give up
                    return self._http09(d)
                pos = d.scan
            if pos == d.start or not d.prev_bare_lf:
                # fast path: CRLF-only header section ending in an empty line
                k = buf.find(b"\r\n\r\n", max(pos - 2, d.start))
                if k >= 0 and k - d.start <= self.max_header_bytes and (
                        buf.count(b"\n", pos, k) == buf.count(b"\r\n", pos, k)):
                    block = bytes(buf[d.start:k + 2])
                    rest = bytes(buf[k + 4:])
                    d.reset_header()
                    d.tail = rest
                    self._message(d, block)
                    d.tail = b""
                    return rest
            j = buf.find(b"\n", pos)
            if j < 0:
                if nbuf - d.start > self.max_header_bytes:
                    return self._too_long(d)
                d.scan = pos
                return None
            if j - d.start > self.max_header_bytes:
                return self._too_long(d)
            # the line is buf[pos:j]
            end = j
            if end > pos and buf[end - 1] == 13:
                end -= 1
                bare_lf = False
            else:
                bare_lf = True
            line_empty = end == pos
            terminator = False
            if pos > d.start:  # not the start line itself
                if line_empty:
                    terminator = True
                elif d.prev_bare_lf and buf.count(b"\r", pos, end) == end - pos:
                    # "\n\r\r\n": the end for a client that takes a CR line as empty; when an
                    # empty line follows ("\n\r\r\n\r\n"), that one ends it, as in Chromium
                    # and Firefox (the CR line is then a junk line)
                    nxt = bytes(buf[j + 1:j + 3])
                    if (nxt in (b"", b"\r") and not d.closed):
                        d.scan = pos
                        return None  # need the next bytes to decide
                    terminator = True
                    self._anomaly(None, "http.cr_line_terminator")
                    if nxt[:1] == b"\n":
                        j += 1
                    elif nxt == b"\r\n":
                        j += 2
                elif bare_lf and end - pos == 1 and buf[pos] in (32, 9):
                    if j + 1 >= nbuf:
                        if d.closed:
                            terminator = True
                        else:
                            d.scan = pos
                            return None  # need the next byte to decide
                    elif buf[j + 1] != 10:
                        terminator = True
                        self._anomaly(None, "http.lws_line_terminator")
            if terminator:
                block = bytes(buf[d.start:pos])
                rest = bytes(buf[j + 1:])
                d.reset_header()
                d.tail = rest
                self._message(d, block)
                d.tail = b""
                return rest
            d.prev_bare_lf = bare_lf
            pos = j + 1

    def _find_start(self, d: _Dir) -> bool | None:
        """Find the first line of a message in ``d.buf`` from ``d.scan``: sets ``d.start``.
        True = found, None = need more data, False = not HTTP (0.9 response / give up)."""
        buf = d.buf
        pos = d.scan
        resp = d.direction is Direction.TO_CLIENT
        while True:
            j = buf.find(b"\n", pos)
            line_end = j if j >= 0 else len(buf)
            seg = bytes(buf[pos:line_end])
            stripped = seg.lstrip(_WS)
            if not stripped:
                if j < 0:
                    d.scan = pos
                    return None
                if resp or pos:
                    pass
                pos = j + 1
                continue
            lead = len(seg) - len(stripped)
            if resp:
                k = stripped[:16].upper().find(b"HTTP/")
                if k < 0 and b"\r" in stripped:  # "...\rHTTP/1.1": bare CR separated junk
                    for m in re.finditer(rb"\r", stripped[:256]):
                        if stripped[m.end():m.end() + 5].upper() == b"HTTP/":
                            k = m.end()
                            break
                if k >= 0:
                    if pos or lead or k:
                        self._anomaly(None, "http.junk_before_status_line")
                    d.start = pos + lead + k
                    d.scan = d.start
                    return True
                if j < 0 and len(stripped) < 16 and b"HTTP/".startswith(stripped.upper()[:5]) \
                        and len(buf) - pos < _HTTP0_9_AFTER:
                    d.scan = pos
                    return None
                if j < 0:
                    if len(buf) < _HTTP0_9_AFTER and not d.closed:
                        d.scan = pos
                        return None
                    return False
                d.junk += 1
                if d.junk > _JUNK_LINES_MAX or j + 1 > _HTTP0_9_AFTER:
                    return False
                pos = j + 1
                continue
            # request: METHOD SP target
            sp = -1
            for c in (b" ", b"\t"):
                x = stripped.find(c, 0, 32)
                if x > 0 and (sp < 0 or x < sp):
                    sp = x
            if sp > 0 and stripped[:sp].replace(b"-", b"").replace(b"_", b"").isalpha():
                if pos or lead:
                    self._anomaly(None, "http.junk_before_request_line")
                d.start = pos + lead
                d.scan = d.start
                return True
            if j < 0:
                if len(stripped) < 32 and sp < 0 and not d.closed:
                    d.scan = pos
                    return None
                return False
            d.junk += 1
            if d.junk > _JUNK_LINES_MAX:
                return False
            pos = j + 1

    def _http09(self, d: _Dir) -> bytes | None:
        if d.direction is Direction.TO_SERVER:
            self._anomaly(None, "http.request_not_http")
            d.buf = bytearray()
            d.state = _RESYNC
            return None
        # a response without a status line: the whole rest of the stream is its body
        tx = self._response_tx()
        self._anomaly(tx, "http.response_http09")
        tx.response_version = b"HTTP/0.9"
        tx.status = 200
        self._ev.append(HttpTxStart(self.flow, tx, d.direction, self._event.ts_ns))
        rest = bytes(d.buf)
        d.reset_header()
        d.tx = tx
        d.state = _CLOSE
        return rest

    def _too_long(self, d: _Dir) -> None:
        self._anomaly(d.tx, "http.header_too_long")
        if d.tx is None:
            self._anomaly(None, "http.header_too_long")
        d.reset_header()
        d.state = _DEAD
        return None

    def _response_tx(self) -> HttpTransaction:
        if self.pending:
            return self.pending.popleft()
        tx = self._new_tx()
        self._anomaly(tx, "http.response_without_request")
        return tx

    @staticmethod
    def _split_lines(block: bytes, tx: HttpTransaction) -> list[bytes]:
        """Lines of a header section: LF ends a line, one CR before it is dropped, a bare
        CR elsewhere also ends a line (empty pieces dropped)."""
        ncr = block.count(b"\r")
        if ncr and ncr == block.count(b"\n") == block.count(b"\r\n"):
            return block.split(b"\r\n")
        if not ncr:
            if b"\n" in block:
                lines = block.split(b"\n")
                if lines and lines[-1] == b"":
                    lines.pop()
                if any(lines):
                    tx.anomalies.append("http.bare_lf")
                return lines
            return [block]
        out: list[bytes] = []
        bare_lf = bare_cr = False
        for line in block.split(b"\n"):
            if line.endswith(b"\r"):
                line = line[:-1]
            elif line:
                bare_lf = True
            if b"\r" in line:
                bare_cr = True
                out.extend(p for p in line.split(b"\r") if p)
            else:
                out.append(line)
        if out and out[-1] == b"":
            out.pop()
        if bare_lf and "http.bare_lf" not in tx.anomalies:
            tx.anomalies.append("http.bare_lf")
        if bare_cr:
            tx.anomalies.append("http.bare_cr")
        return out

    def _parse_header_lines(self, lines: list[bytes], tx: HttpTransaction) -> Headers:
        headers: Headers = []
        for line in lines:
            if not line:
                continue
            c0 = line[0]
            if c0 == 0:  # a NUL starts a continuation, as whitespace does (libhtp's folding)
                line = line.lstrip(b"\x00")
                if not line:
                    continue
                self._anomaly(tx, "http.nul_fold")
                line = b" " + line
                c0 = 32
            if c0 == 32 or c0 == 9:
                if _HEADERLIKE_RE.match(line):
                    self._anomaly(tx, "http.folded_header_line")
                    name, _, value = line.strip(b" \t").partition(b":")
                    if headers:
                        pn, pv = headers[-1]
                        headers[-1] = (pn, (pv + b" " + line.strip(b" \t")) if pv else line.strip(b" \t"))
                    headers.append((name.rstrip(b" \t"), value.strip(b" \t")))
                elif headers:
                    self._anomaly(tx, "http.obs_fold")
                    cont = line.strip(b" \t")
                    if cont:
                        pn, pv = headers[-1]
                        headers[-1] = (pn, (pv + b" " + cont) if pv else cont)
                else:
                    self._anomaly(tx, "http.fold_without_header")
                continue
            colon = line.find(b":")
            if colon < 0:
                # a line without a colon: junk, unless a fold continues it with ": value"
                self._anomaly(tx, "http.invalid_header_line")
                headers.append((line, b""))
                continue
            name = line[:colon]
            value = line[colon + 1:].strip(b" \t")
            if name[-1:] in (b" ", b"\t", b"\x0b", b"\x0c"):
                self._anomaly(tx, "http.space_before_colon")
                name = name.rstrip(b" \t\x0b\x0c")
            if not name:
                self._anomaly(tx, "http.empty_header_name")
            headers.append((name, value))
        if "http.obs_fold" in tx.anomalies:
            return [self._fix_colon_fold(n, v) for n, v in headers]
        return headers

    @staticmethod
    def _fix_colon_fold(name: bytes, value: bytes) -> tuple[bytes, bytes]:
        """``Name\\r\\n :value`` folds into a colon-less line with value ``:value``."""
        if value.startswith(b":") and b":" not in name and name:
            return name.rstrip(b" \t"), value[1:].strip(b" \t")
        return name, value

    def _message(self, d: _Dir, block: bytes) -> None:
        if d.direction is Direction.TO_SERVER:
            self._request(d, block)
        else:
            self._response(d, block)

    # -- requests ---------------------------------------------------------------------------
    def _request(self, d: _Dir, block: bytes) -> None:
        tx = self._new_tx()
        lines = self._split_lines(block, tx)
        first = lines[0] if lines else b""
        parts = first.split()
        if len(parts) >= 1:
            tx.method = parts[0]
        if len(parts) >= 2:
            tx.uri = parts[1]
        if len(parts) >= 3:
            tx.request_version = parts[-1]
            if len(parts) > 3:
                self._anomaly(tx, "http.request_line_spaces")
        else:
            self._anomaly(tx, "http.request_http09")
        if tx.request_version and not tx.request_version.startswith(b"HTTP/"):
            self._anomaly(tx, "http.odd_version")
        if tx.method.upper() != tx.method:
            self._anomaly(tx, "http.odd_method_case")
        tx.request_headers = self._parse_header_lines(lines[1:], tx)
        if len(self.pending) < self.max_pending:
            self.pending.append(tx)
        else:
            self._anomaly(tx, "http.too_many_pending")
        self._ev.append(HttpTxStart(self.flow, tx, d.direction, self._event.ts_ns))
        d.tx = tx
        chunked, cl, _, _ = self._framing(tx, tx.request_headers)
        if chunked is not None:
            self._start_sniff(d, chunked, cl)
        elif cl:
            d.state = _CL
            d.remaining = cl
        else:
            self._end_body(d, True, "no_body")
            if d.state == _START and tx.method.upper() == b"CONNECT" and self._wait_tx is None:
                d.state = _WAIT
                self._wait_tx = tx
                self._wait_at = -1

    # -- responses --------------------------------------------------------------------------
    def _response(self, d: _Dir, block: bytes) -> None:
        scratch = HttpTransaction(self.flow.uid, -1, self._event.ts_ns)
        lines = self._split_lines(block, scratch)
        first = lines[0] if lines else b""
        version, status, reason = self._status_line(first, scratch)
        headers = self._parse_header_lines(lines[1:], scratch)
        peek_tx = self.pending[0] if self.pending else None
        # interim responses: skipped, the final response is still to come
        if 100 <= status < 200:
            upgrade = peek_tx is not None and peek_tx.request_header(b"upgrade") is not None
            if status != 101 or upgrade:
                if status == 101:
                    tx = self._response_tx()
                    self._fill_response(tx, version, status, reason, headers, scratch)
                    self._anomaly(tx, "http.tunnel")
                    self._ev.append(HttpTxStart(self.flow, tx, d.direction, self._event.ts_ns))
                    d.tx = tx
                    self._end_body(d, True, "no_body")
                    self._enter_tunnel(tx, _upgrade_token(tx.request_header(b"upgrade")))
                    return
                if peek_tx is not None:
                    self._anomaly(peek_tx, "http.interim_response")
                return
            scratch.anomalies.append("http.101_without_upgrade")
        tx = self._response_tx()
        self._fill_response(tx, version, status, reason, headers, scratch)
        self._ev.append(HttpTxStart(self.flow, tx, d.direction, self._event.ts_ns))
        d.tx = tx
        method = tx.method.upper()
        if method == b"CONNECT" and 200 <= status < 300:
            self._anomaly(tx, "http.tunnel")
            self._end_body(d, True, "no_body")
            self._enter_tunnel(tx, None)
            return
        if tx is self._wait_tx:  # the CONNECT was refused: what the client sent meanwhile is HTTP
            self._resume()
        chunked, cl, framed, ambiguous = self._framing(tx, headers, response=True)
        if method == b"HEAD":
            self._end_body(d, True, "no_body")
            return
        if status in (204, 304):
            if framed and cl != 0:
                d.no_body_peek = True
                d.state = _PEEK
                d.chunked_definite = bool(chunked)
                d.cl = cl
                d.peek_chunked = chunked
                return
            self._end_body(d, True, "no_body")
            return
        if ambiguous and chunked is None:
            self._start_alt(d, tx, None)
        self._start_body(d, chunked, cl)

    def _start_body(self, d: _Dir, chunked: bool | None, cl: int | None) -> None:
        if chunked is not None:
            self._start_sniff(d, chunked, cl)
        elif cl is not None:
            if cl == 0:
                self._end_body(d, True, "no_body")
            else:
                d.state = _CL
                d.remaining = cl
        elif d.direction is Direction.TO_CLIENT:
            d.state = _CLOSE
        else:
            self._end_body(d, True, "no_body")

    def _fill_response(self, tx: HttpTransaction, version: bytes, status: int, reason: bytes,
                       headers: Headers, scratch: HttpTransaction) -> None:
        tx.response_version = version
        tx.status = status
        tx.reason = reason
        tx.response_headers = headers
        for a in scratch.anomalies:
            self._anomaly(tx, a)

    def _status_line(self, line: bytes, tx: HttpTransaction) -> tuple[bytes, int, bytes]:
        k = line[:16].upper().find(b"HTTP/")
        if k > 0:
            line = line[k:]
        m = re.match(rb"([^ \t\x0b\x0c\x00]*)", line)
        version = m.group(1) if m else b""
        rest = line[len(version):]
        if not version.startswith(b"HTTP/") or version not in (b"HTTP/1.1", b"HTTP/1.0"):
            tx.anomalies.append("http.odd_version")
        sm = _STATUS_RE.match(rest)
        status = 0
        reason = b""
        if sm:
            digits = sm.group(1)
            status = int(digits[:9])
            reason = rest[sm.end():].strip(b" \t\x0b\x0c\x00")
            if len(digits) != 3 or rest[:1] not in (b" ", b""):
                tx.anomalies.append("http.odd_status")
        else:
            tx.anomalies.append("http.no_status_code")
        if sm and not reason:
            tx.anomalies.append("http.no_reason_phrase")
        return version, status, reason

    # -- framing ----------------------------------------------------------------------------
    def _framing(self, tx: HttpTransaction, headers: Headers,
                 response: bool = False) -> tuple[bool | None, int | None, bool, bool]:
        """(chunked: True definite / False maybe / None no, content length, any framing header,
        whether browsers disagree on that length: see `content_length_views`)."""
        te_values: list[bytes] = []
        cl_values: list[bytes] = []
        for name, value in headers:
            if name[:1] not in _TC:
                continue
            cn = canonical_name(name)
            if cn == b"transfer-encoding":
                te_values.append(value)
                if name.lower() != b"transfer-encoding":
                    self._anomaly(tx, "http.odd_header_name")
            elif cn == b"content-length":
                cl_values.append(value)
        cl, ambiguous = self._content_length(tx, cl_values, response)
        chunked = self._chunked(tx, te_values) if te_values else None
        if chunked is not None and cl is not None:
            self._anomaly(tx, "http.cl_te_conflict")
        return chunked, cl, bool(te_values or cl_values), ambiguous

    def _content_length(self, tx: HttpTransaction, values: list[bytes], response: bool) -> tuple[int | None, bool]:
        """The Content-Length to frame with, and whether Chromium and Firefox read it differently.

        Several headers: the first that gives a number (differing values are an anomaly, and an
        error in both browsers). A response's value is read as Firefox reads it (the leading
        number); when Chromium rejects it, its reading (to the close) is reported too. A
        request's value (no browser reads it) is the largest number in it.
        """
        nums: list[int] = []
        first: bytes | None = None
        bad = False
        for value in values:
            v = content_length_views(value)[1] if response else parse_content_length(value)
            if v is None:
                bad = True
                continue
            if first is None:
                first = value
            if not value.strip(b" \t").isdigit():
                self._anomaly(tx, "http.content_length_junk")
            nums.append(v)
        if bad:
            self._anomaly(tx, "http.invalid_content_length")
        if not nums:
            return None, False
        if len(set(nums)) > 1:
            self._anomaly(tx, "http.multiple_content_length")
        elif len(nums) > 1:
            self._anomaly(tx, "http.duplicate_content_length")
        ambiguous = response and first is not None and content_length_views(first)[0] is None
        if ambiguous:
            self._anomaly(tx, "http.ambiguous_content_length")
        return nums[0], ambiguous

    def _chunked(self, tx: HttpTransaction, values: list[bytes]) -> bool | None:
        """True: a Transfer-Encoding element is ``chunked`` (Chromium's test: comma-separated,
        trimmed, any case, any position); False: ``chunked`` shows up with junk around it (the
        body decides, `_sniff`); None: no chunked at all."""
        raw = b",".join(values)
        elements = [e.strip(b" \t").lower() for e in raw.split(b",")]
        tokens = value_tokens(raw)
        if b"chunked" in elements and b"\x00" not in raw:
            if len(tokens) > 1:
                self._anomaly(tx, "http.te_list")
            return True
        if b"chunked" in b"".join(tokens) or b"chunked" in raw.lower():
            self._anomaly(tx, "http.te_junk")
            return False
        self._anomaly(tx, "http.te_unknown")
        return None

    def _start_sniff(self, d: _Dir, definite: bool, cl: int | None) -> None:
        d.state = _SNIFF
        d.chunked_definite = definite
        d.cl = cl
        d.buf = bytearray()

    def _sniff(self, d: _Dir, at_close: bool) -> bytes | None:
        """Does the body start like chunked framing? Decide, then replay the buffer.

        A definite ``chunked`` needs only a hex digit to start the first line (what follows it,
        ``fx``, ``f\\0``, ``0x1f``, is read as Firefox reads it); a ``chunked`` with junk around
        it also needs a separator after the digits, else the body is framed without it.
        """
        buf = d.buf
        i = 0
        n = len(buf)
        while i < n and buf[i] in _WS:
            i += 1
        decision: bool | None = None
        if i < n:
            k = i + 1 if d.chunked_definite and buf[i] == 43 else i  # "+f": strtoul takes the sign
            j = k
            while j < n and buf[j] in _HEX:
                j += 1
            if j == k:
                decision = False if j < n else None
            elif d.chunked_definite:
                decision = True
            elif j < n:
                decision = j - k <= 20 and buf[j] in b" \t\r\n;,\x0b\x0c"
        if decision is None:
            if n < _SNIFF_MAX and not at_close:
                return None
            decision = d.chunked_definite if n >= _SNIFF_MAX else (i < n)
        rest = bytes(buf)
        d.buf = bytearray()
        tx = d.tx
        if decision:
            d.state = _CHUNK_SIZE
            if i > 0:
                self._anomaly(tx, "http.chunk_leading_whitespace")
            if d.cl and tx is not None:  # the Content-Length it also declared: its own reading
                self._start_alt(d, tx, d.cl)
        else:
            self._anomaly(tx, "http.chunked_not_chunked")
            self._start_body(d, None, d.cl)  # framed as if Transfer-Encoding were absent
        return rest

    def _peek(self, d: _Dir, at_close: bool) -> bytes | None:
        """204/304 announcing framing: a body follows unless the next bytes are a status line."""
        stripped = bytes(d.buf).lstrip(_WS)
        if len(stripped) < 5 and not at_close:
            return None
        rest = bytes(d.buf)
        d.buf = bytearray()
        if not stripped or stripped[:5].upper() == b"HTTP/":
            self._end_body(d, True, "no_body")
            return rest
        self._anomaly(d.tx, "http.body_on_no_body_status")
        chunked = d.peek_chunked
        cl = d.cl
        d.state = _START
        self._start_body(d, chunked, cl)
        return rest

    def _chunk_size_line(self, d: _Dir, line: bytes) -> None:
        s = line.strip(_WS)
        if not s:
            return  # blank line: the CRLF after chunk data, or lenient extra blank lines
        size, kind = chunk_size(s)
        if size is None:
            self._anomaly(d.tx, "http.chunk_size_overflow" if kind == "overflow" else "http.chunk_size_invalid")
            self._end_body(d, False, "chunk_error")
            d.state = _RESYNC
            return
        if kind:
            self._anomaly(d.tx, "http.chunk_extension" if kind == "extension" else "http.chunk_size_junk")
        if size == 0:
            self._end_body(d, True)
            d.state = _TRAILERS
            return
        d.remaining = size
        d.state = _CHUNK_DATA

    def _trailer_line(self, d: _Dir, line: bytes) -> None:
        if not line.strip(_WS):
            d.state = _START
            d.reset_header()
        # trailer fields are not kept

    # -- gaps, close, resync, tunnel --------------------------------------------------------
    def _gap(self, d: _Dir, length: int) -> None:
        st = d.state
        if st in (_DEAD, _TUNNEL):
            return
        if st == _WAIT:  # the held bytes cannot start a tunnel any more: resync as HTTP
            self._wait_tx = None
            self._wait_at = -1
        if st == _CLOSE:
            self._body_gap(d, length)
            return
        if st == _CL:
            if length < d.remaining:
                self._body_gap(d, length)
                d.remaining -= length
                return
            self._body_gap(d, d.remaining)
            over = length - d.remaining
            d.remaining = 0
            self._end_body(d, False, "gap")
            if over == 0:
                return
            if d.direction is Direction.TO_CLIENT and self.pending:  # the hole runs into the next response
                self._lose_head(d, over)
                return
        elif st == _CHUNK_DATA:
            if length < d.remaining:
                self._body_gap(d, length)
                d.remaining -= length
                return
            self._body_gap(d, d.remaining)
            self._end_body(d, False, "gap")
        elif st in (_CHUNK_SIZE, _SNIFF, _PEEK):
            self._body_gap(d, length)
            self._end_body(d, False, "gap")
        elif st == _TRAILERS:
            pass
        elif st == _HEADLOST:
            d.lost_gap += length
            return
        elif st == _HEADLOST_BODY:
            if d.buf:  # the held tail before the hole is body too
                self._body_data(d, bytes(d.buf))
                d.buf = bytearray()
            self._body_gap(d, length)
            return
        elif st == _START and d.direction is Direction.TO_CLIENT and self.pending:
            self._lose_head(d, length)
            return
        elif st == _START and d.direction is Direction.TO_SERVER and d.buf.strip(_WS):
            self._anomaly(None, "http.request_lost_in_gap")
        self._anomaly(None, "http.gap_resync")
        d.reset_header()
        d.tx = None
        d.state = _RESYNC

    def _lose_head(self, d: _Dir, length: int) -> None:
        """A hole of ``length`` bytes took (part of) the response head of the oldest request:
        what follows it is either the next status line or the rest of this response's body."""
        lost = self.pending.popleft()
        self._anomaly(lost, "http.response_lost_in_gap")
        if lost is self._wait_tx:
            self._resume()
        self._anomaly(None, "http.gap_resync")
        d.reset_header()
        d.tx = None
        d.lost_tx = lost
        d.lost_gap = length
        d.state = _HEADLOST

    def _head_lost(self, d: _Dir, at_close: bool) -> bytes | None:
        """After a hole that took a response head: the bytes in ``d.buf`` are the next status
        line (the whole response was lost) or the rest of the lost response's body, emitted up
        to the next status line (`_NEXT_STATUS_RE`) as a body flagged ``head_lost``, with the
        hole as missing bytes (an upper bound: it held the head too). Returns the bytes to
        parse as HTTP from there, or None."""
        buf = d.buf
        if d.state == _HEADLOST:
            stripped = bytes(buf[:64]).lstrip(_WS)
            if len(stripped) < 5 and not at_close:
                return None
            if not stripped or stripped[:5].upper() == b"HTTP/":
                rest = bytes(buf)
                d.reset_header()
                d.lost_tx = None
                d.state = _START
                return rest
            tx = d.lost_tx
            d.lost_tx = None
            if tx is None:
                d.state = _RESYNC
                return self._resync(d)
            self._anomaly(tx, "http.response_head_lost")
            self._ev.append(HttpTxStart(self.flow, tx, d.direction, self._event.ts_ns))
            d.tx = tx
            d.state = _HEADLOST_BODY
            self._body_gap(d, d.lost_gap)
        m = _NEXT_STATUS_RE.search(buf)
        if m is None:
            keep = 0 if at_close else _NEXT_STATUS_HOLD
            if len(buf) > keep:
                self._body_data(d, bytes(buf[:len(buf) - keep]))
                d.buf = bytearray(buf[len(buf) - keep:])
            if at_close:
                self._end_body(d, False, "head_lost")
            return None
        self._body_data(d, bytes(buf[:m.start()]))
        rest = bytes(buf[m.start():])
        d.buf = bytearray()
        self._end_body(d, False, "head_lost")  # back to _START
        return rest

    def _resync(self, d: _Dir) -> bytes | None:
        rx = _RESYNC_REQ_RE if d.direction is Direction.TO_SERVER else _RESYNC_RESP_RE
        buf = d.buf
        m = rx.search(buf)
        if m is None:
            if len(buf) > 64:
                d.buf = bytearray(buf[-32:])  # keep a tail in case a message start is split
                if len(d.buf) and b"\n" not in d.buf:
                    d.buf = bytearray(b"\n") + d.buf[-31:]
            return None
        start = m.start() + (1 if buf[m.start():m.start() + 1] == b"\n" else 0)
        rest = bytes(buf[start:])
        d.reset_header()
        d.state = _START
        return rest

    def _data_end(self) -> int:
        """Stream offset just past the data being parsed (the event's, or the held bytes')."""
        if self._end_override >= 0:
            return self._end_override
        ev = self._event
        if type(ev) is StreamData:
            return ev.offset + len(ev.data)
        return ev.offset + ev.length if type(ev) is StreamGap else ev.offset

    def _unwait(self, d: _Dir) -> bytes:
        """Leave `_WAIT`: the held bytes, to be parsed as HTTP."""
        held = bytes(d.buf)
        d.reset_header()
        d.state = _START
        self._wait_tx = None
        self._wait_at = -1
        return held

    def _resume(self) -> None:
        """The CONNECT got no tunnel: parse the request bytes held meanwhile."""
        up = self.dirs[Direction.TO_SERVER]
        if up.state != _WAIT:
            self._wait_tx = None
            return
        start = self._wait_at
        held = self._unwait(up)
        if held:
            self._end_override = start + len(held)
            try:
                self._data(up, held)
            finally:
                self._end_override = -1

    def _enter_tunnel(self, tx: HttpTransaction, protocol: str | None) -> None:
        self.tunnel = True
        up, down = self.dirs
        held = bytes(up.buf) if up.state == _WAIT and self._wait_at >= 0 else b""
        tail = down.tail
        at = (self._wait_at if held else 0, self._data_end() - len(tail) if tail else 0)
        self.handoff = Tunnel(at, (held, tail), protocol, tx.uri.decode("latin-1"))
        self._wait_tx = None
        for x in self.dirs:
            if x.tx is not None and x.state not in (_DEAD, _TUNNEL):
                self._end_body(x, False, "tunnel")
            self._end_alt(x, False, "tunnel")
            x.state = _TUNNEL
            x.buf = bytearray()

    def _close(self, d: _Dir) -> None:
        st = d.state
        if st in (_HEADLOST, _HEADLOST_BODY):
            rest = self._head_lost(d, True)
            if rest:
                self._data(d, rest)
                self._close(d)
            return
        if st == _WAIT:  # no answer before the end: the held bytes are HTTP
            self._resume()
            self._close(d)
            return
        if st == _START:
            if d.buf.strip(_WS):
                if d.direction is Direction.TO_CLIENT:
                    d.closed = True
                    found = self._find_start(d) if d.start < 0 else True
                    if found is False:
                        self._data_close(d, self._http09(d))
                        return
                    if found:
                        # headers cut short: use what there is
                        block = bytes(d.buf[d.start:])
                        d.reset_header()
                        d.tail = b""
                        scratch_before = len(self._ev)
                        self._response(d, block)
                        if len(self._ev) > scratch_before and d.tx is not None:
                            self._anomaly(d.tx, "http.headers_incomplete")
                        self._close(d)
                        return
                else:
                    self._anomaly(None, "http.request_incomplete")
            d.reset_header()
            return
        if st == _SNIFF:
            rest = self._sniff(d, True)
            if rest:
                self._data(d, rest)
            if d.state != _SNIFF:
                self._close(d)
            return
        if st == _PEEK:
            rest = self._peek(d, True)
            if rest:
                self._data(d, rest)
            if d.state != _PEEK:
                self._close(d)
            return
        if st == _CLOSE:
            self._end_body(d, True, "close")
        elif st == _CL:
            self._end_body(d, False, "truncated")
        elif st == _CHUNK_SIZE:
            line = bytes(d.buf).strip(_WS)
            d.buf = bytearray()
            if line and line.rstrip(b"0;\t ") == b"" and line[:1] == b"0":
                self._anomaly(d.tx, "http.chunked_final_unterminated")
                self._end_body(d, True)
            else:
                self._anomaly(d.tx, "http.chunked_no_final")
                self._end_body(d, False, "truncated")
        elif st == _CHUNK_DATA:
            self._end_body(d, False, "truncated")
        d.buf = bytearray()

    def _data_close(self, d: _Dir, rest: bytes | None) -> None:
        if rest:
            self._data(d, rest)
        self._close(d)
