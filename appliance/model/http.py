"""HTTP/1.x transactions and the events the HTTP parser emits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from appliance.model.streams import Direction

if TYPE_CHECKING:
    from appliance.model.flows import Flow

Headers = list[tuple[bytes, bytes]]
"""Ordered header fields as they appeared on the wire (name case preserved)."""


class HttpTransaction:
    """One request/response pair on a flow. The parser fills it in as the messages arrive.

    ``tx_id`` counts transactions per flow from 0 (Suricata's ``tx_id``). Header values are
    bytes; helpers return the first value of a field case-insensitively.
    """

    __slots__ = (
        "anomalies",
        "flow_uid",
        "method",
        "reason",
        "request_body_len",
        "request_headers",
        "request_version",
        "response_body_len",
        "response_headers",
        "response_version",
        "status",
        "ts_ns",
        "tx_id",
        "uri",
    )

    def __init__(self, flow_uid: str, tx_id: int, ts_ns: int) -> None:
        self.flow_uid = flow_uid
        self.tx_id = tx_id
        self.ts_ns = ts_ns
        self.method = b""
        self.uri = b""
        self.request_version = b""
        self.request_headers: Headers = []
        self.status = 0
        self.reason = b""
        self.response_version = b""
        self.response_headers: Headers = []
        self.anomalies: list[str] = []
        self.request_body_len = 0
        self.response_body_len = 0

    @staticmethod
    def _get(headers: Headers, name: bytes) -> bytes | None:
        name = name.lower()
        for k, v in headers:
            if k.lower() == name:
                return v
        return None

    def request_header(self, name: bytes) -> bytes | None:
        """First value of request header ``name`` (case-insensitive), or None."""
        return self._get(self.request_headers, name)

    def response_header(self, name: bytes) -> bytes | None:
        """First value of response header ``name`` (case-insensitive), or None."""
        return self._get(self.response_headers, name)

    @property
    def host(self) -> str:
        h = self.request_header(b"host")
        return h.decode("latin-1").strip() if h else ""

    @property
    def user_agent(self) -> str:
        h = self.request_header(b"user-agent")
        return h.decode("latin-1") if h else ""

    def __repr__(self) -> str:
        return f"HttpTransaction({self.flow_uid}#{self.tx_id} {self.method!r} {self.uri!r} -> {self.status})"


@dataclass(slots=True)
class HttpTxStart:
    """Headers of the request (TO_SERVER) or response (TO_CLIENT) of ``tx`` are complete."""

    flow: Flow
    tx: HttpTransaction
    direction: Direction
    ts_ns: int


@dataclass(slots=True)
class HttpBodyData:
    """Message-body bytes after transfer decoding (de-chunked), still content-encoded."""

    flow: Flow
    tx: HttpTransaction
    direction: Direction
    data: bytes
    ts_ns: int


@dataclass(slots=True)
class HttpBodyGap:
    """``length`` body bytes lost in a stream gap (``length`` may be an estimate)."""

    flow: Flow
    tx: HttpTransaction
    direction: Direction
    length: int
    ts_ns: int


@dataclass(slots=True)
class HttpBodyEnd:
    """The end of a message body. ``complete`` is False when framing was cut short."""

    flow: Flow
    tx: HttpTransaction
    direction: Direction
    ts_ns: int
    complete: bool = True
    reason: str = ""


HttpEvent = HttpTxStart | HttpBodyData | HttpBodyGap | HttpBodyEnd
