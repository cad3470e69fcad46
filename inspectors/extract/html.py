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
from html import unescape as html_unescape
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser, LexborNode

from appliance.model import Link
from inspectors.extract.charset import decode
from inspectors.extract.deobfuscate import deobfuscate, js_unescape_literal
from inspectors.extract.htmlsource import cap_depth, raw_anchors
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
_SCRIPT_LOC = re.compile(r"(?:window\.|document\.|top\.|self\.)?location(?:\.href)?\s*=\s*[\"']([^\"']{1,2000})[\"']")
_SCRIPT_EL = re.compile(r"<script\b[^>]{0,500}>(.*?)</script", re.I | re.S)
_TAG_RE = re.compile(r"<[^>]{0,500}>")
_REFRESH = re.compile(r"url\s*=\s*['\"]?([^'\"\s;]+)", re.I)
_MARKUP = re.compile(r"<[a-zA-Z!/]")
_SCRIPT_HINT = re.compile(r"write|HTML|location|eval|open\s*\(|<a|\\x3c|\\u003c|%3c|fromCharCode|atob|unescape", re.I)
_TEXT = 2  # lexbor's tag ids of text and comment nodes
_COMMENT = 4

_LEAF = frozenset(("meta", "img", "base"))
_RAW_HIDDEN = frozenset(("noscript", "noframes", "noembed", "iframe"))
_SPECIAL = frozenset((*_SKIP, *_LEAF, *_RAW_HIDDEN, "frame"))
_MAX_SCRIPT = 1_000_000
_MAX_SWEEP = 8 << 20
_MAX_FRAGMENT_BYTES = 2 << 20
_SCRIPT_STEPS = 400_000
"""Deobfuscator steps (tokens read and evaluated) per page, all its scripts together."""
_SCRIPT_BYTES = 4 << 20
"""Script text analysed per page (each script at most ``_MAX_SCRIPT``)."""
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


def _style_of(attrs: dict[str, str | None], tag: str, sheet: StyleSheet,
              ancestors: list[tuple[str, str, frozenset[str]]],
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
    inline = attrs.get("style")
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


def _apply(style: dict[str, str], parent: _State, attrs: dict[str, str | None]) -> _State:
    hidden = parent.hidden
    vis = parent.visibility_hidden
    font_px = parent.font_px
    color = parent.color
    bg = parent.bg
    if not style:
        if not hidden and "hidden" in attrs:
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
        hidden = _box_hidden(style, font_px, attrs)
    return _State(hidden, vis, font_px, color, bg)


def _box_hidden(style: dict[str, str], font_px: float, attrs: dict[str, str | None]) -> str:
    g = style.get
    if g("display") == "none" or "hidden" in attrs:
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


_ROOT_STATE = _State("", False, 16.0, (0, 0, 0), (255, 255, 255))


class _Walker:
    def __init__(self, tree: LexborHTMLParser, sheet: StyleSheet, base: str, max_chars: int,
                 max_elements: int) -> None:
        self.tree = tree
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
        self.ancestors: list[tuple[str, str, frozenset[str]]] = []
        self.depth = 0
        self.fragment_bytes = 0
        self.max_fragment_bytes = _MAX_FRAGMENT_BYTES
        self.script_steps = _SCRIPT_STEPS
        self.script_bytes = _SCRIPT_BYTES
        self.script_exhausted = False
        self.anchors_seen = 0
        self.scripts_seen: set[int] = set()

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

    def walk(self, root: LexborNode, st: _State | None = None) -> None:
        """Walk ``root``'s subtree in document order (iteratively) with ``st`` as its parent state."""
        st = st or _ROOT_STATE
        ancestors = self.ancestors
        # (node, parent state, phase): phase 1 closes an element
        stack: list[tuple[LexborNode, _State, int]] = [(root, st, 0)]
        while stack:
            el, pst, phase = stack.pop()
            if phase == 1:
                tag = el.tag or ""
                ancestors.pop()
                if tag == "a" or tag == "area":
                    self._close_anchor()
                if tag in _BLOCK:
                    self.block()
                continue
            tid = el.tag_id
            if tid == _TEXT:
                self.emit(el.text_content or "", _text_reason(pst))
                continue
            if tid == _COMMENT:
                self._comment(el.comment_content or "", pst)
                continue
            tag = el.tag
            if not tag or tag[0] in "-#":  # document, doctype and other non-elements
                self._push_children(stack, el, pst)
                continue
            self.elements += 1
            if self.elements > self.max_elements:
                self.truncated = True
                return
            attrs = el.attributes
            eid = attrs.get("id") or ""
            cls = attrs.get("class")
            classes = frozenset(cls.split()) if cls else frozenset()
            est = _apply(_style_of(attrs, tag, self.sheet, ancestors, eid, classes), pst, attrs)
            if tag in _SPECIAL:
                if tag == "head":
                    self._head(el)
                    continue
                self._special(el, tag, est, attrs)
                if tag in _SKIP or tag in _LEAF:
                    continue
                if tag in _RAW_HIDDEN:  # content a browser keeps as raw text and does not render
                    self.fragment(el.text(deep=True), tag, est)
                    continue
            if tag == "a" or tag == "area":
                href = attrs.get("href")
                self.anchors_seen += 1
                self.anchors.append(_Anchor(self.url(href) if href else "", [], [], "", _text_reason(est)))
            if tag in _BLOCK:
                self.block()
            ancestors.append((tag, eid, classes))
            stack.append((el, pst, 1))
            self._push_children(stack, el, est)

    @staticmethod
    def _push_children(stack: list[tuple[LexborNode, _State, int]], el: LexborNode, st: _State) -> None:
        c = el.last_child
        while c is not None:
            stack.append((c, st, 0))
            c = c.prev

    def fragment(self, markup: str, reason: str, st: _State) -> None:
        """Parse ``markup`` (script output, a comment, raw text a browser does not render) as HTML
        and walk it as hidden by ``reason``, within the page's fragment budget."""
        if not markup or ("<" not in markup and reason in ("comment", "template")):
            return
        if self.depth >= 3 or self.fragment_bytes + len(markup) > self.max_fragment_bytes:
            self.truncated = True
            return
        self.fragment_bytes += len(markup)
        if not _MARKUP.search(markup):  # plain text: no tree to build
            hst = _State(st.hidden or reason, st.visibility_hidden, st.font_px, st.color, st.bg)
            self.emit(html_unescape(markup) if "&" in markup else markup, _text_reason(hst))
            self.block()
            return
        holder = self.tree.create_node("div")  # parsed in a detached element of the page's own tree
        holder.inner_html = markup
        self.depth += 1
        try:
            if "<style" in markup or "<STYLE" in markup:
                for node in holder.css("style"):
                    parse_css(node.text(deep=True), self.sheet)
            hst = _State(st.hidden or reason, st.visibility_hidden, st.font_px, st.color, st.bg)
            c = holder.first_child
            while c is not None:
                nxt = c.next
                self.walk(c, hst)
                c = nxt
        finally:
            self.depth -= 1

    def _comment(self, text: str, st: _State) -> None:
        if "<" in text and _MARKUP.search(text):
            self.fragment(text, "comment", st)

    def _head(self, head: LexborNode) -> None:
        for el in head.traverse(include_text=False):
            tag = el.tag
            if tag == "title":
                t = el.text(deep=True)
                if t:
                    self.emit(t, "")
                    self.block()
            elif tag in ("meta", "base", "script", "noscript", "template"):
                attrs = el.attributes
                self._special(el, tag, _ROOT_STATE, attrs)
                if tag == "noscript":
                    self.fragment(el.text(deep=True), "noscript", _ROOT_STATE)
            elif tag == "-comment":
                self._comment(el.comment_content or "", _ROOT_STATE)

    def _special(self, el: LexborNode, tag: str, st: _State, attrs: dict[str, str | None]) -> None:
        if tag == "base" and attrs.get("href"):
            self.base = self.url(attrs.get("href") or "")
        elif tag == "meta":
            name = (attrs.get("name") or "").lower()
            equiv = (attrs.get("http-equiv") or "").lower()
            content = attrs.get("content") or ""
            if name in ("keywords", "description") and content.strip():
                self.emit(content, "meta")
                self.block()
            elif equiv == "refresh":
                m = _REFRESH.search(content)
                if m:
                    self.links.append(Link(self.url(m.group(1)), "", True, "meta-refresh"))
        elif tag == "img":
            alt = attrs.get("alt")
            if alt and self.anchors:
                reason = _text_reason(st)
                for a in self.anchors:
                    (a.hidden if reason else a.visible).append(alt)
                    if not reason:
                        a.has_visible_img = True
        elif tag in ("iframe", "frame"):
            src = attrs.get("src")
            if src:
                reason = _text_reason(st)
                w, h = (attrs.get("width") or "").strip(), (attrs.get("height") or "").strip()
                if not reason and (w in ("0", "0px", "1", "1px") or h in ("0", "0px", "1", "1px")):
                    reason = "zero-size-iframe"
                self.links.append(Link(self.url(src), "", bool(reason), reason))
        elif tag == "script":
            typ = (attrs.get("type") or "").lower()
            if typ and "javascript" not in typ and "ecmascript" not in typ and typ != "module":
                return
            self.script(el.text(deep=True), st)
        elif tag == "template":
            for frag in el.template_fragments():
                self.fragment(frag.html or "", "template", st)

    def script(self, code: str, st: _State) -> None:
        """Links and markup an inline script writes (see `inspectors.extract.deobfuscate`)."""
        self.scripts_seen.add(hash(code))
        if not code or not _SCRIPT_HINT.search(code):
            return
        if self.script_bytes <= 0 or self.script_steps <= 0:  # the page's script budget is spent
            self.script_exhausted = True
            return
        code = code[:min(_MAX_SCRIPT, self.script_bytes)]
        self.script_bytes -= len(code)
        rec = deobfuscate(code, max_steps=self.script_steps, max_bytes=self.max_fragment_bytes)
        self.script_steps -= rec.steps
        if rec.exhausted:
            self.script_exhausted = True
        for markup in rec.markup:
            self.fragment(markup, "script", st)
        for url in rec.redirects:
            self.links.append(Link(self.url(url), "", True, "script-redirect"))
        self._script_links(code)

    def _script_links(self, code: str) -> None:
        """The regex fallback for sink forms the evaluator does not know: anchors and location
        assignments in the script text once escapes and literal concatenations are undone."""
        if "<a" not in code and "<A" not in code and "\\x3c" not in code.lower() and "\\u003c" not in code.lower() \
                and "location" not in code:
            return
        code = js_unescape_literal(code[:_MAX_SCRIPT].replace("\\/", "/"))
        code = re.sub(r"[\"']\s*\+\s*[\"']", "", code)  # '<a hr' + 'ef=…' concatenations
        known = {lk.url for lk in self.links}
        for href, inner in raw_anchors(code):
            url = self.url(href.strip("\"'\\"))
            if url not in known:
                text = _WS.sub(" ", _TAG_RE.sub("", inner)).strip()
                self.links.append(Link(url, text, True, "script"))
        for m in _SCRIPT_LOC.finditer(code):
            url = self.url(m.group(1))
            if url not in known:
                self.links.append(Link(url, "", True, "script-redirect"))

    def sweep(self, doc: str) -> None:
        """Anchors and scripts in the source that the tree does not hold (markup a browser drops:
        inside a ``<frameset>``, ``<title>``, ``<textarea>``, attribute values…), as hidden with
        reason ``unrendered``."""
        if doc.count("<script", 0, _MAX_SWEEP) + doc.count("<SCRIPT", 0, _MAX_SWEEP) > len(self.scripts_seen):
            unrendered = _State("unrendered", False, 16.0, (0, 0, 0), (255, 255, 255))
            for m in _SCRIPT_EL.finditer(doc, 0, _MAX_SWEEP):
                if hash(m.group(1)) not in self.scripts_seen:
                    self.script(m.group(1), unrendered)
        if doc.count("<a", 0, _MAX_SWEEP) + doc.count("<A", 0, _MAX_SWEEP) <= self.anchors_seen:
            return
        known = {lk.url for lk in self.links}
        for href, inner in raw_anchors(doc[:_MAX_SWEEP]):
            url = self.url(href)
            if url not in known:
                known.add(url)
                text = _WS.sub(" ", _TAG_RE.sub("", inner)).strip()
                self.links.append(Link(url, text, True, "unrendered"))

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


def analyze(doc: str, *, base_url: str = "", max_chars: int = 4 * 1024 * 1024,
            max_elements: int = 2_000_000) -> HtmlResult:
    """Visible text, hidden text and links of an HTML document (already decoded)."""
    doc = doc.replace("\x00", "")
    if "\r" in doc:  # as the tokenizer does, so the sweep sees the text the tree holds
        doc = doc.replace("\r\n", "\n").replace("\r", "\n")
    if not doc.strip():
        return HtmlResult("", "", [], {})
    doc, too_deep = cap_depth(doc)
    tree = LexborHTMLParser(doc, scripting=True)
    root = tree.root
    if root is None:
        return HtmlResult("", "", [], {})
    sheet = StyleSheet()
    for st in tree.tags("style"):
        parse_css(st.text(deep=True), sheet)
    w = _Walker(tree, sheet, base_url, max_chars, max_elements)
    # base must be known before links
    if "<base" in doc or "<BASE" in doc:
        base = tree.css_first("base[href]")
        if base is not None:
            w.base = w.url(base.attributes.get("href") or "")
    w.walk(root)
    w.sweep(doc)
    text = "\n".join(line.strip() for line in w.visible.text().split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text).strip()
    titles = tree.tags("title")
    title = _WS.sub(" ", titles[0].text(deep=True)).strip() if titles else ""
    links = list(dict.fromkeys(w.links))
    return HtmlResult(text, w.hidden_text(), links, w.reasons, title,
                      w.truncated or w.visible.full or w.script_exhausted or too_deep)


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
