"""``hiddenlink`` (暗链): hidden links whose anchor text or target domain carries dark words.

The HTML extractor's visibility analysis gives each page its ``links`` (``appliance.model.Link``):
URL, anchor text, ``hidden`` and the ``reason`` (the CSS rule that hides it — ``display:none``,
``visibility:hidden``, ``off-screen``, ``font-size:0``, ``height:0;overflow:hidden``… — or
``script`` for links written by inline script such as ``document.write``). For every hidden
link the inspector looks for dark words

* in the **anchor text**, with the dark-word matcher (all the keyword engine's normalisations);
* in the **target domain**: IDNA labels are decoded, then each label is cut into letter runs
  (``bocai888-vip`` → ``bocai``, ``vip``); a Latin dark word of 4+ letters matches inside a run,
  a shorter one (``lhc``, ``bjl``) only as a whole run; CJK words match inside decoded labels.
* (with ``check_path: true``) in the URL path, like the domain.

Each word's probability is its prior (the background model is about page text, not anchors),
raised by ``hidden_boost`` (default 4: hiding the link is itself evidence), and the link's score
is the dark-word score of those words (see ``inspectors.darkword``). A link scoring at least
``threshold`` (0.5) gives one finding: ``rule`` = the list with the strongest word, ``score`` =
the link's score, ``detail`` = url, domain, anchor text, hiding reason, words (and where each was
found). Links to ``allow_domains`` (and their subdomains) are ignored.

Lists: ``darkwords`` lists (optional: without lists the built-in starter lexicon
``inspectors.darkword.DEFAULT_LEXICON`` is used).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Literal
from urllib.parse import unquote, urlsplit

from appliance.model.alerts import Evidence, Finding
from appliance.model.content import ContentObject, Link
from appliance.model.inspection import InspectorConfig
from inspectors import normalize as nz
from inspectors.base import InspectContext, InspectorConfigError
from inspectors.darkword import (
    DEFAULT_LEXICON,
    DarkwordMatcher,
    DarkwordScorer,
    Occurrence,
    ScoringParams,
    object_site,
    site_key,
)

log = logging.getLogger(__name__)

_RUNS = re.compile(r"[^\W\d_]+")
_CJK = nz.CJK_RE


def domain_of(url: str) -> str:
    """The link target's host name, IDNA-decoded (empty for relative or odd URLs)."""
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:
        return ""
    labels = []
    for lab in host.split("."):
        if lab.startswith("xn--"):
            try:
                lab = lab.encode("ascii").decode("idna")
            except (UnicodeError, ValueError):
                pass
        labels.append(lab)
    return ".".join(labels)


class _DomainMatcher:
    """Dark words inside domain names (and URL paths), see the module docstring."""

    def __init__(self, matcher: DarkwordMatcher) -> None:
        self.long: list[tuple[str, str, int, str]] = []  # (form, word, weight, list)
        self.short: dict[str, list[tuple[str, int, str]]] = {}
        self.cjk: list[tuple[str, str, int, str]] = []
        for spec in matcher.lists:
            for kw in spec.keywords:
                n1 = nz.normalize(kw.text).text.strip()
                form = re.sub(r"[\W_]+", "", n1)
                if not form:
                    continue
                w = kw.weight * spec.weight
                if _CJK.search(form):
                    self.cjk.append((form, kw.text, w, spec.name))
                elif form.isascii() and form.isalpha():
                    if len(form) >= 4:
                        self.long.append((form, kw.text, w, spec.name))
                    else:
                        self.short.setdefault(form, []).append((kw.text, w, spec.name))

    def find(self, text: str) -> list[Occurrence]:
        s = nz.normalize(text).text
        runs = _RUNS.findall(s)
        found: dict[tuple[str, str], Occurrence] = {}

        def add(word: str, weight: int, lname: str) -> None:
            k = (lname, word)
            if k in found:
                found[k].count += 1
            else:
                found[k] = Occurrence(word, lname, weight, 1)

        for run in runs:
            for word, w, lname in self.short.get(run, ()):
                add(word, w, lname)
            for form, word, w, lname in self.long:
                if form in run:
                    add(word, w, lname)
        squeezed = "".join(runs)
        for form, word, w, lname in self.cjk:
            if form in squeezed:
                add(word, w, lname)
        return list(found.values())


class HiddenLinkInspector:
    """See the module docstring. Params: ``threshold`` (0.5), ``hidden_boost`` (4.0),
    ``allow_domains`` ([]), ``check_path`` (False), ``max_links`` (20 findings per page)."""

    name = "hiddenlink"
    kinds = frozenset({"html"})
    cost: Literal["cheap", "expensive"] = "cheap"
    cache_context = ("url",)  # links resolve against the page URL

    def __init__(self) -> None:
        self.matcher: DarkwordMatcher | None = None
        self.domains: _DomainMatcher | None = None
        self.scorer: DarkwordScorer | None = None
        self.allow: tuple[str, ...] = ()
        self.check_path = False
        self.max_links = 20

    def configure(self, config: InspectorConfig) -> None:
        lists = [s for s in config.lists if s.kind == "darkwords"]
        others = [s.name for s in config.lists if s.kind != "darkwords"]
        if others:
            raise InspectorConfigError(f"list(s) {', '.join(others)}: the hiddenlink inspector takes 'darkwords' "
                                       "lists (allowed domains go in params.allow_domains)")
        p = dict(config.params)
        params = ScoringParams.from_params(p, threshold=0.5, hidden_boost=4.0)
        allow = p.get("allow_domains", [])
        if isinstance(allow, str):
            allow = [allow]
        if not isinstance(allow, list | tuple) or not all(isinstance(a, str) for a in allow):
            raise InspectorConfigError("hiddenlink params.allow_domains must be a list of domain names")
        self.allow = tuple(site_key(a) for a in allow)
        self.check_path = bool(p.get("check_path", False))
        try:
            self.max_links = int(p.get("max_links", 20))
        except (TypeError, ValueError) as exc:
            raise InspectorConfigError(f"hiddenlink params.max_links: {exc}") from None
        self.matcher = DarkwordMatcher(lists or DEFAULT_LEXICON)
        self.domains = _DomainMatcher(self.matcher)
        self.scorer = DarkwordScorer(self.matcher, None, params)

    def _allowed(self, domain: str) -> bool:
        d = site_key(domain)
        return any(d == a or d.endswith("." + a) for a in self.allow)

    def inspect(self, obj: ContentObject, ctx: InspectContext) -> Iterator[Finding]:
        if self.matcher is None or self.scorer is None or self.domains is None:
            return
        hidden = [ln for ln in obj.links if ln.hidden]
        if not hidden:
            return
        ctx.counters["hiddenlink.hidden_links"] += len(hidden)
        emitted = 0
        seen: set[tuple[str, str]] = set()
        for link in hidden:
            if emitted >= self.max_links:
                ctx.flag(obj, "hiddenlink_max_links")
                break
            if (link.url, link.text) in seen:
                continue
            seen.add((link.url, link.text))
            f = self._link(obj, link)
            if f is not None:
                emitted += 1
                yield f

    def _link(self, obj: ContentObject, link: Link) -> Finding | None:
        assert self.matcher is not None and self.scorer is not None and self.domains is not None
        domain = domain_of(link.url)
        if domain and self._allowed(domain):
            return None
        occ: list[tuple[str, Occurrence]] = []
        if link.text:
            occ += [("anchor", o) for o in self.matcher.find(link.text, max_evidence=1)]
        if domain:
            occ += [("domain", o) for o in self.domains.find(domain)]
        if self.check_path:
            try:
                path = unquote(urlsplit(link.url).path)
            except ValueError:
                path = ""
            if path:
                occ += [("path", o) for o in self.domains.find(path)]
        if not occ:
            return None
        for _, o in occ:
            o.hidden = True
        ps = self.scorer.score([o for _, o in occ], object_site(obj))
        if ps.score < self.scorer.params.threshold:
            return None
        where: dict[str, set[str]] = {}
        for src, o in occ:
            where.setdefault(o.word, set()).add(src)
        words = "; ".join(f"{w.word} in {'+'.join(sorted(where.get(w.word, ())))} p={w.p:.2f} (prior {w.prior:.2f})"
                          + (f", normalised: {w.normalisation}" if w.normalisation != "none" else "")
                          for w in ps.words)
        reason = link.reason or "hidden"
        snippet = f'<a href="{link.url}">{link.text}</a> hidden by {reason}: {", ".join(w.word for w in ps.words)}'
        detail = {"list": ps.top_list, "url": link.url, "domain": domain, "anchor": link.text[:200],
                  "reason": reason, "words": words, "score": f"{ps.score:.2f}", "count": "1",
                  "site": object_site(obj)}
        return Finding(self.name, obj.id, ps.top_list, round(ps.score, 3), (Evidence(0, 0, snippet[:300]),), detail)
