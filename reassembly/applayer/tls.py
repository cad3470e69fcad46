"""TLS: recognised (a handshake record from either side) and not looked into."""

from __future__ import annotations

from appliance.model import Flow
from reassembly.applayer.base import AppProtocol, ignore


def probe(client: bytes, server: bytes, flow: Flow) -> bool:
    return client[:1] == b"\x16" or server[:1] == b"\x16"


TLS = AppProtocol("tls", ignore, probe=probe, ports=frozenset({443, 465, 636, 853, 993, 995, 8443}))
