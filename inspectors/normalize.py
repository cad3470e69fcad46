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
from typing import Any

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
    """Traditional → simplified, character level, from OpenCC's ``t2s`` (empty if missing).
    The tables use `LazyT2s`, which gives the same entries one character at a time."""
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


class LazyT2s:
    """Traditional → simplified per character, asking OpenCC only for the characters looked up
    (`t2s_table` converts all 100k CJK code points at once, ~0.1 s); same entries."""

    def __init__(self) -> None:
        self._conv: object | None = None
        self._memo: dict[str, str] = {}

    def __bool__(self) -> bool:
        return True

    def get(self, c: str, default: str | None = None) -> str | None:
        """The simplified form of ``c`` (``default`` when it has none)."""
        got = self._memo.get(c)
        if got is None:
            got = self._memo[c] = self._one(c)
        return default if got == c else got

    def _one(self, c: str) -> str:
        cp = ord(c)
        if not _in(cp, _CJK_T2S_RANGES):
            return c
        if self._conv is None:
            try:
                import opencc
            except ImportError:  # pragma: no cover - opencc is a declared dependency
                self._conv = False
                return c
            self._conv = opencc.OpenCC("t2s")
        if self._conv is False:
            return c
        o = self._conv.convert(c)  # type: ignore[attr-defined]
        return o if o != c and len(o) == 1 and (ord(o) < 0x10000 or cp >= 0x10000) else c


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


_SURROGATES = (0xD800, 0xDFFF)


def _entry(cp: int, opts: NormOptions, t2s: dict[str, str]) -> tuple[str, frozenset[str]]:
    """The N1 image of code point ``cp`` and its labels, as the tables hold them: characters
    outside ``_SCAN_RANGES`` are left alone, lone surrogates deleted."""
    if _SURROGATES[0] <= cp <= _SURROGATES[1]:
        return "", frozenset({"invisible"})
    ch = chr(cp)
    if not _in(cp, _SCAN_RANGES) or (cp < 0x80 and ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == " ")):
        return ch, frozenset()
    return _map_char(ch, opts, t2s)


class _LazyTranslate(dict):  # type: ignore[type-arg]
    """``str.translate`` table (code point → N1 character) filled on first sight of a character.

    A character whose image is not exactly one character maps to itself here and is recorded
    in ``expand`` (the edit regex replaces it). Equal to mapping every character up front
    (what the tables did before, ~1 s per process): the entry is the same function's value.
    """

    def __init__(self, owner: _Tables) -> None:
        super().__init__()
        self.owner = owner

    def __missing__(self, cp: int) -> str:
        return self.owner.learn(cp)


class _LazyLabels(dict):  # type: ignore[type-arg]
    """character → the N1 steps that change it (empty set: none), filled on first use."""

    def __init__(self, owner: _Tables) -> None:
        super().__init__()
        self.owner = owner

    def __missing__(self, ch: str) -> frozenset[str]:
        self.owner.learn(ord(ch))
        return dict.__getitem__(self, ch)  # type: ignore[no-any-return]


class _Tables:
    """The per-character N1 tables for one `NormOptions`, built lazily: a character is mapped
    (``_map_char``, a few µs) the first time a text or keyword contains it, never all of
    Unicode at start-up. ASCII is mapped at construction (128 characters)."""

    def __init__(self, opts: NormOptions) -> None:
        self.opts = opts
        self._t2s: LazyT2s | dict[str, str] = LazyT2s() if opts.t2s else {}
        self.translate = _LazyTranslate(self)
        self.labels = _LazyLabels(self)
        self.expand: dict[str, str] = {chr(cp): "" for cp in range(_SURROGATES[0], _SURROGATES[1] + 1)}
        self._rx: tuple[int, re.Pattern[str]] | None = None
        self._expand_bmp: Any = None
        for cp in range(128):
            self.learn(cp)
        ascii_exp = sorted(ord(c) for c in self.expand if ord(c) < 128)
        self.ascii_expand = bytes(ascii_exp)
        self.ascii = bytes(ord(self.translate[i]) if i < 128 and ord(self.translate[i]) < 128 else i
                           for i in range(256))
        self.ascii_edit_re = re.compile(f"{_char_class(ascii_exp)}| {{2,}}" if ascii_exp else " {2,}")

    def learn(self, cp: int) -> str:
        """Map ``cp`` and record it; return what ``translate`` holds for it."""
        ch = chr(cp)
        out, lab = _entry(cp, self.opts, self._t2s)  # type: ignore[arg-type]
        dict.__setitem__(self.labels, ch, lab)
        if len(out) == 1:
            dict.__setitem__(self.translate, cp, out)
            return out
        self.expand[ch] = out
        if cp < 0x10000 and self._expand_bmp is not None:
            self._expand_bmp[cp] = 1
        dict.__setitem__(self.translate, cp, ch)
        return ch

    def expands_in(self, mapped: str) -> bool:
        """Whether translated text ``mapped`` holds a character that expands or vanishes."""
        import numpy as np

        if self._expand_bmp is None:
            self._expand_bmp = np.zeros(0x10000, dtype=np.uint8)
            self._expand_bmp[np.array([ord(c) for c in self.expand if ord(c) < 0x10000], dtype=np.int64)] = 1
        cps = np.frombuffer(mapped.encode("utf-32-le", "surrogatepass"), dtype="<u4")
        if self._expand_bmp[np.minimum(cps, 0xFFFF)][cps < 0x10000].any():
            return True
        return any(chr(cp) in self.expand for cp in cps[cps >= 0x10000].tolist())

    @property
    def edit_re(self) -> re.Pattern[str]:
        """Every character known to expand (or vanish), and runs of spaces."""
        got = self._rx
        if got is None or got[0] != len(self.expand):
            n = len(self.expand)
            cls = _char_class(sorted(ord(c) for c in self.expand))
            got = self._rx = (n, re.compile(f"{cls}| {{2,}}"))
        return got[1]


def tables(opts: NormOptions = DEFAULT) -> _Tables:
    """The per-character tables for ``opts`` (one per process and options, filled lazily)."""
    return _build_tables(opts)


@cache
def _build_tables(opts: NormOptions) -> _Tables:
    return _Tables(opts)


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
    vector = len(text) >= VECTOR_MIN_CHARS
    if text.isascii():
        raw = text.encode("ascii").translate(t.ascii)
        mapped = raw.decode("ascii")
        if vector and len(raw.translate(None, t.ascii_expand)) == len(raw):  # nothing expands or vanishes
            return _collapse_spaces(mapped, raw)
        rx = t.ascii_edit_re
    else:
        mapped = text.translate(t.translate)  # learns the characters it has not seen yet
        if vector and not t.expands_in(mapped):
            return _collapse_spaces(mapped, None)
        rx = t.edit_re
    expand = t.expand

    def repl(m: re.Match[str]) -> str:
        g = m.group()
        return " " if g[0] == " " else expand[g]

    out, omap = _apply(mapped, rx, repl)
    return Normalized(out, omap)


def _collapse_spaces(mapped: str, raw: bytes | None) -> Normalized:
    """``_apply(mapped, re.compile(" {2,}"), " ")`` for a text with nothing else to edit: the
    runs of spaces found and removed with numpy (``raw``: ``mapped`` as ASCII bytes, if it is)."""
    if "  " not in mapped:
        return Normalized(mapped, OffsetMap())
    import numpy as np

    if raw is not None:
        cps = np.frombuffer(raw, dtype=np.uint8)
    else:
        cps = np.frombuffer(mapped.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    sp = cps == 32
    drop = np.zeros(len(cps), dtype=bool)
    drop[1:] = sp[1:] & sp[:-1]  # every space after the first of a run goes
    idx = np.flatnonzero(drop)
    brk = np.flatnonzero(np.diff(idx) != 1)
    first = idx[np.concatenate(([0], brk + 1))]  # first dropped space of each run
    last = idx[np.concatenate((brk, [len(idx) - 1]))]
    src_s = first - 1
    src_e = last + 1
    removed_before = np.concatenate(([0], np.cumsum(src_e - src_s - 1)[:-1]))
    out_o = src_s - removed_before
    kept = cps[~drop].tobytes()
    out = kept.decode("ascii") if raw is not None else kept.decode("utf-32-le", "surrogatepass")
    omap = OffsetMap()
    omap._o, omap._s, omap._e = out_o.tolist(), src_s.tolist(), src_e.tolist()
    omap._n = [1] * len(omap._o)
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


# Character classes of `loosen`'s vectorised passes (bits of one byte per character).
_C_W, _C_D, _C_S, _C_A, _C_K, _C_ALPHA, _C_LEET = 1, 2, 4, 8, 16, 32, 64
r"""letter or digit ([^\W_]), decimal digit (\d), space (\s), ``@``/``$``, CJK (``_CJK``),
``str.isalpha``, leetspeak character (``LEET``)"""
_CLASS_RES = ((_C_W, re.compile(r"[^\W_]")), (_C_D, re.compile(r"\d")), (_C_S, re.compile(r"\s")),
              (_C_A, re.compile(r"[@$]")), (_C_K, CJK_RE), (_C_LEET, re.compile(r"[013457@$]")))
_WINDOW_GAP = 12
VECTOR_MIN_CHARS = 2048
"""Texts at least this long are normalised and loosened with numpy; shorter ones with the
regexes alone (the same result; no per-call array overhead, no numpy import for short texts)."""
"""A `_LOOSEN_RE` match and its look-ahead end within 10 characters of where it starts."""


def _char_class_bits(ch: str) -> int:
    return sum(bit for bit, rx in _CLASS_RES if rx.match(ch)) | (_C_ALPHA if ch.isalpha() else 0)


@cache
def _bmp_classes() -> Any:
    """Class bits of every BMP character (numpy uint8[65536]), from the very regexes above."""
    import numpy as np

    table = np.zeros(0x10000, dtype=np.uint8)
    chars = "".join(map(chr, range(0x10000)))
    for bit, rx in _CLASS_RES:
        hits = [m.start() for m in rx.finditer(chars)]
        table[np.array(hits, dtype=np.int64)] |= bit
    table[np.array([i for i, c in enumerate(chars) if c.isalpha()], dtype=np.int64)] |= _C_ALPHA
    return table


def _classes(text: str) -> tuple[Any, Any]:
    """(code points, class bits) of ``text`` as numpy arrays (uint8 code points for ASCII)."""
    import numpy as np

    table = _bmp_classes()
    if text.isascii():
        cps = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        return cps, table[cps]
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    cls = table[np.minimum(cps, 0xFFFF)]
    for i in np.flatnonzero(cps > 0xFFFF).tolist():
        cls[i] = _char_class_bits(text[i])
    return cps, cls


_LEET_CP = None


def _fold_leet(text: str, cps: Any, cls: Any) -> tuple[str, Any, Any]:
    """``_LEET_RE.sub(_leet, text)`` (a run of leetspeak characters with a letter before or after
    it becomes letters) on the class arrays; returns the text and its updated arrays."""
    import numpy as np

    global _LEET_CP
    idx = np.flatnonzero(cls & _C_LEET)
    if not len(idx):
        return text, cps, cls
    n = len(cls)
    brk = np.flatnonzero(np.diff(idx) != 1)
    starts = idx[np.concatenate(([0], brk + 1))]
    ends = idx[np.concatenate((brk, [len(idx) - 1]))]  # inclusive
    alpha_before = (cls[np.maximum(starts - 1, 0)] & _C_ALPHA).astype(bool) & (starts > 0)
    alpha_after = (cls[np.minimum(ends + 1, n - 1)] & _C_ALPHA).astype(bool) & (ends < n - 1)
    fold = alpha_before | alpha_after
    if not fold.any():
        return text, cps, cls
    where = idx[np.repeat(fold, ends - starts + 1)]
    if _LEET_CP is None:
        lut = np.arange(128, dtype=np.uint32)
        for k, v in LEET.items():
            lut[ord(k)] = ord(v)
        _LEET_CP = lut
    cps = cps.copy()
    cps[where] = _LEET_CP[cps[where]].astype(cps.dtype)
    cls = cls.copy()
    cls[where] = _bmp_classes()[cps[where]]
    if cps.dtype == np.uint8:
        return cps.tobytes().decode("ascii"), cps, cls
    return cps.tobytes().decode("utf-32-le", "surrogatepass"), cps, cls


def loosen_spans(n1: str, cls: Any = None) -> list[tuple[int, int]]:
    """``[m.span() for m in _LOOSEN_RE.finditer(n1)]``, without running the regex over all of
    ``n1``: every match starts at a separator whose neighbourhood has a shape numpy finds in one
    vectorised pass over per-character class bits (next to or up to 9 before a CJK character;
    a letter, punctuation and a letter or leetspeak digit; a single-character token followed by
    a separator). The regex then runs only on windows around those candidates (with ``pos`` and
    ``endpos``, so its look-behinds see the real text); everything else is not looked at.
    ``cls``: ``_classes(n1)[1]`` if the caller has it."""
    import numpy as np

    n = len(n1)
    if n < 2:
        return [m.span() for m in _LOOSEN_RE.finditer(n1)]
    if cls is None:
        cls = _classes(n1)[1]
    def gather(seeds: Any, k: int) -> tuple[Any, Any]:  # class bits at seeds + k, and "inside"
        at = seeds + k
        inside = at < n
        return cls[np.minimum(at, n - 1)], inside

    def is_(c: Any, inside: Any, want: int, bits: int) -> Any:  # (c & bits) == want, inside only
        return ((c & bits) == want) & inside

    wa = _C_W | _C_A
    # punctuation inside a word: (?<=L P) P{0,2} (?=L | leet)
    p3 = np.flatnonzero(((cls[1:] & (wa | _C_S)) == 0) & ((cls[:-1] & (_C_W | _C_D)) == _C_W)) + 1
    r: Any = None
    for k in (3, 2, 1):
        c, inside = gather(p3, k)
        lx = (is_(c, inside, _C_W, _C_W | _C_D) | is_(c, inside, _C_LEET, _C_LEET | _C_A))
        r = lx if r is None else lx | (is_(c, inside, 0, wa | _C_S) & r)
    seeds = [p3[r]]
    # spaced-out tokens: (?<=(^ | boundary) T TS) TS{0,4} (?=T (boundary | end))
    nb = ((cls & _C_W) == 0) | ((cls & _C_K) != 0)
    p4 = np.flatnonzero(((cls[2:] & wa) == 0) & ((cls[1:-1] & wa) != 0) & nb[:-2]) + 2
    if (cls[0] & wa) and not (cls[1] & wa):
        p4 = np.concatenate(([1], p4))
    r = np.zeros(len(p4), dtype=bool)
    for k in (5, 4, 3, 2, 1):  # r: from p+k, up to 5-k separators, a token, a boundary or the end
        c, inside = gather(p4, k)
        c2, inside2 = gather(p4, k + 1)
        tok_end = ((c & wa) != 0) & inside & (~inside2 | ((c2 & _C_W) == 0) | ((c2 & _C_K) != 0))
        r = tok_end | (((c & wa) == 0) & inside & r)
    seeds.append(p4[r])
    cand = np.zeros(n, dtype=bool)
    for sd in seeds:
        cand[sd] = True
    cjk = np.flatnonzero(cls & _C_K)
    for i in cjk.tolist():  # next to CJK: every separator within reach
        cand[max(0, i - 9):i + 2] = True
    cand &= (cls & _C_W) == 0
    pos = np.flatnonzero(cand)
    if not len(pos):
        return []
    cuts = np.flatnonzero(np.diff(pos) > _WINDOW_GAP)
    starts = pos[np.concatenate(([0], cuts + 1))].tolist()
    ends = pos[np.concatenate((cuts, [len(pos) - 1]))].tolist()
    spans: list[tuple[int, int]] = []
    finditer = _LOOSEN_RE.finditer
    last = 0
    for a, b in zip(starts, ends):
        # the window's end cuts the look-aheads of positions past its last candidate short
        # (a cut look-ahead can succeed): only matches starting at a candidate are real
        for m in finditer(n1, max(a, last), min(n, b + _WINDOW_GAP)):
            if m.start() > b:
                break
            spans.append(m.span())
            last = m.end()
    return spans


def _loosen_regex(n1: str) -> Normalized:
    """`loosen` with the regexes over the whole text (short texts: no numpy start-up cost)."""
    if any(c in n1 for c in LEET_CHARS):
        n1 = _LEET_RE.sub(_leet, n1)
    spans = [m.span() for m in _LOOSEN_RE.finditer(n1)]
    out, omap = _cut(n1, spans)
    if any(c in out for c in LEET_CHARS):
        out = _LEET_RE.sub(_leet, out)
    return Normalized(out.replace("i", "l"), omap)


def _cut(n1: str, spans: list[tuple[int, int]]) -> tuple[str, OffsetMap]:
    """``n1`` without ``spans`` (sorted, disjoint) and the map back to ``n1``."""
    if not spans:
        return n1, OffsetMap()
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
    return "".join(pieces), OffsetMap(edits)


def loosen(n1: str) -> Normalized:
    """N2 from N1 text: obfuscating separators removed, leetspeak folded (map is to N1).

    Leetspeak is folded before (t-0r → t-or) and after (b.0.m.b → b0mb) the separators go. All
    passes are vectorised over per-character class bits; the result equals applying
    ``_LEET_RE.sub(_leet, …)``, ``_LOOSEN_RE`` and ``_LEET_RE`` again over the whole text."""
    if len(n1) < VECTOR_MIN_CHARS:
        return _loosen_regex(n1)
    import numpy as np

    cps, cls = _classes(n1)
    n1, cps, cls = _fold_leet(n1, cps, cls)
    spans = loosen_spans(n1, cls)
    out, omap = _cut(n1, spans)
    if spans:
        keep = np.ones(len(n1), dtype=bool)
        for s, e in spans:
            keep[s:e] = False
        cps, cls = cps[keep], cls[keep]
    out = _fold_leet(out, cps, cls)[0]
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
        got = lab[c]
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
