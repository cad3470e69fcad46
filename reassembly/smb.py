"""SMB (SMB1 and SMB2/3, unencrypted) as a carrier: files read and written become objects.

`SmbParser` is sans-IO: the sensor feeds it the `StreamEvent`s of both directions of one flow
in capture order and gets back finished `ContentObject`s (source ``smb``, kind ``file``).

Framing: NetBIOS session service messages (type 0x00, 24-bit length; keepalives and session
requests are skipped) are framed incrementally per direction. A message is buffered whole up
to ``HEAD_MAX`` bytes; a single READ response / WRITE request (SMB2 READ/WRITE, SMB1
READ_ANDX/WRITE_ANDX) is parsed from its first ``PEEK`` bytes and its data then streams into
the file without being buffered. A bad header, an oversized message or a gap where the next
header should be makes the direction resynchronise on the next ``\\x00 len len len \\xfeSMB``
(or ``\\xffSMB``) pattern. A transform header (``\\xfdSMB``, SMB3 encryption) sets
``encrypted`` and stops parsing; compressed messages (``\\xfcSMB``) are skipped.

SMB2: TREE_CONNECT (share path and type), CREATE request (name, UTF-16LE) → response (FileId,
EndOfFile, directory flag) by MessageId, READ request (FileId, offset) → READ response data,
WRITE request data, SET_INFO end-of-file, CLOSE. Compound requests (NextCommand, related
operations using the FileId of the CREATE before them) and async responses (STATUS_PENDING
interim response, then the final one under the same MessageId/AsyncId) are followed.
SMB1: TREE_CONNECT_ANDX, NT_CREATE_ANDX, READ_ANDX / WRITE_ANDX (DataOffset honoured, large
read/write lengths, AndX chains), core READ / WRITE, CLOSE.

Files: one object per (open, direction) — READ data is a download (TO_CLIENT), WRITE data an
upload (TO_SERVER). Pieces are placed by file offset: in-order bytes stream straight into an
`ObjectBuilder`; out-of-order pieces are buffered up to ``file_buffer`` per file and the
shared `SmbMemcap`, beyond which the hole before the first buffered piece is declared lost.
Holes become ``missing_bytes`` and truncation reason ``gap``; a file that ends short of the
size the server announced (CREATE EndOfFile for reads, SET_INFO end-of-file for writes) gets
``short``; a file still open when the flow ends gets ``eof``. Named pipes (IPC$) and
directories are not files.
"""

from __future__ import annotations

import heapq
import struct
from collections import OrderedDict

from appliance.model import ContentObject, Direction, Flow, StreamClosed, StreamData, StreamEvent, StreamGap
from reassembly.objects import ObjectBuilder, ObjectFactory, flow_ref

SOURCE = "smb"
MAX_MESSAGE = 16 * 1024 * 1024
"""Largest NetBIOS message accepted (the 24-bit length field caps it just below this anyway)."""
HEAD_MAX = 256 * 1024
"""Bytes of a message buffered for parsing; a larger message is parsed from this head only."""
PEEK = 128
"""Bytes after which a lone READ response / WRITE request starts streaming."""
FILE_BUFFER = 16 * 1024 * 1024
"""Out-of-order bytes buffered per file."""
MEMCAP = 256 * 1024 * 1024
"""Out-of-order budget shared by every parser of the process unless one is given."""
MAX_PENDING = 4096
MAX_OPENS = 4096
MAX_TREES = 256
MAX_ACTIVE_FILES = 16
"""Files being built at once per session (each may keep up to the factory's keep_bytes)."""
MAX_CONTROL = 512
"""Largest NetBIOS session-service control message (session request, keepalive…) skipped."""
MAX_COMPOUND = 64
MAX_ANDX = 16
MAX_ANOMALIES = 32
MAX_NAME = 2048

_SMB1, _SMB2, _XFORM, _COMP = b"\xffSMB", b"\xfeSMB", b"\xfdSMB", b"\xfcSMB"
_MAGICS = (_SMB1, _SMB2, _XFORM, _COMP)
_NBSS_CONTROL = frozenset({0x81, 0x82, 0x83, 0x84, 0x85})

STATUS_SUCCESS = 0
STATUS_PENDING = 0x00000103
STATUS_BUFFER_OVERFLOW = 0x80000005

_U16 = struct.Struct("<H").unpack_from
_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from

# SMB2 commands and header flags
_NEGOTIATE, _TREE_CONNECT, _CREATE, _CLOSE, _READ, _WRITE, _SET_INFO = 0, 3, 5, 6, 8, 9, 0x11
_FL_RESPONSE, _FL_ASYNC, _FL_RELATED = 1, 2, 4
_FID_RELATED = b"\xff" * 16
_DIALECTS = {0x0202: "2.0.2", 0x0210: "2.1", 0x0300: "3.0", 0x0302: "3.0.2", 0x0311: "3.1.1"}

# SMB1 commands
_C1_CLOSE, _C1_READ, _C1_WRITE = 0x04, 0x0A, 0x0B
_C1_READ_ANDX, _C1_WRITE_ANDX, _C1_TREE_CONNECT_ANDX, _C1_NT_CREATE_ANDX = 0x2E, 0x2F, 0x75, 0xA2
_ANDX = frozenset({0x24, 0x2D, 0x2E, 0x2F, 0x73, 0x74, 0x75, 0xA2})

# framing states
_HDR, _HEAD, _BODY, _SKIP, _RESYNC, _DEAD = range(6)


def _valid_header(buf: bytes | bytearray, i: int) -> bool:
    """Is there a NetBIOS session message header + SMB magic at ``buf[i:i+8]``?"""
    if buf[i] != 0:
        return False
    length = int.from_bytes(buf[i + 1 : i + 4], "big")
    magic = bytes(buf[i + 4 : i + 8])
    if magic == _SMB2:
        return length >= 64
    if magic == _SMB1:
        return length >= 35
    return magic in (_XFORM, _COMP) and length >= 16


def _find_header(buf: bytes | bytearray, start: int = 0) -> int:
    """Index of the first plausible NetBIOS + SMB header at or after ``start``, or -1."""
    i = buf.find(b"SMB", start + 5)
    while i >= 0:
        j = i - 5
        if buf[i - 1] in (0xFF, 0xFE, 0xFD, 0xFC) and _valid_header(buf, j):
            return j
        i = buf.find(b"SMB", i + 1)
    return -1


def _looks_one(data: bytes, midstream: bool) -> bool | None:
    pos = 0
    n = len(data)
    for _ in range(8):
        if n - pos < 4:
            return None
        typ = data[pos]
        length = int.from_bytes(data[pos + 1 : pos + 4], "big")
        if typ in _NBSS_CONTROL and length <= MAX_CONTROL:
            pos += 4 + length
            continue
        if typ != 0:
            break
        if n - pos < 8:
            return None if length >= 16 else False
        if _valid_header(data, pos):
            return True
        break
    else:
        return None
    if not midstream:
        return False
    if _find_header(data) >= 0:
        return True
    return None if len(data) < 8192 else False  # picked up inside a message: wait for the next one


def looks_like_smb(*first_bytes: bytes, midstream: bool = False) -> bool | None:
    """Is this an SMB session? From the first bytes of either (or each) direction.

    A NetBIOS session message (type 0x00, 3-byte length; keepalives and session requests
    skipped) must carry ``\\xffSMB``, ``\\xfeSMB`` or ``\\xfdSMB`` (encrypted; the parser flags
    it). With ``midstream`` the pattern may also start later in the bytes (and up to 8 KiB without
    it is "not yet"). ``None`` = need more.
    """
    verdicts = [_looks_one(b[:8192], midstream) for b in first_bytes if b]
    if any(verdicts):
        return True
    if not verdicts or None in verdicts:
        return None
    return False


class SmbMemcap:
    """An out-of-order buffer budget; share one between parsers to bound them all."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int = MEMCAP) -> None:
        self.limit = limit
        self.used = 0


SHARED_MEMCAP = SmbMemcap()
"""The default budget: one per process, so the cap holds over all sessions."""


class _Open:
    """One opened file (SMB2 FileId / SMB1 FID) and the objects being built from it."""

    __slots__ = ("closing", "eof", "files", "is_dir", "key", "name", "pipe", "set_eof", "share", "version")

    def __init__(self, name: str, share: str, pipe: bool, version: str) -> None:
        self.name = name
        self.share = share
        self.pipe = pipe
        self.version = version
        self.key: tuple | None = None
        self.eof = -1
        """EndOfFile from the CREATE response (-1 = unknown)."""
        self.set_eof = -1
        """End of file set by the client (SET_INFO), the expected size of an upload."""
        self.is_dir = False
        self.closing = False
        self.files: list[_File | None] = [None, None]


class _File:
    """One file object in the making: pieces placed by offset into a builder."""

    __slots__ = ("anomalies", "buffered", "builder", "direction", "heap", "max_end", "memcap", "next_off",
                 "open", "seq", "ts_ns", "cap")

    def __init__(self, op: _Open, direction: Direction, builder: ObjectBuilder, memcap: SmbMemcap,
                 cap: int) -> None:
        self.open = op
        self.direction = direction
        self.builder = builder
        self.memcap = memcap
        self.cap = cap
        self.next_off = 0
        self.max_end = 0
        self.heap: list[tuple[int, int, bytes | None, int]] = []
        self.buffered = 0
        self.seq = 0
        self.ts_ns = 0
        self.anomalies: dict[str, None] = {}

    def add(self, off: int, data: bytes) -> None:
        """Place ``data`` at file offset ``off``."""
        n = len(data)
        if not n:
            return
        end = off + n
        self.max_end = max(self.max_end, end)
        if end <= self.next_off:
            return
        if off < self.next_off:
            data = data[self.next_off - off :]
            off = self.next_off
        if off == self.next_off:
            self.builder.add(data)
            self.next_off = end
            if self.heap:
                self._drain()
            return
        b = self.builder
        if b.limit and off >= b.limit:
            b.dropped += len(data)
            b.truncate("body_limit")
            return
        self._push(off, data, len(data))
        self.buffered += len(data)
        self.memcap.used += len(data)
        if self.buffered > self.cap or self.memcap.used > self.memcap.limit:
            self.anomalies["smb.file_buffer_full"] = None
            while self.heap and (self.buffered > self.cap or self.memcap.used > self.memcap.limit):
                self._skip_hole()

    def lost(self, off: int, length: int) -> None:
        """Bytes [off, off+length) of the file were lost in transit."""
        if length <= 0:
            return
        end = off + length
        self.max_end = max(self.max_end, end)
        if end <= self.next_off:
            return
        if off <= self.next_off:
            self.builder.add_gap(end - self.next_off)
            self.next_off = end
            if self.heap:
                self._drain()
        else:
            self._push(off, None, length)

    def _push(self, off: int, data: bytes | None, length: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (off, self.seq, data, length))

    def _skip_hole(self) -> None:
        off = self.heap[0][0]
        if off > self.next_off:
            self.builder.add_gap(off - self.next_off)
            self.next_off = off
        self._drain()

    def _drain(self) -> None:
        heap = self.heap
        b = self.builder
        while heap and heap[0][0] <= self.next_off:
            off, _, data, length = heapq.heappop(heap)
            if data is not None:
                self.buffered -= length
                self.memcap.used -= length
            end = off + length
            if end <= self.next_off:
                continue
            if data is None:
                b.add_gap(end - self.next_off)
            else:
                b.add(data[self.next_off - off :] if off < self.next_off else data)
            self.next_off = end

    def release(self) -> None:
        """Drop buffered pieces without placing them (the session is being thrown away)."""
        self.memcap.used -= self.buffered
        self.buffered = 0
        self.heap.clear()

    def __del__(self) -> None:  # a parser dropped without close() must not leak the shared budget
        if self.buffered:
            self.release()

    def flush(self) -> None:
        """Place everything still buffered, holes before it counted as missing."""
        while self.heap:
            self._skip_hole()


class _Sink:
    """The data region of the message being streamed: message bytes [start, end) → file at foff."""

    __slots__ = ("end", "file", "foff", "start")

    def __init__(self, file: _File, start: int, end: int, foff: int) -> None:
        self.file = file
        self.start = start
        self.end = end
        self.foff = foff


class _Half:
    """Framing state of one direction."""

    __slots__ = ("buf", "closed", "expect", "hdr", "msg_len", "need", "pos", "remaining", "sink", "state")

    def __init__(self) -> None:
        self.state = _HDR
        self.buf = bytearray()
        self.hdr = b""
        """The NetBIOS header of the current message (rescanned when its body is not SMB)."""
        self.msg_len = 0
        self.need = 0
        self.pos = 0
        """Position within the current message."""
        self.remaining = 0
        self.sink: _Sink | None = None
        self.expect = 0
        self.closed = False


def _utf16(raw: bytes) -> str:
    return raw.decode("utf-16-le", "replace").split("\x00", 1)[0][:MAX_NAME]


def _cstr(raw: bytes, unicode: bool) -> str:
    """A NUL-terminated SMB1 string (UTF-16LE or OEM/ASCII)."""
    if unicode:
        n = len(raw) & ~1
        for i in range(0, n, 2):
            if raw[i] == 0 and raw[i + 1] == 0:
                n = i
                break
        return raw[:n].decode("utf-16-le", "replace")[:MAX_NAME]
    return raw.split(b"\x00", 1)[0].decode("latin-1")[:MAX_NAME]


def _is_pipe_share(path: str) -> bool:
    return path.rstrip("\\").upper().endswith("IPC$")


class SmbParser:
    """Both directions of one SMB session → file objects."""

    def __init__(self, flow: Flow, factory: ObjectFactory, *, body_limit: int,
                 memcap: SmbMemcap | None = None, file_buffer: int = FILE_BUFFER,
                 max_message: int = MAX_MESSAGE) -> None:
        self.flow = flow
        self.factory = factory
        self.body_limit = body_limit
        self.memcap = memcap if memcap is not None else SHARED_MEMCAP
        self.file_buffer = file_buffer
        self.max_message = max_message
        self._half = (_Half(), _Half())
        self._pending: OrderedDict[tuple, object] = OrderedDict()
        self._async: OrderedDict[int, int] = OrderedDict()
        self._opens: OrderedDict[tuple, _Open] = OrderedDict()
        self._trees: OrderedDict[tuple, tuple[str, bool]] = OrderedDict()
        self._active: OrderedDict[int, _File] = OrderedDict()
        self._out: list[ContentObject] = []
        self._ts = 0
        self.dialect = ""
        """Negotiated SMB2/3 dialect (``2.1``, ``3.1.1``…), ``1`` for SMB1, empty if unseen."""
        self.encrypted = False
        """Set once a transform header (SMB3 encryption) was seen: nothing more is parsed."""
        self.anomalies: dict[str, None] = {}
        self.files_made = 0

    # ------------------------------------------------------------------ events

    def feed(self, event: StreamEvent) -> list[ContentObject]:
        """Consume one stream event of either direction; return the objects it finished."""
        try:
            self._feed(event)
        except Exception:  # hostile input must never take the sensor down
            self._anomaly("smb.parser_error")
            h = self._half[int(event.direction)]
            h.state, h.sink = _RESYNC, None
            h.buf = bytearray()
        out, self._out = self._out, []
        return out

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        """The flow is over: finish every file still open (``eof`` unless it was closing)."""
        self._ts = max(self._ts, ts_ns)
        try:
            for f in list(self._active.values()):
                self._finish(f, "closed" if f.open.closing else "eof")
        except Exception:
            self._anomaly("smb.parser_error")
        for f in self._active.values():
            f.release()
        self._active.clear()
        self._opens.clear()
        self._pending.clear()
        self._async.clear()
        out, self._out = self._out, []
        return out

    def _anomaly(self, code: str) -> None:
        if len(self.anomalies) < MAX_ANOMALIES:
            self.anomalies[code] = None

    def _feed(self, ev: StreamEvent) -> None:
        self._ts = ev.ts_ns
        d = int(ev.direction)
        h = self._half[d]
        if self.encrypted or h.closed:
            return
        if isinstance(ev, StreamData):
            data = ev.data
            if ev.offset > h.expect:
                self._gap(d, ev.offset - h.expect)
            elif ev.offset < h.expect:
                data = data[h.expect - ev.offset :]
            h.expect = max(h.expect, ev.offset + len(ev.data))
            if data:
                self._data(d, data)
        elif isinstance(ev, StreamGap):
            lost = ev.offset + ev.length - h.expect
            if lost > 0:
                self._gap(d, lost)
            h.expect = max(h.expect, ev.offset + ev.length)
        elif isinstance(ev, StreamClosed):
            h.closed = True
            h.buf = bytearray()

    # ------------------------------------------------------------------ framing

    def _data(self, d: int, data: bytes) -> None:
        h = self._half[d]
        pos, n = 0, len(data)
        while pos < n and not self.encrypted:
            st = h.state
            if st in (_BODY, _SKIP):
                take = min(h.remaining, n - pos)
                s = h.sink
                if s is not None:
                    lo, hi = max(h.pos, s.start), min(h.pos + take, s.end)
                    if hi > lo:
                        s.file.add(s.foff + lo - s.start, data[pos + lo - h.pos : pos + hi - h.pos])
                h.pos += take
                h.remaining -= take
                pos += take
                if not h.remaining:
                    h.state, h.sink = _HDR, None
            elif st == _HDR:
                take = min(4 - len(h.buf), n - pos)
                h.buf += data[pos : pos + take]
                pos += take
                if len(h.buf) < 4:
                    break
                hdr = h.hdr = bytes(h.buf)
                typ, length = hdr[0], int.from_bytes(hdr[1:4], "big")
                h.buf = bytearray()
                if typ == 0:
                    if length > self.max_message:
                        self._anomaly("smb.oversized_message")
                        h.state, h.buf = _RESYNC, bytearray(hdr[1:])
                    elif length:
                        h.state, h.msg_len, h.need, h.pos = _HEAD, length, min(length, HEAD_MAX), 0
                elif typ in _NBSS_CONTROL and length <= MAX_CONTROL:
                    if length:
                        h.state, h.remaining, h.pos, h.sink = _SKIP, length, 0, None
                else:
                    self._anomaly("smb.bad_nbss_type")
                    h.state, h.buf = _RESYNC, bytearray(hdr[1:])
            elif st == _HEAD:
                had = len(h.buf)
                want = h.need - had
                if had < PEEK < h.need:
                    want = PEEK - had
                take = min(want, n - pos)
                h.buf += data[pos : pos + take]
                pos += take
                if had < 4 <= len(h.buf) and bytes(h.buf[:4]) not in _MAGICS:
                    self._anomaly("smb.bad_magic")
                    rest = h.hdr[1:] + bytes(h.buf) + data[pos:]
                    h.state, h.buf = _RESYNC, bytearray()
                    data, pos, n = rest, 0, len(rest)
                    continue
                if len(h.buf) < h.need and not (len(h.buf) == PEEK and self._streamable(h.buf)):
                    continue
                head = bytes(h.buf)
                h.buf = bytearray()
                h.pos = len(head)
                h.sink = None
                self._message(d, head, h.msg_len)
                if self.encrypted:
                    break
                h.remaining = h.msg_len - h.pos
                if h.remaining:
                    h.state = _BODY
                else:
                    h.state, h.sink = _HDR, None
            elif st == _RESYNC:
                buf = h.buf + data[pos:]
                pos = n
                j = _find_header(buf)
                if j < 0:
                    h.buf = buf[-8:]
                    break
                rest = bytes(buf[j:])
                h.state, h.buf = _HDR, bytearray()
                data, pos, n = rest, 0, len(rest)
            else:  # _DEAD
                break

    def _gap(self, d: int, length: int) -> None:
        """``length`` bytes of direction ``d`` are lost."""
        h = self._half[d]
        self._anomaly("smb.gap")
        if h.state in (_BODY, _SKIP) and length <= h.remaining:
            s = h.sink
            if s is not None:
                lo, hi = max(h.pos, s.start), min(h.pos + length, s.end)
                if hi > lo:
                    s.file.lost(s.foff + lo - s.start, hi - lo)
            h.pos += length
            h.remaining -= length
            if not h.remaining:
                h.state, h.sink = _HDR, None
            return
        if h.state == _HEAD and len(h.buf) + length <= h.msg_len:
            # the message head is incomplete: give the message up, keep the framing
            h.remaining = h.msg_len - len(h.buf) - length
            h.buf = bytearray()
            h.pos = h.msg_len - h.remaining
            h.sink = None
            self._anomaly("smb.message_lost")
            h.state = _SKIP if h.remaining else _HDR
            return
        if h.state in (_BODY, _SKIP) and h.sink is not None:
            s = h.sink
            if s.end > h.pos:
                s.file.lost(s.foff + max(h.pos, s.start) - s.start, s.end - max(h.pos, s.start))
        h.state, h.sink, h.buf = _RESYNC, None, bytearray()

    @staticmethod
    def _streamable(buf: bytearray) -> bool:
        """Can this message (its first PEEK bytes) be parsed now and its data streamed?"""
        magic = bytes(buf[:4])
        if magic == _SMB2:
            cmd, flags, nxt = _U16(buf, 12)[0], _U32(buf, 16)[0], _U32(buf, 20)[0]
            if nxt:
                return False
            return (cmd == _READ and flags & _FL_RESPONSE != 0) or (cmd == _WRITE and not flags & _FL_RESPONSE)
        if magic == _SMB1 and len(buf) > 36:
            cmd, resp = buf[4], buf[9] & 0x80
            if (cmd == _C1_READ_ANDX and resp) or (cmd == _C1_WRITE_ANDX and not resp):
                return buf[33] == 0xFF
        return False

    # ------------------------------------------------------------------ messages

    def _message(self, d: int, head: bytes, msg_len: int) -> None:
        magic = head[:4]
        if magic == _SMB2:
            self._smb2(d, head, msg_len)
        elif magic == _SMB1:
            self._smb1(d, head, msg_len)
        elif magic == _XFORM:
            self.encrypted = True
            self._anomaly("smb.encrypted")
            for h in self._half:
                h.state, h.buf, h.sink = _DEAD, bytearray(), None
        elif magic == _COMP:
            self._anomaly("smb.compressed")

    def _set_sink(self, d: int, f: _File | None, head: bytes, start: int, end: int, foff: int) -> None:
        """Deliver message bytes [start, end) as file bytes at ``foff``: now what the head
        holds, the rest as it streams."""
        if f is None or end <= start:
            return
        have = min(end, len(head))
        if have > start:
            f.add(foff, head[start:have])
        if end > len(head):
            self._half[d].sink = _Sink(f, start, end, foff)

    def _remember(self, key: tuple, value: object) -> None:
        p = self._pending
        p.pop(key, None)
        p[key] = value
        if len(p) > MAX_PENDING:
            p.popitem(last=False)
            self._anomaly("smb.too_many_pending")

    def _register(self, key: tuple, op: _Open) -> None:
        old = self._opens.pop(key, None)
        if old is not None and old is not op:
            self._finish_open(old, "reused")
        op.key = key
        self._opens[key] = op
        if len(self._opens) > MAX_OPENS:
            _, evicted = self._opens.popitem(last=False)
            self._finish_open(evicted, "evicted")
            self._anomaly("smb.too_many_opens")

    def _tree(self, key: tuple, path: str, pipe: bool) -> None:
        self._trees.pop(key, None)
        self._trees[key] = (path, pipe)
        if len(self._trees) > MAX_TREES:
            self._trees.popitem(last=False)

    def _open_for(self, key: tuple, share_key: tuple, version: str) -> _Open:
        """The open known under ``key``, or a nameless one (session picked up mid-way)."""
        op = self._opens.get(key)
        if op is None:
            share, pipe = self._trees.get(share_key, ("", False))
            op = _Open("", share, pipe, version)
            self._register(key, op)
        return op

    def _file(self, op: _Open, d: Direction) -> _File | None:
        if op.pipe or op.is_dir:
            return None
        f = op.files[d]
        if f is None:
            if len(self._active) >= MAX_ACTIVE_FILES:
                _, oldest = self._active.popitem(last=False)
                self._anomaly("smb.too_many_files")
                self._finish(oldest, "evicted")
            f = op.files[d] = _File(op, d, self.factory.builder(limit=self.body_limit), self.memcap,
                                    self.file_buffer)
            self._active[id(f)] = f
        f.ts_ns = self._ts
        return f

    # ------------------------------------------------------------------ SMB2

    def _smb2(self, d: int, head: bytes, msg_len: int) -> None:
        off = 0
        n = len(head)
        cmp_open: _Open | None = None  # the open of the CREATE earlier in this compound
        tree_id = 0
        session = 0
        for _ in range(MAX_COMPOUND):
            if off + 64 > n or head[off : off + 4] != _SMB2:
                if off < msg_len:
                    self._anomaly("smb2.bad_header")
                return
            status, cmd = _U32(head, off + 8)[0], _U16(head, off + 12)[0]
            flags, nxt, mid = _U32(head, off + 16)[0], _U32(head, off + 20)[0], _U64(head, off + 24)[0]
            async_id = _U64(head, off + 32)[0] if flags & _FL_ASYNC else None
            related = bool(flags & _FL_RELATED)
            if not flags & _FL_ASYNC:
                tid = _U32(head, off + 36)[0]
                if not (related and tid == 0xFFFFFFFF):
                    tree_id = tid
            sid = _U64(head, off + 40)[0]
            if not (related and sid == 0xFFFFFFFFFFFFFFFF):
                session = sid
            end = off + nxt if nxt else msg_len
            if nxt and (nxt < 64 or end > msg_len):
                self._anomaly("smb2.bad_next_command")
                return
            if nxt and end > n:
                return  # a compounded command cut off by the head limit
            b = off + 64
            if flags & _FL_RESPONSE:
                op = self._smb2_response(d, head, off, b, end, status, cmd, flags, mid, async_id, tree_id, session)
            else:
                op = self._smb2_request(d, head, off, b, end, cmd, related, mid, tree_id, session, cmp_open)
            if op is not None:
                cmp_open = op
            if not nxt:
                return
            off = end

    def _smb2_request(self, d: int, head: bytes, off: int, b: int, end: int, cmd: int, related: bool, mid: int,
                      tree_id: int, session: int, cmp_open: _Open | None) -> _Open | None:
        n = min(len(head), end)
        if cmd == _CREATE and b + 48 <= n:
            name_off, name_len = _U16(head, b + 44)[0], _U16(head, b + 46)[0]
            name = _utf16(head[off + name_off : off + name_off + name_len]) if name_len and name_off >= 64 else ""
            share, pipe = self._trees.get((session, tree_id), ("", False))
            op = _Open(name, share, pipe, self.dialect or "2")
            self._remember(("2", mid), ("create", op, session))
            return op
        if cmd == _TREE_CONNECT and b + 8 <= n:
            p_off, p_len = _U16(head, b + 4)[0], _U16(head, b + 6)[0]
            self._remember(("2", mid), ("tree", _utf16(head[off + p_off : off + p_off + p_len])))
            return None
        if cmd in (_READ, _WRITE, _CLOSE, _SET_INFO):
            fid_at = b + (8 if cmd == _CLOSE else 16)
            if fid_at + 16 > n:
                return None
            fid = head[fid_at : fid_at + 16]
            if related and fid == _FID_RELATED:
                op = cmp_open
                if op is None:
                    self._anomaly("smb2.related_without_create")
                    return None
            else:
                op = self._open_for(("2", session, fid), (session, tree_id), self.dialect or "2")
            if cmd == _READ:
                self._remember(("2", mid), ("read", op, _U64(head, b + 8)[0], _U32(head, b + 4)[0]))
            elif cmd == _WRITE:
                data_off, length, foff = _U16(head, b + 2)[0], _U32(head, b + 4)[0], _U64(head, b + 8)[0]
                start = off + data_off
                if data_off < 64 or start > end:
                    self._anomaly("smb2.bad_write_offset")
                    return op
                f = self._file(op, Direction.TO_SERVER)
                self._set_sink(d, f, head, start, min(start + length, end), foff)
            elif cmd == _CLOSE:
                op.closing = True
                self._remember(("2", mid), ("close", op))
            elif head[b + 2] == 1 and head[b + 3] == 20:  # SET_INFO FileEndOfFileInformation
                buf_off = _U16(head, b + 8)[0]
                if _U32(head, b + 4)[0] >= 8 and off + buf_off + 8 <= n:
                    op.set_eof = _U64(head, off + buf_off)[0]
            return op
        return None

    def _smb2_response(self, d: int, head: bytes, off: int, b: int, end: int, status: int, cmd: int, flags: int,
                       mid: int, async_id: int | None, tree_id: int, session: int) -> _Open | None:
        n = min(len(head), end)
        if cmd == _NEGOTIATE and status == 0 and b + 6 <= n:
            dialect = _U16(head, b + 4)[0]
            self.dialect = _DIALECTS.get(dialect, "2")
            return None
        if status == STATUS_PENDING and async_id is not None:
            self._async[async_id] = mid
            if len(self._async) > MAX_PENDING:
                self._async.popitem(last=False)
            return None
        p = self._pending.pop(("2", mid), None)
        if p is None and async_id is not None:
            m = self._async.pop(async_id, None)
            if m is not None:
                p = self._pending.pop(("2", m), None)
        if async_id is not None:
            self._async.pop(async_id, None)
        if not isinstance(p, tuple):
            return None
        kind = p[0]
        if kind == "close":
            self._finish_open(p[1], "closed")
            return None
        if status not in (STATUS_SUCCESS, STATUS_BUFFER_OVERFLOW):
            return None
        if kind == "tree" and cmd == _TREE_CONNECT and b + 3 <= n:
            self._tree((session, tree_id), p[1], head[b + 2] == 2 or _is_pipe_share(p[1]))
        elif kind == "create" and cmd == _CREATE and b + 80 <= n:
            op = p[1]
            op.eof = _U64(head, b + 48)[0]
            op.is_dir = bool(_U32(head, b + 56)[0] & 0x10)
            self._register(("2", p[2], head[b + 64 : b + 80]), op)
            return op
        elif kind == "read" and cmd == _READ and b + 8 <= n and _U16(head, b)[0] == 17:
            op, foff = p[1], p[2]
            data_off, length = head[b + 2], _U32(head, b + 4)[0]
            start = off + data_off
            if data_off < 64 or start > end:
                self._anomaly("smb2.bad_read_offset")
                return op
            f = self._file(op, Direction.TO_CLIENT)
            self._set_sink(d, f, head, start, min(start + length, end), foff)
            return op
        return None

    # ------------------------------------------------------------------ SMB1

    def _smb1(self, d: int, head: bytes, msg_len: int) -> None:
        n = len(head)
        if n < 35:
            return
        if not self.dialect:
            self.dialect = "1"
        cmd, status, flags, flags2 = head[4], _U32(head, 5)[0], head[9], _U16(head, 10)[0]
        tid, pid, uid, mid = _U16(head, 24)[0], _U16(head, 26)[0], _U16(head, 28)[0], _U16(head, 30)[0]
        pid |= _U16(head, 12)[0] << 16
        resp = bool(flags & 0x80)
        uni = bool(flags2 & 0x8000)
        pos = 32
        chain_open: _Open | None = None
        for _ in range(MAX_ANDX):
            if pos + 3 > n:
                return
            wc = head[pos]
            w = pos + 1
            bc_off = w + 2 * wc
            if bc_off + 2 > n:
                return
            bytes_off = bc_off + 2
            key = ("1", uid, pid, mid, cmd)
            if resp:
                op = self._smb1_response(d, head, msg_len, cmd, status, wc, w, bytes_off, key, tid, uni)
            else:
                op = self._smb1_request(d, head, msg_len, cmd, wc, w, bytes_off, key, tid, uid, uni, chain_open)
            if op is not None:
                chain_open = op
            if cmd not in _ANDX or wc < 2 or status:
                return
            nxt_cmd, nxt_off = head[w], _U16(head, w + 2)[0]
            if nxt_cmd == 0xFF or nxt_off <= pos or nxt_off >= msg_len:
                return
            cmd, pos = nxt_cmd, nxt_off

    def _smb1_request(self, d: int, head: bytes, msg_len: int, cmd: int, wc: int, w: int, bytes_off: int,
                      key: tuple, tid: int, uid: int, uni: bool, chain_open: _Open | None) -> _Open | None:
        n = len(head)
        if cmd == _C1_NT_CREATE_ANDX and wc == 24:
            name_len = _U16(head, w + 5)[0]
            p = bytes_off + (1 if uni and bytes_off % 2 else 0)
            raw = head[p : p + name_len]
            name = _cstr(raw, uni) if raw else ""
            share, pipe = self._trees.get(("1", uid, tid), ("", False))
            op = _Open(name, share, pipe, "1")
            self._remember(key, ("create", op))
            return op
        if cmd == _C1_TREE_CONNECT_ANDX and wc >= 4:
            p = bytes_off + _U16(head, w + 6)[0]
            if uni and p % 2:
                p += 1
            self._remember(key, ("tree", _cstr(head[p : p + 2 * MAX_NAME], uni)))
            return None
        if cmd in (_C1_READ_ANDX, _C1_WRITE_ANDX, _C1_CLOSE, _C1_READ, _C1_WRITE) and wc >= 3 and w + 2 * wc <= n:
            fid = _U16(head, w + (4 if cmd in (_C1_READ_ANDX, _C1_WRITE_ANDX) else 0))[0]
            if chain_open is not None and cmd in (_C1_READ_ANDX, _C1_WRITE_ANDX):
                op = chain_open
            else:
                op = self._open_for(("1", uid, tid, fid), ("1", uid, tid), "1")
            if cmd == _C1_CLOSE:
                op.closing = True
                self._remember(key, ("close", op))
            elif cmd == _C1_READ_ANDX and wc in (10, 12):
                foff = _U32(head, w + 6)[0] | ((_U32(head, w + 20)[0] << 32) if wc == 12 else 0)
                self._remember(key, ("read", op, foff))
            elif cmd == _C1_READ and wc == 5:
                self._remember(key, ("read", op, _U32(head, w + 4)[0]))
            elif cmd == _C1_WRITE_ANDX and wc in (12, 14):
                foff = _U32(head, w + 6)[0] | ((_U32(head, w + 24)[0] << 32) if wc == 14 else 0)
                length = _U16(head, w + 20)[0] | (_U16(head, w + 18)[0] << 16)
                data_off = _U16(head, w + 22)[0]
                if data_off < 32 or data_off > msg_len:
                    self._anomaly("smb1.bad_write_offset")
                    data_off = bytes_off
                if data_off + length > msg_len:
                    length = _U16(head, w + 20)[0]  # DataLengthHigh without CAP_LARGE_WRITEX
                f = self._file(op, Direction.TO_SERVER)
                self._set_sink(d, f, head, data_off, min(data_off + length, msg_len), foff)
            elif cmd == _C1_WRITE and wc == 5 and bytes_off + 3 <= n and head[bytes_off] == 1:
                length = _U16(head, bytes_off + 1)[0]
                f = self._file(op, Direction.TO_SERVER)
                start = bytes_off + 3
                self._set_sink(d, f, head, start, min(start + length, msg_len), _U32(head, w + 4)[0])
            return op
        return None

    def _smb1_response(self, d: int, head: bytes, msg_len: int, cmd: int, status: int, wc: int, w: int,
                       bytes_off: int, key: tuple, tid: int, uni: bool) -> _Open | None:
        n = len(head)
        p = self._pending.pop(key, None)
        if not isinstance(p, tuple):
            return None
        kind = p[0]
        if kind == "close":
            self._finish_open(p[1], "closed")
            return None
        if status:
            return None
        if kind == "tree" and cmd == _C1_TREE_CONNECT_ANDX:
            service = _cstr(head[bytes_off : bytes_off + 16], False) if bytes_off < n else ""
            self._tree(("1", key[1], tid), p[1], service.startswith("IPC") or _is_pipe_share(p[1]))
        elif kind == "create" and cmd == _C1_NT_CREATE_ANDX and wc >= 34 and w + 68 <= n:
            op = p[1]
            op.eof = _U64(head, w + 55)[0]
            op.is_dir = bool(head[w + 67])
            if _U16(head, w + 63)[0] != 0:
                op.pipe = True
            self._register(("1", key[1], tid, _U16(head, w + 5)[0]), op)
            return op
        elif kind == "read" and cmd == _C1_READ_ANDX and wc >= 12 and w + 16 <= n:
            op, foff = p[1], p[2]
            length = _U16(head, w + 10)[0] | (_U16(head, w + 14)[0] << 16)
            data_off = _U16(head, w + 12)[0]
            if data_off < 32 or data_off > msg_len:
                self._anomaly("smb1.bad_read_offset")
                return op
            if data_off + length > msg_len:
                length = _U16(head, w + 10)[0]
            f = self._file(op, Direction.TO_CLIENT)
            self._set_sink(d, f, head, data_off, min(data_off + length, msg_len), foff)
            return op
        elif kind == "read" and cmd == _C1_READ and wc == 5 and bytes_off + 3 <= n and head[bytes_off] == 1:
            op, foff = p[1], p[2]
            length = _U16(head, bytes_off + 1)[0]
            f = self._file(op, Direction.TO_CLIENT)
            start = bytes_off + 3
            self._set_sink(d, f, head, start, min(start + length, msg_len), foff)
            return op
        return None

    # ------------------------------------------------------------------ objects

    def _finish_open(self, op: _Open, reason: str) -> None:
        if op.key is not None and self._opens.get(op.key) is op:
            del self._opens[op.key]
        for f in op.files:
            if f is not None:
                self._finish(f, reason)

    def _finish(self, f: _File, reason: str) -> None:
        """Turn ``f`` into an object; ``reason`` is ``closed`` or why it ended early."""
        op = f.open
        if op.files[f.direction] is not f:
            return
        op.files[f.direction] = None
        self._active.pop(id(f), None)
        f.flush()
        b = f.builder
        seen = f.next_off
        expected = op.eof if f.direction is Direction.TO_CLIENT else op.set_eof
        extra: list[str] = []
        if b.missing:
            extra.append("gap")
        if expected >= 0 and seen < expected:
            extra.append("short")
        if reason != "closed":  # like Suricata: no CLOSE seen → TRUNCATED, even if every byte was
            extra.append(reason)
        meta = {"share": op.share, "smb_version": op.version}
        if expected >= 0:
            meta["expected_size"] = str(expected)
        self.files_made += 1
        self._out.append(self.factory.finish(
            b,
            source=SOURCE,
            direction=f.direction,
            flow=flow_ref(self.flow, f.direction),
            ts_ns=max(self._ts, f.ts_ns),
            extra_truncated=extra,
            anomalies=list(f.anomalies),
            kind="file",
            filename=op.name,
            meta=meta,
        ))
