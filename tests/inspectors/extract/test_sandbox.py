"""The worker pool: limits, timeouts, replacement, bounded queue."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from inspectors.extract.sandbox import Sandbox, SandboxFailure

T = "tests.inspectors.extract.sandbox_tasks:"


@pytest.fixture(scope="module")
def small():
    sb = Sandbox(workers=1, memory_bytes=256 << 20, cpu_seconds=5, max_waiting=1)
    yield sb
    sb.close()


def test_result_round_trip(sandbox):
    assert sandbox.run(T + "echo", b"abc", 10, k=1) == (b"abc", {"k": 1})


def test_memory_past_rlimit_fails_cleanly(small):
    res = small.run(T + "allocate", b"", 20, mib=1024)
    assert isinstance(res, SandboxFailure)
    assert res.reason in ("memory",) or res.reason.startswith("crashed")
    # the pool still works afterwards, and small allocations are fine
    assert small.run(T + "allocate", b"", 20, mib=16) == 16 << 20
    assert small.peak_rss < 256 << 20


def test_per_task_memory_can_only_be_lowered(small):
    res = small.run(T + "allocate", b"", 20, mib=100, memory_bytes=64 << 20)
    assert isinstance(res, SandboxFailure) and res.reason == "memory"
    assert small.run(T + "allocate", b"", 20, mib=100) == 100 << 20


def test_infinite_loop_killed_at_timeout_and_worker_replaced(small):
    before = small.pids()
    t = time.monotonic()
    res = small.run(T + "spin", b"", 1.0, cpu_seconds=60)
    assert isinstance(res, SandboxFailure) and res.reason == "timeout"
    # killed by the 1 s wall clock, not by the 60 s CPU limit (generous: the box may be loaded)
    assert time.monotonic() - t < 30
    after = small.pids()
    assert after and after != before
    assert small.run(T + "echo", b"x", 10) == (b"x", {})


def test_cpu_limit_kills_spinning_worker(small):
    # one CPU-second, with wall-clock room for a loaded machine (the wall timeout must not fire first)
    res = small.run(T + "spin", b"", 120, cpu_seconds=1)
    assert isinstance(res, SandboxFailure) and res.reason == "cpu"


def test_crash_is_reported_and_pool_replaces_worker(small):
    n = small.replaced
    res = small.run(T + "die", b"", 10)
    assert isinstance(res, SandboxFailure) and res.reason.startswith("crashed")
    assert small.replaced == n + 1
    assert isinstance(small.run(T + "pid", b"", 10), int)


def test_exception_in_task_is_a_failure_not_a_crash(small):
    pid = small.run(T + "pid", b"", 10)
    res = small.run(T + "boom", b"", 10)
    assert isinstance(res, SandboxFailure) and res.reason == "error:ValueError" and "parser bug" in res.detail
    assert small.run(T + "pid", b"", 10) == pid  # same worker kept


def test_disallowed_task_name(small):
    res = small.run("os:system", b"", 10)
    assert isinstance(res, SandboxFailure) and res.reason.startswith("error")


def test_bounded_queue_sheds_load(small):
    results: list[object] = []
    th = [threading.Thread(target=lambda: results.append(small.run(T + "sleep", b"", 5, seconds=0.8)))
          for _ in range(4)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    busy = [r for r in results if isinstance(r, SandboxFailure) and r.reason == "busy"]
    assert busy, results  # one worker, one waiter: the rest are refused at once
    assert 0.8 in results


def test_spooled_input_read_by_worker(sandbox, tmp_path):
    p = tmp_path / "obj.bin"
    p.write_bytes(b"spooled")
    assert sandbox.run(T + "echo", ("path", str(p)), 10) == (b"spooled", {})


def test_closed_pool_refuses():
    sb = Sandbox(workers=1, memory_bytes=256 << 20)
    sb.close()
    assert sb.run(T + "echo", b"", 5) == SandboxFailure("closed")


# --- workers die with their parent ------------------------------------------------------------------

_PARENT = """
import sys, threading
from inspectors.extract.sandbox import Sandbox
sb = Sandbox(workers=1, memory_bytes=512 << 20, cpu_seconds=300)
pid = sb.pids()[0]
threading.Thread(target=sb.run, args=("tests.inspectors.extract.sandbox_tasks:busy", b"", 300),
                 kwargs={"mib": 64}, daemon=True).start()
print(pid, flush=True)
threading.Event().wait()
"""


def _dead(pid: int) -> bool:
    """Gone, or a zombie nobody has reaped yet (it runs nothing)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except FileNotFoundError:
        return True


def _wait_dead(pid: int, timeout: float = 15.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if _dead(pid):
            return True
        time.sleep(0.05)
    return _dead(pid)


def test_a_busy_worker_dies_when_its_parent_is_killed(tmp_path):
    """``kill -9`` of the process that owns the sandbox, while its worker parses (here: holds 64 MiB
    and computes): the worker must not run on (it did for ~25 s with 853 MB)."""
    import os
    import signal
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[3])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True, env=env)
    try:
        worker = int(parent.stdout.readline())
        end = time.monotonic() + 30
        while time.monotonic() < end and not _dead(worker) and _rss(worker) < 64 << 20:
            time.sleep(0.05)  # until the task has started (it allocates first)
        assert _rss(worker) >= 64 << 20 and not _dead(worker)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        assert _wait_dead(worker), "the sandbox worker outlived its parent"
    finally:
        parent.kill()
        parent.wait()


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return 0


def test_the_lifeline_alone_ends_a_busy_worker():
    """The forkserver (the worker's real parent) lives on, so ``PR_SET_PDEATHSIG`` cannot fire:
    closing the sensor's end of the lifeline must still end the worker mid-task."""
    import multiprocessing as mp

    from inspectors.extract.sandbox import _Worker

    w = _Worker(mp.get_context("forkserver"), 512 << 20)
    try:
        w.conn.send((T + "busy", b"", {"mib": 1}, 300, 0))
        assert not w.conn.poll(0.5)  # busy
        w.life.close()
        w.proc.join(15)
        assert w.proc.exitcode == -9
    finally:
        w.kill()


def test_the_lifeline_costs_the_parser_almost_no_address_space():
    """A thread's default stack (8 MiB) and glibc malloc arena (64 MiB) would count against the
    worker's RLIMIT_AS, leaving the parser 72 MiB less than configured."""
    import multiprocessing as mp

    from inspectors.extract.sandbox import _worker_main

    ctx = mp.get_context("forkserver")
    sizes = []
    for with_lifeline in (False, True):
        parent, child = ctx.Pipe(duplex=True)
        life_r, life_w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=_worker_main, args=(child, 1 << 30, life_r if with_lifeline else None), daemon=True)
        p.start()
        child.close()
        life_r.close()
        parent.send((T + "vmsize", b"", {}, 10, 0))
        out = parent.recv()
        parent.send(None)
        p.join(10)
        life_w.close()
        parent.close()
        assert out.ok and out.value["Threads"] == (2 if with_lifeline else 1)
        sizes.append(out.value["VmSize"] * 1024)
    assert sizes[1] - sizes[0] < 4 << 20, sizes
