"""PDF text and images with pypdfium2 (fast, robust on damaged files, CJK via ToUnicode/CMaps).

Runs inside a sandbox worker. Before PDFium sees the file, a cheap pre-scan inflates at most
1 MiB of every Flate stream (through stacked filters too): a stream that yields 1 MiB from less
than 1/``max_ratio`` of that is a decompression bomb (``pdf_bomb``); PDFium inflates streams
whole and never stops on its own, so such a file is read by the bounded salvage path instead.
Image children: JPEG/JPEG 2000 data is passed through as is; other images are rendered to PNG
only when ``width × height`` is within ``max_pixels`` (``pdf_pixel_bomb`` otherwise).

Salvage (a file PDFium rejects, e.g. a capture cut short, or a bomb): streams are regexed out
and inflated with a bounded decompressor, ToUnicode CMaps (``bfchar``/``bfrange``) are merged,
and the strings of text operators (``Tj``, ``TJ``, ``'``, ``"``) are decoded through them. The
result is best-effort text with the anomaly ``pdf_salvaged``.
"""

from __future__ import annotations

import io
import re

from inspectors.extract.bounded import inflate
from inspectors.extract.parts import Child, Clock, Limits, Partial, TextSink, add_child

PRESCAN_OUT = 1024 * 1024
_STREAM = re.compile(rb"(?<!end)stream\r?\n")
_DICT_FILTER = re.compile(rb"/Filter\s*(\[[^\]]{0,200}\]|/[A-Za-z0-9]+)")
_LENGTH = re.compile(rb"/Length\s+(\d+)(?!\s+\d+\s+R)")


def _streams(data: bytes, max_streams: int = 100_000) -> list[tuple[int, int, int]]:
    """(dict start, data start, data end) of every ``stream … endstream`` found by scanning."""
    out: list[tuple[int, int, int]] = []
    pos = 0
    while len(out) < max_streams:
        m = _STREAM.search(data, pos)
        if not m:
            break
        start = m.end()
        dstart = data.rfind(b"<<", max(0, m.start() - 4096), m.start())
        end = -1
        lm = _LENGTH.search(data, max(dstart, 0), m.start()) if dstart >= 0 else None
        if lm:
            n = int(lm.group(1))
            if data.startswith(b"endstream", start + n) or data[start + n:start + n + 12].strip().startswith(
                    b"endstream"):
                end = start + n
        if end < 0:
            e = data.find(b"endstream", start)
            end = e if e >= 0 else len(data)
            if end > start and data[end - 1:end] == b"\n":
                end -= 1
                if data[end - 1:end] == b"\r":
                    end -= 1
        out.append((dstart, start, end))
        pos = max(end, start + 1)
    return out


def _filters(data: bytes, dstart: int, sstart: int) -> list[bytes]:
    if dstart < 0:
        return []
    m = _DICT_FILTER.search(data, dstart, sstart)
    if not m:
        return []
    return re.findall(rb"/([A-Za-z0-9]+)", m.group(1))


def _decode_stream(raw: bytes, filters: list[bytes], cap: int) -> tuple[bytes, bool, float]:
    """(data, whole, worst ratio) through Flate filters, bounded; other filters stop the chain."""
    data = raw
    whole = True
    ratio = 1.0
    for f in filters:
        if f not in (b"FlateDecode", b"Fl"):
            break
        r = inflate(data, cap, wbits=47) if data[:1] in (b"x", b"\x78") else inflate(data, cap, wbits=-15)
        if not r.data and not r.complete:
            r = inflate(data, cap, wbits=-15)
        ratio = max(ratio, len(r.data) / max(1, r.consumed))
        whole = whole and r.complete
        data = r.data
    return data, whole, ratio


def prescan(data: bytes, max_ratio: float, clock: Clock) -> tuple[bool, int]:
    """(bomb suspected, streams): inflate ≤ 1 MiB of each Flate stream and judge its ratio."""
    streams = _streams(data)
    for dstart, s, e in streams:
        fl = _filters(data, dstart, s)
        if not fl or fl[0] not in (b"FlateDecode", b"Fl"):
            continue
        out, whole, ratio = _decode_stream(data[s:e], fl, PRESCAN_OUT)
        if len(out) >= PRESCAN_OUT and not whole and ratio > max_ratio * 5:
            return True, len(streams)
        if len(fl) > 1 and len(out) >= PRESCAN_OUT and not whole:
            return True, len(streams)
        if clock.over():
            break
    return False, len(streams)


def extract_pdf(data: bytes, *, limits: Limits) -> Partial:
    """Text (per page) and image children of a PDF; salvage when PDFium cannot open it."""
    clock = Clock(limits.max_seconds)
    bomb, nstreams = prescan(data, limits.max_ratio, clock)
    if bomb:
        part = salvage_pdf(data, limits)
        part.flag("pdf_ratio", "pdf_bomb")
        return part
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        part = salvage_pdf(data, limits)
        msg = str(exc).lower()
        if "password" in msg:
            part.note("pdf_encrypted")
        part.meta["pdfium_error"] = str(exc)[:100]
        return part
    part = Partial(meta={"format": "pdf"})
    sink = TextSink(limits.max_text_chars)
    try:
        n = len(doc)
        part.meta["pages"] = str(n)
        for i in range(n):
            if clock.over():
                part.flag("time", "extract_time_limit")
                break
            page = doc[i]
            try:
                tp = page.get_textpage()
                sink.add(tp.get_text_bounded().replace("\r\n", "\n") + "\n\f")
                tp.close()
                if limits.make_children:
                    _images(page, part, limits, clock, i)
                elif i == 0:
                    part.flag("depth", "extract_depth_limit")
            except pdfium.PdfiumError:
                part.note("pdf_page_error")
            finally:
                page.close()
            if sink.full:
                part.flag("text_limit")
                break
    finally:
        doc.close()
    part.text = sink.text().rstrip("\f\n")
    if not part.text.strip() and nstreams and "pages" in part.meta:
        part.meta["no_text"] = "1"  # scanned PDF: the image children carry the content (OCR)
    return part


def _images(page: object, part: Partial, limits: Limits, clock: Clock, pageno: int) -> None:
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    for k, obj in enumerate(page.get_objects(filter=[raw.FPDF_PAGEOBJ_IMAGE], max_depth=4)):  # type: ignore[attr-defined]
        if len(part.children) >= limits.max_children:
            part.flag("children", "extract_child_limit")
            return
        if clock.over():
            part.flag("time", "extract_time_limit")
            return
        try:
            w, h = obj.get_px_size()
            if w * h > limits.max_pixels:
                part.flag("pixels", "pdf_pixel_bomb")
                continue
            filters = obj.get_filters(skip_simple=True)
            name = f"page{pageno + 1}-img{k + 1}"
            if filters and filters[-1] in ("DCTDecode", "JPXDecode"):
                blob = bytes(obj.get_data(decode_simple=True))
                mime = "image/jpeg" if filters[-1] == "DCTDecode" else "image/jp2"
                name += ".jpg" if mime == "image/jpeg" else ".jp2"
            else:
                bm = obj.get_bitmap(render=False)
                buf = io.BytesIO()
                bm.to_pil().save(buf, format="PNG")
                blob = buf.getvalue()
                mime = "image/png"
                name += ".png"
        except (pdfium.PdfiumError, OSError, ValueError, MemoryError):
            part.note("pdf_image_error")
            continue
        if len(blob) > limits.max_child_bytes:
            part.flag("expanded_bytes", "extract_expanded_limit")
            continue
        child = Child(name, blob, len(blob), mime, meta={"page": str(pageno + 1), "px": f"{w}x{h}"})
        add_child(part, limits, child)


# --- salvage -------------------------------------------------------------------------------

_BFCHAR = re.compile(rb"beginbfchar(.*?)endbfchar", re.S)
_BFRANGE = re.compile(rb"beginbfrange(.*?)endbfrange", re.S)
_HEX = re.compile(rb"<([0-9A-Fa-f\s]*)>")
_TEXT_OPS = re.compile(rb"(\((?:\\.|[^\\)])*\)|<[0-9A-Fa-f\s]*>|\[(?:[^\]]|\n){0,100000}?\])\s*(Tj|TJ|'|\")"
                       rb"|(ET|T\*|Td|TD)\b")
_STR_IN_ARRAY = re.compile(rb"\((?:\\.|[^\\)])*\)|<[0-9A-Fa-f\s]*>|(-?\d+\.?\d*)")
_ESC = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f", b"(": b"(", b")": b")", b"\\": b"\\"}


def _hex_to_unicode(h: bytes) -> str:
    h = re.sub(rb"\s", b"", h)
    try:
        return bytes.fromhex(h.decode("ascii")).decode("utf-16-be", errors="replace")
    except ValueError:
        return ""


def _parse_cmap(cmap: bytes, table: dict[bytes, str]) -> int:
    width = 0
    for block in _BFCHAR.findall(cmap):
        hexes = _HEX.findall(block)
        for src, dst in zip(hexes[0::2], hexes[1::2]):
            src = re.sub(rb"\s", b"", src).upper()
            table[src] = _hex_to_unicode(dst)
            width = max(width, len(src) // 2)
    for block in _BFRANGE.findall(cmap):
        for line in block.splitlines():
            hexes = _HEX.findall(line)
            if len(hexes) < 3:
                continue
            lo, hi, dst = (re.sub(rb"\s", b"", x) for x in hexes[:3])
            try:
                a, b, d = int(lo, 16), int(hi, 16), int(dst, 16) if dst else 0
            except ValueError:
                continue
            if b - a > 65536 or b < a:
                continue
            w = len(lo)
            for code in range(a, b + 1):
                try:
                    table[f"{code:0{w}X}".encode()] = chr(d + code - a)
                except (ValueError, OverflowError):
                    break
            width = max(width, w // 2)
    return width


def _literal(s: bytes) -> bytes:
    out = bytearray()
    i = 1
    end = len(s) - 1
    while i < end:
        c = s[i:i + 1]
        if c == b"\\" and i + 1 < end:
            n = s[i + 1:i + 2]
            if n in _ESC:
                out += _ESC[n]
                i += 2
                continue
            m = re.match(rb"[0-7]{1,3}", s[i + 1:i + 4])
            if m:
                out.append(int(m.group(0), 8) & 0xFF)
                i += 1 + len(m.group(0))
                continue
            i += 2
            continue
        out += c
        i += 1
    return bytes(out)


def _decode_string(tok: bytes, cmap: dict[bytes, str], width: int) -> str:
    if tok.startswith(b"<"):
        h = re.sub(rb"[^0-9A-Fa-f]", b"", tok)
        raw = bytes.fromhex((h + b"0" if len(h) % 2 else h).decode("ascii"))
    else:
        raw = _literal(tok)
    if cmap and width:
        key = raw.hex().upper().encode()
        step = width * 2
        out = []
        hits = 0
        for i in range(0, len(key), step):
            u = cmap.get(key[i:i + step])
            if u is not None:
                hits += 1
                out.append(u)
            else:
                out.append("")
        if hits * 2 >= max(1, len(key) // step):
            return "".join(out)
    if raw.startswith(b"\xfe\xff"):
        return raw[2:].decode("utf-16-be", errors="replace")
    return raw.decode("cp1252", errors="replace")


def salvage_pdf(data: bytes, limits: Limits) -> Partial:
    """Best-effort text of a damaged or hostile PDF with bounded inflation (see module doc)."""
    part = Partial(meta={"format": "pdf"})
    part.note("pdf_salvaged")
    clock = Clock(limits.max_seconds)
    per_stream = min(limits.max_child_bytes, 16 * 1024 * 1024)
    budget = limits.max_expanded_bytes
    contents: list[bytes] = []
    cmap: dict[bytes, str] = {}
    width = 0
    for dstart, s, e in _streams(data):
        if clock.over():
            part.flag("time", "extract_time_limit")
            break
        fl = _filters(data, dstart, s)
        if any(f not in (b"FlateDecode", b"Fl") for f in fl):
            continue  # images (DCT/JPX/CCITT) and exotic filters
        cap = min(per_stream, budget)
        if cap <= 0:
            part.flag("expanded_bytes", "extract_expanded_limit")
            break
        out, whole, _ratio = _decode_stream(data[s:e], fl, cap)
        budget -= len(out)
        if not whole and len(out) >= cap:
            part.flag("pdf_ratio", "pdf_bomb")
        if b"begincmap" in out[:4096] or b"beginbfchar" in out or b"beginbfrange" in out:
            width = max(width, _parse_cmap(out, cmap))
        elif b"BT" in out and (b"Tj" in out or b"TJ" in out):
            contents.append(out)
    part.expanded = limits.max_expanded_bytes - budget
    sink = TextSink(limits.max_text_chars)
    for content in contents:
        for m in _TEXT_OPS.finditer(content):
            tok, op, sep = m.group(1), m.group(2), m.group(3)
            if sep:
                sink.add("\n" if sep in (b"ET", b"T*") else " ")
                continue
            if op == b"TJ":
                for sm in _STR_IN_ARRAY.finditer(tok[1:-1]):
                    if sm.group(1):
                        try:
                            if float(sm.group(1)) < -200:
                                sink.add(" ")
                        except ValueError:
                            pass
                        continue
                    sink.add(_decode_string(sm.group(0), cmap, width))
            else:
                if op in (b"'", b'"'):
                    sink.add("\n")
                sink.add(_decode_string(tok, cmap, width))
            if sink.full:
                part.flag("text_limit")
                break
    text = re.sub(r"[ \t]+", " ", sink.text())
    part.text = re.sub(r"\n\s*\n+", "\n", text).strip()
    if not data.rstrip().endswith(b"%%EOF"):
        part.flag("partial", "pdf_partial")
    return part


__all__ = ["extract_pdf", "prescan", "salvage_pdf"]
