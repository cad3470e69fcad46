"""The parts of live capture that need no namespace: metrics, EVE rotation, shedding, BPF, checks."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from appliance.eve import EveWriter
from appliance.metrics import MetricsServer, parse_listen, render
from appliance.settings import Settings, SettingsError, load_settings
from appliance.supervisor import InspectionPool, capabilities, not_inspected_event
from capture.ifaces import check_interface
from capture.live import BpfError, compile_bpf

TAPSIFT = str(Path(sys.executable).with_name("tapsift"))

SNAP = {
    "uptime": 12.5,
    "capture": {"kernel_packets": 10, "kernel_drops": 3},
    "interfaces": {"eth1": {"kernel_packets": 10, "kernel_drops": 3,
                            "workers": {"w0": {"kernel_packets": 6, "kernel_drops": 3},
                                        "w1": {"kernel_packets": 4, "kernel_drops": 0}}}},
    "workers": {"w0": {"packets": 3, "bytes": 300, "objects": 1, "alive": True, "restarts": 2},
                "w1": {"packets": 4, "bytes": 400, "alive": False}},
    "queues": {"inspect": 5},
    "eve_events": 9,
    "reloads": 1,
}


def test_metrics_text_format() -> None:
    text = render(SNAP)
    assert 'tapsift_kernel_drops_total{iface="eth1",worker="w0"} 3' in text
    assert 'tapsift_packets_total{worker="w1"} 4' in text
    assert 'tapsift_worker_restarts_total{worker="w0"} 2' in text
    assert 'tapsift_worker_up{worker="w1"} 0' in text
    assert 'tapsift_queue_depth{queue="inspect"} 5' in text
    assert "# TYPE tapsift_kernel_drops_total counter" in text
    for line in text.splitlines():  # every sample line is NAME{labels} VALUE
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            float(value)
            assert name.startswith("tapsift_")


def test_metrics_endpoint_serves_the_snapshot() -> None:
    srv = MetricsServer("127.0.0.1", 0, lambda: SNAP)
    srv.start()
    try:
        host, port = srv.address
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert b"tapsift_eve_events_total 9" in r.read()
    finally:
        srv.close()
    assert parse_listen("") is None
    assert parse_listen("127.0.0.1:9917") == ("127.0.0.1", 9917)
    with pytest.raises(ValueError):
        parse_listen("nonsense")


def test_eve_size_rotation_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    w = EveWriter(path, rotate_bytes=200, rotate_keep=2)
    for i in range(20):
        w.write({"event_type": "x", "i": i, "pad": "y" * 40})
    w.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["eve.json", "eve.json.1", "eve.json.2"]
    assert all(p.stat().st_size <= 260 for p in tmp_path.iterdir())
    kept = [json.loads(line)["i"] for f in ("eve.json.2", "eve.json.1", "eve.json")
            for line in (tmp_path / f).read_text().splitlines()]
    assert kept == sorted(kept) and kept[-1] == 19  # the newest lines, in order
    # logrotate-style: the file is moved away, reopen creates a new one
    path = tmp_path / "second.json"
    w = EveWriter(path)
    w.write({"a": 1})
    path.rename(tmp_path / "moved.json")
    w.reopen()
    w.write({"b": 2})
    w.close()
    assert json.loads((tmp_path / "moved.json").read_text()) == {"a": 1}
    assert json.loads(path.read_text()) == {"b": 2}


def test_eve_reopen_failure_keeps_writing_to_the_old_file(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    w = EveWriter(d / "eve.json")
    (d / "eve.json").rename(tmp_path / "old.json")
    d.rmdir()
    with pytest.raises(OSError):
        w.reopen()
    w.write({"still": True})
    w.close()
    assert "still" in (tmp_path / "old.json").read_text()


def test_inspection_pool_sheds_instead_of_blocking() -> None:
    pool = InspectionPool(lambda obj: [], processes=1, maxsize=2)
    assert pool.offer("a") and pool.offer("b")
    assert pool.offer("c") is False  # full: the caller counts it and writes a record


def test_pool_process_reports_its_counters() -> None:
    """A pool process sends its counters (inspector errors) like a capture worker does."""
    from multiprocessing import Pipe

    from appliance.supervisor import _Outbox

    r, w = Pipe(duplex=False)
    out = _Outbox(w, "p0", 16)
    pool = InspectionPool(lambda obj: [{"event_type": "fileinfo", "n": obj}], processes=1, maxsize=4)
    pool.drain_s = 0.5
    assert pool.offer(1)
    polls: list[int] = []

    def stop() -> bool:
        polls.append(1)
        return len(polls) > 3

    pool.serve(out, stop, report=lambda: {"inspector_errors": 2}, report_s=0)
    out.close()
    msgs = []
    try:
        while r.poll(5):
            msgs.append(r.recv())
    except EOFError:
        pass
    assert ("stats", "p0", {"inspector_errors": 2}) in msgs
    assert any(m[0] == "eve" and '"n":1' in m[2][0] for m in msgs)
    assert 'tapsift_inspector_errors_total{worker="p0"} 2' in render({"workers": {"p0": {"inspector_errors": 2}}})


def test_not_inspected_record() -> None:
    from reassembly.objects import ObjectFactory

    f = ObjectFactory(keep_bytes=0, head_bytes=512)
    b = f.builder(limit=0)
    b.add(b"hello")
    obj = f.finish(b, source="http", direction=1, flow=None, ts_ns=0, kind="body")
    ev = not_inspected_event(obj, "queue_full")
    assert ev["anomaly"] == {"type": "inspection", "event": "not_inspected", "reason": "queue_full"}
    assert ev["tapsift"]["md5"] == obj.md5


def test_live_settings(tmp_path: Path) -> None:
    s = Settings()
    assert s.live.workers == 1 and s.live.backend == "afpacket" and s.live.metrics_listen.startswith("127.0.0.1")
    cfg = tmp_path / "s.yaml"
    cfg.write_text("live:\n  interfaces: [eth1, eth2]\n  workers: 2\n  bpf: not port 22\n")
    s = load_settings(cfg)
    assert s.live.interfaces == ["eth1", "eth2"] and s.live.workers == 2
    cfg.write_text("live:\n  wrokers: 2\n")
    with pytest.raises(SettingsError, match="wrokers"):
        load_settings(cfg)
    sample = Path(__file__).resolve().parents[2] / "systemd" / "sensor.yaml"
    assert load_settings(sample).live.workers == 2


def test_bpf_compiles_with_libpcap() -> None:
    prog = compile_bpf("tcp port 80")
    assert prog and all(len(i) == 4 for i in prog)
    assert prog[-1][0] == 6  # BPF_RET
    with pytest.raises(BpfError, match="bad BPF filter"):
        compile_bpf("tcp port banana")


def test_interface_check_on_loopback() -> None:
    rep = check_interface("lo")
    assert rep.mtu >= 1500
    assert check_interface("nonexistent0").warnings == ["nonexistent0: no such interface"]


def test_iface_prepare_dry_run_lists_the_steps() -> None:
    p = subprocess.run([TAPSIFT, "iface", "prepare", "lo", "--dry-run", "--mtu", "9000"], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "disable_ipv6=1" in p.stdout and "mtu 9000" in p.stdout and "arp off promisc on up" in p.stdout


def test_run_without_an_interface_is_a_usage_error(tmp_path: Path) -> None:
    p = subprocess.run([TAPSIFT, "run", "--eve", str(tmp_path / "e.json")], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "no capture interface" in p.stderr


def test_capabilities_are_readable() -> None:
    caps = capabilities()
    assert {"CapEff", "CapPrm", "CapBnd"} <= set(caps)
