"""Archives: ZIP (and the ZIP-based document formats), GZIP, BZIP2, XZ, TAR, 7z, RAR (4 and 5).

Runs inside a sandbox worker. Members become `Child` specs (bounded by the child-count,
per-child and total expanded-byte limits); the text of an archive is its member list (names
are what crossed the wire, and a keyword in a file name matters). Encrypted ZIP entries are
listed and flagged (``zip_encrypted_entry``), not extracted. A ZIP that is cut short or whose
central directory is damaged is salvaged from its local headers (``zip_salvaged``). A ZIP that
holds ``[Content_Types].xml`` or an ODF ``mimetype`` is handed to `inspectors.extract.office`.
Nested archives are not opened here: each member is a child, extracted in its turn by the
dispatcher, where the depth budget applies.

7z and RAR are read with libarchive (``libarchive-c`` over Debian's libarchive13, which reads
7z, RAR 1.5-4 and RAR5 from memory, streaming each member): the same member, child, expanded-byte
and time budgets as ZIP and TAR, and a whole-archive ratio check (more than ``max_ratio`` times
the archive's size past 1 MiB is a bomb: ``7z_bomb_ratio`` / ``rar_bomb_ratio``). Encrypted
members are listed and flagged (``7z_encrypted_entry`` / ``rar_encrypted_entry``); an archive
whose headers are encrypted cannot be listed (``7z_encrypted_headers`` / ``rar_encrypted_headers``);
a damaged or cut archive keeps the members read before the damage (``7z_partial``/``rar_partial``).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import zipfile

from inspectors.extract.bounded import (
    Inflated,
    ZipLimits,
    bunzip2,
    check_zip,
    gunzip_members,
    read_member,
    read_stream,
    unxz,
    walk_local_headers,
)
from inspectors.extract.office import PROBLEM_ANOMALY, PROBLEM_REASON, Members, extract_odf, extract_ooxml, mime_for
from inspectors.extract.parts import Child, Clock, Limits, Partial, TextSink, add_child

MAX_LISTED = 10_000


def _zip_limits(limits: Limits) -> ZipLimits:
    return ZipLimits(max_members=MAX_LISTED, max_total=limits.max_expanded_bytes, max_ratio=limits.max_ratio)


def _office_kind(names: set[str]) -> str:
    if "[Content_Types].xml" in names:
        return "ooxml"
    if "mimetype" in names and ("content.xml" in names or "META-INF/manifest.xml" in names):
        return "odf"
    return ""


def extract_zip(data: bytes, *, limits: Limits) -> Partial:
    """A ZIP or ZIP-based document (DOCX/XLSX/PPTX/ODT/ODS/ODP/JAR/EPUB…)."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError):
        return _salvage_zip(data, limits)
    check = check_zip(zf, _zip_limits(limits))
    members = Members(zf, check)
    kind = _office_kind({zi.filename for zi in infos})
    if kind == "ooxml":
        part = extract_ooxml(members, limits)
    elif kind == "odf":
        part = extract_odf(members, limits)
    else:
        part = _zip_members(members, limits, Clock(limits.max_seconds))
    for p in check.problems:
        if p.startswith("zip_ratio"):
            part.flag("zip_ratio", "zip_bomb_ratio")
        elif p.startswith("zip_declared_size"):
            part.note("zip_declared_size")
        elif p.startswith("zip_members"):
            part.flag("zip_members", "zip_many_members")
    if any(zi.compress_type == zipfile.ZIP_BZIP2 for zi in infos):
        part.note("zip_bzip2")
    part.meta["members"] = str(len(infos))
    return part


def _salvage_zip(data: bytes, limits: Limits) -> Partial:
    entries = walk_local_headers(data, limits.max_child_bytes, limits.max_expanded_bytes, MAX_LISTED)
    names = {e.name for e in entries}
    members = Members(salvaged=entries)
    kind = _office_kind(names)
    if kind == "ooxml":
        part = extract_ooxml(members, limits)
    elif kind == "odf":
        part = extract_odf(members, limits)
    else:
        part = _zip_members(members, limits, Clock(limits.max_seconds))
    if not entries:
        part.note("zip_unreadable")
    part.note("zip_salvaged")
    if b"PK\x05\x06" not in data[-65557:]:
        part.flag("partial", "zip_partial")
    part.meta["members"] = str(len(entries))
    return part


def _member_room(part: Partial, limits: Limits, clock: Clock, expanded: int) -> int | None:
    """Bytes the next archive member may expand to under the budget: > 0 to read it, 0 to skip
    it (depth, child count or expanded bytes used up; flagged), None to stop (time is up)."""
    if not limits.make_children:
        part.flag("depth", "extract_depth_limit")
        return 0
    if len(part.children) >= limits.max_children:
        part.flag("children", "extract_child_limit")
        return 0
    if clock.over():
        part.flag("time", "extract_time_limit")
        return None
    room = min(limits.max_child_bytes, limits.max_expanded_bytes - expanded)
    if room <= 0:
        part.flag("expanded_bytes", "extract_expanded_limit")
        return 0
    return room


def _zip_members(members: Members, limits: Limits, clock: Clock) -> Partial:
    part = Partial()
    listing = TextSink(limits.max_text_chars)
    expanded = 0
    for name in members.names()[:MAX_LISTED]:
        listing.add(name + "\n")
        if name.endswith("/"):
            continue
        if members.encrypted(name):
            part.note("zip_encrypted_entry")
            part.meta["encrypted"] = str(int(part.meta.get("encrypted", "0")) + 1)
            continue
        room = _member_room(part, limits, clock, expanded)
        if room is None:
            break
        if room <= 0:
            continue
        data, problem = members.read(name, room)
        expanded += len(data)
        child = Child(posixpath.basename(name) or name, data, max(len(data), members.declared_size(name)),
                      mime_for(name))
        child.meta["path"] = name
        if problem:
            reason = PROBLEM_REASON.get(problem, "error")
            child.truncated.append(reason)
            part.flag(reason, PROBLEM_ANOMALY.get(problem, "zip_member_error"))
        add_child(part, limits, child)
    if len(members.names()) > MAX_LISTED:
        part.flag("zip_members", "zip_many_members")
    part.text = listing.text().strip()
    part.expanded = expanded
    return part


def _single(data: bytes, limits: Limits, r: Inflated, name: str, fmt: str) -> Partial:
    part = Partial(meta={"format": fmt})
    part.expanded = len(r.data)
    child = Child(name, r.data, len(r.data))
    if not r.complete:
        reason = {"limit": "expanded_bytes", "eof": "partial", "error": "corrupt"}[r.reason or "error"]
        child.truncated.append(reason)
        part.flag(reason, {"expanded_bytes": f"{fmt}_bomb", "partial": f"{fmt}_partial",
                           "corrupt": f"{fmt}_corrupt"}[reason])
    if r.data or r.complete:
        add_child(part, limits, child)
    part.text = name
    return part


def _inner_name(filename: str, ext: tuple[str, ...], default: str) -> str:
    base = posixpath.basename(filename or "")
    for e in ext:
        if base.lower().endswith(e):
            return base[: -len(e)] + (".tar" if e in (".tgz", ".tbz2", ".txz") else "")
    return base + ".out" if base else default


def gzip_name(data: bytes) -> str:
    """The FNAME field of a gzip header, if present."""
    if len(data) < 10 or not data[3] & 0x08:
        return ""
    pos = 10
    if data[3] & 0x04:
        if len(data) < 12:
            return ""
        pos += 2 + int.from_bytes(data[10:12], "little")
    end = data.find(b"\x00", pos, pos + 1024)
    return data[pos:end].decode("latin-1") if end > pos else ""


def extract_compressed(data: bytes, *, limits: Limits, filename: str = "") -> Partial:
    """GZIP, BZIP2 or XZ: one child holding the decompressed stream (bounded)."""
    cap = min(limits.max_child_bytes, limits.max_expanded_bytes)
    if not limits.make_children:
        p = Partial()
        p.flag("depth", "extract_depth_limit")
        return p
    if data.startswith(b"\x1f\x8b"):
        name = posixpath.basename(gzip_name(data)) or _inner_name(filename, (".gz", ".tgz", ".gzip"), "gunzipped")
        r = gunzip_members(data, cap)
        return _single(data, limits, r, name, "gzip")
    if data.startswith(b"BZh"):
        return _single(data, limits, bunzip2(data, cap), _inner_name(filename, (".bz2", ".tbz2"), "bunzipped"),
                       "bzip2")
    if data.startswith(b"\xfd7zXZ\x00"):
        return _single(data, limits, unxz(data, cap), _inner_name(filename, (".xz", ".txz"), "unxzed"), "xz")
    p = Partial()
    p.note("compressed_unknown")
    return p


def extract_tar(data: bytes, *, limits: Limits) -> Partial:
    """A TAR archive (uncompressed: a .tar.gz arrives here as the gzip's child)."""
    part = Partial(meta={"format": "tar"})
    listing = TextSink(limits.max_text_chars)
    clock = Clock(limits.max_seconds)
    expanded = 0
    count = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            while True:
                try:
                    ti = tf.next()
                except (tarfile.TarError, EOFError, OSError):
                    part.flag("partial", "tar_partial")
                    break
                if ti is None:
                    break
                count += 1
                listing.add(ti.name + "\n")
                if count > MAX_LISTED:
                    part.flag("zip_members", "tar_many_members")
                    break
                if not ti.isfile():
                    continue
                room = _member_room(part, limits, clock, expanded)
                if room is None:
                    break
                if room <= 0:
                    continue
                f = tf.extractfile(ti)
                if f is None:
                    continue
                try:
                    body, whole = read_stream(f, room)
                except (tarfile.TarError, OSError, EOFError):
                    body, whole = b"", False
                expanded += len(body)
                child = Child(posixpath.basename(ti.name), body, ti.size, mime_for(ti.name))
                child.meta["path"] = ti.name
                if len(body) < ti.size:
                    child.truncated.append("expanded_bytes" if not whole else "partial")
                    part.flag("partial" if whole else "expanded_bytes",
                              "tar_partial" if whole else "extract_expanded_limit")
                add_child(part, limits, child)
    except (tarfile.TarError, OSError, EOFError, ValueError):
        part.flag("partial", "tar_unreadable")
    part.text = listing.text().strip()
    part.expanded = expanded
    return part


_ENCRYPTED: object = None


def _is_encrypted(entry: object) -> bool:
    """libarchive's ``archive_entry_is_encrypted`` (data or metadata), which libarchive-c does not wrap."""
    global _ENCRYPTED
    if _ENCRYPTED is None:
        import ctypes

        from libarchive import ffi

        fn = ffi.libarchive.archive_entry_is_encrypted
        fn.argtypes, fn.restype = [ctypes.c_void_p], ctypes.c_int
        _ENCRYPTED = fn
    return bool(_ENCRYPTED(entry._entry_p))  # type: ignore[operator, attr-defined]


def _read_entry(entry: object, room: int) -> tuple[bytes, bool]:
    """Up to ``room`` bytes of a member; (data, whole)."""
    out: list[bytes] = []
    n = 0
    for block in entry.get_blocks():  # type: ignore[attr-defined]
        out.append(block)
        n += len(block)
        if n > room:
            return b"".join(out)[:room], False
    return b"".join(out), True


def extract_7z(data: bytes, *, limits: Limits) -> Partial:
    """A 7z archive (LZMA/LZMA2/BZip2/Deflate/PPMd, solid or not)."""
    return _libarchive(data, limits, "7z", "7zip")


def extract_rar(data: bytes, *, limits: Limits) -> Partial:
    """A RAR archive, version 5 or 1.5-4."""
    if data.startswith(b"Rar!\x1a\x07\x01\x00"):
        return _libarchive(data, limits, "rar", "rar5", rar5_encrypted_names(data))
    return _libarchive(data, limits, "rar", "rar")


def _vint(data: bytes, pos: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        b = data[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80 or shift > 63:
            return v, pos


def rar5_encrypted_names(data: bytes) -> set[str]:
    """Names of RAR5 members whose file header carries an encryption record (libarchive 3.6 reads
    them as if they were plain). Walks the block headers only; never raises."""
    out: set[str] = set()
    pos = 8
    try:
        for _ in range(MAX_LISTED + 2):
            size, p = _vint(data, pos + 4)
            end = p + size
            htype, p = _vint(data, p)
            flags, p = _vint(data, p)
            extra = dsize = 0
            if flags & 0x1:
                extra, p = _vint(data, p)
            if flags & 0x2:
                dsize, p = _vint(data, p)
            if htype == 5 or end > len(data):
                break
            if htype == 2:
                ff, p = _vint(data, p)
                for _ in range(2):  # unpacked size, attributes
                    _, p = _vint(data, p)
                p += (4 if ff & 0x2 else 0) + (4 if ff & 0x4 else 0)
                for _ in range(2):  # compression information, host OS
                    _, p = _vint(data, p)
                nlen, p = _vint(data, p)
                name = data[p:p + nlen].decode("utf-8", "replace")
                q = end - extra
                while q < end:
                    rsize, r = _vint(data, q)
                    rtype, _ = _vint(data, r)
                    if rtype == 0x01:
                        out.add(name)
                    q = r + rsize
            pos = end + dsize
    except IndexError:
        pass
    return out


def _libarchive(data: bytes, limits: Limits, label: str, fmt: str, encrypted_names: set[str] | None = None) -> Partial:
    import libarchive
    from libarchive.exception import ArchiveError

    part = Partial(meta={"format": label})
    listing = TextSink(limits.max_text_chars)
    clock = Clock(limits.max_seconds)
    expanded = count = encrypted = 0
    bomb = max(1024 * 1024, int(len(data) * limits.max_ratio))
    try:
        with libarchive.memory_reader(data, format_name=fmt) as archive:
            for entry in archive:
                count += 1
                name = entry.pathname or f"member{count}"
                listing.add(name + "\n")
                if count > MAX_LISTED:
                    part.flag("zip_members", f"{label}_many_members")
                    break
                if not entry.isfile:
                    continue
                if _is_encrypted(entry) or (encrypted_names and name in encrypted_names):
                    encrypted += 1
                    part.note(f"{label}_encrypted_entry")
                    continue
                room = _member_room(part, limits, clock, expanded)
                if room is None:
                    break
                if room <= 0:
                    continue
                body, whole = _read_entry(entry, min(room, bomb - expanded + 1))
                expanded += len(body)
                declared = entry.size or 0
                child = Child(posixpath.basename(name) or name, body, max(len(body), declared), mime_for(name))
                child.meta["path"] = name
                if expanded > bomb:
                    child.truncated.append("expanded_bytes")
                    part.flag("expanded_bytes", f"{label}_bomb_ratio")
                    add_child(part, limits, child)
                    break
                if not whole:
                    child.truncated.append("expanded_bytes")
                    part.flag("expanded_bytes", "extract_expanded_limit")
                add_child(part, limits, child)
    except ArchiveError as exc:
        if "encrypt" in str(exc).lower() and not count:
            part.flag("encrypted", f"{label}_encrypted_headers")
        else:
            part.flag("partial", f"{label}_partial")
    except (OSError, ValueError, MemoryError):
        part.flag("partial", f"{label}_partial")
    if encrypted:
        part.meta["encrypted"] = str(encrypted)
    part.meta["members"] = str(count)
    part.text = listing.text().strip()
    part.expanded = expanded
    return part


__all__ = ["extract_7z", "extract_compressed", "extract_rar", "extract_tar", "extract_zip", "gzip_name",
           "read_member"]
