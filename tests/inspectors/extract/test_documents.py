"""Every document type's text holds the planted English and Chinese phrases; damaged files salvage."""

from __future__ import annotations

import pytest

from inspectors.extract import Budget, extract
from tests.inspectors.extract import samples as S

DOCS = {
    "docx": (S.docx, "report.docx", ""),
    "xlsx": (S.xlsx, "sheet.xlsx", ""),
    "pptx": (S.pptx, "deck.pptx", ""),
    "odt": (lambda: S.odf("odt"), "a.odt", ""),
    "ods": (lambda: S.odf("ods"), "a.ods", ""),
    "odp": (lambda: S.odf("odp"), "a.odp", ""),
    "pdf": (S.pdf, "a.pdf", ""),
    "rtf": (S.rtf, "a.rtf", "application/rtf"),
    "xls": (S.xls, "a.xls", "application/vnd.ms-excel"),
    "eml": (S.eml, "mail.eml", "message/rfc822"),
}


@pytest.mark.parametrize("kind", list(DOCS))
def test_planted_phrases(kind, sandbox, factory):
    make, name, mime = DOCS[kind]
    o = S.sniffed(make(), factory, filename=name, mime=mime)
    ex = extract(o, Budget(), factory, sandbox=sandbox)
    assert ex.text and S.EN in ex.text and S.ZH in ex.text, (ex.text, ex.anomalies, ex.meta)
    assert not ex.truncated, ex.truncated


@pytest.mark.parametrize(("kind", "image"), [("docx", "image1.png"), ("pptx", "image1.png"), ("odt", "img1.png"),
                                             ("pdf", "page1-img1.png"), ("eml", "chart.png")])
def test_embedded_images_become_children(kind, image, sandbox, factory):
    make, name, mime = DOCS[kind]
    parent = S.sniffed(make(), factory, filename=name, mime=mime, oid="Fparent", depth=1)
    ex = extract(parent, Budget(), factory, sandbox=sandbox)
    kids = {c.filename: c for c in ex.children}
    assert image in kids, list(kids)
    c = kids[image]
    assert (c.source, c.parent_id, c.depth, c.kind) == ("extract", "Fparent", 2, "child")
    assert c.sniffed_mime == "image/png" and c.data and c.data.startswith(b"\x89PNG")
    assert c.id.startswith("F") and c.id != "Fparent" and len(c.sha256) == 64


def test_rtf_gbk_bytes_and_unicode_escapes(sandbox, factory):
    ex = extract(S.sniffed(S.rtf(), factory), Budget(), factory, sandbox=sandbox)
    assert "机密文件" in ex.text and S.ZH in ex.text


def test_eml_html_part_hidden_text_and_links(sandbox, factory):
    ex = extract(S.sniffed(S.eml(), factory, mime="message/rfc822"), Budget(), factory, sandbox=sandbox)
    assert "secret-hidden" not in ex.text and "secret-hidden" in (ex.hidden_text or "")
    assert any(lk.url == "http://x.example/" for lk in ex.links)
    assert "Subject: 季度 report" in ex.text


def test_truncated_docx_is_salvaged(sandbox, factory):
    data = S.docx(paragraphs=40)
    cut = data[: int(len(data) * 0.8)]
    ex = extract(S.sniffed(cut, factory, filename="cut.docx"), Budget(), factory, sandbox=sandbox)
    assert S.EN in ex.text and S.ZH in ex.text
    assert "zip_salvaged" in ex.anomalies and "partial" in ex.truncated


@pytest.mark.parametrize("keep", [0.9, 0.5])
def test_truncated_pdf_is_salvaged(keep, sandbox, factory):
    data = S.pdf(pages=3, image=False)
    cut = data[: int(len(data) * keep)]
    ex = extract(S.sniffed(cut, factory, filename="cut.pdf"), Budget(), factory, sandbox=sandbox)
    assert "pdf_salvaged" in ex.anomalies and "partial" in ex.truncated
    assert S.EN in ex.text and S.ZH in ex.text


def test_corrupted_pdf_still_reads(sandbox, factory):
    data = bytearray(S.pdf(pages=2, image=False))
    xref = data.rfind(b"xref")
    data[xref:xref + 40] = b"#" * 40  # a broken cross-reference table
    ex = extract(S.sniffed(bytes(data), factory), Budget(), factory, sandbox=sandbox)
    assert S.EN in ex.text and S.ZH in ex.text


def test_garbage_ole_does_not_raise(sandbox, factory):
    data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600
    ex = extract(S.obj(data, filename="x.doc"), Budget(), factory, sandbox=sandbox)
    assert ex.meta.get("extractor") == "ole"


def test_depth_limit_keeps_text_but_no_children(sandbox, factory):
    o = S.sniffed(S.docx(), factory, depth=3)
    ex = extract(o, Budget(max_depth=3), factory, sandbox=sandbox)
    assert S.EN in ex.text and not ex.children and "depth" in ex.truncated


def test_xml_element_limit(sandbox, factory):
    from inspectors.extract.archives import extract_zip
    from inspectors.extract.parts import Limits

    part = extract_zip(S.docx(paragraphs=500, image=False), limits=Limits(max_xml_elements=1000))
    assert "xml_elements" in part.truncated and "office_many_elements" in part.anomalies


def _legacy(kind: str, tmp_path) -> bytes:  # type: ignore[no-untyped-def]
    """A legacy Word 97 .doc / PowerPoint 97 .ppt, made by converting the DOCX/PPTX sample with
    LibreOffice (the only free writer of these formats)."""
    import shutil
    import subprocess

    soffice = shutil.which("soffice")
    if soffice is None:
        pytest.skip("LibreOffice (soffice) is needed to write legacy .doc/.ppt samples")
    src = tmp_path / ("in.docx" if kind == "doc" else "in.pptx")
    src.write_bytes(S.docx(image=False) if kind == "doc" else S.pptx(image=False))
    target = "doc:MS Word 97" if kind == "doc" else "ppt:MS PowerPoint 97"
    subprocess.run([soffice, "--headless", "--norestore", f"-env:UserInstallation=file://{tmp_path}/lo",
                    "--convert-to", target, "--outdir", str(tmp_path), str(src)],
                   check=True, capture_output=True, timeout=180)
    return (tmp_path / f"in.{kind}").read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "mime"), [("doc", "application/msword"), ("ppt", "application/vnd.ms-powerpoint")])
def test_legacy_office_planted_phrases(kind, mime, sandbox, factory, tmp_path):  # type: ignore[no-untyped-def]
    data = _legacy(kind, tmp_path)
    o = S.sniffed(data, factory, filename=f"old.{kind}", mime=mime)
    ex = extract(o, Budget(), factory, sandbox=sandbox)
    assert ex.text and S.EN in ex.text and S.ZH in ex.text, (ex.text, ex.anomalies, ex.meta)
