"""capture.decode: link types, shims, IP, transports, tunnels, anomalies."""

from __future__ import annotations

import struct

import pytest
from scapy.all import (
    ARP,
    GRE,
    IP,
    LLC,
    SNAP,
    TCP,
    UDP,
    Dot1Q,
    Ether,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Padding,
    Raw,
)
from scapy.contrib.chdlc import CHDLC
from scapy.contrib.erspan import ERSPAN_II, ERSPAN_III, ERSPAN_PlatformSpecific
from scapy.contrib.mpls import MPLS
from scapy.layers.dot11 import Dot11, Dot11QoS, RadioTap
from scapy.layers.ipsec import AH
from scapy.layers.l2 import CookedLinux, CookedLinuxV2, Dot1AD
from scapy.layers.ppp import PPP, PPPoE
from scapy.layers.vxlan import VXLAN

from appliance.model import EMPTY, Frame, LinkType, TcpFlags
from capture.decode import Decoder, decode
from tests.capture.capture_helpers import eth, frame

A = "192.0.2.1"
B = "198.51.100.7"
A6 = "2001:db8::1"
B6 = "2001:db8::2"


def inner_tcp(payload: bytes = b"GET / HTTP/1.1\r\n\r\n") -> IP:
    return IP(src=A, dst=B) / TCP(sport=40000, dport=80, flags="PA", seq=1000, ack=2000, window=512) / payload


def check_tcp(p, payload: bytes = b"GET / HTTP/1.1\r\n\r\n", vlan: int = 0, tunnel: str = "") -> None:
    assert p.proto == 6, p
    assert (p.src, p.dst) == (bytes([192, 0, 2, 1]), bytes([198, 51, 100, 7]))
    assert (p.sport, p.dport, p.seq, p.ack, p.win) == (40000, 80, 1000, 2000, 512)
    assert p.flags == TcpFlags.PSH | TcpFlags.ACK
    assert p.payload == payload
    assert p.anomalies == EMPTY, p.anomalies
    assert p.vlan == vlan
    assert p.tunnel == tunnel


def test_ethernet_ipv4_tcp() -> None:
    f = frame(eth() / inner_tcp(), ts=123, iface="eth1")
    p = decode(f)
    check_tcp(p)
    assert (p.ts_ns, p.iface, p.wirelen) == (123, "eth1", len(f.data))
    assert isinstance(p.payload, bytes)


def test_ethernet_padding_stripped() -> None:
    p = decode(frame(eth() / inner_tcp(b"ab") / Padding(b"\x00" * 30)))
    check_tcp(p, b"ab")
    u = decode(frame(eth() / IP(src=A, dst=B) / UDP(sport=1, dport=2) / b"x" / Padding(b"\xff" * 30)))
    assert u.payload == b"x" and u.anomalies == EMPTY


def test_udp_and_icmp() -> None:
    p = decode(frame(eth() / IP(src=A, dst=B) / UDP(sport=5353, dport=53) / b"query"))
    assert (p.proto, p.sport, p.dport, p.payload, p.anomalies) == (17, 5353, 53, b"query", EMPTY)
    from scapy.all import ICMP

    p = decode(frame(eth() / IP(src=A, dst=B) / ICMP() / b"ping"))
    assert p.proto == 1 and p.sport == 0 and p.payload.endswith(b"ping") and p.anomalies == EMPTY


def test_ipv4_options_and_tcp_options() -> None:
    from scapy.all import IPOption_RR

    pkt = IP(src=A, dst=B, options=[IPOption_RR()]) / TCP(
        sport=40000, dport=80, flags="PA", seq=1000, ack=2000, window=512,
        options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 2)), ("WScale", 7)],
    ) / b"data"
    check_tcp(decode(frame(eth() / pkt)), b"data")


@pytest.mark.parametrize(
    ("tags", "vlan"),
    [
        ([Dot1Q(vlan=10)], 10),
        ([Dot1AD(vlan=100), Dot1Q(vlan=10)], 100),  # QinQ: outermost tag
        ([Dot1Q(vlan=200, type=0x8100), Dot1Q(vlan=20)], 200),  # double 802.1Q
    ],
)
def test_vlan_tags(tags: list, vlan: int) -> None:
    pkt = eth()
    for t in tags:
        pkt = pkt / t
    check_tcp(decode(frame(pkt / inner_tcp())), vlan=vlan)


def test_vlan_0x9100() -> None:
    raw = bytes(Ether(type=0x9100)) + struct.pack("!HH", 300, 0x8100) + struct.pack("!HH", 30, 0x0800)
    check_tcp(decode(frame(raw + bytes(inner_tcp()))), vlan=300)


def test_mpls_label_stack() -> None:
    check_tcp(decode(frame(eth() / MPLS(label=16, s=0) / MPLS(label=17, s=1) / inner_tcp())))
    v6 = decode(frame(Ether(type=0x8848) / MPLS(label=3, s=1) / IPv6(src=A6, dst=B6) / UDP(dport=9)))
    assert v6.proto == 17 and v6.dport == 9


def test_mpls_ethernet_pseudowire() -> None:
    inner = eth() / Dot1Q(vlan=42) / inner_tcp()
    # with the 4-byte control word (first nibble 0)
    p = decode(frame(eth() / MPLS(label=16, s=1) / Raw(b"\x00\x00\x00\x01") / inner))
    check_tcp(p, vlan=42, tunnel="mpls")
    # without control word: the nibble is neither 4 nor 6 (destination MAC 02:…)
    inner2 = Ether(dst="02:00:00:00:00:01") / inner_tcp()
    p = decode(frame(Ether(dst="02:00:00:00:00:02") / Dot1Q(vlan=5) / MPLS(label=16, s=1) / inner2))
    check_tcp(p, tunnel="mpls")  # the tunnel resets the transport VLAN


def test_pppoe_session() -> None:
    check_tcp(decode(frame(eth() / PPPoE(sessionid=7) / PPP(proto=0x0021) / inner_tcp())))
    p = decode(frame(eth() / PPPoE(sessionid=7) / PPP(proto=0xC021) / b"\x01\x01\x00\x04"))
    assert p.proto == 0 and p.anomalies == EMPTY  # LCP: not IP


def test_llc_snap() -> None:
    raw = bytes(Ether(dst="01:02:03:04:05:06", type=60)) + b"\xaa\xaa\x03\x00\x00\x00\x08\x00"
    check_tcp(decode(frame(raw + bytes(inner_tcp()))))


def test_non_ip_frames_have_no_anomaly() -> None:
    for pkt in (eth() / ARP(), Ether(type=0x88CC) / (b"\x02\x07\x04" + b"\0" * 40),
                Ether(dst="01:80:c2:00:00:00", type=38) / LLC(dsap=0x42, ssap=0x42, ctrl=3) / (b"\0" * 35)):
        p = decode(frame(pkt))
        assert p.proto == 0 and p.anomalies == EMPTY


@pytest.mark.parametrize(
    ("lt", "hdr"),
    [
        (LinkType.RAW, b""),
        (LinkType.RAW_DLT12, b""),
        (LinkType.RAW_DLT14, b""),
        (LinkType.IPV4, b""),
        (LinkType.NULL, struct.pack("<I", 2)),
        (LinkType.NULL, struct.pack(">I", 2)),
        (LinkType.LOOP, struct.pack(">I", 2)),
        (LinkType.CHDLC, bytes(CHDLC())[:2] + b"\x08\x00"),
        (LinkType.LINUX_SLL, bytes(CookedLinux(proto=0x0800))),
        (LinkType.LINUX_SLL2, bytes(CookedLinuxV2(proto=0x0800))),
    ],
)
def test_link_types_ipv4(lt: int, hdr: bytes) -> None:
    check_tcp(decode(frame(hdr + bytes(inner_tcp()), linktype=lt)))


@pytest.mark.parametrize(
    ("lt", "hdr"),
    [
        (LinkType.RAW, b""),
        (LinkType.IPV6, b""),
        (LinkType.NULL, struct.pack("<I", 24)),
        (LinkType.NULL, struct.pack("<I", 28)),
        (LinkType.NULL, struct.pack("<I", 30)),
        (LinkType.LOOP, struct.pack(">I", 30)),
        (LinkType.NULL, struct.pack(">I", 28)),
        (LinkType.LINUX_SLL, bytes(CookedLinux(proto=0x86DD))),
        (LinkType.LINUX_SLL2, bytes(CookedLinuxV2(proto=0x86DD))),
    ],
)
def test_link_types_ipv6(lt: int, hdr: bytes) -> None:
    pkt = IPv6(src=A6, dst=B6) / TCP(sport=1, dport=443, flags="S") / b"v6"
    p = decode(frame(hdr + bytes(pkt), linktype=lt))
    assert (p.proto, p.dport, p.payload, p.anomalies, len(p.src)) == (6, 443, b"v6", EMPTY, 16)


def test_sll_with_vlan_tag() -> None:
    raw = bytes(CookedLinux(proto=0x8100)) + struct.pack("!HH", 77, 0x0800) + bytes(inner_tcp())
    check_tcp(decode(frame(raw, linktype=LinkType.LINUX_SLL)), vlan=77)


def wlan(fc_flags: int, qos: bool = True, addr4: bool = False) -> bytes:
    d = Dot11(type=2, subtype=8 if qos else 0, FCfield=fc_flags, addr1="00:00:00:00:00:01",
              addr2="00:00:00:00:00:02", addr3="00:00:00:00:00:03")
    if addr4:
        d.addr4 = "00:00:00:00:00:04"
    if qos:
        d = d / Dot11QoS()
    return bytes(d / LLC(dsap=0xAA, ssap=0xAA, ctrl=3) / SNAP(code=0x0800) / inner_tcp())


@pytest.mark.parametrize(("flags", "qos", "addr4"), [(1, True, False), (2, False, False), (3, True, True)])
def test_80211(flags: int, qos: bool, addr4: bool) -> None:
    raw = wlan(flags, qos, addr4)
    check_tcp(decode(frame(raw, linktype=LinkType.IEEE802_11)))
    check_tcp(decode(frame(bytes(RadioTap()) + raw, linktype=LinkType.IEEE802_11_RADIOTAP)))


def test_80211_protected_and_management() -> None:
    p = decode(frame(wlan(0x41), linktype=LinkType.IEEE802_11))
    assert p.proto == 0 and p.anomalies == ("wlan.protected",)
    beacon = bytes(Dot11(type=0, subtype=8)) + b"\0" * 12
    p = decode(frame(beacon, linktype=LinkType.IEEE802_11))
    assert p.proto == 0 and p.anomalies == EMPTY


def test_unknown_linktype_and_truncation() -> None:
    assert decode(Frame(0, b"\0" * 40, 40, 9999, "")).anomalies == ("link.unsupported",)
    assert decode(frame(b"\0" * 10)).anomalies == ("eth.truncated",)
    p = decode(frame(bytes(eth() / inner_tcp())[:30]))
    assert p.proto == 0 and p.anomalies == ("ipv4.truncated",)
    p = decode(frame(bytes(eth() / inner_tcp())[:40]))
    assert p.proto == 0 and p.anomalies == ("ipv4.truncated", "tcp.truncated")


def test_snaplen_truncated_payload() -> None:
    full = bytes(eth() / inner_tcp(b"x" * 100))
    f = Frame(0, full[:80], len(full), 1, "")
    p = decode(f)
    assert p.proto == 6 and p.payload == b"x" * 26 and p.anomalies == ("ipv4.truncated",)
    assert p.wirelen == len(full)


def test_tso_zero_total_length() -> None:
    raw = bytearray(bytes(eth() / inner_tcp(b"y" * 3000)))
    raw[16:18] = b"\0\0"
    p = decode(frame(bytes(raw)), verify_checksums=False)
    assert p.proto == 6 and p.payload == b"y" * 3000 and p.anomalies == ("ipv4.zero_length",)


def test_bad_checksums_flagged_but_processed() -> None:
    pkt = eth() / IP(src=A, dst=B, chksum=0x1234) / TCP(sport=40000, dport=80, flags="PA", seq=1000,
                                                          ack=2000, window=512, chksum=0x4321) / b"zz"
    p = decode(frame(pkt))
    assert p.proto == 6 and p.payload == b"zz"
    assert p.anomalies == ("ipv4.bad_checksum", "tcp.bad_checksum")
    assert decode(frame(pkt), verify_checksums=False).anomalies == EMPTY
    u = decode(frame(eth() / IP(src=A, dst=B) / UDP(sport=1, dport=2, chksum=0x1111) / b"odd"))
    assert u.proto == 17 and u.payload == b"odd" and u.anomalies == ("udp.bad_checksum",)
    u0 = decode(frame(eth() / IP(src=A, dst=B) / UDP(sport=1, dport=2, chksum=0) / b"none"))
    assert u0.anomalies == EMPTY
    v6 = decode(frame(eth() / IPv6(src=A6, dst=B6) / TCP(chksum=1) / b"q"))
    assert v6.anomalies == ("tcp.bad_checksum",)
    ok6 = decode(frame(eth() / IPv6(src=A6, dst=B6) / UDP() / b"odd"))
    assert ok6.anomalies == EMPTY


def test_ipv6_extension_headers() -> None:
    pkt = IPv6(src=A6, dst=B6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt() / TCP(
        sport=1, dport=80, flags="A") / b"ext"
    p = decode(frame(eth() / pkt))
    assert (p.proto, p.payload, p.anomalies) == (6, b"ext", EMPTY)
    ah = IPv6(src=A6, dst=B6) / AH(nh=17, payloadlen=4, icv=b"\0" * 12) / UDP(sport=3, dport=4) / b"ah"
    p = decode(frame(eth() / ah), verify_checksums=False)
    assert (p.proto, p.dport, p.payload) == (17, 4, b"ah")
    esp = decode(frame(eth() / IPv6(src=A6, dst=B6, nh=50) / (b"\0" * 24)))
    assert esp.proto == 50 and esp.anomalies == EMPTY


@pytest.mark.parametrize("key", [False, True])
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("csum", [False, True])
def test_gre_ethernet(key: bool, seq: bool, csum: bool) -> None:
    gre = GRE(proto=0x6558, key_present=int(key), key=9, seqnum_present=int(seq), sequence_number=3,
              chksum_present=int(csum))
    outer = eth() / Dot1Q(vlan=999) / IP(src="10.0.0.1", dst="10.0.0.2") / gre
    p = decode(frame(outer / eth() / Dot1Q(vlan=12) / inner_tcp()))
    check_tcp(p, vlan=12, tunnel="gre")
    p = decode(frame(outer / eth() / inner_tcp()))
    check_tcp(p, vlan=0, tunnel="gre")  # transport VLAN 999 does not leak


def test_gre_ip_and_unknown() -> None:
    check_tcp(decode(frame(eth() / IP() / GRE(proto=0x0800) / inner_tcp())), tunnel="gre")
    v6 = decode(frame(eth() / IP() / GRE(proto=0x86DD) / IPv6(src=A6, dst=B6) / UDP(dport=7)))
    assert v6.proto == 17 and v6.tunnel == "gre"
    p = decode(frame(eth() / IP(src=A, dst=B) / GRE(proto=0x1234) / b"opaque"))
    assert p.proto == 47 and p.src == bytes([192, 0, 2, 1]) and p.anomalies == ("gre.unsupported",)
    assert p.payload.endswith(b"opaque")


def test_erspan_type_i_ii_iii() -> None:
    outer = eth() / IP(src="10.0.0.1", dst="10.0.0.2")
    t1 = outer / GRE(proto=0x88BE) / eth() / inner_tcp()
    check_tcp(decode(frame(t1)), tunnel="erspan")
    t2 = outer / GRE(proto=0x88BE, seqnum_present=1, sequence_number=5) / ERSPAN_II(vlan=33, session_id=3)
    check_tcp(decode(frame(t2 / eth() / inner_tcp())), vlan=33, tunnel="erspan")
    check_tcp(decode(frame(t2 / eth() / Dot1Q(vlan=34) / inner_tcp())), vlan=34, tunnel="erspan")
    t3 = outer / GRE(proto=0x22EB) / ERSPAN_III(vlan=44, session_id=3)
    check_tcp(decode(frame(t3 / eth() / inner_tcp())), vlan=44, tunnel="erspan")
    t3p = outer / GRE(proto=0x22EB) / ERSPAN_III(vlan=45, o=1) / ERSPAN_PlatformSpecific()
    check_tcp(decode(frame(t3p / eth() / inner_tcp())), vlan=45, tunnel="erspan")


@pytest.mark.parametrize("port", [4789, 8472])
def test_vxlan(port: int) -> None:
    pkt = eth() / Dot1Q(vlan=5) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=55555, dport=port) / VXLAN(
        vni=77) / eth() / Dot1Q(vlan=66) / inner_tcp()
    check_tcp(decode(frame(pkt)), vlan=66, tunnel="vxlan")


def test_nested_tunnels_and_depth_limit() -> None:
    inner = IP() / UDP(dport=4789) / VXLAN() / eth() / inner_tcp()
    p = decode(frame(eth() / IP() / GRE(proto=0x0800) / inner))
    check_tcp(p, tunnel="gre/vxlan")
    pkt = inner_tcp()
    for _ in range(10):
        pkt = IP() / GRE(proto=0x0800) / pkt
    p = decode(frame(eth() / pkt))
    assert p.proto == 47 and "decode.too_deep" in p.anomalies


def test_ipip() -> None:
    check_tcp(decode(frame(eth() / IP(proto=4) / inner_tcp())), tunnel="ipip")


def test_stateless_fragment_passthrough() -> None:
    from scapy.all import fragment

    frags = fragment(IP(src=A, dst=B) / UDP(sport=1, dport=2) / (b"x" * 3000), fragsize=1000)
    ps = [decode(frame(eth() / f)) for f in frags]
    assert all(p.proto == 17 and p.sport == 0 and "ipv4.fragment" in p.anomalies for p in ps)


def test_decoder_counters() -> None:
    d = Decoder()
    bad = eth() / IP(src=A, dst=B, chksum=1) / TCP() / b"q"
    for _ in range(3):
        assert d.decode(frame(bad)) is not None
    d.decode(frame(eth() / ARP()))
    assert d.counters == {"ipv4.bad_checksum": 3}


# -- VXLAN and Geneve off their usual ports ------------------------------------------------------

def _udp_carrier(sport: int, dport: int) -> IP:
    return IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=sport, dport=dport)


def _vxlan(vni: int = 77) -> bytes:
    """An RFC 7348 VXLAN header (scapy's VXLAN() sets the VXLAN-GPE bits)."""
    return struct.pack("!II", 0x08000000, vni << 8)


@pytest.mark.parametrize(("sport", "dport"), [(4789, 34567), (8472, 1024), (40000, 9999), (53, 5353)])
def test_vxlan_from_its_port_or_by_content(sport: int, dport: int) -> None:
    """A mirror may send VXLAN from 4789 to any port, or use ports of its own: recognised by
    either registered port, or by a valid header followed by a plausible inner frame."""
    pkt = eth() / _udp_carrier(sport, dport) / _vxlan() / eth() / Dot1Q(vlan=66) / inner_tcp()
    check_tcp(decode(frame(pkt)), vlan=66, tunnel="vxlan")
    six = eth() / _udp_carrier(sport, dport) / _vxlan() / eth() / IPv6(src=A6, dst=B6) / UDP(
        sport=5, dport=6) / b"inner"
    p = decode(frame(six))
    assert (p.tunnel, p.proto, p.payload, p.anomalies) == ("vxlan", 17, b"inner", EMPTY)


def test_vxlan_content_rule_needs_a_valid_inner_frame() -> None:
    """On an unregistered port, anything short of a valid header and inner IP header stays UDP."""
    good = _vxlan() + bytes(eth() / inner_tcp())
    bad_sum = bytearray(good)
    bad_sum[8 + 14 + 10] ^= 0xFF  # the inner IPv4 header checksum
    flags = bytearray(good)
    flags[0] = 0x0C
    reserved = bytearray(good)
    reserved[7] = 1
    arp = _vxlan() + bytes(eth() / ARP())
    six = _vxlan() + bytes(eth() / IPv6(src=A6, dst=B6, plen=99) / UDP() / b"inner")  # wrong payload length
    for payload in (bytes(bad_sum), bytes(flags), bytes(reserved), arp, six):
        p = decode(frame(eth() / _udp_carrier(40000, 9999) / payload))
        assert (p.tunnel, p.proto, p.payload) == ("", 17, payload)
        q = decode(frame(eth() / _udp_carrier(40000, 4789) / payload))  # the registered port decides
        assert q.tunnel == ("vxlan" if payload[0] & 0x08 else ""), payload[:8]
    # a datagram cut short by the snap length still shows its tunnel
    cut = bytes(eth() / _udp_carrier(40000, 9999) / _vxlan() / eth() / inner_tcp(b"x" * 500))[:200]
    p = decode(Frame(0, cut, 600, 1, ""))
    assert p.tunnel == "vxlan" and p.proto == 6 and "ipv4.truncated" in p.anomalies


@pytest.mark.parametrize(("sport", "dport"), [(50000, 6081), (6081, 50000), (50000, 7000)])
@pytest.mark.parametrize("inner", ["ethernet", "ipv4", "ipv6"])
def test_geneve(sport: int, dport: int, inner: str) -> None:
    from scapy.contrib.geneve import GENEVE

    if inner == "ethernet":
        g = GENEVE(vni=5, proto=0x6558, optionlen=2, options=bytes(8)) / eth() / Dot1Q(vlan=12) / inner_tcp()
        check_tcp(decode(frame(eth() / _udp_carrier(sport, dport) / g)), vlan=12, tunnel="geneve")
    elif inner == "ipv4":
        check_tcp(decode(frame(eth() / _udp_carrier(sport, dport) / GENEVE(proto=0x0800) / inner_tcp())),
                  tunnel="geneve")
    else:
        g = GENEVE(proto=0x86DD) / IPv6(src=A6, dst=B6) / UDP(sport=7, dport=8) / b"six"
        p = decode(frame(eth() / _udp_carrier(sport, dport) / g))
        assert (p.tunnel, p.proto, p.payload) == ("geneve", 17, b"six")
    # reserved bits set: a Geneve port still decides, content alone does not
    raw = bytearray(bytes(GENEVE(proto=0x0800) / inner_tcp()))
    raw[1] |= 0x01
    p = decode(frame(eth() / _udp_carrier(sport, dport) / bytes(raw)))
    assert p.tunnel == ("geneve" if 6081 in (sport, dport) else "")


# -- NFLOG (LINKTYPE 239) -----------------------------------------------------------------------

@pytest.mark.parametrize("big_endian", [False, True])
def test_nflog(big_endian: bool) -> None:
    from tools import synth as S

    link = S.Nflog(group=9, big_endian=big_endian)
    check_tcp(decode(Frame(5, f := link.wrap(bytes(inner_tcp()), 0x0800, True, 5), len(f), 239, "nflog:9")))
    six = link.wrap(bytes(IPv6(src=A6, dst=B6) / UDP(sport=1, dport=2) / b"v6"), 0x86DD, False, 5)
    p = decode(Frame(5, six, len(six), 239, ""))
    assert (p.proto, p.payload, p.anomalies) == (17, b"v6", EMPTY)


def test_nflog_without_payload_and_damaged() -> None:
    tlv = struct.pack("<HH", 12, 10) + b"prefix\0\0"  # NFULA_PREFIX only: a log entry without the packet
    hdr = bytes([2, 0, 0, 5])
    payload = bytes(inner_tcp())
    cases = {
        hdr + tlv: ("", 0),
        hdr[:3]: ("nflog.truncated", 0),
        hdr + tlv + struct.pack("<HH", 2, 9): ("nflog.bad_length", 0),
        hdr + struct.pack("<HH", 40, 10) + b"short": ("nflog.truncated", 0),
        hdr + tlv * 70 + struct.pack("<HH", 4 + len(payload), 9) + payload: ("nflog.too_many_tlvs", 0),
        hdr + struct.pack("<HH", 4 + len(payload), 9) + payload[:45]: ("ipv4.truncated", 6),
    }
    for raw, (code, proto) in cases.items():
        p = decode(Frame(0, raw, len(raw), 239, ""))
        assert p.proto == proto and (code in p.anomalies if code else p.anomalies == EMPTY), (raw, p.anomalies)


# -- checksum modes ---------------------------------------------------------------------------------

def _segments(src: str, dst: str, n: int, *, bad: bool = False, iface: str = "eth0") -> list[Frame]:
    """``n`` TCP segments from ``src``, with unfinished (zero) checksums when ``bad``."""
    out = []
    for i in range(n):
        raw = bytearray(bytes(eth() / IP(src=src, dst=dst) / TCP(sport=80, dport=40000, seq=i * 10, flags="A")
                              / (b"%010d" % i)))
        if bad:
            raw[14 + 20 + 16:14 + 20 + 18] = b"\0\0"
        out.append(Frame(i, bytes(raw), len(raw), 1, iface))
    return out


def test_checksum_modes_stateless() -> None:
    (f,) = _segments(A, B, 1, bad=True)
    assert decode(f).anomalies == ("tcp.bad_checksum",)
    assert decode(f, "verify").anomalies == decode(f, "auto").anomalies == ("tcp.bad_checksum",)
    assert decode(f, "off").anomalies == EMPTY
    with pytest.raises(ValueError):
        decode(f, "sometimes")
    with pytest.raises(ValueError):
        Decoder(checksums="sometimes")
    assert Decoder(verify_checksums=False).checksums.mode == "off"
    assert Decoder().checksums.mode == "verify" and Decoder(checksums="auto").verify_checksums


def test_auto_mode_stops_verifying_an_offloaded_side() -> None:
    """A side whose checksums are unfinished is recognised after a few packets and counted once;
    its later packets (also with a bad IPv4 header checksum) are not verified."""
    from capture.checksums import OFFLOAD_MIN_BAD

    d = Decoder(checksums="auto")
    ps = [d.decode(f) for f in _segments(B, A, 20, bad=True)]
    flagged = [p.anomalies for p in ps if p.anomalies]
    assert flagged == [("tcp.bad_checksum",)] * (OFFLOAD_MIN_BAD - 1) + [("tcp.bad_checksum", "checksum.offload")]
    assert d.counters == {"tcp.bad_checksum": OFFLOAD_MIN_BAD, "checksum.offload": 1}
    assert d.checksum_offload == [("eth0", B)]
    hdr = bytearray(_segments(B, A, 1)[0].data)
    hdr[24:26] = b"\0\0"  # the IPv4 header checksum too
    assert d.decode(Frame(0, bytes(hdr), len(hdr), 1, "eth0")).anomalies == EMPTY
    # the other side, and the same address on another interface, are still verified
    assert d.decode(_segments(A, B, 1, bad=True)[0]).anomalies == ("tcp.bad_checksum",)
    assert d.decode(_segments(B, A, 1, bad=True, iface="eth1")[0]).anomalies == ("tcp.bad_checksum",)


def test_auto_mode_keeps_verifying_a_clean_side() -> None:
    """Corrupted packets on a clean capture are flagged, before and after the learning window."""
    from capture.checksums import LEARN_WINDOW

    d = Decoder(checksums="auto")
    good = _segments(A, B, LEARN_WINDOW + 10)
    corrupt = _segments(A, B, 12, bad=True)
    seq = good[:5] + corrupt[:2] + good[5:] + corrupt[2:]
    ps = [d.decode(f) for f in seq]
    assert sum(1 for p in ps if p.anomalies == ("tcp.bad_checksum",)) == 12
    assert d.counters == {"tcp.bad_checksum": 12} and d.checksum_offload == []
