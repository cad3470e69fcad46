"""Small independent parsers for what tapsift emits (CEF, LEEF 2.0, RFC 5424/3164 headers)."""

from __future__ import annotations

import re

_CEF_KEY = re.compile(r"(?:^| )([A-Za-z0-9_]+)=")
_CEF_UNESC = {"\\": "\\", "=": "=", "n": "\n", "r": "\r", "|": "|"}


def _split_header(line: str, n: int) -> tuple[list[str], str]:
    """The first *n* ``|``-separated header fields (``\\|`` and ``\\\\`` unescaped) and the rest."""
    fields, cur, i = [], [], 0
    while len(fields) < n:
        c = line[i]
        if c == "\\" and i + 1 < len(line) and line[i + 1] in "|\\":
            cur.append(line[i + 1])
            i += 2
        elif c == "|":
            fields.append("".join(cur))
            cur = []
            i += 1
        else:
            cur.append(c)
            i += 1
    return fields, line[i:]


def parse_cef(line: str) -> tuple[list[str], dict[str, str]]:
    """(header fields without the ``CEF:0`` prefix split off, extension dict)."""
    assert line.startswith("CEF:0|"), line[:40]
    header, ext = _split_header(line, 7)
    keys = list(_CEF_KEY.finditer(ext))
    out: dict[str, str] = {}
    for k, m in enumerate(keys):
        end = keys[k + 1].start() if k + 1 < len(keys) else len(ext)
        raw = ext[m.end():end]
        # an unescaped "=" never appears inside a value
        assert re.search(r"(?<!\\)(?:\\\\)*=", raw) is None or _only_escaped_eq(raw), raw
        out[m.group(1)] = re.sub(r"\\(.)", lambda e: _CEF_UNESC.get(e.group(1), "\\" + e.group(1)), raw)
    return header, out


def _only_escaped_eq(raw: str) -> bool:
    i = 0
    while i < len(raw):
        if raw[i] == "\\":
            i += 2
            continue
        if raw[i] == "=":
            return False
        i += 1
    return True


def parse_leef(line: str) -> tuple[list[str], dict[str, str]]:
    """(header fields, attributes) of a LEEF 2.0 line; the delimiter comes from the header."""
    assert line.startswith("LEEF:2.0|"), line[:40]
    header, rest = _split_header(line, 6)
    spec = header[5]
    delim = chr(int(spec[1:] if spec.startswith("x") else spec[2:], 16)) if len(spec) > 1 else spec
    attrs: dict[str, str] = {}
    for part in rest.split(delim) if rest else []:
        key, sep, value = part.partition("=")
        assert sep, part
        assert key not in attrs, key
        attrs[key] = value
    return header, attrs


RFC5424 = re.compile(
    rb"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|\[.*?\]) (.*)$", re.S
)
RFC3164 = re.compile(rb"^<(\d{1,3})>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (\S+) ([^:\[ ]+)(?:\[(\d+)\])?: (.*)$", re.S)
