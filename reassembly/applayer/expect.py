"""Expected connections: a control flow announces an endpoint, a later flow to it is the data.

FTP (PORT/EPRT, 227/229 replies) and IRC DCC SEND register the endpoint that will *listen*;
the application layer consults this table for every new TCP flow before probing its content.
A context is any object with ``protocol`` (the name of the table entry that parses the expected
connection, e.g. ``ftp-data``) and ``data_uid`` (set to the matching flow's uid). Entries expire
on packet time and the table is capped.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from appliance.model import Flow

DEFAULT_TTL_NS = 120 * 1_000_000_000
DEFAULT_CAP = 4096


class Expectations:
    """Expected connections: (ip bytes, port) of the listening endpoint → context."""

    def __init__(self, *, ttl_ns: int = DEFAULT_TTL_NS, cap: int = DEFAULT_CAP) -> None:
        self.ttl_ns = ttl_ns
        self.cap = cap
        self._table: OrderedDict[tuple[bytes, int], tuple[Any, int]] = OrderedDict()
        self.evicted = 0
        self.matched = 0

    def __len__(self) -> int:
        return len(self._table)

    def expect(self, ip: bytes, port: int, ctx: Any, now_ns: int) -> None:
        """Register a connection to ``ip``:``port`` for ``ctx`` until ``now_ns`` + ttl."""
        if not (0 < port < 65536) or len(ip) not in (4, 16):
            return
        key = (ip, port)
        self._table.pop(key, None)
        self._table[key] = (ctx, now_ns + self.ttl_ns)
        while len(self._table) > self.cap:
            self._table.popitem(last=False)
            self.evicted += 1

    def expire(self, now_ns: int) -> None:
        """Drop entries whose time is up."""
        for key in [k for k, (_, exp) in self._table.items() if exp < now_ns]:
            del self._table[key]

    def match(self, flow: Flow) -> Any:
        """The context for new flow ``flow`` (server endpoint first, then client), or None.

        A context is used once: every endpoint registered for it is forgotten.
        """
        if not self._table:
            return None
        now = flow.first_ts_ns
        for key in ((flow.server_ip, flow.server_port), (flow.client_ip, flow.client_port)):
            hit = self._table.get(key)
            if hit is None:
                continue
            ctx, exp = hit
            if exp < now:
                del self._table[key]
                continue
            for k in [k for k, (c, _) in self._table.items() if c is ctx]:
                del self._table[k]
            ctx.data_uid = flow.uid
            self.matched += 1
            return ctx
        return None
