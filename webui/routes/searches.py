"""Saved searches (``/searches…``): save the current query under a name, run it, delete it."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Form, Request
from fastapi.responses import Response

from webui.deps import ClientIP, DbDep, Viewer, page_router
from webui.errors import ServiceError
from webui.rendering import flash, redirect
from webui.services import searches as svc

pages = page_router()
_PAGES = {"hits": "/hits", "content": "/content"}


@pages.post("/searches")
def search_save(request: Request, who: Viewer, db: DbDep, ip: ClientIP, scope: Annotated[str, Form()] = "hits",
                name: Annotated[str, Form()] = "", query: Annotated[str, Form()] = "") -> Response:
    page = _PAGES.get(scope, "/hits")
    try:
        svc.save(db, who, scope, name, query, ip)
    except ServiceError as exc:
        flash(request, f"Not saved: {exc}")
    else:
        flash(request, f"Saved the search {name.strip()!r}.")
    return redirect(f"{page}?{urlencode({'q': query})}" if query else page)


@pages.post("/searches/{sid}/delete")
def search_delete(request: Request, sid: int, who: Viewer, db: DbDep, ip: ClientIP,
                  scope: Annotated[str, Form()] = "hits") -> Response:
    svc.delete(db, who, sid, ip)
    flash(request, "Saved search deleted.")
    return redirect(_PAGES.get(scope, "/hits"))
