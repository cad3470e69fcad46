"""Live inspection through the job queue: cheap work in its own lane, and nothing lost when the
pool is killed or the sensor stops with a full queue (the spool is inspected at the next start).

The queue is filled deterministically: the pool processes are stopped (SIGSTOP) while the
traffic is replayed, so every object waits in the queue when the test acts."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.live.harness import LiveSensor, read_events
from tests.live.netns import VethPair
from tools import synth as S

ROOT = Path(__file__).resolve().parents[2]
N = 24


def _policy(tmp_path: Path) -> Path:
    text = (ROOT / "tests" / "appliance" / "test_inspection.py").read_text(encoding="utf-8")
    policy = tmp_path / "keywords.yaml"
    policy.write_text(text.split('KEYWORD_ONLY = """', 1)[1].split('"""', 1)[0] + "suppression:\n  window_s: 0\n",
                      encoding="utf-8")
    return policy


def _config(tmp_path: Path, backoff: float) -> Path:
    cfg = tmp_path / "sensor.yaml"
    cfg.write_text(f"live:\n  restart_backoff_s: {backoff}\n  shutdown_timeout_s: 8\n", encoding="utf-8")
    return cfg


def _capture(tmp_path: Path) -> Path:
    """N pages and N JSON uploads, each with the project name (each one alerts)."""
    t = S.Trace(seed=31)
    for i in range(N):
        s = t.session((f"10.61.0.{i + 2}", 45000 + i), (f"192.0.2.{60 + i}", 80), at=i * 0.02)
        s.http(S.http_request("GET", f"/page{i}.html", "news.example"),
               S.http_response(200, b"<html><body><h1>Project Nightjar</h1><p>issue %d</p></body></html>" % i))
        s.http(S.http_request("POST", f"/api/note{i}", "notes.example", content_type="application/json",
                              body=b'{"text": "Project Nightjar draft %d"}' % i),
               S.http_response(200, b'{"ok": true}', content_type="application/json"))
        s.close()
    pcap = tmp_path / "pages.pcap"
    t.write(pcap)
    return pcap


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, killed and not yet reaped, does not)."""
    try:
        return "(zombie)" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _alerted(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(e["http"]["url"] for e in events if e["event_type"] == "alert")


def _fill_queue(sensor: LiveSensor, pair: VethPair, pcap: Path) -> dict[str, int]:
    """Stop the pool, replay, wait until every object is queued; returns the pool's pids."""
    pids = sensor.worker_pids()
    pool = {n: p for n, p in pids.items() if n.startswith("p")}
    for pid in pool.values():
        subprocess.run(["kill", "-STOP", str(pid)], check=True)
    sent = pair.replay(pcap, "--mbps", "20")
    sensor.wait_packets(sent["packets"])
    sensor.wait_for(lambda st: st["inspection"]["classes"]["cheap"]["queued"] >= 2 * N, what="a full cheap queue")
    return pool


def test_cheap_work_in_its_own_lane(pair: VethPair, tmp_path: Path) -> None:
    """Pages and JSON bodies are cheap work: all inspected by the lanes, none by the expensive
    path, with their class in the stats and in each alert."""
    sensor = LiveSensor(pair, tmp_path / "eve.json", "--workers", "2", "--inspect-workers", "1",
                        "--policy", str(_policy(tmp_path)))
    try:
        sent = pair.replay(_capture(tmp_path), "--mbps", "20")
        sensor.wait_packets(sent["packets"])
        sensor.wait_for(lambda st: st["alerts"] >= 2 * N, timeout=120, what="every alert")
        events = sensor.stop()
    finally:
        sensor.kill()
    assert sensor.proc.returncode == 0, sensor.stderr[-3000:]
    assert set(_alerted(events).values()) == {1} and len(_alerted(events)) == 2 * N
    st = [e for e in events if e["event_type"] == "stats"][-1]["stats"]
    cls = st["inspection"]["classes"]
    assert cls["cheap"]["offered"] >= 3 * N and cls["cheap"]["inspected"] == cls["cheap"]["offered"]
    assert cls["expensive"]["offered"] == 0 and st["not_inspected"] == 0
    assert {e["tapsift"]["inspection"]["class"] for e in events if e["event_type"] == "alert"} == {"cheap"}


def test_kill_9_of_the_pool_with_a_full_queue_loses_nothing(pair: VethPair, tmp_path: Path) -> None:
    """The pool dies (kill -9) while every object waits for it: the supervisor restarts it and
    the new processes inspect the whole queue; then SIGTERM stops the sensor cleanly (exit 0)."""
    sensor = LiveSensor(pair, tmp_path / "eve.json", "--workers", "1", "--inspect-workers", "1",
                        "--policy", str(_policy(tmp_path)), "--config", str(_config(tmp_path, 0.2)))
    try:
        pool = _fill_queue(sensor, pair, _capture(tmp_path))
        for pid in pool.values():
            subprocess.run(["kill", "-KILL", str(pid)], check=True)
        sensor.wait_for(lambda st: st["alerts"] >= 2 * N, timeout=120, what="every alert after the restart")
        events = sensor.stop()
    finally:
        sensor.kill()
    assert sensor.proc.returncode == 0, sensor.stderr[-3000:]
    alerted = _alerted(events)
    assert len(alerted) == 2 * N and set(alerted.values()) == {1}
    st = [e for e in events if e["event_type"] == "stats"][-1]["stats"]
    assert st["worker_restarts"] >= 2 and st["not_inspected"] == 0


def test_sigterm_with_a_full_queue_spools_and_the_next_start_inspects_it(pair: VethPair, tmp_path: Path) -> None:
    """SIGTERM while the pool cannot work (killed, not restarted): the sensor exits 0 with
    every queued object in the on-disk spool; the next start inspects them first. Across the
    two runs every object alerted once, or has a not_inspected record; none vanished."""
    policy, cfg = str(_policy(tmp_path)), str(_config(tmp_path, 60))
    eve1, eve2 = tmp_path / "run1" / "eve.json", tmp_path / "run2" / "eve.json"
    eve1.parent.mkdir()
    eve2.parent.mkdir()
    sensor = LiveSensor(pair, eve1, "--workers", "1", "--inspect-workers", "1", "--policy", policy,
                        "--config", cfg, "--state-dir", str(tmp_path / "state"))
    try:
        pool = _fill_queue(sensor, pair, _capture(tmp_path))
        for pid in pool.values():
            subprocess.run(["kill", "-KILL", str(pid)], check=True)
        time.sleep(0.5)
        sensor.signal(signal.SIGTERM)
        first = sensor.stop()
    finally:
        sensor.kill()
    assert sensor.proc.returncode == 0, sensor.stderr[-3000:]
    assert "spooled" in sensor.stderr and (tmp_path / "state" / "jobs.spool").exists()
    assert not _alerted(first)
    # the next start, on the same state directory, without traffic
    sensor = LiveSensor(pair, eve2, "--workers", "1", "--inspect-workers", "1", "--policy", policy,
                        "--config", cfg, "--state-dir", str(tmp_path / "state"))
    try:
        sensor.wait_for(lambda st: st["alerts"] >= 2 * N, timeout=120, what="the spooled objects' alerts")
        second = sensor.stop()
    finally:
        sensor.kill()
    assert sensor.proc.returncode == 0, sensor.stderr[-3000:]
    alerted = _alerted(first) + _alerted(second)
    recorded = [e for e in first + second if e.get("anomaly", {}).get("event") == "not_inspected"]
    assert len(alerted) == 2 * N and set(alerted.values()) == {1} and not recorded
    assert not (tmp_path / "state" / "jobs.spool").exists()
    # the spooled alerts waited: restored jobs are never shed as too old
    assert all(e["tapsift"]["inspection"]["waited_ms"] > 0 for e in second if e["event_type"] == "alert")


def test_kill_9_of_the_whole_sensor_with_a_full_queue_then_the_next_start_inspects_it(
        pair: VethPair, tmp_path: Path) -> None:
    """kill -9 of the supervisor and every child while every object waits in the queue (the
    power-cut case: nothing can be spooled). The queue was written before each put returned, so
    the next start on the same state directory finds every job and inspects it: each object
    alerts exactly once across the two runs, none is recorded as lost, none vanished."""
    policy, cfg = str(_policy(tmp_path)), str(_config(tmp_path, 60))
    state = str(tmp_path / "state")
    eve1, eve2 = tmp_path / "run1" / "eve.json", tmp_path / "run2" / "eve.json"
    eve1.parent.mkdir()
    eve2.parent.mkdir()
    sensor = LiveSensor(pair, eve1, "--workers", "1", "--inspect-workers", "1", "--policy", policy,
                        "--config", cfg, "--state-dir", state)
    try:
        _fill_queue(sensor, pair, _capture(tmp_path))
        pids = [sensor.proc.pid, *sensor.worker_pids().values()]
        for pid in pids:
            subprocess.run(["kill", "-KILL", str(pid)], check=True)
        sensor.proc.wait(timeout=60)
        for pid in pids[1:]:  # the children are gone too: the job directory's lock is free
            while _alive(pid):
                time.sleep(0.05)
    finally:
        sensor.kill()
    first = read_events(eve1)
    assert not _alerted(first)
    sensor = LiveSensor(pair, eve2, "--workers", "1", "--inspect-workers", "1", "--policy", policy,
                        "--config", cfg, "--state-dir", state)
    try:
        sensor.wait_inspected()
        second = sensor.stop()
    finally:
        sensor.kill()
    assert sensor.proc.returncode == 0, sensor.stderr[-3000:]
    alerted = _alerted(second)
    recorded = [e for e in first + second if e.get("anomaly", {}).get("event") == "not_inspected"]
    assert len(alerted) == 2 * N and set(alerted.values()) == {1} and not recorded, sensor.stderr[-3000:]
