"""Keyword inspector: normalised multi-pattern matching on Hyperscan, with proximity and exclusions.

How a text is matched (``KeywordEngine.scan``):

1. The text (capped at ``max_text_chars``) is normalised to N1 and N2 (``inspectors.normalize``);
   every keyword, exclusion and proximity term went through the same pipeline at compile time.
2. N1 and N2 are encoded to UTF-8 and scanned in **stream mode** (``chunk_bytes`` per write), so
   a keyword across a chunk boundary is found exactly as in one block. Two literal databases
   (N1 forms, N2 forms; ``CASELESS|SOM_LEFTMOST``) and, when the policy has ``regex`` keywords,
   a UTF-8 regex database over N1.
3. Byte offsets become N2 → N1 → original character offsets. An occurrence found only in N2
   (separators removed inside it) counts only if its Latin edges sit on word boundaries in N1,
   so ``the rapist`` never matches ``therapist``. Overlapping occurrences of one term count once.
4. ``word`` keywords need non-alphanumeric neighbours at their Latin edges (a CJK neighbour is
   a boundary). Occurrences inside an exclusion's span are dropped (``photo bomb``).
5. One ``Finding`` per (list, keyword): ``score = weight * occurrences`` (Huawei keyword-group
   semantics: the policy sums scores against a threshold), ``rule`` = list name, evidence =
   the first ``max_evidence`` occurrences with ±``snippet_context`` characters of the original
   text, ``detail["normalisation"]`` = the steps the occurrences needed (``none`` if matched
   verbatim). A proximity spec gives one ``Finding`` counting the A occurrences that have a B
   within ``distance`` N1 characters (gap between the two spans).
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import hyperscan as hs

from appliance.model.alerts import Evidence, Finding
from appliance.model.content import ContentObject
from appliance.model.inspection import InspectorConfig, ListSpec
from inspectors import normalize as nz
from inspectors.base import DEFAULT_MAX_TEXT_CHARS, InspectContext, InspectorConfigError

log = logging.getLogger(__name__)

MAX_TERM_CHARS = 1024
_LIT_FLAGS = hs.HS_FLAG_CASELESS | hs.HS_FLAG_SOM_LEFTMOST
# no HS_FLAG_UCP: with it Hyperscan rejects \b (so \w and \b are ASCII; CJK is matched literally)
_RX_FLAGS = hs.HS_FLAG_UTF8 | hs.HS_FLAG_CASELESS | hs.HS_FLAG_SOM_LEFTMOST | hs.HS_FLAG_DOTALL
_MODE = hs.HS_MODE_STREAM | hs.HS_MODE_SOM_HORIZON_LARGE


@dataclass(slots=True)
class _Term:
    list_idx: int
    kind: Literal["kw", "excl", "prox"]
    text: str
    n1: str
    n2: str
    n2j: str  # N2 with the keyword's own separators squeezed out
    weight: int = 1
    mode: str = "substring"
    latin_start: bool = False
    latin_end: bool = False


@dataclass(slots=True)
class _Occ:
    s: int  # original text
    e: int
    s1: int  # N1
    e1: int
    loose: bool  # found in N2 with separators removed inside
    v2: bool = False  # found in N2
    joined: bool = False  # matched the keyword's squeezed form


@dataclass(slots=True)
class ScanResult:
    """Findings of one scan and how the scan ended (``complete``/``truncated``/``deadline``/``match_cap``)."""

    findings: list[Finding] = field(default_factory=list)
    status: set[str] = field(default_factory=set)
    matches: int = 0


def _latin(ch: str) -> bool:
    return ch.isalnum() and not nz.CJK_RE.match(ch)


def _boundary(text: str, i: int) -> bool:
    """True when position ``i`` (a neighbour index) is outside ``text`` or not a Latin word char."""
    return i < 0 or i >= len(text) or not (_latin(text[i]) or text[i] == "_")


class StreamDb:
    """One compiled stream database with per-thread scratch."""

    def __init__(self, patterns: list[bytes], ids: list[int], flags: list[int], *, literal: bool) -> None:
        self.db = hs.Database(mode=_MODE)
        self.db.compile(expressions=patterns, ids=ids, elements=len(patterns), flags=flags,
                        literal=literal)
        self._local = threading.local()

    def scratch(self) -> hs.Scratch:
        sc = getattr(self._local, "scratch", None)
        if sc is None:
            sc = self._local.scratch = hs.Scratch(self.db)
        return sc

    def scan(self, data: bytes, chunk: int, hits: list[tuple[int, int, int]], cap: int,
             expired: Callable[[], bool] | None) -> str:
        """Stream-scan ``data`` in ``chunk``-byte writes; return ``ok``, ``match_cap`` or ``deadline``."""
        append = hits.append

        def on_match(pid: int, frm: int, to: int, _flags: int, _ctx: object) -> bool:
            append((pid, frm, to))
            return len(hits) >= cap

        status = "ok"
        scratch = self.scratch()
        view = memoryview(data)
        try:
            with self.db.stream(match_event_handler=on_match) as stream:
                for i in range(0, len(data), chunk):
                    stream.scan(bytes(view[i:i + chunk]), scratch=scratch)
                    if expired is not None and i + chunk < len(data) and expired():
                        status = "deadline"
                        break
        except hs.ScanTerminated:
            status = "match_cap"
        return status


def char_offsets(text: str, data: bytes, hits: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """UTF-8 byte offsets of ``hits`` → character offsets in ``text``."""
    if len(data) == len(text):
        return hits
    out: list[tuple[int, int, int]] = []
    pos_b = pos_c = 0
    for pid, bf, bt in sorted(hits, key=lambda h: h[1]):
        if bf < pos_b:  # cannot happen after sorting; be safe
            pos_b = pos_c = 0
        pos_c += len(data[pos_b:bf].decode("utf-8", "replace"))
        pos_b = bf
        out.append((pid, pos_c, pos_c + len(data[bf:bt].decode("utf-8", "replace"))))
    return out


def _snippet(text: str, s: int, e: int, context: int, max_match: int = 200) -> str:
    if e - s > max_match:
        half = max_match // 2
        return text[max(0, s - context):s + half] + "…" + text[e - half:e + context]
    return text[max(0, s - context):e + context]


class KeywordEngine:
    """Keyword lists compiled once (per policy version); ``scan`` is thread-safe."""

    def __init__(self, lists: Sequence[ListSpec], *, normalise: bool = True,
                 opts: nz.NormOptions = nz.DEFAULT, separators: bool = True) -> None:
        self.lists = tuple(lists)
        self.normalise = normalise
        self.opts = opts
        self.separators = separators and normalise
        self.terms: list[_Term] = []
        self.list_kw: list[list[int]] = []
        self.list_excl: list[list[int]] = []
        self.list_prox: list[list[tuple[int, int, int]]] = []  # (spec index, term a, term b)
        rx_terms: list[int] = []
        for li, spec in enumerate(self.lists):
            kws, excl, prox = [], [], []
            for ki, kw in enumerate(spec.keywords):
                where = f"list {spec.name!r}: keyword #{ki + 1} ({kw.text!r})"
                if kw.mode not in ("substring", "word", "regex"):
                    raise InspectorConfigError(f"{where}: mode must be substring, word or regex, not {kw.mode!r}")
                if kw.weight < 0:
                    raise InspectorConfigError(f"{where}: weight must not be negative")
                if kw.mode == "regex":
                    rx_terms.append(len(self.terms))
                kws.append(len(self.terms))
                self.terms.append(self._term(li, "kw", kw.text, where, weight=kw.weight, mode=kw.mode))
            for xi, phrase in enumerate(spec.exclusions):
                excl.append(len(self.terms))
                self.terms.append(self._term(li, "excl", phrase, f"list {spec.name!r}: exclusion #{xi + 1}"))
            for pi, p in enumerate(spec.proximity):
                where = f"list {spec.name!r}: proximity #{pi + 1} ({p.a!r}~{p.b!r})"
                if p.distance < 0:
                    raise InspectorConfigError(f"{where}: distance must not be negative")
                a = len(self.terms)
                self.terms.append(self._term(li, "prox", p.a, where))
                self.terms.append(self._term(li, "prox", p.b, where))
                prox.append((pi, a, a + 1))
            self.list_kw.append(kws)
            self.list_excl.append(excl)
            self.list_prox.append(prox)
        self._compile(rx_terms)

    # ----------------------------------------------------------------- compile

    def _term(self, li: int, kind: Literal["kw", "excl", "prox"], text: str, where: str, *,
              weight: int = 1, mode: str = "substring") -> _Term:
        if not isinstance(text, str) or not text.strip():
            raise InspectorConfigError(f"{where}: empty term")
        if len(text) > MAX_TERM_CHARS:
            raise InspectorConfigError(f"{where}: longer than {MAX_TERM_CHARS} characters")
        if mode == "regex":
            return _Term(li, kind, text, text, text, text, weight, mode)
        if self.normalise:
            n1, n2, n2j = nz.normalize_term(text, self.opts)
        else:
            n1 = n2 = n2j = text
        if not n1 or not n2:
            raise InspectorConfigError(f"{where}: nothing left after normalisation "
                                       "(only invisible characters or spaces)")
        return _Term(li, kind, text, n1, n2, n2j, weight, mode, _latin(n1[0]), _latin(n1[-1]))

    def _compile(self, rx_terms: list[int]) -> None:
        def literal_db(form: str) -> tuple[StreamDb | None, list[list[tuple[int, bool]]]]:
            ids: dict[str, int] = {}
            targets: list[list[tuple[int, bool]]] = []
            for ti, t in enumerate(self.terms):
                if t.mode == "regex":
                    continue
                keys = [(t.n1, False)] if form == "n1" else [(t.n2, False)]
                if form == "n2" and t.n2j != t.n2:
                    keys.append((t.n2j, True))
                for key, joined in keys:
                    pid = ids.setdefault(key, len(ids))
                    if pid == len(targets):
                        targets.append([])
                    targets[pid].append((ti, joined))
            if not ids:
                return None, []
            pats = [k.encode("utf-8", "surrogatepass") for k in ids]
            db = StreamDb(pats, list(range(len(pats))), [_LIT_FLAGS] * len(pats), literal=True)
            return db, targets

        self.db1, self.targets1 = literal_db("n1")
        self.db2, self.targets2 = literal_db("n2") if self.separators else (None, [])
        self.dbr: StreamDb | None = None
        self.targets_r: list[list[tuple[int, bool]]] = [[(ti, False)] for ti in rx_terms]
        if rx_terms:
            pats = [self.terms[ti].text.encode("utf-8") for ti in rx_terms]
            try:
                self.dbr = StreamDb(pats, list(range(len(pats))), [_RX_FLAGS] * len(pats), literal=False)
            except hs.error as exc:
                for ti, p in zip(rx_terms, pats):  # find the culprit for a precise message
                    try:
                        StreamDb([p], [0], [_RX_FLAGS], literal=False)
                    except hs.error as one:
                        t = self.terms[ti]
                        raise InspectorConfigError(
                            f"list {self.lists[t.list_idx].name!r}: regex keyword {t.text!r}: {one} "
                            "(Hyperscan has no look-around or back-references; use \\b)") from None
                raise InspectorConfigError(f"regex keywords: {exc}") from None

    # ----------------------------------------------------------------- scan

    def scan(self, text: str, *, n1: nz.Normalized | None = None, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
             chunk_bytes: int = 65536, max_matches: int = 200_000, max_evidence: int = 5,
             snippet_context: int = 40, expired: Callable[[], bool] | None = None,
             content_id: str = "") -> ScanResult:
        """Match ``text``; never raises on any text. ``n1`` may be a cached ``normalize(text)``."""
        res = ScanResult()
        if len(text) > max_text_chars:
            text = text[:max_text_chars]
            res.status.add("truncated")
        if not self.terms or not text:
            return res
        if self.normalise:
            if n1 is None:
                n1 = nz.normalize(text, self.opts)
            n1_text = n1.text
        else:
            n1_text = text
        chunk = max(1, chunk_bytes)
        occs: dict[int, list[_Occ]] = defaultdict(list)

        def run(db: StreamDb | None, s: str, targets: list[list[tuple[int, bool]]],
                conv: Callable[[int, int], _Occ]) -> None:
            if db is None or not s or "deadline" in res.status or "match_cap" in res.status:
                return
            data = s.encode("utf-8", "replace")
            hits: list[tuple[int, int, int]] = []
            status = db.scan(data, chunk, hits, max_matches - res.matches, expired)
            res.matches += len(hits)
            if status != "ok":
                res.status.add(status)
            for pid, cf, ct in char_offsets(s, data, hits):
                occ = conv(cf, ct)
                for ti, joined in targets[pid]:
                    occs[ti].append(_Occ(occ.s, occ.e, occ.s1, occ.e1, occ.loose, occ.v2, True) if joined
                                    else occ)

        def conv1(cf: int, ct: int) -> _Occ:
            s, e = n1.span(cf, ct) if n1 is not None else (cf, ct)
            return _Occ(s, e, cf, ct, False)

        run(self.db1, n1_text, self.targets1, conv1)
        if self.dbr is not None:
            run(self.dbr, n1_text, self.targets_r, conv1)
        loose_text = ""
        if self.db2 is not None and n1 is not None:
            n2 = nz.loosen(n1_text)
            loose_text = n2.text

            def conv2(cf: int, ct: int) -> _Occ:
                s1, e1 = n2.span(cf, ct)
                s, e = n1.span(s1, e1)
                return _Occ(s, e, s1, e1, n2.map.removed_within(cf, ct), True)

            run(self.db2, loose_text, self.targets2, conv2)
        self._findings(text, n1_text, occs, res, max_evidence, snippet_context, content_id)
        return res

    # ----------------------------------------------------------------- post-processing

    def _keep(self, t: _Term, occs: list[_Occ], n1_text: str) -> list[_Occ]:
        """Word-boundary and N2-acceptance filters, then one occurrence per overlapping group."""
        good: list[_Occ] = []
        for o in occs:
            if o.loose or t.mode == "word" or o.joined:
                if t.latin_start and not _boundary(n1_text, o.s1 - 1):
                    continue
                if t.latin_end and not _boundary(n1_text, o.e1):
                    continue
            good.append(o)
        good.sort(key=lambda o: (o.s, o.loose, -o.e))
        out: list[_Occ] = []
        last_end = -1
        for o in good:
            if o.s >= last_end:
                out.append(o)
                last_end = o.e
        return out

    @staticmethod
    def _exclude(occs: list[_Occ], spans: list[tuple[int, int]]) -> list[_Occ]:
        """Drop occurrences contained in an exclusion span (sweep over both sorted lists)."""
        if not spans:
            return occs
        spans.sort()
        out: list[_Occ] = []
        j = 0
        max_end = -1
        for o in occs:  # sorted by start
            while j < len(spans) and spans[j][0] <= o.s:
                max_end = max(max_end, spans[j][1])
                j += 1
            if max_end < o.e:
                out.append(o)
        return out

    def _findings(self, text: str, n1_text: str, occs: dict[int, list[_Occ]], res: ScanResult,
                  max_evidence: int, context: int, content_id: str) -> None:
        extra = {"incomplete": ",".join(sorted(res.status))} if res.status else {}
        by_list: dict[int, list[int]] = defaultdict(list)
        for ti in sorted(occs):
            by_list[self.terms[ti].list_idx].append(ti)
        for li in sorted(by_list):  # only lists with an occurrence of some term (10k keywords!)
            spec = self.lists[li]
            excl_spans = [(o.s, o.e) for ti in self.list_excl[li]
                          for o in self._keep(self.terms[ti], occs.get(ti, []), n1_text)]
            kept: dict[int, list[_Occ]] = {}

            def occurrences(ti: int, kept: dict = kept, excl_spans: list = excl_spans) -> list[_Occ]:
                if ti not in kept:
                    kept[ti] = self._exclude(self._keep(self.terms[ti], occs.get(ti, []), n1_text),
                                             excl_spans)
                return kept[ti]

            for ti in by_list[li]:
                t = self.terms[ti]
                if t.kind != "kw":
                    continue
                got = occurrences(ti)
                if not got:
                    continue
                steps: set[str] = set()
                for o in got[:32]:
                    if self.normalise:
                        loosened = o.loose or o.joined
                        steps.update(nz.labels(text[o.s:o.e], t.text, n1_span=n1_text[o.s1:o.e1],
                                               loosened=loosened, opts=self.opts))
                ev = tuple(Evidence(o.s, o.e, _snippet(text, o.s, o.e, context)) for o in got[:max_evidence])
                detail = {"list": spec.name, "keyword": t.text, "count": str(len(got)), "mode": t.mode,
                          "normalisation": "+".join(s for s in nz.STEPS if s in steps) or "none", **extra}
                res.findings.append(Finding("keyword", content_id, spec.name, float(t.weight * len(got)),
                                            ev, detail))
            for pi, ta, tb in self.list_prox[li]:
                p = spec.proximity[pi]
                a, b = occurrences(ta), occurrences(tb)
                if not a or not b:
                    continue
                pairs = _near(a, b, p.distance)
                if not pairs:
                    continue
                ev = tuple(Evidence(min(x.s, y.s), max(x.e, y.e),
                                    _snippet(text, min(x.s, y.s), max(x.e, y.e), context))
                           for x, y in pairs[:max_evidence])
                detail = {"list": spec.name, "proximity": f"{p.a}~{p.b}", "distance": str(p.distance),
                          "count": str(len(pairs)), **extra}
                res.findings.append(Finding("keyword", content_id, spec.name, float(p.weight * len(pairs)),
                                            ev, detail))


def _near(a: list[_Occ], b: list[_Occ], distance: int) -> list[tuple[_Occ, _Occ]]:
    """Each A occurrence paired with a B occurrence at most ``distance`` N1 characters away.

    The gap is measured between the spans (0 when they touch or overlap). One term's kept
    occurrences do not overlap, so their ends grow with their starts: the B starting last
    before ``a.e1 + distance`` is the only candidate to check (two when A and B are the same
    term and that one is ``a`` itself). O(log n) per A occurrence.
    """
    starts = [o.s1 for o in b]
    out: list[tuple[_Occ, _Occ]] = []
    for x in a:
        hi = bisect.bisect_right(starts, x.e1 + distance)
        for y in b[max(0, hi - 2):hi][::-1]:
            if y.s1 == x.s1 and y.e1 == x.e1:
                continue
            if y.e1 >= x.s1 - distance:
                out.append((x, y))
            break
    return out


class KeywordInspector:
    """``keyword``: keyword groups (``ListSpec.kind == "keywords"``) on an object's text.

    Params (``InspectorConfig.params``): ``normalise`` (True), ``separators`` (True), ``t2s``,
    ``homoglyphs``, ``casefold``, ``nfkc``, ``diacritics`` (True each), ``max_text_chars``
    (8 Mi; the rest is not scanned and the object is flagged ``keyword_truncated``),
    ``max_matches`` (200,000 raw matches per object), ``max_evidence`` (5),
    ``snippet_context`` (40), ``chunk_bytes`` (65,536); ``ocr`` and ``speech`` (False each): also
    match the text of images (OCR) and speech (see ``needs``).
    """

    name = "keyword"
    kinds = frozenset({"text"})
    needs = frozenset({"text"})
    """Text of pages and documents, plus (unless ``params: {ocr: false}`` / ``speech: false``) the
    text in images and what is said in audio and video (`inspectors.base.needs_of`)."""
    cost: Literal["cheap", "expensive"] = "cheap"
    cache_context: tuple[str, ...] = ()  # reads the content alone: a repeat's result is reused

    def __init__(self) -> None:
        self.engine: KeywordEngine | None = None
        self.params: dict[str, Any] = {}

    def configure(self, config: InspectorConfig) -> None:
        lists = []
        for spec in config.lists:
            if spec.kind != "keywords":
                raise InspectorConfigError(
                    f"list {spec.name!r} has kind {spec.kind!r}; the keyword inspector takes 'keywords' lists")
            lists.append(spec)
        p = dict(config.params)
        try:
            opts = nz.NormOptions(**{k: bool(p[k]) for k in ("nfkc", "diacritics", "casefold", "t2s", "homoglyphs")
                                     if k in p})
            self.params = {
                "max_text_chars": int(p.get("max_text_chars", DEFAULT_MAX_TEXT_CHARS)),
                "max_matches": int(p.get("max_matches", 200_000)),
                "max_evidence": int(p.get("max_evidence", 5)),
                "snippet_context": int(p.get("snippet_context", 40)),
                "chunk_bytes": int(p.get("chunk_bytes", 65536)),
            }
        except (TypeError, ValueError) as exc:
            raise InspectorConfigError(f"keyword inspector params: {exc}") from None
        if min(self.params.values()) < 0 or self.params["chunk_bytes"] < 1:
            raise InspectorConfigError("keyword inspector params must be positive")
        self.engine = KeywordEngine(lists, normalise=bool(p.get("normalise", True)), opts=opts,
                                    separators=bool(p.get("separators", True)))

    def inspect(self, obj: ContentObject, ctx: InspectContext) -> Iterator[Finding]:
        engine = self.engine
        if engine is None or not engine.terms:
            return
        text = ctx.text(obj)
        if not text:
            return
        cap = self.params["max_text_chars"]
        n1 = normalized(obj, ctx, text, cap, engine.opts) if engine.normalise else None
        res = engine.scan(text, n1=n1, max_text_chars=cap, chunk_bytes=self.params["chunk_bytes"],
                          max_matches=self.params["max_matches"], max_evidence=self.params["max_evidence"],
                          snippet_context=self.params["snippet_context"], expired=ctx.expired,
                          content_id=obj.id)
        ctx.counters["keyword.matches"] += res.matches
        for status in sorted(res.status):
            ctx.flag(obj, f"keyword_{status}")
        yield from res.findings


def normalized(obj: ContentObject, ctx: InspectContext, text: str, cap: int,
               opts: nz.NormOptions = nz.DEFAULT) -> nz.Normalized:
    """``normalize(text[:cap])``, cached per object in ``ctx`` (shared by inspectors)."""
    key = (obj.id, f"n1:{cap}:{opts}")
    got = ctx.cache.get(key)
    if got is None:
        got = ctx.cache[key] = nz.normalize(text[:cap], opts)
    return got
