"""Writers for test captures (pcap, pcapng) built in the tests; no binary files are committed."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

from appliance.model import Frame

PCAP_US = 0xA1B2C3D4
PCAP_NS = 0xA1B23C4D


def pcap_bytes(
    records: Iterable[tuple[int, bytes, int]],
    linktype: int = 1,
    nano: bool = False,
    big_endian: bool = False,
    snaplen: int = 65535,
) -> bytes:
    """Classic pcap from (ts_ns, data, wirelen) records."""
    bo = ">" if big_endian else "<"
    out = [struct.pack(bo + "IHHiIII", PCAP_NS if nano else PCAP_US, 2, 4, 0, 0, snaplen, linktype)]
    for ts, data, wirelen in records:
        sec, ns = divmod(ts, 1_000_000_000)
        frac = ns if nano else ns // 1000
        out.append(struct.pack(bo + "IIII", sec, frac, len(data), wirelen) + data)
    return b"".join(out)


def _pad4(b: bytes) -> bytes:
    return b + b"\0" * (-len(b) % 4)


class PcapNg:
    """A tiny pcapng writer: sections, interfaces with options, EPB/SPB/PB, arbitrary blocks."""

    def __init__(self, big_endian: bool = False) -> None:
        self.parts: list[bytes] = []
        self.bo = ">" if big_endian else "<"
        self.section(big_endian)

    def block(self, btype: int, body: bytes) -> PcapNg:
        body = _pad4(body)
        n = len(body) + 12
        self.parts.append(struct.pack(self.bo + "II", btype, n) + body + struct.pack(self.bo + "I", n))
        return self

    def section(self, big_endian: bool | None = None) -> PcapNg:
        if big_endian is not None:
            self.bo = ">" if big_endian else "<"
        return self.block(0x0A0D0D0A, struct.pack(self.bo + "IHHq", 0x1A2B3C4D, 1, 0, -1))

    def option(self, code: int, value: bytes) -> bytes:
        return struct.pack(self.bo + "HH", code, len(value)) + _pad4(value)

    def interface(self, linktype: int, name: str | None = None, tsresol: int | None = None,
                  tsoffset: int | None = None, snaplen: int = 0) -> PcapNg:
        opts = b""
        if name is not None:
            opts += self.option(2, name.encode())
        if tsresol is not None:
            opts += self.option(9, bytes([tsresol]))
        if tsoffset is not None:
            opts += self.option(14, struct.pack(self.bo + "q", tsoffset))
        if opts:
            opts += struct.pack(self.bo + "HH", 0, 0)
        return self.block(1, struct.pack(self.bo + "HHI", linktype, 0, snaplen) + opts)

    def epb(self, ifid: int, ts: int, data: bytes, wirelen: int | None = None) -> PcapNg:
        """``ts`` is in the interface's own units."""
        return self.block(6, struct.pack(self.bo + "IIIII", ifid, ts >> 32, ts & 0xFFFFFFFF, len(data),
                                         len(data) if wirelen is None else wirelen) + data)

    def spb(self, data: bytes, wirelen: int | None = None) -> PcapNg:
        return self.block(3, struct.pack(self.bo + "I", len(data) if wirelen is None else wirelen) + data)

    def pb(self, ifid: int, ts: int, data: bytes) -> PcapNg:
        return self.block(2, struct.pack(self.bo + "HHIIII", ifid, 0, ts >> 32, ts & 0xFFFFFFFF,
                                         len(data), len(data)) + data)

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def frame(pkt: object, linktype: int = 1, ts: int = 1_000_000_000, iface: str = "") -> Frame:
    """A `Frame` from a scapy/dpkt packet or bytes."""
    data = bytes(pkt)  # type: ignore[call-overload]
    return Frame(ts, data, len(data), linktype, iface)


def payloads(pkts: Sequence[object]) -> list[bytes]:
    return [bytes(p) for p in pkts]  # type: ignore[call-overload]


def eth(**kw: object):
    """An Ethernet header with fixed MACs (scapy would otherwise resolve them, slowly)."""
    from scapy.all import Ether

    kw.setdefault("dst", "02:00:00:00:00:01")
    kw.setdefault("src", "02:00:00:00:00:02")
    return Ether(**kw)
