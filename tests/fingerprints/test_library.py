"""The SQLite library: importers, exporters, removal, and sets loaded from it."""

from __future__ import annotations

import hashlib
import io

import pytest

from bench.perceptual_bench import encode, scene
from fingerprints import hashing as hx
from fingerprints.library import Entry, Library, is_library, sniff_format
from fingerprints.sets import clear_cache, load_exact, load_perceptual


@pytest.fixture
def lib(tmp_path):
    with Library(tmp_path / "fp.db") as lib:
        yield lib


def test_hash_list_import_labels_and_duplicates(lib, tmp_path):
    hs = [hashlib.md5(str(i).encode()).hexdigest() for i in range(50)]
    p = tmp_path / "list.txt"
    p.write_text("# suricata filemd5\n" + "\n".join(f"{h}  evil{i}.exe" if i % 2 else h for i, h in enumerate(hs))
                 + "\nnot-a-hash\n" + hs[0] + "\n")
    st = lib.import_hash_list(p, category="malware-hosting")
    assert (st.added, st.duplicates, st.invalid) == (50, 1, 1)
    e = lib.find("md5", hs[1])[0]
    assert e.label == "evil1.exe" and e.category == "malware-hosting" and e.source == str(p)
    assert lib.counts()["md5"] == 50 and is_library(lib.path) and sniff_format(p) == "hashes"


def test_csv_import_export_roundtrip(lib, tmp_path):
    csv_text = ("md5,phash,dhash,label,category\n"
                f"{'a' * 32},8f373714acfcf4d0,0000000000000001,logo,spam\n"
                f",ffffffffffffffff,,other,\n"
                f"{'b' * 31},,,broken,\n")
    st = lib.import_csv(io.StringIO(csv_text))
    assert (st.added, st.invalid) == (2, 1)
    out = io.StringIO()
    assert lib.export_csv(out) == 2
    with Library(tmp_path / "copy.db") as other:
        assert other.import_csv(io.StringIO(out.getvalue())).added == 2
        assert [e.phash for e in other.entries(algorithm="phash")] == ["8f373714acfcf4d0", "ffffffffffffffff"]
    lines = io.StringIO()
    assert lib.export_hashes(lines, "phash", with_label=True) == 2
    assert lines.getvalue().splitlines()[0] == "8f373714acfcf4d0\tlogo"


def test_directory_import_hashes_images_and_files(lib, tmp_path):
    d = tmp_path / "known"
    d.mkdir()
    (d / "a.png").write_bytes(encode(scene(1)))
    (d / "b.jpg").write_bytes(encode(scene(2), "JPEG", 80))
    (d / "c.txt").write_bytes(b"plain file")
    st = lib.import_directory(d, category="pornographic")
    assert st.added == 3
    rows = {e.label: e for e in lib.entries()}
    assert rows["c.txt"].phash is None and rows["c.txt"].md5 == hashlib.md5(b"plain file").hexdigest()
    assert rows["a.png"].phash and rows["a.png"].dhash and rows["a.png"].width
    assert lib.import_directory(d).duplicates == 3
    assert lib.import_directory(d, images_only=True).added == 0


def test_remove_by_id_and_hash(lib):
    lib.add([Entry(md5="c" * 32), Entry(phash="0" * 16, dhash="1" * 16), Entry(sha256="d" * 64)])
    assert lib.remove("1") == 1
    assert lib.remove("0" * 16) == 1
    assert lib.remove("d" * 64) == 1 and len(lib) == 0
    with pytest.raises(ValueError):
        lib.remove("xyz")


def test_load_exact_from_library_list_and_inline(lib, tmp_path):
    clear_cache()
    hs = [hashlib.md5(str(i).encode()).hexdigest() for i in range(30)]
    lib.add([Entry(md5=h, label=f"f{i}", category="malware-hosting") for i, h in enumerate(hs)])
    fps = load_exact("md5", lib.path, ("e" * 32,))
    hit = fps.lookup(hs[3].upper())
    assert hit and hit.label == "f3" and hit.category == "malware-hosting" and hit.entry_id
    assert fps.lookup("e" * 32).entry_id == 0 and fps.lookup("f" * 32) is None
    assert load_exact("md5", lib.path, ("e" * 32,)) is fps  # cached while the file is unchanged
    p = tmp_path / "l.txt"
    p.write_text("\n".join(hs) + "\n")
    assert len(load_exact("md5", str(p))) == 30
    with pytest.raises(ValueError):
        load_exact("phash")


def test_load_perceptual_pairs_and_rule():
    clear_cache()
    fps = load_perceptual("phash", hashes=("00000000000000ff:0000000000000000", "ffffffffffffffff"))
    # 8 bits from the first: direct match
    assert [m[:2] for m in fps.match(0, None, 8)] == [(0, 8)]
    # 12 bits: only with a close dHash
    q = 0xFFF0FF  # 12 bits from the first entry
    assert fps.match(q, None, 8, 6, 10) == []
    assert fps.match(q, 0b111, 8, 6, 10) == [(0, 12, 3)]
    assert fps.match(q, 0xFFFFF, 8, 6, 10) == []  # dHash 20 bits away
    h = fps.hit(0, 12, 3)
    assert h.hash == "00000000000000ff" and h.confirm_distance == 3
    assert hx.to_hex(int(fps.primary[1]), "phash") == "ffffffffffffffff"
