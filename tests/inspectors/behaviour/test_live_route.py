"""Live capture: workers send observations, the supervisor's one stage raises the alerts.

The worker side is a real pipeline over a generated capture (`Outputs.observe`); the supervisor
side is `Supervisor._behaviour` fed by two workers' interleaved batches (no sockets needed)."""

from __future__ import annotations

import json
from itertools import groupby
from pathlib import Path

from appliance.eve import EveWriter
from appliance.pipeline import Outputs, build_pipeline
from appliance.settings import Settings
from appliance.supervisor import Supervisor
from capture.pcapfile import open_capture
from tests.inspectors.behaviour.series import NS, host
from tests.inspectors.behaviour.test_windows import POLICY, _month


def _settings(tmp: Path) -> Settings:
    (tmp / "policy.yaml").write_text(POLICY)
    return Settings.model_validate({"inspection": {"policy": str(tmp / "policy.yaml")},
                                    "output": {"store": str(tmp / "alerts.db"), "eve": str(tmp / "eve.json")},
                                    "behaviour": {"enabled": True}})


def test_a_worker_pipeline_sends_observations_instead_of_keeping_state(tmp_path: Path) -> None:
    from bench.anomaly_capture import write_day

    write_day(tmp_path / "day.pcap", 0, hosts=2)
    sent: list[tuple] = []
    p = build_pipeline(_settings(tmp_path), Outputs(event=lambda ev: None, observe=sent.append), slot=1, slots=2,
                       workers=2)
    assert p.behaviour is None and p.observer is not None
    cap = open_capture(str(tmp_path / "day.pcap"))
    p.drive(cap)
    p.finish()
    cap.close()
    assert sent and {o[1] for o in sent} == {host(0), host(1)}
    assert {o[4] for o in sent} == {"any"} and any(o[5] for o in sent)  # destinations outside, uploads seen
    assert not (tmp_path / "behaviour.db").exists()  # no state file in a worker


def test_the_supervisor_stage_sees_every_worker(tmp_path: Path) -> None:
    sup = Supervisor(_settings(tmp_path), interfaces=["lo"], workers=2)
    sup.eve = EveWriter(tmp_path / "eve.json")
    month = _month()
    for _, minute in groupby(month, key=lambda o: o.ts_ns // (60 * NS)):
        obs = list(minute)
        for w in (0, 1):  # each worker's batch of that minute: its share of the flows
            batch = [tuple(o) for i, o in enumerate(obs) if i % 2 == w]
            if batch:
                sup._behaviour(batch)
    sup._behaviour([("junk",), (month[-1].ts_ns, host(0), "office", "d", "any", True, "x", 5, "ua")])
    assert sup.behaviour.stage.counters["bad_observations"] == 2  # malformed records are counted, not raised
    sup.behaviour.finish()
    sup.eve.close()
    assert (tmp_path / "behaviour.db").exists()
    recs = [json.loads(x) for x in (tmp_path / "eve.json").read_text().splitlines()]
    alerts = {(r["tapsift"]["subject"], r["tapsift"]["findings"][0]["inspector"]) for r in recs
              if r["event_type"] == "alert"}
    assert ("host:" + host(0), "behaviour.novelty") in alerts
    assert ("host:" + host(1), "behaviour.periodicity") in alerts
