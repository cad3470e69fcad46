"""A minimal ZIP writer with traditional PKWARE encryption (ZipCrypto), as malware tools pack samples.

Extracted objects leave the console only inside such a ZIP, password ``infected`` by convention,
so no browser, mail filter or desktop opens the content by accident (Python's ``zipfile`` reads
these but cannot write them). ZipCrypto is weak encryption — the point is packaging, not secrecy.
Entries are deflated; names are UTF-8 (flag bit 11).
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from dataclasses import dataclass

__all__ = ["PASSWORD", "encrypted_zip"]

PASSWORD = b"infected"


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC = _crc_table()


class _Keys:
    def __init__(self, password: bytes) -> None:
        self.k0, self.k1, self.k2 = 0x12345678, 0x23456789, 0x34567890
        for b in password:
            self._update(b)

    def _update(self, b: int) -> None:
        self.k0 = (self.k0 >> 8) ^ _CRC[(self.k0 ^ b) & 0xFF]
        self.k1 = (self.k1 + (self.k0 & 0xFF)) & 0xFFFFFFFF
        self.k1 = (self.k1 * 134775813 + 1) & 0xFFFFFFFF
        self.k2 = (self.k2 >> 8) ^ _CRC[(self.k2 ^ (self.k1 >> 24)) & 0xFF]

    def encrypt(self, data: bytes) -> bytes:
        k0, k1, k2, crc = self.k0, self.k1, self.k2, _CRC
        out = bytearray(len(data))
        for i, p in enumerate(data):
            t = (k2 | 2) & 0xFFFF
            out[i] = p ^ (((t * (t ^ 1)) >> 8) & 0xFF)
            k0 = (k0 >> 8) ^ crc[(k0 ^ p) & 0xFF]
            k1 = ((k1 + (k0 & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
            k2 = (k2 >> 8) ^ crc[(k2 ^ (k1 >> 24)) & 0xFF]
        self.k0, self.k1, self.k2 = k0, k1, k2
        return bytes(out)


@dataclass(slots=True)
class _Entry:
    name: bytes
    crc: int
    csize: int
    usize: int
    offset: int
    dostime: int
    dosdate: int


def _dos_time(ts: float) -> tuple[int, int]:
    t = time.gmtime(max(ts, 315532800))  # ZIP times start in 1980
    dos_time = (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2)
    return dos_time, ((t.tm_year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday


def _safe_name(name: str) -> bytes:
    """A plain file name: no directories, no drive, no control characters (ZIP path traversal)."""
    base = name.replace("\\", "/").split("/")[-1]
    base = "".join(c for c in base if c.isprintable() and c not in ':*?"<>|').strip(". ") or "object"
    return base[:200].encode("utf-8")


def encrypted_zip(files: list[tuple[str, bytes]], password: bytes = PASSWORD, mtime: float | None = None) -> bytes:
    """A ZIP of *files* ((name, data) pairs), each entry deflated and ZipCrypto-encrypted with *password*."""
    out = bytearray()
    entries: list[_Entry] = []
    dostime, dosdate = _dos_time(time.time() if mtime is None else mtime)
    for name, data in files:
        raw = _safe_name(name)
        crc = zlib.crc32(data) & 0xFFFFFFFF
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        deflated = comp.compress(data) + comp.flush()
        keys = _Keys(password)
        header = os.urandom(11) + bytes([crc >> 24])
        body = keys.encrypt(header) + keys.encrypt(deflated)
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0x0801, 8, dostime, dosdate, crc, len(body), len(data),
                           len(raw), 0)
        out += raw + body
        entries.append(_Entry(raw, crc, len(body), len(data), offset, dostime, dosdate))
    cd_start = len(out)
    for e in entries:
        out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0x0801, 8, e.dostime, e.dosdate, e.crc, e.csize,
                           e.usize, len(e.name), 0, 0, 0, 0, 0, e.offset)
        out += e.name
    cd_size = len(out) - cd_start
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), cd_size, cd_start, 0)
    return bytes(out)
