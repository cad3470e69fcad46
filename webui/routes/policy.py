"""The policy: editor, review, save, reload, history, rollback (``/policy…``) and ``/api/v1/policy…``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from webui import charts, policyedit
from webui.deps import Analyst, ClientIP, ContentDep, DbDep, SettingsDep, ViewDep, Viewer, api_router, page_router
from webui.errors import ServiceError
from webui.rendering import error_page, flash, redirect, render
from webui.services import backtest as bt_svc
from webui.services import exceptions as exc_svc
from webui.services import policy as svc

pages = page_router()
api = api_router("policy")


def _editor(request: Request, view: ViewDep, settings: SettingsDep, text: str, base_version: str,
            status: int = 200, validation: policyedit.Validation | None = None, **extra: Any) -> Response:
    val = validation or svc.validate(settings, text)
    profiles = list(val.policy.profiles.values()) if val.policy else []
    extra.setdefault("periods", list(bt_svc.PERIODS))
    return render(request, "policy.html", status, text=text, base_version=base_version, validation=val,
                  lines=text.split("\n"), issues_by_line=val.by_line(), quality=view.rule_quality(),
                  list_quality=view.list_quality(), profiles=profiles, path=str(svc.policy_path(settings)),
                  pid_file=settings.sensor_pid_file, exceptions=exc_svc.listing(val),
                  backtest_on=settings.content_db is not None, **extra)


def _review(request: Request, settings: SettingsDep, p: svc.Proposal, base_version: str, comment: str) -> Response:
    return render(request, "policy_preview.html", text=p.text, base_version=base_version, comment=comment,
                  diff=p.diff, validation=p.validation, new_version=p.new_version, pid_file=settings.sensor_pid_file,
                  changed=p.changed)


@pages.get("/policy", response_class=HTMLResponse)
def policy_page(request: Request, who: Viewer, db: DbDep, view: ViewDep, settings: SettingsDep) -> Response:
    try:
        text = svc.current_policy(db, settings)
    except ServiceError as exc:
        return error_page(request, exc.status, "Policy", str(exc))
    return _editor(request, view, settings, text, policyedit.version_of(text))


@pages.post("/policy", response_class=HTMLResponse)
def policy_post(request: Request, who: Analyst, db: DbDep, view: ViewDep, content: ContentDep, settings: SettingsDep,
                ip: ClientIP, text: Annotated[str, Form()] = "", base_version: Annotated[str, Form()] = "",
                action: Annotated[str, Form()] = "validate", comment: Annotated[str, Form()] = "",
                reload: Annotated[str, Form()] = "", period: Annotated[str, Form()] = "24h",
                since: Annotated[str, Form()] = "", until: Annotated[str, Form()] = "") -> Response:
    """One form, four buttons: ``validate`` (errors in place), ``backtest`` (what it would raise over the
    retained content), ``preview`` (the diff), ``save``."""
    text, comment = policyedit.normalise(text), comment[:500]
    val = svc.validate(settings, text)
    if action == "validate" or not val.ok:
        return _editor(request, view, settings, text, base_version, 200 if val.ok else 422, val, checked=True)
    if action == "backtest":
        try:
            res = bt_svc.run(settings, db, content, text, period, since, until, charts.zone(who.tz))
        except ServiceError as exc:
            return _editor(request, view, settings, text, base_version, exc.status, val, backtest_error=str(exc),
                           bt_period=period, bt_since=since, bt_until=until)
        return _editor(request, view, settings, text, base_version, 200, val, backtest=res, bt_period=period,
                       bt_since=since, bt_until=until)
    if action == "preview":
        return _review(request, settings, svc.propose(db, settings, text), base_version, comment)
    if action != "save":
        raise ServiceError("unknown action", 400)
    try:
        res = svc.save_policy(db, settings, who, text, base_version, comment, reload=reload == "1", ip=ip)
    except ServiceError as exc:
        return _editor(request, view, settings, text, base_version, exc.status, val, save_error=str(exc))
    flash(request, f"Saved policy version {res.version} (history #{res.version_id}). "
                   + (res.reload_message if reload == "1" else "The sensor was not signalled."))
    return redirect("/policy/versions")


@pages.post("/policy/exceptions/{index}/delete")
def policy_exception_delete(request: Request, index: int, who: Analyst, db: DbDep, settings: SettingsDep,
                            ip: ClientIP, base_version: Annotated[str, Form()] = "",
                            reload: Annotated[str, Form()] = "") -> Response:
    res = exc_svc.remove(db, settings, who, index, base_version, bool(reload), ip)
    flash(request, f"Exception removed (policy version {res.version}). "
          + (res.reload_message if reload else "The sensor drops it at its next reload."))
    return redirect("/policy#exceptions")


@pages.post("/policy/reload")
def policy_reload(request: Request, who: Analyst, db: DbDep, settings: SettingsDep, ip: ClientIP) -> Response:
    _, msg = svc.reload_sensor(db, settings, who, ip)
    flash(request, msg)
    return redirect("/policy")


@pages.get("/policy/versions", response_class=HTMLResponse)
def policy_versions(request: Request, who: Viewer, db: DbDep, settings: SettingsDep) -> Response:
    try:
        current = svc.current_policy(db, settings)
    except ServiceError as exc:
        return error_page(request, exc.status, "Policy", str(exc))
    return render(request, "policy_versions.html", versions=db.policy_versions(),
                  current_version=policyedit.version_of(current))


@pages.get("/policy/versions/{vid}", response_class=HTMLResponse)
def policy_version(request: Request, vid: int, who: Viewer, db: DbDep, settings: SettingsDep) -> Response:
    row = svc.version(db, vid)
    current = svc.current_policy(db, settings)
    return render(request, "policy_version.html", v=row, current_version=policyedit.version_of(current),
                  diff=policyedit.diff_lines(current, row["text"], "current", f"history #{vid}"))


@pages.post("/policy/versions/{vid}/rollback", response_class=HTMLResponse)
def policy_rollback(request: Request, vid: int, who: Analyst, db: DbDep, settings: SettingsDep) -> Response:
    """Rolling back = proposing that version's text again: the diff, then save."""
    row = svc.version(db, vid)
    p = svc.propose(db, settings, row["text"], f"history #{vid}")
    return _review(request, settings, p, p.base_version, f"rollback to history #{vid} (version {row['version']})")


# --------------------------------------------------------------------------- API


class Issue(BaseModel):
    line: int
    column: int
    message: str


class PolicyOut(BaseModel):
    path: str
    version: str
    text: str


class PolicyCheck(BaseModel):
    ok: bool
    version: str
    issues: list[Issue] = []
    warnings: list[str] = []
    summary: str = ""


class PolicyIn(BaseModel):
    text: str = Field(max_length=policyedit.MAX_POLICY_BYTES)
    base_version: str | None = None
    """The version the edit started from; a save is refused (409) if the file has changed since."""
    comment: str = Field("", max_length=500)
    reload: bool = False
    """Signal the sensor (SIGHUP) after saving."""


class PolicySaved(BaseModel):
    version: str
    history_id: int
    reloaded: bool
    reload_message: str
    warnings: list[str]


class PolicyVersion(BaseModel):
    id: int
    ts: float
    user: str
    version: str
    comment: str
    size: int


class ReloadOut(BaseModel):
    sent: bool
    message: str


@api.get("/policy", response_model=PolicyOut, summary="The policy file's text and version")
def api_policy(who: Viewer, db: DbDep, settings: SettingsDep) -> PolicyOut:
    text = svc.current_policy(db, settings)
    return PolicyOut(path=str(settings.policy_path), version=policyedit.version_of(text), text=text)


@api.post("/policy/validate", response_model=PolicyCheck, summary="Validate policy text (nothing is saved)")
def api_policy_validate(body: PolicyIn, who: Viewer, settings: SettingsDep) -> PolicyCheck:
    val = svc.validate(settings, body.text)
    return PolicyCheck(ok=val.ok, version=policyedit.version_of(policyedit.normalise(body.text)),
                       summary=val.summary, warnings=val.warnings,
                       issues=[Issue(line=i.line, column=i.column, message=i.message) for i in val.issues])


@api.put("/policy", response_model=PolicySaved, summary="Save the policy (validated, versioned, audited)",
         responses={409: {"description": "changed since base_version"}, 422: {"description": "invalid"}})
def api_policy_save(body: PolicyIn, who: Analyst, db: DbDep, settings: SettingsDep, ip: ClientIP) -> PolicySaved:
    res = svc.save_policy(db, settings, who, body.text, body.base_version, body.comment, body.reload, ip)
    return PolicySaved(version=res.version, history_id=res.version_id, reloaded=res.reloaded,
                       reload_message=res.reload_message, warnings=res.warnings)


@api.get("/policy/versions", response_model=list[PolicyVersion], summary="The policy's version history")
def api_policy_versions(who: Viewer, db: DbDep, settings: SettingsDep) -> list[PolicyVersion]:
    svc.current_policy(db, settings)
    return [PolicyVersion(**r) for r in db.policy_versions()]


class BacktestIn(BaseModel):
    text: str = Field(max_length=policyedit.MAX_POLICY_BYTES)
    period: str = "24h"
    """``24h``, ``7d``, ``30d`` (ending at the newest retained object) or ``custom`` (``since``/``until``)."""
    since: str = ""
    until: str = ""


@api.post("/policy/backtest", summary="What a policy text would raise over the retained content (analyst)")
def api_policy_backtest(body: BacktestIn, who: Analyst, db: DbDep, content: ContentDep,
                        settings: SettingsDep) -> dict[str, Any]:
    res = bt_svc.run(settings, db, content, body.text, body.period, body.since, body.until, charts.zone(who.tz))
    return res.as_dict()


@api.post("/policy/reload", response_model=ReloadOut, summary="Signal the sensor to reload the policy")
def api_policy_reload(who: Analyst, db: DbDep, settings: SettingsDep, ip: ClientIP) -> ReloadOut:
    ok, msg = svc.reload_sensor(db, settings, who, ip)
    return ReloadOut(sent=ok, message=msg)
