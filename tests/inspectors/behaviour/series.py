"""Constructed observation series for the behaviour tests: an office whose hosts follow a
seeded routine, with anomalies added where a test wants them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime

from inspectors.behaviour.features import Observation

NS = 1_000_000_000
START_NS = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp()) * NS  # a Monday, 00:00 UTC
HOUR = 3600 * NS
DAY = 24 * HOUR


def host(i: int) -> str:
    return f"10.10.0.{10 + i}"


def obs(ts_ns: int, ip: str, dest: str, size: int, *, upload: bool = True, cls: int = 3,
        zone: str = "office", ua: str = "firefox") -> Observation:
    return Observation(ts_ns, ip, zone, dest, "any", upload, cls, size, ua)


def routine(days: int, hosts: int = 6, *, seed: int = 1) -> Iterator[Observation]:
    """Working days 09:00-17:00: each host fetches pages and posts a few forms every hour."""
    rng = random.Random(seed)
    for d in range(days):
        if d % 7 >= 5:
            continue
        for hour in range(9, 17):
            base = START_NS + d * DAY + hour * HOUR
            batch = []
            for h in range(hosts):
                for _ in range(rng.randint(6, 10)):
                    batch.append(obs(base + rng.randrange(HOUR), host(h), rng.choice(("news.example", "wiki.corp")),
                                     rng.randint(2000, 9000), upload=False))
                for _ in range(rng.randint(1, 3)):
                    batch.append(obs(base + rng.randrange(HOUR), host(h), "crm.saas.example", rng.randint(300, 900)))
            yield from sorted(batch)


def feed(stage, observations, *, tick_every_ns: int = 60 * NS) -> list:
    """Observe in order with a tick per minute of packet time; returns the alerts."""
    alerts = []
    nxt = 0
    for o in observations:
        stage.observe_record(o)
        if o.ts_ns >= nxt:
            alerts += stage.tick(o.ts_ns)
            nxt = o.ts_ns + tick_every_ns
    return alerts
