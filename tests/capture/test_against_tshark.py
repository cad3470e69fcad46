"""Wireshark as an independent oracle: on every generated golden capture (link types, VLAN,
QinQ, ERSPAN II/III, VXLAN from its port to another, Geneve, NFLOG, SLL, raw IP, IPv6, pcapng,
unfinished checksums), our decoder finds the same innermost
TCP/UDP endpoints and payload lengths that tshark's dissectors do (read through pyshark)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from capture.decode import Decoder
from capture.pcapfile import open_capture
from tests.pcaps.cases import CASES, generate

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")

NAMES = ["plain_get", "vlan_get", "qinq_get", "erspan2_get", "erspan3_get", "vxlan_get", "vxlan_src_port_get",
         "geneve_get", "nflog_get", "offload_get", "sll_get", "rawip_get", "pcapng_get", "ipv6_get", "noise_mixed",
         "ooo_retransmit"]


def _tshark_view(pcap: Path) -> list[tuple[str, str, int, int, int]]:
    import pyshark

    out = []
    cap = pyshark.FileCapture(str(pcap), keep_packets=False,
                              custom_parameters=["-o", "tcp.desegment_tcp_streams:FALSE"])
    try:
        for pkt in cap:
            ip_layers = [layer for layer in pkt.layers if layer.layer_name in ("ip", "ipv6")]
            if not ip_layers:
                continue
            ip = ip_layers[-1]  # the innermost IP header, after any tunnel
            src, dst = ip.src, ip.dst
            inner = [layer for layer in pkt.layers if layer.layer_name in ("tcp", "udp")]
            if not inner:
                continue
            t = inner[-1]  # the innermost transport (a VXLAN carrier's UDP comes first)
            if t.layer_name == "tcp":
                out.append((src, dst, int(t.srcport), int(t.dstport), int(t.len)))
            else:
                out.append((src, dst, int(t.srcport), int(t.dstport), int(t.length) - 8))
    finally:
        cap.close()
        # pyshark installs its own asyncio child watcher (SafeChildWatcher) on the global policy;
        # put a fresh default policy back so later tests in this worker (Playwright) can start
        # subprocesses
        import asyncio

        asyncio.set_event_loop_policy(None)
    return out


def _our_view(pcap: Path) -> list[tuple[str, str, int, int, int]]:
    import ipaddress

    d = Decoder()
    out = []
    with open_capture(pcap) as cap:
        for frame in cap.frames():
            p = d.decode(frame)
            if p is None or p.proto not in (6, 17):
                continue
            out.append((str(ipaddress.ip_address(p.src)), str(ipaddress.ip_address(p.dst)), p.sport, p.dport,
                        len(p.payload)))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if n in CASES])
def test_decoder_agrees_with_tshark(name: str, tmp_path: Path) -> None:
    case = generate(name, tmp_path)
    ours = _our_view(case.pcap)
    theirs = _tshark_view(case.pcap)
    assert len(ours) > 5
    assert ours == theirs
