"""Frame → `Packet` decoding: link layers, VLAN/MPLS/PPPoE shims, IPv4/IPv6, TCP/UDP, tunnels.

`decode(frame)` is stateless and total: it never raises, whatever the bytes. `Decoder` adds
IPv4/IPv6 fragment reassembly (see `capture.defrag` for the policy), the checksum mode (see
`capture.checksums`) and anomaly counters.

This is the one Python decoder of the project; the C fast path (``capture/_fastpath.c``, its
decoder in ``capture/decode_frame.h``) decodes the common Ethernet/IP/TCP frames itself with the
same rules and hands everything else here. A frame walks through one function per layer:
`_link` (link types) → `_layer2` (Ethernet, 802.11, VLAN/QinQ, LLC/SNAP, MPLS, PPPoE) →
`_ipv4` / `_ipv6` + `_ipv6_ext` (+ fragments) → `_tcp` / `_udp` (+ `_udp_tunnel`) / `_gre`;
a tunnel sends the walk back to the layer of its inner frame or packet (`_decode` is the loop).

Link types: Ethernet (1), BSD NULL (0) and LOOP (108) with AF_INET/AF_INET6 (2, 10, 24, 28, 30)
in either byte order, raw IP (12, 14, 101; version nibble decides), IPv4 (228), IPv6 (229),
Cisco HDLC (104), Linux SLL (113) and SLL2 (276), 802.11 (105) and 802.11 with radiotap (127),
Linux NFLOG (239: the IP packet of the NFULA_PAYLOAD TLV; TLV fields in the capturing host's
byte order, little-endian unless only big-endian makes sense).

Shims inside a layer-2 frame: 802.1Q/802.1ad tags (0x8100, 0x88A8, 0x9100, 0x9200, any depth
up to 8), 802.3 + LLC/SNAP, MPLS label stacks (0x8847/0x8848; after the bottom of stack the
first nibble picks IPv4 (4), IPv6 (6), or an Ethernet pseudowire: 0 = with a control word
unless the bytes only parse as Ethernet without one, anything else = without), PPPoE
sessions (0x8864).

Tunnels (`Packet.tunnel`, outer to inner joined by ``/``): ``gre`` (key/sequence/checksum
flags; inner Ethernet 0x6558, IPv4, IPv6, MPLS), ``erspan`` (GRE 0x88BE type I without and type
II with a sequence number, 0x22EB type III with the optional platform subheader), ``vxlan``
and ``geneve`` (see `_udp_tunnel`: on their registered UDP ports 4789/8472 and 6081, as source
or destination, the header decides; on any other port only a header with every reserved bit
zero followed by a plausible inner frame does), ``ipip`` (IP protocols 4 and 41), ``mpls``
(only for Ethernet-over-MPLS pseudowires; plain MPLS label stacks are not tunnels). The Packet
is the innermost IP packet. A tunnel that cannot be opened (unknown GRE protocol, truncated
header) yields the carrier IP packet itself with an anomaly.

VLAN choice: ``vlan`` is the outermost tag of the layer-2 frame that carried the innermost IP
packet (the kernel's "outermost 802.1Q VLAN id of the inner packet"); QinQ ``S-tag 100,
C-tag 10`` gives 100. Opening a tunnel resets it to 0 (or to the VLAN field of an ERSPAN
header, which records the mirrored frame's VLAN), so the VLANs of the mirror transport never
leak into the inner packets' flow keys.

Packets: ``payload`` is the transport payload (TCP/UDP) or the IP payload (other protocols),
limited to the IP total length (Ethernet padding stripped) and to what was captured.
Non-IP frames (ARP, LLDP, STP, 802.11 management…) are ``proto == 0`` without anomaly;
undecodable frames are ``proto == 0`` with an anomaly code. Stateless `decode` returns
fragments as they are (``proto`` = the IP protocol, no ports, payload = fragment data, anomaly
``ipv4.fragment``/``ipv6.fragment``).

Checksums (IPv4 header, TCP, UDP) follow the mode (``verify``, ``off`` or ``auto``, see
`capture.checksums`; the setting ``capture.checksums`` defaults to ``auto``); a bad one is an
anomaly (``ipv4.bad_checksum``, ``tcp.bad_checksum``, ``udp.bad_checksum``) and the packet is
still processed; the packet that shows a side offloaded
carries ``checksum.offload``. Packets truncated by the snap length are not verified. IPv6
routing headers are not applied to the pseudo-header.
"""

from __future__ import annotations

from struct import Struct

from appliance.model import EMPTY, Frame, Packet
from capture.checksums import LEARN, MODES, OffloadTracker, csum_valid, csum_valid_py, new_tracker
from capture.defrag import Defragmenter

__all__ = ["Decoder", "csum_valid", "csum_valid_py", "decode"]

_TCP = Struct("!HHIIBBH").unpack_from
_UDP = Struct("!HHHH").unpack_from
_IP4 = Struct("!BBHHHBBH").unpack_from
_IP6 = Struct("!IHBB").unpack_from

# layers: where the walk goes next (_NONE: stop)
_NONE = 0
_ETH = 1
_WLAN = 2
_ETYPE = 3
_IPGUESS = 4
_IP4S = 5
_IP6S = 6
_IP6X = 7  # IPv6 extension headers of a reassembled datagram

_RAW_LT = frozenset((12, 14, 101))
_AF_INET6 = frozenset((10, 24, 28, 30))
_VLAN_ET = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
# IPv6 extension headers with the generic (len + 1) * 8 layout
_IP6_EXT = frozenset((0, 43, 60, 135, 139, 140, 253, 254))
# ethertypes that make an MPLS payload look like an Ethernet frame (control word guess)
_PW_ET = frozenset((0x0800, 0x86DD, 0x8100, 0x88A8, 0x9100, 0x0806, 0x8847, 0x8848, 0x8864))
_VXLAN_PORTS = frozenset((4789, 8472))
_GENEVE_PORT = 6081
_MAX_TUNNELS = 4
_MAX_LABELS = 16
_MAX_EXT = 16
_MAX_TAGS = 8
_NFLOG_PAYLOAD = 9
_NFLOG_MAX_TLVS = 64


class _Undecodable(Exception):
    """An IP or transport header that cannot be decoded: `_decode` reports ``code`` on a packet
    with ``proto == 0`` (with the addresses of the header, when they were read)."""

    def __init__(self, code: str, src: bytes | None = None, dst: bytes | None = None) -> None:
        self.code, self.src, self.dst = code, src, dst


# -- link layer ---------------------------------------------------------------------------------

def _link(lt: int, data: bytes) -> tuple[int, int, int, int, str]:
    """The link layer of a frame of link type ``lt``: (next layer, offset, end, ethertype, code)."""
    end = len(data)
    if lt == 1:
        return _ETH, 0, end, 0, ""
    if lt in _RAW_LT:
        return _IPGUESS, 0, end, 0, ""
    if lt == 228:
        return _IP4S, 0, end, 0, ""
    if lt == 229:
        return _IP6S, 0, end, 0, ""
    if lt == 113:
        if end < 16:
            return _NONE, 0, end, 0, "sll.truncated"
        return _ETYPE, 16, end, data[14] << 8 | data[15], ""
    if lt == 276:
        if end < 20:
            return _NONE, 0, end, 0, "sll2.truncated"
        return _ETYPE, 20, end, data[0] << 8 | data[1], ""
    if lt == 0 or lt == 108:
        if end < 4:
            return _NONE, 0, end, 0, "null.truncated"
        le = int.from_bytes(data[:4], "little")
        be = int.from_bytes(data[:4], "big")
        if le == 2 or be == 2:
            return _IP4S, 4, end, 0, ""
        if le in _AF_INET6 or be in _AF_INET6:
            return _IP6S, 4, end, 0, ""
        return _NONE, 4, end, 0, ""
    if lt == 104:
        if end < 4:
            return _NONE, 0, end, 0, "chdlc.truncated"
        return _ETYPE, 4, end, data[2] << 8 | data[3], ""
    if lt == 105:
        return _WLAN, 0, end, 0, ""
    if lt == 127:
        if end < 8:
            return _NONE, 0, end, 0, "radiotap.truncated"
        off = data[2] | data[3] << 8
        if off < 8 or off > end:
            return _NONE, off, end, 0, "radiotap.bad_length"
        return _WLAN, off, end, 0, ""
    if lt == 239:
        return _nflog(data)
    return _NONE, 0, end, 0, "link.unsupported"


def _nflog(data: bytes) -> tuple[int, int, int, int, str]:
    """Linux NFLOG: a 4-byte header (family, version, group), then TLVs (length, type; padded
    to 4 bytes). The packet is the value of NFULA_PAYLOAD; a frame without one is not IP."""
    end = len(data)
    if end < 4:
        return _NONE, 0, end, 0, "nflog.truncated"
    big = False
    if end >= 8:  # host byte order: big-endian only when that alone makes the first TLV fit
        le, be = data[4] | data[5] << 8, data[4] << 8 | data[5]
        big = not 4 <= le <= end - 4 and 4 <= be <= end - 4
    off = 4
    for _ in range(_NFLOG_MAX_TLVS):
        if end - off < 4:
            return _NONE, off, end, 0, "nflog.truncated" if off < end else ""
        if big:
            n, t = data[off] << 8 | data[off + 1], (data[off + 2] << 8 | data[off + 3]) & 0x7FFF
        else:
            n, t = data[off] | data[off + 1] << 8, (data[off + 2] | data[off + 3] << 8) & 0x7FFF
        if n < 4:
            return _NONE, off, end, 0, "nflog.bad_length"
        if t == _NFLOG_PAYLOAD:  # cut short by the snap length: IP decoding flags what is missing
            return _IPGUESS, off + 4, min(end, off + n), 0, ""
        if n > end - off:
            return _NONE, off, end, 0, "nflog.truncated"
        off += (n + 3) & ~3
    return _NONE, off, end, 0, "nflog.too_many_tlvs"


# -- layer 2 ------------------------------------------------------------------------------------

def _wlan(buf: bytes, off: int, end: int) -> tuple[int, int, int, str]:
    """An 802.11 frame: (_ETYPE or _NONE, offset after LLC/SNAP, ethertype, code)."""
    if end - off < 24:
        return _NONE, off, 0, "wlan.truncated"
    fc0 = buf[off]
    fc1 = buf[off + 1]
    if fc0 & 3:
        return _NONE, off, 0, "wlan.bad_version"
    if (fc0 >> 2) & 3 != 2 or fc0 & 0x40:
        return _NONE, off, 0, ""  # management/control frame, or a data frame without a body
    hl = 30 if fc1 & 3 == 3 else 24
    amsdu = 0
    if fc0 & 0x80:  # QoS data: QoS control, and HT control when +HTC/Order is set
        if end - off < hl + 2:
            return _NONE, off, 0, "wlan.truncated"
        amsdu = buf[off + hl] & 0x80
        hl += 6 if fc1 & 0x80 else 2
    if fc1 & 0x40:
        return _NONE, off, 0, "wlan.protected"
    if amsdu:
        return _NONE, off, 0, "wlan.amsdu"
    off += hl
    if end - off < 8:
        return _NONE, off, 0, "wlan.truncated"
    if buf[off:off + 3] != b"\xaa\xaa\x03":
        return _NONE, off, 0, ""  # other LLC: not IP
    return _ETYPE, off + 8, buf[off + 6] << 8 | buf[off + 7], ""


def _mpls(buf: bytes, off: int, end: int) -> tuple[int, int] | str:
    """An MPLS label stack: (_IP4S, _IP6S or _ETH for a pseudowire, offset after it) or a code."""
    n = 0
    while True:
        if end - off < 4:
            return "mpls.truncated"
        bos = buf[off + 2] & 1
        off += 4
        n += 1
        if bos:
            break
        if n >= _MAX_LABELS:
            return "mpls.too_many_labels"
    if end - off < 1:
        return "mpls.truncated"
    nib = buf[off] >> 4
    if nib == 4:
        return _IP4S, off
    if nib == 6:
        return _IP6S, off
    if nib == 0 and not (
        end - off >= 18
        and (buf[off + 12] << 8 | buf[off + 13]) in _PW_ET
        and (buf[off + 16] << 8 | buf[off + 17]) not in _PW_ET
    ):
        off += 4  # pseudowire control word (unless the frame parses better without)
    return _ETH, off


def _layer2(buf: bytes, off: int, end: int, layer: int, et: int, vlan: int, ntags: int,
            depth: int) -> tuple[int, int, int, int, int, str]:
    """Ethernet or 802.11 (``layer``), or an ethertype ``et`` (_ETYPE), and the shims inside up
    to an IP header: (_IP4S, _IP6S, _IPGUESS or _NONE, offset, vlan, tags so far, MPLS
    pseudowires opened, code)."""
    tagged = False
    npw = 0
    while True:
        if layer == _ETH:
            if end - off < 14:
                return _NONE, off, vlan, ntags, npw, "eth.truncated"
            et = buf[off + 12] << 8 | buf[off + 13]
            off += 14
            tagged = False
        elif layer == _WLAN:
            layer, off, et, code = _wlan(buf, off, end)
            if not layer:
                return _NONE, off, vlan, ntags, npw, code
        if et == 0x0800:
            return _IP4S, off, vlan, ntags, npw, ""
        if et == 0x86DD:
            return _IP6S, off, vlan, ntags, npw, ""
        layer = _ETYPE
        if et in _VLAN_ET:
            if end - off < 4:
                return _NONE, off, vlan, ntags, npw, "vlan.truncated"
            ntags += 1
            if ntags > _MAX_TAGS:
                return _NONE, off, vlan, ntags, npw, "vlan.too_many_tags"
            if not tagged:
                vlan = (buf[off] & 0x0F) << 8 | buf[off + 1]
                tagged = True
            et = buf[off + 2] << 8 | buf[off + 3]
            off += 4
        elif et == 0x8847 or et == 0x8848:
            r = _mpls(buf, off, end)
            if r.__class__ is str:
                return _NONE, off, vlan, ntags, npw, r  # type: ignore[return-value]
            layer, off = r  # type: ignore[misc]
            if layer != _ETH:
                return layer, off, vlan, ntags, npw, ""
            if depth + npw >= _MAX_TUNNELS:
                return _NONE, off, vlan, ntags, npw, "decode.too_deep"
            npw += 1
            vlan = 0
        elif et == 0x8864:
            if end - off < 8:
                return _NONE, off, vlan, ntags, npw, "pppoe.truncated"
            ppp = buf[off + 6] << 8 | buf[off + 7]
            off += 8
            if ppp == 0x0021:
                return _IP4S, off, vlan, ntags, npw, ""
            if ppp == 0x0057:
                return _IP6S, off, vlan, ntags, npw, ""
            return _NONE, off, vlan, ntags, npw, ""  # PPP control protocols: not IP
        elif et < 0x0600 and end - off >= 8 and buf[off:off + 3] == b"\xaa\xaa\x03":
            et = buf[off + 6] << 8 | buf[off + 7]  # 802.3 length field + LLC/SNAP
            off += 8
        else:
            return _NONE, off, vlan, ntags, npw, ""  # ARP, LLDP, other LLC… : not IP


# -- IP -----------------------------------------------------------------------------------------

def _ipv4(buf: bytes, off: int, end: int, csum: bool | OffloadTracker, iface: str,
          an: list[str]) -> tuple[int, bytes, bytes, int, int, bool, int, bool, int, int]:
    """The IPv4 header at ``off``: (protocol, src, dst, payload offset, end, truncated, checksum
    step, header checksum bad, flags + fragment offset, id)."""
    if end - off < 20:
        raise _Undecodable("ipv4.truncated")
    vihl, _tos, tot, ident, fr, _ttl, proto, _sum = _IP4(buf, off)
    if vihl >> 4 != 4:
        raise _Undecodable("ipv4.bad_version")
    ihl = (vihl & 15) << 2
    if ihl < 20:
        raise _Undecodable("ipv4.bad_header_length")
    if end - off < ihl:
        raise _Undecodable("ipv4.truncated")
    src = buf[off + 12:off + 16]
    trunc = False
    if tot < ihl:
        if tot:
            raise _Undecodable("ipv4.bad_total_length", src, buf[off + 16:off + 20])
        an.append("ipv4.zero_length")  # total length 0: TSO on the capturing host; use what was captured
    elif end - off < tot:
        trunc = True
        an.append("ipv4.truncated")
    else:
        end = off + tot
    ck = 1 if csum is True else 0 if csum is False else csum.state(iface, src)  # type: ignore[union-attr]
    bad = False
    if ck and not csum_valid(buf, off, off + ihl, b"", 0):
        an.append("ipv4.bad_checksum")
        bad = True
    return proto, src, buf[off + 16:off + 20], off + ihl, end, trunc, ck, bad, fr, ident


def _ipv6(buf: bytes, off: int, end: int, csum: bool | OffloadTracker, iface: str,
          an: list[str]) -> tuple[int, bytes, bytes, int, int, bool, int]:
    """The IPv6 header at ``off``: (next header, src, dst, offset after it, end, truncated,
    checksum step)."""
    if end - off < 40:
        raise _Undecodable("ipv6.truncated")
    vtf, plen, proto, _hlim = _IP6(buf, off)
    if vtf >> 28 != 6:
        raise _Undecodable("ipv6.bad_version")
    src = buf[off + 8:off + 24]
    dst = buf[off + 24:off + 40]
    off += 40
    trunc = False
    if plen == 0:
        an.append("ipv6.zero_length")  # jumbogram or TSO
    elif end - off < plen:
        trunc = True
        an.append("ipv6.truncated")
    else:
        end = off + plen
    ck = 1 if csum is True else 0 if csum is False else csum.state(iface, src)  # type: ignore[union-attr]
    return proto, src, dst, off, end, trunc, ck


def _ipv6_ext(buf: bytes, off: int, end: int, proto: int, nx: int) -> tuple[int, int, int, int]:
    """IPv6 extension headers from ``proto`` at ``off``: (upper protocol, its offset, headers
    walked, fragment field), the fragment field -1 unless a fragment header (not an atomic one)
    stopped the walk (``proto`` then its next header, ``off`` its data)."""
    while True:
        if proto in _IP6_EXT or proto == 51:
            if end - off < 8:
                raise _Undecodable("ipv6.truncated")
            hl = (buf[off + 1] + 2) << 2 if proto == 51 else (buf[off + 1] + 1) << 3
            proto = buf[off]
            off += hl
            if off > end:
                raise _Undecodable("ipv6.truncated")
        elif proto == 44:
            if end - off < 8:
                raise _Undecodable("ipv6.truncated")
            fnh = buf[off]
            fo = buf[off + 2] << 8 | buf[off + 3]
            off += 8
            if fo & 0xFFF9:
                return fnh, off, nx, fo
            proto = fnh  # atomic fragment (RFC 6946)
        else:
            return proto, off, nx, -1
        nx += 1
        if nx > _MAX_EXT:
            raise _Undecodable("ipv6.too_many_ext_headers")


def _ip_version(buf: bytes, off: int, end: int) -> int:
    """_IP4S or _IP6S by the version nibble at ``off`` (raw IP, ERSPAN III, NFLOG)."""
    if end - off < 1:
        raise _Undecodable("ip.truncated")
    nib = buf[off] >> 4
    if nib == 4:
        return _IP4S
    if nib == 6:
        return _IP6S
    raise _Undecodable("ip.bad_version")


# -- transports and tunnels ---------------------------------------------------------------------

def _tcp(buf: bytes, off: int, end: int, src: bytes, dst: bytes, trunc: bool, ck: int, ipbad: bool,
         csum: bool | OffloadTracker, iface: str, an: list[str]) -> tuple[int, int, int, int, int, int, int]:
    """The TCP header at ``off``: (sport, dport, seq, ack, flags, window, payload offset)."""
    if end - off < 20:
        raise _Undecodable("tcp.truncated")
    sport, dport, seq, ack, doff, flags, win = _TCP(buf, off)
    hl = (doff >> 4) << 2
    if hl < 20:
        raise _Undecodable("tcp.bad_header_length")
    if end - off < hl:
        raise _Undecodable("tcp.truncated")
    if ck and not trunc:
        bad = not csum_valid(buf, off, end, src + dst, 6 + end - off)
        if bad:
            an.append("tcp.bad_checksum")
        if ck == LEARN and csum.observe(iface, src, bad or ipbad):  # type: ignore[union-attr]
            an.append("checksum.offload")
    return sport, dport, seq, ack, flags, win, off + hl


def _udp(buf: bytes, off: int, end: int, src: bytes, dst: bytes, trunc: bool, ck: int, ipbad: bool,
         csum: bool | OffloadTracker, iface: str, an: list[str]) -> tuple[int, int, int, bool]:
    """The UDP header at ``off``: (sport, dport, end, cut short by the capture)."""
    if end - off < 8:
        raise _Undecodable("udp.truncated")
    sport, dport, ulen, usum = _UDP(buf, off)
    if ulen < 8 or (ulen > end - off and not trunc):
        an.append("udp.bad_length")
    elif ulen <= end - off:
        end = off + ulen
    if ck and usum and not trunc:
        bad = not csum_valid(buf, off, end, src + dst, 17 + end - off)
        if bad:
            an.append("udp.bad_checksum")
        if ck == LEARN and csum.observe(iface, src, bad or ipbad):  # type: ignore[union-attr]
            an.append("checksum.offload")
    return sport, dport, end, ulen > end - off


def _udp_tunnel(buf: bytes, u: int, end: int, sport: int, dport: int, cut: bool) -> tuple[int, int, str] | None:
    """VXLAN or Geneve in the UDP payload at ``u``: (inner layer, its offset, tunnel name), or None.

    On the registered ports (VXLAN 4789 and Linux's 8472, Geneve 6081), as destination or
    source (a mirror may send from them), the header decides, as in Suricata and Wireshark.
    On any other port the payload must prove it (`_tunnel_by_content`), so that DNS, QUIC or
    random bytes are not taken for a tunnel.
    """
    if sport in _VXLAN_PORTS or dport in _VXLAN_PORTS:
        if end - u >= 22 and buf[u] & 0x08:
            return _ETH, u + 8, "vxlan"
    elif sport == _GENEVE_PORT or dport == _GENEVE_PORT:
        return _geneve(buf, u, end)
    elif end - u >= 8:
        return _tunnel_by_content(buf, u, end, cut)
    return None


def _geneve(buf: bytes, u: int, end: int) -> tuple[int, int, str] | None:
    """A Geneve header (version 0) carrying Ethernet, IPv4 or IPv6."""
    if end - u < 8 or buf[u] & 0xC0:
        return None
    gp = buf[u + 2] << 8 | buf[u + 3]
    off = u + 8 + ((buf[u] & 0x3F) << 2)
    if gp == 0x6558:
        return _ETH, off, "geneve"
    if gp == 0x0800:
        return _IP4S, off, "geneve"
    if gp == 0x86DD:
        return _IP6S, off, "geneve"
    return None


def _tunnel_by_content(buf: bytes, u: int, end: int, cut: bool) -> tuple[int, int, str] | None:
    """VXLAN (flags 0x08, reserved bytes zero) or Geneve (version 0, reserved bits zero) on an
    unregistered port, only when a plausible inner frame or packet follows (`_inner_ok`)."""
    b0 = buf[u]
    if b0 == 0x08:
        if buf[u + 1] | buf[u + 2] | buf[u + 3] | buf[u + 7] == 0 and _inner_ok(buf, u + 8, end, 0x6558, cut):
            return _ETH, u + 8, "vxlan"
    elif not b0 & 0xC0 and not buf[u + 1] & 0x3F and buf[u + 7] == 0:
        gp = buf[u + 2] << 8 | buf[u + 3]
        off = u + 8 + ((b0 & 0x3F) << 2)
        if _inner_ok(buf, off, end, gp, cut):
            return (_ETH if gp == 0x6558 else _IP4S if gp == 0x0800 else _IP6S), off, "geneve"
    return None


def _inner_ok(buf: bytes, o: int, end: int, et: int, cut: bool) -> bool:
    """A plausible inner frame of ethertype ``et`` at ``o`` (0x6558: an Ethernet frame whose
    ethertype, after at most two VLAN tags, is IPv4 or IPv6): an IPv4 header with a valid
    checksum, or an IPv6 header whose payload length matches the bytes that follow (Ethernet
    padding and a capture cut short allowed)."""
    if et == 0x6558:
        if end - o < 14:
            return False
        et = buf[o + 12] << 8 | buf[o + 13]
        o += 14
        for _ in range(2):
            if et not in _VLAN_ET:
                break
            if end - o < 4:
                return False
            et = buf[o + 2] << 8 | buf[o + 3]
            o += 4
    n = end - o
    if et == 0x0800:
        if n < 20 or buf[o] >> 4 != 4:
            return False
        ihl = (buf[o] & 15) << 2
        tot = buf[o + 2] << 8 | buf[o + 3]
        return 20 <= ihl <= n and ihl <= tot and (tot <= n or cut) and csum_valid(buf, o, o + ihl, b"", 0)
    if et == 0x86DD:
        if n < 40 or buf[o] >> 4 != 6:
            return False
        size = 40 + (buf[o + 4] << 8 | buf[o + 5])
        return size > 40 and (size == n or (size > n and cut) or (size < n <= 46))
    return False


def _gre(buf: bytes, g: int, end: int) -> tuple[int, int, int, str, int] | str:
    """A GRE header (versions 0, no routing) and the ERSPAN header it may carry: (inner layer,
    its offset, ethertype, tunnel name, ERSPAN VLAN), or a code."""
    if end - g < 4:
        return "gre.truncated"
    gf = buf[g]
    gp = buf[g + 2] << 8 | buf[g + 3]
    if buf[g + 1] & 7 or gf & 0x40:
        return "gre.unsupported"  # version 1 (PPTP) or source routing
    h = g + 4 + (4 if gf & 0x80 else 0) + (4 if gf & 0x20 else 0) + (4 if gf & 0x10 else 0)
    if h > end:
        return "gre.truncated"
    if gp == 0x6558:
        return _ETH, h, gp, "gre", 0
    if gp == 0x0800:
        return _IP4S, h, gp, "gre", 0
    if gp == 0x86DD:
        return _IP6S, h, gp, "gre", 0
    if gp == 0x8847 or gp == 0x8848:
        return _ETYPE, h, gp, "gre", 0
    if gp == 0x88BE:
        if not gf & 0x10:  # type I: the frame follows the GRE header
            return _ETH, h, gp, "erspan", 0
        if end - h < 8:  # type II: 8-byte header
            return "erspan.truncated"
        if buf[h] >> 4 != 1:
            return "erspan.unsupported"
        return _ETH, h + 8, gp, "erspan", (buf[h] & 0x0F) << 8 | buf[h + 1]
    if gp == 0x22EB:  # type III: 12 bytes + optional 8-byte platform subheader
        if end - h < 12:
            return "erspan.truncated"
        if buf[h] >> 4 != 2:
            return "erspan.unsupported"
        ft = (buf[h + 10] >> 2) & 0x1F
        if ft != 0 and ft != 2:
            return "erspan.unsupported"
        ev = (buf[h] & 0x0F) << 8 | buf[h + 1]
        return _ETH if ft == 0 else _IPGUESS, h + (20 if buf[h + 11] & 1 else 12), gp, "erspan", ev
    return "gre.unsupported"


# -- the walk -----------------------------------------------------------------------------------

def _decode(ts: int, data: bytes, wirelen: int, lt: int, iface: str, csum: bool | OffloadTracker,
            frag) -> Packet | None:
    """One frame, layer by layer; a tunnel sends the walk back to its inner layer."""
    layer, off, end, et, code = _link(lt, data)
    buf = data
    an: list[str] = []
    vlan = depth = ntags = nx = 0
    tunnel = ""
    src = dst = b""
    try:
        while layer and not code:
            if layer < _IPGUESS:
                layer, off, vlan, ntags, npw, code = _layer2(buf, off, end, layer, et, vlan, ntags, depth)
                if npw:  # Ethernet pseudowires over MPLS
                    tunnel = "/".join(([tunnel] if tunnel else []) + ["mpls"] * npw)
                    depth += npw
                if not layer or code:
                    break
            if layer == _IPGUESS:
                layer = _ip_version(buf, off, end)
            if layer == _IP4S:
                proto, src, dst, off, end, trunc, ck, ipbad, fr, ident = _ipv4(buf, off, end, csum, iface, an)
                if fr & 0x3FFF:
                    if frag is None:
                        an.append("ipv4.fragment")
                        break  # stateless: the fragment as it is
                    r = frag(4, src, dst, ident, proto, vlan, (fr & 0x1FFF) << 3, fr & 0x2000, buf[off:end], trunc,
                             ts, an)
                    if r is None:
                        return None  # held
                    proto, buf, an, off, end, ipbad = r[0], r[1], list(r[2] or ()), 0, len(r[1]), False
            else:
                if layer == _IP6S:
                    proto, src, dst, off, end, trunc, ck = _ipv6(buf, off, end, csum, iface, an)
                    ipbad, nx = False, 0
                proto, off, nx, fo = _ipv6_ext(buf, off, end, proto, nx)
                if fo >= 0:
                    if frag is None:
                        an.append("ipv6.fragment")
                        break  # stateless: the fragment as it is
                    r = frag(6, src, dst, int.from_bytes(buf[off - 4:off], "big"), proto, vlan, fo & 0xFFF8, fo & 1,
                             buf[off:end], trunc, ts, an)
                    if r is None:
                        return None  # held
                    proto, buf, an, off, end, nx = r[0], r[1], list(r[2] or ()), 0, len(r[1]), nx + 1
                    if nx > _MAX_EXT:
                        raise _Undecodable("ipv6.too_many_ext_headers")
                    layer = _IP6X  # the extension headers of the reassembled payload
                    continue
            # -- transport, or a tunnel (the walk goes on at its inner layer)
            if proto == 6:
                sport, dport, seq, ack, flags, win, pay = _tcp(buf, off, end, src, dst, trunc, ck, ipbad, csum, iface,
                                                               an)
                return Packet(ts, iface, vlan, src, dst, sport, dport, 6, seq, ack, flags, win, buf[pay:end],
                              tuple(an) if an else EMPTY, wirelen, tunnel)
            if proto == 17:
                sport, dport, end, cut = _udp(buf, off, end, src, dst, trunc, ck, ipbad, csum, iface, an)
                t = _udp_tunnel(buf, off + 8, end, sport, dport, cut) if depth < _MAX_TUNNELS else None
                if t is None:
                    return Packet(ts, iface, vlan, src, dst, sport, dport, 17, 0, 0, 0, 0, buf[off + 8:end],
                                  tuple(an) if an else EMPTY, wirelen, tunnel)
                layer, off, name = t
                vlan = 0
            elif proto == 47:
                r = _gre(buf, off, end)
                if r.__class__ is str or depth >= _MAX_TUNNELS:
                    an.append(r if r.__class__ is str else "decode.too_deep")  # type: ignore[arg-type]
                    break  # the carrier itself
                layer, off, et, name, vlan = r  # type: ignore[misc]
            elif proto == 4 or proto == 41:
                if depth >= _MAX_TUNNELS:
                    an.append("decode.too_deep")
                    break  # the carrier itself
                layer, name, vlan = (_IP4S if proto == 4 else _IP6S), "ipip", 0
            else:
                break  # another IP protocol
            depth += 1
            tunnel = tunnel + "/" + name if tunnel else name
    except _Undecodable as e:
        code = e.code
        if e.src is not None:
            src, dst = e.src, e.dst  # type: ignore[assignment]
    if code or not layer:  # undecodable, or not IP
        if code:
            an.append(code)
        return Packet(ts, iface, vlan, src, dst, 0, 0, 0, 0, 0, 0, 0, b"", tuple(an) if an else EMPTY, wirelen,
                      tunnel)
    # an IP packet of another protocol, a fragment (stateless), a tunnel that cannot be opened
    return Packet(ts, iface, vlan, src, dst, 0, 0, proto, 0, 0, 0, 0, buf[off:end], tuple(an) if an else EMPTY,
                  wirelen, tunnel)


def _internal_error(frame: Frame) -> Packet:
    try:
        ts, wirelen, iface = int(frame[0]), int(frame[2]), str(frame[4])
    except Exception:
        ts, wirelen, iface = 0, 0, ""
    return Packet(ts, iface, 0, b"", b"", 0, 0, 0, 0, 0, 0, 0, b"", ("decode.internal_error",), wirelen, "")


def _stateless_mode(verify_checksums: bool | str) -> bool:
    if isinstance(verify_checksums, str):
        if verify_checksums not in MODES:
            raise ValueError(f"checksum mode must be one of {', '.join(MODES)}, not {verify_checksums!r}")
        return verify_checksums != "off"
    return bool(verify_checksums)


def decode(frame: Frame, verify_checksums: bool | str = True) -> Packet:
    """Decode one frame without state (fragments come back unreassembled). Never raises.

    ``verify_checksums``: a bool, or a mode of `capture.checksums` (``auto`` verifies: one frame
    alone cannot show offload)."""
    csum = _stateless_mode(verify_checksums)
    try:
        return _decode(frame[0], frame[1], frame[2], frame[3], frame[4], csum, None)  # type: ignore[return-value]
    except Exception:
        return _internal_error(frame)


class Decoder:
    """Stateful decoder: `decode` plus IP fragment reassembly, the checksum mode and anomaly counters.

    ``checksums`` (``auto``, ``verify`` or ``off``; see `capture.checksums`) wins over the older
    ``verify_checksums`` (True = ``verify``, False = ``off``). The C fast path of the same
    pipeline must share `checksums` (``new_fast_path(..., checksums=decoder.checksums)``).
    """

    def __init__(
        self,
        defrag_timeout_ns: float = 30e9,
        defrag_memcap: int = 32 << 20,
        verify_checksums: bool = True,
        defrag_max_fragments: int = 256,
        *,
        checksums: str | None = None,
    ) -> None:
        self.counters: dict[str, int] = {}
        """Anomaly code → number of packets (or held fragments/datagrams) that had it."""
        mode = checksums if checksums is not None else ("verify" if verify_checksums else "off")
        self.checksums: OffloadTracker = new_tracker(mode)
        """The checksum mode and the sides found offloaded (shared with the C fast path)."""
        self._csum: bool | OffloadTracker = self.checksums if mode == "auto" else mode == "verify"
        self.defrag = Defragmenter(self.counters, int(defrag_timeout_ns), defrag_memcap, defrag_max_fragments)

    @property
    def verify_checksums(self) -> bool:
        """True unless the checksum mode is ``off``."""
        return self.checksums.mode != "off"

    @property
    def checksum_offload(self) -> list[tuple[str, str]]:
        """Where checksum offload was found: (interface, source address), in the order found."""
        import ipaddress

        return [(iface, str(ipaddress.ip_address(src))) for iface, src in self.checksums.offloaded()]

    def decode(self, frame: Frame) -> Packet | None:
        """Decode a frame; None when it was a fragment held for reassembly. Never raises."""
        try:
            p = _decode(frame[0], frame[1], frame[2], frame[3], frame[4], self._csum, self.defrag.add)
        except Exception:
            p = _internal_error(frame)
        if p is not None and p.anomalies:
            c = self.counters
            for a in p.anomalies:
                c[a] = c.get(a, 0) + 1
        return p

    def expire(self, now_ns: int) -> None:
        """Drop fragments older than the timeout at packet time ``now_ns`` (``frag.timeout``)."""
        self.defrag.expire(now_ns)

    def flush(self) -> None:
        """End of input: drop every held fragment (``frag.incomplete``)."""
        self.defrag.flush()
