"""Each distinct content is inspected once (the result cache), and an object's expensive rest
is finished after its cheap pass (follow-up) with the thresholds and suppression of one pass."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

from appliance.inspection import InspectionStage
from appliance.model import ContentObject, Direction, FlowRef
from appliance.pipeline import make_inspection, policy_holder
from appliance.resultcache import CachedResult, ResultCache
from appliance.settings import Settings
from reassembly.objects import ObjectFactory
from tools import synth as S

POLICY = """
zones:
  office:
    cidrs: [10.20.0.0/16]
lists:
  projects:
    type: keywords
    keywords:
      - {text: "Project Nightjar", weight: 10}
  halves:
    type: keywords
    keywords:
      - {text: "first half", weight: 5}
      - {text: "second half", weight: 5}
profiles:
  leak:
    category: data-leak/confidential
    severity: high
    inspect:
      - inspector: keyword
        lists: [projects]
    threshold:
      weight: 10
  split:
    category: data-leak/confidential
    severity: medium
    inspect:
      - inspector: keyword
        lists: [halves]
    threshold:
      weight: 10
policies:
  - name: office-out
    source_zone: office
    profiles: [leak, split]
  - name: elsewhere
    source_zone: any
    profiles: [split]
suppression:
  window_s: WINDOW
"""


def _stage(tmp_path: Path, window: int = 0, cache: bool = True) -> InspectionStage:
    p = tmp_path / "policy.yaml"
    p.write_text(POLICY.replace("WINDOW", str(window)), encoding="utf-8")
    s = Settings()
    s.inspection.policy = str(p)
    if not cache:
        s.inspection.result_cache_entries = 0
    holder = policy_holder(s)
    assert holder is not None
    return make_inspection(s, holder, ObjectFactory(prefix="X"))


def _obj(data: bytes, oid: str, *, mime: str = "text/plain", client: str = "10.20.0.5", port: int = 40000,
         filename: str = "") -> ContentObject:
    flow = FlowRef(f"C{oid}", port, client, port, "192.0.2.9", 80, "TCP", 0, "",
                   "office" if client.startswith("10.20.") else "any", "any")
    return ContentObject(oid, "http", Direction.TO_SERVER, flow, 1_700_000_000 * 10**9 + port, len(data),
                         hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest(), declared_mime=mime,
                         sniffed_mime=mime, data=data, url="/upload", host="files.example", filename=filename)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(zipfile.ZipInfo(name, (2024, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


TEXT = b"Minutes: Project Nightjar ships in May."


def test_a_repeat_is_one_inspection_and_two_alerts(tmp_path: Path) -> None:
    stage = _stage(tmp_path)
    a = stage.inspect(_obj(TEXT, "F1", port=40001), 1)
    b = stage.inspect(_obj(TEXT, "F2", port=40002), 2)
    assert stage.counters["inspected_full"] == 1 and stage.counters["cache_hits"] == 1
    assert not a.cached and b.cached
    (alert_a, _), (alert_b, obj_b) = a.alerts[0], b.alerts[0]
    assert alert_a.id != alert_b.id
    # the repeat's alert is its own: its object, its flow, its time
    assert (alert_b.content_id, obj_b.id, alert_b.flow.src_port, alert_b.ts_ns) == ("F2", "F2", 40002, 2)
    assert [f.content_id for f in alert_b.findings] == ["F2"]
    assert [(f.rule, f.score, f.evidence) for f in alert_a.findings] == [(f.rule, f.score, f.evidence)
                                                                       for f in alert_b.findings]


def test_suppression_is_the_same_with_and_without_the_cache(tmp_path: Path) -> None:
    def run(cache: bool) -> list[tuple[int, int]]:
        stage = _stage(tmp_path, window=300, cache=cache)
        out = []
        for k in range(3):
            res = stage.inspect(_obj(TEXT, f"F{k}", port=40000 + k), k * 10**9)
            out.append((len(res.alerts), len(res.suppressed)))
        assert stage.counters["cache_hits"] == (2 if cache else 0)
        return out

    assert run(True) == run(False) == [(1, 0), (0, 1), (0, 1)]


def test_other_zones_other_profiles_other_entries(tmp_path: Path) -> None:
    """Findings depend on the inspectors the zone pair selects: the key includes them."""
    stage = _stage(tmp_path)
    office = stage.inspect(_obj(TEXT, "F1"), 1)
    outside = stage.inspect(_obj(TEXT, "F2", client="10.99.0.5"), 2)
    assert stage.counters["cache_hits"] == 0 and stage.counters["inspected_full"] == 2
    assert [a.profile for a, _ in office.alerts] == ["leak"] and outside.alerts == []


def test_children_come_back_with_fresh_ids(tmp_path: Path) -> None:
    stage = _stage(tmp_path)
    data = _zip({"notes.txt": TEXT, "readme.txt": b"nothing here"})
    first = stage.inspect(_obj(data, "F1", mime="application/zip", filename="a.zip"), 1)
    again = stage.inspect(_obj(data, "F2", mime="application/zip", filename="a.zip"), 2)
    assert again.cached and len(again.children) == len(first.children) == 2
    assert {c.parent_id for c in again.children} == {"F2"}
    assert not {c.id for c in again.children} & {c.id for c in first.children}
    assert [(c.filename, c.md5) for c in again.children] == [(c.filename, c.md5) for c in first.children]
    (alert, _), = again.alerts
    (finding,) = alert.findings
    child = next(c for c in again.children if c.filename == "notes.txt")
    assert finding.content_id == child.id and finding.detail["child"] == child.id


def test_cache_bounds() -> None:
    cache = ResultCache(max_entries=2, max_bytes=1 << 20)
    for k in range(3):
        cache.put(k, CachedResult.make(f"F{k}", [], []))
    assert len(cache) == 2 and cache.get(0) is None and cache.get(2) is not None and cache.evictions == 1
    small = ResultCache(max_entries=100, max_bytes=1000)
    for k in range(10):
        small.put(k, CachedResult.make(f"F{k}", [], []))
    assert small.bytes <= 1000 and len(small) < 10


def test_cheap_pass_defers_the_expensive_child_and_the_follow_up_sums_both(tmp_path: Path) -> None:
    """A ZIP (cheap) holding a text member and a PDF (expensive): the cheap pass inspects the
    text at once and alerts for what it alone proves (``leak``); the PDF goes to the follow-up,
    whose decision counts the cheap pass's findings too (``split``: 5 + 5 reaches 10) and does
    not raise ``leak`` again."""
    stage = _stage(tmp_path)
    pdf = S.pdf_document("Report", ["the second half of the plan"])
    data = _zip({"a.txt": b"Project Nightjar: the first half", "b.pdf": pdf})
    obj = _obj(data, "F1", mime="application/zip", filename="plan.zip")
    assert stage.cost_class(obj) == ("cheap", "zip")
    cheap = stage.inspect(obj, 1, mode="cheap")
    assert [a.profile for a, _ in cheap.alerts] == ["leak"]
    assert cheap.followup is not None and [c.filename for c in cheap.followup.deferred] == ["b.pdf"]
    assert sorted(c.filename for c in cheap.children) == ["a.txt", "b.pdf"]  # both reported once, now
    rest = stage.follow_up(cheap.followup, 2)
    assert [a.profile for a, _ in rest.alerts] == ["split"]
    (split, _), = rest.alerts
    assert sorted(f.detail["child_filename"] for f in split.findings) == ["a.txt", "b.pdf"]
    assert all(c.filename != "b.pdf" for c in rest.children)  # not reported twice
    # the same in one full pass (what tapsift read does)
    (tmp_path / "full").mkdir()
    full = _stage(tmp_path / "full").inspect(obj, 1)
    assert sorted(a.profile for a, _ in full.alerts) == ["leak", "split"]


def test_an_inspector_that_reads_metadata_is_keyed_by_it_and_an_undeclared_one_is_never_cached(
        tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The same upload to a file-sharing host and to an intranet host: the domains inspector reads the
    host, so the second is inspected afresh; an inspector that does not declare what it reads besides
    the bytes (a plug-in) makes every result uncacheable."""
    policy = POLICY.replace("lists:\n", "lists:\n  sharing:\n    type: domains\n    domains: [dropbox.com]\n", 1)
    policy = policy.replace("profiles:\n", "profiles:\n  to-sharing:\n    category: data-leak/confidential\n"
                            "    severity: medium\n    inspect:\n      - inspector: domains\n        lists: [sharing]\n"
                            "    threshold:\n      weight: 1\n", 1)
    policy = policy.replace("profiles: [leak, split]", "profiles: [leak, split, to-sharing]")
    p = tmp_path / "policy.yaml"
    p.write_text(policy.replace("WINDOW", "0"), encoding="utf-8")
    s = Settings()
    s.inspection.policy = str(p)
    holder = policy_holder(s)
    assert holder is not None
    stage = make_inspection(s, holder, ObjectFactory(prefix="X"))
    from dataclasses import replace as _replace

    up = _replace(_obj(TEXT, "F1", port=40001), host="content.dropbox.com")
    intranet = _replace(_obj(TEXT, "F2", port=40002), host="intranet.example")
    first, second = stage.inspect(up, 1), stage.inspect(intranet, 2)
    assert stage.counters["cache_hits"] == 0
    assert sorted(a.profile for a, _ in first.alerts) == ["leak", "to-sharing"]
    assert [a.profile for a, _ in second.alerts] == ["leak"]

    from inspectors.keyword import KeywordInspector

    monkeypatch.delattr(KeywordInspector, "cache_context")
    (tmp_path / "plain").mkdir()
    plain = _stage(tmp_path / "plain")
    for k in range(2):
        plain.inspect(_obj(TEXT, f"G{k}", port=41000 + k), k)
    assert plain.counters["cache_hits"] == 0 and plain.counters["inspected_full"] == 2
