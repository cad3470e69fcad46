"""The ingester (``tapsift ingest``): the bus's alerts and heartbeats into the store, SIEM forwarding.

Consumers (`GroupConsumer`, group ``tapsift-ingest``) read the alert, heartbeat and event streams.
A batch's alerts and heartbeats are written in one transaction (statements pipelined on
PostgreSQL) and the batch is acknowledged only once it is committed. Each alert's id decides:
``INSERTED``, ``DUPLICATE`` (a redelivery: counted, nothing changes) or ``CONFLICT`` (another
record under that id: logged, the stored one kept). So delivery is at least once and the store
holds each alert exactly once.

- The store down (connection refused, the server restarting): the batch is kept and retried with
  back-off; nothing more is read meanwhile, nothing is acknowledged, nothing is lost.
- A message that is not an alert record (not JSON, no id, a value the store refuses): put on
  ``<stream>:rejected`` (capped) with the reason, counted, acknowledged — one bad entry never
  holds up the stream.
- Events other than alerts are counted by type and acknowledged (the store keeps alerts; other
  readers of the events stream — Logstash, a SIEM — use groups of their own).
- Every few seconds the streams are trimmed up to the oldest entry some group still needs, so a
  stream's length is its backlog (what the sensors' back-pressure looks at).

With ``output.syslog`` / ``output.webhooks`` in its settings the ingester also forwards the alert
stream to them (group ``tapsift-siem``): a batch is acknowledged once it is in their disk spools.
With a PostgreSQL store it relays the newest saved policy version to the sensors (`PolicyRelay`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

from appliance import __version__
from appliance.bus.base import EVE_FIELD, Bus, BusError, Message, open_bus
from appliance.fleet.consumer import GroupConsumer, Retry
from appliance.outputs.alertjson import dumps
from appliance.store import AddResult, AlertStore, StoreError
from appliance.store.alerts import AlertRepo
from appliance.store.sensors import SensorRepo

if TYPE_CHECKING:
    from appliance.settings import Settings

__all__ = ["INGEST_GROUP", "SIEM_GROUP", "Ingester", "alert_ts_ns"]

log = logging.getLogger("tapsift.ingest")

INGEST_GROUP = "tapsift-ingest"
SIEM_GROUP = "tapsift-siem"
REJECTED_MAXLEN = 10_000


def alert_ts_ns(rec: dict[str, Any]) -> int:
    """An alert record's packet time: ``tapsift.ts_ns`` when present, else its EVE ``timestamp`` (µs)."""
    ts = rec.get("tapsift", {}).get("ts_ns") if isinstance(rec.get("tapsift"), dict) else None
    if isinstance(ts, int) and not isinstance(ts, bool):
        return ts
    stamp = rec.get("timestamp")
    if isinstance(stamp, str):
        try:
            dt = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z")
        except ValueError:
            return 0
        return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000
    return 0


def _transient(exc: BaseException) -> bool:
    """A store error worth retrying (the server away, a lock), not a record the store refuses."""
    if isinstance(exc, StoreError | sqlite3.OperationalError):
        return True
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


class Ingester:
    """Alerts and heartbeats from the bus into *store_dsn* (module doc); `run` until stopped."""

    def __init__(self, settings: Settings, store_dsn: str | None, *, forward: bool = True,
                 relay_policy: bool = True) -> None:
        if settings.output.bus is None:
            raise ValueError("no bus configured (output.bus)")
        self.settings = settings
        self.bus_settings = b = settings.output.bus
        self.store_dsn = store_dsn
        self.store: AlertStore | None = None
        self.counters: Counter[str] = Counter()
        """``inserted``, ``duplicate``, ``conflict``, ``rejected``, ``heartbeats``, ``suppressed``,
        ``events.<type>``, ``trimmed``, ``store_retries``."""
        self.name = f"ingest:{b.consumer}"
        self.consumers: list[GroupConsumer] = []
        if store_dsn:
            self.consumers.append(GroupConsumer(
                self._connect, [b.alerts_key, b.sensors_key] + ([b.events_key] if b.events else []), INGEST_GROUP,
                b.consumer, self.handle, batch=b.batch, claim_idle_s=b.claim_idle_s, retry_max_s=b.retry_max_s,
                name="ingest", housekeeping=self._housekeeping))
        self.siem: Any = None
        out = settings.output
        if forward and (out.syslog or out.webhooks):
            from appliance.alerts import AlertWriter

            self.siem = AlertWriter.from_settings(out.model_copy(update={"store": None, "bus": None}), None)
            self.consumers.append(GroupConsumer(
                self._connect, [b.alerts_key], SIEM_GROUP, b.consumer, self.forward, batch=b.batch,
                claim_idle_s=b.claim_idle_s, retry_max_s=b.retry_max_s, name="siem"))
        self.relay: Any = None
        if relay_policy and store_dsn and store_dsn.startswith(("postgresql:", "postgres:")):
            from appliance.fleet.policy import PolicyRelay

            self.relay = PolicyRelay(store_dsn, self._connect, b)
        self._threads: list[threading.Thread] = []
        self._last_beat = 0.0

    def _connect(self) -> Bus:
        return open_bus(self.bus_settings)

    def _open_store(self) -> AlertStore:
        if self.store is None:
            assert self.store_dsn is not None
            try:
                self.store = AlertStore(self.store_dsn, check_same_thread=False, pool_size=2)
            except StoreError as exc:
                raise Retry(f"store: {exc}") from None
        return self.store

    # -- the store consumer --------------------------------------------------------------------
    def handle(self, msgs: list[Message]) -> None:
        """Write a batch to the store in one transaction; `Retry` when the store is away."""
        b = self.bus_settings
        alerts: list[tuple[Message, dict[str, Any]]] = []
        beats: dict[str, dict[str, Any]] = {}
        rejected: list[tuple[Message, str]] = []
        for m in msgs:
            if m.stream == b.events_key:
                self._tally_event(m)
                continue
            try:
                rec = m.json()
            except ValueError:
                rejected.append((m, "not JSON"))
                continue
            if not isinstance(rec, dict):
                rejected.append((m, "not a JSON object"))
            elif m.stream == b.sensors_key:
                name = str(rec.get("sensor") or m.sensor)
                if name and (name not in beats or rec.get("ts", 0) >= beats[name].get("ts", 0)):
                    beats[name] = rec
            elif rec.get("event_type") == "suppressed" or self._alert_id(rec):
                alerts.append((m, rec))
            else:
                rejected.append((m, "no tapsift.alert_id"))
        if alerts or beats:
            try:
                self._write(alerts, beats)
            except Retry:
                raise
            except Exception as exc:
                if _transient(exc):
                    self._drop_store()
                    self.counters["store_retries"] += 1
                    raise Retry(f"store: {type(exc).__name__}: {exc}") from None
                log.warning("a batch of %d could not be stored (%s); storing one by one", len(alerts), exc)
                rejected += self._one_by_one(alerts, beats)
        if rejected:
            self._reject(rejected)

    @staticmethod
    def _alert_id(rec: dict[str, Any]) -> str | None:
        ts = rec.get("tapsift")
        aid = ts.get("alert_id") if isinstance(ts, dict) else None
        return aid if isinstance(aid, str) and aid else None

    def _write(self, alerts: list[tuple[Message, dict[str, Any]]], beats: dict[str, dict[str, Any]]) -> None:
        store = self._open_store()
        tally: Counter[str] = Counter()
        with store.db.tx() as tx, tx.batch():
            repo = AlertRepo(tx)
            for m, rec in alerts:
                self._one(repo, m, rec, tally)
            sensors = SensorRepo(tx)
            for name, hb in beats.items():
                self._beat(sensors, name, hb)
        self.counters.update(tally)
        self.counters["heartbeats"] += len(beats)

    def _one(self, repo: AlertRepo, m: Message, rec: dict[str, Any], tally: Counter[str]) -> None:
        if rec.get("event_type") == "suppressed":
            aid = self._alert_id(rec)
            if aid:  # (pipelined: whether the alert is known is not reported)
                repo.bump_suppressed(aid, 1)
                tally["suppressed"] += 1
            return
        ts = rec.setdefault("tapsift", {})
        if isinstance(ts, dict) and not ts.get("sensor") and m.sensor:
            ts["sensor"] = m.sensor
        res = repo.add(rec, None, alert_ts_ns(rec))
        tally[res.value] += 1
        if res is AddResult.CONFLICT:
            log.error("alert %s from %s: another record is stored under this id; the first is kept",
                      str(self._alert_id(rec))[:100], m.sensor or "?")

    @staticmethod
    def _beat(sensors: SensorRepo, name: str, hb: dict[str, Any]) -> None:
        counters = hb.get("counters") if isinstance(hb.get("counters"), dict) else {}
        ts = hb.get("ts")
        sensors.heartbeat(name, float(ts) if isinstance(ts, int | float) else time.time(),
                          policy_version=str(hb.get("policy_version") or ""), software=str(hb.get("software") or ""),
                          counters=counters)

    def _one_by_one(self, alerts: list[tuple[Message, dict[str, Any]]],
                    beats: dict[str, dict[str, Any]]) -> list[tuple[Message, str]]:
        """After a batch failed on something in it: each alert (and heartbeat) in its own transaction."""
        store = self._open_store()
        bad: list[tuple[Message, str]] = []
        for m, rec in alerts:
            tally: Counter[str] = Counter()
            try:
                with store.db.tx() as tx:
                    self._one(AlertRepo(tx), m, rec, tally)
            except Exception as exc:
                if _transient(exc):
                    self._drop_store()
                    raise Retry(f"store: {type(exc).__name__}: {exc}") from None
                bad.append((m, f"refused by the store: {type(exc).__name__}: {exc}"[:500]))
                continue
            self.counters.update(tally)
        for name, hb in beats.items():
            try:
                with store.db.tx() as tx:
                    self._beat(SensorRepo(tx), name, hb)
                self.counters["heartbeats"] += 1
            except Exception as exc:
                if _transient(exc):
                    self._drop_store()
                    raise Retry(f"store: {type(exc).__name__}: {exc}") from None
                log.warning("heartbeat of %r refused: %s", name[:100], exc)
        return bad

    def _reject(self, bad: list[tuple[Message, str]]) -> None:
        """Dead-letter entries nothing can be made of (before they are acknowledged)."""
        bus = self.consumers[0].bus if self.consumers else None
        by_stream: dict[str, list[dict[str, bytes | str]]] = {}
        for m, why in bad:
            self.counters["rejected"] += 1
            log.warning("rejected entry %s of %s from %r: %s", m.id, m.stream, m.sensor[:100], why)
            by_stream.setdefault(f"{m.stream}:rejected", []).append(
                {EVE_FIELD: m.eve[:1 << 20], "reason": why, "from": m.id, "sensor": m.sensor})
        if bus is not None:
            for stream, entries in by_stream.items():
                bus.publish(stream, entries, REJECTED_MAXLEN)

    def _tally_event(self, m: Message) -> None:
        raw = m.eve
        i = raw.find(b'"event_type":"')
        kind = raw[i + 14:raw.find(b'"', i + 14)].decode("ascii", "replace")[:32] if i >= 0 else "unknown"
        self.counters[f"events.{kind}"] += 1

    def _drop_store(self) -> None:
        if self.store is not None:
            try:
                self.store.close()
            except Exception:  # closing a store whose server went away
                log.debug("closing the store failed", exc_info=True)
            self.store = None

    # -- housekeeping --------------------------------------------------------------------------
    def _housekeeping(self, bus: Bus) -> None:
        b = self.bus_settings
        for stream in (b.alerts_key, b.sensors_key, b.events_key):
            self.counters["trimmed"] += bus.trim_consumed(stream)
        now = time.time()
        if now - self._last_beat >= b.heartbeat_s and self.store is not None:
            self._last_beat = now
            try:
                with self.store.db.tx() as tx:
                    SensorRepo(tx).heartbeat(self.name, now, software=f"tapsift/{__version__} ingester",
                                             counters=self.stats_counters(bus))
            except Exception as exc:  # the registry row is a nicety; the batch loop sees store trouble
                log.debug("ingester heartbeat failed: %s", exc)

    def stats_counters(self, bus: Bus | None = None) -> dict[str, int | float]:
        """Flat counters (the registry row, the log)."""
        out: dict[str, int | float] = {k: v for k, v in self.counters.items() if not k.startswith("events.")}
        out["events"] = sum(v for k, v in self.counters.items() if k.startswith("events."))
        for c in self.consumers:
            out[f"{c.name}_retries"] = c.counters["retries"]
            out[f"{c.name}_bus_errors"] = c.counters["bus_errors"]
            out[f"{c.name}_claimed"] = c.counters["claimed"]
        if bus is not None:
            try:
                out["backlog_alerts"] = bus.length(self.bus_settings.alerts_key)
                out["backlog_events"] = bus.length(self.bus_settings.events_key)
            except BusError:
                pass
        return out

    # -- SIEM forwarding -----------------------------------------------------------------------
    def forward(self, msgs: list[Message]) -> None:
        """Alert records into the SIEM outputs' disk spools (they deliver from there)."""
        recs = []
        for m in msgs:
            try:
                rec = m.json()
            except ValueError:
                continue
            if isinstance(rec, dict) and rec.get("event_type") == "alert":
                recs.append(rec)
        for o in self.siem.outputs:
            o.send_many(recs)
        self.counters["forwarded"] += len(recs)

    # -- life ----------------------------------------------------------------------------------
    def start(self) -> threading.Event:
        """Start the consumers (and the policy relay) in threads; set the returned event to stop."""
        stop = threading.Event()
        for c in self.consumers:
            t = threading.Thread(target=c.run, args=(stop,), name=f"tapsift-{c.name}", daemon=True)
            t.start()
            self._threads.append(t)
        if self.relay is not None:
            t = threading.Thread(target=self.relay.run, args=(stop,), name="tapsift-policy-relay", daemon=True)
            t.start()
            self._threads.append(t)
        return stop

    def join(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        if self.siem is not None:
            self.siem.close(self.settings.output.model_dump().get("flush_timeout_s", 5.0))
        self._drop_store()

    def summary(self) -> str:
        c = self.counters
        return (f"{c['inserted']:,} alerts stored, {c['duplicate']:,} duplicates, {c['conflict']:,} conflicts, "
                f"{c['rejected']:,} rejected, {c['heartbeats']:,} heartbeats, "
                f"{sum(v for k, v in c.items() if k.startswith('events.')):,} events, {c['forwarded']:,} forwarded")


def dump_counters(ing: Ingester) -> str:
    """The counters as one JSON line (the log)."""
    return dumps(ing.stats_counters())

