"""Decompression and parser bombs: each ends flagged and truncated, and memory stays bounded.

Memory is measured twice: the workers' peak RSS (each worker reports ``ru_maxrss`` with its
result; ``Sandbox.peak_rss`` is the largest) against the pool's RLIMIT_AS cap, and the test
process's own peak (VmHWM, reset through /proc/self/clear_refs before each bomb) against a
small allowance: the sensor never inflates anything itself.
"""

from __future__ import annotations

import pytest

from inspectors.extract import Budget, extract, extract_tree
from inspectors.extract.sandbox import Sandbox, vm_hwm
from tests.inspectors.extract import samples as S

CAP = 384 << 20
SENSOR_ALLOWANCE = 96 << 20


@pytest.fixture(scope="module")
def bomb_sandbox():
    sb = Sandbox(workers=1, memory_bytes=CAP, cpu_seconds=20)
    yield sb
    assert sb.peak_rss < CAP, sb.peak_rss
    sb.close()


def _reset_hwm() -> int:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    return vm_hwm(_pid())


def _pid() -> int:
    import os

    return os.getpid()


def _budget() -> Budget:
    return Budget(max_memory_bytes=CAP, max_seconds=15, max_expanded_bytes=64 << 20)


def _run(data: bytes, sb: Sandbox, factory, **kw):
    base = _reset_hwm()
    tree = extract_tree(S.sniffed(data, factory, **kw), _budget(), factory, sandbox=sb)
    grown = vm_hwm(_pid()) - base
    assert grown < SENSOR_ALLOWANCE, f"sensor process grew by {grown >> 20} MiB"
    assert sb.peak_rss < CAP
    return tree


def _flagged(tree, reason: str, anomaly: str) -> None:
    hits = [(o, ex) for o, ex in tree if reason in ex.truncated or reason in o.truncated]
    assert hits, [(o.filename, ex.truncated, ex.anomalies) for o, ex in tree]
    assert any(anomaly in ex.anomalies or anomaly in o.anomalies for o, ex in tree), \
        [(o.filename, ex.anomalies) for o, ex in tree]


def test_zip_bomb_deflate(bomb_sandbox, factory):
    tree = _run(S.zip_bomb_deflate(), bomb_sandbox, factory)
    _flagged(tree, "zip_ratio", "zip_bomb_ratio")
    assert all(len(o.data or b"") <= 8 << 20 for o, _ in tree)


def test_zip_bomb_bzip2(bomb_sandbox, factory):
    tree = _run(S.zip_bomb_bzip2(), bomb_sandbox, factory)
    _flagged(tree, "zip_ratio", "zip_bomb_ratio")


@pytest.mark.slow
def test_zip_bomb_bzip2_one_gib(bomb_sandbox, factory):
    tree = _run(S.zip_bomb_bzip2(S.GiB), bomb_sandbox, factory)
    _flagged(tree, "zip_ratio", "zip_bomb_ratio")


def test_zip_bomb_bzip2_with_forged_small_size(bomb_sandbox, factory):
    tree = _run(S.zip_bomb_forged_size(), bomb_sandbox, factory)
    _flagged(tree, "zip_size_mismatch", "zip_bomb_forged_size")


def test_bzip2_bomb_inside_xlsx(bomb_sandbox, factory):
    tree = _run(S.xlsx_bzip2_bomb(), bomb_sandbox, factory, filename="b.xlsx")
    _flagged(tree, "zip_ratio", "zip_bomb_ratio")
    assert S.EN in (tree[0][1].text or "") and S.ZH in tree[0][1].text


def test_gzip_in_gzip_body(bomb_sandbox, factory):
    tree = _run(S.gzip_gzip_bomb(), bomb_sandbox, factory, filename="body.gz")
    _flagged(tree, "expanded_bytes", "gzip_bomb")


def test_pdf_bomb(bomb_sandbox, factory):
    tree = _run(S.pdf_bomb(), bomb_sandbox, factory)
    _flagged(tree, "pdf_ratio", "pdf_bomb")


def test_pdf_single_flate_bomb(bomb_sandbox, factory):
    """The reported file: one /FlateDecode content stream of 1 GiB in 1 MB. The pre-scan's ratio
    read 16:1 (whole 64 KiB chunks counted as consumed) and PDFium inflated it until the worker
    died; now it is measured, flagged and salvaged within the worker's cap."""
    from tests.inspectors.extract import pdf_samples as P

    tree = _run(P.flate_1gib(), bomb_sandbox, factory)
    _flagged(tree, "pdf_ratio", "pdf_bomb")
    assert not any(t.startswith("sandbox:") for _o, ex in tree for t in ex.truncated)  # the worker lived


def test_pdf_pixel_bomb(bomb_sandbox, factory):
    tree = _run(S.pdf_pixel_bomb(), bomb_sandbox, factory)
    _flagged(tree, "pixels", "pdf_pixel_bomb")
    assert S.EN in tree[0][1].text


def test_png_pixel_bomb_inside_docx_is_passed_on_undecoded(bomb_sandbox, factory):
    bomb = S.png_pixel_bomb()
    ex = extract(S.sniffed(S.docx_with_image(bomb), factory), _budget(), factory, sandbox=bomb_sandbox)
    kids = [c for c in ex.children if c.filename == "image1.png"]
    assert kids and kids[0].data == bomb and kids[0].sniffed_mime == "image/png"


def test_deeply_nested_archives(bomb_sandbox, factory):
    tree = _run(S.nested_zip(12), bomb_sandbox, factory)
    assert max(o.depth for o, _ in tree) == 3
    _flagged(tree, "depth", "extract_depth_limit")


def test_entity_expansion_in_office_xml(bomb_sandbox, factory):
    tree = _run(S.docx_entity_bomb(), bomb_sandbox, factory)
    _flagged(tree, "xml_entities", "office_xml_entities")
    text = tree[0][1].text
    assert S.EN in text and "lol" not in text


def test_docx_with_millions_of_tiny_elements(bomb_sandbox, factory):
    tree = _run(S.docx_many_elements(64), bomb_sandbox, factory)
    _flagged(tree, "zip_ratio", "zip_bomb_ratio")
    assert S.EN in tree[0][1].text


def test_many_elements_below_the_ratio_limit_hit_the_element_budget():
    from inspectors.extract.archives import extract_zip
    from inspectors.extract.parts import Limits

    part = extract_zip(S.docx_many_elements(8), limits=Limits(max_ratio=10_000, max_xml_elements=500_000))
    assert "xml_elements" in part.truncated and "office_many_elements" in part.anomalies


def test_worker_death_is_a_truncated_extraction_not_an_exception(factory):
    sb = Sandbox(workers=1, memory_bytes=CAP, cpu_seconds=20)
    try:
        o = S.sniffed(S.pdf(), factory)
        ex = extract(o, Budget(max_seconds=0.5), factory, sandbox=_Dying(sb))
        assert any(t.startswith("sandbox:") for t in ex.truncated)
        assert S.EN in (ex.text or "")  # the salvage pass ran after the failure
    finally:
        sb.close()


class _Dying:
    """A sandbox whose first task dies (as a parser killed by RLIMIT_AS would)."""

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.first = True

    def run(self, name, data, timeout, **kw):
        if self.first:
            self.first = False
            return self.sb.run("tests.inspectors.extract.sandbox_tasks:die", b"", timeout)
        return self.sb.run(name, data, timeout, **kw)
