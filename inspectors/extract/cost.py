"""What each extraction costs: the table the live scheduler reads, and the cheap part of a tree.

Every extractor family declares a cost class in `EXTRACTOR_COSTS`: ``cheap`` (text of HTML,
JSON, XML, forms, plain text, OOXML/ODF documents, e-mail, RTF and small archives: bounded work
per byte, up to ``max_bytes``) or ``expensive`` (PDF, legacy Office, images/audio/video: OCR,
speech, frames; and anything cheap beyond its size cap). Inspectors declare theirs in their
``cost`` attribute. The settings (``inspection.extractor_costs``) may override any row.

`extract_cheap` walks an object's tree like ``extract_tree`` but extracts only the cheap nodes;
the children whose extraction is expensive come back *deferred* (unextracted, with their bytes)
for the expensive queue, so a DOCX's text is inspected at once while the OCR of its images
waits its turn.
"""

from __future__ import annotations

import posixpath
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from appliance.model import ContentObject
from inspectors.extract import classify, extract, media_needed
from inspectors.extract.base import Budget, Extraction, Usage

__all__ = ["EXTRACTOR_COSTS", "Cost", "ExtractorCost", "extract_cheap", "family", "family_cost"]

Cost = Literal["cheap", "expensive"]
MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ExtractorCost:
    """The cost class of one extractor family; ``cheap`` only up to ``max_bytes`` (0: no cap)."""

    cost: Cost
    max_bytes: int = 0


EXTRACTOR_COSTS: Mapping[str, ExtractorCost] = MappingProxyType({
    "": ExtractorCost("cheap"),  # nothing to extract (the inspectors read the bytes)
    "html": ExtractorCost("cheap", 4 * MiB),  # visible/hidden text and links: one lxml pass
    "json": ExtractorCost("cheap", 4 * MiB),
    "xml": ExtractorCost("cheap", 4 * MiB),
    "form": ExtractorCost("cheap", 1 * MiB),
    "text": ExtractorCost("cheap", 4 * MiB),
    "ooxml": ExtractorCost("cheap", 8 * MiB),  # Word/Excel/PowerPoint/ODF text; embedded media are children
    "eml": ExtractorCost("cheap", 4 * MiB),  # headers and text parts; attachments are children
    "rtf": ExtractorCost("cheap", 2 * MiB),
    "zip": ExtractorCost("cheap", 256 * 1024),  # small archives; large ones expand for long
    "tar": ExtractorCost("cheap", 256 * 1024),
    "compressed": ExtractorCost("cheap", 256 * 1024),
    "pdf": ExtractorCost("expensive"),  # page text, fonts, scanned pages rendered for OCR
    "ole": ExtractorCost("expensive"),  # legacy Office: stream parsing, embedded objects
    "media": ExtractorCost("expensive"),  # OCR of images, speech of audio, frames of video
    "media-raw": ExtractorCost("cheap", 16 * MiB),  # media no inspector needs decoded (hashes read the bytes)
})
"""Extractor family → cost class (families as `family` names them)."""

_OOXML_EXT = frozenset({"docx", "docm", "dotx", "xlsx", "xlsm", "xltx", "pptx", "pptm", "potx", "odt", "ods", "odp",
                        "odg"})
_OOXML_MIME = ("application/vnd.openxmlformats-officedocument", "application/vnd.oasis.opendocument",
               "application/vnd.ms-word.document.macroenabled", "application/vnd.ms-excel.sheet.macroenabled",
               "application/vnd.ms-powerpoint.presentation.macroenabled")


def _head(obj: ContentObject, n: int = 4096) -> bytes:
    if obj.data is not None:
        return obj.data[:n]
    if obj.spool_path:
        try:
            with open(obj.spool_path, "rb") as fh:
                return fh.read(n)
        except OSError:
            return b""
    return b""


def family(obj: ContentObject, head: bytes | None = None) -> str:
    """The extractor family of ``obj`` (`inspectors.extract.classify`), with ZIP files that are
    OOXML/ODF documents named ``ooxml`` (their text is cheap; a generic archive's is not)."""
    head = _head(obj) if head is None else head
    fam = classify(obj, head) if head else ""
    if fam != "zip":
        return fam
    mimes = ((obj.sniffed_mime or "").lower(), (obj.declared_mime or "").lower())
    if any(m.startswith(_OOXML_MIME) for m in mimes):
        return "ooxml"
    name = obj.filename or posixpath.basename(obj.url.split("?", 1)[0])
    if name.rsplit(".", 1)[-1].lower() in _OOXML_EXT:
        return "ooxml"
    if head[:4] == b"PK\x03\x04" and len(head) >= 30:
        n = int.from_bytes(head[26:28], "little")
        first = head[30:30 + n]
        if first in (b"[Content_Types].xml", b"mimetype"):
            return "ooxml"
    return "zip"


def family_cost(fam: str, size: int, costs: Mapping[str, ExtractorCost] = EXTRACTOR_COSTS) -> Cost:
    """The cost class of extracting a ``size``-byte object of family ``fam`` (unknown: expensive)."""
    c = costs.get(fam)
    if c is None:
        return "expensive"
    if c.cost == "cheap" and c.max_bytes and size > c.max_bytes:
        return "expensive"
    return c.cost


def media_decode_needed(obj: ContentObject, needs: Collection[str] | None, factory: Any = None) -> bool:
    """Whether the media object ``obj`` must be decoded (OCR, speech, frames) for ``needs``
    (`inspectors.extract.media_needed`); an unknown kind counts as needed."""
    from inspectors.extract.media import media_kind

    return media_needed(media_kind(obj, factory), needs)


def extract_cheap(obj: ContentObject, budget: Budget, factory: Any, *, costs: Mapping[str, ExtractorCost],
                  needs: Collection[str] | None, sandbox: Any = None, keywords: list[str] | None = None,
                  ) -> tuple[list[tuple[ContentObject, Extraction]], list[ContentObject]]:
    """The cheap part of ``obj``'s tree: [(object, extraction)] for every node extracted (``obj``
    first, breadth first) and the children left for the expensive queue (unextracted).

    A child is extracted here when its family is cheap at its size; a media child whose
    decoding no selected inspector needs (``needs``, `media_decode_needed`) stays as it is
    (listed with an empty extraction: the image inspectors read its bytes); any other child is
    deferred. ``obj`` itself is extracted
    whatever its family (the caller decided it is cheap)."""
    usage = Usage()
    out: list[tuple[ContentObject, Extraction]] = []
    deferred: list[ContentObject] = []
    queue: deque[ContentObject] = deque([obj])
    while queue:
        cur = queue.popleft()
        ex = extract(cur, budget, factory, sandbox=sandbox, usage=usage, keywords=keywords, needs=needs)
        out.append((cur, ex))
        for child in ex.children:
            if child.depth > budget.max_depth:
                continue
            fam = family(child)
            if fam == "media" and not media_decode_needed(child, needs, factory):  # inspected as it is
                out.append((child, Extraction(meta={"extractor": "media", "media_decode": "not needed"})))
                continue
            if family_cost(fam, child.size, costs) == "cheap" and fam != "media":
                queue.append(child)
            else:
                deferred.append(child)
    return out, deferred
