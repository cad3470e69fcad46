#!/usr/bin/env python3
"""Dark words and hidden links: detection and false positives on generated pages.

    .venv/bin/python bench/darkword_bench.py [--sites 24] [--pages 40] [--seed 1] [--json OUT]
    .venv/bin/python bench/darkword_bench.py --make-ml-set DIR [--per-label 300]

Pages are HTML made from string templates (no Jinja) for ``--sites`` sites of different topics
(news, school, garden, travel, finance, sports, shop, tech…; Chinese and English). Legitimate
pages use ambiguous words in their ordinary sense (叶子 on a garden site, 飞行 on a travel site,
"打击网络赌博" in news, 反洗钱 in finance) and carry harmless hidden links (skip links, collapsed
mobile menus). Dark pages are legitimate pages with one injection:

* a block of hidden links (``display:none``, off-screen, ``font-size:0``, ``height:0;overflow:hidden``,
  a hiding ``<style>`` class, ``visibility:hidden``, or ``document.write``) to gambling/porn/fraud
  domains with dark anchor text;
* hidden or visible spam text with dark words;

and the dark words are obfuscated in a third of them (separators, zero-width characters,
full-width letters, traditional characters, Cyrillic homoglyphs, pinyin and abbreviations).

Pages go through the HTML extractor's visibility analysis (``inspectors.extract.html.analyze``)
and then the ``darkword`` (threshold 2.0) and ``hiddenlink`` inspectors with the starter lexicon
(``inspectors.darkword.DEFAULT_LEXICON``). The background model is learned from separate
legitimate pages of the same sites. A dark page is detected when either inspector reports it; a
legitimate page with any finding is a false positive. Exits 1 below 95 % detection or above 1 %
false positives.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TOPICS: dict[str, dict[str, list[str]]] = {
    "news": {"zh": ["本市今日召开新闻发布会，介绍城市更新的最新进展。",
                    "警方近日开展专项行动，严厉打击网络赌博和电信诈骗犯罪。",
                    "气象台预报明天有小雨，气温略有下降。", "加拿大大麻合法化五周年，专家评估其社会影响。",
                    "市民可以通过政务服务平台在线办理业务。", "地铁新线路预计年底开通运营。"],
             "en": ["The city council met today to discuss the new budget.", "Police warned residents about online "
                    "gambling scams targeting students.", "Heavy rain is expected across the region tomorrow."]},
    "school": {"zh": ["学校举行春季运动会，同学们积极参加比赛。", "图书馆延长开放时间，方便学生复习备考。",
                      "招生办公室发布今年的招生简章。", "老师带领学生观察校园里的树木和叶子。"],
               "en": ["The school library will stay open until ten during exam week.", "Admissions for the autumn "
                      "term are now open."]},
    "garden": {"zh": ["秋天到了，院子里的叶子慢慢变黄。", "月季需要充足的阳光和排水良好的土壤。",
                      "修剪枯黄的叶子可以让植物长得更好。",
                      "茶叶子采摘后要及时摊晾。"],
               "en": ["Remove yellow leaves to keep the plant healthy.", "Water tomatoes early in the morning."]},
    "travel": {"zh": ["从北京到上海的飞行时间大约两个小时。", "这座古城保留了许多明清时期的建筑。",
                      "冬天可以去公园的溜冰场玩。",
                      "飞行途中请系好安全带。"],
               "en": ["The Monte Carlo casino building is a famous example of Belle Epoque architecture.",
                      "Our flight took off on time and landed in Lisbon at noon.", "The old town is best explored "
                      "on foot."]},
    "finance": {"zh": ["银行提醒客户警惕信用卡套现风险。", "央行发布反洗钱工作报告。",
                       "本季度公司营收同比增长百分之八。",
                       "投资有风险，入市需谨慎。"],
                "en": ["The central bank published its anti-money-laundering report.", "Quarterly revenue grew eight "
                       "percent."]},
    "sports": {"zh": ["国家队在比赛中以二比一获胜。", "花样滑冰和溜冰运动在冬季很受欢迎。", "马拉松比赛将于下月举行。"],
               "en": ["The home team won two to one in extra time.", "Registration for the city marathon opens "
                      "next week."]},
    "shop": {"zh": ["全场商品满一百减二十，欢迎选购。", "新款运动鞋已经到货。", "七天无理由退换货。"],
             "en": ["Free shipping on orders over fifty dollars.", "New arrivals: spring jackets and sneakers."]},
    "tech": {"zh": ["新版本修复了若干已知问题并提升了性能。", "开发者大会将发布新的编程工具。",
                    "无人机飞行控制系统升级。"],
             "en": ["The new release fixes several bugs and improves performance.", "Our drone flight controller "
                    "now supports waypoints."]},
}
SITE_WORDS = ("city", "campus", "green", "trip", "money", "sport", "buy", "dev", "daily", "home", "star", "blue")
GOOD_DOMAINS = ("weibo.com", "qq.com", "gov.cn", "edu.cn", "example.org", "wikipedia.org")

DARK_ANCHORS = {
    "gambling": ["六合彩", "博彩", "网上赌场", "百家乐", "时时彩", "真人荷官", "开户送彩金", "澳门葡京", "bocai",
                 "casino",
                 "baccarat"],
    "pornography": ["成人视频", "黄色网站", "裸聊", "约炮", "porn", "av女优", "无码"],
    "fraud": ["代开发票", "办证", "刷单", "黑客接单", "假证", "贷款秒批"],
    "drugs": ["冰毒", "麻古", "摇头丸", "K粉"],
}
DARK_DOMAINS = ("bocai{n}.com", "liuhecai{n}.net", "lhc{n}.cc", "casino-{n}.vip", "dubo{n}.com", "bjl{n}.top",
                "porn{n}.xyz", "seqing{n}.com", "yuepao{n}.net", "daikai{n}.cn", "xyz{n}.com", "go{n}.top")
SPAM_TEMPLATES = ("{a}，{b}，{c}，信誉保证，24小时在线。", "最新{a}，{b}首选平台，注册即送{c}。",
                  "{a} {b} {c} 官方网站",
                  "Best {a} and {b} online, {c} today.")
HIDERS = (
    ('<div style="display:none">', "</div>"),
    ('<div style="position:absolute;left:-9999px;top:-9999px">', "</div>"),
    ('<p style="font-size:0">', "</p>"),
    ('<div style="height:0;overflow:hidden">', "</div>"),
    ('<div style="visibility:hidden">', "</div>"),
    ('<style>.sl{{display:none}}</style><div class="sl">', "</div>"),
    ("<marquee style=\"position:absolute;top:-800px\">", "</marquee>"),
)
_T2 = str.maketrans({"场": "場", "网": "網", "门": "門", "证": "證", "发": "發", "彩": "彩", "赌": "賭", "视": "視",
                     "频": "頻", "黄": "黃", "聊": "聊", "约": "約", "开": "開", "户": "戶", "贷": "貸", "款": "款"})
_CYR = str.maketrans({"a": "а", "c": "с", "o": "о", "p": "р", "e": "е", "x": "х"})


def obfuscate(word: str, rng: random.Random) -> str:
    """One of the obfuscations a spammer uses (the keyword engine's normalisations undo them)."""
    k = rng.randrange(6)
    if word.isascii():
        if k == 0:
            return word.translate(_CYR)
        if k == 1:
            return "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in word)  # full-width
        if k == 2:
            return " ".join(word)
        if k == 3:
            return word.upper()
        return "\u200b".join(word)
    if k in (0, 1):
        return word.translate(_T2)
    if k == 2:
        return ".".join(word)
    if k == 3:
        return "\u200b".join(word)
    if k == 4:
        return " ".join(word)
    return "★".join(word)


def _sentences(topic: str, rng: random.Random, n: int) -> list[str]:
    t = TOPICS[topic]
    return [rng.choice(t["zh"] if rng.random() < 0.7 else t["en"]) for _ in range(n)]


def make_sites(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    topics = list(TOPICS)
    out = []
    for i in range(n):
        topic = topics[i % len(topics)]
        out.append((f"www.{rng.choice(SITE_WORDS)}{topic}{i}.com.cn", topic))
    return out


def legit_page(host: str, topic: str, rng: random.Random) -> str:
    paras = "".join(f"<p>{s}</p>" for s in _sentences(topic, rng, rng.randrange(3, 9)))
    nav = "".join(f'<a href="https://{host}/{p}">{label}</a> ' for p, label in
                  (("", "首页"), ("news", "新闻"), ("about", "关于我们"), ("contact", "联系我们")))
    hidden_ok = ""
    r = rng.random()
    if r < 0.5:
        hidden_ok += '<a href="#main" style="position:absolute;left:-9999px">跳到主要内容</a>'
    if rng.random() < 0.4:
        hidden_ok += ('<ul class="m" style="display:none">' + "".join(
            f'<li><a href="https://{host}/{p}">{p}</a></li>' for p in ("list", "page2", "sitemap")) + "</ul>")
    if rng.random() < 0.3:
        hidden_ok += f'<a style="display:none" href="https://{rng.choice(GOOD_DOMAINS)}/share">分享</a>'
    return (f"<html><head><meta charset='utf-8'><title>{topic} {host}</title></head><body>{hidden_ok}"
            f"<nav>{nav}</nav><main id='main'>{paras}</main><footer>© 2024 {host} 版权所有</footer></body></html>")


def dark_page(host: str, topic: str, rng: random.Random) -> tuple[str, str]:
    """(html, kind of injection)."""
    base = legit_page(host, topic, rng)
    cats = rng.sample(list(DARK_ANCHORS), rng.randrange(1, 3))
    words = [w for c in cats for w in DARK_ANCHORS[c]]
    obf = rng.random() < 0.35

    def w() -> str:
        x = rng.choice(words)
        return obfuscate(x, rng) if obf else x

    kind = rng.choice(("links", "links", "links", "hidden-text", "spam-text", "script"))
    if kind in ("links", "script"):
        links = []
        for _ in range(rng.randrange(1, 9)):
            dom = rng.choice(DARK_DOMAINS).format(n=rng.randrange(10, 9999))
            anchor = w() if rng.random() < 0.8 else rng.choice(("点击进入", "官网", "more", "入口"))
            links.append(f'<a href="http://www.{dom}/">{anchor}</a>')
        if kind == "script":
            inj = "<script>document.write('" + "".join(links) + "');</script>"
        else:
            open_, close = rng.choice(HIDERS)
            inj = open_.replace("{{", "{").replace("}}", "}") + " ".join(links) + close
    elif kind == "hidden-text":
        open_, close = rng.choice(HIDERS)
        inj = open_.replace("{{", "{").replace("}}",
                            "}") + rng.choice(SPAM_TEMPLATES).format(a=w(), b=w(), c=w()) + close
    else:
        inj = "<p>" + rng.choice(SPAM_TEMPLATES).format(a=w(), b=w(), c=w()) + "</p>"
    at = base.index("<footer>") if rng.random() < 0.5 else base.index("<nav>")
    return base[:at] + inj + base[at:], kind + ("+obfuscated" if obf else "")


# --------------------------------------------------------------------------- injection grammar

POSITIONS = ("body", "after-html", "frameset", "stray-frameset", "noframes", "comment", "unclosed-comment",
             "noscript", "template", "misnested")
ENCODINGS = ("plain", "unescape-pct", "unescape-u", "fromcharcode", "atob", "hex-escapes", "unicode-escapes",
             "concat", "decodeuricomponent", "innerhtml", "eval-unescape", "nested-write")


def _js_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("</", "<\\/") + '"'


def script_encode(markup: str, encoding: str, rng: random.Random) -> str:
    """``markup`` written by an inline script in one of the forms spam injectors use."""
    from base64 import b64encode
    from urllib.parse import quote

    if encoding == "plain":
        expr = _js_str(markup)
    elif encoding == "unescape-pct":  # %XX for ASCII, %uXXXX for the rest (what unescape decodes)
        expr = 'unescape("' + "".join(f"%{ord(c):02X}" if ord(c) < 128 else f"%u{ord(c):04X}" for c in markup) + '")'
    elif encoding == "unescape-u":
        expr = 'unescape("' + "".join(f"%u{ord(c):04X}" for c in markup) + '")'
    elif encoding == "fromcharcode":
        expr = "String.fromCharCode(" + ",".join(str(ord(c)) for c in markup) + ")"
    elif encoding == "atob":  # the UTF-8 idiom: decodeURIComponent(escape(atob(…)))
        b64 = b64encode(markup.encode()).decode()
        expr = f'atob("{b64}")' if markup.isascii() else f'decodeURIComponent(escape(atob("{b64}")))'
    elif encoding == "hex-escapes":
        expr = '"' + "".join(f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" for c in markup) + '"'
    elif encoding == "unicode-escapes":
        expr = '"' + "".join(f"\\u{ord(c):04x}" for c in markup) + '"'
    elif encoding == "concat":
        cuts = sorted(rng.sample(range(1, len(markup)), min(len(markup) - 1, rng.randrange(3, 12))))
        pieces = [markup[i:j] for i, j in zip([0, *cuts], [*cuts, len(markup)])]
        expr = "+".join(_js_str(p) for p in pieces)
    elif encoding == "decodeuricomponent":
        expr = 'decodeURIComponent("' + quote(markup, safe="") + '")'
    elif encoding == "innerhtml":
        var = rng.choice(("d", "box", "el"))
        return (f'<div id="{var}x"></div><script>var {var} = document.getElementById("{var}x"); '
                f"{var}.innerHTML = {_js_str(markup)};</script>")
    elif encoding == "eval-unescape":
        inner = "document.write(" + _js_str(markup) + ");"
        return '<script>eval(unescape("' + "".join(f"%u{ord(c):04X}" for c in inner) + '"));</script>'
    elif encoding == "nested-write":
        inner = "<script>document.write(" + _js_str(markup) + ")</scr"
        return "<script>document.write(" + _js_str(inner) + '+"ipt>");</script>'
    else:
        raise ValueError(encoding)
    var = rng.choice(("s", "_0x1a2b", "html"))
    if rng.random() < 0.5:
        return f"<script>var {var} = {expr}; document.write({var});</script>"
    return f"<script type=\"text/javascript\">document.write({expr});</script>"


def dark_links(rng: random.Random, words: list[str], n: int | None = None) -> list[str]:
    out = []
    for i in range(n or rng.randrange(1, 6)):
        dom = rng.choice(DARK_DOMAINS).format(n=rng.randrange(10, 9999))
        anchor = rng.choice(words) if i == 0 or rng.random() < 0.8 else rng.choice(("点击进入", "官网", "more", "入口"))
        out.append(f'<a href="http://www.{dom}/">{anchor}</a>')
    return out


def inject(base: str, markup: str, position: str, rng: random.Random) -> str:
    """``base`` (a legitimate page) with ``markup`` placed where injectors put it (see POSITIONS).
    ``markup`` here is already hidden by the caller where the position renders it."""
    body_at = base.index("<footer>") if rng.random() < 0.5 else base.index("<nav>")
    if position == "body":
        return base[:body_at] + markup + base[body_at:]
    if position == "after-html":
        return base + "\n" + markup + ("\n" if rng.random() < 0.5 else "")
    if position == "frameset":  # a frameset page: links inside <frameset> are dropped by browsers
        head = base[:base.index("<body>")]
        return f'{head}<frameset cols="100%"><frame src="/main.html">{markup}</frameset></html>'
    if position == "stray-frameset":  # <frameset> inside a page with a body: ignored, its content stays
        return base[:body_at] + "<frameset>" + markup + "</frameset>" + base[body_at:]
    if position == "noframes":
        head = base[:base.index("<body>")]
        return (f'{head}<frameset cols="100%"><frame src="/main.html"><noframes><body>{markup}</body></noframes>'
                "</frameset></html>")
    if position == "comment":
        return base[:body_at] + "<!-- " + markup + " -->" + base[body_at:]
    if position == "unclosed-comment":
        return base.replace("</html>", "") + "<!--" + markup
    if position == "noscript":
        return base[:body_at] + "<noscript>" + markup + "</noscript>" + base[body_at:]
    if position == "template":
        return base[:body_at] + "<template>" + markup + "</template>" + base[body_at:]
    if position == "misnested":  # an unclosed hider with misnested inline tags around the links
        return base[:body_at] + '<b><div style="display:none"><i>' + markup + "</b></i>" + base[body_at:]
    raise ValueError(position)


def injected_page(host: str, topic: str, rng: random.Random, position: str, encoding: str | None) -> str:
    """A legitimate page with hidden dark links placed at ``position``; ``encoding`` (one of
    ENCODINGS, or None) writes them through an inline script."""
    base = legit_page(host, topic, rng)
    cats = rng.sample(list(DARK_ANCHORS), rng.randrange(1, 3))
    words = [w for c in cats for w in DARK_ANCHORS[c]]
    markup = " ".join(dark_links(rng, words))
    if position in ("body", "after-html", "stray-frameset") or encoding is not None:
        open_, close = rng.choice(HIDERS)
        markup = open_.replace("{{", "{").replace("}}", "}") + markup + close
    if encoding is not None:
        markup = script_encode(markup, encoding, rng)
    return inject(base, markup, position, rng)


_LEGIT_SCRIPTS = (
    "<script>var _hmt = _hmt || []; (function() { var hm = document.createElement('script'); "
    "hm.src = 'https://hm.example.org/hm.js?abc'; var s = document.getElementsByTagName('script')[0]; "
    "s.parentNode.insertBefore(hm, s); })();</script>",
    "<script>document.write('<script src=\"/static/jquery.min.js\"><\\/script>');</script>",
    "<script>document.getElementById('year').innerHTML = new Date().getFullYear();</script>",
    "<script>var menu = '<ul>' + '<li><a href=\"/news\">新闻</a></li>' + '<li><a href=\"/about\">关于我们</a></li>' "
    "+ '</ul>'; document.getElementById('nav2').innerHTML = menu;</script>",
    "<script>function acceptCookies(){document.cookie='ok=1';document.getElementById('cb').style.display='none';}"
    "document.write('<div id=\"cb\" class=\"cookie-banner\">本站使用Cookie以改善体验 <a href=\"/privacy\">隐私政策</a>"
    " <button onclick=\"acceptCookies()\">同意</button></div>');</script>",
    "<script>if (location.protocol !== 'https:') { location.href = 'https:' + window.location.href.substring("
    "window.location.protocol.length); }</script>",
    "<script>document.write(unescape('%3Cscript src=%22/js/stat.js%22%3E%3C/script%3E'));</script>",
    "<!--[if lt IE 9]><script src=\"/js/html5shiv.js\"></script><![endif]-->",
    "<!-- <a href=\"/old-index.html\">旧版首页</a> -->",
    "<noscript><img src=\"/pixel.gif?ns=1\" alt=\"\">请启用JavaScript以获得完整体验</noscript>",
    "<template id=\"row\"><tr><td class=\"name\"></td><td><a href=\"/detail\">详情</a></td></tr></template>",
    "<a class=\"skip\" href=\"#content\" style=\"position:absolute;left:-10000px\">Skip to content</a>",
)


def legit_variant(host: str, topic: str, rng: random.Random) -> str:
    """A legitimate page with the scripts, comments, banners and skip-links real sites carry."""
    base = legit_page(host, topic, rng)
    extra = "".join(rng.sample(_LEGIT_SCRIPTS, rng.randrange(2, 6)))
    at = base.index("<footer>")
    page = base[:at] + '<span id="year"></span><div id="nav2"></div>' + extra + base[at:]
    if rng.random() < 0.2:  # trailing tracking markup after </html>, as CMSs leave it
        page += '\n<script>var _paq=[];_paq.push(["trackPageView"]);</script>'
    if rng.random() < 0.1:
        head = page[:page.index("<body>")]
        page = (f'{head}<frameset rows="80,*"><frame src="/top.html"><frame src="/main.html"><noframes>'
                f'<body>您的浏览器不支持框架。<a href="https://{host}/main.html">进入首页</a></body></noframes>'
                "</frameset></html>")
    return page


def page_object(html: str, host: str, oid: str):  # type: ignore[no-untyped-def]
    """A content object as the HTML extractor would leave it (text, hidden text, links)."""
    from appliance.model.content import ContentObject
    from appliance.model.streams import Direction
    from inspectors.extract.html import analyze

    res = analyze(html, base_url=f"http://{host}/")
    data = html.encode("utf-8")
    return ContentObject(id=oid, source="http", direction=Direction.TO_CLIENT, flow=None, ts_ns=0, size=len(data),
                         md5="", sha256="", declared_mime="text/html", data=data, host=host, url=f"http://{host}/",
                         text=res.text, hidden_text=res.hidden_text or None, links=tuple(res.links))


# --------------------------------------------------------------------------- ML labelled set

ML_HARMFUL = {
    "gambling": ["最新{a}开奖结果，{b}平台注册即送彩金。", "Play {a} online, {b} bonus for new players.",
                 "{a}官方网站，{b}在线投注，返水高。", "真人{a}，{b}秒到账，信誉平台。"],
    "fraud": ["专业{a}，{b}，价格优惠，联系客服。", "We offer {a} and {b}, fast and cheap, contact us.",
              "低价{a}，{b}，全国包邮，不成功不收费。"],
    "pornography": ["{a}免费在线观看，{b}高清无码。", "Free {a} videos, {b} every day.",
                    "{a}视频，{b}直播，成人专区。"],
}
ML_FILL = {
    "gambling": ["六合彩", "百家乐", "时时彩", "老虎机", "博彩", "casino", "poker", "slots", "roulette",
                 "sports betting"],
    "fraud": ["代开发票", "办证", "刷单", "套现", "假证", "fake diplomas", "invoice services", "account boosting"],
    "pornography": ["成人", "色情", "裸聊", "av", "adult", "xxx", "webcam girls", "nude"],
}


def make_ml_set(root: str | Path, per_label: int = 300, seed: int = 1) -> dict[str, int]:
    """A labelled folder set (EN + ZH): ``root/benign``, ``gambling``, ``fraud``, ``pornography``."""
    rng = random.Random(seed)
    root = Path(root)
    counts: dict[str, int] = {}
    for label in ("benign", *ML_HARMFUL):
        d = root / label
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_label):
            topic = rng.choice(list(TOPICS))
            sents = _sentences(topic, rng, rng.randrange(2, 6))
            if label != "benign":
                for _ in range(rng.randrange(1, 4)):
                    fill = ML_FILL[label]
                    sents.insert(rng.randrange(len(sents) + 1),
                                 rng.choice(ML_HARMFUL[label]).format(a=rng.choice(fill), b=rng.choice(fill)))
            (d / f"{label}{i:05d}.txt").write_text("\n".join(sents), encoding="utf-8")
        counts[label] = per_label
    return counts


# --------------------------------------------------------------------------- bench


def injection_grammar(seed: int, rounds: int) -> dict[str, object]:
    """Detection over every (position, script encoding) pair and false positives on legitimate
    pages with real-world scripts, with the hidden-link inspector and the starter lexicon."""
    from appliance.model.inspection import InspectorConfig
    from inspectors.base import InspectContext
    from inspectors.darkword import DEFAULT_LEXICON
    from inspectors.hiddenlink import HiddenLinkInspector

    hl = HiddenLinkInspector()
    hl.configure(InspectorConfig("hiddenlink", DEFAULT_LEXICON))
    rng = random.Random(seed)
    sites = make_sites(12, seed)
    combos = [(p, None) for p in POSITIONS] + [(p, e) for p in POSITIONS for e in ENCODINGS]
    by_pos: dict[str, list[int]] = {}
    by_enc: dict[str, list[int]] = {}
    tp = n = 0
    for r in range(rounds):
        for i, (pos, enc) in enumerate(combos):
            host, topic = sites[(i + r) % len(sites)]
            obj = page_object(injected_page(host, topic, rng, pos, enc), host, f"I{n}")
            hit = int(bool(list(hl.inspect(obj, InspectContext()))))
            n += 1
            tp += hit
            for d, k in ((by_pos, pos), (by_enc, enc or "markup")):
                d.setdefault(k, [0, 0])
                d[k][0] += hit
                d[k][1] += 1
    fp = 0
    n_legit = 40 * rounds
    for i in range(n_legit):
        host, topic = sites[i % len(sites)]
        fp += bool(list(hl.inspect(page_object(legit_variant(host, topic, rng), host, f"L{i}"), InspectContext())))
    return {"n": n, "tp": tp, "fp": fp, "legit": n_legit,
            "by_position": {k: f"{a}/{b}" for k, (a, b) in by_pos.items()},
            "by_encoding": {k: f"{a}/{b}" for k, (a, b) in by_enc.items()}}


def _print_injections(inj: dict) -> None:  # type: ignore[type-arg]
    print(f"\nhidden-link injection grammar (hiddenlink inspector alone): {inj['tp']}/{inj['n']} "
          f"({100 * inj['tp'] / inj['n']:.1f} %) detected; legitimate pages with scripts/comments/frames/banners: "
          f"{inj['fp']}/{inj['legit']} false positives")
    print("by position: " + ", ".join(f"{k} {v}" for k, v in inj["by_position"].items()))
    print("by script encoding: " + ", ".join(f"{k} {v}" for k, v in inj["by_encoding"].items()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sites", type=int, default=24)
    ap.add_argument("--pages", type=int, default=40, help="legitimate and dark pages per site (each)")
    ap.add_argument("--learn-pages", type=int, default=40, help="legitimate pages per site for the background model")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--injection-rounds", type=int, default=3, help="pages per (position, encoding) pair")
    ap.add_argument("--json")
    ap.add_argument("--make-ml-set", metavar="DIR")
    ap.add_argument("--per-label", type=int, default=300)
    args = ap.parse_args(argv)
    if args.make_ml_set:
        print(make_ml_set(args.make_ml_set, args.per_label, args.seed))
        return 0

    from appliance.model.inspection import InspectorConfig
    from inspectors.base import InspectContext
    from inspectors.darkword import DEFAULT_LEXICON, BackgroundModel, DarkwordInspector, DarkwordMatcher
    from inspectors.hiddenlink import HiddenLinkInspector
    from inspectors.text import extract_text  # noqa: F401  (ensures the text module imports)

    t0 = time.perf_counter()
    sites = make_sites(args.sites, args.seed)
    rng = random.Random(args.seed + 1)
    # background model from separate legitimate pages
    matcher = DarkwordMatcher(DEFAULT_LEXICON)
    model = BackgroundModel(matcher.words)
    for host, topic in sites:
        for _ in range(args.learn_pages):
            obj = page_object(legit_page(host, topic, rng), host, "Flearn")
            words = {o.word for o in matcher.find(obj.text or "")}
            words |= {o.word for o in matcher.find(obj.hidden_text or "")}
            model.add_page(words, host)
    model_path = Path("/tmp") / f"tapsift-dw-model-{args.seed}.json"
    model.save(model_path)
    t_learn = time.perf_counter() - t0

    def inspectors(with_model: bool) -> tuple[DarkwordInspector, HiddenLinkInspector]:
        dw = DarkwordInspector()
        dw.configure(InspectorConfig("darkword", DEFAULT_LEXICON,
                                     {"model": str(model_path)} if with_model else {}))
        hl = HiddenLinkInspector()
        hl.configure(InspectorConfig("hiddenlink", DEFAULT_LEXICON))
        return dw, hl

    pages: list[tuple[str, str, str]] = []  # (html, host, kind)
    for host, topic in sites:
        for _ in range(args.pages):
            pages.append((legit_page(host, topic, rng), host, "legit"))
            html, kind = dark_page(host, topic, rng)
            pages.append((html, host, kind))
    objs = [(page_object(h, host, f"F{i}"), kind) for i, (h, host, kind) in enumerate(pages)]
    results = {}
    for with_model in (False, True):
        dw, hl = inspectors(with_model)
        tp = fp = n_dark = n_legit = 0
        by_kind: Counter[str] = Counter()
        by_kind_n: Counter[str] = Counter()
        by_inspector: Counter[str] = Counter()
        fps: list[str] = []
        misses: list[str] = []
        examples: dict[str, str] = {}
        t = time.perf_counter()
        for obj, kind in objs:
            ctx = InspectContext()
            found = list(dw.inspect(obj, ctx)) + list(hl.inspect(obj, ctx))
            for f in found:
                by_inspector[f.inspector] += 1
                if f.inspector not in examples and kind != "legit":
                    examples[f.inspector] = json.dumps({"rule": f.rule, "score": f.score, **f.detail},
                                                       ensure_ascii=False)
            if kind == "legit":
                n_legit += 1
                if found:
                    fp += 1
                    fps.append(f"{obj.host}: " + " | ".join(f"{f.inspector} {f.detail.get('words', '')}"
                                                           for f in found))
            else:
                n_dark += 1
                base = kind.split("+")[0]
                by_kind_n[base] += 1
                if found:
                    tp += 1
                    by_kind[base] += 1
                else:
                    misses.append(f"{kind}: {(obj.hidden_text or '')[:80]!r} / {(obj.text or '')[-120:]!r}")
        dt = time.perf_counter() - t
        results[with_model] = {"detection": tp / n_dark, "false_positive_rate": fp / n_legit, "dark": n_dark,
                               "legit": n_legit, "fp": fp, "tp": tp, "by_kind": {k: by_kind[k] / by_kind_n[k]
                                                                                  for k in by_kind_n},
                               "ms_per_page": dt / len(objs) * 1000, "examples": examples,
                               "fps": fps[:5], "misses": misses[:5], "by_inspector": dict(by_inspector)}
    print(f"{len(sites)} sites; background model from {args.learn_pages * len(sites)} legitimate pages "
          f"({t_learn:.1f} s); {len(objs)} test pages (half legitimate, half with an injection, 35 % of those "
          "obfuscated)\n")
    print("| configuration | detection | false positives | ms/page (both inspectors) |\n|---|---|---|---|")
    for wm, r in results.items():
        print(f"| {'priors + background model' if wm else 'priors only'} | {r['tp']}/{r['dark']} "
              f"({100 * r['detection']:.1f} %) | {r['fp']}/{r['legit']} ({100 * r['false_positive_rate']:.2f} %) | "
              f"{r['ms_per_page']:.1f} |")
    r = results[True]
    print("\ndetection by injection (with the model): " + ", ".join(f"{k} {100 * v:.1f} %"
                                                                     for k, v in sorted(r["by_kind"].items())))
    print("findings by inspector: " + ", ".join(f"{k} {v}" for k, v in sorted(r["by_inspector"].items())))
    for k, ex in r["examples"].items():
        print(f"\nexample {k} finding: {ex}")
    for x in r["fps"]:
        print(f"  false positive: {x}")
    for x in r["misses"]:
        print(f"  miss: {x}")
    inj = injection_grammar(args.seed, args.injection_rounds)
    _print_injections(inj)
    results["injections"] = inj
    ok = r["detection"] >= 0.95 and r["false_positive_rate"] <= 0.01 and inj["tp"] >= 0.95 * inj["n"] \
        and inj["fp"] == 0
    print("\nPASS" if ok else "\nFAIL", f"(detection ≥ 95 %: {r['detection'] >= 0.95}; "
          f"false positives ≤ 1 %: {r['false_positive_rate'] <= 0.01})")
    if args.json:
        Path(args.json).write_text(json.dumps({str(k): v for k, v in results.items()}, indent=2, ensure_ascii=False))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
