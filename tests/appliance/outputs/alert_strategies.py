"""Hypothesis strategies: alerts whose every string came off a hostile wire."""

from __future__ import annotations

from hypothesis import strategies as st

from appliance.model import Alert, ContentObject, Direction, Evidence, Finding, FlowRef, Severity

_SPECIAL = [*"|=\\\n\r\t ^\x00\x1b\x7f\x85\u2028\u2029\ufeff\"'<>&…", "\r\n", "\ud800", "\udcff", "=>", "\\n"]

hostile_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=40),
    st.lists(st.sampled_from(_SPECIAL) | st.text(max_size=5), max_size=15).map("".join),
    st.text(max_size=400),
    st.sampled_from(["机密文件泄露", "a" * 3000, "é" * 700, "\U0001f600" * 300]),
)
small_int = st.integers(min_value=0, max_value=65535)

evidence = st.builds(Evidence, start=small_int, end=small_int, snippet=hostile_text, ref=hostile_text)
finding = st.builds(
    Finding, inspector=hostile_text, content_id=hostile_text, rule=hostile_text,
    score=st.floats(allow_nan=True, allow_infinity=True),
    evidence=st.lists(evidence, max_size=3).map(tuple),
    detail=st.dictionaries(hostile_text, hostile_text, max_size=3),
)
flow = st.builds(
    FlowRef, uid=hostile_text, flow_id=st.integers(0, 2**64 - 1), src_ip=hostile_text, src_port=small_int,
    dest_ip=hostile_text, dest_port=small_int, proto=st.sampled_from(["TCP", "UDP"]), vlan=st.integers(0, 4095),
    iface=hostile_text, src_zone=hostile_text, dst_zone=hostile_text,
)
content = st.builds(
    ContentObject, id=hostile_text, source=st.sampled_from(["http", "smtp", "ftp-data", "extract"]),
    direction=st.sampled_from(list(Direction)), flow=st.none() | flow,
    ts_ns=st.integers(0, 2**62), size=st.integers(0, 2**40), md5=hostile_text, sha256=hostile_text,
    filename=hostile_text, url=hostile_text, host=hostile_text, method=hostile_text, user_agent=hostile_text,
    status=st.integers(0, 999), truncated=st.lists(hostile_text, max_size=2).map(tuple),
    meta=st.dictionaries(st.sampled_from(["mail_from", "subject", "command"]), hostile_text, max_size=2),
)
alert = st.builds(
    Alert, id=hostile_text, ts_ns=st.integers(0, 2**62), policy=hostile_text, profile=hostile_text,
    severity=st.sampled_from(list(Severity)), category=hostile_text, content_id=hostile_text,
    flow=st.none() | flow, findings=st.lists(finding, max_size=6).map(tuple), src_zone=hostile_text,
    dst_zone=hostile_text, complete=st.booleans(), rules=st.lists(hostile_text, max_size=3).map(tuple),
)
