"""Hamming indexes: MIH and BK-tree agree with brute force."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprints.index import BKTree, BruteIndex, MIHIndex, as_words, build_index


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**64, size=n, dtype=np.uint64)
    qs = []
    for i in range(60):
        base = int(h[rng.integers(n)])
        for b in rng.choice(64, size=int(rng.integers(0, 16)), replace=False):
            base ^= 1 << int(b)
        qs.append(base if i % 3 else int(rng.integers(0, 2**64, dtype=np.uint64)))
    return h, qs


@pytest.mark.parametrize("chunks", [2, 3, 4, 5])
def test_mih_equals_brute_force(chunks):
    h, qs = _data(20_000)
    h[100:110] = h[5]  # duplicates
    mih, brute = MIHIndex(h, chunks=chunks), BruteIndex(h)
    for q in [*qs, int(h[5])]:
        for r in (0, 4, 8, 14):
            assert mih.search(q, r) == brute.search(q, r)
    assert mih.nbytes > h.nbytes


def test_bktree_equals_brute_force():
    h, qs = _data(3000, 1)
    tree, brute = BKTree(h), BruteIndex(h)
    for q in qs[:20]:
        assert tree.search(q, 10) == brute.search(q, 10)
    assert len(tree) == 3000


def test_multiword_brute_force():
    vals = [(1 << 255) | 5, 7, (1 << 200)]
    idx = BruteIndex(as_words(vals, 256))
    assert idx.search((1 << 255) | 4, 1) == [(0, 1)]
    assert idx.search(0, 3) == [(2, 1), (0, 3), (1, 3)]


def test_build_index_choices_and_empty():
    assert isinstance(build_index(np.zeros(10, np.uint64)), BruteIndex)
    assert isinstance(build_index(np.arange(5000, dtype=np.uint64)), MIHIndex)
    with pytest.raises(ValueError):
        build_index(np.zeros(3, np.uint64), "nope")
    assert MIHIndex(np.zeros(0, np.uint64)).search(1, 5) == [] and BKTree([]).search(1, 3) == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=80), st.integers(0, 2**64 - 1),
       st.integers(0, 20))
def test_property_mih_and_bk_match_brute(values, q, r):
    h = np.asarray(values, dtype=np.uint64)
    want = BruteIndex(h).search(q, r)
    assert MIHIndex(h, chunks=4).search(q, r) == want
    assert BKTree(values).search(q, r) == want
