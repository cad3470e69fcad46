"""Minimal pcap (microsecond) and pcapng writers, with `struct` (tooling, never the product)."""

from __future__ import annotations

import struct
from typing import IO

DLT_EN10MB = 1
DLT_RAW = 101
DLT_LINUX_SLL = 113
DLT_NFLOG = 239

_PCAP_HEADER = struct.Struct("<IHHiIII")
_PCAP_RECORD = struct.Struct("<IIII")
_BLOCK_HEAD = struct.Struct("<II")


class PcapWriter:
    """Classic little-endian pcap with microsecond timestamps."""

    def __init__(self, fh: IO[bytes], *, snaplen: int = 262144, linktype: int = DLT_EN10MB) -> None:
        self._f = fh
        self.snaplen = snaplen
        fh.write(_PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))

    def write(self, frame: bytes, ts_us: int) -> None:
        """One record; the frame is cut at the snap length (its wire length is kept)."""
        cap = frame[: self.snaplen]
        self._f.write(_PCAP_RECORD.pack(ts_us // 1_000_000, ts_us % 1_000_000, len(cap), len(frame)))
        self._f.write(cap)


class PcapngWriter:
    """pcapng: one section, one interface (microsecond resolution, the default), enhanced packet blocks."""

    def __init__(self, fh: IO[bytes], *, snaplen: int = 262144, linktype: int = DLT_EN10MB) -> None:
        self._f = fh
        self.snaplen = snaplen
        shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
        self._block(0x0A0D0D0A, shb)
        self._block(1, struct.pack("<HHI", linktype, 0, snaplen))

    def _block(self, kind: int, body: bytes) -> None:
        pad = -len(body) % 4
        total = 12 + len(body) + pad
        self._f.write(_BLOCK_HEAD.pack(kind, total) + body + b"\0" * pad + struct.pack("<I", total))

    def write(self, frame: bytes, ts_us: int) -> None:
        """One enhanced packet block on interface 0."""
        cap = frame[: self.snaplen]
        head = struct.pack("<IIIII", 0, ts_us >> 32, ts_us & 0xFFFFFFFF, len(cap), len(frame))
        self._block(6, head + cap)
