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

from inspectors.extract import g2p

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
    per_phone: float = 3.5
    min_exp: float = 15.0
    max_exp: float = 50.0
    max_keywords: int = 500
    oov_strictness: float = 3.0
    """Exponent taken off the threshold of a phrase with a word outside the dictionary (its
    espeak-ng pronunciation is less sure, and short ones fired on unrelated speech)."""
    phone_loop_prob: float = 1e-1
    """pocketsphinx's ``kws_plp``: how much the phone loop (the "anything else" the keywords
    compete with) is penalised. A recall-first alternative, measured on the held-out-style set
    (clean, 5 voices): ``phone_loop_prob=1e-3, per_phone=3.0, oov_strictness=5`` finds 35/60
    clips instead of 28/60, but 3/20 negatives get a hit instead of 1/20, and one tuning-set
    negative too; the default keeps the false hits down."""
    cmn_passes: int = 2
    """Passes over the clip's start that adapt the cepstral mean before spotting (see `spot_keywords`):
    0 gave 13/20 on the tuning voice, 1 gave 15/20, 2 gave 18/20 (as the old carried-over mean did)."""
    cmn_seconds: float = 30.0
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
_ps_decoders: OrderedDict[tuple[Any, ...], Any] = OrderedDict()


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

        # dither off: pocketsphinx's dither adds random noise per run, so the same clip could give
        # different hits; the fixed-seed noise floor (KwsParams.noise_floor) does its job instead
        _ps_base = Decoder(samprate=RATE, loglevel="FATAL", dither=False)
    return _ps_base


class KeywordPlan(NamedTuple):
    """What pocketsphinx will spot: (phrase, threshold) pairs, pronunciations it adds to its
    dictionary (word → ARPAbet phones: espeak-ng letter-to-sound for out-of-vocabulary words,
    approximate ones for Mandarin), and the keywords it cannot spot with the reason."""

    phrases: list[tuple[str, float]]
    added: dict[str, str]
    approximate: list[str]
    skipped: list[tuple[str, str]]


def _pronounce(dec: Any, word: str) -> tuple[str | None, bool]:
    """(ARPAbet phones, from the dictionary) of one lower-case word."""
    pron = dec.lookup_word(word) if _WORD.match(word) else None
    if pron:
        return pron, True
    return g2p.english(word), False


def keyword_plan(keywords: list[str] | tuple[str, ...], p: KwsParams | None = None) -> KeywordPlan:
    """Plan pocketsphinx spotting of ``keywords`` (lower-cased, whitespace collapsed).

    A word in the US-English dictionary uses its pronunciation; an out-of-vocabulary one gets
    espeak-ng's (`inspectors.extract.g2p`); a Mandarin keyword gets an approximate English-phone
    pronunciation (listed in ``approximate``). Keywords with digits or other scripts, or all of
    them when espeak-ng is missing and the word is not in the dictionary, are ``skipped``.
    """
    p = p or KwsParams()
    with _ps_lock:
        dec = _base_decoder()
        plan: dict[str, float] = {}
        added: dict[str, str] = {}
        approx: list[str] = []
        skipped: list[tuple[str, str]] = []
        for kw in keywords:
            phrase = " ".join(kw.lower().split())
            if not phrase or phrase in plan:
                continue
            if len(plan) >= p.max_keywords:
                skipped.append((kw, f"more than {p.max_keywords} spoken keywords"))
                continue
            if g2p.CJK.search(phrase):
                zh = g2p.mandarin(phrase.replace(" ", ""))
                if not zh:
                    skipped.append((kw, "Mandarin needs espeak-ng (or a Mandarin Vosk model)"))
                    continue
                name = phrase.replace(" ", "")
                added[name] = zh
                approx.append(kw)
                plan[name] = kws_threshold(len(zh.split()), p)
                continue
            phones = 0
            why = ""
            oov = False
            for w in phrase.split():
                pron, known = _pronounce(dec, w)
                if not pron:
                    why = ("not a word (digits or symbols)" if not re.fullmatch(r"[a-z][a-z'-]*", w)
                           else "not in the dictionary and espeak-ng is not installed")
                    break
                if not known:
                    added[w] = pron
                    oov = True
                phones += len(pron.split())
            if why:
                skipped.append((kw, why))
                continue
            plan[phrase] = kws_threshold(phones, p) * (10.0 ** p.oov_strictness if oov else 1.0)
    return KeywordPlan(sorted(plan.items()), added, approx, skipped)


def plan_keywords(keywords: list[str] | tuple[str, ...], p: KwsParams | None = None) -> tuple[
        list[tuple[str, float]], list[str]]:
    """(spottable (phrase, threshold) pairs, skipped keywords): see `keyword_plan`."""
    kp = keyword_plan(keywords, p)
    return kp.phrases, [k for k, _ in kp.skipped]


def _kws_decoder(plan: list[tuple[str, float]], added: dict[str, str], plp: float = 1e-1) -> tuple[Any, str]:
    """(decoder, its initial cepstral mean), cached per plan."""
    key = (tuple(plan), tuple(sorted(added.items())), plp)
    hit = _ps_decoders.get(key)
    if hit is not None:
        _ps_decoders.move_to_end(key)
        return hit
    from pocketsphinx import Decoder

    dec = Decoder(samprate=RATE, loglevel="FATAL", dither=False, kws_plp=plp)
    for word, phones in added.items():
        dec.add_word(word, phones, False)
    fd, path = tempfile.mkstemp(prefix="tapsift-kws-", suffix=".txt")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for phrase, thr in plan:
                f.write(f"{phrase} /{thr:.0e}/\n")
        dec.add_kws("kws", path)
        dec.activate_search("kws")
    finally:
        os.unlink(path)
    _ps_decoders[key] = (dec, dec.get_cmn())
    while len(_ps_decoders) > 4:
        _ps_decoders.popitem(last=False)
    return _ps_decoders[key]


def add_noise_floor(pcm: bytes, std: float) -> bytes:
    """``pcm`` plus deterministic Gaussian noise of ``std`` (s16 units)."""
    if std <= 0 or not pcm:
        return pcm
    import numpy as np

    a = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32)
    a += np.random.default_rng(len(a)).normal(0.0, std, len(a)).astype(np.float32)
    return a.clip(-32768, 32767).astype("<i2").tobytes()


def spot_keywords(pcm: bytes, plan: list[tuple[str, float]], deadline: float | None = None,
                  noise_floor: float = 0.0, added: dict[str, str] | None = None, cmn_passes: int = 2,
                  cmn_seconds: float = 30.0, phone_loop_prob: float = 1e-1) -> tuple[list[Segment], bool]:
    """pocketsphinx keyword spotting over ``pcm``: (hits in time order, stopped at the deadline).
    ``added`` are the pronunciations of `keyword_plan` for words outside the dictionary.
    Deterministic: the same audio gives the same hits."""
    if not plan or not pcm:
        return [], False
    pcm = add_noise_floor(pcm, noise_floor)
    with _ps_lock:
        dec, cmn = _kws_decoder(plan, added or {}, phone_loop_prob)
        late = False
        # the live cepstral mean would carry over from the previous clip, so the same audio sent
        # twice was decoded differently: every clip starts from the model's mean, adapted to this
        # clip by `cmn_passes` passes over its first `cmn_seconds`
        dec.set_cmn(cmn)
        warm = pcm[: int(cmn_seconds * RATE) * 2]
        for _ in range(cmn_passes):
            dec.start_utt()
            for i in range(0, len(warm), _BLOCK):
                dec.process_raw(warm[i:i + _BLOCK], False, False)
            dec.end_utt()
            dec.set_cmn(dec.get_cmn(True))
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
        # the first decode after loading differs from every later one (lazily built graph
        # caches): warm up on a second of faint noise, so the same clip always gives the same text
        rec = vosk.KaldiRecognizer(m, RATE)
        rec.AcceptWaveform(add_noise_floor(bytes(_BLOCK), 50.0))
        rec.FinalResult()
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


def vosk_missing_words(model_dir: str, words: list[str]) -> list[str]:
    """The ``words`` missing from the Vosk model's vocabulary (``"[unk]"`` included, if asked).

    Vosk has no vocabulary query; building a grammar recognizer logs one warning per missing
    word, which is read back from stderr (file descriptor 2, redirected for the call).
    """
    import vosk

    if not words:
        return []
    with _vosk_lock:
        model = _vosk_model(model_dir)
        saved = os.dup(2)
        with tempfile.TemporaryFile() as err:
            try:
                os.dup2(err.fileno(), 2)
                vosk.SetLogLevel(0)
                vosk.KaldiRecognizer(model, RATE, json.dumps(words, ensure_ascii=False))
            finally:
                vosk.SetLogLevel(-1)
                os.dup2(saved, 2)
                os.close(saved)
            err.seek(0)
            log = err.read().decode("utf-8", "replace")
    missing = set(re.findall(r"missing in vocabulary: '([^']*)'", log))
    return [w for w in words if w in missing]


def vosk_words(keyword: str) -> list[str]:
    """A keyword as Vosk grammar words: space-separated words; CJK runs split into characters
    when the whole run is not a word of the model (see `plan_vosk`)."""
    return keyword.lower().split()


_vosk_plans: OrderedDict[tuple[str, tuple[str, ...]], tuple[list[str], list[str], bool]] = OrderedDict()


def plan_vosk(model_dir: str, keywords: list[str] | tuple[str, ...]) -> tuple[list[str], list[str], bool]:
    """(phrases the model can spot, keywords it cannot, whether it has an ``[unk]`` word).

    A phrase is spottable when each of its words is in the model's vocabulary; a Chinese
    keyword that is not one word is tried as its characters. Cached per model and keyword set.
    """
    key = (model_dir, tuple(keywords))
    if key not in _vosk_plans:
        _vosk_plans[key] = _plan_vosk(model_dir, keywords)
        while len(_vosk_plans) > 4:
            _vosk_plans.popitem(last=False)
    return _vosk_plans[key]


def _plan_vosk(model_dir: str, keywords: list[str] | tuple[str, ...]) -> tuple[list[str], list[str], bool]:
    cands: dict[str, list[str]] = {}
    for kw in keywords:
        ws = vosk_words(kw)
        if ws:
            cands[kw] = ws
    chars = {c for kw, ws in cands.items() if g2p.CJK.search(kw) for w in ws for c in w}
    vocab_q = sorted({w for ws in cands.values() for w in ws} | chars | {"[unk]"})
    missing = set(vosk_missing_words(model_dir, vocab_q))
    phrases: list[str] = []
    cannot: list[str] = []
    for kw, ws in cands.items():
        if all(w not in missing for w in ws):
            phrases.append(" ".join(ws))
        elif g2p.CJK.search(kw) and all(c not in missing for w in ws for c in w):
            phrases.append(" ".join(c for w in ws for c in w))
        else:
            cannot.append(kw)
    return phrases, cannot, "[unk]" not in missing


def spot_vosk(pcm: bytes, model_dir: str, phrases: list[str], deadline: float | None = None,
              min_conf: float = 0.8) -> tuple[list[Segment], bool]:
    """Grammar-restricted recognition: only ``phrases`` and ``[unk]`` can be heard; a phrase is a
    hit when its words come out in order, each with confidence ≥ ``min_conf``."""
    import vosk

    if not phrases or not pcm:
        return [], False
    grammar = json.dumps([*phrases, "[unk]"], ensure_ascii=False)
    hits: list[Segment] = []
    late = False
    with _vosk_lock:
        model = _vosk_model(model_dir)
        rec = vosk.KaldiRecognizer(model, RATE, grammar)
        rec.SetWords(True)
        results: list[str] = []
        for i in range(0, len(pcm), _BLOCK // 2):
            if rec.AcceptWaveform(pcm[i:i + _BLOCK // 2]):
                results.append(rec.Result())
            if deadline is not None and time.monotonic() > deadline:
                late = True
                break
        results.append(rec.FinalResult())
    for res in results:
        try:
            words = json.loads(res).get("result") or []
        except ValueError:
            continue
        seq = [(str(w.get("word", "")), float(w.get("start", 0)), float(w.get("end", 0)), float(w.get("conf", 0)))
               for w in words]
        for ph in phrases:
            pw = ph.split()
            for j in range(len(seq) - len(pw) + 1):
                win = seq[j:j + len(pw)]
                if [w for w, *_ in win] == pw and min(c for *_, c in win) >= min_conf:
                    hits.append(Segment(win[0][1], win[-1][2], ph.replace(" ", "") if g2p.CJK.search(ph) else ph,
                                        sum(c for *_, c in win) / len(win)))
    hits.sort(key=lambda s: s.start)
    return hits, late


# ---------------------------------------------------------------- coverage (policy check)

def speech_coverage(keywords: list[str] | tuple[str, ...], vosk_model_dir: str = "") -> list[str]:
    """Warnings for ``tapsift policy check``: the spoken keywords no configured engine can spot
    (with the reason), those spotted only approximately (Mandarin through English phones) and
    those spotted with an espeak-ng pronunciation (outside pocketsphinx's dictionary)."""
    kws = [k for k in dict.fromkeys(keywords) if k.strip()]
    if not kws:
        return []
    out: list[str] = []
    left = kws
    if vosk_model_dir:
        try:
            _, left, _ = plan_vosk(vosk_model_dir, kws)
        except Exception as exc:
            out.append(f"speech: the Vosk model {vosk_model_dir!r} cannot be loaded ({type(exc).__name__}: {exc})")
    if not pocketsphinx_available():
        if left:
            out.append(f"speech: {len(left)} spoken keyword(s) cannot be spotted (pocketsphinx is not installed): "
                       + ", ".join(repr(k) for k in left))
        return out
    kp = keyword_plan(left)
    if kp.skipped:
        out.append(f"speech: {len(kp.skipped)} keyword(s) cannot be spotted in audio: "
                   + "; ".join(f"{k!r} ({why})" for k, why in kp.skipped))
    if kp.approximate:
        out.append(f"speech: {len(kp.approximate)} Mandarin keyword(s) are spotted only approximately, through "
                   "English phones (install a Mandarin Vosk model, docs/media.md): "
                   + ", ".join(repr(k) for k in kp.approximate))
    oov = [k for k in left if not g2p.CJK.search(k) and any(w in kp.added for w in k.lower().split())]
    if oov:
        out.append(f"speech: {len(oov)} keyword(s) are outside pocketsphinx's dictionary and spotted with an "
                   "espeak-ng pronunciation (less reliable): " + ", ".join(repr(k) for k in oov))
    return out


def policy_speech_warnings(policy: Any, vosk_model_dir: str = "") -> list[str]:
    """`speech_coverage` for the literal keywords of a loaded policy's ``keywords`` lists."""
    words: dict[str, None] = {}
    for spec in getattr(policy, "lists", {}).values():
        if getattr(spec, "kind", "") == "keywords":
            for k in spec.keywords:
                if getattr(k, "mode", "") != "regex":
                    words[k.text] = None
    return speech_coverage(list(words), vosk_model_dir)
