"""CEF and LEEF 2.0: escaping, parse-back with an independent parser, size trimming."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tests.appliance.outputs.alert_strategies as hs
from appliance.model import Direction
from appliance.outputs import cef, leef
from appliance.outputs.alertjson import alert_record
from tests.appliance.outputs.alert_factories import alert, content
from tests.appliance.outputs.siem_parsers import parse_cef, parse_leef

_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]")


def _rec(**kw):  # type: ignore[no-untyped-def]
    url = kw.pop("url", "/upload/plan.docx")
    direction = kw.pop("direction", Direction.TO_SERVER)
    return alert_record(alert(1, **kw), content(1, url=url, direction=direction))


def test_cef_layout_and_mapping() -> None:
    line = cef.cef_message(_rec())
    header, ext = parse_cef(line)
    assert header[:4] == ["CEF:0", "tapsift", "tapsift", "0.1.0"]
    assert header[5] == "data-leak: lan-to-wan/dlp" and header[6] == "8"
    assert ext["externalId"] == "A00000001" and ext["rt"] == "1714564800124"
    assert (ext["src"], ext["spt"], ext["dst"], ext["dpt"], ext["proto"]) == (
        "10.0.0.2", "40001", "192.0.2.80", "80", "TCP")
    assert ext["cs1"] == "lan-to-wan" and ext["cs1Label"] == "policy"
    assert ext["cs3"] == "lan" and ext["cs4"] == "wan"
    assert ext["request"] == "/upload/plan.docx" and ext["dhost"] == "files.example.com"
    assert ext["fname"] == "plan.docx" and ext["fileHash"] == "0" * 63 + "1"
    assert ext["cs5"] == "keyword:secret-words(3.5)" and ext["cs6"] == "confidential merger plan"
    assert ext["deviceDirection"] == "1"
    assert ext["msg"] == ("upload: client 10.0.0.2 sent the content to server 192.0.2.80 (files.example.com); "
                          "rules: lan-to-wan")
    assert "cn3" not in ext


@pytest.mark.parametrize("fmt", ["json", "cef", "leef"])
def test_a_download_names_client_and_server_as_an_upload_does(fmt: str) -> None:
    """src is the client and dst the server in both directions (as the zone pair); the direction
    of the transfer is a field of its own, and the alert names every rule that matched."""
    up = _rec(rules=("lan-to-wan", "all-web"))
    down = _rec(rules=("lan-to-wan", "all-web"), direction=Direction.TO_CLIENT)
    if fmt == "json":
        for rec, word in ((up, "upload"), (down, "download")):
            assert (rec["src_ip"], rec["dest_ip"], rec["tapsift"]["src_zone"]) == ("10.0.0.2", "192.0.2.80", "lan")
            assert rec["tapsift"]["direction"] == word and rec["tapsift"]["rules"] == ["lan-to-wan", "all-web"]
        return
    if fmt == "cef":
        (_, a), (_, b) = parse_cef(cef.cef_message(up)), parse_cef(cef.cef_message(down))
        keys = ("src", "dst", "cs3", "cs4")
        assert [a[k] for k in keys] == [b[k] for k in keys] == ["10.0.0.2", "192.0.2.80", "lan", "wan"]
        assert (a["deviceDirection"], b["deviceDirection"]) == ("1", "0")
        assert b["msg"] == ("download: server 192.0.2.80 (files.example.com) sent the content to client "
                            "10.0.0.2; rules: lan-to-wan, all-web")
        return
    (_, a), (_, b) = parse_leef(leef.leef_message(up)), parse_leef(leef.leef_message(down))
    keys = ("src", "dst", "srcZone", "dstZone")
    assert [a[k] for k in keys] == [b[k] for k in keys] == ["10.0.0.2", "192.0.2.80", "lan", "wan"]
    assert (a["direction"], b["direction"]) == ("upload", "download")
    assert a["rules"] == b["rules"] == "lan-to-wan, all-web" and a["policy"] == "lan-to-wan"


def test_cef_escapes() -> None:
    assert cef.escape_header("a|b\\c\r\nd") == "a\\|b\\\\c d"
    assert cef.escape_ext("k=v\\x\r\ny\rz|") == "k\\=v\\\\x\\r\\ny\\rz|"
    assert cef.escape_ext("\x00\x1b\t ") == "\ufffd\ufffd"  # controls → U+FFFD, tab → space, trimmed


def test_cef_injection_cannot_forge_keys_or_lines() -> None:
    rec = _rec(url="/x act=blocked\n<13>1 fake", snippet="end| cs1=forged")
    line = cef.cef_message(rec)
    assert "\n" not in line and "\r" not in line
    _, ext = parse_cef(line)
    assert ext["act"] == "allowed" and ext["cs1"] == "lan-to-wan"
    assert ext["request"] == "/x act=blocked\n<13>1 fake"
    assert ext["cs6"] == "end| cs1=forged"


def test_leef_layout_and_mapping() -> None:
    line = leef.leef_message(_rec())
    header, attrs = parse_leef(line)
    assert header == ["LEEF:2.0", "tapsift", "tapsift", "0.1.0", "data-leak", "x5E"]
    assert attrs["devTime"] == "2024-05-01T12:00:00.124+0000"
    assert attrs["devTimeFormat"] == "yyyy-MM-dd'T'HH:mm:ss.SSSZ"
    assert attrs["sev"] == "8" and attrs["cat"] == "data-leak" and attrs["alertId"] == "A00000001"
    assert (attrs["src"], attrs["srcPort"], attrs["dst"], attrs["dstPort"]) == ("10.0.0.2", "40001", "192.0.2.80", "80")
    assert attrs["policy"] == "lan-to-wan" and attrs["srcZone"] == "lan" and attrs["dstZone"] == "wan"
    assert attrs["url"] == "/upload/plan.docx" and attrs["sha256"] == "0" * 63 + "1"
    assert attrs["findings"] == "keyword:secret-words(3.5)" and attrs["evidence"] == "confidential merger plan"
    assert attrs["direction"] == "upload" and attrs["rules"] == "lan-to-wan"


def test_leef_tab_delimiter_and_delimiter_in_values() -> None:
    rec = _rec(url="/a^b\tc=d")
    _, attrs = parse_leef(leef.leef_message(rec, delimiter="\t"))
    assert attrs["url"] == "/a^b c=d"
    header, attrs = parse_leef(leef.leef_message(rec))
    assert header[5] == "x5E" and attrs["url"] == "/a\ufffdb c=d"
    with pytest.raises(ValueError):
        leef.delimiter_spec("=")


@pytest.mark.parametrize("max_bytes", [256, 300, 480, 700, 1024])
def test_trimming_fits_and_keeps_essentials(max_bytes: int) -> None:
    rec = _rec(url="/" + "x=|\\" * 2000, snippet="s" * 3000, n_findings=8)
    c = cef.cef_message(rec, max_bytes)
    assert len(c.encode()) <= max_bytes
    _, ext = parse_cef(c)
    assert ext["cn3"] == "1" and ext["cn3Label"] == "truncated"
    assert ext.get("externalId") == "A00000001" or max_bytes < 300
    assert all(not v.endswith("…") for k, v in ext.items() if k in ("rt", "fileHash", "flexString1"))
    le = leef.leef_message(rec, max_bytes)
    assert len(le.encode()) <= max_bytes
    _, attrs = parse_leef(le)
    assert attrs["truncated"] == "1"
    assert attrs.get("alertId") == "A00000001" or max_bytes < 300
    if "devTime" in attrs:
        assert attrs["devTime"] == "2024-05-01T12:00:00.124+0000"


def test_cef_wide_names_still_fit_a_small_budget() -> None:
    """A signature of 4-byte characters filled the header alone (found by hypothesis): the name
    shrinks until the shortest message fits."""
    rec = _rec(profile="\U0001F4FA" * 60, category="prohibited")
    for max_bytes in (256, 300, 400):
        line = cef.cef_message(rec, max_bytes)
        assert len(line.encode()) <= max_bytes, (max_bytes, len(line.encode()))
        header, ext = parse_cef(line)
        assert header[6] and ext.get("cn3") == "1"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=hs.alert, obj=st.none() | hs.content, max_bytes=st.integers(256, 4096), data=st.data())
def test_cef_parses_back(a, obj, max_bytes, data) -> None:  # type: ignore[no-untyped-def]
    rec = alert_record(a, obj)
    line = cef.cef_message(rec)
    assert not _BREAKS.search(line)
    header, ext = parse_cef(line)
    assert len(header) == 7 and header[6] in {"10", "8", "5", "3", "1"}
    # every value reads back as exactly the sanitised source
    assert ext.get("cs1", "") == cef.sanitize(rec["tapsift"]["policy"])
    assert ext.get("cat", "") == cef.sanitize(rec["alert"]["category"])
    assert ext.get("externalId", "") == cef.sanitize(rec["tapsift"]["alert_id"])
    if "http" in rec:
        assert ext.get("request", "") == cef.sanitize(rec["http"]["url"])
    small = cef.cef_message(rec, max_bytes)
    assert len(small.encode()) <= max_bytes or len(small.split("|", 7)[-1]) <= len("cn3=1 cn3Label=truncated")
    parse_cef(small)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=hs.alert, obj=st.none() | hs.content, max_bytes=st.integers(256, 4096),
       delim=st.sampled_from(["^", "\t", "~", ";"]))
def test_leef_parses_back(a, obj, max_bytes, delim) -> None:  # type: ignore[no-untyped-def]
    rec = alert_record(a, obj)
    line = leef.leef_message(rec, delimiter=delim)
    assert not re.search("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ufeff]", line)
    header, attrs = parse_leef(line)
    assert len(header) == 6
    assert attrs.get("policy", "") == leef.sanitize(rec["tapsift"]["policy"], delim)
    assert attrs.get("alertId", "") == leef.sanitize(rec["tapsift"]["alert_id"], delim)
    if "http" in rec:
        assert attrs.get("url", "") == leef.sanitize(rec["http"]["url"], delim)
    small = leef.leef_message(rec, max_bytes, delim)
    assert len(small.encode()) <= max_bytes or small.endswith("|truncated=1")
    parse_leef(small)
