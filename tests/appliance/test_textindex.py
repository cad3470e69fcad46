"""The search index's CJK n-grams and term planning (the piece content search reuses)."""

from __future__ import annotations

import random

from appliance.store.textindex import TextIndex, cjk_grams, gram_key, gram_keys, is_cjk, plan


def test_grams_are_the_characters_and_adjacent_pairs_of_cjk_runs() -> None:
    assert cjk_grams("内部机密 file") == ["内", "部", "内部", "机", "部机", "密", "机密"]
    assert cjk_grams("社外・秘", "秘") == ["社", "外", "社外", "秘"]  # ・ is punctuation: no 外・ or ・秘
    assert cjk_grams("한국 기밀") == ["한", "국", "한국", "기", "밀", "기밀"]
    assert cjk_grams("カタカナー") == ["カ", "タ", "カタ", "タカ", "ナ", "カナ", "ー", "ナー"]
    assert cjk_grams("plain ASCII, ＡＢＣ full-width Latin", "") == []


def test_grams_are_bounded_on_hostile_input() -> None:
    rng = random.Random(7)
    text = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(20_000))
    assert len(cjk_grams(text, limit=1000)) == 1000
    assert len(set(gram_keys(text, limit=5000))) == 5000


def test_keys_are_ascii_and_distinct() -> None:
    assert gram_key("机密") == "g00673a005bc6" and gram_key("𠀀") == "g020000"
    assert gram_key("机密") != gram_key("机") and gram_key("机").isascii()


def test_terms_are_planned_by_length_and_script() -> None:
    assert [(t.text, t.kind) for t in plan("机密 密 confidential Q3 a 机密文件 Q机")] == [
        ("机密", "gram"), ("密", "gram"), ("confidential", "trigram"), ("Q3", "scan"), ("a", "scan"),
        ("机密文件", "trigram"), ("Q机", "scan")]
    assert plan("   ") == [] and is_cjk("机") and not is_cjk("。") and not is_cjk("a")


def test_conditions_are_parameterised() -> None:
    idx = TextIndex("content", ("body", "name"), pg_key="content_seq")
    sql, params = idx.condition("sqlite", 'x"; DROP 机 ab', "content.seq")
    assert "DROP" not in sql and "content_fts" in sql and "content_grams" in sql
    assert params[0] == '"x"";" AND "DROP"' and params[1] == gram_key("机") and params[2:] == ["ab", "ab"]
    sql, params = idx.condition("postgresql", "100% 机 a_b", "content.seq")
    assert "content_text" in sql and params == ["%100\\%%", "%a\\_b%", [gram_key("机")]]
    assert idx.condition("sqlite", "  ", "k") == ("", [])
