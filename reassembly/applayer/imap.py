"""IMAP4rev1/rev2: messages fetched (FETCH) and uploaded (APPEND) as mail objects.

Both directions are read as lines and counted literals (``{n}``, ``{n+}``/``{n-}``
non-synchronizing, ``~{n}`` literal8): a literal is never buffered, it streams into its object.
The server's FETCH items decide what a literal is: ``BODY[]`` (``BODY.PEEK[]`` is answered as
``BODY[]``) and ``RFC822`` are whole messages, parsed with `reassembly.mailmsg.MailMessage`
(the MIME path SMTP uses: a ``message`` object and one ``part`` per MIME leaf); ``BODY[n…]``
and ``BINARY[n…]`` sections are single parts (a base64-only section is decoded); a partial
fetch (``BODY[]<start>``) is truncated ``partial``. Headers-only and text-only items are not
objects. The client's APPEND literals are uploaded messages. Tagged and untagged responses and
pipelined commands need no matching: the server's items name themselves.

Objects: ``source="imap"``, direction TO_CLIENT for FETCH, TO_SERVER for APPEND, ``tx_id`` =
the literal's number in the session; ``meta``: ``imap_command`` (FETCH, APPEND), ``imap_item``
(``BODY[]``, ``RFC822``, ``BODY[2]``…), ``imap_mailbox`` (selected, or APPEND's target),
``imap_uid``, ``user`` (LOGIN), and the message's headers.

STARTTLS: after its tagged OK the next bytes are looked at: a TLS record hands the rest of the
flow to the ``tls`` entry, clear text goes on being parsed (``imap.starttls_cleartext``). A TLS
record where a command should be does the same. COMPRESS=DEFLATE accepted ends parsing
(``imap.compressed``). A gap inside a literal marks its object; elsewhere the direction
resynchronises on the next line (``imap.gap``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.model import ContentObject, Direction, Flow, StreamData, StreamEvent, StreamGap
from reassembly.applayer.base import AppProtocol, Limits, ParserContext
from reassembly.mailmsg import MailMessage, starts_tls
from reassembly.mime import Base64Decoder
from reassembly.objects import ObjectBuilder, flow_ref

_NONE: list[ContentObject] = []
_LITERAL = re.compile(rb"~?\{(\d{1,12})[+-]?\}$")
_ITEM = re.compile(rb"(BODY\[[^\]]*\](?:<(\d+)>)?|BINARY\[[^\]]*\](?:<(\d+)>)?|RFC822(?:\.HEADER|\.TEXT)?)"
                   rb"\s*~?\{\d+[+-]?\}$", re.I)
_UID = re.compile(rb"\bUID (\d{1,10})\b", re.I)
_TAIL = 96
"""Bytes of an over-long line kept: the literal marker at its end must still be seen."""
_B64_ONLY = re.compile(rb"[A-Za-z0-9+/=\r\n]+")
_SNIFF = 256
_COMMANDS = frozenset(b"CAPABILITY NOOP LOGOUT STARTTLS AUTHENTICATE LOGIN SELECT EXAMINE CREATE DELETE RENAME "
                      b"SUBSCRIBE UNSUBSCRIBE LIST LSUB STATUS APPEND CHECK CLOSE EXPUNGE SEARCH FETCH STORE COPY "
                      b"MOVE UID IDLE ENABLE ID NAMESPACE COMPRESS UNSELECT GETQUOTA GETQUOTAROOT".split())


@dataclass(frozen=True, slots=True)
class ImapLimits(Limits):
    max_line: int = 16384
    """Longest command or response line kept (the end of a longer one is still read)."""


def probe(client: bytes, server: bytes, flow: Flow) -> bool | None:
    """An untagged ``* OK`` / ``* PREAUTH`` greeting, or a tagged IMAP command when the
    greeting is not seen."""
    if server:
        head = server[:10].upper()
        for g in (b"* OK", b"* PREAUTH", b"* BYE"):
            if head.startswith(g):
                return True
            if g.startswith(head):
                return None
        return False
    if client:
        line = client.split(b"\n", 1)[0].rstrip(b"\r")
        parts = line.split(b" ", 2)
        if len(parts) >= 2 and parts[1].upper() in _COMMANDS and parts[0].isalnum():
            return True if len(line) < len(client) else None
        return False if b"\n" in client or len(client) > 64 else None
    return None


class _Side:
    """Line and literal reading of one direction."""

    __slots__ = ("at", "buf", "left", "long", "obj")

    def __init__(self) -> None:
        self.buf = b""
        self.at = 0
        """Stream offset of ``buf``'s first byte."""
        self.left = 0
        """Literal bytes still to come."""
        self.obj: _Literal | None = None
        self.long = False
        """Inside a line longer than max_line (its middle is dropped)."""


class _Literal:
    """Where one literal's bytes go: a message, or a part (maybe base64, decided on its start)."""

    __slots__ = ("builder", "decoder", "held", "message", "meta", "partial", "ts_ns")

    def __init__(self, message: MailMessage | None, builder: ObjectBuilder | None, meta: dict[str, str],
                 partial: bool, ts_ns: int) -> None:
        self.message = message
        self.builder = builder
        self.meta = meta
        self.partial = partial
        self.ts_ns = ts_ns
        self.held: bytearray | None = bytearray() if builder is not None else None
        """A part's first bytes, until they say whether it is base64."""
        self.decoder: Base64Decoder | None = None

    def add(self, data: bytes) -> None:
        """Part bytes: base64 is decoded when the part's first ``_SNIFF`` bytes are all base64."""
        b = self.builder
        assert b is not None
        if self.held is not None:
            self.held += data
            if len(self.held) < _SNIFF:
                return
            self.decide()
            return
        b.add(self.decoder.feed(data) if self.decoder is not None else data)

    def decide(self) -> None:
        held, self.held = bytes(self.held or b""), None
        if held and _B64_ONLY.fullmatch(held[:_SNIFF]):
            self.decoder = Base64Decoder()
            self.meta["imap_decoded"] = "base64"
        if held:
            self.add(held)

    def finish(self) -> None:
        if self.held is not None:
            self.decide()
        if self.decoder is not None and self.builder is not None:
            self.builder.add(self.decoder.finish())


class ImapParser:
    """Both directions of one IMAP session → fetched and appended messages."""

    def __init__(self, flow: Flow, ctx: ParserContext) -> None:
        self.flow = flow
        self.ctx = ctx
        self.max_line = max(256, int(ctx.limits.max_line))
        self.body_limit = ctx.limits.body_limit
        self.sides = (_Side(), _Side())
        self.tags: dict[bytes, bytes] = {}
        """Tags of commands awaiting their completion → the command (STARTTLS, COMPRESS, SELECT…)."""
        self.mailbox = ""
        self.pending_mailbox = ""
        self.user = ""
        self.append_mailbox = ""
        self.cmd_cont: bytes | None = None
        """The verb of a command that goes on after a literal (APPEND's next message, say)."""
        self.count = 0
        self.starttls = False
        self.done = False
        self.handoff = False
        self.anomalies: list[str] = []
        self.out: list[ContentObject] = []
        self.ts_ns = 0

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        if self.done:
            return _NONE
        self.ts_ns = ev.ts_ns
        d = ev.direction
        side = self.sides[d]
        if type(ev) is StreamData:
            if not side.buf:
                side.at = ev.offset
            side.buf += ev.data
            self._read(d, side)
        elif type(ev) is StreamGap:
            self._gap(d, side, ev.length)
        elif side.obj is not None:
            self._end_literal(side, "eof")
        if self.handoff:
            return self._to_tls()
        out, self.out = self.out, []
        return out

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        self.ts_ns = ts_ns or self.ts_ns
        for side in self.sides:
            if side.obj is not None:
                self._end_literal(side, "eof")
        out, self.out = self.out, []
        return out

    # -- lines and literals ---------------------------------------------------------------------------
    def _read(self, d: int, side: _Side) -> None:
        buf, pos = side.buf, 0
        n = len(buf)
        while pos < n and not self.done:
            if side.left:
                take = min(side.left, n - pos)
                self._literal_bytes(side, buf[pos:pos + take])
                side.left -= take
                pos += take
                if not side.left:
                    self._end_literal(side, "")
                continue
            if d == Direction.TO_SERVER and starts_tls(buf[pos:pos + 3]):  # a command never starts so
                self._tls_seen(d, side, pos)
                return
            i = buf.find(b"\n", pos)
            if i < 0:
                if n - pos > self.max_line:
                    side.long = True  # keep only the tail, where a literal marker would be
                    pos = n - _TAIL
                break
            line = buf[pos:i].rstrip(b"\r")
            pos = i + 1
            was_long, side.long = side.long, False
            if d == Direction.TO_SERVER:
                self._command(side, line, was_long)
            else:
                self._response(side, line)
        side.at += pos
        side.buf = buf[pos:]

    def _literal_size(self, line: bytes) -> int | None:
        m = _LITERAL.search(line)
        return int(m.group(1)) if m else None

    def _command(self, side: _Side, line: bytes, was_long: bool) -> None:
        if self.starttls:
            self.starttls = False
            self._anomaly("imap.starttls_cleartext")
        size = self._literal_size(line)
        verb = self.cmd_cont
        if verb is None and not was_long:  # a new command (not the rest of one after a literal)
            parts = line.split(b" ", 3)
            tag, verb = parts[0], parts[1].upper() if len(parts) > 1 else b""
            rest = b" ".join(parts[2:])
            if verb == b"UID" and len(parts) > 2:
                verb = parts[2].upper()
            if verb in (b"STARTTLS", b"COMPRESS", b"SELECT", b"EXAMINE") and len(self.tags) < 64:
                self.tags[tag] = verb
                if verb in (b"SELECT", b"EXAMINE"):
                    self.pending_mailbox = _astring(rest)
            elif verb == b"LOGIN" and rest and not rest.startswith(b"{"):
                self.user = _astring(rest)
            elif verb == b"APPEND":
                self.append_mailbox = _astring(rest)
        self.cmd_cont = verb if size is not None else None
        if size is None:
            return
        meta = {"imap_command": "APPEND", "imap_mailbox": self.append_mailbox} if verb == b"APPEND" else None
        self._start_literal(side, size, meta, Direction.TO_SERVER, part=False, partial=False)

    def _response(self, side: _Side, line: bytes) -> None:
        size = self._literal_size(line)
        if size is not None:
            m = _ITEM.search(line)
            item = m.group(1).upper() if m else b""
            whole = item in (b"BODY[]", b"RFC822") or (item.startswith(b"BODY[]<") or item.startswith(b"BINARY[]"))
            part = not whole and (item.startswith(b"BODY[") or item.startswith(b"BINARY[")) and not any(
                k in item for k in (b"HEADER", b"TEXT", b"MIME"))
            meta = None
            if whole or part:
                meta = {"imap_command": "FETCH", "imap_item": item.decode("latin-1")[:64]}
                if self.mailbox:
                    meta["imap_mailbox"] = self.mailbox
                uid = _UID.search(line)
                if uid:
                    meta["imap_uid"] = uid.group(1).decode()
            partial = bool(m and (m.group(2) or m.group(3)))
            self._start_literal(side, size, meta, Direction.TO_CLIENT, part=part, partial=partial,
                                binary=item.startswith(b"BINARY["))
            return
        parts = line.split(b" ", 2)
        if len(parts) < 2 or parts[0] in (b"*", b"+"):
            return
        cmd = self.tags.pop(parts[0], None)
        if cmd is None or parts[1].upper() != b"OK":
            return
        if cmd == b"STARTTLS":
            self.starttls = True
            client = self.sides[0]
            if client.buf and not client.left:
                self._read(0, client)
        elif cmd == b"COMPRESS":
            self._anomaly("imap.compressed")
            self.done = True
        else:
            self.mailbox = self.pending_mailbox

    def _start_literal(self, side: _Side, size: int, meta: dict[str, str] | None, direction: Direction, *,
                       part: bool, partial: bool, binary: bool = False) -> None:
        side.left = size
        side.obj = None
        if meta is None or size == 0:
            return
        self.count += 1
        if self.user:
            meta["user"] = self.user
        if partial:
            meta["imap_partial"] = "1"
        ref = flow_ref(self.flow, direction)
        if part:
            b = self.ctx.factory.builder(limit=self.body_limit)
            side.obj = _Literal(None, b, meta, partial, self.ts_ns)
            if binary:  # BINARY[] sections come decoded
                side.obj.held = None
            return
        msg = MailMessage(self.ctx.factory, source="imap", direction=direction, flow=ref, ts_ns=self.ts_ns,
                          body_limit=self.body_limit, tx_id=self.count, meta=meta, max_line=self.max_line)
        side.obj = _Literal(msg, None, meta, partial, self.ts_ns)

    def _literal_bytes(self, side: _Side, data: bytes) -> None:
        lit = side.obj
        if lit is None:
            return
        if lit.message is not None:
            self.out.extend(lit.message.feed(data))
        elif lit.builder is not None:
            lit.add(data)

    def _end_literal(self, side: _Side, truncated: str) -> None:
        lit, side.obj = side.obj, None
        side.left = 0
        if lit is None:
            return
        reason = truncated or ("partial" if lit.partial else "")
        if lit.message is not None:
            self.out.extend(lit.message.finish(reason, anomalies=tuple(self.anomalies)))
            return
        if lit.builder is None:
            return
        lit.finish()
        direction = Direction.TO_CLIENT
        self.out.append(self.ctx.factory.finish(
            lit.builder, source="imap", direction=direction, flow=flow_ref(self.flow, direction), ts_ns=lit.ts_ns,
            extra_truncated=(reason,) if reason else (), anomalies=list(self.anomalies), kind="part",
            tx_id=self.count, meta=lit.meta,
        ))

    # -- STARTTLS, gaps ---------------------------------------------------------------------------------
    def _tls_seen(self, d: int, side: _Side, pos: int) -> None:
        if not self.starttls:
            self._anomaly("imap.tls_without_starttls")
        side.at += pos
        side.buf = side.buf[pos:]
        self.done = self.handoff = True

    def _to_tls(self) -> list[ContentObject]:
        out, self.out = self.out, []
        c, s = self.sides
        replay = (c.buf, s.buf)
        c.buf = s.buf = b""
        out.extend(self.ctx.handoff((c.at, s.at), self.ts_ns, protocol="tls", replay=replay))
        return out

    def _gap(self, d: int, side: _Side, length: int) -> None:
        if length <= 0:
            return
        if side.left and length <= side.left and not side.buf:
            lit = side.obj  # inside a literal: its object misses bytes, the counting goes on
            if lit is not None:
                if lit.message is not None:
                    lit.message.gap(length)
                elif lit.builder is not None:
                    if lit.held is not None:
                        lit.decide()
                    lit.builder.add_gap(length)
            side.left -= length
            if not side.left:
                self._end_literal(side, "")
            return
        self._anomaly("imap.gap")
        if side.obj is not None:
            if side.obj.message is not None:
                side.obj.message.gap(length)
            elif side.obj.builder is not None:
                side.obj.builder.add_gap(length)
            self._end_literal(side, "gap")
        side.buf = b""
        side.long = True  # the partial line after the hole is not a command or a response

    def _anomaly(self, code: str) -> None:
        if code not in self.anomalies and len(self.anomalies) < 16:
            self.anomalies.append(code)
            if code not in self.flow.anomalies:
                self.flow.anomalies.append(code)


def _astring(raw: bytes) -> str:
    """An IMAP astring at the start of ``raw``: quoted (with escapes) or an atom."""
    raw = raw.strip()
    if raw.startswith(b'"'):
        out, i = bytearray(), 1
        while i < len(raw) and raw[i:i + 1] != b'"':
            if raw[i:i + 1] == b"\\" and i + 1 < len(raw):
                i += 1
            out += raw[i:i + 1]
            i += 1
        return out.decode("utf-8", "replace")[:256]
    return raw.split(b" ", 1)[0].decode("utf-8", "replace")[:256]


def parser(flow: Flow, ctx: ParserContext) -> ImapParser:
    return ImapParser(flow, ctx)


IMAP = AppProtocol("imap", parser, probe=probe, ports=frozenset({143}), limits=ImapLimits())
