#!/usr/bin/env python3
"""Summarise a py-spy ``--format raw`` profile: self and inclusive time per function, by process role.

    py-spy record --subprocesses -r 200 --format raw -o prof.txt -- .venv/bin/tapsift read X --policy P
    .venv/bin/python bench/pyspy_summary.py prof.txt [--top 25]

A sample's role is ``main`` (the process py-spy started) or ``worker`` (any descendant: the
extraction sandbox's forkserver children, ``--workers`` shards). Shares are of all samples,
so they add up across roles the way CPU seconds do.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*?)(?::\d+)?\)$")


def _name(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    f = m.group("file")
    for cut in ("site-packages/", "python3.11/"):
        if cut in f:
            f = f.split(cut, 1)[1]
    return f"{m.group('func')} ({f})"


def summarise(path: Path) -> tuple[int, Counter[tuple[str, str]], Counter[tuple[str, str]], Counter[str]]:
    """(total samples, self counts, inclusive counts, samples per role)."""
    self_c: Counter[tuple[str, str]] = Counter()
    incl_c: Counter[tuple[str, str]] = Counter()
    roles: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        parts = stack.split(";")
        procs = [p for p in parts if p.startswith("process ")]
        frames = [p for p in parts if not p.startswith("process ") and not p.startswith("thread ")]
        role = "main" if len(procs) <= 1 else "worker"
        total += count
        roles[role] += count
        if not frames:
            self_c[(role, "<idle/native>")] += count
            continue
        self_c[(role, _name(frames[-1]))] += count
        for f in dict.fromkeys(_name(f) for f in frames):
            incl_c[(role, f)] += count
    return total, self_c, incl_c, roles


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("profile", type=Path)
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args(argv)
    total, self_c, incl_c, roles = summarise(a.profile)
    print(f"{total} samples: " + ", ".join(f"{r} {c / total:.1%}" for r, c in roles.most_common()))
    for title, c in (("self", self_c), ("inclusive", incl_c)):
        print(f"\n| {title} | role | function |\n|---|---|---|")
        for (role, name), n in c.most_common(a.top):
            print(f"| {n / total:5.1%} | {role} | {name} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
