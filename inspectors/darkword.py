"""``darkword`` (暗词): slang and code words scored by how improbable they are on a legitimate page.

A dark word (gambling, pornography, fraud, drugs jargon, pinyin abbreviations such as ``lhc``
for 六合彩) is often also an ordinary word ("叶子", leaves). Each word of a ``darkwords`` list has
a **prior** ``p`` (``options["priors"]``, from the policy's ``prior``): the probability that an
occurrence is meant in its dark sense. The page's words are found with the keyword engine
(``inspectors.keyword``) and so get all its normalisations: full-width and compatibility forms,
case, traditional→simplified, homoglyphs, invisible characters, separators inside words
(``六.合.彩``, ``b o c a i``) and leetspeak.

**Background model** (``tapsift darkword learn``): the fraction of the sensor's own normal pages
that contain each word, globally and per site. It refines the prior: a word that is common on
this site's normal pages is less surprising, one never seen there more. With ``r`` the
reference rate (the rate the prior assumes, default 1 % of legitimate pages), ``df``/``N`` the
word's pages / pages of the site (or globally, if the site has fewer than ``min_site_pages``)
and ``β`` pseudo-pages at rate ``r``::

    q    = (df + β·r) / (N + β)               smoothed rate in legitimate pages
    odds = p / (1 - p) · clamp((r / q)^γ, 1/50, 10)  [· hidden_boost if seen in hidden text]
    p'   = odds / (1 + odds)

**Anomaly score** of the page, the improbability that every dark word present is innocent::

    S = Σ_w weight_w · (1 + ½·log2 n_w) · −log10(1 − p'_w)       (n_w: occurrences of w)

``S ≥ 2`` means "all innocent" has a probability of at most about 1 %. At or above the
``threshold`` param (default 2.0) the inspector reports one finding: ``score`` = S (so a
profile's ``threshold.weight`` compares against it too), ``rule`` = the list contributing most,
``detail["words"]`` = each word with its count, p' and where it came from (prior, site or
global frequency), evidence = the occurrences with their context and normalisation steps.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from appliance.model.alerts import Evidence, Finding
from appliance.model.content import ContentObject
from appliance.model.inspection import InspectorConfig, KeywordSpec, ListSpec
from inspectors import normalize as nz
from inspectors.base import DEFAULT_MAX_TEXT_CHARS, InspectContext, InspectorConfigError
from inspectors.keyword import KeywordEngine, normalized

log = logging.getLogger(__name__)

MODEL_FORMAT = "tapsift-darkword-background"
MODEL_VERSION = 1
DEFAULT_PRIOR = 0.5
MAX_P = 0.999
_LATIN_WORD = re.compile(r"^[0-9A-Za-z][0-9A-Za-z .'-]*$")


def _lex(name: str, words: Sequence[tuple[str, float]]) -> ListSpec:
    return ListSpec(name, "darkwords", keywords=tuple(KeywordSpec(w) for w, _ in words),
                    options={"priors": dict(words)})


DEFAULT_LEXICON: tuple[ListSpec, ...] = (
    _lex("gambling", (("六合彩", 0.9), ("博彩", 0.85), ("赌博", 0.7), ("网上赌场", 0.95), ("百家乐", 0.9),
                      ("时时彩", 0.9), ("北京赛车", 0.6), ("彩票平台", 0.7), ("老虎机", 0.6), ("真人荷官", 0.95),
                      ("开户送彩金", 0.97), ("澳门葡京", 0.9), ("bocai", 0.85), ("liuhecai", 0.9), ("lhc", 0.6),
                      ("dubo", 0.8), ("bjl", 0.6), ("casino", 0.6), ("baccarat", 0.8))),
    _lex("pornography", (("成人视频", 0.9), ("黄色网站", 0.95), ("色情", 0.7), ("av女优", 0.95), ("裸聊", 0.95),
                         ("约炮", 0.95), ("一夜情", 0.8), ("无码", 0.85), ("porn", 0.85), ("xxx", 0.5),
                         ("seqing", 0.85), ("yuepao", 0.9))),
    _lex("fraud", (("代开发票", 0.95), ("办证", 0.8), ("套现", 0.8), ("刷单", 0.85), ("贷款秒批", 0.9),
                   ("洗钱", 0.8), ("黑客接单", 0.95), ("枪支", 0.9), ("假证", 0.95), ("daikai", 0.9))),
    _lex("drugs", (("冰毒", 0.95), ("麻古", 0.95), ("溜冰", 0.6), ("叶子", 0.15), ("飞行", 0.1), ("K粉", 0.95),
                   ("摇头丸", 0.95), ("大麻", 0.7), ("bingdu", 0.9))),
)
"""A small starter lexicon (used by ``hiddenlink`` when it has no lists, and by the learner)."""


def site_key(host: str) -> str:
    """Lower-case host without port and a leading ``www.``."""
    h = host.strip().lower().split(":")[0].rstrip(".")
    return h[4:] if h.startswith("www.") else h


def object_site(obj: ContentObject) -> str:
    if obj.host:
        return site_key(obj.host)
    if obj.url:
        try:
            return site_key(urlsplit(obj.url).hostname or "")
        except ValueError:
            return ""
    return ""


# --------------------------------------------------------------------------- matching


@dataclass(slots=True)
class Occurrence:
    """One dark word found in a text: how often, its evidence and the normalisation it needed."""

    word: str
    list_name: str
    weight: int
    count: int
    evidence: tuple[Evidence, ...] = ()
    normalisation: str = "none"
    hidden: bool = False


class DarkwordMatcher:
    """The words of ``darkwords`` lists compiled into a keyword engine (word mode for Latin words)."""

    def __init__(self, lists: Sequence[ListSpec], *, opts: nz.NormOptions = nz.DEFAULT) -> None:
        self.lists = tuple(lists)
        self.priors: dict[tuple[str, str], float] = {}
        self.list_weight: dict[str, int] = {}
        kw_lists: list[ListSpec] = []
        for spec in self.lists:
            where = f"list {spec.name!r}"
            if spec.kind != "darkwords":
                raise InspectorConfigError(f"{where} has kind {spec.kind!r}; dark-word inspectors take "
                                           "'darkwords' lists")
            priors = dict(spec.options.get("priors") or {})
            kws = []
            for kw in spec.keywords:
                p = float(priors.get(kw.text, DEFAULT_PRIOR))
                if not 0 < p <= 1:
                    raise InspectorConfigError(f"{where}: prior of {kw.text!r} must be in (0, 1], not {p}")
                self.priors[(spec.name, kw.text)] = min(p, MAX_P)
                mode = "word" if _LATIN_WORD.match(kw.text) else "substring"
                kws.append(KeywordSpec(kw.text, kw.weight, mode))
            self.list_weight[spec.name] = spec.weight
            excl = tuple(str(x) for x in spec.options.get("exclusions", ()) or ())
            kw_lists.append(ListSpec(spec.name, "keywords", keywords=tuple(kws), exclusions=excl))
        self.engine = KeywordEngine(kw_lists, opts=opts)

    @property
    def words(self) -> list[str]:
        return sorted({w for _, w in self.priors})

    def find(self, text: str, *, n1: nz.Normalized | None = None, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
             max_evidence: int = 3, context: int = 30, content_id: str = "") -> list[Occurrence]:
        """Dark words in ``text`` (never raises)."""
        if not text or not self.engine.terms:
            return []
        res = self.engine.scan(text, n1=n1, max_text_chars=max_text_chars, max_evidence=max_evidence,
                               snippet_context=context, content_id=content_id)
        out = []
        for f in res.findings:
            word = f.detail.get("keyword", "")
            if not word:
                continue
            count = int(f.detail.get("count", "1"))
            weight = round(f.score / max(count, 1)) * self.list_weight.get(f.rule, 1)
            out.append(Occurrence(word, f.rule, max(weight, 1), count, f.evidence,
                                  f.detail.get("normalisation", "none")))
        return out


# --------------------------------------------------------------------------- background model


@dataclass(slots=True)
class SiteStats:
    pages: int = 0
    df: Counter[str] = field(default_factory=Counter)


class BackgroundModel:
    """Document frequencies of the dark words in normal pages, globally and per site."""

    def __init__(self, vocabulary: Iterable[str] = ()) -> None:
        self.vocabulary: set[str] = set(vocabulary)
        self.total = SiteStats()
        self.sites: dict[str, SiteStats] = defaultdict(SiteStats)
        self.created = ""
        self.source = ""

    def add_page(self, words: Iterable[str], site: str = "") -> None:
        """Count one normal page containing ``words`` (each counted once)."""
        present = set(words) & self.vocabulary if self.vocabulary else set(words)
        self.total.pages += 1
        self.total.df.update(present)
        if site:
            s = self.sites[site_key(site)]
            s.pages += 1
            s.df.update(present)

    def merge(self, other: BackgroundModel) -> None:
        self.vocabulary |= other.vocabulary
        self.total.pages += other.total.pages
        self.total.df.update(other.total.df)
        for k, s in other.sites.items():
            mine = self.sites[k]
            mine.pages += s.pages
            mine.df.update(s.df)

    def stats(self, word: str, site: str = "", *, min_site_pages: int = 20) -> tuple[int, int, str] | None:
        """(df, pages, scope) for ``word`` on ``site`` (``site``/``global``), None if never measured."""
        if word not in self.vocabulary:
            return None
        s = self.sites.get(site_key(site)) if site else None
        if s is not None and s.pages >= min_site_pages:
            return s.df.get(word, 0), s.pages, "site"
        return self.total.df.get(word, 0), self.total.pages, "global"

    # ------------------------------------------------------------------ files

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT, "version": MODEL_VERSION, "created": self.created or time.strftime(
                "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "source": self.source,
            "vocabulary": sorted(self.vocabulary),
            "global": {"pages": self.total.pages, "df": dict(sorted(self.total.df.items()))},
            "sites": {k: {"pages": s.pages, "df": dict(sorted(s.df.items()))} for k, s in sorted(self.sites.items())},
        }

    def save(self, path: str | Path) -> None:
        data = json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_bytes(gzip.compress(data) if p.suffix == ".gz" else data)
        tmp.replace(p)

    @classmethod
    def load(cls, path: str | Path) -> BackgroundModel:
        raw = Path(path).read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        d = json.loads(raw)
        if d.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path}: not a dark-word background model")
        if int(d.get("version", 0)) > MODEL_VERSION:
            raise ValueError(f"{path}: model version {d.get('version')} is newer than this tapsift "
                             f"understands ({MODEL_VERSION})")
        m = cls(d.get("vocabulary", ()))
        m.created = d.get("created", "")
        m.source = d.get("source", "")
        m.total = SiteStats(int(d["global"]["pages"]), Counter(d["global"]["df"]))
        for k, s in d.get("sites", {}).items():
            m.sites[k] = SiteStats(int(s["pages"]), Counter(s["df"]))
        return m


# --------------------------------------------------------------------------- scoring


@dataclass(slots=True, frozen=True)
class ScoringParams:
    threshold: float = 2.0
    reference_rate: float = 0.01
    prior_pages: float = 20.0
    strength: float = 0.5
    min_site_pages: int = 20
    hidden_boost: float = 2.0
    max_lr: float = 10.0
    min_lr: float = 1 / 50

    @classmethod
    def from_params(cls, p: Mapping[str, Any], **defaults: Any) -> ScoringParams:
        base = cls(**defaults)
        kw = dict(defaults)
        try:
            for f in cls.__dataclass_fields__:
                if f in p:
                    kw[f] = type(getattr(base, f))(p[f])
            out = cls(**kw)
        except (TypeError, ValueError) as exc:
            raise InspectorConfigError(f"dark-word params: {exc}") from None
        if not 0 < out.reference_rate < 1 or out.prior_pages < 0 or out.strength < 0 or out.hidden_boost <= 0:
            raise InspectorConfigError("dark-word params: reference_rate in (0, 1), prior_pages ≥ 0, strength ≥ 0, "
                                       "hidden_boost > 0")
        return out


@dataclass(slots=True)
class WordScore:
    word: str
    list_name: str
    count: int
    prior: float
    p: float
    contribution: float
    basis: str
    """Where p came from: ``prior``, ``site 0/240`` or ``global 3/10000`` (df/pages)."""
    normalisation: str = "none"
    hidden: bool = False
    evidence: tuple[Evidence, ...] = ()

    def describe(self) -> str:
        extra = [f"prior {self.prior:.2f}", self.basis] if self.basis != "prior" else [f"prior {self.prior:.2f}"]
        if self.normalisation != "none":
            extra.append(f"normalised: {self.normalisation}")
        if self.hidden:
            extra.append("in hidden text")
        return f"{self.word} ×{self.count} p={self.p:.3f} ({', '.join(extra)})"


@dataclass(slots=True)
class PageScore:
    score: float
    words: list[WordScore]

    @property
    def p_innocent(self) -> float:
        return 10 ** -self.score

    @property
    def top_list(self) -> str:
        by: Counter[str] = Counter()
        for w in self.words:
            by[w.list_name] += w.contribution
        return by.most_common(1)[0][0] if by else ""


class DarkwordScorer:
    """Occurrences → posterior probabilities → page anomaly score (see the module docstring)."""

    def __init__(self, matcher: DarkwordMatcher, model: BackgroundModel | None, params: ScoringParams) -> None:
        self.matcher = matcher
        self.model = model
        self.params = params

    def posterior(self, list_name: str, word: str, site: str, *, hidden: bool = False) -> tuple[float, float, str]:
        """(prior, posterior, basis) of one word on ``site``."""
        pr = self.matcher.priors.get((list_name, word), DEFAULT_PRIOR)
        odds = pr / (1 - pr) if pr < 1 else 1e6
        basis = "prior"
        prm = self.params
        st = self.model.stats(word, site, min_site_pages=prm.min_site_pages) if self.model is not None else None
        if st is not None and st[1] > 0:
            df, pages, scope = st
            r = prm.reference_rate
            q = (df + prm.prior_pages * r) / (pages + prm.prior_pages)
            lr = min(prm.max_lr, max(prm.min_lr, (r / q) ** prm.strength))
            odds *= lr
            basis = f"{scope} {df}/{pages}"
        if hidden:
            odds *= prm.hidden_boost
        return pr, min(MAX_P, odds / (1 + odds)), basis

    def score(self, occurrences: Iterable[Occurrence], site: str = "") -> PageScore:
        merged: dict[tuple[str, str], Occurrence] = {}
        for o in occurrences:
            key = (o.list_name, o.word)
            if key in merged:
                m = merged[key]
                merged[key] = Occurrence(o.word, o.list_name, max(m.weight, o.weight), m.count + o.count,
                                         m.evidence + o.evidence, m.normalisation if m.normalisation != "none"
                                         else o.normalisation, m.hidden or o.hidden)
            else:
                merged[key] = o
        # one word listed in several lists counts once (its strongest list)
        best: dict[str, WordScore] = {}
        for (lname, word), o in merged.items():
            prior, p, basis = self.posterior(lname, word, site, hidden=o.hidden)
            contrib = o.weight * (1 + 0.5 * math.log2(max(o.count, 1))) * -math.log10(1 - p)
            ws = WordScore(word, lname, o.count, prior, p, contrib, basis, o.normalisation, o.hidden, o.evidence)
            if word not in best or ws.contribution > best[word].contribution:
                best[word] = ws
        words = sorted(best.values(), key=lambda w: -w.contribution)
        return PageScore(sum(w.contribution for w in words), words)


def load_model(path: str) -> BackgroundModel | None:
    if not path:
        return None
    try:
        return BackgroundModel.load(path)
    except (OSError, ValueError, KeyError) as exc:
        raise InspectorConfigError(f"dark-word background model {path}: {exc}") from None


class DarkwordInspector:
    """``darkword``: see the module docstring.

    Params: ``threshold`` (2.0), ``model`` (background model file; none: priors only),
    ``reference_rate`` (0.01), ``prior_pages`` (20), ``strength`` (0.5), ``min_site_pages`` (20),
    ``hidden_boost`` (2.0), ``max_evidence`` (5), ``max_text_chars`` (8 Mi).
    """

    name = "darkword"
    kinds = frozenset({"text"})
    cost: Literal["cheap", "expensive"] = "cheap"
    cache_context = ("host", "url")  # the site's background model

    def __init__(self) -> None:
        self.scorer: DarkwordScorer | None = None
        self.max_evidence = 5
        self.max_text_chars = DEFAULT_MAX_TEXT_CHARS

    def configure(self, config: InspectorConfig) -> None:
        p = dict(config.params)
        params = ScoringParams.from_params(p)
        try:
            self.max_evidence = int(p.get("max_evidence", 5))
            self.max_text_chars = int(p.get("max_text_chars", DEFAULT_MAX_TEXT_CHARS))
        except (TypeError, ValueError) as exc:
            raise InspectorConfigError(f"darkword params: {exc}") from None
        matcher = DarkwordMatcher(config.lists)
        model = load_model(str(p.get("model") or ""))
        if model is not None:
            unmeasured = [w for w in matcher.words if w not in model.vocabulary]
            log.info("darkword: background model %s (%d pages, %d sites); %d list words not in it use their "
                     "priors", p.get("model"), model.total.pages, len(model.sites), len(unmeasured))
        self.scorer = DarkwordScorer(matcher, model, params)

    def page_score(self, obj: ContentObject, ctx: InspectContext) -> PageScore | None:
        """The object's score (visible and hidden text), cached per object in ``ctx``."""
        scorer = self.scorer
        if scorer is None:
            return None
        key = (obj.id, f"darkword:{id(self)}")
        if key in ctx.cache:
            return ctx.cache[key]
        text = ctx.text(obj)
        occ: list[Occurrence] = []
        if text:
            n1 = normalized(obj, ctx, text, self.max_text_chars, scorer.matcher.engine.opts)
            occ += scorer.matcher.find(text, n1=n1, max_text_chars=self.max_text_chars,
                                       max_evidence=self.max_evidence, content_id=obj.id)
        if obj.hidden_text:
            for o in scorer.matcher.find(obj.hidden_text, max_text_chars=self.max_text_chars,
                                         max_evidence=self.max_evidence, content_id=obj.id):
                o.hidden = True
                o.evidence = tuple(Evidence(e.start, e.end, e.snippet, "hidden_text") for e in o.evidence)
                occ.append(o)
        got = scorer.score(occ, object_site(obj)) if occ else None
        ctx.cache[key] = got
        return got

    def inspect(self, obj: ContentObject, ctx: InspectContext) -> Iterator[Finding]:
        if self.scorer is None:
            return
        ps = self.page_score(obj, ctx)
        if ps is None:
            return
        ctx.counters["darkword.pages_with_words"] += 1
        if ps.score < self.scorer.params.threshold:
            return
        evidence: list[Evidence] = []
        for w in ps.words:
            evidence.extend(w.evidence[:2])
        steps = sorted({s for w in ps.words for s in w.normalisation.split("+") if s and s != "none"},
                       key=lambda s: nz.STEPS.index(s) if s in nz.STEPS else 99)
        detail = {
            "list": ps.top_list, "lists": ",".join(sorted({w.list_name for w in ps.words})),
            "words": "; ".join(w.describe() for w in ps.words[:20]),
            "score": f"{ps.score:.2f}", "threshold": f"{self.scorer.params.threshold:g}",
            "p_innocent": f"{ps.p_innocent:.2g}", "site": object_site(obj),
            "count": str(sum(w.count for w in ps.words)),
            "normalisation": "+".join(steps) or "none",
            "hidden": str(sum(w.count for w in ps.words if w.hidden)),
        }
        yield Finding(self.name, obj.id, ps.top_list, round(ps.score, 3),
                      tuple(evidence[: self.max_evidence]), detail)
