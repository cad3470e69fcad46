"""The kernel: the types that flow between tapsift's stages.

Nothing here imports any other tapsift package. Per-packet types (`Frame`, `Packet`) are
tuples or slotted classes built with positional arguments, because one Python object per
packet is already most of the per-packet budget; per-object types (`ContentObject`,
`Finding`, `Alert`) are frozen, slotted dataclasses.

Wire data stays ``bytes`` until an extractor makes text; times are packet times in
nanoseconds since the epoch; incompleteness is data (``missing_bytes``, ``truncated``,
anomaly codes), never an exception.
"""

from appliance.model.alerts import Alert, Evidence, Finding, Severity
from appliance.model.content import ContentObject, FlowRef, Link, Truncation
from appliance.model.events import AppEvent
from appliance.model.flows import Flow, FlowKey, FlowState
from appliance.model.http import (
    HttpBodyData,
    HttpBodyEnd,
    HttpBodyGap,
    HttpEvent,
    HttpTransaction,
    HttpTxStart,
)
from appliance.model.inspection import InspectorConfig, KeywordSpec, ListSpec, ProximitySpec
from appliance.model.packets import EMPTY, Frame, LinkType, Packet, TcpFlags
from appliance.model.streams import Direction, StreamClosed, StreamData, StreamEvent, StreamGap

__all__ = [
    "EMPTY",
    "Alert",
    "AppEvent",
    "ContentObject",
    "Direction",
    "Evidence",
    "Finding",
    "Flow",
    "FlowKey",
    "FlowRef",
    "FlowState",
    "Frame",
    "HttpBodyData",
    "HttpBodyEnd",
    "HttpBodyGap",
    "HttpEvent",
    "HttpTransaction",
    "HttpTxStart",
    "InspectorConfig",
    "KeywordSpec",
    "Link",
    "ListSpec",
    "ProximitySpec",
    "LinkType",
    "Packet",
    "Severity",
    "StreamClosed",
    "StreamData",
    "StreamEvent",
    "StreamGap",
    "TcpFlags",
    "Truncation",
]
