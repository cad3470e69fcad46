"""Behaviour alerts in the console's existing hit pages (read-only; no page of their own yet):
listed by category, and the detail shows subject, window and the deviating features."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from appliance.store import AlertStore
from inspectors.behaviour.decide import Decider, rule_from_config
from inspectors.behaviour.detectors import Anomaly, Deviation
from policies.behaviour import behaviour_configs
from policies.schema import load_policy
from tests.inspectors.behaviour.series import HOUR, START_NS
from tests.inspectors.behaviour.test_windows import POLICY
from tests.webui.conftest import add_users, login, make_settings
from webui.app import close_app, create_app


def test_anomaly_alerts_show_in_the_hit_list_and_detail(tmp_path: Path) -> None:
    make_settings(tmp_path)  # the demo hits
    a = Anomaly("zscore", "volume", "host:10.10.0.77", "office", START_NS + 14 * HOUR, START_NS + 15 * HOUR, 8.4,
                (Deviation("up_objects_document", 61, 1, 8.4), Deviation("up_bytes_trimmed", 4.8e6, 2e3, 6.9)))
    [raised] = Decider([rule_from_config(c) for c in behaviour_configs(load_policy(POLICY))],
                       lambda: "B00000Zq").decide([a])
    with AlertStore(tmp_path / "alerts.db") as store:
        assert store.add(raised.alert, None)
    app = create_app(make_settings(tmp_path))
    add_users(app)
    try:
        with TestClient(app) as c:
            login(c, "viewer")
            listed = c.get("/hits?category=anomaly")
            assert listed.status_code == 200 and "B00000Zq" in listed.text
            page = c.get("/hits/B00000Zq")
            assert page.status_code == 200
            for text in ("host:10.10.0.77", "behaviour.zscore", "documents up 61 vs usual 1", "window_start"):
                assert text in page.text
    finally:
        close_app(app)
