"""The caller's own account (``/account``): password, two-factor login, API tokens."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, Response

from webui.deps import ClientIP, DbDep, PasswordsDep, Viewer, page_router
from webui.errors import ServiceError, UserError
from webui.rendering import flash, redirect, render
from webui.services import account as svc

pages = page_router()


@pages.get("/account", response_class=HTMLResponse)
def account(request: Request, who: Viewer, db: DbDep) -> Response:
    return render(request, "account.html", **svc.account_view(db, who))


@pages.post("/account/password", response_class=HTMLResponse)
def account_password(request: Request, who: Viewer, db: DbDep, passwords: PasswordsDep, ip: ClientIP,
                     current: Annotated[str, Form()] = "", new: Annotated[str, Form()] = "",
                     confirm: Annotated[str, Form()] = "") -> Response:
    try:
        svc.change_password(db, passwords, who, current, new, confirm, ip=ip)
    except UserError as exc:
        flash(request, str(exc))
    else:
        flash(request, "Password changed; your other sessions were logged out.")
    return redirect("/account")


@pages.post("/account/totp", response_class=HTMLResponse)
def account_totp(request: Request, who: Viewer, db: DbDep, passwords: PasswordsDep, ip: ClientIP,
                 action: Annotated[str, Form()] = "", code: Annotated[str, Form()] = "",
                 current: Annotated[str, Form()] = "") -> Response:
    try:
        if action == "start":
            svc.totp_start(db, who)
        elif action == "confirm":
            svc.totp_confirm(db, who, code, ip=ip)
            flash(request, "Two-factor login is on.")
        elif action == "disable":
            svc.totp_disable(db, passwords, who, current, ip=ip)
            flash(request, "Two-factor login is off.")
    except UserError as exc:
        flash(request, str(exc))
    return redirect("/account")


@pages.post("/account/tz")
def account_tz(request: Request, who: Viewer, db: DbDep, ip: ClientIP, tz: Annotated[str, Form()] = "UTC") -> Response:
    from webui.services.searches import set_tz

    try:
        got = set_tz(db, who, tz, ip)
    except ServiceError as exc:
        flash(request, str(exc))
    else:
        flash(request, f"Times are shown in {got}.")
    return redirect("/account")


@pages.post("/account/tokens", response_class=HTMLResponse)
def account_token_new(request: Request, who: Viewer, db: DbDep, ip: ClientIP,
                      name: Annotated[str, Form()] = "") -> Response:
    token = svc.create_api_token(db, who, name, ip)
    view = svc.account_view(db, who)
    return render(request, "account.html", **{**view, "pending": None, "pending_uri": ""}, new_token=token)


@pages.post("/account/tokens/{tid}/delete")
def account_token_delete(request: Request, tid: int, who: Viewer, db: DbDep, ip: ClientIP) -> Response:
    svc.revoke_api_token(db, who, tid, ip)
    flash(request, "Token revoked.")
    return redirect("/account")
