"""7z (written by py7zr) and RAR 4/5 (written from rarlab's technotes by tools.synth) archives,
opened in the sandbox with libarchive under the same budgets as ZIP and TAR."""

from __future__ import annotations

import io

import py7zr
import pytest

from inspectors.extract import Budget, extract, extract_tree
from inspectors.extract.archives import rar5_encrypted_names
from tests.inspectors.extract import samples as S
from tools import synth


def sevenzip(files: dict[str, bytes], *, password: str | None = None, header_encryption: bool = False) -> bytes:
    bio = io.BytesIO()
    with py7zr.SevenZipFile(bio, "w", password=password, header_encryption=header_encryption) as z:
        for name, data in files.items():
            z.writestr(data, name)
    return bio.getvalue()


FILES = {"notes/a.txt": S.EN.encode(), "b.html": f"<p>{S.ZH}</p>".encode(), "pics/c.png": S.png()}


def test_7z_members_become_children(sandbox, factory):
    ex = extract(S.sniffed(sevenzip(FILES), factory, oid="F7z"), Budget(), factory, sandbox=sandbox)
    assert ex.text.splitlines() == list(FILES)
    kids = {c.filename: c for c in ex.children}
    assert kids["a.txt"].data == S.EN.encode() and kids["a.txt"].meta["path"] == "notes/a.txt"
    assert kids["c.png"].data == S.png() and kids["b.html"].parent_id == "F7z"
    assert ex.meta["format"] == "7z" and ex.meta["members"] == "3"


def test_7z_tree_reaches_a_zip_inside(sandbox, factory):
    data = sevenzip({"inner.zip": S.zip_of({"deep.txt": S.ZH.encode()})})
    tree = extract_tree(S.sniffed(data, factory), Budget(), factory, sandbox=sandbox)
    assert any(S.ZH in (x.text or "") for _, x in tree)


def test_7z_encrypted_entries_and_headers(sandbox, factory):
    ex = extract(S.sniffed(sevenzip(FILES, password="pw"), factory), Budget(), factory, sandbox=sandbox)
    assert "7z_encrypted_entry" in ex.anomalies and ex.meta["encrypted"] == "3" and not ex.children
    assert ex.text.splitlines() == list(FILES)  # the names are still in clear
    hidden = sevenzip(FILES, password="pw", header_encryption=True)
    ex = extract(S.sniffed(hidden, factory), Budget(), factory, sandbox=sandbox)
    assert "7z_encrypted_headers" in ex.anomalies and "encrypted" in ex.truncated and not ex.children


def test_7z_budgets(sandbox, factory):
    many = sevenzip({f"f{i}.txt": f"file {i}".encode() for i in range(20)})
    ex = extract(S.sniffed(many, factory), Budget(max_children=5), factory, sandbox=sandbox)
    assert len(ex.children) == 5 and "extract_child_limit" in ex.anomalies
    bomb = sevenzip({"zeros.bin": b"\0" * (40 << 20)})
    assert len(bomb) < 40_000
    ex = extract(S.sniffed(bomb, factory), Budget(), factory, sandbox=sandbox)
    assert "7z_bomb_ratio" in ex.anomalies and ex.children[0].size <= 40 << 20
    assert sum(len(c.data or b"") for c in ex.children) <= max(1 << 20, len(bomb) * 100) + 1


def test_7z_cut_short_is_partial(sandbox, factory):
    data = sevenzip(FILES)
    ex = extract(S.sniffed(data[: len(data) // 2], factory, filename="x.7z"), Budget(), factory, sandbox=sandbox)
    assert "7z_partial" in ex.anomalies and "partial" in ex.truncated


@pytest.mark.parametrize("writer", [synth.rar5_archive, synth.rar4_archive])
def test_rar_members_become_children(sandbox, factory, writer):
    data = writer(list(FILES.items()))
    assert data.startswith(b"Rar!\x1a\x07")
    ex = extract(S.sniffed(data, factory, filename="bundle.rar"), Budget(), factory, sandbox=sandbox)
    kids = {c.meta["path"]: c.data for c in ex.children}
    assert kids == FILES and ex.meta["format"] == "rar"


@pytest.mark.parametrize("writer", [synth.rar5_archive, synth.rar4_archive])
def test_rar_encrypted_entries(sandbox, factory, writer):
    data = writer([("plain.txt", b"plain words"), ("secret.txt", b"secret words")], encrypted=["secret.txt"])
    ex = extract(S.sniffed(data, factory), Budget(), factory, sandbox=sandbox)
    assert "rar_encrypted_entry" in ex.anomalies and ex.meta["encrypted"] == "1"
    assert [c.filename for c in ex.children] == ["plain.txt"]


def test_rar5_encrypted_headers(sandbox, factory):
    ex = extract(S.sniffed(synth.rar5_archive([("x.txt", b"y")], encrypt_headers=True), factory), Budget(), factory,
                 sandbox=sandbox)
    assert "rar_encrypted_headers" in ex.anomalies and not ex.children


def test_rar5_walker_never_raises():
    data = synth.rar5_archive([("a", b"1"), ("b", b"2")], encrypted=["b"])
    assert rar5_encrypted_names(data) == {"b"}
    for cut in range(len(data)):
        rar5_encrypted_names(data[:cut])
