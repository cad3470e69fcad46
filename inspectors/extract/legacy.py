"""Legacy Office (OLE2 compound files): .doc via antiword (catdoc as fallback), .xls via xls2csv,
.ppt via catppt with a fallback reading the text atoms of the PowerPoint stream directly
(Debian packages ``antiword`` and ``catdoc``), tools run as subprocesses of the sandbox
worker (so under its rlimits) with a timeout. olefile tells the format from the stream names;
an ``EncryptedPackage`` stream is a password-protected OOXML file (``office_encrypted``).
Embedded pictures of legacy files are not extracted."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

from inspectors.extract.parts import Limits, Partial


def ole_kind(data: bytes) -> str:
    """``doc``, ``xls``, ``ppt``, ``encrypted``, ``msg`` or ``ole`` (unknown) for an OLE2 file."""
    import io

    import olefile

    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
    except (OSError, ValueError, IndexError, TypeError):
        return "ole"
    try:
        names = {"/".join(e) for e in ole.listdir(streams=True, storages=False)}
    except Exception:
        return "ole"
    finally:
        ole.close()
    if "EncryptedPackage" in names:
        return "encrypted"
    if "WordDocument" in names:
        return "doc"
    if "Workbook" in names or "Book" in names:
        return "xls"
    if "PowerPoint Document" in names:
        return "ppt"
    if any(n.startswith("__substg1.0_") for n in names):
        return "msg"
    return "ole"


_TOOLS = {
    "doc": [["antiword", "-m", "UTF-8.txt", "-w", "0"], ["catdoc", "-d", "utf-8", "-w"]],
    "xls": [["xls2csv", "-d", "utf-8", "-q", "1"]],
    "ppt": [["catppt", "-d", "utf-8"]],
}


def _run_tool(cmd: list[str], path: str, timeout: float) -> tuple[str, str]:
    if not shutil.which(cmd[0]):
        return "", f"{cmd[0]}_missing"
    try:
        r = subprocess.run([*cmd, path], capture_output=True, timeout=timeout, check=False,
                           env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"})
    except subprocess.TimeoutExpired:
        return "", "legacy_timeout"
    except OSError:
        return "", "legacy_tool_error"
    return r.stdout.decode("utf-8", errors="replace"), "" if r.returncode == 0 else "legacy_tool_error"


def extract_legacy(data: bytes, *, limits: Limits, kind: str = "") -> Partial:
    """Text of a .doc, .xls or .ppt file."""
    kind = kind if kind in _TOOLS else ole_kind(data)
    part = Partial(meta={"format": kind})
    if kind == "encrypted":
        part.note("office_encrypted")
        return part
    if kind not in _TOOLS:
        part.note("ole_unknown")
        return part
    text = ""
    with tempfile.TemporaryDirectory(prefix="tapsift-") as d:
        path = os.path.join(d, f"in.{kind}")
        with open(path, "wb") as f:
            f.write(data)
        for cmd in _TOOLS[kind]:
            text, problem = _run_tool(cmd, path, max(1.0, limits.max_seconds * 0.8))
            if problem:
                part.note(problem)
            if text.strip():
                break
    if kind == "ppt" and not text.strip():
        # catppt reads only the PowerPoint versions it knows; the text atoms themselves are
        # simple records in the "PowerPoint Document" stream
        text = ppt_text_atoms(data, limits.max_text_chars + 1)
        if text:
            part.note("ppt_text_atoms")
    if len(text) > limits.max_text_chars:
        text = text[: limits.max_text_chars]
        part.flag("text_limit")
    part.text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return part


_PPT_TEXT_CHARS, _PPT_TEXT_BYTES, _PPT_CSTRING = 0x0FA0, 0x0FA8, 0x0FBA


def ppt_text_atoms(data: bytes, max_chars: int = 1 << 22) -> str:
    """The text of a .ppt: TextCharsAtom (UTF-16LE) and TextBytesAtom (Latin-1) records of the
    ``PowerPoint Document`` stream, in stream order ([MS-PPT] 2.3.x). Bounded, never raises."""
    import io
    import struct

    import olefile

    try:
        ole = olefile.OleFileIO(io.BytesIO(data))
        try:
            stream = ole.openstream("PowerPoint Document").read()
        finally:
            ole.close()
    except Exception:
        return ""
    out: list[str] = []
    total = 0
    i, n = 0, len(stream)
    while i + 8 <= n and total < max_chars:
        ver_inst, rtype, rlen = struct.unpack_from("<HHI", stream, i)
        i += 8
        if ver_inst & 0x000F == 0x000F:  # a container: its children follow
            continue
        body = stream[i:i + rlen]
        i += rlen
        if rtype == _PPT_TEXT_CHARS:
            t = body.decode("utf-16-le", errors="replace")
        elif rtype == _PPT_TEXT_BYTES:
            t = body.decode("latin-1")
        else:
            continue
        out.append(t)
        total += len(t)
    return "\n".join(out)[:max_chars]
