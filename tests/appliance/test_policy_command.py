"""``tapsift policy check``: a policy is OK only when everything it names can run.

It used to say OK for a fingerprint set or model that did not exist; now each such file is a
``FILE:LINE:COLUMN: problem`` line (as other policy errors) and the exit code is 1.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pytest

from appliance.cli import main
from inspectors.modelstore import DEFAULT_MODEL_DIR, set_model_dir
from inspectors.registry import profile_problems, validate_inspectors
from policies.schema import load_policy
from tests.inspectors.model_factories import small_model

POLICY = """\
lists:
  known:
    type: fingerprints
    algorithm: md5
    path: {hashes}
profiles:
  leak:
    category: data-leak/confidential
    inspect:
      - inspector: md5
        lists: [known]
  gambling:
    category: fraud
    inspect:
      - inspector: ml_text
        params: {{model: {model}, threshold: 0.5}}
policies:
  - {{name: all, profiles: [leak, gambling]}}
"""


@pytest.fixture
def models(tmp_path: Path) -> Path:
    d = tmp_path / "models"
    d.mkdir()
    small_model().save(d / "text-v0001.json")
    yield d
    set_model_dir(DEFAULT_MODEL_DIR)


def write(tmp_path: Path, *, hashes: str = "hashes.txt", model: str = "text-v0001.json") -> Path:
    (tmp_path / "hashes.txt").write_text(hashlib.md5(b"secret").hexdigest() + "  secret.docx\n")
    p = tmp_path / "policy.yaml"
    p.write_text(POLICY.format(hashes=hashes, model=model))
    return p


def check(p: Path, models: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["policy", "check", str(p), "--model-dir", str(models)])
    got = capsys.readouterr()
    return code, got.out + got.err


def test_everything_named_exists(tmp_path: Path, models: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(write(tmp_path), models, capsys)
    assert code == 0 and out.strip().endswith("OK (0 zones, 1 lists, 2 profiles, 1 rules, version "
                                              + load_policy(tmp_path / "policy.yaml").version + ")")


@pytest.mark.parametrize(("hashes", "model", "line", "col", "problem"), [
    ("missing.txt", "text-v0001.json", 5, 11, "fingerprint list 'known': {tmp}/missing.txt: no such file"),
    (".", "text-v0001.json", 5, 11, "fingerprint list 'known': {tmp}: not a readable file"),
    ("junk.txt", "text-v0001.json", 5, 11, "fingerprint list 'known': no md5 fingerprints in {tmp}/junk.txt"),
    ("hashes.txt", "text-v0009.json", 16, 25, "ml_text: model 'text-v0009.json': No such file or directory"),
    ("hashes.txt", "old.pkl", 15, 9, "pickled model from an earlier tapsift"),
    ("hashes.txt", "empty", 15, 9, "no text-vNNNN.json model in"),
])
def test_each_broken_reference_is_located(tmp_path: Path, models: Path, capsys: pytest.CaptureFixture[str],
                                          hashes: str, model: str, line: int, col: int, problem: str) -> None:
    (tmp_path / "junk.txt").write_text("not a hash\nnor this\n")
    (models / "empty").mkdir()
    (models / "old.pkl").write_bytes(pickle.dumps({"format": "tapsift-text-classifier"}))
    p = write(tmp_path, hashes=hashes, model=model)
    code, out = check(p, models, capsys)
    assert code == 1, out
    want = f"{p}:{line}:{col}: " + problem.format(tmp=tmp_path)
    assert any(ln.startswith(f"{p}:{line}:{col}: ") and problem.format(tmp=tmp_path) in ln
               for ln in out.splitlines()), (want, out)
    assert "the sensor cannot run it as written" in out


def test_a_model_outside_the_model_directory_is_a_policy_error(tmp_path: Path, models: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, model=str(tmp_path / "planted.pkl"))
    code, out = check(p, models, capsys)
    assert code == 1 and f"{p}:16:25: model '{tmp_path}/planted.pkl' is outside the model directory" in out


def test_validate_inspectors_is_callable_for_read(tmp_path: Path, models: Path) -> None:
    """The function ``tapsift read`` calls (exit 1 when it returns problems)."""
    set_model_dir(models)
    pol = load_policy(write(tmp_path, hashes="missing.txt"), model_dir=models)
    problems = validate_inspectors(pol)
    assert len(problems) == 1 and problems[0].startswith(f"{tmp_path}/policy.yaml:5:11: ")
    assert list(profile_problems(pol)) == ["leak"]
    assert validate_inspectors(load_policy(write(tmp_path), model_dir=models)) == []
