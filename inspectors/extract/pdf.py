"""PDF text and images with pypdfium2 (fast, robust on damaged files, CJK via ToUnicode/CMaps).

Runs inside a sandbox worker. Before PDFium sees the file, `inspectors.extract.pdfscan` decodes
at most 1 MiB per filter stage of every stream and measures how far it expands: a decompression
bomb (``pdf_ratio`` / ``pdf_bomb``, the reason in ``meta["pdf_bomb"]``) never reaches PDFium, which
inflates streams whole and never stops on its own; such a file is read by the bounded salvage
path instead. An encrypted file's streams cannot be judged (``pdf_encrypted_unscanned``).
Image children: JPEG/JPEG 2000 data is passed through as is; other images are rendered to PNG
only when ``width × height`` is within ``max_pixels`` (``pdf_pixel_bomb`` otherwise).

Salvage (a file PDFium rejects, e.g. a capture cut short, or a bomb): streams are regexed out
and inflated with a bounded decompressor, ToUnicode CMaps (``bfchar``/``bfrange``) are merged,
and the strings of text operators (``Tj``, ``TJ``, ``'``, ``"``) are decoded through them. The
result is best-effort text with the anomaly ``pdf_salvaged``.
"""

from __future__ import annotations

import io
import itertools
import re

from inspectors.extract.bounded import inflate
from inspectors.extract.parts import Child, Clock, Limits, Partial, TextSink, add_child
from inspectors.extract.pdfscan import IMAGE_CODECS, decode_chain, prescan, streams


def _salvage_decode(raw: bytes, filters: list[bytes] | None, cap: int) -> tuple[bytes, bool]:
    """A stream's bytes for salvage: the bounded filter chain; a Flate stream PDFium would not
    read (raw DEFLATE, gzip) is still tried, for the text."""
    dec = decode_chain(raw, filters, cap)
    st = dec.stages
    if len(st) == 1 and st[0].filter == b"FlateDecode" and st[0].out == 0 and not st[0].whole:
        r = inflate(raw, cap, wbits=47) if raw[:1] == b"\x78" else inflate(raw, cap, wbits=-15)
        return r.data, r.complete
    return dec.data, dec.whole


def extract_pdf(data: bytes, *, limits: Limits) -> Partial:
    """Text (per page) and image children of a PDF; salvage when PDFium cannot open it."""
    clock = Clock(limits.max_seconds)
    scan = prescan(data, limits.max_ratio, clock, limits.max_expanded_bytes, limits.max_child_bytes)
    nstreams = scan.streams
    if scan.bomb or scan.unscanned:
        part = salvage_pdf(data, limits)
        if scan.bomb:
            part.flag("pdf_ratio", "pdf_bomb")
            part.meta["pdf_bomb"] = scan.reason[:200]
        else:  # not every stream was measured in time: PDFium may not see it either
            part.flag("time", "pdf_unscanned")
        return part
    # an encrypted file's streams are ciphertext: the pre-scan could not judge them
    part_note = "pdf_encrypted_unscanned" if scan.encrypted else ""
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
    if part_note:
        part.note(part_note)
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


_OPERATOR = re.compile(rb"(?<![^\s\]\)>])(?:BT|ET|Tj|TJ|Td|TD|Tf|Tm|T\*|re|cm|gs|Do|[lmcqQfSwW])(?=[\s\[\(<]|$)")


def _looks_like_content(data: bytes) -> bool:
    """Whether decoded bytes read like a content stream (operators between delimiters):
    binary data that happens to hold ``BT`` and ``Tj`` is not scanned for text operators (the
    scan costs seconds per 16 MiB of noise)."""
    head = data[:65536]
    need = max(1, min(8, len(head) // 256))
    return sum(1 for _ in itertools.islice(_OPERATOR.finditer(head), need)) >= need


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
    for info in streams(data):
        if clock.over():
            part.flag("time", "extract_time_limit")
            break
        if info.filters and any(f in IMAGE_CODECS for f in info.filters):
            continue  # images (DCT/JPX/CCITT/JBIG2), encrypted streams
        cap = min(per_stream, budget)
        if cap <= 0:
            part.flag("expanded_bytes", "extract_expanded_limit")
            break
        out, whole = _salvage_decode(data[info.start:info.end], info.filters, cap)
        budget -= len(out)
        if not whole and len(out) >= cap:
            part.flag("pdf_ratio", "pdf_bomb")
        if b"begincmap" in out[:4096] or b"beginbfchar" in out or b"beginbfrange" in out:
            width = max(width, _parse_cmap(out, cmap))
        elif b"BT" in out and (b"Tj" in out or b"TJ" in out) and _looks_like_content(out):
            contents.append(out)
    part.expanded = limits.max_expanded_bytes - budget
    sink = TextSink(limits.max_text_chars)
    for content in contents:
        if clock.over():
            part.flag("time", "extract_time_limit")
            break
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
