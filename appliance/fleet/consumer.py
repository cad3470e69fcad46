"""At-least-once consumption of streams through a consumer group.

`GroupConsumer.run` loops:

1. after (re)connecting, the entries this consumer already took and did not acknowledge (it was
   killed, or the bus went away between its commit and its acknowledgement) are handled first;
2. every ``claim_idle_s / 2``, entries other consumers have held unacknowledged for
   ``claim_idle_s`` (a consumer killed with ``-9``, a stuck one) are claimed and handled;
3. otherwise new entries are read, up to ``batch`` at a time, waiting up to ``block_s``.

A batch is acknowledged only after the handler returned, i.e. after its effect is durable. A
handler that cannot make it durable now (the store is down) raises `Retry`: the batch is kept and
handed again after a back-off (doubling from 0.2 s up to ``retry_max_s``), and nothing more is read
meanwhile, so memory stays bounded by one batch. Bus errors close the connection, wait the same
back-off and start again at step 1. Entries may thus be handled twice (a commit whose
acknowledgement was lost, a slow consumer whose entries were claimed): handlers are idempotent
(the store recognises an alert it already has by its id).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

from appliance.bus.base import Bus, BusError, Message

__all__ = ["Backoff", "GroupConsumer", "Retry"]

log = logging.getLogger("tapsift.consumer")


class Retry(Exception):
    """The handler's effect cannot be made durable now: keep the batch, try again later."""


class Backoff:
    """Doubling waits between ``low`` and ``high`` seconds."""

    def __init__(self, low: float, high: float) -> None:
        self.low, self.high = low, max(low, high)
        self.current = low
        self.failures = 0

    def next(self) -> float:
        wait = self.current
        self.current = min(self.high, self.current * 2)
        self.failures += 1
        return wait

    def reset(self) -> None:
        self.current = self.low
        self.failures = 0


class GroupConsumer:
    """Reads *streams* as *consumer* of *group* and hands batches to *handler* (module doc)."""

    def __init__(self, connect: Callable[[], Bus], streams: Sequence[str], group: str, consumer: str,
                 handler: Callable[[list[Message]], None], *, batch: int = 500, claim_idle_s: float = 60.0,
                 retry_max_s: float = 30.0, block_s: float = 1.0, name: str = "consumer",
                 housekeeping: Callable[[Bus], None] | None = None, housekeeping_s: float = 5.0) -> None:
        self.connect = connect
        self.streams = list(streams)
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.batch = batch
        self.claim_idle_s = claim_idle_s
        self.block_s = block_s
        self.name = name
        self.housekeeping = housekeeping
        self.housekeeping_s = housekeeping_s
        self.backoff = Backoff(0.2, retry_max_s)
        self.counters: Counter[str] = Counter()
        """``read``, ``own_pending``, ``claimed``, ``acked``, ``retries``, ``bus_errors``, ``handler_errors``."""
        self.bus: Bus | None = None
        self._own = True
        self._held: list[Message] = []
        self._next_claim = 0.0
        self._next_housekeeping = 0.0
        self.last_error = ""

    @property
    def held(self) -> int:
        """Entries taken and not yet acknowledged."""
        return len(self._held)

    def run(self, stop: threading.Event) -> None:
        """Consume until *stop* is set (then the batch in hand is left pending for whoever comes next)."""
        while not stop.is_set():
            wait = self.step()
            if wait:
                stop.wait(wait)
        self.close()

    def step(self) -> float:
        """One round: fetch or retry a batch, handle it, acknowledge it. Returns how long to wait
        before the next round (0: go on)."""
        try:
            if self.bus is None:
                self.bus = self.connect()
                for s in self.streams:
                    self.bus.ensure_group(s, self.group)
                self._own = True
            bus = self.bus
            if not self._held:
                self._held = self._fetch(bus)
            if self._held and not self._handle():
                return self.backoff.next()
            now = time.monotonic()
            if self.housekeeping is not None and now >= self._next_housekeeping:
                self._next_housekeeping = now + self.housekeeping_s
                self.housekeeping(bus)
            if self.backoff.failures:
                log.warning("%s: working again after %d failed attempt(s)", self.name, self.backoff.failures)
            self.backoff.reset()
            return 0.0
        except BusError as exc:
            self.counters["bus_errors"] += 1
            self._failed(f"bus: {exc}")
            self.close()
            return self.backoff.next()

    def _failed(self, msg: str) -> None:
        self.last_error = msg
        level = logging.WARNING if self.backoff.failures == 0 else logging.DEBUG
        log.log(level, "%s: %s (retrying with back-off)", self.name, msg)

    def _fetch(self, bus: Bus) -> list[Message]:
        if self._own:
            got = bus.read_group(self.streams, self.group, self.consumer, self.batch, 0, own=True)
            if got:
                self.counters["own_pending"] += len(got)
                return got
            self._own = False
        now = time.monotonic()
        if now >= self._next_claim:
            self._next_claim = now + self.claim_idle_s / 2
            claimed: list[Message] = []
            for s in self.streams:
                claimed += bus.claim_stale(s, self.group, self.consumer, self.claim_idle_s, self.batch)
            if claimed:
                self.counters["claimed"] += len(claimed)
                log.info("%s: took over %d entries other consumers left unacknowledged", self.name, len(claimed))
                return claimed
        got = bus.read_group(self.streams, self.group, self.consumer, self.batch, self.block_s)
        self.counters["read"] += len(got)
        return got

    def _handle(self) -> bool:
        """Hand the batch in hand to the handler and acknowledge it; False: keep it, retry later."""
        try:
            self.handler(self._held)
        except Retry as exc:
            self.counters["retries"] += 1
            self._failed(str(exc))
            return False
        except Exception as exc:  # a bug must not lose the batch: keep it and say so
            self.counters["handler_errors"] += 1
            log.exception("%s: handling %d entries failed; keeping them", self.name, len(self._held))
            self.last_error = f"{type(exc).__name__}: {exc}"
            return False
        done, self._held = self._held, []
        by_stream: dict[str, list[str]] = defaultdict(list)
        for m in done:
            by_stream[m.stream].append(m.id)
        assert self.bus is not None
        for stream, ids in by_stream.items():
            self.counters["acked"] += self.bus.ack(stream, self.group, ids)
        return True

    def close(self) -> None:
        if self.bus is not None:
            try:
                self.bus.close()
            except BusError:
                pass
            self.bus = None
