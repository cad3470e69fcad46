"""Building content objects while their bytes stream: hashes, head for libmagic, kept data.

Every carrier (HTTP bodies and parts, SMTP MIME parts, FTP data, raw streams) feeds bytes
into an `ObjectBuilder` and asks the shared `ObjectFactory` to turn it into a
`ContentObject`. Nothing here holds a whole file unless the settings ask for it: MD5 and
SHA-256 are updated in batches (one ``b"".join`` per 256 KiB, big enough for hashlib to
release the GIL), libmagic sees only the head, and ``keep_bytes`` bounds what is kept for
the inspectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from appliance.model import ContentObject, Direction, Flow, FlowRef
from reassembly.sniff import mime_from_description, sniff_signature, sniff_text

_HASH_BATCH = 256 * 1024
_SNIFF_FIRST = 4096
_SNIFF_MORE = frozenset({
    "application/zip", "application/x-ole-storage", "application/CDFV2", "application/octet-stream",
    "application/vnd.ms-office",
})
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(n: int, width: int = 0) -> str:
    """``n`` in base 62, left-padded with zeros to ``width``."""
    out = []
    while n:
        n, r = divmod(n, 62)
        out.append(_B62[r])
    s = "".join(reversed(out)) or "0"
    return s.rjust(width, "0")


class ObjectBuilder:
    """Accumulates one object's bytes: size, hashes, head and (bounded) kept data.

    ``limit`` (0 = none) is the most bytes accepted; bytes beyond it are counted in
    ``dropped`` and the object is marked truncated with reason ``body_limit``.
    """

    __slots__ = (
        "_head",
        "_head_len",
        "_kept",
        "_kept_len",
        "_md5",
        "_pending",
        "_pending_len",
        "_sha",
        "anomalies",
        "dropped",
        "gaps",
        "head_max",
        "keep",
        "limit",
        "missing",
        "size",
        "truncated",
    )

    def __init__(self, *, limit: int = 0, keep: int = 0, head_max: int = 65536) -> None:
        self._md5 = hashlib.md5()
        self._sha = hashlib.sha256()
        self._pending: list[bytes] = []
        self._pending_len = 0
        self.size = 0
        self.missing = 0
        self.gaps = False
        self.limit = limit
        self.dropped = 0
        self._kept: list[bytes] = []
        self._kept_len = 0
        self.keep = keep
        self._head: list[bytes] = []
        self._head_len = 0
        self.head_max = head_max
        self.truncated: list[str] = []
        self.anomalies: list[str] = []

    def add(self, data: bytes) -> None:
        """Append ``data`` (bytes beyond ``limit`` are dropped and counted)."""
        n = len(data)
        if not n:
            return
        if self.limit and self.size + n > self.limit:
            room = self.limit - self.size
            self.dropped += n - room
            if "body_limit" not in self.truncated:
                self.truncated.append("body_limit")
            if room <= 0:
                return
            data = data[:room]
            n = room
        self.size += n
        self._pending.append(data)
        self._pending_len += n
        if self._pending_len >= _HASH_BATCH:
            self._flush_hash()
        if self._head_len < self.head_max:
            self._head.append(data[: self.head_max - self._head_len])
            self._head_len += min(n, self.head_max - self._head_len)
        if self._kept_len < self.keep:
            piece = data[: self.keep - self._kept_len]
            self._kept.append(piece)
            self._kept_len += len(piece)

    def add_gap(self, length: int) -> None:
        """Record ``length`` bytes that were lost in transit (not hashed, not counted)."""
        self.missing += max(0, length)
        self.gaps = True

    def truncate(self, reason: str) -> None:
        """Mark the object incomplete for ``reason`` (kept once)."""
        if reason not in self.truncated:
            self.truncated.append(reason)

    def _flush_hash(self) -> None:
        if self._pending:
            blob = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
            self._md5.update(blob)
            self._sha.update(blob)
            self._pending.clear()
            self._pending_len = 0

    @property
    def head(self) -> bytes:
        return b"".join(self._head)

    @property
    def kept_complete(self) -> bool:
        """True when ``data()`` holds every byte of the object."""
        return self._kept_len == self.size

    def data(self) -> bytes:
        return b"".join(self._kept)

    def digests(self) -> tuple[str, str]:
        self._flush_hash()
        return self._md5.hexdigest(), self._sha.hexdigest()


class ObjectFactory:
    """Turns finished builders into `ContentObject`s: ids, libmagic, sniffed type.

    Ids are ``F`` + base62 of a per-run counter, so a replay gives the same ids.
    """

    def __init__(
        self, *, keep_bytes: int = 8 * 1024 * 1024, head_bytes: int = 65536, prefix: str = "F"
    ) -> None:
        self.keep_bytes = keep_bytes
        self.head_bytes = head_bytes
        self._prefix = prefix
        self._next = 1
        self._magic: tuple[Any, Any] | None = None  # libmagic (mime, description), opened on first need
        self._sniff_cache: dict[str, tuple[str, str]] = {}
        self.made = 0

    def _libmagic(self) -> tuple[Any, Any]:
        """libmagic handles (loading its database takes a few ms: only when a type needs it)."""
        if self._magic is None:
            import magic

            self._magic = (magic.Magic(mime=True), magic.Magic())
        return self._magic

    def builder(self, *, limit: int = 0) -> ObjectBuilder:
        return ObjectBuilder(limit=limit, keep=self.keep_bytes, head_max=self.head_bytes)

    def new_id(self) -> str:
        n = self._next
        self._next += 1
        return self._prefix + base62(n, 6)

    def sniff(self, head: bytes, md5: str | None = None) -> tuple[str, str]:
        """(mime type, description) of an object from its ``head``; empty input → ('', '').

        Unambiguous binary signatures are recognised without libmagic (`sniff_signature`);
        otherwise libmagic describes the first 4 KB (its text heuristics cost ~1 ms on
        64 KB) and the MIME type follows from the description where that is unambiguous.
        Containers that need more bytes to tell apart (ZIP-based Office files, OLE
        documents) get a second look at the whole head. Results are cached by MD5: the
        same stylesheet or logo crosses the wire again and again.
        """
        if not head:
            return "", ""
        if md5 is not None:
            hit = self._sniff_cache.get(md5)
            if hit is not None:
                return hit
        mime, desc = sniff_signature(head)
        if not mime:
            mime, desc = sniff_text(head)
        if not mime:
            try:
                small = head[:_SNIFF_FIRST]
                magic_mime, magic_desc = self._libmagic()
                desc = magic_desc.from_buffer(small)
                mime = mime_from_description(desc)
                if not mime:
                    mime = magic_mime.from_buffer(small)
                if len(head) > len(small) and mime in _SNIFF_MORE:
                    mime = magic_mime.from_buffer(head)
                    desc = magic_desc.from_buffer(head)
            except Exception:  # libmagic errors on odd input are reported, not raised
                mime, desc = "application/octet-stream", "unknown (libmagic error)"
        if md5 is not None:
            if len(self._sniff_cache) >= 4096:
                self._sniff_cache.clear()
            self._sniff_cache[md5] = (mime, desc)
        return mime, desc

    def finish(
        self,
        b: ObjectBuilder,
        *,
        source: str,
        direction: Direction,
        flow: FlowRef | None,
        ts_ns: int,
        extra_truncated: Iterable[str] = (),
        anomalies: Iterable[str] = (),
        **fields: object,
    ) -> ContentObject:
        """Make the `ContentObject` for builder ``b``; ``fields`` are ContentObject fields."""
        md5, sha256 = b.digests()
        mime, desc = self.sniff(b.head, md5)
        truncated = tuple(dict.fromkeys([*b.truncated, *extra_truncated]))
        self.made += 1
        obj = ContentObject(
            id=self.new_id(),
            source=source,
            direction=direction,
            flow=flow,
            ts_ns=ts_ns,
            size=b.size,
            md5=md5,
            sha256=sha256,
            sniffed_mime=mime,
            magic=desc,
            missing_bytes=b.missing,
            gaps=b.gaps,
            truncated=truncated,
            data=b.data() if b.keep else None,
            anomalies=tuple(dict.fromkeys([*b.anomalies, *anomalies])),
        )
        return replace(obj, **fields) if fields else obj  # type: ignore[arg-type]


_PROTO_NAMES = {6: "TCP", 17: "UDP", 1: "ICMP", 58: "IPv6-ICMP", 132: "SCTP"}


def ip_text(addr: bytes) -> str:
    """Printable form of a packed IPv4/IPv6 address."""
    import socket

    if len(addr) == 4:
        return socket.inet_ntop(socket.AF_INET, addr)
    if len(addr) == 16:
        return socket.inet_ntop(socket.AF_INET6, addr)
    return addr.hex()


def flow_ref(flow: Flow, direction: Direction = Direction.TO_SERVER) -> FlowRef:
    """A `FlowRef` for ``flow``, src/dest addresses oriented like the bytes of ``direction``.

    Suricata logs fileinfo with the flow's direction of the transfer: for a download the
    source address is the server. Zones are not reoriented: ``src_zone``/``dst_zone`` stay
    the session's (client's zone, server's zone), which is what policy rules match on.
    """
    s_zone, d_zone = flow.src_zone, flow.dst_zone
    if direction is Direction.TO_SERVER:
        s_ip, s_port, d_ip, d_port = flow.client_ip, flow.client_port, flow.server_ip, flow.server_port
    else:
        s_ip, s_port, d_ip, d_port = flow.server_ip, flow.server_port, flow.client_ip, flow.client_port
    return FlowRef(
        uid=flow.uid,
        flow_id=flow.flow_id,
        src_ip=ip_text(s_ip),
        src_port=s_port,
        dest_ip=ip_text(d_ip),
        dest_port=d_port,
        proto=_PROTO_NAMES.get(flow.proto, str(flow.proto)),
        vlan=flow.vlan,
        iface=flow.iface,
        src_zone=s_zone,
        dst_zone=d_zone,
    )
