"""TLS: handshake metadata (one EVE ``tls`` event per session); the encrypted rest is not looked into.

The parser reads records of both directions (a record may span segments, a handshake message
may span records, several messages may share one) up to the end of the clear-text handshake:
the ClientHello (SNI, ALPN, JA3, JA4), the ServerHello (version, incl. supported_versions for
TLS 1.3, cipher, JA3S, ALPN) and, for TLS 1.2 and older, the server's Certificate (subject,
issuer, serial, validity, SHA-1 fingerprint, subjectAltName DNS names of the first certificate).
TLS 1.3 encrypts the certificate: the event says ``certificate_encrypted``. A ChangeCipherSpec
before any Certificate is a resumed session (``session_resumed``). The event is emitted once
the server's side is known (or when the flow ends); after that both directions are skipped.
Bounded by ``max_handshake_bytes`` per direction.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.model import ContentObject, Direction, Flow, StreamData, StreamEvent, StreamGap
from reassembly.applayer.base import AppProtocol, Limits, ParserContext
from reassembly.certinfo import certificate_fields
from reassembly.tls_handshake import (
    CERTIFICATE,
    CLIENT_HELLO,
    SERVER_HELLO,
    SERVER_HELLO_DONE,
    client_fields,
    parse_hello,
    server_fields,
)

_NONE: list[ContentObject] = []
_REC_HANDSHAKE, _REC_CCS, _REC_ALERT, _REC_APPDATA = 22, 20, 21, 23
_MAX_RECORD = 16384 + 2048
"""Largest record length accepted (TLSCiphertext may exceed 2^14 by 2048)."""
MAX_CHAIN = 16
"""Certificates of a chain counted (only the first is parsed)."""


@dataclass(frozen=True, slots=True)
class TlsLimits(Limits):
    max_handshake_bytes: int = 256 * 1024
    """Handshake bytes buffered per direction (a long certificate chain); beyond, the rest of
    that direction's handshake is skipped (anomaly ``tls.handshake_too_long``)."""


def probe(client: bytes, server: bytes, flow: Flow) -> bool | None:
    """A handshake record header (type 22, version 3.x) from either side."""
    return any(b[:1] == b"\x16" and (len(b) < 2 or b[1] == 3) for b in (client, server))


class TlsParser:
    """Both directions of one TLS session → one ``tls`` metadata event."""

    __slots__ = ("anomalies", "buf", "ctx", "done", "emitted", "fields", "flow", "hs", "limit", "seen_client",
                 "seen_server", "tls13", "ts_ns")

    def __init__(self, flow: Flow, ctx: ParserContext) -> None:
        self.flow = flow
        self.ctx = ctx
        self.limit = max(4096, int((ctx.limits or TlsLimits()).max_handshake_bytes))
        self.buf = [bytearray(), bytearray()]
        """Record bytes not parsed yet, per direction."""
        self.hs = [bytearray(), bytearray()]
        """Handshake message bytes not parsed yet, per direction."""
        self.done = [False, False]
        self.fields: dict[str, object] = {}
        self.anomalies: list[str] = []
        self.seen_client = False
        self.seen_server = False
        self.tls13 = False
        self.emitted = False
        self.ts_ns = 0

    def feed(self, ev: StreamEvent) -> list[ContentObject]:
        d = ev.direction
        if self.done[d]:
            return _NONE
        self.ts_ns = ev.ts_ns
        if type(ev) is StreamData:
            buf = self.buf[d]
            buf += ev.data
            self._records(d)
        elif type(ev) is StreamGap:
            self._anomaly("tls.gap")
            self._finish_dir(d)
        else:
            self._finish_dir(d)
        if self.done[0] and self.done[1]:
            self._emit()
        return _NONE

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        self.ts_ns = ts_ns or self.ts_ns
        self._emit()
        return _NONE

    # -- records ------------------------------------------------------------------------------
    def _records(self, d: int) -> None:
        buf = self.buf[d]
        pos = 0
        n = len(buf)
        while not self.done[d] and n - pos >= 5:
            ctype, major, length = buf[pos], buf[pos + 1], int.from_bytes(buf[pos + 3:pos + 5], "big")
            if ctype not in (_REC_CCS, _REC_ALERT, _REC_HANDSHAKE, _REC_APPDATA, 24) or major != 3 \
                    or length > _MAX_RECORD:
                self._anomaly("tls.invalid_record")
                self._finish_dir(d)
                break
            if n - pos < 5 + length:
                break
            body = bytes(buf[pos + 5:pos + 5 + length])
            pos += 5 + length
            if ctype == _REC_HANDSHAKE:
                self._handshake(d, body)
            elif ctype == _REC_CCS:
                self._ccs(d)
            elif ctype == _REC_APPDATA:
                self._finish_dir(d)  # application data: the clear-text handshake is over
        del buf[:pos]
        if len(buf) > _MAX_RECORD + 5:
            self._finish_dir(d)

    def _ccs(self, d: int) -> None:
        if d == Direction.TO_CLIENT and self.seen_server and not self.tls13 and "subject" not in self.fields \
                and "fingerprint" not in self.fields:
            self.fields["session_resumed"] = True
        self._finish_dir(d)  # what follows in this direction is encrypted

    def _handshake(self, d: int, body: bytes) -> None:
        hs = self.hs[d]
        if len(hs) + len(body) > self.limit:
            self._anomaly("tls.handshake_too_long")
            self._finish_dir(d)
            return
        hs += body
        pos = 0
        while not self.done[d] and len(hs) - pos >= 4:
            mtype = hs[pos]
            mlen = int.from_bytes(hs[pos + 1:pos + 4], "big")
            if 4 + mlen > self.limit:
                self._anomaly("tls.handshake_too_long")
                self._finish_dir(d)
                break
            if len(hs) - pos < 4 + mlen:
                break
            self._message(d, mtype, bytes(hs[pos + 4:pos + 4 + mlen]))
            pos += 4 + mlen
        del hs[:pos]

    def _message(self, d: int, mtype: int, body: bytes) -> None:
        if d == Direction.TO_SERVER:
            if mtype == CLIENT_HELLO and not self.seen_client:
                hello = parse_hello(body, client=True)
                self.seen_client = True
                if hello is None:
                    self._anomaly("tls.bad_client_hello")
                else:
                    self.fields.update(client_fields(hello))
                    for code in hello.anomalies:
                        self._anomaly(code)
                self._finish_dir(d)  # nothing else of the client's is read
            return
        if mtype == SERVER_HELLO and not self.seen_server:
            hello = parse_hello(body, client=False)
            self.seen_server = True
            if hello is None:
                self._anomaly("tls.bad_server_hello")
                self._finish_dir(d)
                return
            self.fields.update(server_fields(hello))
            if hello.version == 0x0304:
                self.tls13 = True
                self.fields["certificate_encrypted"] = True
                self._finish_dir(d)  # the rest of the server's handshake is encrypted
        elif mtype == CERTIFICATE and not self.tls13:
            self._certificate(body)
            self._finish_dir(d)
        elif mtype == SERVER_HELLO_DONE:
            self._finish_dir(d)

    def _certificate(self, body: bytes) -> None:
        """TLS ≤ 1.2 Certificate: a 3-byte list length, then 3-byte-length DER certificates."""
        if len(body) < 3:
            self._anomaly("tls.bad_certificate")
            return
        total = int.from_bytes(body[:3], "big")
        pos, end = 3, min(len(body), 3 + total)
        chain: list[bytes] = []
        while pos + 3 <= end and len(chain) < MAX_CHAIN:
            n = int.from_bytes(body[pos:pos + 3], "big")
            if pos + 3 + n > end:
                self._anomaly("tls.bad_certificate")
                break
            chain.append(body[pos + 3:pos + 3 + n])
            pos += 3 + n
        if not chain:
            return
        fields, ok = certificate_fields(chain[0])
        if not ok:
            self._anomaly("tls.bad_certificate")
        self.fields.update(fields)
        self.fields["chain_length"] = len(chain)

    # -- ends ---------------------------------------------------------------------------------
    def _finish_dir(self, d: int) -> None:
        self.done[d] = True
        self.buf[d] = bytearray()
        self.hs[d] = bytearray()

    def _anomaly(self, code: str) -> None:
        if code not in self.anomalies and len(self.anomalies) < 16:
            self.anomalies.append(code)
            if code not in self.flow.anomalies:
                self.flow.anomalies.append(code)

    def _emit(self) -> None:
        if self.emitted or not (self.seen_client or self.seen_server):
            return
        self.emitted = True
        self.done = [True, True]
        fields = dict(self.fields)
        if self.anomalies:
            fields["anomalies"] = list(self.anomalies)
        self.ctx.emit_event("tls", fields, self.ts_ns)


def parser(flow: Flow, ctx: ParserContext) -> TlsParser:
    return TlsParser(flow, ctx)


TLS = AppProtocol("tls", parser, probe=probe, ports=frozenset({443, 465, 636, 853, 993, 995, 8443}),
                  limits=TlsLimits())
