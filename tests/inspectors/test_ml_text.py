"""The text classifier (train/evaluate commands, inspector) and the optional image classifier."""

from __future__ import annotations

import logging
import sys
import types

import pytest

from appliance.cli import main
from appliance.model.inspection import InspectorConfig
from bench.darkword_bench import make_ml_set
from bench.perceptual_bench import encode, scene
from inspectors.base import InspectContext, InspectorConfigError, guarded
from inspectors.ml_image import MlImageInspector
from inspectors.ml_text import MlTextInspector, TextModel, latest_model, load_labelled, train
from inspectors.modelstore import DEFAULT_MODEL_DIR, set_model_dir
from tests.inspectors.factories import make_obj


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    d = tmp_path_factory.mktemp("mlset")
    make_ml_set(d, per_label=60, seed=3)
    return d


@pytest.fixture(scope="module")
def model_dir(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("models")
    assert main(["ml", "train", str(dataset), "--model-dir", str(out)]) == 0
    set_model_dir(out)  # the sensor's inspection.model_dir
    yield out
    set_model_dir(DEFAULT_MODEL_DIR)


def test_train_prints_precision_recall_f1_and_versions(dataset, model_dir, capsys):
    assert (model_dir / "text-v0001.json").exists()
    assert main(["ml", "train", str(dataset), "--model-dir", str(model_dir), "--test-size", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "| label | precision | recall | F1 | support |" in out and "macro average" in out
    assert "model version 2" in out and latest_model(model_dir).name == "text-v0002.json"
    m = TextModel.load(model_dir / "text-v0002.json")
    assert m.version == 2 and m.negative == "benign" and m.metrics["held_out"]["macro"]["f1"] > 0.8


def test_evaluate_and_info(dataset, model_dir, capsys, tmp_path):
    assert main(["ml", "evaluate", str(model_dir / "text-v0001.json"), str(dataset), "--json",
                 str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "any harmful label vs negative" in out and (tmp_path / "r.json").exists()
    assert main(["ml", "info", str(model_dir)]) == 0
    assert "labels: benign, fraud, gambling, pornography" in capsys.readouterr().out
    assert main(["ml", "train", str(tmp_path)]) == 1


def test_train_api_generalises(dataset):
    texts, labels = load_labelled(dataset)
    model, rep = train(texts, labels, seed=1)
    assert rep.macro[2] > 0.8 and rep.positive and rep.positive[1] > 0.8
    probs = model.predict_proba(["百家乐真人荷官，注册送彩金", "秋天的公园里叶子黄了，我们去散步。"])
    assert probs[0]["gambling"] > 0.5 and probs[1]["benign"] > 0.5


def test_inspector_findings_and_thresholds(model_dir):
    ins = MlTextInspector()
    ins.configure(InspectorConfig("ml_text", params={"model": "text-v0001.json",
                                                     "thresholds": {"gambling": 0.5}}))
    spam = make_obj(text="最新六合彩开奖结果，百家乐平台注册即送彩金。Play casino online.")
    (f,) = guarded(ins, spam, InspectContext())
    assert f.inspector == "ml_text" and f.rule == "gambling" and 0.5 <= f.score <= 1
    assert f.detail["model_version"] == "1" and f.detail["model"] == "text-v0001.json"
    news = make_obj(text="本市今日召开新闻发布会，介绍城市更新的最新进展。天气晴。")
    assert guarded(ins, news, InspectContext()) == []
    assert guarded(ins, make_obj(text="short"), InspectContext()) == []


def test_inspector_configuration_errors(model_dir, tmp_path):
    with pytest.raises(InspectorConfigError, match=r"params\.model"):
        MlTextInspector().configure(InspectorConfig("ml_text"))
    with pytest.raises(InspectorConfigError, match="thresholds"):
        MlTextInspector().configure(InspectorConfig("ml_text", params={"model": str(model_dir),
                                                                        "thresholds": {"nope": 0.5}}))
    bogus = model_dir / "x.json"
    bogus.write_bytes(b"not a model")
    with pytest.raises(InspectorConfigError, match=r"cannot load.*not a JSON model"):
        MlTextInspector().configure(InspectorConfig("ml_text", params={"model": "x.json"}))


# ---------------------------------------------------------------- ml_image (optional extra)


def test_ml_image_says_so_when_nudenet_is_missing(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "nudenet", None)  # import fails
    ins = MlImageInspector()
    with caplog.at_level(logging.WARNING):
        ins.configure(InspectorConfig("ml_image"))
    assert "NudeNet" in ins.unavailable and "NOT be classified" in caplog.text
    ctx = InspectContext()
    assert guarded(ins, make_obj(encode(scene(1)), mime="image/png"), ctx) == []
    assert ctx.counters["ml_image.unavailable"] == 1
    with pytest.raises(InspectorConfigError, match="NudeNet"):
        MlImageInspector().configure(InspectorConfig("ml_image", params={"required": True}))


def test_ml_image_with_a_detector(monkeypatch):
    class FakeDetector:
        def detect(self, img):
            assert img.ndim == 3 and img.shape[2] == 3
            return [{"class": "FEMALE_BREAST_EXPOSED", "score": 0.82, "box": [1, 2, 3, 4]},
                    {"class": "FACE_FEMALE", "score": 0.9, "box": [0, 0, 1, 1]}]

    monkeypatch.setitem(sys.modules, "nudenet", types.SimpleNamespace(NudeDetector=FakeDetector))
    ins = MlImageInspector()
    ins.configure(InspectorConfig("ml_image", params={"threshold": 0.6}))
    (f,) = guarded(ins, make_obj(encode(scene(2)), mime="image/png"), InspectContext())
    assert f.rule == "pornographic" and f.score == pytest.approx(0.82)
    assert "FEMALE_BREAST_EXPOSED:0.82" in f.detail["classes"] and "FACE" not in f.detail["classes"]
    ins.configure(InspectorConfig("ml_image", params={"threshold": 0.9}))
    assert guarded(ins, make_obj(encode(scene(2)), mime="image/png"), InspectContext()) == []
