"""Logging in and out: ``/login`` (password), ``/login/totp`` (second factor), ``/logout``.

The login forms are the only pages open to anyone; they carry a pre-login cookie token instead
of a session's CSRF token. Throttled attempts get HTTP 429 with ``Retry-After``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from webui.db import ConsoleDB
from webui.deps import (
    DEVICE_COOKIE,
    PRELOGIN_COOKIE,
    SESSION_COOKIE,
    ClientIP,
    DbDep,
    PasswordsDep,
    ThrottleDep,
    Viewer,
    page_router,
)
from webui.rendering import error_page, redirect, render, set_cookie
from webui.security import new_token, same
from webui.services import login as svc
from webui.services.sessions import drop_session, new_session, pending_session, trust_device
from webui.services.throttle import Refusal

public = APIRouter(include_in_schema=False)
pages = page_router()

DEVICE_MAX_AGE = 365 * 86400


def _safe_next(target: str | None) -> str:
    """Only local paths after login (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _throttled(request: Request, template: str, refusal: Refusal, **ctx: Any) -> Response:
    request.app.state.counters["rate_limited"] += 1
    wait = refusal.retry_after_s
    resp = render(request, template, 429, error=f"Too many failed logins; try again in {wait} s.", **ctx)
    resp.headers["Retry-After"] = str(wait)
    return resp


def _logged_in(request: Request, db: ConsoleDB, user: dict[str, Any], ip: str, next_url: str,
               replace: str = "") -> Response:
    """The full session, the device cookie, the audit entry."""
    svc.record_login(db, user, ip)
    request.app.state.counters["logins"] += 1
    token, _ = new_session(db, user["id"], "ok", ip, request.headers.get("user-agent", ""), replace=replace)
    device = trust_device(db, user["id"], request.cookies.get(DEVICE_COOKIE, ""))
    resp = redirect(next_url)
    set_cookie(request, resp, SESSION_COOKIE, token)
    set_cookie(request, resp, DEVICE_COOKIE, device, max_age=DEVICE_MAX_AGE)
    resp.delete_cookie(PRELOGIN_COOKIE, path="/")
    return resp


@public.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    token = new_token()
    resp = render(request, "login.html", form_token=token, next=_safe_next(next))
    set_cookie(request, resp, PRELOGIN_COOKIE, token, max_age=3600)
    return resp


@public.post("/login", response_class=HTMLResponse)
async def login(request: Request, db: DbDep, passwords: PasswordsDep, throttle: ThrottleDep,
                ip: ClientIP) -> Response:
    form = await request.form()
    cookie, sent = request.cookies.get(PRELOGIN_COOKIE, ""), form.get("csrf")
    if not cookie or not isinstance(sent, str) or not same(cookie, sent):
        request.app.state.counters["csrf_refused"] += 1
        return error_page(request, 403, "Form expired",
                          "The login form was not accepted; reload the page and try again.")
    username, password = str(form.get("username", ""))[:64], str(form.get("password", ""))[:1024]
    next_url = _safe_next(str(form.get("next", "/")))
    ctx = {"form_token": cookie, "next": next_url, "username": username}
    got = await svc.check_password(db, passwords, throttle, username, password, ip=ip,
                                   device=request.cookies.get(DEVICE_COOKIE, ""))
    if got.refusal is not None:
        return _throttled(request, "login.html", got.refusal, **ctx)
    if got.user is None:
        request.app.state.counters["logins_failed"] += 1
        return render(request, "login.html", 401, error=svc.WRONG_LOGIN, **ctx)
    user = got.user
    if not user["totp_secret"]:
        return _logged_in(request, db, user, ip, next_url)
    token, _ = new_session(db, user["id"], "totp", ip, request.headers.get("user-agent", ""))
    resp = redirect(f"/login/totp?{urlencode({'next': next_url})}")
    set_cookie(request, resp, SESSION_COOKIE, token)
    resp.delete_cookie(PRELOGIN_COOKIE, path="/")
    return resp


@public.get("/login/totp", response_class=HTMLResponse)
def totp_form(request: Request, db: DbDep, next: str = "/") -> Response:
    row = pending_session(db, request.cookies.get(SESSION_COOKIE, ""))
    if row is None:
        return redirect("/login")
    return render(request, "totp.html", form_token=row["csrf"], next=_safe_next(next))


@public.post("/login/totp", response_class=HTMLResponse)
async def totp_login(request: Request, db: DbDep, throttle: ThrottleDep, ip: ClientIP) -> Response:
    form = await request.form()
    row = pending_session(db, request.cookies.get(SESSION_COOKIE, ""))
    sent = form.get("csrf")
    if row is None or not isinstance(sent, str) or not same(sent, row["csrf"]):
        return redirect("/login")
    next_url = _safe_next(str(form.get("next", "/")))
    got = svc.check_second_factor(db, throttle, row, str(form.get("code", "")), ip=ip,
                                  device=request.cookies.get(DEVICE_COOKIE, ""))
    if got.refusal is not None:
        return _throttled(request, "totp.html", got.refusal, form_token=row["csrf"], next=next_url)
    if got.user is None:
        request.app.state.counters["logins_failed"] += 1
        return render(request, "totp.html", 401, form_token=row["csrf"], next=next_url, error="Wrong code.")
    return _logged_in(request, db, got.user, ip, next_url, replace=row["token_hash"])


@pages.post("/logout")
def logout(request: Request, db: DbDep, who: Viewer, ip: ClientIP) -> Response:
    drop_session(db, who.session_hash)
    db.audit(None, who.username, "logout", who.username, ip=ip)
    resp = redirect("/login")
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp
