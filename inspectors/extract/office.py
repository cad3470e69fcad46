"""OOXML (DOCX/XLSX/PPTX) and ODF (ODT/ODS/ODP) text, read straight from the ZIP.

No document library is involved at run time: the text parts are fed in 64 KiB chunks to an
lxml parser *target* (SAX-like callbacks, no tree is built), so memory stays bounded whatever
the part holds, and entity resolution, DTD loading and network access are off (entity-
expansion bombs expand nothing; a DTD in an Office part is the anomaly ``office_xml_dtd``).
Limits: the ZIP is checked from its central directory first (`bounded.check_zip`); members
whose compression ratio is beyond the limit are read only up to a small slice; elements are
counted across all parts (``max_xml_elements``) and the task's clock is checked per chunk.
Images and embedded objects become children. A ZIP cut short (a partial capture) is read from
its local headers by `bounded.walk_local_headers` and the complete parts are used.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from inspectors.extract.bounded import LocalEntry, ZipCheck, read_member
from inspectors.extract.parts import Child, Clock, Limits, Partial, TextSink, add_child
from inspectors.extract.structured import strip_doctype

SUSPICIOUS_SLICE = 4 * 1024 * 1024
"""Bytes read from a member whose compression ratio marks it as a bomb."""
MAX_PART = 64 * 1024 * 1024
"""Bytes read from any single XML part."""

_IMAGE_EXT = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "bmp": "image/bmp",
              "tif": "image/tiff", "tiff": "image/tiff", "emf": "image/emf", "wmf": "image/wmf", "webp": "image/webp",
              "svg": "image/svg+xml", "jfif": "image/jpeg"}
_MEDIA_DIRS = ("word/media/", "ppt/media/", "xl/media/", "Pictures/", "word/embeddings/", "ppt/embeddings/",
               "xl/embeddings/", "media/")
_NUM = re.compile(r"(\d+)")


def _natural(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in _NUM.split(name)]


PROBLEM_REASON = {"ratio": "zip_ratio", "limit": "expanded_bytes", "eof": "partial", "forged": "zip_size_mismatch"}
PROBLEM_ANOMALY = {"ratio": "zip_bomb_ratio", "limit": "extract_expanded_limit", "eof": "zip_partial_member",
                    "forged": "zip_bomb_forged_size"}


def mime_for(name: str) -> str:
    """A MIME type hint from a member's extension (images only; others are sniffed later)."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _IMAGE_EXT.get(ext, "")


class Members:
    """Read access to a ZIP's members: from a `ZipFile` or from salvaged local entries."""

    def __init__(self, zf: zipfile.ZipFile | None = None, check: ZipCheck | None = None,
                 salvaged: list[LocalEntry] | None = None) -> None:
        self.zf = zf
        self.check = check
        self.salvaged = {e.name: e for e in salvaged or []}
        self._infos = {zi.filename: zi for zi in zf.infolist()} if zf else {}

    def names(self) -> list[str]:
        return list(self._infos) if self.zf else list(self.salvaged)

    def declared_size(self, name: str) -> int:
        zi = self._infos.get(name)
        if zi:
            return zi.file_size
        e = self.salvaged.get(name)
        return len(e.data) if e else 0

    def encrypted(self, name: str) -> bool:
        zi = self._infos.get(name)
        if zi:
            return bool(zi.flag_bits & 1)
        e = self.salvaged.get(name)
        return bool(e and e.encrypted)

    def read(self, name: str, cap: int) -> tuple[bytes, str]:
        """(bytes up to ``cap``, problem): problem is '' when whole, else ``limit``/``ratio``/``error:…``/``eof``."""
        if self.zf:
            zi = self._infos[name]
            ratio = bool(self.check and name in self.check.suspicious)
            data, problem = read_member(self.zf, zi, min(cap, SUSPICIOUS_SLICE) if ratio else cap)
            if ratio and problem == "limit":
                problem = "ratio"
            if problem == "error:size_mismatch":
                problem = "forged"
            return data, problem
        e = self.salvaged[name]
        data = e.data[:cap]
        if not e.complete:
            return data, "eof"
        return data, "" if len(e.data) <= cap else "limit"


class _Collector:
    """Parser target: text of chosen elements, with paragraph/tab/cell separators."""

    def __init__(self, sink: TextSink, text_tags: frozenset[str], para: frozenset[str], tab: frozenset[str],
                 brk: frozenset[str], all_text: bool = False, on_end: Callable[[str], None] | None = None) -> None:
        self.sink = sink
        self.text_tags = text_tags
        self.para = para
        self.tab = tab
        self.brk = brk
        self.all_text = all_text
        self.depth_in_text = 0
        self.elements = 0
        self.on_end = on_end
        self.attrs: dict[str, str] = {}

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self.elements += 1
        local = tag.rpartition("}")[2] if isinstance(tag, str) else ""
        if local in self.text_tags:
            self.depth_in_text += 1
        elif local in self.tab:
            self.sink.add("\t")
        elif local in self.brk:
            self.sink.add("\n")
        elif local == "s" and self.all_text:  # ODF text:s: runs of spaces
            self.sink.add(" ")
        self.attrs = attrib  # type: ignore[assignment]

    def end(self, tag: str) -> None:
        local = tag.rpartition("}")[2] if isinstance(tag, str) else ""
        if local in self.text_tags and self.depth_in_text:
            self.depth_in_text -= 1
        if local in self.para:
            self.sink.add("\n")
        if self.on_end:
            self.on_end(local)

    def data(self, s: str) -> None:
        if self.depth_in_text or self.all_text:
            self.sink.add(s)

    def close(self) -> None:
        pass


class _SheetCollector:
    """Parser target for an XLSX worksheet: cell values, shared strings resolved."""

    def __init__(self, sink: TextSink, shared: list[str]) -> None:
        self.sink = sink
        self.shared = shared
        self.elements = 0
        self.ctype = ""
        self.buf: list[str] | None = None
        self.inline = False

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self.elements += 1
        local = tag.rpartition("}")[2]
        if local == "c":
            self.ctype = attrib.get("t", "")
        elif local == "v" or (local == "t" and self.inline):
            self.buf = []
        elif local == "is":
            self.inline = True

    def end(self, tag: str) -> None:
        local = tag.rpartition("}")[2]
        if local == "v" and self.buf is not None:
            v = "".join(self.buf)
            if self.ctype == "s":
                try:
                    v = self.shared[int(v)]
                except (ValueError, IndexError):
                    pass
            self.sink.add(v)
            self.buf = None
        elif local == "t" and self.inline and self.buf is not None:
            self.sink.add("".join(self.buf))
            self.buf = None
        elif local == "is":
            self.inline = False
        elif local == "c":
            self.sink.add("\t")
        elif local == "row":
            self.sink.add("\n")

    def data(self, s: str) -> None:
        if self.buf is not None:
            self.buf.append(s)

    def close(self) -> None:
        pass


@dataclass(slots=True)
class _Ctx:
    part: Partial
    limits: Limits
    clock: Clock
    sink: TextSink
    elements: int = 0
    expanded: int = 0


def _parse(ctx: _Ctx, members: Members, name: str, target: _Collector | _SheetCollector) -> None:
    """Feed one XML part to ``target`` within the element, byte and time limits."""
    room = min(MAX_PART, ctx.limits.max_expanded_bytes - ctx.expanded)
    if room <= 0:
        ctx.part.flag("expanded_bytes", "extract_expanded_limit")
        return
    data, problem = members.read(name, room)
    ctx.expanded += len(data)
    if problem == "ratio":
        ctx.part.flag("zip_ratio", "zip_bomb_ratio")
    elif problem == "forged":
        ctx.part.flag("zip_size_mismatch", "zip_bomb_forged_size")
    elif problem == "limit":
        ctx.part.flag("expanded_bytes", "extract_expanded_limit")
    elif problem == "eof":
        ctx.part.flag("partial_member", "zip_partial_member")
    elif problem:
        ctx.part.note(f"zip_member_{problem.split(':')[0]}")
    if b"<!ENTITY" in data[:65536]:
        ctx.part.flag("xml_entities", "office_xml_entities")
    data, had_dtd = strip_doctype(data)
    if had_dtd:
        ctx.part.note("office_xml_dtd")
    parser = etree.XMLParser(target=target, resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, recover=True, remove_comments=True, remove_pis=True)
    base = ctx.elements
    try:
        for i in range(0, len(data), 65536):
            parser.feed(data[i:i + 65536])
            ctx.elements = base + target.elements
            if ctx.elements > ctx.limits.max_xml_elements:
                ctx.part.flag("xml_elements", "office_many_elements")
                return
            if ctx.clock.over():
                ctx.part.flag("time", "extract_time_limit")
                return
            if ctx.sink.full:
                return
        parser.close()
    except etree.XMLSyntaxError:
        ctx.part.note("office_xml_malformed")
    except (ValueError, TypeError):
        ctx.part.note("office_xml_malformed")
    ctx.elements = base + target.elements


def _children(ctx: _Ctx, members: Members, names: list[str]) -> None:
    for name in names:
        if not name.startswith(_MEDIA_DIRS) and not (name.startswith("Object ") and "/" not in name.rstrip("/")):
            continue
        if name.endswith("/"):
            continue
        if ctx.part.truncated and ("children" in ctx.part.truncated or "depth" in ctx.part.truncated):
            return
        if ctx.clock.over():
            ctx.part.flag("time", "extract_time_limit")
            return
        room = min(ctx.limits.max_child_bytes, ctx.limits.max_expanded_bytes - ctx.expanded)
        if room <= 0:
            ctx.part.flag("expanded_bytes", "extract_expanded_limit")
            return
        if not ctx.limits.make_children:
            ctx.part.flag("depth", "extract_depth_limit")
            return
        data, problem = members.read(name, room)
        ctx.expanded += len(data)
        child = Child(posixpath.basename(name), data, max(len(data), members.declared_size(name)), mime_for(name))
        child.meta["path"] = name
        if problem:
            child.truncated.append(PROBLEM_REASON.get(problem, "error"))
        add_child(ctx.part, ctx.limits, child)


def _meta(ctx: _Ctx, members: Members, name: str) -> None:
    data, _ = members.read(name, 256 * 1024)
    data, _ = strip_doctype(data)
    fields: dict[str, str] = {}
    cur: list[str] = []

    class T:
        elements = 0

        def start(self, tag: str, attrib: dict[str, str]) -> None:
            self.elements += 1
            cur.clear()

        def end(self, tag: str) -> None:
            local = tag.rpartition("}")[2]
            if local in ("title", "creator", "subject", "keywords", "description", "lastModifiedBy",
                         "initial-creator", "Company", "Pages", "Words", "Slides") and "".join(cur).strip():
                fields[local] = "".join(cur).strip()[:200]
            cur.clear()

        def data(self, s: str) -> None:
            cur.append(s)

        def close(self) -> None:
            pass

    try:
        parser = etree.XMLParser(target=T(), resolve_entities=False, no_network=True, load_dtd=False, recover=True)
        parser.feed(data)
        parser.close()
    except (etree.XMLSyntaxError, ValueError):
        return
    for k, v in fields.items():
        ctx.part.meta[k.lower()] = v


_W_TEXT = frozenset(("t",))
_PARA = frozenset(("p",))
_TAB = frozenset(("tab",))
_BR = frozenset(("br", "cr"))


def extract_ooxml(members: Members, limits: Limits, kind: str = "") -> Partial:
    """Text, metadata and media children of a DOCX, XLSX or PPTX."""
    part = Partial()
    ctx = _Ctx(part, limits, Clock(limits.max_seconds), TextSink(limits.max_text_chars))
    names = members.names()
    nameset = set(names)
    if not kind:
        kind = "docx" if "word/document.xml" in nameset else "xlsx" if "xl/workbook.xml" in nameset else \
            "pptx" if "ppt/presentation.xml" in nameset else "ooxml"
    part.meta["format"] = kind
    for n in names:
        if members.encrypted(n):
            part.note("zip_encrypted_entry")
    if kind == "docx" or kind == "ooxml":
        extra = (n for n in names if re.match(r"word/(header|footer|footnotes|endnotes|comments)\d*\.xml$", n))
        order = ["word/document.xml", *sorted(extra, key=_natural)]
        for n in order:
            if n in nameset and not ctx.sink.full:
                _parse(ctx, members, n, _Collector(ctx.sink, _W_TEXT, _PARA, _TAB, _BR))
                ctx.sink.add("\n")
    elif kind == "pptx":
        slides = sorted((n for n in names if re.match(r"ppt/slides/slide\d+\.xml$", n)), key=_natural)
        notes = sorted((n for n in names if re.match(r"ppt/notesSlides/notesSlide\d+\.xml$", n)), key=_natural)
        part.meta["slides"] = str(len(slides))
        for n in slides + notes:
            if ctx.sink.full or (part.truncated and ("time" in part.truncated or "xml_elements" in part.truncated)):
                break
            _parse(ctx, members, n, _Collector(ctx.sink, _W_TEXT, _PARA, _TAB, _BR))
            ctx.sink.add("\n")
    elif kind == "xlsx":
        shared: list[str] = []
        if "xl/sharedStrings.xml" in nameset:
            ssink = TextSink(limits.max_text_chars)
            cur: list[int] = [0]

            def on_end(local: str) -> None:
                if local == "si":
                    t = ssink.text()
                    shared.append(t[cur[0]:])
                    cur[0] = len(t)

            _parse(ctx, members, "xl/sharedStrings.xml", _Collector(ssink, _W_TEXT, frozenset(), frozenset(),
                                                                     frozenset(), on_end=on_end))
        sheets = sorted((n for n in names if re.match(r"xl/worksheets/sheet\d+\.xml$", n)), key=_natural)
        part.meta["sheets"] = str(len(sheets))
        for n in sheets:
            if ctx.sink.full or (part.truncated and ("time" in part.truncated or "xml_elements" in part.truncated)):
                break
            _parse(ctx, members, n, _SheetCollector(ctx.sink, shared))
            ctx.sink.add("\n")
    if "docProps/core.xml" in nameset:
        _meta(ctx, members, "docProps/core.xml")
    _children(ctx, members, names)
    part.text = _tidy(ctx.sink.text())
    if ctx.sink.full:
        part.flag("text_limit")
    part.expanded = ctx.expanded
    return part


_ODF_PARA = frozenset(("p", "h", "table-row", "list-item"))
_ODF_TAB = frozenset(("tab", "table-cell"))
_ODF_BR = frozenset(("line-break",))


def extract_odf(members: Members, limits: Limits) -> Partial:
    """Text, metadata and picture children of an ODT, ODS or ODP."""
    part = Partial()
    ctx = _Ctx(part, limits, Clock(limits.max_seconds), TextSink(limits.max_text_chars))
    names = members.names()
    nameset = set(names)
    if "mimetype" in nameset:
        mt, _ = members.read("mimetype", 200)
        part.meta["format"] = mt.decode("ascii", "replace").rsplit(".", 1)[-1]
    for n in names:
        if members.encrypted(n):
            part.note("zip_encrypted_entry")
    if "META-INF/manifest.xml" in nameset:
        man, _ = members.read("META-INF/manifest.xml", 1 << 20)
        if b"encryption-data" in man:
            part.note("odf_encrypted")
    for n in ("content.xml", "styles.xml"):
        if n in nameset and not ctx.sink.full:
            _parse(ctx, members, n, _Collector(ctx.sink, frozenset(), _ODF_PARA, _ODF_TAB, _ODF_BR, all_text=True))
            ctx.sink.add("\n")
    if "meta.xml" in nameset:
        _meta(ctx, members, "meta.xml")
    _children(ctx, members, names)
    part.text = _tidy(ctx.sink.text())
    if ctx.sink.full:
        part.flag("text_limit")
    part.expanded = ctx.expanded
    return part


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
