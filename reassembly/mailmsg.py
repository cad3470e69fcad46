"""One mail message streaming in from a mailbox protocol (IMAP, POP3): its objects.

`MailMessage` takes the raw RFC 5322 bytes of one message in any chunking (already
dot-unstuffed or taken from a counted literal), hashes them as the ``message`` object and runs
them through the MIME parser (`reassembly.mime`, the path SMTP uses): each leaf part becomes a
``part`` object (decoded, ``parent_id`` = the message, its filename and declared type),
emitted as it ends; the message comes last. ``meta`` is the carrier's (command, mailbox,
user…) plus the message's headers (``subject``, ``from``, ``to``, ``message_id``) and, on
parts, ``mime_path``. Memory: one line of at most ``max_line`` bytes plus the MIME caps.

`starts_tls(data)` says whether bytes where a command or a response should be are a TLS
record instead (the capture saw the STARTTLS / STLS answer, or missed it).
"""

from __future__ import annotations

from appliance.model import ContentObject, Direction, FlowRef
from reassembly.mime import MAX_TEXT, MimeParser, PartInfo
from reassembly.objects import ObjectBuilder, ObjectFactory


def starts_tls(data: bytes) -> bool:
    """A TLS handshake record header (a ClientHello or ServerHello) at the start of ``data``."""
    return len(data) >= 3 and data[0] == 0x16 and data[1] == 3 and data[2] <= 4


class MailMessage:
    """The message and part objects of one message (see the module docstring)."""

    def __init__(self, factory: ObjectFactory, *, source: str, direction: Direction, flow: FlowRef, ts_ns: int,
                 body_limit: int, tx_id: int, meta: dict[str, str], max_line: int = 8192) -> None:
        self.factory = factory
        self.source = source
        self.direction = direction
        self.flow = flow
        self.ts_ns = ts_ns
        self.tx_id = tx_id
        self.meta = meta
        self.max_line = max(64, max_line)
        self.body_limit = body_limit
        self.id = factory.new_id()
        self.builder = factory.builder(limit=body_limit)
        self.mime = MimeParser(lambda: factory.builder(limit=body_limit))
        self._lbuf = b""
        self._out: list[ContentObject] = []

    def feed(self, data: bytes) -> list[ContentObject]:
        """More bytes of the message; returns the parts that ended."""
        if not data:
            return []
        self.builder.add(data)
        buf = self._lbuf + data if self._lbuf else data
        last = buf.rfind(b"\n")
        pos = last + 1
        mime = self.mime
        if pos:
            self._parts(mime.feed_block(buf[:pos] if pos < len(buf) else buf))
        n, ml = len(buf), self.max_line
        while n - pos > ml:  # a line longer than max_line goes on in pieces
            self._parts(mime.feed_line(buf[pos:pos + ml], b""))
            pos += ml
        self._lbuf = buf[pos:]
        return self._drain()

    def gap(self, length: int) -> None:
        """``length`` bytes of the message were lost."""
        if length <= 0:
            return
        if self._lbuf:
            self._parts(self.mime.feed_line(self._lbuf, b""))
            self._lbuf = b""
        self.builder.add_gap(length)
        self.mime.gap(length)

    def finish(self, truncated: str = "", *, anomalies: tuple[str, ...] = ()) -> list[ContentObject]:
        """The end of the message: the last parts, then the message itself."""
        if self._lbuf:
            self._parts(self.mime.feed_line(self._lbuf, b""))
            self._lbuf = b""
        self._parts(self.mime.finish(truncated=truncated))
        self._out.append(self.factory.finish(
            self.builder, source=self.source, direction=self.direction, flow=self.flow, ts_ns=self.ts_ns,
            extra_truncated=(truncated,) if truncated else (), anomalies=[*self.mime.anomalies, *anomalies],
            id=self.id, kind="message", tx_id=self.tx_id, declared_mime="message/rfc822", meta=self._meta(),
        ))
        return self._drain()

    def _meta(self) -> dict[str, str]:
        h = self.mime.header
        out = dict(self.meta)
        for key, name in (("subject", "subject"), ("from", "from"), ("to", "to"), ("message_id", "message-id")):
            v = h(name)
            if v:
                out[key] = v[:MAX_TEXT]
        return out

    def _parts(self, finished: list[tuple[ObjectBuilder, PartInfo]]) -> None:
        for b, info in finished:
            meta = self._meta()
            meta["mime_path"] = info.path
            self._out.append(self.factory.finish(
                b, source=self.source, direction=self.direction, flow=self.flow, ts_ns=self.ts_ns, kind="part",
                parent_id=self.id, depth=1, tx_id=self.tx_id, declared_mime=info.content_type,
                filename=info.filename, meta=meta,
            ))

    def _drain(self) -> list[ContentObject]:
        if not self._out:
            return []
        out, self._out = self._out, []
        return out
