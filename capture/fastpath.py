"""The in-order TCP fast path: C code that takes the common packets off the Python path.

Nearly all packets of a bulk HTTP transfer are in-order data segments or pure ACKs of an
established connection. ``capture/_fastpath.c`` takes frames from three kinds of input:
classic pcap records (``FastPath.pcap``), TPACKET_V3 ring blocks (``FastPath.tpacket``) and
lists of frame tuples Python already holds (``FastPath.take_frames``: pcapng, libpcap,
merged rings). Its decoder (``capture/decode_frame.h``) reads Ethernet (with at most one 802.1Q
tag, in the frame or in the ring's metadata) / IPv4 (no options, not fragmented) or IPv6 (no
extension headers) / TCP, also inside one tunnel (ERSPAN I/II/III or transparent Ethernet in GRE,
VXLAN, Geneve; recognised by the rules of `capture.decode`), the checksums are verified as the
checksum mode says (``checksums``: the `capture.decode.Decoder`'s `OffloadTracker`, shared so
that both halves learn which sides offload checksums from the same packets), and for directions
that `TcpReassembler` has *armed* it appends in-order payload to a run per direction; a run
reaches Python as one joined chunk (``on_run`` → `TcpReassembler.apply_run`). Every other
frame is handed back (``on_frame``) at once, in capture order, and takes the full path
(`capture.decode`, `TcpReassembler.feed_synced`), which remains the only place where TCP
decisions are made.

The contract between the two halves:

* Python announces every direction it tracks (``known``, on flow creation) and drops it when the
  flow leaves the table (``forget``). After each packet Python processes itself, it re-arms both
  directions of that flow (``arm(key, half, exp, ack_ok)``) when `_Half.fast` holds, else
  disarms them: ``exp`` is the next expected sequence number (-1: data must go to Python),
  ``ack_ok`` is false while the peer has data buffered beyond a hole (an ACK may then turn a
  hole into a gap, which only Python decides).
* The C side takes a packet only for an armed direction, without SYN/FIN/RST, with valid
  checksums (or none to verify: mode ``off``, or a side found offloaded), and with data exactly
  at ``exp``. Anything else for a known flow flushes that
  flow's runs, disarms it and goes to Python. A packet for an unknown direction (Python may
  create a flow, and evict another for it), a SYN, or a frame it cannot attribute to a flow
  (other tunnels, fragments, other link types) flushes every run first, so Python always acts
  on an exact table.
* Per flow, events keep packet order: a direction's run is flushed before the other
  direction's data is added. A run carries the time of its last packet. Runs are flushed at
  256 KiB or 256 segments, before Python sees any packet of their flow, and at the end of each
  call; a call stops after the first frame at or past ``stop_ts`` (the next expiry or stats
  time), so timeouts see the same packet times as on the pure-Python path.

The events of different flows may interleave differently from the pure-Python path; the
objects and their bytes are the same (tests/capture/test_fastpath.py compares both paths on
golden cases, random impaired traffic and mutated frames).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from appliance.model import Frame
from capture.checksums import OffloadTracker

__all__ = ["available", "new_fast_path"]


def available() -> bool:
    """True when the C extension is built."""
    try:
        from capture import _fastpath  # noqa: F401
    except ImportError:
        return False
    return True


def new_fast_path(
    on_frame: Callable[[Frame], None],
    on_run: Callable[[object, bytes | None, int, int], None],
    *,
    verify_checksums: bool = True,
    linktype: int = 1,
    iface: str = "",
    checksums: OffloadTracker | None = None,
) -> Any:
    """A new ``FastPath`` for records of ``linktype`` (None when the extension is not built).

    ``on_frame(frame)`` gets every frame the fast path does not take, as a `Frame`-shaped
    tuple, in capture order; ``on_run(half, data, npkts, last_ts)`` gets each run.
    ``checksums``: the `Decoder.checksums` of the decoder that gets the frames (its mode and
    offload state, shared); without it ``verify_checksums`` says verify everything or nothing.
    """
    try:
        from capture._fastpath import FastPath
    except ImportError:
        return None
    return FastPath(on_frame, on_run, verify_checksums=verify_checksums, linktype=linktype, iface=iface,
                    checksums=checksums)
