"""Factories for policy tests: objects, findings, small policies."""

from __future__ import annotations

import textwrap
from typing import Any

from appliance.model import ContentObject, Direction, Evidence, Finding, FlowRef
from policies.schema import Policy, load_policy


def flow_ref(src: str = "10.20.1.5", dst: str = "192.0.2.80", *, vlan: int = 0, iface: str = "eth1",
             sport: int = 40000, dport: int = 80) -> FlowRef:
    return FlowRef("Cabc", 1, src, sport, dst, dport, "TCP", vlan, iface)


def obj(direction: Direction = Direction.TO_SERVER, source: str = "http", *, id: str = "F000001",
        host: str = "upload.example.net", flow: FlowRef | None = None, **kw: Any) -> ContentObject:
    return ContentObject(id=id, source=source, direction=direction, flow=flow or flow_ref(), ts_ns=0,
                         size=100, md5="", sha256="", host=host, **kw)


def finding(rule: str, score: float = 1.0, inspector: str = "keyword", *, content_id: str = "F000001",
            evidence: int = 0, at: int = 0, **detail: str) -> Finding:
    """A finding; ``evidence`` items start at offset ``at`` (findings at different offsets are
    different facts; equal findings count once)."""
    ev = tuple(Evidence(at + i, at + i + 1, "x") for i in range(evidence))
    return Finding(inspector, content_id, rule, score, ev, dict(detail))


def policy(text: str, **kw: Any) -> Policy:
    """Load a policy from dedented YAML text (the text must contain a newline)."""
    return load_policy(textwrap.dedent(text).lstrip("\n") + "\n", **kw)
