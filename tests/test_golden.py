"""Golden captures end to end: generate each case, run ``tapsift read CASE --eve OUT``, check EVE.

The contract checked here (Suricata names): every line is a JSON object with ``timestamp``
(ISO 8601, µs, ``+0000``) and ``event_type``; ``fileinfo`` events carry the flow 5-tuple,
``http`` {hostname, url, http_method, status, ...}, ``fileinfo`` {filename, md5, sha256, size,
state, gaps, tx_id, stored} and ``tapsift`` {direction, missing_bytes, truncated, kind, ...}; the
last event is ``stats``. The generator self-checks at the bottom run without the sensor.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

try:
    from tests.pcaps import cases as golden
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    from pcaps import cases as golden  # type: ignore[no-redef]

TAPSIFT = Path(sys.executable).parent / "tapsift"
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000$")
FILEINFO_KEYS = {"filename", "md5", "sha256", "size", "state", "gaps", "tx_id", "stored"}
TAPSIFT_KEYS = {"direction", "missing_bytes", "truncated", "flow_uid", "content_id", "kind"}
NAMES = list(golden.CASES)


@pytest.fixture(scope="session")
def golden_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("golden")


_cases: dict[str, golden.Case] = {}
_eve: dict[str, tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]] = {}


@pytest.fixture(scope="session")
def make_case(golden_dir: Path):
    """Generate a case once per session (cached)."""

    def get(name: str) -> golden.Case:
        if name not in _cases:
            _cases[name] = golden.generate(name, golden_dir)
        return _cases[name]

    return get


def run_tapsift(case: golden.Case) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """``tapsift read`` the case (once per session); returns the process and the EVE events."""
    if case.name in _eve:
        return _eve[case.name]
    out = case.pcap.with_suffix(".eve.json")
    cmd = [str(TAPSIFT), "read", str(case.pcap), "--eve", str(out), *case.args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    events: list[dict[str, Any]] = []
    if out.exists():
        for n, line in enumerate(out.read_text().splitlines(), 1):
            if line.strip():
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError as e:  # pragma: no cover - reported below
                    pytest.fail(f"{out}:{n}: not JSON ({e}): {line[:200]}")
    _eve[case.name] = (proc, events)
    return proc, events


def _ip(s: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(s)


def _filename_ok(reported: str, expected: str) -> bool:
    return reported == expected or reported.endswith("/" + expected)


def mismatches(exp: golden.Expected, ev: dict[str, Any]) -> list[str]:
    """Why fileinfo event ``ev`` is not the expected object (empty: it is)."""
    fi, http, ts = ev.get("fileinfo", {}), ev.get("http", {}), ev.get("tapsift", {})
    bad = []

    def want(label: str, got: object, expected: object) -> None:
        if expected is not None and got != expected:
            bad.append(f"{label}={got!r}, want {expected!r}")

    want("md5", fi.get("md5"), exp.md5)
    want("size", fi.get("size"), exp.size)
    want("state", fi.get("state"), exp.state)
    want("direction", ts.get("direction"), exp.direction)
    want("http_method", http.get("http_method"), exp.method)
    want("status", http.get("status"), exp.status)
    want("url", http.get("url"), exp.url)
    want("hostname", http.get("hostname"), exp.host)
    want("kind", ts.get("kind"), exp.kind)
    want("tx_id", fi.get("tx_id"), exp.tx_id)
    want("gaps", fi.get("gaps"), exp.gaps)
    want("missing_bytes", ts.get("missing_bytes"), exp.missing_bytes)
    if exp.filename is not None and not _filename_ok(str(fi.get("filename", "")), exp.filename):
        bad.append(f"filename={fi.get('filename')!r}, want {exp.filename!r}")
    if exp.truncated is not None and not any(exp.truncated in str(r) for r in ts.get("truncated", [])):
        bad.append(f"truncated={ts.get('truncated')!r}, want a reason containing {exp.truncated!r}")
    size = fi.get("size")
    if exp.size_max is not None and not (isinstance(size, int) and 0 < size <= exp.size_max):
        bad.append(f"size={size!r}, want 0 < size <= {exp.size_max}")
    if exp.prefix_of is not None and isinstance(size, int):
        want("md5 (of the prefix)", fi.get("md5"), hashlib.md5(exp.prefix_of[:size]).hexdigest())
    return bad


@pytest.mark.parametrize("name", NAMES)
def test_golden(name: str, make_case) -> None:
    case = make_case(name)
    if not TAPSIFT.exists():
        pytest.fail(f"{TAPSIFT} is not installed (pip install -e .)")
    proc, events = run_tapsift(case)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstderr:\n{proc.stderr[-3000:]}"
    assert events, "no EVE output"
    for ev in events:
        assert TS_RE.match(str(ev.get("timestamp", ""))), f"bad timestamp in {ev}"
        assert "event_type" in ev
    assert events[-1]["event_type"] == "stats", "the last event must be stats"

    files = [e for e in events if e["event_type"] == "fileinfo"]
    endpoints = {(_ip(case.client[0]), case.client[1]), (_ip(case.server[0]), case.server[1])}
    for ev in files:
        for key in ("flow_id", "src_ip", "src_port", "dest_ip", "dest_port", "proto", "app_proto",
                    *(("http",) if case.proto == "http" else ()), "fileinfo", "tapsift"):
            assert key in ev, f"fileinfo event without {key!r}: {ev}"
        assert ev["fileinfo"].keys() >= FILEINFO_KEYS - ({"tx_id"} if case.proto != "http" else set()), ev["fileinfo"]
        assert ev["tapsift"].keys() >= TAPSIFT_KEYS, ev["tapsift"]
        assert ev["proto"] == case.transport and ev["app_proto"] == case.proto
        assert ev["fileinfo"]["stored"] is False
        assert ev["fileinfo"]["state"] in ("CLOSED", "TRUNCATED")
        if ev["tapsift"]["kind"] != "range":  # a stitched range may span connections
            pair = {(_ip(ev["src_ip"]), ev["src_port"]), (_ip(ev["dest_ip"]), ev["dest_port"])}
            assert pair & endpoints and case.server[1] in (ev["src_port"], ev["dest_port"]), ev

    unmatched = list(files)
    problems = []
    for exp in case.expected:
        best: tuple[list[str], dict[str, Any]] | None = None
        for ev in unmatched:
            why = mismatches(exp, ev)
            if best is None or len(why) < len(best[0]):
                best = (why, ev)
        if best is not None and not best[0]:
            unmatched.remove(best[1])
            continue
        near = f"; nearest: {best[0]}" if best else "; no fileinfo events at all"
        problems.append(f"missing {exp.to_json()}{near}")
    if not case.allow_extra and unmatched:
        problems.append(f"unexpected fileinfo events: {[e['fileinfo'] for e in unmatched]}")
    assert not problems, f"{case.description}\n" + "\n".join(problems)


# --- the generators themselves (no sensor needed) ------------------------------------------------


def test_cases_are_deterministic(tmp_path: Path) -> None:
    for name in ("plain_get", "multipart_upload", "ooo_retransmit", "erspan3_get", "pcapng_get"):
        a = golden.generate(name, tmp_path / "a")
        b = golden.generate(name, tmp_path / "b")
        assert a.pcap.read_bytes() == b.pcap.read_bytes(), name
        assert [e.to_json() for e in a.expected] == [e.to_json() for e in b.expected]


@pytest.mark.parametrize("name", NAMES)
def test_case_parses_with_dpkt(name: str, make_case) -> None:
    import dpkt

    case = make_case(name)
    with case.pcap.open("rb") as f:
        reader = dpkt.pcapng.Reader(f) if case.pcap.suffix == ".pcapng" else dpkt.pcap.Reader(f)
        stamps = [ts for ts, _ in reader]
    assert stamps and stamps == sorted(stamps)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
@pytest.mark.parametrize("name", NAMES)
def test_tshark_agrees(name: str, make_case, tmp_path: Path) -> None:
    """tshark exports every complete whole-body download a case expects (validates the synthesis)."""
    case = make_case(name)
    if not case.tshark:
        pytest.skip("a trick Wireshark does not read")
    want = {e.md5 for e in case.expected if e.state == "CLOSED" and e.kind == "body" and e.md5}
    proc = subprocess.run(["tshark", "-r", str(case.pcap), "-q", "--export-objects", f"http,{tmp_path}"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = {hashlib.md5(p.read_bytes()).hexdigest() for p in tmp_path.iterdir() if p.is_file()}
    assert want <= got, f"tshark did not export {want - got}"
