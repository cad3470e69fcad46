"""A WebSocket client and server (``wsproto``) talking in memory, from the HTTP/1 upgrade on.

``chunks`` records (direction, bytes) in the order they were sent: the upgrade request, the
101, then frames (client frames masked, permessage-deflate as negotiated).
"""

from __future__ import annotations

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Message, Ping, Request
from wsproto.extensions import PerMessageDeflate

from appliance.model import Direction

C, S = Direction.TO_SERVER, Direction.TO_CLIENT


class WsTalk:
    def __init__(self, *, deflate: dict[str, object] | None = None, host: str = "chat.example.org",
                 target: str = "/socket?room=7") -> None:
        self.c = WSConnection(ConnectionType.CLIENT)
        self.s = WSConnection(ConnectionType.SERVER)
        self.chunks: list[tuple[Direction, bytes]] = []
        exts = [PerMessageDeflate(**deflate)] if deflate is not None else []  # type: ignore[arg-type]
        self._out(C, self.c.send(Request(host=host, target=target, extensions=exts)))
        for ev in self.s.events():
            if isinstance(ev, Request):
                server_ext = [PerMessageDeflate()] if deflate is not None else []
                self._out(S, self.s.send(AcceptConnection(extensions=server_ext)))
        list(self.c.events())

    def _out(self, d: Direction, data: bytes) -> None:
        if not data:
            return
        self.chunks.append((d, data))
        (self.s if d == C else self.c).receive_data(data)

    def send(self, d: Direction, data: str | bytes, *, finished: bool = True) -> None:
        """A message (or a fragment of one, ``finished=False``) from side ``d``."""
        conn = self.c if d == C else self.s
        self._out(d, conn.send(Message(data=data, message_finished=finished)))
        list((self.s if d == C else self.c).events())

    def ping(self, d: Direction) -> None:
        conn = self.c if d == C else self.s
        self._out(d, conn.send(Ping(b"are you there")))
        list((self.s if d == C else self.c).events())
