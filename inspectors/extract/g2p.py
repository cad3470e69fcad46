"""Pronunciations for words pocketsphinx's dictionary lacks: espeak-ng phonemes → ARPAbet.

pocketsphinx spots only words it can pronounce. Out-of-vocabulary words (``fentanyl``,
``Nightjar``, a code name) get a pronunciation from espeak-ng's letter-to-sound rules
(``espeak-ng -q -x``: Kirshenbaum ASCII phonemes), mapped onto the CMU/ARPAbet phone set of the
US-English acoustic model. Mandarin keywords (Hanzi) go through espeak-ng's Mandarin voice
(``cmn-latn-pinyin``, which reads Hanzi; Debian's ``cmn`` voice does not) and are mapped onto
the nearest English phones: an *approximate* pronunciation, good enough for keyword spotting
with the English acoustic model when no Mandarin model is installed, and reported as such.

Results are cached per process; without espeak-ng every function returns None.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess

_EN = {
    "aI@": "AY ER", "aU@": "AW ER", "aa": "AE", "i@3": "IY ER", "e@": "EH R", "i@": "IY R", "U@": "UH R", "o@": "AO R",
    "O@": "AO R", "A@": "AA R", "aI": "AY", "aU": "AW", "OI": "OY", "oU": "OW", "eI": "EY", "i:": "IY",
    "u:": "UW", "O:": "AO", "A:": "AA", "3:": "ER", "3": "ER", "@L": "AH L", "@": "AH", "a#": "AH", "I2": "IH",
    "I#": "IH", "I": "IH", "E": "EH", "a": "AE", "V": "AH", "U": "UH", "0": "AA", "i": "IY", "u": "UW",
    "o": "OW", "e": "EH", "A": "AA", "O": "AO",
    "tS": "CH", "dZ": "JH", "T": "TH", "D": "DH", "S": "SH", "Z": "ZH", "N": "NG", "j": "Y", "t#": "T",
    "n-": "N", "l-": "L", "r-": "R", "m-": "M", "?": "T", "x": "K",
    "h": "HH", **{c: c.upper() for c in "pbtdkgfvszmnlrw"},
}
_ZH = {
    # initials (pinyin b/d/g are unaspirated: nearer English B/D/G than P/T/K)
    "tS;h": "CH", "tS;": "JH", "ts.h": "CH", "ts.": "JH", "tsh": "T S", "ts": "Z", "s.": "SH", "z.": "R",
    "S;": "SH", "ph": "P", "th": "T", "kh": "K", "p": "B", "t": "D", "k": "G", "X": "HH", "m": "M", "f": "F",
    "n": "N", "l": "L", "s": "S", "j": "Y", "w": "W", ";": "",
    # finals
    "iou": "Y OW", "iAu": "Y AW", "iA": "Y AA", "iE": "Y EH", "uo": "W AO", "u@": "W AH", "yE": "Y EH",
    "yu": "Y UW", "y@": "IY AH", "y&": "IY AE", "i.": "ER", "i[": "IH", "@r": "ER", "ai": "AY", "ei": "EY",
    "Au": "AW", "ou": "OW", "o-": "AH", "@": "AH", "A": "AA", "a": "AA", "E": "EH", "&": "AE", "o": "AO",
    "i": "IY", "u": "UW", "y": "IY", "N": "NG", "r": "R",
}
_IGNORE_EN = re.compile(r"[',_|%=]+")
_IGNORE_ZH = re.compile(r"[',_|:\d%=]+")
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _to_arpabet(kirshenbaum: str, table: dict[str, str], ignore: re.Pattern[str]) -> str:
    keys = sorted(table, key=len, reverse=True)
    out: list[str] = []
    s = ignore.sub(" ", kirshenbaum)
    i = 0
    while i < len(s):
        if s[i] == " ":
            i += 1
            continue
        for k in keys:
            if s.startswith(k, i):
                if table[k]:
                    out.append(table[k])
                i += len(k)
                break
        else:
            i += 1  # a symbol with no English counterpart
    return " ".join(out)


def espeak_available() -> bool:
    """espeak-ng is installed."""
    return shutil.which("espeak-ng") is not None


@functools.lru_cache(maxsize=4096)
def _espeak_phonemes(text: str, voice: str) -> str | None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    try:
        r = subprocess.run([exe, "-q", "-x", "-v", voice, "--stdin"], input=text.encode("utf-8"),
                           capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.decode("utf-8", "replace").strip() if r.returncode == 0 else None


def english(word: str) -> str | None:
    """ARPAbet phones of an English (or English-looking) word, from espeak-ng's rules."""
    if not word or not re.fullmatch(r"[a-z][a-z'-]*", word):
        return None
    ph = _espeak_phonemes(word, "en-us")
    phones = _to_arpabet(ph, _EN, _IGNORE_EN) if ph else ""
    return phones or None


def mandarin(text: str) -> str | None:
    """Approximate ARPAbet phones of a Mandarin (Hanzi) keyword, from espeak-ng's Mandarin voice."""
    if not CJK.search(text):
        return None
    ph = _espeak_phonemes(text, "cmn-latn-pinyin")
    phones = _to_arpabet(ph, _ZH, _IGNORE_ZH) if ph else ""
    return phones or None
