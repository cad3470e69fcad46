"""An HTTP/2 client and server (the ``h2`` library) talking in memory; what each sent, in order.

The tests feed the recorded bytes to the passive parser as stream events: real frames and
real HPACK from a kept implementation, with the options a test needs (padding, PRIORITY,
header-table-size changes, huge header blocks split into CONTINUATION, RST_STREAM, GOAWAY,
server push).
"""

from __future__ import annotations

from collections.abc import Sequence

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import DataReceived

from appliance.model import Direction

C, S = Direction.TO_SERVER, Direction.TO_CLIENT


class H2Talk:
    """Both ends; ``chunks`` holds (direction, bytes) in the order they were sent."""

    def __init__(self, *, authority: str = "files.example.org", preface: bool = True) -> None:
        self.c = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.s = H2Connection(H2Configuration(client_side=False, header_encoding=None))
        self.authority = authority
        self.chunks: list[tuple[Direction, bytes]] = []
        self.c.initiate_connection()
        self.s.initiate_connection()
        self.pump()
        if not preface:  # as if the capture started after the preface: drop the client's first bytes
            first = next(i for i, (d, _) in enumerate(self.chunks) if d == C)
            del self.chunks[first]

    def pump(self) -> None:
        """Deliver what either side has to send until both are quiet (acknowledging DATA)."""
        while True:
            moved = False
            for src, dst, d in ((self.c, self.s, C), (self.s, self.c, S)):
                data = src.data_to_send()
                if not data:
                    continue
                moved = True
                self.chunks.append((d, data))
                for ev in dst.receive_data(data):
                    if isinstance(ev, DataReceived) and ev.flow_controlled_length:
                        dst.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if not moved:
                return

    def _send_body(self, conn: H2Connection, sid: int, body: bytes, pad: int | None, frame: int) -> None:
        pos = 0
        while pos < len(body):
            room = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size, frame)
            room -= (pad + 1) if pad else 0
            if room <= 0:
                self.pump()
                continue
            piece = body[pos:pos + room]
            pos += len(piece)
            conn.send_data(sid, piece, end_stream=pos >= len(body), pad_length=pad)
            self.pump()

    def request(self, method: str, path: str, *, headers: Sequence[tuple[str, str]] = (), body: bytes = b"",
                pad: int | None = None, frame: int = 16384) -> int:
        sid = self.c.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "http"), (":authority", self.authority), (":path", path),
                *headers]
        if body:
            hdrs.append(("content-length", str(len(body))))
        self.c.send_headers(sid, [(k.encode(), v.encode()) for k, v in hdrs], end_stream=not body)
        self.pump()
        if body:
            self._send_body(self.c, sid, body, pad, frame)
        return sid

    def respond(self, sid: int, status: int, body: bytes = b"", *, headers: Sequence[tuple[str, str]] = (),
                pad: int | None = None, frame: int = 16384, length: bool = True) -> None:
        hdrs = [(":status", str(status)), *headers]
        if body and length:
            hdrs.append(("content-length", str(len(body))))
        self.s.send_headers(sid, [(k.encode(), v.encode()) for k, v in hdrs], end_stream=not body)
        self.pump()
        if body:
            self._send_body(self.s, sid, body, pad, frame)

    def client_bytes(self) -> bytes:
        return b"".join(b for d, b in self.chunks if d == C)

    def server_bytes(self) -> bytes:
        return b"".join(b for d, b in self.chunks if d == S)
