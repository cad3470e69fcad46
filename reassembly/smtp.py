"""SMTP (RFC 5321) as a carrier: each mail message, and each MIME leaf part in it, is an object.

`SmtpParser` is sans-IO: the sensor feeds it the `StreamEvent`s of both directions of one flow
in capture order and gets back finished `ContentObject`s. It tracks commands and replies
(PIPELINING: replies are matched to commands in order), DATA (dot-unstuffing, the lone ``.``
line, a DATA that the server refused), BDAT/CHUNKING (length-counted binary chunks, ``LAST``),
RSET, several messages per session, STARTTLS (after the server's 220, the first byte either side
sends decides: a TLS record (0x16) means the rest is encrypted, parsing stops, ``encrypted`` is
set; anything else is SMTP going on in the clear — what a TLS-decrypting broker mirrors —, parsed
on with ``smtp.starttls_cleartext`` and the envelope reset as RFC 3207 requires) and gaps
(the message and the current part get the missing
bytes; after a gap inside a message, a server reply or a command line ends the message).

Objects: the message itself (kind ``message``, the raw RFC 5322 text after dot-unstuffing,
declared ``message/rfc822``) and each leaf part (kind ``part``, decoded, ``parent_id`` = the
message's id, depth 1), emitted as each part ends; the message comes last. Memory per flow is
bounded by ``max_line``, the header caps in `reassembly.mime`, and the factory's keep_bytes.
"""

from __future__ import annotations

import re
from collections import deque

from appliance.model import ContentObject, Direction, Flow, StreamClosed, StreamData, StreamEvent, StreamGap
from reassembly.mime import MAX_TEXT, MimeParser, PartInfo, header_text
from reassembly.objects import ObjectBuilder, ObjectFactory, flow_ref

SOURCE = "smtp"
MAX_PENDING = 512
"""Commands awaiting a reply; beyond it the oldest is dropped (anomaly)."""
MAX_DATA_WAIT = 64 * 1024
"""Client bytes held after DATA until the server's reply says whether a message follows."""
MAX_RCPT = 200
MAX_ANOMALIES = 32

_SMTP_VERBS = frozenset(
    b"EHLO HELO LHLO MAIL RCPT DATA BDAT RSET QUIT NOOP VRFY EXPN HELP STARTTLS AUTH XCLIENT "
    b"XFORWARD ETRN TURN ATRN SEND SOML SAML BURL".split()
)
_REPLY = re.compile(rb"^([2-5][0-9][0-9])([ -]|$)")
_ADDR = re.compile(rb"^\s*(?:FROM|TO)\s*:\s*(<[^>]*>|\S*)", re.IGNORECASE)

_CMD, _DATA, _DATA_WAIT, _BDAT, _SKIP, _TLS = range(6)


def _first_line(data: bytes) -> bytes | None:
    i = data.find(b"\n")
    return data[:i].rstrip(b"\r") if i >= 0 else None


def looks_like_smtp(server_first_bytes: bytes, client_first_bytes: bytes) -> bool | None:
    """Is this SMTP? From the first bytes each side sent; ``None`` = need more bytes.

    The server must greet with ``220`` (or ``421``/``554``) and the client's first command
    must be EHLO/HELO/LHLO (or STARTTLS/QUIT/NOOP right away). An FTP banner also says 220,
    so the client's line decides; a banner that names SMTP decides alone.
    """
    srv = server_first_bytes[:4096]
    cli = client_first_bytes[:4096]
    if srv:
        if len(srv) >= 4 and not _REPLY.match(srv[:4]):
            return False
        if len(srv) >= 3 and srv[:3] not in (b"220", b"421", b"554"):
            return False
    if cli:
        line = _first_line(cli)
        if line is None:
            if len(cli) > 512 or (len(cli) >= 4 and not cli[:4].isalpha()):
                return False
            return None
        verb = line.split(b" ", 1)[0].upper()
        if verb in (b"EHLO", b"HELO", b"LHLO"):
            return True
        if verb in (b"STARTTLS", b"QUIT", b"NOOP", b"MAIL") and srv[:3] == b"220":
            return b"SMTP" in srv.upper() or None
        return False
    banner = _first_line(srv)
    if banner is not None:
        up = banner.upper()
        if b"SMTP" in up or b"POSTFIX" in up or b"EXIM" in up or b"SENDMAIL" in up:
            return True
        if b"FTP" in up:
            return False
    return None


class _Message:
    """One message in flight: the raw builder, the MIME parser, the envelope."""

    __slots__ = ("bdat", "builder", "gap", "id", "index", "lbuf", "meta_env", "mid", "mime", "ts_ns")

    def __init__(self, p: SmtpParser, index: int, ts_ns: int) -> None:
        self.id = p.factory.new_id()
        self.index = index
        self.builder = p.factory.builder(limit=p.body_limit)
        self.mime = MimeParser(lambda: p.factory.builder(limit=p.body_limit))
        self.meta_env = {"mail_from": p.mail_from, "rcpt_to": ",".join(p.rcpts)[:MAX_TEXT * 4],
                         "helo": p.helo}
        self.ts_ns = ts_ns
        self.gap = False
        self.bdat = False
        self.lbuf = b""
        self.mid = False


class SmtpParser:
    """Both directions of one SMTP session → message and part objects."""

    def __init__(self, flow: Flow, factory: ObjectFactory, *, body_limit: int, max_line: int = 8192) -> None:
        self.flow = flow
        self.factory = factory
        self.body_limit = body_limit
        self.max_line = max(64, max_line)
        self._ref = flow_ref(flow, Direction.TO_SERVER)
        self._cbuf = b""
        self._sbuf = b""
        self._cmode = _CMD
        self._smode = _CMD
        self._cmid = False  # the client buffer starts in the middle of a line
        self._expect = [0, 0]
        self._pending: deque[tuple[str, bytes]] = deque()
        self._greeted = False
        self._bdat_left = 0
        self._bdat_last = False
        self._msg: _Message | None = None
        self._ts = 0
        self._out: list[ContentObject] = []
        self.mail_from = ""
        self.rcpts: list[str] = []
        self.helo = ""
        self.messages = 0
        self.encrypted = False
        """Set once STARTTLS succeeded (or TLS bytes showed up): nothing more is parsed."""
        self._tls_pending = False
        """The server said 220 to STARTTLS: the next bytes tell TLS from SMTP in the clear."""
        self.anomalies: dict[str, None] = {}
        """Ordered set of anomaly codes seen on this session (capped)."""
        self.closed = [False, False]

    # ------------------------------------------------------------------ events

    def feed(self, event: StreamEvent) -> list[ContentObject]:
        """Consume one stream event of either direction; return the objects it finished."""
        self._out = []
        try:
            self._feed(event)
        except Exception:  # hostile input must never take the sensor down
            self._anomaly("smtp.parser_error")
            self._cmode = _SKIP
            self._cbuf = b""
            self._sbuf = b""
        out, self._out = self._out, []
        return out

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        """Both directions are over (or the flow is evicted): emit a message still open."""
        self._out = []
        self._ts = max(self._ts, ts_ns)
        try:
            if self._msg is not None and not self.closed[0]:
                self._close(int(Direction.TO_SERVER), "eof")
            elif self._msg is not None:
                self._finish_message(truncated="eof")
        except Exception:
            self._anomaly("smtp.parser_error")
        out, self._out = self._out, []
        return out

    def _feed(self, ev: StreamEvent) -> None:
        self._ts = ev.ts_ns
        d = int(ev.direction)
        if self.encrypted or self.closed[d]:
            return
        if isinstance(ev, StreamData):
            data = ev.data
            if ev.offset > self._expect[d]:
                self._gap(d, ev.offset - self._expect[d])
            elif ev.offset < self._expect[d]:
                data = data[self._expect[d] - ev.offset :]
            self._expect[d] = max(self._expect[d], ev.offset + len(ev.data))
            if data:
                if d == Direction.TO_SERVER:
                    self._client(data)
                else:
                    self._server(data)
        elif isinstance(ev, StreamGap):
            if ev.offset > self._expect[d]:
                self._gap(d, ev.offset - self._expect[d])
            self._gap(d, ev.length)
            self._expect[d] = max(self._expect[d], ev.offset + ev.length)
        elif isinstance(ev, StreamClosed):
            self._close(d, ev.reason)

    def _anomaly(self, code: str) -> None:
        if len(self.anomalies) < MAX_ANOMALIES:
            self.anomalies[code] = None

    # ------------------------------------------------------------------ client side

    def _client(self, data: bytes) -> None:
        if self._tls_pending and self._after_starttls(data):
            return
        buf = self._cbuf + data if self._cbuf else data
        self._cbuf = b""
        pos = 0
        n = len(buf)
        ml = self.max_line
        while pos < n and not self.encrypted:
            mode = self._cmode
            if mode == _DATA_WAIT:
                if n - pos > MAX_DATA_WAIT:
                    self._anomaly("smtp.data_reply_missing")
                    self._start_data()
                    continue
                break
            if mode == _BDAT:
                take = min(self._bdat_left, n - pos)
                if take:
                    self._msg_raw(buf[pos : pos + take])
                    pos += take
                    self._bdat_left -= take
                if self._bdat_left == 0:
                    self._bdat_done()
                continue
            if mode == _DATA:
                msg = self._msg
                if msg is not None and not msg.mid and not msg.gap and buf[pos : pos + 1] != b".":
                    # fast path: every whole line up to the next one that starts with a dot
                    last = buf.rfind(b"\n", pos)
                    if last >= 0:
                        j = buf.find(b"\n.", pos, last + 1)
                        end = j + 1 if j >= 0 else last + 1
                        bulk = buf[pos:end]
                        msg.builder.add(bulk)
                        for b, info in msg.mime.feed_block(bulk):
                            self._part(msg, b, info)
                        pos = end
                        continue
            i = buf.find(b"\n", pos, pos + ml + 1)
            if i < 0:
                if n - pos <= ml:
                    break
                # a line longer than max_line
                if mode == _DATA:
                    end = pos + ml
                    self._data_line(buf[pos:end], b"")
                    pos = end
                else:
                    if mode == _CMD:
                        self._anomaly("smtp.long_line")
                    self._cmode = _SKIP
                    pos = n
                continue
            content = buf[pos:i]
            if content.endswith(b"\r"):
                content, eol = content[:-1], b"\r\n"
            else:
                eol = b"\n"
            pos = i + 1
            if mode == _DATA:
                self._data_line(content, eol)
            elif mode == _SKIP:
                self._cmode = _CMD
                verb = content.split(b" ", 1)[0]
                if self._cmid and verb.upper() in _SMTP_VERBS and verb.isalpha():
                    self._command(content)  # the hole ended on a line boundary
                self._cmid = False
            else:
                self._command(content)
        rest = buf[pos:]
        if rest and not self.encrypted:
            self._cbuf = rest if len(rest) <= max(ml, MAX_DATA_WAIT) + 1 else b""

    def _command(self, line: bytes) -> None:
        if line[:2] == b"\x16\x03":  # a TLS ClientHello: STARTTLS reply not seen
            self._go_encrypted()
            return
        verb, _, arg = line.strip().partition(b" ")
        verb = verb.upper()[:16]
        if not verb:
            return
        if verb not in _SMTP_VERBS:
            self._push("?", b"")
            return
        name = verb.decode("ascii", "replace")
        if verb in (b"EHLO", b"HELO", b"LHLO"):
            self.helo = header_text(arg.strip())[:256]
            self._abort_message("aborted")
            self.mail_from, self.rcpts = "", []
        elif verb == b"MAIL":
            self._abort_message("aborted")
            m = _ADDR.match(arg)
            self.mail_from = header_text(m.group(1).strip(b"<>") if m else arg.strip())[:MAX_TEXT]
            self.rcpts = []
        elif verb == b"RCPT":
            m = _ADDR.match(arg)
            addr = header_text(m.group(1).strip(b"<>") if m else arg.strip())[:MAX_TEXT]
            if len(self.rcpts) < MAX_RCPT:
                self.rcpts.append(addr)
            self._push(name, addr.encode("utf-8", "replace"))
            return
        elif verb == b"DATA":
            self._push(name, b"")
            self._cmode = _DATA_WAIT
            return
        elif verb == b"BDAT":
            self._push(name, b"")
            parts = arg.split()
            if not parts or not parts[0].isdigit() or len(parts[0]) > 15:
                self._anomaly("smtp.bad_bdat")
                return
            self._bdat_left = int(parts[0])
            self._bdat_last = len(parts) > 1 and parts[1].upper() == b"LAST"
            msg = self._msg if self._msg is not None else self._new_message()
            msg.bdat = True
            self._cmode = _BDAT
            if self._bdat_left == 0:
                self._bdat_done()
            return
        elif verb == b"RSET":
            self._abort_message("aborted")
            self.mail_from, self.rcpts = "", []
        self._push(name, b"")

    def _push(self, name: str, arg: bytes) -> None:
        if len(self._pending) >= MAX_PENDING:
            self._pending.popleft()
            self._anomaly("smtp.too_many_pending")
        self._pending.append((name, arg))

    # ------------------------------------------------------------------ messages

    def _new_message(self) -> _Message:
        self.messages += 1
        self._msg = _Message(self, self.messages, self._ts)
        return self._msg

    def _start_data(self) -> None:
        """The server accepted DATA (354), or we assume it did: client bytes are message text."""
        self._cmode = _DATA
        if self._msg is None:
            self._new_message()
        if self._cbuf:
            buf, self._cbuf = self._cbuf, b""
            self._client(buf)

    def _data_line(self, content: bytes, eol: bytes) -> None:
        msg = self._msg
        if msg is None:
            msg = self._new_message()
        if not msg.mid:
            if content == b"." and eol:
                self._finish_message()
                self._push("<EOM>", b"")
                self._cmode = _CMD
                return
            if msg.gap and eol and self._looks_like_command(content):
                self._anomaly("smtp.resync_after_gap")
                self._finish_message()
                self._cmode = _CMD
                self._command(content)
                return
            if content[:1] == b".":
                content = content[1:]
        msg.mid = not eol
        msg.builder.add(content + eol)
        for b, info in msg.mime.feed_line(content, eol):
            self._part(msg, b, info)

    @staticmethod
    def _looks_like_command(line: bytes) -> bool:
        up = line[:10].upper()
        return up.startswith((b"MAIL FROM:", b"RSET", b"QUIT", b"EHLO ", b"HELO "))

    def _msg_raw(self, data: bytes) -> None:
        """BDAT chunk bytes: the message as is (no dot-stuffing), split into lines for MIME."""
        msg = self._msg
        if msg is None:
            return
        msg.builder.add(data)
        buf = msg.lbuf + data if msg.lbuf else data
        last = buf.rfind(b"\n")
        pos = last + 1
        if pos:
            for b, info in msg.mime.feed_block(buf[:pos] if pos < len(buf) else buf):
                self._part(msg, b, info)
        n = len(buf)
        ml = self.max_line
        while pos < n:
            i = buf.find(b"\n", pos, pos + ml + 1)
            if i < 0:
                if n - pos <= ml:
                    break
                end = pos + ml
                for b, info in msg.mime.feed_line(buf[pos:end], b""):
                    self._part(msg, b, info)
                pos = end
                continue
            content = buf[pos:i]
            if content.endswith(b"\r"):
                content, eol = content[:-1], b"\r\n"
            else:
                eol = b"\n"
            pos = i + 1
            for b, info in msg.mime.feed_line(content, eol):
                self._part(msg, b, info)
        msg.lbuf = buf[pos:]

    def _bdat_done(self) -> None:
        self._cmode = _CMD
        if self._bdat_last:
            self._finish_message()
            self._bdat_last = False

    def _flush_lbuf(self, msg: _Message) -> None:
        if msg.lbuf:
            for b, info in msg.mime.feed_line(msg.lbuf, b""):
                self._part(msg, b, info)
            msg.lbuf = b""

    def _abort_message(self, reason: str) -> None:
        if self._msg is not None:
            self._finish_message(truncated=reason)
        if self._cmode in (_BDAT, _DATA, _DATA_WAIT):
            self._cmode = _CMD

    def _meta(self, msg: _Message) -> dict[str, str]:
        h = msg.mime.header
        return {
            **msg.meta_env,
            "subject": h("subject"),
            "from": h("from"),
            "to": h("to"),
            "message_id": h("message-id"),
        }

    def _part(self, msg: _Message, b: ObjectBuilder, info: PartInfo) -> None:
        meta = self._meta(msg)
        meta["mime_path"] = info.path
        self._out.append(
            self.factory.finish(
                b,
                source=SOURCE,
                direction=Direction.TO_SERVER,
                flow=self._ref,
                ts_ns=self._ts,
                kind="part",
                parent_id=msg.id,
                depth=1,
                tx_id=msg.index,
                declared_mime=info.content_type,
                filename=info.filename,
                meta=meta,
            )
        )

    def _finish_message(self, truncated: str = "") -> None:
        msg = self._msg
        if msg is None:
            return
        self._msg = None
        self._flush_lbuf(msg)
        for b, info in msg.mime.finish(truncated=truncated):
            self._part(msg, b, info)
        anomalies = list(msg.mime.anomalies)
        self._out.append(
            self.factory.finish(
                msg.builder,
                source=SOURCE,
                direction=Direction.TO_SERVER,
                flow=self._ref,
                ts_ns=self._ts,
                extra_truncated=(truncated,) if truncated else (),
                anomalies=anomalies,
                id=msg.id,
                kind="message",
                tx_id=msg.index,
                declared_mime="message/rfc822",
                meta=self._meta(msg),
            )
        )
        self.mail_from, self.rcpts = "", []

    # ------------------------------------------------------------------ server side

    def _server(self, data: bytes) -> None:
        if self._tls_pending and self._after_starttls(data):
            return
        buf = self._sbuf + data if self._sbuf else data
        self._sbuf = b""
        pos = 0
        n = len(buf)
        while pos < n and not self.encrypted:
            i = buf.find(b"\n", pos, pos + self.max_line + 1)
            if i < 0:
                if n - pos > self.max_line:
                    self._anomaly("smtp.long_reply")
                    self._smode = _SKIP
                    pos = n
                break
            line = buf[pos:i].rstrip(b"\r")
            line_off = self._expect[1] - n + pos
            pos = i + 1
            if self._smode == _SKIP:
                self._smode = _CMD
                continue
            m = _REPLY.match(line)
            if not m:
                self._anomaly("smtp.bad_reply")
                continue
            if m.group(2) == b"-":
                continue
            self._reply(int(m.group(1)), line_off == 0)
        self._sbuf = buf[pos:] if not self.encrypted else b""

    def _reply(self, code: int, first: bool) -> None:
        if first and not self._greeted and code in (220, 421, 554):
            self._greeted = True
            return
        self._greeted = True
        msg = self._msg
        if self._cmode == _DATA and msg is not None and msg.gap:
            # the server answered while we think the message goes on: its end was lost
            self._anomaly("smtp.resync_after_gap")
            self._finish_message()
            self._cmode = _CMD
            self._pending.clear()
            return
        if not self._pending:
            if code == 354 and self._cmode in (_CMD, _SKIP):
                self._anomaly("smtp.unexpected_354")
                self._start_data()
            return
        name, arg = self._pending.popleft()
        if name == "DATA":
            if code == 354:
                if self._cmode == _DATA_WAIT:
                    self._start_data()
            elif self._cmode == _DATA_WAIT:
                self._cmode = _CMD  # refused: what followed DATA were commands
                if self._cbuf:
                    buf, self._cbuf = self._cbuf, b""
                    self._client(buf)
        elif name == "STARTTLS":
            if code == 220:
                self._tls_pending = True
                self._anomaly("smtp.starttls")
        elif name == "RCPT":
            if code >= 400:
                addr = header_text(arg)
                if addr in self.rcpts:
                    self.rcpts.remove(addr)
        elif name == "BDAT" and code >= 400:
            self._anomaly("smtp.bdat_refused")

    def _after_starttls(self, data: bytes) -> bool:
        """The first bytes after the 220 to STARTTLS: a TLS record (handshake or alert, 0x16 or
        0x15) ends parsing (True); anything else is the session going on in the clear."""
        if not data:
            return False
        self._tls_pending = False
        if data[0] in (0x15, 0x16):
            self._go_encrypted()
            return True
        self._anomaly("smtp.starttls_cleartext")
        self._abort_message("aborted")
        self.mail_from, self.rcpts, self.helo = "", [], ""  # RFC 3207: the session starts over
        self._pending.clear()
        return False

    def _go_encrypted(self) -> None:
        self.encrypted = True
        self._anomaly("smtp.starttls")
        self._abort_message("encrypted")
        self._cbuf = self._sbuf = b""
        self._cmode = _TLS

    # ------------------------------------------------------------------ gaps and ends

    def _gap(self, d: int, length: int) -> None:
        if length <= 0:
            return
        if d == Direction.TO_CLIENT:
            self._anomaly("smtp.gap_server")
            self._sbuf = b""
            self._smode = _SKIP
            self._pending.clear()
            if self._cmode == _DATA_WAIT:
                self._start_data()
            return
        self._anomaly("smtp.gap_client")
        mode = self._cmode
        if mode == _DATA_WAIT:
            self._start_data()
            mode = self._cmode
        if mode == _DATA and self._msg is not None:
            msg = self._msg
            if self._cbuf:  # the bytes before the hole are message text
                self._data_line(self._cbuf, b"")
                self._cbuf = b""
            msg.builder.add_gap(length)
            msg.mime.gap(length)
            msg.gap = True
            msg.mid = True
        elif mode == _BDAT and self._msg is not None:
            msg = self._msg
            take = min(length, self._bdat_left)
            msg.builder.add_gap(take)
            self._flush_lbuf(msg)
            msg.mime.gap(take)
            msg.gap = True
            self._bdat_left -= take
            if length > take:  # the hole runs past the chunk: lost track of commands
                self._finish_message()
                self._cmode = _SKIP
                self._cmid = True
                self._bdat_last = False
                self._pending.clear()
            elif self._bdat_left == 0:
                self._bdat_done()
        else:
            self._cbuf = b""
            self._cmode = _SKIP
            self._cmid = True
            self._pending.clear()

    def _close(self, d: int, reason: str) -> None:
        self.closed[d] = True
        if d == Direction.TO_SERVER:
            if self._cmode == _DATA_WAIT and self._cbuf:
                self._start_data()  # no reply seen before the end: assume the server took it
            msg = self._msg
            if msg is not None and self._cmode == _DATA and self._cbuf:
                self._data_line(self._cbuf, b"")
            self._cbuf = b""
            if msg is not None:
                self._finish_message(truncated="eof")
            self._cmode = _SKIP
