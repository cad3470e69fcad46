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
