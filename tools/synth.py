"""Synthesise realistic captures for tests, demos and benchmarks (tooling, never the hot path).

A `Session` builds one TCP connection packet by packet as a tap would see it: handshake with
seeded random ISNs, MSS-sized segments, delayed ACKs from the peer (every second segment,
immediate duplicate ACKs for out-of-order data), FIN or RST teardown and realistic timing. It
can lose segments at the tap (a gap the peer still acknowledges), reorder, retransmit (identical
or with conflicting bytes) and start mid-stream. Links wrap the IP packets: Ethernet, 802.1Q,
QinQ, ERSPAN II/III over GRE, VXLAN and Geneve (any ports), Linux SLL, NFLOG, raw IP; `Offload`
leaves one side's checksums unfinished as on a capture host with transmit checksum offload.
`Writer` writes pcap or pcapng (`tools.pcapwriter`). `Trace` collects sessions and UDP noise
and writes them in time order.

Everything random goes through a seeded `random.Random`, so the same code writes the same
bytes on every run. Helpers build HTTP messages, DNS/TLS/SSH noise and sample content (HTML,
PNG/JPEG via Pillow, a hand-written PDF, a minimal DOCX).

Packets are built with `struct` (not dpkt/scapy objects) so that hundreds of MB take seconds.
"""

from __future__ import annotations

import gzip
import hashlib
import heapq
import io
import ipaddress
import random
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from email.utils import formatdate
from pathlib import Path
from typing import IO, NamedTuple, Protocol

from tools.pcapwriter import DLT_EN10MB, DLT_LINUX_SLL, DLT_NFLOG, PcapngWriter, PcapWriter

__all__ = [
    "C2S", "DEFAULT_START", "S2C", "Erspan", "Ethernet", "FrameMerger", "Geneve", "Link", "Nflog", "Offload",
    "RawIp", "SctpAssociation", "Segment", "Sent", "Session", "Sll", "Trace", "Vxlan", "Writer", "chunked",
    "crc32c", "dns_query", "dns_response",
    "docx_document", "fake_jpeg", "fake_png", "gzip_bytes", "html_page", "http_request", "http_response",
    "jpeg_image", "md5", "multipart_body", "pdf_document", "png_image", "qinq", "range_response",
    "socks4_handshake", "socks5_handshake", "ssh_banner", "text", "tls_client_hello", "tls_records",
    "tls_server_hello", "udp_packet", "offload_capture", "unfinished_checksum", "vlan",
]

C2S = 0
"""Client → server (matches `Direction.TO_SERVER`)."""
S2C = 1
"""Server → client (matches `Direction.TO_CLIENT`)."""

DEFAULT_START = 1_700_000_000.0
"""2023-11-14T22:13:20Z: the default capture start (seconds since the epoch)."""

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_8021Q = 0x8100
ETH_8021AD = 0x88A8

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

_M32 = 0xFFFFFFFF
_S = struct.Struct


def md5(data: bytes) -> str:
    """Hex MD5 of ``data`` (the hash fileinfo reports)."""
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------------------------
# IP / TCP / UDP packets
# --------------------------------------------------------------------------------------------

def _csum_int(data: bytes) -> int:
    """One's-complement sum of big-endian 16-bit words, modulo 0xFFFF (``data`` of even length).

    65536 ≡ 1 (mod 65535), so the number ``data`` spells is congruent to the sum of its words.
    """
    return int.from_bytes(data, "big") % 0xFFFF


def _csum(s: int) -> int:
    return ~s & 0xFFFF


_IP4 = _S("!BBHHHBBH4s4s")
_IP6 = _S("!IHBB16s16s")
_TCP = _S("!HHIIBBHHH")
_UDP = _S("!HHHH")


def _ip_bytes(addr: str | bytes) -> bytes:
    return addr if isinstance(addr, bytes) else ipaddress.ip_address(addr).packed


def _ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ident: int, ttl: int, df: bool = True) -> bytes:
    hdr = _IP4.pack(0x45, 0, 20 + len(payload), ident & 0xFFFF, 0x4000 if df else 0, ttl, proto, 0, src, dst)
    c = _csum(_csum_int(hdr))
    return hdr[:10] + c.to_bytes(2, "big") + hdr[12:] + payload


def _ipv6(src: bytes, dst: bytes, nh: int, payload: bytes, flow: int, hlim: int) -> bytes:
    return _IP6.pack(0x60000000 | (flow & 0xFFFFF), len(payload), nh, hlim, src, dst) + payload


def _pseudo(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    if len(src) == 4:
        return src + dst + struct.pack("!BBH", 0, proto, length)
    return src + dst + struct.pack("!IxxxB", length, proto)


def _l4_checksum(pseudo_hdr: bytes, payload: bytes) -> int:
    if len(payload) & 1:
        payload += b"\0"
    return _csum((_csum_int(pseudo_hdr) + _csum_int(payload)) % 0xFFFF)


def _tcp_segment(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int,
                 win: int, options: bytes, payload: bytes) -> bytes:
    hlen = 20 + len(options)
    hdr = _TCP.pack(sport, dport, seq & _M32, ack & _M32, (hlen // 4) << 4, flags, win, 0, 0) + options
    c = _l4_checksum(_pseudo(src, dst, 6, hlen + len(payload)) + hdr, payload)
    return hdr[:16] + c.to_bytes(2, "big") + hdr[18:] + payload


def udp_packet(src: str | bytes, dst: str | bytes, sport: int, dport: int, payload: bytes, *,
               ttl: int = 64, ident: int = 0) -> tuple[bytes, int]:
    """An IPv4 or IPv6 UDP packet with a correct checksum; returns (ip bytes, ethertype)."""
    s, d = _ip_bytes(src), _ip_bytes(dst)
    hdr = _UDP.pack(sport, dport, 8 + len(payload), 0)
    c = _l4_checksum(_pseudo(s, d, 17, 8 + len(payload)) + hdr, payload) or 0xFFFF
    seg = hdr[:6] + c.to_bytes(2, "big") + payload
    if len(s) == 4:
        return _ipv4(s, d, 17, seg, ident, ttl, df=False), ETH_IPV4
    return _ipv6(s, d, 17, seg, 0, ttl), ETH_IPV6


# --------------------------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------------------------

class Link(Protocol):
    """Wraps an IP packet into a frame of ``linktype``."""

    linktype: int

    def wrap(self, ip: bytes, ethertype: int, to_server: bool, ts_ns: int) -> bytes: ...


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", "").replace("-", ""))


class Ethernet:
    """Ethernet II, optionally 802.1Q/802.1ad tagged, padded to the 60-byte minimum like a tap sees it.

    ``vlans`` lists tags outermost first, each a VLAN id (TPID 0x8100) or ``(tpid, vid)``.
    """

    linktype = DLT_EN10MB

    def __init__(self, client_mac: str = "52:54:00:12:34:56", server_mac: str = "00:1b:21:0a:0b:0c",
                 vlans: Sequence[int | tuple[int, int]] = (), pad: bool = True) -> None:
        self.client_mac = _mac(client_mac)
        self.server_mac = _mac(server_mac)
        tags = b""
        for v in vlans:
            tpid, vid = v if isinstance(v, tuple) else (ETH_8021Q, v)
            tags += struct.pack("!HH", tpid, vid & 0xFFF)
        self.tags = tags
        self.pad = pad
        self._c2s = self.server_mac + self.client_mac + tags
        self._s2c = self.client_mac + self.server_mac + tags

    def wrap(self, ip: bytes, ethertype: int, to_server: bool, ts_ns: int = 0) -> bytes:
        f = (self._c2s if to_server else self._s2c) + ethertype.to_bytes(2, "big") + ip
        if self.pad and len(f) < 60:
            f += bytes(60 - len(f))
        return f


def vlan(vid: int, **kw: object) -> Ethernet:
    """An 802.1Q-tagged Ethernet link."""
    return Ethernet(vlans=[vid], **kw)  # type: ignore[arg-type]


def qinq(outer: int, inner: int, **kw: object) -> Ethernet:
    """A QinQ (802.1ad outer tag 0x88a8, 802.1Q inner tag) Ethernet link."""
    return Ethernet(vlans=[(ETH_8021AD, outer), (ETH_8021Q, inner)], **kw)  # type: ignore[arg-type]


class _Outer:
    """Outer Ethernet + IPv4 of a tunnel from a switch (``src``) to the sensor (``dst``)."""

    def __init__(self, src: str, dst: str, src_mac: str, dst_mac: str) -> None:
        self.src, self.dst = _ip_bytes(src), _ip_bytes(dst)
        self.eth = _mac(dst_mac) + _mac(src_mac) + ETH_IPV4.to_bytes(2, "big")
        self.ident = 0

    def ipv4(self, proto: int, payload: bytes) -> bytes:
        self.ident += 1
        return self.eth + _ipv4(self.src, self.dst, proto, payload, self.ident, 255, df=False)

    def udp(self, sport: int, dport: int, payload: bytes, checksum: bool) -> bytes:
        """A UDP header + ``payload`` from ``src`` to ``dst`` (checksum 0 unless ``checksum``)."""
        hdr = _UDP.pack(sport, dport, 8 + len(payload), 0)
        if checksum:
            c = _l4_checksum(_pseudo(self.src, self.dst, 17, 8 + len(payload)) + hdr, payload) or 0xFFFF
            hdr = hdr[:6] + c.to_bytes(2, "big")
        return hdr + payload


class Erspan:
    """ERSPAN type II (GRE 0x88be) or III (GRE 0x22eb) over GRE over IPv4, as a remote SPAN delivers.

    The mirrored frame is ``inner``'s Ethernet frame; the GRE header carries a sequence number.
    """

    linktype = DLT_EN10MB

    def __init__(self, inner: Ethernet | None = None, version: int = 2, session_id: int = 7, *,
                 src: str = "192.0.2.1", dst: str = "192.0.2.10", vlan_id: int = 0, index: int = 0x1234,
                 src_mac: str = "00:08:e3:ff:fc:28", dst_mac: str = "00:25:90:aa:bb:cc") -> None:
        if version not in (2, 3):
            raise ValueError("ERSPAN version must be 2 or 3")
        self.inner = inner or Ethernet()
        self.version = version
        self.session_id = session_id & 0x3FF
        self.vlan_id = vlan_id & 0xFFF
        self.index = index & 0xFFFFF
        self.outer = _Outer(src, dst, src_mac, dst_mac)
        self.seq = 0

    def wrap(self, ip: bytes, ethertype: int, to_server: bool, ts_ns: int) -> bytes:
        frame = self.inner.wrap(ip, ethertype, to_server, ts_ns)
        self.seq += 1
        if self.version == 2:
            gre = struct.pack("!HHI", 0x1000, 0x88BE, self.seq)
            hdr = struct.pack("!HHI", (1 << 12) | self.vlan_id, self.session_id, self.index)
        else:
            gre = struct.pack("!HHI", 0x1000, 0x22EB, self.seq)
            # Ver=2, VLAN | COS, BSO, T, session | timestamp (100 µs units, Gra=00)
            # | SGT, P, FT, HwID, D, Gra, O
            hdr = struct.pack("!HHIHH", (2 << 12) | self.vlan_id, self.session_id,
                              (ts_ns // 100_000) & _M32, 0, (1 << 15) | (1 << 4) | (1 << 3))
        return self.outer.ipv4(47, gre + hdr + frame)


class Vxlan:
    """VXLAN over IPv4 carrying ``inner``'s Ethernet frames: to UDP 4789 from a per-flow entropy
    port by default; ``sport``/``dport`` fix the ports (a mirror may send from 4789 to any port).
    The UDP checksum is 0 (allowed over IPv4) unless ``udp_checksum``."""

    linktype = DLT_EN10MB

    def __init__(self, inner: Ethernet | None = None, vni: int = 5001, *, src: str = "198.51.100.1",
                 dst: str = "198.51.100.2", src_mac: str = "00:50:56:01:02:03",
                 dst_mac: str = "00:50:56:04:05:06", sport: int | None = None, dport: int = 4789,
                 udp_checksum: bool = False) -> None:
        self.inner = inner or Ethernet()
        self.vni = vni & 0xFFFFFF
        self.outer = _Outer(src, dst, src_mac, dst_mac)
        self.sport, self.dport = sport, dport
        self.udp_checksum = udp_checksum

    def wrap(self, ip: bytes, ethertype: int, to_server: bool, ts_ns: int) -> bytes:
        frame = self.inner.wrap(ip, ethertype, to_server, ts_ns)
        payload = struct.pack("!II", 0x08000000, self.vni << 8) + frame
        sport = self.sport if self.sport is not None else 49152 + (zlib.crc32(frame[:12]) & 0x3FFF)
        return self.outer.ipv4(17, self.outer.udp(sport, self.dport, payload, self.udp_checksum))


class Geneve:
    """Geneve (RFC 8926) over IPv4: ``inner``'s Ethernet frames (protocol 0x6558), or with
    ``ethernet=False`` the IP packets themselves (0x0800/0x86DD); ``options`` (a multiple of 4
    bytes) follow the base header. UDP 6081 unless ``dport`` says otherwise; UDP checksum as
    for `Vxlan`."""

    linktype = DLT_EN10MB

    def __init__(self, inner: Ethernet | None = None, vni: int = 7001, *, ethernet: bool = True,
                 options: bytes = b"", src: str = "198.51.100.21", dst: str = "198.51.100.22",
                 src_mac: str = "00:50:56:01:02:13", dst_mac: str = "00:50:56:04:05:16",
                 sport: int | None = None, dport: int = 6081, udp_checksum: bool = False) -> None:
        if len(options) % 4 or len(options) > 252:
            raise ValueError("Geneve options must be a multiple of 4 bytes, at most 252")
        self.inner = inner or Ethernet()
        self.vni = vni & 0xFFFFFF
        self.ethernet = ethernet
        self.options = options
        self.outer = _Outer(src, dst, src_mac, dst_mac)
        self.sport, self.dport = sport, dport
        self.udp_checksum = udp_checksum

    def wrap(self, ip: bytes, ethertype: int, to_server: bool, ts_ns: int) -> bytes:
        if self.ethernet:
            body, proto = self.inner.wrap(ip, ethertype, to_server, ts_ns), 0x6558
        else:
            body, proto = ip, ethertype
        hdr = struct.pack("!BBHI", len(self.options) // 4, 0, proto, self.vni << 8) + self.options
        sport = self.sport if self.sport is not None else 49152 + (zlib.crc32(body[:40]) & 0x3FFF)
        return self.outer.ipv4(17, self.outer.udp(sport, self.dport, hdr + body, self.udp_checksum))


class Sll:
    """Linux "cooked" capture (LINKTYPE_LINUX_SLL), as ``tcpdump -i any`` on the client host writes."""

    linktype = DLT_LINUX_SLL

    def __init__(self, mac: str = "52:54:00:12:34:56") -> None:
        self.addr = _mac(mac) + b"\0\0"

    def wrap(self, ip: bytes, ethertype: int, to_server: bool, ts_ns: int = 0) -> bytes:
        ptype = 4 if to_server else 0  # outgoing / to us
        return struct.pack("!HHH", ptype, 1, 6) + self.addr + ethertype.to_bytes(2, "big") + ip


class RawIp:
    """No link layer (LINKTYPE_RAW): the frame is the IP packet."""

    linktype = 101

    def wrap(self, ip: bytes, ethertype: int, to_server: bool, ts_ns: int = 0) -> bytes:
        return ip


NFLOG_PACKET_HDR = 1
NFLOG_TIMESTAMP = 3
NFLOG_PAYLOAD = 9
NFLOG_PREFIX = 10


class Nflog:
    """Linux NFLOG (LINKTYPE_NFLOG, 239), as ``tcpdump -i nflog:GROUP`` writes what an iptables
    ``-j NFLOG`` rule logs: a header (address family, version 0, group), then TLVs in the
    capturing host's byte order (little-endian unless ``big_endian``) — the packet header, the
    rule's prefix, a timestamp and the IP packet (NFULA_PAYLOAD)."""

    linktype = DLT_NFLOG

    def __init__(self, group: int = 5, prefix: bytes = b"tapsift", big_endian: bool = False) -> None:
        self.group = group & 0xFFFF
        self.prefix = prefix
        self.bo = ">" if big_endian else "<"

    def _tlv(self, kind: int, value: bytes) -> bytes:
        n = 4 + len(value)
        return struct.pack(self.bo + "HH", n, kind) + value + bytes(-n % 4)

    def wrap(self, ip: bytes, ethertype: int, to_server: bool, ts_ns: int = 0) -> bytes:
        family = 10 if ethertype == ETH_IPV6 else 2
        sec, ns = divmod(ts_ns, 1_000_000_000)
        return (struct.pack("!BBH", family, 0, self.group)
                + self._tlv(NFLOG_PACKET_HDR, struct.pack("!HBx", ethertype, 1 if to_server else 3))
                + self._tlv(NFLOG_PREFIX, self.prefix + b"\0")
                + self._tlv(NFLOG_TIMESTAMP, struct.pack("!QQ", sec, ns // 1000))
                + self._tlv(NFLOG_PAYLOAD, ip))


class Offload:
    """``link`` as seen on a host with transmit checksum offload: the TCP/UDP checksums of the
    packets one side sends (``side``: `S2C` — the server, where the capture was made — or `C2S`)
    are left unfinished, ``partial`` (the pseudo-header sum the NIC was to complete, as Linux
    leaves them) or ``zero``."""

    def __init__(self, link: Link, side: int = 1, style: str = "partial") -> None:
        if style not in ("partial", "zero"):
            raise ValueError("style must be 'partial' or 'zero'")
        self.link = link
        self.linktype = link.linktype
        self.side = side
        self.style = style

    def wrap(self, ip: bytes, ethertype: int, to_server: bool, ts_ns: int) -> bytes:
        if to_server == (self.side == C2S):
            ip = unfinished_checksum(ip, self.style)
        return self.link.wrap(ip, ethertype, to_server, ts_ns)


def unfinished_checksum(ip: bytes, style: str = "partial") -> bytes:
    """IPv4/IPv6 packet ``ip`` with its TCP or UDP checksum as checksum offload leaves it."""
    if ip[0] >> 4 == 4:
        hl, proto, src, dst = (ip[0] & 15) * 4, ip[9], ip[12:16], ip[16:20]
    else:
        hl, proto, src, dst = 40, ip[6], ip[8:24], ip[24:40]
    at = {6: 16, 17: 6}.get(proto)
    if at is None or len(ip) < hl + at + 2:
        return ip
    value = 0
    if style == "partial":
        s = _csum_int(_pseudo(src, dst, proto, len(ip) - hl))
        value = s if s else 0xFFFF
    return ip[:hl + at] + value.to_bytes(2, "big") + ip[hl + at + 2:]


def offload_capture(src: str | Path, dst: str | Path, *, style: str = "partial") -> int:
    """Copy classic pcap ``src`` (Ethernet, optionally one 802.1Q tag) to ``dst`` as if it had been
    captured on its servers (the hosts that answer a SYN): their TCP/UDP checksums unfinished
    (`unfinished_checksum`). Returns the number of packets changed."""
    servers: set[bytes] = set()
    changed = 0
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        head = fi.read(24)
        bo = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        if struct.unpack(bo + "I", head[20:24])[0] != DLT_EN10MB:
            raise ValueError("offload_capture: Ethernet captures only")
        fo.write(head)
        rec = struct.Struct(bo + "IIII")
        while len(h := fi.read(16)) == 16:
            frame = fi.read(rec.unpack(h)[2])
            off = 18 if frame[12:14] == b"\x81\x00" else 14
            et = frame[off - 2:off]
            ip = frame[off:]
            if et == b"\x08\x00" and len(ip) >= 20:
                hl, proto, addr = (ip[0] & 15) * 4, ip[9], ip[12:16]
            elif et == b"\x86\xdd" and len(ip) >= 40:
                hl, proto, addr = 40, ip[6], ip[8:24]
            else:
                fo.write(h + frame)
                continue
            if proto == 6 and len(ip) >= hl + 14 and ip[hl + 13] & 0x12 == 0x12:
                servers.add(addr)  # SYN+ACK: a server
            if addr in servers and proto in (6, 17):
                frame = frame[:off] + unfinished_checksum(ip, style)
                changed += 1
            fo.write(h + frame)
    return changed


# --------------------------------------------------------------------------------------------
# TCP sessions
# --------------------------------------------------------------------------------------------

class Segment(NamedTuple):
    """One data segment a send produced (emission order)."""

    ts_ns: int
    offset: int
    """Stream offset of the first byte (0 = first payload byte of the direction)."""
    length: int
    captured: bool
    """False when the tap lost it (the peer still got it)."""
    kind: str = "data"
    """``data``, ``retransmit`` or ``conflict`` (a retransmission with different bytes)."""


class Sent(NamedTuple):
    """What one `Session.send` did."""

    direction: int
    offset: int
    """Stream offset of the first byte of this send."""
    length: int
    segments: list[Segment]

    def lost_ranges(self) -> list[tuple[int, int]]:
        """Byte ranges ``[start, end)`` of this send's data (0 = its first byte) the tap never saw."""
        seen: list[tuple[int, int]] = sorted(
            (s.offset - self.offset, s.offset - self.offset + s.length) for s in self.segments if s.captured)
        lost, pos = [], 0
        for a, b in seen:
            if a > pos:
                lost.append((pos, a))
            pos = max(pos, b)
        if pos < self.length:
            lost.append((pos, self.length))
        return lost

    @property
    def lost_bytes(self) -> int:
        return sum(b - a for a, b in self.lost_ranges())

    @property
    def first_ts_ns(self) -> int:
        return self.segments[0].ts_ns if self.segments else 0

    @property
    def last_ts_ns(self) -> int:
        return max((s.ts_ns for s in self.segments), default=0)


_TS_OPT = _S("!BBBBII")


class Session:
    """One TCP connection as a tap sees it; call `client_send`/`server_send`, then `close`.

    Times are modelled for a tap near the client: the server is ``rtt`` seconds away (round
    trip), the client ``lan_rtt``. Segments leave at ``rate_bps``. The receiver ACKs every
    second in-order segment, at once on out-of-order or duplicate data, and after ``delack``
    for a lone segment unless its own data piggybacks the ACK. Random impairments (``tap_loss``,
    ``loss`` — lost before the tap, so the tap sees a late retransmission —, ``reorder``,
    ``dup``) are probabilities per data segment; `send` takes exact ones per segment index.
    """

    def __init__(self, client: tuple[str, int], server: tuple[str, int], *,
                 rng: random.Random | int = 0, start: float = DEFAULT_START, link: Link | None = None,
                 mss: int | None = None, timestamps: bool = True, handshake: bool = True,
                 rtt: float = 0.02, lan_rtt: float = 0.0003, rate_bps: float = 100e6, delack: float = 0.04,
                 isn: tuple[int | None, int | None] = (None, None), wscale: int = 7, window: int = 4000,
                 ttl: tuple[int, int] = (64, 52), tap_loss: float = 0.0, loss: float = 0.0,
                 reorder: float = 0.0, dup: float = 0.0) -> None:
        self.rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        r = self.rng
        self.ip = (_ip_bytes(client[0]), _ip_bytes(server[0]))
        if len(self.ip[0]) != len(self.ip[1]):
            raise ValueError("client and server must be the same IP version")
        self.v6 = len(self.ip[0]) == 16
        self.ethertype = ETH_IPV6 if self.v6 else ETH_IPV4
        self.port = (client[1], server[1])
        self.link: Link = link or Ethernet()
        self.mss = mss or (1440 if self.v6 else 1460)
        self.timestamps = timestamps
        self.seg_size = self.mss - (12 if timestamps else 0)
        self.rt = (lan_rtt, rtt)
        """Round trip from the tap to the client and to the server."""
        self.rate_bps = rate_bps
        self.delack_ns = int(delack * 1e9)
        self.isn = [isn[0] if isn[0] is not None else r.getrandbits(32),
                    isn[1] if isn[1] is not None else r.getrandbits(32)]
        self.snd = [0, 0]
        """Next stream offset each side sends (FIN counts one)."""
        self.rcv = [0, 0]
        """Contiguous stream offset each side's peer has received (indexed by sender)."""
        self._ooo: list[dict[int, int]] = [{}, {}]
        self.ident = [r.getrandbits(16), r.getrandbits(16)]
        self.flow_label = [r.getrandbits(20), r.getrandbits(20)]
        self.ts_base = [r.getrandbits(31), r.getrandbits(31)]
        self.ttl = ttl
        self.wscale = wscale
        self.window = window
        self.tap_loss, self.loss, self.reorder, self.dup = tap_loss, loss, reorder, dup
        self.now = _us(int(start * 1e9))
        self.last_sender: int | None = None
        self._pending_ack: list[int | None] = [None, None]
        """Time of a delayed ACK each side owes (indexed by the acking side)."""
        self._packets: list[tuple[int, int, bytes]] = []
        self._n = 0
        self.fin = [False, False]
        self.closed = False
        self.capture_from_ns = 0
        if handshake:
            self._handshake()

    # -- packet emission -----------------------------------------------------------------

    def _opts(self, side: int, ts_ns: int, syn: bool) -> bytes:
        o = b""
        if syn:
            o += struct.pack("!BBH", 2, 4, self.mss)
        if self.timestamps:
            tsval = (self.ts_base[side] + ts_ns // 1_000_000) & _M32
            peer = 1 - side
            tsecr = 0 if (syn and side == C2S) else (self.ts_base[peer] + (ts_ns - int(self.rt[peer] * 1e9))
                                                     // 1_000_000) & _M32
            o += _TS_OPT.pack(1, 1, 8, 10, tsval, tsecr)
        if syn:
            o += struct.pack("!BBBB", 1, 3, 3, self.wscale)
        return o

    def _emit(self, side: int, ts_ns: int, flags: int, seq_off: int, payload: bytes = b"") -> None:
        peer = 1 - side
        seq = self.isn[side] + 1 + seq_off
        ack = (self.isn[peer] + 1 + self.rcv[peer]) if flags & ACK else 0
        syn = bool(flags & SYN)
        win = 65535 if syn else self.window
        tcp = _tcp_segment(self.ip[side], self.ip[peer], self.port[side], self.port[peer], seq, ack, flags,
                           win, self._opts(side, ts_ns, syn), payload)
        self.ident[side] = (self.ident[side] + 1) & 0xFFFF
        if self.v6:
            ip = _ipv6(self.ip[side], self.ip[peer], 6, tcp, self.flow_label[side], self.ttl[side])
        else:
            ip = _ipv4(self.ip[side], self.ip[peer], 6, tcp, self.ident[side], self.ttl[side])
        self._n += 1
        self._packets.append((ts_ns, self._n, self.link.wrap(ip, self.ethertype, side == C2S, ts_ns)))

    def _flush_ack(self, side: int, before_ns: int | None = None) -> None:
        """Emit the delayed ACK ``side`` owes, unless its data at ``before_ns`` piggybacks it."""
        t = self._pending_ack[side]
        if t is not None and (before_ns is None or t < before_ns):
            self._emit(side, t, ACK, self.snd[side])
        self._pending_ack[side] = None

    def _handshake(self) -> None:
        t = self.now
        self._emit(C2S, t, SYN, -1)
        t = _us(t + int(self.rt[S2C] * 1e9))
        self._emit(S2C, t, SYN | ACK, -1)
        t = _us(t + int(self.rt[C2S] * 1e9))
        self._emit(C2S, t, ACK, 0)
        self.now = t
        self.last_sender = C2S

    def _gap_ns(self, nbytes: int) -> int:
        base = (nbytes + 78) * 8 / self.rate_bps
        return int(base * 1e9 * (0.85 + 0.3 * self.rng.random()))

    # -- public API -------------------------------------------------------------------------

    def wait(self, seconds: float) -> None:
        """Let time pass (idle connection)."""
        self.now = _us(self.now + int(seconds * 1e9))

    def client_send(self, data: bytes, **kw: object) -> Sent:
        """Send ``data`` from the client; see `send`."""
        return self.send(C2S, data, **kw)  # type: ignore[arg-type]

    def server_send(self, data: bytes, **kw: object) -> Sent:
        """Send ``data`` from the server; see `send`."""
        return self.send(S2C, data, **kw)  # type: ignore[arg-type]

    def send(self, side: int, data: bytes, *, delay: float | None = None, seg_size: int | None = None,
             sizes: Sequence[int] | None = None, drop: Iterable[int] = (),
             late: Mapping[int, int] | None = None,
             swap: Iterable[int] = (), retransmit: Iterable[int] = (),
             conflict: Mapping[int, bytes] | None = None) -> Sent:
        """Send ``data`` from ``side`` (`C2S`/`S2C`) as segments, with the peer's ACKs.

        ``delay``: seconds before the first segment (default: a think time after the peer's last
        data, or back-to-back). ``seg_size``/``sizes``: segment payload size(s) instead of the
        MSS. Impairments name segment indices of this send (negative counts from the end):
        ``drop`` — lost at the tap only (the peer ACKs it: a real gap in the capture);
        ``late`` {i: k} — lost before the tap and retransmitted after k later segments;
        ``swap`` — i arrives after i+1; ``retransmit`` — i is sent again (identical) after the
        next segment; ``conflict`` {i: bytes} — i is sent again with these (same-length) bytes.
        """
        if self.closed or self.fin[side]:
            raise RuntimeError("send after close")
        r = self.rng
        peer = 1 - side
        if delay is None:
            if self.last_sender is None or self.last_sender == side:
                delay = 0.00002 + 0.0002 * r.random()
            else:
                think = (0.0002 + 0.004 * r.random()) if side == S2C else (0.001 + 0.01 * r.random())
                delay = self.rt[side] + think
        t = _us(self.now + int(delay * 1e9))
        self._flush_ack(side, t)
        # cut into segments
        if sizes:
            cuts, pos, k = [], 0, 0
            while pos < len(data):
                n = sizes[k % len(sizes)]
                cuts.append((pos, min(len(data), pos + n)))
                pos += n
                k += 1
        else:
            n = seg_size or self.seg_size
            cuts = [(p, min(len(data), p + n)) for p in range(0, len(data), n)]
        nseg = len(cuts)

        def norm(i: int) -> int:
            return i + nseg if i < 0 else i

        dropped = {norm(i) for i in drop}
        keyed: list[tuple[float, int, str, bytes | None]] = []  # (order key, index, kind, bytes override)
        late = {norm(i): k for i, k in (late or {}).items()}
        for i in swap:
            late[norm(i)] = 1
        for i in retransmit:
            keyed.append((norm(i) + 1.6, norm(i), "retransmit", None))
        for i, b in (conflict or {}).items():
            keyed.append((norm(i) + 1.7, norm(i), "conflict", b))
        if self.tap_loss or self.loss or self.reorder or self.dup:
            for i in range(nseg):
                x = r.random()
                if x < self.tap_loss:
                    dropped.add(i)
                elif x < self.tap_loss + self.loss:
                    late.setdefault(i, r.randint(3, 6))
                elif x < self.tap_loss + self.loss + self.reorder:
                    late.setdefault(i, 1)
                elif x < self.tap_loss + self.loss + self.reorder + self.dup:
                    keyed.append((i + 1.6, i, "retransmit", None))
        for i in range(nseg):
            keyed.append((i + late[i] + 0.5 if i in late else float(i), i, "data", None))
        keyed.sort(key=lambda e: e[0])

        base = self.snd[side]
        segs: list[Segment] = []
        unacked = 0
        last_t = t
        for _key, i, kind, override in keyed:
            a, b = cuts[i]
            if segs:
                t = _us(t + self._gap_ns(b - a))
            if kind == "data" and i in late:
                t = _us(t + int(self.rt[side] * 0.25e9))  # a retransmission comes a little later
            payload = override if override is not None else data[a:b]
            captured = not (kind == "data" and i in dropped)
            flags = ACK | (PSH if i == nseg - 1 else 0)
            if captured:
                self._emit(side, t, flags, base + a, payload)
            segs.append(Segment(t, base + a, b - a, captured, kind))
            last_t = t
            # the receiver
            start, end = base + a, base + b
            ack_t = _us(t + int(self.rt[peer] * 1e9))
            if end <= self.rcv[side] or start > self.rcv[side]:
                if start > self.rcv[side]:
                    ooo = self._ooo[side]
                    ooo[start] = max(ooo.get(start, 0), end)
                self._pending_ack[peer] = None  # superseded by this immediate (duplicate) ACK
                self._emit(peer, ack_t, ACK, self.snd[peer])
                unacked = 0
                continue
            had_hole = bool(self._ooo[side])
            self.rcv[side] = max(self.rcv[side], end)
            self._absorb(side)
            unacked += 1
            if had_hole or unacked >= 2:
                self._pending_ack[peer] = None
                self._emit(peer, ack_t, ACK, self.snd[peer])
                unacked = 0
            else:
                self._pending_ack[peer] = _us(t + int(self.rt[peer] * 1e9) + self.delack_ns)
        self.snd[side] = base + len(data)
        self.now = last_t
        self.last_sender = side
        return Sent(side, base, len(data), segs)

    def _absorb(self, side: int) -> None:
        ooo = self._ooo[side]
        while ooo:
            nxt = self.rcv[side]
            hit = [s for s in ooo if s <= nxt]
            if not hit:
                break
            for s in hit:
                self.rcv[side] = max(self.rcv[side], ooo.pop(s))

    def close(self, by: int = C2S, *, rst: bool = False, delay: float | None = None) -> None:
        """FIN handshake started by ``by`` (the peer answers FIN/ACK, then the last ACK), or an RST."""
        if self.closed:
            return
        other = 1 - by
        d = delay if delay is not None else (0.0005 + 0.002 * self.rng.random()
                                              if self.last_sender in (None, by) else self.rt[by] + 0.001)
        t = _us(self.now + int(d * 1e9))
        self._flush_ack(by, t)
        self._flush_ack(other, t)
        if rst:
            self._emit(by, t, RST | ACK, self.snd[by])
            self.closed = True
            self.now = t
            return
        self._emit(by, t, FIN | ACK, self.snd[by])
        self.snd[by] += 1
        self.rcv[by] += 1
        self.fin[by] = True
        t = _us(t + int(self.rt[other] * 1e9))
        self._emit(other, t, FIN | ACK, self.snd[other])
        self.snd[other] += 1
        self.rcv[other] += 1
        self.fin[other] = True
        t = _us(t + int(self.rt[by] * 1e9))
        self._emit(by, t, ACK, self.snd[by])
        self.now = t
        self.closed = True

    def http(self, request: bytes, response: bytes | None = None,
             **server_kw: object) -> tuple[Sent, Sent | None]:
        """One exchange: the client sends ``request``, the server answers ``response``."""
        req = self.client_send(request)
        resp = self.server_send(response, **server_kw) if response is not None else None
        return req, resp

    def frames(self) -> list[tuple[int, bytes]]:
        """All captured frames (``(ts_ns, frame)``) in time order, from `capture_from_ns` on."""
        for side in (C2S, S2C):
            self._flush_ack(side)
        self._packets.sort()
        cut = self.capture_from_ns
        return [(ts, f) for ts, _, f in self._packets if ts >= cut]

    def drain(self, before_ns: int | None = None) -> list[tuple[int, bytes]]:
        """Remove and return the frames emitted so far (time order; all if ``before_ns`` is None)."""
        if before_ns is None:
            for side in (C2S, S2C):
                self._flush_ack(side)
        self._packets.sort()
        if before_ns is None:
            out, self._packets = self._packets, []
        else:
            k = 0
            while k < len(self._packets) and self._packets[k][0] < before_ns:
                k += 1
            out, self._packets = self._packets[:k], self._packets[k:]
        cut = self.capture_from_ns
        return [(ts, f) for ts, _, f in out if ts >= cut]


# --------------------------------------------------------------------------------------------
# SCTP associations
# --------------------------------------------------------------------------------------------

def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the SCTP checksum (RFC 9260 appendix B)."""
    c = 0xFFFFFFFF
    t = _CRC32C
    for b in data:
        c = t[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _sctp_chunk(ctype: int, flags: int, value: bytes) -> bytes:
    body = struct.pack("!BBH", ctype, flags, 4 + len(value)) + value
    return body + bytes(-len(body) % 4)


class SctpAssociation:
    """One SCTP association as a tap sees it (RFC 9260): the four-way handshake, DATA (or I-DATA,
    RFC 8260) chunks fragmenting each message to the path MTU, delayed SACKs, and SHUTDOWN or
    ABORT. `send` takes the stream, unordered delivery and tap impairments per chunk index.
    """

    def __init__(self, client: tuple[str, int], server: tuple[str, int], *, rng: random.Random | int = 0,
                 start: float = DEFAULT_START, link: Link | None = None, mtu: int = 1500, idata: bool = False,
                 rtt: float = 0.02, handshake: bool = True) -> None:
        self.rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        self.ip = (_ip_bytes(client[0]), _ip_bytes(server[0]))
        self.v6 = len(self.ip[0]) == 16
        self.port = (client[1], server[1])
        self.link: Link = link or Ethernet()
        self.idata = idata
        self.max_data = mtu - (40 if self.v6 else 20) - 12 - (20 if idata else 16)
        self.rtt = rtt
        self.tag = [self.rng.getrandbits(32) | 1, self.rng.getrandbits(32) | 1]
        self.tsn = [self.rng.getrandbits(32), self.rng.getrandbits(32)]
        self.ssn: list[dict[int, int]] = [{}, {}]
        self.ident = [self.rng.getrandbits(16), self.rng.getrandbits(16)]
        self.now = _us(int(start * 1e9))
        self._packets: list[tuple[int, int, bytes]] = []
        self._n = 0
        self.closed = False
        if handshake:
            self._handshake()

    def _emit(self, side: int, ts: int, chunks: bytes, vtag: int | None = None) -> None:
        peer = 1 - side
        tag = self.tag[peer] if vtag is None else vtag
        hdr = struct.pack("!HHII", self.port[side], self.port[peer], tag, 0)
        pkt = hdr + chunks
        pkt = pkt[:8] + crc32c(pkt).to_bytes(4, "little") + pkt[12:]
        self.ident[side] = (self.ident[side] + 1) & 0xFFFF
        if self.v6:
            ip = _ipv6(self.ip[side], self.ip[peer], 132, pkt, 0, 64)
        else:
            ip = _ipv4(self.ip[side], self.ip[peer], 132, pkt, self.ident[side], 64)
        self._n += 1
        et = ETH_IPV6 if self.v6 else ETH_IPV4
        self._packets.append((ts, self._n, self.link.wrap(ip, et, side == C2S, ts)))

    def _init(self, ctype: int, side: int, extra: bytes = b"") -> bytes:
        return _sctp_chunk(ctype, 0, struct.pack("!IIHHI", self.tag[side], 65536, 10, 10, self.tsn[side]) + extra)

    def _handshake(self) -> None:
        t = self.now
        half = int(self.rtt * 5e8)
        cookie = self.rng.randbytes(32)
        self._emit(C2S, t, self._init(1, C2S), vtag=0)
        self._emit(S2C, t + 2 * half, self._init(2, S2C, struct.pack("!HH", 7, 4 + len(cookie)) + cookie))
        self._emit(C2S, t + 2 * half + 50_000, _sctp_chunk(10, 0, cookie))
        self._emit(S2C, t + 4 * half, _sctp_chunk(11, 0, b""))
        self.now = _us(t + 4 * half + 100_000)

    def _data_chunk(self, side: int, tsn: int, stream: int, seq: int, fsn: int, flags: int, ppid: int,
                    data: bytes) -> bytes:
        if self.idata:
            last = ppid if flags & 0x02 else fsn
            return _sctp_chunk(64, flags, struct.pack("!IHHII", tsn, stream, 0, seq, last) + data)
        return _sctp_chunk(0, flags, struct.pack("!IHHI", tsn, stream, seq, ppid) + data)

    def send(self, side: int, data: bytes, *, stream: int = 0, unordered: bool = False, ppid: int = 0,
             drop: Iterable[int] = (), swap: Iterable[int] = (), dup: Iterable[int] = ()) -> list[int]:
        """One user message from ``side`` on ``stream``; returns the TSNs its chunks took.

        ``drop``: chunk indices the tap loses (the peer's SACK still covers them); ``swap``:
        chunk i is captured after chunk i+1; ``dup``: chunk i is captured twice.
        """
        if self.closed:
            raise RuntimeError("send after close")
        pieces = [data[i:i + self.max_data] for i in range(0, len(data), self.max_data)] or [b""]
        seq = self.ssn[side].get(stream, 0)
        self.ssn[side][stream] = (seq + 1) & (0xFFFFFFFF if self.idata else 0xFFFF)
        drop, swap, dup = set(drop), set(swap), set(dup)
        t = self.now + 20_000
        tsns, order = [], []
        for k, piece in enumerate(pieces):
            flags = (0x04 if unordered else 0) | (0x02 if k == 0 else 0) | (0x01 if k == len(pieces) - 1 else 0)
            tsn = self.tsn[side]
            self.tsn[side] = (tsn + 1) & 0xFFFFFFFF
            tsns.append(tsn)
            order.append((k + 1.5 if k in swap else float(k), k,
                          self._data_chunk(side, tsn, stream, seq, k, flags, ppid, piece)))
        order.sort(key=lambda e: e[0])
        step = max(1000, int(len(data) * 8 / 100e6 * 1e9 / max(1, len(pieces))))
        got: set[int] = set()
        upto = -1  # the peer has every chunk up to this index
        for n, (_, k, chunk) in enumerate(order):
            t += step
            if k not in drop:  # a dropped chunk reached the peer all the same
                self._emit(side, t, chunk)
            if k in dup:
                self._emit(side, t + 500, chunk)
            got.add(k)
            while upto + 1 in got:
                upto += 1
            if upto >= 0 and (n % 2 == 1 or n == len(order) - 1):  # a delayed SACK every second chunk
                sack = struct.pack("!IIHH", tsns[upto], 65536, 0, 0)
                self._emit(1 - side, t + int(self.rtt * 1e9), _sctp_chunk(3, 0, sack))
        self.now = _us(t + int(self.rtt * 1e9) + 1000)
        return tsns

    def client_send(self, data: bytes, **kw: object) -> list[int]:
        return self.send(C2S, data, **kw)  # type: ignore[arg-type]

    def server_send(self, data: bytes, **kw: object) -> list[int]:
        return self.send(S2C, data, **kw)  # type: ignore[arg-type]

    def http(self, request: bytes, response: bytes, *, stream: int = 0, **server_kw: object) -> None:
        """One HTTP exchange on ``stream``: the request, then the response, each one message."""
        self.send(C2S, request, stream=stream)
        self.send(S2C, response, stream=stream, **server_kw)  # type: ignore[arg-type]

    def close(self, *, abort: bool = False, by: int = C2S) -> None:
        """SHUTDOWN, SHUTDOWN-ACK, SHUTDOWN-COMPLETE (or one ABORT) from ``by``."""
        if self.closed:
            return
        t = self.now + 100_000
        half = int(self.rtt * 5e8)
        if abort:
            self._emit(by, t, _sctp_chunk(6, 0, b""))
        else:
            cum = (self.tsn[1 - by] - 1) & 0xFFFFFFFF
            self._emit(by, t, _sctp_chunk(7, 0, struct.pack("!I", cum)))
            self._emit(1 - by, t + 2 * half, _sctp_chunk(8, 0, b""))
            self._emit(by, t + 4 * half, _sctp_chunk(14, 0, b""))
        self.now = _us(t + 4 * half)
        self.closed = True

    def frames(self) -> list[tuple[int, bytes]]:
        """All captured frames (``(ts_ns, frame)``) in time order."""
        self._packets.sort()
        return [(_us(ts), f) for ts, _, f in self._packets]


def _us(ns: int) -> int:
    """Round down to whole microseconds (what a µs pcap stores), so sort order survives writing."""
    return ns - ns % 1000


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

class Writer:
    """pcap (µs) or pcapng writer; the format comes from ``fmt`` or the suffix."""

    def __init__(self, path: str | Path | IO[bytes], linktype: int = DLT_EN10MB, *,
                 fmt: str | None = None, snaplen: int = 262144) -> None:
        if isinstance(path, str | Path):
            self._f: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in close()
            self._own = True
            fmt = fmt or ("pcapng" if str(path).endswith(".pcapng") else "pcap")
        else:
            self._f, self._own = path, False
            fmt = fmt or "pcap"
        self.fmt = fmt
        self.linktype = linktype
        if fmt == "pcapng":
            self._w: PcapWriter | PcapngWriter = PcapngWriter(self._f, snaplen=snaplen, linktype=linktype)
        elif fmt == "pcap":
            self._w = PcapWriter(self._f, snaplen=snaplen, linktype=linktype)
        else:
            raise ValueError(f"unknown capture format {fmt!r}")
        self.count = 0
        self.bytes = 0

    def write(self, ts_ns: int, frame: bytes) -> None:
        """Write one frame (``ts_ns`` is truncated to microseconds)."""
        self._w.write(frame, ts_ns // 1000)
        self.count += 1
        self.bytes += len(frame)

    def write_all(self, frames: Iterable[tuple[int, bytes]]) -> int:
        n = 0
        for ts, f in frames:
            self.write(ts, f)
            n += 1
        return n

    def close(self) -> None:
        self._f.flush()
        if self._own:
            self._f.close()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FrameMerger:
    """Merge frames of many sessions into time order while writing, holding only the pending ones."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer
        self._heap: list[tuple[int, int, bytes]] = []
        self._n = 0

    def push(self, frames: Iterable[tuple[int, bytes]]) -> None:
        for ts, f in frames:
            self._n += 1
            heapq.heappush(self._heap, (ts, self._n, f))

    def flush(self, before_ns: int | None = None) -> None:
        """Write every pending frame earlier than ``before_ns`` (all when None)."""
        h, w = self._heap, self.writer
        while h and (before_ns is None or h[0][0] < before_ns):
            ts, _, f = heapq.heappop(h)
            w.write(ts, f)


class Trace:
    """A capture under construction: TCP sessions, UDP packets, one clock and one seeded RNG.

    `session` hands each session its own RNG drawn from the trace's, so adding noise after a
    session does not change the session's bytes.
    """

    def __init__(self, seed: int = 0, start: float = DEFAULT_START, link: Link | None = None) -> None:
        self.rng = random.Random(seed)
        self.start = start
        self.link: Link = link or Ethernet()
        self.sessions: list[Session] = []
        self.associations: list[SctpAssociation] = []
        self._udp: list[tuple[int, bytes]] = []
        self._ident = self.rng.getrandbits(16)

    def session(self, client: tuple[str, int], server: tuple[str, int], *, at: float = 0.0,
                **kw: object) -> Session:
        """A new `Session` starting ``at`` seconds after the trace start."""
        kw.setdefault("link", self.link)
        s = Session(client, server, rng=random.Random(self.rng.getrandbits(64)),
                    start=self.start + at, **kw)  # type: ignore[arg-type]
        self.sessions.append(s)
        return s

    def sctp(self, client: tuple[str, int], server: tuple[str, int], *, at: float = 0.0,
             **kw: object) -> SctpAssociation:
        """A new `SctpAssociation` starting ``at`` seconds after the trace start."""
        kw.setdefault("link", self.link)
        a = SctpAssociation(client, server, rng=random.Random(self.rng.getrandbits(64)),
                            start=self.start + at, **kw)  # type: ignore[arg-type]
        self.associations.append(a)
        return a

    def udp(self, src: tuple[str, int], dst: tuple[str, int], payload: bytes, *, at: float,
            link: Link | None = None, to_server: bool = True) -> None:
        """One UDP datagram ``at`` seconds after the trace start."""
        self._ident = (self._ident + 1) & 0xFFFF
        ip, et = udp_packet(src[0], dst[0], src[1], dst[1], payload, ident=self._ident)
        ts = _us(int((self.start + at) * 1e9))
        self._udp.append((ts, (link or self.link).wrap(ip, et, to_server, ts)))

    def dns(self, client: str, resolver: str, name: str, answer: str, *, at: float, rtt: float = 0.004,
            link: Link | None = None) -> None:
        """A DNS A/AAAA query and its answer."""
        qid = self.rng.getrandbits(16)
        sport = self.rng.randint(32768, 60999)
        self.udp((client, sport), (resolver, 53), dns_query(name, qid, aaaa=":" in answer), at=at, link=link)
        self.udp((resolver, 53), (client, sport), dns_response(name, qid, answer), at=at + rtt, link=link,
                 to_server=False)

    def frames(self) -> Iterator[tuple[int, bytes]]:
        """All frames in time order."""
        self._udp.sort()
        return heapq.merge(self._udp, *(s.frames() for s in self.sessions),
                           *(a.frames() for a in self.associations))

    def write(self, path: str | Path, *, fmt: str | None = None, linktype: int | None = None) -> int:
        """Write the capture; returns the number of frames."""
        with Writer(path, linktype if linktype is not None else self.link.linktype, fmt=fmt) as w:
            return w.write_all(self.frames())


# --------------------------------------------------------------------------------------------
# HTTP messages
# --------------------------------------------------------------------------------------------

USER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"

_REASONS = {200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content", 301: "Moved Permanently",
            302: "Found", 303: "See Other", 304: "Not Modified", 400: "Bad Request", 403: "Forbidden",
            404: "Not Found", 500: "Internal Server Error"}


def _hdrs(fields: Iterable[tuple[str, str]]) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in fields)


def http_request(method: str, path: str, host: str, *, body: bytes = b"", content_type: str | None = None,
                 headers: Sequence[tuple[str, str]] = (), user_agent: str = USER_AGENT,
                 version: str = "HTTP/1.1", chunk: int | None = None) -> bytes:
    """A request; a body gets Content-Length (or chunked framing with ``chunk``)."""
    h = [("Host", host), ("User-Agent", user_agent),
         ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
         ("Accept-Language", "en-US,en;q=0.5"), ("Accept-Encoding", "gzip, deflate")]
    h += list(headers)
    if content_type:
        h.append(("Content-Type", content_type))
    if body or method in ("POST", "PUT"):
        if chunk:
            h.append(("Transfer-Encoding", "chunked"))
            body = chunked(body, chunk)
        else:
            h.append(("Content-Length", str(len(body))))
    return f"{method} {path} {version}\r\n".encode() + _hdrs(h) + b"\r\n" + body


def http_response(status: int = 200, body: bytes = b"", *,
                  content_type: str | None = "text/html; charset=utf-8",
                  encoding: str | None = None, framing: str = "length", chunk: int | Sequence[int] = 4096,
                  headers: Sequence[tuple[str, str]] = (), version: str = "HTTP/1.1",
                  date: float | None = None, server: str = "nginx/1.22.1", send_body: bool = True) -> bytes:
    """A response. ``body`` is the entity (before ``encoding``: ``gzip``/``deflate``);
    ``framing``: ``length`` (Content-Length), ``chunked``, ``close`` (delimited by the server
    closing; also pass ``version="HTTP/1.0"`` if you like) or ``none`` (no framing header).
    ``send_body=False`` keeps the headers but omits the body (HEAD)."""
    h: list[tuple[str, str]] = [("Server", server)]
    if date is not None:
        h.append(("Date", formatdate(date, usegmt=True)))
    if content_type and status not in (204, 304):
        h.append(("Content-Type", content_type))
    h += list(headers)
    if encoding == "gzip":
        body = gzip_bytes(body)
        h.append(("Content-Encoding", "gzip"))
    elif encoding == "deflate":
        body = zlib.compress(body, 6)
        h.append(("Content-Encoding", "deflate"))
    if framing == "length":
        h.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        h.append(("Transfer-Encoding", "chunked"))
        body = chunked(body, chunk)
    elif framing == "close":
        h.append(("Connection", "close"))
    reason = _REASONS.get(status, "Unknown")
    return f"{version} {status} {reason}\r\n".encode() + _hdrs(h) + b"\r\n" + (body if send_body else b"")


def chunked(data: bytes, chunk: int | Sequence[int] = 4096, *,
            trailers: Sequence[tuple[str, str]] = (),
            size_line: Callable[[int], bytes] | None = None) -> bytes:
    """Chunked transfer coding of ``data`` (chunk sizes cycle through ``chunk``).

    ``size_line(n)`` writes the chunk-size line of an ``n``-byte chunk (without its CRLF), e.g.
    ``lambda n: b"%xx" % n`` for the junk after the hex digits that evasion tools add.
    """
    line = size_line or (lambda n: b"%x" % n)
    sizes = [chunk] if isinstance(chunk, int) else list(chunk)
    out, pos, k = [], 0, 0
    while pos < len(data):
        n = sizes[k % len(sizes)]
        piece = data[pos:pos + n]
        out.append(line(len(piece)) + b"\r\n" + piece + b"\r\n")
        pos += n
        k += 1
    out.append(line(0) + b"\r\n" + _hdrs(trailers) + b"\r\n")
    return b"".join(out)


def gzip_bytes(data: bytes, level: int = 6) -> bytes:
    """Deterministic gzip (mtime 0, no file name)."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def multipart_body(fields: Sequence[tuple[str, str]] = (),
                   files: Sequence[tuple[str, str, str, bytes]] = (),
                   boundary: str = "----geckoformboundary7d3f0a1b2c4e") -> tuple[bytes, str]:
    """multipart/form-data with text ``fields`` (name, value) and ``files`` (name, filename,
    content type, data); returns (body, Content-Type value)."""
    b = boundary.encode()
    out = []
    for name, value in fields:
        out.append(b"--" + b + b'\r\nContent-Disposition: form-data; name="' + name.encode() + b'"\r\n\r\n'
                   + value.encode() + b"\r\n")
    for name, filename, ctype, data in files:
        out.append(b"--" + b + b'\r\nContent-Disposition: form-data; name="' + name.encode()
                   + b'"; filename="' + filename.encode() + b'"\r\nContent-Type: ' + ctype.encode()
                   + b"\r\n\r\n" + data + b"\r\n")
    out.append(b"--" + b + b"--\r\n")
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def range_response(data: bytes, start: int, end: int | None = None, *,
                   content_type: str = "application/octet-stream",
                   etag: str | None = None, headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """A 206 response carrying ``data[start:end+1]`` (``end`` inclusive, default: the last byte)."""
    end = len(data) - 1 if end is None else min(end, len(data) - 1)
    h = [("Content-Range", f"bytes {start}-{end}/{len(data)}"), ("Accept-Ranges", "bytes")]
    if etag:
        h.append(("ETag", f'"{etag}"'))
    return http_response(206, data[start:end + 1], content_type=content_type, headers=h + list(headers))


# --------------------------------------------------------------------------------------------
# Proxies
# --------------------------------------------------------------------------------------------

def socks5_handshake(host: str, port: int, *, auth: tuple[str, str] | None = None,
                     bound: tuple[str, int] = ("192.0.2.99", 40001)) -> tuple[list[bytes], list[bytes]]:
    """A SOCKS5 CONNECT (RFC 1928; username/password per RFC 1929 with ``auth``): the client's
    messages and the proxy's answers, in order. ``host``: an IPv4/IPv6 literal or a name."""
    try:
        ip = ipaddress.ip_address(host)
        addr = (b"\x01" if ip.version == 4 else b"\x04") + ip.packed
    except ValueError:
        addr = b"\x03" + bytes([len(host)]) + host.encode()
    b_ip = ipaddress.ip_address(bound[0])
    reply = b"\x05\x00\x00" + (b"\x01" if b_ip.version == 4 else b"\x04") + b_ip.packed + struct.pack("!H", bound[1])
    request = b"\x05\x01\x00" + addr + struct.pack("!H", port)
    if auth is None:
        return [b"\x05\x01\x00", request], [b"\x05\x00", reply]
    user, pw = auth[0].encode(), auth[1].encode()
    creds = b"\x01" + bytes([len(user)]) + user + bytes([len(pw)]) + pw
    return [b"\x05\x02\x00\x02", creds, request], [b"\x05\x02", b"\x01\x00", reply]


def socks4_handshake(host: str, port: int, *, user: str = "") -> tuple[list[bytes], list[bytes]]:
    """A SOCKS4 CONNECT to an IPv4 ``host``, or SOCKS4a (the name after the user id) to a name:
    the client's request and the proxy's grant."""
    try:
        dst, name = ipaddress.IPv4Address(host).packed, b""
    except ValueError:
        dst, name = b"\0\0\0\x01", host.encode() + b"\0"
    return ([b"\x04\x01" + struct.pack("!H", port) + dst + user.encode() + b"\0" + name],
            [b"\x00\x5a" + struct.pack("!H", port) + dst])


# --------------------------------------------------------------------------------------------
# Non-HTTP noise
# --------------------------------------------------------------------------------------------

def _qname(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".")) + b"\0"


def dns_query(name: str, qid: int, *, aaaa: bool = False) -> bytes:
    """A recursive DNS query for A (or AAAA) ``name``."""
    qtype = 28 if aaaa else 1
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + _qname(name) + struct.pack("!HH", qtype, 1)


def dns_response(name: str, qid: int, answer: str, ttl: int = 300) -> bytes:
    """The answer to `dns_query` with one A/AAAA record."""
    rdata = _ip_bytes(answer)
    qtype = 28 if len(rdata) == 16 else 1
    return (struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + _qname(name) + struct.pack("!HH", qtype, 1)
            + struct.pack("!HHHIH", 0xC00C, qtype, 1, ttl, len(rdata)) + rdata)


def _tls_record(ctype: int, body: bytes, version: int = 0x0303) -> bytes:
    return struct.pack("!BHH", ctype, version, len(body)) + body


def _ext(etype: int, data: bytes) -> bytes:
    return struct.pack("!HH", etype, len(data)) + data


def tls_client_hello(rng: random.Random, sni: str) -> bytes:
    """A TLS 1.3-style ClientHello record with SNI (parses in Wireshark)."""
    host = sni.encode()
    exts = (_ext(0, struct.pack("!HBH", len(host) + 3, 0, len(host)) + host)
            + _ext(10, struct.pack("!HHHH", 6, 0x001D, 0x0017, 0x0018))
            + _ext(13, struct.pack("!HHHHH", 8, 0x0403, 0x0804, 0x0401, 0x0805))
            + _ext(43, struct.pack("!BHH", 4, 0x0304, 0x0303))
            + _ext(51, struct.pack("!HHH", 36, 0x001D, 32) + rng.randbytes(32)))
    suites = struct.pack("!HHHHHH", 10, 0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F)
    body = (struct.pack("!H", 0x0303) + rng.randbytes(32) + b"\x20" + rng.randbytes(32) + suites + b"\x01\x00"
            + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return _tls_record(22, hs, 0x0301)


def tls_server_hello(rng: random.Random) -> bytes:
    """ServerHello + ChangeCipherSpec + an encrypted-looking handshake record."""
    exts = _ext(43, struct.pack("!H", 0x0304)) + _ext(51, struct.pack("!HH", 0x001D, 32) + rng.randbytes(32))
    body = (struct.pack("!H", 0x0303) + rng.randbytes(32) + b"\x20" + rng.randbytes(32)
            + struct.pack("!HB", 0x1301, 0)
            + struct.pack("!H", len(exts)) + exts)
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    finished = _tls_record(23, rng.randbytes(rng.randint(2000, 4000)))
    return _tls_record(22, hs) + _tls_record(20, b"\x01") + finished


def tls_records(rng: random.Random, total: int, max_record: int = 16384) -> bytes:
    """``total`` bytes (roughly) of TLS application-data records full of random bytes."""
    out, n = [], 0
    while n < total:
        k = min(max_record, max(1, total - n))
        out.append(_tls_record(23, rng.randbytes(k + 17)))
        n += k
    return b"".join(out)


def ssh_banner(server: bool = False) -> bytes:
    """An SSH identification string."""
    return b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n" if server else b"SSH-2.0-OpenSSH_9.6\r\n"


# --------------------------------------------------------------------------------------------
# Sample content
# --------------------------------------------------------------------------------------------

_WORD_TEXT = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but "
    "have an they you were her all she there would their we him been has when who will more no if out "
    "so said what up its about into than them can only other new some could time these two may then "
    "do first any my now such like our over man me even most made after also did many before must "
    "through back years where much your way well down should because each just those people how too "
    "little state good very make world still own see men work long get here between both life being "
    "under never day same another know while last might office meeting schedule budget report quarter "
    "review project team customer service order invoice delivery weather lunch coffee printer network "
    "update release planning summary agenda minutes holiday training"
)
_WORDS = tuple(_WORD_TEXT.split(" "))


def text(rng: random.Random, words: int, *, sentence: tuple[int, int] = (6, 16)) -> str:
    """Bland English-looking prose (compressible like real text)."""
    out, n = [], 0
    while n < words:
        k = rng.randint(*sentence)
        s = " ".join(rng.choice(_WORDS) for _ in range(k))
        out.append(s[0].upper() + s[1:] + ".")
        n += k
    return " ".join(out)


def html_page(title: str, paragraphs: Sequence[str], *, css: Sequence[str] = (), js: Sequence[str] = (),
              images: Sequence[str] = (), links: Sequence[tuple[str, str]] = ()) -> bytes:
    """A small, well-formed HTML5 page."""
    from html import escape

    head = [f'<link rel="stylesheet" href="{c}">' for c in css]
    head += [f'<script src="{j}" defer></script>' for j in js]
    body = [f"<h1>{escape(title)}</h1>"]
    body += [f'<img src="{i}" alt="">' for i in images]
    body += [f"<p>{escape(p)}</p>" for p in paragraphs]
    if links:
        body.append("<ul>" + "".join(f'<li><a href="{h}">{escape(t)}</a></li>' for h, t in links) + "</ul>")
    doc = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" + escape(title)
           + "</title>\n" + "\n".join(head) + "\n</head>\n<body>\n" + "\n".join(body)
           + "\n</body>\n</html>\n")
    return doc.encode()


def _draw(rng: random.Random, width: int, height: int, label: str):  # -> PIL.Image.Image
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), tuple(rng.randint(200, 255) for _ in range(3)))
    d = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randint(10, width // 2), y0 + rng.randint(10, height // 2)
        color = tuple(rng.randint(0, 255) for _ in range(3))
        if rng.random() < 0.5:
            d.rectangle((x0, y0, x1, y1), fill=color)
        else:
            d.ellipse((x0, y0, x1, y1), fill=color, outline=(0, 0, 0))
    for k in range(0, width, max(8, width // 20)):
        d.line((k, height - 1, k + height // 3, 0), fill=(90, 90, 90), width=1)
    if label:
        d.rectangle((8, 8, 16 + 6 * len(label), 28), fill=(255, 255, 255))
        d.text((12, 12), label, fill=(0, 0, 0))
    return img


def png_image(rng: random.Random, width: int = 320, height: int = 200, label: str = "") -> bytes:
    """A drawn PNG (shapes and a text label), deterministic for a given RNG state."""
    buf = io.BytesIO()
    _draw(rng, width, height, label).save(buf, "PNG", optimize=False)
    return buf.getvalue()


def jpeg_image(rng: random.Random, width: int = 640, height: int = 400, label: str = "",
               quality: int = 85) -> bytes:
    """A drawn JPEG (with some noise so it compresses like a photo)."""
    from PIL import Image

    img = _draw(rng, width, height, label)
    noise = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    img = Image.blend(img, noise, 0.15)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def fake_jpeg(rng: random.Random, size: int) -> bytes:
    """A ``size``-byte JFIF-looking blob (real headers, random entropy-coded data): cheap bulk images."""
    head = (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x48\x00\x48\x00\x00"
            b"\xff\xdb\x00\x43\x00" + bytes(range(1, 65))
            + b"\xff\xc0\x00\x11\x08\x04\x38\x07\x80\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
            b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00")
    n = max(0, size - len(head) - 2)
    return head + rng.randbytes(n).replace(b"\xff", b"\xfe") + b"\xff\xd9"


def fake_png(rng: random.Random, size: int) -> bytes:
    """A valid ``~size``-byte PNG (noisy rows in a stored, i.e. uncompressed, deflate stream)."""
    width = 512
    rows = max(1, (size - 100) // (width * 3 + 1))
    raw = b"".join(b"\0" + rng.randbytes(width * 3) for _ in range(rows))

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack("!I", len(d)) + t + d + struct.pack("!I", zlib.crc32(t + d))

    ihdr = struct.pack("!IIBBBBB", width, rows, 8, 2, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(raw, 0))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + idat + chunk(b"IEND", b"")


def _pdf_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_document(title: str, lines: Sequence[str], *, compress: bool = True,
                 lines_per_page: int = 46) -> bytes:
    """A valid PDF 1.4 with Helvetica text (one ``Tj`` per line; FlateDecode streams if ``compress``)."""
    pages = [list(lines[i:i + lines_per_page]) for i in range(0, max(1, len(lines)), lines_per_page)] or [[]]
    npages = len(pages)
    # objects: 1 catalog, 2 pages, 3 font, 4 info, then (page, content) pairs
    objs: dict[int, bytes] = {}
    kids = " ".join(f"{5 + 2 * i} 0 R" for i in range(npages))
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objs[2] = f"<< /Type /Pages /Kids [{kids}] /Count {npages} >>".encode()
    objs[3] = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    objs[4] = f"<< /Title ({_pdf_escape(title)}) /Producer (tapsift synth) >>".encode("latin-1")
    for i, page in enumerate(pages):
        body = ["BT", "/F1 11 Tf", "14 TL", "72 750 Td"]
        if i == 0:
            body += ["/F1 16 Tf", f"({_pdf_escape(title)}) Tj", "T* T*", "/F1 11 Tf"]
        body += [f"({_pdf_escape(ln)}) Tj T*" for ln in page]
        body.append("ET")
        stream = "\n".join(body).encode("latin-1", "replace")
        extra = b""
        if compress:
            stream = zlib.compress(stream, 6)
            extra = b" /Filter /FlateDecode"
        objs[5 + 2 * i] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {6 + 2 * i} 0 R "
                           "/Resources << /Font << /F1 3 0 R >> >> >>").encode()
        objs[6 + 2 * i] = b"<< /Length %d" % len(stream) + extra + b" >>\nstream\n" + stream + b"\nendstream"
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num in sorted(objs):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objs[num] + b"\nendobj\n"
    xref = len(out)
    n = max(objs) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % n
    for num in range(1, n):
        out += b"%010d 00000 n \n" % offsets[num]
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (n, xref)
    return bytes(out)


def docx_document(title: str, paragraphs: Sequence[str], *, author: str = "Office User") -> bytes:
    """A minimal valid OOXML Word document (zip with fixed timestamps, so deterministic)."""
    from xml.sax.saxutils import escape

    W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    ct = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
          '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
          '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
          '<Default Extension="xml" ContentType="application/xml"/>'
          '<Override PartName="/word/document.xml" '
          'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
          '<Override PartName="/docProps/core.xml" ContentType="application/vnd.openxmlformats-package.'
          'core-properties+xml"/></Types>')
    rels = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{R}/officeDocument" Target="word/document.xml"/>'
            '<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/package/2006/relationships/'
            'metadata/core-properties" Target="docProps/core.xml"/></Relationships>')
    paras = [f'<w:p><w:pPr><w:pStyle w:val="Title"/></w:pPr><w:r><w:t>{escape(title)}</w:t></w:r></w:p>']
    paras += [f'<w:p><w:r><w:t xml:space="preserve">{escape(p)}</w:t></w:r></w:p>' for p in paragraphs]
    doc = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
           f'<w:document xmlns:w="{W}" xmlns:r="{R}"><w:body>' + "".join(paras)
           + '<w:sectPr><w:pgSz w:w="11906" w:h="16838"/></w:sectPr></w:body></w:document>')
    core = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            '<cp:coreProperties '
            'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
            f"<dc:title>{escape(title)}</dc:title><dc:creator>{escape(author)}</dc:creator>"
            '<dcterms:created xsi:type="dcterms:W3CDTF">2023-11-14T09:00:00Z</dcterms:created>'
            "</cp:coreProperties>")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in (("[Content_Types].xml", ct), ("_rels/.rels", rels), ("word/document.xml", doc),
                           ("docProps/core.xml", core)):
            info = zipfile.ZipInfo(name, date_time=(2023, 11, 14, 9, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data.encode())
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# RAR archives (no free RAR writer exists: written by hand from rarlab's format technotes)
# --------------------------------------------------------------------------------------------

def _vint(n: int) -> bytes:
    """RAR5 variable-length integer: 7 bits per byte, least significant first, high bit = more."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _rar5_block(htype: int, flags: int, fields: bytes, *, extra: bytes = b"", data: bytes = b"") -> bytes:
    """One RAR5 block: CRC32, header size, type, flags, [extra size], [data size], fields, extra, data."""
    if extra:
        flags |= 0x0001
    if data:
        flags |= 0x0002
    body = _vint(htype) + _vint(flags) + (_vint(len(extra)) if extra else b"") + (_vint(len(data)) if data else b"")
    body += fields + extra
    head = _vint(len(body)) + body
    return struct.pack("<I", zlib.crc32(head)) + head + data


def rar5_archive(files: Sequence[tuple[str, bytes]], *, encrypted: Sequence[str] = (),
                 encrypt_headers: bool = False, mtime: int = 1_700_000_000) -> bytes:
    """A RAR5 archive of stored (method 0) members, per the RAR 5.0 technote.

    Members named in ``encrypted`` carry a file encryption record (AES-256, random salt and IV)
    and random bytes as data; ``encrypt_headers`` puts an archive encryption header after the
    signature (what ``rar -hp`` writes), so nothing after it can be read without the password.
    """
    rng = random.Random(len(files))
    out = bytearray(b"Rar!\x1a\x07\x01\x00")
    if encrypt_headers:
        out += _rar5_block(4, 0, _vint(0) + _vint(0) + bytes([15]) + rng.randbytes(16))
        return bytes(out + rng.randbytes(64))
    out += _rar5_block(1, 0, _vint(0))  # main archive header, no archive flags
    for name, data in files:
        raw = name.encode()
        extra = b""
        if name in encrypted:
            rec = _vint(0) + _vint(0) + bytes([15]) + rng.randbytes(16) + rng.randbytes(16)  # AES-256, salt, IV
            extra = _vint(len(rec) + 1) + _vint(0x01) + rec
            data = rng.randbytes(len(data) + 16 - len(data) % 16)
        file_flags = 0x0002 | 0x0004  # mtime and CRC32 present
        fields = (_vint(file_flags) + _vint(len(data)) + _vint(0o100644) + struct.pack("<I", mtime)
                  + struct.pack("<I", zlib.crc32(data)) + _vint(0) + _vint(1) + _vint(len(raw)) + raw)
        out += _rar5_block(2, 0, fields, extra=extra, data=data)
    out += _rar5_block(5, 0, _vint(0))
    return bytes(out)


def rar4_archive(files: Sequence[tuple[str, bytes]], *, encrypted: Sequence[str] = ()) -> bytes:
    """A RAR 1.5-4.x archive of stored (method 0x30) members, per the RAR 4 technote (members in
    ``encrypted`` have the password flag 0x0004 set and random bytes as data)."""

    def block(htype: int, flags: int, rest: bytes, data: bytes = b"") -> bytes:
        size = 7 + len(rest)
        head = struct.pack("<BHH", htype, flags, size) + rest
        return struct.pack("<H", zlib.crc32(head) & 0xFFFF) + head + data

    out = bytearray(b"Rar!\x1a\x07\x00")
    out += block(0x73, 0, b"\x00" * 6)  # archive header: reserved fields
    for name, data in files:
        raw = name.encode()
        flags = 0x8000
        if name in encrypted:
            flags |= 0x0004
            data = random.Random(len(data)).randbytes(len(data) + 16 - len(data) % 16)
        rest = struct.pack("<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), 0x5A210000, 20, 0x30,
                           len(raw), 0o100644) + raw
        out += block(0x74, flags, rest, data)
    out += block(0x7B, 0x4000, b"")
    return bytes(out)
