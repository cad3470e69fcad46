"""The perceptual inspector: look-alike images with per-list thresholds and dual-hash confirmation."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from PIL import Image, ImageEnhance

from appliance.model.inspection import InspectorConfig, ListSpec
from bench.perceptual_bench import TRANSFORMS, encode, scene
from fingerprints import hashing as hx
from fingerprints.library import Library
from fingerprints.sets import clear_cache
from inspectors.base import InspectContext, InspectorConfigError, guarded
from inspectors.perceptual import PerceptualInspector
from tests.inspectors.factories import make_obj


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    d = tmp_path_factory.mktemp("known")
    for i in range(6):
        (d / f"banned{i}.png").write_bytes(encode(scene(1000 + i)))
    db = d / "fp.db"
    with Library(db) as lib:
        lib.import_directory(d, category="pornographic", images_only=True)
    return db


def inspector(db, **options) -> PerceptualInspector:
    clear_cache()
    ins = PerceptualInspector()
    ins.configure(InspectorConfig("perceptual", (ListSpec("banned", "fingerprints", weight=5, options={
        "algorithm": "phash", "path": str(db), "max_distance": 8, **options}),)))
    return ins


def img_obj(data: bytes, oid: str = "Fimg", **kw):
    return make_obj(data, mime="image/jpeg" if data[:2] == b"\xff\xd8" else "image/png", oid=oid, **kw)


@pytest.mark.parametrize("name", ["resize 50%", "JPEG q30", "brightness +20%", "grayscale", "crop 2%", "PNG→JPEG"])
def test_benign_transforms_match(library, name):
    ins = inspector(library)
    data = TRANSFORMS[name](scene(1002))  # type: ignore[operator]
    (f,) = guarded(ins, img_obj(data), InspectContext())
    assert f.rule == "banned" and f.score == 5.0 and f.detail["label"] == "banned2.png"
    assert f.detail["category"] == "pornographic" and int(f.detail["distance"]) <= 14
    assert "looks like banned2.png" in f.evidence[0].snippet


def test_unrelated_images_do_not_match(library):
    ins = inspector(library)
    for seed in range(20):
        assert guarded(ins, img_obj(encode(scene(5000 + seed)), oid=f"F{seed}"), InspectContext()) == []


def test_child_image_inside_a_document_is_inspected(library):
    ins = inspector(library)
    child = replace(img_obj(encode(scene(1004), "JPEG", 70), oid="Fdocx-img", parent_id="Fdocx", depth=1,
                            filename="word/media/image1.jpeg"), source="extract")
    assert len(guarded(ins, child, InspectContext())) == 1


def test_dual_hash_confirmation_zone(tmp_path):
    base = scene(77)
    h = hx.image_hashes(base)
    # craft list entries 11 bits from the image's pHash: one with its real dHash, one with a far one
    far = h.phash ^ 0x7FF
    good = f"{hx.to_hex(far, 'phash')}:{hx.to_hex(h.dhash, 'dhash')}"
    bad = f"{hx.to_hex(far, 'phash')}:{hx.to_hex(h.dhash ^ 0xFFFFF, 'dhash')}"
    for entry, want in ((good, 1), (bad, 0)):
        clear_cache()
        ins = PerceptualInspector()
        ins.configure(InspectorConfig("perceptual", (ListSpec("l", "fingerprints", options={
            "algorithm": "phash", "hashes": (entry,), "max_distance": 8}),)))
        found = guarded(ins, img_obj(encode(base)), InspectContext())
        assert len(found) == want
        if found:
            assert found[0].detail["distance"] == "11" and found[0].detail["confirm_distance"] == "0"
            assert "confirmed by dhash" in found[0].evidence[0].snippet
    # without confirmation (margin 0) the same entry does not match
    clear_cache()
    ins = PerceptualInspector()
    ins.configure(InspectorConfig("perceptual", (ListSpec("l", "fingerprints", options={
        "algorithm": "phash", "hashes": (good,), "max_distance": 8, "margin": 0}),)))
    assert guarded(ins, img_obj(encode(base)), InspectContext()) == []


def test_dhash_list_threshold_default(library):
    d = hx.image_hashes(scene(1001)).dhash
    clear_cache()
    ins = PerceptualInspector()
    ins.configure(InspectorConfig("perceptual", (ListSpec("d", "fingerprints", options={
        "algorithm": "dhash", "hashes": (hx.to_hex(d, "dhash"),), "max_distance": 0}),)))
    assert ins.lists[0].threshold == 10
    dim = ImageEnhance.Brightness(scene(1001)).enhance(0.8)
    assert len(guarded(ins, img_obj(encode(dim)), InspectContext())) == 1


def test_non_images_bombs_and_garbage(library):
    ins = inspector(library)
    ctx = InspectContext()
    assert guarded(ins, make_obj(b"hello", mime="text/plain"), ctx) == []
    assert guarded(ins, img_obj(b"\x89PNG broken", oid="Fbad"), ctx) == []
    assert "image_undecodable" in ctx.flags["Fbad"]
    clear_cache()
    small = PerceptualInspector()
    small.configure(InspectorConfig("perceptual", ins.lists and (ListSpec("banned", "fingerprints", options={
        "algorithm": "phash", "path": str(library)}),), {"max_pixels": 1000}))
    ctx = InspectContext()
    assert guarded(small, img_obj(encode(Image.new("RGB", (2000, 2000))), oid="Fbig"), ctx) == []
    assert "image_over_pixel_cap" in ctx.flags["Fbig"]


def test_hashes_are_computed_once_per_object(library, monkeypatch):
    ins = inspector(library)
    calls = []
    real = hx.image_hashes
    monkeypatch.setattr(hx, "image_hashes", lambda *a, **k: calls.append(1) or real(*a, **k))
    ctx = InspectContext()
    obj = img_obj(encode(scene(1003)))
    assert len(guarded(ins, obj, ctx)) == 1 and len(guarded(ins, obj, ctx)) == 1 and len(calls) == 1


def test_configuration_errors(library):
    def conf(**opts):
        clear_cache()
        PerceptualInspector().configure(InspectorConfig("perceptual", (ListSpec("x", "fingerprints", options=opts),)))

    with pytest.raises(InspectorConfigError, match="md5 inspector"):
        conf(algorithm="md5", hashes=("0" * 32,))
    with pytest.raises(InspectorConfigError, match="over half"):
        conf(algorithm="phash", hashes=("0" * 16,), max_distance=40)
    if not hx.pdq_available():
        with pytest.raises(InspectorConfigError, match="pdqhash"):
            conf(algorithm="pdq", hashes=("0" * 64,))
    with pytest.raises(InspectorConfigError):
        conf(algorithm="phash", hashes=("nothex",))
    assert io  # keep the import used for readers copying these helpers
