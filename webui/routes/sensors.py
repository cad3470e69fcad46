"""The fleet: sensors, inspection workers and ingesters (``/sensors…``) and ``/api/v1/sensors``."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from webui.deps import Analyst, ClientIP, DbDep, SettingsDep, ViewDep, Viewer, api_router, page_router
from webui.rendering import flash, redirect, render
from webui.services import sensors as svc

pages = page_router()
api = api_router("sensors")


@pages.get("/sensors", response_class=HTMLResponse)
def sensors_page(request: Request, who: Viewer, view: ViewDep, db: DbDep) -> Response:
    return render(request, "sensors.html", **svc.fleet(view, db))


@pages.post("/sensors/push")
def sensors_push(request: Request, who: Analyst, db: DbDep, ip: ClientIP) -> Response:
    version = svc.push_policy(db, who, ip)
    flash(request, f"Policy version {version} pushed: the sensors apply it as soon as the ingester relays it.")
    return redirect("/sensors")


@pages.get("/sensors/{name}", response_class=HTMLResponse)
def sensor_page(request: Request, name: str, who: Viewer, view: ViewDep, db: DbDep, settings: SettingsDep,
                page: int = 1) -> Response:
    return render(request, "sensor.html", **svc.sensor_detail(view, db, name, max(1, min(page, 100_000)),
                                                               settings.page_size))


@api.get("/sensors", summary="The fleet's registry: every sensor, worker and ingester with its state and counters")
def api_sensors(who: Viewer, view: ViewDep, db: DbDep) -> dict[str, Any]:
    f = svc.fleet(view, db)
    keep = ("name", "role", "state", "age_s", "first_seen", "last_seen", "policy_version", "policy_current",
            "software", "counters")
    return {"newest_policy": f["newest"]["version"] if f["newest"] else None,
            "sensors": [{k: r.get(k) for k in keep} for r in f["sensors"]]}
