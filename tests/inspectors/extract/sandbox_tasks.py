"""Tasks the sandbox tests run inside workers (importable by name from the worker)."""

from __future__ import annotations

import os
import time


def echo(data: bytes, **kw: object) -> tuple[bytes, dict[str, object]]:
    return data, dict(kw)


def allocate(data: bytes, *, mib: int) -> int:
    """Allocate ``mib`` MiB and touch it."""
    blob = bytearray(mib << 20)
    for i in range(0, len(blob), 4096):
        blob[i] = 1
    return len(blob)


def spin(data: bytes) -> None:
    while True:
        pass


def sleep(data: bytes, *, seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def die(data: bytes) -> None:
    os.abort()


def pid(data: bytes) -> int:
    return os.getpid()


def boom(data: bytes) -> None:
    raise ValueError("parser bug")


def busy(data: bytes, *, mib: int) -> None:
    """Hold ``mib`` MiB and compute for ever (a parser deep in a large file)."""
    blob = bytearray(mib << 20)
    for i in range(0, len(blob), 4096):
        blob[i] = 1
    n = 0
    while True:
        n = (n * 31 + blob[n % len(blob)]) % 1_000_003


def vmsize(data: bytes) -> dict[str, int]:
    """The worker's address space and threads (``VmSize`` counts against ``RLIMIT_AS``)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmSize", "Threads"):
                out[k] = int(v.split()[0])
    return out


def by_data(data: bytes) -> object:
    """What ``data`` names: ``die`` aborts, ``spin`` loops, ``boom`` raises, ``pid`` gives the
    worker's pid; anything else comes back."""
    if data == b"die":
        os.abort()
    if data == b"spin":
        while True:
            pass
    if data == b"boom":
        raise ValueError("parser bug")
    if data == b"pid":
        return os.getpid()
    return data
