"""The canonical alert record (EVE ``alert`` layout) and its size-bounded JSON."""

from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tests.appliance.outputs.alert_strategies as hs
from appliance.eve import fileinfo_event
from appliance.model import Severity
from appliance.outputs.alertjson import MIN_JSON_BYTES, alert_record, dumps, fit_json
from tests.appliance.outputs.alert_factories import BASE_TS, alert, content

_LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


def test_record_has_eve_alert_layout() -> None:
    a, obj = alert(7, severity=Severity.CRITICAL), content(7)
    rec = alert_record(a, obj)
    assert rec["event_type"] == "alert"
    assert rec["timestamp"] == "2024-05-01T12:00:00.130456+0000"
    assert (rec["src_ip"], rec["src_port"], rec["dest_ip"], rec["dest_port"], rec["proto"]) == (
        "10.0.0.8", 40007, "192.0.2.80", 80, "TCP")
    assert rec["flow_id"] == 1_000_007 and rec["vlan"] == [10] and rec["in_iface"] == "eth1"
    assert rec["app_proto"] == "http"
    assert rec["alert"]["action"] == "allowed"
    assert rec["alert"]["signature"] == "lan-to-wan/dlp"
    assert rec["alert"]["category"] == "data-leak" and rec["alert"]["severity"] == 1
    assert isinstance(rec["alert"]["signature_id"], int)
    # http and fileinfo are exactly what the fileinfo event of the same object says
    fev = fileinfo_event(obj)
    assert rec["http"] == fev["http"] and rec["fileinfo"] == fev["fileinfo"]
    ts = rec["tapsift"]
    assert ts["alert_id"] == "A00000007" and ts["policy"] == "lan-to-wan" and ts["profile"] == "dlp"
    assert (ts["src_zone"], ts["dst_zone"]) == ("lan", "wan")
    assert ts["complete"] is True and ts["direction"] == "upload"
    f = ts["findings"][0]
    assert f["inspector"] == "keyword" and f["rule"] == "secret-words" and f["score"] == 3.5
    assert f["evidence"] == [{"start": 10, "end": 34, "snippet": "confidential merger plan"}]
    assert f["detail"] == {"weight": "3.5", "list": "finance"}


def test_record_without_object_or_flow() -> None:
    a = alert(1)
    rec = alert_record(a, None)
    assert rec["app_proto"] == "unknown" and "http" not in rec and "fileinfo" not in rec
    assert rec["src_ip"] == "10.0.0.2"


def test_hostile_strings_are_sanitised_and_never_break_the_line() -> None:
    a = alert(1, snippet="a\r\nb\x00c\u2028d\x85e\ud800f\ufeff")
    obj = content(1, url="/x\r\nSet-Cookie: evil", host="h\udcff")
    text = dumps(alert_record(a, obj))
    assert not _LINE_BREAKING.search(text)
    text.encode("utf-8")  # no lone surrogates left
    back = json.loads(text)
    assert back["tapsift"]["findings"][0]["evidence"][0]["snippet"] == "a\r\nb\x00c\u2028d\x85e\ufffdf\ufeff"
    assert back["http"]["url"] == "/x\r\nSet-Cookie: evil" and back["http"]["hostname"] == "h\ufffd"


def test_non_finite_scores_become_null() -> None:
    from dataclasses import replace

    a = alert(1)
    a = replace(a, findings=(replace(a.findings[0], score=float("nan")),))
    assert json.loads(dumps(alert_record(a, None)))["tapsift"]["findings"][0]["score"] is None


def test_fit_json_keeps_a_record_that_fits() -> None:
    rec = alert_record(alert(1), content(1))
    assert fit_json(rec, 1 << 20) == dumps(rec)


def test_fit_json_drops_detail_and_snippets_before_anything_else() -> None:
    rec = alert_record(alert(1, snippet="s" * 400, n_findings=2), content(1))
    full = len(dumps(rec).encode())
    out = json.loads(fit_json(rec, full - 100))
    assert out["truncated"] is True
    assert all("detail" not in f for f in out["tapsift"]["findings"])
    assert out["http"]["url"] == rec["http"]["url"]  # strings untouched at this stage
    assert out["fileinfo"]["sha256"] == rec["fileinfo"]["sha256"]


def test_fit_json_caps_long_strings_with_a_marker() -> None:
    rec = alert_record(alert(1), content(1, url="/" + "u" * 5000))
    out = json.loads(fit_json(rec, 1500))
    assert out["truncated"] is True
    assert out["http"]["url"].endswith("…") and len(out["http"]["url"]) < 1000
    assert out["tapsift"]["alert_id"] == "A00000001"
    assert out["fileinfo"]["sha256"] == rec["fileinfo"]["sha256"]  # hashes are never cut


def test_fit_json_small_budget_keeps_the_skeleton() -> None:
    rec = alert_record(alert(1, n_findings=20), content(1))
    out = json.loads(fit_json(rec, 480))
    assert out["truncated"] is True and out["event_type"] == "alert"
    assert out["tapsift"]["alert_id"] == "A00000001"
    assert out["alert"]["signature"] == "lan-to-wan/dlp"
    assert out["timestamp"].startswith("2024-05-01T12:00:00")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=hs.alert, obj=st.none() | hs.content, max_bytes=st.integers(MIN_JSON_BYTES, 4096))
def test_fit_json_always_valid_and_within_budget(a, obj, max_bytes) -> None:  # type: ignore[no-untyped-def]
    rec = alert_record(a, obj)
    text = fit_json(rec, max_bytes)
    assert len(text.encode("utf-8")) <= max_bytes
    assert not _LINE_BREAKING.search(text)
    back = json.loads(text)
    assert isinstance(back, dict)
    if text != dumps(rec):
        assert back.get("truncated") is True
    else:
        assert back == json.loads(dumps(rec))


def test_base_ts_constant() -> None:
    assert BASE_TS // 1_000_000_000 == 1_714_564_800
