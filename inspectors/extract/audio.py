"""Audio: decode to 16 kHz mono s16 with PyAV, then speech to text (a sandbox worker task).

`analyze_audio` (``inspectors.extract.audio:analyze_audio``) decodes WAV/MP3/OGG (Vorbis,
Opus)/M4A (AAC)/AMR/FLAC/WebM audio — anything the FFmpeg bundled in the ``av`` wheel reads —
from memory, stopping at ``max_seconds`` (truncated ``duration_limit``). A stream that breaks
part-way keeps what decoded before the break (truncated ``decode_error``). Then:

* with ``vosk_model_dir`` set: vosk free transcription → a transcript child
  (``meta["engine"] = "vosk"``);
* with keywords: pocketsphinx keyword spotting of the English ones → a transcript child
  (``meta["engine"] = "pocketsphinx-kws"``) listing each hit.

Transcripts are text children: one line per segment, ``[mm:ss] text``.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field

from inspectors.extract import asr
from inspectors.extract.parts import Child, Partial

RATE = asr.RATE


@dataclass(frozen=True, slots=True)
class AudioParams:
    """Limits and speech settings for one audio object."""

    max_seconds: float = 600.0
    """Audio decoded (and transcribed) at most; the rest is dropped (``duration_limit``)."""
    max_work_seconds: float = 25.0
    """Wall-clock time for decoding plus ASR; past it the transcript ends (``time``)."""
    keywords: tuple[str, ...] = ()
    kws: bool = True
    """Spot ``keywords`` with pocketsphinx."""
    kws_params: asr.KwsParams = field(default_factory=asr.KwsParams)
    vosk_model_dir: str = ""
    """A Vosk model directory; empty: no free transcription."""
    min_seconds: float = 0.3
    """Shorter audio (UI clicks, notification sounds) is decoded but not transcribed."""


@dataclass(slots=True)
class Decoded:
    pcm: bytes = b""
    seconds: float = 0.0
    container: str = ""
    codec: str = ""
    in_rate: int = 0
    channels: int = 0
    declared_seconds: float = 0.0
    truncated: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    error: str = ""


def decode_pcm(data: bytes, max_seconds: float, deadline: float | None = None) -> Decoded:
    """The first audio stream of ``data`` as 16 kHz mono s16 PCM, at most ``max_seconds`` long."""
    import av

    out = Decoded()
    limit = int(max_seconds * RATE) * 2
    chunks: list[bytes] = []
    n = 0
    try:
        container = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except Exception as exc:
        out.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        out.truncated.append("decode_error")
        out.anomalies.append("audio_unreadable")
        return out
    try:
        out.container = container.format.name
        streams = container.streams.audio
        if not streams:
            out.anomalies.append("audio_no_stream")
            return out
        st = streams[0]
        cc = st.codec_context
        out.codec = cc.name
        out.in_rate = cc.sample_rate or 0
        out.channels = cc.channels or 0
        if st.duration and st.time_base:
            out.declared_seconds = float(st.duration * st.time_base)
        elif container.duration:
            out.declared_seconds = container.duration / 1_000_000
        rs = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        done = False
        try:
            for frame in container.decode(st):
                for f in rs.resample(frame):
                    b = bytes(f.planes[0])[: f.samples * 2]
                    if n + len(b) >= limit:
                        b = b[: limit - n]
                        done = True
                    chunks.append(b)
                    n += len(b)
                if done:
                    out.truncated.append("duration_limit")
                    out.anomalies.append("audio_duration_limit")
                    break
                if deadline is not None and time.monotonic() > deadline:
                    out.truncated.append("time")
                    out.anomalies.append("audio_time_limit")
                    break
            else:
                for f in rs.resample(None):
                    b = bytes(f.planes[0])[: f.samples * 2][: max(0, limit - n)]
                    chunks.append(b)
                    n += len(b)
        except Exception as exc:
            out.error = f"{type(exc).__name__}: {str(exc)[:200]}"
            out.truncated.append("decode_error")
            out.anomalies.append("audio_decode_error")
    finally:
        container.close()
    out.pcm = b"".join(chunks)
    out.seconds = len(out.pcm) / (2 * RATE)
    return out


def analyze_audio(data: bytes, params: AudioParams | None = None, pcm: Decoded | None = None) -> Partial:
    """Decode and transcribe one audio object (worker task); never raises on bad input."""
    p = params or AudioParams()
    out = Partial()
    t0 = time.monotonic()
    deadline = t0 + p.max_work_seconds
    try:
        dec = pcm if pcm is not None else decode_pcm(data, p.max_seconds, deadline)
        _describe(dec, out)
        if dec.pcm and dec.seconds >= p.min_seconds:
            _speech(dec.pcm, p, out, deadline)
    except MemoryError:
        out.flag("memory", "audio_memory")
    except Exception as exc:
        out.meta["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        out.flag("decode_error", "audio_error")
    out.meta["work_seconds"] = f"{time.monotonic() - t0:.3f}"
    return out


def _describe(dec: Decoded, out: Partial) -> None:
    for r in dec.truncated:
        if r not in out.truncated:
            out.truncated.append(r)
    for a in dec.anomalies:
        out.note(a)
    out.meta.update(duration=f"{dec.seconds:.2f}", container=dec.container, codec=dec.codec,
                    sample_rate=str(dec.in_rate), channels=str(dec.channels))
    if dec.declared_seconds:
        out.meta["declared_duration"] = f"{dec.declared_seconds:.2f}"
    if dec.error:
        out.meta["error"] = dec.error


def _speech(pcm: bytes, p: AudioParams, out: Partial, deadline: float) -> None:
    engines: list[str] = []
    keywords = list(p.keywords) if p.kws else []
    if p.vosk_model_dir:
        keywords = _vosk(pcm, p, out, deadline, engines, keywords)
    if keywords:
        if not asr.pocketsphinx_available():
            out.note("asr_pocketsphinx_missing")
        else:
            kp = asr.keyword_plan(keywords, p.kws_params)
            out.meta["kws_keywords"] = str(len(kp.phrases))
            if kp.skipped:
                out.meta["kws_skipped"] = str(len(kp.skipped))
                out.meta["kws_skipped_words"] = ", ".join(k for k, _ in kp.skipped)[:300]
            if kp.approximate:
                out.meta["kws_approximate"] = ", ".join(kp.approximate)[:300]
            if kp.phrases:
                hits, late = asr.spot_keywords(pcm, kp.phrases, deadline, p.kws_params.noise_floor, kp.added,
                                               p.kws_params.cmn_passes, p.kws_params.cmn_seconds,
                                               p.kws_params.phone_loop_prob)
                engines.append("pocketsphinx-kws")
                out.meta["kws_hits"] = str(len(hits))
                _transcript(out, hits, "pocketsphinx-kws", late)
    out.meta["asr"] = ",".join(engines) or "none"


def _vosk(pcm: bytes, p: AudioParams, out: Partial, deadline: float, engines: list[str],
          keywords: list[str]) -> list[str]:
    """Vosk free transcription, and grammar spotting of the keywords in the model's vocabulary
    (when the model has an ``[unk]`` word to absorb other speech). Returns the keywords left
    for pocketsphinx: those the Vosk model cannot hear."""
    if not asr.vosk_available():
        out.note("asr_vosk_missing")
        return keywords
    try:
        segs, late = asr.transcribe_vosk(pcm, p.vosk_model_dir, deadline)
    except Exception as exc:
        out.note("asr_vosk_failed")
        out.meta["vosk_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        return keywords
    engines.append("vosk")
    _transcript(out, segs, "vosk", late)
    if not keywords:
        return keywords
    phrases, cannot, has_unk = asr.plan_vosk(p.vosk_model_dir, keywords)
    out.meta["vosk_keywords"] = str(len(phrases))
    if phrases and has_unk:
        hits, late = asr.spot_vosk(pcm, p.vosk_model_dir, phrases, deadline)
        engines.append("vosk-grammar")
        _transcript(out, hits, "vosk-grammar", late)
    elif phrases:
        out.meta["vosk_grammar"] = "off: the model has no [unk] word (keywords matched on the transcript)"
    return cannot


def _transcript(out: Partial, segs: list[asr.Segment], engine: str, late: bool) -> None:
    if late:
        out.flag("time", "asr_time_limit")
    text = asr.transcript_text(segs)
    body = text.encode("utf-8")
    meta = {"role": "transcript", "engine": engine, "segments": str(len(segs))}
    if late:
        meta["truncated"] = "time"
    out.children.append(Child(f"transcript-{engine}.txt", body, len(body), "text/plain; charset=utf-8",
                              truncated=["time"] if late else [], meta=meta))
