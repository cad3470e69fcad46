"""The packet store: the sensor's packets written to rotating pcap files (size- and age-capped), a flow's PCAP cut
from them, and the token-authenticated endpoint a fleet console fetches it from (over TLS)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

from appliance.model import Frame
from appliance.packetserver import PacketServer, fetch_pcap, parse_flow
from appliance.packetstore import FlowMatch, PacketReader, PacketStore, list_files, tee
from capture.decode import decode
from capture.pcapfile import open_capture
from tools import synth as S

START = 1_714_557_600.0
TOKEN = "t0ken-for-the-pcap-endpoint"


def _capture(path: Path, sessions: int = 6, spacing: float = 600.0) -> Path:
    """*sessions* HTTP downloads of 30 KB, *spacing* seconds apart, each from its own client."""
    t = S.Trace(seed=11, start=START)
    for i in range(sessions):
        s = t.session((f"10.20.1.{10 + i}", 41000 + i), ("203.0.113.5", 80), at=i * spacing)
        s.http(S.http_request("GET", f"/f{i}", "files.example.com"),
               S.http_response(200, bytes([i]) * 30_000, content_type="application/octet-stream"))
        s.close()
    t.write(path)
    return path


def _frames(path: Path) -> list[Frame]:
    with open_capture(path) as cap:
        return list(cap.frames())


def _tuples(data: bytes) -> list[tuple[bytes, int, bytes, int]]:
    p = Path("/tmp") / f"cut-{id(data)}.pcap"
    p.write_bytes(data)
    try:
        out = []
        for f in _frames(p):
            pkt = decode(f)
            out.append((pkt.src, pkt.sport, pkt.dst, pkt.dport))
        return out
    finally:
        p.unlink()


def _feed(source: object) -> int:
    """Read a source as the sensor's fast path does (raw records), counting the records."""
    n = [0]
    big, _nsec, hlen, _ = source.record_format  # type: ignore[attr-defined]
    import struct

    hdr = struct.Struct((">" if big else "<") + "IIII")

    def consume(buf: bytes, off: int) -> int:
        while off + hlen <= len(buf):
            incl = hdr.unpack_from(buf, off)[2]
            if off + hlen + incl > len(buf):
                break
            off += hlen + incl
            n[0] += 1
        return off

    source.feed_records(consume)  # type: ignore[attr-defined]
    return n[0]


def test_tee_writes_every_packet_and_a_flow_can_be_cut(tmp_path: Path) -> None:
    pcap = _capture(tmp_path / "in.pcap")
    frames = _frames(pcap)
    store = PacketStore(tmp_path / "ps", worker="w0", file_bytes=64 * 1024)
    with open_capture(pcap) as cap:
        assert _feed(tee(cap, store)) == len(frames)  # the raw-record path: the records as they are
    store.close()
    files = list_files(tmp_path / "ps")
    assert len(files) > 1 and all(f.size <= 64 * 1024 + 70_000 for f in files)  # rotated
    stored = [f for s in files for f in _frames(s.path)]
    assert [(f.ts_ns, f.data) for f in stored] == [(f.ts_ns, f.data) for f in frames]
    # the third session, both directions, and nothing else
    flow = FlowMatch("10.20.1.12", 41002, "203.0.113.5", 80, 6)
    buf = io.BytesIO()
    got = PacketReader(tmp_path / "ps").cut(buf, int(START * 1e9), int((START + 7200) * 1e9), flow)
    tuples = _tuples(buf.getvalue())
    mine = [t for t in _tuples(pcap.read_bytes()) if {t[0], t[2]} == {flow.packed[0], flow.packed[1]}]
    assert got["packets"] == len(tuples) == len(mine) > 10 and tuples == mine
    assert subprocess.run(["tcpdump", "-nr", "-"], input=buf.getvalue(), capture_output=True).returncode == 0


def test_frames_batches_and_the_caps(tmp_path: Path) -> None:
    pcap = _capture(tmp_path / "in.pcap", sessions=8, spacing=1800.0)
    frames = _frames(pcap)
    d = tmp_path / "ps"
    store = PacketStore(d, worker="w1", file_bytes=40_000, max_bytes=150_000, max_age_s=3 * 3600)
    for i in range(0, len(frames), 50):
        store.write_frames(frames[i:i + 50])  # as a live ring's batches arrive
    store.close()
    files = list_files(d)
    assert sum(f.size for f in files) <= 150_000 + 40_000 + 70_000  # the open file may exceed by one write
    newest = frames[-1].ts_ns
    kept = [f for s in files for f in _frames(s.path)]
    assert kept and kept[-1].ts_ns == newest and kept[0].ts_ns >= newest - (3 * 3600 + 1800) * 10**9
    assert store.counters["removed"] > 0 and store.counters["packets"] == len(frames)
    # an old flow is gone: its cut is an empty pcap (the console says the store no longer has it)
    buf = io.BytesIO()
    assert PacketReader(d).cut(buf, int(START * 1e9), int((START + 900) * 1e9),
                               FlowMatch("10.20.1.10", None, "203.0.113.5", 80))["packets"] == 0
    assert len(buf.getvalue()) == 24


def test_tee_of_batches_and_frames(tmp_path: Path) -> None:
    pcap = _capture(tmp_path / "in.pcap", sessions=2)
    n = len(_frames(pcap))
    s1 = PacketStore(tmp_path / "a")
    with open_capture(pcap) as cap:
        assert sum(len(b) for b in tee(cap, s1).batches()) == n
    s1.close()
    s2 = PacketStore(tmp_path / "b")
    with open_capture(pcap) as cap:
        assert sum(1 for _ in tee(cap, s2).frames()) == n
    s2.close()
    for d in ("a", "b"):
        assert sum(len(_frames(f.path)) for f in list_files(tmp_path / d)) == n


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "sensor.crt", d / "sensor.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


def test_the_endpoint_serves_cuts_to_a_token_over_tls(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    pcap = _capture(tmp_path / "in.pcap", sessions=3)
    store = PacketStore(tmp_path / "ps")
    with open_capture(pcap) as cap:
        _feed(tee(cap, store))
    store.close()
    srv = PacketServer(tmp_path / "ps", TOKEN, tls_cert=str(cert[0]), tls_key=str(cert[1]))
    srv.serve_in_thread()
    try:
        flow = parse_flow("10.20.1.11,41001,203.0.113.5,80,6")
        since, until = int(START * 1e9), int((START + 3600) * 1e9)
        got = fetch_pcap(srv.url, TOKEN, since, until, flow, ca_file=str(cert[0]))
        local = io.BytesIO()
        PacketReader(tmp_path / "ps").cut(local, since, until, flow)
        assert got == local.getvalue() and len(got) > 24
        with pytest.raises(OSError, match="HTTP 401"):
            fetch_pcap(srv.url, "wrong-token-wrong-token", since, until, flow, ca_file=str(cert[0]))
        with pytest.raises(OSError, match="HTTP 400"):
            fetch_pcap(srv.url, TOKEN, until, since, flow, ca_file=str(cert[0]))
        with pytest.raises(OSError):  # a certificate nobody vouches for
            fetch_pcap(srv.url, TOKEN, since, until, flow)
    finally:
        srv.shutdown()
        srv.server_close()
    with pytest.raises(ValueError):
        PacketServer(tmp_path / "ps", "short")
    with pytest.raises(ValueError):
        parse_flow("10.0.0.1,1,not-an-ip,2")


def test_tapsift_read_fills_the_packet_store(tmp_path: Path) -> None:
    """``tapsift read --packet-store DIR`` (how tests fill a store): every packet, in order."""
    import os
    import sys

    pcap = _capture(tmp_path / "in.pcap", sessions=2)
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-m", "appliance.cli", "read", str(pcap), "--eve", "/dev/null", "-q",
                    "--packet-store", str(tmp_path / "ps")], check=True, cwd=root,
                   env={**os.environ, "PYTHONPATH": str(root)})
    stored = [f for s in list_files(tmp_path / "ps") for f in _frames(s.path)]
    assert [f.data for f in stored] == [f.data for f in _frames(pcap)]
