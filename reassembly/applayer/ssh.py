"""SSH: recognised by its version banner and not looked into."""

from __future__ import annotations

from appliance.model import Flow
from reassembly.applayer.base import AppProtocol, ignore


def probe(client: bytes, server: bytes, flow: Flow) -> bool:
    return server.startswith(b"SSH-") or client.startswith(b"SSH-")


SSH = AppProtocol("ssh", ignore, probe=probe, ports=frozenset({22, 2222}))
