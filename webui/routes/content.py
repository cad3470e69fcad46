"""Content search (``/content``): every retained object, with the query language; one object's page."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from appliance.store.querylang import parse
from webui import charts
from webui.deps import ContentDep, DbDep, SettingsDep, Viewer, api_router, page_router
from webui.errors import ServiceError
from webui.rendering import render
from webui.services import content as svc
from webui.services import hits as hit_svc
from webui.services import searches as search_svc

pages = page_router()
api = api_router("content")


def _need(content: ContentDep) -> Any:
    if content is None:
        raise ServiceError("no content store is configured (content_db): only alerted content is kept", 404)
    return content


@pages.get("/content", response_class=HTMLResponse)
def content_search(request: Request, who: Viewer, db: DbDep, content: ContentDep, settings: SettingsDep) -> Response:
    params = {k: request.query_params.get(k, "") for k in ("q", "before")}
    if content is None:
        return render(request, "content.html", configured=False, params=params, rows=[], errors=[], total=0,
                      saved=search_svc.saved(db, who, "content"))
    errors, total, rows, _ = svc.search(content, params, tz=charts.zone(who.tz), limit=settings.page_size)
    active = {"q": params["q"]} if params["q"] else {}
    more = len(rows) == settings.page_size
    return render(request, "content.html", 400 if errors else 200, configured=True, params=params, rows=rows,
                  errors=errors, total=total, capped=total > hit_svc.COUNT_CAP, cap=hit_svc.COUNT_CAP,
                  next_qs=urlencode({**active, "before": hit_svc.cursor(rows)}) if more else "",
                  first_page=not params["before"], query=params["q"], saved=search_svc.saved(db, who, "content"))


@pages.get("/content/{content_id}", response_class=HTMLResponse)
def content_object(request: Request, content_id: str, who: Viewer, content: ContentDep, settings: SettingsDep,
                   q: str = "") -> Response:
    try:
        terms = svc.query_terms(parse(q)) if q else []
    except ValueError:
        terms = []
    d = svc.detail(_need(content), content_id, terms)
    return render(request, "content_object.html", **d, q=q, can_download=who.can(settings.download_role))


@api.get("/content", summary="Search the retained content with the query language (newest first)",
         responses={400: {"description": "the query cannot be read"}})
def api_content(who: Viewer, content: ContentDep, q: str = "", before: str = "",
                limit: int = Query(50, ge=1, le=1000)) -> Any:
    errors, total, rows, _ = svc.search(_need(content), {"q": q, "before": before}, tz=charts.zone(who.tz),
                                        limit=limit)
    if errors:
        return JSONResponse({"detail": "; ".join(e.message for e in errors),
                             "errors": [e.as_dict() for e in errors]}, status_code=400)
    return {"total": min(total, hit_svc.COUNT_CAP), "total_capped": total > hit_svc.COUNT_CAP,
            "next": hit_svc.cursor(rows) if len(rows) == limit else "", "items": rows}


@api.get("/content/{content_id}", summary="One retained object: metadata, text, children")
def api_content_object(content_id: str, who: Viewer, content: ContentDep) -> dict[str, Any]:
    d = svc.detail(_need(content), content_id, [])
    return {**d["row"], "children": d["children"]}
