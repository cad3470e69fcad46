"""JSON, XML, form-urlencoded and plain-text bodies to text (in-process: cheap and bounded).

- JSON: keys and string values one per line (numbers and booleans too, they can be IDs);
  a body cut short (a partial capture) falls back to its string literals, with the anomaly
  ``json_partial``. Nesting is bounded by the iterative walk, not by recursion.
- XML: text nodes and attribute values, parsed by lxml with entity resolution, DTD loading and
  network access off (no billion-laughs, no XXE); a ``<!DOCTYPE`` with entities is an anomaly.
- form-urlencoded: ``name: value`` lines, percent- and plus-decoded, in the declared charset.
- text/plain, CSV, JavaScript: decoded text.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote_to_bytes

from lxml import etree

from inspectors.extract.charset import decode
from inspectors.extract.parts import Partial, TextSink

_JSON_STRING = re.compile(r'"((?:[^"\\\n]|\\.){1,100000})"')


def _walk_json(value: object, sink: TextSink) -> None:
    stack = [value]
    while stack and not sink.full:
        v = stack.pop()
        if isinstance(v, dict):
            items = list(v.items())
            for k, x in reversed(items):
                stack.append(x)
                stack.append(("key", k))
        elif isinstance(v, list):
            stack.extend(reversed(v))
        elif isinstance(v, tuple):
            sink.add(f"{v[1]}: ")
        elif isinstance(v, str):
            sink.add(v + "\n")
        elif v is None:
            sink.add("\n")
        else:
            sink.add(f"{v}\n")


def json_text(text: str, max_chars: int) -> tuple[str, bool, bool]:
    """(text, parsed whole, truncated) of a JSON document."""
    sink = TextSink(max_chars)
    try:
        _walk_json(json.loads(text), sink)
        return sink.text(), True, sink.full
    except (ValueError, RecursionError):
        pass
    for m in _JSON_STRING.finditer(text):
        s = m.group(1)
        try:
            s = json.loads(f'"{s}"')
        except ValueError:
            pass
        if not sink.add(s + "\n"):
            break
    return sink.text(), False, sink.full


def extract_json(data: bytes, *, declared_charset: str | None = None, max_chars: int = 4 << 20) -> Partial:
    """A JSON body to a `Partial`."""
    dec = decode(data, declared=declared_charset)
    text, whole, full = json_text(dec.text.lstrip("\ufeff"), max_chars)
    part = Partial(text=text, meta={"charset": dec.charset})
    if not whole:
        part.note("json_partial")
    if full:
        part.flag("text_limit")
    return part


class _XmlText:
    """lxml parser target: collects text and attribute values in document order."""

    def __init__(self, sink: TextSink) -> None:
        self.sink = sink
        self.skip = 0

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        local = tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""
        if local in ("script", "style"):
            self.skip += 1
        for v in attrib.values():
            if len(v) > 1 and not v.startswith(("http://www.w3.org", "urn:")):
                self.sink.add(v + " ")

    def end(self, tag: str) -> None:
        local = tag.rsplit("}", 1)[-1].lower() if isinstance(tag, str) else ""
        if local in ("script", "style") and self.skip:
            self.skip -= 1
        self.sink.add("\n")

    def data(self, s: str) -> None:
        if not self.skip:
            self.sink.add(s)

    def comment(self, s: str) -> None:
        pass

    def close(self) -> None:
        pass


_DOCTYPE = re.compile(rb"<!DOCTYPE\b")


def strip_doctype(data: bytes) -> tuple[bytes, bool]:
    """``data`` without its ``<!DOCTYPE …>`` (internal subset included); True if one was removed.

    libxml2 substitutes internal entities even for a parser target with ``resolve_entities=False``
    (a billion-laughs part gave 120 k characters before its amplification guard stopped it), so
    documents that never need a DTD (Office parts, web XML) lose it before parsing, as
    defusedxml's "forbid DTD" does. References to the removed entities are then dropped.
    """
    m = _DOCTYPE.search(data, 0, 65536)
    if not m:
        return data, False
    i = m.end()
    depth = 0
    end = len(data)
    quote = 0
    while i < len(data):
        c = data[i]
        if quote:
            if c == quote:
                quote = 0
        elif c in (0x22, 0x27):
            quote = c
        elif c == 0x5B:  # [
            depth += 1
        elif c == 0x5D:  # ]
            depth -= 1
        elif c == 0x3E and depth <= 0:  # >
            end = i + 1
            break
        i += 1
    return data[:m.start()] + data[end:], True


def xml_text(data: bytes, max_chars: int, max_bytes: int = 64 << 20) -> tuple[str, list[str]]:
    """(text, anomalies) of an XML document; never expands entities or fetches DTDs."""
    sink = TextSink(max_chars)
    target = _XmlText(sink)
    parser = etree.XMLParser(target=target, resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, recover=True, remove_comments=True)
    anomalies: list[str] = []
    if b"<!ENTITY" in data[:65536]:
        anomalies.append("xml_entities")
    data, had_dtd = strip_doctype(data)
    if had_dtd:
        anomalies.append("xml_doctype")
    try:
        for i in range(0, min(len(data), max_bytes), 65536):
            parser.feed(data[i:i + 65536])
            if sink.full:
                break
        parser.close()
    except etree.XMLSyntaxError:
        anomalies.append("xml_malformed")
    text = re.sub(r"\n\s*\n+", "\n", sink.text()).strip()
    return text, anomalies


def extract_xml(data: bytes, *, declared_charset: str | None = None, max_chars: int = 4 << 20) -> Partial:
    """An XML body (SOAP, RSS, SVG text…) to a `Partial`."""
    if declared_charset and not re.match(rb"^\s*<\?xml[^>]*encoding", data[:200]):
        # lxml reads bytes by their own declaration; re-encode a header-declared charset as UTF-8
        dec = decode(data, declared=declared_charset, xml=True)
        data = dec.text.encode("utf-8")
    text, anomalies = xml_text(data, max_chars)
    part = Partial(text=text, anomalies=anomalies)
    if "xml_entities" in anomalies:
        part.flag("xml_entities", "xml_entities")
    if len(text) >= max_chars:
        part.flag("text_limit")
    return part


def extract_form(data: bytes, *, declared_charset: str | None = None, max_chars: int = 4 << 20) -> Partial:
    """A form-urlencoded body to ``name: value`` lines (values decoded in the declared charset)."""
    raw = data.replace(b"+", b" ")
    pairs = [p.partition(b"=") for p in raw.split(b"&") if p]
    joined = b"\n".join(unquote_to_bytes(k) + b": " + unquote_to_bytes(v) for k, _, v in pairs)
    dec = decode(joined, declared=declared_charset)
    sink = TextSink(max_chars)
    sink.add(dec.text)
    part = Partial(text=sink.text(), meta={"charset": dec.charset, "fields": str(len(pairs))})
    if sink.full:
        part.flag("text_limit")
    return part


def extract_plain(data: bytes, *, declared_charset: str | None = None, max_chars: int = 4 << 20) -> Partial:
    """Plain text (text/plain, CSV, JavaScript, CSS) decoded."""
    dec = decode(data, declared=declared_charset)
    part = Partial(text=dec.text[:max_chars], meta={"charset": dec.charset, "charset_source": dec.source})
    if dec.anomaly:
        part.note(dec.anomaly)
    if len(dec.text) > max_chars:
        part.flag("text_limit")
    return part
