"""reassembly.smb: SMB1/SMB2 file extraction from scripted sessions built with struct (sans-IO)."""

from __future__ import annotations

import hashlib
import os
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from appliance.model import Direction, StreamClosed, StreamData, StreamGap
from reassembly.objects import ObjectFactory
from reassembly.smb import SmbMemcap, SmbParser, looks_like_smb
from tests.reassembly.factories import make_flow

C, S = Direction.TO_SERVER, Direction.TO_CLIENT
FACTORY = ObjectFactory(keep_bytes=0)
FILE = os.urandom(200_000)
FID = bytes(range(16))


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def nb(msg: bytes) -> bytes:
    """A NetBIOS session message around ``msg``."""
    return b"\x00" + len(msg).to_bytes(3, "big") + msg


# ---------------------------------------------------------------------- SMB2 builders

def h2(cmd: int, mid: int, *, resp: bool = False, status: int = 0, tree: int = 1, session: int = 0x77,
       async_id: int | None = None, related: bool = False, next_cmd: int = 0) -> bytes:
    flags = (1 if resp else 0) | (2 if async_id is not None else 0) | (4 if related else 0)
    tail = struct.pack("<Q", async_id) if async_id is not None else struct.pack("<II", 0, tree)
    return (b"\xfeSMB" + struct.pack("<HHIHHII", 64, 1, status, cmd, 1, flags, next_cmd)
            + struct.pack("<Q", mid) + tail + struct.pack("<Q", session) + bytes(16))


def tree_req(mid: int, path: str) -> bytes:
    p = path.encode("utf-16-le")
    return h2(3, mid) + struct.pack("<HHHH", 9, 0, 72, len(p)) + p


def tree_resp(mid: int, tree: int = 1, share_type: int = 1) -> bytes:
    return h2(3, mid, resp=True, tree=tree) + struct.pack("<HBBIII", 16, share_type, 0, 0, 0, 0x1F01FF)


def create_req(mid: int, name: str, **kw: object) -> bytes:
    n = name.encode("utf-16-le")
    body = struct.pack("<HBBIQQIIIIIHHII", 57, 0, 0, 2, 0, 0, 0x80, 0, 7, 1, 0, 120, len(n), 0, 0)
    return h2(5, mid, **kw) + body + n  # type: ignore[arg-type]


def create_resp(mid: int, fid: bytes = FID, eof: int = 0, attrs: int = 0x20, **kw: object) -> bytes:
    body = struct.pack("<HBBI", 89, 0, 0, 1) + bytes(32) + struct.pack("<QQII", eof, eof, attrs, 0) + fid
    return h2(5, mid, resp=True, **kw) + body + struct.pack("<II", 0, 0)  # type: ignore[arg-type]


def read_req(mid: int, off: int, length: int, fid: bytes = FID, **kw: object) -> bytes:
    body = struct.pack("<HBBIQ", 49, 0x50, 0, length, off) + fid + struct.pack("<IIIHH", 1, 0, 0, 0, 0) + b"\x00"
    return h2(8, mid, **kw) + body  # type: ignore[arg-type]


def read_resp(mid: int, data: bytes, **kw: object) -> bytes:
    return h2(8, mid, resp=True, **kw) + struct.pack("<HBBIII", 17, 80, 0, len(data), 0, 0) + data  # type: ignore


def write_req(mid: int, off: int, data: bytes, fid: bytes = FID, **kw: object) -> bytes:
    body = struct.pack("<HHIQ", 49, 112, len(data), off) + fid + struct.pack("<IIHHI", 0, 0, 0, 0, 0)
    return h2(9, mid, **kw) + body + data  # type: ignore[arg-type]


def write_resp(mid: int, n: int) -> bytes:
    return h2(9, mid, resp=True) + struct.pack("<HHIIHH", 17, 0, n, 0, 0, 0)


def setinfo_eof(mid: int, size: int, fid: bytes = FID) -> bytes:
    return h2(0x11, mid) + struct.pack("<HBBIHHI", 33, 1, 20, 8, 96, 0, 0) + fid + struct.pack("<Q", size)


def close_req(mid: int, fid: bytes = FID, **kw: object) -> bytes:
    return h2(6, mid, **kw) + struct.pack("<HHI", 24, 0, 0) + fid  # type: ignore[arg-type]


def close_resp(mid: int, **kw: object) -> bytes:
    return h2(6, mid, resp=True, **kw) + struct.pack("<HHI", 60, 0, 0) + bytes(52)  # type: ignore[arg-type]


def compound(*cmds: bytes) -> bytes:
    """Chain SMB2 commands with NextCommand (each but the last padded to 8 bytes)."""
    out = b""
    for i, c in enumerate(cmds):
        if i < len(cmds) - 1:
            c += bytes(-len(c) % 8)
            c = c[:20] + struct.pack("<I", len(c)) + c[24:]
        out += c
    return out


def smb2_tree(sess: Session, path: str = r"\\fs1\docs") -> None:
    sess.c(nb(tree_req(1, path))).s(nb(tree_resp(1)))


# ---------------------------------------------------------------------- SMB1 builders

def h1(cmd: int, mid: int, *, resp: bool = False, tid: int = 5, uid: int = 9, pid: int = 100, status: int = 0) -> bytes:
    return (b"\xffSMB" + struct.pack("<BIBH", cmd, status, 0x80 if resp else 0, 0xC843) + bytes(12)
            + struct.pack("<HHHH", tid, pid, uid, mid))


def nt_create_req(mid: int, name: str, andx: tuple[int, int] = (0xFF, 0)) -> bytes:
    n = name.encode("utf-16-le") + b"\x00\x00"
    words = struct.pack("<BBHBHIIIQIIIIIB", andx[0], 0, andx[1], 0, len(n), 0, 0, 0x89, 0, 0x80, 7, 1, 0, 2, 0)
    # header 32 + wc 1 + 48 words + bc 2 = 83: odd, so one pad byte before the UTF-16 name
    return h1(0xA2, mid) + b"\x18" + words + struct.pack("<H", len(n) + 1) + b"\x00" + n


def nt_create_resp(mid: int, fid: int, eof: int, andx: tuple[int, int] = (0xFF, 0), directory: int = 0) -> bytes:
    words = (struct.pack("<BBHBHI", andx[0], 0, andx[1], 0, fid, 1) + bytes(32)
             + struct.pack("<IQQHHB", 0x20, eof, eof, 0, 7, directory))
    return h1(0xA2, mid, resp=True) + b"\x22" + words + struct.pack("<H", 0)


def read_andx_req(mid: int, fid: int, off: int, n: int) -> bytes:
    words = struct.pack("<BBHHIHHIHI", 0xFF, 0, 0, fid, off & 0xFFFFFFFF, n, n, 0, 0, off >> 32)
    return h1(0x2E, mid) + b"\x0c" + words + b"\x00\x00"


def read_andx_resp(mid: int, data: bytes, pad: int = 1, prefix: bytes = b"") -> bytes:
    start = (len(prefix) or 32) + 1 + 24 + 2 + pad  # DataOffset counts from the SMB header
    words = struct.pack("<BBHHHHHHH", 0xFF, 0, 0, 0xFFFF, 0, 0, len(data) & 0xFFFF, start, len(data) >> 16) + bytes(8)
    bc = struct.pack("<H", (len(data) + pad) & 0xFFFF)
    return h1(0x2E, mid, resp=True) + b"\x0c" + words + bc + bytes(pad) + data


def write_andx_req(mid: int, fid: int, off: int, data: bytes, pad: int = 1) -> bytes:
    start = 32 + 1 + 28 + 2 + pad
    words = struct.pack("<BBHHIIHHHHHI", 0xFF, 0, 0, fid, off & 0xFFFFFFFF, 0, 0, 0, len(data) >> 16,
                        len(data) & 0xFFFF, start, off >> 32)
    return h1(0x2F, mid) + b"\x0e" + words + struct.pack("<H", (len(data) + pad) & 0xFFFF) + bytes(pad) + data


def close1_req(mid: int, fid: int) -> bytes:
    return h1(0x04, mid) + b"\x03" + struct.pack("<HI", fid, 0) + b"\x00\x00"


def close1_resp(mid: int) -> bytes:
    return h1(0x04, mid, resp=True) + b"\x00\x00\x00"


# ---------------------------------------------------------------------- session driver

class Session:
    """Feeds scripted client (c) / server (s) bytes to one `SmbParser`, in TCP-sized pieces."""

    def __init__(self, *, chunk: int = 1460, **kw: object) -> None:
        self.flow = make_flow("Csmb", sport=445)
        self.p = SmbParser(self.flow, FACTORY, body_limit=0, **kw)  # type: ignore[arg-type]
        self.off = [0, 0]
        self.ts = 1_000_000_000
        self.chunk = chunk
        self.objs: list = []

    def send(self, d: Direction, data: bytes) -> Session:
        for i in range(0, len(data), self.chunk):
            piece = data[i : i + self.chunk]
            self.ts += 1000
            self.objs += self.p.feed(StreamData(self.flow, d, self.off[d], piece, self.ts))
            self.off[d] += len(piece)
        return self

    def c(self, data: bytes) -> Session:
        return self.send(C, data)

    def s(self, data: bytes) -> Session:
        return self.send(S, data)

    def gap(self, d: Direction, n: int) -> Session:
        self.ts += 1000
        self.objs += self.p.feed(StreamGap(self.flow, d, self.off[d], n, self.ts))
        self.off[d] += n
        return self

    def end(self) -> list:
        for d in (C, S):
            self.ts += 1000
            self.objs += self.p.feed(StreamClosed(self.flow, d, self.off[d], self.ts))
        self.objs += self.p.close(self.flow, self.ts)
        return self.objs


def download2(sess: Session, data: bytes, *, piece: int = 65536, name: str = r"dir\report.pdf",
              order: list[int] | None = None, skip: frozenset[int] = frozenset(), close: bool = True) -> None:
    """CREATE, READ requests for every piece, responses in ``order`` (``skip`` never answered), CLOSE."""
    sess.c(nb(create_req(10, name))).s(nb(create_resp(10, eof=len(data))))
    offs = list(range(0, len(data), piece))
    for i, off in enumerate(offs):
        sess.c(nb(read_req(100 + i, off, piece)))
    for i in order if order is not None else range(len(offs)):
        if i in skip:
            sess.s(nb(h2(8, 100 + i, resp=True, status=0xC0000185) + struct.pack("<HBB", 9, 0, 0) + bytes(5)))
        else:
            sess.s(nb(read_resp(100 + i, data[offs[i] : offs[i] + piece])))
    if close:
        sess.c(nb(close_req(11))).s(nb(close_resp(11)))


# ---------------------------------------------------------------------- detection

def test_looks_like_smb() -> None:
    smb2 = nb(h2(0, 0))
    assert looks_like_smb(smb2) is True
    assert looks_like_smb(b"", smb2) is True
    assert looks_like_smb(b"\x85\x00\x00\x00" + smb2) is True  # keepalive first
    assert looks_like_smb(nb(h1(0x72, 0) + b"\x00\x00\x00")) is True
    assert looks_like_smb(nb(b"\xfdSMB" + bytes(48))) is True  # encrypted: the parser flags it
    assert looks_like_smb(b"\x81\x00\x00\x04ABCD" + smb2) is True  # NetBIOS session request on 139
    assert looks_like_smb(smb2[:6]) is None
    assert looks_like_smb(b"") is None
    assert looks_like_smb(b"GET / HTTP/1.1\r\n") is False
    assert looks_like_smb(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03") is False
    assert looks_like_smb(b"\x00\x00\x00\x05hello") is False
    mid = b"tail of some earlier message" + smb2
    assert looks_like_smb(mid) is False
    assert looks_like_smb(mid, midstream=True) is True
    assert looks_like_smb(b"inside a READ response" * 10, midstream=True) is None
    assert looks_like_smb(b"x" * 9000, midstream=True) is False


# ---------------------------------------------------------------------- SMB2

def test_smb2_download() -> None:
    sess = Session()
    smb2_tree(sess)
    download2(sess, FILE)
    objs = sess.end()
    assert len(objs) == 1
    o = objs[0]
    assert (o.source, o.kind, o.direction, o.filename) == ("smb", "file", S, r"dir\report.pdf")
    assert o.md5 == md5(FILE) and o.size == len(FILE) and o.state == "CLOSED"
    assert o.meta["share"] == r"\\fs1\docs" and o.meta["smb_version"] == "2"
    assert o.flow.src_port == 445  # oriented like the download


def test_smb2_download_emitted_at_close_and_dialect() -> None:
    sess = Session()
    neg = h2(0, 0, resp=True) + struct.pack("<HHH", 65, 1, 0x0311) + bytes(58)
    sess.c(nb(h2(0, 0) + bytes(36))).s(nb(neg))
    download2(sess, FILE[:1000])
    assert len(sess.objs) == 1 and sess.objs[0].meta["smb_version"] == "3.1.1"
    assert sess.end() == sess.objs[:1]


def test_smb2_upload_with_set_info_size() -> None:
    sess = Session()
    sess.c(nb(create_req(10, "up.bin"))).s(nb(create_resp(10, eof=0)))
    sess.c(nb(setinfo_eof(11, len(FILE))))
    for i, off in enumerate(range(0, len(FILE), 65536)):
        piece = FILE[off : off + 65536]
        sess.c(nb(write_req(20 + i, off, piece))).s(nb(write_resp(20 + i, len(piece))))
    sess.c(nb(close_req(12))).s(nb(close_resp(12)))
    (o,) = sess.end()
    assert o.direction is C and o.md5 == md5(FILE) and o.complete and o.filename == "up.bin"
    assert o.meta["expected_size"] == str(len(FILE))


def test_smb2_out_of_order_and_overlapping_reads() -> None:
    sess = Session(chunk=999)
    download2(sess, FILE, piece=30000, order=[3, 0, 6, 5, 2, 1, 4])
    sess.c(nb(create_req(30, "again"))).s(nb(create_resp(30, fid=b"\x01" * 16, eof=100)))
    for mid, off, n in ((31, 50, 50), (32, 0, 60), (33, 40, 30)):
        sess.c(nb(read_req(mid, off, n, fid=b"\x01" * 16))).s(nb(read_resp(mid, FILE[off : off + n])))
    sess.c(nb(close_req(34, fid=b"\x01" * 16))).s(nb(close_resp(34)))
    objs = sess.end()
    assert [o.md5 for o in objs] == [md5(FILE), md5(FILE[:100])]
    assert all(o.complete for o in objs)


def test_smb2_hole_is_truncated_with_missing_bytes() -> None:
    sess = Session()
    download2(sess, FILE, piece=50000, skip=frozenset({1}))
    (o,) = sess.end()
    assert o.state == "TRUNCATED" and "gap" in o.truncated
    assert o.missing_bytes == 50000 and o.size == len(FILE) - 50000
    assert o.md5 == md5(FILE[:50000] + FILE[100000:])


def test_smb2_tcp_gap_inside_read_data_keeps_framing() -> None:
    sess = Session()
    sess.c(nb(create_req(10, "a"))).s(nb(create_resp(10, eof=len(FILE))))
    sess.c(nb(read_req(20, 0, len(FILE))))
    msg = nb(read_resp(20, FILE))
    head = 4 + 80 + 1000
    sess.s(msg[:head]).gap(S, 2000).s(msg[head + 2000 :])
    sess.c(nb(close_req(11))).s(nb(close_resp(11)))
    (o,) = sess.end()
    assert o.missing_bytes == 2000 and "gap" in o.truncated
    assert o.md5 == md5(FILE[:1000] + FILE[3000:])


def test_smb2_compound_create_read_close() -> None:
    sess = Session()
    data = FILE[:3000]
    sess.c(nb(compound(create_req(40, r"a\b.txt"), read_req(41, 0, 4096, fid=b"\xff" * 16, related=True),
                       close_req(42, fid=b"\xff" * 16, related=True))))
    sess.s(nb(compound(create_resp(40, eof=len(data)), read_resp(41, data), close_resp(42))))
    (o,) = sess.objs
    assert o.filename == r"a\b.txt" and o.md5 == md5(data) and o.complete


def test_smb2_compound_response_split_anywhere() -> None:
    data = FILE[:5000]
    req = nb(compound(create_req(40, "x"), read_req(41, 0, 8192, fid=b"\xff" * 16, related=True)))
    resp = nb(compound(create_resp(40, eof=len(data)), read_resp(41, data)))
    for chunk in (1, 7, 64, 200):
        sess = Session(chunk=chunk)
        sess.c(req).s(resp)
        (o,) = sess.end()
        assert o.md5 == md5(data)


def test_smb2_status_pending_async_read() -> None:
    sess = Session()
    sess.c(nb(create_req(10, "slow.iso"))).s(nb(create_resp(10, eof=len(FILE))))
    sess.c(nb(read_req(50, 0, len(FILE))))
    interim = h2(8, 50, resp=True, status=0x103, async_id=0xABCD) + struct.pack("<HBB", 9, 0, 0) + bytes(5)
    sess.s(nb(interim))
    assert sess.objs == []
    sess.s(nb(read_resp(50, FILE, async_id=0xABCD)))
    sess.c(nb(close_req(11))).s(nb(close_resp(11)))
    (o,) = sess.end()
    assert o.md5 == md5(FILE) and o.complete


def test_smb2_encrypted_session_flagged_and_skipped() -> None:
    sess = Session()
    sess.c(nb(create_req(10, "x"))).s(nb(create_resp(10, eof=4)))
    sess.s(nb(b"\xfdSMB" + bytes(48) + os.urandom(300)))
    sess.c(nb(read_req(20, 0, 4))).s(nb(read_resp(20, b"abcd")))
    assert sess.end() == []
    assert sess.p.encrypted and "smb.encrypted" in sess.p.anomalies


def test_smb2_flow_ends_before_close() -> None:
    sess = Session()
    download2(sess, FILE, piece=50000, order=[0, 1], close=False)
    (o,) = sess.end()
    assert o.size == 100000 and "eof" in o.truncated and "short" in o.truncated
    assert o.meta["expected_size"] == str(len(FILE)) and o.md5 == md5(FILE[:100000])
    sess = Session()
    download2(sess, FILE[:500], close=False)
    (o,) = sess.end()
    assert o.truncated == ("eof",) and o.md5 == md5(FILE[:500])  # Suricata: TRUNCATED without CLOSE


def test_smb2_pipes_and_directories_are_not_files() -> None:
    sess = Session()
    sess.c(nb(tree_req(1, r"\\fs1\IPC$"))).s(nb(tree_resp(1, tree=1, share_type=2)))
    sess.c(nb(create_req(10, "srvsvc"))).s(nb(create_resp(10)))
    sess.c(nb(write_req(11, 0, b"\x05\x00\x0b" + bytes(70)))).s(nb(write_resp(11, 73)))
    sess.c(nb(read_req(12, 0, 1024))).s(nb(read_resp(12, b"\x05\x00\x0c" + bytes(60))))
    sess.c(nb(close_req(13))).s(nb(close_resp(13)))
    assert sess.end() == []


def test_smb2_midstream_unknown_fileid() -> None:
    sess = Session()
    sess.c(b"...the tail of a message we never saw the start of")
    sess.c(nb(read_req(20, 0, 100))).s(nb(read_resp(20, FILE[:100])))
    (o,) = sess.end()
    assert o.filename == "" and o.md5 == md5(FILE[:100])
    assert "smb.bad_magic" in sess.p.anomalies or "smb.bad_nbss_type" in sess.p.anomalies


def test_garbage_between_messages_resyncs() -> None:
    sess = Session()
    sess.c(nb(create_req(10, "f"))).s(nb(create_resp(10, eof=100)))
    sess.s(b"\x00\xff\xff\xffjunk that claims to be an oversized message" * 3)
    sess.c(nb(read_req(20, 0, 100))).s(nb(read_resp(20, FILE[:100])))
    sess.c(nb(close_req(11))).s(nb(close_resp(11)))
    (o,) = sess.end()
    assert o.md5 == md5(FILE[:100]) and o.filename == "f"


def test_out_of_order_buffer_cap_declares_gap() -> None:
    sess = Session(file_buffer=40000, memcap=SmbMemcap())
    download2(sess, FILE, piece=20000, order=[1, 2, 3, 4, 5, 0, 6, 7, 8, 9])
    (o,) = sess.end()
    assert "smb.file_buffer_full" in o.anomalies and "gap" in o.truncated
    assert o.size + o.missing_bytes == len(FILE) and o.missing_bytes >= 20000
    assert sess.p.memcap.used == 0


def test_large_read_streams_without_buffering_the_message() -> None:
    big = os.urandom(3 * 1024 * 1024)
    sess = Session(chunk=65536)
    sess.c(nb(create_req(10, "big"))).s(nb(create_resp(10, eof=len(big))))
    sess.c(nb(read_req(20, 0, len(big))))
    msg = nb(read_resp(20, big))
    peak = 0
    for i in range(0, len(msg), 65536):
        sess.s(msg[i : i + 65536])
        peak = max(peak, len(sess.p._half[1].buf))
    sess.c(nb(close_req(11))).s(nb(close_resp(11)))
    (o,) = sess.end()
    assert o.md5 == md5(big) and peak < 4096


# ---------------------------------------------------------------------- SMB1

def smb1_tree(sess: Session) -> None:
    p = r"\\srv\share".encode("utf-16-le") + b"\x00\x00"
    words = struct.pack("<BBHHH", 0xFF, 0, 0, 0, 1)
    req = h1(0x75, 1, tid=0) + b"\x04" + words + struct.pack("<H", 1 + len(p) + 6) + b"\x00" + p + b"?????\x00"
    resp = h1(0x75, 1, resp=True) + b"\x03" + struct.pack("<BBHH", 0xFF, 0, 0, 1) + struct.pack("<H", 3) + b"A:\x00"
    sess.c(nb(req)).s(nb(resp))


def test_smb1_download_read_andx() -> None:
    sess = Session()
    smb1_tree(sess)
    data = FILE[:150_000]
    sess.c(nb(nt_create_req(2, r"\docs\a.doc"))).s(nb(nt_create_resp(2, 0x4001, len(data))))
    for i, off in enumerate(range(0, len(data), 61440)):
        sess.c(nb(read_andx_req(10 + i, 0x4001, off, 61440)))
        sess.s(nb(read_andx_resp(10 + i, data[off : off + 61440], pad=1 + i % 2)))
    sess.c(nb(close1_req(3, 0x4001))).s(nb(close1_resp(3)))
    (o,) = sess.end()
    assert (o.direction, o.filename, o.md5) == (S, r"\docs\a.doc", md5(data))
    assert o.complete and o.meta == {"share": r"\\srv\share", "smb_version": "1", "expected_size": str(len(data))}


def test_smb1_upload_write_andx_padding_and_large_write() -> None:
    sess = Session()
    sess.c(nb(nt_create_req(2, r"\up.exe"))).s(nb(nt_create_resp(2, 0x11, 0)))
    sess.c(nb(write_andx_req(5, 0x11, 0, FILE[:70000], pad=3)))  # > 64 KiB: DataLengthHigh
    sess.c(nb(write_andx_req(6, 0x11, 70000, FILE[70000:80000], pad=0)))
    sess.c(nb(close1_req(7, 0x11))).s(nb(close1_resp(7)))
    (o,) = sess.end()
    assert o.direction is C and o.md5 == md5(FILE[:80000]) and o.filename == r"\up.exe"


def test_smb1_andx_chain_create_then_read() -> None:
    sess = Session()
    data = FILE[:2000]
    create = nt_create_req(2, r"\c.txt", andx=(0x2E, 0))
    read = read_andx_req(2, 0, 0, 4096)[32:]  # chained command: no header
    create = create[:33] + struct.pack("<BBH", 0x2E, 0, len(create)) + create[37:]
    sess.c(nb(create + read))
    cresp = nt_create_resp(2, 0x22, len(data))
    cresp = cresp[:33] + struct.pack("<BBH", 0x2E, 0, len(cresp)) + cresp[37:]
    rresp = read_andx_resp(2, data, pad=1, prefix=cresp)[32:]
    sess.s(nb(cresp + rresp))
    sess.c(nb(close1_req(3, 0x22))).s(nb(close1_resp(3)))
    (o,) = sess.end()
    assert o.filename == r"\c.txt" and o.md5 == md5(data) and o.complete


# ---------------------------------------------------------------------- properties

def _session_bytes() -> tuple[bytes, bytes, bytes]:
    data = FILE[:20000]
    cli = nb(create_req(10, "p.bin")) + b"".join(nb(read_req(20 + i, i * 5000, 5000)) for i in range(4))
    cli += nb(close_req(11))
    srv = nb(create_resp(10, eof=len(data)))
    srv += b"".join(nb(read_resp(20 + i, data[i * 5000 : (i + 1) * 5000])) for i in (2, 0, 3, 1))
    srv += nb(close_resp(11))
    return cli, srv, data


CLI, SRV, DATA = _session_bytes()


def _feed_split(cli: bytes, srv: bytes, cuts_c: list[int], cuts_s: list[int]) -> tuple[list, SmbParser]:
    sess = Session()
    for d, data, cuts in ((C, cli, cuts_c), (S, srv, cuts_s)):
        prev = 0
        for c in [*sorted({x % (len(data) + 1) for x in cuts}), len(data)]:
            if c > prev:
                sess.objs += sess.p.feed(StreamData(sess.flow, d, prev, data[prev:c], 1))
                prev = c
        sess.off[d] = len(data)
    return sess.end(), sess.p


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 10**6), max_size=12), st.lists(st.integers(0, 10**6), max_size=12))
def test_any_segmentation_gives_the_same_file(cuts_c: list[int], cuts_s: list[int]) -> None:
    objs, p = _feed_split(CLI, SRV, cuts_c, cuts_s)
    assert [o.md5 for o in objs] == [md5(DATA)] and objs[0].complete
    assert "smb.parser_error" not in p.anomalies


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000), st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=8),
       st.lists(st.integers(0, 3000), max_size=8), st.booleans())
def test_arbitrary_bytes_never_raise(cli: bytes, srv: bytes, cuts_c: list[int], cuts_s: list[int],
                                     framed: bool) -> None:
    if framed:  # valid framing and magic, arbitrary contents
        cli = nb(b"\xfeSMB" + cli) + nb(b"\xffSMB" + cli[::-1])
        srv = nb(b"\xfeSMB" + srv) + nb(b"\xffSMB" + srv[::-1])
    _, p = _feed_split(cli, srv, cuts_c, cuts_s)
    assert "smb.parser_error" not in p.anomalies


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(SRV) - 1), st.integers(0, 255)), min_size=1, max_size=6),
       st.lists(st.tuples(st.integers(0, len(CLI) - 1), st.integers(0, 255)), max_size=6))
def test_mutated_sessions_never_raise(srv_flips: list[tuple[int, int]], cli_flips: list[tuple[int, int]]) -> None:
    cli, srv = bytearray(CLI), bytearray(SRV)
    for i, v in cli_flips:
        cli[i] = v
    for i, v in srv_flips:
        srv[i] = v
    objs, p = _feed_split(bytes(cli), bytes(srv), [100, 700], [90, 5000, 12000])
    assert "smb.parser_error" not in p.anomalies
    assert sum(o.size for o in objs) <= len(DATA)
