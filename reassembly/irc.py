"""IRC DCC SEND: file transfers offered on an IRC control connection, carried on a second one.

The IRC connection itself is not content; what matters is the CTCP offer
``\\x01DCC SEND <file> <ip> <port> [<size>]\\x01`` in a PRIVMSG. The receiver then connects to
``ip:port`` and the sender streams the file, while the receiver answers with 4-byte
acknowledgements. Offers are registered in the same expected-connection table as FTP data
channels (`reassembly.applayer.expect.Expectations`); the application layer hands the matching
connection to `DccDataParser`, which makes one content object of the file (source ``irc-dcc``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import ClassVar

from appliance.model import ContentObject, Direction, Flow, StreamClosed, StreamData, StreamEvent, StreamGap
from reassembly.applayer.expect import Expectations
from reassembly.objects import ObjectBuilder, ObjectFactory, flow_ref

_DCC_SEND = re.compile(rb'\x01DCC SEND ("[^"\x01]{1,512}"|[^ \x01]{1,512}) (\d{1,39}|[0-9a-fA-F:.]{2,45}) (\d{1,5})'
                       rb'(?: (\d{1,19}))?[^\x01]{0,64}\x01', re.I)
_CLIENT_FIRST = (b"NICK ", b"USER ", b"CAP LS", b"PASS ", b"CAP REQ")
_MAX_LINE = 4096


def looks_like_irc(server_first: bytes, client_first: bytes) -> bool | None:
    """IRC registration from the client (``NICK``/``USER``/``CAP LS``/``PASS``)? None = need more."""
    if not client_first:
        return None
    if client_first.startswith(_CLIENT_FIRST):
        return True
    if len(client_first) < 6 and any(p.startswith(client_first) for p in _CLIENT_FIRST):
        return None
    return False


@dataclass(slots=True)
class DccContext:
    """A DCC SEND offer: what the connection to ``ip:port`` will carry."""

    protocol: ClassVar[str] = "irc-dcc"
    """The table entry that parses the expected connection."""

    control_uid: str
    filename: str
    size: int
    """Announced size (-1 when not given)."""
    sender_is_client: bool
    """Whether the offer came from the IRC connection's client side."""
    data_uid: str = ""
    """Uid of the data connection, once it is seen (set by the expectation table)."""


def _dcc_ip(text: bytes) -> bytes | None:
    try:
        if text.isdigit():
            n = int(text)
            return n.to_bytes(4, "big") if n < 1 << 32 else n.to_bytes(16, "big") if n < 1 << 128 else None
        return ipaddress.ip_address(text.decode("ascii")).packed
    except (ValueError, OverflowError, UnicodeDecodeError):
        return None


class IrcParser:
    """Scans an IRC connection (both directions) for DCC SEND offers; makes no objects itself."""

    def __init__(self, flow: Flow, expectations: Expectations) -> None:
        self.flow = flow
        self.expectations = expectations
        self._buf = [b"", b""]
        self.offers = 0
        self.anomalies: list[str] = []

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        if isinstance(ev, StreamGap):
            self._buf[ev.direction] = b""
            return []
        if not isinstance(ev, StreamData):
            return []
        d = ev.direction
        buf = self._buf[d] + ev.data
        cut = buf.rfind(b"\n")
        lines, rest = (buf[: cut + 1], buf[cut + 1:]) if cut >= 0 else (b"", buf)
        if len(rest) > _MAX_LINE:
            rest = b""
            if "irc.long_line" not in self.anomalies:
                self.anomalies.append("irc.long_line")
        self._buf[d] = rest
        if lines and b"DCC" in lines.upper():
            for m in _DCC_SEND.finditer(lines):
                ip = _dcc_ip(m.group(2))
                port = int(m.group(3))
                if ip is None or not 0 < port < 65536:
                    continue
                name = m.group(1).strip(b'"').decode("utf-8", "replace")
                size = int(m.group(4)) if m.group(4) else -1
                ctx = DccContext(self.flow.uid, name, size, sender_is_client=d is Direction.TO_SERVER)
                self.expectations.expect(ip, port, ctx, ev.ts_ns)  # type: ignore[arg-type]
                self.offers += 1
        return []

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        return []


class DccDataParser:
    """The connection a DCC SEND offer announced: the accepting side streams the file."""

    def __init__(self, flow: Flow, ctx: DccContext, factory: ObjectFactory, body_limit: int) -> None:
        self.flow = flow
        self.ctx = ctx
        self.factory = factory
        self.builders: tuple[ObjectBuilder, ObjectBuilder] = (
            factory.builder(limit=body_limit), factory.builder(limit=body_limit))
        self._done = False

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        b = self.builders[ev.direction]
        if isinstance(ev, StreamData):
            b.add(ev.data)
        elif isinstance(ev, StreamGap):
            b.add_gap(ev.length)
        elif isinstance(ev, StreamClosed):
            pass
        return []

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        if self._done:
            return []
        self._done = True
        # the file is the bigger direction; the other carries the receiver's 4-byte acks
        d = Direction.TO_CLIENT if self.builders[1].size >= self.builders[0].size else Direction.TO_SERVER
        b = self.builders[d]
        if not b.size and not b.missing:
            return []
        extra = []
        if self.ctx.size >= 0 and b.size + b.missing < self.ctx.size:
            extra.append("short")
        # the object's direction is the transfer's as the IRC users saw it: an offer from the
        # IRC client is an upload
        obj_dir = Direction.TO_SERVER if self.ctx.sender_is_client else Direction.TO_CLIENT
        return [self.factory.finish(
            b, source="irc-dcc", direction=obj_dir, flow=flow_ref(flow, d), ts_ns=ts_ns, kind="file",
            extra_truncated=extra, filename=self.ctx.filename,
            meta={"control_uid": self.ctx.control_uid, "announced_size": str(self.ctx.size)},
        )]
