"""The inspector protocol, the per-object inspection context and the guard around each call."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from appliance.model.alerts import Finding
from appliance.model.content import ContentObject
from appliance.model.inspection import InspectorConfig

log = logging.getLogger(__name__)

DEFAULT_MAX_TEXT_CHARS = 8 * 1024 * 1024
"""Text scanned per object unless the inspector's params say otherwise (the rest is flagged)."""


class InspectorConfigError(ValueError):
    """A list or parameter an inspector cannot use; the message names the list and the item."""


@runtime_checkable
class Inspector(Protocol):
    """A matcher or extractor run on content objects (see DESIGN.md, stage contracts)."""

    name: str
    kinds: frozenset[str]
    cost: Literal["cheap", "expensive"]

    def configure(self, config: InspectorConfig) -> None:
        """Compile the lists once per policy version; raise ``InspectorConfigError`` on bad specs."""
        ...

    def inspect(self, obj: ContentObject, ctx: InspectContext) -> Iterator[Finding]:
        """Findings on ``obj``; must not raise on any input (the guard catches it if it does)."""
        ...


@dataclass(slots=True)
class InspectContext:
    """What one inspection pass over an object (and its siblings) shares.

    ``text(obj)`` extracts the object's text lazily (``inspectors.text``) and caches it;
    ``cache`` holds other per-object derived data (normalised text) keyed by
    ``(obj.id, key)``; ``flags`` records per-object conditions such as a scan cut short
    (``keyword_truncated``, ``deadline``); ``deadline`` is a ``time.monotonic()`` value
    (a CPU budget, not a timestamp) or None.
    """

    deadline: float | None = None
    counters: Counter[str] = field(default_factory=Counter)
    max_text_bytes: int = 32 * 1024 * 1024
    clock: Callable[[], float] = time.monotonic
    cache: dict[tuple[str, str], Any] = field(default_factory=dict)
    flags: dict[str, list[str]] = field(default_factory=dict)

    def text(self, obj: ContentObject) -> str:
        """The object's text (``obj.text`` if set, else extracted from its bytes); never raises."""
        key = (obj.id, "text")
        got = self.cache.get(key)
        if got is None:
            from inspectors.text import extract_text

            try:
                got = extract_text(obj, max_bytes=self.max_text_bytes)
            except Exception:  # extraction must not stop inspection
                log.warning("text extraction failed for %s", obj.id, exc_info=True)
                self.counters["text_errors"] += 1
                got = ""
            self.cache[key] = got
        return got

    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return self.deadline is not None and self.clock() >= self.deadline

    def flag(self, obj: ContentObject, code: str) -> None:
        """Record a condition on ``obj`` (once) and count it."""
        got = self.flags.setdefault(obj.id, [])
        if code not in got:
            got.append(code)
            self.counters[f"flag.{code}"] += 1

    def forget(self, obj: ContentObject) -> None:
        """Drop what is cached for ``obj`` (call when done with it)."""
        for key in [k for k in self.cache if k[0] == obj.id]:
            del self.cache[key]


_logged: set[tuple[str, str]] = set()


def guarded(inspector: Inspector, obj: ContentObject, ctx: InspectContext) -> list[Finding]:
    """Run ``inspector`` on ``obj``; an exception is logged and counted, never raised.

    Findings yielded before the failure are kept. ``BaseException`` subclasses that are not
    ``Exception`` (KeyboardInterrupt, SystemExit) still propagate.
    """
    name = getattr(inspector, "name", type(inspector).__name__)
    out: list[Finding] = []
    try:
        for finding in inspector.inspect(obj, ctx):
            out.append(finding)
    except Exception as exc:
        ctx.counters[f"inspector_errors.{name}"] += 1
        key = (name, type(exc).__name__)
        if key not in _logged:  # full traceback once per inspector and error type
            _logged.add(key)
            log.exception("inspector %s failed on %s", name, obj.id)
        else:
            log.warning("inspector %s failed on %s: %r", name, obj.id, exc)
    return out


# --------------------------------------------------------------------------- extraction needs

NEEDS = frozenset({"text", "image_text", "image_pixels", "speech"})
"""What an inspector can ask extraction for (``Inspector.needs``):

* ``text``: the text of pages, documents and archive members (and the members as children);
* ``image_text``: OCR of images, of video frames and of scanned pages;
* ``image_pixels``: images decoded by the inspector itself (perceptual hashes, image ML), and so
  the frames of videos as image children;
* ``speech``: transcripts of audio and of videos' sound tracks.

Images, audio and video are decoded by extraction only when some selected inspector needs them
(`appliance.inspection` takes the union over a rule selection, once per policy version).
"""

_KIND_NEEDS: dict[str, frozenset[str]] = {
    "text": frozenset({"text"}), "html": frozenset({"text"}), "any": frozenset({"text"}),
    "binary": frozenset({"text"}), "image": frozenset({"image_pixels"}), "audio": frozenset({"speech"}),
    "video": frozenset({"image_pixels", "speech"}),
}


def needs_of(inspector: object, config: InspectorConfig | None = None) -> frozenset[str]:
    """What ``inspector`` (configured with ``config``) needs extraction to make.

    An inspector's own ``needs`` attribute when it declares one, else derived from its
    ``kinds`` (text kinds → ``text``, ``image`` → ``image_pixels``, ``audio`` → ``speech``,
    ``video`` → both). An inspector of ``text`` kinds also reads the text in images (OCR,
    ``image_text``) and what is said in audio and video (``speech``), as a person would; its
    params may turn either off (``ocr: false``, ``speech: false``) where that cost is not wanted.
    """
    declared = getattr(inspector, "needs", None)
    if declared is None:
        out: set[str] = set()
        for kind in getattr(inspector, "kinds", frozenset()) or ("any",):
            out |= _KIND_NEEDS.get(kind, frozenset({"text"}))
    else:
        out = set(declared)
    params = config.params if config is not None else {}
    reads_text = "text" in (getattr(inspector, "kinds", None) or ())  # keyword, dataclass, darkword, ml_text
    if params.get("ocr", reads_text):
        out.add("image_text")
    if params.get("speech", reads_text):
        out.add("speech")
    return frozenset(out)
