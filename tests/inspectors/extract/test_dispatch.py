"""The dispatcher: choice of extractor, media hand-off, budgets, never raising."""

from __future__ import annotations

import sys

import pytest

import inspectors.extract as X
from inspectors.extract import Budget, Usage, apply, classify, extract
from tests.inspectors.extract import samples as S


@pytest.mark.parametrize(("sniffed", "declared", "filename", "family"), [
    ("text/html", "application/json", "", "html"),                    # sniffed wins
    ("text/plain", "application/x-www-form-urlencoded", "", "form"),  # generic sniff gives way
    ("text/plain", "application/json; charset=utf-8", "", "json"),
    ("application/octet-stream", "", "a.docx", "zip"),                # then the file name
    ("", "", "report.pdf", "pdf"),
    ("application/zip", "", "x.odt", "zip"),
    ("image/png", "text/html", "", "media"),
    ("text/plain", "image/png", "", "text"),                          # text that claims to be an image
    ("application/x-dosexec", "", "", ""),                            # nothing to extract
    ("", "", "mail.eml", "eml"),
    ("application/vnd.ms-excel", "", "", "ole"),
])
def test_classify(sniffed, declared, filename, family):
    assert classify(S.obj(b"x", sniffed=sniffed, mime=declared, filename=filename)) == family


def test_classify_by_bytes_when_unsniffed():
    assert classify(S.obj(b"{\\rtf1 x}"), b"{\\rtf1 x}") == "rtf"
    assert classify(S.obj(b""), b"%PDF-1.7\n") == "pdf"


def test_html_in_process_with_url_and_header_charset(factory):
    o = S.obj(f"<p>{S.ZH}</p><a href='/x'>x</a>".encode("gbk"), sniffed="text/html",
              url="http://h.example/a/b.html", meta={"content_type": "text/html; charset=gbk"})
    ex = extract(o, Budget(), factory)
    assert S.ZH in ex.text and ex.links[0].url == "http://h.example/x" and ex.meta["extractor"] == "html"
    done = apply(o, ex)
    assert done.text == ex.text and done.links == tuple(ex.links)


def test_media_without_extractor(factory, monkeypatch):
    monkeypatch.setitem(sys.modules, "inspectors.extract.media", None)  # import fails
    ex = extract(S.obj(S.png(), sniffed="image/png"), Budget(), factory)
    assert ex.text is None and ex.meta["media"] == "no media extractor"


def test_media_extractor_called_when_present(factory, monkeypatch):
    import types

    mod = types.ModuleType("inspectors.extract.media")
    mod.extract_media = lambda obj, budget, fac, **kw: X.Extraction(text="ocr", meta={"by": "media"})  # type: ignore
    monkeypatch.setitem(sys.modules, "inspectors.extract.media", mod)
    assert extract(S.obj(S.png(), sniffed="image/png"), Budget(), factory).meta["by"] == "media"


def test_never_raises(factory, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr(X, "_in_process", broken)
    ex = extract(S.obj(b"<p>x</p>", sniffed="text/html"), Budget(), factory)
    assert ex.anomalies == ["extract_error"] and "bug" in ex.meta["error"]


def test_empty_and_unknown_objects(factory):
    assert extract(S.obj(b""), Budget(), factory) == X.Extraction()
    assert extract(S.obj(b"\x00\x01", sniffed="application/x-dosexec"), Budget(), factory).text is None


def test_spooled_object(sandbox, factory, tmp_path):
    p = tmp_path / "spool"
    p.write_bytes(S.docx(image=False))
    o = S.obj(None, sniffed="application/zip", spool_path=str(p))
    ex = extract(o, Budget(), factory, sandbox=sandbox)
    assert S.EN in ex.text


def test_partial_input_noted(factory):
    o = S.obj(b"<p>x</p>", sniffed="text/html", missing_bytes=100)
    assert "extract_partial_input" in extract(o, Budget(), factory).anomalies


def test_time_budget_spans_the_tree(factory):
    usage = Usage(started=0.0)  # long ago: nothing left
    ex = extract(S.obj(b"<p>x</p>", sniffed="text/html"), Budget(max_seconds=1), factory, usage=usage)
    assert ex.truncated == ["time"]


def test_sandbox_busy_is_truncation(factory):
    from inspectors.extract.sandbox import SandboxFailure

    class Busy:
        def run(self, *a, **k):
            return SandboxFailure("busy", "queue full")

    ex = extract(S.sniffed(S.docx(), factory), Budget(), factory, sandbox=Busy())
    assert ex.truncated == ["sandbox:busy"] and "extract_worker_busy" in ex.anomalies
