"""The flow table: canonical `FlowKey` → `Flow`, deterministic ids, idle expiry and a hard cap.

The table never looks at packets on the hot path: stages update ``flow.last_ts_ns`` and
``flow.state`` themselves, and the table reads them lazily when it expires or evicts flows.

Expiry uses a one-second timer wheel with lazy rescheduling: every flow sits in the bucket of a
deadline that is never later than its real one (``last_ts_ns`` + the timeout of its state); when a
bucket comes due, flows that were active since are moved to the bucket of their new deadline.
So activity costs nothing, and expiry and eviction are O(1) amortised per flow.

Eviction (when a new flow would exceed ``max_flows``) picks, in this order: a flow whose state is
`FlowState.CLOSED` (oldest closed first), else the flow whose idle deadline comes first, which
is the least recently active flow among flows with the same timeout (half-open flows with their
short timeout go before established ones: a SYN flood evicts itself, not established sessions).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterator

from appliance.model.flows import Flow, FlowKey, FlowState
from appliance.model.streams import Direction

__all__ = ["WELL_KNOWN_SERVER_PORTS", "FlowTable", "guess_server_is_dst", "make_flow_id", "make_uid"]

_SEC = 1_000_000_000
_M64 = (1 << 64) - 1
_M51 = (1 << 51) - 1
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_B62_2 = [x + y for x in _B62 for y in _B62]
_LONG_STATES = frozenset({FlowState.ESTABLISHED, FlowState.CLOSING})

WELL_KNOWN_SERVER_PORTS = frozenset({
    1080, 1194, 1433, 1521, 1883, 2049, 2375, 2376, 3128, 3306, 3389, 5000, 5060, 5061, 5222,
    5432, 5601, 5672, 5900, 5984, 6379, 6443, 6667, 8000, 8008, 8080, 8081, 8088, 8443, 8888,
    9000, 9090, 9092, 9200, 9300, 9418, 11211, 27017,
})
"""Ports ≥ 1024 that are taken as the server side of a session picked up mid-stream."""


def guess_server_is_dst(sport: int, dport: int) -> bool:
    """Mid-stream server guess: a port < 1024 or a well-known server port wins, else the lower port.

    Returns True when the packet's destination is taken as the server (also on equal ports).
    """
    s_wk = sport < 1024 or sport in WELL_KNOWN_SERVER_PORTS
    d_wk = dport < 1024 or dport in WELL_KNOWN_SERVER_PORTS
    if s_wk != d_wk:
        return d_wk
    return dport <= sport


def _mix64(x: int) -> int:
    """splitmix64 finaliser: a bijection on 64-bit integers."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _M64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _M64
    return x ^ (x >> 31)


def make_uid(n: int) -> str:
    """``C`` + 11 base62 digits of a 64-bit bijective mix of ``n`` (distinct n → distinct uid)."""
    x = _mix64(n & _M64)
    x, a = divmod(x, 3844)
    x, b = divmod(x, 3844)
    x, c = divmod(x, 3844)
    x, d = divmod(x, 3844)
    x, e = divmod(x, 3844)
    t = _B62_2
    return "C" + t[a] + t[b] + t[c] + t[d] + t[e] + _B62[x % 62]


def make_flow_id(n: int) -> int:
    """A positive integer < 2**51, a bijective mix of ``n`` in [1, 2**51) (n = 0 maps to 0)."""
    x = n & _M51
    x = (x ^ (x >> 23)) * 0x5DEECE66D1 & _M51  # odd multiplier: a bijection mod 2**51
    x = (x ^ (x >> 19)) * 0x2545F4914F6CDD1D & _M51
    return x ^ (x >> 25)


class FlowTable:
    """Canonical flow lookup with deterministic ids, idle expiry on packet time and a capacity cap.

    ``seed`` separates the id spaces of parallel workers (ids stay unique across workers with
    distinct seeds < 2048). ``on_evict(flow, ts_ns)`` is called just before a flow is evicted to
    make room (the TCP reassembler emits the flow's ``StreamClosed(reason="evicted")`` there).
    Iteration yields flows in creation order.
    """

    __slots__ = (
        "_closed",
        "_cursor",
        "_due",
        "_flows",
        "_n",
        "_wheel",
        "closed_timeout_ns",
        "created",
        "established_timeout_ns",
        "evicted",
        "expired",
        "max_flows",
        "on_evict",
        "removed",
        "seed",
    )

    def __init__(
        self,
        max_flows: int = 1_000_000,
        *,
        established_timeout_ns: int = 300 * _SEC,
        closed_timeout_ns: int = 30 * _SEC,
        seed: int = 0,
        on_evict: Callable[[Flow, int], object] | None = None,
    ) -> None:
        self.max_flows = max(1, int(max_flows))
        self.established_timeout_ns = int(established_timeout_ns)
        """Idle timeout of ESTABLISHED and CLOSING flows."""
        self.closed_timeout_ns = int(closed_timeout_ns)
        """Idle timeout in any other state (new, half-open, closed; UDP flows stay NEW unless the
        caller marks them ESTABLISHED)."""
        self.on_evict = on_evict
        self.seed = seed & 0x7FF
        self._flows: dict[FlowKey, Flow] = {}
        self._due: dict[Flow, int] = {}
        self._wheel: dict[int, deque[Flow]] = {}
        self._cursor = 0
        self._closed: OrderedDict[Flow, None] = OrderedDict()
        self._n = 0
        self.created = 0
        self.expired = 0
        self.evicted = 0
        self.removed = 0

    # -- lookup ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._flows)

    def __iter__(self) -> Iterator[Flow]:
        return iter(list(self._flows.values()))

    def __contains__(self, flow: object) -> bool:
        return isinstance(flow, Flow) and self._flows.get(flow.key) is flow

    def get(self, key: FlowKey) -> Flow | None:
        """The live flow of ``key``, or None."""
        return self._flows.get(key)

    def lookup_or_create(
        self, src: bytes, sport: int, dst: bytes, dport: int, proto: int, vlan: int = 0,
        ts_ns: int = 0, iface: str = "", server_is_dst: bool | None = None,
    ) -> tuple[Flow, Direction, bool]:
        """The flow of a packet (created if new), the packet's direction, and whether it is new.

        For a new flow the server is ``dst`` if ``server_is_dst`` is true, ``src`` if it is
        false, and guessed by port (`guess_server_is_dst`) if it is None. Also updates
        ``last_ts_ns``, ``pkts`` (not ``bytes``: the caller knows its payload).
        """
        key = FlowKey.of(src, sport, dst, dport, proto, vlan)
        flow = self._flows.get(key)
        created = False
        if flow is None:
            if server_is_dst is None:
                server_is_dst = guess_server_is_dst(sport, dport)
            if server_is_dst:
                flow = self.create(key, src, sport, dst, dport, ts_ns, iface)
            else:
                flow = self.create(key, dst, dport, src, sport, ts_ns, iface)
            created = True
        d = (Direction.TO_SERVER if sport == flow.client_port and src == flow.client_ip
             else Direction.TO_CLIENT)
        flow.pkts[d] += 1
        if ts_ns > flow.last_ts_ns:
            flow.last_ts_ns = ts_ns
        return flow, d, created

    # -- life cycle -----------------------------------------------------------------------
    def create(self, key: FlowKey, client_ip: bytes, client_port: int, server_ip: bytes,
               server_port: int, ts_ns: int, iface: str = "") -> Flow:
        """Make and register a new flow for ``key`` (evicting one first if the table is full).

        An existing flow of the same key is replaced (removed without a callback): callers
        close it first (TCP port reuse).
        """
        old = self._flows.get(key)
        if old is not None:
            self.remove(old)
        while len(self._flows) >= self.max_flows:
            self._evict_one(ts_ns)
        self._n += 1
        n = (self.seed << 40) | self._n
        flow = Flow(make_uid(n), make_flow_id(n), key, client_ip, client_port, server_ip,
                    server_port, iface, ts_ns)
        self._flows[key] = flow
        self.created += 1
        self._schedule(flow, (ts_ns + self.closed_timeout_ns) // _SEC)
        return flow

    def remove(self, flow: Flow) -> bool:
        """Forget ``flow`` (no callback). False if it is not in the table."""
        if self._drop(flow):
            self.removed += 1
            return True
        return False

    def _drop(self, flow: Flow) -> bool:
        if self._flows.get(flow.key) is not flow:
            return False
        del self._flows[flow.key]
        self._due.pop(flow, None)
        self._closed.pop(flow, None)
        return True

    def mark_closed(self, flow: Flow) -> None:
        """Tell the table that ``flow`` reached CLOSED: it becomes the first eviction candidate and
        its expiry moves up to ``last_ts_ns + closed_timeout_ns``."""
        if self._flows.get(flow.key) is not flow:
            return
        self._closed[flow] = None
        b = (flow.last_ts_ns + self.closed_timeout_ns) // _SEC
        if b < self._due.get(flow, b + 1):
            self._schedule(flow, b)

    def deadline(self, flow: Flow) -> int:
        """Packet time at which ``flow`` expires if it stays idle."""
        t = self.established_timeout_ns if flow.state in _LONG_STATES else self.closed_timeout_ns
        return flow.last_ts_ns + t

    def expire(self, now_ns: int) -> list[Flow]:
        """Remove and return the flows idle past their timeout at packet time ``now_ns``
        (in deadline-bucket order, deterministic)."""
        out: list[Flow] = []
        wheel = self._wheel
        if not wheel:
            return out
        nowb = now_ns // _SEC
        if nowb < self._cursor:
            return out
        if nowb - self._cursor > len(wheel) + 64:
            buckets = sorted(b for b in wheel if b <= nowb)
        else:
            buckets = [b for b in range(self._cursor, nowb + 1) if b in wheel]
        due = self._due
        for b in buckets:
            q = wheel.pop(b)
            keep: dict[Flow, None] = {}
            for flow in q:
                if due.get(flow) != b:
                    continue  # stale entry (rescheduled or removed)
                dl = self.deadline(flow)
                if dl <= now_ns:
                    self._drop(flow)
                    self.expired += 1
                    out.append(flow)
                elif dl // _SEC == b:
                    keep[flow] = None
                else:
                    self._schedule(flow, dl // _SEC)
            if keep:
                wheel.setdefault(b, deque()).extend(keep)
        self._cursor = nowb
        return out

    def clear(self) -> list[Flow]:
        """Remove every flow; returns them in creation order."""
        flows = list(self._flows.values())
        self.removed += len(flows)
        self._flows.clear()
        self._due.clear()
        self._wheel.clear()
        self._closed.clear()
        return flows

    @property
    def counters(self) -> dict[str, int]:
        """Flow counters: active, created, expired, evicted, removed (other removals)."""
        return {"flows_active": len(self._flows), "flows_created": self.created,
                "flows_expired": self.expired, "flows_evicted": self.evicted,
                "flows_removed": self.removed}

    # -- internals ------------------------------------------------------------------------
    def _schedule(self, flow: Flow, b: int) -> None:
        self._due[flow] = b
        wheel = self._wheel
        if not wheel or b < self._cursor:
            self._cursor = b
        q = wheel.get(b)
        if q is None:
            q = wheel[b] = deque()
        q.append(flow)

    def _evict_one(self, ts_ns: int) -> None:
        victim = next(iter(self._closed)) if self._closed else self._earliest()
        if self.on_evict is not None:
            self.on_evict(victim, ts_ns)
        if self._drop(victim):
            self.evicted += 1

    def _earliest(self) -> Flow:
        """The flow with the earliest real deadline (lazily fixing stale schedule entries)."""
        wheel, due = self._wheel, self._due
        steps = 0
        while True:
            b = self._cursor
            q = wheel.get(b)
            if q is None:
                if not wheel:  # cannot happen while flows exist; stay total anyway
                    return next(iter(self._flows.values()))
                steps += 1
                if steps > 64 and wheel:
                    self._cursor = min(wheel)
                    steps = 0
                else:
                    self._cursor = b + 1
                continue
            while q:
                flow = q[0]
                if due.get(flow) != b:
                    q.popleft()
                    continue
                nb = self.deadline(flow) // _SEC
                if nb > b:
                    q.popleft()
                    self._due[flow] = nb
                    wheel.setdefault(nb, deque()).append(flow)
                    continue
                return flow
            del wheel[b]
