"""ObjectBuilder/ObjectFactory: streaming hashes, limits, gaps, libmagic."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.model import Direction
from reassembly.objects import ObjectBuilder, ObjectFactory, base62


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=70_000), max_size=20))
def test_hashes_match_whole_input(chunks: list[bytes]) -> None:
    b = ObjectBuilder(keep=10**9)
    for c in chunks:
        b.add(c)
    whole = b"".join(chunks)
    assert b.digests() == (hashlib.md5(whole).hexdigest(), hashlib.sha256(whole).hexdigest())
    assert b.size == len(whole) and b.data() == whole


def test_limit_truncates_and_counts() -> None:
    b = ObjectBuilder(limit=10, keep=100)
    b.add(b"0123456")
    b.add(b"789abcdef")
    assert b.size == 10 and b.dropped == 6 and b.truncated == ["body_limit"]
    assert b.digests()[0] == hashlib.md5(b"0123456789").hexdigest()


def test_keep_is_bounded_but_hash_is_not() -> None:
    b = ObjectBuilder(keep=4)
    b.add(b"abcdefgh")
    assert b.data() == b"abcd" and not b.kept_complete
    assert b.digests()[0] == hashlib.md5(b"abcdefgh").hexdigest()


def test_factory_sniffs_and_numbers() -> None:
    f = ObjectFactory(keep_bytes=0)
    b = f.builder()
    b.add(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n")
    b.add_gap(100)
    obj = f.finish(b, source="http", direction=Direction.TO_CLIENT, flow=None, ts_ns=1, filename="a.pdf")
    assert obj.sniffed_mime == "application/pdf"
    assert obj.id == "F000001" and obj.missing_bytes == 100 and obj.gaps and obj.state == "TRUNCATED"
    assert obj.data is None and obj.filename == "a.pdf"
    assert f.finish(f.builder(), source="x", direction=Direction.TO_SERVER, flow=None, ts_ns=2).id == "F000002"


def test_base62() -> None:
    assert base62(0) == "0" and base62(61) == "z" and base62(62, 3) == "010"
