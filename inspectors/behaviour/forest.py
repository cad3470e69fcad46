"""The peer-group detector: an Isolation Forest per zone over the zone's window vectors.

Every active host window of a zone goes into the zone's ring of recent vectors (log scale of all
`FEATURES`, plus the hour of day as a point on a circle and a weekend flag). Once a day of
packet time (``retrain_interval_s``) the forest is refitted on the ring, so the model follows the
zone as its behaviour drifts; the ring is what is persisted, and a restart refits from it with
the same seed (scikit-learn's forest is deterministic for a given ``random_state``).

The score is scikit-learn's anomaly score (``-score_samples``: about 0.5 for ordinary windows,
towards 1 for windows few splits isolate). The explanation is the features furthest from the
zone's median in robust z.
"""

from __future__ import annotations

import math

import numpy as np

from inspectors.behaviour.baseline import from_log, robust
from inspectors.behaviour.detectors import Deviation
from inspectors.behaviour.features import FEATURES, F

UNITS = np.array([f.unit for f in FEATURES])
DIM = F + 3


def vector(window: list[float], hour: int, weekend: bool) -> np.ndarray:
    """A window as the forest sees it."""
    v = np.empty(DIM, dtype=np.float32)
    v[:F] = np.log1p(np.maximum(np.asarray(window, dtype=np.float64), 0.0) / UNITS)
    a = 2 * math.pi * hour / 24
    v[F], v[F + 1], v[F + 2] = math.sin(a), math.cos(a), 1.0 if weekend else 0.0
    return v


class PeerForest:
    """One zone's forest and its ring of recent window vectors."""

    __slots__ = ("_fast", "med", "model", "n", "ring", "scale", "seed", "trained", "trained_ns", "trees")

    def __init__(self, capacity: int, *, trees: int = 100, seed: int = 0) -> None:
        self.ring = np.zeros((capacity, DIM), dtype=np.float32)
        self.n = 0
        self.trees = trees
        self.seed = seed
        self.model: object | None = None
        self._fast: tuple[list[tuple[object, np.ndarray]], float] | None = None
        self.trained_ns = 0
        self.trained = np.zeros((0, DIM), dtype=np.float32)
        """The windows the model was fitted on (persisted: a restart refits the same forest)."""
        self.med = np.zeros(DIM)
        self.scale = np.ones(DIM)

    @property
    def nbytes(self) -> int:
        return int(self.ring.nbytes + self.trained.nbytes) + (self.trees * 40_000 if self.model is not None else 0)

    def add(self, v: np.ndarray) -> None:
        self.ring[self.n % len(self.ring)] = v
        self.n += 1

    def samples(self) -> np.ndarray:
        return self.ring[: min(self.n, len(self.ring))]

    def train(self, now_ns: int, min_samples: int, data: np.ndarray | None = None) -> bool:
        """Refit on the ring, or on ``data`` (a restart: the windows it was fitted on before);
        False: fewer than ``min_samples`` windows so far."""
        from sklearn.ensemble import IsolationForest

        data = self.samples().copy() if data is None else data
        if len(data) < min_samples or data.ndim != 2 or data.shape[1] != DIM:
            return False
        self.trained = data
        model = IsolationForest(n_estimators=self.trees, max_samples=min(256, len(data)),
                                random_state=self.seed, n_jobs=1)
        model.fit(data)
        self.model = model
        self._fast = _fast_scorer(model)
        med, scale = robust(data[:, :F].astype(np.float64))
        self.med[:F], self.scale[:F] = med, np.maximum(scale, 0.5)
        self.trained_ns = now_ns
        return True

    def score(self, rows: np.ndarray) -> np.ndarray:
        """Anomaly scores of window vectors (0 when there is no model yet)."""
        if self.model is None or not len(rows):
            return np.zeros(len(rows))
        if self._fast is None:
            return -self.model.score_samples(rows)  # type: ignore[attr-defined]
        trees, denominator = self._fast
        x = np.ascontiguousarray(rows, dtype=np.float32)
        depths = np.zeros(len(x))
        for tree, table in trees:
            depths += table[tree.apply(x)]  # type: ignore[attr-defined]
        return 2.0 ** (-depths / denominator) if denominator else np.ones(len(x))

    def explain(self, v: np.ndarray, top: int = 4) -> tuple[Deviation, ...]:
        z = (v[:F].astype(np.float64) - self.med[:F]) / self.scale[:F]
        out = []
        for i in np.argsort(-np.abs(z))[:top]:
            if abs(z[i]) < 2:
                break
            out.append(Deviation(FEATURES[i].name, float(from_log(float(v[i]), UNITS[i])),
                                 float(from_log(self.med[i], UNITS[i])), float(z[i])))
        return tuple(out)


def _fast_scorer(model: object) -> tuple[list[tuple[object, np.ndarray]], float] | None:
    """scikit-learn's ``score_samples`` without its per-call overhead (input validation and a
    joblib dispatch per tree, about 1 ms per tree): per tree, the leaf's depth plus the average
    path length of its samples, looked up by the leaf index its cython ``apply`` returns. None
    (use ``score_samples``) when the fitted model does not look as expected."""
    try:
        from sklearn.ensemble._iforest import _average_path_length

        feats = model.estimators_features_  # type: ignore[attr-defined]
        if any(len(f) != DIM for f in feats):
            return None
        trees = [(est.tree_, np.asarray(dpl) + np.asarray(apl) - 1.0)
                 for est, dpl, apl in zip(model.estimators_, model._decision_path_lengths,  # type: ignore[attr-defined]
                                          model._average_path_length_per_tree, strict=True)]  # type: ignore[attr-defined]
        denominator = len(trees) * float(_average_path_length([model._max_samples])[0])  # type: ignore[attr-defined]
        return trees, denominator
    except (AttributeError, ImportError, TypeError, ValueError):
        return None
