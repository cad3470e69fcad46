"""``tapsift read --workers N``: one capture file read by N pipelines, one per core.

The reader (this process) splits the capture's frames by a symmetric flow hash, so both
directions of a connection reach the same shard, as ``PACKET_FANOUT_HASH`` does for live
capture (DESIGN, process model). The hash is over the IP address pair only: IP fragments
carry no ports, and a flow's fragments must meet its other packets. Frames without IP (ARP,
…) go to shard 0. Each shard streams, as a classic pcap, through a FIFO into a worker process
that runs the ordinary pipeline (`Sensor` with the C fast path, the policy's
`InspectionStage`, its own extraction sandbox) and writes its events to a file of its own;
content ids (``F<k>w…``), flow ids (``FlowTable.seed``) and alert ids (``AlertIds(k + 1, N)``)
stay unique across workers. When the workers are done, this process merges their events
through one writer: EVE lines as they are, alerts through the `AlertWriter` (the store and
the SIEM outputs), one closing ``stats`` event summed over the workers.

The events are those of a single-process read, in another order and with other ids:
`canonical` reduces an EVE log to what must agree (tests compare that).

Classic pcap (optionally gzip'd) is split here; pcapng and link types without an IP header at a
known place are read in one process (`can_split`).
"""

from __future__ import annotations

import json
import os
import struct
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_ETHER = 1
_RAW = (101, 12, 14)
_RAW4, _RAW6 = 228, 229
_SLL, _SLL2 = 113, 276
_SPLIT_LINKTYPES = frozenset({_ETHER, _RAW4, _RAW6, _SLL, _SLL2, *_RAW})
_VLAN = (0x8100, 0x88A8, 0x9100)
AUTO_MIN_BYTES = 64 * 1024 * 1024
"""``--workers`` left at its default (all cores) splits only captures at least this large: for a
small file the extra processes cost more CPU than they save wall-clock time."""


def default_workers(capture: str) -> int:
    """All cores for a capture of at least `AUTO_MIN_BYTES` that `can_split`, else 1."""
    try:
        big = os.path.getsize(capture) >= AUTO_MIN_BYTES
    except OSError:
        return 1
    return max(1, os.cpu_count() or 1) if big else 1


def can_split(cap: Any) -> bool:
    """Whether this reader can shard ``cap`` (an open `capture.pcapfile.CaptureFile`)."""
    return cap.record_format is not None and cap.linktype in _SPLIT_LINKTYPES


def usable(capture: str) -> bool:
    """Whether ``capture`` opens and `can_split` (else it is read in one process, which
    reports any problem with the file)."""
    from capture.pcapfile import CaptureError, open_capture

    try:
        cap = open_capture(capture)
    except CaptureError:
        return False
    try:
        return can_split(cap)
    finally:
        cap.close()


# --------------------------------------------------------------------------- the flow hash


def _ip_offset(buf: Any, off: int, caplen: int, linktype: int) -> tuple[int, int]:
    """(offset of the IP header, IP version) in a frame at ``buf[off:off + caplen]``; (-1, 0) if none."""
    end = off + caplen
    if linktype == _ETHER:
        p = off + 12
        if p + 2 > end:
            return -1, 0
        et = (buf[p] << 8) | buf[p + 1]
        for _ in range(_MAX_TAGS):
            if et not in _VLAN or p + 6 > end:
                break
            p += 4
            et = (buf[p] << 8) | buf[p + 1]
        if et in _VLAN:
            return -1, 0
        p += 2
    elif linktype == _SLL:
        if off + 16 > end:
            return -1, 0
        et, p = (buf[off + 14] << 8) | buf[off + 15], off + 16
    elif linktype == _SLL2:
        if off + 20 > end:
            return -1, 0
        et, p = (buf[off] << 8) | buf[off + 1], off + 20
    else:  # raw IP: the version nibble says which
        if off >= end:
            return -1, 0
        v = buf[off] >> 4
        return (off, v) if v in (4, 6) else (-1, 0)
    if et == 0x0800:
        return p, 4
    if et == 0x86DD:
        return p, 6
    return -1, 0


_M64 = (1 << 64) - 1
_K1, _K2, _K3 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_MAX_TAGS = 4
"""VLAN tags looked through (more: the frame counts as non-IP, shard 0)."""


def _fold(addr: bytes) -> int:
    """An address as one 64-bit number (IPv6: its two halves xor-ed)."""
    x = int.from_bytes(addr, "big")
    return (x >> 64) ^ (x & _M64) if len(addr) == 16 else x


def _mix(x: int, y: int, n: int) -> int:
    """Shard of the address pair (x, y) given in either order (the same math as `_shards`)."""
    lo, hi = min(x, y), max(x, y)
    h = (lo * _K1 + hi) & _M64
    h = ((h ^ (h >> 31)) * _K2) & _M64
    h = ((h ^ (h >> 29)) * _K3) & _M64
    return (h ^ (h >> 32)) % n


def shard_of(buf: Any, off: int, caplen: int, linktype: int, n: int) -> int:
    """The shard (0…n-1) of the frame at ``buf[off:off + caplen]``: a hash of its IP address
    pair, the same for both directions (the smaller address first); 0 without IP."""
    p, v = _ip_offset(buf, off, caplen, linktype)
    if p < 0:
        return 0
    if v == 4:
        a, b, alen = p + 12, p + 16, 4
    else:
        a, b, alen = p + 8, p + 24, 16
    if b + alen > off + caplen:
        return 0
    return _mix(_fold(bytes(buf[a:a + alen])), _fold(bytes(buf[b:b + alen])), n)


def _shards(buf: Any, offs: Any, lens: Any, linktype: int, n: int) -> Any:
    """`shard_of` for many frames at once (numpy arrays of data offsets and lengths)."""
    import numpy as np

    a = np.frombuffer(buf, dtype=np.uint8)
    last = len(a) - 1
    end = offs + lens

    def byte(i: Any) -> Any:
        return a[np.minimum(i, last)].astype(np.uint64)

    def be(i: Any, k: int) -> Any:  # k bytes at i, big-endian
        x = np.zeros(len(i), dtype=np.uint64)
        for j in range(k):
            x = (x << np.uint64(8)) | byte(i + j)
        return x

    if linktype == _ETHER:
        p = offs + 12
        ok = p + 2 <= end
        et = be(p, 2)
        for _ in range(_MAX_TAGS):
            tag = ok & np.isin(et, _VLAN) & (p + 6 <= end)
            p = np.where(tag, p + 4, p)
            et = np.where(tag, be(p, 2), et)
        tagged = np.isin(et, _VLAN)
        p = p + 2
        v = np.where(et == 0x0800, 4, np.where(et == 0x86DD, 6, 0)) * (ok & ~tagged)
    elif linktype in (_SLL, _SLL2):
        hl, eo = (16, 14) if linktype == _SLL else (20, 0)
        ok = offs + hl <= end
        et = be(offs + eo, 2)
        p = offs + hl
        v = np.where(et == 0x0800, 4, np.where(et == 0x86DD, 6, 0)) * ok
    else:
        p = offs
        nib = (byte(offs) >> np.uint64(4)).astype(np.int64)
        v = np.where((nib == 4) | (nib == 6), nib, 0) * (offs < end)
    v4, v6 = (v == 4) & (p + 20 <= end), (v == 6) & (p + 40 <= end)
    x = np.where(v4, be(p + 12, 4), 0)
    y = np.where(v4, be(p + 16, 4), 0)
    if v6.any():
        x = np.where(v6, be(p + 8, 8) ^ be(p + 16, 8), x)
        y = np.where(v6, be(p + 24, 8) ^ be(p + 32, 8), y)
    lo, hi = np.minimum(x, y), np.maximum(x, y)
    with np.errstate(over="ignore"):
        h = lo * np.uint64(_K1) + hi
        h = (h ^ (h >> np.uint64(31))) * np.uint64(_K2)
        h = (h ^ (h >> np.uint64(29))) * np.uint64(_K3)
    h = (h ^ (h >> np.uint64(32))) % np.uint64(n)
    return np.where(v4 | v6, h, 0).astype(np.int64)


# --------------------------------------------------------------------------- the reader


def _pcap_header(cap: Any) -> bytes:
    big, nsec, hlen, _ = cap.record_format
    magic = 0xA1B2CD34 if hlen == 24 else (0xA1B23C4D if nsec else 0xA1B2C3D4)
    return struct.pack((">" if big else "<") + "IHHiIII", magic, 2, 4, 0, 0, cap.snaplen or 262144, cap.linktype)


class _Shard:
    """The reader's end of one worker's pipe, written without blocking: what the pipe cannot
    take now waits here (up to `Shards.max_buffered` over all shards), so a worker busy on a
    document does not stall the others behind a full pipe. A worker that died stops taking
    frames (its exit status reports it) instead of stopping the others."""

    def __init__(self, fd: int) -> None:
        import fcntl

        self.fd = fd
        self.broken = False
        self.queue: list[memoryview] = []
        self.queued = 0
        try:
            fcntl.fcntl(fd, 1031, 1 << 20)  # F_SETPIPE_SZ: a 1 MiB pipe (the unprivileged maximum)
        except OSError:
            pass
        os.set_blocking(fd, False)

    def write(self, data: bytes) -> None:
        if not self.broken and data:
            self.queue.append(memoryview(data))
            self.queued += len(data)
            self.pump()

    def pump(self) -> None:
        """Write what the pipe takes now."""
        while self.queue and not self.broken:
            view = self.queue[0]
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                return
            except BrokenPipeError:
                self.broken, self.queue, self.queued = True, [], 0
                return
            self.queued -= n
            if n == len(view):
                self.queue.pop(0)
            else:
                self.queue[0] = view[n:]

    def close(self) -> None:
        os.close(self.fd)


class Shards(list):  # type: ignore[type-arg]
    """The shards' pipes; `wait` blocks (in ``select``) while too much is buffered."""

    max_buffered = 64 << 20

    def wait(self, below: int) -> None:
        import select

        while True:
            for sh in self:
                sh.pump()
            busy = [sh for sh in self if sh.queue]
            if sum(sh.queued for sh in busy) <= below or not busy:
                return
            select.select([], [sh.fd for sh in busy], [], 1.0)


def split(cap: Any, outs: list[Any]) -> list[int]:
    """Write ``cap``'s records to ``outs`` (binary files: FIFOs) by `shard_of`; frames per shard.

    Damage is noted in ``cap.anomalies`` as when one process reads the file."""
    n = len(outs)
    header = _pcap_header(cap)
    for o in outs:
        o.write(header)
    big, _nsec, hlen, max_rec = cap.record_format
    rec = struct.Struct((">" if big else "<") + "IIII").unpack_from
    lt = cap.linktype
    counts = [0] * n

    def consume(buf: Any, off: int) -> int:
        import numpy as np

        starts: list[int] = []
        end = len(buf)
        while off + hlen <= end:  # the record chain: one header read per frame
            caplen = rec(buf, off)[2]
            nxt = off + hlen + caplen
            if caplen > max_rec or nxt > end:
                break
            starts.append(off)
            off = nxt
        if not starts:
            return off
        st = np.array(starts, dtype=np.int64)
        ends = np.append(st[1:], off)
        shard = _shards(buf, st + hlen, ends - st - hlen, lt, n) if n > 1 else np.zeros(len(st), dtype=np.int64)
        for s in range(n):
            idx = np.flatnonzero(shard == s)
            if not len(idx):
                continue
            counts[s] += len(idx)
            # consecutive frames of one shard are one slice
            brk = np.flatnonzero(np.diff(idx) != 1)
            first = idx[np.concatenate(([0], brk + 1))]
            last = idx[np.concatenate((brk, [len(idx) - 1]))]
            outs[s].write(b"".join([buf[a:b] for a, b in zip(st[first].tolist(), ends[last].tolist())]))
        if isinstance(outs, Shards):
            outs.wait(Shards.max_buffered)
        return off

    cap.feed_records(consume)
    if isinstance(outs, Shards):
        outs.wait(0)
    return counts


# --------------------------------------------------------------------------- a worker


def _worker(k: int, n: int, rfd: int, others: list[int], events: str, args: Any) -> None:  # pragma: no cover
    """Worker ``k`` of ``n`` (a forked child): the pipeline over the shard arriving on pipe
    ``rfd``; events to ``events``. ``others``: the reader's ends of every pipe, closed here (an
    inherited write end would keep a shard from ever ending)."""
    code = 1
    try:
        for fd in others:
            os.close(fd)
        code = _run_worker(k, n, f"/dev/fd/{rfd}", events, args)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run_worker(k: int, n: int, fifo: str, events: str, args: Any) -> int:  # pragma: no cover - child process
    from appliance.cli import _stats
    from appliance.eve import EveWriter
    from appliance.pipeline import Outputs, build_pipeline
    from appliance.settings import load_settings
    from capture.pcapfile import open_capture

    settings = load_settings(args.config)
    if args.body_limit is not None:
        settings.applayer.set_body_limit(args.body_limit)
    if args.policy is not None:
        settings.inspection.policy = args.policy
    eve = EveWriter(events)
    marked = _MarkedAlerts(eve)
    if settings.inspection.policy:
        from inspectors.extract.sandbox import default_sandbox

        ins = settings.inspection
        # the cores are shared out between the workers: one extraction process each
        default_sandbox(workers=max(1, 2 // n), memory_bytes=ins.worker_memory_bytes, cpu_seconds=ins.time_budget_s)
    # process k of n: its own content-id prefix, flow-table seed and alert-id numbering
    pipeline = build_pipeline(settings, Outputs(event=eve.write, alert=marked.alert, suppressed=marked.suppress),
                              slot=k, slots=n, workers=n)
    cpu0, wall0 = time.process_time(), time.monotonic()
    cap = open_capture(fifo)
    pipeline.drive(cap)
    pipeline.finish()
    st = pipeline.sensor.stats
    st.anomalies.update(getattr(cap, "anomalies", {}) or {})
    cap.close()
    stats = _stats(pipeline, time.process_time() - cpu0, time.monotonic() - wall0)
    eve.write({"event_type": _STATS, "stats": stats, "anomalies": dict(st.anomalies),
               "last_ts_ns": st.last_ts_ns})
    eve.close()
    return 0


_ALERT, _SUPPRESSED, _STATS = "tapsift_worker_alert", "tapsift_worker_suppressed", "tapsift_worker_stats"
"""Event types a worker writes for the merging writer only (never in the merged output)."""


class _MarkedAlerts:
    """A worker's alert sink: the alert record, marked for the merging writer."""

    def __init__(self, eve: Any) -> None:
        self.eve = eve

    def alert(self, alert: Any, obj: Any) -> None:
        from appliance.outputs.alertjson import alert_record

        self.eve.write({"event_type": _ALERT, "ts_ns": alert.ts_ns, "record": alert_record(alert, obj)})

    def suppress(self, s: Any) -> None:
        self.eve.write({"event_type": _SUPPRESSED, "first_id": s.first_id})


# --------------------------------------------------------------------------- the merge


def _add(into: dict[str, Any], more: dict[str, Any]) -> None:
    """Sum ``more``'s numbers into ``into`` (nested dicts too; other values: the first wins)."""
    for key, v in more.items():
        if isinstance(v, bool) or v is None:
            into.setdefault(key, v)
        elif isinstance(v, (int, float)):
            into[key] = into.get(key, 0) + v
        elif isinstance(v, dict):
            _add(into.setdefault(key, {}), v)
        else:
            into.setdefault(key, v)


def merge(paths: Iterable[Path], eve: Any, writer: Any) -> tuple[dict[str, Any], Counter[str], int]:
    """Copy the workers' events to ``eve`` (alerts through ``writer`` when there is one);
    returns (their summed stats, summed decode anomalies, the last packet time)."""
    stats: dict[str, Any] = {}
    anomalies: Counter[str] = Counter()
    last = 0
    for path in paths:
        if not path.exists():
            continue
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if '"event_type":"tapsift_worker_' not in line:
                    eve.write_line(line.rstrip("\n"))
                    continue
                ev = json.loads(line)
                kind = ev["event_type"]
                if kind == _ALERT:
                    if writer is not None:
                        writer.record(ev["record"], ev["ts_ns"])
                    else:
                        eve.write(ev["record"])
                elif kind == _SUPPRESSED:
                    if writer is not None:
                        writer.suppressed_repeat(ev["first_id"])
                elif kind == _STATS:
                    _add(stats, ev["stats"])
                    anomalies.update(ev["anomalies"])
                    last = max(last, ev["last_ts_ns"])
    return stats, anomalies, last


# --------------------------------------------------------------------------- the command


def run(args: Any, workers: int) -> int:
    """`tapsift read` with ``workers`` pipelines (the CLI's exit codes and messages)."""
    import multiprocessing as mp
    import tempfile

    from appliance.eve import EveWriter, eve_timestamp
    from appliance.settings import SettingsError, load_settings
    from capture.pcapfile import CaptureError, open_capture

    try:
        settings = load_settings(args.config)
        cap = open_capture(args.capture)
    except (SettingsError, CaptureError) as exc:
        print(f"tapsift: {exc}", file=sys.stderr)
        return 1
    if args.policy is not None:
        settings.inspection.policy = args.policy
    if args.store is not None:
        settings.output.store = args.store
    if settings.inspection.policy:
        from policies.reload import PolicyHolder
        from policies.schema import PolicyError

        try:
            PolicyHolder(settings.inspection.policy)  # a bad policy is reported once, here
        except (PolicyError, OSError) as exc:
            first = (str(exc).splitlines() or ["invalid policy"])[0]
            print(f"tapsift: {first}", file=sys.stderr)
            return 1
    eve_target = args.eve if args.eve is not None else settings.output.eve
    try:
        eve = EveWriter(eve_target)
    except OSError as exc:
        print(f"tapsift: cannot write EVE output {eve_target}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    writer = None
    if settings.inspection.policy:
        from appliance.alerts import AlertWriter
        from appliance.store import Dsn, StoreError

        try:
            writer = AlertWriter.from_settings(settings.output, eve, sensor=settings.sensor.name)
        except (OSError, StoreError) as exc:
            where = Dsn.parse(settings.output.store).redacted if settings.output.store else "outputs"
            print(f"tapsift: cannot open the alert store or outputs ({where}): {exc}", file=sys.stderr)
            return 1
    cpu0, wall0 = time.process_time(), time.monotonic()
    ctx = mp.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="tapsift-read-") as tmp:
        outs = [Path(tmp) / f"events{k}.json" for k in range(workers)]
        fds = [os.pipe() for _ in range(workers)]
        procs = [ctx.Process(target=_worker, args=(k, workers, fds[k][0], [w for _, w in fds], str(outs[k]), args),
                             daemon=False) for k in range(workers)]
        for p in procs:
            p.start()
        pipes = Shards()
        for r, w in fds:
            os.close(r)
            pipes.append(_Shard(w))
        try:
            split(cap, pipes)
        finally:
            for p_ in pipes:
                p_.close()
            for p in procs:
                p.join()
        failed = [k for k, p in enumerate(procs) if p.exitcode != 0]
        stats, anomalies, last = merge(outs, eve, writer)
    anomalies.update(getattr(cap, "anomalies", {}) or {})
    cap.close()
    for code, count in sorted(anomalies.items()):
        eve.write({"timestamp": eve_timestamp(last), "event_type": "anomaly",
                   "anomaly": {"type": "decode", "event": code, "count": count}})
    cpu = _tree_cpu(cpu0)
    wall = time.monotonic() - wall0
    stats.update(cpu_seconds=round(cpu, 3), wall_seconds=round(wall, 3), workers=workers,
                 mbit_per_cpu_second=round(stats.get("bytes", 0) * 8 / 1e6 / cpu, 1) if cpu > 0 else None)
    eve.write({"timestamp": eve_timestamp(last), "event_type": "stats", "stats": stats})
    if writer is not None:
        writer.close()
    eve.close()
    if failed:
        print(f"tapsift: read worker(s) {failed} failed; their shards are incomplete", file=sys.stderr)
    if not args.quiet:
        print(f"tapsift: {Path(args.capture).name}: {stats.get('packets', 0):,} packets, "
              f"{stats.get('flows', 0):,} flows, {stats.get('objects', 0):,} objects"
              + (f", {stats.get('alerts', 0):,} alerts" if writer is not None else "")
              + f"; {workers} workers, {cpu:.2f} s CPU, {wall:.2f} s wall", file=sys.stderr)
    return 1 if failed else 0


def _tree_cpu(cpu0: float) -> float:
    """CPU seconds of this process since ``cpu0`` plus its finished children."""
    import resource

    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() - cpu0 + ch.ru_utime + ch.ru_stime


# --------------------------------------------------------------------------- comparison

_IDS = ("content_id", "parent_id", "flow_uid", "alert_id", "flow_id", "first_id", "child", "id")


def canonical(events: Iterable[dict[str, Any]]) -> Counter[str]:
    """An EVE log reduced to what a split read must reproduce: every ``fileinfo``, ``alert`` and
    ``anomaly`` event without its ids (content, parent, flow and alert ids are numbered per
    worker; a child's ``parent_id`` becomes the parent's md5), without ``stats`` and without
    timestamps (the C fast path joins in-order segments into runs between two packet-time
    stops, and an object carries its last run's time: with other flows beside it in the
    shard, that can be a few milliseconds earlier or later); a multiset, since the order differs."""
    events = list(events)
    md5_of = {e["tapsift"]["content_id"]: e["fileinfo"]["md5"] for e in events
              if e.get("event_type") == "fileinfo" and "tapsift" in e}
    out: Counter[str] = Counter()
    for e in events:
        if e.get("event_type") not in ("fileinfo", "alert", "anomaly"):
            continue
        out[json.dumps(_strip(e, md5_of), sort_keys=True, ensure_ascii=False)] += 1
    return out


def _strip(v: Any, md5_of: dict[str, str]) -> Any:
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if k == "parent_id" and x is not None:
                out[k] = md5_of.get(x, "?")
            elif k in _IDS or k in ("ts_ns", "timestamp"):
                continue
            else:
                out[k] = _strip(x, md5_of)
        return out
    if isinstance(v, list):
        return [_strip(x, md5_of) for x in v]
    return v
