"""Range stitching: pieces in any order, overlaps, budgets."""

from __future__ import annotations

import random
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from reassembly.ranges import RangeStitcher, parse_content_range


def test_parse_content_range() -> None:
    assert parse_content_range(b"bytes 0-99/1000") == (0, 99, 1000)
    assert parse_content_range(b"Bytes 100 - 199 / *") == (100, 199, None)
    assert parse_content_range(b"bytes 5-4/10") is None
    assert parse_content_range(b"bytes 0-10/10") is None  # last beyond the end
    assert parse_content_range(b"items 0-1/2") is None
    assert parse_content_range(None) is None


def test_two_pieces_make_the_file() -> None:
    data = bytes(range(256)) * 40
    rs = RangeStitcher()
    assert rs.add(("h", b"/f", b""), 4000, len(data), data[4000:], {}) is None
    whole = rs.add(("h", b"/f", b""), 0, len(data), data[:4000], {})
    assert whole == data
    assert rs.pending() == 0 and rs.held == 0


def test_budget_drops_oldest() -> None:
    rs = RangeStitcher(budget=1000)
    rs.add(("a",), 0, 10_000, b"x" * 600, {})
    rs.add(("b",), 0, 10_000, b"y" * 600, {})
    assert rs.dropped == 1 and rs.held == 600


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=5000), st.integers(1, 8), st.randoms(use_true_random=False))
def test_any_overlapping_cover_reassembles(data: bytes, n: int, rnd: random.Random) -> None:
    cuts = sorted({0, len(data), *(rnd.randrange(len(data)) for _ in range(n))})
    pieces = []
    for a, b in pairwise(cuts):
        a2 = max(0, a - rnd.randrange(0, 20))  # overlap the previous piece a little
        pieces.append((a2, data[a2:b]))
    rnd.shuffle(pieces)
    rs = RangeStitcher()
    results = [rs.add(("k",), off, len(data), chunk, {}) for off, chunk in pieces]
    done = [r for r in results if r is not None]
    assert done == [data]
