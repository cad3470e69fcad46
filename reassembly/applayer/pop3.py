"""POP3 (RFC 1939, RFC 2449): messages retrieved with RETR / TOP as mail objects.

Commands are matched to responses in order (PIPELINING). A ``+OK`` to RETR, TOP, LIST/UIDL
without argument, CAPA or AUTH's multi-line answers is read up to the lone ``.`` line, dot-
unstuffed; RETR and TOP bodies go through `reassembly.mailmsg.MailMessage` (the MIME path SMTP
uses): a ``message`` object and one ``part`` per MIME leaf, direction TO_CLIENT, ``tx_id`` = the
message's number in the session. TOP gives only the headers and the first lines: the message
is truncated ``partial``. ``meta``: ``pop3_command``, ``pop3_message`` (its number on the
server), ``user``, and the message's headers.

STLS: after its ``+OK`` the next bytes are looked at: a TLS record hands the rest of the flow to
the ``tls`` entry (its handshake metadata is reported), clear text goes on being parsed (a
mirror of a TLS-terminating proxy), flagged ``pop3.stls_cleartext``. A TLS record where a
command should be (the ``+OK`` was not seen) does the same. A gap inside a message marks it
(``missing_bytes``); elsewhere it costs the pending commands (``pop3.gap``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from appliance.model import ContentObject, Direction, Flow, StreamData, StreamEvent, StreamGap
from reassembly.applayer.base import AppProtocol, Limits, ParserContext
from reassembly.mailmsg import MailMessage, starts_tls
from reassembly.objects import flow_ref

_NONE: list[ContentObject] = []
_VERBS = frozenset(b"USER PASS APOP STAT LIST RETR DELE NOOP RSET QUIT TOP UIDL CAPA STLS AUTH UTF8 LANG".split())
_MULTI = frozenset(("RETR", "TOP", "CAPA"))
"""Commands whose +OK is always multi-line (LIST and UIDL only without an argument)."""
MAX_PENDING = 256


@dataclass(frozen=True, slots=True)
class Pop3Limits(Limits):
    max_line: int = 8192
    """Longest command or response line; a longer message line is fed on in pieces."""


def probe(client: bytes, server: bytes, flow: Flow) -> bool | None:
    """A ``+OK`` greeting, or a POP3 command from the client when the greeting is not seen."""
    if server:
        if len(server) < 3:
            return None if b"+OK".startswith(server) else False
        return bool(server.startswith(b"+OK"))
    if client:
        line = client.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
        verb = line.split(b" ", 1)[0].upper()
        if len(line) < len(client) and verb in (b"USER", b"APOP", b"CAPA", b"STLS", b"RETR", b"UIDL"):
            return None  # a POP3-looking command: let the server's answer decide
        return False if len(line) < len(client) or len(client) > 64 else None
    return None


class Pop3Parser:
    """Both directions of one POP3 session → retrieved messages."""

    def __init__(self, flow: Flow, ctx: ParserContext) -> None:
        self.flow = flow
        self.ctx = ctx
        self.max_line = max(64, int(ctx.limits.max_line))
        self.body_limit = ctx.limits.body_limit
        self.cbuf = b""
        self.sbuf = b""
        self.pending: deque[tuple[str, bytes]] = deque()
        self.greeted = False
        self.multi: str | None = None
        """The command whose multi-line answer is being read."""
        self.msg: MailMessage | None = None
        self.user = ""
        self.count = 0
        self.stls = False
        """STLS was accepted: the next bytes decide (TLS or clear text)."""
        self.at = [0, 0]
        """Stream offset of the first byte of each direction's buffer."""
        self.midline = False
        self.anomalies: list[str] = []
        self.out: list[ContentObject] = []
        self.ts_ns = 0
        self.done = False

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        if self.done:
            return _NONE
        self.ts_ns = ev.ts_ns
        d = ev.direction
        if type(ev) is StreamData:
            if d == Direction.TO_SERVER:
                if not self.cbuf:
                    self.at[0] = ev.offset
                self.cbuf += ev.data
                self._client()
            else:
                if not self.sbuf:
                    self.at[1] = ev.offset
                self.sbuf += ev.data
                self._server()
        elif type(ev) is StreamGap:
            self._gap(d, ev.length)
        elif d == Direction.TO_CLIENT and self.msg is not None:
            self._finish_msg("eof")
        if self.done:
            return self._handoff()
        out, self.out = self.out, []
        return out

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        self.ts_ns = ts_ns or self.ts_ns
        if self.msg is not None:
            self._finish_msg("eof")
        out, self.out = self.out, []
        return out

    # -- client ---------------------------------------------------------------------------------------
    def _client(self) -> None:
        if starts_tls(self.cbuf):  # a command never starts so: TLS, after STLS or without it
            self._tls()
            return
        if self.stls:
            self.stls = False
            self._anomaly("pop3.stls_cleartext")
        buf, pos = self.cbuf, 0
        while True:
            i = buf.find(b"\n", pos)
            if i < 0:
                if len(buf) - pos > self.max_line:
                    self._anomaly("pop3.long_line")
                    pos = len(buf)
                break
            line = buf[pos:i].rstrip(b"\r")
            pos = i + 1
            verb, _, arg = line.partition(b" ")
            name = verb.upper()
            if name in _VERBS:
                if len(self.pending) >= MAX_PENDING:
                    self.pending.popleft()
                    self._anomaly("pop3.too_many_pending")
                self.pending.append((name.decode(), arg.strip()))
                if name == b"USER":
                    self.user = arg.strip().decode("latin-1")[:256]
        self.at[0] += pos
        self.cbuf = buf[pos:]

    # -- server ---------------------------------------------------------------------------------------
    def _server(self) -> None:
        if self.msg is not None or self.multi is not None:
            self._multiline()
        buf = self.sbuf
        pos = 0
        while not self.done and self.multi is None:
            i = buf.find(b"\n", pos)
            if i < 0:
                if len(buf) - pos > self.max_line:
                    self._anomaly("pop3.long_line")
                    pos = len(buf)
                break
            line = buf[pos:i].rstrip(b"\r")
            pos = i + 1
            self._response(line)
            if self.multi is not None:
                self.at[1] += pos
                self.sbuf = buf[pos:]
                self._multiline()
                if self.multi is None:
                    self._server()
                return
        self.at[1] += pos
        self.sbuf = buf[pos:]

    def _response(self, line: bytes) -> None:
        ok = line.startswith(b"+OK")
        if not self.greeted:
            self.greeted = True
            if ok or line.startswith(b"-ERR"):
                return
        if line.startswith(b"+ ") or line == b"+":  # an AUTH challenge: the command goes on
            return
        if not (ok or line.startswith(b"-ERR")):
            self._anomaly("pop3.bad_response")
            return
        if not self.pending:
            self._anomaly("pop3.unexpected_response")
            return
        name, arg = self.pending.popleft()
        if not ok:
            return
        if name == "STLS":
            self.stls = True
            if self.cbuf:
                self._client()
            return
        if name in _MULTI or (name in ("LIST", "UIDL") and not arg):
            self.multi = name
            if name in ("RETR", "TOP"):
                self.count += 1
                meta = {"pop3_command": name, "pop3_message": arg.split(b" ", 1)[0].decode("latin-1")[:32]}
                if self.user:
                    meta["user"] = self.user
                self.msg = MailMessage(self.ctx.factory, source="pop3", direction=Direction.TO_CLIENT,
                                       flow=flow_ref(self.flow, Direction.TO_CLIENT), ts_ns=self.ts_ns,
                                       body_limit=self.body_limit, tx_id=self.count, meta=meta,
                                       max_line=self.max_line)

    def _multiline(self) -> None:
        """The lines of a multi-line answer up to the lone ``.``; message lines are dot-unstuffed."""
        buf, pos = self.sbuf, 0
        n = len(buf)
        while pos < n:
            i = buf.find(b"\n", pos)
            if self.midline:  # the rest of a line fed on in pieces
                end = n if i < 0 else i + 1
                self._msg_bytes(buf[pos:end])
                pos = end
                self.midline = i < 0
                continue
            if i < 0:
                if n - pos > self.max_line:  # a long line: on in pieces
                    self._msg_bytes(buf[pos + 1 if buf[pos:pos + 1] == b"." else pos:])
                    pos = n
                    self.midline = True
                break
            if buf[pos:pos + 1] != b".":  # the common case: a run of lines none of which starts with "."
                j = buf.find(b"\n.", pos)
                end = buf.rfind(b"\n", pos, n if j < 0 else j + 1) + 1
                self._msg_bytes(buf[pos:end])
                pos = end
                continue
            line = buf[pos:i + 1]
            pos = i + 1
            if line.rstrip(b"\r\n") == b".":
                self.multi = None
                msg = self.msg
                if msg is not None:
                    self._finish_msg("partial" if msg.meta.get("pop3_command") == "TOP" else "")
                break
            self._msg_bytes(line[1:])
        self.at[1] += pos
        self.sbuf = buf[pos:]

    def _msg_bytes(self, data: bytes) -> None:
        if self.msg is not None:
            self.out.extend(self.msg.feed(data))

    def _finish_msg(self, truncated: str) -> None:
        msg, self.msg = self.msg, None
        if msg is not None:
            self.out.extend(msg.finish(truncated, anomalies=tuple(self.anomalies)))

    # -- STLS, gaps -----------------------------------------------------------------------------------
    def _tls(self) -> None:
        self.done = True

    def _handoff(self) -> list[ContentObject]:
        out, self.out = self.out, []
        if not self.stls:
            self._anomaly("pop3.tls_without_stls")
        replay = (self.cbuf, self.sbuf)
        self.cbuf = self.sbuf = b""
        out.extend(self.ctx.handoff((self.at[0], self.at[1]), self.ts_ns, protocol="tls", replay=replay))
        return out

    def _gap(self, d: int, length: int) -> None:
        if length <= 0:
            return
        if d == Direction.TO_CLIENT and self.msg is not None:
            if self.sbuf:
                self._msg_bytes(self.sbuf)
                self.sbuf = b""
            self.msg.gap(length)
            return
        self._anomaly("pop3.gap")
        if d == Direction.TO_SERVER:
            self.cbuf = b""
        else:
            self.sbuf = b""
            self.multi = None
        self.pending.clear()

    def _anomaly(self, code: str) -> None:
        if code not in self.anomalies and len(self.anomalies) < 16:
            self.anomalies.append(code)
            if code not in self.flow.anomalies:
                self.flow.anomalies.append(code)


def parser(flow: Flow, ctx: ParserContext) -> Pop3Parser:
    return Pop3Parser(flow, ctx)


POP3 = AppProtocol("pop3", parser, probe=probe, ports=frozenset({110}), limits=Pop3Limits())
