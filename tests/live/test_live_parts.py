"""The parts of live capture that need no namespace: metrics, EVE rotation, shedding, BPF, checks."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from appliance.eve import EveWriter, not_inspected_event
from appliance.metrics import MetricsServer, parse_listen, render
from appliance.settings import Settings, SettingsError, load_settings
from appliance.supervisor import capabilities
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
    "queues": {"inspect_cheap": 5},
    "eve_events": 9,
    "reloads": 1,
    "inspection": {"classes": {"cheap": {"queued": 5, "queued_bytes": 900, "oldest_age_s": 1.5, "offered": 40,
                                         "inspected": 30, "shed": {}},
                               "expensive": {"queued": 2, "queued_bytes": 10, "oldest_age_s": 70.0, "offered": 9,
                                             "inspected": 3, "shed": {"too_old": 4}}},
                   "in_hand": 1, "cache": {"hits": 7, "lookups": 33, "hit_rate": 0.2121}},
}


def test_metrics_text_format() -> None:
    text = render(SNAP)
    assert 'tapsift_kernel_drops_total{iface="eth1",worker="w0"} 3' in text
    assert 'tapsift_packets_total{worker="w1"} 4' in text
    assert 'tapsift_worker_restarts_total{worker="w0"} 2' in text
    assert 'tapsift_worker_up{worker="w1"} 0' in text
    assert 'tapsift_queue_depth{queue="inspect_cheap"} 5' in text
    assert 'tapsift_inspection_queued{class="cheap"} 5' in text
    assert 'tapsift_inspection_oldest_age_seconds{class="expensive"} 70.0' in text
    assert 'tapsift_inspected_total{class="cheap"} 30' in text
    assert 'tapsift_inspection_shed_total{class="expensive",reason="too_old"} 4' in text
    assert "tapsift_inspection_in_hand 1" in text
    assert "tapsift_result_cache_hits_total 7" in text and "tapsift_result_cache_lookups_total 33" in text
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


def test_pool_process_inspects_and_reports(tmp_path: Path) -> None:
    """One pool process's loop (`serve`) over a real queue: the job is inspected, its alert
    carries the class and the wait, the counters (`lane_counters`) report it, and the loop
    ends after stop() once the queue is empty."""
    import hashlib

    from appliance.inspectpool import InspectionPool
    from appliance.model import ContentObject, Direction, FlowRef
    from appliance.scheduler import Lane, Outputs, Scheduler, serve

    policy = tmp_path / "p.yaml"
    policy.write_text((Path(__file__).resolve().parents[2] / "tests" / "appliance" / "test_inspection.py")
                      .read_text(encoding="utf-8").split('KEYWORD_ONLY = """', 1)[1].split('"""', 1)[0])
    s = Settings()
    s.inspection.policy = str(policy)
    s.output.state_dir = str(tmp_path / "state")
    s.live.job_dir = str(tmp_path / "jobs")
    pool = InspectionPool.from_settings(s, capture_workers=1, cpus=2)
    assert pool is not None and [lane.name for lane in pool.lanes] == ["cheap", "expensive"]
    pool.open()
    data = b"<html><body>Project Nightjar</body></html>"
    flow = FlowRef("C1", 1, "10.0.0.2", 40000, "192.0.2.9", 80, "TCP", 0, "")
    obj = ContentObject("F1", "http", Direction.TO_CLIENT, flow, 1, len(data), hashlib.md5(data).hexdigest(),
                        hashlib.sha256(data).hexdigest(), declared_mime="text/html", data=data, url="/a.html")
    offer = pool.offer(0, "w0")
    assert offer(obj, "cheap") is None and pool.stats()["cheap"]["queued"] == 1
    pool.queue.bind(2, "p0")
    sched = Scheduler(pool.queue, Lane.make("cheap"), pool.budgets)
    events: list[dict] = []
    alerts: list[dict] = []
    stage = pool._make_stage(0)
    serve(pool.queue, sched, lambda: stage, Outputs(events.append, lambda rec, ts: alerts.append(rec)),
          stop=lambda: True, idle_s=0, poll_s=0)
    assert [a["tapsift"]["inspection"]["class"] for a in alerts] == ["cheap"]
    counters = pool.lane_counters(sched, stage)
    assert counters["alerts"] == 1 and counters["sched"]["inspected.cheap"] == 1 and counters["not_inspected"] == 0
    assert pool.stats()["cheap"]["queued"] == 0
    pool.shutdown()
    assert not (tmp_path / "state" / "jobs.spool").exists()  # nothing left to spool


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
