"""A small trained text classifier for tests that need a real model file (trained once per run)."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

from bench.darkword_bench import make_ml_set
from inspectors.ml_text import TextModel, load_labelled, train


@cache
def labelled(per_label: int = 40, seed: int = 5) -> tuple[list[str], list[str]]:
    with tempfile.TemporaryDirectory() as d:
        make_ml_set(Path(d), per_label=per_label, seed=seed)
        return load_labelled(d)


@cache
def small_model() -> TextModel:
    """Labels benign, fraud, gambling, pornography (benign negative)."""
    model, _ = train(*labelled(), seed=2)
    return model
