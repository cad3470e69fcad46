"""HTML as browsers build it: content after </html>, framesets, comments, <noscript>, <template>,
misnesting, and markup written by obfuscated inline scripts (the bounded deobfuscator)."""

from __future__ import annotations

import base64

import pytest

from inspectors.extract.deobfuscate import deobfuscate, js_unescape_fn, js_unescape_literal
from inspectors.extract.html import analyze

A = '<a href="http://bocai.example/">澳门博彩</a>'


def links(doc: str) -> dict[str, tuple[str, bool, str]]:
    return {lk.url: (lk.text, lk.hidden, lk.reason) for lk in analyze(doc).links}


@pytest.mark.parametrize(("doc", "reason"), [
    (f'<html><body><p>x</p></body></html><div style="display:none">{A}</div>', "display:none"),
    (f'<html><body><p>x</p></body></html>\n<p style="font-size:0">{A}</p>\n', "font-size:0"),
    (f"<html><head></head><frameset><frame src=a.html>{A}</frameset></html>", "unrendered"),
    (f"<html><head></head><frameset><frame src=a.html><noframes>{A}</noframes></frameset></html>", "noframes"),
    (f'<html><body><p>x</p><frameset><div style="display:none">{A}</div></frameset></body></html>', "display:none"),
    (f"<html><body><p>x</p><!-- {A} --></body></html>", "comment"),
    (f"<html><body><p>x</p><!-- {A}", "comment"),
    (f"<html><head><noscript>{A}</noscript></head><body>x</body></html>", "noscript"),
    (f"<p>y</p><noscript><div>{A}</div></noscript>", "noscript"),
    (f"<html><body><template>{A}</template>x</body></html>", "template"),
    (f"<title>t{A}</title><p>x</p>", "unrendered"),
    (f"<p>x</p><textarea>{A}</textarea>", "unrendered"),
    (f'<b><div style="display:none"><i>{A}</b></i><p>after</p>', "display:none"),
])
def test_injection_positions_are_where_a_browser_puts_them(doc, reason):
    got = links(doc)["http://bocai.example/"]
    assert got == ("澳门博彩", True, reason)


def test_markup_after_html_is_body_content():
    r = analyze("<html><body><p>one</p></body></html><p>two</p><a href='/v'>visible</a>")
    assert r.text.split() == ["one", "two", "visible"]
    assert analyze("<html><body><p>one</p></body></html><p>two</p><a href='/v'>visible</a>").links[0].hidden is False


def test_misnested_formatting_is_reconstructed():
    r = analyze("<p>x<b>y<i>z</b>w</i></p><table><a href=/q>t</a><tr><td>1</td></tr></table>")
    assert r.text.replace("\n", " ").split() == ["xyzw", "t", "1"]
    assert links("<table><a href=/q>t</a><tr><td>1</td></tr></table>")["/q"] == ("t", False, "")


ENCODED = {
    "write": 'document.write("<a href=\\"http://x.example/\\">澳门</a>")',
    "unescape-pct-u": 'document.write(unescape("%3Ca%20href%3D%22http%3A//x.example/%22%3E%u6FB3%u95E8%3C/a%3E"))',
    "fromcharcode": "document.write(String.fromCharCode(" + ",".join(str(ord(c)) for c in
                                                                   '<a href="http://x.example/">澳门</a>') + "))",
    "atob": 'document.write(decodeURIComponent(escape(atob("'
            + base64.b64encode('<a href="http://x.example/">澳门</a>'.encode()).decode() + '"))))',
    "hex": 'document.write("\\x3ca href=\\x22http://x.example/\\x22\\x3e\\u6fb3\\u95e8\\x3c/a\\x3e")',
    "concat": 'var s = "<a hr" + "ef=\\"http://x.exa" + "mple/\\">澳" + "门</a>"; document.write(s)',
    "uri": 'document.write(decodeURIComponent("%3Ca%20href%3D%22http%3A%2F%2Fx.example%2F%22%3E%E6%BE%B3%E9%97%A8%3C'
           '%2Fa%3E"))',
    "innerhtml": 'document.getElementById("q").innerHTML = "<a href=\'http://x.example/\'>" + "澳门</a>"',
    "plus-assign": 'var h = "<a href=http://x.example/>"; h += "澳门"; h += "</a>"; el.innerHTML = h;',
    "eval": 'eval(unescape("%64ocument.write(%27%3Ca href=http://x.example/%3E澳门%3C/a%3E%27)"))',
    "insertadjacent": 'document.body.insertAdjacentHTML("beforeend", "<a href=http://x.example/>澳门</a>")',
    "reverse": 'document.write(">a/<门澳>/elpmaxe.x//:ptth=ferh a<".split("").reverse().join(""))',
    "array-join": 'document.write(["<a href=http://x.example/>", "澳门", "</a>"].join(""))',
    "nested-script": 'document.write("<script>document.write(\\"<a href=http://x.example/>澳门</a>\\")</scr" + "ipt>")',
}


@pytest.mark.parametrize("name", sorted(ENCODED))
def test_script_written_links_are_recovered(name):
    got = links(f"<p>page</p><script>{ENCODED[name]}</script>")
    assert got["http://x.example/"] == ("澳门", True, "script"), got


def test_script_text_is_hidden_text_and_styles_apply():
    r = analyze('<p>page</p><script>document.write("<style>.z{display:none}</style><div class=z>秘密文字</div>'
                '<div>也是脚本</div>")</script>')
    assert r.text == "page" and r.hidden_text == "[script] 秘密文字 也是脚本"
    r = analyze('<p>page</p><script>document.write("<style>.z{display:none}</style><p>x <a class=z '
                'href=http://a.example/>y</a></p>")</script>')
    assert r.links[0].reason == "script"  # the outermost reason wins, as for page markup


def test_script_redirects():
    got = links('<script>window.location.href = "http://r.example/"; location.replace(atob("aHR0cDovL3MuZXhhbXBsZS8="))'
                "</script>")
    assert got["http://r.example/"][1:] == (True, "script-redirect")
    assert got["http://s.example/"][1:] == (True, "script-redirect")


def test_escapes_and_unescape():
    assert js_unescape_literal(r"\x3c\u0061\u{1F600}\101\n\'") == "<a\U0001F600A\n'"
    assert js_unescape_fn("%3C%u535A%zz") == "<博%zz"


def test_deobfuscator_is_bounded():
    # a self-feeding eval chain stops at its depth limit
    code = 'eval("eval(\\"eval(\\\\\\"eval(1)\\\\\\")\\")")'
    assert deobfuscate(code).exhausted
    # a huge concatenation stops at the byte budget
    big = "+".join(['"' + "x" * 1000 + '"'] * 3000)
    rec = deobfuscate(f"document.write({big})", max_bytes=100_000)
    assert rec.exhausted and not rec.markup
    # and a long script at the step budget, without an exception
    rec = deobfuscate("var a = 1;" * 100_000, max_steps=10_000)
    assert rec.exhausted
    # garbage never raises
    for junk in ('document.write(', 'document.write("\\u12', 'x.innerHTML = ((((', "atob(`", "\x00\ud800"):
        deobfuscate(junk)


def test_unknown_values_drop_the_expression_not_the_page():
    rec = deobfuscate('document.write("<a href=" + someUrl() + ">x</a>"); document.write("<b>ok</b>")')
    assert rec.markup == ["<b>ok</b>"]


def test_fragment_budget_flags_truncation():
    script = "<script>document.write('" + "<p>" + "y" * 100_000 + "</p>" + "');</script>"
    r = analyze("<p>x</p>" + script * 30)
    assert r.truncated


def test_legitimate_scripts_give_no_hidden_dark_links():
    doc = ("<p>x</p><script>document.write('<script src=\"/static/jq.js\"><\\/script>');"
           "document.getElementById('y').innerHTML = new Date().getFullYear();</script>"
           "<!--[if lt IE 9]><script src='/h5.js'></script><![endif]-->")
    r = analyze(doc)
    assert [lk for lk in r.links if lk.url] == [] and r.text == "x"


def test_hostile_markup_stays_linear():
    """Many unterminated anchors the tree never holds (the sweep's worst case), deep nesting and
    huge comments finish quickly and flag instead of exploding."""
    import time

    t = time.process_time()
    analyze("<p>x</p><textarea>" + "<a " * 300_000 + "</textarea>")
    analyze("<p>x</p><textarea>" + '<a href="http://e.example/q">' * 50_000 + "</textarea>")
    for deep in ("<div>" * 100_000 + "deep" + "</div>" * 100_000, "<div/>" * 100_000, "<ul><li>" * 50_000):
        r = analyze(deep)
        assert r.truncated  # nested past MAX_DEPTH: the deeper tags were dropped
    assert "deep" in analyze("<div>" * 100_000 + "deep").text
    # an SVG sprite's self-closing paths do not nest: nothing is cut, the text after it stays
    r = analyze("<p>a</p><svg>" + '<path d="M0"/>' * 6000 + "</svg><p>after</p>")
    assert not r.truncated and r.text.split() == ["a", "after"]
    analyze("<p>x</p><!--" + "<a href=/x>y</a>" * 200_000 + "-->")
    many = analyze("<p>x</p>" + ('<script>document.write("a"+' + '"c"+' * 2000 + '"d")</script>') * 400)
    assert many.truncated  # the page's script budget, not one per script
    assert time.process_time() - t < 30


def test_raw_anchor_scan():
    from inspectors.extract.htmlsource import raw_anchors

    got = raw_anchors('<A HREF="x">t<b>u</b></A> <a  href=y>v</a> <abbr href=z>no</abbr> <a/href=w>s</a> <a href=q>')
    assert got == [("x", "t<b>u</b>"), ("y", "v"), ("w", "s"), ("q", "")]
    assert len(raw_anchors("<a href=x>y</a>" * 30_000)) == 20_000
