"""The ``tapsift read`` command: exit codes, one-line errors, EVE events, summary."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import dpkt

TAPSIFT = str(Path(sys.executable).with_name("tapsift"))


def _http_pcap(path: Path, body: bytes = b"hello tapsift\n" * 50) -> bytes:
    """A minimal well-formed HTTP download written with dpkt."""
    c, s = bytes([10, 20, 0, 5]), bytes([192, 0, 2, 80])
    req = b"GET /files/note.txt HTTP/1.1\r\nHost: example.test\r\nUser-Agent: t\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    frames = []
    cseq, sseq = 1000, 5000

    def pkt(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, data: bytes = b"") -> bytes:
        tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, data=data, win=65535)
        ip = dpkt.ip.IP(src=src, dst=dst, p=6, data=tcp, ttl=64)
        ip.len = len(ip)
        return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))

    S, A = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK
    PA, FA = dpkt.tcp.TH_PUSH | A, dpkt.tcp.TH_FIN | A
    frames.append(pkt(c, s, 40000, 80, cseq, 0, S))
    frames.append(pkt(s, c, 80, 40000, sseq, cseq + 1, S | A))
    frames.append(pkt(c, s, 40000, 80, cseq + 1, sseq + 1, A))
    frames.append(pkt(c, s, 40000, 80, cseq + 1, sseq + 1, PA, req))
    frames.append(pkt(s, c, 80, 40000, sseq + 1, cseq + 1 + len(req), PA, resp))
    frames.append(pkt(c, s, 40000, 80, cseq + 1 + len(req), sseq + 1 + len(resp), FA))
    frames.append(pkt(s, c, 80, 40000, sseq + 1 + len(resp), cseq + 2 + len(req), FA))
    with path.open("wb") as fh:
        w = dpkt.pcap.Writer(fh)
        for i, f in enumerate(frames):
            w.writepkt(f, ts=1_700_000_000 + i * 0.001)
    return body


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TAPSIFT, *args], capture_output=True, text=True, timeout=120)


def test_reads_a_capture_and_writes_fileinfo(tmp_path: Path) -> None:
    import hashlib

    pcap = tmp_path / "a.pcap"
    body = _http_pcap(pcap)
    eve = tmp_path / "eve.json"
    p = _run("read", str(pcap), "--eve", str(eve))
    assert p.returncode == 0, p.stderr
    assert "7 packets" in p.stderr and "1 objects" in p.stderr
    events = [json.loads(line) for line in eve.read_text().splitlines()]
    files = [e for e in events if e["event_type"] == "fileinfo"]
    assert len(files) == 1
    fi = files[0]
    assert fi["fileinfo"]["md5"] == hashlib.md5(body).hexdigest()
    assert fi["fileinfo"]["filename"] == "note.txt" and fi["fileinfo"]["state"] == "CLOSED"
    assert fi["http"]["hostname"] == "example.test" and fi["http"]["status"] == 200
    assert fi["src_ip"] == "192.0.2.80" and fi["dest_port"] == 40000
    assert fi["tapsift"]["direction"] == "download"
    assert events[-1]["event_type"] == "stats" and events[-1]["stats"]["packets"] == 7


def test_gzip_capture_and_stdout(tmp_path: Path) -> None:
    pcap = tmp_path / "a.pcap"
    _http_pcap(pcap)
    gz = tmp_path / "capture.bin"  # the name says nothing: detected by content
    gz.write_bytes(gzip.compress(pcap.read_bytes()))
    p = _run("read", str(gz), "--eve", "-", "-q")
    assert p.returncode == 0, p.stderr
    kinds = [json.loads(line)["event_type"] for line in p.stdout.splitlines()]
    assert kinds.count("fileinfo") == 1 and p.stderr == ""


def test_missing_file_is_one_line_error(tmp_path: Path) -> None:
    p = _run("read", str(tmp_path / "nope.pcap"))
    assert p.returncode == 1
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


def test_not_a_capture_is_one_line_error(tmp_path: Path) -> None:
    f = tmp_path / "x.pcap"
    f.write_bytes(b"this is not a capture file at all" * 10)
    p = _run("read", str(f))
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1


def test_truncated_capture_still_reads(tmp_path: Path) -> None:
    pcap = tmp_path / "a.pcap"
    _http_pcap(pcap)
    data = pcap.read_bytes()
    pcap.write_bytes(data[: len(data) - 37])
    p = _run("read", str(pcap), "--eve", str(tmp_path / "e.json"))
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    assert _run("read").returncode == 2
    assert _run("frobnicate").returncode == 2


def test_bad_config_is_one_line_error(tmp_path: Path) -> None:
    pcap = tmp_path / "a.pcap"
    _http_pcap(pcap)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("http:\n  body_limit: -5\n")
    p = _run("read", str(pcap), "--config", str(cfg))
    assert p.returncode == 1 and "http.body_limit" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


def test_body_limit_truncates(tmp_path: Path) -> None:
    pcap = tmp_path / "a.pcap"
    _http_pcap(pcap)
    p = _run("read", str(pcap), "--eve", "-", "-q", "--body-limit", "100")
    fi = next(json.loads(x) for x in p.stdout.splitlines() if '"fileinfo"' in x)
    assert fi["fileinfo"]["state"] == "TRUNCATED" and fi["fileinfo"]["size"] == 100
    assert fi["tapsift"]["truncated"] == ["body_limit"]


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """On a terminal (a pty here) the run shows a progress bar, then the closing summary."""
    import os
    import pty

    pcap = tmp_path / "a.pcap"
    # enough frames for the bar to update (it redraws every 65,536 frames)
    import dpkt as _d

    with pcap.open("wb") as fh:
        w = _d.pcap.Writer(fh)
        for i in range(140_000):
            w.writepkt(b"\x02" * 12 + b"\x08\x06" + b"\x00" * 28, ts=1_700_000_000 + i * 1e-5)
    pid, fd = pty.fork()
    if pid == 0:  # child: stderr is the pty
        os.execv(TAPSIFT, [TAPSIFT, "read", str(pcap)])
    out = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert os.WEXITSTATUS(status) == 0
    assert "%" in text and "[#" in text and "pkts" in text
    assert "140,000 packets" in text


def test_periodic_stats_events_on_packet_time(tmp_path: Path) -> None:
    """output.stats_interval_s: a stats event every N seconds of packet time, then the final one."""
    pcap = tmp_path / "a.pcap"
    with pcap.open("wb") as fh:
        w = dpkt.pcap.Writer(fh)
        for i in range(100):  # one ARP frame every 0.1 s: 9.9 s of packet time
            w.writepkt(b"\x02" * 12 + b"\x08\x06" + b"\x00" * 28, ts=1_700_000_000 + i * 0.1)
    cfg = tmp_path / "s.yaml"
    cfg.write_text("output:\n  stats_interval_s: 2\n")
    p = _run("read", str(pcap), "--config", str(cfg), "--eve", "-", "-q")
    assert p.returncode == 0, p.stderr
    stats = [json.loads(x)["stats"] for x in p.stdout.splitlines() if '"event_type":"stats"' in x]
    assert len(stats) == 4 + 1  # at 2, 4, 6 and 8 s of packet time, and the closing one
    packets = [s["packets"] for s in stats]
    assert packets == sorted(packets) and packets[-1] == 100 and 0 < packets[0] < 100
