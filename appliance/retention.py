"""Content retention: every object's metadata and text (not only the alerted ones), the sessions and their
protocol records, and the bytes of small objects — kept for a period under a size cap, searchable.

The sensor hands objects to a `RetentionWriter` and goes on: the call puts a reference on a bounded
queue and returns (a full queue drops the object, counted: ``dropped_queue``, ``dropped_bytes``);
one writer thread builds the rows, extracts the text of plain-text objects that inspection did not
read, and inserts them in batches (one transaction per batch, `appliance.store.content`). Every
``housekeep_s`` it deletes what is older than ``max_age_s`` before the newest object (packet time)
and, while the store is over ``max_bytes``, the oldest hour.

Hook (three calls; `appliance.pipeline.Pipeline` makes them when ``Outputs.retain`` is set)::

    retain.object(result.top or obj, result.children, alerted=bool(result.alerts))  # after inspection
    retain.flow(flow)                                                                # at flow end
    retain.event(app_event)                                                          # protocol records

``objects="alerting"`` keeps only the objects of sessions that raised an alert (metadata of recent
objects waits in a bounded per-session buffer until the session alerts or is evicted).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import queue
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from appliance.model import AppEvent, ContentObject, Flow
from appliance.outputs.alertjson import clean
from appliance.store.content import ContentRepo, ContentStore
from appliance.store.objects import int64
from appliance.store.querylang import ip_hex

__all__ = ["RetentionConfig", "RetentionWriter", "content_row"]

log = logging.getLogger("tapsift.retention")
MiB = 1024 * 1024
_STOP = object()


@dataclass(slots=True)
class RetentionConfig:
    """What to keep and for how long (the sensor's ``retention`` settings)."""

    store: str
    """The content store: a SQLite path (its own file, not the alert store's) or the fleet's ``postgresql://`` DSN."""
    max_age_s: float = 7 * 86400.0
    max_bytes: int = 20 * 1024 * MiB
    """Cap of what is retained (text ×2 for its index, metadata, kept bytes: ``content_hours``); the oldest hours
    go first."""
    max_text_bytes: int = 256 * 1024
    """Text kept per object (the rest is cut; ``text_len`` says how long it was)."""
    keep_bytes: int = 1 * MiB
    """Objects up to this size keep their bytes (download, back-test beyond text); 0: none."""
    objects: str = "all"
    """``all`` or ``alerting`` (only the objects of sessions that raised an alert)."""
    queue: int = 20_000
    queue_bytes: int = 256 * MiB
    batch: int = 500
    flush_s: float = 1.0
    housekeep_s: float = 60.0
    sensor: str = ""


def _flow_row(flow: Flow, sensor: str) -> dict[str, Any]:
    from reassembly.objects import ip_text

    return {
        "uid": flow.uid, "flow_id": int64(flow.flow_id), "sensor": sensor or None, "first_ts_ns": flow.first_ts_ns,
        "last_ts_ns": flow.last_ts_ns, "client_ip": ip_text(flow.client_ip), "client_port": flow.client_port,
        "server_ip": ip_text(flow.server_ip), "server_port": flow.server_port,
        "proto": {6: "TCP", 17: "UDP"}.get(flow.proto, str(flow.proto)), "vlan": flow.vlan, "iface": flow.iface,
        "app_proto": flow.app_proto, "src_zone": flow.src_zone, "dst_zone": flow.dst_zone,
        "pkts_toserver": flow.pkts[0], "pkts_toclient": flow.pkts[1], "bytes_toserver": flow.bytes[0],
        "bytes_toclient": flow.bytes[1], "state": getattr(flow.state, "name", str(flow.state)),
        "midstream": int(bool(flow.midstream)), "anomalies": json.dumps(clean(list(flow.anomalies))[:100]),
    }


def _text_of(obj: ContentObject, max_bytes: int) -> str:
    """The object's text: what extraction made, else (plain-text types only) its decoded bytes."""
    if obj.text is not None:
        return obj.text
    from inspectors.text import extract_text

    try:
        return extract_text(obj, max_bytes=max_bytes)
    except Exception:  # hostile bytes: no text rather than no row
        return ""


def content_row(obj: ContentObject, cfg: RetentionConfig, alerted: bool) -> tuple[dict[str, Any], tuple[str, str]]:
    """The ``content`` row and the search document (body, names) of one object."""
    text = clean(_text_of(obj, cfg.max_text_bytes * 4))
    hidden = clean(obj.hidden_text or "")
    body = text[:cfg.max_text_bytes]
    f = obj.flow
    row: dict[str, Any] = clean({
        "content_id": obj.id, "ts_ns": int64(obj.ts_ns), "sensor": cfg.sensor or None,
        "flow_uid": f.uid if f else None, "tx_id": int64(obj.tx_id), "parent_id": obj.parent_id,
        "depth": obj.depth, "source": obj.source, "kind": obj.kind, "direction": getattr(obj.direction, "label", None),
        "src_ip": f.src_ip if f else None, "src_port": f.src_port if f else None,
        "dest_ip": f.dest_ip if f else None, "dest_port": f.dest_port if f else None,
        "src_ipx": ip_hex(f.src_ip) if f else None, "dest_ipx": ip_hex(f.dest_ip) if f else None,
        "proto": f.proto if f else None, "vlan": f.vlan if f else None, "iface": f.iface if f else None,
        "src_zone": f.src_zone if f else None, "dst_zone": f.dst_zone if f else None,
        "host": obj.host or None, "url": obj.url or None, "method": obj.method or None,
        "status": obj.status or None, "user_agent": obj.user_agent or None, "filename": obj.filename or None,
        "declared_mime": obj.declared_mime or None, "sniffed_mime": obj.sniffed_mime or None,
        "magic": (obj.magic or "")[:200] or None, "size": int64(obj.size), "md5": obj.md5 or None,
        "sha256": obj.sha256 or None, "missing_bytes": int64(obj.missing_bytes),
        "truncated": json.dumps(list(obj.truncated)[:20]), "anomalies": json.dumps(list(obj.anomalies)[:50]),
        "meta": json.dumps({str(k)[:64]: str(v)[:500] for k, v in list(obj.meta.items())[:50]}),
        "text": body or None, "text_len": len(text), "hidden_text": hidden[:cfg.max_text_bytes] or None,
        "has_bytes": 0, "alerted": int(alerted),
    })
    names = "\n".join(x for x in (obj.filename, obj.url, obj.host) if x)
    doc = (body + ("\n" + hidden[:cfg.max_text_bytes] if hidden else ""), clean(names))
    # what the object costs the store: its text twice (the text and its trigram index), names, metadata
    row["row_bytes"] = 2 * (len(body.encode("utf-8", "replace")) + len(hidden.encode("utf-8", "replace"))) + 600
    return row, doc


class RetentionWriter:
    """The sensor's side of content retention (see the module doc). Thread-safe `object`/`flow`/`event`."""

    def __init__(self, cfg: RetentionConfig) -> None:
        if cfg.objects not in ("all", "alerting"):
            raise ValueError("retention.objects must be 'all' or 'alerting'")
        self.cfg = cfg
        self.store = ContentStore(cfg.store)
        self.counters: Counter[str] = Counter()
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max(1, cfg.queue))
        self._qbytes = 0
        self._lock = threading.Lock()
        self._newest = 0
        self._next_housekeep = 0.0
        self._pending: OrderedDict[str, list[tuple[ContentObject, bool]]] = OrderedDict()
        self._alerting: OrderedDict[str, None] = OrderedDict()
        self._thread = threading.Thread(target=self._run, name="tapsift-retention", daemon=True)
        self._thread.start()

    # -- the sensor's calls (any thread; never block) ---------------------------------------------

    def _put(self, item: tuple[Any, ...], nbytes: int = 0) -> bool:
        with self._lock:
            if self._qbytes + nbytes > self.cfg.queue_bytes:
                self.counters["dropped_bytes"] += 1
                return False
            self._qbytes += nbytes
        try:
            self._q.put_nowait(item)
        except queue.Full:
            with self._lock:
                self._qbytes -= nbytes
            self.counters["dropped_queue"] += 1
            return False
        return True

    def object(self, obj: ContentObject, children: Iterable[ContentObject] = (), alerted: bool = False) -> bool:
        """Retain *obj* (with its text when extraction made one) and its extracted children; False: dropped."""
        kids = tuple(children)
        nbytes = sum(len(o.data) for o in (obj, *kids) if o.data is not None)
        return self._put(("obj", obj, kids, alerted), nbytes)

    def flow(self, flow: Flow) -> bool:
        """Retain a session as it ended (a snapshot: the flow table reuses nothing, but owns the object)."""
        return self._put(("flow", _flow_row(flow, self.cfg.sensor)))

    def event(self, ev: AppEvent) -> bool:
        """Retain a protocol record (HTTP headers, TLS, DNS…)."""
        return self._put(("event", ev.flow.uid if ev.flow else None, ev.ts_ns, ev.event_type, dict(ev.fields)))

    def alert_flow(self, flow_uid: str) -> None:
        """``objects: alerting``: the session *flow_uid* raised an alert; keep its objects."""
        self._put(("alerting", flow_uid))

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued (up to *timeout*), then close the store."""
        if self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._q.put(_STOP, timeout=timeout)
            self._thread.join(timeout)
        self.store.close()

    def stats(self) -> dict[str, int]:
        return {**self.counters, "queued": self._q.qsize()}

    # -- the writer thread --------------------------------------------------------------------------

    def _run(self) -> None:
        batch: list[tuple[Any, ...]] = []
        deadline = time.monotonic() + self.cfg.flush_s
        while True:
            try:
                item = self._q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                self._write(batch)
                return
            if item is not None:
                batch.append(item)
                if item[0] == "obj":
                    with self._lock:
                        self._qbytes -= sum(len(o.data) for o in (item[1], *item[2]) if o.data is not None)
            if len(batch) >= self.cfg.batch or time.monotonic() >= deadline:
                self._write(batch)
                batch = []
                deadline = time.monotonic() + self.cfg.flush_s

    def _select(self, batch: list[tuple[Any, ...]]) -> list[tuple[ContentObject, bool]]:
        """The objects of *batch* to write now (``objects: alerting`` holds the others back)."""
        out: list[tuple[ContentObject, bool]] = []
        alerting = self.cfg.objects == "alerting"
        for item in batch:
            if item[0] == "alerting":
                uid = item[1]
                self._alerting[uid] = None
                while len(self._alerting) > 100_000:
                    self._alerting.popitem(last=False)
                out += self._pending.pop(uid, [])
            elif item[0] == "obj":
                _, obj, kids, alerted = item
                objs = [(obj, alerted), *((k, alerted) for k in kids)]
                uid = obj.flow.uid if obj.flow else ""
                if not alerting or alerted or uid in self._alerting:
                    if alerting and alerted and uid:
                        self._alerting[uid] = None
                        out += self._pending.pop(uid, [])
                    out += objs
                else:
                    self._pending.setdefault(uid, []).extend(
                        (dataclasses.replace(o, data=None, spool_path=None), a) for o, a in objs)
                    while sum(len(v) for v in self._pending.values()) > 20_000:
                        self._pending.popitem(last=False)
                        self.counters["not_alerting_evicted"] += 1
        return out

    def _write(self, batch: list[tuple[Any, ...]]) -> None:
        if not batch:
            return
        cfg = self.cfg
        rows, docs, blobs = [], [], []
        for obj, alerted in self._select(batch):
            try:
                row, doc = content_row(obj, cfg, alerted)
            except Exception:  # a row we cannot build is counted, never fatal
                self.counters["errors"] += 1
                log.debug("retention: cannot build the row of %s", obj.id, exc_info=True)
                continue
            data = obj.data
            if cfg.keep_bytes and data is not None and len(data) == obj.size <= cfg.keep_bytes and obj.sha256:
                blobs.append((obj.sha256, int(obj.ts_ns), bytes(data)))
                row["has_bytes"] = 1
                row["row_bytes"] += len(data)
            rows.append(row)
            docs.append(doc)
            self._newest = max(self._newest, int(obj.ts_ns))
        flows = [it[1] for it in batch if it[0] == "flow"]
        events = [(uid, int(ts), etype, json.dumps(clean(fields), ensure_ascii=False, default=str)[:65536])
                  for _, uid, ts, etype, fields in (it for it in batch if it[0] == "event")]
        try:
            with self.store.db.tx() as tx:
                repo = ContentRepo(tx)
                self.counters["written"] += repo.add_rows(rows, docs)
                repo.add_flows(flows)
                repo.add_events(events)
                repo.add_blobs(blobs)
        except Exception:
            self.counters["errors"] += 1
            log.exception("retention: a batch of %d objects could not be written", len(rows))
            return
        self.counters["batches"] += 1
        self.counters["flows"] += len(flows)
        self.counters["events"] += len(events)
        self.counters["blobs"] += len(blobs)
        if time.monotonic() >= self._next_housekeep:
            self._next_housekeep = time.monotonic() + self.cfg.housekeep_s
            self.housekeep()

    def housekeep(self) -> None:
        """Delete what is older than the age limit, then the oldest hours while over the size limit."""
        cfg = self.cfg
        try:
            if self._newest and cfg.max_age_s > 0:
                with self.store.db.tx() as tx:
                    self.counters["purged"] += ContentRepo(tx).purge(self._newest - int(cfg.max_age_s * 1e9))
            for _ in range(10_000):
                repo = ContentRepo(self.store.db)
                if repo.retained_bytes() <= cfg.max_bytes:
                    break
                oldest = repo.oldest()
                if oldest is None:
                    break
                with self.store.db.tx() as tx:
                    n = ContentRepo(tx).purge(oldest + 3_600_000_000_000)
                self.counters["purged"] += n
                self.counters["purged_for_size"] += n
        except Exception:
            self.counters["errors"] += 1
            log.exception("retention: housekeeping failed")
