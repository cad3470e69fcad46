"""Sessions (``/sessions/{flow}``: the flow, transactions, objects, alerts; its PCAP) and retained objects'
downloads (``/objects/{id}.zip``, ZIP with the password ``infected``), and ``/api/v1/sessions…``."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from webui.deps import ClientIP, ContentDep, DbDep, SettingsDep, ViewDep, Viewer, api_router, page_router
from webui.rendering import render
from webui.services import flows as svc

pages = page_router()
api = api_router("sessions")


def _attachment(name: str, media: str, data: bytes) -> Response:
    safe = "".join(c for c in name if c.isalnum() or c in "._-")[:120] or "download"
    return Response(data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{safe}"',
                                                     "X-Content-Type-Options": "nosniff"})


@pages.get("/sessions/{uid}.pcap")  # before /sessions/{uid}, which would take "X.pcap" as the id
def session_pcap(uid: str, who: Viewer, view: ViewDep, content: ContentDep, db: DbDep, settings: SettingsDep,
                 ip: ClientIP) -> Response:
    s = svc.session(view, content, uid)
    return _attachment(f"tapsift-{uid}.pcap", "application/vnd.tcpdump.pcap", svc.pcap(settings, db, who, s, ip))


@pages.get("/sessions/{uid}", response_class=HTMLResponse)
def session_page(request: Request, uid: str, who: Viewer, view: ViewDep, content: ContentDep,
                 settings: SettingsDep) -> Response:
    s = svc.session(view, content, uid)
    pcap = settings.packet_store is not None or bool(settings.packet_sensors)
    return render(request, "session.html", s=s, can_download=who.can(settings.download_role), pcap=pcap)


@pages.get("/objects/{content_id}.zip")
def object_zip(content_id: str, who: Viewer, content: ContentDep, db: DbDep, settings: SettingsDep,
               ip: ClientIP) -> Response:
    name, data = svc.object_zip(settings, db, who, content, content_id, ip)
    return _attachment(name, "application/zip", data)


@api.get("/sessions/{uid}", summary="A session: flow, zones, HTTP transactions, objects with their flags, alerts")
def api_session(uid: str, who: Viewer, view: ViewDep, content: ContentDep) -> dict[str, Any]:
    s = svc.session(view, content, uid)
    s["ends"] = s["ends"].as_dict() if s["ends"] is not None else None
    return s


@api.get("/sessions/{uid}/pcap", summary="The session's packets (pcap; the download role)")
def api_session_pcap(uid: str, who: Viewer, view: ViewDep, content: ContentDep, db: DbDep, settings: SettingsDep,
                     ip: ClientIP) -> Response:
    s = svc.session(view, content, uid)
    return _attachment(f"tapsift-{uid}.pcap", "application/vnd.tcpdump.pcap", svc.pcap(settings, db, who, s, ip))


@api.get("/objects/{content_id}/zip", summary="A retained object as a ZIP, password infected (the download role)")
def api_object_zip(content_id: str, who: Viewer, content: ContentDep, db: DbDep, settings: SettingsDep,
                   ip: ClientIP) -> Response:
    name, data = svc.object_zip(settings, db, who, content, content_id, ip)
    return _attachment(name, "application/zip", data)
