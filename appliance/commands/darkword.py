"""``tapsift darkword learn|show|score``: the dark-word background model.

``learn CAPTURE|DIR`` counts, for every normal page, which dark words it contains (with the
darkword inspector's own matcher and normalisations), per site and globally. A capture is read
with the sensor (HTTP responses with text); a directory holds page files, one sub-folder per
site (``DIR/<host>/*.html``; files directly in DIR count globally only). Learn only from
traffic you believe is clean: the model says what *normal* looks like.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path


def _lists(policy: str | None):  # type: ignore[no-untyped-def]
    from inspectors.darkword import DEFAULT_LEXICON

    if not policy:
        return list(DEFAULT_LEXICON)
    from policies.schema import load_policy

    pol = load_policy(policy)
    got = [s for s in pol.lists.values() if s.kind == "darkwords"]
    if not got:
        raise ValueError(f"{policy}: no darkwords lists")
    return got


def _pages_from_dir(root: Path) -> Iterator[tuple[str, str]]:
    from appliance.model.content import ContentObject
    from appliance.model.streams import Direction
    from inspectors.text import extract_text

    for f in sorted(root.rglob("*")):
        if not f.is_file():
            continue
        rel = f.relative_to(root)
        site = rel.parts[0] if len(rel.parts) > 1 else ""
        data = f.read_bytes()
        mime = "text/html" if f.suffix.lower() in (".html", ".htm", ".xhtml") else "text/plain"
        obj = ContentObject(id="Flearn", source="file", direction=Direction.TO_CLIENT, flow=None, ts_ns=0,
                            size=len(data), md5="", sha256="", declared_mime=mime, data=data, filename=f.name)
        yield site, _page_text(obj, extract_text)


def _page_text(obj, extract_text) -> str:  # type: ignore[no-untyped-def]
    """Visible and hidden text (the HTML extractor when available, else the plain text extractor)."""
    if "html" in (obj.declared_mime + obj.sniffed_mime):
        try:
            from inspectors.extract.charset import decode
            from inspectors.extract.html import analyze

            res = analyze(decode(obj.data or b"", html=True).text)
            return res.text + "\n" + (res.hidden_text or "")
        except Exception:  # the fuller extractor is optional here
            pass
    return extract_text(obj)


def _pages_from_capture(path: str) -> Iterator[tuple[str, str]]:
    from appliance.model.streams import Direction
    from appliance.sensor import Sensor
    from appliance.settings import load_settings
    from capture.pcapfile import open_capture
    from inspectors.darkword import object_site
    from inspectors.text import extract_text, is_textual

    pages: list[tuple[str, str]] = []  # text only: the bodies are dropped as they go

    def on_object(obj) -> None:  # type: ignore[no-untyped-def]
        if obj.direction == Direction.TO_CLIENT and is_textual(obj) and obj.data:
            pages.append((object_site(obj), _page_text(obj, extract_text)))

    sensor = Sensor(load_settings(None), on_object=on_object)
    cap = open_capture(path)
    try:
        sensor.run(cap.frames())
        sensor.finish()
    finally:
        cap.close()
    yield from pages


def _learn(args: argparse.Namespace) -> int:
    from inspectors.darkword import BackgroundModel, DarkwordMatcher

    try:
        lists = _lists(args.policy)
    except Exception as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return 1
    matcher = DarkwordMatcher(lists)
    model = BackgroundModel(matcher.words)
    if args.merge and Path(args.model).exists():
        old = BackgroundModel.load(args.model)
        model.merge(old)
    src = Path(args.source)
    if not src.exists():
        print(f"tapsift: no such file or folder: {src}", file=sys.stderr)
        return 1
    pages = _pages_from_dir(src) if src.is_dir() else _pages_from_capture(str(src))
    n = 0
    for site, text in pages:
        if len(text.strip()) < args.min_chars:
            continue
        model.add_page({o.word for o in matcher.find(text)}, site)
        n += 1
    model.source = str(src)
    model.save(args.model)
    top = model.total.df.most_common(10)
    print(f"learned {n} pages from {src} ({len(model.sites)} sites, {model.total.pages} pages in the model) "
          f"→ {args.model}")
    if top:
        print("most frequent dark words in normal pages: " + ", ".join(
            f"{w} {c}/{model.total.pages}" for w, c in top))
    return 0


def _show(args: argparse.Namespace) -> int:
    from inspectors.darkword import BackgroundModel, site_key

    m = BackgroundModel.load(args.model)
    print(f"{args.model}: {m.total.pages} pages, {len(m.sites)} sites, {len(m.vocabulary)} words, "
          f"created {m.created}, from {m.source or '?'}")
    stats = m.sites.get(site_key(args.site)) if args.site else m.total
    if stats is None:
        print(f"no pages of {args.site}")
        return 1
    for w, c in stats.df.most_common(args.top):
        print(f"{c}\t{c / max(stats.pages, 1):.4f}\t{w}")
    return 0


def _score(args: argparse.Namespace) -> int:
    """Explain one page: its dark words, their probabilities, the score and the hidden links."""
    from appliance.model.content import ContentObject
    from appliance.model.inspection import InspectorConfig
    from appliance.model.streams import Direction
    from inspectors.base import InspectContext
    from inspectors.darkword import DarkwordInspector
    from inspectors.hiddenlink import HiddenLinkInspector

    try:
        lists = _lists(args.policy)
        data = Path(args.file).read_bytes()
    except Exception as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return 1
    text, hidden, links = data.decode("utf-8", "replace"), None, ()
    try:
        from inspectors.extract.charset import decode
        from inspectors.extract.html import analyze

        res = analyze(decode(data, html=True).text, base_url=f"http://{args.host}/" if args.host else "")
        text, hidden, links = res.text, res.hidden_text or None, tuple(res.links)
    except Exception:  # not HTML, or no HTML extractor: plain text
        pass
    obj = ContentObject(id="Fscore", source="file", direction=Direction.TO_CLIENT, flow=None, ts_ns=0,
                        size=len(data), md5="", sha256="", declared_mime="text/html", data=data, host=args.host or "",
                        text=text, hidden_text=hidden, links=links)
    dw = DarkwordInspector()
    dw.configure(InspectorConfig("darkword", tuple(lists), {"model": args.model or "", "threshold": args.threshold}))
    hl = HiddenLinkInspector()
    hl.configure(InspectorConfig("hiddenlink", tuple(lists)))
    ctx = InspectContext()
    ps = dw.page_score(obj, ctx)
    if ps is None:
        print("no dark words")
    else:
        print(f"anomaly score {ps.score:.2f} (threshold {args.threshold:g}; P(all innocent) {ps.p_innocent:.2g})")
        for w in ps.words:
            print(f"  {w.contribution:5.2f}  {w.list_name}: {w.describe()}")
    found = list(dw.inspect(obj, ctx)) + list(hl.inspect(obj, ctx))
    for f in found:
        print(f"finding {f.inspector} rule={f.rule} score={f.score}: " + "; ".join(
            f"{k}={v}" for k, v in f.detail.items() if k in ("words", "url", "reason", "anchor")))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("darkword", help="dark-word background model")
    ps = p.add_subparsers(dest="darkword_command", required=True, metavar="ACTION")
    lr = ps.add_parser("learn", help="learn word frequencies of normal pages from a capture or a folder")
    lr.add_argument("source", metavar="CAPTURE|DIR")
    lr.add_argument("--model", required=True, help="model file to write (.json, or .json.gz)")
    lr.add_argument("--policy", help="take the words from this policy's darkwords lists (default: starter lexicon)")
    lr.add_argument("--merge", action="store_true", help="add to the existing model instead of replacing it")
    lr.add_argument("--min-chars", type=int, default=20, help="skip pages with less text")
    lr.set_defaults(func=_learn)
    sh = ps.add_parser("show", help="the most frequent dark words in normal pages")
    sh.add_argument("model")
    sh.add_argument("--site", help="one site's figures")
    sh.add_argument("--top", type=int, default=30)
    sh.set_defaults(func=_show)
    sc = ps.add_parser("score", help="explain one page file: dark words, probabilities, score, hidden links")
    sc.add_argument("file")
    sc.add_argument("--policy", help="darkwords lists from this policy (default: starter lexicon)")
    sc.add_argument("--model", help="background model file")
    sc.add_argument("--host", help="the page's site (for the per-site model)")
    sc.add_argument("--threshold", type=float, default=2.0)
    sc.set_defaults(func=_score)
