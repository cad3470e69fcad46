"""Keyword inspector: normalisations, stream chunking, offsets, proximity, exclusions, modes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.model.inspection import InspectorConfig, KeywordSpec, ListSpec, ProximitySpec
from inspectors.base import InspectContext, InspectorConfigError, guarded
from inspectors.keyword import KeywordEngine, KeywordInspector
from tests.inspectors.factories import make_obj


def engine(*kws: str | KeywordSpec, **list_kw) -> KeywordEngine:
    specs = tuple(k if isinstance(k, KeywordSpec) else KeywordSpec(k) for k in kws)
    return KeywordEngine([ListSpec("bad", "keywords", keywords=specs, **list_kw)])


def found(e: KeywordEngine, text: str, **kw) -> dict[str, dict[str, str]]:
    return {f.detail.get("keyword", f.detail.get("proximity")): f.detail for f in e.scan(text, **kw).findings}


@pytest.mark.parametrize(("text", "keyword", "steps"), [
    ("buy ＦＡＬＵＮＧＯＮＧ now", "falungong", "nfkc+case"),
    ("buy FaLuNgOnG now", "falungong", "case"),
    ("买法輪功书", "法轮功", "t2s"),
    ("买法\u200b轮\u200d功书", "法轮功", "invisible"),
    ("buy fa\x00lun\x07gong", "falungong", "invisible"),
    ("买法 轮-功书", "法轮功", "separators"),
    ("buy f.a.l.u.n.g.o.n.g now", "falungong", "separators"),
    ("buy fa-lun*gong now", "falungong", "separators"),
    ("buy fаlungоng now", "falungong", "homoglyph"),
    ("buy fa1ungong now", "falungong", "leet"),
    ("buy fálüngong now", "falungong", "diacritics"),
    ("buy falungong now", "falungong", "none"),
    ("使用 VPN 代理", "VPN代理", "separators"),
    ("falun-gong", "falun gong", "separators"),
])
def test_each_normalisation_matches_and_is_named(text: str, keyword: str, steps: str) -> None:
    got = found(engine(keyword), text)
    assert keyword in got, text
    assert got[keyword]["normalisation"] == steps


def test_clean_text_and_near_misses_do_not_match() -> None:
    e = engine("falungong", "法轮功", "therapist", KeywordSpec("bomb", mode="word"))
    for text in ("falun is a word", "法轮 and 功 far apart: 法X轮功", "the rapist was caught",
                 "bombastic bombay", "法大轮功", "psycho-therapist?"[:7], "功轮法"):
        assert not found(e, text), text


def test_word_mode_needs_boundaries_but_cjk_neighbours_are_boundaries() -> None:
    e = engine(KeywordSpec("bomb", mode="word"))
    assert found(e, "a bomb!")["bomb"]["count"] == "1"
    assert found(e, "买bomb了")["bomb"]["count"] == "1"
    assert not found(e, "bombastic abomb bomb_x")


def test_squeezed_keyword_needs_boundaries() -> None:
    e = engine("the rapist")
    assert found(e, "he is a therapist.")  # separator-insensitive on the keyword's side
    assert not found(e, "a psychotherapist")


def test_score_is_weight_times_count_and_evidence_is_capped() -> None:
    e = engine(KeywordSpec("bomb", weight=3))
    res = e.scan("bomb " * 20, max_evidence=4)
    (f,) = res.findings
    assert f.score == 60 and f.detail["count"] == "20" and len(f.evidence) == 4
    assert f.rule == "bad" and f.detail["list"] == "bad"


def test_offsets_and_snippets_point_into_the_original_text() -> None:
    prefix = "前文" * 30 + " ＦＵＬＬ\u200bwidth "
    text = prefix + "法 輪-功" + " 后文" * 30
    (f,) = engine("法轮功").scan(text).findings
    (ev,) = f.evidence
    assert text[ev.start:ev.end] == "法 輪-功"
    assert ev.snippet == text[ev.start - 40:ev.end + 40]


@settings(max_examples=60, deadline=None)
@given(chunk=st.integers(1, 40), pad=st.integers(0, 200))
def test_chunk_boundaries_never_lose_matches(chunk: int, pad: int) -> None:
    e = engine("法轮功", "falungong", "f.a.l.u.n")
    text = ("x" * pad + " 法輪\u200b功 " + "y" * (pad // 2) + " FALUN-GONG ") * 5
    a = found(e, text, chunk_bytes=chunk)
    b = found(e, text, chunk_bytes=1 << 20)
    assert a == b
    assert a["法轮功"]["count"] == "5" and a["falungong"]["count"] == "5"


def test_exclusions_drop_occurrences_inside_the_excluded_phrase() -> None:
    e = engine("bomb", exclusions=("photo bomb", "bomb calorimeter"))
    assert not found(e, "what a PHOTO BOMB, a bomb calorimeter")
    got = found(e, "photo bomb and a real bomb")
    assert got["bomb"]["count"] == "1"


def test_proximity() -> None:
    e = engine("unrelated", proximity=(ProximitySpec("buy", "gun", 10, weight=5),))
    res = e.scan("we buy a gun today")
    (f,) = res.findings
    assert f.detail["proximity"] == "buy~gun" and f.score == 5
    assert "buy a gun" in f.evidence[0].snippet
    assert not e.scan("buy " + "x" * 30 + " gun").findings
    assert e.scan("gun, then buy").findings  # either order
    zh = engine("x", proximity=(ProximitySpec("购买", "枪支", 3),))
    assert zh.scan("我想購買 一把枪支").findings


def test_regex_mode_on_normalised_text() -> None:
    e = engine(KeywordSpec(r"kill(?:ing|er)s?", mode="regex", weight=2))
    got = found(e, "KILLING and ｋｉｌｌｅｒｓ and kill")
    assert got[r"kill(?:ing|er)s?"]["count"] == "2"


def test_one_finding_per_list_and_keyword_with_dedup_across_lists() -> None:
    e = KeywordEngine([ListSpec("a", "keywords", keywords=(KeywordSpec("bomb"),)),
                       ListSpec("b", "keywords", keywords=(KeywordSpec("BOMB", weight=2),))])
    res = e.scan("b o m b and bomb")
    assert sorted((f.rule, f.score) for f in res.findings) == [("a", 2.0), ("b", 4.0)]


def test_without_normalisation_matches_only_ascii_caseless() -> None:
    e = KeywordEngine([ListSpec("l", "keywords", keywords=(KeywordSpec("bomb"), KeywordSpec("法轮功")))],
                      normalise=False)
    assert found(e, "BOMB 法轮功").keys() == {"bomb", "法轮功"}
    assert not found(e, "ＢＯＭＢ 法輪功 b.o.m.b")


@pytest.mark.parametrize("lists", [
    (ListSpec("l", "keywords", keywords=(KeywordSpec("\u200b\u200b"),)),),
    (ListSpec("l", "keywords", keywords=(KeywordSpec("x", mode="fuzzy"),)),),
    (ListSpec("l", "keywords", keywords=(KeywordSpec("(?<=a)b", mode="regex"),)),),
    (ListSpec("l", "keywords", keywords=(KeywordSpec("x", weight=-1),)),),
    (ListSpec("l", "keywords", proximity=(ProximitySpec("a", "b", -1),)),),
    (ListSpec("l", "dataclass", validator="luhn"),),
])
def test_bad_specs_raise_config_errors(lists) -> None:
    with pytest.raises(InspectorConfigError, match="'l'"):
        KeywordInspector().configure(InspectorConfig("keyword", lists=lists))


def inspector(*kws: str, **params) -> KeywordInspector:
    ins = KeywordInspector()
    ins.configure(InspectorConfig("keyword", lists=(ListSpec("bad", "keywords", keywords=tuple(
        KeywordSpec(k) for k in kws)),), params=params))
    return ins


def test_inspector_on_html_body_and_caches_text() -> None:
    ins = inspector("法轮功")
    obj = make_obj("<html><body><p>法<b></b>輪功</p><script>法轮功</script></body></html>".encode(),
                   mime="text/html")
    ctx = InspectContext()
    (f,) = guarded(ins, obj, ctx)
    assert f.content_id == obj.id and f.inspector == "keyword" and f.detail["count"] == "1"
    assert (obj.id, "text") in ctx.cache


def test_text_cap_is_flagged() -> None:
    ins = inspector("bomb", max_text_chars=1000)
    obj = make_obj(text="x" * 2000 + " bomb")
    ctx = InspectContext()
    assert guarded(ins, obj, ctx) == []
    assert "keyword_truncated" in ctx.flags[obj.id]
    (f,) = guarded(ins, make_obj(text="bomb " + "x" * 2000, oid="F2"), ctx)
    assert f.detail["incomplete"] == "truncated"


def test_match_cap_and_deadline_stop_the_scan() -> None:
    ins = inspector("aa", max_matches=100)
    ctx = InspectContext()
    (f,) = guarded(ins, make_obj(text="aa " * 10_000), ctx)
    assert int(f.detail["count"]) <= 100 and "keyword_match_cap" in ctx.flags["Ftest1"]
    ins = inspector("bomb", chunk_bytes=16)
    ctx = InspectContext(deadline=0.0, clock=lambda: 1.0)
    guarded(ins, make_obj(text="bomb " * 100, oid="F3"), ctx)
    assert "keyword_deadline" in ctx.flags["F3"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_never_raises_on_arbitrary_text(text: str) -> None:
    e = engine("bomb", "法轮功", KeywordSpec("kill", mode="word"), exclusions=("photo bomb",),
               proximity=(ProximitySpec("a", "b", 5),))
    for f in e.scan(text, chunk_bytes=7).findings:
        for ev in f.evidence:
            assert 0 <= ev.start <= ev.end <= len(text)


def test_regex_mode_supports_word_boundaries() -> None:
    e = engine(KeywordSpec(r"\bgun\b", mode="regex"))
    assert found(e, "a GUN, not a gunman")[r"\bgun\b"]["count"] == "1"
