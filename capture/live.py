"""Live capture: AF_PACKET TPACKET_V3 rings with PACKET_FANOUT_HASH, and a libpcap alternative.

Two halves, because the process model splits privileges:

- `open_socket` (supervisor, while it still has CAP_NET_RAW) creates one receive-only packet
  socket per (interface, worker): TPACKET_V3 ring, optional classic BPF filter, bound to the
  interface, `PACKET_IGNORE_OUTGOING`, joined to the interface's fanout group (hash of the
  symmetric flow tuple, after IP defragmentation) and promiscuous. The supervisor keeps the
  socket open for the life of the sensor: a restarted worker inherits the same socket, so its
  fanout slot (and so the flow → worker mapping) never moves, and `PacketSocket.stats`
  (PACKET_STATISTICS) can be read even while a worker is stuck.
- `RingReader` (worker, no privileges) maps the rings and yields `Frame`s. Per packet it
  does one ``struct`` unpack of the ``tpacket3_hdr`` and one slice of the map; there is no
  syscall per packet (``poll`` only when every ring is empty).

Nothing here transmits: no TX ring is set up and no send call exists. Frames whose VLAN tag
the kernel moved to metadata (``TP_STATUS_VLAN_VALID``) get the tag put back, as libpcap does,
so the decoder sees the frame as it was on the wire.

`PcapHandle` is the libpcap backend (pcapy-ng, libpcap's own TPACKET_V3 ring and fanout).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import select
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from appliance.model import Frame

__all__ = [
    "BpfError",
    "LiveError",
    "LiveOptions",
    "PacketSocket",
    "PcapHandle",
    "PcapReader",
    "RingReader",
    "compile_bpf",
    "open_pcap",
    "open_socket",
]

SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_FANOUT = 18
PACKET_IGNORE_OUTGOING = 23
PACKET_MR_PROMISC = 1
TPACKET_V3 = 2
PACKET_FANOUT_HASH = 0
PACKET_FANOUT_FLAG_DEFRAG = 0x8000
SO_ATTACH_FILTER = 26
ETH_P_ALL = 0x0003

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40

_ARPHRD_LINKTYPE = {1: 1, 772: 1, 65534: 101, 768: 101, 769: 101, 776: 101}
"""ARPHRD_* → pcap link type: Ethernet and loopback frames, raw IP for layer-3 devices."""

_HDR = struct.Struct("=IIIIIIHHIIH")
"""tpacket3_hdr: next_offset, sec, nsec, snaplen, len, status, mac, net, rxhash, vlan_tci, vlan_tpid."""
_BLOCK = struct.Struct("=IIIIIIQ")
"""tpacket_block_desc: version, offset_to_priv, block_status, num_pkts, offset_to_first_pkt, blk_len, seq."""
_BLOCK_STATUS = struct.Struct("=I")
_STATS3 = struct.Struct("=III")
_new_frame = tuple.__new__


class LiveError(OSError):
    """A capture interface cannot be opened (missing, not permitted, bad ring geometry)."""


class BpfError(ValueError):
    """A BPF filter expression that does not compile."""


@dataclass(frozen=True)
class LiveOptions:
    """How capture sockets are opened (see `appliance.settings.LiveSettings`)."""

    ring_bytes: int = 64 << 20
    """Ring size per socket (per interface and worker)."""
    block_bytes: int = 1 << 20
    """Ring block size: a power of two ≥ the page size; also the largest frame that fits whole."""
    block_timeout_ms: int = 50
    """A partly filled block is handed to the reader after this long (latency at low rates)."""
    bpf: str = ""
    """Classic BPF filter expression (tcpdump syntax); empty = everything."""
    promisc: bool = True
    fanout_defrag: bool = True
    """Reassemble IP fragments before the fanout hash (both halves of a datagram to one worker)."""


# --------------------------------------------------------------------------------------------
# BPF
# --------------------------------------------------------------------------------------------

class _BpfInsn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


def compile_bpf(expr: str, linktype: int = 1, snaplen: int = 262144) -> list[tuple[int, int, int, int]]:
    """Compile a tcpdump filter expression to classic BPF instructions ``(code, jt, jf, k)``.

    Uses libpcap (``pcap_open_dead`` + ``pcap_compile``) through ctypes; falls back to
    ``tcpdump -ddd`` when libpcap cannot be loaded. Raises `BpfError` for a bad expression.
    """
    name = ctypes.util.find_library("pcap")
    if name:
        lib = ctypes.CDLL(name)
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
        lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p,
                                     ctypes.c_int, ctypes.c_uint32]
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = [ctypes.c_void_p]
        lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
        lib.pcap_close.argtypes = [ctypes.c_void_p]
        p = lib.pcap_open_dead(linktype, snaplen)
        prog = _BpfProgram()
        try:
            if lib.pcap_compile(p, ctypes.byref(prog), expr.encode(), 1, 0xFFFFFFFF) != 0:
                raise BpfError(f"bad BPF filter {expr!r}: {lib.pcap_geterr(p).decode(errors='replace')}")
            out = [(prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf, prog.bf_insns[i].k)
                   for i in range(prog.bf_len)]
            lib.pcap_freecode(ctypes.byref(prog))
            return out
        finally:
            lib.pcap_close(p)
    tcpdump = shutil.which("tcpdump")
    if tcpdump is None:
        raise BpfError("cannot compile BPF filters: neither libpcap nor tcpdump is installed")
    res = subprocess.run([tcpdump, "-ddd", "-y", "EN10MB" if linktype == 1 else "RAW", expr],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise BpfError(f"bad BPF filter {expr!r}: {res.stderr.strip()}")
    lines = res.stdout.split("\n")
    n = int(lines[0])
    return [tuple(int(x) for x in line.split()) for line in lines[1:n + 1]]  # type: ignore[misc]


def _attach_bpf(sock: socket.socket, insns: Sequence[tuple[int, int, int, int]]) -> None:
    arr = (_BpfInsn * len(insns))(*[_BpfInsn(*i) for i in insns])
    fprog = struct.pack("HL", len(insns), ctypes.addressof(arr))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)  # the kernel copies the program


# --------------------------------------------------------------------------------------------
# AF_PACKET sockets (supervisor side)
# --------------------------------------------------------------------------------------------

def _arphrd(iface: str) -> int:
    """The interface's ARPHRD type (SIOCGIFHWADDR: works in any namespace, unlike /sys)."""
    import fcntl

    if not iface or len(iface.encode()) > 15:
        raise LiveError(f"{iface!r}: not an interface name")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s, 0x8927, struct.pack("16s16x", iface.encode()))
        except OSError:
            raise LiveError(f"{iface}: no such network interface") from None
    return int(struct.unpack_from("H", res, 16)[0])


class PacketSocket:
    """A receive-only AF_PACKET socket with a TPACKET_V3 ring, bound to one interface."""

    def __init__(self, sock: socket.socket, iface: str, worker: int, linktype: int, block_bytes: int,
                 block_count: int) -> None:
        self.sock = sock
        self.iface = iface
        self.worker = worker
        self.linktype = linktype
        self.block_bytes = block_bytes
        self.block_count = block_count
        self.kernel_packets = 0
        """Packets the kernel offered this socket (after the filter), including dropped ones."""
        self.kernel_drops = 0
        """Packets dropped because the ring was full (PACKET_STATISTICS, accumulated)."""
        self.freeze_count = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    @property
    def ring_bytes(self) -> int:
        return self.block_bytes * self.block_count

    def stats(self) -> tuple[int, int]:
        """Read PACKET_STATISTICS (which resets the kernel's counters) and return the running
        totals ``(packets, drops)``. Only one process may call this for a socket."""
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS3.size)
        pkts, drops, freeze = _STATS3.unpack(raw)
        self.kernel_packets += pkts
        self.kernel_drops += drops
        self.freeze_count += freeze
        return self.kernel_packets, self.kernel_drops

    def close(self) -> None:
        self.sock.close()


def open_socket(iface: str, opts: LiveOptions, fanout_group: int | None, worker: int = 0) -> PacketSocket:
    """Open the capture socket of ``worker`` on ``iface`` (needs CAP_NET_RAW).

    Order matters: the socket is created with protocol 0 (it receives nothing), gets its ring
    and filter, and only then is bound with ETH_P_ALL, so no unfiltered packet reaches the ring.
    Sockets of one fanout group must be opened in worker order on every interface so that
    slot ``i`` is worker ``i`` everywhere (flows seen on two interfaces, as with a split tap,
    then reach the same worker: the kernel hash is symmetric and not per-device).
    """
    arphrd = _arphrd(iface)
    linktype = _ARPHRD_LINKTYPE.get(arphrd)
    if linktype is None:
        raise LiveError(f"{iface}: unsupported link type (ARPHRD {arphrd})")
    bs = opts.block_bytes
    if bs < mmap.PAGESIZE or bs & (bs - 1):
        raise LiveError(f"block size {bs} must be a power of two ≥ {mmap.PAGESIZE}")
    nblocks = max(2, opts.ring_bytes // bs)
    insns = compile_bpf(opts.bpf, linktype) if opts.bpf else None
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    except PermissionError:
        raise LiveError(f"{iface}: opening a packet socket needs root or CAP_NET_RAW") from None
    try:
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
        frame_size = 2048
        req = struct.pack("=7I", bs, nblocks, frame_size, bs // frame_size * nblocks,
                          opts.block_timeout_ms, 0, 0)
        sock.setsockopt(SOL_PACKET, PACKET_RX_RING, req)
        if insns:
            _attach_bpf(sock, insns)
        try:
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        except OSError:  # kernels before 4.20: outgoing packets are then simply seen
            pass
        sock.bind((iface, ETH_P_ALL))
        if fanout_group is not None:
            mode = PACKET_FANOUT_HASH | (PACKET_FANOUT_FLAG_DEFRAG if opts.fanout_defrag else 0)
            sock.setsockopt(SOL_PACKET, PACKET_FANOUT, struct.pack("=I", (fanout_group & 0xFFFF) | (mode << 16)))
        if opts.promisc:
            ifindex = socket.if_nametoindex(iface)
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                            struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b""))
    except OSError as exc:
        sock.close()
        raise LiveError(f"{iface}: cannot set up capture: {exc.strerror or exc}") from None
    return PacketSocket(sock, iface, worker, linktype, bs, nblocks)


# --------------------------------------------------------------------------------------------
# Reading rings (worker side)
# --------------------------------------------------------------------------------------------

class _Ring:
    __slots__ = ("bs", "fd", "iface", "last_ts", "linktype", "mm", "nblocks", "next")

    def __init__(self, ps: PacketSocket) -> None:
        self.fd = ps.fileno()
        self.iface = ps.iface
        self.linktype = ps.linktype
        self.bs = ps.block_bytes
        self.nblocks = ps.block_count
        self.mm = mmap.mmap(self.fd, self.bs * self.nblocks, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.next = 0
        self.last_ts = 0
        self.resync()

    def resync(self) -> bool:
        """Point `next` at the oldest block the kernel handed over (a restarted worker finds
        the ring wherever the previous one left it). True when a ready block was found."""
        best = None
        for i in range(self.nblocks):
            _v, _p, status, _n, _o, _l, seq = _BLOCK.unpack_from(self.mm, i * self.bs)
            if status & TP_STATUS_USER and (best is None or seq < best[0]):
                best = (seq, i)
        if best is not None:
            self.next = best[1]
            return True
        return False


class RingReader:
    """Reads the TPACKET_V3 rings of one worker's sockets (one per interface)."""

    def __init__(self, sockets: Sequence[PacketSocket]) -> None:
        self.rings = [_Ring(ps) for ps in sockets]
        self.packets = 0
        self.bytes = 0
        self.blocks = 0
        self.vlan_restored = 0
        self.truncated = 0
        """Frames longer than what the ring could hold (captured length < wire length)."""

    @property
    def fast_input(self) -> str:
        """What this source offers a consumer such as the C fast path: ``"blocks"`` (one ring:
        `feed_blocks`) or ``"batches"`` (several rings merged in time order: `batches`)."""
        return "blocks" if len(self.rings) == 1 else "batches"

    @property
    def linktype(self) -> int:
        """Link type of the (first) ring."""
        return self.rings[0].linktype

    def batches(self, stop: Callable[[], bool], tick: Callable[[], None] | None = None) -> Iterator[list[Frame]]:
        """The frames as lists: per ring block (one ring), or as `merged_batches` releases them."""
        if len(self.rings) > 1:
            yield from self.merged_batches(stop, tick)
            return
        for r, off, num in self._ready_blocks(stop, tick, 0.5, 100):
            yield self._block_frames(r, off, num)

    def frames(
        self,
        stop: Callable[[], bool],
        tick: Callable[[], None] | None = None,
        tick_interval: float = 0.5,
        poll_ms: int = 100,
    ) -> Iterator[Frame]:
        """Yield frames until ``stop()`` is true (checked per block and per idle poll).

        ``tick`` is called about every ``tick_interval`` seconds of wall time, busy or idle.
        With several rings (interfaces) the frames come through `merged_frames`.
        """
        if len(self.rings) > 1:
            yield from self.merged_frames(stop, tick, tick_interval)
            return
        for r, off, num in self._ready_blocks(stop, tick, tick_interval, poll_ms):
            yield from self._block_frames(r, off, num)

    def feed_blocks(
        self,
        consume: Callable[[mmap.mmap, int, int, int, str], tuple[int, int, int]],
        stop: Callable[[], bool],
        tick: Callable[[], None] | None = None,
        tick_interval: float = 0.5,
        poll_ms: int = 100,
    ) -> None:
        """The block-level counterpart of `frames` for one ring (a C consumer walks the frames).

        ``consume(mm, off, count, linktype, iface)`` takes the ``count`` frames of a ready block
        whose first frame header is at ``off`` and returns (wire bytes, VLAN tags restored,
        truncated frames); the block goes back to the kernel afterwards. ``stop``/``tick`` as
        in `frames`.
        """
        for r, off, num in self._ready_blocks(stop, tick, tick_interval, poll_ms):
            nbytes, nvlan, ntrunc = consume(r.mm, off, num, r.linktype, r.iface)
            self.packets += num
            self.bytes += nbytes
            self.vlan_restored += nvlan
            self.truncated += ntrunc

    def _ready_blocks(
        self, stop: Callable[[], bool], tick: Callable[[], None] | None, tick_interval: float, poll_ms: int,
    ) -> Iterator[tuple[_Ring, int, int]]:
        """(ring, offset of its first frame header, frame count) of every block the kernel of
        the one ring hands over, until ``stop()``; a block goes back to the kernel when the
        consumer asks for the next one."""
        (r,) = self.rings
        blk = _BLOCK.unpack_from
        pack_into = _BLOCK_STATUS.pack_into
        poller = select.poll()
        poller.register(r.fd, select.POLLIN | select.POLLERR)
        monotonic = time.monotonic
        next_tick = monotonic() + tick_interval
        idle_polls = 0
        mm, bs, nblocks = r.mm, r.bs, r.nblocks
        try:
            while not stop():
                progressed = False
                for _ in range(nblocks):
                    base = r.next * bs
                    _v, _p, status, num, first, _len, _seq = blk(mm, base)
                    if not status & TP_STATUS_USER:
                        break
                    yield r, base + first, num
                    pack_into(mm, base + 8, TP_STATUS_KERNEL)
                    r.next = (r.next + 1) % nblocks
                    self.blocks += 1
                    progressed = True
                    if stop():
                        return
                if tick is not None and monotonic() >= next_tick:
                    next_tick = monotonic() + tick_interval
                    tick()
                if progressed:
                    idle_polls = 0
                    continue
                if poller.poll(poll_ms):
                    idle_polls += 1
                    if idle_polls > 2:  # readable, yet the expected block is not ours: resync
                        r.resync()
                        idle_polls = 0
                if tick is not None and monotonic() >= next_tick:
                    next_tick = monotonic() + tick_interval
                    tick()
        finally:
            poller.unregister(r.fd)

    def _block_frames(self, r: _Ring, off: int, num: int) -> list[Frame]:
        """The ``num`` frames of a block from the frame header at ``off`` (802.1Q tags the
        kernel moved to the metadata put back); counts packets, bytes, tags, truncation."""
        hdr = _HDR.unpack_from
        mm, iface, lt = r.mm, r.iface, r.linktype
        out: list[Frame] = []
        nbytes = 0
        for _ in range(num):
            nxt, sec, nsec, snap, wlen, st, mac, _net, _h, tci, tpid = hdr(mm, off)
            start = off + mac
            if st & TP_STATUS_VLAN_VALID:
                tag = struct.pack("!HH", tpid if st & TP_STATUS_VLAN_TPID_VALID else 0x8100, tci)
                data = mm[start:start + 12] + tag + mm[start + 12:start + snap]
                wlen += 4
                self.vlan_restored += 1
            else:
                data = mm[start:start + snap]
            if snap < wlen:
                self.truncated += 1
            nbytes += wlen
            out.append(_new_frame(Frame, (sec * 1_000_000_000 + nsec, data, wlen, lt, iface)))
            off += nxt
        self.packets += num
        self.bytes += nbytes
        if out:
            r.last_ts = out[-1][0]
        return out

    def _drain(self, r: _Ring, out: list[tuple[int, int, Frame]], seq: int) -> int:
        """Move every ready block of ``r`` into ``out`` as (ts, seq, frame); returns the new seq."""
        mm, bs = r.mm, r.bs
        for _ in range(r.nblocks):
            base = r.next * bs
            _v, _p, status, num, first, _len, _seq = _BLOCK.unpack_from(mm, base)
            if not status & TP_STATUS_USER:
                break
            for f in self._block_frames(r, base + first, num):
                out.append((f[0], seq, f))
                seq += 1
            _BLOCK_STATUS.pack_into(mm, base + 8, TP_STATUS_KERNEL)
            r.next = (r.next + 1) % r.nblocks
            self.blocks += 1
        return seq

    def merged_frames(
        self,
        stop: Callable[[], bool],
        tick: Callable[[], None] | None = None,
        tick_interval: float = 0.5,
        poll_ms: int = 20,
        hold_s: float = 0.25,
    ) -> Iterator[Frame]:
        """Frames of several rings in timestamp order: `merged_batches`, one by one."""
        for batch in self.merged_batches(stop, tick, tick_interval, poll_ms, hold_s):
            yield from batch

    def merged_batches(
        self,
        stop: Callable[[], bool],
        tick: Callable[[], None] | None = None,
        tick_interval: float = 0.5,
        poll_ms: int = 20,
        hold_s: float = 0.25,
    ) -> Iterator[list[Frame]]:
        """Frames of several rings in timestamp order (several interfaces, e.g. a split tap),
        as the lists released together.

        A frame is released once no ring can still deliver an older one: every ring whose
        open (not yet handed over) block holds packets has shown a later timestamp. Frames are
        never held longer than ``hold_s`` (a block is handed over after its timeout anyway).
        """
        import heapq

        heap: list[tuple[int, int, Frame]] = []
        held_since: list[float] = []
        seq = 0
        poller = select.poll()
        for r in self.rings:
            poller.register(r.fd, select.POLLIN | select.POLLERR)
        monotonic = time.monotonic
        next_tick = monotonic() + tick_interval
        blk = _BLOCK.unpack_from
        while not stop():
            batch: list[tuple[int, int, Frame]] = []
            for r in self.rings:
                seq = self._drain(r, batch, seq)
            now = monotonic()
            for item in batch:
                heapq.heappush(heap, item)
            if batch:
                held_since.append(now)
            # watermark: a ring with packets in its open block may still deliver up to last_ts
            mark = None
            for r in self.rings:
                if blk(r.mm, r.next * r.bs)[3]:  # num_pkts of the block the kernel is filling
                    mark = r.last_ts if mark is None else min(mark, r.last_ts)
            force = bool(held_since) and now - held_since[0] >= hold_s
            out = []
            while heap and (mark is None or heap[0][0] <= mark or force):
                out.append(heapq.heappop(heap)[2])
            if out:
                yield out
            if not heap:
                held_since.clear()
            elif force:
                held_since.clear()
                held_since.append(now)
            if tick is not None and now >= next_tick:
                next_tick = now + tick_interval
                tick()
            if not batch:
                poller.poll(poll_ms)
        if heap:
            yield [heapq.heappop(heap)[2] for _ in range(len(heap))]

    def close(self) -> None:
        for r in self.rings:
            try:
                r.mm.close()
            except (BufferError, ValueError):
                pass


# --------------------------------------------------------------------------------------------
# libpcap backend (pcapy-ng)
# --------------------------------------------------------------------------------------------

class PcapHandle:
    """A libpcap capture handle (pcapy-ng): libpcap's own TPACKET_V3 ring, fanout and filter.

    Opened in the supervisor like `PacketSocket`; the worker reads it with `frames`. libpcap
    keeps its read position in process memory, so a restarted worker may skip part of one ring.
    """

    def __init__(self, handle: object, iface: str, worker: int, linktype: int) -> None:
        self.handle = handle
        self.iface = iface
        self.worker = worker
        self.linktype = linktype
        self.kernel_packets = 0
        self.kernel_drops = 0

    def fileno(self) -> int:
        return int(self.handle.getfd())  # type: ignore[attr-defined]

    def stats(self) -> tuple[int, int]:
        """libpcap's running totals ``(received, dropped)`` (only meaningful in the reader)."""
        recv, drop, _ifdrop = self.handle.stats()  # type: ignore[attr-defined]
        self.kernel_packets, self.kernel_drops = recv + drop, drop
        return self.kernel_packets, self.kernel_drops

    def close(self) -> None:
        try:
            self.handle.close()  # type: ignore[attr-defined]
        except Exception:
            pass


def open_pcap(iface: str, opts: LiveOptions, fanout_group: int | None, worker: int = 0) -> PcapHandle:
    """Open ``iface`` with libpcap (pcapy-ng) and join the fanout group."""
    try:
        import pcapy  # type: ignore[import-not-found]
    except ImportError:
        raise LiveError("the pcap backend needs pcapy-ng (pip install pcapy-ng)") from None
    _arphrd(iface)
    try:
        h = pcapy.create(iface)
        h.set_snaplen(262144)
        h.set_promisc(1 if opts.promisc else 0)
        h.set_timeout(opts.block_timeout_ms)
        h.set_buffer_size(opts.ring_bytes)
        h.activate()
        h.setnonblock(1)
        if opts.bpf:
            h.setfilter(opts.bpf)
        if fanout_group is not None:
            mode = PACKET_FANOUT_HASH | (PACKET_FANOUT_FLAG_DEFRAG if opts.fanout_defrag else 0)
            h.set_fanout(fanout_group & 0xFFFF, mode)
        try:
            h.setdirection(pcapy.PCAP_D_IN)
        except Exception:
            pass
    except pcapy.PcapError as exc:
        raise LiveError(f"{iface}: {exc}") from None
    return PcapHandle(h, iface, worker, int(h.datalink()))


class PcapReader:
    """Reads libpcap handles (``next_batch``: one C call per up to ``batch`` packets)."""

    fast_input = "batches"
    """What this source offers a consumer such as the C fast path: lists of frames (`batches`)."""

    def __init__(self, handles: Sequence[PcapHandle], batch: int = 512) -> None:
        self.handles = list(handles)
        self.batch = batch
        self.packets = 0
        self.bytes = 0

    def frames(
        self,
        stop: Callable[[], bool],
        tick: Callable[[], None] | None = None,
        tick_interval: float = 0.5,
    ) -> Iterator[Frame]:
        """Yield frames until ``stop()`` is true."""
        for batch in self.batches(stop, tick, tick_interval):
            yield from batch

    def batches(
        self,
        stop: Callable[[], bool],
        tick: Callable[[], None] | None = None,
        tick_interval: float = 0.5,
    ) -> Iterator[list[Frame]]:
        """Yield the frames of each ``next_batch`` call as a list until ``stop()`` is true."""
        unpack = struct.Struct("=IIII").iter_unpack
        new = _new_frame
        F = Frame
        poller = select.poll()
        for h in self.handles:
            poller.register(h.fileno(), select.POLLIN)
        monotonic = time.monotonic
        next_tick = monotonic() + tick_interval
        batch = self.batch
        while not stop():
            got = False
            for h in self.handles:
                buf, meta = h.handle.next_batch(batch)  # type: ignore[attr-defined]
                if not meta:
                    continue
                got = True
                lt, iface = h.linktype, h.iface
                out = [new(F, (sec * 1_000_000_000 + usec * 1000, buf[off:off + caplen], caplen, lt, iface))
                       for sec, usec, off, caplen in unpack(meta)]
                self.packets += len(out)
                self.bytes += sum(f[2] for f in out)
                yield out
            if tick is not None and monotonic() >= next_tick:
                next_tick = monotonic() + tick_interval
                tick()
            if not got:
                poller.poll(100)

