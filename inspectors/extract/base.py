"""The extraction contract: what an extractor returns and the budget it works within.

An extractor turns one content object into text (what a person would read or hear), links
(for the hidden-link inspector) and child objects (an image inside a DOCX, a file inside a
ZIP, keyframes of a video, the transcript of its audio). Extractors of untrusted formats
run in sandboxed worker processes (`inspectors.extract.sandbox`); every budget hit is data
(``truncated`` reasons and anomalies), never an exception.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from appliance.model import ContentObject, Link


@dataclass(slots=True)
class Budget:
    """Limits for extracting one top-level object and everything inside it."""

    max_depth: int = 3
    """Nesting depth of children (a ZIP in a ZIP in a DOCX…)."""
    max_children: int = 256
    max_expanded_bytes: int = 256 * 1024 * 1024
    """Bytes all children may expand to, together."""
    max_text_chars: int = 4 * 1024 * 1024
    max_seconds: float = 30.0
    """Wall-clock time for the whole object (worker processes are killed past it)."""
    max_memory_bytes: int = 1024 * 1024 * 1024
    """Address-space limit of a parser worker process (RLIMIT_AS)."""
    max_pixels: int = 50_000_000
    """Images larger than this are not decoded (a pixel bomb)."""
    vosk_model_dir: str = ""
    """A Vosk model for speech (``inspection.vosk_model_dir``), used when no `MediaConfig` is given."""


@dataclass(slots=True)
class Extraction:
    """What extraction made of one object."""

    text: str | None = None
    """Visible text (None: the type has no text extractor)."""
    hidden_text: str | None = None
    """Text present but hidden from a reader (CSS tricks), for the hidden-link/dark-word inspectors."""
    links: list[Link] = field(default_factory=list)
    children: list[ContentObject] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)
    """Type-specific facts worth showing an analyst (page count, image size, duration…)."""


@dataclass(slots=True)
class Usage:
    """What the extraction of one top-level object has used so far (shared by its whole tree).

    The `Budget` limits are for "one top-level object and everything inside it"; a `Usage`
    carried from the top-level call to the calls for its children makes those limits hold
    across the tree (child count, expanded bytes, wall-clock time).
    """

    children: int = 0
    expanded_bytes: int = 0
    started: float = field(default_factory=time.monotonic)
    objects: int = 0
    """Objects extracted so far (the top-level one included)."""

    def seconds_left(self, budget: Budget) -> float:
        return budget.max_seconds - (time.monotonic() - self.started)
