"""The C checksum helper and the pure-Python fallback agree with RFC 1071."""

from __future__ import annotations

import importlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

dec = importlib.import_module("capture.decode")


def _reference(data: bytes, pseudo: bytes, extra: int) -> bool:
    blob = data + (b"\0" if len(data) & 1 else b"") + pseudo + (b"\0" if len(pseudo) & 1 else b"")
    s = extra + sum(int.from_bytes(blob[i:i + 2], "big") for i in range(0, len(blob), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s in (0xFFFF, 0)


def _with_checksum(payload: bytes, pseudo: bytes, extra: int) -> bytes:
    """``payload`` with a valid checksum in its first two bytes."""
    body = b"\0\0" + payload
    blob = body + (b"\0" if len(body) & 1 else b"") + pseudo + (b"\0" if len(pseudo) & 1 else b"")
    s = extra + sum(int.from_bytes(blob[i:i + 2], "big") for i in range(0, len(blob), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s & 0xFFFF).to_bytes(2, "big") + payload


def test_c_helper_is_built() -> None:
    # scripts/setup.sh installs a compiler; CI must exercise the fast path
    import capture._csum  # noqa: F401


FUNCS = [pytest.param(dec.csum_valid, id="c"), pytest.param(dec.csum_valid_py, id="python")]


@pytest.mark.parametrize("fn", FUNCS)
@given(data=st.binary(max_size=3000), pseudo=st.binary(max_size=40), extra=st.integers(0, 70_000),
       start=st.integers(0, 8))
def test_agrees_with_reference(fn, data: bytes, pseudo: bytes, extra: int, start: int) -> None:  # type: ignore[no-untyped-def]
    start = min(start, len(data))
    assert fn(data, start, len(data), pseudo, extra) == _reference(data[start:], pseudo, extra)


@pytest.mark.parametrize("fn", FUNCS)
@given(payload=st.binary(max_size=2000), pseudo=st.binary(min_size=8, max_size=32).filter(lambda b: len(b) % 2 == 0))
def test_valid_checksums_verify(fn, payload: bytes, pseudo: bytes) -> None:  # type: ignore[no-untyped-def]
    seg = _with_checksum(payload, pseudo, 6 + len(payload) + 2)
    assert fn(seg, 0, len(seg), pseudo, 6 + len(seg))
    if payload:
        bad = bytes([seg[0] ^ 0x01]) + seg[1:]
        assert not fn(bad, 0, len(bad), pseudo, 6 + len(bad))


@pytest.mark.parametrize("fn", FUNCS)
@given(payload=st.binary(max_size=1500), src=st.binary(min_size=4, max_size=16), proto=st.sampled_from([6, 17]))
def test_real_pseudo_headers(fn, payload: bytes, src: bytes, proto: int) -> None:  # type: ignore[no-untyped-def]
    # the pseudo headers decode builds: IPv4 (src + dst, 8 bytes) or IPv6 (32 bytes); odd payloads
    n = 16 if len(src) > 8 else 4
    addrs = (src * 2)[: 2 * n]
    seg = _with_checksum(payload, addrs, proto + len(payload) + 2)
    assert fn(seg, 0, len(seg), addrs, proto + len(seg))


@pytest.mark.parametrize("fn", FUNCS)
@given(data=st.binary(max_size=64), pseudo=st.binary(min_size=1, max_size=41).filter(lambda b: len(b) % 2 == 1))
def test_odd_length_pseudo_is_padded(fn, data: bytes, pseudo: bytes) -> None:  # type: ignore[no-untyped-def]
    # the case Hypothesis once found: an odd pseudo header is summed as if padded with a zero byte
    assert fn(data, 0, len(data), pseudo, 0) == fn(data, 0, len(data), pseudo + b"\0", 0)
