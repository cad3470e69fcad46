"""Hits: the list, CSV export, one hit, triage, evidence images (``/hits…``) and ``/api/v1/hits…``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from appliance.store import NOTE_MAX
from webui.deps import (
    Analyst,
    ClientIP,
    DbDep,
    SettingsDep,
    ViewDep,
    Viewer,
    api_router,
    page_router,
    view_opener,
)
from webui.evidence import finding_views
from webui.rendering import flash, redirect, render
from webui.services import hits as svc

pages = page_router()
api = api_router("hits")


def _filters(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "") for k in svc.FILTERS}


@pages.get("/hits", response_class=HTMLResponse)
def hits(request: Request, who: Viewer, view: ViewDep, settings: SettingsDep, page: int = 1) -> Response:
    params = _filters(request)
    page = max(1, min(page, 100_000))
    size = settings.page_size
    total, rows = svc.list_hits(view, svc.query_from(params), size, (page - 1) * size)
    options = {"zones": view.zones(), "categories": view.distinct("category"),
               "policies": view.distinct("policy"), "inspectors": view.inspectors()}
    active = {k: v for k, v in params.items() if v}
    return render(request, "hits.html", rows=rows, total=total, page=page, pages=max(1, (total + size - 1) // size),
                  params=params, options=options, qs=urlencode(active),
                  prev_qs=urlencode({**active, "page": page - 1}), next_qs=urlencode({**active, "page": page + 1}))


@pages.get("/hits.csv")
def hits_csv(request: Request, who: Viewer, settings: SettingsDep) -> Response:
    rows = svc.csv_rows(view_opener(request), svc.query_from(_filters(request)), settings.csv_max_rows)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(rows, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="tapsift-hits-{stamp}.csv"'})


@pages.get("/hits/{alert_id}", response_class=HTMLResponse)
def hit_detail(request: Request, alert_id: str, who: Viewer, view: ViewDep, db: DbDep,
               settings: SettingsDep) -> Response:
    hit = svc.get_hit(view, db, alert_id)
    return render(request, "hit.html", hit=hit, flow=hit["flow"], record_json=svc.record_json(hit),
                  findings=finding_views(hit["findings"], settings.evidence_dir), verdicts=hit["verdicts"])


@pages.post("/hits/{alert_id}/triage")
def hit_triage(request: Request, alert_id: str, who: Analyst, view: ViewDep, db: DbDep, ip: ClientIP,
               verdict: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "") -> Response:
    got = svc.set_verdict(db, view, who, alert_id, verdict, note, ip)
    flash(request, f"Marked as {got['verdict'].replace('_', ' ')}.")
    return redirect(f"/hits/{alert_id}")


@pages.get("/hits/{alert_id}/evidence/{fi}/{ei}.png")
def hit_evidence_image(alert_id: str, fi: int, ei: int, who: Viewer, view: ViewDep,
                       settings: SettingsDep) -> Response:
    png = svc.evidence_png(view, alert_id, fi, ei, settings.evidence_dir, settings.image_max_pixels)
    return Response(png, media_type="image/png", headers={"Content-Disposition": "inline; filename=evidence.png",
                                                          "Cache-Control": "private, max-age=300"})


# --------------------------------------------------------------------------- API


class HitSummary(BaseModel):
    id: str
    ts_ns: int
    severity: int
    category: str
    policy: str
    profile: str
    src_zone: str
    dst_zone: str
    src_ip: str | None = None
    src_port: int | None = None
    dest_ip: str | None = None
    dest_port: int | None = None
    http_host: str | None = None
    http_url: str | None = None
    file_name: str | None = None
    file_sha256: str | None = None
    inspectors: str | None = None
    finding_count: int = 0
    triage: str
    complete: bool = True


class HitPage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[HitSummary]


class TriageIn(BaseModel):
    verdict: Literal["new", "investigating", "confirmed", "false_positive", "resolved", "ignored"]
    """``confirmed`` is a true positive."""
    note: str = Field("", max_length=NOTE_MAX)


class TriageOut(BaseModel):
    alert_id: str
    verdict: str
    note: str
    user: str
    ts: float


@api.get("/hits", response_model=HitPage, summary="List hits (newest first) with the console's filters")
def api_hits(who: Viewer, view: ViewDep, since: str = "", until: str = "", zone: str = "", severity: str = "",
             category: str = "", policy: str = "", inspector: str = "", rule: str = "", host: str = "",
             triage: str = "", q: str = "", limit: int = Query(50, ge=1, le=1000),
             offset: int = Query(0, ge=0)) -> HitPage:
    query = svc.query_from({"since": since, "until": until, "zone": zone, "severity": severity, "category": category,
                            "policy": policy, "inspector": inspector, "rule": rule, "host": host, "triage": triage,
                            "q": q})
    total, rows = svc.list_hits(view, query, limit, offset)
    return HitPage(total=total, limit=limit, offset=offset,
                   items=[HitSummary(**{k: r.get(k) for k in HitSummary.model_fields if k in r}) for r in rows])


@api.get("/hits/{alert_id}",
         summary="One hit: columns, EVE record, findings, object, verdict history, client and server")
def api_hit(alert_id: str, who: Viewer, view: ViewDep, db: DbDep) -> dict[str, Any]:
    hit = svc.get_hit(view, db, alert_id)
    hit["flow"] = hit["flow"].as_dict()
    return hit


@api.post("/hits/{alert_id}/triage", response_model=TriageOut, summary="Record a verdict (analyst)")
def api_triage(alert_id: str, body: TriageIn, who: Analyst, view: ViewDep, db: DbDep, ip: ClientIP) -> TriageOut:
    return TriageOut(**svc.set_verdict(db, view, who, alert_id, body.verdict, body.note, ip))
