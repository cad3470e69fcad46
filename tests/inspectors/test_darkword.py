"""The dark-word inspector: priors, background model, obfuscation, explanation."""

from __future__ import annotations

import math

import pytest

from appliance.cli import main
from appliance.model.inspection import InspectorConfig, KeywordSpec, ListSpec
from inspectors.base import InspectContext, InspectorConfigError, guarded
from inspectors.darkword import BackgroundModel, DarkwordInspector, DarkwordMatcher, site_key
from tests.inspectors.factories import make_obj

GAMBLING = ListSpec("gambling",
                    "darkwords", keywords=(KeywordSpec("六合彩", 2), KeywordSpec("博彩"), KeywordSpec("lhc"),
                                                      KeywordSpec("bocai")),
                    options={"priors": {"六合彩": 0.9, "博彩": 0.85, "lhc": 0.6, "bocai": 0.85}})
DRUGS = ListSpec("drugs", "darkwords", keywords=(KeywordSpec("叶子"), KeywordSpec("冰毒")),
                 options={"priors": {"叶子": 0.3, "冰毒": 0.95}})


def inspector(**params) -> DarkwordInspector:
    ins = DarkwordInspector()
    ins.configure(InspectorConfig("darkword", (GAMBLING, DRUGS), params))
    return ins


@pytest.fixture(scope="module")
def ins():
    return inspector()


def page(text: str, host: str = "www.example.com", **kw):
    return make_obj(text=text, host=host, mime="text/html", **kw)


def test_dark_page_explains_itself(ins):
    (f,) = guarded(ins, page("最新六合彩开奖，博彩平台，另售冰毒"), InspectContext())
    assert f.inspector == "darkword" and f.rule == "gambling"
    assert f.score == pytest.approx(2 * -math.log10(0.1) - math.log10(0.15) - math.log10(0.05), abs=0.01)
    words = f.detail["words"]
    assert "六合彩 ×1 p=0.900 (prior 0.90)" in words and "冰毒" in words and "博彩" in words
    assert f.detail["lists"] == "drugs,gambling" and float(f.detail["p_innocent"]) < 0.01
    assert any("六合彩" in e.snippet for e in f.evidence)


def test_innocent_uses_stay_below_threshold(ins):
    ctx = InspectContext()
    obj = page("秋天院子里的叶子黄了，叶子落了一地。")
    assert guarded(ins, obj, ctx) == []
    assert 0 < ins.page_score(obj, ctx).score < 1


@pytest.mark.parametrize("text,step", [
    ("六.合.彩 开奖 博 彩 平台 冰​毒", "separators"),
    ("六合彩 博彩 冰毒 ＢＯＣＡＩ", "nfkc"),
    ("六合彩資料 博彩 冰毒", "none"),
    ("bоcаi lhc 六合彩 冰毒", "homoglyph"),
])
def test_obfuscated_words_are_found(ins, text, step):
    (f,) = guarded(ins, page(text), InspectContext())
    if step != "none":
        assert step in f.detail["normalisation"]


def test_pinyin_abbreviation_is_a_whole_word(ins):
    ctx = InspectContext()
    assert ins.page_score(page("the lhcb experiment at cern"), ctx) is None
    assert ins.page_score(page("lhc 开奖", oid="F2"), ctx).words[0].word == "lhc"


def test_hidden_text_counts_with_a_boost(ins):
    visible = ins.page_score(page("博彩"), InspectContext())
    hidden = ins.page_score(page("", hidden_text="博彩", oid="Fh"), InspectContext())
    assert hidden.words[0].hidden and hidden.score > visible.score


def test_background_model_refines_priors(tmp_path):
    matcher = DarkwordMatcher((GAMBLING, DRUGS))
    model = BackgroundModel(matcher.words)
    for i in range(200):  # a gardening site talks about leaves; lottery words never appear
        words = {o.word for o in matcher.find("叶子的养护" if i % 2 else "浇水施肥")}
        model.add_page(words, "www.garden.cn")
        model.add_page(set(), "news.example.com")
    path = tmp_path / "bg.json.gz"
    model.save(path)
    loaded = BackgroundModel.load(path)
    assert loaded.stats("叶子", "garden.cn") == (100, 200, "site")
    assert loaded.stats("叶子", "unknown.site") == (100, 400, "global")
    assert loaded.stats("not-a-list-word") is None
    ins = inspector(model=str(path))
    garden = ins.page_score(page("叶子 叶子", host="www.garden.cn"), InspectContext())
    news = ins.page_score(page("叶子 叶子", host="news.example.com", oid="F2"), InspectContext())
    assert garden.words[0].p < 0.3 < news.words[0].p  # common here → less surprising; never seen there → more
    assert "site 100/200" in garden.words[0].basis and "site 0/200" in news.words[0].basis
    lottery = ins.page_score(page("六合彩", host="news.example.com", oid="F3"), InspectContext())
    assert lottery.words[0].p > 0.9


def test_threshold_param_and_empty_text():
    low = inspector(threshold=0.1)
    assert len(guarded(low, page("叶子"), InspectContext())) == 1
    assert guarded(low, page(""), InspectContext()) == []


def test_configuration_errors(tmp_path):
    bad = ListSpec("x", "darkwords", keywords=(KeywordSpec("a"),), options={"priors": {"a": 1.5}})
    with pytest.raises(InspectorConfigError, match="prior"):
        DarkwordInspector().configure(InspectorConfig("darkword", (bad,)))
    with pytest.raises(InspectorConfigError, match="kind"):
        DarkwordInspector().configure(InspectorConfig("darkword", (ListSpec("k", "keywords"),)))
    with pytest.raises(InspectorConfigError, match="model"):
        DarkwordInspector().configure(InspectorConfig("darkword", (GAMBLING,), {"model": str(tmp_path / "none")}))
    with pytest.raises(InspectorConfigError):
        DarkwordInspector().configure(InspectorConfig("darkword", (GAMBLING,), {"reference_rate": 2}))
    assert site_key("WWW.Example.COM:8080") == "example.com"


def test_learn_show_and_score_commands(tmp_path, capsys):
    d = tmp_path / "pages"
    for site in ("garden.cn", "news.cn"):
        (d / site).mkdir(parents=True)
        for i in range(25):
            garden = "院子里的叶子黄了，修剪叶子，浇水施肥。"
            body = (garden if site == "garden.cn" else "今天的新闻很多，天气晴朗，适合出行。") * 2
            (d / site / f"{i}.html").write_text(f"<html><body><p>{body}{i}</p></body></html>", encoding="utf-8")
    model = tmp_path / "bg.json"
    assert main(["darkword", "learn", str(d), "--model", str(model)]) == 0
    assert "learned 50 pages" in capsys.readouterr().out
    assert main(["darkword", "show", str(model), "--site", "garden.cn"]) == 0
    assert "叶子" in capsys.readouterr().out
    p = tmp_path / "spam.html"
    p.write_text('<p>欢迎</p><div style="display:none"><a href="http://bocai88.com/">六合彩</a> 冰毒</div>',
                 encoding="utf-8")
    assert main(["darkword", "score", str(p), "--model", str(model), "--host", "news.cn"]) == 0
    out = capsys.readouterr().out
    assert "anomaly score" in out and "finding hiddenlink" in out and "display:none" in out
