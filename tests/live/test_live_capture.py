"""``tapsift run`` on a veth pair: same objects as ``tapsift read``, fanout, no transmit, drops.

Each test builds its own namespaces (tests/live/netns.py), replays a generated capture with
tcpreplay into the sender end and runs the sensor on the capture end. Needs root.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.live.harness import NO_BUDGETS, LiveSensor, object_hashes, read_capture, read_events, sensor_config
from tests.live.netns import VethPair

# one xdist worker runs all of them (scripts/test.sh uses --dist loadgroup): they replay traffic in
# real time and are sensitive to the CPU the other worker takes
pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.xdist_group("live")]


@pytest.mark.parametrize("workers", [1, 2])
def test_live_objects_equal_offline_read(pair: VethPair, workload: Path, tmp_path: Path, workers: int) -> None:
    ref = read_capture(workload, tmp_path / "read.json")
    sensor = LiveSensor(pair, tmp_path / "eve.json", "--workers", str(workers))
    try:
        sent = pair.replay(workload, "--mbps", "200")
        sensor.wait_packets(sent["packets"])
        events = sensor.stop()
    finally:
        sensor.kill()
    st = [e for e in events if e["event_type"] == "stats"][-1]["stats"]
    assert st["capture"]["kernel_drops"] == 0
    assert st["packets"] == sent["packets"]
    assert object_hashes(events) == object_hashes(ref)
    # the per-flow anomaly events agree too (a flow split between workers would show midstream/gap codes)
    flow_anoms = sorted((e["flow_id"], e["anomaly"]["event"]) for e in events
                        if e["event_type"] == "anomaly" and "flow_id" in e)
    ref_anoms = sorted((e["flow_id"], e["anomaly"]["event"]) for e in ref
                       if e["event_type"] == "anomaly" and "flow_id" in e)
    assert flow_anoms == ref_anoms
    assert st["gaps"] == [e for e in ref if e["event_type"] == "stats"][-1]["stats"]["tcp"]["gaps"]
    _assert_fast_path_carried_most(events)  # the rest (handshakes, loss, noise) went through Python
    if workers == 2:
        per = st["workers"]
        assert per["w0"]["packets"] > 0 and per["w1"]["packets"] > 0, per  # fanout spread the flows
        assert per["w0"]["flows"] + per["w1"]["flows"] == st["flows"]
    assert pair.rx_counter("tx_packets") == 0


def test_never_transmits_on_the_capture_interface(pair: VethPair, workload: Path, tmp_path: Path) -> None:
    """Nothing leaves the capture port: its tx counters and the peer's rx counters stay at 0."""
    tx0 = pair.rx_counter("tx_packets"), pair.rx_counter("tx_bytes")
    sensor = LiveSensor(pair, tmp_path / "eve.json", "--workers", "2")
    try:
        sent = pair.replay(workload, "--mbps", "300")
        sensor.wait_packets(sent["packets"])
        sensor.signal(signal.SIGHUP)
        time.sleep(0.5)
        sensor.stop()
    finally:
        sensor.kill()
    assert (pair.rx_counter("tx_packets"), pair.rx_counter("tx_bytes")) == tx0 == (0, 0)
    peer_rx = subprocess.run(pair.exec_tx("cat", f"/sys/class/net/{pair.tx_if}/statistics/rx_packets"),
                             capture_output=True, text=True, check=True).stdout
    assert int(peer_rx) == 0


def test_kernel_drops_are_counted_when_starved(pair: VethPair, workload: Path, tmp_path: Path) -> None:
    """A stopped worker with a 1 MiB ring: the kernel drops, and the stats say so."""
    cfg = tmp_path / "s.yaml"
    cfg.write_text("live:\n  ring_mb: 1\n  block_kb: 64\n")
    sensor = LiveSensor(pair, tmp_path / "eve.json", "--config", str(cfg))
    try:
        pid = sensor.worker_pids()["w0"]
        os.kill(pid, signal.SIGSTOP)
        try:
            sent = pair.replay(workload, "--mbps", "500")
        finally:
            os.kill(pid, signal.SIGCONT)
        st = sensor.wait_packets(sent["packets"])
        events = sensor.stop()
    finally:
        sensor.kill()
    final = [e for e in events if e["event_type"] == "stats"][-1]["stats"]
    for s in (st, final):
        assert s["capture"]["kernel_drops"] > 0
        assert s["interfaces"][pair.rx_if]["workers"]["w0"]["kernel_drops"] > 0
    assert final["capture"]["kernel_packets"] == sent["packets"]
    assert final["packets"] + final["capture"]["kernel_drops"] == sent["packets"]


def test_crashed_worker_is_restarted(pair: VethPair, workload: Path, tmp_path: Path) -> None:
    ref = read_capture(workload, tmp_path / "read.json")
    sensor = LiveSensor(pair, tmp_path / "eve.json", "--workers", "2")
    try:
        old = sensor.worker_pids()
        os.kill(old["w1"], signal.SIGKILL)
        st = sensor.wait_for(lambda s: s["workers"]["w1"]["restarts"] == 1 and s["workers"]["w1"]["alive"]
                             and s["workers"]["w1"]["pid"] != old["w1"], what="the restart")
        assert st["worker_restarts"] == 1
        sent = pair.replay(workload, "--mbps", "200")
        sensor.wait_packets(sent["packets"])
        events = sensor.stop()
    finally:
        sensor.kill()
    restarts = [e for e in events if e["event_type"] == "anomaly" and e["anomaly"]["event"] == "worker_restart"]
    assert len(restarts) == 1 and restarts[0]["anomaly"]["worker"] == "w1"
    assert "died (signal 9)" in sensor.stderr
    assert object_hashes(events) == object_hashes(ref)  # the new worker took over the same fanout slot


def test_privileges_dropped_and_sighup_reopens_eve(pair: VethPair, workload: Path, tmp_path: Path) -> None:
    # the unprivileged sensor must reach the directory to reopen its file (tmp_path is 0700)
    logdir = Path(tempfile.mkdtemp(prefix="tapsift-live-", dir="/tmp"))
    os.chmod(logdir, 0o777)
    try:
        _privileges_and_reopen(pair, workload, logdir)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


def _privileges_and_reopen(pair: VethPair, workload: Path, logdir: Path) -> None:
    eve = logdir / "eve.json"
    sensor = LiveSensor(pair, eve, "--user", "nobody")
    try:
        pids = sensor.worker_pids()
        for pid in (sensor.proc.pid, *pids.values()):
            status = Path(f"/proc/{pid}/status").read_text()
            fields = dict(line.split(":", 1) for line in status.splitlines())
            assert fields["Uid"].split()[:2] == ["65534", "65534"], fields["Uid"]
            assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0
            assert fields["NoNewPrivs"].strip() == "1"
        os.rename(eve, logdir / "eve.json.1")  # logrotate's "create" mode
        sensor.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not eve.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        sent = pair.replay(workload, "--mbps", "300")
        sensor.wait_packets(sent["packets"])
        events = sensor.stop()
    finally:
        sensor.kill()
    assert eve.exists()
    assert any(e["event_type"] == "fileinfo" for e in events)
    final = [e for e in events if e["event_type"] == "stats"][-1]["stats"]
    assert final["reloads"] == 1
    assert read_events(logdir / "eve.json.1")  # the rotated file kept the events before the reopen


def test_vlan_tags_and_tunnels_survive_the_kernel(live_ok: None, golden: Path, tmp_path: Path) -> None:
    """The kernel moves 802.1Q tags to metadata; the ring reader puts them back (as libpcap does).

    Tunnelled and QinQ frames are longer than 1518 bytes: the capture port needs a larger MTU
    (veth drops them otherwise, as many NICs do; `tapsift iface check` warns about it).
    """
    names = ["vlan_get", "qinq_get", "erspan2_get", "vxlan_get", "ipv6_get", "plain_get"]
    with VethPair(mtu=9000) as pair:
        _replay_cases(pair, names, golden, tmp_path)


def _replay_cases(pair: VethPair, names: list[str], golden: Path, tmp_path: Path) -> None:
    sensor = LiveSensor(pair, tmp_path / "eve.json")
    total = 0
    refs = []
    try:
        for name in names:
            sent = pair.replay(golden / f"{name}.pcap", "--pps", "2000")
            total += sent["packets"]
            refs += read_capture(golden / f"{name}.pcap", tmp_path / f"{name}.json")
        sensor.wait_packets(total)
        events = sensor.stop()
    finally:
        sensor.kill()
    assert object_hashes(events) == object_hashes(refs)
    vlans = sorted(e.get("vlan", [0])[0] for e in events if e["event_type"] == "fileinfo")
    ref_vlans = sorted(e.get("vlan", [0])[0] for e in refs if e["event_type"] == "fileinfo")
    assert vlans == ref_vlans and any(vlans)
    st = [e for e in events if e["event_type"] == "stats"][-1]["stats"]
    assert st["workers"]["w0"]["vlan_restored"] > 0


def test_gro_merged_frames_are_handled(pair: VethPair, workload: Path, tmp_path: Path) -> None:
    """With GRO on the capture port the kernel hands over merged super-frames; same objects."""
    p = subprocess.run(pair.exec_rx("ethtool", "-K", pair.rx_if, "gro", "on"), capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot turn GRO on for veth here: {p.stderr.strip()}")
    ref = read_capture(workload, tmp_path / "read.json")
    sensor = LiveSensor(pair, tmp_path / "eve.json")
    try:
        sent = pair.replay(workload, "--topspeed")
        time.sleep(1.0)  # GRO may merge, so the kernel's own count is what the workers must reach
        st = sensor.wait_for(lambda s: s["packets"] > 0 and s["packets"] + s["capture"]["kernel_drops"]
                             >= s["capture"]["kernel_packets"], what="the workers to catch up")
        events = sensor.stop()
    finally:
        sensor.kill()
    assert "receive offloads gro" in sensor.stderr  # the start-up check warned
    assert st["capture"]["kernel_drops"] == 0
    assert st["packets"] <= sent["packets"]  # fewer, larger frames where GRO merged segments
    assert st["workers"]["w0"]["truncated_frames"] == 0  # merged frames fit the ring blocks whole
    assert object_hashes(events) == object_hashes(ref)


def test_bpf_filter_is_applied_in_the_kernel(pair: VethPair, workload: Path, tmp_path: Path) -> None:
    sensor = LiveSensor(pair, tmp_path / "eve.json", "--bpf", "udp")
    try:
        sent = pair.replay(workload, "--mbps", "300")
        time.sleep(1.0)
        events = sensor.stop()
    finally:
        sensor.kill()
    final = [e for e in events if e["event_type"] == "stats"][-1]["stats"]
    assert 0 < final["capture"]["kernel_packets"] < sent["packets"] / 10
    assert not [e for e in events if e["event_type"] == "fileinfo"]


def test_bad_bpf_filter_is_a_one_line_error(pair: VethPair, tmp_path: Path) -> None:
    from tests.live.harness import TAPSIFT

    p = subprocess.run(pair.exec_rx(TAPSIFT, "run", "-i", pair.rx_if, "--bpf", "tcp port banana",
                                    "--eve", str(tmp_path / "e.json")), capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and "bad BPF filter" in p.stderr


def test_two_interfaces_split_tap(live_ok: None, workload: Path, tmp_path: Path) -> None:
    """A split optical tap: each direction on its own port; with 2 workers flows stay whole."""
    ref = read_capture(workload, tmp_path / "read.json")
    cache = tmp_path / "dir.cache"
    subprocess.run(["tcpprep", "--auto=client", f"--pcap={workload}", f"--cachefile={cache}"], check=True,
                   capture_output=True, timeout=60)
    with VethPair() as a:
        # a second veth between the same namespaces carries the other direction
        subprocess.run(["ip", "link", "add", "vtx1", "netns", a.tx_ns, "type", "veth", "peer", "name", "vrx1",
                        "netns", a.rx_ns], check=True)
        subprocess.run(["ip", "netns", "exec", a.rx_ns, "ip", "link", "set", "vrx1", "arp", "off", "up"], check=True)
        subprocess.run(["ip", "-n", a.tx_ns, "link", "set", "vtx1", "up"], check=True)
        sensor = LiveSensor(a, tmp_path / "eve.json", "--workers", "2", interfaces=[a.rx_if, "vrx1"])
        try:
            p = subprocess.run(a.exec_tx("tcpreplay", "-c", str(cache), "-i", a.tx_if, "-I", "vtx1", "--mbps", "100",
                                         str(workload)), capture_output=True, text=True, check=True, timeout=60)
            n = int(next(ln.split()[1] for ln in p.stdout.splitlines() if ln.strip().startswith("Actual:")))
            st = sensor.wait_packets(n)
            events = sensor.stop()
        finally:
            sensor.kill()
    assert set(st["interfaces"]) == {a.rx_if, "vrx1"}
    assert all(i["kernel_packets"] > 0 for i in st["interfaces"].values())
    assert object_hashes(events) == object_hashes(ref)
    _assert_fast_path_carried_most(events)  # the merged frames go through FastPath.take_frames


@pytest.mark.skipif(not __import__("importlib").util.find_spec("pcapy"), reason="pcapy-ng is not installed")
def test_pcap_backend_objects_equal_offline_read(pair: VethPair, workload: Path, tmp_path: Path) -> None:
    ref = read_capture(workload, tmp_path / "read.json")
    sensor = LiveSensor(pair, tmp_path / "eve.json", "--backend", "pcap", "--workers", "2")
    try:
        sent = pair.replay(workload, "--mbps", "200")
        sensor.wait_packets(sent["packets"])
        events = sensor.stop()
    finally:
        sensor.kill()
    assert object_hashes(events) == object_hashes(ref)
    _assert_fast_path_carried_most(events)  # libpcap's batches go through FastPath.take_frames


def _assert_fast_path_carried_most(events: list[dict]) -> None:
    st = [e for e in events if e["event_type"] == "stats"][-1]["stats"]
    fast = sum(w.get("fast_path_packets", 0) for w in st["workers"].values())
    assert fast > 0.5 * st["packets"], st["workers"]


def test_live_alerts_equal_offline_read_and_reach_the_store(pair: VethPair, tmp_path: Path) -> None:
    """The demo's planted violations, replayed on the wire, raise the same alerts as
    ``tapsift read --policy`` — from two workers, with distinct ids, in the alert store."""
    import sys

    from appliance.store import AlertStore

    root = Path(__file__).resolve().parents[2]
    pcap = tmp_path / "demo.pcap"
    subprocess.run([sys.executable, str(root / "scripts" / "make_demo.py"), str(pcap)], check=True,
                   capture_output=True, timeout=120)
    policy = str(root / "policies" / "sample.yaml")
    ref = tmp_path / "read.json"
    subprocess.run([str(Path(sys.executable).with_name("tapsift")), "read", str(pcap), "--policy", policy,
                    "--eve", str(ref), "-q"], check=True, timeout=300)
    want = sorted((e["alert"]["signature"], e["http"]["url"]) for e in read_events(ref)
                  if e["event_type"] == "alert")
    assert len(want) >= 5
    store = tmp_path / "alerts.db"
    cfg = sensor_config(tmp_path / "sensor.yaml", **NO_BUDGETS)
    sensor = LiveSensor(pair, tmp_path / "eve.json", "--workers", "2", "--policy", policy, "--store", str(store),
                        "--pid-file", str(tmp_path / "sensor.pid"), "--stats-file", str(tmp_path / "stats.json"),
                        "--config", str(cfg))
    try:
        sent = pair.replay(pcap, "--mbps", "50")
        sensor.wait_packets(sent["packets"])
        sensor.wait_inspected()  # the default pool (inspect_workers: auto) has done every object
        # what the console reads: the pid to signal and the counters for its dashboard
        assert int((tmp_path / "sensor.pid").read_text()) == sensor.proc.pid
        console_stats = json.loads((tmp_path / "stats.json").read_text())
        assert console_stats["packets"] > 0 and console_stats["drops"] == 0 and "queue_depths" in console_stats
        events = sensor.stop()
    finally:
        sensor.kill()
    alerts = [e for e in events if e["event_type"] == "alert"]
    assert sorted((e["alert"]["signature"], e["http"]["url"]) for e in alerts) == want
    ids = [e["tapsift"]["alert_id"] for e in alerts]
    assert len(set(ids)) == len(ids)
    db = AlertStore.reader(store)
    try:
        stored = {r["id"] for r in db.query({}, limit=100)}
    finally:
        db.close()
    assert stored == set(ids), sensor.stderr[-3000:]


def test_live_alerts_through_the_inspection_pool(pair: VethPair, tmp_path: Path) -> None:
    """With --inspect-workers the capture worker only extracts objects and hands them to the
    inspection pool (shedding when it falls behind); the alerts are the same as tapsift read's."""
    import sys

    root = Path(__file__).resolve().parents[2]
    pcap = tmp_path / "demo.pcap"
    subprocess.run([sys.executable, str(root / "scripts" / "make_demo.py"), str(pcap)], check=True,
                   capture_output=True, timeout=120)
    policy = str(root / "policies" / "sample.yaml")
    ref = tmp_path / "read.json"
    subprocess.run([str(Path(sys.executable).with_name("tapsift")), "read", str(pcap), "--policy", policy,
                    "--eve", str(ref), "-q"], check=True, timeout=300)
    want = sorted((e["alert"]["signature"], e["http"]["url"]) for e in read_events(ref) if e["event_type"] == "alert")
    cfg = sensor_config(tmp_path / "sensor.yaml", **NO_BUDGETS)
    sensor = LiveSensor(pair, tmp_path / "eve.json", "--workers", "2", "--inspect-workers", "1", "--policy", policy,
                        "--config", str(cfg))
    try:
        sent = pair.replay(pcap, "--mbps", "20")
        sensor.wait_packets(sent["packets"])
        sensor.wait_inspected()  # the pool works through its queue (OCR models load first)
        events = sensor.stop()
    finally:
        sensor.kill()
    st = [e for e in events if e["event_type"] == "stats"][-1]["stats"]
    assert st["not_inspected"] == 0, st
    alerts = [e for e in events if e["event_type"] == "alert"]
    assert sorted((e["alert"]["signature"], e["http"]["url"]) for e in alerts) == want, sensor.stderr[-3000:]
    assert len({e["tapsift"]["alert_id"] for e in alerts}) == len(alerts)
    ids = [e["tapsift"]["content_id"] for e in events if e["event_type"] == "fileinfo"]
    assert len(set(ids)) == len(ids)  # content ids stay unique across the two capture workers


def test_cheap_inspection_in_the_worker_expensive_in_the_pool(pair: VethPair, tmp_path: Path) -> None:
    """With ``live.worker_inspect_bytes``, plain-text objects under keyword-only rules are
    inspected by the capture worker itself; HTML (extraction) goes to the pool's cheap lane.
    Both alert, with distinct alert ids."""
    import sys

    from tools import synth as S

    root = Path(__file__).resolve().parents[2]
    policy = tmp_path / "keywords.yaml"
    policy.write_text((root / "tests" / "appliance" / "test_inspection.py").read_text(encoding="utf-8")
                      .split('KEYWORD_ONLY = """', 1)[1].split('"""', 1)[0] + "suppression:\n  window_s: 0\n",
                      encoding="utf-8")
    t = S.Trace(seed=21)
    for i in range(4):
        s = t.session((f"10.60.0.{i + 2}", 45000 + i), (f"192.0.2.{60 + i}", 80), at=i * 0.05)
        s.http(S.http_request("POST", f"/api/note{i}", "notes.example", content_type="application/json",
                              body=b'{"text": "Project Nightjar draft %d"}' % i),
               S.http_response(200, b'{"ok": true}', content_type="application/json"))
        s.close()
        s = t.session((f"10.60.1.{i + 2}", 46000 + i), (f"192.0.2.{70 + i}", 80), at=0.02 + i * 0.05)
        s.http(S.http_request("GET", f"/page{i}.html", "notes.example"),
               S.http_response(200, b"<html><body><h1>Project Nightjar</h1><p>page %d</p></body></html>" % i))
        s.close()
    pcap = tmp_path / "kw.pcap"
    t.write(pcap)
    ref = tmp_path / "read.json"
    subprocess.run([str(Path(sys.executable).with_name("tapsift")), "read", str(pcap), "--policy", str(policy),
                    "--eve", str(ref), "-q"], check=True, timeout=300)
    want = sorted(e["http"]["url"] for e in read_events(ref) if e["event_type"] == "alert")
    assert len(want) == 8
    cfg = sensor_config(tmp_path / "inline.yaml", worker_inspect_bytes=1048576, **NO_BUDGETS)
    sensor = LiveSensor(pair, tmp_path / "eve.json", "--workers", "2", "--inspect-workers", "1",
                        "--policy", str(policy), "--config", str(cfg))
    try:
        sent = pair.replay(pcap, "--mbps", "20")
        sensor.wait_packets(sent["packets"])
        sensor.wait_inspected()
        events = sensor.stop()
    finally:
        sensor.kill()
    st = [e for e in events if e["event_type"] == "stats"][-1]["stats"]
    alerts = [e for e in events if e["event_type"] == "alert"]
    assert sorted(e["http"]["url"] for e in alerts) == want, sensor.stderr[-3000:]
    assert len({e["tapsift"]["alert_id"] for e in alerts}) == len(alerts)
    assert st["inspected_in_worker"] >= 8, st  # the 4 JSON uploads and their 4 JSON replies
    assert st["inspection"]["classes"]["cheap"]["inspected"] >= 4  # the pages, in the cheap lane
    assert st["not_inspected"] == 0
