"""Speech to text on 16 kHz mono s16 PCM: vosk free transcription, pocketsphinx keyword spotting.

* **vosk** (when an admin configures ``model_dir``: a Vosk/Kaldi model for the language) does
  free transcription; keywords are matched afterwards by the keyword inspector on the
  transcript. Vosk's grammar mode is *not* used: it forces unrelated speech onto grammar words.
* **pocketsphinx keyword spotting** is the bundled default that needs no download: its
  en-US acoustic model and dictionary ship in the wheel. It spots the active policy's
  English keywords (words or phrases whose every word is in its dictionary; others are
  reported as skipped) at about 3 % of real time. Each keyword gets a detection threshold
  from its phone count (`kws_threshold`), tuned on espeak-ng clips.

Both give `Segment` lists (start/end seconds, text). Models and decoders are cached per
worker process. Long audio is fed in 1-second blocks with a deadline check between blocks.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, NamedTuple

RATE = 16000
_BLOCK = RATE * 2  # one second of s16 mono
_WORD = re.compile(r"^[a-z][a-z']*$")


class Segment(NamedTuple):
    start: float
    end: float
    text: str
    score: float = 1.0


@dataclass(frozen=True, slots=True)
class KwsParams:
    """pocketsphinx keyword-spotting thresholds: 10^-(base + per_phone × phones), clamped.

    Tuned on espeak-ng clips (see docs/media.md): lower exponents miss keywords, higher ones
    start to fire on unrelated speech.
    """

    base: float = 2.0
    per_phone: float = 3.0
    min_exp: float = 15.0
    max_exp: float = 50.0
    max_keywords: int = 500
    noise_floor: float = 50.0
    """Std-dev of a fixed-seed Gaussian noise floor added before spotting (s16 units, ≈ −56 dBFS).
    Digital silence (synthetic or gated audio) derails pocketsphinx's live cepstral mean
    normalisation; a faint floor, like any real recording has, raised recall from 11–16 to
    15–20 of 20 clips per voice on the tuning set."""


def kws_threshold(phones: int, p: KwsParams) -> float:
    """Detection threshold for a keyphrase of ``phones`` phones (longer phrases need lower ones)."""
    exp = min(p.max_exp, max(p.min_exp, p.base + p.per_phone * phones))
    return 10.0 ** -exp


def format_offset(seconds: float) -> str:
    """``[mm:ss]`` (``[h:mm:ss]`` past an hour)."""
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"[{h}:{m:02d}:{sec:02d}]" if h else f"[{m:02d}:{sec:02d}]"


def transcript_text(segments: list[Segment]) -> str:
    """One line per segment: ``[mm:ss] text``."""
    return "\n".join(f"{format_offset(s.start)} {s.text}" for s in segments)


# ---------------------------------------------------------------- pocketsphinx

_ps_lock = threading.Lock()
_ps_base: Any = None
_ps_decoders: OrderedDict[tuple[tuple[str, float], ...], Any] = OrderedDict()


def pocketsphinx_available() -> bool:
    try:
        import pocketsphinx  # noqa: F401
    except Exception:
        return False
    return True


def _base_decoder() -> Any:
    global _ps_base
    if _ps_base is None:
        from pocketsphinx import Decoder

        _ps_base = Decoder(samprate=RATE, loglevel="FATAL", dither=True)
    return _ps_base


def plan_keywords(keywords: list[str] | tuple[str, ...], p: KwsParams | None = None) -> tuple[
        list[tuple[str, float]], list[str]]:
    """(spottable (phrase, threshold) pairs, skipped keywords) for pocketsphinx's dictionary.

    Keywords are lower-cased; a phrase is spottable when every word is in the dictionary
    (Chinese, numbers and out-of-vocabulary words are skipped).
    """
    p = p or KwsParams()
    with _ps_lock:
        dec = _base_decoder()
        plan: dict[str, float] = {}
        skipped: list[str] = []
        for kw in keywords:
            phrase = " ".join(kw.lower().split())
            words = phrase.split()
            if not words or phrase in plan:
                continue
            phones = 0
            for w in words:
                pron = dec.lookup_word(w) if _WORD.match(w) else None
                if not pron:
                    phones = -1
                    break
                phones += len(pron.split())
            if phones <= 0 or len(plan) >= p.max_keywords:
                skipped.append(kw)
                continue
            plan[phrase] = kws_threshold(phones, p)
    return sorted(plan.items()), skipped


def _kws_decoder(plan: list[tuple[str, float]]) -> Any:
    key = tuple(plan)
    dec = _ps_decoders.get(key)
    if dec is not None:
        _ps_decoders.move_to_end(key)
        return dec
    from pocketsphinx import Decoder

    fd, path = tempfile.mkstemp(prefix="tapsift-kws-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            for phrase, thr in plan:
                f.write(f"{phrase} /{thr:.0e}/\n")
        dec = Decoder(samprate=RATE, kws=path, loglevel="FATAL", dither=True)
    finally:
        os.unlink(path)
    _ps_decoders[key] = dec
    while len(_ps_decoders) > 4:
        _ps_decoders.popitem(last=False)
    return dec


def add_noise_floor(pcm: bytes, std: float) -> bytes:
    """``pcm`` plus deterministic Gaussian noise of ``std`` (s16 units)."""
    if std <= 0 or not pcm:
        return pcm
    import numpy as np

    a = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32)
    a += np.random.default_rng(len(a)).normal(0.0, std, len(a)).astype(np.float32)
    return a.clip(-32768, 32767).astype("<i2").tobytes()


def spot_keywords(pcm: bytes, plan: list[tuple[str, float]], deadline: float | None = None,
                  noise_floor: float = 0.0) -> tuple[list[Segment], bool]:
    """pocketsphinx keyword spotting over ``pcm``: (hits in time order, stopped at the deadline)."""
    if not plan or not pcm:
        return [], False
    pcm = add_noise_floor(pcm, noise_floor)
    with _ps_lock:
        dec = _kws_decoder(plan)
        late = False
        dec.start_utt()
        for i in range(0, len(pcm), _BLOCK):
            dec.process_raw(pcm[i:i + _BLOCK], False, False)
            if deadline is not None and time.monotonic() > deadline:
                late = True
                break
        dec.end_utt()
        hits: list[Segment] = []
        if dec.hyp() is not None:
            fr = 100.0  # frames per second
            for s in dec.seg():
                word = s.word.strip()
                if word and not word.startswith(("<", "[")):
                    hits.append(Segment(s.start_frame / fr, s.end_frame / fr, word, float(s.prob)))
    return hits, late


# ---------------------------------------------------------------- vosk

_vosk_lock = threading.Lock()
_vosk_models: dict[str, Any] = {}


def vosk_available() -> bool:
    try:
        import vosk  # noqa: F401
    except Exception:
        return False
    return True


def _vosk_model(model_dir: str) -> Any:
    m = _vosk_models.get(model_dir)
    if m is None:
        import vosk

        vosk.SetLogLevel(-1)
        if not os.path.isdir(model_dir):
            raise FileNotFoundError(f"vosk model directory {model_dir!r} not found")
        m = vosk.Model(model_dir)
        _vosk_models.clear()  # one model per worker: they are hundreds of MB
        _vosk_models[model_dir] = m
    return m


def _vosk_segment(res: str) -> Segment | None:
    try:
        d = json.loads(res)
    except ValueError:
        return None
    text = " ".join(str(d.get("text", "")).split())
    if not text:
        return None
    words = d.get("result") or []
    if words:
        return Segment(float(words[0].get("start", 0.0)), float(words[-1].get("end", 0.0)), text,
                       sum(float(w.get("conf", 1.0)) for w in words) / len(words))
    return Segment(0.0, 0.0, text)


def transcribe_vosk(pcm: bytes, model_dir: str, deadline: float | None = None) -> tuple[list[Segment], bool]:
    """Free transcription with the Vosk model in ``model_dir``: (segments, stopped at the deadline)."""
    import vosk

    with _vosk_lock:
        model = _vosk_model(model_dir)
        rec = vosk.KaldiRecognizer(model, RATE)
        rec.SetWords(True)
        segs: list[Segment] = []
        late = False
        for i in range(0, len(pcm), _BLOCK // 2):
            if rec.AcceptWaveform(pcm[i:i + _BLOCK // 2]):
                seg = _vosk_segment(rec.Result())
                if seg:
                    segs.append(seg)
            if deadline is not None and time.monotonic() > deadline:
                late = True
                break
        seg = _vosk_segment(rec.FinalResult())
        if seg:
            segs.append(seg)
    return segs, late
