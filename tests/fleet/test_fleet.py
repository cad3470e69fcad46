"""The fleet end to end with the real programs: two sensors (``tapsift read`` on generated captures)
offer their expensive objects as jobs, two ``tapsift inspect-worker`` processes inspect them, one
``tapsift ingest`` writes everything into PostgreSQL, one console reads it."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

from fastapi.testclient import TestClient

from appliance.store import AlertStore
from tests.fleet.conftest import (
    TAPSIFT,
    alert_count,
    fleet_settings,
    spawn_tapsift,
    stop,
    wait_for,
    write_settings,
)


def test_two_sensors_and_two_workers_feed_one_console(pg_dsn: str, redis_url: str, tmp_path: Path,
                                                       policy_file: Path,
                                                       captures: dict[str, tuple[Path, int]]) -> None:
    expected = {name: n for name, (_, n) in captures.items()}
    before = alert_count(pg_dsn)
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = []
    try:
        ing = fleet_settings(tmp_path / "ingest", redis_url, consumer="central")
        procs.append(spawn_tapsift("ingest", "--config", str(write_settings(tmp_path / "ingest.yaml", ing)),
                                   "--store", pg_dsn, "--log-interval", "5", log=logs / "ingest.log"))
        for w in ("w1", "w2"):
            ws = fleet_settings(tmp_path / w, redis_url, policy=policy_file, remote=True, follow_policy=False)
            procs.append(spawn_tapsift("inspect-worker", "--config", str(write_settings(tmp_path / f"{w}.yaml", ws)),
                                       "--name", w, log=logs / f"{w}.log"))
        sensors = []
        for name, (pcap, _) in captures.items():
            ss = fleet_settings(tmp_path / name, redis_url, policy=policy_file, name=name, remote=True)
            cfg = write_settings(tmp_path / f"{name}.yaml", ss)
            sensors.append(subprocess.Popen([TAPSIFT, "read", str(pcap), "--config", str(cfg), "--eve",
                                             str(tmp_path / f"{name}.json"), "-q"], stderr=subprocess.PIPE, text=True))
        for p in sensors:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
        total = sum(expected.values())
        wait_for(lambda: alert_count(pg_dsn) - before >= total, 300, "the workers' alerts in the store")

        def registry() -> dict[str, dict]:
            with AlertStore.reader(pg_dsn) as s:
                return {r["name"]: r for r in s.sensors.list()}

        wait_for(lambda: {"edge-a", "edge-b", "w1", "w2"} <= set(registry()), 120, "every heartbeat")
    finally:
        for p in procs:
            stop(p)
    log = {f.name: f.read_text() for f in logs.iterdir()}
    assert all(p.returncode == 0 for p in procs), log
    assert alert_count(pg_dsn) - before == sum(expected.values())  # none lost, none doubled
    with AlertStore.reader(pg_dsn) as s:
        rows = s.db.rows("SELECT id, sensor, json FROM alerts")
        reg = {r["name"]: r for r in s.sensors.list()}
    assert Counter(r["sensor"] for r in rows) == expected
    by = Counter(json.loads(r["json"])["tapsift"]["inspected_by"] for r in rows)
    assert set(by) <= {"w1", "w2"} and sum(by.values()) == len(rows)
    roles = {n: r["software"].split()[-1] for n, r in reg.items()}
    assert roles["edge-a"] == roles["edge-b"] == "sensor" and roles["w1"] == roles["w2"] == "inspect-worker"
    assert any(r == "ingester" for r in roles.values())
    assert reg["edge-a"]["counters"]["jobs.offered"] == expected["edge-a"]
    assert reg["w1"]["counters"].get("done", 0) + reg["w2"]["counters"].get("done", 0) == len(rows)

    # the console: the sensors page and each sensor's hits
    from tests.webui.conftest import add_users, login
    from webui import create_app
    from webui.app import close_app

    app = create_app(alert_db=pg_dsn, argon2_time_cost=1, argon2_memory_kib=256, argon2_parallelism=1)
    try:
        add_users(app)
        with TestClient(app) as client:
            login(client, "viewer")
            page = client.get("/sensors")
            assert page.status_code == 200
            for name in ("edge-a", "edge-b", "w1", "w2"):
                assert f'href="/sensors/{name}"' in page.text
            one = client.get("/sensors/edge-b")
            assert one.status_code == 200 and f"Hits <span class=\"muted\">{expected['edge-b']}</span>" in one.text
            assert "plan-8-" in one.text and "plan-7-" not in one.text  # edge-b's uploads only
            api = client.get("/api/v1/sensors").json()
            assert {s["name"]: s["state"] for s in api["sensors"]}["edge-a"] in ("up", "late")
            assert client.get("/sensors/nobody").status_code == 404
    finally:
        close_app(app)
