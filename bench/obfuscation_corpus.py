"""Seeded obfuscation corpus for the keyword inspector (shared by tests and ``keyword_bench``).

* Positives: every keyword of ``EN_KEYWORDS``/``ZH_KEYWORDS`` obfuscated by each transform
  (``TRANSFORMS``: nfkc, case, t2s, invisible, control, separators, homoglyph, leet, diacritics,
  mixed, plus ``plain``), ``variants`` times, each inside a sentence of clean filler.
  A transform that cannot apply to a keyword (no upper case in Chinese) is skipped.
* Decoys: clean filler sentences, half of them with a near miss: a keyword prefix, a keyword
  with one letter changed, a keyword split into two words by a space (``the rapist``), a
  ``word``-mode keyword inside a longer word, CJK keywords cut short, reversed or with a foreign
  character inside, and number/unit tokens (``2010s``, ``mp3``, ``5g``) that leetspeak could
  turn into letters.

The obfuscations are written from their own tables (not from ``inspectors.normalize``), so the
test is not circular. ``bench_keywords`` and ``mixed_text`` make the benchmark's 10,000
keywords and its large mixed EN/ZH text.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from appliance.model.inspection import KeywordSpec, ListSpec

EN_KEYWORDS = (
    "falungong", "tiananmen", "explosive", "detonator", "firearm", "cocaine", "heroin",
    "methamphetamine", "counterfeit", "phishing", "ransomware", "botnet", "gambling", "keylogger",
    "darknet", "smuggling", "sniper rifle", "assassination", "extremist", "terrorist", "jihadist",
    "carding", "skimmer", "narcotics", "kidnapping", "bomb", "gun", "drugs", "escort service",
    "money laundering",
)
WORD_MODE = frozenset({"bomb", "gun", "drugs"})
ZH_KEYWORDS = (
    "法轮功", "翻墙软件", "六四事件", "天安门", "台独", "藏独", "代开发票", "枪支弹药", "冰毒",
    "海洛因", "摇头丸", "赌博网站", "六合彩", "办证", "假币", "迷药", "窃听器", "黑客攻击",
    "木马程序", "钓鱼网站", "诈骗", "传销", "邪教", "大法弟子", "游行示威", "人体炸弹",
    "恐怖袭击", "自焚", "VPN代理", "翻墙",
)
TRANSFORMS = ("plain", "nfkc", "case", "t2s", "invisible", "control", "separators", "homoglyph",
              "leet", "diacritics", "mixed")

_EN_FILLER_TEXT = (
    "the of and to in is was for on that with as by at from this have are be not which or had his her "
    "they we you all were when there can their one more been has would will out about so up what some "
    "time into only other could new these two may then first any like over such our after most also made "
    "many before must through back years where much your way well down should because each just those "
    "people how too little state good very make world still own see men work long get here between both "
    "life being under never day same another know while last might us great old year off come since "
    "against go came right used take three states himself few house use during without again place "
    "american around however home small found thought went say part once general high upon school every "
    "does got united left number course war until always away something fact though water less public put "
    "think almost hand enough far took head yet government system better set told nothing night end why "
    "called eyes find going look asked later knew point next program city business give group toward "
    "young days let room president side social given present several order national possible rather "
    "second face per among form important often things looked early white case john become large big need "
    "four within felt children along saw best church ever least power development light thing seemed "
    "family interest want members mind country area others done turned although open god service certain "
    "kind problem began different door thus help sense means whole matter perhaps itself york times human "
    "law line above name example action company hands local show whether five history gave today either "
    "act feet across taken past quality report press meeting weather garden river mountain teacher "
    "student library coffee music picture window travel morning friend email server network update "
    "download photo video market weekend station bottle dinner kitchen doctor hospital airport ticket "
    "holiday birthday camera football basketball don't it's we'll e-mail co-op self-esteem well-known "
    "x-ray u.s. e.g."
)
_EN_FILLER = tuple(_EN_FILLER_TEXT.split())
_ZH_FILLER_CHARS = (
    "我们今天气很好学习工作朋友城市公司展经济文化技术络的是了在有不这个上为以到说时要就出会可也你对生能而子那得于着下"
    "自之年过后作里用道行所然家种事成方多经么去法学如都同现当没动面起看定小好还进部其些主样理心她本前开但因只从想实"
    "日军者意无力它与长把机十民第公此已工使情明性知全三又关点正业外将两高间由问很最重并物手应战向头文体政美相见被利"
    "什二等产或新己制身果加西斯月话合回特代内信表化老给世位次度门任常先海通教儿原东声提立及比员解水名真论处走义各入"
    "几口认条平系气题活尔更别打女变四神总何电数安少报才结反受目太量再感建务做接必场件计管期市直德资命山金指克许统区"
    "保至队形社便空决治展马科司五基眼书非则听白却界达光放强即像难且权思王象完设式色路记南品住告类求据程北边死张该交"
    "规万取拉格望觉术领共确传师观清今切院让识候带导争运笑飞风步改收根干造言联持组每济车亲极林服快办议往元英士证近失"
).replace("法", "").replace("功", "")
_ZH_FILLER_WORDS = ("今天", "天气", "朋友", "城市", "公司", "经济", "文化", "技术", "网络", "学习", "工作",
                    "音乐", "咖啡", "图书馆", "火车站", "医生", "周末", "电影", "晚饭", "厨房")

# obfuscation tables, independent of inspectors.normalize
_HOMO = {"a": "аα", "c": "сϲ", "e": "еε", "o": "оοօ", "p": "рρ", "x": "хχ", "y": "уү", "i": "іι",
         "j": "ј", "s": "ѕ", "h": "һ", "k": "κк", "n": "ո", "v": "ν", "b": "в", "t": "т", "m": "м"}
_LEET = {"o": "0", "e": "3", "a": "4@", "s": "5$", "t": "7", "l": "1", "i": "1"}
_INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e", "\u200e")
_CONTROL = ("\x00", "\x01", "\x02", "\x07", "\x08", "\x0e", "\x1b", "\x7f", "\x9f")
_EN_SEPS = (" ", ".", "-", "_", "*", "|", "/", "+", "~", "'", "•")
_ZH_SEPS = (" ", "-", "·", "，", "*", "/", "　", "。", "、", "_", ".", "|", "\n")
_COMBINING = ("\u0301", "\u0300", "\u0308", "\u0302", "\u0303", "\u0327", "\u030c", "\u0336")


@dataclass(slots=True)
class Sample:
    """One corpus text: ``keyword`` is what must be found (None for a decoy)."""

    text: str
    keyword: str | None
    lang: str
    transform: str


@dataclass(slots=True)
class Corpus:
    positives: list[Sample] = field(default_factory=list)
    decoys: list[Sample] = field(default_factory=list)


def _is_cjk(c: str) -> bool:
    return "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf"


def _nfkc_sources() -> dict[str, list[str]]:
    """Characters whose NFKC is a given single character (full-width, math, circled, Kangxi…)."""
    out: dict[str, list[str]] = {}
    for lo, hi in ((0xFF01, 0xFF5E), (0x1D400, 0x1D6A3), (0x24B6, 0x24E9), (0x2F00, 0x2FD5),
                   (0xF900, 0xFAD9), (0x2F800, 0x2FA1D), (0x3280, 0x32B0)):
        for cp in range(lo, hi + 1):
            c = chr(cp)
            n = unicodedata.normalize("NFKC", c)
            if len(n) == 1 and n != c:
                out.setdefault(n, []).append(c)
                out.setdefault(n.lower(), []).append(c) if n.isupper() else None
    return out


_NFKC_SRC = _nfkc_sources()


def _s2t() -> Callable[[str], str]:
    try:
        import opencc
    except ImportError:  # pragma: no cover
        return lambda s: s
    conv = opencc.OpenCC("s2t")
    return conv.convert


_TO_TRAD = _s2t()


def _pick_positions(rng: random.Random, n: int, k: int) -> list[int]:
    return sorted(rng.sample(range(n), min(n, k)))


def _subset(rng: random.Random, idx: list[int]) -> set[int]:
    """A random non-empty subset of ``idx``."""
    return {i for i in idx if rng.random() < 0.6} or {rng.choice(idx)}


def obfuscate(keyword: str, transform: str, rng: random.Random) -> str | None:
    """``keyword`` disguised by ``transform``; None when the transform cannot apply."""
    kw = keyword
    letters = [i for i, c in enumerate(kw) if c.isascii() and c.isalpha()]
    if transform == "plain":
        return kw
    if transform == "nfkc":
        idx = [i for i, c in enumerate(kw) if c in _NFKC_SRC]
        if not idx:
            return None
        chosen = _subset(rng, idx)
        return "".join(rng.choice(_NFKC_SRC[c]) if i in chosen else c for i, c in enumerate(kw))
    if transform == "case":
        if not letters:
            return None
        out = "".join(c.upper() if rng.random() < 0.5 else c for c in kw)
        return out if out != kw else kw.upper()
    if transform == "t2s":
        trad = _TO_TRAD(kw)
        return trad if trad != kw else None
    if transform in ("invisible", "control"):
        pool = _INVISIBLE if transform == "invisible" else _CONTROL
        chars = list(kw)
        for i in sorted(_pick_positions(rng, len(kw) - 1, rng.randint(1, max(1, len(kw) - 1))), reverse=True):
            chars.insert(i + 1, rng.choice(pool) * rng.randint(1, 2))
        return "".join(chars)
    if transform == "separators":
        cjk = any(_is_cjk(c) for c in kw)
        if cjk:
            return "".join(c + (rng.choice(_ZH_SEPS) * rng.randint(1, 2) if i < len(kw) - 1 else "")
                           for i, c in enumerate(kw))
        body = kw.replace(" ", "")
        if rng.random() < 0.6:  # spaced out: b o m b, b.o.m.b
            sep = rng.choice(_EN_SEPS)
            return sep.join(body)
        # punctuation inside the word: bo-mb, fa.lun*gong
        chars = list(body)
        for i in sorted(_pick_positions(rng, len(body) - 1, rng.randint(1, 2)), reverse=True):
            chars.insert(i + 1, rng.choice(_EN_SEPS[1:]))
        return "".join(chars)
    if transform == "homoglyph":
        idx = [i for i in letters if kw[i].lower() in _HOMO]
        if not idx:
            return None
        chosen = _subset(rng, idx)
        return "".join(rng.choice(_HOMO[c.lower()]) if i in chosen else c for i, c in enumerate(kw))
    if transform == "leet":
        idx = [i for i in letters if kw[i] in _LEET]
        if not idx:
            return None
        chosen = _subset(rng, idx)
        return "".join(rng.choice(_LEET[c]) if i in chosen else c for i, c in enumerate(kw))
    if transform == "diacritics":
        if not letters:
            return None
        chosen = _subset(rng, letters)
        out = []
        for i, c in enumerate(kw):
            if i in chosen:
                c = unicodedata.normalize("NFC", c + rng.choice(_COMBINING)) if rng.random() < 0.5 \
                    else c + rng.choice(_COMBINING)
            out.append(c)
        return "".join(out)
    if transform == "mixed":
        steps = ["nfkc", "case", "t2s", "invisible", "homoglyph", "leet", "separators"]
        rng.shuffle(steps)
        out = kw
        applied = 0
        for step in steps:
            if applied == 2:
                break
            if step in ("homoglyph", "leet") and applied:  # these need the plain letters
                continue
            got = obfuscate(out, step, rng)
            if got is not None and got != out:
                out = got
                applied += 1
        return out if applied else None
    raise ValueError(transform)


def _en_vocab(keywords: Iterable[str]) -> list[str]:
    keys = [k.replace(" ", "") for k in keywords]
    return [w for w in _EN_FILLER if not any(k in w.replace("'", "").replace("-", "").replace(".", "")
                                             for k in keys) and len(w) > 1]


def _zh_vocab(keywords: Iterable[str]) -> str:
    used = {c for k in keywords for c in k}
    return "".join(c for c in dict.fromkeys(_ZH_FILLER_CHARS) if c not in used)


def filler(rng: random.Random, lang: str, words: int, *, en: list[str], zh: str) -> str:
    """A clean sentence of about ``words`` tokens."""
    if lang == "en":
        out = " ".join(rng.choice(en) for _ in range(words))
        return out[:1].upper() + out[1:] + "."
    parts = []
    for _ in range(words):
        parts.append("".join(rng.choice(zh) for _ in range(rng.randint(1, 3))))
        if rng.random() < 0.15:
            parts.append(rng.choice("，。、"))
    return "".join(parts) + "。"


def _embed(rng: random.Random, lang: str, phrase: str, en: list[str], zh: str) -> str:
    left = filler(rng, lang, rng.randint(3, 12), en=en, zh=zh)
    right = filler(rng, lang, rng.randint(3, 12), en=en, zh=zh)
    if lang == "en":
        return f"{left[:-1]} {phrase} {right[:1].lower()}{right[1:]}"
    return left[:-1] + phrase + right


def _near_miss(rng: random.Random, kw: str, zh_chars: str) -> str | None:
    cjk = any(_is_cjk(c) for c in kw)
    body = kw.replace(" ", "")
    if cjk:
        kind = rng.choice(("prefix", "suffix", "insert", "reverse"))
        if kind == "prefix":
            return kw[:-1]
        if kind == "suffix":
            return kw[1:]
        if kind == "insert":
            i = rng.randint(1, len(kw) - 1)
            return kw[:i] + rng.choice(zh_chars) + kw[i:]
        return kw[::-1] if kw[::-1] != kw else None
    kind = rng.choice(("prefix", "swap", "split", "inside"))
    if kind == "prefix" and len(body) > 4:
        return body[:-2]
    if kind == "swap" and len(body) > 4:
        i = rng.randint(1, len(body) - 2)
        repl = rng.choice([c for c in "bdfgkmqrvwz" if c != body[i] and c not in "ilo"])
        return body[:i] + repl + body[i + 1:]
    if kind == "split" and len(body) >= 6:
        i = rng.randint(3, len(body) - 3)
        return body[:i] + " " + body[i:]
    if kind == "inside" and kw in WORD_MODE:
        return rng.choice(("re", "un", "over")) + kw + rng.choice(("ed", "ing", "astic", "s"))
    return None


_NUMBERS = ("2010s", "mp3", "5g", "100km", "1080p", "3d", "h264", "4k", "b2b", "covid19", "win10",
            "ipv4", "x86", "a4", "m3", "7z", "2fa", "404", "1337", "0x1f", "3.14", "1,024", "10:30",
            "192.168.1.1", "+86", "$100", "user@example.com", "v1.2.3", "co2", "u2", "f1")


def keyword_lists(extra: Iterable[str] = ()) -> tuple[ListSpec, ...]:
    """The corpus keywords as policy lists (``word`` mode for ``WORD_MODE``), plus ``extra``."""
    en = tuple(KeywordSpec(k, 1, "word" if k in WORD_MODE else "substring") for k in EN_KEYWORDS)
    zh = tuple(KeywordSpec(k) for k in ZH_KEYWORDS)
    lists = [ListSpec("corpus-en", "keywords", keywords=en), ListSpec("corpus-zh", "keywords", keywords=zh)]
    extra = tuple(extra)
    if extra:
        lists.append(ListSpec("bench-extra", "keywords", keywords=tuple(KeywordSpec(k) for k in extra)))
    return tuple(lists)


def build(seed: int = 0, variants: int = 5, decoys: int = 3000) -> Corpus:
    """The seeded corpus: positives for every keyword × transform × variant, and decoys."""
    rng = random.Random(seed)
    en = _en_vocab(EN_KEYWORDS)
    zh = _zh_vocab(ZH_KEYWORDS)
    corpus = Corpus()
    for lang, kws in (("en", EN_KEYWORDS), ("zh", ZH_KEYWORDS)):
        for kw in kws:
            for tr in TRANSFORMS:
                for _ in range(variants):
                    ob = obfuscate(kw, tr, rng)
                    if ob is None:
                        break
                    corpus.positives.append(Sample(_embed(rng, lang, ob, en, zh), kw, lang, tr))
    all_kws = EN_KEYWORDS + ZH_KEYWORDS
    for i in range(decoys):
        lang = "en" if i % 2 == 0 else "zh"
        kind = "clean"
        text = filler(rng, lang, rng.randint(8, 30), en=en, zh=zh)
        if i % 4 in (2, 3):  # near misses
            kws = [k for k in all_kws if (any(_is_cjk(c) for c in k)) == (lang == "zh")]
            nm = None
            while nm is None or any(k in nm or k.replace(" ", "") in nm for k in all_kws):
                nm = _near_miss(rng, rng.choice(kws), zh)
            text = _embed(rng, lang, nm, en, zh)
            kind = "near-miss"
        elif i % 8 == 1 or i % 8 == 4:
            text = _embed(rng, lang, " ".join(rng.sample(_NUMBERS, 3)), en, zh)
            kind = "numbers"
        corpus.decoys.append(Sample(text, None, lang, kind))
    return corpus


@dataclass(slots=True)
class Score:
    """Recall over positives, false-positive rate over decoys, and the misses to look at."""

    recall: float
    fp_rate: float
    positives: int
    decoys: int
    by_transform: dict[str, tuple[int, int]]
    misses: list[Sample]
    false_positives: list[tuple[Sample, set[str]]]


def evaluate(corpus: Corpus, found: Callable[[str], set[str]]) -> Score:
    """Score ``found(text) -> set of matched keywords`` (only corpus keywords count)."""
    known = set(EN_KEYWORDS) | set(ZH_KEYWORDS)
    by: dict[str, list[int]] = {}
    misses: list[Sample] = []
    hit = 0
    for s in corpus.positives:
        ok = s.keyword in found(s.text)
        hit += ok
        b = by.setdefault(f"{s.lang}/{s.transform}", [0, 0])
        b[0] += ok
        b[1] += 1
        if not ok:
            misses.append(s)
    fps: list[tuple[Sample, set[str]]] = []
    for s in corpus.decoys:
        got = found(s.text) & known
        if got:
            fps.append((s, got))
    return Score(hit / max(1, len(corpus.positives)), len(fps) / max(1, len(corpus.decoys)),
                 len(corpus.positives), len(corpus.decoys), {k: (v[0], v[1]) for k, v in sorted(by.items())},
                 misses, fps)


# --------------------------------------------------------------------------- benchmark material

_SYL_ON_TEXT = (
    "b c d f g h j k l m n p r s t v w z br cr dr fr gr pr tr st sp sk pl cl bl"
)
_SYL_ON = tuple(_SYL_ON_TEXT.split())
_SYL_NU_TEXT = (
    "a e i o u ai ou ea io"
)
_SYL_NU = tuple(_SYL_NU_TEXT.split())
_SYL_OFF = ["", "", "n", "r", "s", "l", "x", "m", "nt", "rk"]


def bench_keywords(n: int = 10_000, zh_share: float = 0.3, seed: int = 1) -> list[str]:
    """``n`` distinct pseudo-keywords: Latin pseudo-words of 6–12 letters and 2–4 CJK characters."""
    rng = random.Random(seed)
    out: dict[str, None] = {}
    n_zh = int(n * zh_share)
    cjk = [chr(c) for c in range(0x4E00, 0x9FA6)]
    while len(out) < n_zh:
        out["".join(rng.choice(cjk) for _ in range(rng.randint(2, 4)))] = None
    while len(out) < n:
        w = ""
        while len(w) < rng.randint(6, 12):
            w += rng.choice(_SYL_ON) + rng.choice(_SYL_NU) + rng.choice(_SYL_OFF)
        out[w[:12]] = None
    return list(out)


def mixed_text(size_bytes: int, keywords: list[str], seed: int = 2, hit_rate: float = 0.004) -> str:
    """About ``size_bytes`` (UTF-8) of mixed English/Chinese paragraphs; ~``hit_rate`` of the
    tokens are keywords, a quarter of those obfuscated."""
    rng = random.Random(seed)
    en = _en_vocab(EN_KEYWORDS)
    zh = _zh_vocab(ZH_KEYWORDS)
    parts: list[str] = []
    size = 0
    while size < size_bytes:
        lang = "en" if rng.random() < 0.6 else "zh"
        sent = filler(rng, lang, rng.randint(8, 25), en=en, zh=zh)
        if rng.random() < hit_rate * 15:
            kw = rng.choice(keywords)
            if rng.random() < 0.25:
                kw = obfuscate(kw, rng.choice(("case", "invisible", "separators", "nfkc")), rng) or kw
            sent = _embed(rng, lang, kw, en, zh)
        parts.append(sent)
        size += len(sent.encode()) + 1
        if rng.random() < 0.1:
            parts.append("\n\n")
    return " ".join(parts)
