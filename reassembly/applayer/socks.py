"""SOCKS4, SOCKS4a and SOCKS5 (RFC 1928, RFC 1929): the handshake, then the proxied stream.

The parser follows both directions of the handshake — SOCKS5 method negotiation (no
authentication, or the username/password sub-negotiation of RFC 1929), the request (CONNECT,
BIND with its second reply; UDP ASSOCIATE carries nothing on this stream) with an IPv4, IPv6
or domain-name target; SOCKS4 requests and SOCKS4a's host name — and, once the proxy grants
it, hands the rest of the stream to detection (`ParserContext.handoff`): whatever the tunnel
carries (HTTP, TLS, SMTP…) is parsed by its own entry, and its objects carry the target in
``meta["connect_host"]`` (``host:port``, as for HTTP CONNECT) and in ``host``.

A client may send its request (and the first tunnel bytes) before the proxy answers; those
bytes are held (up to `MAX_HELD` per direction) and replayed. A refused or unparsable
handshake, a method tapsift cannot follow (GSSAPI wraps the rest), or a gap ends parsing: the
rest of the stream is not looked into. Each handshake is reported as a ``socks`` event
(version, command, target, authentication method, user name — never the password —, status).
"""

from __future__ import annotations

import ipaddress

from appliance.model import ContentObject, Direction, Flow, StreamClosed, StreamData, StreamEvent
from reassembly.applayer.base import AppProtocol, Limits, ParserContext

MAX_HELD = 64 * 1024
"""Bytes held per direction until the handshake completes (then: not SOCKS after all)."""

_NONE: list[ContentObject] = []
_COMMANDS = {1: "connect", 2: "bind", 3: "udp_associate"}
_METHODS = {0: "none", 1: "gssapi", 2: "username_password", 0xFF: "no_acceptable"}
_SOCKS4_STATUS = {90: "granted", 91: "rejected", 92: "no_identd", 93: "identd_mismatch"}
_SOCKS5_STATUS = {0: "granted", 1: "failure", 2: "not_allowed", 3: "network_unreachable", 4: "host_unreachable",
                  5: "refused", 6: "ttl_expired", 7: "command_not_supported", 8: "address_not_supported"}


def _printable(b: bytes) -> bool:
    return all(0x20 <= c < 0x7F for c in b)


def _cstring(data: bytes, at: int, limit: int = 256) -> int | None:
    """Index of the NUL ending the string at ``at`` (-1: too long or not printable; None: need more)."""
    end = data.find(b"\0", at, at + limit)
    if end < 0:
        return -1 if len(data) - at >= limit or not _printable(data[at:]) else None
    return end if _printable(data[at:end]) else -1


def _socks4_request(data: bytes) -> tuple[int, int, str] | int | None:
    """(request length, command, target) of a SOCKS4/4a request; -1 not one; None need more."""
    if len(data) < 9:
        return None if len(data) < 2 or data[1] in (1, 2) else -1
    if data[1] not in (1, 2):
        return -1
    port = int.from_bytes(data[2:4], "big")
    end = _cstring(data, 8)
    if end is None or end < 0:
        return end
    ip = data[4:8]
    if ip[:3] == b"\0\0\0" and ip[3]:  # SOCKS4a: the host name follows the user id
        hend = _cstring(data, end + 1)
        if hend is None or hend < 0:
            return hend
        return hend + 1, data[1], f"{data[end + 1:hend].decode('ascii')}:{port}"
    return end + 1, data[1], f"{ipaddress.IPv4Address(ip)}:{port}"


def _socks5_address(data: bytes, at: int) -> tuple[int, str] | int | None:
    """(end, ``host:port``) of the ATYP/address/port at ``at``; -1 malformed; None need more."""
    if len(data) <= at:
        return None
    atyp = data[at]
    if atyp == 1:
        end = at + 1 + 4
        host = str(ipaddress.IPv4Address(data[at + 1:end])) if len(data) >= end else ""
    elif atyp == 4:
        end = at + 1 + 16
        host = f"[{ipaddress.IPv6Address(data[at + 1:end])}]" if len(data) >= end else ""
    elif atyp == 3:
        if len(data) <= at + 1:
            return None
        end = at + 2 + data[at + 1]
        host = data[at + 2:end].decode("latin-1")
    else:
        return -1
    if len(data) < end + 2:
        return None
    return end + 2, f"{host}:{int.from_bytes(data[end:end + 2], 'big')}"


def _socks5_greeting(data: bytes) -> int | None:
    """Length of a SOCKS5 method-selection message; -1 not one; None need more."""
    if len(data) < 2:
        return None
    n = data[1]
    if n == 0:
        return -1
    if len(data) < 2 + n:
        return None
    methods = data[2:2 + n]
    if any(9 < m < 0x80 or m == 0xFF for m in methods) or len(set(methods)) != n:
        return -1
    return 2 + n


def probe(client: bytes, server: bytes, flow: Flow) -> bool | None:
    """A SOCKS4/4a request, or a SOCKS5 greeting the proxy answers with one of its methods."""
    if not client:
        return False if server else None
    if client[0] == 4:
        req = _socks4_request(client)
        if req is None or req == -1:
            return None if req is None else False
        if len(server) < 2:
            return True if not server else None
        return server[0] in (0, 4) and server[1] in _SOCKS4_STATUS
    if client[0] != 5:
        return False
    n = _socks5_greeting(client)
    if n is None or n < 0:
        return None if n is None else False
    if len(server) >= 2:
        return server[0] == 5 and (server[1] in client[2:n] or server[1] == 0xFF)
    if len(client) > n:  # the request (or RFC 1929 credentials) already follows
        return client[n] in (1, 5)
    return None


class SocksParser:
    """One proxied connection: its handshake, then a handoff of the rest of the stream."""

    __slots__ = ("bufs", "ctx", "done", "flow", "info", "pos", "step", "ts_ns")

    def __init__(self, flow: Flow, ctx: ParserContext) -> None:
        self.flow = flow
        self.ctx = ctx
        self.bufs = (bytearray(), bytearray())
        self.pos = [0, 0]
        """Bytes of each direction's buffer the handshake used."""
        self.step = "start"
        self.done = False
        self.info: dict[str, object] = {}
        self.ts_ns = 0
        """Time of the event being fed (stamps the report and the handoff)."""

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        if self.done:
            return _NONE
        d = ev.direction
        self.ts_ns = ev.ts_ns
        if type(ev) is StreamData:
            buf = self.bufs[d]
            if ev.offset != len(buf):  # a hole (or a replay from elsewhere): cannot follow it
                return self._fail("socks.gap", "incomplete")
            buf += ev.data
            if len(buf) > MAX_HELD:
                return self._fail("socks.handshake_too_long", "incomplete")
            try:
                return self._advance()
            except (ValueError, UnicodeDecodeError):
                return self._fail("socks.malformed")
        if type(ev) is not StreamClosed:
            return self._fail("socks.gap", "incomplete")
        if self.step != "start":
            self._fail("", "incomplete")
        return _NONE

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        return _NONE

    # -- the handshake ---------------------------------------------------------------------
    def _advance(self) -> list[ContentObject]:
        """Go as far through the handshake as the bytes allow."""
        while not self.done:
            moved = self._step()
            if moved is None:
                return _NONE
            if moved is not True:
                return moved
        return _NONE

    def _step(self) -> bool | list[ContentObject] | None:
        """One step: True moved on, None needs more bytes, a list once it ended (tunnel or not)."""
        return getattr(self, "_s_" + self.step)(*self.bufs, *self.pos)

    def _s_start(self, c: bytearray, s: bytearray, cp: int, sp: int) -> bool | None:
        if not c:
            return None
        self.step = "socks4" if c[0] == 4 else "greeting"
        self.info["version"] = c[0]
        return True

    def _s_socks4(self, c: bytearray, s: bytearray, cp: int, sp: int) -> bool | list[ContentObject] | None:
        req = _socks4_request(bytes(c[cp:]))
        if req is None:
            return None
        if req == -1:
            return self._fail("socks.malformed")
        n, cmd, target = req  # type: ignore[misc]
        self.info.update(command=_COMMANDS.get(cmd, str(cmd)), target=target,
                         user=bytes(c[cp + 8:c.find(b"\0", cp + 8)]).decode("latin-1"))
        self.pos[0] += n
        self.step = "socks4_reply"
        return True

    def _s_socks4_reply(self, c: bytearray, s: bytearray, cp: int, sp: int) -> bool | list[ContentObject] | None:
        if len(s) - sp < 8:
            return None
        self.pos[1] += 8
        if s[sp + 1] != 90:
            return self._fail("", _SOCKS4_STATUS.get(s[sp + 1], str(s[sp + 1])))
        if self.step == "socks4_reply" and self.info["command"] == "bind":  # BIND answers twice
            self.step = "socks4_reply2"
            return True
        return self._tunnel()

    _s_socks4_reply2 = _s_socks4_reply

    def _s_greeting(self, c: bytearray, s: bytearray, cp: int, sp: int) -> bool | list[ContentObject] | None:
        if c[cp] != 5:
            return self._fail("socks.malformed")
        n = _socks5_greeting(bytes(c[cp:]))
        if n is None:
            return None
        if n < 0:
            return self._fail("socks.malformed")
        self.pos[0] += n
        self.step = "method"
        return True

    def _s_method(self, c: bytearray, s: bytearray, cp: int, sp: int) -> bool | list[ContentObject] | None:
        if len(s) - sp < 2:
            return None
        self.pos[1] += 2
        m = s[sp + 1]
        self.info["auth"] = _METHODS.get(m, f"0x{m:02x}")
        if m not in (0, 2):  # refused, or a method that wraps the rest (GSSAPI, private ones)
            return self._fail("", "no_acceptable_method" if m == 0xFF else "unsupported_method")
        self.step = "request" if m == 0 else "userpass"
        return True

    def _s_userpass(self, c: bytearray, s: bytearray, cp: int, sp: int) -> bool | list[ContentObject] | None:
        """RFC 1929: VER=1, ULEN, UNAME, PLEN, PASSWD (the password is skipped, not kept)."""
        if len(c) - cp < 2:
            return None
        if c[cp] != 1:
            return self._fail("socks.malformed")
        ulen = c[cp + 1]
        if len(c) - cp < 3 + ulen or len(c) - cp < 3 + ulen + c[cp + 2 + ulen]:
            return None
        self.info["user"] = bytes(c[cp + 2:cp + 2 + ulen]).decode("latin-1")
        self.pos[0] += 3 + ulen + c[cp + 2 + ulen]
        self.step = "userpass_reply"
        return True

    def _s_userpass_reply(self, c: bytearray, s: bytearray, cp: int, sp: int) -> bool | list[ContentObject] | None:
        if len(s) - sp < 2:
            return None
        self.pos[1] += 2
        if s[sp + 1] != 0:
            return self._fail("", "auth_failed")
        self.step = "request"
        return True

    def _s_request(self, c: bytearray, s: bytearray, cp: int, sp: int) -> bool | list[ContentObject] | None:
        if len(c) - cp < 4:
            return None
        if c[cp] != 5 or c[cp + 1] not in _COMMANDS:
            return self._fail("socks.malformed")
        a = _socks5_address(bytes(c), cp + 3)
        if a is None:
            return None
        if a == -1:
            return self._fail("socks.malformed")
        self.pos[0], target = a  # type: ignore[misc]
        self.info.update(command=_COMMANDS[c[cp + 1]], target=target)
        self.step = "reply"
        return True

    def _s_reply(self, c: bytearray, s: bytearray, cp: int, sp: int) -> bool | list[ContentObject] | None:
        if len(s) - sp < 4:
            return None
        a = _socks5_address(bytes(s), sp + 3)
        if a is None:
            return None
        if a == -1 or s[sp] != 5:
            return self._fail("socks.malformed")
        self.pos[1] = a[0]  # type: ignore[index]
        if s[sp + 1] != 0:
            return self._fail("", _SOCKS5_STATUS.get(s[sp + 1], str(s[sp + 1])))
        if self.info["command"] == "udp_associate":  # the data goes over UDP: nothing on this stream
            return self._fail("", "granted")
        if self.step == "reply" and self.info["command"] == "bind":  # BIND answers twice
            self.step = "reply2"
            return True
        return self._tunnel()

    _s_reply2 = _s_reply

    # -- outcomes --------------------------------------------------------------------------
    def _tunnel(self) -> list[ContentObject]:
        """Granted: the rest of the stream (from the handshake's end) goes to detection."""
        self.done = True
        ts = self.ts_ns
        self._report("granted")
        target = str(self.info.get("target", ""))
        host = target.rsplit(":", 1)[0].strip("[]").lower()
        c, s = self.bufs
        at = (self.pos[0], self.pos[1])
        replay = (bytes(c[at[0]:]), bytes(s[at[1]:]))
        self.bufs = (bytearray(), bytearray())
        return self.ctx.handoff(at, ts, replay=replay, meta={"connect_host": target[:1024]}, host=host)

    def _fail(self, anomaly: str, status: str = "malformed") -> list[ContentObject]:
        """The handshake failed or cannot be followed: the rest is not looked into."""
        if anomaly and anomaly not in self.flow.anomalies:
            self.flow.anomalies.append(anomaly)
        self._report(status)
        self.done = True
        self.bufs = (bytearray(), bytearray())
        return _NONE

    def _report(self, status: str) -> None:
        if "version" not in self.info:
            return
        fields = {**self.info, "status": status}
        if "target" in fields:
            host, _, port = str(fields.pop("target")).rpartition(":")
            fields["host"], fields["port"] = host.strip("[]"), int(port) if port.isdigit() else 0
        self.ctx.emit_event("socks", fields, self.ts_ns, Direction.TO_SERVER)


SOCKS = AppProtocol("socks", SocksParser, probe=probe, ports=frozenset({1080, 1081, 9050}), limits=Limits())
