"""The audit log for admins (``/audit``)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from webui.deps import Admin, DbDep, page_router
from webui.rendering import render

pages = page_router()
PAGE = 100


@pages.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request, who: Admin, db: DbDep, page: int = 1, action: str = "", user: str = "") -> Response:
    page = max(1, page)
    total, rows = db.audit_page(PAGE, (page - 1) * PAGE, action or None, user or None)
    base = {k: v for k, v in (("action", action), ("user", user)) if v}
    return render(request, "audit.html", rows=rows, total=total, page=page, pages=max(1, (total + PAGE - 1) // PAGE),
                  action=action, user_filter=user, prev_qs=urlencode({**base, "page": page - 1}),
                  next_qs=urlencode({**base, "page": page + 1}))
