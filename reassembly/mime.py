"""Incremental MIME (RFC 2045-2049) parsing of one message, line by line, with bounded memory.

`MimeParser` is fed the lines of an RFC 5322 message (content without its line ending, plus
the ending) and hands back each finished *leaf* part as an `ObjectBuilder` with a `PartInfo`;
the carrier (SMTP, and later HTTP multipart) turns those into content objects. Nothing holds a
whole part: the transfer decoders (lenient base64, quoted-printable, identity) stream into the
builder, headers are capped, nesting is capped.

Conventions:

* The line ending before a boundary delimiter belongs to the delimiter (RFC 2046 §5.1.1), so
  a part ends with its last line's content, without that line's CRLF. Suricata and Python's
  ``email`` do the same; Zeek keeps the CRLF in the part.
* A leaf that ends at the end of the message (no closing delimiter, or a single-part message)
  keeps its last line ending: the message's final CRLF is content, not a delimiter.
* ``message/rfc822`` parts (not base64/QP encoded) are parsed into: their leaves are parts of
  the outer message. Encoded ones are kept as one leaf.
* Parts with no bytes and no gap are not reported.

Header helpers (`decode_words`, `parse_params`, `header_text`) never raise.
"""

from __future__ import annotations

import binascii
import codecs
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from reassembly.objects import ObjectBuilder

MAX_HEADER_BYTES = 64 * 1024
"""Header bytes kept per entity; beyond it headers are skipped (anomaly ``mime.header_overflow``)."""
MAX_HEADERS = 256
MAX_HEADER_VALUE = 16 * 1024
MAX_DEPTH = 12
MAX_PARTS = 1000
MAX_BOUNDARY = 256
MAX_TEXT = 1024
"""Longest decoded header text (subject, filename) returned."""

# ---------------------------------------------------------------------------------------------
# Header value helpers


def header_text(raw: bytes) -> str:
    """Bytes of a header value as text: UTF-8 (RFC 6532) when valid, else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _codec(charset: str) -> str:
    cs = charset.strip().split("*", 1)[0].strip().lower() or "us-ascii"
    try:
        return codecs.lookup(cs).name
    except (LookupError, ValueError):
        return "utf-8"


def _decode_bytes(data: bytes, charset: str) -> str:
    try:
        return data.decode(_codec(charset), errors="replace")
    except Exception:  # a codec that chokes (e.g. idna on odd input)
        return data.decode("utf-8", errors="replace")


_B64_KEEP = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_B64_DELETE = bytes(c for c in range(256) if c not in _B64_KEEP)


def b64_lenient(data: bytes) -> bytes:
    """Decode base64 ignoring junk characters and missing or misplaced padding."""
    d = Base64Decoder()
    return d.feed(data) + d.finish()


_QP_ESC = re.compile(rb"=([0-9A-Fa-f]{2})")


def _qp_unescape(data: bytes) -> bytes:
    if b"=" not in data:
        return data
    return _QP_ESC.sub(lambda m: bytes((int(m[1], 16),)), data)


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([BbQq])\?([^?\s]*)\?=")


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded-words in ``text`` (whitespace between adjacent words dropped).

    Adjacent words in one charset are joined before decoding, so a multi-byte character split
    over two words comes out whole. Bad encodings decode leniently; never raises.
    """
    if "=?" not in text:
        return text[:MAX_TEXT]
    out: list[str] = []
    pos = 0
    pend_cs = ""
    pend: list[bytes] = []

    def flush() -> None:
        if pend:
            out.append(_decode_bytes(b"".join(pend), pend_cs))
            pend.clear()

    for m in _ENCODED_WORD.finditer(text):
        between = text[pos : m.start()]
        if between and (between.strip() or not pend):
            flush()
            out.append(between)
        cs, enc, payload = m.group(1), m.group(2).upper(), m.group(3)
        raw = payload.encode("ascii", "replace")
        data = b64_lenient(raw) if enc == "B" else _qp_unescape(raw.replace(b"_", b" "))
        if pend and _codec(cs) != _codec(pend_cs):
            flush()
        pend_cs = cs
        pend.append(data)
        pos = m.end()
        if sum(map(len, pend)) > MAX_TEXT * 4:
            break
    flush()
    out.append(text[pos:])
    return "".join(out)[:MAX_TEXT]


def _split_params(value: str) -> list[str]:
    """Split on ``;`` outside quoted strings."""
    parts: list[str] = []
    cur: list[str] = []
    quoted = esc = False
    for ch in value:
        if esc:
            cur.append(ch)
            esc = False
        elif quoted and ch == "\\":
            cur.append(ch)
            esc = True
        elif ch == '"':
            quoted = not quoted
            cur.append(ch)
        elif ch == ";" and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def _unquote(v: str) -> str:
    v = v.strip()
    if len(v) >= 2 and v[0] == '"':
        end = v.rfind('"')
        v = v[1:end] if end > 0 else v[1:]
        return re.sub(r"\\(.)", r"\1", v)
    return v.strip('"')


def parse_params(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype; a=b; c*=utf-8''x`` → (lower-cased main value, {lower name: decoded value}).

    Handles quoted strings, RFC 2231 extended values (``name*=``, ``name*0*=`` continuations,
    charset'lang'%xx), and RFC 2047 words inside values (common in ``filename="=?utf-8?…"``).
    """
    pieces = _split_params(value[:MAX_HEADER_VALUE])
    main = pieces[0].strip().lower()
    plain: dict[str, str] = {}
    sections: dict[str, dict[int, tuple[bool, str]]] = {}
    for piece in pieces[1:64]:
        if "=" not in piece:
            continue
        name, _, val = piece.partition("=")
        name = name.strip().lower()
        if not name:
            continue
        if "*" in name:
            base, _, rest = name.partition("*")
            encoded = rest.endswith("*") or rest == ""
            idx_s = rest.rstrip("*")
            idx = int(idx_s) if idx_s.isdigit() and len(idx_s) < 4 else 0
            sections.setdefault(base, {}).setdefault(idx, (encoded, _unquote(val)))
        else:
            plain.setdefault(name, _unquote(val))
    params = {k: decode_words(v) for k, v in plain.items()}
    for base, secs in sections.items():
        charset = ""
        buf = bytearray()
        for i, idx in enumerate(sorted(secs)):
            encoded, v = secs[idx]
            if encoded:
                if i == 0 and v.count("'") >= 2:
                    charset, _, rest = v.partition("'")
                    _, _, v = rest.partition("'")
                buf += urllib.parse.unquote_to_bytes(v)
            else:
                buf += v.encode("utf-8", "replace")
            if len(buf) > MAX_HEADER_VALUE:
                break
        params[base] = decode_words(_decode_bytes(bytes(buf), charset or "utf-8"))
    return main, params


# ---------------------------------------------------------------------------------------------
# Transfer decoders: feed(content, eol) for one line (eol b"" = a fragment of a long line)


class Base64Decoder:
    """Streaming, lenient base64: junk ignored, ``=`` ends a quantum, missing padding tolerated."""

    __slots__ = ("_carry", "pending")

    def __init__(self) -> None:
        self._carry = b""
        self.pending = b""  # unused: line endings carry no data in base64

    @staticmethod
    def _final(chunk: bytes) -> bytes:
        r = len(chunk) % 4
        if r == 1:
            chunk = chunk[:-1]
        elif r:
            chunk += b"=" * (4 - r)
        try:
            return binascii.a2b_base64(chunk)
        except (binascii.Error, ValueError):
            return b""

    def feed(self, data: bytes) -> bytes:
        s = data.translate(None, _B64_DELETE)
        if not s:
            return b""
        if b"=" not in s:
            chunk = self._carry + s
            n = len(chunk) & ~3
            self._carry = chunk[n:]
            try:
                return binascii.a2b_base64(chunk[:n]) if n else b""
            except (binascii.Error, ValueError):
                return b""
        out = []
        pieces = s.split(b"=")
        last = len(pieces) - 1
        for i, p in enumerate(pieces):
            chunk = self._carry + p
            if i < last:
                if chunk:
                    out.append(self._final(chunk))
                self._carry = b""
            else:
                n = len(chunk) & ~3
                if n:
                    out.append(self._final(chunk[:n]))
                self._carry = chunk[n:]
        return b"".join(out)

    def line(self, content: bytes, eol: bytes) -> bytes:
        return self.feed(content)

    def finish(self) -> bytes:
        out = self._final(self._carry) if self._carry else b""
        self._carry = b""
        return out

    def after_gap(self) -> None:
        self._carry = b""

    ratio = 0.75


class QuotedPrintableDecoder:
    """Streaming quoted-printable; hard line breaks keep the line's own ending (CRLF or LF)."""

    __slots__ = ("_carry", "pending")

    ratio = 1.0

    def __init__(self) -> None:
        self._carry = b""
        self.pending = b""

    def line(self, content: bytes, eol: bytes) -> bytes:
        data = self._carry + content
        self._carry = b""
        if not eol:  # fragment: hold back a possibly split "=XX"
            cut = data.rfind(b"=", max(0, len(data) - 2))
            if cut >= 0:
                data, self._carry = data[:cut], data[cut:]
            out = self.pending + _qp_unescape(data)
            self.pending = b""
            return out
        data = data.rstrip(b" \t\r")
        out = self.pending + _qp_unescape(data[:-1] if data.endswith(b"=") else data)
        self.pending = b"" if data.endswith(b"=") else eol
        return out

    def finish(self) -> bytes:
        out = self._carry + self.pending
        self._carry = self.pending = b""
        return out

    def after_gap(self) -> None:
        self._carry = b""


class IdentityDecoder:
    """7bit/8bit/binary and unknown encodings: bytes as they are."""

    __slots__ = ("pending",)

    ratio = 1.0

    def __init__(self) -> None:
        self.pending = b""

    def line(self, content: bytes, eol: bytes) -> bytes:
        out = self.pending + content if self.pending else content
        self.pending = eol
        return out

    def finish(self) -> bytes:
        out, self.pending = self.pending, b""
        return out

    def after_gap(self) -> None:
        pass


Decoder = Base64Decoder | QuotedPrintableDecoder | IdentityDecoder


def decoder_for(encoding: str) -> Decoder:
    enc = encoding.strip().lower()
    if enc == "base64":
        return Base64Decoder()
    if enc == "quoted-printable":
        return QuotedPrintableDecoder()
    return IdentityDecoder()


# ---------------------------------------------------------------------------------------------
# The parser


@dataclass(slots=True)
class PartInfo:
    """What the headers said about one leaf part."""

    content_type: str = "text/plain"
    params: dict[str, str] = field(default_factory=dict)
    disposition: str = ""
    filename: str = ""
    encoding: str = ""
    path: str = "1"
    """Position in the tree: ``1``, ``2.1``…"""
    depth: int = 0
    """Nesting level (0 = the message body itself)."""
    in_rfc822: bool = False
    anomalies: list[str] = field(default_factory=list)


_HEADERS, _LEAF, _MULTI_PRE, _MULTI_IN, _MULTI_EPI, _RFC822, _RFC822_PEEK = range(7)
_HEADER_START = re.compile(rb"^[!-9;-~]{1,76}:")


class _Entity:
    __slots__ = (
        "boundary",
        "builder",
        "child_default",
        "decoder",
        "default_type",
        "depth",
        "hbytes",
        "headers",
        "info",
        "nparts",
        "path",
        "rfc822",
        "state",
    )

    def __init__(self, path: str, depth: int, default_type: str, rfc822: bool) -> None:
        self.state = _HEADERS
        self.headers: list[tuple[str, bytes]] = []
        self.hbytes = 0
        self.path = path
        self.depth = depth
        self.default_type = default_type
        self.rfc822 = rfc822
        self.boundary = b""
        self.child_default = "text/plain"
        self.nparts = 0
        self.builder: ObjectBuilder | None = None
        self.decoder: Decoder | None = None
        self.info: PartInfo | None = None


Finished = tuple[ObjectBuilder, PartInfo]


class MimeParser:
    """Line-driven MIME parser for one message; finished leaves come back from each call.

    ``new_builder()`` makes the builder of each leaf (the carrier sets its limit and keep).
    """

    def __init__(
        self,
        new_builder: Callable[[], ObjectBuilder],
        *,
        max_depth: int = MAX_DEPTH,
        max_parts: int = MAX_PARTS,
    ) -> None:
        self._new_builder = new_builder
        self.max_depth = max_depth
        self.max_parts = max_parts
        self.parts = 0
        self._stack: list[_Entity] = [_Entity("1", 0, "text/plain", False)]
        self.top_headers: list[tuple[str, bytes]] = self._stack[0].headers
        """The message's own headers (name lower-cased, raw value unfolded), capped."""
        self.anomalies: dict[str, None] = {}
        self._after_gap = False

    # -- headers of the message

    def header(self, name: str) -> str:
        """First top-level header ``name`` (lower case) as text, RFC 2047 decoded, capped."""
        for n, v in self.top_headers:
            if n == name:
                return decode_words(header_text(v).strip())[:MAX_TEXT]
        return ""

    # -- feeding

    def feed_block(self, data: bytes) -> list[Finished]:
        """Whole lines (``data`` starts a line and ends with LF), fast path for bulk part bodies.

        Runs of lines inside a leaf that cannot be delimiters (not starting with ``--``) go to
        the decoder in one piece; everything else is handled line by line.
        """
        out: list[Finished] = []
        pos = 0
        n = len(data)
        while pos < n:
            ent = self._stack[-1] if self._stack else None
            if (ent is not None and ent.state == _LEAF and not self._after_gap
                    and not isinstance(ent.decoder, QuotedPrintableDecoder)
                    and data[pos : pos + 2] != b"--"):
                j = data.find(b"\n--", pos)
                end = n if j < 0 else j + 1
                self._leaf_bulk(ent, data[pos:end] if pos or end < n else data)
                pos = end
                continue
            i = data.find(b"\n", pos)
            if i < 0:
                out += self.feed_line(data[pos:], b"")
                break
            content = data[pos:i]
            if content.endswith(b"\r"):
                out += self.feed_line(content[:-1], b"\r\n")
            else:
                out += self.feed_line(content, b"\n")
            pos = i + 1
        return out

    def _leaf_bulk(self, ent: _Entity, bulk: bytes) -> None:
        dec = ent.decoder
        if isinstance(dec, Base64Decoder):
            data = dec.feed(bulk)
        elif not bulk.endswith(b"\n"):
            data = dec.pending + bulk  # type: ignore[union-attr]
            dec.pending = b""  # type: ignore[union-attr]
        else:  # identity: hold back the last line ending (it may belong to a delimiter)
            eol = b"\r\n" if bulk.endswith(b"\r\n") else b"\n"
            data = dec.pending + bulk[: -len(eol)]  # type: ignore[union-attr]
            dec.pending = eol  # type: ignore[union-attr]
        if data:
            ent.builder.add(data)  # type: ignore[union-attr]

    def feed_line(self, content: bytes, eol: bytes) -> list[Finished]:
        """One line (``eol`` = its ending) or, with ``eol`` b"", a fragment of a long line."""
        out: list[Finished] = []
        stack = self._stack
        if not stack:  # finished
            return out
        if eol and content[:2] == b"--" and len(content) <= MAX_BOUNDARY + 8:
            for lvl in range(len(stack) - 1, -1, -1):
                ent = stack[lvl]
                if ent.state not in (_MULTI_PRE, _MULTI_IN, _MULTI_EPI) or not ent.boundary:
                    continue
                rest = content[2:]
                if not rest.startswith(ent.boundary):
                    continue
                tail = rest[len(ent.boundary) :].rstrip(b" \t\r")
                if tail == b"--":
                    self._close_to(lvl, out, at_boundary=True)
                    ent.state = _MULTI_EPI
                    return out
                if not tail:
                    self._close_to(lvl, out, at_boundary=True)
                    ent.state = _MULTI_IN
                    ent.nparts += 1
                    if len(stack) <= self.max_depth + 1:
                        stack.append(_Entity(f"{ent.path}.{ent.nparts}", ent.depth + 1,
                                             ent.child_default, False))
                    else:
                        self._anomaly("mime.too_deep")
                    return out
        ent = stack[-1]
        st = ent.state
        if st == _LEAF:
            self._leaf_line(ent, content, eol)
        elif st == _HEADERS:
            self._header_line(ent, content, eol, out)
        elif st == _RFC822_PEEK:
            self._rfc822_peek(ent, content, eol, out)
        self._after_gap = False
        return out

    def gap(self, length: int) -> None:
        """``length`` raw bytes of the message were lost here."""
        ent = self._stack[-1]
        if ent.state == _LEAF and ent.builder is not None and ent.decoder is not None:
            ent.builder.add_gap(int(length * ent.decoder.ratio))
            ent.decoder.after_gap()
            self._after_gap = isinstance(ent.decoder, Base64Decoder)
        elif ent.state == _HEADERS:
            self._anomaly("mime.gap_in_headers")
        self._anomaly("mime.gap")

    def finish(self, *, truncated: str = "") -> list[Finished]:
        """End of the message: flush every open part (``truncated`` marks open leaves)."""
        out: list[Finished] = []
        if self._stack and self._stack[0].state == _HEADERS:
            self._end_headers(self._stack[0], out)
        self._close_to(-1, out, at_boundary=False, truncated=truncated)
        self._stack = []
        return out

    # -- internals

    def _anomaly(self, code: str) -> None:
        if len(self.anomalies) < 32:
            self.anomalies[code] = None

    def _leaf_line(self, ent: _Entity, content: bytes, eol: bytes) -> None:
        if self._after_gap:  # the rest of a base64 line cut by a gap: realign on the next line
            return
        data = ent.decoder.line(content, eol)  # type: ignore[union-attr]
        if data:
            ent.builder.add(data)  # type: ignore[union-attr]

    def _header_line(self, ent: _Entity, content: bytes, eol: bytes, out: list[Finished]) -> None:
        if not content.rstrip(b"\r") and eol:
            self._end_headers(ent, out)
            return
        if ent.hbytes >= MAX_HEADER_BYTES or len(ent.headers) >= MAX_HEADERS:
            self._anomaly("mime.header_overflow")
            return
        ent.hbytes += len(content)
        line = content.rstrip(b"\r")
        if line[:1] in (b" ", b"\t"):
            if ent.headers:
                name, val = ent.headers[-1]
                if len(val) < MAX_HEADER_VALUE:
                    ent.headers[-1] = (name, (val + line)[:MAX_HEADER_VALUE])
            return
        name, sep, val = line.partition(b":")
        if not sep or not name or len(name) > 128 or b" " in name.strip():
            self._anomaly("mime.bad_header_line")
            return
        ent.headers.append((name.strip().lower().decode("latin-1"), val.strip()[:MAX_HEADER_VALUE]))

    def _end_headers(self, ent: _Entity, out: list[Finished]) -> None:
        hdr: dict[str, bytes] = {}
        for n, v in ent.headers:
            hdr.setdefault(n, v)
        ctype, params = parse_params(header_text(hdr.get("content-type", b"")))
        if "/" not in ctype:
            ctype, params = ent.default_type, params if ctype else {}
        encoding = header_text(hdr.get("content-transfer-encoding", b"")).strip().lower()
        disp, dparams = parse_params(header_text(hdr.get("content-disposition", b"")))
        depth_ok = len(self._stack) <= self.max_depth
        if ctype.startswith("multipart/") and params.get("boundary") and depth_ok:
            ent.boundary = params["boundary"].encode("utf-8", "replace")[:MAX_BOUNDARY]
            ent.child_default = "message/rfc822" if ctype == "multipart/digest" else "text/plain"
            ent.state = _MULTI_PRE
            return
        if ctype.startswith("multipart/") and not params.get("boundary"):
            self._anomaly("mime.no_boundary")
        if ctype == "message/rfc822" and depth_ok:
            if encoding in ("base64", "quoted-printable"):
                # not allowed (RFC 2046 5.2.1): the first line tells an encoded body from a message
                ent.state = _RFC822_PEEK
                ent.headers = [("content-type", b"message/rfc822"),
                               ("content-transfer-encoding", encoding.encode()),
                               *[(n, v) for n, v in ent.headers
                                 if n not in ("content-type", "content-transfer-encoding")]]
                return
            ent.state = _RFC822
            self._stack.append(_Entity(ent.path, ent.depth + 1, "text/plain", True))
            return
        self._make_leaf(ent, ctype, params, encoding, disp, dparams)

    def _rfc822_peek(self, ent: _Entity, content: bytes, eol: bytes, out: list[Finished]) -> None:
        if not content.strip():
            return
        if _HEADER_START.match(content):
            self._anomaly("mime.rfc822_encoding_ignored")
            ent.state = _RFC822
            child = _Entity(ent.path, ent.depth + 1, "text/plain", True)
            self._stack.append(child)
            self._header_line(child, content, eol, out)
            return
        hdr = dict(ent.headers)
        disp, dparams = parse_params(header_text(hdr.get("content-disposition", b"")))
        ctype, params = parse_params(header_text(hdr.get("content-type", b"")))
        self._make_leaf(ent, ctype, params, hdr["content-transfer-encoding"].decode(), disp, dparams)
        if ent.state == _LEAF:
            self._leaf_line(ent, content, eol)

    def _make_leaf(self, ent: _Entity, ctype: str, params: dict[str, str], encoding: str, disp: str,
                   dparams: dict[str, str]) -> None:
        if self.parts >= self.max_parts:
            self._anomaly("mime.too_many_parts")
            ent.state = _MULTI_EPI  # swallow the body
            return
        self.parts += 1
        filename = dparams.get("filename") or params.get("name") or ""
        filename = "".join(ch for ch in filename if ch >= " " and ch != "\x7f")[:MAX_TEXT]
        ent.info = PartInfo(
            content_type=ctype,
            params=params,
            disposition=disp,
            filename=filename,
            encoding=encoding,
            path=ent.path,
            depth=ent.depth,
            in_rfc822=any(e.rfc822 for e in self._stack),
        )
        ent.builder = self._new_builder()
        ent.decoder = decoder_for(encoding)
        ent.state = _LEAF

    def _close_to(self, lvl: int, out: list[Finished], *, at_boundary: bool, truncated: str = "") -> None:
        """Close every entity above stack level ``lvl`` (``-1`` = all)."""
        stack = self._stack
        while len(stack) > lvl + 1:
            ent = stack.pop()
            if ent.state == _HEADERS and not at_boundary:
                self._end_headers(ent, out)
                if ent.state == _RFC822:  # pushed a child: nothing more to flush
                    stack.pop()
            if ent.state == _LEAF and ent.builder is not None and ent.decoder is not None:
                if at_boundary:
                    ent.decoder.pending = b""  # the CRLF belongs to the boundary
                tail = ent.decoder.finish()
                if tail:
                    ent.builder.add(tail)
                if truncated:
                    ent.builder.truncate(truncated)
                if ent.builder.size or ent.builder.gaps:
                    out.append((ent.builder, ent.info))  # type: ignore[arg-type]
            elif ent.state == _HEADERS and ent.depth > 0:
                pass  # a part with no body
