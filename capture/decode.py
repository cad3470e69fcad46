"""Frame → `Packet` decoding: link layers, VLAN/MPLS/PPPoE shims, IPv4/IPv6, TCP/UDP, tunnels.

`decode(frame)` is stateless and total: it never raises, whatever the bytes. `Decoder` adds
IPv4/IPv6 fragment reassembly (see `capture.defrag` for the policy) and anomaly counters.

Link types: Ethernet (1), BSD NULL (0) and LOOP (108) with AF_INET/AF_INET6 (2, 10, 24, 28, 30)
in either byte order, raw IP (12, 14, 101; version nibble decides), IPv4 (228), IPv6 (229),
Cisco HDLC (104), Linux SLL (113) and SLL2 (276), 802.11 (105) and 802.11 with radiotap (127).

Shims inside a layer-2 frame: 802.1Q/802.1ad tags (0x8100, 0x88A8, 0x9100, 0x9200, any depth
up to 8), 802.3 + LLC/SNAP, MPLS label stacks (0x8847/0x8848; after the bottom of stack the
first nibble picks IPv4 (4), IPv6 (6), or an Ethernet pseudowire: 0 = with a control word
unless the bytes only parse as Ethernet without one, anything else = without), PPPoE
sessions (0x8864).

Tunnels (`Packet.tunnel`, outer to inner joined by ``/``): ``gre`` (key/sequence/checksum
flags; inner Ethernet 0x6558, IPv4, IPv6, MPLS), ``erspan`` (GRE 0x88BE type I without and type
II with a sequence number, 0x22EB type III with the optional platform subheader), ``vxlan``
(UDP 4789 and 8472), ``geneve`` (UDP 6081), ``ipip`` (IP protocols 4 and 41), ``mpls`` (only
for Ethernet-over-MPLS pseudowires; plain MPLS label stacks are not tunnels). The Packet
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

Checksums (IPv4 header, TCP, UDP) are verified unless ``verify_checksums=False``; a bad one is an
anomaly (``ipv4.bad_checksum``, ``tcp.bad_checksum``, ``udp.bad_checksum``) and the packet is
still processed (checksum offload makes these common on capture hosts). Packets truncated by
the snap length are not verified. IPv6 routing headers are not applied to the pseudo-header.
"""

from __future__ import annotations

from struct import Struct

from appliance.model import EMPTY, Frame, Packet
from capture.defrag import Defragmenter


def csum_valid_py(buf: bytes, start: int, end: int, pseudo: bytes, extra: int) -> bool:
    """True when the ones' complement sum over ``buf[start:end]``, ``pseudo`` and ``extra`` is valid."""
    n = end - start
    s = int.from_bytes(buf[start:end], "big")
    if n & 1:
        s <<= 8
    p = int.from_bytes(pseudo, "big")
    if len(pseudo) & 1:  # an odd last byte is padded with zero, as in the C sum16
        p <<= 8
    return (s + p + extra) % 0xFFFF == 0


try:
    from capture._csum import csum_valid
except ImportError:  # the C helper was not built: same result, about 15x slower
    csum_valid = csum_valid_py


__all__ = ["Decoder", "decode"]

_TCP = Struct("!HHIIBBH").unpack_from
_UDP = Struct("!HHHH").unpack_from
_IP4 = Struct("!BBHHHBBH").unpack_from
_IP6 = Struct("!IHBB").unpack_from

# decoder states
_ETH = 1
_WLAN = 2
_ETYPE = 3
_IPGUESS = 4
_IP4S = 5
_IP6S = 6

_RAW_LT = frozenset((12, 14, 101))
_AF_INET6 = frozenset((10, 24, 28, 30))
_VLAN_ET = frozenset((0x8100, 0x88A8, 0x9100, 0x9200))
# IPv6 extension headers with the generic (len + 1) * 8 layout
_IP6_EXT = frozenset((0, 43, 60, 135, 139, 140, 253, 254))
# ethertypes that make an MPLS payload look like an Ethernet frame (control word guess)
_PW_ET = frozenset((0x0800, 0x86DD, 0x8100, 0x88A8, 0x9100, 0x0806, 0x8847, 0x8848, 0x8864))
_MAX_TUNNELS = 4
_MAX_LABELS = 16
_MAX_EXT = 16


_FAST_ETH_IP4_TCP = Struct("!12xHBxHxxHxBxx4s4sHHIIBBH").unpack_from


def _decode(ts: int, data: bytes, wirelen: int, lt: int, iface: str, csum: bool, frag) -> Packet | None:
    # Fast path for the common case (untagged Ethernet, IPv4 without options or
    # fragmentation, TCP, nothing truncated): one unpack instead of the state machine.
    # Anything else, or anything odd about it, takes the general path below.
    if lt == 1 and len(data) >= 54:
        et, vihl, tot, fr, proto, src, dst, sport, dport, seq, ack, doff, flags, win = _FAST_ETH_IP4_TCP(data)
        if et == 0x0800 and vihl == 0x45 and proto == 6 and not fr & 0x3FFF:
            ip_end = 14 + tot
            hl = (doff >> 4) << 2
            if hl >= 20 and hl + 20 <= tot and ip_end <= len(data) and (
                not csum or (csum_valid(data, 14, 34, b"", 0) and csum_valid(data, 34, ip_end, src + dst, tot - 14))
            ):
                return Packet(ts, iface, 0, src, dst, sport, dport, 6, seq, ack, flags, win,
                              data[34 + hl:ip_end], EMPTY, wirelen, "")
    an: list[str] | None = None
    vlan = 0
    tagged = False
    tunnel = ""
    src = dst = b""
    buf = data
    end = len(data)
    off = 0
    et = 0
    depth = 0
    ntags = 0
    code = ""
    # -- link layer ---------------------------------------------------------------------------
    if lt == 1:
        state = _ETH
    elif lt in _RAW_LT:
        state = _IPGUESS
    elif lt == 228:
        state = _IP4S
    elif lt == 229:
        state = _IP6S
    elif lt == 113:
        state = _ETYPE
        if end < 16:
            code = "sll.truncated"
        else:
            et = data[14] << 8 | data[15]
            off = 16
    elif lt == 276:
        state = _ETYPE
        if end < 20:
            code = "sll2.truncated"
        else:
            et = data[0] << 8 | data[1]
            off = 20
    elif lt == 0 or lt == 108:
        state = 0
        if end < 4:
            code = "null.truncated"
        else:
            le = int.from_bytes(data[:4], "little")
            be = int.from_bytes(data[:4], "big")
            off = 4
            if le == 2 or be == 2:
                state = _IP4S
            elif le in _AF_INET6 or be in _AF_INET6:
                state = _IP6S
    elif lt == 104:
        state = _ETYPE
        if end < 4:
            code = "chdlc.truncated"
        else:
            et = data[2] << 8 | data[3]
            off = 4
    elif lt == 105:
        state = _WLAN
    elif lt == 127:
        state = _WLAN
        if end < 8:
            code = "radiotap.truncated"
        else:
            off = data[2] | data[3] << 8
            if off < 8 or off > end:
                code = "radiotap.bad_length"
    else:
        state = 0
        code = "link.unsupported"
    if code:
        state = 0

    # -- everything else: a small state machine; blocks fall through in order ---------------
    while state:
        if state == _ETH:
            if end - off < 14:
                code = "eth.truncated"
                break
            et = buf[off + 12] << 8 | buf[off + 13]
            off += 14
            tagged = False
            state = _ETYPE
        elif state == _WLAN:
            if end - off < 24:
                code = "wlan.truncated"
                break
            fc0 = buf[off]
            fc1 = buf[off + 1]
            if fc0 & 3:
                code = "wlan.bad_version"
                break
            if (fc0 >> 2) & 3 != 2 or fc0 & 0x40:
                break  # management/control frame, or a data frame without a body: not IP
            hl = 30 if fc1 & 3 == 3 else 24
            if fc0 & 0x80:  # QoS data: QoS control, and HT control when +HTC/Order is set
                if end - off < hl + 2:
                    code = "wlan.truncated"
                    break
                amsdu = buf[off + hl] & 0x80
                hl += 6 if fc1 & 0x80 else 2
            else:
                amsdu = 0
            if fc1 & 0x40:
                code = "wlan.protected"
                break
            if amsdu:
                code = "wlan.amsdu"
                break
            off += hl
            if end - off < 8:
                code = "wlan.truncated"
                break
            if buf[off:off + 3] != b"\xaa\xaa\x03":
                break  # other LLC: not IP
            et = buf[off + 6] << 8 | buf[off + 7]
            off += 8
            state = _ETYPE

        if state == _ETYPE:
            if et == 0x0800:
                state = _IP4S
            elif et == 0x86DD:
                state = _IP6S
            elif et in _VLAN_ET:
                if end - off < 4:
                    code = "vlan.truncated"
                    break
                ntags += 1
                if ntags > 8:
                    code = "vlan.too_many_tags"
                    break
                if not tagged:
                    vlan = (buf[off] & 0x0F) << 8 | buf[off + 1]
                    tagged = True
                et = buf[off + 2] << 8 | buf[off + 3]
                off += 4
                continue
            elif et == 0x8847 or et == 0x8848:
                n = 0
                while True:
                    if end - off < 4:
                        code = "mpls.truncated"
                        break
                    bos = buf[off + 2] & 1
                    off += 4
                    n += 1
                    if bos:
                        break
                    if n >= _MAX_LABELS:
                        code = "mpls.too_many_labels"
                        break
                if code:
                    break
                if end - off < 1:
                    code = "mpls.truncated"
                    break
                nib = buf[off] >> 4
                if nib == 4:
                    state = _IP4S
                elif nib == 6:
                    state = _IP6S
                else:
                    if nib == 0 and not (
                        end - off >= 18
                        and (buf[off + 12] << 8 | buf[off + 13]) in _PW_ET
                        and (buf[off + 16] << 8 | buf[off + 17]) not in _PW_ET
                    ):
                        off += 4  # pseudowire control word (unless the frame parses better without)
                    depth += 1
                    if depth > _MAX_TUNNELS:
                        code = "decode.too_deep"
                        break
                    tunnel = tunnel + "/mpls" if tunnel else "mpls"
                    vlan = 0
                    state = _ETH
                    continue
            elif et == 0x8864:
                if end - off < 8:
                    code = "pppoe.truncated"
                    break
                ppp = buf[off + 6] << 8 | buf[off + 7]
                off += 8
                if ppp == 0x0021:
                    state = _IP4S
                elif ppp == 0x0057:
                    state = _IP6S
                else:
                    break  # PPP control protocols: not IP
            elif et < 0x0600:
                # 802.3 length field: only LLC/SNAP can carry IP
                if end - off >= 8 and buf[off:off + 3] == b"\xaa\xaa\x03":
                    et = buf[off + 6] << 8 | buf[off + 7]
                    off += 8
                    continue
                break
            else:
                break  # ARP, LLDP, … : not IP

        if state == _IPGUESS:
            if end - off < 1:
                code = "ip.truncated"
                break
            nib = buf[off] >> 4
            if nib == 4:
                state = _IP4S
            elif nib == 6:
                state = _IP6S
            else:
                code = "ip.bad_version"
                break

        trunc = False
        if state == _IP4S:
            # ---- IPv4 ----------------------------------------------------------------------
            if end - off < 20:
                code = "ipv4.truncated"
                break
            vihl, _tos, tot, ident, fr, _ttl, proto, _sum = _IP4(buf, off)
            if vihl >> 4 != 4:
                code = "ipv4.bad_version"
                break
            ihl = (vihl & 15) << 2
            if ihl < 20:
                code = "ipv4.bad_header_length"
                break
            if end - off < ihl:
                code = "ipv4.truncated"
                break
            src = buf[off + 12:off + 16]
            dst = buf[off + 16:off + 20]
            if tot < ihl:
                if tot:
                    code = "ipv4.bad_total_length"
                    break
                # total length 0: TSO on the capturing host; use what was captured
                if an is None:
                    an = []
                an.append("ipv4.zero_length")
            elif end - off < tot:
                trunc = True
                if an is None:
                    an = []
                an.append("ipv4.truncated")
            else:
                end = off + tot
            if csum and not csum_valid(buf, off, off + ihl, b"", 0):
                if an is None:
                    an = []
                an.append("ipv4.bad_checksum")
            off += ihl
            if fr & 0x3FFF:
                if frag is None:
                    if an is None:
                        an = []
                    an.append("ipv4.fragment")
                    return Packet(ts, iface, vlan, src, dst, 0, 0, proto, 0, 0, 0, 0, buf[off:end],
                                  tuple(an), wirelen, tunnel)
                r = frag(4, src, dst, ident, proto, vlan, (fr & 0x1FFF) << 3, fr & 0x2000,
                         buf[off:end], trunc, ts, an)
                if r is None:
                    return None
                proto, buf, an = r
                off = 0
                end = len(buf)
        elif state == _IP6S:
            # ---- IPv6 ----------------------------------------------------------------------
            if end - off < 40:
                code = "ipv6.truncated"
                break
            vtf, plen, proto, _hlim = _IP6(buf, off)
            if vtf >> 28 != 6:
                code = "ipv6.bad_version"
                break
            src = buf[off + 8:off + 24]
            dst = buf[off + 24:off + 40]
            off += 40
            if plen == 0:
                if an is None:
                    an = []
                an.append("ipv6.zero_length")  # jumbogram or TSO
            elif end - off < plen:
                trunc = True
                if an is None:
                    an = []
                an.append("ipv6.truncated")
            else:
                end = off + plen
            next_ext = 0
            while True:
                if proto in _IP6_EXT or proto == 51:
                    if end - off < 8:
                        code = "ipv6.truncated"
                        break
                    hl = (buf[off + 1] + 2) << 2 if proto == 51 else (buf[off + 1] + 1) << 3
                    proto = buf[off]
                    off += hl
                    if off > end:
                        code = "ipv6.truncated"
                        break
                elif proto == 44:
                    if end - off < 8:
                        code = "ipv6.truncated"
                        break
                    fnh = buf[off]
                    fo = buf[off + 2] << 8 | buf[off + 3]
                    off += 8
                    if fo & 0xFFF9 == 0:
                        proto = fnh  # atomic fragment (RFC 6946)
                    else:
                        if frag is None:
                            if an is None:
                                an = []
                            an.append("ipv6.fragment")
                            return Packet(ts, iface, vlan, src, dst, 0, 0, fnh, 0, 0, 0, 0, buf[off:end],
                                          tuple(an), wirelen, tunnel)
                        ident = int.from_bytes(buf[off - 4:off], "big")
                        r = frag(6, src, dst, ident, fnh, vlan, fo & 0xFFF8, fo & 1, buf[off:end],
                                 trunc, ts, an)
                        if r is None:
                            return None
                        proto, buf, an = r
                        off = 0
                        end = len(buf)
                else:
                    break
                next_ext += 1
                if next_ext > _MAX_EXT:
                    code = "ipv6.too_many_ext_headers"
                    break
            if code:
                break
        else:
            break

        # ---- transport -----------------------------------------------------------------------
        if proto == 6:
            if end - off < 20:
                code = "tcp.truncated"
                break
            sport, dport, seq, ack, doff, flags, win = _TCP(buf, off)
            hl = (doff >> 4) << 2
            if hl < 20:
                code = "tcp.bad_header_length"
                break
            if end - off < hl:
                code = "tcp.truncated"
                break
            if csum and not trunc and not csum_valid(buf, off, end, src + dst, 6 + end - off):
                if an is None:
                    an = []
                an.append("tcp.bad_checksum")
            return Packet(ts, iface, vlan, src, dst, sport, dport, 6, seq, ack, flags, win,
                          buf[off + hl:end], EMPTY if an is None else tuple(an), wirelen, tunnel)
        if proto == 17:
            if end - off < 8:
                code = "udp.truncated"
                break
            sport, dport, ulen, usum = _UDP(buf, off)
            if ulen < 8 or (ulen > end - off and not trunc):
                if an is None:
                    an = []
                an.append("udp.bad_length")
            elif ulen <= end - off:
                end = off + ulen
            if csum and usum and not trunc and not csum_valid(buf, off, end, src + dst, 17 + end - off):
                if an is None:
                    an = []
                an.append("udp.bad_checksum")
            u = off + 8
            if (dport == 4789 or dport == 8472) and end - u >= 22 and buf[u] & 0x08 and depth < _MAX_TUNNELS:
                depth += 1
                tunnel = tunnel + "/vxlan" if tunnel else "vxlan"
                vlan = 0
                off = u + 8
                state = _ETH
                continue
            if dport == 6081 and end - u >= 8 and not buf[u] & 0xC0 and depth < _MAX_TUNNELS:
                gp = buf[u + 2] << 8 | buf[u + 3]
                g_off = u + 8 + ((buf[u] & 0x3F) << 2)
                if gp == 0x6558 or gp == 0x0800 or gp == 0x86DD:
                    depth += 1
                    tunnel = tunnel + "/geneve" if tunnel else "geneve"
                    vlan = 0
                    off = g_off
                    state = _ETH if gp == 0x6558 else _IP4S if gp == 0x0800 else _IP6S
                    continue
            return Packet(ts, iface, vlan, src, dst, sport, dport, 17, 0, 0, 0, 0, buf[u:end],
                          EMPTY if an is None else tuple(an), wirelen, tunnel)
        if proto == 47:
            g = off
            if end - g < 4:
                code = "gre.truncated"
            else:
                gf = buf[g]
                gp = buf[g + 2] << 8 | buf[g + 3]
                if buf[g + 1] & 7 or gf & 0x40:
                    code = "gre.unsupported"  # version 1 (PPTP) or source routing
                else:
                    h = g + 4 + (4 if gf & 0x80 else 0) + (4 if gf & 0x20 else 0) + (4 if gf & 0x10 else 0)
                    name = "gre"
                    nstate = 0
                    ev = 0
                    if h > end:
                        code = "gre.truncated"
                    elif gp == 0x6558:
                        nstate = _ETH
                    elif gp == 0x0800:
                        nstate = _IP4S
                    elif gp == 0x86DD:
                        nstate = _IP6S
                    elif gp == 0x8847 or gp == 0x8848:
                        nstate = _ETYPE
                    elif gp == 0x88BE:
                        name = "erspan"
                        if gf & 0x10:  # type II: 8-byte header
                            if end - h < 8:
                                code = "erspan.truncated"
                            elif buf[h] >> 4 != 1:
                                code = "erspan.unsupported"
                            else:
                                ev = (buf[h] & 0x0F) << 8 | buf[h + 1]
                                h += 8
                                nstate = _ETH
                        else:  # type I: the frame follows the GRE header
                            nstate = _ETH
                    elif gp == 0x22EB:  # type III: 12 bytes + optional 8-byte platform subheader
                        name = "erspan"
                        if end - h < 12:
                            code = "erspan.truncated"
                        elif buf[h] >> 4 != 2:
                            code = "erspan.unsupported"
                        else:
                            ev = (buf[h] & 0x0F) << 8 | buf[h + 1]
                            ft = (buf[h + 10] >> 2) & 0x1F
                            h += 20 if buf[h + 11] & 1 else 12
                            if ft == 0:
                                nstate = _ETH
                            elif ft == 2:
                                nstate = _IPGUESS
                            else:
                                code = "erspan.unsupported"
                    else:
                        code = "gre.unsupported"
                    if nstate:
                        depth += 1
                        if depth > _MAX_TUNNELS:
                            code = "decode.too_deep"
                        else:
                            tunnel = tunnel + "/" + name if tunnel else name
                            vlan = ev
                            off = h
                            et = gp
                            state = nstate
                            continue
            if an is None:
                an = []
            an.append(code)
            code = ""
        elif proto == 4 or proto == 41:
            depth += 1
            if depth <= _MAX_TUNNELS:
                tunnel = tunnel + "/ipip" if tunnel else "ipip"
                vlan = 0
                state = _IP4S if proto == 4 else _IP6S
                continue
            if an is None:
                an = []
            an.append("decode.too_deep")
        return Packet(ts, iface, vlan, src, dst, 0, 0, proto, 0, 0, 0, 0, buf[off:end],
                      EMPTY if an is None else tuple(an), wirelen, tunnel)

    # not IP (code == "") or undecodable (code set)
    if code:
        if an is None:
            an = []
        an.append(code)
    return Packet(ts, iface, vlan, src, dst, 0, 0, 0, 0, 0, 0, 0, b"",
                  EMPTY if an is None else tuple(an), wirelen, tunnel)


def _internal_error(frame: Frame) -> Packet:
    try:
        ts, wirelen, iface = int(frame[0]), int(frame[2]), str(frame[4])
    except Exception:
        ts, wirelen, iface = 0, 0, ""
    return Packet(ts, iface, 0, b"", b"", 0, 0, 0, 0, 0, 0, 0, b"", ("decode.internal_error",), wirelen, "")


def decode(frame: Frame, verify_checksums: bool = True) -> Packet:
    """Decode one frame without state (fragments come back unreassembled). Never raises."""
    try:
        return _decode(frame[0], frame[1], frame[2], frame[3], frame[4], verify_checksums, None)
    except Exception:
        return _internal_error(frame)


class Decoder:
    """Stateful decoder: `decode` plus IP fragment reassembly and anomaly counters."""

    def __init__(
        self,
        defrag_timeout_ns: float = 30e9,
        defrag_memcap: int = 32 << 20,
        verify_checksums: bool = True,
        defrag_max_fragments: int = 256,
    ) -> None:
        self.counters: dict[str, int] = {}
        """Anomaly code → number of packets (or held fragments/datagrams) that had it."""
        self.verify_checksums = verify_checksums
        self.defrag = Defragmenter(self.counters, int(defrag_timeout_ns), defrag_memcap, defrag_max_fragments)

    def decode(self, frame: Frame) -> Packet | None:
        """Decode a frame; None when it was a fragment held for reassembly. Never raises."""
        try:
            p = _decode(frame[0], frame[1], frame[2], frame[3], frame[4], self.verify_checksums,
                        self.defrag.add)
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
