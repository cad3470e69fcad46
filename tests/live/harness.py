"""Run ``tapsift run`` inside a test namespace and read what it wrote."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.live.netns import VethPair

TAPSIFT = str(Path(sys.executable).with_name("tapsift"))


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete JSON line of an EVE file (a line being written is skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def object_hashes(events: list[dict[str, Any]]) -> Counter[tuple[str, int, str]]:
    """Multiset of (md5, size, state) of the fileinfo events."""
    return Counter((e["fileinfo"]["md5"], e["fileinfo"]["size"], e["fileinfo"]["state"])
                   for e in events if e["event_type"] == "fileinfo")


def read_capture(pcap: Path, out: Path) -> list[dict[str, Any]]:
    """``tapsift read`` on ``pcap``: the offline reference."""
    subprocess.run([TAPSIFT, "read", str(pcap), "--eve", str(out), "-q"], check=True, timeout=300)
    return read_events(out)


def sensor_config(path: Path, **live: Any) -> Path:
    """A settings file with these ``live`` keys. Tests that compare alerts with ``tapsift read``
    give the queue budgets room (``cheap_budget_s``, ``expensive_budget_s``): on a loaded machine
    a job may wait long, and shedding it as too old would be right for a sensor, wrong for them."""
    path.write_text("live:\n" + "".join(f"  {k}: {v}\n" for k, v in live.items()), encoding="utf-8")
    return path


NO_BUDGETS = {"cheap_budget_s": 86400, "expensive_budget_s": 86400}
"""Live keys that keep every queued object until it is inspected (see `sensor_config`)."""


class LiveSensor:
    """``tapsift run -i <capture end> …`` in the capture namespace of ``pair``."""

    def __init__(self, pair: VethPair, eve: Path, *args: str, interfaces: list[str] | None = None) -> None:
        self.pair = pair
        self.eve = eve
        self.state = eve.parent / "state"  # its own job queue and spool (sensors run side by side)
        cmd = [TAPSIFT, "run", "--eve", str(eve), "--stats-interval", "0.3", "--metrics", "",
               "--state-dir", str(self.state), *args]
        for iface in interfaces or [pair.rx_if]:
            cmd += ["-i", iface]
        self.proc = subprocess.Popen(pair.exec_rx(*cmd), stderr=subprocess.PIPE, text=True)
        self.stderr = ""
        # ready: every process of this start has reported, i.e. the capture workers have built
        # their pipelines (policy compiled) and read their rings. Traffic replayed earlier would
        # wait in the rings, but a worker still starting reports 0 packets for as long as a
        # loaded machine makes it take.
        self.wait_for(lambda st: bool(st["workers"]) and all(w.get("ready") for w in st["workers"].values()),
                      timeout=180, what="every worker ready")

    def stats(self) -> dict[str, Any] | None:
        evs = [e for e in read_events(self.eve) if e["event_type"] == "stats"]
        return evs[-1]["stats"] if evs else None

    def wait_for(self, cond: Any, timeout: float = 20, what: str = "",
                 progress: Any = None) -> dict[str, Any]:
        """Until ``cond(stats)``. A liveness bound, not a timing assert: with ``progress``
        (stats → a value that changes while the sensor works) the ``timeout`` counts from the
        last change, so a loaded machine that is slow but busy never fails the wait."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"tapsift run exited early ({self.proc.returncode}): {self.proc.stderr.read()}")
            st = self.stats()
            if st is not None and cond(st):
                return st
            if st is not None and progress is not None:
                now = progress(st)
                if now != last:
                    last, deadline = now, time.monotonic() + timeout
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what or cond}; last stats: {self.stats()}")

    def wait_packets(self, n: int, timeout: float = 60) -> dict[str, Any]:
        """Until the kernel has offered ``n`` packets and the workers have taken them all (the
        wait lasts as long as the workers make progress)."""
        return self.wait_for(
            lambda st: st["capture"]["kernel_packets"] >= n
            and st["packets"] + st["capture"]["kernel_drops"] >= st["capture"]["kernel_packets"],
            timeout, f"{n} packets",
            progress=lambda st: (st["capture"]["kernel_packets"], st["packets"], st["objects"]))

    def wait_inspected(self, timeout: float = 120) -> dict[str, Any]:
        """Until the inspection pool has nothing queued or in hand, and every object offered
        to it has been inspected or shed (while it makes progress). Without a pool: at once."""

        def done(st: dict[str, Any]) -> bool:
            ins = st.get("inspection")
            if ins is None:
                return True
            return ins["in_hand"] == 0 and all(
                c["queued"] == 0 and c["inspected"] + sum(c["shed"].values()) >= c["offered"]
                for c in ins["classes"].values())

        def progress(st: dict[str, Any]) -> Any:
            ins = st.get("inspection") or {"classes": {}}
            return tuple((c["queued"], c["inspected"]) for c in ins["classes"].values())

        return self.wait_for(done, timeout, "the inspection queue to drain", progress=progress)

    def worker_pids(self) -> dict[str, int]:
        st = self.wait_for(lambda st: all(w.get("pid") for w in st["workers"].values()), what="worker pids")
        return {name: w["pid"] for name, w in st["workers"].items()}

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 90) -> list[dict[str, Any]]:
        """SIGTERM, wait, return every event written."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, self.stderr = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, self.stderr = self.proc.communicate()
            raise
        return read_events(self.eve)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()
