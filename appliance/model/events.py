"""Application-layer metadata records (EVE ``tls``, ``dns``, ``smtp``… events)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from appliance.model.content import FlowRef


@dataclass(slots=True, frozen=True)
class AppEvent:
    """One protocol metadata record a parser reported (``ctx.emit_event``).

    ``event_type`` is the EVE event type (``tls``, ``dns``…) and ``fields`` its body; the
    writer adds the flow's addresses from ``flow`` and the time from ``ts_ns`` (packet time).
    """

    ts_ns: int
    flow: FlowRef
    event_type: str
    fields: Mapping[str, object]
