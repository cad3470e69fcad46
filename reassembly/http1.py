"""HTTP/1.0 and 1.1 parser: stream events of one flow in, HTTP events out.

`Http1Parser(flow).feed(stream_event) -> list[HttpEvent]` takes the in-order `StreamData`,
`StreamGap` and `StreamClosed` events of both directions. It pairs requests and responses
(pipelining: a queue of transactions waiting for their response), and emits:

- `HttpTxStart` when the request headers (TO_SERVER) or response headers (TO_CLIENT) are complete;
- `HttpBodyData` with transfer-decoded (de-chunked) body bytes, not content-decoded;
- `HttpBodyGap` for body bytes lost in a stream gap;
- `HttpBodyEnd(complete, reason)`: exactly one per `HttpTxStart`, also for messages without a
  body (``reason="no_body"``); ``complete=False`` when the framing was cut short.

Parsing is lenient where browsers are, and every oddity becomes an anomaly code on
``tx.anomalies`` (``http.*``). The rules, in short:

- lines end at LF; a CR before it is dropped; a bare CR inside the header section also ends a
  line (as Chromium tokenises it); a line of CRs right after a bare-LF line, or a single
  SP/HT line (LF only, not followed by LF, as libhtp), also ends the header section;
- leading blank/junk lines before a status line are skipped (``HTTP/`` searched in any case,
  also after a few junk bytes); no status line in the first KiB → HTTP/0.9 body until close;
- obs-fold continuation lines are joined, unless the continuation itself looks like
  ``Name: value`` (then it is also a header of its own); junk bytes in header names are
  ignored when matching (``Content\\0-Encoding``); whitespace before the colon is accepted;
- Transfer-Encoding mentioning ``chunked`` (even with junk) wins over Content-Length, but
  the body start is sniffed: chunked framing is used only if it starts like a chunk-size
  line; otherwise Content-Length or close-delimited framing (``http.chunked_not_chunked``);
- chunked and Content-Length together: de-chunked output is capped at Content-Length;
- Content-Length with junk: the largest number in the value; several differing
  Content-Length headers: the first;
- chunk sizes: leading whitespace and blank lines skipped, junk after the hex digits
  ignored (as extensions), missing final chunk → ``complete=False``;
- 1xx are interim (skipped; a 101 only switches protocols if the request asked to upgrade);
  204/304/HEAD have no body unless a 204/304 announces framing and the next bytes are not a
  status line; CONNECT 2xx and 101 switch to tunnel mode (``http.tunnel``), parsing stops;
- after a CONNECT request the client's bytes are held (up to ``max_header_bytes``) until its
  answer: a 2xx makes them the tunnel's first bytes, anything else HTTP again (libhtp's
  CONNECT wait). Entering a tunnel sets ``handoff`` to a `Tunnel`: the stream offsets where it
  starts and the bytes already received past them (the application layer hands the rest of the
  stream to detection, or to the protocol the Upgrade header names).

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


def _upgrade_token(value: bytes | None) -> str | None:
    """The protocol an Upgrade header asks for first (``websocket``, ``h2c``…), lower case."""
    if not value:
        return None
    tok = value.split(b",", 1)[0].strip().split(b"/", 1)[0].strip().lower()
    return tok.decode("latin-1") or None


def parse_content_length(value: bytes) -> int | None:
    """Browser-lenient Content-Length: digits only, else the largest number in the value."""
    v = value.strip(b" \t")
    if v.isdigit():
        return int(v)
    nums = re.findall(rb"\d{1,18}", v)
    if not nums:
        return None
    return max(int(n) for n in nums)


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
        "body_len",
        "buf",
        "cap",
        "chunked_definite",
        "cl",
        "closed",
        "direction",
        "emitted",
        "junk",
        "limit_hit",
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
        self.cap: int | None = None  # emit at most this many body bytes (CL with chunked)
        self.emitted = 0
        self.body_len = 0
        self.no_body_peek = False
        self.limit_hit = False
        self.closed = False
        self.peek_chunked: bool | None = None
        self.tail = b""  # the bytes after the header section being parsed (for a tunnel's start)

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
        try:
            if d.closed:
                pass
            elif isinstance(event, StreamData):
                if event.data:
                    self._data(d, event.data)
            elif isinstance(event, StreamGap):
                if event.length > 0:
                    self._gap(d, event.length)
            elif isinstance(event, StreamClosed):
                self._close(d)
                d.closed = True
        except Exception:  # a bug must not kill the sensor: give this direction up, keep the flow
            self._anomaly(d.tx, "http.parser_error")
            self._end_body(d, False, "parser_error")
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
        n = len(data)
        d.body_len += n
        if d.direction is Direction.TO_SERVER:
            tx.request_body_len += n
        else:
            tx.response_body_len += n
        limit = d.cap
        if self.body_limit is not None and (limit is None or self.body_limit < limit):
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
                if d.cap is not None and (self.body_limit is None or d.cap <= self.body_limit):
                    self._anomaly(tx, "http.cl_te_body_capped")
                else:
                    complete, reason = False, "body_limit"
            self._ev.append(HttpBodyEnd(self.flow, tx, d.direction, self._event.ts_ns, complete, reason))
        d.tx = None
        d.cap = None
        d.cl = None
        d.emitted = 0
        d.body_len = 0
        d.limit_hit = False
        d.no_body_peek = False
        if d.state not in (_DEAD, _TUNNEL, _RESYNC):
            d.state = _START
        d.reset_header()

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
                    terminator = True
                    self._anomaly(None, "http.cr_line_terminator")
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
        chunked, cl, _ = self._framing(tx, tx.request_headers)
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
        chunked, cl, framed = self._framing(tx, headers)
        if method == b"HEAD":
            self._end_body(d, True, "no_body")
            return
        if status in (204, 304):
            if framed and cl != 0:
                d.no_body_peek = True
                d.state = _PEEK
                d.chunked_definite = bool(chunked)
                d.cl = cl
                d.cap = None
                d.peek_chunked = chunked
                return
            self._end_body(d, True, "no_body")
            return
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
    def _framing(self, tx: HttpTransaction, headers: Headers) -> tuple[bool | None, int | None, bool]:
        """(chunked: True definite / False maybe / None no, content length, any framing header)."""
        te_tokens: list[bytes] = []
        te_seen = False
        te_raw = b""
        cls: list[int] = []
        cl_bad = False
        for name, value in headers:
            if name[:1] not in _TC:
                continue
            cn = canonical_name(name)
            if cn == b"transfer-encoding":
                te_seen = True
                te_tokens.extend(value_tokens(value))
                te_raw += value
                if name.lower() != b"transfer-encoding":
                    self._anomaly(tx, "http.odd_header_name")
            elif cn == b"content-length":
                v = parse_content_length(value)
                if v is None:
                    cl_bad = True
                    continue
                if not value.strip(b" \t").isdigit():
                    self._anomaly(tx, "http.content_length_junk")
                cls.append(v)
        cl: int | None = None
        if cls:
            cl = cls[0]
            if len(set(cls)) > 1:
                self._anomaly(tx, "http.multiple_content_length")
            elif len(cls) > 1:
                self._anomaly(tx, "http.duplicate_content_length")
        if cl_bad:
            self._anomaly(tx, "http.invalid_content_length")
        chunked: bool | None = None
        if te_seen:
            if te_tokens and te_tokens[-1] == b"chunked" and b"\x00" not in te_raw:
                chunked = True
                if len(te_tokens) > 1:
                    self._anomaly(tx, "http.te_list")
            elif b"chunked" in b"".join(te_tokens) or b"chunked" in te_raw.lower():
                chunked = False
                self._anomaly(tx, "http.te_junk")
            else:
                self._anomaly(tx, "http.te_unknown")
        if chunked is not None and cl is not None:
            self._anomaly(tx, "http.cl_te_conflict")
        return chunked, cl, te_seen or bool(cls)

    def _start_sniff(self, d: _Dir, definite: bool, cl: int | None) -> None:
        d.state = _SNIFF
        d.chunked_definite = definite
        d.cl = cl
        d.buf = bytearray()

    def _sniff(self, d: _Dir, at_close: bool) -> bytes | None:
        """Does the body start like chunked framing? Decide, then replay the buffer."""
        buf = d.buf
        i = 0
        n = len(buf)
        while i < n and buf[i] in _WS:
            i += 1
        decision: bool | None = None
        if i < n:
            j = i
            while j < n and buf[j] in _HEX:
                j += 1
            if j == i:
                decision = False
            elif j < n:
                decision = j - i <= 20 and buf[j] in b" \t\r\n;,\x0b\x0c"
        if decision is None:
            if n < _SNIFF_MAX and not at_close:
                return None
            decision = d.chunked_definite if n >= _SNIFF_MAX else (i < n)
        rest = bytes(buf)
        d.buf = bytearray()
        tx = d.tx
        if decision:
            d.state = _CHUNK_SIZE
            d.cap = d.cl
            if i > 0:
                self._anomaly(tx, "http.chunk_leading_whitespace")
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
        j = 0
        n = len(s)
        while j < n and s[j] in _HEX:
            j += 1
        if j == 0:
            self._anomaly(d.tx, "http.chunk_size_invalid")
            self._end_body(d, False, "chunk_error")
            d.state = _RESYNC
            return
        if j < n:
            self._anomaly(d.tx, "http.chunk_extension" if s[j] == 59 else "http.chunk_size_junk")
        digits = s[:j].lstrip(b"0")
        if len(digits) > 15:
            self._anomaly(d.tx, "http.chunk_size_overflow")
            self._end_body(d, False, "chunk_error")
            d.state = _RESYNC
            return
        size = int(digits, 16) if digits else 0
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
            if over == 0:
                self._end_body(d, False, "gap")
                return
            self._end_body(d, False, "gap")
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
        elif st == _START and d.direction is Direction.TO_CLIENT and d.buf.strip(_WS) and self.pending:
            # the response headers of the oldest request were (partly) lost
            lost = self.pending.popleft()
            self._anomaly(lost, "http.response_lost_in_gap")
            if lost is self._wait_tx:
                self._resume()
        elif st == _START and d.direction is Direction.TO_SERVER and d.buf.strip(_WS):
            self._anomaly(None, "http.request_lost_in_gap")
        self._anomaly(None, "http.gap_resync")
        d.reset_header()
        d.tx = None
        d.state = _RESYNC

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
            x.state = _TUNNEL
            x.buf = bytearray()

    def _close(self, d: _Dir) -> None:
        st = d.state
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
