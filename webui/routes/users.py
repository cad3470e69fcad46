"""User management for admins (``/users``)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, Response

from webui.deps import Admin, ClientIP, DbDep, PasswordsDep, ThrottleDep, page_router
from webui.errors import UserError
from webui.rendering import flash, redirect, render
from webui.security import ROLES
from webui.services import users as svc

pages = page_router()


def _page(request: Request, db: DbDep, throttle: ThrottleDep, status: int = 200, **extra: Any) -> Response:
    return render(request, "users.html", status, users=svc.users_with_state(db, throttle), roles=ROLES,
                  now=time.time(), **extra)


@pages.get("/users", response_class=HTMLResponse)
def users_page(request: Request, who: Admin, db: DbDep, throttle: ThrottleDep) -> Response:
    return _page(request, db, throttle)


@pages.post("/users", response_class=HTMLResponse)
def users_add(request: Request, who: Admin, db: DbDep, passwords: PasswordsDep, throttle: ThrottleDep,
              ip: ClientIP, username: Annotated[str, Form()] = "", role: Annotated[str, Form()] = "",
              password: Annotated[str, Form()] = "") -> Response:
    try:
        pw = svc.create_user(db, passwords, username, role, password or None, actor=who.username, ip=ip)
    except UserError as exc:
        return _page(request, db, throttle, 422, error=str(exc))
    return _page(request, db, throttle, created=username, generated=None if password else pw)


@pages.post("/users/{uid}", response_class=HTMLResponse)
def users_change(request: Request, uid: int, who: Admin, db: DbDep, passwords: PasswordsDep, throttle: ThrottleDep,
                 ip: ClientIP, action: Annotated[str, Form()] = "", role: Annotated[str, Form()] = "") -> Response:
    user, generated = svc.change_user(db, passwords, who, uid, action, role=role, ip=ip)
    if generated:
        return _page(request, db, throttle, created=user["username"], generated=generated)
    label = "clear login throttling" if action == "unlock" else action.replace("_", " ")
    flash(request, f"User {user['username']}: {label} done.")
    return redirect("/users")
