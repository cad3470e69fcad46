"""Video: keyframes → frame children, audio track → audio child, caps and broken input."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from inspectors.extract.base import Budget
from inspectors.extract.media import MediaConfig, extract_media
from inspectors.extract.video import VideoParams, analyze_video
from reassembly.objects import ObjectFactory
from tests.inspectors.extract import media_samples as ms

SCENES = ["Buy cheap VPN now", "Password hunter two", "Meet at the harbour"]
NO_OCR = MediaConfig(ocr_engine="none")


@pytest.fixture(scope="module")
def factory() -> ObjectFactory:
    return ObjectFactory()


@pytest.fixture(scope="module")
def speech() -> bytes:
    if not ms.have_espeak():
        pytest.skip("espeak-ng not installed")
    return ms.espeak_wav(ms.POSITIVE_SENTENCES[0][0], ms.VOICES[0])


@pytest.mark.parametrize("fmt", list(ms.VIDEO_FORMATS))
def test_keyframes_and_audio_track(fmt: str, speech: bytes, factory: ObjectFactory) -> None:
    size = (320, 180) if fmt == "webm" else (640, 360)
    data = ms.make_video(SCENES, fmt=fmt, audio_wav=speech, size=size)
    obj = ms.media_obj(data, factory)
    ext = extract_media(obj, Budget(), factory, config=NO_OCR)
    assert ext.meta["media"] == "video" and not ext.truncated, ext.meta
    frames = [c for c in ext.children if c.kind == "frame"]
    audio = [c for c in ext.children if c.kind == "audio"]
    assert [float(f.meta["pts"]) for f in frames] == pytest.approx([0.0, 2.0, 4.0], abs=0.15)
    assert all(f.sniffed_mime == "image/jpeg" and f.parent_id == obj.id and f.depth == 1 for f in frames)
    assert Image.open(io.BytesIO(frames[0].data)).size == size
    [a] = audio
    assert a.sniffed_mime in ("audio/x-wav", "audio/wav") and abs(float(a.meta["duration"]) - 2.8) < 0.4


@pytest.mark.slow
def test_frames_and_track_go_back_through_extraction(speech: bytes, factory: ObjectFactory) -> None:
    data = ms.make_video(SCENES, audio_wav=speech)
    ext = extract_media(ms.media_obj(data, factory), Budget(), factory)
    texts = [extract_media(c, Budget(), factory).text for c in ext.children if c.kind == "frame"]
    assert [ms.words_found(s.split(), t or "") for s, t in zip(SCENES, texts)] == [len(s.split()) for s in SCENES]
    audio = next(c for c in ext.children if c.kind == "audio")
    tr = extract_media(audio, Budget(), factory, keywords=["password", "bitcoin"]).children
    assert tr[0].kind == "transcript" and tr[0].depth == 2 and "password" in (tr[0].text or "")


def test_frame_cap(factory: ObjectFactory) -> None:
    data = ms.make_video([f"Scene number {i}" for i in range(12)], seconds_per_scene=1.0, size=(320, 180))
    part = analyze_video(data, VideoParams(max_frames=4, audio=False))
    assert len(part.children) == 4 and "frame_limit" in part.truncated and "video_frame_limit" in part.anomalies
    ext = extract_media(ms.media_obj(data, factory), Budget(max_children=3), factory, config=NO_OCR)
    assert len(ext.children) == 2  # one slot kept for the audio track
    assert "frame_limit" in ext.truncated


def test_sampling_when_keyframes_are_rare() -> None:
    """One keyframe for the whole clip (a screen recording): frames are sampled instead."""
    scenes = ["First slide", "Second slide", "Third slide", "Fourth slide"]
    data = ms.make_video(scenes, seconds_per_scene=4.0, size=(320, 180), gop=1000)
    part = analyze_video(data, VideoParams(sample_every=3.0, min_keyframes=3, audio=False))
    assert part.meta["keyframes_seen"] == "1" and part.meta["mode"] == "keyframes+sampled"
    assert len(part.children) >= 4


def test_duplicate_frames_dropped() -> None:
    data = ms.make_video(["Same text"] * 4, seconds_per_scene=2.0, size=(320, 180), vary_background=False)
    part = analyze_video(data, VideoParams(audio=False))
    assert len(part.children) == 1 and part.meta["frames_duplicate"] == "3"


def test_audio_only_container_goes_to_audio_path(speech: bytes, factory: ObjectFactory) -> None:
    data = ms.encode_audio(speech, "opus")  # Ogg: sniffed audio/ogg, may hold video
    ext = extract_media(ms.media_obj(data, factory), Budget(), factory, keywords=["password"])
    assert ext.meta["video"] == "none" and ext.meta["codec"] == "opus"
    assert [c.kind for c in ext.children] == ["transcript"]


def test_cut_short_mp4_is_flagged(factory: ObjectFactory) -> None:
    data = ms.make_video(SCENES, size=(320, 180))
    ext = extract_media(ms.media_obj(data[: len(data) // 2], factory), Budget(), factory, config=NO_OCR)
    assert ext.truncated and ext.anomalies


@pytest.mark.parametrize("blob", [b"\x1aE\xdf\xa3" + b"\x00" * 300, b"FLV\x01" + bytes(range(256)),
                                  b"\x00\x00\x00\x18ftypmp42" + b"\xff" * 500, b"RIFF\x00\x00\x00\x00AVI LIST"])
def test_garbage_never_raises(blob: bytes) -> None:
    part = analyze_video(blob, VideoParams())
    assert part.children == [] and (part.truncated or part.anomalies)


def test_oversized_frames_not_decoded() -> None:
    data = ms.make_video(SCENES[:1], size=(640, 360))
    part = analyze_video(data, VideoParams(max_pixels=100_000, audio=False))
    assert part.truncated == ["pixel_limit"] and part.children == []
