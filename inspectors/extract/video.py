"""Video: keyframes → JPEG image children, audio track → WAV audio child (a sandbox worker task).

`analyze_video` (``inspectors.extract.video:analyze_video``) uses PyAV (FFmpeg bundled in the
``av`` wheel) on MP4/MOV/3GP, WebM/MKV, FLV, AVI, MPEG-TS, Ogg…, from memory:

* **keyframes only** (``skip_frame="NONKEY"``: the decoder skips every other frame, hundreds
  of times real time), keeping frames at least ``min_gap`` seconds apart and dropping
  near-duplicates (64-bit dHash within ``dedupe_bits``), up to ``max_frames``;
* when that yields fewer than ``min_keyframes`` frames for a long video (one keyframe at the
  start is common for screen recordings), a **sampling pass** decodes sequentially and keeps
  one frame every ``max(sample_every, duration / max_frames)`` seconds, bounded by
  ``max_seconds`` of media and the work deadline;
* frames are scaled to ``frame_side`` and re-encoded as JPEG children (``meta["role"] =
  "frame"``, ``meta["pts"]`` in seconds) for the image path to OCR and hash;
* the first audio stream is decoded to 16 kHz mono s16 (at most ``audio_seconds``) and becomes
  one WAV child (``meta["role"] = "audio"``) for the audio path.

A container without a video stream (an audio-only WebM/Ogg/MP4) is handed to
`inspectors.extract.audio.analyze_audio` instead. OpenCV is not used: PyAV decodes from memory,
skips non-key frames in the decoder (OpenCV cannot) and demuxes the audio track too.
"""

from __future__ import annotations

import io
import time
import wave
from dataclasses import dataclass, field

from inspectors.extract.audio import RATE, AudioParams, analyze_audio, decode_pcm
from inspectors.extract.parts import Child, Partial


@dataclass(frozen=True, slots=True)
class VideoParams:
    """Limits for one video."""

    max_frames: int = 24
    min_gap: float = 1.0
    """Keyframes closer than this (seconds) to the last kept frame are skipped."""
    min_keyframes: int = 3
    sample_every: float = 5.0
    max_seconds: float = 1800.0
    """Media time the sampling pass decodes at most."""
    max_pixels: int = 8_300_000
    """Larger frames (beyond 4K UHD) are not decoded."""
    frame_side: int = 1280
    jpeg_quality: int = 80
    dedupe_level: int = 10
    """A frame whose 64×36 greyscale copy differs from a recent kept frame's by at most this
    much anywhere (0–255) is a duplicate. A per-cell maximum, not a hash distance, so a frame
    whose only change is one word of a caption is still kept."""
    audio: bool = True
    audio_seconds: float = 600.0
    max_work_seconds: float = 25.0
    audio_params: AudioParams = field(default_factory=AudioParams)
    """Used only for audio-only containers (transcribed here, not as a child)."""


def _small(img: object) -> object:
    """64×36 greyscale copy for duplicate checks."""
    import numpy as np
    from PIL import Image

    assert isinstance(img, Image.Image)
    return np.asarray(img.convert("L").resize((64, 36), Image.Resampling.BOX), dtype=np.int16)


class _Frames:
    """Collects frames: gap, duplicate and count checks, JPEG encoding."""

    def __init__(self, p: VideoParams, out: Partial) -> None:
        self.p = p
        self.out = out
        self.last_t = -1e9
        self.recent: list[object] = []
        self.kept = 0
        self.dupes = 0

    @property
    def full(self) -> bool:
        return self.kept >= self.p.max_frames

    def offer(self, frame: object, t: float, key: bool) -> None:
        import av

        assert isinstance(frame, av.VideoFrame)
        if t - self.last_t < self.p.min_gap and self.kept:
            return
        w, h = frame.width, frame.height
        s = min(1.0, self.p.frame_side / max(w, h, 1))
        img = frame.to_image(width=max(2, int(w * s)), height=max(2, int(h * s))) if s < 1.0 else frame.to_image()
        small = _small(img)
        if any(int(abs(small - o).max()) <= self.p.dedupe_level for o in self.recent):  # type: ignore[operator]
            self.dupes += 1
            self.last_t = t
            return
        self.recent = [*self.recent[-7:], small]
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=self.p.jpeg_quality)
        data = buf.getvalue()
        self.out.children.append(Child(f"frame-{t:08.2f}.jpg", data, len(data), "image/jpeg", meta={
            "role": "frame", "pts": f"{t:.3f}", "keyframe": "1" if key else "0",
            "width": str(img.width), "height": str(img.height)}))
        self.kept += 1
        self.last_t = t


def analyze_video(data: bytes, params: VideoParams | None = None) -> Partial:
    """Keyframes and audio track of one video (worker task); never raises on bad input."""
    p = params or VideoParams()
    out = Partial()
    t0 = time.monotonic()
    deadline = t0 + p.max_work_seconds
    try:
        has_video = _frames(data, p, out, deadline)
        if has_video is None:
            return out
        if not has_video:
            part = analyze_audio(data, p.audio_params)
            part.meta["video"] = "none"
            return part
        if p.audio:
            _audio(data, p, out, deadline)
    except MemoryError:
        out.flag("memory", "video_memory")
    except Exception as exc:
        out.meta["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        out.flag("decode_error", "video_decode_error")
    out.meta["work_seconds"] = f"{time.monotonic() - t0:.3f}"
    return out


def _frames(data: bytes, p: VideoParams, out: Partial, deadline: float) -> bool | None:
    """Add frame children; False if there is no video stream, None if unreadable."""
    import av

    try:
        c = av.open(io.BytesIO(data), mode="r", metadata_errors="ignore")
    except Exception as exc:
        out.meta["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        out.flag("decode_error", "video_unreadable")
        return None
    try:
        vs = c.streams.video
        out.meta["container"] = c.format.name
        if c.streams.audio:
            out.meta["audio_codec"] = c.streams.audio[0].codec_context.name
        if not vs:
            return False
        st = vs[0]
        cc = st.codec_context
        duration = float(st.duration * st.time_base) if st.duration and st.time_base else \
            (c.duration / 1_000_000 if c.duration else 0.0)
        out.meta.update(video_codec=cc.name, width=str(cc.width), height=str(cc.height),
                        duration=f"{duration:.2f}")
        if cc.width * cc.height > p.max_pixels:
            out.flag("pixel_limit", "video_pixel_limit")
            return True
    except Exception:
        c.close()
        raise
    frames = _Frames(p, out)
    keyframes = 0
    try:
        cc.skip_frame = "NONKEY"
        for fr in c.decode(st):
            keyframes += 1
            t = float(fr.time) if fr.time is not None else 0.0
            frames.offer(fr, t, True)
            if frames.full:
                out.flag("frame_limit", "video_frame_limit")
                break
            if time.monotonic() > deadline:
                out.flag("time", "video_time_limit")
                break
    except Exception as exc:
        out.meta["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
        out.flag("decode_error", "video_decode_error")
    finally:
        c.close()
    out.meta["keyframes_seen"] = str(keyframes)
    out.meta["mode"] = "keyframes"
    if frames.kept < p.min_keyframes and duration > p.sample_every * p.min_keyframes and \
            "frame_limit" not in out.truncated and time.monotonic() < deadline:
        out.meta["mode"] = "keyframes+sampled"
        _sample(data, p, out, frames, duration, deadline)
    out.meta["frames_kept"] = str(frames.kept)
    if frames.dupes:
        out.meta["frames_duplicate"] = str(frames.dupes)
    return True


def _sample(data: bytes, p: VideoParams, out: Partial, frames: _Frames, duration: float, deadline: float) -> None:
    import av

    every = max(p.sample_every, duration / max(1, p.max_frames))
    have = {c.meta.get("pts") for c in out.children}
    next_t = every
    with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as c:
        st = c.streams.video[0]
        st.thread_type = "AUTO"
        try:
            for fr in c.decode(st):
                t = float(fr.time) if fr.time is not None else 0.0
                if t > p.max_seconds:
                    out.flag("duration_limit", "video_duration_limit")
                    break
                if t >= next_t:
                    next_t = t + every
                    if f"{t:.3f}" not in have:
                        frames.offer(fr, t, bool(fr.key_frame))
                    if frames.full:
                        out.flag("frame_limit", "video_frame_limit")
                        break
                if time.monotonic() > deadline:
                    out.flag("time", "video_time_limit")
                    break
        except Exception as exc:
            out.meta["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            out.flag("decode_error", "video_decode_error")


def _audio(data: bytes, p: VideoParams, out: Partial, deadline: float) -> None:
    dec = decode_pcm(data, p.audio_seconds, deadline)
    if not dec.pcm:
        if dec.codec:
            out.note("video_audio_undecodable")
        return
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(dec.pcm)
    wav = buf.getvalue()
    out.children.append(Child("audio.wav", wav, len(wav), "audio/x-wav", truncated=list(dec.truncated), meta={
        "role": "audio", "duration": f"{dec.seconds:.2f}", "codec": dec.codec}))
    out.meta["audio_duration"] = f"{dec.seconds:.2f}"
