"""The hidden-link inspector: hidden links carrying dark words in anchor text or domain."""

from __future__ import annotations

import pytest

from appliance.model.content import Link
from appliance.model.inspection import InspectorConfig, KeywordSpec, ListSpec
from bench.darkword_bench import dark_page, legit_page, page_object
from inspectors.base import InspectContext, InspectorConfigError, guarded
from inspectors.hiddenlink import HiddenLinkInspector, domain_of
from tests.inspectors.factories import make_obj

LISTS = (ListSpec("gambling", "darkwords", keywords=(KeywordSpec("六合彩"), KeywordSpec("bocai"), KeywordSpec("lhc"),
                                                    KeywordSpec("casino")),
                  options={"priors": {"六合彩": 0.9, "bocai": 0.85, "lhc": 0.6, "casino": 0.6}}),)


def inspector(lists=LISTS, **params) -> HiddenLinkInspector:
    ins = HiddenLinkInspector()
    ins.configure(InspectorConfig("hiddenlink", lists, params))
    return ins


@pytest.fixture(scope="module")
def ins():
    return inspector()


def page(*links: Link):
    return make_obj(text="欢迎访问", host="www.school.edu.cn", mime="text/html", links=links)


def test_hidden_link_with_dark_anchor_names_link_reason_and_words(ins):
    (f,) = guarded(ins, page(Link("http://www.example.net/x", "六 合 彩 开奖", True, "display:none")), InspectContext())
    assert f.inspector == "hiddenlink" and f.rule == "gambling"
    assert f.detail["url"] == "http://www.example.net/x" and f.detail["reason"] == "display:none"
    assert "六合彩 in anchor" in f.detail["words"] and "separators" in f.detail["words"]
    assert "hidden by display:none" in f.evidence[0].snippet


def test_dark_domain_with_harmless_anchor(ins):
    (f,) = guarded(ins, page(Link("http://bocai888-vip.com/", "点击进入", True, "off-screen")), InspectContext())
    assert "bocai in domain" in f.detail["words"] and f.detail["domain"] == "bocai888-vip.com"
    (g,) = guarded(ins, page(Link("http://lhc365.cc/", "", True, "script")), InspectContext())
    assert "lhc in domain" in g.detail["words"] and g.detail["reason"] == "script"


def test_short_words_only_as_whole_domain_runs(ins):
    assert guarded(ins, page(Link("http://www.lhcb.cern.ch/", "physics", True, "display:none")), InspectContext()) == []


def test_visible_links_and_clean_hidden_links_are_ignored(ins):
    assert guarded(ins, page(Link("http://bocai888.com/", "六合彩", False, "")), InspectContext()) == []
    assert guarded(ins, page(Link("https://www.school.edu.cn/#main", "跳到主要内容", True, "off-screen")),
                   InspectContext()) == []


def test_allow_domains_and_idn():
    ins = inspector(allow_domains=["casino-museum.org"])
    assert guarded(ins, page(Link("https://www.casino-museum.org/", "casino history", True, "display:none")),
                   InspectContext()) == []
    assert domain_of("http://xn--fiqs8s.com/") == "中国.com" and domain_of("not a url") == ""
    assert domain_of("http://[::1/") == ""


def test_builtin_lexicon_without_lists():
    ins = inspector(lists=())
    (f,) = guarded(ins, page(Link("http://x.com/", "真人荷官", True, "font-size:0")), InspectContext())
    assert f.rule == "gambling"


def test_with_the_html_extractor():
    import random

    ins = inspector(lists=())
    rng = random.Random(5)
    hits = 0
    for i in range(30):
        html, kind = dark_page("www.city0.com.cn", "news", rng)
        obj = page_object(html, "www.city0.com.cn", f"F{i}")
        found = guarded(ins, obj, InspectContext())
        if kind.startswith(("links", "script")):
            hits += bool(found)
            for f in found:
                assert f.detail["reason"]
        assert not guarded(ins, page_object(legit_page("www.city0.com.cn", "news", rng), "www.city0.com.cn", "L"),
                           InspectContext())
    assert hits >= 10


def test_configuration_errors():
    with pytest.raises(InspectorConfigError, match="allow_domains"):
        inspector(allow_domains=5)
    with pytest.raises(InspectorConfigError, match="darkwords"):
        inspector(lists=(ListSpec("k", "keywords"),))
