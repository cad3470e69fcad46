"""Per-packet types: a captured `Frame` and the decoded `Packet`."""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import NamedTuple

EMPTY: tuple[str, ...] = ()
"""The shared empty anomaly tuple (most packets have no anomaly)."""


class LinkType(IntEnum):
    """pcap LINKTYPE_* values tapsift decodes."""

    NULL = 0
    ETHERNET = 1
    RAW_DLT12 = 12  # DLT_RAW on most BSDs
    RAW_DLT14 = 14  # DLT_RAW on OpenBSD
    RAW = 101
    CHDLC = 104
    IEEE802_11 = 105
    LOOP = 108
    LINUX_SLL = 113
    IEEE802_11_RADIOTAP = 127
    IPV4 = 228
    IPV6 = 229
    LINUX_SLL2 = 276


class Frame(NamedTuple):
    """A captured layer-2 frame as a packet source delivers it."""

    ts_ns: int
    """Capture time, nanoseconds since the epoch."""
    data: bytes
    """The captured bytes (possibly shorter than ``wirelen``)."""
    wirelen: int
    """Length of the frame on the wire."""
    linktype: int
    """pcap link type of ``data`` (see `LinkType`)."""
    iface: str = ""
    """Capture interface name (empty for files without interface names)."""


class TcpFlags(IntFlag):
    """TCP header flags."""

    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    PSH = 0x08
    ACK = 0x10
    URG = 0x20
    ECE = 0x40
    CWR = 0x80


class Packet:
    """A decoded IP packet (or a frame that could not be decoded, with ``proto == 0``).

    Addresses are packed bytes (4 or 16); ``seq``/``ack``/``flags``/``win`` are only
    meaningful for TCP. ``payload`` is the transport payload. ``anomalies`` lists decode
    problems (bad checksums, truncation, unknown link types) as short codes.
    """

    __slots__ = (
        "ack",
        "anomalies",
        "dport",
        "dst",
        "flags",
        "iface",
        "payload",
        "proto",
        "seq",
        "sport",
        "src",
        "ts_ns",
        "tunnel",
        "vlan",
        "win",
        "wirelen",
    )

    def __init__(
        self,
        ts_ns: int,
        iface: str,
        vlan: int,
        src: bytes,
        dst: bytes,
        sport: int,
        dport: int,
        proto: int,
        seq: int,
        ack: int,
        flags: int,
        win: int,
        payload: bytes,
        anomalies: tuple[str, ...] = EMPTY,
        wirelen: int = 0,
        tunnel: str = "",
    ) -> None:
        self.ts_ns = ts_ns
        self.iface = iface
        self.vlan = vlan
        """Outermost 802.1Q VLAN id of the inner packet (0 if untagged)."""
        self.src = src
        self.dst = dst
        self.sport = sport
        self.dport = dport
        self.proto = proto
        """IP protocol number: 6 TCP, 17 UDP, other values carry no ports; 0 = not IP."""
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.win = win
        self.payload = payload
        self.anomalies = anomalies
        self.wirelen = wirelen
        self.tunnel = tunnel
        """Encapsulation that was removed (``"gre"``, ``"erspan"``, ``"vxlan"``…), else empty."""

    def __repr__(self) -> str:
        import ipaddress

        def ip(b: bytes) -> str:
            try:
                return str(ipaddress.ip_address(b))
            except ValueError:
                return b.hex()

        return (
            f"Packet({ip(self.src)}:{self.sport} > {ip(self.dst)}:{self.dport} proto={self.proto} "
            f"seq={self.seq} ack={self.ack} flags={TcpFlags(self.flags)!s} len={len(self.payload)} "
            f"anomalies={self.anomalies})"
        )
