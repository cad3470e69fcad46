"""Scans of an HTML page's raw source that bound the tree walk's work (`inspectors.extract.html`).

* `cap_depth`: elements nest at most `MAX_DEPTH` deep (as in Blink's parser); lexbor's HTML5
  tree builder is quadratic in nesting depth, so deeper start tags are dropped before parsing.
* `raw_anchors`: the ``<a href>`` of a source in linear time, for anchors the tree does not hold
  (markup a browser drops) and for script text.
"""

from __future__ import annotations

import re

_HREF = re.compile(r"\bhref\s*=\s*[\"']?([^\"'\s>]{1,2000})", re.I)
_MAX_SWEPT_ANCHORS = 20_000

_TAG_TOKEN = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]{0,40})[^<>]{0,2000}?(/?)>")
_NO_NESTING = frozenset((
    # void elements, and those whose end tag is optional (a browser closes them implicitly)
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr",
    "param", "keygen", "p", "li", "dt", "dd", "option", "optgroup", "tr", "td", "th", "tbody", "thead", "tfoot",
    "colgroup", "caption", "rb", "rt", "rp", "html", "head", "body",
))
MAX_DEPTH = 512
"""Elements nest at most this deep (as in Blink's HTML parser); deeper start tags are dropped,
their content kept. The HTML5 tree builder's scope checks make nesting cost quadratic: 5,000
levels parse in 0.25 s, 20,000 in 2.7 s, 100,000 in over a minute."""
_DEPTH_CHECK_TAGS = 4096
"""Pages with fewer tags than this cannot nest deep enough to matter and are not checked."""


def _name_keys(names: frozenset[str]) -> list[int]:
    return [int.from_bytes(n[:4].encode().ljust(4, b"\0"), "little") for n in names]


_NO_NESTING_KEYS = _name_keys(_NO_NESTING)


def depth_estimate(doc: str) -> int:
    """An upper-bound-ish estimate of the page's element nesting, in vectorised passes (no Python
    loop per tag): start tags of elements that nest count +1, their end tags −1, clamped at 0."""
    import numpy as np

    raw = doc.encode("utf-8", "surrogatepass")
    a = np.frombuffer(raw, dtype=np.uint8)
    if len(a) < 6:
        return 0
    lt = np.flatnonzero(a[:-5] == 0x3C)
    if len(lt) == 0:
        return 0
    is_end = a[lt + 1] == 0x2F
    off = lt + 1 + is_end  # first byte of the name
    name = np.stack([a[off + k] | 0x20 for k in range(4)], axis=1)  # lower-cased ASCII letters
    alnum = ((name >= 0x61) & (name <= 0x7A)) | ((name >= 0x30) & (name <= 0x39) & (np.arange(4) > 0))
    alnum = np.cumprod(alnum, axis=1).astype(bool)
    key = (np.where(alnum, name, 0).astype(np.uint32) << (8 * np.arange(4, dtype=np.uint32))).sum(axis=1)
    tag = alnum[:, 0] & ~np.isin(key, _NO_NESTING_KEYS)
    step = np.where(is_end, -1, 1)[tag]
    if len(step) == 0:
        return 0
    walk = np.cumsum(step)
    return int((walk - np.minimum(np.minimum.accumulate(walk), 0)).max())


_FOREIGN = frozenset(("svg", "math"))


def cap_depth(doc: str, max_depth: int = MAX_DEPTH) -> tuple[str, bool]:
    """``doc`` with the start (and matching end) tags nested deeper than ``max_depth`` removed,
    and whether any were. Pages with more than ``_DEPTH_CHECK_TAGS`` tags get a vectorised
    estimate (`depth_estimate`, about 25 ms per MB); only past ``max_depth`` does the exact pass
    run (one regex scan; ``/>`` closes an element only inside SVG/MathML, as in HTML)."""
    if doc.count("<") <= _DEPTH_CHECK_TAGS or depth_estimate(doc) <= max_depth:
        return doc, False
    depth = over = foreign = 0
    cut: list[tuple[int, int]] = []
    for m in _TAG_TOKEN.finditer(doc):
        name = m.group(2).lower()
        if name in _NO_NESTING or (m.group(3) and foreign):
            continue
        if m.group(1):
            if over:
                over -= 1
                cut.append(m.span())
            elif depth:
                depth -= 1
                foreign -= foreign > 0 and name in _FOREIGN
        elif depth >= max_depth:
            over += 1
            cut.append(m.span())
        else:
            depth += 1
            foreign += name in _FOREIGN
    if not cut:
        return doc, False
    parts = []
    pos = 0
    for x, y in cut:
        parts.append(doc[pos:x])
        pos = y
    parts.append(doc[pos:])
    return "".join(parts), True


def raw_anchors(source: str, limit: int = _MAX_SWEPT_ANCHORS) -> list[tuple[str, str]]:
    """(href, inner markup) of the ``<a …href=…>…</a>`` in raw text, in linear time: each ``<a``
    is followed by at most 2,000 characters to its ``>`` and 500 to its ``</a``, and at most
    ``limit`` anchors are read."""
    low = source.lower()
    out: list[tuple[str, str]] = []
    i = low.find("<a")
    while i >= 0 and len(out) < limit:
        nxt = low[i + 2:i + 3]
        if nxt and (nxt.isspace() or nxt == "/"):
            gt = low.find(">", i)
            if gt < 0:
                break
            if gt - i > 2000:  # so is every "<a" before gt - 2000: skip them at once
                i = low.find("<a", gt - 2000)
                continue
            m = _HREF.search(source, i, gt)
            if m:
                end = low.find("</a", gt, gt + 500)
                out.append((m.group(1), source[gt + 1:end] if end >= 0 else ""))
            i = low.find("<a", gt)
        else:
            i = low.find("<a", i + 2)
    return out
