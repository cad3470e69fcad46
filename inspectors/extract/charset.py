"""Bytes to text: declared charsets first, detection only where it is reliable.

Order (first that applies wins):

1. a byte-order mark (UTF-8, UTF-16 LE/BE, UTF-32): unambiguous, so it beats a declaration,
   as in the WHATWG encoding standard;
2. the HTTP ``Content-Type`` charset (``obj.meta["charset"]``/``["content_type"]`` or a
   parameter on ``declared_mime``);
3. an in-document declaration: HTML ``<meta charset>``/``http-equiv`` in the first 4 KB, or the
   XML declaration's ``encoding``;
4. strict UTF-8;
5. UTF-16 without a BOM (NUL bytes in every other position);
6. charset-normalizer, for 64 bytes and more (short strings are where detectors fail: the 8-byte
   GBK 翻墙软件 is detected as Korean);
7. GB18030, with replacement, as the last resort (a strict Big5 decode is tried first when
   GB18030 would need replacements and Big5 would not).

A declared charset that fails badly (over 2 % replacement characters, e.g. a page labelled
UTF-8 that is really GBK) is overruled by detection, with the anomaly ``charset_mismatch``.
Labels are read as the WHATWG Encoding Standard reads them (``WHATWG_CJK_LABELS``): GB2312/GBK →
GB18030, Big5 → Big5-HKSCS (WHATWG's index-big5 is HKSCS-based: bytes C7B1–C7E8 are katakana, the
Cyrillic rows are at C7F3–C875, where Python's ``big5`` codec puts ETEN's layout instead),
Shift_JIS → Windows-31J, EUC-KR → windows-949, EUC-JP/ISO-2022-JP with WHATWG's JIS X 0208 index
(Windows mappings, NEC/IBM rows), ISO-8859-1/ASCII → windows-1252. The labels WHATWG maps to its
*replacement* decoder (HZ, ISO-2022-KR/CN) are still decoded with Python's codecs: an inspector
must read what a non-browser client can.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig", "utf-8"), (codecs.BOM_UTF32_LE, "utf-32", "utf-32le"),
         (codecs.BOM_UTF32_BE, "utf-32", "utf-32be"), (codecs.BOM_UTF16_LE, "utf-16", "utf-16le"),
         (codecs.BOM_UTF16_BE, "utf-16", "utf-16be"))
WHATWG_CJK_LABELS: dict[str, str] = {
    # The WHATWG Encoding Standard's labels of the CJK encodings and the Python codec that
    # decodes as its decoder does (tests check each label and decoder).
    **dict.fromkeys(("chinese", "csgb2312", "csiso58gb231280", "gb2312", "gb_2312", "gb_2312-80", "gbk",
                     "iso-ir-58", "x-gbk"), "gb18030"),  # the GBK decoder is the gb18030 decoder
    "gb18030": "gb18030",
    **dict.fromkeys(("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"), "big5hkscs"),
    **dict.fromkeys(("cseucpkdfmtjapanese", "euc-jp", "x-euc-jp"), "tapsift_euc_jp"),
    **dict.fromkeys(("csiso2022jp", "iso-2022-jp"), "tapsift_iso2022_jp"),
    **dict.fromkeys(("csshiftjis", "ms932", "ms_kanji", "shift-jis", "shift_jis", "sjis", "windows-31j",
                     "x-sjis"), "cp932"),
    **dict.fromkeys(("cseuckr", "csksc56011987", "euc-kr", "iso-ir-149", "korean", "ks_c_5601-1987",
                     "ks_c_5601-1989", "ksc5601", "ksc_5601", "windows-949"), "cp949"),
}
_ALIASES = {
    **WHATWG_CJK_LABELS, "cp936": "gb18030",
    "hz-gb-2312": "hz", "cp950": "big5hkscs",
    "iso-8859-1": "cp1252",
    "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252", "ascii": "cp1252", "iso-8859-9": "cp1254",
    "tis-620": "cp874", "iso-8859-11": "cp874", "x-user-defined": "cp1252", "utf8": "utf-8", "unicode": "utf-16",
}
_CODEC_SUPERSET = {"gb2312": "gb18030", "gbk": "gb18030", "big5": "big5hkscs", "shift_jis": "cp932",
                   "euc_kr": "cp949", "latin_1": "cp1252", "ascii": "cp1252", "iso8859_1": "cp1252",
                   "euc_jp": "tapsift_euc_jp", "iso2022_jp": "tapsift_iso2022_jp"}
_CHARSET_PARAM = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9_.:+-]{1,40})", re.I)
_META = re.compile(rb"<meta\b[^>]{0,512}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:+-]{1,40})", re.I)
_XML_DECL = re.compile(rb"^\s*<\?xml[^>]{0,200}?encoding\s*=\s*[\"']([A-Za-z0-9_.:+-]{1,40})", re.I)
DETECT_MIN = 64

# --- WHATWG's JIS X 0208 (index-jis0208 is Windows-31J's: NEC row 13, IBM rows 89-92, and six
# symbols mapped as Windows maps them) for EUC-JP and ISO-2022-JP, on top of Python's codecs.
_JIS_WINDOWS = str.maketrans({"\u301c": "\uff5e", "\u2016": "\u2225", "\u2212": "\uff0d", "\u00a2": "\uffe0",
                              "\u00a3": "\uffe1", "\u00ac": "\uffe2"})


def _jis_to_sjis(b1: int, b2: int) -> bytes:
    j1, j2 = b1 & 0x7F, b2 & 0x7F
    s1 = ((j1 + 1) >> 1) + (0x70 if j1 <= 0x5E else 0xB0)
    s2 = j2 + 0x1F + (j2 + 0x1F >= 0x7F) if j1 % 2 else j2 + 0x7E
    return bytes((s1, s2))


def _euc_jp_errors(exc: UnicodeError) -> tuple[str, int]:
    """Decode the JIS X 0208 pairs Python's euc_jp lacks (NEC/IBM rows) through Windows-31J."""
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    data, i = exc.object, exc.start
    if i + 1 < len(data) and 0xA1 <= data[i] <= 0xFE and 0xA1 <= data[i + 1] <= 0xFE:
        try:
            return _jis_to_sjis(data[i], data[i + 1]).decode("cp932"), i + 2
        except UnicodeDecodeError:
            pass
    return "\ufffd", i + 1


codecs.register_error("tapsift_jis0208", _euc_jp_errors)


def _whatwg_codec(base: str, name: str) -> codecs.CodecInfo:
    def decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
        text = bytes(data).decode(base, errors="tapsift_jis0208" if base == "euc_jp" else "replace")
        return text.translate(_JIS_WINDOWS), len(data)

    def encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
        return codecs.encode(text, base, errors), len(text)

    return codecs.CodecInfo(encode, decode, name=name)


def _search(name: str) -> codecs.CodecInfo | None:
    if name == "tapsift_euc_jp":
        return _whatwg_codec("euc_jp", name)
    if name == "tapsift_iso2022_jp":
        return _whatwg_codec("iso2022_jp_ext", name)
    return None


codecs.register(_search)


@dataclass(slots=True, frozen=True)
class Decoded:
    """Text and how its charset was chosen."""

    text: str
    charset: str
    source: str
    """``bom``, ``header``, ``meta``, ``xml``, ``utf-8``, ``utf-16-heuristic``, ``detected``, ``fallback``."""
    anomaly: str = ""


def codec_name(label: str) -> str | None:
    """Python codec for a charset label (with browser supersets), None if unknown or not text."""
    name = label.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True):  # hex, rot13, zlib…
        return None
    return _CODEC_SUPERSET.get(info.name, info.name)


def charset_param(value: str) -> str | None:
    """The codec of a ``charset=`` parameter in a Content-Type value, if any."""
    m = _CHARSET_PARAM.search(value or "")
    return codec_name(m.group(1)) if m else None


def bom_charset(data: bytes) -> tuple[str, int] | None:
    """(codec, BOM length) if ``data`` starts with a byte-order mark."""
    for bom, _codec, name in _BOMS:
        if data.startswith(bom):
            return name.replace("utf-8", "utf-8"), len(bom)
    return None


def sniff_declared(data: bytes, *, html: bool = False, xml: bool = False) -> tuple[str, str] | None:
    """(codec, ``meta``/``xml``) declared inside the document's first 4 KB."""
    head = data[:4096]
    if xml or head.lstrip()[:5] == b"<?xml":
        m = _XML_DECL.search(head)
        if m and (c := codec_name(m.group(1).decode("ascii"))):
            return c, "xml"
    if html:
        m = _META.search(head)
        if m and (c := codec_name(m.group(1).decode("ascii"))):
            # a UTF-16 label in an ASCII-compatible document is a lie (WHATWG: use UTF-8)
            return ("utf-8" if c.startswith("utf_16") or c.startswith("utf-16") else c), "meta"
    return None


def _bad_ratio(text: str) -> float:
    return text.count("\ufffd") / max(1, len(text))


def _utf16_guess(data: bytes) -> str | None:
    sample = data[:4096]
    if len(sample) < 8:
        return None
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    half = len(sample) // 2
    if odd > 0.3 * half and even < 0.05 * half:
        return "utf-16-le"
    if even > 0.3 * half and odd < 0.05 * half:
        return "utf-16-be"
    return None


def _detect(data: bytes) -> str | None:
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - optional at run time
        return None
    best = from_bytes(data[:65536], steps=5, chunk_size=512, threshold=0.2).best()
    if best is None:
        return None
    return codec_name(best.encoding)


def _fallback(data: bytes) -> tuple[str, str]:
    gb = data.decode("gb18030", errors="replace")
    if "\ufffd" in gb:
        try:
            return data.decode("big5hkscs"), "big5hkscs"
        except UnicodeDecodeError:
            pass
    return gb, "gb18030"


def decode(data: bytes, *, declared: str | None = None, html: bool = False, xml: bool = False) -> Decoded:
    """Decode ``data`` following the order in the module docstring; never raises."""
    bom = bom_charset(data)
    if bom:
        return Decoded(data[bom[1]:].decode(bom[0], errors="replace"), bom[0], "bom")
    candidates: list[tuple[str, str]] = []
    if declared and (c := codec_name(declared)):
        candidates.append((c, "header"))
    inner = sniff_declared(data, html=html, xml=xml)
    if inner:
        candidates.append(inner)
    mismatch = ""
    for codec, source in candidates:
        try:
            text = data.decode(codec, errors="replace")
        except Exception:  # a codec that misbehaves on this input
            continue
        if _bad_ratio(text) <= 0.02 or len(data) < DETECT_MIN:
            return Decoded(text, codec, source)
        mismatch = "charset_mismatch"
    try:
        return Decoded(data.decode("utf-8"), "utf-8", "utf-8", mismatch)
    except UnicodeDecodeError as exc:
        # a multi-byte character cut off at the end by truncation is still UTF-8
        if exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            return Decoded(data.decode("utf-8", errors="replace"), "utf-8", "utf-8", mismatch)
    u16 = _utf16_guess(data)
    if u16:
        return Decoded(data.decode(u16, errors="replace"), u16, "utf-16-heuristic", mismatch)
    if len(data) >= DETECT_MIN:
        c = _detect(data)
        if c:
            text = data.decode(c, errors="replace")
            if _bad_ratio(text) <= 0.02:
                return Decoded(text, c, "detected", mismatch)
    text, c = _fallback(data)
    return Decoded(text, c, "fallback", mismatch)


def obj_declared_charset(meta: dict[str, str], declared_mime: str) -> str | None:
    """The charset the carrier's headers declared for an object (meta or a MIME parameter)."""
    cs = meta.get("charset", "")
    if cs and (c := codec_name(cs)):
        return c
    for src in (meta.get("content_type", ""), declared_mime):
        if src and (c := charset_param(src)):
            return c
    return None
