"""``ml_text``: a text classifier (character n-gram TF-IDF + logistic regression, scikit-learn).

Character n-grams (``char_wb``, 1-4) need no word segmentation, so the same model reads Chinese
and English (notes/components.md §7: 15 k docs train in about a second, 16 k docs/s predicted).

Training data is a folder of labelled folders: ``DATA/<label>/*`` (any text files; UTF-8, else
GB18030). A label named ``benign``, ``normal``, ``legit``, ``legitimate``, ``ham``, ``clean``,
``safe`` or ``negative`` is the negative class: it never raises a finding. `train` holds out a
stratified split (default 20 %) and reports precision/recall/F1 on it.

Model files are versioned: ``text-v0001.json``, ``text-v0002.json``… in the model directory
(``tapsift ml train`` picks the next number). A file is JSON, data only: ``{"format",
"format_version": 2, "version", "created", "labels", "negative", "metrics", "params", "sklearn",
"vectorizer": {"params", "vocabulary", "idf"}, "classifier": {"classes", "coef", "intercept"}}``,
arrays as ``{"dtype", "shape", "b64"}`` (their raw little-endian bytes, so the numbers are exact).
Loading rebuilds the same scikit-learn objects from those numbers: predictions are identical to
the trained pipeline's. Models are read only from the model directory (`inspectors.modelstore`).
Earlier versions wrote pickles (``text-vNNNN.pkl``), which run code when loaded: they are never
loaded here; ``tapsift ml convert`` turns one into JSON once, on an administrator's command,
through an unpickler that admits only the scikit-learn and NumPy types of this pipeline.

Inspector params: ``model`` (a name in the model directory: a model file, or a folder of them
whose newest version is used; required), ``threshold`` (0.5) or ``thresholds`` ({label:
p}), ``labels`` (only these), ``min_chars`` (20), ``max_text_chars`` (100,000: the start of
long texts). One finding per label at or over its threshold: ``rule`` = the label, ``score`` =
the probability (compared with the profile's thresholds by the policy).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import pickle
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from appliance.model.alerts import Evidence, Finding
from appliance.model.content import ContentObject
from appliance.model.inspection import InspectorConfig
from inspectors.base import InspectContext, InspectorConfigError
from inspectors.modelstore import ModelPathError, resolve_model

log = logging.getLogger(__name__)

MODEL_FORMAT = "tapsift-text-classifier"
FORMAT_VERSION = 2
"""1: a pickle (earlier versions; never loaded, see `convert_pickle`); 2: JSON."""
NEGATIVE_LABELS = ("benign", "normal", "legit", "legitimate", "ham", "clean", "safe", "negative")
_MODEL_NAME = re.compile(r"^text-v(\d{4,})\.json$")
_PICKLE_NAME = re.compile(r"^text-v(\d{4,})\.pkl$")
MAX_MODEL_BYTES = 1 << 30


class ModelError(ValueError):
    """A model file that cannot be used (missing, not this format, a pickle, inconsistent)."""


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

    def to_json(self) -> dict[str, Any]:
        """The model as JSON-able data (see the module doc)."""
        return {"format": MODEL_FORMAT, "format_version": FORMAT_VERSION, "version": self.version,
                "created": self.created, "labels": self.labels, "negative": self.negative,
                "metrics": self.metrics, "params": self.params, "sklearn": self.sklearn,
                **pipeline_to_json(self.pipeline)}

    def save(self, path: str | Path) -> None:
        """Write the JSON model file atomically."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.to_json(), fh, ensure_ascii=True, separators=(",", ":"))
        tmp.replace(p)

    @classmethod
    def load(cls, path: str | Path) -> TextModel:
        """Read a JSON model file (data only: nothing in it runs). A pickle is refused unread."""
        p = Path(path)
        try:
            with open(p, "rb") as fh:
                head = fh.read(2)
                if head[:1] == b"\x80" or p.suffix == ".pkl":
                    raise ModelError(f"{p}: a pickled model from an earlier tapsift; pickles run code when "
                                     f"loaded, so it is not loaded. An administrator converts it once with "
                                     f"'tapsift ml convert {p}'")
                raw = head + fh.read(MAX_MODEL_BYTES)
        except OSError as exc:
            raise ModelError(f"{p}: {exc.strerror or exc}") from None
        if len(raw) > MAX_MODEL_BYTES:
            raise ModelError(f"{p}: larger than {MAX_MODEL_BYTES} bytes")
        try:
            blob = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ModelError(f"{p}: not a JSON model file ({exc})") from None
        return cls.from_json(blob, str(p))

    @classmethod
    def from_json(cls, blob: Any, path: str = "") -> TextModel:
        if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
            raise ModelError(f"{path}: not a tapsift text classifier")
        if blob.get("format_version") != FORMAT_VERSION:
            raise ModelError(f"{path}: model format {blob.get('format_version')!r}; this tapsift reads "
                             f"{FORMAT_VERSION}")
        import sklearn

        try:
            pipeline = pipeline_from_json(blob)
            labels = [str(x) for x in blob["labels"]]
            model = cls(pipeline, labels, blob.get("negative"), int(blob.get("version", 0)),
                        str(blob.get("created", "")), dict(blob.get("metrics") or {}),
                        dict(blob.get("params") or {}), str(blob.get("sklearn", "")), path)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{path}: inconsistent model file: {exc}") from None
        if model.sklearn and model.sklearn != sklearn.__version__:
            log.info("%s was trained with scikit-learn %s, running %s (the JSON model is independent of it)",
                     path, model.sklearn, sklearn.__version__)
        return model


# --- the pipeline as numbers ----------------------------------------------------------------------

def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


_VEC_PARAMS: dict[str, Callable[[Any], bool]] = {
    "analyzer": lambda v: v in ("char_wb", "char", "word"),
    "ngram_range": lambda v: (isinstance(v, list) and len(v) == 2 and all(_is_count(n) and n <= 16 for n in v)
                              and v[0] <= v[1]),
    "lowercase": _is_bool, "sublinear_tf": _is_bool, "use_idf": _is_bool, "smooth_idf": _is_bool,
    "binary": _is_bool,
    "norm": lambda v: v in ("l2", "l1", None),
    "strip_accents": lambda v: v in (None, "ascii", "unicode"),
    "max_features": lambda v: v is None or _is_count(v),
    "token_pattern": lambda v: v is None or isinstance(v, str),
}
"""The vectorizer's parameters a model file holds, each with its check."""
_DTYPES = ("<f4", "<f8")


def _array(a: Any) -> dict[str, Any]:
    import numpy as np

    arr = np.ascontiguousarray(a)
    dt = arr.dtype.newbyteorder("<").str
    if dt not in _DTYPES:
        arr, dt = arr.astype("<f8"), "<f8"
    return {"dtype": dt, "shape": list(arr.shape), "b64": base64.b64encode(arr.astype(dt).tobytes()).decode()}


def _unarray(d: Any) -> Any:
    import numpy as np

    if not isinstance(d, dict) or d.get("dtype") not in _DTYPES or not isinstance(d.get("shape"), list):
        raise ValueError("array entry must be {dtype: <f4|<f8, shape, b64}")
    shape = tuple(int(x) for x in d["shape"])
    arr = np.frombuffer(base64.b64decode(d["b64"], validate=True), dtype=d["dtype"])
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"array of {arr.size} numbers does not have shape {shape}")
    return arr.reshape(shape).astype(arr.dtype.newbyteorder("="))  # a writable, native-order copy


def pipeline_to_json(pipe: Any) -> dict[str, Any]:
    """The fitted TF-IDF + logistic regression pipeline as numbers (raises ValueError for any
    other pipeline: only this shape is known to be rebuilt exactly)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    steps = getattr(pipe, "steps", None)
    if (not steps or len(steps) != 2 or type(steps[0][1]) is not TfidfVectorizer
            or type(steps[1][1]) is not LogisticRegression):
        raise ValueError("only a TfidfVectorizer + LogisticRegression pipeline can be saved")
    vec, lr = steps[0][1], steps[1][1]
    if vec.preprocessor is not None or vec.tokenizer is not None or vec.stop_words is not None:
        raise ValueError("a vectorizer with a custom preprocessor, tokenizer or stop words cannot be saved")
    import numpy as np

    params = {k: vec.get_params()[k] for k in _VEC_PARAMS}
    params["ngram_range"] = list(params["ngram_range"])
    bad = [k for k, ok in _VEC_PARAMS.items() if not ok(params[k])]
    if bad or np.dtype(vec.dtype).name not in ("float32", "float64"):
        raise ValueError(f"vectorizer parameters {bad or ['dtype']} cannot be saved")
    vocab = {str(k): int(v) for k, v in vec.vocabulary_.items()}
    return {
        "vectorizer": {"steps": [steps[0][0], steps[1][0]], "params": params, "dtype": np.dtype(vec.dtype).name,
                       "vocabulary": vocab, "idf": _array(vec.idf_)},
        "classifier": {"classes": [str(c) for c in lr.classes_], "coef": _array(lr.coef_),
                       "intercept": _array(lr.intercept_)},
    }


def pipeline_from_json(blob: dict[str, Any]) -> Any:
    """Rebuild the pipeline `pipeline_to_json` described (validating every value)."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    v, c = blob["vectorizer"], blob["classifier"]
    params = dict(v["params"])
    if set(params) != set(_VEC_PARAMS):
        raise ValueError(f"vectorizer parameters {sorted(params)}; expected {sorted(_VEC_PARAMS)}")
    for k, ok in _VEC_PARAMS.items():
        if not ok(params[k]):
            raise ValueError(f"vectorizer parameter {k}={params[k]!r}")
    params["ngram_range"] = tuple(params["ngram_range"])
    dtype = {"float32": np.float32, "float64": np.float64}[v.get("dtype", "float32")]
    vocab = v["vocabulary"]
    if not isinstance(vocab, dict) or sorted(vocab.values()) != list(range(len(vocab))):
        raise ValueError("vocabulary indices must be 0 … n-1")
    idf = _unarray(v["idf"])
    classes = [str(x) for x in c["classes"]]
    coef, intercept = _unarray(c["coef"]), _unarray(c["intercept"])
    rows = 1 if len(classes) == 2 else len(classes)
    if idf.shape != (len(vocab),) or coef.shape != (rows, len(vocab)) or intercept.shape != (rows,):
        raise ValueError(f"shapes idf {idf.shape}, coef {coef.shape}, intercept {intercept.shape} do not fit "
                         f"{len(vocab)} features and {len(classes)} classes")
    vec = TfidfVectorizer(**params, dtype=dtype)
    vec.vocabulary_ = {str(k): int(i) for k, i in vocab.items()}
    vec.fixed_vocabulary_ = False
    vec.idf_ = idf
    vec._tfidf.n_features_in_ = len(vocab)
    lr = LogisticRegression()
    lr.classes_ = np.array(classes)
    lr.coef_, lr.intercept_ = coef, intercept
    lr.n_features_in_ = len(vocab)
    names = v.get("steps", ["tfidf", "lr"])
    return Pipeline([(str(names[0]), vec), (str(names[1]), lr)])


# --- pickles of earlier versions -------------------------------------------------------------------

_PICKLE_TYPES = frozenset({
    ("sklearn.pipeline", "Pipeline"),
    ("sklearn.feature_extraction.text", "TfidfVectorizer"),
    ("sklearn.feature_extraction.text", "TfidfTransformer"),
    ("sklearn.linear_model._logistic", "LogisticRegression"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy", "float32"), ("numpy", "float64"), ("numpy", "int64"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("copyreg", "_reconstructor"), ("builtins", "object"), ("builtins", "slice"), ("builtins", "set"),
    ("builtins", "frozenset"), ("collections", "OrderedDict"),
})
"""Everything a tapsift text model pickle needs: nothing that can run a command or open a file."""


class _TrustedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _PICKLE_TYPES:
            raise ModelError(f"the pickle asks for {module}.{name}, which a tapsift model never holds: "
                             "refused (not a model tapsift wrote, or tampered with)")
        return super().find_class(module, name)


def convert_pickle(path: str | Path) -> TextModel:
    """An earlier version's pickled model, read through an unpickler that admits only the types
    of this pipeline (`_PICKLE_TYPES`; anything else, e.g. ``os.system``, is refused before it is
    called). For ``tapsift ml convert`` only: the sensor never reads pickles."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ModelError(f"{p}: {exc.strerror or exc}") from None
    try:
        blob = _TrustedUnpickler(io.BytesIO(raw)).load()
    except ModelError as exc:
        raise ModelError(f"{p}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError) as exc:
        raise ModelError(f"{p}: not a readable model pickle ({exc})") from None
    if not isinstance(blob, dict) or blob.get("format") != MODEL_FORMAT:
        raise ModelError(f"{p}: not a tapsift text classifier")
    try:
        return TextModel(blob["pipeline"], [str(x) for x in blob["labels"]], blob.get("negative"),
                         int(blob.get("version", 0)), str(blob.get("created", "")), dict(blob.get("metrics") or {}),
                         dict(blob.get("params") or {}), str(blob.get("sklearn", "")), str(p))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{p}: inconsistent model pickle: {exc}") from None


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
    """``folder/text-vNNNN.json`` with the next free version number (pickled versions count too)."""
    root = Path(folder)
    versions = [int(m.group(1)) for p in root.glob("text-v*") if (m := _MODEL_NAME.match(p.name)
                                                                     or _PICKLE_NAME.match(p.name))] \
        if root.is_dir() else []
    v = max(versions, default=0) + 1
    return root / f"text-v{v:04d}.json", v


def latest_model(folder: str | Path) -> Path | None:
    """The newest ``text-vNNNN.json`` in ``folder`` (pickles of earlier versions are not models
    until converted)."""
    root = Path(folder)
    found = sorted((int(m.group(1)), p) for p in root.glob("text-v*.json") if (m := _MODEL_NAME.match(p.name)))
    return found[-1][1] if found else None


def open_model(name: str) -> TextModel:
    """Model ``name`` from the model directory (a file, or a folder: its newest version).
    Raises `ModelError` (a `ModelPathError` for a name outside the directory) saying why."""
    try:
        path = resolve_model(name)
    except ModelPathError as exc:
        raise ModelError(str(exc)) from None
    if path.is_dir():
        latest = latest_model(path)
        if latest is None:
            old = sorted(p.name for p in path.glob("text-v*.pkl"))
            hint = (f"; {len(old)} pickled model(s) of an earlier version are there: convert them with "
                    f"'tapsift ml convert {path}'") if old else ""
            raise ModelError(f"no text-vNNNN.json model in {path}{hint}")
        path = latest
    return TextModel.load(path)


def convert_folder(target: str | Path) -> list[tuple[Path, Path | None, str]]:
    """Convert a pickled model file, or every ``text-vNNNN.pkl`` of a folder that has no JSON
    twin yet, to ``.json`` beside it; (pickle, json or None, message) each. Predictions are
    checked equal on probe texts before a file is written."""
    t = Path(target)
    files = sorted(t.glob("text-v*.pkl")) if t.is_dir() else [t]
    out: list[tuple[Path, Path | None, str]] = []
    for src in files:
        dst = src.with_suffix(".json")
        if dst.exists():
            out.append((src, None, f"{dst.name} exists already: skipped"))
            continue
        try:
            model = convert_pickle(src)
            blob = model.to_json()
            again = TextModel.from_json(json.loads(json.dumps(blob)), str(dst))
        except (ModelError, ValueError) as exc:
            out.append((src, None, str(exc)))
            continue
        probes = [*_PROBES, *model.labels]
        if (model.predict(probes) != again.predict(probes)
                or model.pipeline.predict_proba(probes).tolist() != again.pipeline.predict_proba(probes).tolist()):
            out.append((src, None, "the converted model predicts differently: not written"))
            continue
        model.path = str(dst)
        model.save(dst)
        out.append((src, dst, f"{src.name} -> {dst.name} ({len(model.labels)} labels, predictions identical)"))
    return out


_PROBES = ("最新六合彩开奖结果，百家乐平台注册即送彩金。", "The quarterly budget meeting moved to Friday.",
           "Play casino online, free bonus!", "本市今日召开新闻发布会。", "")


class MlTextInspector:
    """See the module docstring."""

    name = "ml_text"
    kinds = frozenset({"text"})
    cost: Literal["cheap", "expensive"] = "cheap"  # a linear model over the text: bounded per byte
    cache_context: tuple[str, ...] = ()  # reads the content alone: a repeat's result is reused

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
            raise InspectorConfigError("ml_text needs params.model (a model file from 'tapsift ml train' in the "
                                       "model directory, or a folder of them: the newest version is used)")
        try:
            self.model = open_model(path)
        except ModelError as exc:
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
        log.info("ml_text: model %s (version %d, labels %s)", self.model.path, self.model.version,
                 ", ".join(self.model.labels))

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
