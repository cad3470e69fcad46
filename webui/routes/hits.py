"""Hits: the list (query language, pivots, bulk triage, new since the last visit, auto-refresh), CSV export,
one hit, triage, an exception from a false positive, evidence images (``/hits…``) and ``/api/v1/hits…``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from appliance.store import NOTE_MAX, AlertQuery
from webui import charts
from webui.deps import (
    Analyst,
    ClientIP,
    ContentDep,
    DbDep,
    SettingsDep,
    ViewDep,
    Viewer,
    api_router,
    page_router,
    view_opener,
)
from webui.errors import ServiceError
from webui.evidence import finding_views
from webui.rendering import flash, redirect, render
from webui.services import exceptions as exc_svc
from webui.services import hits as svc
from webui.services import searches as search_svc
from webui.services.sessions import Principal

pages = page_router()
api = api_router("hits")
PARAMS = (*svc.FILTERS, "before")


def _params(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "") for k in PARAMS}


def _query(view: ViewDep, db: DbDep, who: Principal, params: dict[str, str], note_visit: bool
           ) -> tuple[AlertQuery, list[svc.FilterError], int]:
    baseline = search_svc.visit(db, who, view.max_seq()) if note_visit else db.user_state.baseline(who.user_id)
    q, errors = svc.parse_filters(params, view, tz=charts.zone(who.tz), user=who.username, baseline_seq=baseline)
    return q, errors, baseline


@pages.get("/hits", response_class=HTMLResponse)
def hits(request: Request, who: Viewer, view: ViewDep, db: DbDep, settings: SettingsDep) -> Response:
    params = _params(request)
    q, errors, baseline = _query(view, db, who, params, note_visit=not params["before"])
    total, rows = (0, []) if errors else svc.list_hits(view, q, settings.page_size)
    max_seq = view.max_seq()
    new = view.count(AlertQuery(after_seq=baseline), svc.COUNT_CAP) if max_seq > baseline else 0
    active = {k: v for k, v in params.items() if v and k != "before"}
    options = {"zones": view.zones(), "categories": view.distinct("category"),
               "policies": view.distinct("policy"), "inspectors": view.inspectors()}
    more = len(rows) == settings.page_size
    return render(request, "hits.html", 400 if errors else 200, rows=rows, total=total, capped=total > svc.COUNT_CAP,
                  cap=svc.COUNT_CAP, errors=errors, params=params, options=options, qs=urlencode(active),
                  next_qs=urlencode({**active, "before": svc.cursor(rows)}) if more else "", first_page=not
                  params["before"], baseline=baseline, new_since_visit=new, max_seq=max_seq,
                  saved=search_svc.saved(db, who, "hits"), cases=db.cases.list("open", 50) +
                  db.cases.list("in_progress", 50), users=[u["username"] for u in db.users() if not u["disabled"]],
                  refresh_s=settings.refresh_s, query=params["q"])


@pages.get("/hits.csv")
def hits_csv(request: Request, who: Viewer, view: ViewDep, db: DbDep, settings: SettingsDep) -> Response:
    q = svc.query_from(_params(request), view, tz=charts.zone(who.tz), user=who.username,
                       baseline_seq=db.user_state.baseline(who.user_id))
    rows = svc.csv_rows(view_opener(request), q, settings.csv_max_rows)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return StreamingResponse(rows, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="tapsift-hits-{stamp}.csv"'})


@pages.post("/hits/bulk")
def hits_bulk(request: Request, who: Analyst, view: ViewDep, db: DbDep, ip: ClientIP,
              ids: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI's form list
              verdict: Annotated[str, Form()] = "", assignee: Annotated[str, Form()] = "",
              unassign: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "",
              case_id: Annotated[str, Form()] = "", new_case: Annotated[str, Form()] = "",
              back: Annotated[str, Form()] = "") -> Response:
    who_gets = "" if unassign else (assignee.strip() or None)
    try:
        res = svc.bulk_triage(db, view, who, ids, verdict=verdict, assignee=who_gets, note=note,
                              case_id=int(case_id) if case_id.isdigit() else None, new_case=new_case, ip=ip)
    except ServiceError as exc:
        flash(request, f"Nothing changed: {exc}")
    else:
        parts = [f"{res.changed} hit{'s' if res.changed != 1 else ''} updated"]
        if res.case_id is not None:
            parts.append(f"{res.added_to_case} added to case #{res.case_id}")
        if res.missing:
            parts.append(f"{len(res.missing)} no longer stored")
        flash(request, "; ".join(parts) + ".")
    return redirect("/hits" + (f"?{back}" if back and not back.startswith(("/", "\\")) and "//" not in back
                               else ""))


@pages.get("/hits/{alert_id}", response_class=HTMLResponse)
def hit_detail(request: Request, alert_id: str, who: Viewer, view: ViewDep, db: DbDep, content: ContentDep,
               settings: SettingsDep) -> Response:
    hit = svc.get_hit(view, db, alert_id)
    retained = content.get(hit["content_id"]) if content is not None and hit.get("content_id") else None
    return render(request, "hit.html", hit=hit, flow=hit["flow"], record_json=svc.record_json(hit),
                  findings=finding_views(hit["findings"], settings.evidence_dir, retained), verdicts=hit["verdicts"],
                  cases=db.cases.of_hit(alert_id), open_cases=db.cases.list("open", 50),
                  users=[u["username"] for u in db.users() if not u["disabled"]], retained=retained,
                  can_download=who.can(settings.download_role), exception=exc_svc.proposal(hit),
                  exception_scopes=exc_svc.SCOPES)


@pages.post("/hits/{alert_id}/triage")
def hit_triage(request: Request, alert_id: str, who: Analyst, view: ViewDep, db: DbDep, ip: ClientIP,
               verdict: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "",
               assignee: Annotated[str, Form()] = "") -> Response:
    got = svc.set_verdict(db, view, who, alert_id, verdict, note, ip, assignee.strip() or None)
    flash(request, f"Marked as {got['verdict'].replace('_', ' ')}."
          + (" Stop it in future: add an exception below." if got["verdict"] == "false_positive" else ""))
    return redirect(f"/hits/{alert_id}" + ("#exception" if got["verdict"] == "false_positive" else ""))


@pages.post("/hits/{alert_id}/exception")
def hit_exception(request: Request, alert_id: str, who: Analyst, view: ViewDep, db: DbDep, settings: SettingsDep,
                  ip: ClientIP, scope: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI's form list
                  use_profile: Annotated[str, Form()] = "", url_prefix: Annotated[str, Form()] = "",
                  expires: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
                  reload: Annotated[str, Form()] = "") -> Response:
    hit = svc.get_hit(view, db, alert_id)
    try:
        res = exc_svc.add_for_hit(db, settings, who, hit, scope, use_profile=bool(use_profile),
                                  url_prefix=bool(url_prefix), expires=expires, reason=reason, reload=bool(reload),
                                  ip=ip)
    except ServiceError as exc:
        flash(request, f"No exception added: {exc}")
        return redirect(f"/hits/{alert_id}#exception")
    flash(request, f"Exception added to the policy (version {res.version}). "
          + (res.reload_message if reload else "The sensor applies it at its next reload."))
    return redirect("/policy#exceptions")


@pages.get("/hits/{alert_id}/evidence/{fi}/{ei}.png")
def hit_evidence_image(alert_id: str, fi: int, ei: int, who: Viewer, view: ViewDep, content: ContentDep,
                       settings: SettingsDep) -> Response:
    png = svc.evidence_png(view, alert_id, fi, ei, settings.evidence_dir, settings.image_max_pixels, content)
    return Response(png, media_type="image/png", headers={"Content-Disposition": "inline; filename=evidence.png",
                                                          "Cache-Control": "private, max-age=300"})


# --------------------------------------------------------------------------- API


class HitSummary(BaseModel):
    id: str
    seq: int
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
    flow_uid: str | None = None
    inspectors: str | None = None
    finding_count: int = 0
    triage: str
    assignee: str | None = None
    complete: bool = True


class HitPage(BaseModel):
    total: int
    """Matches, counted up to ``total_cap`` + 1 (more: ``total_capped``)."""
    total_capped: bool = False
    limit: int
    offset: int
    next: str = ""
    """``before`` for the next page (keyset; empty on the last page)."""
    items: list[HitSummary]


class TriageIn(BaseModel):
    verdict: Literal["new", "investigating", "confirmed", "false_positive", "resolved", "ignored"]
    """``confirmed`` is a true positive."""
    note: str = Field("", max_length=NOTE_MAX)
    assignee: str | None = Field(None, max_length=100)
    """A user name; "" unassigns; absent keeps the assignee."""


class TriageOut(BaseModel):
    alert_id: str
    verdict: str
    note: str
    user: str
    ts: float
    assignee: str | None = None


class BulkIn(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=svc.BULK_MAX)
    verdict: Literal["", "new", "investigating", "confirmed", "false_positive", "resolved", "ignored"] = ""
    assignee: str | None = Field(None, max_length=100)
    note: str = Field("", max_length=NOTE_MAX)
    case_id: int | None = None
    new_case: str = Field("", max_length=200)


def _api_query(view: ViewDep, db: DbDep, who: Principal, params: dict[str, str]) -> AlertQuery:
    q, errors, _ = _query(view, db, who, params, note_visit=False)
    if errors:
        raise _Invalid(errors)
    return q


class _Invalid(ServiceError):
    status = 400

    def __init__(self, errors: list[svc.FilterError]) -> None:
        super().__init__("; ".join(f"{e.label}: {e.message}" for e in errors))
        self.errors = errors


@api.get("/hits", response_model=HitPage, summary="List hits (newest first): the hits page's filters and query",
         responses={400: {"description": "a filter or the query cannot be read (which one, where, why)"}})
def api_hits(who: Viewer, view: ViewDep, db: DbDep, since: str = "", until: str = "", zone: str = "",
             severity: str = "", category: str = "", policy: str = "", inspector: str = "", rule: str = "",
             host: str = "", triage: str = "", q: str = "", before: str = "", limit: int = Query(50, ge=1, le=1000),
             offset: int = Query(0, ge=0)) -> Any:
    params = {"since": since, "until": until, "zone": zone, "severity": severity, "category": category,
              "policy": policy, "inspector": inspector, "rule": rule, "host": host, "triage": triage, "q": q,
              "before": before}
    try:
        query = _api_query(view, db, who, params)
    except _Invalid as exc:
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": str(exc), "errors": [e.as_dict() for e in exc.errors]}, status_code=400)
    total, rows = svc.list_hits(view, query, limit, offset)
    return HitPage(total=min(total, svc.COUNT_CAP), total_capped=total > svc.COUNT_CAP, limit=limit, offset=offset,
                   next=svc.cursor(rows) if len(rows) == limit else "",
                   items=[HitSummary(**{k: r.get(k) for k in HitSummary.model_fields if k in r}) for r in rows])


@api.get("/hits/poll", summary="How many hits matching the filters were stored after a given seq (auto-refresh)")
def api_hits_poll(request: Request, who: Viewer, view: ViewDep, db: DbDep,
                  after_seq: int = Query(0, ge=0)) -> dict[str, Any]:
    params = _params(request)
    params["before"] = ""
    try:
        query = _api_query(view, db, who, params)
    except _Invalid as exc:
        raise ServiceError(str(exc), 400) from None
    query.after_seq = after_seq
    n = view.count(query, 1000)
    return {"new": n, "capped": n > 1000, "max_seq": view.max_seq()}


@api.post("/hits/bulk", summary="Set the verdict/assignee of many hits and/or add them to a case (analyst)")
def api_hits_bulk(body: BulkIn, who: Analyst, view: ViewDep, db: DbDep, ip: ClientIP) -> dict[str, Any]:
    res = svc.bulk_triage(db, view, who, body.ids, verdict=body.verdict, assignee=body.assignee, note=body.note,
                          case_id=body.case_id, new_case=body.new_case, ip=ip)
    return {"changed": res.changed, "missing": res.missing, "case_id": res.case_id, "added_to_case": res.added_to_case}


@api.get("/hits/{alert_id}",
         summary="One hit: columns, EVE record, findings, object, verdict history, client and server")
def api_hit(alert_id: str, who: Viewer, view: ViewDep, db: DbDep) -> dict[str, Any]:
    hit = svc.get_hit(view, db, alert_id)
    hit["flow"] = hit["flow"].as_dict()
    hit["cases"] = db.cases.of_hit(alert_id)
    return hit


@api.post("/hits/{alert_id}/triage", response_model=TriageOut, summary="Record a verdict (analyst)")
def api_triage(alert_id: str, body: TriageIn, who: Analyst, view: ViewDep, db: DbDep, ip: ClientIP) -> TriageOut:
    return TriageOut(**svc.set_verdict(db, view, who, alert_id, body.verdict, body.note, ip, body.assignee))
