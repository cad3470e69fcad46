"""Recall and false positives on the seeded obfuscation corpus (bench/obfuscation_corpus.py)."""

from __future__ import annotations

from bench.obfuscation_corpus import TRANSFORMS, build, evaluate, keyword_lists
from inspectors.keyword import KeywordEngine


def test_recall_and_false_positives() -> None:
    corpus = build(seed=20240601, variants=5, decoys=3000)
    engine = KeywordEngine(keyword_lists())

    def found(text: str) -> set[str]:
        return {f.detail["keyword"] for f in engine.scan(text).findings if "keyword" in f.detail}

    score = evaluate(corpus, found)
    print(f"\nrecall {score.recall:.4f} over {score.positives}, FP {score.fp_rate:.4%} over {score.decoys}")
    assert {t for key in score.by_transform for t in [key.split("/")[1]]} == set(TRANSFORMS)
    assert score.recall >= 0.99, [(m.transform, m.keyword, m.text) for m in score.misses[:10]]
    assert score.fp_rate <= 0.001, [(s.text, got) for s, got in score.false_positives[:10]]
