"""Evidence for display: which part of each snippet to highlight, thumbnails and transcript excerpts.

Returns plain strings and flags only; the templates escape every piece (nothing here is markup).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webui.images import IMAGE_SUFFIXES, safe_join

TRANSCRIPT_EXCERPT = 2000


@dataclass(slots=True)
class EvidenceView:
    parts: list[tuple[bool, str]]
    """(highlighted, text) pieces of the snippet."""
    start: int = 0
    end: int = 0
    image: bool = False
    transcript: str | None = None
    ref: str = ""


@dataclass(slots=True)
class FindingView:
    inspector: str
    rule: str
    score: float | None
    detail: dict[str, Any]
    evidence: list[EvidenceView] = field(default_factory=list)
    library_ref: str = ""


def highlight(snippet: str, start: int, end: int, term: str = "") -> list[tuple[bool, str]]:
    """Split *snippet* around the match: the known term if it occurs, else the match length
    (``end - start``) centred in the symmetric context the inspectors cut around it."""
    if not snippet:
        return []
    if term:
        i = snippet.casefold().find(term.casefold())
        if i >= 0 and len(snippet.casefold()) == len(snippet):
            return _parts(snippet, i, i + len(term))
    m = end - start
    if m <= 0 or m > len(snippet):
        return [(False, snippet)]
    left = start if start < (len(snippet) - m) // 2 else (len(snippet) - m + 1) // 2
    left = max(0, min(left, len(snippet) - m))
    return _parts(snippet, left, left + m)


def _parts(s: str, a: int, b: int) -> list[tuple[bool, str]]:
    return [p for p in ((False, s[:a]), (True, s[a:b]), (False, s[b:])) if p[1]]


def object_image(evidence_dir: Path | None, content_id: str | None) -> Path | None:
    """An object's evidence image by the folder's naming convention: ``<content id>.jpg`` (or ``.png``)."""
    if not content_id:
        return None
    for ext in (".jpg", ".png"):
        p = safe_join(evidence_dir, f"{content_id}{ext}")
        if p is not None:
            return p
    return None


def finding_views(findings: list[dict[str, Any]], evidence_dir: Path | None,
                  retained: dict[str, Any] | None = None) -> list[FindingView]:
    """Each finding's evidence for the page. An image finding whose reference is not a file in the evidence
    folder is shown from the object's retained bytes (*retained*: its content row) when they were kept."""
    wire_image = bool(retained and retained.get("has_bytes")
                      and str(retained.get("sniffed_mime") or retained.get("declared_mime") or "").startswith("image/"))
    out = []
    for f in findings:
        detail = f.get("detail") or {}
        term = str(detail.get("keyword") or "")
        fv = FindingView(f.get("inspector", ""), f.get("rule", ""), f.get("score"), detail,
                         library_ref=str(detail.get("fingerprint_id") or ""))
        for e in f.get("evidence") or []:
            ev = EvidenceView(highlight(str(e.get("snippet", "")), int(e.get("start") or 0),
                                        int(e.get("end") or 0), term),
                              int(e.get("start") or 0), int(e.get("end") or 0), ref=str(e.get("ref") or ""))
            if ev.ref:
                p = safe_join(evidence_dir, ev.ref)
                on_disk = p is not None and p.suffix.lower() in IMAGE_SUFFIXES
                image_finding = fv.inspector in ("perceptual", "md5", "ml_image")
                by_object = image_finding and object_image(evidence_dir, f.get("content_id")) is not None
                if on_disk or by_object or (wire_image and image_finding):
                    ev.image = True
                elif p is not None and p.suffix.lower() in (".txt", ".vtt", ".srt"):
                    with open(p, "rb") as fh:
                        ev.transcript = fh.read(TRANSCRIPT_EXCERPT * 4).decode("utf-8", "replace")[
                            :TRANSCRIPT_EXCERPT]
            fv.evidence.append(ev)
        out.append(fv)
    return out
