"""Capture-interface hygiene: offload and MTU checks at start, and ``tapsift iface prepare``.

A capture port should hand the sensor frames as they were on the wire. Receive offloads that
merge segments (GRO, LRO, hardware GRO) make the kernel deliver 64 KB "super-frames" whose
TCP checksums no longer verify; tapsift still reassembles them (the ring blocks hold them
whole), but timestamps and packet counts then describe merged frames, not the wire. Segmentation
and checksum offloads (TSO/GSO/tx-checksumming) only matter for traffic the host sends, which a
capture port should never carry; a capture port also needs no address, ARP or IPv6 (or the
kernel transmits neighbour and router solicitations on it).

Offloads are read and set with ``ethtool``; MTU through ``SIOCGIFMTU`` (namespace-safe); the
IPv6 switch through ``/proc/sys/net/ipv6/conf/IFACE`` of the current network namespace.
"""

from __future__ import annotations

import fcntl
import shutil
import socket
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["InterfaceReport", "check_interface", "prepare_interface", "read_offloads"]

MERGING = ("generic-receive-offload", "large-receive-offload", "rx-gro-hw", "rx-gro-list")
"""Receive offloads that merge frames before the capture tap (warned about, turned off by prepare)."""
SENDING = ("tcp-segmentation-offload", "generic-segmentation-offload", "tx-checksumming")
"""Transmit offloads: irrelevant on a receive-only port, turned off by prepare for a clean state."""
SHORT = {"generic-receive-offload": "gro", "large-receive-offload": "lro", "rx-gro-hw": "rx-gro-hw",
         "rx-gro-list": "rx-gro-list", "tcp-segmentation-offload": "tso",
         "generic-segmentation-offload": "gso", "tx-checksumming": "tx", "rx-checksumming": "rx"}
MIN_MTU = 1500


@dataclass
class InterfaceReport:
    """What `check_interface` found: settings and human-readable warnings."""

    iface: str
    mtu: int = 0
    offloads: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    """Feature → (on, fixed)."""
    ipv6_enabled: bool | None = None
    warnings: list[str] = field(default_factory=list)


def _mtu(iface: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        res = fcntl.ioctl(s, 0x8921, struct.pack("16s16x", iface.encode()))  # SIOCGIFMTU
    return int(struct.unpack_from("i", res, 16)[0])


def _ethtool() -> str | None:
    return shutil.which("ethtool") or next(
        (p for p in ("/usr/sbin/ethtool", "/sbin/ethtool") if Path(p).exists()), None)


def read_offloads(iface: str) -> dict[str, tuple[bool, bool]] | None:
    """``ethtool -k`` as feature → (on, fixed); None when ethtool is missing or fails."""
    tool = _ethtool()
    if tool is None:
        return None
    p = subprocess.run([tool, "-k", iface], capture_output=True, text=True, check=False, timeout=10)
    if p.returncode != 0:
        return None
    out: dict[str, tuple[bool, bool]] = {}
    for line in p.stdout.splitlines():
        if ":" not in line or line.startswith("Features"):
            continue
        name, _, val = line.strip().partition(":")
        val = val.strip()
        out[name.strip()] = (val.startswith("on"), "[fixed]" in val)
    return out


def _ipv6_enabled(iface: str) -> bool | None:
    try:
        return Path(f"/proc/sys/net/ipv6/conf/{iface}/disable_ipv6").read_text().strip() == "0"
    except OSError:
        return None


def check_interface(iface: str) -> InterfaceReport:
    """Inspect ``iface`` and list what a capture port should not have (never changes anything)."""
    rep = InterfaceReport(iface)
    try:
        rep.mtu = _mtu(iface)
    except OSError:
        rep.warnings.append(f"{iface}: no such interface")
        return rep
    if rep.mtu < MIN_MTU:
        rep.warnings.append(f"{iface}: MTU {rep.mtu} < {MIN_MTU}: some NICs drop larger mirrored frames "
                            f"(set it to the largest frame the mirror carries, e.g. 9000 for jumbo frames)")
    offl = read_offloads(iface)
    if offl is None:
        rep.warnings.append(f"{iface}: cannot read offloads (is ethtool installed?)")
    else:
        rep.offloads = offl
        merging = [SHORT[f] for f in MERGING if offl.get(f, (False, False))[0]]
        if merging:
            rep.warnings.append(
                f"{iface}: receive offloads {', '.join(merging)} are on: the kernel merges segments before "
                f"capture (handled, but checksums and packet counts then describe merged frames); "
                f"run `tapsift iface prepare {iface}`")
        sending = [SHORT[f] for f in SENDING if offl.get(f, (False, False))[0] and not offl[f][1]]
        if sending:
            rep.warnings.append(f"{iface}: transmit offloads {', '.join(sending)} are on (harmless on a "
                                f"receive-only port; `tapsift iface prepare` turns them off)")
    rep.ipv6_enabled = _ipv6_enabled(iface)
    if rep.ipv6_enabled:
        rep.warnings.append(f"{iface}: IPv6 is enabled: the kernel may send router/neighbour solicitations "
                            f"on the capture port (`tapsift iface prepare` disables it)")
    return rep


def prepare_interface(iface: str, *, mtu: int | None = None, dry_run: bool = False) -> list[tuple[str, bool, str]]:
    """Make ``iface`` a clean capture port; returns ``(step, ok, message)`` per step.

    Turns off merging and transmit offloads (each feature separately: fixed ones are skipped),
    raises the NIC receive ring to its maximum, disables IPv6 and ARP, optionally sets the MTU,
    and brings the link up in promiscuous mode. Needs root (CAP_NET_ADMIN).
    """
    steps: list[tuple[str, list[str] | None]] = []
    tool = _ethtool()
    offl = read_offloads(iface) or {}
    for feat in (*MERGING, *SENDING):
        on, fixed = offl.get(feat, (False, False))
        if on and not fixed and tool:
            steps.append((f"ethtool -K {iface} {SHORT[feat]} off", [tool, "-K", iface, SHORT[feat], "off"]))
    if tool:
        g = subprocess.run([tool, "-g", iface], capture_output=True, text=True, check=False, timeout=10)
        if g.returncode == 0:
            maxima = g.stdout.split("Current hardware settings:")[0]
            for line in maxima.splitlines():
                if line.strip().startswith("RX:") and line.split()[-1].isdigit():
                    rx = line.split()[-1]
                    steps.append((f"ethtool -G {iface} rx {rx}", [tool, "-G", iface, "rx", rx]))
                    break
    steps.append((f"sysctl net.ipv6.conf.{iface}.disable_ipv6=1", None))
    if mtu:
        steps.append((f"ip link set {iface} mtu {mtu}", ["ip", "link", "set", iface, "mtu", str(mtu)]))
    steps.append((f"ip link set {iface} arp off promisc on up",
                  ["ip", "link", "set", iface, "arp", "off", "promisc", "on", "up"]))
    results: list[tuple[str, bool, str]] = []
    for text, cmd in steps:
        if dry_run:
            results.append((text, True, "dry run"))
            continue
        if cmd is None:
            try:
                Path(f"/proc/sys/net/ipv6/conf/{iface}/disable_ipv6").write_text("1\n")
                results.append((text, True, ""))
            except OSError as exc:
                results.append((text, False, exc.strerror or str(exc)))
            continue
        p = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
        msg = (p.stderr or p.stdout).strip().splitlines()
        results.append((text, p.returncode == 0, msg[-1] if msg else ""))
    return results
