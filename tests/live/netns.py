"""Network namespaces and veth pairs for live-capture tests and the live benchmark.

`VethPair` makes two namespaces joined by a veth pair: the sender end (``tx``) gets an address
in 10.99.0.0/24 inside its namespace, the capture end (``rx``) gets none and has IPv6 and ARP
off before it goes up, so the kernel itself never transmits on it. Names are unique per run
(pid + counter), and everything is deleted by `close` (deleting a namespace deletes its veth).
Nothing is ever routed outside the namespaces.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from pathlib import Path

_seq = itertools.count()


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=30)


def netns_unavailable() -> str | None:
    """Why namespaces cannot be used here (None when they can)."""
    if os.geteuid() != 0:
        return "live capture tests need root (network namespaces, packet sockets)"
    for tool in ("ip", "tcpreplay"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup.sh test installs it)"
    probe = f"tsprobe{os.getpid()}"
    p = _run("ip", "netns", "add", probe, check=False)
    if p.returncode != 0:
        return f"cannot create a network namespace: {p.stderr.strip()}"
    _run("ip", "netns", "del", probe, check=False)
    return None


class VethPair:
    """``ts<pid>x<n>t`` (sender namespace) ──veth── ``ts<pid>x<n>r`` (capture namespace)."""

    def __init__(self, mtu: int = 1500, tag: str = "") -> None:
        n = next(_seq)
        stem = f"ts{os.getpid() % 100000}{tag}{n}"
        self.tx_ns, self.rx_ns = f"{stem}t", f"{stem}r"
        self.tx_if, self.rx_if = "vtx0", "vrx0"
        self.sender_cpu: int | None = None
        """Pin tcpreplay to this CPU (benchmarks)."""
        self.sender_nice = 0
        _run("ip", "netns", "add", self.tx_ns)
        try:
            _run("ip", "netns", "add", self.rx_ns)
            for ns in (self.tx_ns, self.rx_ns):
                _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
                _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            _run("ip", "link", "add", self.tx_if, "netns", self.tx_ns, "mtu", str(mtu), "type", "veth",
                 "peer", "name", self.rx_if, "netns", self.rx_ns, "mtu", str(mtu))
            _run("ip", "-n", self.tx_ns, "addr", "add", "10.99.0.1/24", "dev", self.tx_if)
            _run("ip", "-n", self.rx_ns, "link", "set", self.rx_if, "arp", "off")
            _run("ip", "-n", self.tx_ns, "link", "set", self.tx_if, "up")
            _run("ip", "-n", self.rx_ns, "link", "set", self.rx_if, "up")
        except BaseException:
            self.close()
            raise

    def exec_rx(self, *cmd: str) -> list[str]:
        """``cmd`` prefixed to run inside the capture namespace."""
        return ["ip", "netns", "exec", self.rx_ns, *cmd]

    def exec_tx(self, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", self.tx_ns, *cmd]

    def rx_counter(self, name: str) -> int:
        """A /sys statistics counter of the capture interface (``tx_packets``, ``rx_dropped`` …)."""
        p = _run(*self.exec_rx("cat", f"/sys/class/net/{self.rx_if}/statistics/{name}"))
        return int(p.stdout)

    def replay(self, pcap: str | Path, *args: str, timeout: float = 120) -> dict[str, int]:
        """tcpreplay ``pcap`` into the sender end; returns its ``Actual`` packet/byte counts."""
        pin = ["taskset", "-c", str(self.sender_cpu)] if self.sender_cpu is not None else []
        if self.sender_nice:
            pin = ["nice", "-n", str(self.sender_nice), *pin]
        p = subprocess.run(self.exec_tx(*pin, "tcpreplay", "-i", self.tx_if, *args, str(pcap)),
                           capture_output=True, text=True, timeout=timeout, check=True)
        out: dict[str, int] = {}
        for line in p.stdout.splitlines():
            line = line.strip()
            if line.startswith("Actual:"):
                parts = line.split()
                out["packets"] = int(parts[1])
                out["bytes"] = int(parts[3].lstrip("("))
                out["seconds"] = float(parts[7])
            elif line.startswith("Failed packets:"):
                out["failed"] = int(line.split()[-1])
        return out

    def close(self) -> None:
        for ns in (self.tx_ns, self.rx_ns):
            _run("ip", "netns", "del", ns, check=False)

    def __enter__(self) -> VethPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
