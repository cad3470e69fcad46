"""Minimal text extraction: charset cascade, HTML, JSON, forms."""

from __future__ import annotations

from inspectors.text import decode, extract_text, html_to_text
from tests.inspectors.factories import make_obj


def test_charset_cascade() -> None:
    gbk = "翻墙软件".encode("gbk")
    assert decode(gbk, charset="gbk") == "翻墙软件"
    assert decode(gbk) == "翻墙软件"  # not UTF-8 → gb18030
    assert decode("é".encode()) == "é"
    assert decode("法轮".encode("utf-16")) == "法轮"  # BOM
    big5 = "<meta charset=big5><p>翻牆軟體".encode("big5")
    assert "翻牆軟體" in decode(big5, html_doc=True)
    assert decode(b"\xe6\xb3\x95\xe8") == "法\ufffd"  # UTF-8 cut mid-character stays UTF-8


def test_declared_charset_from_meta_or_mime() -> None:
    data = "翻牆軟體".encode("big5")
    assert extract_text(make_obj(data, meta={"content_type": "text/plain; charset=Big5"})) == "翻牆軟體"
    assert extract_text(make_obj(data, meta={"charset": "big5"})) == "翻牆軟體"
    assert extract_text(make_obj(data, mime="text/plain; charset=big5")) == "翻牆軟體"
    # an unknown or non-text codec is ignored
    assert extract_text(make_obj(b"abc", meta={"charset": "rot13"})) == "abc"


def test_html() -> None:
    doc = ("<html><head><style>p{}</style><title>T</title></head><body><!-- hidden -->"
           "<p>fa<b>lun</b>gong &amp; 法<span>轮</span>功</p><script>var x='bomb';</script>"
           "<div>next</div><script>unterminated")
    text = html_to_text(doc)
    assert "falungong & 法轮功" in text and "next" in text
    assert "bomb" not in text and "hidden" not in text and "p{}" not in text


def test_html_is_linear_on_hostile_markup() -> None:
    html_to_text("<script>" * 50_000 + "<" * 100_000 + "<a" * 50_000)


def test_json_and_form() -> None:
    obj = make_obj(b'{"msg": "\\u6cd5\\u8f6e\\u529f", "n": [1, {"k": "bomb"}]}', mime="application/json")
    assert extract_text(obj).split("\n") == ["msg", "法轮功", "n", "k", "bomb"]
    assert extract_text(make_obj(b"[[[[", mime="application/json")) == "[[[["
    deep = b"[" * 100_000 + b"]" * 100_000
    assert extract_text(make_obj(deep, mime="application/json")).startswith("[[[")
    form = make_obj(b"q=%E6%B3%95%E8%BD%AE%E5%8A%9F&x=a+b", mime="application/x-www-form-urlencoded")
    assert extract_text(form).split("\n") == ["q", "法轮功", "x", "a b"]


def test_non_text_and_given_text() -> None:
    assert extract_text(make_obj(b"\x89PNG...", mime="image/png")) == ""
    assert extract_text(make_obj(b"ignored", text="given")) == "given"
