"""Models are data: read only from the model directory, never unpickled by the sensor.

The incident: an analyst who could edit the policy saved ``model:`` as the path of a pickle they
had planted, and the next policy read ran it as root. Here a planted pickle whose ``__reduce__``
creates a marker file is offered every way a policy, the inspector or a command could read it;
the marker must never appear. Pickles that earlier versions wrote are converted once, by
``tapsift ml convert``, to JSON that predicts exactly the same.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli import main
from appliance.model.inspection import InspectorConfig
from inspectors.base import InspectorConfigError
from inspectors.ml_text import MlTextInspector, TextModel, open_model
from inspectors.modelstore import DEFAULT_MODEL_DIR, ModelPathError, resolve_model, set_model_dir
from tests.inspectors.model_factories import labelled, small_model


class Planted:
    """Unpickling this creates ``path`` (as ``os.system`` or anything else could run)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


@pytest.fixture(scope="module")
def data() -> tuple[list[str], list[str]]:
    return labelled()


@pytest.fixture(scope="module")
def trained() -> TextModel:
    return small_model()


@pytest.fixture
def models(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    set_model_dir(d)
    yield d
    set_model_dir(DEFAULT_MODEL_DIR)


def old_pickle(model: TextModel, path: Path) -> None:
    """A model file exactly as tapsift wrote it before JSON (format 1)."""
    blob = {"format": "tapsift-text-classifier", "format_version": 1, "version": 7, "created": "2025-01-01T00:00:00Z",
            "labels": model.labels, "negative": model.negative, "metrics": {"held_out": {}}, "params": {},
            "sklearn": model.sklearn, "pipeline": model.pipeline}
    path.write_bytes(pickle.dumps(blob, protocol=pickle.HIGHEST_PROTOCOL))


def planted(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"format": "tapsift-text-classifier", "pipeline": Planted(marker)}))
    return path


def test_the_planted_pickle_does_run_when_unpickled(tmp_path: Path) -> None:
    """The payload is real: plain unpickling (what the old loader did) creates the marker."""
    marker = tmp_path / "ran"
    bomb = planted(tmp_path / "p.pkl", marker)
    subprocess.run([sys.executable, "-c", f"import pickle; pickle.load(open({str(bomb)!r}, 'rb'))"], check=True)
    assert marker.exists()


def test_a_planted_pickle_is_refused_unread_everywhere(models: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "ran"
    inside = planted(models / "text-v0009.pkl", marker)
    disguised = planted(models / "text-v0010.json", marker)
    outside = planted(tmp_path / "planted.pkl", marker)
    for name in ("text-v0009.pkl", "text-v0010.json", str(inside), str(outside), "../planted.pkl"):
        with pytest.raises(InspectorConfigError) as exc:
            MlTextInspector().configure(InspectorConfig("ml_text", params={"model": name}))
        assert any(w in str(exc.value) for w in ("pickled model", "outside the model directory", "'..'")), exc.value
    # the administrator's commands: info/predict read JSON only; convert's unpickler refuses the payload
    assert main(["ml", "info", str(disguised)]) == 1
    assert main(["ml", "predict", str(inside), "-"]) == 1
    assert main(["ml", "convert", str(inside)]) == 1
    err = capsys.readouterr().err
    assert "pickled model" in err and "asks for io.open" in err and "refused" in err
    assert not marker.exists()
    assert not (models / "text-v0009.json").exists()


def test_convert_gives_exactly_the_same_predictions(models: Path, trained: TextModel,
                                                    data: tuple[list[str], list[str]]) -> None:
    old_pickle(trained, models / "text-v0001.pkl")
    with pytest.raises(InspectorConfigError, match="tapsift ml convert"):
        MlTextInspector().configure(InspectorConfig("ml_text", params={"model": "."}))
    assert main(["ml", "convert", str(models)]) == 0
    converted = open_model(".")  # the folder: its newest JSON version
    assert Path(converted.path).name == "text-v0001.json" and converted.version == 7
    texts = [*data[0], "", "x", "百家乐 casino 注册送彩金 " * 50]
    with open(models / "text-v0001.pkl", "rb") as fh:
        original = pickle.load(fh)["pipeline"]  # the test's own pickle: trusted
    assert (converted.pipeline.predict_proba(texts) == original.predict_proba(texts)).all()
    assert list(converted.pipeline.predict(texts)) == list(original.predict(texts))
    # the file is data: JSON, nothing to unpickle
    blob = json.loads((models / "text-v0001.json").read_text())
    assert blob["format_version"] == 2 and "pipeline" not in blob
    assert main(["ml", "convert", str(models)]) == 0  # once: an existing JSON twin is left alone


def test_train_writes_json_that_predicts_as_the_trained_pipeline(models: Path, trained: TextModel,
                                                                 data: tuple[list[str], list[str]]) -> None:
    trained.save(models / "text-v0003.json")
    again = TextModel.load(models / "text-v0003.json")
    assert (again.pipeline.predict_proba(data[0]) == trained.pipeline.predict_proba(data[0])).all()
    assert again.labels == trained.labels and again.negative == trained.negative


def test_names_resolve_inside_the_model_directory_only(models: Path, trained: TextModel, tmp_path: Path) -> None:
    (models / "sub").mkdir()
    trained.save(models / "sub" / "text-v0001.json")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    trained.save(outside / "text-v0001.json")
    os.symlink(outside / "text-v0001.json", models / "escape.json")
    os.symlink(outside, models / "escape-dir")
    os.symlink(models / "sub" / "text-v0001.json", models / "alias.json")
    assert resolve_model("sub") == (models / "sub").resolve()
    assert resolve_model("alias.json") == (models / "sub" / "text-v0001.json").resolve()
    assert resolve_model(str(models / "sub" / "text-v0001.json")).name == "text-v0001.json"
    assert open_model("sub").version == 0
    for name, why in [("escape.json", "leads outside"), ("escape-dir", "leads outside"),
                      ("escape-dir/text-v0001.json", "leads outside"), ("../elsewhere/text-v0001.json", "'..'"),
                      (str(outside / "text-v0001.json"), "outside the model directory"),
                      ("missing.json", "No such file"), ("", "required")]:
        with pytest.raises(ModelPathError, match=why):
            resolve_model(name)
        with pytest.raises(InspectorConfigError):
            MlTextInspector().configure(InspectorConfig("ml_text", params={"model": name or " "}))


def test_model_files_are_validated_not_trusted(models: Path, trained: TextModel) -> None:
    good = trained.to_json()
    for bad, why in [({**good, "format_version": 1}, "format 1"),
                     ({**good, "vectorizer": {**good["vectorizer"], "params": {
                         **good["vectorizer"]["params"], "analyzer": "callable"}}}, "analyzer"),
                     ({**good, "classifier": {**good["classifier"], "classes": ["a"] * 9}}, "do not fit"),
                     ({**good, "vectorizer": {**good["vectorizer"], "idf": {"dtype": "|O", "shape": [1], "b64": ""}}},
                      "array entry")]:
        (models / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError, match=why):
            TextModel.load(models / "bad.json")
