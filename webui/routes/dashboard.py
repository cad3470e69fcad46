"""The dashboard (``/``) and the statistics API (``/api/v1/stats``)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from webui import charts
from webui.deps import SettingsDep, ViewDep, Viewer, api_router, page_router
from webui.rendering import render
from webui.services import stats as svc

pages = page_router()
api = api_router("stats")


@pages.get("/", response_class=HTMLResponse)
def dashboard(request: Request, who: Viewer, view: ViewDep, settings: SettingsDep, range: str = "24h",
              since: str = "", until: str = "") -> Response:
    return render(request, "dashboard.html", **svc.dashboard(view, settings, range, charts.zone(who.tz),
                                                             svc.zoom(since, until)))


@api.get("/stats", summary="Store totals, rule quality and the sensor's counters")
def api_stats(who: Viewer, view: ViewDep, settings: SettingsDep) -> dict[str, Any]:
    return svc.api_stats(view, settings)
