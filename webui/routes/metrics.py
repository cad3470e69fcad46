"""``/metrics`` (Prometheus, any token) and the OpenAPI document (``/api/v1/openapi.json``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from webui.deps import SettingsDep, Viewer, api_router, view_opener
from webui.services.stats import metrics_text

router = APIRouter(tags=["metrics"])
api = api_router("meta")


@router.get("/metrics", response_class=PlainTextResponse,
            summary="Prometheus text exposition (bearer token of any role)")
def metrics(request: Request, who: Viewer, settings: SettingsDep) -> PlainTextResponse:
    return PlainTextResponse(metrics_text(view_opener(request), settings, request.app.state.counters),
                             media_type="text/plain; version=0.0.4")


@api.get("/openapi.json", include_in_schema=False)
def api_openapi(request: Request, who: Viewer) -> dict[str, Any]:
    return request.app.openapi()
