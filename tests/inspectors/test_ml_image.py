"""ml_image: NudeNet ships with tapsift, runs as an expensive inspector, and the sample policy uses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.model.inspection import InspectorConfig
from inspectors import ml_image
from inspectors.base import InspectContext, InspectorConfigError, guarded
from tests.inspectors.extract import media_samples as ms
from tests.inspectors.factories import make_obj


@pytest.fixture(scope="module")
def ins() -> ml_image.MlImageInspector:
    i = ml_image.MlImageInspector()
    i.configure(InspectorConfig("ml_image", (), {}))
    return i


def test_nudenet_is_installed_and_the_inspector_is_expensive(ins):
    assert ins.detector is not None and ins.unavailable == ""
    assert ins.cost == "expensive" and ins.kinds == frozenset({"image"})


@pytest.mark.parametrize(("w", "h", "fmt"), [(320, 240, "JPEG"), (1280, 720, "PNG")])
def test_ordinary_images_are_classified_without_a_finding(ins, w, h, fmt):
    ctx = InspectContext()
    obj = make_obj(data=ms.photo_like_image(w, h, fmt), mime=f"image/{fmt.lower()}")
    assert guarded(ins, obj, ctx) == []
    assert ctx.counters["ml_image.classified"] == 1


def test_a_missing_nudenet_is_logged_and_counted(monkeypatch):
    def missing() -> None:
        raise ImportError("No module named 'nudenet'")

    monkeypatch.setattr(ml_image, "load_detector", missing)
    i = ml_image.MlImageInspector()
    i.configure(InspectorConfig("ml_image", (), {}))
    assert "not installed" in i.unavailable
    ctx = InspectContext()
    assert guarded(i, make_obj(data=ms.photo_like_image(64, 64, "PNG"), mime="image/png"), ctx) == []
    assert ctx.counters["ml_image.unavailable"] == 1
    with pytest.raises(InspectorConfigError):
        i.configure(InspectorConfig("ml_image", (), {"required": True}))


def test_the_sample_policy_classifies_images():
    from policies.schema import load_policy

    p = load_policy(Path(__file__).resolve().parents[2] / "policies" / "sample.yaml")
    prof = p.profiles["pornographic-images"]
    assert prof.category == "pornographic" and [c.inspector for c in prof.configs] == ["ml_image"]
    assert any("pornographic-images" in r.profiles for r in p.rules)
