"""Server-rendered pages: the Jinja2 environment (autoescape on; no ``|safe`` on data), notices, redirects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import pass_context

from appliance.store import TRIAGE_STATES
from appliance.store.alertfields import HIT_FIELDS
from appliance.store.content import CONTENT_FIELDS
from appliance.store.querylang import quote_value
from webui import charts
from webui.deps import is_https, principal

TEMPLATES = Path(__file__).resolve().parent / "templates"
SEVERITY_NAMES = {1: "critical", 2: "high", 3: "medium", 4: "low", 5: "info"}
VERDICT_LABELS = {"new": "new", "investigating": "investigating", "confirmed": "true positive",
                  "false_positive": "false positive", "resolved": "resolved", "ignored": "ignored"}


def _fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _fmt_num(n: float | None, digits: int = 0) -> str:
    if n is None:
        return "–"
    return f"{n:,.{digits}f}"


def _tz(ctx: Any) -> Any:
    user = ctx.get("user")
    return charts.zone(getattr(user, "tz", None))


@pass_context
def _fmt_ts(ctx: Any, ts_ns: int | None) -> str:
    """A packet time in the viewer's time zone."""
    return charts.fmt_ts(ts_ns, _tz(ctx))


@pass_context
def _fmt_epoch(ctx: Any, ts: float | None) -> str:
    return charts.fmt_ts(int(ts * 1e9), _tz(ctx)) if ts else ""


@pass_context
def _tz_name(ctx: Any, _: Any = None) -> str:
    user = ctx.get("user")
    return getattr(user, "tz", None) or "UTC"


def _pivot(field: str, value: Any, base: str = "", exclude: bool = False) -> str:
    """A query that adds ``field:value`` (or its negation) to *base*."""
    term = f"{'-' if exclude else ''}{field}:{quote_value(str(value))}"
    return f"{base} {term}".strip() if base else term


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES))
    env = templates.env
    env.autoescape = True
    env.globals.update(severity_names=SEVERITY_NAMES, verdict_labels=VERDICT_LABELS, triage_states=TRIAGE_STATES,
                       pivot=_pivot, hit_fields=HIT_FIELDS.names(), content_fields=CONTENT_FIELDS.names())
    env.filters.update(ts=_fmt_ts, epoch=_fmt_epoch, bytes=_fmt_bytes, num=_fmt_num, tzname=_tz_name,
                       sev=lambda s: SEVERITY_NAMES.get(s, str(s)), verdict=lambda v: VERDICT_LABELS.get(v, v),
                       qv=lambda v: quote_value(str(v)))
    return templates


def render(request: Request, name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """Render a page with the caller, their CSRF token and a one-shot notice."""
    p = principal(request)
    st = request.app.state
    notice = st.flash.pop(p.session_hash, None) if p is not None else None
    ctx.setdefault("notice", notice)
    return st.templates.TemplateResponse(request, name, {"user": p, "csrf": p.csrf if p else "", **ctx},
                                         status_code=status_code)


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    return render(request, "error.html", status, title=title, message=message)


def flash(request: Request, message: str) -> None:
    """A notice shown once, on the caller's next page."""
    p = principal(request)
    if p is not None and p.session_hash:
        request.app.state.flash[p.session_hash] = message


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def set_cookie(request: Request, resp: Response, name: str, value: str, max_age: int | None = None) -> None:
    """HttpOnly, SameSite=Strict, Secure over HTTPS."""
    resp.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=is_https(request),
                    path="/")
