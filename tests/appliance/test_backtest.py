"""Policy back-test over retained content: the real inspection stage on stored text, per-rule new/lost/changed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.backtest import backtest
from appliance.store.content import ContentStore
from policies.schema import load_policy
from tests.webui.site import START, make_site

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_site(tmp_path_factory.mktemp("site"))


def _edit(text: str) -> str:
    """Adds 年会 ("annual party") to the gambling words at the profile's threshold, raises the confidential
    profile's severity, and stops watching the casino's host altogether (an exception)."""
    gamble = "      - {text: 赌博, weight: 3}"
    text = text.replace(gamble, gamble + "\n      - {text: 年会, weight: 8}")
    text = text.replace("    category: data-leak/confidential\n    severity: high\n    inspect:\n"
                        "      - inspector: keyword",
                        "    category: data-leak/confidential\n    severity: critical\n    inspect:\n"
                        "      - inspector: keyword")
    return text + "exceptions:\n  - {rule: office-web-content, host: casino.example.biz, reason: test}\n"


def test_new_lost_and_changed_per_rule(site: dict[str, str]) -> None:
    current = load_policy(Path(site["policy"]))
    text = _edit(Path(site["policy"]).read_text(encoding="utf-8"))
    proposed = load_policy(text, source="p.yaml")
    with ContentStore.reader(site["content"]) as store:
        res = backtest(store.repo, proposed, current, int(START * 1e9), int((START + 86400) * 1e9))
    t = res.totals()
    assert res.objects == 8 and res.text_only == 0  # every object of the day; their bytes were kept
    assert (t["current"], t["proposed"], t["new"], t["lost"], t["changed"]) == (3, 3, 1, 1, 2)
    rules = {k: dict(v) for k, v in res.rules.items()}
    assert rules[("office-web-content", "gambling-content")] == {"current": 1, "proposed": 1, "new": 1, "lost": 1}
    assert rules[("office-uploads", "confidential-leak")] == {"current": 2, "proposed": 2, "changed": 2}
    assert [s["host"] for s in res.samples["new"]] == ["intranet-news.example.com"]
    assert [s["host"] for s in res.samples["lost"]] == ["casino.example.biz"]
    assert {s["before"]["severity"] for s in res.samples["changed"]} == {2}
    # the current policy against itself changes nothing
    with ContentStore.reader(site["content"]) as store:
        same = backtest(store.repo, current, current, int(START * 1e9), int((START + 86400) * 1e9))
    assert same.totals()["new"] == same.totals()["lost"] == same.totals()["changed"] == 0


def test_the_cli(site: dict[str, str], tmp_path: Path) -> None:
    proposed = tmp_path / "proposed.yaml"
    proposed.write_text(_edit(Path(site["policy"]).read_text(encoding="utf-8")), encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "appliance.cli", "policy", "backtest", str(proposed), "--content-db",
                        site["content"], "--since", "2024-05-01", "--until", "2024-05-01", "--against",
                        site["policy"], "--json"], capture_output=True, text=True, cwd=ROOT, check=True)
    got = json.loads(p.stdout)
    assert got["objects"] == 8 and got["totals"]["new"] == 1 and got["totals"]["lost"] == 1
    p = subprocess.run([sys.executable, "-m", "appliance.cli", "policy", "backtest", str(proposed), "--content-db",
                        site["content"], "--since", "yesterday"], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 2 and "not a time" in p.stderr
