"""FTP (RFC 959, 2428, 3659) as a carrier: each data-connection transfer is one object.

Three sans-IO pieces:

* `FtpControlParser` reads the control connection (both directions): USER, TYPE, REST, PORT,
  EPRT, PASV/227, EPSV/229, RETR/STOR/STOU/APPE (and LIST/NLST/MLSD), the 1xx/2xx/4xx/5xx
  replies, AUTH TLS. At PORT/EPRT (the server will connect to the client's endpoint) or at the
  227/229 reply (the client connects to the server's endpoint) it registers an `FtpDataContext`
  in the shared expectation table (`reassembly.applayer.expect.Expectations`, also known here
  as `FtpExpectations`), keyed by the data connection's *listening* endpoint.
* The application layer matches every new TCP flow against that table before probing its
  content and hands the context (``protocol = "ftp-data"``) to the ``ftp-data`` entry (both
  endpoints are tried, since a flow picked up mid-stream may be oriented wrongly).
* `FtpDataParser` turns the data connection's bytes (whichever direction carries them) into one
  ``ftp-data`` object. The context is mutable and read when the object finishes, so the file
  name and direction are right even when the data bytes race ahead of RETR/STOR on the wire.

The object's ``direction`` follows the FTP command (STOR/STOU/APPE: TO_SERVER, RETR: TO_CLIENT),
not the data connection (in active mode the FTP server is that connection's client). Its
``flow`` is the data connection, oriented like the bytes.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import ClassVar

from appliance.model import ContentObject, Direction, Flow, StreamClosed, StreamData, StreamEvent, StreamGap
from reassembly.applayer.expect import Expectations
from reassembly.mime import header_text
from reassembly.objects import ObjectFactory, flow_ref

SOURCE = "ftp-data"
UPLOADS = frozenset({"STOR", "STOU", "APPE"})
DOWNLOADS = frozenset({"RETR", "LIST", "NLST", "MLSD"})
TRANSFERS = UPLOADS | DOWNLOADS
MAX_LINE = 4096
MAX_ANOMALIES = 32

_FTP_CLIENT_VERBS = frozenset(
    b"USER PASS ACCT AUTH FEAT SYST OPTS CLNT HOST PBSZ PROT CWD PWD TYPE PASV EPSV PORT EPRT "
    b"LIST NLST MLSD RETR STOR STOU APPE REST NOOP QUIT SITE SIZE MDTM HELP STAT".split()
)
_REPLY = re.compile(rb"^([1-5][0-9][0-9])([ -]|$)")
_H6 = re.compile(rb"(\d{1,3})" + rb"\s*,\s*(\d{1,3})" * 5)
_EPSV = re.compile(rb"\(([!-~])\1\1(\d{1,5})\1\)")
_SIZE = re.compile(rb"\((\d{1,15}) bytes\)", re.IGNORECASE)
_STOU_NAME = re.compile(rb"FILE:\s*(\S+)", re.IGNORECASE)


def looks_like_ftp(server_first_bytes: bytes, client_first_bytes: bytes) -> bool | None:
    """Is this an FTP control connection? ``None`` = need more bytes.

    The server greets with ``220`` (or ``120``/``421``); the client's first command is an FTP
    verb (USER, AUTH, FEAT…). SMTP greets with 220 too, so EHLO/HELO says no.
    """
    srv = server_first_bytes[:4096]
    cli = client_first_bytes[:4096]
    if len(srv) >= 3 and srv[:3] not in (b"220", b"120", b"421"):
        return False
    if len(srv) >= 4 and srv[3:4] not in (b" ", b"-", b"\r", b"\n"):
        return False
    if cli:
        i = cli.find(b"\n")
        if i < 0:
            return None if len(cli) < 64 and cli[:4].isalpha() else False
        verb = cli[:i].strip().split(b" ", 1)[0].upper()
        return verb in _FTP_CLIENT_VERBS
    i = srv.find(b"\n")
    if i >= 0:
        up = srv[:i].upper()
        if b"SMTP" in up:
            return False
    return None


@dataclass(slots=True)
class FtpDataContext:
    """The transfer a data connection belongs to; filled in as the control connection goes on."""

    protocol: ClassVar[str] = "ftp-data"
    """The table entry that parses the expected connection."""

    control_uid: str
    client_ip: bytes
    """The control connection's client (the FTP user's host)."""
    mode: str
    """``passive`` (client connects) or ``active`` (server connects)."""
    user: str = ""
    command: str = ""
    filename: str = ""
    rest_offset: int = 0
    expected_size: int = -1
    """From ``150 … (N bytes)``; -1 when unknown."""
    reply: int = 0
    """Last reply to the transfer command (150, 226, 550…)."""
    data_uid: str = ""

    @property
    def direction(self) -> Direction | None:
        """TO_SERVER for uploads, TO_CLIENT for downloads, None before the command is known."""
        if self.command in UPLOADS:
            return Direction.TO_SERVER
        if self.command in DOWNLOADS:
            return Direction.TO_CLIENT
        return None


FtpExpectations = Expectations
"""The expectation table under its historical name."""


def _ip_bytes(text: str) -> bytes | None:
    try:
        return ipaddress.ip_address(text.strip()).packed
    except ValueError:
        return None


class FtpControlParser:
    """One FTP control connection; registers data connections, returns no objects itself."""

    def __init__(self, flow: Flow, expectations: FtpExpectations) -> None:
        self.flow = flow
        self.expectations = expectations
        self._buf = [b"", b""]
        self._skip = [False, False]
        self._expect_off = [0, 0]
        self._ts = 0
        self.user = ""
        self.type = ""
        self._rest = 0
        self._ctx: FtpDataContext | None = None
        """Context of the last PORT/PASV not yet used by a transfer command."""
        self._xfer: FtpDataContext | None = None
        """Context of the last transfer command (gets the 1xx/2xx/5xx replies)."""
        self._last_cmd = ""
        self.transfers: list[FtpDataContext] = []
        """Contexts of the transfer commands seen (capped), for logging."""
        self.encrypted = False
        self.anomalies: dict[str, None] = {}

    def feed(self, event: StreamEvent) -> list[ContentObject]:
        try:
            self._feed(event)
        except Exception:  # never let hostile input raise
            self._anomaly("ftp.parser_error")
            self._buf = [b"", b""]
        return []

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        """End of the control connection: nothing to emit."""
        return []

    def _anomaly(self, code: str) -> None:
        if len(self.anomalies) < MAX_ANOMALIES:
            self.anomalies[code] = None

    def _feed(self, ev: StreamEvent) -> None:
        if self.encrypted:
            return
        self._ts = ev.ts_ns
        d = int(ev.direction)
        if isinstance(ev, StreamData):
            data = ev.data
            if ev.offset > self._expect_off[d]:
                self._lost(d)
            elif ev.offset < self._expect_off[d]:
                data = data[self._expect_off[d] - ev.offset :]
            self._expect_off[d] = max(self._expect_off[d], ev.offset + len(ev.data))
            self._lines(d, data)
        elif isinstance(ev, StreamGap):
            self._lost(d)
            self._expect_off[d] = max(self._expect_off[d], ev.offset + ev.length)

    def _lost(self, d: int) -> None:
        self._anomaly("ftp.gap")
        self._buf[d] = b""
        self._skip[d] = True

    def _lines(self, d: int, data: bytes) -> None:
        buf = self._buf[d] + data
        pos = 0
        while pos < len(buf) and not self.encrypted:
            i = buf.find(b"\n", pos)
            if i < 0:
                if len(buf) - pos > MAX_LINE:
                    self._anomaly("ftp.long_line")
                    self._skip[d] = True
                    pos = len(buf)
                break
            line = buf[pos:i].rstrip(b"\r")
            pos = i + 1
            if self._skip[d]:
                self._skip[d] = False
                continue
            if len(line) > MAX_LINE:
                self._anomaly("ftp.long_line")
                continue
            if d == Direction.TO_SERVER:
                self._command(line)
            else:
                self._reply(line)
        self._buf[d] = buf[pos:] if not self.encrypted else b""

    # -- client commands

    def _new_ctx(self, mode: str) -> FtpDataContext:
        ctx = FtpDataContext(control_uid=self.flow.uid, client_ip=self.flow.client_ip, mode=mode,
                             user=self.user)
        self._ctx = ctx
        return ctx

    def _command(self, line: bytes) -> None:
        verb, _, arg = line.strip().partition(b" ")
        verb_s = verb.upper()[:8].decode("ascii", "replace")
        arg_s = header_text(arg)[:1024]
        self._last_cmd = verb_s
        if verb_s == "USER":
            self.user = arg_s.strip()[:256]
        elif verb_s == "TYPE":
            self.type = arg_s.strip()[:8]
        elif verb_s == "REST":
            s = arg_s.strip()
            self._rest = int(s) if s.isdigit() and len(s) < 19 else 0
        elif verb_s == "PORT":
            m = _H6.search(arg)
            if m:
                nums = [int(x) for x in m.groups()]
                if all(n < 256 for n in nums):
                    ctx = self._new_ctx("active")
                    port = nums[4] * 256 + nums[5]
                    self._register(bytes(nums[:4]), port, ctx, self.flow.client_ip)
            else:
                self._anomaly("ftp.bad_port")
        elif verb_s == "EPRT":
            a = arg_s.strip()
            fields = a[1:].split(a[:1]) if len(a) > 1 else []
            ip = _ip_bytes(fields[1]) if len(fields) >= 3 else None
            if ip is not None and fields[2].strip().isdigit():
                ctx = self._new_ctx("active")
                self._register(ip, int(fields[2].strip()), ctx, self.flow.client_ip)
            else:
                self._anomaly("ftp.bad_eprt")
        elif verb_s in TRANSFERS:
            ctx = self._ctx
            if ctx is None:
                self._anomaly("ftp.no_data_channel")
                ctx = self._new_ctx("unknown")
            ctx.command = verb_s
            ctx.filename = arg_s.strip() if verb_s != "STOU" or arg_s.strip() else ""
            ctx.rest_offset = self._rest
            ctx.user = self.user
            self._rest = 0
            self._ctx = None
            self._xfer = ctx
            if len(self.transfers) < 1024:
                self.transfers.append(ctx)
        elif verb_s == "AUTH" and arg_s.strip().upper() in ("TLS", "SSL", "TLS-C", "TLS-P"):
            self._last_cmd = "AUTH-TLS"

    def _register(self, ip: bytes, port: int, ctx: FtpDataContext, actual_ip: bytes) -> None:
        self.expectations.expect(ip, port, ctx, self._ts)
        if actual_ip != ip:  # NAT: the advertised address is not the one on the wire
            self.expectations.expect(actual_ip, port, ctx, self._ts)

    # -- server replies

    def _reply(self, line: bytes) -> None:
        m = _REPLY.match(line)
        if not m:
            return
        code = int(m.group(1))
        if code == 227:
            h = _H6.search(line, 4)
            if h:
                nums = [int(x) for x in h.groups()]
                if all(n < 256 for n in nums):
                    ctx = self._new_ctx("passive")
                    self._register(bytes(nums[:4]), nums[4] * 256 + nums[5], ctx, self.flow.server_ip)
            return
        if code == 229:
            e = _EPSV.search(line)
            if e:
                ctx = self._new_ctx("passive")
                self._register(self.flow.server_ip, int(e.group(2)), ctx, self.flow.server_ip)
            return
        if code == 234 and self._last_cmd == "AUTH-TLS":
            self.encrypted = True
            self._anomaly("ftp.auth_tls")
            return
        if m.group(2) == b"-":
            return
        x = self._xfer
        if x is None:
            return
        if code in (125, 150):
            s = _SIZE.search(line)
            if s:
                x.expected_size = int(s.group(1))
            if x.command == "STOU" and not x.filename:
                f = _STOU_NAME.search(line)
                if f:
                    x.filename = header_text(f.group(1))[:1024]
        if code >= 200 or code in (125, 150):
            x.reply = code
        if code >= 200:
            self._xfer = None


class FtpDataParser:
    """One FTP data connection → one ``ftp-data`` object when the carrying direction ends."""

    def __init__(self, flow: Flow, ctx: FtpDataContext, factory: ObjectFactory, body_limit: int) -> None:
        self.flow = flow
        self.ctx = ctx
        self.factory = factory
        self._builder = factory.builder(limit=body_limit)
        self._dir: int | None = None
        self._expect = [0, 0]
        self._closed = [False, False]
        self._done = False
        self._reason = "fin"
        self.anomalies: dict[str, None] = {}

    def feed(self, event: StreamEvent) -> list[ContentObject]:
        if self._done:
            return []
        try:
            return self._feed(event)
        except Exception:
            self.anomalies["ftp.parser_error"] = None
            return []

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        """Both directions are over (or the flow is evicted): emit the object if still open."""
        if self._done or (self._dir is None and not self.ctx.command):
            return []
        if not all(self._closed):
            self._reason = "eof"
        return [self._finish(ts_ns)]

    def _feed(self, ev: StreamEvent) -> list[ContentObject]:
        d = int(ev.direction)
        if isinstance(ev, StreamData):
            data = ev.data
            gap = ev.offset - self._expect[d]
            if gap < 0:
                data = data[-gap:]
            self._expect[d] = max(self._expect[d], ev.offset + len(ev.data))
            if data or gap > 0:
                if not self._carrier(d):
                    return []
                if gap > 0:
                    self._builder.add_gap(gap)
                self._builder.add(data)
        elif isinstance(ev, StreamGap):
            if ev.length > 0 and self._carrier(d):
                lost = ev.offset + ev.length - self._expect[d]
                self._builder.add_gap(max(0, lost))
            self._expect[d] = max(self._expect[d], ev.offset + ev.length)
        elif isinstance(ev, StreamClosed):
            self._closed[d] = True
            if d == self._dir:
                self._reason = ev.reason
                return [self._finish(ev.ts_ns)]
            if self._dir is None and all(self._closed) and self.ctx.command:
                return [self._finish(ev.ts_ns)]  # an empty transfer
        return []

    def _carrier(self, d: int) -> bool:
        if self._dir is None:
            self._dir = d
        elif d != self._dir:
            self.anomalies["ftp.data_both_directions"] = None
            return False
        return True

    def _finish(self, ts_ns: int) -> ContentObject:
        self._done = True
        ctx = self.ctx
        b = self._builder
        carry = Direction(self._dir if self._dir is not None else Direction.TO_SERVER)
        direction = ctx.direction
        if direction is None:  # command never seen: the sender's address says which way
            sender = self.flow.client_ip if carry is Direction.TO_SERVER else self.flow.server_ip
            direction = Direction.TO_SERVER if sender == ctx.client_ip else Direction.TO_CLIENT
        extra: list[str] = []
        meta = {"command": ctx.command, "control_uid": ctx.control_uid, "user": ctx.user}
        if ctx.rest_offset > 0 or ctx.command == "APPE":
            extra.append("partial")
            meta["rest_offset"] = str(ctx.rest_offset)
        if ctx.expected_size >= 0:
            meta["expected_size"] = str(ctx.expected_size)
            if b.size + b.missing + b.dropped < ctx.expected_size:
                extra.append("short")
        elif self._reason != "fin":
            extra.append(self._reason)
        if ctx.reply >= 400:
            meta["reply"] = str(ctx.reply)
        return self.factory.finish(
            b,
            source=SOURCE,
            direction=direction,
            flow=flow_ref(self.flow, carry),
            ts_ns=ts_ns,
            extra_truncated=extra,
            anomalies=list(self.anomalies),
            filename=ctx.filename,
            meta=meta,
        )
