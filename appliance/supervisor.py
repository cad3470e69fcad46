"""The live process model: one supervisor, N capture workers, an optional inspection pool.

The supervisor (the ``tapsift run`` process):

1. opens everything that needs privileges: one capture socket per (interface, worker), joined
   in worker order to one fanout group per interface; the EVE file; the metrics port;
2. drops root (`drop_privileges`: the configured user, no capabilities, no new privileges);
3. forks the capture workers. Worker ``i`` reads the sockets of slot ``i``; the supervisor keeps
   every socket open, so a crashed worker is re-forked onto the same sockets (same fanout slot,
   same flows) and the kernel counts what the ring could not hold meanwhile;
4. is the single EVE writer: each child sends batches of serialised lines and counter
   snapshots through its own pipe (a dying child can only break its own pipe), a writer
   thread writes them, adds ``stats`` events on a wall-clock interval and rotates/reopens the
   file; the metrics thread serves the same snapshot;
5. handles signals: SIGTERM/SIGINT → workers stop reading, flush what is in flight (objects
   still open are finished as truncated by ``Sensor.finish``), send their last lines and exit;
   SIGHUP → the zone policy reloaded (the old one stays if invalid), the settings file re-read
   for its application-layer limits (``applayer:``; new flows use them; other sections need a
   restart), EVE reopened (for logrotate); SIGHUP is forwarded so workers reload too.

Children never block on output: a child's outbox is bounded and lines beyond it are dropped
and counted (``events_dropped``). With a policy, inspection runs in a pool of processes over a
job queue (`appliance.inspectpool`): cheap and expensive lanes, priorities, time budgets; an
object the queue refuses or a lane sheds leaves a counted ``not_inspected`` record. At SIGTERM
the capture workers stop first, the pool drains, and what is still queued is spooled to disk
for the next start (`InspectionPool.shutdown`).
"""

from __future__ import annotations

import ctypes
import gc
import json
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from appliance.inspectpool import InspectionPool, inspection_snapshot, record_all
from appliance.scheduler import Outputs as LaneOutputs
from appliance.scheduler import shed_counts
from appliance.settings import Settings, SettingsError, load_settings

log = logging.getLogger("tapsift.supervisor")

__all__ = ["Supervisor", "drop_privileges"]

_COUNTERS = ("packets", "bytes", "flows", "gaps", "objects", "alerts", "anomalies", "not_inspected",
             "inspected_in_worker", "inspector_errors", "events_dropped", "eve_lines")

# --------------------------------------------------------------------------------------------
# privileges
# --------------------------------------------------------------------------------------------

_PR_SET_KEEPCAPS = 8
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_PR_SET_PDEATHSIG = 1
_CAP_VERSION_3 = 0x20080522
CAP_NET_ADMIN = 12
CAP_NET_RAW = 13


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _capset(keep: Iterable[int]) -> None:
    """Set effective = permitted = ``keep``, inheritable = none (capset(2), v3 layout)."""
    lo = hi = 0
    for c in keep:
        if c < 32:
            lo |= 1 << c
        else:
            hi |= 1 << (c - 32)
    hdr = (ctypes.c_uint32 * 2)(_CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)(lo, lo, 0, hi, hi, 0)  # {effective, permitted, inheritable} × 2
    if _libc().capset(hdr, data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def capabilities(pid: int | str = "self") -> dict[str, int]:
    """CapInh/CapPrm/CapEff/CapBnd/CapAmb of a process, from /proc (for checks and tests)."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cap"):
            k, v = line.split(":")
            out[k] = int(v.strip(), 16)
    return out


def drop_privileges(user: str | None, keep: Iterable[int] = ()) -> str:
    """Become ``user`` (if root and a user is given) and keep only the ``keep`` capabilities.

    Then the ambient set is cleared and ``no_new_privs`` set, so nothing exec'd later regains
    anything. Returns a one-line description for the log. Raises `OSError` / `KeyError`.
    """
    import grp
    import pwd

    keep = tuple(keep)
    libc = _libc()
    what = []
    if user and os.geteuid() == 0:
        pw = pwd.getpwnam(user)
        if keep:
            libc.prctl(_PR_SET_KEEPCAPS, 1, 0, 0, 0)
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
        what.append(f"user {user} ({pw.pw_uid}:{grp.getgrgid(pw.pw_gid).gr_name})")
    elif user and os.geteuid() != 0:
        what.append(f"already unprivileged (uid {os.geteuid()})")
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    _capset(keep)
    libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    what.append("capabilities: " + (", ".join(str(c) for c in keep) if keep else "none"))
    return "; ".join(what)


def _die_with_parent() -> None:
    _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _chown_tree(root: str | os.PathLike[str], user: str) -> None:
    """Give ``root`` and everything under it to ``user`` (before privileges are dropped)."""
    import pwd

    pw = pwd.getpwnam(user)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)):
            os.chown(name, pw.pw_uid, pw.pw_gid)


# --------------------------------------------------------------------------------------------
# child → supervisor channel
# --------------------------------------------------------------------------------------------

class _Outbox:
    """A child's bounded, non-blocking output: batches go through a pipe from a sender thread."""

    def __init__(self, conn: Connection, name: str, limit: int, batch: int = 256) -> None:
        self.conn = conn
        self.name = name
        self.limit = limit
        self.batch = batch
        self.lines: list[str] = []
        self.observations: list[tuple[Any, ...]] = []
        self.dropped = 0
        self.sent = 0
        self._q: deque[tuple[Any, ...]] = deque()
        self._cv = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._send_loop, name="outbox", daemon=True)
        self._thread.start()

    def line(self, line: str) -> None:
        self.lines.append(line)
        if len(self.lines) >= self.batch:
            self.flush()

    def event(self, ev: dict[str, Any]) -> None:
        self.line(json.dumps(ev, ensure_ascii=False, separators=(",", ":")))

    def flush(self) -> None:
        if self.observations:  # never dropped: a baseline with holes would learn a false normal
            obs, self.observations = self.observations, []
            self.control(("behaviour", self.name, obs))
        if self.lines:
            lines, self.lines = self.lines, []
            if not self._put(("eve", self.name, lines)):
                self.dropped += len(lines)
            else:
                self.sent += len(lines)

    def observation(self, o: tuple[Any, ...]) -> None:
        """A behaviour observation for the supervisor's stage (batched, sent with the EVE lines)."""
        self.observations.append(o)
        if len(self.observations) >= self.batch:
            self.flush()

    def control(self, msg: tuple[Any, ...]) -> None:
        """Counters and goodbyes are never dropped (they are small and rare)."""
        with self._cv:
            self._q.append(msg)
            self._cv.notify()

    def _put(self, msg: tuple[Any, ...]) -> bool:
        with self._cv:
            if len(self._q) >= self.limit:
                return False
            self._q.append(msg)
            self._cv.notify()
        return True

    def _send_loop(self) -> None:
        while True:
            with self._cv:
                while not self._q and not self._closing:
                    self._cv.wait()
                if not self._q and self._closing:
                    return
                msg = self._q.popleft()
            try:
                self.conn.send(msg)
            except (OSError, ValueError):
                return

    def close(self) -> None:
        self.flush()
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout=30)
        self.conn.close()

    @property
    def depth(self) -> int:
        return len(self._q)


# --------------------------------------------------------------------------------------------
# events
# --------------------------------------------------------------------------------------------

def _now_ts() -> str:
    from appliance.eve import eve_timestamp

    return eve_timestamp(time.time_ns())


# --------------------------------------------------------------------------------------------
# inspection pool (appliance.inspectpool)
# --------------------------------------------------------------------------------------------

def _prewarm(policy: str) -> None:
    """Build what the policy's inspectors share (normalisation tables: ~1 s) before forking, so
    that no worker stalls on it with packets arriving (the workers inherit it)."""
    from appliance.inspection import InspectionStage
    from policies.reload import PolicyHolder

    try:
        InspectionStage(PolicyHolder(policy)).warm()
    except Exception:  # the workers report a bad policy themselves
        log.debug("pre-warming the inspectors failed", exc_info=True)


# --------------------------------------------------------------------------------------------
# children
# --------------------------------------------------------------------------------------------

_flags = {"stop": False, "reload": False}


def _child_signals() -> None:
    def on_stop(signum: int, frame: object) -> None:
        _flags["stop"] = True

    def on_hup(signum: int, frame: object) -> None:
        _flags["reload"] = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)


@dataclass
class _Child:
    name: str
    kind: str  # "capture" or "inspect"
    slot: int
    handles: list[Any] = field(default_factory=list)
    proc: Any = None
    conn: Connection | None = None
    restarts: int = 0
    crashes_recent: int = 0
    restart_at: float = 0.0
    last: dict[str, Any] = field(default_factory=dict)
    retired: Counter[str] = field(default_factory=Counter)
    retired_sched: Counter[str] = field(default_factory=Counter)
    """Scheduling counters (``sched``) of this child's earlier incarnations."""
    done: bool = False


def _worker_outputs(sup: Supervisor, child: _Child, out: _Outbox, offer: Any) -> Any:
    """Where a capture worker's pipeline writes: EVE lines through its outbox; alerts and
    suppressions over the control channel (never dropped, after the object's fileinfo line);
    objects to inspect to the pool's queue (``offer``)."""
    from appliance.outputs.alertjson import alert_record
    from appliance.pipeline import Outputs

    def alert(a: Any, obj: Any) -> None:
        out.flush()  # the object's fileinfo line goes first
        out.control(("alert", child.name, alert_record(a, obj), a.ts_ns))

    def suppressed(sup_: Any) -> None:
        out.control(("suppressed", child.name, sup_.first_id))

    if sup.settings.inspection.remote.enabled and sup.settings.output.bus is not None:  # fleet: jobs on the bus
        offer = _remote_offer(sup, out, offer)
    return Outputs(event=out.event, alert=alert, suppressed=suppressed, offload=offer, observe=out.observation)


def _remote_offer(sup: Supervisor, out: _Outbox, local: Any) -> Any:
    """Fleet: expensive objects go to the bus's job stream (`appliance.fleet.remote`), with the
    local pool's queue as its fallback; cheap ones stay on the local queue."""
    from appliance.fleet.remote import RemoteOffload

    fallback = (lambda obj: local(obj, "expensive") is None) if local is not None else None
    remote = RemoteOffload(sup.settings, out.event, fallback)

    def offer(obj: Any, cls: str) -> str | None:
        if cls == "cheap" and local is not None:
            return local(obj, cls)  # type: ignore[no-any-return]
        remote(obj)  # it queues, falls back or writes its own not_inspected record
        return None

    return offer


def _capture_worker(sup: Supervisor, child: _Child, conn: Connection) -> None:
    """Body of a capture worker process (forked: ``sup`` is the supervisor's state as of fork)."""
    from appliance.pipeline import build_pipeline

    _child_signals()
    _die_with_parent()
    mine = {id(h) for h in child.handles}
    for c in sup.children:
        if c.conn is not None:
            c.conn.close()
        for h in c.handles:
            if id(h) not in mine:
                h.close()
    out = _Outbox(conn, child.name, sup.settings.live.event_queue)
    # alert ids stay unique across the capture workers and the pool's processes
    slots = sup.workers + (sup.pool.processes if sup.pool is not None else 0)
    offer = sup.pool.offer(child.slot, child.name) if sup.pool is not None else None
    pipeline = build_pipeline(sup.settings, _worker_outputs(sup, child, out, offer), slot=child.slot, slots=slots,
                              workers=sup.workers, warm=True)
    if sup.backend == "pcap":
        from capture.live import PcapReader

        reader: Any = PcapReader(child.handles)
    else:
        from capture.live import RingReader

        reader = RingReader(child.handles)

    def snapshot() -> dict[str, Any]:
        sensor = pipeline.sensor
        tc = sensor.tcp.counters
        st = pipeline.stats
        snap: dict[str, Any] = {
            "pid": os.getpid(),
            "inspected_in_worker": pipeline.counters["inspected_in_worker"],
            "packets": reader.packets,
            "bytes": reader.bytes,
            "flows": int(tc.get("flows_created", 0)),
            "gaps": int(tc.get("gaps", 0)),
            "objects": st.objects,
            "alerts": st.alerts,
            "anomalies": sum(sensor.decoder.counters.values()),
            "not_inspected": pipeline.counters["not_inspected"],
            "sched": dict(offer.counters) if offer is not None else {},
            "inspector_errors": st.inspector_errors,
            "events_dropped": out.dropped,
            "eve_lines": out.sent,
            "outbox": out.depth,
        }
        if sup.backend == "pcap":
            snap["kernel"] = {h.iface: list(h.stats()) for h in child.handles}
        else:
            snap["vlan_restored"] = reader.vlan_restored
            snap["truncated_frames"] = reader.truncated
        fp = getattr(sensor.tcp, "_fp", None)
        if fp is not None:  # packets the C fast path took (the rest went through Python)
            snap["fast_path_packets"] = fp.fast_tcp
        return snap

    def tick() -> None:
        out.flush()
        out.control(("stats", child.name, snapshot()))
        if _flags["reload"]:
            _flags["reload"] = False
            _reload_worker(sup, pipeline)

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    # the reader says what it offers the C fast path (one ring's blocks, merged or libpcap
    # batches); the pure-Python path when the fast path is not built or turned off
    pipeline.drive(reader, stop=lambda: _flags["stop"], tick=tick)
    pipeline.finish()  # in-flight objects come out truncated
    out.flush()
    out.control(("bye", child.name, snapshot()))
    out.close()


def _reload_worker(sup: Supervisor, pipeline: Any) -> None:
    """SIGHUP in a capture worker: the application-layer limits of the settings file (if it
    is valid; the running ones stay otherwise) and the zone policy."""
    new = None
    if sup.config_path is not None:
        try:
            new = load_settings(sup.config_path)
        except SettingsError as exc:
            log.error("reload: %s (keeping the running settings)", exc)
    pipeline.reload(new)


def _inspect_worker(sup: Supervisor, child: _Child, conn: Connection) -> None:
    """Body of an inspection pool process: one lane of `appliance.inspectpool.InspectionPool`."""
    _child_signals()
    _die_with_parent()
    for c in sup.children:
        if c.conn is not None:
            c.conn.close()
        for h in c.handles:
            h.close()
    out = _Outbox(conn, child.name, sup.settings.live.event_queue)
    assert sup.pool is not None

    def alert(rec: dict[str, Any], ts_ns: int) -> None:
        out.flush()  # children's fileinfo lines first
        out.control(("alert", child.name, rec, ts_ns))

    def suppressed(first_id: str) -> None:
        out.control(("suppressed", child.name, first_id))

    def reload_requested() -> bool:
        if _flags["reload"]:
            _flags["reload"] = False
            return True
        return False

    last: dict[str, Any] = {}

    def report(counters: dict[str, Any]) -> None:
        last.update(counters)
        out.flush()
        out.control(("stats", child.name, counters))

    parent = os.getppid()  # the supervisor: a kill -9 of it re-parents this process

    def reachable() -> bool:
        return os.getppid() == parent

    sup.pool.run_lane(child.slot, child.name, LaneOutputs(out.event, alert, suppressed, reachable),
                      lambda: _flags["stop"], reload_requested=reload_requested, report=report)
    out.control(("bye", child.name, last))
    out.close()


def _child_main(target: Callable[..., None], *args: Any) -> None:
    try:
        target(*args)
    except Exception:
        traceback.print_exc()
        os._exit(70)
    os._exit(0)


# --------------------------------------------------------------------------------------------
# supervisor
# --------------------------------------------------------------------------------------------

def _preload() -> None:
    """Import what children import later, while the installation is surely readable (after the
    privilege drop an install under a private home directory would not be)."""
    import importlib

    for name in ("multiprocessing.popen_fork", "multiprocessing.connection", "appliance.sensor",
                 "appliance.pipeline", "appliance.outputs.alertjson", "appliance.eve", "reassembly.objects",
                 "capture.live", "capture.fastpath", "capture._fastpath", "encodings.idna", "gzip", "zlib",
                 "hashlib", "json", "pcapy"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass

class Supervisor:
    """Owns the sockets, the children, the single EVE writer and the counters."""

    def __init__(
        self,
        settings: Settings,
        *,
        config_path: str | None = None,
        interfaces: list[str] | None = None,
        workers: int | None = None,
        eve: str | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        live = settings.live
        self.interfaces = list(interfaces or live.interfaces)
        self.workers = workers or live.workers
        self.backend = live.backend
        self.eve_target = eve if eve is not None else settings.output.eve
        self.children: list[_Child] = []
        self.pool = InspectionPool.from_settings(settings, self.workers)
        self.eve: Any = None
        self.alerts: Any = None
        """The alert writer (store + SIEM outputs) when a policy is configured."""
        self.behaviour: Any = None
        """The one behaviour stage (`appliance.behaviour.BehaviourHook`), fed by every worker."""
        self.fleet: Any = None
        """The fleet link (heartbeats, pushed policies) when ``output.bus`` is set."""
        self.metrics: Any = None
        self.started = time.monotonic()
        self.reloads = 0
        self._lock = threading.Lock()
        self._term = False
        self._hup = False
        self._reopen = False
        self._writer: threading.Thread | None = None
        self._writer_stop = threading.Event()
        self._conns: dict[Connection, _Child] = {}
        self._conns_lock = threading.Lock()
        self.exit_code = 0

    # -- setup (privileged) -----------------------------------------------------------------
    def open(self) -> None:
        """Open sockets, the EVE output and the metrics port (before privileges are dropped)."""
        from appliance.eve import EveWriter
        from appliance.metrics import MetricsServer, parse_listen
        from capture.live import LiveOptions, open_pcap, open_socket

        _preload()

        live = self.settings.live
        if not self.interfaces:
            raise ValueError("no capture interface (use -i IFACE or live.interfaces)")
        opts = LiveOptions(
            ring_bytes=live.ring_mb << 20, block_bytes=live.block_kb << 10,
            block_timeout_ms=live.block_timeout_ms, bpf=live.bpf, promisc=live.promisc,
        )
        base = live.fanout_group if live.fanout_group is not None else (os.getpid() * 7) & 0xFFFF
        opener = open_pcap if self.backend == "pcap" else open_socket
        self.children = [_Child(f"w{i}", "capture", i) for i in range(self.workers)]
        try:
            for k, iface in enumerate(self.interfaces):
                group = (base + k) & 0xFFFF
                for child in self.children:  # worker order: slot i is worker i on every interface
                    child.handles.append(opener(iface, opts, group, child.slot))
        except Exception:
            self.close_handles()
            raise
        if self.pool is not None:
            self.children += [_Child(f"p{i}", "inspect", i) for i in range(self.pool.processes)]
            self.pool.open()  # the previous run's spool comes back first
            if live.user and os.geteuid() == 0:
                _chown_tree(self.pool.queue.root, live.user)  # type: ignore[attr-defined]
        self.eve = EveWriter(self.eve_target, rotate_bytes=live.eve_rotate_mb << 20,
                             rotate_interval_s=live.eve_rotate_interval_s, rotate_keep=live.eve_rotate_keep)
        if self.settings.inspection.policy:
            from appliance.alerts import AlertWriter
            from policies.schema import load_policy

            load_policy(self.settings.inspection.policy)  # refuse to start on an invalid policy
            # the store and the SIEM spools are opened here, before privileges are dropped
            self.alerts = AlertWriter.from_settings(self.settings.output, eve=None, other_thread=True,
                                                    sensor=self.settings.sensor.name)
        if self.settings.output.bus is not None:  # fleet (docs/fleet.md): events to the bus, heartbeats, policy
            from appliance.fleet.sensorlink import attach_supervisor

            self.fleet = attach_supervisor(self)
        if live.pid_file:
            with open(live.pid_file, "w", encoding="ascii") as fh:
                fh.write(f"{os.getpid()}\n")
        listen = parse_listen(live.metrics_listen)
        if listen is not None:
            self.metrics = MetricsServer(listen[0], listen[1], self.snapshot)

    def close_handles(self) -> None:
        for c in self.children:
            for h in c.handles:
                h.close()

    # -- children ---------------------------------------------------------------------------
    def _spawn(self, child: _Child) -> None:
        ctx = mp.get_context("fork")
        r, w = ctx.Pipe(duplex=False)
        target = _capture_worker if child.kind == "capture" else _inspect_worker
        child.conn = None  # the new child must not inherit the old reader end
        proc = ctx.Process(target=_child_main, args=(target, self, child, w), name=f"tapsift-{child.name}",
                           daemon=False)
        proc.start()
        w.close()
        child.proc = proc
        child.conn = r
        child.done = False
        with self._conns_lock:
            self._conns[r] = child
        log.info("worker %s started (pid %d)", child.name, proc.pid)

    def _reap(self, child: _Child) -> None:
        proc = child.proc
        code = proc.exitcode
        child.proc = None
        if self._term:
            return
        child.restarts += 1
        child.crashes_recent += 1
        delay = min(30.0, self.settings.live.restart_backoff_s * (2 ** max(0, child.crashes_recent - 1)))
        child.restart_at = time.monotonic() + delay
        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        log.error("worker %s (pid %d) died (%s); restart %d in %.1f s", child.name, proc.pid, how,
                  child.restarts, delay)
        self._queue_local({"timestamp": _now_ts(), "event_type": "anomaly",
                           "anomaly": {"type": "sensor", "event": "worker_restart", "worker": child.name,
                                       "exit": how, "restarts": child.restarts}})

    # -- writer thread ----------------------------------------------------------------------
    _local: deque[str]

    def _queue_local(self, ev: dict[str, Any]) -> None:
        self._local.append(json.dumps(ev, separators=(",", ":")))

    def _writer_loop(self) -> None:
        while True:
            try:
                self._writer_body()
                return
            except Exception:  # never lose the single writer to one bad line or a full disk
                log.exception("EVE writer error (continuing)")
                time.sleep(0.5)

    def _writer_body(self) -> None:
        interval = self.settings.live.stats_interval_s
        next_stats = time.monotonic() + interval if interval > 0 else float("inf")
        while True:
            with self._conns_lock:
                conns = list(self._conns)
            ready = wait(conns, timeout=0.2) if conns else (time.sleep(0.1) or [])
            for conn in ready:
                self._read(conn)  # type: ignore[arg-type]
            while self._local:
                self.eve.write_line(self._local.popleft())
            if self._reopen:
                self._reopen = False
                try:
                    self.eve.reopen()
                    log.info("EVE output reopened")
                except OSError as exc:
                    log.error("cannot reopen EVE output: %s", exc)
            now = time.monotonic()
            if now >= next_stats:
                next_stats = now + interval
                snap = self.snapshot()
                self.eve.write({"timestamp": _now_ts(), "event_type": "stats", "stats": snap})
                self.eve.flush()
                self._write_stats_file(snap)
            elif not ready:
                self.eve.flush()
            if self._writer_stop.is_set() and not ready:
                with self._conns_lock:
                    if not self._conns:
                        return

    def _write_stats_file(self, snap: dict[str, Any]) -> None:
        """The console's view of the sensor (docs/console.md), replaced atomically."""
        path = self.settings.live.stats_file
        if not path:
            return
        data = {
            "ts": time.time(), "packets": snap.get("packets", 0), "bytes": snap.get("bytes", 0),
            "drops": snap.get("capture", {}).get("kernel_drops", 0), "flows": snap.get("flows", 0),
            "queue_depths": snap.get("queues", {}), "alerts": snap.get("alerts", 0),
            "objects": snap.get("objects", 0), "worker_restarts": snap.get("worker_restarts", 0),
        }
        tmp = f"{path}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(tmp, path)
        except OSError as exc:
            log.warning("cannot write the stats file %s: %s", path, exc)

    def _alert(self, rec: dict[str, Any], ts_ns: int) -> None:
        """One alert from a worker: store, EVE, SIEM (this thread is their single writer)."""
        try:
            self.eve.write(rec)
            if self.alerts is not None:
                self.alerts.record(rec, ts_ns)
        except Exception:  # a store or output failure must not stop the EVE writer
            log.exception("alert %s could not be recorded everywhere", rec.get("tapsift", {}).get("alert_id"))

    def _behaviour(self, observations: list[Any]) -> None:
        """Every worker's observations into the one behaviour stage (this thread owns it; made
        on first use, after the workers were forked, so none inherits its state file)."""
        hook = self.behaviour
        if hook is None:
            if not (self.settings.behaviour.enabled and self.settings.inspection.policy):
                return
            from appliance.behaviour import BehaviourHook
            from appliance.outputs.alertjson import alert_record
            from appliance.pipeline import Outputs, policy_holder

            def alert(a: Any, obj: Any) -> None:
                self._alert(alert_record(a, obj), a.ts_ns)

            def suppressed(s: Any) -> None:
                if self.alerts is not None:
                    self.alerts.suppressed_repeat(s.first_id)

            holder = policy_holder(self.settings, self.workers, self.workers + 1)
            hook = self.behaviour = BehaviourHook(self.settings, holder, Outputs(event=self.eve.write, alert=alert,
                                                                                   suppressed=suppressed))
        for o in observations:
            hook.record(o)

    def _read(self, conn: Connection) -> None:
        with self._conns_lock:
            child = self._conns.get(conn)
        try:
            for _ in range(64):  # a bounded burst per connection, then the others get a turn
                msg = conn.recv()
                kind = msg[0]
                if kind == "eve":
                    write = self.eve.write_line
                    for line in msg[2]:
                        write(line)
                elif kind == "alert":
                    self._alert(msg[2], msg[3])
                elif kind == "suppressed":
                    if self.alerts is not None:
                        self.alerts.suppressed_repeat(msg[2])
                elif kind == "behaviour":
                    self._behaviour(msg[2])
                elif kind in ("stats", "bye") and child is not None:
                    with self._lock:
                        child.last = msg[2]
                        if kind == "bye":
                            child.done = True
                if not conn.poll():
                    break
        except (EOFError, OSError, ValueError, TypeError, AttributeError, ImportError):
            # the child exited (EOF) or died mid-message: this pipe is finished
            with self._conns_lock:
                self._conns.pop(conn, None)
            conn.close()
            if child is not None:
                with self._lock:
                    for k in _COUNTERS:
                        child.retired[k] += int(child.last.get(k, 0) or 0)
                    child.retired_sched.update(child.last.get("sched") or {})
                    child.last = {k: v for k, v in child.last.items()
                                  if k not in _COUNTERS and k not in ("kernel", "sched")}

    # -- counters ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Counters now: totals, per interface (kernel) and per worker. Thread-safe."""
        with self._lock:
            workers: dict[str, dict[str, Any]] = {}
            totals: Counter[str] = Counter()
            ifaces: dict[str, dict[str, Any]] = {}
            for c in self.children:
                w: dict[str, Any] = {k: int(c.retired[k]) + int(c.last.get(k, 0) or 0) for k in _COUNTERS}
                w["alive"] = c.proc is not None and c.proc.is_alive()
                w["restarts"] = c.restarts
                w["pid"] = c.proc.pid if c.proc is not None else None
                # this incarnation has reported: it is reading packets (or taking jobs)
                w["ready"] = w["alive"] and c.last.get("pid") == w["pid"]
                for k in ("vlan_restored", "truncated_frames", "outbox", "fast_path_packets"):
                    if k in c.last:
                        w[k] = c.last[k]
                workers[c.name] = w
                totals.update({k: w[k] for k in _COUNTERS})
                totals["worker_restarts"] += c.restarts
                for h in c.handles:
                    if self.backend == "pcap":
                        kp, kd = c.last.get("kernel", {}).get(h.iface, (h.kernel_packets, h.kernel_drops))
                        h.kernel_packets, h.kernel_drops = kp, kd
                    else:
                        try:
                            kp, kd = h.stats()
                        except OSError:
                            kp, kd = h.kernel_packets, h.kernel_drops
                    ifs = ifaces.setdefault(h.iface, {"kernel_packets": 0, "kernel_drops": 0, "workers": {}})
                    ifs["kernel_packets"] += kp
                    ifs["kernel_drops"] += kd
                    ifs["workers"][c.name] = {"kernel_packets": kp, "kernel_drops": kd}
            kp = sum(i["kernel_packets"] for i in ifaces.values())
            kd = sum(i["kernel_drops"] for i in ifaces.values())
            sched: Counter[str] = Counter()
            for c in self.children:
                sched.update(c.retired_sched)
                sched.update(c.last.get("sched") or {})
        queues = {f"outbox_{n}": w.get("outbox", 0) for n, w in workers.items() if "outbox" in w}
        queues["eve_local"] = len(self._local) if hasattr(self, "_local") else 0
        inspection = None
        if self.pool is not None:
            sched.update(self.pool.counters)
            inspection = inspection_snapshot(self.pool.stats(), sched, self.pool.in_hand())
            for cls, st in inspection["classes"].items():
                queues[f"inspect_{cls}"] = st["queued"]
            totals["not_inspected"] += shed_counts(self.pool.counters)
        return {
            "uptime": round(time.monotonic() - self.started, 1),
            "capture": {"kernel_packets": kp, "kernel_drops": kd,
                        "kernel_drop_ratio": round(kd / kp, 6) if kp else 0.0},
            "decoder": {"pkts": totals["packets"], "bytes": totals["bytes"]},
            **{k: totals[k] for k in (*_COUNTERS, "worker_restarts")},
            "queues": queues,
            "eve_events": self.eve.written if self.eve is not None else 0,
            "reloads": self.reloads,
            "interfaces": ifaces,
            "workers": workers,
            **({"inspection": inspection} if inspection is not None else {}),
        }

    # -- main loop --------------------------------------------------------------------------
    def _on_term(self, signum: int, frame: object) -> None:
        self._term = True

    def _on_hup(self, signum: int, frame: object) -> None:
        self._hup = True

    def _reload(self) -> None:
        self.reloads += 1
        self._reopen = True
        if self.behaviour is not None:  # its holder is swapped atomically; the writer thread reads it
            ok, msg = self.behaviour.holder.reload()
            (log.info if ok else log.error)("behaviour policy reload: %s", msg)
        if self.config_path is not None:
            try:
                new = load_settings(self.config_path)
            except SettingsError as exc:
                log.error("reload: %s (keeping the running settings)", exc)
            else:
                # Only the application-layer limits are taken (the workers do the same, so a
                # re-forked worker agrees with the others); everything else is bound to what
                # was opened or sized at start (sockets, rings, flow tables, outputs).
                self.settings = self.settings.model_copy(update={"applayer": new.applayer})
                log.info("reload: application-layer limits re-read from %s (other settings need a restart)",
                         self.config_path)
        for c in self.children:
            if c.proc is not None and c.proc.is_alive():
                os.kill(c.proc.pid, signal.SIGHUP)

    def run(self) -> int:
        """Drop privileges, start the children and supervise them until SIGTERM/SIGINT."""
        self._local = deque()
        live = self.settings.live
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)
        log.info("privileges: %s", drop_privileges(live.user))
        if self.metrics is not None:
            self.metrics.start()
            log.info("metrics at http://%s:%d/metrics", *self.metrics.address)
        if self.settings.inspection.policy:
            _prewarm(self.settings.inspection.policy)
        for c in self.children:
            self._spawn(c)
        if self.pool is not None:
            record_all(self.pool.pending, self._queue_local)  # jobs the previous run could not finish
        self._writer = threading.Thread(target=self._writer_loop, name="eve-writer", daemon=True)
        self._writer.start()
        if self.fleet is not None:
            self.fleet.start()
        log.info("capturing on %s with %d worker(s) (%s)", ", ".join(self.interfaces), self.workers, self.backend)
        try:
            while not self._term:
                if self._hup:
                    self._hup = False
                    self._reload()
                now = time.monotonic()
                sentinels = []
                for c in self.children:
                    if c.proc is None:
                        if now >= c.restart_at:
                            self._spawn(c)
                        continue
                    if c.proc.exitcode is not None:
                        self._reap(c)
                        continue
                    if c.crashes_recent and now - c.restart_at > 60:
                        c.crashes_recent = 0
                    sentinels.append(c.proc.sentinel)
                wait(sentinels, timeout=0.2) if sentinels else time.sleep(0.2)
        finally:
            self._shutdown()
        return self.exit_code

    def _stop_children(self, children: list[_Child], deadline: float) -> None:
        """SIGTERM ``children`` and wait for them until ``deadline``; kill the late ones (exit 1)."""
        for c in children:
            if c.proc.is_alive():
                os.kill(c.proc.pid, signal.SIGTERM)
        for c in children:
            c.proc.join(max(0.1, deadline - time.monotonic()))
            if c.proc.is_alive():
                log.error("worker %s did not stop in time: killed", c.name)
                c.proc.kill()
                c.proc.join(5)
                self.exit_code = 1

    def _shutdown(self) -> None:
        self._term = True
        log.info("stopping: capture workers flush what is in flight, then the inspection pool drains")
        alive = [c for c in self.children if c.proc is not None]
        timeout = self.settings.live.shutdown_timeout_s
        capture = [c for c in alive if c.kind == "capture"]
        pool = [c for c in alive if c.kind != "capture"]
        self._stop_children(capture, time.monotonic() + timeout)
        if pool and self.pool is not None:  # after capture: the last objects reach the queue first
            self._stop_children(pool, time.monotonic() + self.pool.drain_s + 3.0)
        if self.pool is not None:
            try:
                self.pool.shutdown()  # what is still queued goes to the on-disk spool
            except Exception:
                log.exception("the inspection queue could not be spooled")
                self.exit_code = 1
            record_all(self.pool.pending, self._queue_local)
        self._writer_stop.set()
        if self._writer is not None:
            self._writer.join(timeout=30)
        if self.behaviour is not None:  # the writer thread is done with it
            try:
                self.behaviour.finish()
            except Exception:
                log.exception("behaviour: the state file could not be saved")
        for c in alive:
            c.proc = None
        final = self.snapshot()
        self.eve.write({"timestamp": _now_ts(), "event_type": "stats", "stats": final})
        if self.fleet is not None:
            self.fleet.stop()
        if self.alerts is not None:
            self.alerts.close()
        self.eve.close()
        if self.metrics is not None:
            self.metrics.close()
        self.close_handles()
        log.info("stopped: %d packets, %d objects, %d kernel drops, %d worker restarts", final["packets"],
                 final["objects"], final["capture"]["kernel_drops"], final["worker_restarts"])
