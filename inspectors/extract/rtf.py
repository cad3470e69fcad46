"""RTF text (striprtf, with the code page chosen from ``\\ansicpg`` or the fonts' ``\\fcharset``) and
embedded pictures (``{\\pict … \\pngblip|\\jpegblip hex}``) as image children."""

from __future__ import annotations

import re

from inspectors.extract.parts import Child, Clock, Limits, Partial, add_child

_CPG = re.compile(rb"\\ansicpg(\d{3,5})")
_FCHARSET = re.compile(rb"\\fcharset(\d{1,3})")
_CHARSETS = {134: "gb18030", 136: "big5hkscs", 128: "cp932", 129: "cp949", 222: "cp874", 161: "cp1253",
             162: "cp1254", 177: "cp1255", 178: "cp1256", 186: "cp1257", 204: "cp1251", 238: "cp1250"}
_CPG_CODECS = {936: "gb18030", 950: "big5hkscs", 932: "cp932", 949: "cp949", 54936: "gb18030", 65001: "utf-8"}
_PICT = re.compile(rb"\{\\\*?\\?pict\b")
_BLIP = {b"pngblip": ("png", "image/png"), b"jpegblip": ("jpg", "image/jpeg")}


def rtf_codec(data: bytes) -> str:
    """The codec for ``\\'xx`` bytes: a CJK font charset wins over an ANSI ``\\ansicpg``."""
    for m in _FCHARSET.finditer(data, 0, 65536):
        c = _CHARSETS.get(int(m.group(1)))
        if c:
            return c
    m = _CPG.search(data, 0, 4096)
    if m:
        n = int(m.group(1))
        if n in _CPG_CODECS:
            return _CPG_CODECS[n]
        try:
            "".encode(f"cp{n}")
            return f"cp{n}"
        except LookupError:
            pass
    return "cp1252"


def _pictures(data: bytes, part: Partial, limits: Limits, clock: Clock) -> bytes:
    """Add pictures as children; return the RTF without their hex data (faster to strip)."""
    out: list[bytes] = []
    pos = 0
    k = 0
    for m in _PICT.finditer(data):
        if m.start() < pos:
            continue
        # find the end of the group
        depth = 0
        i = m.start()
        end = len(data)
        while i < len(data):
            c = data[i]
            if c == 0x5C:  # backslash: skip the escaped char
                i += 2
                continue
            if c == 0x7B:
                depth += 1
            elif c == 0x7D:
                depth -= 1
                if depth == 0:
                    end = i + 1
                    break
            i += 1
        group = data[m.start():end]
        out.append(data[pos:m.start()])
        pos = end
        kind = next((v for key, v in _BLIP.items() if key in group[:2000]), None)
        if kind is None or not limits.make_children or clock.over():
            continue
        hexdata = re.sub(rb"[^0-9a-fA-F]", b"", re.sub(rb"\\[a-z]+-?\d* ?|\{[^{}]*\}", b"", group[5:]))
        if len(hexdata) // 2 > limits.max_child_bytes:
            part.flag("expanded_bytes", "extract_expanded_limit")
            continue
        try:
            blob = bytes.fromhex(hexdata[: len(hexdata) // 2 * 2].decode("ascii"))
        except ValueError:
            continue
        k += 1
        add_child(part, limits, Child(f"rtf-img{k}.{kind[0]}", blob, len(blob), kind[1]))
    out.append(data[pos:])
    return b"".join(out)


def extract_rtf(data: bytes, *, limits: Limits) -> Partial:
    """Text and picture children of an RTF document."""
    from striprtf.striprtf import rtf_to_text

    part = Partial(meta={"format": "rtf"})
    clock = Clock(limits.max_seconds)
    body = _pictures(data, part, limits, clock)
    codec = rtf_codec(body)
    part.meta["charset"] = codec
    try:
        text = rtf_to_text(body.decode("latin-1"), encoding=codec, errors="replace")
    except Exception as exc:  # striprtf raises assorted errors on damaged input
        part.note("rtf_error")
        part.meta["error"] = type(exc).__name__
        text = ""
    if len(text) > limits.max_text_chars:
        text = text[: limits.max_text_chars]
        part.flag("text_limit")
    part.text = re.sub(r"\n{3,}", "\n\n", text).strip()
    if not data.rstrip(b"\x00\r\n ").endswith(b"}"):
        part.flag("partial", "rtf_partial")
    return part
