"""Extraction dispatcher: one content object → text, hidden text, links and child objects.

``extract(obj, budget, factory)`` picks an extractor by the sniffed MIME type, then the declared
one, then the file name's extension (a generic sniff such as ``text/plain`` or
``application/octet-stream`` gives way to a more specific declaration: a form body sniffs as
plain text). Cheap text formats (HTML, JSON, XML, forms, plain text) run in this process on
bounded input; parsers of untrusted binary formats (PDF, OOXML/ODF, RTF, legacy Office,
e-mail, archives) run in a `Sandbox` worker under RLIMIT_AS/RLIMIT_CPU and a wall-clock
timeout. Images, audio and video go to ``inspectors.extract.media.extract_media`` when that
module exists. Children come back as bytes and are made into `ContentObject`s here with the
``factory`` (source ``extract``, ``parent_id``, ``depth + 1``). A `Usage` passed from call to
call makes the `Budget` hold for a whole tree; `extract_tree` does that walk.

Never raises: every failure is an anomaly and every limit a ``truncated`` reason.
"""

from __future__ import annotations

import importlib
import os
import posixpath
from collections import Counter, deque
from collections.abc import Collection
from dataclasses import replace
from typing import Any, Protocol

from appliance.model import ContentObject
from inspectors.extract.base import Budget, Extraction, Usage
from inspectors.extract.parts import Child, Limits, Partial

__all__ = ["COUNTERS", "Budget", "Extraction", "Usage", "apply", "classify", "extract", "extract_tree",
           "media_needed", "set_sandbox"]

COUNTERS: Counter[str] = Counter()
"""Media objects handed to the media extractor (``media.<kind>``) and skipped because no selected
inspector needs them (``media_skipped.<kind>``), in this process since start-up."""

IN_PROCESS_MAX = 16 * 1024 * 1024
"""Bytes of a text-format object read in-process (more is truncated with ``input_limit``)."""

_MIME_FAMILY = {
    "text/html": "html", "application/xhtml+xml": "html",
    "application/json": "json", "text/json": "json", "application/ld+json": "json",
    "application/x-ndjson": "text",
    "text/xml": "xml", "application/xml": "xml", "image/svg+xml": "xml", "application/rss+xml": "xml",
    "application/atom+xml": "xml", "application/soap+xml": "xml",
    "application/x-www-form-urlencoded": "form",
    "text/plain": "text", "text/csv": "text", "text/css": "text", "text/javascript": "text",
    "application/javascript": "text", "application/x-javascript": "text", "text/markdown": "text",
    "application/pdf": "pdf", "application/x-pdf": "pdf",
    "application/zip": "zip", "application/x-zip-compressed": "zip", "application/java-archive": "zip",
    "application/epub+zip": "zip",
    "application/gzip": "compressed", "application/x-gzip": "compressed", "application/x-bzip2": "compressed",
    "application/x-xz": "compressed",
    "application/x-tar": "tar", "application/x-gtar": "tar",
    "application/x-7z-compressed": "7z", "application/x-rar": "rar", "application/vnd.rar": "rar",
    "application/x-rar-compressed": "rar",
    "application/rtf": "rtf", "text/rtf": "rtf",
    "application/msword": "ole", "application/vnd.ms-excel": "ole", "application/vnd.ms-powerpoint": "ole",
    "application/x-ole-storage": "ole", "application/cdfv2": "ole", "application/vnd.ms-office": "ole",
    "application/x-msi": "ole",
    "message/rfc822": "eml",
}
_EXT_FAMILY = {
    "html": "html", "htm": "html", "xhtml": "html", "shtml": "html", "json": "json", "xml": "xml", "svg": "xml",
    "rss": "xml", "txt": "text", "csv": "text", "log": "text", "md": "text", "js": "text", "css": "text",
    "pdf": "pdf", "zip": "zip", "docx": "zip", "xlsx": "zip", "pptx": "zip", "docm": "zip", "xlsm": "zip",
    "pptm": "zip", "odt": "zip", "ods": "zip", "odp": "zip", "jar": "zip", "epub": "zip", "gz": "compressed",
    "tgz": "compressed", "bz2": "compressed", "xz": "compressed", "tar": "tar", "rtf": "rtf", "doc": "ole",
    "xls": "ole", "ppt": "ole", "eml": "eml", "7z": "7z", "rar": "rar",
    "jpg": "media", "jpeg": "media", "png": "media", "gif": "media", "bmp": "media", "webp": "media", "tif": "media",
    "tiff": "media", "mp3": "media", "wav": "media", "m4a": "media", "ogg": "media", "mp4": "media",
    "webm": "media", "mkv": "media", "avi": "media", "mov": "media", "flv": "media", "amr": "media",
}
_GENERIC = {"", "text", "octet"}
_SANDBOXED = {
    "pdf": "inspectors.extract.pdf:extract_pdf",
    "zip": "inspectors.extract.archives:extract_zip",
    "compressed": "inspectors.extract.archives:extract_compressed",
    "tar": "inspectors.extract.archives:extract_tar",
    "7z": "inspectors.extract.archives:extract_7z",
    "rar": "inspectors.extract.archives:extract_rar",
    "rtf": "inspectors.extract.rtf:extract_rtf",
    "ole": "inspectors.extract.legacy:extract_legacy",
    "eml": "inspectors.extract.eml:extract_eml",
}
_FALLBACK = {"pdf": "inspectors.extract.pdf:salvage_pdf"}


class _Factory(Protocol):  # what we need of reassembly.objects.ObjectFactory (no stage imports another)
    keep_bytes: int

    def builder(self, *, limit: int = 0) -> Any: ...

    def finish(self, b: Any, **kw: Any) -> ContentObject: ...

    def sniff(self, head: bytes, md5: str | None = None) -> tuple[str, str]: ...


_sandbox: Any = None


def set_sandbox(sandbox: Any) -> None:
    """Use ``sandbox`` (an `inspectors.extract.sandbox.Sandbox`) for every later call."""
    global _sandbox
    _sandbox = sandbox


def _get_sandbox(budget: Budget) -> Any:
    if _sandbox is not None:
        return _sandbox
    from inspectors.extract.sandbox import default_sandbox

    return default_sandbox(memory_bytes=budget.max_memory_bytes, cpu_seconds=budget.max_seconds)


def _mime_family(mime: str) -> str:
    mime = mime.split(";", 1)[0].strip().lower()
    if not mime:
        return ""
    fam = _MIME_FAMILY.get(mime)
    if fam:
        return fam
    if mime.endswith("+json"):
        return "json"
    if mime.endswith("+xml"):
        return "xml"
    if mime.startswith(("application/vnd.openxmlformats-officedocument", "application/vnd.oasis.opendocument")):
        return "zip"
    if mime.startswith("application/vnd.ms-") and mime.endswith("macroenabled.12"):
        return "zip"
    if mime.startswith(("image/", "audio/", "video/")):
        return "media"
    if mime.startswith("text/"):
        return "text"
    if mime in ("application/octet-stream", "application/x-empty", "binary/octet-stream"):
        return "octet"
    return "unknown"


def _sniff_bytes(head: bytes) -> str:
    if head.startswith(b"{\\rtf"):
        return "rtf"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "ole"
    if head[257:262] == b"ustar":
        return "tar"
    if head.startswith(b"%PDF-") or b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head.startswith((b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")):
        return "compressed"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head.startswith(b"Rar!\x1a\x07"):
        return "rar"
    return ""


def classify(obj: ContentObject, head: bytes = b"") -> str:
    """The extractor family for ``obj``: ``html``, ``json``, ``xml``, ``form``, ``text``, ``pdf``, ``zip``,
    ``compressed``, ``tar``, ``7z``, ``rar``, ``rtf``, ``ole``, ``eml``, ``media``, or ``""`` (nothing to
    extract)."""
    sniffed = _mime_family(obj.sniffed_mime)
    declared = _mime_family(obj.declared_mime)
    ext = obj.filename.rsplit(".", 1)[-1].lower() if "." in obj.filename else ""
    if not ext and obj.url:
        path = obj.url.split("?", 1)[0].split("#", 1)[0]
        base = posixpath.basename(path)
        ext = base.rsplit(".", 1)[-1].lower() if "." in base else ""
    by_ext = _EXT_FAMILY.get(ext, "")
    by_bytes = _sniff_bytes(head) if head else ""
    if sniffed in ("octet", "unknown", "") and by_bytes:
        sniffed = by_bytes
    if sniffed not in _GENERIC and sniffed != "unknown":
        return sniffed
    if declared not in _GENERIC and declared != "unknown":
        if sniffed == "text" and declared in ("media", "pdf", "zip", "compressed", "tar", "ole", "7z", "rar"):
            return "text"  # text that claims to be binary: read it as text
        return declared
    if (by_ext and by_ext != "media") or (by_ext == "media" and sniffed in ("", "octet")):
        if sniffed == "text" and by_ext not in ("html", "json", "xml", "text", "rtf", "eml"):
            return "text"
        return by_ext
    if sniffed == "text" or declared == "text":
        return "text"
    return ""


def _limits(obj: ContentObject, budget: Budget, usage: Usage, factory: _Factory) -> Limits:
    left_bytes = max(0, budget.max_expanded_bytes - usage.expanded_bytes)
    keep = getattr(factory, "keep_bytes", 0) or 64 * 1024 * 1024
    return Limits(
        max_children=max(0, budget.max_children - usage.children),
        max_child_bytes=max(0, min(keep, left_bytes)),
        max_expanded_bytes=left_bytes,
        max_text_chars=budget.max_text_chars,
        max_seconds=max(0.5, usage.seconds_left(budget)),
        max_pixels=budget.max_pixels,
        make_children=obj.depth + 1 <= budget.max_depth and budget.max_children - usage.children > 0,
    )


def _read(obj: ContentObject, cap: int) -> tuple[bytes, bool]:
    if obj.data is not None:
        return obj.data[:cap], len(obj.data) > cap
    if obj.spool_path:
        try:
            with open(obj.spool_path, "rb") as f:
                data = f.read(cap + 1)
            return data[:cap], len(data) > cap
        except OSError:
            return b"", False
    return b"", False


def _charset(obj: ContentObject) -> str | None:
    from inspectors.extract.charset import obj_declared_charset

    return obj_declared_charset(obj.meta, obj.declared_mime)


def _in_process(family: str, obj: ContentObject, budget: Budget) -> Partial:
    data, cut = _read(obj, IN_PROCESS_MAX)
    cs = _charset(obj)
    if family == "html":
        from inspectors.extract.html import extract_html

        part = extract_html(data, declared_charset=cs, base_url=obj.url, max_chars=budget.max_text_chars)
    else:
        from inspectors.extract import structured

        fn = {"json": structured.extract_json, "xml": structured.extract_xml, "form": structured.extract_form,
              "text": structured.extract_plain}[family]
        part = fn(data, declared_charset=cs, max_chars=budget.max_text_chars)
    if cut:
        part.flag("input_limit")
    return part


def _task(family: str, obj: ContentObject, limits: Limits) -> tuple[Any, dict[str, Any]] | None:
    """(payload, kwargs) of the sandbox task for ``obj`` (None: no bytes to give it)."""
    if obj.data is not None:
        payload: Any = obj.data
    elif obj.spool_path and os.path.exists(obj.spool_path):
        payload = ("path", obj.spool_path)
    else:
        return None
    kwargs: dict[str, Any] = {"limits": limits}
    if family == "compressed":
        kwargs["filename"] = obj.filename
    return payload, kwargs


def _sandboxed(family: str, obj: ContentObject, limits: Limits, budget: Budget, sandbox: Any,
               ahead: Any = None) -> Partial:
    """Run ``family``'s extractor on ``obj`` in the sandbox (``ahead``: its result from a batch)."""
    from inspectors.extract.sandbox import SandboxFailure

    task = _task(family, obj, limits)
    if task is None:
        return Partial()
    payload, kwargs = task
    timeout = limits.max_seconds + 2.0
    res = ahead if ahead is not None else sandbox.run(
        _SANDBOXED[family], payload, timeout, cpu_seconds=limits.max_seconds + 1,
        memory_bytes=budget.max_memory_bytes, **kwargs)
    if isinstance(res, SandboxFailure):
        part = Partial()
        part.flag(f"sandbox:{res.reason}", f"extract_worker_{res.reason.split(':')[0]}")
        part.meta["worker_failure"] = f"{res.reason} {res.detail}".strip()[:200]
        if res.peak_rss:
            part.meta["worker_peak_rss"] = str(res.peak_rss)
        fb = _FALLBACK.get(family)
        if fb and res.reason != "busy":
            again = sandbox.run(fb, payload, timeout, cpu_seconds=limits.max_seconds + 1,
                                memory_bytes=budget.max_memory_bytes, limits=limits)
            if isinstance(again, Partial):
                again.truncated[:0] = part.truncated
                again.anomalies[:0] = part.anomalies
                again.meta.update(part.meta)
                return again
        return part
    if not isinstance(res, Partial):
        part = Partial()
        part.note("extract_bad_result")
        return part
    return res


def _make_child(obj: ContentObject, c: Child, factory: _Factory) -> ContentObject:
    b = factory.builder()
    b.add(c.data)
    meta = dict(c.meta)
    if c.size > len(c.data):
        meta["declared_size"] = str(c.size)
    return factory.finish(
        b, source="extract", direction=obj.direction, flow=obj.flow, ts_ns=obj.ts_ns,
        extra_truncated=c.truncated, anomalies=c.anomalies, parent_id=obj.id, depth=obj.depth + 1, kind="child",
        filename=c.name, declared_mime=c.mime, url=obj.url, host=obj.host, tx_id=obj.tx_id, meta=meta,
    )


def _to_extraction(part: Partial) -> Extraction:
    return Extraction(text=part.text, hidden_text=part.hidden_text, links=list(part.links),
                      anomalies=list(dict.fromkeys(part.anomalies)), truncated=list(dict.fromkeys(part.truncated)),
                      meta=dict(part.meta))


def extract(obj: ContentObject, budget: Budget, factory: _Factory, *, sandbox: Any = None,
            usage: Usage | None = None, keywords: list[str] | None = None,
            needs: Collection[str] | None = None) -> Extraction:
    """Extract ``obj`` within ``budget`` (shared with its tree through ``usage``); never raises.

    ``keywords`` are the active policy's keywords, spotted in speech by the audio extractor.
    ``needs`` (`inspectors.base.NEEDS`; None: everything) says what the inspectors will look
    at: images, audio and video are decoded only when some need asks for it (`media_needed`).
    """
    return _extract_guarded(obj, budget, factory, sandbox, usage or Usage(), keywords, needs, None)


def _extract_guarded(obj: ContentObject, budget: Budget, factory: _Factory, sandbox: Any, usage: Usage,
                     keywords: list[str] | None, needs: Collection[str] | None,
                     ahead: dict[str, tuple[Limits, Any]] | None) -> Extraction:
    usage.objects += 1
    try:
        return _extract(obj, budget, factory, sandbox, usage, keywords, needs, ahead)
    except Exception as exc:  # an extractor bug must not take the sensor down
        ex = Extraction(anomalies=["extract_error"], meta={"error": f"{type(exc).__name__}: {exc}"[:200]})
        return ex


def media_needed(kind: str | None, needs: Collection[str] | None) -> bool:
    """Whether a media object of ``kind`` (``image``/``audio``/``video``) must be decoded for
    ``needs`` (None: always). Images only for their text (OCR: the image inspectors decode what
    they look at themselves), audio for speech, video for frames (pixels or OCR) or speech."""
    if needs is None or kind is None:
        return True
    if kind == "image":
        return "image_text" in needs
    if kind == "audio":
        return "speech" in needs
    return bool({"image_text", "image_pixels", "speech"}.intersection(needs))


def _media(obj: ContentObject, budget: Budget, factory: _Factory, sandbox: Any, keywords: list[str] | None,
           needs: Collection[str] | None) -> Extraction:
    try:
        media = importlib.import_module("inspectors.extract.media")
    except ImportError:
        return Extraction(meta={"extractor": "none", "media": "no media extractor"})
    extract_media = media.extract_media
    kind = media.media_kind(obj, factory) if needs is not None else None
    if not media_needed(kind, needs):
        COUNTERS[f"media_skipped.{kind}"] += 1
        return Extraction(meta={"extractor": "media", "media": str(kind), "media_decode": "not needed"})
    COUNTERS[f"media.{kind}"] += 1
    return extract_media(obj, budget, factory, keywords=keywords,  # type: ignore[no-any-return]
                         sandbox=sandbox or _get_sandbox(budget))


def _extract(obj: ContentObject, budget: Budget, factory: _Factory, sandbox: Any, usage: Usage,
             keywords: list[str] | None = None, needs: Collection[str] | None = None,
             ahead: dict[str, tuple[Limits, Any]] | None = None) -> Extraction:
    head, _ = _read(obj, 4096)
    if not head:
        return Extraction()
    family = classify(obj, head)
    if not family:
        return Extraction(meta={"extractor": "none"})
    if family == "media":
        return _media(obj, budget, factory, sandbox, keywords, needs)
    if usage.seconds_left(budget) <= 0:
        ex = Extraction(truncated=["time"], anomalies=["extract_time_limit"], meta={"extractor": family})
        return ex
    limits = _limits(obj, budget, usage, factory)
    if family in _SANDBOXED:
        pre = ahead.pop(obj.id, None) if ahead else None
        got = pre[1] if pre is not None and _still_valid(pre[0], limits, pre[1]) else None
        part = _sandboxed(family, obj, limits, budget, sandbox or _get_sandbox(budget), got)
    else:
        part = _in_process(family, obj, budget)
    partial_input = bool(obj.truncated or obj.missing_bytes) or (obj.data is not None and len(obj.data) < obj.size)
    if partial_input:
        part.note("extract_partial_input")
    ex = _to_extraction(part)
    ex.meta.setdefault("extractor", family)
    kids = part.children[: max(0, budget.max_children - usage.children)]
    if len(kids) < len(part.children) and "children" not in ex.truncated:
        ex.truncated.append("children")
        ex.anomalies.append("extract_child_limit")
    for c in kids:
        ex.children.append(_make_child(obj, c, factory))
    usage.children += len(ex.children)
    usage.expanded_bytes += max(part.expanded, sum(len(c.data) for c in kids))
    return ex


def apply(obj: ContentObject, ex: Extraction) -> ContentObject:
    """``obj`` with the extraction's text, hidden text, links, truncation and anomalies merged in."""
    meta = dict(obj.meta)
    meta.update(ex.meta)
    return replace(
        obj, text=ex.text, hidden_text=ex.hidden_text, links=tuple(ex.links),
        truncated=tuple(dict.fromkeys([*obj.truncated, *ex.truncated])),
        anomalies=tuple(dict.fromkeys([*obj.anomalies, *ex.anomalies])), meta=meta,
    )


def extract_tree(obj: ContentObject, budget: Budget, factory: _Factory, *, sandbox: Any = None,
                 keywords: list[str] | None = None,
                 needs: Collection[str] | None = None) -> list[tuple[ContentObject, Extraction]]:
    """Extract ``obj`` and, breadth first, every child within ``budget``: [(object, extraction)]
    (``needs``: see `extract`)."""
    usage = Usage()
    out: list[tuple[ContentObject, Extraction]] = []
    queue: deque[ContentObject] = deque([obj])
    ahead: dict[str, tuple[Limits, Any]] = {}
    while queue:
        cur = queue.popleft()
        if queue and cur.id not in ahead:
            try:
                _batch_ahead([cur, *queue], budget, factory, sandbox, usage, ahead)
            except Exception:  # a batching bug must not stop extraction: one at a time then
                ahead.clear()
        ex = _extract_guarded(cur, budget, factory, sandbox, usage, keywords, needs, ahead)
        out.append((cur, ex))
        queue.extend(c for c in ex.children if c.depth <= budget.max_depth)
    return out


def _still_valid(made: Limits, now: Limits, result: Any) -> bool:
    """Whether a result made under ``made`` is what extraction under ``now`` gives: the same
    limits (the time allowance aside), or tighter budget limits that the result kept within
    without hitting any limit (extractors only act on a limit when they reach it)."""
    if replace(made, max_seconds=0) == replace(now, max_seconds=0):
        return True
    loose = replace(made, max_seconds=0, max_children=0, max_child_bytes=0, max_expanded_bytes=0)
    if loose != replace(now, max_seconds=0, max_children=0, max_child_bytes=0, max_expanded_bytes=0):
        return False
    if not isinstance(result, Partial) or result.truncated:
        return False
    return (len(result.children) <= now.max_children and result.expanded <= now.max_expanded_bytes
            and all(max(len(c.data), c.size) <= now.max_child_bytes for c in result.children))


def _batch_ahead(objs: list[ContentObject], budget: Budget, factory: _Factory, sandbox: Any, usage: Usage,
                 ahead: dict[str, tuple[Limits, Any]]) -> None:
    """Send the waiting objects that go to the same sandboxed extractor (a ZIP's documents) to
    the workers as one batch (`Sandbox.run_batch`), each with the limits it would get now.

    `_extract` takes a result only if the object's limits are still the same when its turn
    comes (an earlier sibling may have used up the budget): the outcome is the one-at-a-time
    outcome, without a round trip per object.
    """
    if usage.seconds_left(budget) <= 0:
        return
    groups: dict[str, list[tuple[ContentObject, Limits, tuple[Any, dict[str, Any]]]]] = {}
    for o in objs:
        if o.id in ahead:
            continue
        head, _ = _read(o, 4096)
        family = classify(o, head) if head else ""
        if family not in _SANDBOXED:
            continue
        limits = _limits(o, budget, usage, factory)
        task = _task(family, o, limits)
        if task is not None:
            groups.setdefault(family, []).append((o, limits, task))
    for family, members in groups.items():
        if len(members) < 2:
            continue
        sb = sandbox or _get_sandbox(budget)
        if not hasattr(sb, "run_batch"):
            return
        seconds = max(lim.max_seconds for _, lim, _ in members)
        results = sb.run_batch(_SANDBOXED[family], [task for _, _, task in members], seconds + 2.0,
                               cpu_seconds=seconds + 1, memory_bytes=budget.max_memory_bytes)
        for (o, limits, _), res in zip(members, results):
            ahead[o.id] = (limits, res)
