"""EVE JSON lines: Suricata's event layout, with tapsift's own fields under ``tapsift``.

Field names follow Suricata's EVE wherever one exists, so that SIEM parsers and analysts
used to Suricata read tapsift's ``fileinfo``, ``anomaly`` and ``stats`` events as they are.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from appliance.model import AppEvent, ContentObject, Direction, Flow, FlowRef


def eve_timestamp(ts_ns: int) -> str:
    """Suricata's timestamp format: ``2024-05-01T12:00:00.123456+0000``."""
    sec, ns = divmod(ts_ns, 1_000_000_000)
    try:
        dt = datetime.fromtimestamp(sec, UTC)
    except (OverflowError, OSError, ValueError):
        dt = datetime.fromtimestamp(0, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns // 1000:06d}+0000"


def fileinfo_event(obj: ContentObject) -> dict[str, Any]:
    """The ``fileinfo`` event for a content object."""
    ev: dict[str, Any] = {"timestamp": eve_timestamp(obj.ts_ns), "event_type": "fileinfo"}
    f = obj.flow
    if f is not None:
        ev.update(
            flow_id=f.flow_id, src_ip=f.src_ip, src_port=f.src_port, dest_ip=f.dest_ip,
            dest_port=f.dest_port, proto=f.proto,
        )
        if f.vlan:
            ev["vlan"] = [f.vlan]
        if f.iface:
            ev["in_iface"] = f.iface
    ev["app_proto"] = obj.source
    if obj.source == "http":
        http: dict[str, Any] = {"hostname": obj.host, "url": obj.url, "http_method": obj.method}
        if obj.user_agent:
            http["http_user_agent"] = obj.user_agent
        if obj.status:
            http["status"] = obj.status
        if obj.declared_mime:
            http["http_content_type"] = obj.declared_mime
        http["length"] = obj.size
        ev["http"] = http
    elif obj.source == "smtp":
        ev["smtp"] = {k: obj.meta[k] for k in ("mail_from", "rcpt_to", "helo") if obj.meta.get(k)}
        email = {k: obj.meta[k] for k in ("from", "to", "subject", "message_id") if obj.meta.get(k)}
        if email:
            ev["email"] = email
    elif obj.source in ("imap", "pop3"):
        email = {k: obj.meta[k] for k in ("from", "to", "subject", "message_id") if obj.meta.get(k)}
        if email:
            ev["email"] = email
    elif obj.source == "websocket":
        ev["websocket"] = {"hostname": obj.host, "url": obj.url, "opcode": obj.meta.get("websocket_opcode", ""),
                           "messages": obj.meta.get("websocket_messages", "")}
    elif obj.source == "ftp-data":
        ev["ftp_data"] = {"filename": obj.filename, "command": obj.meta.get("command", "")}
    fileinfo: dict[str, Any] = {
        "filename": obj.filename,
        "magic": obj.magic,
        "gaps": obj.gaps,
        "state": obj.state,
        "md5": obj.md5,
        "sha256": obj.sha256,
        "stored": False,
        "size": obj.size,
    }
    if obj.tx_id is not None:
        fileinfo["tx_id"] = obj.tx_id
    ev["fileinfo"] = fileinfo
    ev["tapsift"] = {
        "content_id": obj.id,
        "parent_id": obj.parent_id,
        "flow_uid": f.uid if f else None,
        "direction": Direction(obj.direction).label,
        "kind": obj.kind,
        "sniffed_mime": obj.sniffed_mime,
        "declared_mime": obj.declared_mime,
        "missing_bytes": obj.missing_bytes,
        "truncated": list(obj.truncated),
        "anomalies": list(obj.anomalies),
        "src_zone": f.src_zone if f else "any",
        "dst_zone": f.dst_zone if f else "any",
        **({"meta": dict(obj.meta)} if obj.meta else {}),
    }
    return ev


def _flow_fields(f: FlowRef) -> dict[str, Any]:
    return {"flow_id": f.flow_id, "src_ip": f.src_ip, "src_port": f.src_port, "dest_ip": f.dest_ip,
            "dest_port": f.dest_port, "proto": f.proto}


def flow_anomaly_events(flow: Flow) -> list[dict[str, Any]]:
    """The per-flow ``anomaly`` events (one per anomaly code, with its count) written when a flow ends."""
    if not flow.anomalies:
        return []
    from reassembly.objects import flow_ref

    ref = flow_ref(flow)
    return [{
        "timestamp": eve_timestamp(flow.last_ts_ns), "event_type": "anomaly", **_flow_fields(ref),
        "app_proto": flow.app_proto or "failed",
        "anomaly": {"type": "stream" if code.startswith("tcp") else "applayer", "event": code, "count": count},
        "tapsift": {"flow_uid": flow.uid},
    } for code, count in sorted(Counter(flow.anomalies).items())]


def not_inspected_event(obj: ContentObject, reason: str) -> dict[str, Any]:
    """The record left when an object is shed instead of inspected (wall-clock time: the
    shedding happens now, not at the object's packet time)."""
    ev: dict[str, Any] = {"timestamp": eve_timestamp(time.time_ns()), "event_type": "anomaly"}
    if obj.flow is not None:
        ev.update(_flow_fields(obj.flow))
    ev["anomaly"] = {"type": "inspection", "event": "not_inspected", "reason": reason}
    ev["tapsift"] = {"content_id": obj.id, "md5": obj.md5, "size": obj.size}
    return ev


def app_event(ev: AppEvent) -> dict[str, Any]:
    """An application-layer metadata record (``tls``, ``dns``…): Suricata's layout, the
    fields under the event type's own key."""
    f = ev.flow
    out: dict[str, Any] = {"timestamp": eve_timestamp(ev.ts_ns), "event_type": ev.event_type, **_flow_fields(f)}
    if f.vlan:
        out["vlan"] = [f.vlan]
    if f.iface:
        out["in_iface"] = f.iface
    out[ev.event_type] = dict(ev.fields)
    out["tapsift"] = {"flow_uid": f.uid, "src_zone": f.src_zone, "dst_zone": f.dst_zone}
    return out


class EveWriter:
    """Writes EVE events as JSON lines to a file (appending) or to stdout (``-``).

    For a file, `reopen` closes and reopens the path (logrotate's ``create`` mode: call it on
    SIGHUP after the file was moved away), and with ``rotate_bytes`` / ``rotate_interval_s``
    the writer rotates by itself (``eve.json`` → ``eve.json.1`` … ``.keep``, oldest dropped).
    """

    def __init__(
        self,
        target: str | Path | IO[str] | None,
        *,
        rotate_bytes: int = 0,
        rotate_interval_s: float = 0.0,
        rotate_keep: int = 10,
    ) -> None:
        self._own = False
        self._fh: IO[str] | None = None
        self._path: Path | None = None
        self.rotate_bytes = rotate_bytes
        self.rotate_interval_s = rotate_interval_s
        self.rotate_keep = max(1, rotate_keep)
        self.rotations = 0
        self._size = 0
        self._opened_at = 0.0
        if target is None:
            self._fh = None
        elif target == "-":
            self._fh = sys.stdout
        elif isinstance(target, (str, Path)):
            self._path = Path(target)
            self._open()
        else:
            self._fh = target
        self.written = 0

    def _open(self) -> None:
        import time

        assert self._path is not None
        fh = open(self._path, "a", encoding="utf-8", buffering=1024 * 1024)  # noqa: SIM115
        if self._fh is not None and self._own:
            self._fh.close()
        self._fh = fh
        self._own = True
        self._size = self._fh.tell()
        self._opened_at = time.monotonic()

    def write(self, event: dict[str, Any]) -> None:
        if self._fh is None:
            return
        self.write_line(json.dumps(event, ensure_ascii=False, separators=(",", ":")))

    def write_line(self, line: str) -> None:
        """Write one already serialised event (without the newline)."""
        if self._fh is None:
            return
        self._fh.write(line + "\n")
        self.written += 1
        if self._path is not None and (self.rotate_bytes or self.rotate_interval_s):
            self._size += len(line) + 1
            self._maybe_rotate()

    def _maybe_rotate(self) -> None:
        import time

        due = self.rotate_bytes and self._size >= self.rotate_bytes
        if not due and self.rotate_interval_s:
            due = time.monotonic() - self._opened_at >= self.rotate_interval_s and self._size > 0
        if due:
            self.rotate()

    def rotate(self) -> None:
        """Close the file, shift ``path.N`` → ``path.N+1`` (dropping the oldest), reopen."""
        import os

        if self._path is None or self._fh is None:
            return
        self._fh.flush()
        p = str(self._path)
        for i in range(self.rotate_keep - 1, 0, -1):
            if os.path.exists(f"{p}.{i}"):
                os.replace(f"{p}.{i}", f"{p}.{i + 1}")
        if os.path.exists(p):
            os.replace(p, f"{p}.1")
        self.rotations += 1
        self._open()

    def reopen(self) -> None:
        """Reopen the file at the same path (after logrotate moved it). If the path cannot be
        opened, `OSError` is raised and writing goes on to the old file."""
        if self._path is None or self._fh is None:
            self.flush()
            return
        self._fh.flush()
        self._open()

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            if self._own:
                self._fh.close()
            self._fh = None
