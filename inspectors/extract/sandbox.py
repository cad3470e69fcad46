"""A small pool of pre-forked worker processes for parsers of untrusted files.

Each worker is started from a ``forkserver`` (so it inherits nothing of the sensor's memory)
and sets its own ``RLIMIT_AS`` (address space) before it runs anything; ``RLIMIT_CPU`` is set
per task (the CPU already used plus the task's allowance, so a spinning parser gets SIGXCPU).
The parent waits for each task with a wall-clock timeout, after which the worker is killed
and replaced. A worker dies with its parent, at once, even in the middle of a task: it asks for
``SIGKILL`` when the process that forked it exits (``PR_SET_PDEATHSIG``; with a forkserver that
is the forkserver, which exits with the sensor), and a thread of the worker watches a *lifeline*
pipe whose write end only the sensor holds: end of file means the sensor is gone (killed, or it
dropped the worker) and the worker kills itself (``PR_SET_PDEATHSIG`` alone fires on the exit of
the parent *thread*, and not at all when the forkserver outlives the process that asked for the
worker). A worker that dies (signal, ``MemoryError``, C-level abort) gives a
`SandboxFailure`; the sensor process never runs the parser and never holds more than the task's
input and the (bounded) result.

Tasks are named ``"package.module:function"`` and must live under an allowed prefix
(``inspectors.`` and ``tests.`` by default); the function is called as ``func(data, **kwargs)``
and its result must be picklable. ``data`` is bytes, or ``("path", "/spool/file")`` to let the
worker read a spooled object itself.

    sb = Sandbox(workers=2, memory_bytes=512 << 20, cpu_seconds=10)
    res = sb.run("inspectors.extract.pdf:extract_pdf", data, timeout=10, params=...)
    if isinstance(res, SandboxFailure): ...
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import resource
import signal
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing import connection as mp_connection
from multiprocessing.connection import Connection
from typing import Any

_ALLOWED = ("inspectors.", "tests.")
_PRELOAD = ["inspectors.extract.bounded", "inspectors.extract.pdf", "inspectors.extract.archives",
            "inspectors.extract.office", "pypdfium2", "lxml.etree"]
"""Imported once by the fork server, so that every worker (and every replacement) starts with
the document parsers loaded instead of importing them itself."""


@dataclass(frozen=True, slots=True)
class SandboxFailure:
    """A task that gave no result: ``reason`` is ``timeout``, ``memory``, ``cpu``, ``crashed:<sig>``,
    ``error:<Exception>``, ``busy`` (queue full) or ``closed``."""

    reason: str
    detail: str = ""
    peak_rss: int = 0
    """Peak resident set size of the worker, in bytes, when known."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    ok: bool
    value: Any
    peak_rss: int


def _peak_rss_self() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _resolve(name: str) -> Any:
    mod, _, func = name.partition(":")
    if not mod.startswith(_ALLOWED) or not func:
        raise ValueError(f"task {name!r} not allowed")
    return getattr(importlib.import_module(mod), func)


_PR_SET_PDEATHSIG = 1


_M_ARENA_MAX = -8
_LIFELINE_STACK = 64 * 1024


def _die_with_parent(life: Connection | None) -> None:  # pragma: no cover - runs in the child
    """SIGKILL when the forking parent exits, and a thread that kills this process when the
    lifeline reaches end of file (see the module doc). The thread costs the parser almost no
    address space (``RLIMIT_AS``): a 64 KiB stack, and one malloc arena for the process instead
    of glibc's 64 MiB reservation per thread."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        libc.mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError):  # not Linux/glibc: the lifeline still works
        pass
    if life is None:
        return
    old = threading.stack_size(_LIFELINE_STACK)
    try:
        threading.Thread(target=_watch_lifeline, args=(life.fileno(),), name="tapsift-lifeline", daemon=True).start()
    finally:
        threading.stack_size(old)


def _watch_lifeline(fd: int) -> None:  # pragma: no cover - runs in the child
    try:
        while os.read(fd, 1):  # the sensor never writes: this returns only at end of file
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)


def _worker_main(conn: Connection, memory_bytes: int,
                 life: Connection | None = None) -> None:  # pragma: no cover - runs in the child
    """Worker loop: die with the parent, set limits, then run tasks until the pipe closes."""
    _die_with_parent(life)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _, cpu_hard = resource.getrlimit(resource.RLIMIT_CPU)
    try:
        os.nice(5)
    except OSError:
        pass
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        if isinstance(msg, _Batch):
            _run_batch(conn, msg, memory_bytes, cpu_hard)
            continue
        name, data, kwargs, cpu_seconds, task_memory = msg
        _send_outcome(conn, _task_outcome(name, data, kwargs, cpu_seconds, task_memory, memory_bytes, cpu_hard))


def _task_outcome(name: str, data: Any, kwargs: dict[str, Any], cpu_seconds: float, task_memory: int,
                  memory_bytes: int, cpu_hard: int) -> _Outcome:  # pragma: no cover - runs in the child
    """Run one task under its CPU and memory limits; its outcome (never raises)."""
    try:
        if cpu_seconds:
            used = resource.getrusage(resource.RUSAGE_SELF)
            soft = int(used.ru_utime + used.ru_stime + cpu_seconds + 1)
            resource.setrlimit(resource.RLIMIT_CPU, (soft if cpu_hard < 0 else min(soft, cpu_hard), cpu_hard))
        if memory_bytes:
            cap = min(task_memory or memory_bytes, memory_bytes)
            resource.setrlimit(resource.RLIMIT_AS, (cap, memory_bytes))
        if isinstance(data, tuple) and len(data) == 2 and data[0] == "path":
            with open(data[1], "rb") as f:
                data = f.read()
        value = _resolve(name)(data, **kwargs)
        return _Outcome(True, value, _peak_rss_self())
    except MemoryError:
        data = None
        return _Outcome(False, SandboxFailure("memory", "MemoryError", _peak_rss_self()), _peak_rss_self())
    except BaseException as exc:  # report anything the parser raised
        return _Outcome(False, SandboxFailure(f"error:{type(exc).__name__}", str(exc)[:300], _peak_rss_self()),
                        _peak_rss_self())


def _send_outcome(conn: Connection, out: _Outcome) -> None:  # pragma: no cover - runs in the child
    try:
        conn.send(out)
    except MemoryError:
        conn.send(_Outcome(False, SandboxFailure("memory", "result too large"), _peak_rss_self()))
    except Exception as exc:  # unpicklable result
        conn.send(_Outcome(False, SandboxFailure("error:result", repr(exc)[:300]), _peak_rss_self()))


@dataclass(frozen=True, slots=True)
class _Batch:
    """Several tasks of one function sent to a worker in one message (`Sandbox.run_batch`)."""

    name: str
    items: list[tuple[Any, dict[str, Any]]]
    cpu_seconds: float
    task_memory: int


def _run_batch(conn: Connection, batch: _Batch, memory_bytes: int,
               cpu_hard: int) -> None:  # pragma: no cover - runs in the child
    """Run a batch's tasks in order, sending each outcome as soon as it is known: the parent
    then knows which task a crash or a timeout hit (the first one without an outcome)."""
    items = list(batch.items)
    batch = _Batch(batch.name, [], batch.cpu_seconds, batch.task_memory)  # drop our reference to the inputs
    for i in range(len(items)):
        data, kwargs = items[i]
        items[i] = (None, {})
        out = _task_outcome(batch.name, data, kwargs, batch.cpu_seconds, batch.task_memory, memory_bytes, cpu_hard)
        data = None
        _send_outcome(conn, out)


@dataclass(slots=True)
class _Share:
    """The items of a `Sandbox.run_batch` one worker is running: their indices, how many have
    a result, and when the current one times out."""

    idx: list[int]
    pos: int
    deadline: float


class _Worker:
    __slots__ = ("conn", "life", "proc", "tasks")

    def __init__(self, ctx: Any, memory_bytes: int) -> None:
        parent, child = ctx.Pipe(duplex=True)
        life_r, life_w = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_worker_main, args=(child, memory_bytes, life_r), daemon=True,
                                name="tapsift-extract")
        self.proc.start()
        child.close()
        life_r.close()
        self.conn: Connection = parent
        self.life: Connection = life_w
        """The lifeline's write end: held, never written; closing it (or dying) ends the worker."""
        self.tasks = 0

    def kill(self) -> None:
        try:
            if self.proc.is_alive():
                self.proc.kill()
            self.proc.join(2)
        except Exception:  # already gone
            pass
        for c in (self.conn, self.life):
            try:
                c.close()
            except OSError:
                pass
        try:
            self.proc.close()
        except Exception:  # still running (join timed out)
            pass


class Sandbox:
    """A bounded pool of rlimited worker processes; thread-safe.

    ``workers`` processes are started at construction; ``max_waiting`` callers may wait for a
    free worker (more get ``SandboxFailure("busy")`` at once, so capture never blocks behind
    document parsing); ``max_tasks`` recycles a worker after that many tasks (0: never).
    """

    def __init__(self, workers: int = 2, memory_bytes: int = 1024 << 20, cpu_seconds: float = 30.0, *,
                 max_waiting: int = 64, max_tasks: int = 500, context: str = "forkserver") -> None:
        self.memory_bytes = memory_bytes
        self.cpu_seconds = cpu_seconds
        self.max_waiting = max_waiting
        self.max_tasks = max_tasks
        self._ctx = mp.get_context(context)
        if context == "forkserver":
            try:
                self._ctx.set_forkserver_preload(_PRELOAD)
            except Exception:  # already started by someone else
                pass
        self._lock = threading.Condition()
        self._idle: deque[_Worker] = deque()
        self._waiting = 0
        self._closed = False
        self.size = workers
        self.replaced = 0
        """Workers killed or died and replaced so far."""
        self.peak_rss = 0
        """Largest worker peak RSS (bytes) reported so far."""
        for _ in range(workers):
            self._idle.append(_Worker(self._ctx, memory_bytes))

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop all workers (idle ones now; busy ones as their tasks end)."""
        with self._lock:
            self._closed = True
            idle, self._idle = list(self._idle), deque()
            self._lock.notify_all()
        for w in idle:
            try:
                w.conn.send(None)
            except OSError:
                pass
            w.kill()

    def pids(self) -> list[int]:
        """Process ids of the idle workers (for tests and monitoring)."""
        with self._lock:
            return [w.proc.pid for w in self._idle if w.proc.pid is not None]

    def _acquire(self, deadline: float) -> _Worker | SandboxFailure:
        with self._lock:
            if self._closed:
                return SandboxFailure("closed")
            if not self._idle and self._waiting >= self.max_waiting:
                return SandboxFailure("busy", "queue full")
            self._waiting += 1
            try:
                while not self._idle:
                    left = deadline - time.monotonic()
                    if left <= 0 or self._closed:
                        return SandboxFailure("busy" if not self._closed else "closed", "no free worker")
                    self._lock.wait(left)
                return self._idle.popleft()
            finally:
                self._waiting -= 1

    def _release(self, w: _Worker, dead: bool) -> None:
        if dead or (self.max_tasks and w.tasks >= self.max_tasks):
            w.kill()
            if dead:
                self.replaced += 1
            with self._lock:
                closed = self._closed
            if closed:
                return
            try:
                w = _Worker(self._ctx, self.memory_bytes)
            except Exception:  # cannot start a process now: shrink the pool
                with self._lock:
                    self.size -= 1
                    self._lock.notify()
                return
        with self._lock:
            if self._closed:
                w.kill()
                return
            self._idle.append(w)
            self._lock.notify()

    def run(self, func_name: str, data: bytes | tuple[str, str], timeout: float, *,
            cpu_seconds: float | None = None, memory_bytes: int | None = None, **kwargs: Any) -> Any:
        """Run ``func_name(data, **kwargs)`` in a worker: its result, or a `SandboxFailure`.

        ``timeout`` bounds the wall-clock time including the wait for a free worker;
        ``memory_bytes`` may lower (not raise) the pool's address-space cap for this task.
        """
        deadline = time.monotonic() + timeout
        w = self._acquire(deadline)
        if isinstance(w, SandboxFailure):
            return w
        cpu = self.cpu_seconds if cpu_seconds is None else cpu_seconds
        w.tasks += 1
        try:
            w.conn.send((func_name, data, kwargs, cpu, memory_bytes or 0))
        except (OSError, ValueError) as exc:
            self._release(w, True)
            return SandboxFailure("crashed:send", str(exc)[:200])
        left = max(0.0, deadline - time.monotonic())
        try:
            ready = w.conn.poll(left)
        except (OSError, EOFError):
            ready = True
        if not ready:
            rss = vm_hwm(w.proc.pid)
            self.peak_rss = max(self.peak_rss, rss)
            self._release(w, True)
            return SandboxFailure("timeout", f"after {timeout:.1f}s", rss)
        try:
            out: _Outcome = w.conn.recv()
        except (EOFError, OSError, MemoryError) as exc:
            w.proc.join(1)
            code = w.proc.exitcode
            self._release(w, True)
            return self._death(code, exc)
        self.peak_rss = max(self.peak_rss, out.peak_rss)
        if out.ok:
            self._release(w, False)
            return out.value
        fail: SandboxFailure = out.value
        # a worker that ran out of memory may be left fragmented: replace it
        self._release(w, fail.reason == "memory")
        return fail

    def run_batch(self, func_name: str, items: Sequence[tuple[bytes | tuple[str, str], dict[str, Any]]],
                  timeout: float, *, cpu_seconds: float | None = None,
                  memory_bytes: int | None = None) -> list[Any]:
        """``[run(func_name, data, timeout, **kwargs) for data, kwargs in items]``, with the
        items split over the pool's workers and sent to each worker in one message.

        A worker runs its share in order and sends each result as soon as it has it, so the
        wall time of the batch is shared out and the parent does no round trip per item.
        ``timeout`` bounds each item (from the previous item's result, or from the start).
        A crash, a timeout or a memory failure hits only the item that was running: it gets its
        `SandboxFailure`, the worker is replaced and the items after it go to another worker.
        """
        results: list[Any] = [None] * len(items)
        pending: deque[int] = deque(range(len(items)))
        running: dict[_Worker, _Share] = {}
        cpu = self.cpu_seconds if cpu_seconds is None else cpu_seconds
        spec = (func_name, cpu, memory_bytes or 0, timeout)
        while pending or running:
            self._hand_out(items, pending, running, spec)
            if not running:  # every worker is busy elsewhere: wait for one as `run` does
                w = self._acquire(time.monotonic() + timeout)
                if isinstance(w, SandboxFailure):
                    for i in pending:
                        results[i] = w
                    break
                self._start_share(w, items, pending, running, spec, len(pending))
                continue
            self._collect(running, results, pending, timeout)
        return results

    def _hand_out(self, items: Sequence[Any], pending: deque[int], running: dict[_Worker, _Share],
                  spec: tuple[str, float, int, float]) -> None:
        """Give every idle worker an even share of what is still pending."""
        while pending:
            with self._lock:
                if self._closed or not self._idle:
                    return
                w = self._idle.popleft()
            share = -(-len(pending) // max(1, self.size))
            self._start_share(w, items, pending, running, spec, share)

    def _start_share(self, w: _Worker, items: Sequence[Any], pending: deque[int], running: dict[_Worker, _Share],
                     spec: tuple[str, float, int, float], n: int) -> None:
        name, cpu, memory, timeout = spec
        idx = [pending.popleft() for _ in range(min(n, len(pending)))]
        w.tasks += len(idx)
        try:
            w.conn.send(_Batch(name, [items[i] for i in idx], cpu, memory))
        except (OSError, ValueError):
            self._release(w, True)
            pending.extendleft(reversed(idx))
            return
        running[w] = _Share(idx, 0, time.monotonic() + timeout)

    def _collect(self, running: dict[_Worker, _Share], results: list[Any], pending: deque[int],
                 timeout: float) -> None:
        """Wait for the next results of the running shares; settle crashes and timeouts."""
        now = time.monotonic()
        left = max(0.0, min(sh.deadline for sh in running.values()) - now)
        by_conn = {w.conn: w for w in running}
        try:
            ready = mp_connection.wait(list(by_conn), left)
        except OSError:
            ready = list(by_conn)
        for conn in ready:
            w = by_conn[conn]  # type: ignore[index]
            sh = running[w]
            i = sh.idx[sh.pos]
            try:
                out: _Outcome = w.conn.recv()
            except (EOFError, OSError, MemoryError) as exc:
                w.proc.join(1)
                results[i] = self._death(w.proc.exitcode, exc)
                self._end_share(w, running, pending, dead=True, rest=sh.idx[sh.pos + 1:])
                continue
            self.peak_rss = max(self.peak_rss, out.peak_rss)
            results[i] = out.value
            sh.pos += 1
            sh.deadline = time.monotonic() + timeout
            # a worker that ran out of memory may be left fragmented: replace it
            memory = not out.ok and out.value.reason == "memory"
            if sh.pos == len(sh.idx) or memory:
                self._end_share(w, running, pending, dead=memory, rest=sh.idx[sh.pos:])
        now = time.monotonic()
        for w, sh in list(running.items()):
            if sh.deadline <= now and w.conn not in ready:
                rss = vm_hwm(w.proc.pid)
                self.peak_rss = max(self.peak_rss, rss)
                results[sh.idx[sh.pos]] = SandboxFailure("timeout", f"after {timeout:.1f}s", rss)
                self._end_share(w, running, pending, dead=True, rest=sh.idx[sh.pos + 1:])

    def _end_share(self, w: _Worker, running: dict[_Worker, _Share], pending: deque[int], *, dead: bool,
                   rest: list[int]) -> None:
        """Release ``w`` (replaced if ``dead``); ``rest`` (its items without a result) is pending again."""
        del running[w]
        pending.extendleft(reversed(rest))
        self._release(w, dead)

    @staticmethod
    def _death(code: int | None, exc: BaseException) -> SandboxFailure:
        if code is not None and code < 0:
            sig = -code
            if sig == signal.SIGXCPU:
                return SandboxFailure("cpu", "RLIMIT_CPU")
            if sig in (signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS):
                # allocation failures under RLIMIT_AS often surface as an abort in C code
                return SandboxFailure(f"crashed:{signal.Signals(sig).name}", "worker died (likely out of memory)")
            return SandboxFailure(f"crashed:{signal.Signals(sig).name}")
        return SandboxFailure("crashed", f"exit {code}: {type(exc).__name__}")


_default: Sandbox | None = None
_default_lock = threading.Lock()


def default_sandbox(workers: int = 2, memory_bytes: int = 1024 << 20, cpu_seconds: float = 30.0) -> Sandbox:
    """The process-wide sandbox, created on first use (arguments apply only then)."""
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            _default = Sandbox(workers, memory_bytes, cpu_seconds)
        return _default



def vm_hwm(pid: int | None) -> int:
    """Peak RSS (``VmHWM``, bytes) of a live process from /proc; 0 if unknown."""
    if not pid:
        return 0
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
