"""QUIC (RFC 9000/9001, v2 RFC 9369): the ClientHello of the client's Initial packets as an EVE ``quic`` event.

Initial packets are protected with keys anyone can derive from the Destination Connection ID
(RFC 9001 §5.2): HKDF-Extract with the version's public salt, HKDF-Expand-Label ``client in``,
then ``quic key`` / ``quic iv`` / ``quic hp`` (``quicv2 …`` for v2). The parser removes the
header protection (AES-ECB of a 16-byte sample), decrypts the payload (AES-128-GCM, with
``cryptography``), reads its CRYPTO frames (in any order, over several packets and coalesced
packets), and once the ClientHello is whole parses it with the TLS code (`reassembly.
tls_handshake`): ``{"version": "1", "sni", "alpn": [...], "ja3": {"hash", "string"}, "ja4":
"q13d…"}``. Packets that do not decrypt are counted (``quic.decrypt_failed``); a Retry's new
connection ID is followed. Bounded: the first ``max_initial_packets`` client Initials and
``max_crypto_bytes`` of CRYPTO data.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from appliance.model import ContentObject, Direction, Flow, Packet
from reassembly.applayer.base import AppProtocol, Limits, ParserContext
from reassembly.tls_handshake import CLIENT_HELLO, client_fields, parse_hello

V1 = 0x00000001
V2 = 0x6B3343CF
SALTS = {
    V1: bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
    V2: bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
}
_LABELS = {V1: b"quic ", V2: b"quicv2 "}
_INITIAL_TYPE = {V1: 0, V2: 1}
_NONE: list[ContentObject] = []


@dataclass(frozen=True, slots=True)
class QuicLimits(Limits):
    max_initial_packets: int = 16
    """Client Initial packets looked into per connection."""
    max_crypto_bytes: int = 64 * 1024
    """CRYPTO bytes reassembled (a ClientHello with post-quantum key shares is ~2 KB)."""


def _expand_label(secret: bytes, label: bytes, length: int) -> bytes:
    """TLS 1.3 HKDF-Expand-Label with an empty context (lengths up to 32: one HMAC block)."""
    full = b"tls13 " + label
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return hmac.new(secret, info + b"\x01", hashlib.sha256).digest()[:length]


def initial_keys(dcid: bytes, version: int, side: bytes = b"client in") -> tuple[bytes, bytes, bytes]:
    """(key, iv, hp) of the Initial packets one side sends, for Destination Connection ID ``dcid``."""
    initial = hmac.new(SALTS[version], dcid, hashlib.sha256).digest()
    secret = _expand_label(initial, side, 32)
    pre = _LABELS[version]
    return _expand_label(secret, pre + b"key", 16), _expand_label(secret, pre + b"iv", 12), \
        _expand_label(secret, pre + b"hp", 16)


def _varint(b: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(b):
        raise IndexError
    first = b[pos]
    n = 1 << (first >> 6)
    if pos + n > len(b):
        raise IndexError
    v = first & 0x3F
    for i in range(1, n):
        v = (v << 8) | b[pos + i]
    return v, pos + n


@dataclass(slots=True)
class InitialPacket:
    """One long-header packet of a datagram (``payload`` still protected)."""

    start: int
    version: int
    ptype: int
    dcid: bytes
    scid: bytes
    pn_offset: int
    end: int
    """Offset in the datagram just past this packet."""


def long_packets(dgram: bytes) -> list[InitialPacket]:
    """The coalesced long-header packets of a datagram (stops at anything else)."""
    out: list[InitialPacket] = []
    pos = 0
    while pos + 7 < len(dgram) and dgram[pos] & 0x80 and len(out) < 8:
        first = dgram[pos]
        version = int.from_bytes(dgram[pos + 1:pos + 5], "big")
        if version not in SALTS:
            break
        p = pos + 5
        dl = dgram[p]
        dcid = dgram[p + 1:p + 1 + dl]
        p += 1 + dl
        sl = dgram[p]
        scid = dgram[p + 1:p + 1 + sl]
        p += 1 + sl
        ptype = (first >> 4) & 3
        if dl > 20 or sl > 20 or p > len(dgram):
            break
        if ptype == _INITIAL_TYPE[version]:
            tlen, p = _varint(dgram, p)
            p += tlen
        elif ptype == (3 if version == V1 else 0):  # Retry: no length, the rest of the datagram
            out.append(InitialPacket(pos, version, ptype, dcid, scid, p, len(dgram)))
            break
        length, p = _varint(dgram, p)
        if p + length > len(dgram):
            break
        out.append(InitialPacket(pos, version, ptype, dcid, scid, p, p + length))
        pos = p + length
    return out


def decrypt_initial(dgram: bytes, pkt: InitialPacket, keys: tuple[bytes, bytes, bytes]) -> bytes | None:
    """The plaintext payload of an Initial packet, or None when it does not authenticate."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key, iv, hp = keys
    start = pkt.start
    sample = dgram[pkt.pn_offset + 4:pkt.pn_offset + 20]
    if len(sample) < 16:
        return None
    mask = Cipher(algorithms.AES(hp), modes.ECB()).encryptor().update(sample)
    first = dgram[start] ^ (mask[0] & 0x0F)
    pn_len = (first & 3) + 1
    pn_bytes = bytes(a ^ b for a, b in zip(dgram[pkt.pn_offset:pkt.pn_offset + pn_len], mask[1:1 + pn_len]))
    header = bytes([first]) + dgram[start + 1:pkt.pn_offset] + pn_bytes
    pn = int.from_bytes(pn_bytes, "big")
    nonce = (int.from_bytes(iv, "big") ^ pn).to_bytes(12, "big")
    try:
        return AESGCM(key).decrypt(nonce, dgram[pkt.pn_offset + pn_len:pkt.end], header)
    except (InvalidTag, ValueError):
        return None


def crypto_frames(payload: bytes) -> list[tuple[int, bytes]]:
    """(offset, data) of the CRYPTO frames of an Initial payload (PADDING, PING, ACK skipped)."""
    out = []
    pos = 0
    n = len(payload)
    try:
        while pos < n:
            ftype = payload[pos]
            if ftype == 0x00 or ftype == 0x01:
                pos += 1
            elif ftype in (0x02, 0x03):
                _, pos = _varint(payload, pos + 1)  # largest acknowledged
                _, pos = _varint(payload, pos)  # delay
                count, pos = _varint(payload, pos)
                _, pos = _varint(payload, pos)  # first range
                for _ in range(min(count, 256)):
                    _, pos = _varint(payload, pos)
                    _, pos = _varint(payload, pos)
                if ftype == 0x03:
                    for _ in range(3):
                        _, pos = _varint(payload, pos)
            elif ftype == 0x06:
                off, pos = _varint(payload, pos + 1)
                length, pos = _varint(payload, pos)
                out.append((off, payload[pos:pos + length]))
                pos += length
            else:  # CONNECTION_CLOSE or something an Initial may not hold: stop here
                break
    except IndexError:
        pass
    return out


class QuicParser:
    """One UDP conversation of QUIC: the client's Initials → one ``quic`` event."""

    def __init__(self, flow: Flow, ctx: ParserContext) -> None:
        self.flow = flow
        self.ctx = ctx
        lim = ctx.limits or QuicLimits()
        self.max_packets = int(lim.max_initial_packets)
        self.max_crypto = int(lim.max_crypto_bytes)
        self.packets = 0
        self.crypto: dict[int, bytes] = {}
        self.crypto_bytes = 0
        self.dcids: list[bytes] = []
        self.version = 0
        self.done = False

    def feed_datagram(self, pkt: Packet, direction: Direction) -> list[ContentObject]:
        if self.done:
            return _NONE
        dgram = bytes(pkt.payload)
        try:
            packets = long_packets(dgram)
        except IndexError:
            return _NONE
        for p in packets:
            if direction == Direction.TO_CLIENT:
                if p.ptype == (3 if p.version == V1 else 0) and p.scid:  # Retry: the next Initial's DCID
                    self.dcids.append(p.scid)
                continue
            if p.ptype != _INITIAL_TYPE[p.version] or self.packets >= self.max_packets:
                continue
            self.packets += 1
            self._initial(dgram, p, pkt.ts_ns)
            if self.done:
                break
        return _NONE

    def _initial(self, dgram: bytes, p: InitialPacket, ts_ns: int) -> None:
        if not self.dcids:
            self.dcids.append(p.dcid)
            self.version = p.version
        plain = None
        for dcid in dict.fromkeys([p.dcid, *self.dcids]):
            plain = decrypt_initial(dgram, p, initial_keys(dcid, p.version))
            if plain is not None:
                break
        if plain is None:
            self._anomaly("quic.decrypt_failed")
            return
        for off, data in crypto_frames(plain):
            if off in self.crypto or self.crypto_bytes + len(data) > self.max_crypto:
                continue
            self.crypto[off] = data
            self.crypto_bytes += len(data)
        self._try_hello(ts_ns)

    def _contiguous(self) -> bytes:
        out = bytearray()
        while True:
            piece = self.crypto.get(len(out))
            if piece is None:
                # a frame may overlap what is held (a retransmission with other boundaries)
                nxt = [o for o in self.crypto if o < len(out) < o + len(self.crypto[o])]
                if not nxt:
                    return bytes(out)
                o = nxt[0]
                piece = self.crypto[o][len(out) - o:]
            out += piece

    def _try_hello(self, ts_ns: int) -> None:
        data = self._contiguous()
        if len(data) < 4:
            return
        if data[0] != CLIENT_HELLO:
            self._anomaly("quic.not_client_hello")
            self.done = True
            return
        length = int.from_bytes(data[1:4], "big")
        if len(data) < 4 + length:
            return
        self.done = True
        hello = parse_hello(data[4:4 + length], client=True)
        if hello is None:
            self._anomaly("quic.bad_client_hello")
            return
        fields = client_fields(hello, transport="q")
        alpn = fields.pop("client_alpns", None)
        out: dict[str, object] = {"version": "1" if self.version == V1 else "2"}
        if "sni" in fields:
            out["sni"] = fields["sni"]
        if alpn:
            out["alpn"] = alpn
        out["ja3"] = fields["ja3"]
        out["ja4"] = fields["ja4"]
        self.crypto.clear()
        self.ctx.emit_event("quic", out, ts_ns)

    def close(self, flow: Flow, ts_ns: int) -> list[ContentObject]:
        return _NONE

    def _anomaly(self, code: str) -> None:
        if code not in self.flow.anomalies:
            self.flow.anomalies.append(code)


def probe(client: bytes, server: bytes, flow: Flow) -> bool:
    """A long-header Initial packet of QUIC v1 or v2 in a datagram of at least 1200 bytes."""
    if len(client) < 1200 or not client[0] & 0x80 or not client[0] & 0x40:
        return False
    version = int.from_bytes(client[1:5], "big")
    return version in SALTS and (client[0] >> 4) & 3 == _INITIAL_TYPE[version] and client[5] <= 20


QUIC = AppProtocol("quic", QuicParser, probe=probe, ports=frozenset({443, 80, 8443}), limits=QuicLimits(),
                   transport="udp")
