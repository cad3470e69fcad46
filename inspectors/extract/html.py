"""HTML to visible text, hidden text (with reasons) and links (with a visibility flag).

The page is parsed with lxml's lenient HTML parser (libxml2: linear, tolerant of broken markup)
and walked once in document order with a small CSS cascade: inline ``style`` attributes and
``<style>`` rules whose selectors are simple (``tag``, ``.class``, ``#id``, ``*``, compounds of
those, and descendant/child chains of compounds; rules with pseudo-classes or attribute
selectors are ignored). Specificity, source order and ``!important`` decide between rules.

A piece of text is hidden, with the first reason that applies from the outermost element in:

- ``display:none`` (also the ``hidden`` attribute), ``visibility:hidden`` (inherited, can be
  undone by a descendant), ``opacity:0``;
- ``off-screen``: ``position:absolute|fixed`` with ``left``/``top``/``right``/``bottom`` at
  -500px or beyond, or ``text-indent``/``margin-left``/``margin-top`` at -500px or beyond;
- ``font-size:0`` and ``font-size:tiny`` (< 2px, computed through em/%/pt and inheritance);
- ``color-matches-background``: the text colour within a few units of the nearest ancestor's
  background colour (default black on white);
- ``height:0;overflow:hidden`` (height, max-height or width ≤ 1px with overflow hidden) and
  ``clip`` (``clip:rect(0…)`` or ``clip-path:inset(50%…)``);
- ``noscript``, and ``meta`` for ``<meta name=keywords|description>`` content.

Script and style contents are not text. Links are ``<a>``/``<area>`` ``href``s (resolved
against ``<base href>`` and the object's URL) with their anchor text; a link is hidden when its
element is, or when all of its text is; ``<iframe>``s of zero size, ``<meta refresh>`` targets
and anchors written by inline script (``document.write('<a href=…>')``, reason ``script``) are
links too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

from lxml import etree

from appliance.model import Link
from inspectors.extract.charset import decode
from inspectors.extract.parts import Partial, TextSink

_BLOCK = frozenset((
    "address", "article", "aside", "blockquote", "body", "br", "caption", "center", "dd", "details", "dialog",
    "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "frame", "h1", "h2", "h3", "h4",
    "h5", "h6", "header", "hr", "html", "iframe", "legend", "li", "main", "menu", "nav", "ol", "p", "pre",
    "section", "summary", "table", "tbody", "td", "tfoot", "th", "thead", "title", "tr", "ul", "option", "select",
    "textarea",
))
_SKIP = frozenset(("script", "style", "template", "head", "svg", "math", "object", "embed", "applet"))
_NAMED_COLORS = {
    "white": (255, 255, 255), "black": (0, 0, 0), "red": (255, 0, 0), "green": (0, 128, 0), "blue": (0, 0, 255),
    "yellow": (255, 255, 0), "gray": (128, 128, 128), "grey": (128, 128, 128), "silver": (192, 192, 192),
    "maroon": (128, 0, 0), "purple": (128, 0, 128), "fuchsia": (255, 0, 255), "lime": (0, 255, 0),
    "olive": (128, 128, 0), "navy": (0, 0, 128), "teal": (0, 128, 128), "aqua": (0, 255, 255),
    "orange": (255, 165, 0), "whitesmoke": (245, 245, 245), "snow": (255, 250, 250), "ivory": (255, 255, 240),
    "lightgray": (211, 211, 211), "lightgrey": (211, 211, 211), "darkgray": (169, 169, 169),
    "gainsboro": (220, 220, 220), "beige": (245, 245, 220), "pink": (255, 192, 203), "brown": (165, 42, 42),
}
_FONT_KEYWORDS = {"xx-small": 9.0, "x-small": 10.0, "small": 13.0, "medium": 16.0, "large": 18.0,
                  "x-large": 24.0, "xx-large": 32.0, "xxx-large": 48.0, "smaller": -0.83, "larger": -1.2}
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.S)
_COMPOUND = re.compile(r"^(\*|[a-zA-Z][\w-]*)?((?:[.#][\w-]+)*)$")
_LEN = re.compile(r"^(-?\d*\.?\d+)\s*(px|pt|em|rem|%|vw|vh|ex|ch|cm|mm|in|pc)?$")
_WS = re.compile(r"[ \t\r\n\f\u00a0]+")
_SCRIPT_A = re.compile(r"<a\b[^>]{0,500}?href\s*=\s*[\"']?([^\"'\s>]{1,2000})[^>]{0,500}>(.{0,500}?)</a", re.I | re.S)
_SCRIPT_LOC = re.compile(r"(?:window\.|document\.|top\.|self\.)?location(?:\.href)?\s*=\s*[\"']([^\"']{1,2000})[\"']")
_TAG_RE = re.compile(r"<[^>]{0,500}>")
_REFRESH = re.compile(r"url\s*=\s*['\"]?([^'\"\s;]+)", re.I)
OFFSCREEN_PX = -500.0
TINY_PX = 2.0


# --- CSS -----------------------------------------------------------------------------------

@dataclass(slots=True)
class _Rule:
    chain: list[tuple[str, str, tuple[str, ...]]]
    """Compounds right to left: (tag or '', id or '', classes)."""
    decls: dict[str, tuple[str, bool]]
    spec: tuple[int, int, int]
    order: int


@dataclass(slots=True)
class StyleSheet:
    """Rules indexed by their rightmost compound: id, class, tag or universal."""

    by_id: dict[str, list[_Rule]] = field(default_factory=dict)
    by_class: dict[str, list[_Rule]] = field(default_factory=dict)
    by_tag: dict[str, list[_Rule]] = field(default_factory=dict)
    universal: list[_Rule] = field(default_factory=list)
    count: int = 0

    def add(self, rule: _Rule) -> None:
        tag, eid, classes = rule.chain[0]
        if eid:
            self.by_id.setdefault(eid, []).append(rule)
        elif classes:
            self.by_class.setdefault(classes[0], []).append(rule)
        elif tag:
            self.by_tag.setdefault(tag, []).append(rule)
        else:
            self.universal.append(rule)
        self.count += 1


def parse_declarations(text: str) -> dict[str, tuple[str, bool]]:
    """``prop: value`` pairs of a declaration block: {prop: (value, important)}."""
    out: dict[str, tuple[str, bool]] = {}
    for decl in text.split(";"):
        prop, sep, value = decl.partition(":")
        if not sep:
            continue
        prop = prop.strip().lower()
        value = value.strip().lower()
        important = value.endswith("!important")
        if important:
            value = value[: -len("!important")].strip()
        if prop and value:
            out[prop] = (value, important)
    return out


def _parse_selector(sel: str) -> tuple[list[tuple[str, str, tuple[str, ...]]], tuple[int, int, int]] | None:
    parts = sel.replace(">", " > ").split()
    chain: list[tuple[str, str, tuple[str, ...]]] = []
    ids = cls = tags = 0
    for p in parts:
        if p == ">":
            continue  # treated as a descendant combinator (a slight over-approximation)
        m = _COMPOUND.match(p)
        if not m or not p:
            return None
        tag = (m.group(1) or "").lower()
        tag = "" if tag == "*" else tag
        eid = ""
        classes: list[str] = []
        for q in re.findall(r"[.#][\w-]+", m.group(2) or ""):
            if q[0] == "#":
                eid = q[1:]
                ids += 1
            else:
                classes.append(q[1:])
                cls += 1
        tags += bool(tag)
        chain.append((tag, eid, tuple(classes)))
    if not chain:
        return None
    chain.reverse()
    return chain, (ids, cls, tags)


def parse_css(text: str, sheet: StyleSheet | None = None, max_rules: int = 20_000) -> StyleSheet:
    """Add the simple-selector rules of a stylesheet to ``sheet`` (``@media print`` and
    ``@font-face``/``@keyframes`` blocks are skipped, other ``@media`` blocks are read)."""
    sheet = sheet or StyleSheet()
    text = _CSS_COMMENT.sub(" ", text)
    pos = 0
    n = len(text)
    while pos < n and sheet.count < max_rules:
        brace = text.find("{", pos)
        if brace < 0:
            break
        prelude = text[pos:brace].strip()
        semi = prelude.rfind(";")
        if semi >= 0:  # @import/@charset statements before the rule
            prelude = prelude[semi + 1:].strip()
        if prelude.startswith("@"):
            low = prelude.lower()
            if low.startswith(("@media", "@supports", "@layer", "@container")) and not (
                    low.startswith("@media") and ("print" in low or "speech" in low) and "screen" not in low):
                pos = brace + 1  # read the rules inside
                continue
            # skip the whole block, nested braces included
            depth = 0
            i = brace
            while i < n:
                c = text[i]
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            pos = i + 1
            continue
        close = text.find("}", brace)
        if close < 0:
            close = n
        if prelude.startswith("}"):
            prelude = prelude.lstrip("} \t\r\n")
        decls = parse_declarations(text[brace + 1:close])
        pos = close + 1
        if not decls or not _relevant(decls):
            continue
        for sel in prelude.split(","):
            parsed = _parse_selector(sel.strip().lstrip("}").strip())
            if parsed:
                sheet.add(_Rule(parsed[0], decls, parsed[1], sheet.count))
    return sheet


_PROPS = frozenset(("display", "visibility", "opacity", "position", "left", "top", "right", "bottom", "text-indent",
                    "margin-left", "margin-top", "font-size", "font", "color", "background", "background-color",
                    "height", "max-height", "width", "overflow", "clip", "clip-path"))


def _relevant(decls: dict[str, tuple[str, bool]]) -> bool:
    return any(k in _PROPS for k in decls)


def _px(value: str, font_px: float = 16.0) -> float | None:
    m = _LEN.match(value.strip())
    if not m:
        return None
    num = float(m.group(1))
    unit = m.group(2) or "px"
    if unit == "px":
        return num
    if unit == "pt":
        return num * 4 / 3
    if unit == "em" or unit == "ex" or unit == "ch":
        return num * font_px * (0.5 if unit != "em" else 1.0)
    if unit == "rem":
        return num * 16.0
    if unit == "%":
        return num * font_px / 100
    if unit in ("vw", "vh"):
        return num * 10.0
    return {"cm": 37.8, "mm": 3.78, "in": 96.0, "pc": 16.0}[unit] * num


def _color(value: str) -> tuple[int, int, int] | None:
    v = value.strip().lower()
    if v.startswith("#"):
        h = v[1:]
        if len(h) in (3, 4):
            h = "".join(c * 2 for c in h[:3])
        if len(h) in (6, 8):
            try:
                return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
            except ValueError:
                return None
        return None
    if v.startswith("rgb"):
        nums = re.findall(r"-?\d*\.?\d+%?", v)
        if len(nums) >= 3:
            if len(nums) >= 4 and not nums[3].endswith("%") and float(nums[3]) == 0:
                return None  # fully transparent
            out = []
            for x in nums[:3]:
                f = float(x.rstrip("%")) * (2.55 if x.endswith("%") else 1)
                out.append(max(0, min(255, round(f))))
            return out[0], out[1], out[2]
        return None
    return _NAMED_COLORS.get(v)


def _bg_color(value: str) -> tuple[int, int, int] | None:
    for tok in re.findall(r"#[0-9a-fA-F]{3,8}|rgba?\([^)]*\)|[a-zA-Z]+", value):
        c = _color(tok)
        if c is not None:
            return c
    return None


# --- the walk ------------------------------------------------------------------------------

@dataclass(slots=True)
class _State:
    hidden: str
    visibility_hidden: bool
    font_px: float
    color: tuple[int, int, int]
    bg: tuple[int, int, int]


@dataclass(slots=True)
class _Anchor:
    url: str
    visible: list[str]
    hidden: list[str]
    reason: str
    own_reason: str
    has_visible_img: bool = False


@dataclass(slots=True)
class HtmlResult:
    """Text, hidden text, links and facts of one page."""

    text: str
    hidden_text: str
    links: list[Link]
    hidden_reasons: dict[str, int]
    title: str = ""
    truncated: bool = False


def _style_of(el: etree._Element, tag: str, sheet: StyleSheet, ancestors: list[tuple[str, str, frozenset[str]]],
              eid: str, classes: frozenset[str]) -> dict[str, str]:
    matched: list[tuple[tuple[int, int, int, int, int], dict[str, tuple[str, bool]]]] = []
    if sheet.count:
        cands: list[_Rule] = []
        if eid and eid in sheet.by_id:
            cands += sheet.by_id[eid]
        for c in classes:
            r = sheet.by_class.get(c)
            if r:
                cands += r
        r = sheet.by_tag.get(tag)
        if r:
            cands += r
        cands += sheet.universal
        for rule in cands:
            if _match(rule.chain, tag, eid, classes, ancestors):
                matched.append(((0, *rule.spec, rule.order), rule.decls))
    inline = el.get("style")
    if not matched and not inline:
        return {}
    props: dict[str, tuple[tuple[int, ...], str]] = {}
    for key, decls in matched:
        for p, (v, imp) in decls.items():
            k = (int(imp), 0, *key[1:])
            old = props.get(p)
            if old is None or k >= old[0]:
                props[p] = (k, v)
    if inline:
        for p, (v, imp) in parse_declarations(inline).items():
            k = (int(imp), 1, 0, 0, 0, 0)
            old = props.get(p)
            if old is None or k >= old[0]:
                props[p] = (k, v)
    return {p: v for p, (_, v) in props.items()}


def _compound_ok(comp: tuple[str, str, tuple[str, ...]], tag: str, eid: str, classes: frozenset[str]) -> bool:
    ctag, cid, ccls = comp
    return (not ctag or ctag == tag) and (not cid or cid == eid) and all(c in classes for c in ccls)


def _match(chain: list[tuple[str, str, tuple[str, ...]]], tag: str, eid: str, classes: frozenset[str],
           ancestors: list[tuple[str, str, frozenset[str]]]) -> bool:
    if not _compound_ok(chain[0], tag, eid, classes):
        return False
    i = len(ancestors) - 1
    for comp in chain[1:]:
        while i >= 0 and not _compound_ok(comp, *ancestors[i]):
            i -= 1
        if i < 0:
            return False
        i -= 1
    return True


def _apply(style: dict[str, str], parent: _State, el: etree._Element, tag: str) -> _State:
    hidden = parent.hidden
    vis = parent.visibility_hidden
    font_px = parent.font_px
    color = parent.color
    bg = parent.bg
    if not style:
        if not hidden and el.get("hidden") is not None:
            hidden = "display:none"
        if hidden is parent.hidden:
            return parent
        return _State(hidden, vis, font_px, color, bg)
    g = style.get
    if "font" in style and "font-size" not in style:
        m = re.search(r"(?:^|\s)(\d*\.?\d+(?:px|pt|em|rem|%)|0)(?:/|\s|$)", style["font"])
        if m:
            style["font-size"] = m.group(1)
    fs = g("font-size")
    if fs:
        if fs in _FONT_KEYWORDS:
            k = _FONT_KEYWORDS[fs]
            font_px = font_px * -k if k < 0 else k
        else:
            v = _px(fs, parent.font_px)
            if v is not None:
                font_px = max(0.0, v)
    vv = g("visibility")
    if vv in ("hidden", "collapse"):
        vis = True
    elif vv == "visible":
        vis = False
    c = g("color")
    if c:
        color = _color(c) or color
    b = g("background-color") or g("background")
    if b:
        bc = _bg_color(b)
        if bc is not None:
            bg = bc
    if not hidden:
        hidden = _box_hidden(style, font_px, el)
    return _State(hidden, vis, font_px, color, bg)


def _box_hidden(style: dict[str, str], font_px: float, el: etree._Element) -> str:
    g = style.get
    if g("display") == "none" or el.get("hidden") is not None:
        return "display:none"
    op = g("opacity")
    if op:
        try:
            if float(op.rstrip("%")) / (100 if op.endswith("%") else 1) <= 0.05:
                return "opacity:0"
        except ValueError:
            pass
    if g("position") in ("absolute", "fixed"):
        for side in ("left", "top", "right", "bottom"):
            v = g(side)
            if v:
                px = _px(v, font_px)
                if px is not None and px <= OFFSCREEN_PX:
                    return "off-screen"
        clip = g("clip")
        if clip and re.match(r"rect\(\s*0(px)?[\s,]+0(px)?[\s,]+0(px)?[\s,]+0(px)?\s*\)", clip):
            return "clip"
    for prop in ("text-indent", "margin-left", "margin-top"):
        v = g(prop)
        if v:
            px = _px(v.split()[0], font_px)
            if px is not None and px <= OFFSCREEN_PX:
                return "off-screen"
    cp = g("clip-path")
    if cp and re.match(r"inset\(\s*(50|100)%", cp):
        return "clip"
    if g("overflow") in ("hidden", "clip") or g("overflow-y") == "hidden":
        for prop in ("height", "max-height", "width"):
            v = g(prop)
            if v:
                px = _px(v, font_px)
                if px is not None and px <= 1:
                    return "height:0;overflow:hidden"
    return ""


def _text_reason(st: _State) -> str:
    if st.hidden:
        return st.hidden
    if st.visibility_hidden:
        return "visibility:hidden"
    if st.font_px <= 0:
        return "font-size:0"
    if st.font_px < TINY_PX:
        return "font-size:tiny"
    if max(abs(a - b) for a, b in zip(st.color, st.bg)) <= 8:
        return "color-matches-background"
    return ""


class _Walker:
    def __init__(self, sheet: StyleSheet, base: str, max_chars: int, max_elements: int) -> None:
        self.sheet = sheet
        self.base = base
        self.visible = TextSink(max_chars)
        self.hidden: list[tuple[str, list[str]]] = []
        self.hidden_chars = 0
        self.max_chars = max_chars
        self.links: list[Link] = []
        self.reasons: dict[str, int] = {}
        self.anchors: list[_Anchor] = []
        self.elements = 0
        self.max_elements = max_elements
        self.truncated = False
        self._last_block = True

    def url(self, href: str) -> str:
        href = href.strip()
        try:
            return urljoin(self.base, href) if self.base else href
        except ValueError:
            return href

    def emit(self, s: str, reason: str) -> None:
        if not s:
            return
        s = _WS.sub(" ", s)
        if not s.strip() and not reason:
            if not self._last_block:
                self.visible.add(" ")
            return
        for a in self.anchors:
            (a.hidden if reason else a.visible).append(s)
            if reason and not a.reason:
                a.reason = reason
        if reason:
            if not s.strip():
                return
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
            if self.hidden_chars < self.max_chars:
                if self.hidden and self.hidden[-1][0] == reason:
                    self.hidden[-1][1].append(s)
                else:
                    self.hidden.append((reason, [s]))
                self.hidden_chars += len(s)
            return
        self.visible.add(s)
        self._last_block = False

    def block(self) -> None:
        if not self._last_block:
            self.visible.add("\n")
            self._last_block = True
        if self.hidden and self.hidden[-1][1] and self.hidden[-1][1][-1] != " ":
            self.hidden[-1][1].append(" ")

    def walk(self, root: etree._Element) -> None:
        st = _State("", False, 16.0, (0, 0, 0), (255, 255, 255))
        ancestors: list[tuple[str, str, frozenset[str]]] = []
        # iterative walk: (element, parent state, phase)
        stack: list[tuple[etree._Element, _State, int]] = [(root, st, 0)]
        states: list[_State] = []
        while stack:
            el, pst, phase = stack.pop()
            if phase == 1:  # closing: tail text belongs to the parent
                tag = el.tag if isinstance(el.tag, str) else ""
                est = states.pop()
                ancestors.pop()
                if tag == "a" or tag == "area":
                    self._close_anchor()
                if tag in _BLOCK:
                    self.block()
                if el.tail:
                    self.emit(el.tail, _text_reason(pst))
                del est
                continue
            tag = el.tag
            if not isinstance(tag, str):  # comments, PIs, entities
                if el.tail:
                    self.emit(el.tail, _text_reason(pst))
                continue
            tag = tag.lower()
            self.elements += 1
            if self.elements > self.max_elements:
                self.truncated = True
                return
            eid = el.get("id") or ""
            cls = el.get("class")
            classes = frozenset(cls.split()) if cls else frozenset()
            est = _apply(_style_of(el, tag, self.sheet, ancestors, eid, classes), pst, el, tag)
            if tag in _SKIP or tag == "noscript" or tag == "iframe" or tag == "frame" or tag == "meta" \
                    or tag == "img" or tag == "base":
                self._special(el, tag, est)
                if tag in _SKIP or tag in ("meta", "img", "base"):
                    if el.tail:
                        self.emit(el.tail, _text_reason(pst))
                    if tag == "head":
                        self._head(el)
                    continue
                if tag == "noscript" and not est.hidden:
                    est = _State("noscript", est.visibility_hidden, est.font_px, est.color, est.bg)
            if tag == "a" or tag == "area":
                href = el.get("href")
                self.anchors.append(_Anchor(self.url(href) if href else "", [], [], "", _text_reason(est)))
            if tag in _BLOCK:
                self.block()
            states.append(est)
            ancestors.append((tag, eid, classes))
            stack.append((el, pst, 1))
            for child in reversed(el):
                stack.append((child, est, 0))
            if el.text:
                self.emit(el.text, _text_reason(est))

    def _head(self, head: etree._Element) -> None:
        for el in head.iter("title", "meta", "base", "style", "script"):
            if el.tag == "title" and el.text:
                self.emit(el.text, "")
                self.block()
            elif el.tag in ("meta", "base", "script"):
                self._special(el, el.tag, _State("", False, 16.0, (0, 0, 0), (255, 255, 255)))

    def _special(self, el: etree._Element, tag: str, st: _State) -> None:
        if tag == "base" and el.get("href"):
            self.base = self.url(el.get("href", ""))
        elif tag == "meta":
            name = (el.get("name") or "").lower()
            equiv = (el.get("http-equiv") or "").lower()
            content = el.get("content") or ""
            if name in ("keywords", "description") and content.strip():
                self.emit(content, "meta")
                self.block()
            elif equiv == "refresh":
                m = _REFRESH.search(content)
                if m:
                    self.links.append(Link(self.url(m.group(1)), "", True, "meta-refresh"))
        elif tag == "img":
            alt = el.get("alt")
            if alt and self.anchors:
                reason = _text_reason(st)
                for a in self.anchors:
                    (a.hidden if reason else a.visible).append(alt)
                    if not reason:
                        a.has_visible_img = True
        elif tag in ("iframe", "frame"):
            src = el.get("src")
            if src:
                reason = _text_reason(st)
                w, h = el.get("width", "").strip(), el.get("height", "").strip()
                if not reason and (w in ("0", "0px", "1", "1px") or h in ("0", "0px", "1", "1px")):
                    reason = "zero-size-iframe"
                self.links.append(Link(self.url(src), "", bool(reason), reason))
        elif tag == "script":
            code = el.text or ""
            if code and ("<a" in code or "<A" in code or "location" in code):
                self._script_links(code)

    def _script_links(self, code: str) -> None:
        code = code[:1_000_000].replace("\\/", "/").replace('\\"', '"').replace("\\'", "'")
        code = re.sub(r"[\"']\s*\+\s*[\"']", "", code)  # '<a hr' + 'ef=…' concatenations
        for m in _SCRIPT_A.finditer(code):
            text = _WS.sub(" ", _TAG_RE.sub("", m.group(2))).strip()
            self.links.append(Link(self.url(m.group(1)), text, True, "script"))
        for m in _SCRIPT_LOC.finditer(code):
            self.links.append(Link(self.url(m.group(1)), "", True, "script-redirect"))

    def _close_anchor(self) -> None:
        if not self.anchors:
            return
        a = self.anchors.pop()
        if not a.url:
            return
        text = _WS.sub(" ", "".join(a.visible + a.hidden)).strip()
        if a.own_reason:
            hidden, reason = True, a.own_reason
        elif "".join(a.visible).strip() or a.has_visible_img:
            hidden, reason = False, ""
        elif a.hidden:
            hidden, reason = True, a.reason
        else:
            hidden, reason = False, ""
        self.links.append(Link(a.url, text, hidden, reason))

    def hidden_text(self) -> str:
        return "\n".join(f"[{r}] " + _WS.sub(" ", "".join(parts)).strip() for r, parts in self.hidden)


_PARSER = etree.HTMLParser(recover=True, no_network=True, remove_comments=True, remove_pis=True,
                           default_doctype=False)


def analyze(doc: str, *, base_url: str = "", max_chars: int = 4 * 1024 * 1024,
            max_elements: int = 2_000_000) -> HtmlResult:
    """Visible text, hidden text and links of an HTML document (already decoded)."""
    doc = doc.replace("\x00", "")
    try:
        root = etree.fromstring(doc, _PARSER) if doc.strip() else None
    except (etree.ParserError, ValueError, etree.XMLSyntaxError):
        root = None
    if root is None:
        return HtmlResult("", "", [], {})
    sheet = StyleSheet()
    for st in root.iter("style"):
        if st.text:
            parse_css(st.text, sheet)
    w = _Walker(sheet, base_url, max_chars, max_elements)
    # the body first: the <head> walk handles title/meta/base; base must be known before links
    for b in root.iter("base"):
        if b.get("href"):
            w.base = w.url(b.get("href", ""))
            break
    w.walk(root)
    text = "\n".join(line.strip() for line in w.visible.text().split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    title_el = root.find(".//title")
    title = (title_el.text or "").strip() if title_el is not None else ""
    return HtmlResult(text, w.hidden_text(), w.links, w.reasons, title, w.truncated or w.visible.full)


def extract_html(data: bytes, *, declared_charset: str | None = None, base_url: str = "",
                 max_chars: int = 4 * 1024 * 1024, max_elements: int = 2_000_000) -> Partial:
    """An HTML body to a `Partial` (charset chosen as in `inspectors.extract.charset`)."""
    dec = decode(data, declared=declared_charset, html=True)
    res = analyze(dec.text, base_url=base_url, max_chars=max_chars, max_elements=max_elements)
    part = Partial(text=res.text, hidden_text=res.hidden_text or None, links=res.links)
    part.meta["charset"] = dec.charset
    part.meta["charset_source"] = dec.source
    if res.title:
        part.meta["title"] = res.title[:200]
    if res.hidden_reasons:
        part.meta["hidden_reasons"] = ",".join(f"{k}:{v}" for k, v in sorted(res.hidden_reasons.items()))
        part.note("hidden_text")
    if dec.anomaly:
        part.note(dec.anomaly)
    if any(lk.hidden for lk in res.links):
        part.note("hidden_link")
    if res.truncated:
        part.flag("text_limit")
    return part
