"""Flows: a canonical 5-tuple key and the per-connection record the flow table keeps."""

from __future__ import annotations

from enum import IntEnum
from typing import Any, NamedTuple


class FlowKey(NamedTuple):
    """Direction-independent flow key: the lower (ip, port) endpoint first, plus VLAN."""

    ip_a: bytes
    port_a: int
    ip_b: bytes
    port_b: int
    proto: int
    vlan: int

    @classmethod
    def of(cls, src: bytes, sport: int, dst: bytes, dport: int, proto: int, vlan: int = 0) -> FlowKey:
        if (src, sport) <= (dst, dport):
            return cls(src, sport, dst, dport, proto, vlan)
        return cls(dst, dport, src, sport, proto, vlan)


class FlowState(IntEnum):
    """Coarse TCP connection state as seen from the tap."""

    NEW = 0
    SYN_SENT = 1
    SYN_RECEIVED = 2
    ESTABLISHED = 3
    CLOSING = 4
    CLOSED = 5


class Flow:
    """One connection (TCP) or conversation (UDP) and its counters.

    ``client``/``server`` are the (ip, port) endpoints: the side that sent the SYN is the
    client; for sessions picked up mid-stream the reassembler guesses (lower port = server)
    and records ``midstream``. Mutable: the flow table owns it; other stages read it.
    """

    __slots__ = (
        "anomalies",
        "app_proto",
        "bytes",
        "client_ip",
        "client_port",
        "dst_zone",
        "ext",
        "first_ts_ns",
        "flow_id",
        "iface",
        "key",
        "last_ts_ns",
        "midstream",
        "pkts",
        "proto",
        "server_ip",
        "server_port",
        "src_zone",
        "state",
        "uid",
        "vlan",
    )

    def __init__(self, uid: str, flow_id: int, key: FlowKey, client_ip: bytes, client_port: int,
                 server_ip: bytes, server_port: int, iface: str, ts_ns: int) -> None:
        self.uid = uid
        """Zeek-style unique id (``C`` + base62)."""
        self.flow_id = flow_id
        """Suricata-style numeric flow id (positive 51-bit integer)."""
        self.key = key
        self.client_ip = client_ip
        self.client_port = client_port
        self.server_ip = server_ip
        self.server_port = server_port
        self.proto = key.proto
        self.vlan = key.vlan
        self.iface = iface
        self.first_ts_ns = ts_ns
        self.last_ts_ns = ts_ns
        self.pkts = [0, 0]
        """Packets per `Direction`."""
        self.bytes = [0, 0]
        """Payload bytes per `Direction`."""
        self.state = FlowState.NEW
        self.midstream = False
        self.app_proto = ""
        self.src_zone = "any"
        self.dst_zone = "any"
        self.anomalies: list[str] = []
        self.ext: dict[str, Any] = {}
        """Per-stage state keyed by stage name (e.g. the HTTP parser of this flow)."""

    def __repr__(self) -> str:
        c = f"{self.client_ip.hex()}:{self.client_port}"
        return f"Flow({self.uid} {c}>{self.server_ip.hex()}:{self.server_port})"
