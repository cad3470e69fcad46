"""Incremental multipart splitter (multipart/form-data, /byteranges, /mixed).

``MultipartSplitter(boundary).feed(data) -> list[PartEvent]`` and ``finish()``. Events:
`PartStart` (headers, name, filename, content type), `PartData` (streamed part bytes) and
`PartEnd(complete)`. Memory stays bounded: part data is streamed out as soon as it cannot be
the start of a delimiter; only a delimiter-sized tail and a capped header block are kept.

Lenient like browsers/servers: delimiters preceded by CRLF or a bare LF, transport padding
(spaces, junk) after a delimiter, header lines ending in bare LF, obs-folded header lines,
preamble and epilogue ignored; a body without a close delimiter ends its last part with
``complete=False`` (``multipart.no_final_boundary``).

A body whose delimiter lines do not spell the declared boundary exactly is tried against the
variants clients and servers get wrong or tolerate (`boundary_matches`: quotes or whitespace
around it, another letter case, the declared value already carrying the leading ``--``); the
first line that matches one becomes the delimiter (``multipart.boundary_variant``). When none
does, no part is found (``parts == 0`` after `finish`, ``multipart.no_boundary``): the content
assembler then reports the whole body instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

Headers = list[tuple[bytes, bytes]]

_BOUNDARY_RE = re.compile(rb"""boundary\s*=\s*(?:"([^"]*)"?|([^;,\s]+))""", re.I)
_DASH_LINE_RE = re.compile(rb"(?:^|(?<=\n))(--[^\r\n]{1,200}?)[ \t\r]*\n")
"""A line that starts with ``--``: a delimiter candidate when the exact boundary is not found."""
_PREAMBLE_TAIL = 256
"""Bytes of an unfinished preamble line kept to look for a delimiter variant in."""


def _norm(b: bytes) -> bytes:
    return b.strip(b" \t\"'").lower()


def boundary_matches(line: bytes, boundary: bytes) -> bool:
    """Is ``line`` (a body line starting with ``--``, trailing whitespace removed) a delimiter
    of ``boundary`` as a lenient reader takes it: quotes and whitespace around the boundary
    ignored, any letter case, and a declared boundary that already starts with ``--`` used as
    the whole delimiter line?"""
    want = _norm(boundary)
    if not want:
        return False
    got = line[2:]
    return _norm(got) == want or _norm(line) == want or (got.endswith(b"--") and _norm(got[:-2]) == want)


def boundary_from_content_type(value: bytes | None) -> bytes | None:
    """The boundary parameter of a multipart Content-Type (quoted or not, any case)."""
    if not value or not value.lstrip().lower().startswith(b"multipart/"):
        return None
    m = _BOUNDARY_RE.search(value)
    if m is None:
        return None
    b = m.group(1) if m.group(1) is not None else m.group(2)
    b = b.rstrip(b" \t") if m.group(1) is None else b
    return b[:200] if b else None


def _params(value: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    """Split ``type; a=b; c="d\\"e"`` into the first token and lower-cased parameters."""
    out: dict[bytes, bytes] = {}
    i = value.find(b";")
    head = (value if i < 0 else value[:i]).strip()
    n = len(value)
    while 0 <= i < n:
        i += 1
        j = i
        while j < n and value[j] not in b"=;":
            j += 1
        key = value[i:j].strip().lower()
        if j >= n or value[j] == 59:  # ';' or end: a parameter without value
            i = j if j < n else -1
            continue
        j += 1
        while j < n and value[j] in b" \t":
            j += 1
        if j < n and value[j] == 34:  # quoted-string
            k = j + 1
            buf = bytearray()
            while k < n and value[k] != 34:
                if value[k] == 92 and k + 1 < n:
                    k += 1
                buf.append(value[k])
                k += 1
            val = bytes(buf)
            k = value.find(b";", k)
        else:
            k = value.find(b";", j)
            val = (value[j:] if k < 0 else value[j:k]).strip()
        if key and key not in out:
            out[key] = val
        i = k
    return head, out


def _decode_5987(v: bytes) -> str:
    charset, _, rest = v.partition(b"'")
    _, _, enc = rest.partition(b"'")
    raw = unquote_to_bytes(enc if rest else v)
    try:
        return raw.decode(charset.decode("latin-1").strip() or "utf-8")
    except (LookupError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")


def _text(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def parse_disposition(value: bytes | None) -> tuple[str | None, str | None]:
    """(name, filename) of a Content-Disposition; ``filename*`` (RFC 5987/2231) wins."""
    if not value:
        return None, None
    _, p = _params(value)
    name = _text(p[b"name"]) if b"name" in p else None
    filename: str | None = None
    if b"filename*" in p:
        filename = _decode_5987(p[b"filename*"])
    elif b"filename*0*" in p or b"filename*0" in p:  # RFC 2231 continuations
        pieces: list[str] = []
        k = 0
        while k < 64:
            if (x := p.get(b"filename*%d*" % k)) is not None:
                enc = x.split(b"'", 2)[-1] if k == 0 else x
                pieces.append(unquote_to_bytes(enc).decode("utf-8", "replace"))
            elif (x := p.get(b"filename*%d" % k)) is not None:
                pieces.append(_text(x))
            else:
                break
            k += 1
        filename = "".join(pieces)
    elif b"filename" in p:
        filename = _text(p[b"filename"])
    return name, filename


@dataclass(slots=True, frozen=True)
class PartStart:
    """A part begins: its headers (ordered, as on the wire) and what they say."""

    index: int
    headers: Headers
    name: str | None = None
    filename: str | None = None
    content_type: str | None = None


@dataclass(slots=True, frozen=True)
class PartData:
    data: bytes


@dataclass(slots=True, frozen=True)
class PartEnd:
    complete: bool = True
    anomalies: list[str] = field(default_factory=list)


PartEvent = PartStart | PartData | PartEnd

_PREAMBLE, _AFTER_DELIM, _HEADERS, _DATA, _EPILOGUE = range(5)


class MultipartSplitter:
    """Streaming splitter of one multipart body with the given boundary."""

    def __init__(self, boundary: bytes, *, max_header_bytes: int = 16 * 1024, max_parts: int = 10000) -> None:
        self.delim = b"--" + boundary
        self.nl_delim = b"\n" + self.delim
        self.max_header_bytes = max_header_bytes
        self.max_parts = max_parts
        self.state = _PREAMBLE
        self.buf = b""
        self.parts = 0
        self.anomalies: list[str] = []
        self._keep = len(self.nl_delim) + 1  # tail that may hold "\r\n--boundary" unseen

    def _anomaly(self, code: str) -> None:
        if code not in self.anomalies:
            self.anomalies.append(code)

    def feed(self, data: bytes) -> list[PartEvent]:
        """Split the next piece of the (decoded) body."""
        if not data or self.state == _EPILOGUE:
            return []
        buf = self.buf + data if self.buf else data
        self.buf = b""
        out: list[PartEvent] = []
        i = 0
        n = len(buf)
        while i < n:
            st = self.state
            if st == _DATA:
                m = buf.find(self.nl_delim, i)
                if m < 0:
                    safe = n - self._keep
                    if safe > i:
                        out.append(PartData(buf[i:safe]))
                        i = safe
                    break
                end = m - 1 if m > i and buf[m - 1] == 13 else m
                if end == m and m > i:
                    self._anomaly("multipart.bare_lf")
                if end > i:
                    out.append(PartData(buf[i:end]))
                out.append(PartEnd(True))
                i = m + len(self.nl_delim)
                self.state = _AFTER_DELIM
            elif st == _PREAMBLE:
                m = self._first_delimiter(buf, i)
                if m < 0:
                    # keep what may still become a delimiter: the exact one's length, or the
                    # unfinished last line (a variant is only recognised on a whole line)
                    line_start = max(buf.rfind(b"\n", i) + 1, n - _PREAMBLE_TAIL)
                    i = max(i, min(n - self._keep, line_start))
                    break
                if m > i:
                    self._anomaly("multipart.preamble")
                i = m + len(self.delim)
                self.state = _AFTER_DELIM
            elif st == _AFTER_DELIM:
                # "--" closes; else the rest of the line is padding, then part headers
                if n - i < 2:
                    break
                if buf[i:i + 2] == b"--":
                    self.state = _EPILOGUE
                    i = n
                    break
                j = buf.find(b"\n", i)
                if j < 0:
                    if n - i > 1024:
                        self._anomaly("multipart.junk_after_boundary")
                        i = n - 2
                    break
                if buf[i:j].strip(b" \t\r"):
                    self._anomaly("multipart.junk_after_boundary")
                i = j + 1
                self.state = _HEADERS
            elif st == _HEADERS:
                j = self._header_end(buf, i)
                if j is None:
                    if n - i > self.max_header_bytes:
                        self._anomaly("multipart.header_too_long")
                        i = n
                        self.state = _EPILOGUE
                    break
                hdr_end, body_start = j
                out.append(self._part_start(buf[i:hdr_end]))
                i = body_start
                self.state = _DATA
            else:
                i = n
        if i < n and self.state != _EPILOGUE:
            self.buf = buf[i:]
        return out

    def _first_delimiter(self, buf: bytes, i: int) -> int:
        """Where the first delimiter line starts in ``buf[i:]`` (-1: none yet): the declared
        boundary, else the first ``--`` line that matches a variant of it (adopted from then on)."""
        if buf.startswith(self.delim, i):
            return i
        m = buf.find(self.nl_delim, i)
        if m >= 0:
            return m + 1
        boundary = self.delim[2:]
        for dm in _DASH_LINE_RE.finditer(buf, i):
            line = dm.group(1)
            if boundary_matches(line, boundary):
                # a close delimiter first ("--b--"): the delimiter is the line without its "--"
                closing = line.endswith(b"--") and _norm(line[2:]) != _norm(boundary) != _norm(line)
                self._adopt(line[:-2] if closing else line)
                return dm.start(1)
        return -1

    def _adopt(self, delim: bytes) -> None:
        """Use ``delim`` (as written in the body) as the delimiter from now on."""
        self._anomaly("multipart.boundary_variant")
        self.delim = delim
        self.nl_delim = b"\n" + delim
        self._keep = len(self.nl_delim) + 1

    @staticmethod
    def _header_end(buf: bytes, i: int) -> tuple[int, int] | None:
        """(end of header block, start of data) or None; blank line by CRLF or bare LF."""
        if buf.startswith(b"\r\n", i):
            return i, i + 2
        if buf.startswith(b"\n", i):
            return i, i + 1
        a = buf.find(b"\n\r\n", i)
        b = buf.find(b"\n\n", i)
        if a < 0 and b < 0:
            return None
        if b < 0 or (0 <= a < b):
            return a + 1, a + 3
        return b + 1, b + 2

    def _part_start(self, block: bytes) -> PartStart:
        headers: Headers = []
        for raw in block.split(b"\n"):
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                continue
            if line[0] in b" \t" and headers:
                k, v = headers[-1]
                headers[-1] = (k, v + b" " + line.strip())
                self._anomaly("multipart.obs_fold")
                continue
            k, sep, v = line.partition(b":")
            if not sep:
                self._anomaly("multipart.invalid_header_line")
                continue
            headers.append((k.strip(), v.strip()))
        self.parts += 1
        disp = ctype = None
        for k, v in headers:
            kl = k.lower()
            if kl == b"content-disposition" and disp is None:
                disp = v
            elif kl == b"content-type" and ctype is None:
                ctype = v
        name, filename = parse_disposition(disp)
        return PartStart(self.parts - 1, headers, name, filename, _text(ctype) if ctype is not None else None)

    def finish(self) -> list[PartEvent]:
        """End of body: flush the last part (incomplete when no close delimiter was seen)."""
        out: list[PartEvent] = []
        if self.state == _DATA:
            if self.buf:
                out.append(PartData(self.buf))
            self._anomaly("multipart.no_final_boundary")
            out.append(PartEnd(False, ["multipart.no_final_boundary"]))
        elif self.state in (_HEADERS, _AFTER_DELIM):
            self._anomaly("multipart.no_final_boundary")
        elif self.state == _PREAMBLE:
            self._anomaly("multipart.no_boundary")
        self.buf = b""
        self.state = _EPILOGUE
        return out
