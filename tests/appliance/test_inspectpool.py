"""The live inspection pool as the supervisor sees it: its size (``inspect_workers: auto``), what
its snapshot says (queues per class, jobs in hand, shed by class and reason), and a clean
shutdown (everything spooled, no job directory left on the tmpfs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.inspectpool import InspectionPool, auto_workers, inspection_snapshot
from appliance.jobs.base import Job
from appliance.settings import Settings


def _settings(tmp_path: Path, inspect_workers: int | str = "auto", policy: bool = True) -> Settings:
    s = Settings()
    s.inspection.policy = str(Path(__file__).resolve().parents[2] / "policies" / "sample.yaml") if policy else None
    s.output.state_dir = str(tmp_path / "state")
    s.live.job_dir = str(tmp_path / "jobs")
    s.live.inspect_workers = inspect_workers  # type: ignore[assignment]
    return s


@pytest.mark.parametrize(("cpus", "capture", "want"), [(2, 2, 1), (2, 1, 1), (4, 1, 3), (8, 6, 2), (16, 6, 10)])
def test_auto_takes_the_cores_the_capture_workers_leave(cpus: int, capture: int, want: int) -> None:
    assert auto_workers(cpus, capture) == want


def test_pool_lanes_from_the_settings(tmp_path: Path) -> None:
    pool = InspectionPool.from_settings(_settings(tmp_path), capture_workers=6, cpus=8)
    assert pool is not None
    assert [lane.name for lane in pool.lanes] == ["cheap", "expensive", "expensive"]
    fixed = InspectionPool.from_settings(_settings(tmp_path, 3), capture_workers=6, cpus=8)
    assert fixed is not None and [lane.name for lane in fixed.lanes].count("expensive") == 3
    assert InspectionPool.from_settings(_settings(tmp_path, 0), capture_workers=2, cpus=8) is None
    assert InspectionPool.from_settings(_settings(tmp_path, policy=False), capture_workers=2, cpus=8) is None


def test_snapshot_counts_queued_in_hand_and_shed(tmp_path: Path) -> None:
    pool = InspectionPool.from_settings(_settings(tmp_path), capture_workers=1, cpus=2)
    assert pool is not None
    pool.open()
    q = pool.queue
    q.bind(1, "w0")  # type: ignore[attr-defined]
    for n in range(3):
        assert q.put(Job("cheap", 1, b"x%d" % n, {"content_id": f"F{n}"})) is None
    assert q.put(Job("expensive", 0, b"y", {"content_id": "F9"})) is None
    q.bind(2, "p0")  # type: ignore[attr-defined]
    held = q.get(["cheap"])
    assert held is not None
    snap = inspection_snapshot(pool.stats(), {"offered.cheap": 3, "offered.expensive": 1, "inspected.cheap": 0,
                                              "shed.expensive.too_old": 2, "cache_hits": 1, "cache_misses": 3},
                               pool.in_hand())
    assert snap["in_hand"] == 1
    assert snap["classes"]["cheap"]["queued"] == 2 and snap["classes"]["expensive"]["queued"] == 1
    assert snap["classes"]["expensive"]["shed"] == {"too_old": 2}
    assert snap["cache"] == {"hits": 1, "lookups": 4, "hit_rate": 0.25}
    q.bind(0, "sup")  # type: ignore[attr-defined]
    pool.shutdown()  # the one in hand and the three waiting go to the spool
    assert not pool.pending and not (tmp_path / "jobs").exists()
    assert (tmp_path / "state" / "jobs.spool").exists()
    again = InspectionPool.from_settings(_settings(tmp_path), capture_workers=1, cpus=2)
    assert again is not None
    again.open()
    assert again.stats()["cheap"]["queued"] == 3 and again.stats()["expensive"]["queued"] == 1
    again.queue.close()  # type: ignore[attr-defined]
