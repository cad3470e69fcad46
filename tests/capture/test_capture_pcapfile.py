"""capture.pcapfile: pcap/pcapng/gzip reading, damage handling, errors."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import dpkt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.model import Frame
from capture import pcapfile
from capture.pcapfile import CaptureError, open_capture
from tests.capture.capture_helpers import PcapNg, pcap_bytes

RECORDS = [
    (1_600_000_000_123_456_789 + i * 1_000_017, bytes([i % 256]) * (20 + i * 37 % 300), 1000 + i)
    for i in range(50)
]


@pytest.fixture(params=["big_chunks", "tiny_chunks"])
def chunking(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each reading test with the default chunk size and with 7-byte chunks (refill paths)."""
    if request.param == "tiny_chunks":
        monkeypatch.setattr(pcapfile, "CHUNK", 7)
        monkeypatch.setattr(pcapfile, "GZ_IN_CHUNK", 5)
    return request.param


def write(tmp_path: Path, data: bytes, name: str = "cap") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def read_all(path: Path) -> tuple[list[Frame], dict[str, int]]:
    with open_capture(path) as cap:
        frames = list(cap.frames())
        assert cap.position == cap.size == path.stat().st_size
        return frames, cap.anomalies


@pytest.mark.parametrize("nano", [False, True])
@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_byte_orders_and_resolutions(
    tmp_path: Path, chunking: str, nano: bool, big_endian: bool,
) -> None:
    p = write(tmp_path, pcap_bytes(RECORDS, linktype=1, nano=nano, big_endian=big_endian))
    frames, anomalies = read_all(p)
    assert anomalies == {}
    assert len(frames) == len(RECORDS)
    for fr, (ts, data, wirelen) in zip(frames, RECORDS, strict=True):
        assert isinstance(fr, Frame)
        assert fr.ts_ns == (ts if nano else ts // 1000 * 1000)
        assert fr.data == data
        assert fr.wirelen == wirelen
        assert fr.linktype == 1
        assert fr.iface == ""
    with open_capture(p) as cap:
        assert cap.format == "pcap" and cap.linktype == 1 and not cap.compressed


def test_pcap_linktype_fcs_bits_masked(tmp_path: Path) -> None:
    data = bytearray(pcap_bytes(RECORDS[:2], linktype=1))
    data[20:24] = struct.pack("<I", 1 | 0x04000000 | (4 << 28))  # "F" bit and FCS length
    frames, _ = read_all(write(tmp_path, bytes(data)))
    assert [f.linktype for f in frames] == [1, 1]


def test_pcap_written_by_scapy_and_dpkt(tmp_path: Path) -> None:
    from scapy.all import IP, TCP, Ether, wrpcap

    pkts = [Ether() / IP(dst="10.0.0.1") / TCP(dport=80) / (b"x" * i) for i in range(5)]
    wrpcap(str(tmp_path / "s.pcap"), pkts)
    frames, _ = read_all(tmp_path / "s.pcap")
    assert [f.data for f in frames] == [bytes(p) for p in pkts]

    with open(tmp_path / "d.pcapng", "wb") as fh:
        w = dpkt.pcapng.Writer(fh, snaplen=65535, linktype=dpkt.pcap.DLT_EN10MB)
        for i, p in enumerate(pkts):
            w.writepkt(bytes(p), ts=1_700_000_000.5 + i)
    frames, anomalies = read_all(tmp_path / "d.pcapng")
    assert anomalies == {}
    assert [f.data for f in frames] == [bytes(p) for p in pkts]
    assert frames[1].ts_ns == 1_700_000_001_500_000_000


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_two_interfaces(tmp_path: Path, chunking: str, big_endian: bool) -> None:
    ng = PcapNg(big_endian)
    ng.interface(1, name="eth0")  # default resolution: microseconds
    ng.interface(101, tsresol=9, tsoffset=10)  # nanoseconds, unnamed, +10 s
    ng.block(0x0BAD, b"unknown block content")  # skipped
    ng.epb(0, 1_700_000_000_000_001, b"\x01" * 60, wirelen=1514)
    ng.epb(1, 1_700_000_000_000_000_007, b"\x45" + b"\x02" * 39)
    ng.block(4, b"\x00\x00\x00\x00")  # name resolution block: skipped
    ng.pb(0, 1_700_000_000_000_002, b"\x03" * 61)
    ng.spb(b"\x04" * 62)
    frames, anomalies = read_all(write(tmp_path, ng.bytes()))
    assert anomalies == {}
    assert [(f.linktype, f.iface, len(f.data)) for f in frames] == [
        (1, "eth0", 60), (101, "if1", 40), (1, "eth0", 61), (1, "eth0", 62),
    ]
    assert frames[0].ts_ns == 1_700_000_000_000_001_000
    assert frames[0].wirelen == 1514
    assert frames[1].ts_ns == 1_700_000_010_000_000_007
    assert frames[2].ts_ns == 1_700_000_000_000_002_000
    assert frames[3].ts_ns == frames[2].ts_ns  # SPB: last timestamp seen


def test_pcapng_binary_tsresol_and_sections(tmp_path: Path, chunking: str) -> None:
    ng = PcapNg(big_endian=False)
    ng.interface(1, tsresol=0x80 | 10)  # 2^-10 s
    ng.epb(0, 5 * 1024 + 512, b"a" * 20)
    ng.section(big_endian=True)  # new section, other byte order, interfaces reset
    ng.interface(228, name="tun0", tsresol=3)  # milliseconds
    ng.epb(0, 1234, b"\x45" + b"b" * 19)
    ng.section(big_endian=False)
    ng.epb(0, 1, b"c" * 20)  # no interface in this section yet
    frames, anomalies = read_all(write(tmp_path, ng.bytes()))
    assert [(f.ts_ns, f.linktype, f.iface) for f in frames] == [
        (5_500_000_000, 1, ""), (1_234_000_000, 228, "tun0"),
    ]
    assert anomalies == {"pcapng.unknown_interface": 1}


def test_pcapng_spb_respects_snaplen(tmp_path: Path) -> None:
    ng = PcapNg().interface(1, snaplen=16)
    ng.spb(b"z" * 40, wirelen=40)
    frames, _ = read_all(write(tmp_path, ng.bytes()))
    assert frames[0].data == b"z" * 16 and frames[0].wirelen == 40


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_gzip_detected_by_magic(tmp_path: Path, chunking: str, fmt: str) -> None:
    if fmt == "pcap":
        raw = pcap_bytes(RECORDS)
    else:
        ng = PcapNg().interface(1)
        for ts, data, _ in RECORDS:
            ng.epb(0, ts // 1000, data)
        raw = ng.bytes()
    p = write(tmp_path, gzip.compress(raw), "no_gz_suffix.pcap")
    frames, anomalies = read_all(p)
    assert anomalies == {}
    assert [f.data for f in frames] == [r[1] for r in RECORDS]
    with open_capture(p) as cap:
        assert cap.compressed and cap.format == fmt
        assert cap.size == p.stat().st_size


def test_gzip_multi_member(tmp_path: Path, chunking: str) -> None:
    raw = pcap_bytes(RECORDS)
    p = write(tmp_path, gzip.compress(raw[:1000]) + gzip.compress(raw[1000:]))
    frames, anomalies = read_all(p)
    assert anomalies == {} and len(frames) == len(RECORDS)


def test_gzip_truncated_keeps_what_was_decompressed(tmp_path: Path, chunking: str) -> None:
    raw = pcap_bytes(RECORDS)
    gz = gzip.compress(raw, compresslevel=1)
    p = write(tmp_path, gz[: len(gz) * 2 // 3])
    frames, anomalies = read_all(p)
    assert 0 < len(frames) < len(RECORDS)
    assert [f.data for f in frames] == [r[1] for r in RECORDS[: len(frames)]]
    assert anomalies.get("gzip.truncated") == 1
    assert anomalies.get("pcap.truncated_record", 0) <= 1


def test_gzip_corrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pcapfile, "GZ_IN_CHUNK", 256)
    gz = bytearray(gzip.compress(pcap_bytes(RECORDS), compresslevel=1))
    gz[len(gz) // 2: len(gz) // 2 + 40] = b"\xff" * 40
    frames, anomalies = read_all(write(tmp_path, bytes(gz)))
    assert len(frames) < len(RECORDS)
    assert anomalies  # gzip.corrupt / truncated record, never an exception


@pytest.mark.parametrize("cut", [1, 5, 16, 17])
def test_pcap_truncated_last_record(tmp_path: Path, chunking: str, cut: int) -> None:
    raw = pcap_bytes(RECORDS)
    frames, anomalies = read_all(write(tmp_path, raw[:-cut]))
    assert len(frames) == len(RECORDS) - 1
    assert anomalies == {"pcap.truncated_record": 1}


def test_pcap_header_only(tmp_path: Path) -> None:
    frames, anomalies = read_all(write(tmp_path, pcap_bytes([])))
    assert frames == [] and anomalies == {}


def test_pcap_garbage_in_the_middle(tmp_path: Path, chunking: str) -> None:
    raw = pcap_bytes(RECORDS[:10]) + b"\xff" * 64 + pcap_bytes(RECORDS[10:])[24:]
    frames, anomalies = read_all(write(tmp_path, raw))
    assert len(frames) == 10
    assert anomalies == {"pcap.bad_record": 1}


def test_pcapng_truncated_and_garbage(tmp_path: Path, chunking: str) -> None:
    ng = PcapNg().interface(1)
    for ts, data, _ in RECORDS[:5]:
        ng.epb(0, ts // 1000, data)
    raw = ng.bytes()
    frames, anomalies = read_all(write(tmp_path, raw[:-3], "a"))
    assert len(frames) == 4 and anomalies == {"pcapng.truncated_block": 1}
    frames, anomalies = read_all(write(tmp_path, raw + b"\x06\x00\x00\x00\x0d\x00\x00\x00" + raw[-200:], "b"))
    assert len(frames) == 5 and anomalies == {"pcapng.bad_block": 1}
    bad = bytearray(raw)
    bad[-4:] = b"\x00\x01\x00\x00"  # trailing length does not match
    frames, anomalies = read_all(write(tmp_path, bytes(bad), "c"))
    assert len(frames) == 4 and anomalies == {"pcapng.bad_block": 1}


def test_capture_errors(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no such file"):
        open_capture(tmp_path / "missing.pcap")
    with pytest.raises(CaptureError, match="directory"):
        open_capture(tmp_path)
    with pytest.raises(CaptureError, match="empty"):
        open_capture(write(tmp_path, b"", "empty"))
    with pytest.raises(CaptureError, match="not a pcap"):
        open_capture(write(tmp_path, b"GET / HTTP/1.1\r\n\r\n", "http"))
    with pytest.raises(CaptureError, match="not a pcap"):
        open_capture(write(tmp_path, gzip.compress(b"hello world"), "gz"))
    with pytest.raises(CaptureError, match="corrupt or truncated gzip"):
        open_capture(write(tmp_path, gzip.compress(pcap_bytes(RECORDS))[:12], "badgz"))
    with pytest.raises(CaptureError, match="truncated pcap file header"):
        open_capture(write(tmp_path, pcap_bytes([])[:20], "short"))
    with pytest.raises(CaptureError, match="zstd"):
        open_capture(write(tmp_path, b"\x28\xb5\x2f\xfd" + b"\0" * 30, "zst"))
    if os.geteuid() != 0:  # root can read anything
        p = write(tmp_path, pcap_bytes([]), "noperm")
        p.chmod(0)
        with pytest.raises(CaptureError, match="permission"):
            open_capture(p)
    # one-line messages
    try:
        open_capture(tmp_path / "missing.pcap")
    except CaptureError as e:
        assert "\n" not in str(e)


def test_progress_and_close(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pcapfile, "CHUNK", 1024)
    p = write(tmp_path, pcap_bytes(RECORDS * 4))
    cap = open_capture(p)
    it = cap.frames()
    next(it)
    assert 0 < cap.position < cap.size
    cap.close()
    rest = list(it)  # stops without raising
    assert len(rest) < len(RECORDS) * 4
    assert list(cap.frames()) == []  # frames() is single-shot


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_reader_never_raises_on_damaged_files(tmp_path: Path, data: st.DataObject) -> None:
    ng = PcapNg(data.draw(st.booleans())).interface(1).interface(113, tsresol=9)
    for i, (ts, d, _) in enumerate(RECORDS[:6]):
        ng.epb(i % 2, ts, d)
    base = data.draw(st.sampled_from([pcap_bytes(RECORDS[:6], nano=True), ng.bytes()]))
    raw = bytearray(base)
    for _ in range(data.draw(st.integers(0, 6))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(4, len(raw)))]
    if data.draw(st.booleans()):
        raw = bytearray(gzip.compress(bytes(raw)))
        raw = raw[: data.draw(st.integers(2, len(raw)))]
    p = tmp_path / "fuzz"
    p.write_bytes(bytes(raw))
    try:
        cap = open_capture(p)
    except CaptureError:
        return
    with cap:
        for fr in cap.frames():
            assert isinstance(fr.data, bytes)
