"""HTML: visible vs hidden text with reasons, links with visibility, script links, speed."""

from __future__ import annotations

import pytest

from inspectors.extract.html import analyze, extract_html

CASES = [
    ('<div style="display:none">SECRET</div>', "display:none"),
    ("<div hidden>SECRET</div>", "display:none"),
    ('<div style="visibility:hidden">SECRET</div>', "visibility:hidden"),
    ('<div style="position:absolute;left:-9999px">SECRET</div>', "off-screen"),
    ('<div style="position:fixed;top:-5000px">SECRET</div>', "off-screen"),
    ('<div style="text-indent:-9999px">SECRET</div>', "off-screen"),
    ('<div style="font-size:0">SECRET</div>', "font-size:0"),
    ('<div style="font-size:1px">SECRET</div>', "font-size:tiny"),
    ('<div style="font-size:0.05em">SECRET</div>', "font-size:tiny"),
    ('<div style="color:#fff">SECRET</div>', "color-matches-background"),
    ('<div style="background:#000"><span style="color:black">SECRET</span></div>', "color-matches-background"),
    ('<div style="background-color:rgb(10,20,30)"><p style="color:#0a141e">SECRET</p></div>',
     "color-matches-background"),
    ('<div style="height:0;overflow:hidden">SECRET</div>', "height:0;overflow:hidden"),
    ('<div style="opacity:0">SECRET</div>', "opacity:0"),
    ('<div style="position:absolute;clip:rect(0 0 0 0)">SECRET</div>', "clip"),
    ("<noscript>SECRET</noscript>", "noscript"),
]


@pytest.mark.parametrize(("html", "reason"), CASES)
def test_inline_style_reasons(html, reason):
    r = analyze(f"<html><body><p>shown text</p>{html}</body></html>")
    assert "SECRET" not in r.text and "shown text" in r.text
    assert f"[{reason}] SECRET" in r.hidden_text


STYLE_CASES = [
    (".x{display:none}", '<div class="x">SECRET</div>'),
    ("#y{visibility:hidden}", '<div id="y">SECRET</div>'),
    ("div.a span{font-size:0}", '<div class="a"><span>SECRET</span></div>'),
    ("body .wrap > p.z {position:absolute; left:-10000px}", '<div class="wrap"><p class="z">SECRET</p></div>'),
    ("p{color:white} .dark{background:black}", "<p>SECRET</p>"),
    (".h {height:0px; overflow:hidden}", '<div class="h">SECRET</div>'),
    ("/* c */ @media screen { .m {display:none} }", '<div class="m">SECRET</div>'),
    (".q{opacity:0.0 !important}", '<div class="q" style="opacity:1">SECRET</div>'),
]


@pytest.mark.parametrize(("css", "html"), STYLE_CASES)
def test_style_rules(css, html):
    r = analyze(f"<html><head><style>{css}</style></head><body><p>shown</p>{html}</body></html>")
    assert "SECRET" not in r.text and "SECRET" in r.hidden_text


def test_rules_that_do_not_apply():
    css = "@media print { .p{display:none} } a:hover{display:none} .other{display:none} .v{color:#fff}"
    html = ('<div class="p">ONE</div><a href="/x" class="q">TWO</a><div class="v" style="background:#000">THREE'
            '</div><div style="font-size:0"><span style="font-size:14px">FOUR</span></div>'
            '<div style="visibility:hidden"><span style="visibility:visible">FIVE</span></div>')
    r = analyze(f"<html><head><style>{css}</style></head><body>{html}</body></html>")
    for word in ("ONE", "TWO", "THREE", "FOUR", "FIVE"):
        assert word in r.text, word
    assert not r.hidden_text


def test_script_and_style_are_not_text():
    r = analyze("<html><head><style>.a{color:red}</style><script>var secret='x';</script></head>"
                "<body><p>hello <b>world</b></p><script>alert(1)</script></body></html>")
    assert r.text == "hello world"


def test_links_with_anchor_text_and_visibility():
    html = """<html><head><base href="http://site.example/base/"></head><body>
      <a href="page.html">Visible page</a>
      <div style="display:none"><a href="http://casino.example/">casino</a></div>
      <a href="/x" style="font-size:0">tiny link</a>
      <a href="/img"><img src="a.png" alt="logo"></a>
      <a href="/y"><span style="color:#fff">white text</span></a>
      <iframe src="http://frame.example/" width="0" height="0"></iframe>
      <script>document.write('<a href="http://spam.example/p">cheap pills<\\/a>');</script>
    </body></html>"""
    links = {lk.url: lk for lk in analyze(html, base_url="http://ignored.example/").links}
    assert links["http://site.example/base/page.html"][1:] == ("Visible page", False, "")
    assert links["http://casino.example/"][1:] == ("casino", True, "display:none")
    assert links["http://site.example/x"][2:] == (True, "font-size:0")
    assert links["http://site.example/img"][1:3] == ("logo", False)
    assert links["http://site.example/y"][2:] == (True, "color-matches-background")
    assert links["http://frame.example/"][2:] == (True, "zero-size-iframe")
    assert links["http://spam.example/p"][1:] == ("cheap pills", True, "script")


def test_links_resolved_against_object_url():
    part = extract_html(b'<a href="../b.html">b</a>', base_url="http://h.example/d/e/a.html")
    assert part.links[0].url == "http://h.example/d/b.html"


def test_meta_keywords_and_refresh():
    r = analyze('<html><head><meta name="keywords" content="dark words"><meta http-equiv="refresh" '
                'content="0; url=http://r.example/"></head><body>x</body></html>')
    assert "[meta] dark words" in r.hidden_text
    assert any(lk.url == "http://r.example/" and lk.reason == "meta-refresh" for lk in r.links)


def test_broken_markup_and_empty_input():
    assert analyze("").text == ""
    r = analyze("<div><p>unclosed <b>bold <i>it</div> tail & more &amp; &#20013;")
    assert "unclosed" in r.text and "tail & more & 中" in r.text


def test_hidden_reasons_recorded_in_meta():
    part = extract_html(b'<p>a</p><div style="display:none">b</div>')
    assert part.meta["hidden_reasons"] == "display:none:1" and "hidden_text" in part.anomalies


def test_one_megabyte_page_walks_whole():
    """A styled 1 MB page walks whole (its speed against the lxml walk is measured in
    bench/extract_bench.py --html-walk, never timed here)."""
    css = "<style>" + "".join(f".c{i}{{color:#{i % 255:02x}0000}} " for i in range(300)) + \
          ".h{display:none} div.box p.t{font-size:0}</style>"
    block = ('<div class="box c7"><p class="t">hidden para</p><p>Visible paragraph with <a href="/l{i}">link '
             '{i}</a> and <span class="c3">styled</span> text 中文内容.</p><div class="h">gone</div></div>\n')
    body = "".join(block.replace("{i}", str(i)) for i in range(5200))
    doc = f"<html><head>{css}</head><body>{body}</body></html>".encode()
    assert len(doc) > 1_000_000
    part = extract_html(doc)
    assert "Visible paragraph" in part.text and "hidden para" not in part.text
    assert len(part.links) == 5200
