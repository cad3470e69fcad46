"""Policy edited centrally: saved in the store, relayed to the bus by the ingester, applied by the sensors."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from appliance.bus.redis import RedisBus
from appliance.fleet.policy import PolicyFollower, PolicyRelay, policy_version
from appliance.store.dsn import Dsn
from tests.fleet.conftest import POLICY, fleet_settings, make_capture, wait_for, write_settings
from webui.db import ConsoleDB

V2 = POLICY.replace('{text: "Project Nightjar", weight: 10}', '{text: "picnic", weight: 10}')
INVALID = POLICY.replace("threshold: {weight: 10}", "threshold: {weight: ten}")


def _stream_versions(url: str, key: str) -> list[str]:
    bus = RedisBus(url)
    try:
        return [json.loads(f[b"eve"])["version"] for _, f in bus.r.xrange(key)]
    finally:
        bus.close()


def test_a_saved_version_reaches_a_sensor_and_an_invalid_one_is_refused(pg_dsn: str, redis_url: str,
                                                                       tmp_path: Path) -> None:
    s = fleet_settings(tmp_path, redis_url)
    bus_settings = s.output.bus
    assert bus_settings is not None
    sensor_file = tmp_path / "sensor-policy.yaml"
    sensor_file.write_text(POLICY)
    reloads: list[str] = []
    follower = PolicyFollower(lambda: RedisBus(redis_url), bus_settings, sensor_file,
                              lambda: reloads.append(sensor_file.read_text()))
    assert follower.version == policy_version(POLICY)
    bus = RedisBus(redis_url)
    follower.step(bus)  # nothing pushed yet
    relay = PolicyRelay(pg_dsn, lambda: RedisBus(redis_url), bus_settings)
    db = ConsoleDB(pg_dsn)
    with psycopg.connect(Dsn.parse(pg_dsn).url, autocommit=True) as conn:
        assert relay.check(conn) is False  # no saved version
        db.policies.add("alice", policy_version(V2), V2, "picnics are secret now")
        assert relay.check(conn) is True and relay.check(conn) is False  # published once
        follower.step(bus, 0.1)
        assert follower.version == policy_version(V2) and reloads == [V2] and sensor_file.read_text() == V2
        # a version the sensor's own check refuses: it keeps running V2
        db.policies.add("mallory", policy_version(INVALID), INVALID, "broken")
        assert relay.check(conn) is True
        follower.step(bus, 0.1)
        assert follower.version == policy_version(V2) and sensor_file.read_text() == V2 and len(reloads) == 1
        assert follower.counters["rejected"] == 1 and "invalid" in follower.last_error
    # an entry whose text does not have its version (tampered with on the way)
    bus.publish(bus_settings.policy_key, [{"eve": json.dumps({"version": policy_version(POLICY), "text": V2})}], 100)
    follower.step(bus, 0.1)
    assert follower.counters["rejected"] == 2 and sensor_file.read_text() == V2
    # a sensor starting now takes the newest entry (refused here too: it keeps its file)
    late = PolicyFollower(lambda: RedisBus(redis_url), bus_settings, tmp_path / "late.yaml", lambda: None)
    late.step(bus)
    assert late.counters["rejected"] == 1
    bus.close()
    db.close()


def test_the_console_push_wakes_the_relay(pg_dsn: str, redis_url: str, tmp_path: Path) -> None:
    from tests.webui.conftest import add_users, login
    from webui import create_app
    from webui.app import close_app

    s = fleet_settings(tmp_path, redis_url, policy_poll_s=120.0)  # only a push can be this quick
    assert s.output.bus is not None
    key = s.output.bus.policy_key
    relay = PolicyRelay(pg_dsn, lambda: RedisBus(redis_url), s.output.bus)
    stop = threading.Event()
    t = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    app = create_app(alert_db=pg_dsn, argon2_time_cost=1, argon2_memory_kib=256, argon2_parallelism=1)
    try:
        add_users(app)
        app.state.db.policies.add("alice", policy_version(POLICY), POLICY, "first")
        t.start()
        wait_for(lambda: _stream_versions(redis_url, key) == [policy_version(POLICY)], 60, "the first version")
        app.state.db.policies.add("alice", policy_version(V2), V2, "second")
        with TestClient(app) as client:
            csrf = login(client, "analyst")
            page = client.get("/sensors")
            assert policy_version(V2) in page.text and "Push to the sensors now" in page.text
            r = client.post("/sensors/push", data={"csrf": csrf}, follow_redirects=False)
            assert r.status_code == 303
            wait_for(lambda: _stream_versions(redis_url, key)[-1] == policy_version(V2), 30, "the pushed version")
            assert app.state.db.audit_page(10, 0, "policy.push")[0] == 1
        with TestClient(app) as viewer:
            csrf = login(viewer, "viewer")
            assert viewer.post("/sensors/push", data={"csrf": csrf}, follow_redirects=False).status_code == 403
    finally:
        stop.set()
        t.join(10)
        close_app(app)


@pytest.mark.root
def test_a_live_sensor_applies_a_pushed_policy_as_on_sighup(redis_url: str, tmp_path: Path) -> None:
    from tests.live.harness import LiveSensor, read_events
    from tests.live.netns import VethPair, netns_unavailable

    why = netns_unavailable()
    if why:
        pytest.skip(why)
    s = fleet_settings(tmp_path, redis_url, name="edge-live")
    assert s.output.bus is not None
    policy = tmp_path / "policy.yaml"  # a fleet sensor's policy file is one it may rewrite
    policy.write_text(POLICY)
    cfg = write_settings(tmp_path / "s.yaml", s)
    pcap = tmp_path / "live.pcap"
    make_capture(pcap, 3, seed=5, net=5, secret_every=1000)  # document 0 names the project, 1 and 2 a picnic
    bus = RedisBus(redis_url)

    def heartbeat_version() -> str:
        got = bus.r.xrevrange(s.output.bus.sensors_key, count=1)  # type: ignore[union-attr]
        return json.loads(got[0][1][b"eve"])["policy_version"] if got else ""

    with VethPair() as pair:
        eve = tmp_path / "eve.json"
        sensor = LiveSensor(pair, eve, "--config", str(cfg), "--policy", str(policy), "--metrics", "")
        try:
            wait_for(lambda: heartbeat_version() == policy_version(POLICY), 120, "the sensor's first heartbeat")
            bus.publish(s.output.bus.policy_key, [{"eve": json.dumps({"version": policy_version(INVALID),
                                                                      "text": INVALID})}], 100)
            bus.publish(s.output.bus.policy_key, [{"eve": json.dumps({"version": policy_version(V2), "text": V2})}],
                        100)
            wait_for(lambda: heartbeat_version() == policy_version(V2), 120, "the pushed version in a heartbeat")
            assert policy.read_text() == V2
            wait_for(lambda: (sensor.stats() or {}).get("reloads", 0) >= 1, 60, "the reload")
            pair.replay(pcap)
            sensor.wait_packets(30)
            wait_for(lambda: len([e for e in read_events(eve) if e["event_type"] == "alert"]) >= 2, 120,
                     "the new policy's alerts")
        finally:
            events = sensor.stop()
    files = sorted(e["fileinfo"]["filename"] for e in events if e["event_type"] == "alert")
    assert files == ["plan-5-1.docx", "plan-5-2.docx"]  # the picnic (V2), not the project (the old policy)
    bus.close()
