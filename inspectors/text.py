"""Minimal text from plain-text, HTML, JSON and form bodies, for objects that did not go
through `inspectors.extract` (which makes the full text, hidden text and links).

Charset as `inspectors.extract.charset.decode` chooses it: a BOM, the declared charset
(``obj.meta["charset"]``/``["content_type"]`` or a parameter on ``declared_mime``), an HTML
``<meta charset>``, strict UTF-8, detection for longer texts, then GB18030. HTML loses
scripts, styles, comments and tags (inline tags without a space, so ``fa<b></b>lun`` stays one
word) and has its entities unescaped. JSON gives its keys and string values, forms their
decoded names and values. Everything is linear in the input and bounded by ``max_bytes``.
"""

from __future__ import annotations

import html
import json
import re
from urllib.parse import parse_qsl

from appliance.model.content import ContentObject
from inspectors.extract.charset import decode as charset_decode
from inspectors.extract.charset import obj_declared_charset

_TEXT_MIMES = ("text/", "application/json", "application/xml", "application/xhtml+xml",
               "application/x-www-form-urlencoded", "application/javascript", "application/ld+json")


def is_textual(obj: ContentObject) -> bool:
    """Whether the object's MIME type (declared or sniffed) is one this module reads."""
    mimes = (obj.sniffed_mime.lower(), obj.declared_mime.lower())
    return any(m.startswith(_TEXT_MIMES) or m.endswith(("+json", "+xml")) for m in mimes if m)


def declared_charset(obj: ContentObject) -> str | None:
    """The charset the headers declare, if any and if Python knows it."""
    return obj_declared_charset(obj.meta, obj.declared_mime)


def decode(data: bytes, *, charset: str | None = None, html_doc: bool = False) -> str:
    """Bytes to text (BOM, declared charset, ``<meta charset>``, UTF-8, detection, GB18030:
    `inspectors.extract.charset.decode`, which the full extractors use too); never raises."""
    return charset_decode(data, declared=charset, html=html_doc).text


_RAW_TEXT_TAG = re.compile(r"<(/?)(script|style|noscript|template)\b[^<>]{0,4096}>", re.I)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_INLINE = ("a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "font", "i", "kbd",
           "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub", "sup", "time", "tt",
           "u", "var", "wbr", "ins", "del")
_INLINE_TAG = re.compile(r"</?(?:" + "|".join(_INLINE) + r")\b[^<>]{0,4096}>", re.I)
_TAG = re.compile(r"<[A-Za-z/!?][^<>]{0,4096}>")


def html_to_text(doc: str) -> str:
    """Visible text of an HTML document: linear time, tolerant of broken markup."""
    # drop script/style bodies: pair opening and closing tags in one linear pass
    pieces: list[str] = []
    pos = 0
    open_at: tuple[int, str] | None = None
    for m in _RAW_TEXT_TAG.finditer(doc):
        closing, tag = m.group(1), m.group(2).lower()
        if open_at is None and not closing:
            pieces.append(doc[pos:m.start()])
            open_at = (m.start(), tag)
        elif open_at is not None and closing and tag == open_at[1]:
            pieces.append(" ")
            pos = m.end()
            open_at = None
    if open_at is None:
        pieces.append(doc[pos:])
    doc = "".join(pieces)
    doc = _COMMENT.sub(" ", doc)
    doc = _INLINE_TAG.sub("", doc)
    doc = _TAG.sub("\n", doc)
    return html.unescape(doc)


def _json_strings(value: object, out: list[str], budget: list[int]) -> None:
    stack = [value]
    while stack and budget[0] > 0:
        v = stack.pop()
        if isinstance(v, str):
            out.append(v)
            budget[0] -= 1
        elif isinstance(v, dict):
            for k, x in reversed(list(v.items())):
                stack.append(x)
                stack.append(k)
        elif isinstance(v, list):
            stack.extend(reversed(v))


def json_to_text(doc: str) -> str:
    """Keys and string values of a JSON document, one per line (the raw text if it is not JSON)."""
    try:
        value = json.loads(doc)
    except (ValueError, RecursionError):
        return doc
    out: list[str] = []
    _json_strings(value, out, [1_000_000])
    return "\n".join(out)


def form_to_text(doc: str, encoding: str = "utf-8") -> str:
    """Names and values of an ``application/x-www-form-urlencoded`` body, one per line."""
    try:
        pairs = parse_qsl(doc, keep_blank_values=True, encoding=encoding, errors="replace",
                          max_num_fields=None)
    except Exception:
        return doc
    return "\n".join(f"{k}\n{v}" if v else k for k, v in pairs)


def extract_text(obj: ContentObject, *, max_bytes: int = 32 * 1024 * 1024) -> str:
    """The object's text: ``obj.text`` if set, else decoded and cleaned from its bytes.

    Non-textual types give "" (other extractors make their text). Only the first
    ``max_bytes`` are read (from ``data`` or the spool file).
    """
    if obj.text is not None:
        return obj.text
    if not is_textual(obj):
        return ""
    data = obj.data
    if data is None and obj.spool_path:
        try:
            with open(obj.spool_path, "rb") as fh:
                data = fh.read(max_bytes)
        except OSError:
            return ""
    if not data:
        return ""
    data = data[:max_bytes]
    mime = (obj.sniffed_mime or obj.declared_mime).lower()
    dmime = obj.declared_mime.lower()
    is_html = "html" in mime or "html" in dmime
    charset = declared_charset(obj)
    text = decode(data, charset=charset, html_doc=is_html)
    if is_html or "xml" in mime:
        return html_to_text(text)
    if "json" in mime or "json" in dmime:
        return json_to_text(text)
    if "x-www-form-urlencoded" in dmime or "x-www-form-urlencoded" in mime:
        return form_to_text(text, charset or "utf-8")
    return text
