"""Text normalisation for matching, with an offset map back to the original text.

Two normalised forms are made from a text (and, identically, from every keyword):

* **N1** (``normalize``): a per-character mapping, applied with ``str.translate`` for the
  1:1 part and one compiled regex for the rest. Each character is mapped by, in order:
  strip invisible characters (zero-width, format, control, variation selectors, lone
  surrogates) → NFKC *of that character* (full-width, compatibility forms, mathematical
  letters) → drop combining diacritics (``é`` → ``e``, Zalgo) → casefold → traditional →
  simplified Chinese (OpenCC ``t2s``, character level) → homoglyphs (Cyrillic/Greek/small-caps
  look-alikes of Latin letters). Whitespace becomes one space; runs of spaces collapse.
  Because the mapping is per character, it is the same for a keyword on its own and for that
  keyword inside a text (string-level NFKC or phrase-level OpenCC would not be).
* **N2** (``loosen``, from N1): separators removed where they obfuscate, not where they
  separate words: between CJK characters (or CJK and a letter/digit), inside Latin words
  (``fa.lun``, ``bo-mb``), and inside runs of spaced-out single characters (``b o m b``); then
  leetspeak digits/symbols next to letters (``b0mb``) and ``i``→``l`` (``1``/``l``/``I``
  confusion) are folded.

Every step records length changes sparsely (``OffsetMap``), so a match in N1 or N2 maps back
to the exact span of the original text. ``labels`` names the steps a span needed.
"""

from __future__ import annotations

import bisect
import logging
import re
import unicodedata
from dataclasses import dataclass
from functools import cache

log = logging.getLogger(__name__)

STEPS = ("invisible", "nfkc", "diacritics", "case", "t2s", "homoglyph", "separators", "leet")
"""Normalisation step labels, in the order they are reported."""


@dataclass(slots=True, frozen=True)
class NormOptions:
    """Which optional N1 steps run (invisible-stripping and whitespace folding always run)."""

    nfkc: bool = True
    diacritics: bool = True
    casefold: bool = True
    t2s: bool = True
    homoglyphs: bool = True


DEFAULT = NormOptions()

# --------------------------------------------------------------------------- tables

_INVISIBLE_EXTRA = {
    0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180E, 0x180F, 0x2800,
    0x3164, 0xFFA0,
}
_INVISIBLE_RANGES = ((0xFE00, 0xFE0F), (0xE0000, 0xE007F), (0xE0100, 0xE01EF))
_DIACRITIC_RANGES = ((0x0300, 0x036F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF), (0x20D0, 0x20FF),
                     (0xFE20, 0xFE2F))
_CJK_T2S_RANGES = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x2A6DF),
                   (0x2A700, 0x2EBEF), (0x2F800, 0x2FA1F))
_SCAN_RANGES = ((0x0000, 0xD7FF), (0xE000, 0x323AF), (0xE0000, 0xE01EF))

# Look-alikes of Latin letters (applied after casefold, so lower case only). Digits and
# symbols (leetspeak) are folded only in N2 and only next to letters: see ``loosen``.
HOMOGLYPHS: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ј": "j", "ԁ": "d", "һ": "h", "ӏ": "l",
    "ԛ": "q", "ԝ": "w", "ү": "y", "ɡ": "g", "ɑ": "a", "ı": "i", "ȷ": "j", "ǀ": "l",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
    "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ϲ": "c", "σ": "c", "ϳ": "j",
    # Armenian
    "ս": "u", "օ": "o", "ո": "n", "հ": "h", "զ": "q",
    # small capitals
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j",
    "ᴋ": "k", "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t",
    "ᴜ": "u", "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
    # CJK radicals that NFKC leaves alone
    "⻄": "西", "⻅": "见", "⻆": "角", "⻓": "长", "⻔": "门", "⻗": "雨", "⻘": "青", "⻝": "食",
    "⻢": "马", "⻣": "骨", "⻤": "鬼", "⻥": "鱼", "⻦": "鸟", "⻨": "麦", "⻩": "黄", "⻬": "齐",
    "⻮": "齿", "⻰": "龙", "⻳": "龟",
}

LEET: dict[str, str] = {"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"}
_LEET_TABLE = str.maketrans(LEET)


@cache
def t2s_table() -> dict[str, str]:
    """Traditional → simplified, character level, from OpenCC's ``t2s`` (empty if missing)."""
    try:
        import opencc
    except ImportError:  # pragma: no cover - opencc is a declared dependency
        log.warning("opencc is not installed: traditional→simplified folding is off")
        return {}
    conv = opencc.OpenCC("t2s")
    chars = [chr(cp) for lo, hi in _CJK_T2S_RANGES for cp in range(lo, hi + 1)]
    # one call, characters separated by newlines so that no phrase rule applies
    out = conv.convert("\n".join(chars)).split("\n")
    if len(out) != len(chars):  # pragma: no cover - defensive
        out = [conv.convert(c) for c in chars]
    # a BMP character mapped to a rare astral one would make every text 4 bytes/char wide
    return {c: o for c, o in zip(chars, out)
            if o != c and len(o) == 1 and (ord(o) < 0x10000 or ord(c) >= 0x10000)}


def _in(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(lo <= cp <= hi for lo, hi in ranges)


def _is_invisible(cp: int, cat: str, ch: str) -> bool:
    if cat in ("Cf", "Cs") or cp in _INVISIBLE_EXTRA or _in(cp, _INVISIBLE_RANGES):
        return True
    return cat == "Cc" and not ch.isspace()


_DIACRITIC_SET = frozenset(chr(cp) for lo, hi in _DIACRITIC_RANGES for cp in range(lo, hi + 1))


def _map_char(ch: str, opts: NormOptions, t2s: dict[str, str]) -> tuple[str, frozenset[str]]:
    """The N1 image of one character and the steps that changed it."""
    cp = ord(ch)
    cat = unicodedata.category(ch)
    if _is_invisible(cp, cat, ch):
        return "", frozenset({"invisible"})
    if cp in _DIACRITIC_RANGES_SET:
        return ("", frozenset({"diacritics"})) if opts.diacritics else (ch, frozenset())
    if ch.isspace():
        return " ", frozenset()
    labels: set[str] = set()
    x = ch
    if opts.nfkc:
        y = unicodedata.normalize("NFKC", x)
        if y != x:
            labels.add("nfkc")
            x = y
    if opts.diacritics:
        d = unicodedata.normalize("NFD", x)
        s = "".join(c for c in d if c not in _DIACRITIC_SET)
        if s != d:
            labels.add("diacritics")
            x = unicodedata.normalize("NFC", s)
    if opts.casefold:
        y = x.casefold()
        if y != x:
            labels.add("case")
            x = y
    if t2s:
        y = "".join(t2s.get(c, c) for c in x)
        if y != x:
            labels.add("t2s")
            x = y
    if opts.homoglyphs:
        y = "".join(HOMOGLYPHS.get(c, c) for c in x)
        if y != x:
            labels.add("homoglyph")
            x = y
    # a compatibility form may expand to spaces or other invisible pieces (e.g. U+00A8)
    x = "".join(" " if c.isspace() else c for c in x if c.isspace() or not _is_invisible(
        ord(c), unicodedata.category(c), c))
    return x, frozenset(labels)


_DIACRITIC_RANGES_SET = frozenset(cp for lo, hi in _DIACRITIC_RANGES for cp in range(lo, hi + 1))


def _char_class(cps: list[int]) -> str:
    """A regex character class for sorted code points, compressed into ranges."""
    parts: list[str] = []
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        lo, hi = cps[i], cps[j]
        parts.append(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}")
        i = j + 1
    return "[" + "".join(parts) + "]"


@dataclass(slots=True, frozen=True)
class _Tables:
    translate: dict[int, str]
    expand: dict[str, str]
    edit_re: re.Pattern[str]
    ascii: bytes
    ascii_edit_re: re.Pattern[str]
    labels: dict[str, frozenset[str]]


def tables(opts: NormOptions = DEFAULT) -> _Tables:
    """The per-character tables for ``opts`` (built once per process, ~1 s)."""
    return _build_tables(opts)


@cache
def _build_tables(opts: NormOptions) -> _Tables:
    t2s = t2s_table() if opts.t2s else {}
    translate: dict[int, str] = {}
    expand: dict[str, str] = {}
    labels: dict[str, frozenset[str]] = {}
    for lo, hi in _SCAN_RANGES:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            if cp < 0x80 and ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == " "):
                continue
            out, lab = _map_char(ch, opts, t2s)
            if lab:
                labels[ch] = lab
            if out == ch:
                continue
            if len(out) == 1:
                translate[cp] = out
            else:
                expand[ch] = out
    # lone surrogates cannot be encoded: delete them (they only appear in broken input)
    for cp in range(0xD800, 0xE000):
        expand[chr(cp)] = ""
        labels[chr(cp)] = frozenset({"invisible"})
    cls = _char_class(sorted(ord(c) for c in expand))
    edit_re = re.compile(f"{cls}| {{2,}}")
    ascii_table = bytes(ord(translate.get(i, chr(i))) if len(translate.get(i, chr(i))) == 1
                        and ord(translate.get(i, chr(i))) < 128 else i for i in range(256))
    ascii_cls = _char_class(sorted(ord(c) for c in expand if ord(c) < 128))
    ascii_edit_re = re.compile(f"{ascii_cls}| {{2,}}")
    return _Tables(translate, expand, edit_re, ascii_table, ascii_edit_re, labels)


# --------------------------------------------------------------------------- offset maps


class OffsetMap:
    """Maps positions of a derived string back to its source, from a sparse list of edits.

    An edit replaced ``src[s:e]`` by ``n`` characters starting at output position ``o``.
    Outside edits the two strings run in parallel.
    """

    __slots__ = ("_e", "_n", "_o", "_s")

    def __init__(self, edits: list[tuple[int, int, int, int]] | None = None) -> None:
        edits = edits or []
        self._o = [x[0] for x in edits]
        self._s = [x[1] for x in edits]
        self._e = [x[2] for x in edits]
        self._n = [x[3] for x in edits]

    def __len__(self) -> int:
        return len(self._o)

    def start(self, p: int) -> int:
        """Source position of the character at output position ``p``."""
        i = bisect.bisect_right(self._o, p) - 1
        if i < 0:
            return p
        o, s, e, n = self._o[i], self._s[i], self._e[i], self._n[i]
        if p < o + n:
            return s
        return e + (p - o - n)

    def end(self, p: int) -> int:
        """Source position just after the character ending at output position ``p`` (exclusive)."""
        if p <= 0:
            return 0
        i = bisect.bisect_right(self._o, p - 1) - 1
        if i < 0:
            return p
        o, e, n = self._o[i], self._e[i], self._n[i]
        if p - 1 < o + n:
            return e
        return e + (p - o - n)

    def removed_within(self, a: int, b: int) -> bool:
        """Whether an edit that shortened the text lies strictly inside output span [a, b)."""
        i = bisect.bisect_right(self._o, a)
        while i < len(self._o) and self._o[i] < b:
            if self._e[i] - self._s[i] > self._n[i]:
                return True
            i += 1
        return False


def _apply(src: str, rx: re.Pattern[str], repl) -> tuple[str, OffsetMap]:
    """Apply ``repl(match) -> str`` at every match of ``rx``; return text and offset map."""
    pieces: list[str] = []
    edits: list[tuple[int, int, int, int]] = []
    last = 0
    out_len = 0
    for m in rx.finditer(src):
        s, e = m.span()
        r = repl(m)
        if s > last:
            pieces.append(src[last:s])
            out_len += s - last
        edits.append((out_len, s, e, len(r)))
        if r:
            pieces.append(r)
            out_len += len(r)
        last = e
    if not edits:
        return src, OffsetMap()
    pieces.append(src[last:])
    return "".join(pieces), OffsetMap(edits)


@dataclass(slots=True)
class Normalized:
    """A normalised text and the map from its positions to the source it was made from."""

    text: str
    map: OffsetMap

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Source span of the output span [start, end)."""
        if end <= start:
            s = self.map.start(start)
            return s, s
        return self.map.start(start), self.map.end(end)


def normalize(text: str, opts: NormOptions = DEFAULT) -> Normalized:
    """N1: per-character folding (see the module docstring), with the map to ``text``."""
    t = tables(opts)
    if text.isascii():
        mapped = text.encode("ascii").translate(t.ascii).decode("ascii")
        rx = t.ascii_edit_re
    else:
        mapped = text.translate(t.translate)
        rx = t.edit_re
    expand = t.expand

    def repl(m: re.Match[str]) -> str:
        g = m.group()
        return " " if g[0] == " " else expand[g]

    out, omap = _apply(mapped, rx, repl)
    return Normalized(out, omap)


# --------------------------------------------------------------------------- N2

_CJK = ("\u2e80-\u2fdf\u3005\u3007\u3021-\u3029\u3038-\u303b\u3040-\u30ff\u3100-\u312f"
        "\u31a0-\u31bf\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f")
CJK_RE = re.compile(f"[{_CJK}]")
_W = r"[^\W_]"  # a letter or digit (any script)
_SEP = r"[\W_]"  # anything else
_L = r"[^\W\d_]"  # a letter
_T = r"(?:[^\W_]|[@$])"  # a spaced-out token
_TS = r"(?:[^\w@$]|_)"  # a separator between tokens
_P = r"(?:[^\w\s@$]|_)"  # punctuation or symbol, not a space (nor leetspeak @ $)
# Every alternative starts by consuming one separator, so ``re`` skips ahead on a charset;
# the look-behinds then look at the characters before that separator.
_LOOSEN_RE = re.compile(
    rf"{_SEP}(?:"
    # next to CJK: 法 轮-功, VPN 代理
    rf"(?<=[{_CJK}]{_SEP}){_SEP}{{0,7}}(?={_W})"
    rf"|(?<={_W}{_SEP}){_SEP}{{0,7}}(?=[{_CJK}])"
    # punctuation inside a word: fa.lun, bo-mb, b*o*m*b, d1/57 (a leetspeak digit after it)
    rf"|(?<={_L}{_P}){_P}{{0,2}}(?={_L}|[013457])"
    # between spaced-out single characters: b o m b
    # (a CJK neighbour counts as a boundary: 度V P N代理)
    # (tokens include the leetspeak symbols: c.@.r.d)
    rf"|(?:(?<=^{_T}{_TS})|(?<=[\W_{_CJK}]{_T}{_TS})){_TS}{{0,4}}(?={_T}(?![^\W_{_CJK}]))"
    r")"
)
_LEET_RE = re.compile(r"[013457@$]+")


def _leet(m: re.Match[str]) -> str:
    """A run of leetspeak characters next to a letter becomes letters (b0mb, n37); 2010 stays."""
    s, e = m.span()
    text = m.string
    if (s > 0 and text[s - 1].isalpha()) or (e < len(text) and text[e].isalpha()):
        return m.group().translate(_LEET_TABLE)
    return m.group()
LEET_CHARS = frozenset(LEET)


def loosen(n1: str) -> Normalized:
    """N2 from N1 text: obfuscating separators removed, leetspeak folded (map is to N1)."""
    if any(c in n1 for c in LEET_CHARS):  # before (t-0r → t-or) and after (b.0.m.b → b0mb)
        n1 = _LEET_RE.sub(_leet, n1)
    spans = [m.span() for m in _LOOSEN_RE.finditer(n1)]
    if spans:
        pieces: list[str] = []
        edits: list[tuple[int, int, int, int]] = []
        last = 0
        removed = 0
        for s, e in spans:
            pieces.append(n1[last:s])
            edits.append((s - removed, s, e, 0))
            removed += e - s
            last = e
        pieces.append(n1[last:])
        out, omap = "".join(pieces), OffsetMap(edits)
    else:
        out, omap = n1, OffsetMap()
    if any(c in out for c in LEET_CHARS):
        out = _LEET_RE.sub(_leet, out)
    out = out.replace("i", "l")
    return Normalized(out, omap)


# --------------------------------------------------------------------------- keywords and labels


_SQUEEZE_RE = re.compile(r"(?<=[^\W_])[\W_]+(?=[^\W_])")


def normalize_term(term: str, opts: NormOptions = DEFAULT) -> tuple[str, str, str]:
    """The N1, N2 and squeezed N2 forms of a keyword (leading/trailing spaces trimmed).

    The squeezed N2 form also loses the separators *between its own words* (``falun gong`` →
    ``falungong``), so it matches ``falun-gong`` and ``ＦＡＬＵＮ－ＧＯＮＧ``; the text's N2 keeps
    spaces between words, so ``the rapist`` never becomes ``therapist``. Such an N2 form
    is shorter than the N2 form; the matcher then asks for word boundaries at its edges.
    """
    n1 = normalize(term, opts).text.strip(" ")
    n2 = loosen(n1).text.strip(" ")
    return n1, n2, _SQUEEZE_RE.sub("", n2)


def char_labels(span: str, opts: NormOptions = DEFAULT) -> set[str]:
    """The N1 steps that changed some character of ``span``."""
    lab = tables(opts).labels
    out: set[str] = set()
    for c in span:
        got = lab.get(c)
        if got:
            out |= got
    return out


_ODD_SPACE_RE = re.compile(r"\s{2,}|[^\S ]")


def labels(original: str, keyword: str, *, n1_span: str = "", loosened: bool = False,
           opts: NormOptions = DEFAULT) -> tuple[str, ...]:
    """Which steps made ``original`` (a span of the text) match ``keyword``, in ``STEPS`` order.

    Steps the keyword itself needed (an upper-case or traditional keyword) are not counted;
    ``loosened`` marks a match found only in N2 (separators removed inside the span).
    """
    if original == keyword:
        return ()
    got = char_labels(original, opts) - char_labels(keyword, opts)
    if _ODD_SPACE_RE.search(original) and not _ODD_SPACE_RE.search(keyword):
        got.add("separators")
    if loosened:
        got.add("separators")
    if n1_span and LEET_CHARS.intersection(n1_span) and not LEET_CHARS.intersection(keyword):
        got.add("leet")
    if not got and original.casefold() != original and original.casefold() == keyword.casefold():
        got.add("case")
    return tuple(s for s in STEPS if s in got)
