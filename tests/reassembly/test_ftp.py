"""reassembly.ftp: control parsing, data-connection expectations, and data objects (sans-IO)."""

from __future__ import annotations

import hashlib
import ipaddress
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.model import Direction, Flow, FlowKey, StreamClosed, StreamData, StreamGap
from reassembly.ftp import (
    FtpControlParser,
    FtpDataContext,
    FtpDataParser,
    FtpExpectations,
    looks_like_ftp,
)
from reassembly.objects import ObjectFactory

C, S = Direction.TO_SERVER, Direction.TO_CLIENT
SEC = 1_000_000_000
CLIENT, SERVER = "192.0.2.10", "198.51.100.20"
FILE = os.urandom(20_000)


def ip(a: str) -> bytes:
    return ipaddress.ip_address(a).packed


def flow(uid: str, cip: str, cport: int, sip: str, sport: int, ts: int = 10 * SEC) -> Flow:
    key = FlowKey.of(ip(cip), cport, ip(sip), sport, 6)
    return Flow(uid, hash(uid) & 0xFFFF, key, ip(cip), cport, ip(sip), sport, "t0", ts)


class Control:
    """A scripted control connection feeding an `FtpControlParser`."""

    def __init__(self, exp: FtpExpectations, cip: str = CLIENT, sip: str = SERVER) -> None:
        self.flow = flow("Cctl", cip, 50000, sip, 21, ts=SEC)
        self.p = FtpControlParser(self.flow, exp)
        self.off = [0, 0]
        self.ts = SEC

    def _send(self, d: Direction, data: bytes) -> None:
        self.ts += 1000
        assert self.p.feed(StreamData(self.flow, d, self.off[d], data, self.ts)) == []
        self.off[d] += len(data)

    def c(self, line: str) -> Control:
        self._send(C, line.encode() + b"\r\n")
        return self

    def s(self, line: str) -> Control:
        self._send(S, line.encode() + b"\r\n")
        return self

    def login(self) -> Control:
        return (self.s("220 ProFTPD Server ready.").c("USER alice").s("331 Password required")
                .c("PASS secret").s("230 User logged in").c("TYPE I").s("200 Type set to I"))


def transfer(parser: FtpDataParser, d: Direction, data: bytes, *, chunk: int = 1460, gap_at: int = -1,
             close: bool = True, reason: str = "fin") -> list:
    f = parser.flow
    out, off, ts = [], 0, 20 * SEC
    while off < len(data):
        piece = data[off : off + chunk]
        ts += 1000
        if off == gap_at:
            out += parser.feed(StreamGap(f, d, off, len(piece), ts))
        else:
            out += parser.feed(StreamData(f, d, off, piece, ts))
        off += len(piece)
    if close:
        out += parser.feed(StreamClosed(f, d.other, 0, ts + 1))
        out += parser.feed(StreamClosed(f, d, off, ts + 2, reason))
    return out


def test_passive_retr():
    exp = FtpExpectations()
    ctl = Control(exp).login().c("PASV").s(f"227 Entering Passive Mode ({SERVER.replace('.', ',')},195,80).")
    ctl.c("RETR /pub/report.pdf").s(f"150 Opening BINARY mode data connection ({len(FILE)} bytes)")
    data_flow = flow("Cdata", CLIENT, 50001, SERVER, 195 * 256 + 80)
    ctx = exp.match(data_flow)
    assert ctx is not None and ctx.mode == "passive" and len(exp) == 0
    fac = ObjectFactory()
    [obj] = transfer(FtpDataParser(data_flow, ctx, fac, 0), S, FILE)
    ctl.s("226 Transfer complete")
    assert obj.source == "ftp-data" and obj.direction is Direction.TO_CLIENT
    assert obj.filename == "/pub/report.pdf" and obj.md5 == hashlib.md5(FILE).hexdigest()
    assert obj.meta["command"] == "RETR" and obj.meta["control_uid"] == "Cctl" and obj.meta["user"] == "alice"
    assert obj.meta["expected_size"] == str(len(FILE)) and obj.complete
    assert obj.flow.uid == "Cdata" and obj.flow.src_ip == SERVER  # oriented like the bytes


def test_active_stor_via_port():
    exp = FtpExpectations()
    ctl = Control(exp).login().c(f"PORT {CLIENT.replace('.', ',')},7,138").s("200 PORT command successful")
    ctl.c("STOR upload.bin").s("150 Opening data connection")
    # the FTP server connects from port 20 to the client's port: the data flow's client is the server
    data_flow = flow("Cdata", SERVER, 20, CLIENT, 7 * 256 + 138)
    ctx = exp.match(data_flow)
    assert ctx is not None and ctx.mode == "active"
    [obj] = transfer(FtpDataParser(data_flow, ctx, ObjectFactory(), 0), S, FILE)
    assert obj.direction is Direction.TO_SERVER  # an upload, whatever the data connection says
    assert obj.filename == "upload.bin" and obj.meta["command"] == "STOR"
    assert obj.flow.src_ip == CLIENT and obj.md5 == hashlib.md5(FILE).hexdigest()


def test_epsv():
    exp = FtpExpectations()
    Control(exp).login().c("EPSV").s("229 Entering Extended Passive Mode (|||40001|)").c("RETR a.txt")
    ctx = exp.match(flow("Cd", CLIENT, 50002, SERVER, 40001))
    assert ctx is not None and ctx.filename == "a.txt" and ctx.direction is Direction.TO_CLIENT


def test_eprt_ipv6_appe_is_partial():
    exp = FtpExpectations()
    c6, s6 = "2001:db8::10", "2001:db8::20"
    ctl = Control(exp, cip=c6, sip=s6).login()
    ctl.c(f"EPRT |2|{c6}|5282|").s("200 EPRT ok").c("APPE log.txt").s("150 ok")
    data_flow = flow("Cd6", s6, 20, c6, 5282)
    ctx = exp.match(data_flow)
    assert ctx is not None
    [obj] = transfer(FtpDataParser(data_flow, ctx, ObjectFactory(), 0), S, b"appended\n")
    assert obj.direction is Direction.TO_SERVER and obj.truncated == ("partial",)
    assert obj.flow.src_ip == c6 and obj.meta["rest_offset"] == "0"


def test_rest_resume_is_partial():
    exp = FtpExpectations()
    ctl = Control(exp).login().c("PASV").s(f"227 Entering Passive Mode ({SERVER.replace('.', ',')},10,10)")
    ctl.c("REST 5000").s("350 Restarting at 5000").c("RETR big.iso")
    data_flow = flow("Cd", CLIENT, 50003, SERVER, 2570)
    ctx = exp.match(data_flow)
    [obj] = transfer(FtpDataParser(data_flow, ctx, ObjectFactory(), 0), S, FILE[5000:])
    assert obj.truncated == ("partial",) and obj.meta["rest_offset"] == "5000"
    # REST applies to one transfer only
    ctl.c("PASV").s(f"227 Entering Passive Mode ({SERVER.replace('.', ',')},10,11)").c("RETR small")
    assert exp.match(flow("Cd2", CLIENT, 50004, SERVER, 2571)).rest_offset == 0


def test_data_before_command():
    exp = FtpExpectations()
    ctl = Control(exp).login().c("PASV").s(f"227 Entering Passive Mode ({SERVER.replace('.', ',')},20,0)")
    data_flow = flow("Cd", CLIENT, 50005, SERVER, 5120)
    ctx = exp.match(data_flow)
    dp = FtpDataParser(data_flow, ctx, ObjectFactory(), 0)
    assert transfer(dp, C, FILE, close=False) == []  # bytes race ahead of STOR
    ctl.c("STOR late-name.dat").s("150 ok")
    out = dp.feed(StreamClosed(data_flow, S, 0, 30 * SEC))
    out += dp.feed(StreamClosed(data_flow, C, len(FILE), 30 * SEC))
    [obj] = out
    assert obj.filename == "late-name.dat" and obj.direction is Direction.TO_SERVER


def test_close_flushes_an_open_transfer():
    ctx = FtpDataContext(control_uid="Cctl", client_ip=ip(CLIENT), mode="passive", command="RETR",
                         filename="f")
    data_flow = flow("Cd", CLIENT, 50010, SERVER, 6001)
    dp = FtpDataParser(data_flow, ctx, ObjectFactory(), 0)
    transfer(dp, S, b"x" * 100, close=False)
    [obj] = dp.close(data_flow, 99 * SEC)
    assert obj.size == 100 and obj.truncated == ("eof",) and dp.close(data_flow, 99 * SEC) == []


def test_command_never_seen_direction_from_addresses():
    ctx = FtpDataContext(control_uid="Cctl", client_ip=ip(CLIENT), mode="active")
    data_flow = flow("Cd", SERVER, 20, CLIENT, 6000)  # server connects to the client
    [obj] = transfer(FtpDataParser(data_flow, ctx, ObjectFactory(), 0), C, b"from the server")
    assert obj.direction is Direction.TO_CLIENT and obj.filename == ""


def test_gap_and_short_transfer():
    exp = FtpExpectations()
    ctl = Control(exp).login().c("PASV").s(f"227 Entering Passive Mode ({SERVER.replace('.', ',')},30,0)")
    ctl.c("RETR f").s("150 Opening (20000 bytes)")
    data_flow = flow("Cd", CLIENT, 50006, SERVER, 7680)
    ctx = exp.match(data_flow)
    [obj] = transfer(FtpDataParser(data_flow, ctx, ObjectFactory(), 0), S, FILE, gap_at=1460 * 3)
    assert obj.missing_bytes == 1460 and obj.size == len(FILE) - 1460 and obj.state == "TRUNCATED"
    ctx2 = FtpDataContext(control_uid="x", client_ip=ip(CLIENT), mode="passive", command="RETR",
                          expected_size=len(FILE))
    [obj2] = transfer(FtpDataParser(data_flow, ctx2, ObjectFactory(), 0), S, FILE[:1000], reason="rst")
    assert "short" in obj2.truncated


def test_expectations_expire_cap_and_both_endpoints():
    exp = FtpExpectations(ttl_ns=5 * SEC, cap=3)
    ctx = FtpDataContext(control_uid="C1", client_ip=ip(CLIENT), mode="passive")
    exp.expect(ip(SERVER), 4000, ctx, now_ns=SEC)
    assert exp.match(flow("Cx", CLIENT, 1, SERVER, 4000, ts=10 * SEC)) is None  # too late
    exp.expect(ip(SERVER), 4000, ctx, now_ns=SEC)
    # a flow picked up mid-stream with its endpoints swapped still matches
    assert exp.match(flow("Cy", SERVER, 4000, CLIENT, 50007, ts=2 * SEC)) is ctx and ctx.data_uid == "Cy"
    for port in range(5000, 5010):
        exp.expect(ip(SERVER), port, ctx, now_ns=SEC)
    assert len(exp) == 3 and exp.evicted == 7
    exp.expire(100 * SEC)
    assert len(exp) == 0


def test_nat_advertised_address_also_registers_the_wire_address():
    exp = FtpExpectations()
    Control(exp).login().c("PASV").s("227 Entering Passive Mode (10,1,1,1,40,0)").c("RETR x")
    assert exp.match(flow("Cd", CLIENT, 50008, SERVER, 10240)) is not None


def test_stou_name_from_reply_and_auth_tls():
    exp = FtpExpectations()
    ctl = Control(exp).login().c("PASV").s(f"227 Entering Passive Mode ({SERVER.replace('.', ',')},40,1)")
    ctl.c("STOU").s("150 FILE: ftpd.x1y2z3")
    assert exp.match(flow("Cd", CLIENT, 50009, SERVER, 10241)).filename == "ftpd.x1y2z3"
    ctl.c("AUTH TLS").s("234 Proceed")
    assert ctl.p.encrypted
    ctl.c("PASV").s(f"227 Entering Passive Mode ({SERVER.replace('.', ',')},40,2)")
    assert len(exp) == 0


def test_looks_like_ftp():
    assert looks_like_ftp(b"220 ProFTPD ready\r\n", b"USER anonymous\r\n") is True
    assert looks_like_ftp(b"220-Welcome\r\n220 ok\r\n", b"AUTH TLS\r\n") is True
    assert looks_like_ftp(b"220 mx ESMTP\r\n", b"EHLO x\r\n") is False
    assert looks_like_ftp(b"220 ready\r\n", b"") is None
    assert looks_like_ftp(b"SSH-2.0-OpenSSH\r\n", b"") is False
    assert looks_like_ftp(b"220 ready\r\n", b"US") is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.one_of(
    st.binary(max_size=60),
    st.sampled_from([b"PORT 1,2,3,4,5,6\r\n", b"EPRT |2|::1|99|\r\n", b"EPRT |x\r\n", b"PASV\r\n",
                     b"227 (1,2,3,4,300,1)\r\n", b"229 (|||70000|)\r\n", b"229 (|||21|)\r\n", b"RETR a\r\n",
                     b"REST 99999999999999999999\r\n", b"150 (12 bytes)\r\n", b"226 ok\r\n", b"STOU\r\n"])),
    st.booleans()), max_size=40))
def test_control_never_raises(script):
    exp = FtpExpectations(cap=16)
    f = flow("Cfz", CLIENT, 1000, SERVER, 21)
    p = FtpControlParser(f, exp)
    off = [0, 0]
    for to_server, data, gap in script:
        d = C if to_server else S
        ev = StreamGap(f, d, off[d], 7, 0) if gap else StreamData(f, d, off[d], data, 0)
        off[d] += 7 if gap else len(data)
        assert p.feed(ev) == []
    assert "ftp.parser_error" not in p.anomalies and len(exp) <= 16
