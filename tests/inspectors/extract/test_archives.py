"""ZIP, GZIP, TAR: members as children, encrypted entries, salvage, nesting."""

from __future__ import annotations

import gzip

from inspectors.extract import Budget, extract, extract_tree
from tests.inspectors.extract import samples as S


def test_zip_members_become_children(sandbox, factory):
    data = S.zip_of({"notes/a.txt": f"{S.EN}".encode(), "b.html": f"<p>{S.ZH}</p>".encode()})
    ex = extract(S.sniffed(data, factory, oid="Fzip"), Budget(), factory, sandbox=sandbox)
    assert ex.text.splitlines() == ["notes/a.txt", "b.html"]
    kids = {c.filename: c for c in ex.children}
    assert kids["a.txt"].data == S.EN.encode() and kids["a.txt"].meta["path"] == "notes/a.txt"
    assert kids["b.html"].parent_id == "Fzip" and kids["b.html"].source == "extract"


def test_tree_reaches_member_text(sandbox, factory):
    data = S.zip_of({"inner.docx": S.docx(image=False), "t.txt": S.ZH.encode()})
    tree = extract_tree(S.sniffed(data, factory), Budget(), factory, sandbox=sandbox)
    texts = "\n".join(ex.text or "" for _, ex in tree)
    assert S.EN in texts and S.ZH in texts


def test_encrypted_entries_flagged(sandbox, factory):
    ex = extract(S.sniffed(S.encrypted_zip(), factory), Budget(), factory, sandbox=sandbox)
    assert "zip_encrypted_entry" in ex.anomalies and ex.meta["encrypted"] == "1"
    assert [c.filename for c in ex.children] == ["plain.txt"]


def test_truncated_zip_salvaged_from_local_headers(sandbox, factory):
    data = S.zip_of({"one.txt": S.EN.encode() * 50, "two.txt": S.ZH.encode() * 50,
                     "three.bin": bytes(range(256)) * 400})
    cut = data[: data.find(b"PK\x01\x02") - 500]
    ex = extract(S.sniffed(cut, factory, filename="x.zip"), Budget(), factory, sandbox=sandbox)
    kids = {c.filename: c for c in ex.children}
    assert kids["one.txt"].data == S.EN.encode() * 50 and kids["two.txt"].data == S.ZH.encode() * 50
    assert "zip_salvaged" in ex.anomalies and "partial" in ex.truncated


def test_gzip_child_named_from_header(sandbox, factory):
    buf = gzip.compress(S.ZH.encode())
    ex = extract(S.sniffed(buf, factory, filename="data.txt.gz"), Budget(), factory, sandbox=sandbox)
    assert ex.children[0].data == S.ZH.encode() and ex.children[0].filename == "data.txt"


def test_tar_members(sandbox, factory):
    data = S.tar_of({"dir/a.txt": S.EN.encode(), "b.txt": S.ZH.encode()})
    ex = extract(S.sniffed(data, factory), Budget(), factory, sandbox=sandbox)
    assert [c.data for c in ex.children] == [S.EN.encode(), S.ZH.encode()]


def test_truncated_tar(sandbox, factory):
    data = S.tar_of({"a.txt": b"a" * 5000, "b.txt": b"b" * 5000})
    ex = extract(S.sniffed(data[:7000], factory, filename="x.tar"), Budget(), factory, sandbox=sandbox)
    assert ex.children and "partial" in ex.truncated


def test_child_count_budget_spans_the_tree(sandbox, factory):
    data = S.zip_of({f"f{i}.txt": b"x" for i in range(50)})
    ex = extract(S.sniffed(data, factory), Budget(max_children=10), factory, sandbox=sandbox)
    assert len(ex.children) == 10 and "children" in ex.truncated
