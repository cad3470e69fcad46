"""Hostile traffic through the whole sensor: bombs, evasive TCP, garbage. The sensor must
finish, flag what it could not take whole, keep memory bounded and keep the alerts it made."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
import zlib
from pathlib import Path

import brotli
import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.model import ContentObject
from appliance.sensor import Sensor
from appliance.settings import Settings
from capture.pcapfile import open_capture
from tests.reassembly.test_http_evasions import evasive_response, reference
from tools import synth as S

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
GiB = 1 << 30


def _zeros_gzip(n: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = bytes(1 << 20)
    out = [c.compress(chunk) for _ in range(n >> 20)]
    return b"".join(out) + c.flush()


def _run(pcap: Path, *extra: str) -> tuple[list[dict], dict]:
    p = subprocess.run([str(BIN / "tapsift"), "read", str(pcap), "--eve", "-", "-q", *extra],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    events = [json.loads(line) for line in p.stdout.splitlines()]
    return events, events[-1]["stats"]


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Decompression bombs served over HTTP: gzip-in-gzip, brotli, and a plain 1 GiB gzip."""
    inner = _zeros_gzip(GiB)  # ~1 MB that inflates to 1 GiB
    double = gzip.compress(inner, 9)  # gzip, gzip: a few KB
    br = brotli.compress(bytes(256 << 20), quality=5)
    t = S.Trace(seed=7)
    cases = [
        ("/double.gz", S.http_response(200, double, content_type="application/octet-stream",
                                       headers=[("Content-Encoding", "gzip, gzip")])),
        ("/big.br", S.http_response(200, br, content_type="text/html", headers=[("Content-Encoding", "br")])),
        ("/plain.gz", S.http_response(200, inner, content_type="text/plain",
                                      headers=[("Content-Encoding", "gzip")])),
    ]
    for i, (path, resp) in enumerate(cases):
        s = t.session(("10.20.1.5", 40000 + i), ("203.0.113.9", 80), at=i * 0.5)
        s.http(S.http_request("GET", path, "bombs.example"), resp)
        s.close()
    pcap = tmp_path_factory.mktemp("bombs") / "bombs.pcap"
    t.write(pcap)
    return pcap


@pytest.mark.slow
def test_decompression_bombs_are_cut_and_flagged(bombs: Path) -> None:
    events, stats = _run(bombs)
    files = {e["http"]["url"]: e for e in events if e["event_type"] == "fileinfo"}
    assert set(files) == {"/double.gz", "/big.br", "/plain.gz"}
    for url, e in files.items():
        t = e["tapsift"]
        assert e["fileinfo"]["state"] == "TRUNCATED", url
        assert any(r.startswith(("decompression", "body_limit")) for r in t["truncated"]), (url, t["truncated"])
        assert e["fileinfo"]["size"] <= 256 << 20, url
    # the sensor never held a bomb's output: peak RSS stays far below what inflating it would take
    assert stats["peak_rss_kb"] < 400 * 1024, stats["peak_rss_kb"]


def test_evasive_tcp_and_garbage(tmp_path: Path) -> None:
    """Tiny segments, conflicting retransmissions and a mid-body gap, surrounded by garbage frames."""
    rng = random.Random(3)
    body = ("Project Nightjar launch plan. " * 400).encode()
    t = S.Trace(seed=11)
    s = t.session(("10.20.1.7", 41000), ("192.0.2.44", 80), at=0.0)
    req = S.http_request("POST", "/upload", "paste.example.org", body=body, content_type="text/plain")
    s.client_send(req, sizes=[1, 2, 3, 5, 7], conflict={40: b"X", 41: b"YY"}, swap=[10, 30])
    s.server_send(S.http_response(200, b"ok", content_type="text/plain"))
    s2 = t.session(("10.20.1.8", 41001), ("192.0.2.44", 80), at=0.2)
    s2.http(S.http_request("GET", "/big.bin", "paste.example.org"),
            S.http_response(200, bytes(rng.randbytes(200_000)), content_type="application/octet-stream"))
    s2.close()
    s.close()
    pcap = tmp_path / "evasive.pcap"
    frames = list(t.frames())
    # drop one segment of the download (a tap loss the peer ACKs) and add garbage frames
    big = [i for i, (_, f) in enumerate(frames) if len(f) > 1400]
    del frames[big[len(big) // 2]]
    with pcap.open("wb") as fh:
        w = dpkt.pcap.Writer(fh)
        for i, (ts, f) in enumerate(frames):
            w.writepkt(f, ts=ts / 1e9)
            if i % 7 == 0:
                w.writepkt(os.urandom(rng.randint(1, 1600)), ts=ts / 1e9)
    events, stats = _run(pcap, "--policy", str(ROOT / "policies" / "sample.yaml"))
    files = {(e["http"]["url"], e["tapsift"]["direction"]): e for e in events if e["event_type"] == "fileinfo"}
    up = files[("/upload", "upload")]
    assert up["fileinfo"]["size"] == len(body) and up["fileinfo"]["state"] == "CLOSED"
    big_obj = files[("/big.bin", "download")]
    assert big_obj["fileinfo"]["state"] == "TRUNCATED" and big_obj["tapsift"]["missing_bytes"] > 0
    alerts = [e for e in events if e["event_type"] == "alert"]
    assert any(a["alert"]["signature"] == "office-uploads/confidential-leak" for a in alerts)
    anomalies = {e["anomaly"]["event"] for e in events if e["event_type"] == "anomaly"}
    assert "tcp.overlap_conflict" in anomalies
    assert stats["packets"] > len(frames)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(evasive_response(), st.sampled_from([None, 1, 7, 536]), st.booleans())
def test_generated_framing_evasions_through_the_sensor(tmp_path: Path, raw: bytes, seg: int | None,
                                                       fast: bool) -> None:
    """Responses from the evasion grammar (tests/reassembly/test_http_evasions.py) on the wire,
    cut into segments, through decode → TCP → application layer (either driver): the object
    is the body the reference reader gives, and Chromium's other reading of the length too."""
    body, other = reference(raw)
    t = S.Trace(seed=len(raw))
    s = t.session(("10.20.1.9", 41500), ("192.0.2.45", 80))
    s.client_send(S.http_request("GET", "/evasive.bin", "evader.example"))
    s.server_send(raw, **({"seg_size": seg} if seg else {}))
    s.close(by=S.S2C)
    pcap = tmp_path / "evasion.pcap"
    t.write(pcap)
    objs: list[ContentObject] = []
    sensor = Sensor(Settings.model_validate({"reassembly": {"fast_path": fast}}), on_object=objs.append)
    sensor.drive(open_capture(pcap))
    sensor.finish()
    md5s = {o.md5 for o in objs if o.url == "/evasive.bin"}
    assert hashlib.md5(body).hexdigest() in md5s, [o.anomalies for o in objs]
    if other is not None:
        assert hashlib.md5(other).hexdigest() in md5s
