"""HTTP content assembly: HttpEvents → ContentObjects.

For every request or response body: content decoding (stacked encodings, bomb limits),
multipart splitting (each part its own object, with its filename), streaming hashes and
libmagic (`ObjectBuilder`), and 206 pieces stitched back into whole files (`RangeStitcher`).
Empty bodies make no object. Incompleteness (gaps, limits, corrupt encodings) is recorded
on the object, never raised. A multipart body in which no part is found (its delimiters match
no variant of the declared boundary) is reported whole (``multipart.no_part_found``). A second
reading of a body (`ALTERNATE`, see `reassembly.http1`) is reported unless it comes out the
same as the main one.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from appliance.model import (
    ContentObject,
    Direction,
    Flow,
    HttpBodyData,
    HttpBodyEnd,
    HttpBodyGap,
    HttpEvent,
    HttpTransaction,
)
from reassembly import bodies, multipart
from reassembly.http1 import parse_content_length
from reassembly.objects import ObjectBuilder, ObjectFactory, flow_ref
from reassembly.ranges import RangeStitcher, parse_content_range

_NONE: list[ContentObject] = []
"""Shared empty result (never appended to)."""
_FILENAME_STAR = re.compile(rb"""filename\*\s*=\s*([^;]+)""", re.I)
_FILENAME = re.compile(rb"""filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"?|([^;]*))""", re.I)
_BOUNDARY = re.compile(rb"""boundary\s*=\s*(?:"([^"]*)"|([^;,\s]+))""", re.I)


def _text(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def filename_from_disposition(value: bytes | None) -> str:
    """The filename of a Content-Disposition value (RFC 6266: ``filename*`` wins)."""
    if not value:
        return ""
    m = _FILENAME_STAR.search(value)
    if m:
        v = m.group(1).strip().strip(b'"')
        charset, _, rest = v.partition(b"'")
        _, _, encoded = rest.partition(b"'")
        try:
            return unquote(encoded.decode("ascii", "replace"), encoding=charset.decode("ascii") or "utf-8")
        except (LookupError, UnicodeDecodeError):
            return unquote(encoded.decode("ascii", "replace"), encoding="latin-1")
    m = _FILENAME.search(value)
    if m:
        raw = m.group(1) if m.group(1) is not None else (m.group(2) or b"")
        return _text(raw.strip().replace(b'\\"', b'"'))
    return ""


def filename_from_uri(uri: bytes) -> str:
    """The last path segment of a request target, percent-decoded."""
    try:
        path = urlsplit(_text(uri)).path
    except ValueError:
        path = _text(uri).split("?", 1)[0]
    seg = path.rsplit("/", 1)[-1]
    return unquote(seg)


def host_without_port(host: str) -> str:
    """The Host header without its port, lower-cased (``[::1]:8080`` → ``::1``), as Suricata logs it."""
    h = host.strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[1:end] if end > 0 else h
    if h.count(":") == 1:
        h = h.split(":", 1)[0]
    return h


def mime_boundary(content_type: bytes | None) -> bytes | None:
    """The boundary parameter of a multipart Content-Type, or None."""
    if not content_type or not content_type.lower().lstrip().startswith(b"multipart/"):
        return None
    m = _BOUNDARY.search(content_type)
    if not m:
        return None
    b = m.group(1) if m.group(1) is not None else m.group(2)
    return b or None


class _Part:
    __slots__ = ("builder", "filename", "declared", "headers", "content_range")

    def __init__(self, builder: ObjectBuilder, filename: str, declared: str,
                 headers: list[tuple[bytes, bytes]], content_range: bytes | None) -> None:
        self.builder = builder
        self.filename = filename
        self.declared = declared
        self.headers = headers
        self.content_range = content_range


class _Body:
    """State of one message body being assembled."""

    __slots__ = ("tx", "direction", "decoder", "builder", "splitter", "part", "parts_done", "gap_seen",
                 "range", "range_data", "whole")

    def __init__(self, tx: HttpTransaction, direction: Direction) -> None:
        self.tx = tx
        self.direction = direction
        self.decoder: bodies.BodyDecoder | None = None
        self.builder: ObjectBuilder | None = None
        self.splitter: multipart.MultipartSplitter | None = None
        self.part: _Part | None = None
        self.parts_done: list[ContentObject] = []
        self.gap_seen = False
        self.range: tuple[int, int, int | None] | None = None
        self.range_data: list[bytes] | None = None
        self.whole: ObjectBuilder | None = None
        """A multipart body, whole, until its first part starts (reported if none does)."""


_DECODE_PIECE = 16384
"""Encoded bytes handed to a content decoder at once (its output is bounded by the ratio limit)."""
ALTERNATE = "http.alternate_framing"
"""Anomaly of a transaction that is a second reading of a body (`reassembly.http1`)."""
_HAS_ALTERNATE = frozenset({"http.ambiguous_content_length", "http.cl_te_conflict"})
"""Anomalies of a transaction whose body may have a second reading."""
_MAX_REMEMBERED = 256
"""Main readings remembered until their alternate reading ends (oldest forgotten first)."""


class HttpContentAssembler:
    """Consumes HttpEvents of all flows and returns finished ContentObjects."""

    def __init__(
        self,
        factory: ObjectFactory,
        *,
        body_limit: int = 100 * 1024 * 1024,
        max_decoded: int = 256 * 1024 * 1024,
        max_ratio: int = 1000,
        max_layers: int = 3,
        range_budget: int = 256 * 1024 * 1024,
    ) -> None:
        self.factory = factory
        self.body_limit = body_limit
        self.max_decoded = max_decoded
        self.max_ratio = max_ratio
        self.max_layers = max_layers
        self.ranges = RangeStitcher(budget=range_budget, max_total=max(body_limit, 1) if body_limit else 1 << 40)
        self._bodies: dict[tuple[HttpTransaction, Direction], _Body] = {}
        """Open bodies by (transaction, direction): transactions hash by identity."""
        self._main: dict[tuple[str, int, Direction], str] = {}
        """md5 of the main reading of a body that has an alternate one still open."""

    # -- event entry point --------------------------------------------------------------------
    def feed(self, ev: HttpEvent) -> list[ContentObject]:
        if type(ev) is HttpBodyData:  # the per-packet case first, with the least work
            key = (ev.tx, ev.direction)
            body = self._bodies.get(key)
            if body is None:
                body = self._body(ev.flow, ev.tx, ev.direction)
            decoder = body.decoder
            if decoder is None:
                data = ev.data
            elif len(ev.data) <= _DECODE_PIECE:
                data = decoder.feed(ev.data)
            else:  # a long run: each piece's output is taken before the next is decoded
                for data in decoder.feed_pieces(ev.data, _DECODE_PIECE):
                    self._data(ev.flow, body, data)
                data = b""
            if data:
                if body.splitter is None and body.range_data is None:
                    body.builder.add(data)  # type: ignore[union-attr]
                else:
                    self._data(ev.flow, body, data)
            return self._drain(body) if body.parts_done else _NONE
        if isinstance(ev, HttpBodyGap):
            body = self._body(ev.flow, ev.tx, ev.direction)
            self._gap(body, ev.length)
            return self._drain(body)
        if isinstance(ev, HttpBodyEnd):
            body = self._bodies.pop((ev.tx, ev.direction), None)
            if body is None:
                return []
            return self._finish(ev.flow, body, ev.ts_ns, ev.complete, ev.reason)
        return _NONE

    def close_flow(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        """Finish (as truncated) every body of ``flow`` still open."""
        out: list[ContentObject] = []
        for key in [k for k in self._bodies if k[0].flow_uid == flow.uid]:
            body = self._bodies.pop(key)
            out.extend(self._finish(flow, body, ts_ns, False, "flow_closed"))
        return out

    # -- internals ----------------------------------------------------------------------------
    def _body(self, flow: Flow, tx: HttpTransaction, direction: Direction) -> _Body:
        key = (tx, direction)
        body = self._bodies.get(key)
        if body is not None:
            return body
        body = self._bodies[key] = _Body(tx, direction)
        decoder = bodies.body_decoder(
            tx, direction, max_output=self.max_decoded, max_ratio=self.max_ratio, max_layers=self.max_layers
        )
        # identity bodies skip the decoder on the per-packet path; anomalies it noted stay
        body.decoder = None if decoder.is_identity and not decoder.anomalies else decoder
        headers = tx.request_headers if direction is Direction.TO_SERVER else tx.response_headers
        ctype = HttpTransaction._get(headers, b"content-type")
        boundary = mime_boundary(ctype)
        alternate = ALTERNATE in tx.anomalies  # a second reading is one object: not split, not stitched
        if boundary is not None and not alternate and (
            direction is Direction.TO_SERVER or ctype.lower().lstrip().startswith(b"multipart/byteranges")
        ):
            body.splitter = multipart.MultipartSplitter(boundary)
            body.whole = self.factory.builder(limit=self.body_limit)
        else:
            body.builder = self.factory.builder(limit=self.body_limit)
            if direction is Direction.TO_CLIENT and tx.status == 206 and not alternate:
                body.range = parse_content_range(tx.response_header(b"content-range"))
                if body.range is not None:
                    body.range_data = []
        return body

    def _data(self, flow: Flow, body: _Body, data: bytes) -> None:
        if not data:
            return
        if body.splitter is None:
            assert body.builder is not None
            body.builder.add(data)
            if body.range_data is not None:
                body.range_data.append(data)
            return
        if body.whole is not None:
            body.whole.add(data)
        for pev in body.splitter.feed(data):
            self._part_event(flow, body, pev)

    def _part_event(self, flow: Flow, body: _Body, pev: multipart.PartEvent) -> None:
        if isinstance(pev, multipart.PartStart):
            body.whole = None  # parts were found: they are the objects
            if body.part is not None:  # a start without an end: close the previous part
                body.parts_done.append(self._finish_part(flow, body, body.part, complete=False))
            filename = pev.filename or ""
            cr = HttpTransaction._get(pev.headers, b"content-range")
            body.part = _Part(self.factory.builder(limit=self.body_limit), filename, pev.content_type or "",
                              pev.headers, cr)
        elif isinstance(pev, multipart.PartData):
            if body.part is not None:
                body.part.builder.add(pev.data)
        elif isinstance(pev, multipart.PartEnd) and body.part is not None:
            body.parts_done.append(self._finish_part(flow, body, body.part, complete=pev.complete))
            body.part = None

    def _gap(self, body: _Body, length: int) -> None:
        body.gap_seen = True
        if body.decoder is not None and body.decoder.is_identity is False:
            # compressed streams cannot continue past lost bytes
            body.decoder.gap()
        if body.splitter is None:
            assert body.builder is not None
            body.builder.add_gap(length)
            body.range_data = None
        elif body.part is not None:
            body.part.builder.add_gap(length)
        if body.whole is not None:
            body.whole.add_gap(length)

    def _drain(self, body: _Body) -> list[ContentObject]:
        if body.parts_done:
            out, body.parts_done = body.parts_done, []
            return out
        return []

    def _http_fields(self, flow: Flow, tx: HttpTransaction, direction: Direction) -> dict[str, object]:
        url = _text(tx.uri)
        headers = tx.request_headers if direction is Direction.TO_SERVER else tx.response_headers
        ctype = HttpTransaction._get(headers, b"content-type")
        return {
            "tx_id": tx.tx_id,
            "url": url,
            "host": host_without_port(tx.host),
            "method": _text(tx.method),
            "status": tx.status,
            "user_agent": tx.user_agent,
            "declared_mime": _text(ctype.split(b";", 1)[0].strip().lower()) if ctype else "",
            "meta": {"content_type": _text(ctype)} if ctype else {},
        }

    def _finish_part(self, flow: Flow, body: _Body, part: _Part, *, complete: bool) -> ContentObject:
        fields = self._http_fields(flow, body.tx, body.direction)
        fields["declared_mime"] = part.declared.split(";", 1)[0].strip().lower()
        fields["meta"] = {"content_type": part.declared} if part.declared else {}
        extra = [] if complete else ["part_incomplete"]
        anomalies = list(body.tx.anomalies)
        if body.splitter is not None:
            anomalies.extend(body.splitter.anomalies)
        obj = self.factory.finish(
            part.builder, source="http", direction=body.direction,
            flow=flow_ref(flow, body.direction), ts_ns=body.tx.ts_ns, extra_truncated=extra,
            anomalies=anomalies, kind="part", filename=part.filename, **fields,
        )
        pr = parse_content_range(part.content_range)
        if pr is not None and pr[2] is not None and part.builder.kept_complete and not part.builder.missing:
            whole = self.ranges.add(self._range_key(body.tx), pr[0], pr[2], part.builder.data(), fields)
            if whole is not None:
                body.parts_done.append(self._stitched(flow, body, whole))
        return obj

    @staticmethod
    def _range_key(tx: HttpTransaction) -> tuple:
        validator = tx.response_header(b"etag") or tx.response_header(b"last-modified") or b""
        return (tx.host.lower(), tx.uri, validator)

    def _stitched(self, flow: Flow, body: _Body, whole: bytes) -> ContentObject:
        b = self.factory.builder(limit=self.body_limit)
        b.add(whole)
        fields = self._http_fields(flow, body.tx, body.direction)
        return self.factory.finish(
            b, source="http", direction=body.direction, flow=flow_ref(flow, body.direction),
            ts_ns=body.tx.ts_ns, kind="range", filename=self._filename(body.tx, body.direction), **fields,
        )

    def _whole(self, flow: Flow, body: _Body, b: ObjectBuilder, ts_ns: int, extra: list[str],
               anomalies: list[str]) -> ContentObject:
        """A multipart body in which no part was found, as one object (``multipart.no_part_found``)."""
        fields = self._http_fields(flow, body.tx, body.direction)
        return self.factory.finish(
            b, source="http", direction=body.direction, flow=flow_ref(flow, body.direction), ts_ns=ts_ns,
            extra_truncated=extra, anomalies=[*anomalies, "multipart.no_part_found"], kind="body",
            filename=self._filename(body.tx, body.direction), **fields,
        )

    def _keep_reading(self, tx: HttpTransaction, direction: Direction, md5: str) -> bool:
        """Whether to report this reading of a body: an alternate reading (`ALTERNATE`) that
        came out the same as the main one is not (the main reading always ends first)."""
        key = (tx.flow_uid, tx.tx_id, direction)
        if ALTERNATE in tx.anomalies:
            return self._main.pop(key, None) != md5
        if not _HAS_ALTERNATE.isdisjoint(tx.anomalies):
            if len(self._main) >= _MAX_REMEMBERED:
                del self._main[next(iter(self._main))]
            self._main[key] = md5
        return True

    def _filename(self, tx: HttpTransaction, direction: Direction) -> str:
        if direction is Direction.TO_CLIENT:
            name = filename_from_disposition(tx.response_header(b"content-disposition"))
            if name:
                return name
        return filename_from_uri(tx.uri)

    def _finish(self, flow: Flow, body: _Body, ts_ns: int, complete: bool, reason: str) -> list[ContentObject]:
        out: list[ContentObject] = []
        extra: list[str] = []
        anomalies = list(body.tx.anomalies)
        if body.decoder is not None:
            tail = body.decoder.finish()
            if tail:
                self._data(flow, body, tail)
            if body.decoder.truncated:
                extra.append(body.decoder.truncated)
            anomalies.extend(body.decoder.anomalies)
        if not complete:
            extra.append(reason or "incomplete")
        if body.splitter is not None:
            for pev in body.splitter.finish():
                self._part_event(flow, body, pev)
            if body.part is not None:
                body.parts_done.append(self._finish_part(flow, body, body.part, complete=False))
                body.part = None
            out.extend(body.parts_done)
            body.parts_done = []
            if body.whole is not None and body.splitter.parts == 0 and (body.whole.size or body.whole.missing):
                # no delimiter matched the declared boundary (not even a variant): the whole body
                anomalies.extend(body.splitter.anomalies)
                out.append(self._whole(flow, body, body.whole, ts_ns, extra, anomalies))
            return out
        b = body.builder
        assert b is not None
        if b.size == 0 and not b.missing:
            return out
        fields = self._http_fields(flow, body.tx, body.direction)
        kind = "body"
        if body.range is not None:
            extra.append("range")
            kind = "range-piece"
        if not self._keep_reading(body.tx, body.direction, b.digests()[0]):
            return out
        obj = self.factory.finish(
            b, source="http", direction=body.direction, flow=flow_ref(flow, body.direction), ts_ns=ts_ns,
            extra_truncated=extra, anomalies=anomalies, kind=kind,
            filename=self._filename(body.tx, body.direction), **fields,
        )
        out.append(obj)
        if (body.direction is Direction.TO_CLIENT and body.tx.status == 200 and not complete and not b.missing
                and b.kept_complete and b.size and self.ranges.budget
                and (body.tx.response_header(b"etag") or body.tx.response_header(b"last-modified"))):
            # A download cut short (the laptop went to sleep) is the first piece of the file a
            # resumed 206 download will complete: keep it under the same key as the pieces.
            cl = body.tx.response_header(b"content-length")
            total = parse_content_length(cl) if cl else None
            if total and b.size < total and body.decoder is None:
                whole = self.ranges.add(self._range_key(body.tx), 0, total, b.data(), fields)
                if whole is not None:
                    out.append(self._stitched(flow, body, whole))
        if body.range is not None and body.range_data is not None and complete and not b.truncated:
            first, _last, total = body.range
            if total is not None:
                whole = self.ranges.add(self._range_key(body.tx), first, total, b"".join(body.range_data), fields)
                if whole is not None:
                    out.append(self._stitched(flow, body, whole))
        return out
