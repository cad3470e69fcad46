"""``ml_text``: a text classifier (character n-gram TF-IDF + logistic regression, scikit-learn).

Character n-grams (``char_wb``, 1-4) need no word segmentation, so the same model reads Chinese
and English (notes/components.md §7: 15 k docs train in about a second, 16 k docs/s predicted).

Training data is a folder of labelled folders: ``DATA/<label>/*`` (any text files; UTF-8, else
GB18030). A label named ``benign``, ``normal``, ``legit``, ``legitimate``, ``ham``, ``clean``,
``safe`` or ``negative`` is the negative class: it never raises a finding. `train` holds out a
stratified split (default 20 %) and reports precision/recall/F1 on it.

Model files are versioned: ``text-v0001.pkl``, ``text-v0002.pkl``… in a model folder (``tapsift
ml train`` picks the next number). A file is a pickle of ``{"format", "version", "created",
"labels", "negative", "metrics", "sklearn", "pipeline", ...}``; **pickles run code when loaded, so
load only model files you made** (the inspector reads the path its policy names).

Inspector params: ``model`` (file, required), ``threshold`` (0.5) or ``thresholds`` ({label:
p}), ``labels`` (only these), ``min_chars`` (20), ``max_text_chars`` (100,000: the start of
long texts). One finding per label at or over its threshold: ``rule`` = the label, ``score`` =
the probability (compared with the profile's thresholds by the policy).
"""

from __future__ import annotations

import logging
import pickle
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from appliance.model.alerts import Evidence, Finding
from appliance.model.content import ContentObject
from appliance.model.inspection import InspectorConfig
from inspectors.base import InspectContext, InspectorConfigError

log = logging.getLogger(__name__)

MODEL_FORMAT = "tapsift-text-classifier"
FORMAT_VERSION = 1
NEGATIVE_LABELS = ("benign", "normal", "legit", "legitimate", "ham", "clean", "safe", "negative")
_MODEL_NAME = re.compile(r"^text-v(\d{4,})\.pkl$")


def read_text_file(path: Path, max_bytes: int = 1 << 20) -> str:
    data = path.read_bytes()[:max_bytes]
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", "replace")


def load_labelled(folder: str | Path) -> tuple[list[str], list[str]]:
    """Texts and labels from ``folder/<label>/*`` (hidden files skipped)."""
    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{folder}: not a folder of labelled folders")
    texts: list[str] = []
    labels: list[str] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(sub.rglob("*")):
            if f.is_file() and not f.name.startswith("."):
                texts.append(read_text_file(f))
                labels.append(sub.name)
    if len(set(labels)) < 2:
        raise ValueError(f"{folder}: needs at least two label folders with files (found {sorted(set(labels))})")
    return texts, labels


@dataclass(slots=True)
class Report:
    """Precision, recall and F1 per label, macro averages, accuracy and support."""

    per_label: dict[str, tuple[float, float, float, int]]
    macro: tuple[float, float, float]
    accuracy: float
    support: int
    positive: tuple[float, float, float] | None = None
    """P/R/F1 of "any non-negative label" vs the negative label, when there is one."""

    def to_json(self) -> dict[str, Any]:
        return {"per_label": {k: dict(zip(("precision", "recall", "f1", "support"), v))
                              for k, v in self.per_label.items()},
                "macro": dict(zip(("precision", "recall", "f1"), self.macro)), "accuracy": self.accuracy,
                "support": self.support,
                "positive": dict(zip(("precision", "recall", "f1"), self.positive)) if self.positive else None}

    def table(self) -> str:
        rows = ["| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for k, (p, r, f, n) in self.per_label.items():
            rows.append(f"| {k} | {p:.3f} | {r:.3f} | {f:.3f} | {n} |")
        rows.append(f"| macro average | {self.macro[0]:.3f} | {self.macro[1]:.3f} | {self.macro[2]:.3f} | "
                    f"{self.support} |")
        if self.positive:
            p, r, f = self.positive
            rows.append(f"| any harmful label vs negative | {p:.3f} | {r:.3f} | {f:.3f} | |")
        rows.append(f"\naccuracy {self.accuracy:.3f} on {self.support} documents")
        return "\n".join(rows)


def report(y_true: Sequence[str], y_pred: Sequence[str], negative: str | None) -> Report:
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    labels = sorted(set(y_true) | set(y_pred))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per = {lab: (float(p[i]), float(r[i]), float(f[i]), int(s[i])) for i, lab in enumerate(labels)}
    mp, mr, mf, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average="macro", zero_division=0)
    pos = None
    if negative is not None:
        bt = [y != negative for y in y_true]
        bp = [y != negative for y in y_pred]
        pp, pr, pf, _ = precision_recall_fscore_support(bt, bp, average="binary", zero_division=0)
        pos = (float(pp), float(pr), float(pf))
    return Report(per, (float(mp), float(mr), float(mf)), float(accuracy_score(y_true, y_pred)), len(y_true), pos)


@dataclass(slots=True)
class TextModel:
    """A trained pipeline and what is known about it."""

    pipeline: Any
    labels: list[str]
    negative: str | None
    version: int = 0
    created: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    sklearn: str = ""
    path: str = ""

    def predict_proba(self, texts: Sequence[str]) -> list[dict[str, float]]:
        probs = self.pipeline.predict_proba(list(texts))
        classes = list(self.pipeline.classes_)
        return [{c: float(row[i]) for i, c in enumerate(classes)} for row in probs]

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [str(x) for x in self.pipeline.predict(list(texts))]

    def save(self, path: str | Path) -> None:
        blob = {"format": MODEL_FORMAT, "format_version": FORMAT_VERSION, "version": self.version,
                "created": self.created, "labels": self.labels, "negative": self.negative, "metrics": self.metrics,
                "params": self.params, "sklearn": self.sklearn, "pipeline": self.pipeline}
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(blob, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(p)

    @classmethod
    def load(cls, path: str | Path) -> TextModel:
        with open(path, "rb") as fh:
            blob = pickle.load(fh)
        if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path}: not a tapsift text classifier")
        if int(blob.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(f"{path}: model format {blob.get('format_version')} is newer than this tapsift")
        import sklearn

        if blob.get("sklearn") and blob["sklearn"] != sklearn.__version__:
            log.warning("%s was trained with scikit-learn %s, running %s: retrain if predictions look wrong",
                        path, blob["sklearn"], sklearn.__version__)
        return cls(blob["pipeline"], list(blob["labels"]), blob.get("negative"), int(blob.get("version", 0)),
                   blob.get("created", ""), blob.get("metrics", {}), blob.get("params", {}), blob.get("sklearn", ""),
                   str(path))


def make_pipeline(*, ngram_max: int = 4, c: float = 4.0, max_features: int | None = 300_000) -> Any:
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    return Pipeline([
        ("tfidf", TfidfVectorizer(analyzer="char_wb", ngram_range=(1, ngram_max), sublinear_tf=True,
                                  max_features=max_features, lowercase=True, dtype=np.float32)),
        ("lr", LogisticRegression(C=c, max_iter=2000)),
    ])


def train(texts: Sequence[str], labels: Sequence[str], *, test_size: float = 0.2, seed: int = 0,
          ngram_max: int = 4, c: float = 4.0) -> tuple[TextModel, Report]:
    """Train on a stratified split, report on the held-out part, then refit on everything."""
    import sklearn
    from sklearn.model_selection import train_test_split

    negative = next((lab for lab in sorted(set(labels)) if lab.lower() in NEGATIVE_LABELS), None)
    x_tr, x_te, y_tr, y_te = train_test_split(list(texts), list(labels), test_size=test_size, random_state=seed,
                                              stratify=list(labels))
    t = time.perf_counter()
    pipe = make_pipeline(ngram_max=ngram_max, c=c)
    pipe.fit(x_tr, y_tr)
    fit_s = time.perf_counter() - t
    rep = report(y_te, [str(x) for x in pipe.predict(x_te)], negative)
    final = make_pipeline(ngram_max=ngram_max, c=c)
    final.fit(list(texts), list(labels))
    model = TextModel(final, sorted(set(labels)), negative, created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      metrics={"held_out": rep.to_json(), "train_docs": len(x_tr), "test_docs": len(x_te),
                               "fit_seconds": round(fit_s, 2)},
                      params={"ngram_max": ngram_max, "C": c, "test_size": test_size, "seed": seed},
                      sklearn=sklearn.__version__)
    return model, rep


def evaluate(model: TextModel, texts: Sequence[str], labels: Sequence[str]) -> Report:
    return report(list(labels), model.predict(texts), model.negative)


def next_model_path(folder: str | Path) -> tuple[Path, int]:
    """``folder/text-vNNNN.pkl`` with the next free version number."""
    root = Path(folder)
    versions = [int(m.group(1)) for p in root.glob("text-v*.pkl") if (m := _MODEL_NAME.match(p.name))] \
        if root.is_dir() else []
    v = max(versions, default=0) + 1
    return root / f"text-v{v:04d}.pkl", v


def latest_model(folder: str | Path) -> Path | None:
    root = Path(folder)
    found = sorted((int(m.group(1)), p) for p in root.glob("text-v*.pkl") if (m := _MODEL_NAME.match(p.name)))
    return found[-1][1] if found else None


class MlTextInspector:
    """See the module docstring."""

    name = "ml_text"
    kinds = frozenset({"text"})
    cost: Literal["cheap", "expensive"] = "expensive"

    def __init__(self) -> None:
        self.model: TextModel | None = None
        self.thresholds: dict[str, float] = {}
        self.default_threshold = 0.5
        self.only: frozenset[str] | None = None
        self.min_chars = 20
        self.max_text_chars = 100_000

    def configure(self, config: InspectorConfig) -> None:
        p = dict(config.params)
        path = str(p.get("model") or "")
        if not path:
            raise InspectorConfigError("ml_text needs params.model (a model file from 'tapsift ml train', or a "
                                       "folder of them: the newest version is used)")
        if Path(path).is_dir():
            latest = latest_model(path)
            if latest is None:
                raise InspectorConfigError(f"ml_text: no text-vNNNN.pkl model in {path}")
            path = str(latest)
        try:
            self.model = TextModel.load(path)
        except (OSError, ValueError, pickle.UnpicklingError, EOFError, KeyError, AttributeError, ImportError) as exc:
            raise InspectorConfigError(f"ml_text: cannot load model {path}: {exc}") from None
        try:
            self.default_threshold = float(p.get("threshold", 0.5))
            self.thresholds = {str(k): float(v) for k, v in dict(p.get("thresholds", {}) or {}).items()}
            self.min_chars = int(p.get("min_chars", 20))
            self.max_text_chars = int(p.get("max_text_chars", 100_000))
        except (TypeError, ValueError) as exc:
            raise InspectorConfigError(f"ml_text params: {exc}") from None
        unknown = set(self.thresholds) - set(self.model.labels)
        if unknown:
            raise InspectorConfigError(f"ml_text: thresholds for labels the model does not have: {sorted(unknown)} "
                                       f"(model labels: {self.model.labels})")
        labels = p.get("labels")
        self.only = frozenset(str(x) for x in labels) if labels else None
        log.info("ml_text: model %s (version %d, labels %s)", path, self.model.version, ", ".join(self.model.labels))

    def inspect(self, obj: ContentObject, ctx: InspectContext) -> Iterator[Finding]:
        model = self.model
        if model is None:
            return
        text = ctx.text(obj)
        if len(text.strip()) < self.min_chars:
            return
        if obj.hidden_text:
            text = text + "\n" + obj.hidden_text
        probs = model.predict_proba([text[: self.max_text_chars]])[0]
        ctx.counters["ml_text.classified"] += 1
        for label, prob in sorted(probs.items(), key=lambda kv: -kv[1]):
            if label == model.negative or (self.only is not None and label not in self.only):
                continue
            th = self.thresholds.get(label, self.default_threshold)
            if prob < th:
                continue
            detail = {"label": label, "probability": f"{prob:.3f}", "threshold": f"{th:g}",
                      "model": Path(model.path).name, "model_version": str(model.version), "count": "1"}
            snippet = text[:120].replace("\n", " ")
            yield Finding(self.name, obj.id, label, round(prob, 4), (Evidence(0, min(len(text), 120), snippet),),
                          detail)
