"""Real clients and servers in two network namespaces, with a capture of what passed between them.

`Peers` makes namespaces ``<stem>c`` (client, 10.98.<k>.1) and ``<stem>s`` (server,
10.98.<k>.2) joined by a veth pair; `capture` runs tcpdump on the client's end while the test
makes its peers talk. Nothing is routed outside the two namespaces. Needs root, ``ip`` and
``tcpdump`` (`unavailable` says why not).
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
_seq = itertools.count()


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=30)


def unavailable() -> str | None:
    """Why real peers cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "real-peer captures need root (network namespaces)"
    for tool in ("ip", "tcpdump"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/setup.sh test installs it)"
    probe = f"tspp{os.getpid()}"
    p = _run("ip", "netns", "add", probe, check=False)
    if p.returncode != 0:
        return f"cannot create a network namespace: {p.stderr.strip()}"
    _run("ip", "netns", "del", probe, check=False)
    return None


class Peers:
    """Client and server namespaces; ``client_ip`` / ``server_ip`` are their addresses."""

    def __init__(self) -> None:
        k = next(_seq) % 250 + 1
        stem = f"tp{os.getpid() % 100000}x{k}"
        self.cns, self.sns = f"{stem}c", f"{stem}s"
        self.client_ip, self.server_ip = f"10.98.{k}.1", f"10.98.{k}.2"
        self._procs: list[subprocess.Popen[bytes]] = []
        _run("ip", "netns", "add", self.cns)
        try:
            _run("ip", "netns", "add", self.sns)
            for ns in (self.cns, self.sns):
                _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
                _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
            _run("ip", "link", "add", "pc0", "netns", self.cns, "type", "veth", "peer", "name", "ps0",
                 "netns", self.sns)
            for ns, ifc, ip in ((self.cns, "pc0", self.client_ip), (self.sns, "ps0", self.server_ip)):
                _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", ifc)
                _run("ip", "-n", ns, "link", "set", ifc, "up")
                _run("ip", "-n", ns, "link", "set", "lo", "up")
                # no offloads: the capture shows wire-sized segments with real checksums
                _run("ip", "netns", "exec", ns, "ethtool", "-K", ifc, "tso", "off", "gso", "off", "gro", "off",
                     "tx", "off", "rx", "off", check=False)
        except BaseException:
            self.close()
            raise

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        return env

    def server(self, *cmd: str) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in the server namespace (stopped by `close`)."""
        p = subprocess.Popen(["ip", "netns", "exec", self.sns, *cmd], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=self._env(), cwd=ROOT)
        self._procs.append(p)
        return p

    def client(self, *cmd: str, timeout: float = 60, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run ``cmd`` in the client namespace to its end."""
        return subprocess.run(["ip", "netns", "exec", self.cns, *cmd], capture_output=True, timeout=timeout,
                              env=self._env(), cwd=ROOT, input=input)

    def wait_port(self, port: int, *, udp: bool = False, timeout: float = 15) -> None:
        """Until the server namespace listens on ``port``."""
        flag = "-lnu" if udp else "-lnt"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = _run("ip", "netns", "exec", self.sns, "ss", "-H", flag, check=False).stdout
            if any(line.split()[3].endswith(f":{port}") for line in out.splitlines() if len(line.split()) > 3):
                return
            for p in self._procs:
                if p.poll() is not None:
                    err = p.stderr.read().decode(errors="replace") if p.stderr else ""
                    raise RuntimeError(f"server exited ({p.returncode}): {err[-2000:]}")
            time.sleep(0.05)
        raise TimeoutError(f"nothing listens on port {port}")

    @contextmanager
    def capture(self, pcap: Path) -> Iterator[Path]:
        """tcpdump on the client's end into ``pcap`` while the block runs."""
        p = subprocess.Popen(["ip", "netns", "exec", self.cns, "tcpdump", "-i", "pc0", "-U", "--immediate-mode",
                              "-s", "0", "-n", "-Z", "root", "-w", str(pcap), "ip"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert p.stderr is not None
            line = p.stderr.readline()  # "listening on pc0 …": the capture runs
            if b"listening" not in line:
                raise RuntimeError(f"tcpdump did not start: {line!r}")
            yield pcap
            time.sleep(0.3)  # the last segments (FIN/ACK) reach the capture
        finally:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def close(self) -> None:
        for p in self._procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for ns in (self.cns, self.sns):
            _run("ip", "netns", "del", ns, check=False)

    def __enter__(self) -> Peers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def free_port() -> int:
    """A port number (inside a fresh namespace every port is free; this only varies them)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
