"""Checksum policy: verify IPv4/TCP/UDP checksums always, never, or until a side shows offload.

A capture taken on a host with transmit checksum offload (the normal state of a capture made on
a server or a laptop) holds that host's TCP/UDP segments with unfinished checksums: zero, or the
pseudo-header sum the NIC was to complete. Counting each of them as ``tcp.bad_checksum`` floods
the anomaly counters and keeps every such packet off the C fast path. The modes
(``capture.checksums``) are:

* ``verify``: every checksum is verified; a bad one is an anomaly on its packet.
* ``off``: nothing is verified.
* ``auto`` (as Suricata's ``checksum-validation: auto``): checksums are verified and each *side*
  — a source address on an interface — learns from its own packets. A side whose TCP/UDP
  checksums fail for at least `OFFLOAD_MIN_BAD` packets and for more than half of the ones
  checked so far, within its first `LEARN_WINDOW` checked packets, is *offloaded*: its
  checksums are not verified any more (its packets stay on the fast path) and the packet that
  decided it carries ``checksum.offload`` once, instead of one anomaly per packet. A side that
  gets through its first `LEARN_WINDOW` packets otherwise stays verified for good, so a
  corrupted packet on a clean capture is still flagged. At most `MAX_SIDES` sides are tracked;
  packets of further sources are verified without learning.

One observation is made per IP layer whose TCP or UDP checksum was verified (not truncated, UDP
checksum not zero), bad when that checksum or the IPv4 header checksum of the same layer failed.
The state is shared by the Python decoder and the C fast path (`new_tracker` returns the C
implementation when it is built), which both update it in capture order, so both paths flag the
same packets.
"""

from __future__ import annotations

from typing import Protocol

__all__ = [
    "LEARN", "LEARN_WINDOW", "MAX_SIDES", "MODES", "OFFLOAD_MIN_BAD", "SKIP", "VERIFY",
    "OffloadTracker", "PyOffloadTracker", "csum_valid", "csum_valid_py", "new_tracker",
]

MODES = ("auto", "verify", "off")
"""Values of ``capture.checksums``."""
SKIP = 0
"""`OffloadTracker.state`: do not verify (mode ``off``, or an offloaded side)."""
VERIFY = 1
"""`OffloadTracker.state`: verify, nothing to learn."""
LEARN = 2
"""`OffloadTracker.state`: verify, then report the outcome with `OffloadTracker.observe`."""
LEARN_WINDOW = 64
"""Checked packets after which a side that has not shown offload is verified for good."""
OFFLOAD_MIN_BAD = 4
"""Bad checksums a side needs (and more than half of its checked packets) to count as offloaded."""
MAX_SIDES = 16384
"""Sides tracked at most (memory bound); packets of further sources are verified."""


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


class OffloadTracker(Protocol):
    """The checksum mode and, in ``auto``, the offload state of each side."""

    @property
    def mode(self) -> str: ...

    def state(self, iface: str, src: bytes) -> int:
        """`SKIP`, `VERIFY` or `LEARN` for a packet layer from ``src`` seen on ``iface``."""
        ...

    def observe(self, iface: str, src: bytes, bad: bool) -> bool:
        """Record a checked layer of a `LEARN` side; True when it makes the side offloaded."""
        ...

    def offloaded(self) -> list[tuple[str, bytes]]:
        """The sides found offloaded, in the order they were found: (interface, address)."""
        ...


class PyOffloadTracker:
    """The pure-Python `OffloadTracker` (the C one in ``capture._fastpath`` behaves the same)."""

    __slots__ = ("_found", "_sides", "mode")

    def __init__(self, mode: str = "auto") -> None:
        if mode not in MODES:
            raise ValueError(f"checksum mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self._sides: dict[tuple[str, bytes], list[int]] = {}
        """(iface, address) → [checked, bad, state]."""
        self._found: list[tuple[str, bytes]] = []

    def state(self, iface: str, src: bytes) -> int:
        mode = self.mode
        if mode != "auto":
            return VERIFY if mode == "verify" else SKIP
        s = self._sides.get((iface, src))
        if s is not None:
            return s[2]
        return LEARN if len(self._sides) < MAX_SIDES else VERIFY

    def observe(self, iface: str, src: bytes, bad: bool) -> bool:
        key = (iface, src)
        s = self._sides.get(key)
        if s is None:
            if self.mode != "auto" or len(self._sides) >= MAX_SIDES:
                return False
            s = self._sides[key] = [0, 0, LEARN]
        elif s[2] != LEARN:
            return False
        s[0] += 1
        if bad:
            s[1] += 1
            if s[1] >= OFFLOAD_MIN_BAD and s[1] * 2 > s[0]:
                s[2] = SKIP
                self._found.append(key)
                return True
        if s[0] >= LEARN_WINDOW:
            s[2] = VERIFY
        return False

    def offloaded(self) -> list[tuple[str, bytes]]:
        return list(self._found)

    def __len__(self) -> int:
        return len(self._sides)


def new_tracker(mode: str = "auto") -> OffloadTracker:
    """An `OffloadTracker` for ``mode``: the C one when ``capture._fastpath`` is built (the fast
    path can share it), else `PyOffloadTracker`."""
    if mode not in MODES:
        raise ValueError(f"checksum mode must be one of {', '.join(MODES)}, not {mode!r}")
    try:
        from capture._fastpath import OffloadTracker as COffloadTracker
    except ImportError:
        return PyOffloadTracker(mode)
    return COffloadTracker(mode)  # type: ignore[no-any-return]
