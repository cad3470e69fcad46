"""The fast normalisation paths against the plain ones they replace (issue 14).

* The lazily filled N1 tables hold, for every character, what mapping all of Unicode up front
  (`_map_char` over ``_SCAN_RANGES`` with OpenCC's whole ``t2s`` table) held.
* `normalize`'s numpy space collapsing and `loosen`'s vectorised leetspeak folding and
  candidate search give the same text and the same offset map as the regexes over the whole
  text.
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspectors import normalize as nz

# Characters each path treats specially: CJK (simplified, traditional, radicals, astral),
# full-width forms, zero-width and format characters, combining marks, ligatures and other
# expansions, controls, lone surrogates, leetspeak digits and symbols, separators, spaces.
SPECIAL = list("法輪功軟體代理翻墙⻄⼈㊀〇・々") + ["𠀀", "𝐀", "\U0001F600", "\U000E0001", "\ud800"] + list(
    "ＡＢｆａｌｕｎ１２３　") + ["\u200b", "\u200d", "\ufeff", "\u00ad", "\u2060", "\u0301", "\u0336", "\u20dd"] + list(
    "ﬁ¨½ℌ™ßİΣσςВОМВрорᴅᴀ") + ["\x00", "\x07", "\x1b", "\x7f", "\t", "\n", "\r"] + list(
    "0134579@$_.-,'*/!? ") + [" "] * 6 + list("abcdeilxyzABCI")
_TEXT = st.lists(st.sampled_from(SPECIAL) | st.characters(blacklist_categories=()), max_size=60).map("".join)


def _reference_entry(ch: str, opts: nz.NormOptions = nz.DEFAULT) -> tuple[str, frozenset[str]]:
    """What the eager tables held for ``ch``: `_map_char` with the whole OpenCC table."""
    cp = ord(ch)
    if 0xD800 <= cp <= 0xDFFF:
        return "", frozenset({"invisible"})
    if not nz._in(cp, nz._SCAN_RANGES) or ch in "abcdefghijklmnopqrstuvwxyz0123456789 ":
        return ch, frozenset()
    return nz._map_char(ch, opts, nz.t2s_table() if opts.t2s else {})


def _reference_normalize(text: str) -> tuple[str, tuple]:
    """`normalize` as it was: translate 1:1 characters, then one regex pass for the rest."""
    entries = {c: _reference_entry(c) for c in set(text)}
    mapped = "".join(o if len(o) == 1 else c for c, (o, _) in ((c, entries[c]) for c in text))
    expand = {c: o for c, (o, _) in entries.items() if len(o) != 1}
    rx = re.compile((nz._char_class(sorted(ord(c) for c in expand)) + "|" if expand else "") + " {2,}")
    out, omap = nz._apply(mapped, rx, lambda m: " " if m.group()[0] == " " else expand[m.group()])
    return out, (omap._o, omap._s, omap._e, omap._n)


def _reference_loosen(n1: str) -> tuple[str, tuple]:
    n = nz._loosen_regex(n1)
    return n.text, (n.map._o, n.map._s, n.map._e, n.map._n)


def _got(n: nz.Normalized) -> tuple[str, tuple]:
    return n.text, (n.map._o, n.map._s, n.map._e, n.map._n)


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_lazy_tables_hold_the_eager_mapping(text: str) -> None:
    t = nz.tables()
    for ch in text:
        out, labels = _reference_entry(ch)
        assert t.labels[ch] == labels
        got = t.translate[ord(ch)]
        if len(out) == 1:
            assert got == out
        else:
            assert got == ch and t.expand[ch] == out


def test_lazy_tables_on_every_cjk_character_with_a_simplified_form() -> None:
    t = nz.tables()
    for trad in list(nz.t2s_table())[::5]:  # LazyT2s asks OpenCC one character at a time
        assert t.translate[ord(trad)] == _reference_entry(trad)[0]
        assert nz.normalize(trad).text == _reference_entry(trad)[0]


@pytest.fixture(params=[0, 10**9], ids=["numpy", "regex"])
def vector_min(request, monkeypatch):
    monkeypatch.setattr(nz, "VECTOR_MIN_CHARS", request.param)
    return request.param


@settings(max_examples=500, deadline=None)
@given(text=_TEXT)
def test_normalize_equals_the_regex_pass(text: str) -> None:
    for vm in (0, 10**9):
        nz.VECTOR_MIN_CHARS = vm
        try:
            assert _got(nz.normalize(text)) == _reference_normalize(text)
        finally:
            nz.VECTOR_MIN_CHARS = 2048


_LOOSE = st.lists(st.sampled_from(list("ab c i 0 1 3 5 7 @ $ _ . - , ' * / 法 轮 功 ・ ⺀ é 𠀀 x y 2 9 Ｖ P N")
                                  + [" "] * 8 + ["\u3000", "\U0001F600"]), max_size=60).map("".join)


@settings(max_examples=800, deadline=None)
@given(text=_LOOSE | _TEXT)
def test_loosen_equals_the_regex_passes(text: str) -> None:
    for src in (text, nz.normalize(text).text):
        nz.VECTOR_MIN_CHARS = 0
        try:
            assert _got(nz.loosen(src)) == _reference_loosen(src)
            assert nz.loosen_spans(src) == [m.span() for m in nz._LOOSEN_RE.finditer(src)]
        finally:
            nz.VECTOR_MIN_CHARS = 2048


def test_long_texts_take_the_numpy_path_with_the_same_result(vector_min: int) -> None:
    rng = random.Random(5)
    words = ["the", "a", "b0mb", "t-0r", "fa.lun", "b o m b", "法 轮-功", "VPN 代理", "2010", "e-mail", "I", "x",
             "c.@.r.d", "  ", "\n\n", "ＦＡＬＵＮ", "naïve", "ﬁle"]
    text = " ".join(rng.choice(words) for _ in range(20_000))
    n1 = nz.normalize(text)
    assert _got(n1) == _reference_normalize(text)
    assert _got(nz.loosen(n1.text)) == _reference_loosen(n1.text)
