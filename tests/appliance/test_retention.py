"""Content retention: every object kept with its text and searchable in any language, sessions and records kept,
small objects' bytes kept, bounded by age and size; a full queue drops objects and counts them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from appliance.model import AppEvent, ContentObject, Direction, Flow, FlowKey, FlowRef
from appliance.retention import RetentionConfig, RetentionWriter
from appliance.store.content import ContentRepo, ContentStore
from appliance.store.querylang import parse
from tests.fleet_fixtures import BACKENDS, pg_dsn, pg_template, postgres_server  # noqa: F401

BASE = 1_714_564_800_000_000_000
HOUR = 3_600_000_000_000


def _obj(i: int, text: str | None, *, data: bytes | None = None, ts: int | None = None, mime: str = "text/plain",
         parent: str | None = None, host: str = "files.example.com", uid: str | None = None) -> ContentObject:
    flow = FlowRef(uid or f"C{i}", i, "10.20.1.5", 40000 + i, "203.0.113.9", 80, "TCP", 0, "eth1", "office", "any")
    return ContentObject(id=f"F{i:05d}", source="extract" if parent else "http", direction=Direction.TO_SERVER,
                         flow=flow, ts_ns=ts or BASE + i * 10**9, size=len(data) if data is not None else 100,
                         md5=f"{i:032x}", sha256=f"{i:064x}", parent_id=parent, depth=1 if parent else 0,
                         sniffed_mime=mime, filename=f"doc-{i}.txt", url=f"/u/{i}", host=host, data=data, text=text)


def _flow(uid: str) -> Flow:
    f = Flow(uid, 7, FlowKey.of(b"\x0a\x14\x01\x05", 40000, b"\xcb\x00\x71\x09", 80, 6), b"\x0a\x14\x01\x05", 40000,
             b"\xcb\x00\x71\x09", 80, "eth1", BASE)
    f.last_ts_ns, f.pkts, f.bytes, f.app_proto, f.src_zone = BASE + 5 * 10**9, [3, 4], [100, 2000], "http", "office"
    return f


@pytest.fixture(params=BACKENDS)
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return request.getfixturevalue("pg_dsn") if request.param == "postgresql" else str(tmp_path / "content.db")


def _search(repo: ContentRepo, q: str) -> set[str]:
    return {r["content_id"] for r in repo.search(parse(q), {}, limit=100)}


def test_every_object_its_text_children_flows_and_records(dsn: str) -> None:
    w = RetentionWriter(RetentionConfig(store=dsn, keep_bytes=64, flush_s=0.05))
    w.object(_obj(1, "第三季度 机密 路线图"), alerted=True)
    w.object(_obj(2, None, data=b"quarterly numbers, not alerting", mime="text/csv"))  # text from its bytes
    w.object(_obj(3, "公司年会通知"), [_obj(4, "附件 内部资料 appendix", parent="F00003")])
    w.object(_obj(5, None, data=b"\x89PNG" + bytes(200), mime="image/png"))  # too big to keep: metadata only
    w.flow(_flow("C1"))
    w.event(AppEvent(BASE, _obj(1, "").flow, "http", {"tx_id": 0, "request_headers": [["Host", "x"]]}))  # type: ignore[arg-type]
    w.close()
    assert w.stats()["written"] == 5 and not w.stats().get("dropped_queue")
    with ContentStore.reader(dsn) as store:
        repo = store.repo
        assert _search(repo, "机密") == {"F00001"}  # two Chinese characters
        assert _search(repo, "密") == {"F00001"}  # one
        assert _search(repo, "年会通知") == {"F00003"}  # four
        assert _search(repo, "quarterly") == {"F00002"}  # read from the bytes (a plain-text type)
        assert _search(repo, "内部资料 parent:F00003") == {"F00004"}
        assert _search(repo, "alerted:true") == {"F00001"}
        assert _search(repo, "stored:true") == {"F00002"}
        assert repo.blob(f"{2:064x}") == b"quarterly numbers, not alerting"
        assert _search(repo, "ip:10.20.0.0/16 -mime:image/png") == {"F00001", "F00002", "F00003", "F00004"}
        assert [c["content_id"] for c in repo.children("F00003")] == ["F00004"]
        flow = repo.flow("C1")
        assert flow is not None and flow["client_ip"] == "10.20.1.5" and flow["bytes_toclient"] == 2000
        (ev,) = repo.events("C1")
        assert ev["event_type"] == "http" and ev["fields"]["request_headers"] == [["Host", "x"]]


def test_age_and_size_limits(dsn: str) -> None:
    w = RetentionWriter(RetentionConfig(store=dsn, max_age_s=2 * 3600, flush_s=0.05, housekeep_s=0))
    for i in range(30):  # 30 objects over 30 hours of packet time
        w.object(_obj(i, f"day text {i} " * 50, ts=BASE + i * HOUR))
    w.close()
    with ContentStore.reader(dsn) as store:
        kept = sorted(r["ts_ns"] for r in store.db.rows("SELECT ts_ns FROM content"))
        assert kept and kept[0] >= BASE + 27 * HOUR  # only the last 2 hours before the newest object
        assert store.repo.search(parse("day"), {}) and len(store.repo.search(parse("day"), {})) == len(kept)
    if not dsn.startswith("postgresql"):
        big = RetentionWriter(RetentionConfig(store=dsn, max_age_s=1e9, max_bytes=1 << 20, flush_s=0.05,
                                              housekeep_s=0, max_text_bytes=64 * 1024))
        for i in range(100, 200):
            big.object(_obj(i, "x" * 60_000, ts=BASE + 40 * HOUR + i * 60 * 10**9))
        big.close()
        with ContentStore.reader(dsn) as store:
            assert store.repo.retained_bytes() <= 1 << 20 and store.repo.total() < 100
            assert big.stats()["purged_for_size"] > 0


def test_a_full_queue_drops_and_counts_never_blocks(tmp_path: Path) -> None:
    w = RetentionWriter(RetentionConfig(store=str(tmp_path / "c.db"), queue=10, queue_bytes=1 << 20, flush_s=0.05))
    hold = threading.Event()
    real = w._write

    def slow(batch: list) -> None:  # type: ignore[type-arg]
        hold.wait(5)
        real(batch)

    w._write = slow  # type: ignore[method-assign]
    t0 = time.monotonic()
    results = [w.object(_obj(i, "t")) for i in range(100)]
    big = w.object(_obj(1000, None, data=b"x" * (2 << 20)))  # more bytes than the queue may hold
    assert time.monotonic() - t0 < 2.0  # the sensor's call never waits for the writer
    hold.set()
    w.close()
    st = w.stats()
    assert not big and st["dropped_bytes"] == 1
    assert st["dropped_queue"] == results.count(False) > 0 and st["written"] == results.count(True)


def test_alerting_mode_keeps_only_sessions_that_alerted(tmp_path: Path) -> None:
    w = RetentionWriter(RetentionConfig(store=str(tmp_path / "c.db"), objects="alerting", flush_s=0.05))
    w.object(_obj(1, "before the alert", uid="C9"))  # waits: its session has not alerted yet
    w.object(_obj(2, "quiet session", uid="C8"))
    w.object(_obj(3, "the alert", uid="C9"), alerted=True)
    w.object(_obj(4, "after the alert", uid="C9"))
    w.close()
    with ContentStore.reader(tmp_path / "c.db") as store:
        assert {r["content_id"] for r in store.repo.of_flow("C9")} == {"F00001", "F00003", "F00004"}
        assert store.repo.of_flow("C8") == []
