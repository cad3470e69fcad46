"""Normalisation steps, their labels and the offset maps back to the original text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspectors import normalize as nz


@pytest.mark.parametrize(("raw", "n1"), [
    ("ＦＡＬＵＮＧＯＮＧ", "falungong"),          # full-width (NFKC) + case
    ("𝐛𝐨𝐦𝐛 ⓑⓞⓜⓑ", "bomb bomb"),                   # mathematical / circled letters
    ("BoMb", "bomb"),                               # case
    ("Straße", "strasse"),                          # full casefold
    ("法輪功 軟體", "法轮功 软体"),                   # traditional → simplified
    ("翻\u200b墙\u200d软\ufeff件", "翻墙软件"),       # zero-width
    ("f\u00adalun\u2060gong", "falungong"),         # soft hyphen, word joiner
    ("bo\x00m\x1bb\x7f", "bomb"),                   # control characters
    ("caf\u00e9 cafe\u0301 b\u0336o\u0336m\u0336b", "cafe cafe bomb"),  # diacritics, strike-through
    ("ВОМВ рор", "bomb pop"),                       # Cyrillic homoglyphs
    ("ϲοϲaine", "cocaine"),                         # Greek homoglyphs
    ("ᴅᴀʀᴋɴᴇᴛ", "darknet"),                         # small capitals
    ("⻄藏", "西藏"),                                 # CJK radical supplement
    ("a \t\n\r b", "a b"),                          # whitespace folded
])
def test_n1_steps(raw: str, n1: str) -> None:
    assert nz.normalize(raw).text == n1


@pytest.mark.parametrize(("raw", "n2"), [
    ("法 轮-功", "法轮功"),
    ("法。轮，功", "法轮功"),
    ("法\n\n轮　功", "法轮功"),
    ("VPN 代理", "vpn代理"),
    ("b o m b", "bomb"),
    ("b.o.m.b", "bomb"),
    ("b-o-m-b", "bomb"),
    ("fa.lun-gong", "falungong"),
    ("bo*mb", "bomb"),
    ("b0mb", "bomb"),
    ("d370n@t-0r", "detonator"),
    ("the rapist", "the raplst"),   # spaces between words stay (i→l folding is expected)
    ("2010 mp3 3.14", "2010 mpe 3.14"),  # digits stay digits unless next to a letter
])
def test_n2_separators_and_leet(raw: str, n2: str) -> None:
    assert nz.loosen(nz.normalize(raw).text).text == n2


def test_keyword_forms() -> None:
    assert nz.normalize_term(" Falun Gong ") == ("falun gong", "falun gong", "falungong")
    assert nz.normalize_term("法輪功") == ("法轮功", "法轮功", "法轮功")
    assert nz.normalize_term("bitch")[1] == "bltch"


def test_labels_name_steps() -> None:
    assert nz.labels("bomb", "bomb") == ()
    assert nz.labels("ＢＯＭＢ", "bomb") == ("nfkc", "case")
    assert nz.labels("法輪功", "法轮功") == ("t2s",)
    assert nz.labels("法\u200b轮功", "法轮功") == ("invisible",)
    assert nz.labels("bоmb", "bomb") == ("homoglyph",)
    assert nz.labels("b.o.m.b", "bomb", loosened=True) == ("separators",)
    assert nz.labels("b0mb", "bomb", n1_span="b0mb") == ("leet",)
    assert nz.labels("Bomb", "Bomb") == ()  # the keyword's own case is not a normalisation


def test_offset_map_through_every_step() -> None:
    raw = "x ＦＡ\u200bＬＵＮ  ﬁ  Straße 法輪\n功 b.o.m.b end"
    n1 = nz.normalize(raw)
    n2 = nz.loosen(n1.text)
    for word, orig in (("falun", "ＦＡ\u200bＬＵＮ"), ("fi", "ﬁ"), ("strasse", "Straße"), ("法轮", "法輪")):
        i = n1.text.index(word)
        s, e = n1.span(i, i + len(word))
        assert raw[s:e] == orig
    i = n2.text.index("法轮功")
    s1, e1 = n2.span(i, i + 3)
    s, e = n1.span(s1, e1)
    assert raw[s:e] == "法輪\n功"
    i = n2.text.index("bomb")
    s, e = n1.span(*n2.span(i, i + 4))
    assert raw[s:e] == "b.o.m.b"


_ALPHABET = st.sampled_from([*"abcAB 法輪功-.\u200b\u00adＦﬁß\n\t0@é", "e\u0301", "  "])


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=40).map("".join))
def test_offsets_are_monotonic_and_in_bounds(raw: str) -> None:
    n1 = nz.normalize(raw)
    n2 = nz.loosen(n1.text)
    prev = 0
    for i in range(len(n1.text)):
        s, e = n1.span(i, i + 1)
        assert prev <= s < e <= len(raw)
        prev = s
        # the source of one output character normalises to something containing it
        assert n1.text[i] in nz.normalize(raw[s:e]).text or n1.text[i] == " "
    for i in range(len(n2.text)):
        s1, e1 = n2.span(i, i + 1)
        assert 0 <= s1 < e1 <= len(n1.text)


def test_t2s_keeps_lengths_and_is_character_level() -> None:
    table = nz.t2s_table()
    assert table["輪"] == "轮" and table["軟"] == "软"
    assert all(len(v) == 1 for v in table.values())
