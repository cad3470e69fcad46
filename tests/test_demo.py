"""End to end: the README's demo — generated office traffic, the sample policy, the alerts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("demo")
    pcap = out / "demo.pcap"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_demo.py"), str(pcap)], check=True,
                   capture_output=True)
    # as scripts/demo.sh does: a copy of the sample policy, a trained classifier in the model directory
    policy = out / "policy.yaml"
    policy.write_bytes((ROOT / "policies" / "sample.yaml").read_bytes())
    subprocess.run([sys.executable, str(ROOT / "bench" / "darkword_bench.py"), "--make-ml-set", str(out / "mlset"),
                    "--per-label", "300"], check=True, capture_output=True, timeout=300)
    subprocess.run([str(BIN / "tapsift"), "ml", "train", str(out / "mlset"), "--model-dir", str(out / "models")],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "TAPSIFT_MODEL_DIR": str(out)}  # the policy's model 'models' is out/models
    check = subprocess.run([str(BIN / "tapsift"), "policy", "check", str(policy)], capture_output=True, text=True,
                           env=env, timeout=300)
    assert check.returncode == 0, check.stderr
    p = subprocess.run(
        [str(BIN / "tapsift"), "read", str(pcap), "--policy", str(policy),
         "--store", str(out / "alerts.db"), "--eve", "-", "-q"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert p.returncode == 0, p.stderr
    return out, [json.loads(line) for line in p.stdout.splitlines()]


def test_every_manifest_object_is_extracted(demo_run: tuple[Path, list[dict]]) -> None:
    out, events = demo_run
    manifest = json.loads((out / "demo.manifest.json").read_text())
    md5s = {e["fileinfo"]["md5"] for e in events if e["event_type"] == "fileinfo"}
    missing = [m for m in manifest if m["md5"] not in md5s]
    assert not missing, missing


def test_planted_violations_raise_the_expected_alerts(demo_run: tuple[Path, list[dict]]) -> None:
    _, events = demo_run
    alerts = {(e["alert"]["signature"], e["http"]["url"]): e for e in events if e["event_type"] == "alert"}
    assert set(alerts) == {
        ("office-web-content/prohibited-content", "/thread/20231114.html"),
        ("office-web-content/gambling-content", "/promo.html"),
        ("office-uploads/personal-data-leak", "/api/paste"),
        ("office-uploads/confidential-leak", "/upload"),
        ("office-uploads/confidential-leak", "/mail/attach"),  # found in the DOCX's extracted text
        ("office-web-content/hidden-links", "/local/events.html"),
        ("office-uploads/confidential-images", "/api/media/upload"),  # a resized JPEG of a known render
        ("office-web-content/fraud-text", "/ads/services.html"),  # the text classifier ...
        ("office-web-content/fraud-text", "/promo.html"),  # ... which also knows a casino ad when it sees one
    }
    prohibited = alerts[("office-web-content/prohibited-content", "/thread/20231114.html")]
    f = prohibited["tapsift"]["findings"][0]
    assert f["detail"]["keyword"] == "法轮功" and "separators" in f["detail"]["normalisation"]
    leak = alerts[("office-uploads/confidential-leak", "/upload")]
    assert leak["tapsift"]["src_zone"] == "office" and leak["fileinfo"]["filename"] == "plan.txt"
    assert {x["detail"]["keyword"] for x in leak["tapsift"]["findings"]} == {"Project Nightjar", "夜鹰计划"}
    pii = alerts[("office-uploads/personal-data-leak", "/api/paste")]
    snippets = " ".join(ev["snippet"] for x in pii["tapsift"]["findings"] for ev in x["evidence"])
    assert "**********" in snippets and "110105" not in snippets  # ID numbers are masked in the alert
    hidden = alerts[("office-web-content/hidden-links", "/local/events.html")]
    reasons = {x["detail"].get("reason") for x in hidden["tapsift"]["findings"]}
    assert {"display:none", "off-screen"} <= reasons, reasons
    image = alerts[("office-uploads/confidential-images", "/api/media/upload")]
    assert image["fileinfo"]["filename"] == "IMG_4121.jpg"
    ads = alerts[("office-web-content/fraud-text", "/ads/services.html")]
    assert ads["tapsift"]["findings"][0]["rule"] == "fraud" and ads["tapsift"]["findings"][0]["score"] >= 0.8
    gambling = alerts[("office-web-content/gambling-content", "/promo.html")]
    assert gambling["tapsift"]["src_zone"] == "office-wifi"  # the VLAN-tagged Wi-Fi laptop


def test_alerts_are_in_the_store(demo_run: tuple[Path, list[dict]]) -> None:
    from appliance.store import AlertStore

    out, events = demo_run
    store = AlertStore.reader(out / "alerts.db")
    try:
        ids = {r["id"] for r in store.query({}, limit=100)}
    finally:
        store.close()
    assert ids == {e["tapsift"]["alert_id"] for e in events if e["event_type"] == "alert"}
