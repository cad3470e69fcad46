"""Sessions: one flow with its zones, HTTP transactions, every object and their extraction flags, its alerts;
its packets (a PCAP cut from the packet store) and its objects' bytes (as a password-protected ZIP).

The retained content (`appliance.store.content`) holds the flow record, every object and protocol
record; without it a session is what its alerts tell (the alerted objects only). PCAPs come from
the local packet store (``packet_store``) or, in a fleet, from the sensor that raised the alerts
(``packet_sensors``: its token-authenticated endpoint, `appliance.packetserver`).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from appliance.packetserver import fetch_pcap
from appliance.packetstore import FlowMatch, PacketReader
from appliance.store.content import ContentRepo
from webui.alerts import AlertView
from webui.db import ConsoleDB
from webui.errors import ServiceError
from webui.services.hits import flow_ends
from webui.services.sessions import Principal
from webui.zipcrypto import PASSWORD, encrypted_zip

PAD_NS = 1_000_000_000
"""Packets this long before the flow's first and after its last packet are included."""
NO_FLOW_BACK_NS = 3600 * 1_000_000_000
"""Without a flow record, how far before the first alert the PCAP reaches back."""
_PROTO = {"TCP": 6, "UDP": 17}


def _flags(o: dict[str, Any]) -> list[str]:
    out = []
    try:
        trunc = json.loads(o.get("truncated") or "[]") if isinstance(o.get("truncated"), str) else o.get("truncated")
    except ValueError:
        trunc = []
    out += [f"truncated: {t}" for t in trunc or []]
    if o.get("missing_bytes"):
        out.append(f"{o['missing_bytes']} bytes missing")
    if o.get("text_len"):
        out.append("text extracted")
    if o.get("has_bytes"):
        out.append("bytes kept")
    if o.get("alerted"):
        out.append("alerted")
    return out


def _transactions(objects: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """HTTP transactions from the objects (request body: upload, response body: download) and, when the
    sensor recorded them, the ``http`` records with their headers."""
    txs: dict[int, dict[str, Any]] = {}
    for o in objects:
        if o.get("source") != "http" or o.get("depth"):
            continue
        tx = txs.setdefault(int(o.get("tx_id") or 0), {"tx_id": int(o.get("tx_id") or 0), "method": o.get("method"),
                                                        "host": o.get("host"), "url": o.get("url"),
                                                        "status": o.get("status"), "ts_ns": o.get("ts_ns"),
                                                        "request": None, "response": None, "headers": None})
        tx["request" if o.get("direction") == "upload" else "response"] = o
        for k in ("method", "host", "url", "status"):
            tx[k] = tx[k] or o.get(k)
    for e in events:
        if e["event_type"] != "http":
            continue
        f = e.get("fields") or {}
        tid = int(f.get("tx_id") or 0)
        tx = txs.setdefault(tid, {"tx_id": tid, "method": f.get("http_method"), "host": f.get("hostname"),
                                  "url": f.get("url"), "status": f.get("status"), "ts_ns": e["ts_ns"],
                                  "request": None, "response": None, "headers": None})
        tx["headers"] = {"request": f.get("request_headers") or [], "response": f.get("response_headers") or []}
    return [txs[k] for k in sorted(txs)]


def session(view: AlertView, content: ContentRepo | None, uid: str) -> dict[str, Any]:
    """Everything the session page shows about flow *uid*."""
    alerts = view.of_flow(uid)
    flow = content.flow(uid) if content is not None else None
    objects = content.of_flow(uid) if content is not None else []
    events = content.events(uid) if content is not None else []
    if flow is None and not alerts and not objects:
        raise ServiceError("no such session", 404)
    first_hit = view.get(alerts[0]["id"]) if alerts else None
    if not objects and first_hit is not None and first_hit.get("object"):
        o = dict(first_hit["object"])  # without retention: the alerted objects the alert store keeps
        o.update(flow_uid=uid, alerted=1, method=first_hit.get("http_method"), status=first_hit.get("http_status"))
        objects = [o]
    ends = flow_ends(first_hit) if first_hit is not None else None
    for o in objects:
        o["flags"] = _flags(o)
    times = [t for t in [*(a["ts_ns"] for a in alerts), *(o.get("ts_ns") for o in objects)] if t]
    return {"uid": uid, "flow": flow, "ends": ends, "alerts": alerts, "objects": objects,
            "transactions": _transactions(objects, events),
            "events": [e for e in events if e["event_type"] != "http"], "retained": content is not None,
            "first_ts": flow["first_ts_ns"] if flow else min(times, default=None),
            "last_ts": flow["last_ts_ns"] if flow else max(times, default=None),
            "sensor": (flow or {}).get("sensor") or next((a.get("sensor") for a in alerts if a.get("sensor")), None)}


def _match(s: dict[str, Any]) -> tuple[FlowMatch, int, int]:
    """The flow's packets to cut: its endpoints and time range."""
    f = s["flow"]
    try:
        if f is not None:
            m = FlowMatch(f["client_ip"], f["client_port"], f["server_ip"], f["server_port"],
                          _PROTO.get(str(f.get("proto") or "").upper()))
            return m, int(f["first_ts_ns"]) - PAD_NS, int(f["last_ts_ns"]) + PAD_NS
        ends = s["ends"]
        if ends is None or not ends.client.ip or not ends.server.ip:
            raise ServiceError("the session's addresses are unknown", 404)
        m = FlowMatch(ends.client.ip, ends.client.port, ends.server.ip, ends.server.port)
    except ValueError:
        raise ServiceError("the session's addresses are not addresses", 404) from None
    return m, int(s["first_ts"]) - NO_FLOW_BACK_NS, int(s["last_ts"]) + 60 * PAD_NS


def pcap(settings: Any, db: ConsoleDB, who: Principal, s: dict[str, Any], ip: str = "") -> bytes:
    """The session's packets as a pcap (local packet store, else the sensor's endpoint); audited."""
    if not who.can(settings.download_role):
        raise ServiceError(f"downloading packets needs the {settings.download_role} role", 403)
    m, since, until = _match(s)
    if settings.packet_store is not None:
        buf = io.BytesIO()
        stats = PacketReader(settings.packet_store).cut(buf, since, until, m)
        data = buf.getvalue()
        packets = stats["packets"]
    else:
        ep = settings.packet_sensors.get(s.get("sensor") or "") or (
            next(iter(settings.packet_sensors.values())) if len(settings.packet_sensors) == 1 else None)
        if ep is None:
            raise ServiceError("no packet store is configured for this session's sensor", 404)
        try:
            token = Path(ep.token_file).read_text().strip()
            data = fetch_pcap(ep.url, token, since, until, m, ca_file=str(ep.ca_file) if ep.ca_file else None)
        except OSError as exc:
            raise ServiceError(f"the sensor's packets could not be had: {exc}", 502) from None
        packets = -1
    if len(data) <= 24:
        raise ServiceError("the packet store no longer holds this session's packets (it keeps recent traffic only)",
                           404)
    db.audit(None, who.username, "session.pcap", s["uid"], None, {"bytes": len(data), "packets": packets}, ip)
    return data


def object_zip(settings: Any, db: ConsoleDB, who: Principal, content: ContentRepo | None, content_id: str,
               ip: str = "") -> tuple[str, bytes]:
    """(file name, ZIP) of a retained object's bytes, encrypted with the password ``infected``; audited."""
    if not who.can(settings.download_role):
        raise ServiceError(f"downloading objects needs the {settings.download_role} role", 403)
    if content is None:
        raise ServiceError("no content store is configured (content_db)", 404)
    row = content.get(content_id)
    if row is None:
        raise ServiceError("no such object", 404)
    data = content.blob(row["sha256"]) if row.get("has_bytes") and row.get("sha256") else None
    if data is None:
        raise ServiceError("this object's bytes were not kept (retention.keep_bytes)", 404)
    name = row.get("filename") or (row.get("url") or "").rsplit("/", 1)[-1] or content_id
    keys = ("sha256", "md5", "size", "sniffed_mime", "declared_mime", "host", "url", "flow_uid")
    lines = [f"tapsift object {content_id}", *(f"{k} {row.get(k)}" for k in keys),
             f"The ZIP password is {PASSWORD.decode()}. Handle the content as hostile.", ""]
    info = "\n".join(lines)
    z = encrypted_zip([(f"{content_id}-{name}.bin", data), (f"{content_id}-info.txt", info.encode("utf-8"))])
    db.audit(None, who.username, "object.download", content_id, None, {"sha256": row.get("sha256"),
                                                                       "size": len(data)}, ip)
    return f"{content_id}.zip", z
