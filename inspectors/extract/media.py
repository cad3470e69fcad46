"""Media extraction entry point: images, audio and video by sniffed MIME type.

`extract_media` runs the heavy part (decode, OCR, ASR, frame grabbing) as a worker task —
in the extraction `Sandbox` when one is given (rlimited process, wall-clock timeout), in
process otherwise (tests, benches) — and turns the worker's `Partial` into an `Extraction`
whose children are `ContentObject`s made by the sensor's `ObjectFactory`:

| object | ``Extraction.text`` | children (``kind``) |
|---|---|---|
| image | OCR text (``None`` when OCR was skipped) | ``thumbnail`` (JPEG ≤ 256 px, evidence) |
| audio | ``None`` (the transcript if children are not allowed) | ``transcript`` (``[mm:ss]`` lines), per engine |
| video | ``None`` | ``frame`` (JPEG, ``meta["pts"]``), ``audio`` (16 kHz mono WAV) |

Children are not extracted here: the dispatcher feeds ``frame`` and ``audio`` children back
through extraction (frames get OCRed, the track transcribed). ``thumbnail`` children are
evidence for the console (the parent's ``meta["thumbnail_id"]`` names them) and should not be
extracted or inspected; `extract_media` returns an empty extraction for them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from appliance.model import ContentObject
from inspectors.extract.asr import KwsParams
from inspectors.extract.audio import AudioParams, analyze_audio
from inspectors.extract.base import Budget, Extraction
from inspectors.extract.images import ImageParams, analyze_image
from inspectors.extract.parts import Partial
from inspectors.extract.video import VideoParams, analyze_video

IMAGE_MIMES = frozenset({"image/jpeg", "image/pjpeg", "image/png", "image/gif", "image/webp", "image/bmp",
                         "image/x-ms-bmp", "image/tiff", "image/vnd.microsoft.icon", "image/x-icon"})
AUDIO_MIMES = frozenset({"audio/x-wav", "audio/wav", "audio/wave", "audio/vnd.wave", "audio/mpeg", "audio/mp3",
                         "audio/x-m4a", "audio/mp4", "audio/aac", "audio/x-hx-aac-adts", "audio/amr", "audio/3gpp",
                         "audio/flac", "audio/x-flac", "audio/opus", "audio/webm", "audio/x-aiff"})
VIDEO_MIMES = frozenset({"video/mp4", "video/quicktime", "video/3gpp", "video/webm", "video/x-matroska",
                         "video/x-flv", "video/x-msvideo", "video/avi", "video/mpeg", "video/mp2t", "video/ogg",
                         "video/x-ms-asf", "audio/ogg", "application/ogg"})
"""Containers that may hold video (audio-only ones fall back to the audio path in the worker)."""

TASKS = {
    "image": "inspectors.extract.images:analyze_image",
    "audio": "inspectors.extract.audio:analyze_audio",
    "video": "inspectors.extract.video:analyze_video",
}
_LOCAL: dict[str, Callable[..., Partial]] = {"image": analyze_image, "audio": analyze_audio, "video": analyze_video}


@dataclass(frozen=True, slots=True)
class MediaConfig:
    """Settings for media extraction (the `Budget` adds the per-object limits)."""

    ocr_engine: str = "auto"
    """``auto``/``rapidocr``/``tesseract``/``none``."""
    ocr_langs: str = "eng+chi_sim"
    vosk_model_dir: str = ""
    """A Vosk model directory for free transcription (admins install the model for their language)."""
    kws: bool = True
    kws_params: KwsParams = field(default_factory=KwsParams)
    thumbnails: bool = True
    max_audio_seconds: float = 600.0
    max_video_frames: int = 24
    max_input_bytes: int = 512 * 1024 * 1024
    """Spooled objects larger than this are not read (``input_limit``)."""
    image: ImageParams = field(default_factory=ImageParams)
    audio: AudioParams = field(default_factory=AudioParams)
    video: VideoParams = field(default_factory=VideoParams)


def media_kind(obj: ContentObject, factory: Any = None) -> str | None:
    """``image``, ``audio``, ``video`` or None, from the sniffed MIME type (declared if unsniffed)."""
    mime = (obj.sniffed_mime or "").split(";")[0].strip().lower()
    if (not mime or mime == "application/octet-stream") and factory is not None and obj.data:
        with contextlib.suppress(Exception):
            mime = factory.sniff(obj.data[:65536])[0].lower()
    if not mime or mime == "application/octet-stream":
        mime = (obj.declared_mime or "").split(";")[0].strip().lower()
    if mime in IMAGE_MIMES:
        return "image"
    if mime in VIDEO_MIMES:
        return "video"
    if mime in AUDIO_MIMES:
        return "audio"
    return None


def _params(kind: str, budget: Budget, cfg: MediaConfig, keywords: list[str] | None) -> Any:
    work = max(1.0, budget.max_seconds * 0.8)
    audio = replace(cfg.audio, max_seconds=cfg.max_audio_seconds, max_work_seconds=work,
                    keywords=tuple(keywords or ()), kws=cfg.kws, kws_params=cfg.kws_params,
                    vosk_model_dir=cfg.vosk_model_dir)
    if kind == "image":
        ocr = replace(cfg.image.ocr_params, engine=cfg.ocr_engine, tesseract_langs=cfg.ocr_langs,
                      timeout=min(cfg.image.ocr_params.timeout, work))
        return replace(cfg.image, max_pixels=budget.max_pixels, thumbnail=cfg.thumbnails, ocr_params=ocr,
                       ocr=cfg.ocr_engine != "none", max_text_chars=budget.max_text_chars)
    if kind == "audio":
        return audio
    return replace(cfg.video, max_frames=min(cfg.max_video_frames, max(0, budget.max_children - 1)),
                   max_pixels=min(cfg.video.max_pixels, budget.max_pixels), audio_seconds=cfg.max_audio_seconds,
                   max_work_seconds=work, audio_params=audio)


def _input(obj: ContentObject, cfg: MediaConfig, local: bool) -> bytes | tuple[str, str] | None:
    if obj.data is not None:
        return obj.data
    if not obj.spool_path:
        return None
    if not local:
        return ("path", obj.spool_path)
    try:
        with open(obj.spool_path, "rb") as f:
            return f.read(cfg.max_input_bytes)
    except OSError:
        return None


def extract_media(obj: ContentObject, budget: Budget, factory: Any, *, keywords: list[str] | None = None,
                  config: MediaConfig | None = None, sandbox: Any = None) -> Extraction:
    """Extract one image, audio or video object; never raises.

    ``keywords`` are the active policy's keywords (spotted in speech: see `inspectors.extract.audio`);
    without ``config``, the budget's ``vosk_model_dir`` (the ``inspection.vosk_model_dir`` setting) is used;
    ``sandbox`` is an `inspectors.extract.sandbox.Sandbox` (None: run in this process).
    """
    cfg = config or MediaConfig(vosk_model_dir=budget.vosk_model_dir)
    if obj.kind == "thumbnail":
        return Extraction(meta={"media": "evidence"})
    kind = media_kind(obj, factory)
    if kind is None:
        return Extraction(meta={"media": "unsupported"})
    data = _input(obj, cfg, sandbox is None)
    if data is None or (isinstance(data, bytes) and not data):
        return Extraction(meta={"media": kind}, anomalies=["media_no_data"], truncated=["no_data"])
    if obj.data is None and obj.size > cfg.max_input_bytes:
        return Extraction(meta={"media": kind}, anomalies=["extract_input_limit"], truncated=["input_limit"])
    params = _params(kind, budget, cfg, keywords)
    if sandbox is None:
        try:
            part = _LOCAL[kind](data, params)
        except Exception as exc:
            part = Partial(meta={"error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            part.flag("error", f"{kind}_error")
    else:
        res = sandbox.run(TASKS[kind], data, budget.max_seconds, memory_bytes=budget.max_memory_bytes,
                          params=params)
        if not isinstance(res, Partial):
            reason = str(getattr(res, "reason", "error")).split(":")[0]
            ext = Extraction(meta={"media": kind, "worker": str(getattr(res, "reason", res))[:100]})
            ext.truncated.append(reason)
            ext.anomalies.append(f"extract_{reason}")
            return ext
        part = res
    return _to_extraction(obj, part, kind, budget, factory)


def _to_extraction(obj: ContentObject, part: Partial, kind: str, budget: Budget, factory: Any) -> Extraction:
    ext = Extraction(text=part.text, hidden_text=part.hidden_text, anomalies=list(part.anomalies),
                     truncated=list(part.truncated), meta={"media": kind, **part.meta})
    allowed = obj.depth + 1 <= budget.max_depth
    used = 0
    spill: list[str] = []
    for ch in part.children:
        role = ch.meta.get("role", "child")
        if role == "transcript":
            spill.append(ch.data.decode("utf-8", errors="replace"))
        if not allowed:
            _flag(ext, "depth", "extract_depth_limit")
            continue
        if len(ext.children) >= budget.max_children:
            _flag(ext, "children", "extract_child_limit")
            continue
        if used + len(ch.data) > budget.max_expanded_bytes:
            _flag(ext, "expanded_bytes", "extract_expanded_limit")
            continue
        used += len(ch.data)
        child = _child(obj, ch, role, factory)
        ext.children.append(child)
        if role == "thumbnail":
            ext.meta["thumbnail_id"] = child.id
        if role == "transcript":
            spill.pop()
    if spill and ext.text is None:  # no room for transcript children: keep the words on the object
        ext.text = "\n".join(spill)[: budget.max_text_chars]
    if ext.text is not None and len(ext.text) > budget.max_text_chars:
        ext.text = ext.text[: budget.max_text_chars]
        _flag(ext, "text", "extract_text_limit")
    return ext


def _flag(ext: Extraction, reason: str, anomaly: str) -> None:
    if reason not in ext.truncated:
        ext.truncated.append(reason)
    if anomaly not in ext.anomalies:
        ext.anomalies.append(anomaly)


def _child(obj: ContentObject, ch: Any, role: str, factory: Any) -> ContentObject:
    b = factory.builder()
    b.keep = max(b.keep, len(ch.data))
    b.add(ch.data)
    meta = {k: v for k, v in ch.meta.items() if k != "role"}
    meta["role"] = role
    base = obj.filename or obj.id
    text = ch.data.decode("utf-8", errors="replace") if role == "transcript" else None
    return factory.finish(
        b, source="extract", direction=obj.direction, flow=obj.flow, ts_ns=obj.ts_ns,
        extra_truncated=ch.truncated, anomalies=ch.anomalies,
        kind=role, parent_id=obj.id, depth=obj.depth + 1, tx_id=obj.tx_id,
        declared_mime=ch.mime, filename=f"{base}/{ch.name}", url=obj.url, host=obj.host,
        text=text, meta=meta,
    )
