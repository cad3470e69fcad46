"""The checksum-offload tracker: the C one (shared with the fast path) and the pure-Python one
make the same decisions for any sequence of packets (capture/checksums.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture import checksums as C

try:
    from capture._fastpath import OffloadTracker as COffloadTracker
except ImportError:  # pragma: no cover - the C extension is not built
    COffloadTracker = None

needs_c = pytest.mark.skipif(COffloadTracker is None, reason="capture._fastpath is not built")

SIDES = [("", b"\x0a\0\0\x01"), ("", b"\x0a\0\0\x02"), ("eth1", b"\x0a\0\0\x01"), ("eth1", bytes(16)),
         ("", b"\x20\x01" + bytes(14))]


def _replay(t: C.OffloadTracker, events: list[tuple[int, bool]]) -> list[tuple[int, bool]]:
    """Each event: a packet layer from SIDES[i], bad or not, handled as capture.decode does."""
    out = []
    for i, bad in events:
        iface, src = SIDES[i]
        state = t.state(iface, src)
        flipped = t.observe(iface, src, bad) if state == C.LEARN else False
        out.append((state, flipped))
    return out


@needs_c
@settings(max_examples=300, deadline=None)
@given(mode=st.sampled_from(C.MODES),
       events=st.lists(st.tuples(st.integers(0, len(SIDES) - 1), st.booleans()), max_size=300))
def test_c_and_python_trackers_agree(mode: str, events: list[tuple[int, bool]]) -> None:
    c, py = COffloadTracker(mode), C.PyOffloadTracker(mode)
    assert _replay(c, events) == _replay(py, events)
    assert c.offloaded() == py.offloaded() and len(c) == len(py) and c.mode == py.mode == mode


@pytest.mark.parametrize("make", [C.PyOffloadTracker, pytest.param(COffloadTracker, marks=needs_c)])
def test_decisions(make) -> None:  # type: ignore[no-untyped-def]
    t = make("auto")
    off, clean, mixed = SIDES[0], SIDES[1], SIDES[2]
    # offloaded: OFFLOAD_MIN_BAD bad ones in a row
    assert [t.observe(*off, True) for _ in range(C.OFFLOAD_MIN_BAD)] == [False] * (C.OFFLOAD_MIN_BAD - 1) + [True]
    assert t.state(*off) == C.SKIP and t.offloaded() == [off]
    # clean: the learning window ends, bad ones later do not change it
    for _ in range(C.LEARN_WINDOW):
        assert t.state(*clean) == C.LEARN
        t.observe(*clean, False)
    assert t.state(*clean) == C.VERIFY
    assert not any(t.observe(*clean, True) for _ in range(10)) and t.state(*clean) == C.VERIFY
    # a minority of bad ones is corruption, not offload
    for i in range(C.LEARN_WINDOW):
        assert not t.observe(*mixed, i % 3 == 0)
    assert t.state(*mixed) == C.VERIFY and t.offloaded() == [off]
    assert make("verify").state(*off) == C.VERIFY and make("off").state(*off) == C.SKIP
    with pytest.raises(ValueError):
        make("sometimes")


@pytest.mark.parametrize("make", [C.PyOffloadTracker, pytest.param(COffloadTracker, marks=needs_c)])
def test_bounded_number_of_sides(make) -> None:  # type: ignore[no-untyped-def]
    """Beyond MAX_SIDES, further sources are verified without learning (memory stays bounded)."""
    t = make("auto")
    for i in range(C.MAX_SIDES):
        t.observe("", i.to_bytes(4, "big"), False)
    late = (C.MAX_SIDES + 1).to_bytes(4, "big")
    assert len(t) == C.MAX_SIDES and t.state("", late) == C.VERIFY
    assert not any(t.observe("", late, True) for _ in range(10)) and len(t) == C.MAX_SIDES


def test_new_tracker_shares_the_c_one_when_built() -> None:
    t = C.new_tracker("auto")
    assert t.mode == "auto"
    if COffloadTracker is not None:
        assert isinstance(t, COffloadTracker)
