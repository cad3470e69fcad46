"""The compact exact-digest set."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fingerprints.exact import ExactSet, hex_to_words, parse_hash_list


def md5s(n: int, salt: str = "") -> list[str]:
    return [hashlib.md5(f"{salt}{i}".encode()).hexdigest() for i in range(n)]


def test_membership_payload_and_roundtrip():
    hs = md5s(2000)
    s = ExactSet.from_hex(hs, payload=range(1, 2001))
    assert len(s) == 2000 and s.nbytes == 2000 * 16 + 2000 * 8
    assert all(h in s for h in hs[::37])
    assert not any(h in s for h in md5s(200, "other"))
    pos = s.position(hs[41])
    assert s.payload_at(pos) == 42 and s.digest_at(pos) == hs[41]
    assert s.position(bytes.fromhex(hs[7])) >= 0
    assert s.position("nothex") == -1 and "ab" not in s and 5 not in s


def test_shared_first_word_and_duplicates():
    a = "00" * 8 + "11" * 8
    b = "00" * 8 + "22" * 8
    s = ExactSet.from_hex([a, b, a])
    assert len(s) == 2 and a in s and b in s and ("00" * 8 + "33" * 8) not in s


def test_sha256():
    hs = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(100)]
    s = ExactSet.from_hex(hs, 32)
    assert all(h in s for h in hs) and hashlib.sha256(b"x").hexdigest() not in s
    with pytest.raises(ValueError):
        ExactSet.from_hex(["abc"], 32)


def test_parse_hash_list_fast_and_lenient_paths():
    hs = md5s(500)
    fast = parse_hash_list(("\n".join(hs) + "\n").encode(), 16)
    body = "\r\n".join(f"  {h.upper()}  file{i}.exe" for i, h in enumerate(hs))
    lenient = parse_hash_list(("# comment\r\n\r\n" + body + "\nnot-a-hash\n" + "a" * 40 + "\n").encode(), 16)
    assert np.array_equal(np.sort(fast[:, 0]), np.sort(lenient[:, 0])) and len(lenient) == 500
    assert len(parse_hash_list(b"", 16)) == 0


def test_hex_to_words_rejects_bad_digits():
    with pytest.raises(ValueError):
        hex_to_words(b"g" * 32, 16)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=16, max_size=16), max_size=60), st.binary(min_size=16, max_size=16))
def test_same_as_a_python_set(items, probe):
    s = ExactSet.from_raw(items)
    assert len(s) == len(set(items))
    assert all(x in s for x in items)
    assert (probe in s) == (probe in set(items))


def test_parse_hash_file_in_small_blocks(tmp_path):
    from fingerprints.exact import parse_hash_file

    hs = md5s(300)
    p = tmp_path / "l.txt"
    p.write_text("# head\n" + "\n".join(f"{h} name{i}" for i, h in enumerate(hs)))  # no final newline
    got = parse_hash_file(str(p), 16, block=1000)
    assert len(got) == 300 and len(ExactSet(got)) == 300
    assert all(h in ExactSet(got) for h in hs)
