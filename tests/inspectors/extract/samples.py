"""Generated samples with planted English and Chinese phrases, and decompression bombs.

Documents are written by the libraries people use to make them (python-docx, openpyxl,
python-pptx, odfpy, fpdf2 with the WenQuanYi font from Debian's fonts-wqy-microhei, xlwt);
bombs are built by hand, streaming, so that making them costs little memory.
"""

from __future__ import annotations

import bz2
import gzip
import io
import struct
import tarfile
import zipfile
import zlib
from email.message import EmailMessage
from functools import cache
from pathlib import Path

from appliance.model.content import ContentObject
from appliance.model.streams import Direction

EN = "Project Nightjar quarterly plan"
ZH = "夜鹰计划季度报告"
CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def obj(data: bytes | None, *, mime: str = "", sniffed: str = "", filename: str = "", url: str = "",
        oid: str = "Ftest01", depth: int = 0, meta: dict[str, str] | None = None, **kw: object) -> ContentObject:
    """A top-level content object holding ``data``."""
    return ContentObject(id=oid, source="http", direction=Direction.TO_CLIENT, flow=None, ts_ns=1,
                         size=len(data or b""),
                         md5="", sha256="", declared_mime=mime, sniffed_mime=sniffed, filename=filename, url=url,
                         depth=depth, data=data, meta=meta or {}, **kw)  # type: ignore[arg-type]


def png(width: int = 4, height: int = 4) -> bytes:
    """A small real PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def docx(paragraphs: int = 3, image: bool = True) -> bytes:
    import docx as _docx

    d = _docx.Document()
    d.add_heading(EN, 1)
    for i in range(paragraphs):
        d.add_paragraph(f"Paragraph {i}: {ZH} and more text.")
    t = d.add_table(rows=1, cols=2)
    t.cell(0, 0).text = "cell-alpha"
    t.cell(0, 1).text = "表格单元"
    if image:
        d.add_picture(io.BytesIO(png()))
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def xlsx(rows: int = 3) -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws["A1"] = EN
    ws["B1"] = ZH
    for i in range(rows):
        ws.cell(row=i + 2, column=1, value=f"row {i}")
        ws.cell(row=i + 2, column=2, value=i * 1.5)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def pptx(slides: int = 2, image: bool = True) -> bytes:
    from pptx import Presentation
    from pptx.util import Inches

    p = Presentation()
    for i in range(slides):
        s = p.slides.add_slide(p.slide_layouts[1])
        s.shapes.title.text = EN if i == 0 else f"Slide {i}"
        s.placeholders[1].text = ZH
        if image and i == 0:
            s.shapes.add_picture(io.BytesIO(png()), Inches(1), Inches(1))
        s.notes_slide.notes_text_frame.text = f"notes {i}"
    buf = io.BytesIO()
    p.save(buf)
    return buf.getvalue()


def odf(kind: str) -> bytes:
    """An ODT, ODS or ODP (``kind``) with both phrases."""
    from odf.opendocument import OpenDocumentPresentation, OpenDocumentSpreadsheet, OpenDocumentText
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    buf = io.BytesIO()
    if kind == "odt":
        doc = OpenDocumentText()
        doc.text.addElement(P(text=EN))
        doc.text.addElement(P(text=ZH))
        doc.addPicture("Pictures/img1.png", "image/png", png())
    elif kind == "ods":
        doc = OpenDocumentSpreadsheet()
        t = Table(name="Sheet1")
        for v in (EN, ZH):
            r = TableRow()
            c = TableCell(valuetype="string")
            c.addElement(P(text=v))
            r.addElement(c)
            t.addElement(r)
        doc.spreadsheet.addElement(t)
    else:
        from odf.draw import Frame, Page, TextBox
        from odf.style import MasterPage, PageLayout

        doc = OpenDocumentPresentation()
        pl = PageLayout(name="PL")
        doc.automaticstyles.addElement(pl)
        mp = MasterPage(name="MP", pagelayoutname=pl)
        doc.masterstyles.addElement(mp)
        page = Page(masterpagename=mp)
        doc.presentation.addElement(page)
        fr = Frame(width="20cm", height="5cm", x="1cm", y="1cm")
        tb = TextBox()
        tb.addElement(P(text=EN))
        tb.addElement(P(text=ZH))
        fr.addElement(tb)
        page.addElement(fr)
    doc.write(buf)
    return buf.getvalue()


@cache
def pdf(pages: int = 2, image: bool = True) -> bytes:
    """A PDF with the WQY CJK font embedded (subset, ToUnicode map) and an image."""
    from fpdf import FPDF

    p = FPDF()
    p.add_font("wqy", "", str(CJK_FONT), collection_font_number=0)
    for i in range(pages):
        p.add_page()
        p.set_font("wqy", size=14)
        p.multi_cell(0, 10, text=f"{EN} page {i + 1}\n{ZH}\n" + "filler text " * 20)
        if image and i == 0:
            p.image(io.BytesIO(png(32, 32)), x=10, y=100, w=20)
    return bytes(p.output())


def rtf() -> bytes:
    """RTF with the Chinese as ``\\uN`` escapes (what Word writes) and as GBK ``\\'xx`` bytes."""
    uni = "".join(f"\\u{ord(c)}?" for c in ZH)
    gbk = "".join(f"\\'{b:02x}" for b in "机密文件".encode("gbk"))
    return ("{\\rtf1\\ansi\\ansicpg936\\deff0{\\fonttbl{\\f0\\fnil\\fcharset134 SimSun;}}\n"
            f"\\f0\\fs24 {EN}\\par\n{uni}\\par\n{gbk}\\par\n}}").encode("ascii")


def xls() -> bytes:
    import xlwt

    wb = xlwt.Workbook(encoding="utf-8")
    ws = wb.add_sheet("Sheet1")
    ws.write(0, 0, EN)
    ws.write(1, 0, ZH)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def eml() -> bytes:
    m = EmailMessage()
    m["From"] = "alice@example.org"
    m["To"] = "bob@example.org"
    m["Subject"] = "季度 report"
    m.set_content(f"{EN}\n")
    m.add_alternative(f"<html><body><p>{ZH}</p><div style='display:none'>secret-hidden</div>"
                      "<a href='http://x.example/'>x</a></body></html>", subtype="html")
    m.add_attachment(png(), maintype="image", subtype="png", filename="chart.png")
    m.add_attachment(f"{EN} attachment".encode(), maintype="text", subtype="plain", filename="notes.txt")
    return m.as_bytes()


def zip_of(members: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def tar_of(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, data in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def encrypted_zip() -> bytes:
    """A ZIP whose one member has the encryption flag set (ZipCrypto header, not real crypto)."""
    data = zip_of({"secret.txt": b"x" * 100, "plain.txt": f"{EN}".encode()}, method=zipfile.ZIP_STORED)
    buf = bytearray(data)
    # set bit 0 of the general-purpose flags in the first local header and its central entry
    buf[6] |= 1
    cd = buf.find(b"PK\x01\x02")
    buf[cd + 8] |= 1
    return bytes(buf)


# --- bombs -----------------------------------------------------------------------------------

GiB = 1 << 30
MiB = 1 << 20


@cache
def _unit() -> bytes:
    """Raw DEFLATE of 1 MiB of spaces ended by a full flush: byte-aligned and self-contained, so
    ``unit * n`` + an empty final block is a valid stream of n MiB (made in no time)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(b" " * MiB) + c.flush(zlib.Z_FULL_FLUSH)


def _checksums(total: int) -> tuple[int, int]:
    chunk = b" " * MiB
    crc, adler = 0, 1
    for _ in range(total // MiB):
        crc = zlib.crc32(chunk, crc)
        adler = zlib.adler32(chunk, adler)
    return crc, adler


@cache
def deflate_spaces(total: int) -> bytes:
    """Raw DEFLATE of ``total`` bytes of spaces (a multiple of 1 MiB)."""
    return _unit() * (total // MiB) + b"\x03\x00"


@cache
def zlib_spaces(total: int) -> bytes:
    _crc, adler = _checksums(total)
    return b"\x78\xda" + deflate_spaces(total) + struct.pack(">I", adler)


@cache
def gzip_spaces(total: int) -> bytes:
    crc, _ = _checksums(total)
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + deflate_spaces(total)
            + struct.pack("<II", crc, total & 0xFFFFFFFF))


@cache
def bzip2_spaces(total: int) -> bytes:
    """bzip2 of ``total`` spaces (about 10 s per GiB to make: use 256 MiB in fast tests)."""
    c = bz2.BZ2Compressor(9)
    chunk = b" " * MiB
    out = [c.compress(chunk) for _ in range(total // MiB)]
    out.append(c.flush())
    return b"".join(out)


def _zip_raw(name: str, method: int, comp: bytes, usize: int, crc: int = 0) -> bytes:
    """A one-member ZIP from already-compressed bytes (declared sizes as given)."""
    n = name.encode()
    lfh = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 46, 0, method, 0, 0x21, crc, len(comp), usize, len(n), 0) + n
    cdh = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 46, 46, 0, method, 0, 0x21, crc, len(comp), usize,
                      len(n), 0, 0, 0, 0, 0, 0) + n
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(cdh), len(lfh) + len(comp), 0)
    return lfh + comp + cdh + eocd


@cache
def zip_bomb_bzip2(total: int = 256 * MiB) -> bytes:
    """``total`` spaces in one bzip2 member (method 12): about 300 B per 256 MiB."""
    return _zip_raw("bomb.txt", 12, bzip2_spaces(total), total)


@cache
def zip_bomb_deflate(total: int = GiB) -> bytes:
    """1 GiB of spaces in one DEFLATE member: about 1 MB."""
    crc, _ = _checksums(total)
    return _zip_raw("bomb.txt", 8, deflate_spaces(total), total, crc)


@cache
def zip_bomb_forged_size(total: int = 256 * MiB) -> bytes:
    """A bzip2 member of ``total`` bytes whose declared size is 1000 bytes (defeats ratio checks)."""
    return _zip_raw("small.txt", 12, bzip2_spaces(total), 1000)


@cache
def gzip_gzip_bomb() -> bytes:
    """gzip(gzip(1 GiB of spaces)): a few KB, as a ``Content-Encoding: gzip, gzip`` body."""
    return gzip.compress(gzip_spaces(GiB), 9)


@cache
def pdf_bomb() -> bytes:
    """A PDF page whose content stream is ``/Filter [/FlateDecode /FlateDecode]`` of 1 GiB."""
    stream = zlib.compress(zlib_spaces(GiB), 9)
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length %d /Filter [/FlateDecode /FlateDecode] >>\nstream\n" % len(stream) + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def png_pixel_bomb(side: int = 100_000) -> bytes:
    """A PNG header claiming ``side``×``side`` pixels (10 gigapixels) with a tiny IDAT."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1024)) + \
        chunk(b"IEND", b"")


def nested_zip(depth: int = 8) -> bytes:
    data = f"{EN} innermost".encode()
    name = "core.txt"
    for i in range(depth):
        data = zip_of({name: data})
        name = f"level{depth - i}.zip"
    return data


def docx_entity_bomb() -> bytes:
    """A DOCX whose document.xml declares billion-laughs entities."""
    base = docx(1, image=False)
    ents = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol%s;" % ("" if i == 1 else i - 1)) * 10}">' for i in range(1, 10))
    body = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<!DOCTYPE w:document [{ents}]>'
            '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
            f'<w:p><w:r><w:t>{EN} &lol9;</w:t></w:r></w:p></w:body></w:document>')
    return _replace_member(base, "word/document.xml", body.encode())


def docx_many_elements(mib: int = 64) -> bytes:
    """A DOCX whose document.xml holds ``mib`` MiB of empty ``<w:p/>`` elements (written streaming)."""
    base = docx(1, image=False)
    head = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document xmlns:w='
            b'"http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>'
            + EN.encode() + b"</w:t></w:r></w:p>")
    unit = b"<w:p/>" * (MiB // 6)
    tail = b"</w:body></w:document>"
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [c.compress(head)]
    crc = zlib.crc32(head)
    size = len(head)
    for _ in range(mib):
        parts.append(c.compress(unit))
        crc = zlib.crc32(unit, crc)
        size += len(unit)
    parts.append(c.compress(tail))
    crc = zlib.crc32(tail, crc)
    size += len(tail)
    parts.append(c.flush())
    comp = b"".join(parts)
    return _replace_member(base, "word/document.xml", None, raw=(comp, size, crc))


def _replace_member(zdata: bytes, name: str, data: bytes | None, raw: tuple[bytes, int, int] | None = None,
                    method: int = 8) -> bytes:
    """``zdata`` with member ``name`` replaced by ``data``, or by already-compressed ``raw`` (bytes, size, crc)
    stored with ``method`` (8 DEFLATE, 12 bzip2)."""
    src = zipfile.ZipFile(io.BytesIO(zdata))
    members = [(zi.filename, src.read(zi.filename)) for zi in src.infolist() if zi.filename != name]
    if raw is None:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
            out.writestr(name, data or b"")
            for n, d in members:
                out.writestr(n, d)
        return buf.getvalue()
    comp, size, crc = raw
    body = bytearray()
    central = bytearray()
    entries = [(name.encode(), method, comp, size, crc)] + [
        (n.encode(), 8, zlib.compress(d, 9)[2:-4], len(d), zlib.crc32(d)) for n, d in members]
    for n, meth, c, usize, crc_ in entries:
        off = len(body)
        body += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 46, 0, meth, 0, 0x21, crc_, len(c), usize, len(n), 0)
        body += n + c
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 46, 46, 0, meth, 0, 0x21, crc_, len(c),
                               usize, len(n), 0, 0, 0, 0, 0, off) + n
    eocd = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), len(body), 0)
    return bytes(body + central + eocd)


def sniffed(data: bytes, factory: object, **kw: object) -> ContentObject:
    """`obj` with ``sniffed_mime`` set by the factory, as reassembly would have it."""
    mime, desc = factory.sniff(data[:65536])  # type: ignore[attr-defined]
    return obj(data, sniffed=mime, magic=desc, **kw)  # type: ignore[arg-type]


def pdf_pixel_bomb(side: int = 100_000) -> bytes:
    """A PDF page drawing an image XObject that claims ``side``×``side`` pixels (tiny data)."""
    img = zlib.compress(b"\x00" * 4096)
    content = b"q 100 0 0 100 0 0 cm /Im1 Do Q BT /F1 12 Tf 10 700 Td (" + EN.encode() + b") Tj ET"
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /XObject << /Im1 5 0 R"
        b" >> /Font << /F1 6 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceGray /BitsPerComponent 8 "
        b"/Filter /FlateDecode /Length %d >>\nstream\n" % (side, side, len(img)) + img + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + o + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def docx_with_image(image: bytes) -> bytes:
    """A DOCX whose word/media/image1.png is ``image``."""
    return _replace_member(docx(1, image=True), "word/media/image1.png", image)


@cache
def xlsx_bzip2_bomb(total: int = 256 * MiB) -> bytes:
    """An XLSX with a bzip2 member (method 12, which zipfile and every OOXML library accept) of ``total`` spaces."""
    return _replace_member(xlsx(), "xl/media/image1.png", None, raw=(bzip2_spaces(total), total, 0), method=12)
