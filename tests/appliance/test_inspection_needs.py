"""Extraction decodes only what the policy's inspectors look at (issue 14, point 4).

Counted, not timed: `inspectors.extract.COUNTERS` and a sandbox that records the tasks it is
given show that no image is decoded for a keyword and data-class policy, that an embedded
image is still a child object (hashed) without being decoded, and that ``ocr: true`` or an
image inspector brings the decoding back.
"""

from __future__ import annotations

import hashlib
import io
import random
import zipfile
from pathlib import Path
from typing import Any

import pytest

from appliance.inspection import InspectionStage, make_extractor
from appliance.model import ContentObject, Direction, FlowRef
from inspectors import extract as X
from inspectors.base import needs_of
from inspectors.extract.base import Budget
from inspectors.extract.sandbox import Sandbox
from inspectors.registry import create
from policies.reload import PolicyHolder
from reassembly.objects import ObjectFactory
from tools import synth as S

POLICY = """
lists:
  projects:
    type: keywords
    keywords:
      - {text: "Project Nightjar", weight: 10}
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
        lists: [projects]%(params)s
      - inspector: dataclass
        lists: [cards]%(params)s
    threshold:
      weight: 10
policies:
  - name: all
    profiles: [leak]
"""


class Recording:
    """A sandbox that records every task and runs the document ones in a real pool (media
    tasks are refused: the tests only need to know whether they were asked for)."""

    def __init__(self, real: Sandbox) -> None:
        self.real = real
        self.tasks: list[str] = []

    def run(self, name: str, data: Any, timeout: float, **kw: Any) -> Any:
        self.tasks.append(name)
        if "extract.images" in name or "extract.audio" in name or "extract.video" in name:
            from inspectors.extract.sandbox import SandboxFailure

            return SandboxFailure("closed")
        return self.real.run(name, data, timeout, **kw)

    def run_batch(self, name: str, items: list, timeout: float, **kw: Any) -> list:
        self.tasks.extend([name] * len(items))
        return self.real.run_batch(name, items, timeout, **kw)


@pytest.fixture(scope="module")
def pool():
    sb = Sandbox(workers=1, memory_bytes=768 << 20, cpu_seconds=20)
    yield sb
    sb.close()


TEXT_ONLY = "\n        params: {ocr: false, speech: false}"
"""What an officer writes to keep a text policy off images and sound."""


def _stage(tmp_path: Path, pool: Sandbox, params: str = TEXT_ONLY) -> tuple[InspectionStage, Recording]:
    p = tmp_path / "policy.yaml"
    p.write_text(POLICY % {"params": params}, encoding="utf-8")
    stage = InspectionStage(PolicyHolder(p))
    rec = Recording(pool)
    stage.extractor = make_extractor(ObjectFactory(), Budget(), sandbox=rec)
    return stage, rec


def _obj(data: bytes, mime: str, name: str) -> ContentObject:
    flow = FlowRef("C1", 1, "10.0.0.2", 40000, "192.0.2.9", 80, "TCP", 0, "")
    return ContentObject(id="F1", source="http", direction=Direction.TO_SERVER, flow=flow, ts_ns=1, size=len(data),
                         md5=hashlib.md5(data).hexdigest(), sha256=hashlib.sha256(data).hexdigest(),
                         declared_mime=mime, sniffed_mime=mime, data=data, filename=name, url="/up", host="h")


def _docx_with_image(image: bytes) -> bytes:
    buf = io.BytesIO(S.docx_document("Plan", ["Milestones for Project Nightjar."]))
    with zipfile.ZipFile(buf, "a") as zf:
        zf.writestr("word/media/image1.png", image)
    return buf.getvalue()


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
IMAGE = S.png_image(random.Random(1), 320, 200, "Project Nightjar")


def test_declared_needs() -> None:
    from appliance.model import InspectorConfig

    reads = {"text", "image_text", "speech"}  # a text inspector reads images and sound too, by default
    assert needs_of(create("keyword")) == reads
    assert needs_of(create("dataclass")) == reads  # derived from its kinds
    assert needs_of(create("md5")) == {"text"}  # hashes: no OCR or speech for an MD5 list
    assert needs_of(create("hiddenlink")) == {"text"}
    assert needs_of(create("perceptual")) == {"image_pixels"}
    off = {"ocr": False, "speech": False}
    assert needs_of(create("keyword"), InspectorConfig("keyword", params=off)) == {"text"}
    only_ocr = InspectorConfig("keyword", params={**off, "ocr": True})
    assert needs_of(create("keyword"), only_ocr) == {"text", "image_text"}
    assert needs_of(create("keyword"), InspectorConfig("keyword", params={"ocr": False})) == {"text", "speech"}

    class Listener:
        kinds = frozenset({"audio"})

    assert needs_of(Listener()) == {"speech"}
    assert X.media_needed("image", {"text", "image_pixels"}) is False
    assert X.media_needed("video", {"image_pixels"}) is True
    assert X.media_needed("audio", {"text"}) is False
    assert X.media_needed("image", None) is True  # no needs given: everything, as before


def test_no_image_decoded_without_an_image_need(tmp_path: Path, pool: Sandbox) -> None:
    stage, rec = _stage(tmp_path, pool)
    before = X.COUNTERS["media_skipped.image"]
    stage.inspect(_obj(IMAGE, "image/png", "board.png"), 1)
    assert X.COUNTERS["media_skipped.image"] == before + 1
    assert not [t for t in rec.tasks if "images" in t]


def test_embedded_image_is_a_hashed_child_but_not_decoded(tmp_path: Path, pool: Sandbox) -> None:
    stage, rec = _stage(tmp_path, pool)
    before = X.COUNTERS["media_skipped.image"]
    res = stage.inspect(_obj(_docx_with_image(IMAGE), DOCX, "plan.docx"), 1)
    assert [a.profile for a, _ in res.alerts] == ["leak"]  # the document's text still alerts
    [child] = [c for c in res.children if c.filename.endswith("image1.png")]
    assert child.md5 == hashlib.md5(IMAGE).hexdigest()
    assert X.COUNTERS["media_skipped.image"] == before + 1
    assert not [t for t in rec.tasks if "images" in t]


def test_default_text_policy_or_image_inspector_decodes(tmp_path: Path, pool: Sandbox) -> None:
    stage, rec = _stage(tmp_path, pool, "")
    before = X.COUNTERS["media.image"]
    stage.inspect(_obj(IMAGE, "image/png", "board.png"), 1)
    assert X.COUNTERS["media.image"] == before + 1
    assert rec.tasks == ["inspectors.extract.images:analyze_image"]
