"""Atomic reload: a valid file replaces the policy, an invalid one leaves it in place."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from policies.reload import PolicyHolder
from policies.schema import PolicyError
from tests.policies.factories import finding, obj
from tests.policies.test_schema import MINIMAL


def write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def test_reload_swaps_valid_policy(tmp_path: Path) -> None:
    f = write(tmp_path / "p.yaml", MINIMAL)
    h = PolicyHolder(f)
    v1 = h.current.policy.version
    assert h.current.generation == 1
    write(f, MINIMAL.replace("10.20.0.0/16", "10.30.0.0/16"))
    ok, msg = h.reload()
    assert ok and msg.startswith(f"{f}: reloaded, version {v1} -> ") and h.current.generation == 2
    assert h.current.zones.zone_of("10.30.1.1") == "office"
    assert h.current.engine.policy is h.current.policy
    ok, msg = h.reload()
    assert ok and "unchanged" in msg and h.current.generation == 2


def test_invalid_file_keeps_old_policy_and_says_why(tmp_path: Path) -> None:
    f = write(tmp_path / "p.yaml", MINIMAL)
    h = PolicyHolder(f)
    before = h.current
    write(f, MINIMAL.replace("source_zone: office", "source_zone: lab") + "junk: [\n")
    ok, msg = h.reload()
    assert not ok and h.current is before
    lines = msg.splitlines()
    assert lines[0] == f"{f}: invalid, not reloaded; keeping version {before.policy.version} (1 problem):"
    assert lines[1].startswith(f"{f}:19:1: invalid YAML")
    write(f, MINIMAL.replace("source_zone: office", "source_zone: lab"))
    ok, msg = h.reload()
    assert not ok and "(1 problem)" in msg and f"{f}:16:18: undefined zone 'lab'" in msg
    ok, msg = h.reload(tmp_path / "missing.yaml")
    assert not ok and "cannot read" in msg and h.current is before
    assert h.path == f  # a failed reload does not change the file to watch


def test_initial_load_must_be_valid(tmp_path: Path) -> None:
    with pytest.raises(PolicyError):
        PolicyHolder(write(tmp_path / "p.yaml", "zones: {}\n"))


def test_ids_and_suppression_survive_reload(tmp_path: Path) -> None:
    f = write(tmp_path / "p.yaml", MINIMAL)
    h = PolicyHolder(f)
    o = obj()
    def run() -> list:
        a = h.current
        src, dst = a.zones.zones_for(o)
        return [a.engine.process(o, a.engine.select(src, dst, o), [finding("secret")], 1)]

    (d1,) = run()
    write(f, MINIMAL.replace("Nightjar", "Nightingale"))
    assert h.reload()[0]
    (d2,) = run()
    assert [a.id for a in d1.alerts] == ["A000001"]
    assert d2.alerts == [] and d2.suppressed[0].first_id == "A000001"


def test_request_reload_flag(tmp_path: Path) -> None:
    f = write(tmp_path / "p.yaml", MINIMAL)
    h = PolicyHolder(f)
    assert h.reload_if_requested() is None
    h.request_reload()
    assert h.reload_if_requested() == (True, f"{f}: unchanged (version {h.current.policy.version})")
    assert h.reload_if_requested() is None


def test_readers_always_see_a_whole_policy(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    texts = [MINIMAL, MINIMAL.replace("10.20.0.0/16", "10.30.0.0/16")]
    write(f, texts[0])
    h = PolicyHolder(f)
    stop = threading.Event()
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            a = h.current
            if a.engine.policy is not a.policy or a.zones.zones != a.policy.zones:
                bad.append("mixed")

    t = threading.Thread(target=reader)
    t.start()
    for i in range(20):
        write(f, texts[i % 2])
        h.reload()
    stop.set()
    t.join()
    assert bad == []


RELOADABLE = """\
lists:
  secret: {type: keywords, keywords: [{text: Nightjar, weight: 10}]}
profiles:
  leak:
    category: data-leak/confidential
    inspect: [{inspector: keyword, lists: [secret]}]
    threshold: {weight: 10}
  gambling:
    category: fraud
    inspect: [{inspector: ml_text, params: {model: MODEL, threshold: 0.5}}]
    threshold: {weight: 0.5}
policies:
  - {name: all, profiles: [leak, gambling]}
"""


def test_a_profile_whose_inspector_cannot_be_built_keeps_running(tmp_path: Path) -> None:
    """The new model file is missing: the gambling profile keeps the running model and still
    alerts, the rest of the new policy takes effect, and the error is logged and counted."""
    from appliance.inspection import InspectionStage
    from appliance.model import ContentObject, Direction, FlowRef
    from inspectors.modelstore import DEFAULT_MODEL_DIR, set_model_dir
    from inspectors.registry import profile_problems
    from tests.inspectors.model_factories import small_model

    models = tmp_path / "models"
    small_model().save(models / "text-v0001.json")
    set_model_dir(models)
    try:
        f = write(tmp_path / "p.yaml", RELOADABLE.replace("MODEL", "text-v0001.json"))
        h = PolicyHolder(f, check=profile_problems, model_dir=models)
        assert h.problems == []
        stage = InspectionStage(h)
        flow = FlowRef("C1", 1, "10.0.0.2", 40000, "192.0.2.9", 80, "TCP", 0, "")

        def alerts(text: str, n: int) -> list[str]:
            data = text.encode()
            o = ContentObject(id=f"F{n}", source="http", direction=Direction.TO_SERVER, flow=flow, ts_ns=n,
                              size=len(data), md5="", sha256="", declared_mime="text/plain", data=data)
            return sorted(a.profile for a, _ in stage.inspect(o, n * 10**12).alerts)

        spam = "百家乐真人荷官在线，注册即送彩金，六合彩开奖结果。Play casino online now."
        assert alerts(spam, 1) == ["gambling"]
        v1 = h.current.policy.version
        # the new version changes the keyword weight and names a model that is not there
        write(f, RELOADABLE.replace("MODEL", "text-v0002.json").replace("weight: 10}]", "weight: 5}]"))
        ok, msg = h.reload()
        assert ok and "gambling kept as in version " + v1 in msg and "text-v0002.json" in msg
        assert h.counters["policy_reload_inspector_errors"] == 1 and h.current.policy.version.endswith("+kept")
        assert h.current.policy.profiles["gambling"].configs[0].params["model"] == "text-v0001.json"
        assert h.current.policy.lists["secret"].keywords[0].weight == 5  # the rest took effect
        assert alerts(spam, 2) == ["gambling"] and stage.counters["inspector_config_errors.ml_text"] == 0
        assert alerts("Nightjar", 3) == []  # weight 5 now, under the threshold of 10
        # the model arrives: the same file reloads in full
        small_model().save(models / "text-v0002.json")
        ok, msg = h.reload()
        assert ok and "kept as in" not in msg and not h.current.policy.version.endswith("+kept") and h.problems == []
        assert h.current.policy.profiles["gambling"].configs[0].params["model"] == "text-v0002.json"
        # a new profile that cannot be built has nothing to keep: it is said not to run
        write(f, RELOADABLE.replace("MODEL", "text-v0002.json").replace("gambling", "gambling2"))
        (models / "text-v0002.json").unlink()
        ok, msg = h.reload()
        assert ok and "gambling2 not running" in msg and h.counters["policy_reload_inspector_errors"] == 2
    finally:
        set_model_dir(DEFAULT_MODEL_DIR)
