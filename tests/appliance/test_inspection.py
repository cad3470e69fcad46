"""`InspectionStage.inspect_cheap`: what a capture worker may inspect itself, and that the
result equals the full inspection's for those objects."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from appliance.inspection import InspectionStage
from appliance.model import ContentObject, Direction, FlowRef
from policies.reload import PolicyHolder

KEYWORD_ONLY = """
lists:
  projects:
    type: keywords
    keywords:
      - {text: "Project Nightjar", weight: 10}
      - {text: 夜鹰计划, weight: 10}
  cards:
    type: dataclass
    class: bank_card
    weight: 5
profiles:
  leak:
    category: data-leak/confidential
    severity: high
    inspect:
      - inspector: keyword
        lists: [projects]
      - inspector: dataclass
        lists: [cards]
    threshold:
      weight: 10
policies:
  - name: all
    source_zone: any
    destination_zone: any
    profiles: [leak]
"""

WITH_IMAGE_HASHES = KEYWORD_ONLY.replace("""\nprofiles:\n""", """
  renders:
    type: fingerprints
    algorithm: phash
    hashes: ["974c67374839487b:cceeaa9abbeece4c"]
profiles:
""").replace("""\npolicies:\n""", """
  images:
    category: data-leak/confidential
    severity: high
    inspect:
      - inspector: perceptual
        lists: [renders]
policies:
""").replace("profiles: [leak]", "profiles: [leak, images]")


def _stage(tmp_path: Path, text: str) -> InspectionStage:
    p = tmp_path / "policy.yaml"
    p.write_text(text, encoding="utf-8")
    return InspectionStage(PolicyHolder(p))


def _obj(data: bytes, mime: str, *, size: int | None = None) -> ContentObject:
    flow = FlowRef("C1", 1, "10.0.0.2", 40000, "192.0.2.9", 80, "TCP", 0, "")
    return ContentObject(id="F1", source="http", direction=Direction.TO_SERVER, flow=flow, ts_ns=1_700_000_000 * 10**9,
                         size=len(data) if size is None else size, md5=hashlib.md5(data).hexdigest(),
                         sha256=hashlib.sha256(data).hexdigest(), declared_mime=mime, sniffed_mime=mime, data=data,
                         url="/api/save", host="docs.example", method="POST")


LEAK = '{"note": "Project Nightjar launch moved", "zh": "夜鹰计划"}'.encode()


@pytest.mark.parametrize("mime", ["application/json", "text/plain", "application/x-www-form-urlencoded"])
def test_plain_text_with_cheap_rules_is_inspected_in_the_worker(tmp_path: Path, mime: str) -> None:
    stage = _stage(tmp_path, KEYWORD_ONLY)
    res = stage.inspect_cheap(_obj(LEAK, mime), 1, 1 << 20)
    assert res is not None
    assert [a.profile for a, _ in res.alerts] == ["leak"]
    # the same alert as the full inspection (with extraction) gives
    full = _stage(tmp_path, KEYWORD_ONLY).inspect(_obj(LEAK, mime), 1)
    def summary(r: object) -> list[tuple[str, list[tuple[str, str]]]]:
        return [(a.profile, sorted((f.inspector, f.rule) for f in a.findings)) for a, _ in r.alerts]  # type: ignore[attr-defined]

    assert summary(full) == summary(res)
    assert stage.counters["inspected_cheap"] == 1


def test_what_needs_the_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from inspectors.perceptual import PerceptualInspector

    stage = _stage(tmp_path, KEYWORD_ONLY)
    html = b"<html><body><p>Project Nightjar</p></body></html>"
    assert stage.inspect_cheap(_obj(html, "text/html"), 1, 1 << 20) is None  # visible/hidden text: extraction
    assert stage.inspect_cheap(_obj(b"\x89PNG\r\n\x1a\n", "image/png"), 1, 1 << 20) is None
    assert stage.inspect_cheap(_obj(LEAK, "application/json"), 1, 16) is None  # over the size limit
    assert stage.inspect_cheap(_obj(LEAK, "application/json", size=len(LEAK) + 100), 1, 1 << 20) is None  # not whole
    # perceptual hashes are cheap (bounded per image)...
    assert _stage(tmp_path, WITH_IMAGE_HASHES).inspect_cheap(_obj(LEAK, "application/json"), 1, 1 << 20) is not None
    # ...but a rule that also asks for an inspector declared expensive sends even plain text to the pool
    monkeypatch.setattr(PerceptualInspector, "cost", "expensive")
    assert _stage(tmp_path, WITH_IMAGE_HASHES).inspect_cheap(_obj(LEAK, "application/json"), 1, 1 << 20) is None


def test_no_rule_is_nothing_to_do(tmp_path: Path) -> None:
    stage = _stage(tmp_path, KEYWORD_ONLY.replace("source_zone: any", "source_zone: office").replace(
        "policies:", "zones:\n  office:\n    cidrs: [10.99.0.0/16]\npolicies:"))
    res = stage.inspect_cheap(_obj(b"\x89PNG\r\n\x1a\n", "image/png"), 1, 1 << 20)
    assert res is not None and not res.alerts
    assert stage.counters["objects_no_rule"] == 1
