"""A series of daily captures of a small office for the behaviour stage's end-to-end runs.

``write_days(directory)`` writes ``day-01.pcap`` … with tools/synth.py: a few hosts in zone
``office`` (10.10.0.0/24) that, on working days between 09:00 and 17:00 UTC, fetch pages and
post small forms and documents to a handful of sites. On the last day two anomalies are
injected, and returned as `Injected` (host, window, kind):

- ``bulk``: one host posts `BULK_OBJECTS` documents to a paste site it never used, in one hour;
- ``beacon``: another host posts a small record to an unknown site every `BEACON_PERIOD_S`
  seconds for a few hours.

Everything is seeded; the same arguments give the same bytes.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tools.synth import Trace, http_request, http_response  # noqa: E402

START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
SITES = ("intranet.corp.example", "crm.saas.example", "news.example", "wiki.corp.example")
BULK_DEST = "paste.example"
BULK_OBJECTS = 60
BEACON_DEST = "cdn-telemetry.example"
BEACON_PERIOD_S = 120
BULK_HOUR = 14
BEACON_HOURS = (10, 13)
POLICY = """\
zones:
  office: {cidrs: [10.10.0.0/24]}
lists:
  paste-sites: {type: domains, domains: [paste.example], options: {category: paste}}
profiles:
  anomalies:
    category: anomaly
    severity: medium
    behaviour:
      subjects: [host, zone]
policies:
  - name: office-behaviour
    source_zone: office
    profiles: [anomalies]
"""
"""The zone policy of the series (a behaviour profile with the default thresholds)."""


@dataclass(frozen=True, slots=True)
class Injected:
    kind: str
    host: str
    start_ns: int
    end_ns: int


def host_ip(i: int) -> str:
    return f"10.10.0.{10 + i}"


def _server_ip(name: str) -> str:
    return f"198.51.100.{1 + sum(name.encode()) % 200}"


def _post(trace: Trace, rng: random.Random, client: str, at: float, host: str, body: bytes, ctype: str,
          path: str = "/upload") -> None:
    s = trace.session((client, rng.randint(20000, 60000)), (_server_ip(host), 80), at=at)
    s.http(http_request("POST", path, host, body=body, content_type=ctype),
           http_response(200, b"ok", content_type="text/plain"))
    s.close()


def _get(trace: Trace, rng: random.Random, client: str, at: float, host: str, size: int) -> None:
    s = trace.session((client, rng.randint(20000, 60000)), (_server_ip(host), 80), at=at)
    s.http(http_request("GET", "/", host), http_response(200, bytes(rng.getrandbits(8) for _ in range(size))))
    s.close()


def _doc(rng: random.Random, n: int) -> bytes:
    return b"%PDF-1.4\n" + bytes(rng.getrandbits(8) for _ in range(n)) + b"\n%%EOF\n"


def write_day(path: Path, day: int, *, hosts: int = 5, seed: int = 7, anomalies: bool = False) -> list[Injected]:
    """Write one day's capture; returns the anomalies injected in it."""
    rng = random.Random(seed * 1000 + day)
    start = START.timestamp() + day * 86400
    trace = Trace(seed=seed * 1000 + day, start=start)
    weekday = (START.weekday() + day) % 7 < 5
    injected: list[Injected] = []
    if weekday:
        for h in range(hosts):
            ip = host_ip(h)
            for hour in range(9, 17):
                for _ in range(rng.randint(2, 4)):
                    at = hour * 3600 + rng.uniform(0, 3500)
                    _get(trace, rng, ip, at, rng.choice(SITES), rng.randint(2000, 6000))
                if rng.random() < 0.6:
                    at = hour * 3600 + rng.uniform(0, 3500)
                    _post(trace, rng, ip, at, rng.choice(SITES[:2]), b"q=" + bytes(rng.randint(97, 122)
                          for _ in range(rng.randint(200, 800))), "application/x-www-form-urlencoded")
                if rng.random() < 0.15:
                    _post(trace, rng, ip, hour * 3600 + rng.uniform(0, 3500), SITES[0],
                          _doc(rng, rng.randint(20_000, 60_000)), "application/pdf", "/docs/report.pdf")
    if anomalies:
        ip = host_ip(0)
        t0 = BULK_HOUR * 3600
        for i in range(BULK_OBJECTS):
            _post(trace, rng, ip, t0 + 60 + i * 50, BULK_DEST, _doc(rng, 60_000), "application/pdf",
                  f"/api/paste/{i}.pdf")
        ns = int(start) * 10**9
        injected.append(Injected("bulk", ip, ns + t0 * 10**9, ns + (t0 + 3600) * 10**9))
        ip = host_ip(1)
        b0, b1 = BEACON_HOURS[0] * 3600, BEACON_HOURS[1] * 3600
        for at in range(b0, b1, BEACON_PERIOD_S):
            _post(trace, rng, ip, at + rng.uniform(-1, 1), BEACON_DEST,
                  b'{"id":"' + bytes(rng.randint(97, 122) for _ in range(120)) + b'"}', "application/json", "/t")
        injected.append(Injected("beacon", ip, ns + b0 * 10**9, ns + b1 * 10**9))
    trace.write(path)
    return injected


def write_days(directory: Path, days: int = 10, *, hosts: int = 5, seed: int = 7) -> tuple[list[Path], list[Injected]]:
    """``days`` daily captures in ``directory``; the anomalies are on the last day."""
    directory.mkdir(parents=True, exist_ok=True)
    paths, injected = [], []
    for d in range(days):
        p = directory / f"day-{d + 1:02d}.pcap"
        injected += write_day(p, d, hosts=hosts, seed=seed, anomalies=d == days - 1)
        paths.append(p)
    return paths, injected
