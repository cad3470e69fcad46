"""Cases: the list, one case (hits, notes, its log), creating and changing them (``/cases…``, ``/api/v1/cases…``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from appliance.store import NOTE_MAX
from webui.deps import Analyst, ClientIP, DbDep, ViewDep, Viewer, api_router, page_router
from webui.rendering import flash, redirect, render
from webui.services import cases as svc

pages = page_router()
api = api_router("cases")


@pages.get("/cases", response_class=HTMLResponse)
def cases(request: Request, who: Viewer, db: DbDep, status: str = "") -> Response:
    st = status if status in svc.STATUSES else None
    return render(request, "cases.html", cases=db.cases.list(st), status=st or "", statuses=svc.STATUSES,
                  users=[u["username"] for u in db.users() if not u["disabled"]])


@pages.post("/cases")
def case_create(request: Request, who: Analyst, db: DbDep, ip: ClientIP, title: Annotated[str, Form()] = "",
                description: Annotated[str, Form()] = "", assignee: Annotated[str, Form()] = "") -> Response:
    cid = svc.create(db, who, title, description, assignee, ip=ip)
    flash(request, f"Case #{cid} opened.")
    return redirect(f"/cases/{cid}")


@pages.get("/cases/{cid}", response_class=HTMLResponse)
def case_page(request: Request, cid: int, who: Viewer, db: DbDep, view: ViewDep) -> Response:
    return render(request, "case.html", **svc.detail(db, view, cid), statuses=svc.STATUSES,
                  users=[u["username"] for u in db.users() if not u["disabled"]])


@pages.post("/cases/{cid}")
def case_update(request: Request, cid: int, who: Analyst, db: DbDep, ip: ClientIP,
                status: Annotated[str, Form()] = "", assignee: Annotated[str | None, Form()] = None,
                title: Annotated[str, Form()] = "", note: Annotated[str, Form()] = "") -> Response:
    svc.update(db, who, cid, status=status or None, assignee=assignee, title=title or None, note=note, ip=ip)
    flash(request, "Case updated.")
    return redirect(f"/cases/{cid}")


@pages.post("/cases/{cid}/hits/{alert_id}/remove")
def case_remove_hit(request: Request, cid: int, alert_id: str, who: Analyst, db: DbDep, ip: ClientIP) -> Response:
    svc.remove_hit(db, who, cid, alert_id, ip)
    flash(request, f"Hit {alert_id} removed from the case.")
    return redirect(f"/cases/{cid}")


# --------------------------------------------------------------------------- API


class CaseIn(BaseModel):
    title: str = Field(min_length=1, max_length=svc.TITLE_MAX)
    description: str = Field("", max_length=NOTE_MAX)
    assignee: str = Field("", max_length=100)
    ids: list[str] = Field([], max_length=1000)


class CasePatch(BaseModel):
    status: str | None = None
    assignee: str | None = Field(None, max_length=100)
    title: str | None = Field(None, max_length=svc.TITLE_MAX)
    note: str = Field("", max_length=NOTE_MAX)


class HitsIn(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=1000)


@api.get("/cases", summary="Cases, most recently changed first")
def api_cases(who: Viewer, db: DbDep, status: str = "") -> list[dict[str, Any]]:
    return db.cases.list(status if status in svc.STATUSES else None)


@api.post("/cases", summary="Open a case (analyst), optionally with hits", status_code=201)
def api_case_create(body: CaseIn, who: Analyst, db: DbDep, ip: ClientIP) -> dict[str, Any]:
    return {"id": svc.create(db, who, body.title, body.description, body.assignee, body.ids, ip)}


@api.get("/cases/{cid}", summary="A case: its hits, notes and log")
def api_case(cid: int, who: Viewer, db: DbDep, view: ViewDep) -> dict[str, Any]:
    d = svc.detail(db, view, cid)
    return {**d["case"], "hit_ids": [h["id"] for h in d["hits"]] + d["missing"], "notes": d["notes"],
            "log": d["log"]}


@api.patch("/cases/{cid}", summary="Change a case's status, assignee or title and/or add a note (analyst)")
def api_case_patch(cid: int, body: CasePatch, who: Analyst, db: DbDep, ip: ClientIP) -> dict[str, Any]:
    svc.update(db, who, cid, status=body.status, assignee=body.assignee, title=body.title, note=body.note, ip=ip)
    return svc.get(db, cid)


@api.post("/cases/{cid}/hits", summary="Add hits to a case (analyst)")
def api_case_hits(cid: int, body: HitsIn, who: Analyst, db: DbDep, view: ViewDep, ip: ClientIP) -> dict[str, int]:
    return {"added": svc.add_hits(db, view, who, cid, body.ids, ip)}
