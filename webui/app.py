"""The console's app factory: ``create_app(settings)``.

Security decisions in one place: every response carries a strict Content-Security-Policy (no
inline script or style; ``script-src 'self'``), ``nosniff``, no framing;
authenticated pages are ``no-store``; ``Referrer-Policy: same-origin`` keeps
search URLs from leaking to other sites. Unsafe methods from another origin are refused before any
route runs. Templates autoescape everything (no ``|safe`` on data).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from appliance.store import TRIAGE_STATES, StoreError
from webui import charts
from webui.auth import AuthRequired, CsrfFailed, Forbidden, Principal, principal
from webui.db import ConsoleDB
from webui.security import Passwords, RateLimiter
from webui.settings import ConsoleSettings

HERE = Path(__file__).resolve().parent

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SEVERITY_NAMES = {1: "critical", 2: "high", 3: "medium", 4: "low", 5: "info"}
VERDICT_LABELS = {"new": "new", "investigating": "investigating", "confirmed": "true positive",
                  "false_positive": "false positive", "resolved": "resolved", "ignored": "ignored"}


class SecurityHeaders:
    """Pure ASGI middleware: security headers on every response; cross-origin unsafe requests refused."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if scope["method"] in ("POST", "PUT", "PATCH", "DELETE") and not _same_origin(headers):
            resp = Response("cross-origin request refused", status_code=403, media_type="text/plain")
            await resp(scope, receive, self._wrap(send, scope))
            return
        await self.app(scope, receive, self._wrap(send, scope))

    @staticmethod
    def _wrap(send: Send, scope: Scope) -> Send:
        static = scope.get("path", "").startswith("/static/")

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                hdrs = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                names = {k.lower() for k, _ in hdrs}
                extra = {
                    b"content-security-policy": CSP.encode(),
                    b"x-content-type-options": b"nosniff",
                    b"x-frame-options": b"DENY",
                    b"referrer-policy": b"same-origin",
                    b"cross-origin-opener-policy": b"same-origin",
                    b"cross-origin-resource-policy": b"same-origin",
                    b"permissions-policy": b"camera=(), microphone=(), geolocation=(), interest-cohort=()",
                }
                if not static:
                    extra[b"cache-control"] = b"no-store"
                hdrs += [(k, v) for k, v in extra.items() if k not in names]
                message = {**message, "headers": hdrs}
            await send(message)

        return wrapped


def _same_origin(headers: dict[str, str]) -> bool:
    """False only when the browser tells us the request came from another site or origin.

    ``Sec-Fetch-Site`` (sent by current browsers) decides when present; otherwise ``Origin``
    must name this host. Requests with neither (API clients) still need their CSRF token or
    bearer token. Same-origin form posts may carry ``Origin: null`` under strict referrer
    policies, which is why ``Sec-Fetch-Site`` comes first.
    """
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return True
    host = headers.get("host", "")
    try:
        return origin != "null" and urlsplit(origin).netloc.lower() == host.lower()
    except ValueError:
        return False


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


def _fmt_epoch(ts: float | None) -> str:
    return charts.fmt_ts(int(ts * 1e9)) if ts else ""


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.autoescape = True
    env.globals.update(severity_names=SEVERITY_NAMES, verdict_labels=VERDICT_LABELS, triage_states=TRIAGE_STATES)
    env.filters.update(ts=charts.fmt_ts, epoch=_fmt_epoch, bytes=_fmt_bytes, num=_fmt_num,
                       sev=lambda s: SEVERITY_NAMES.get(s, str(s)), verdict=lambda v: VERDICT_LABELS.get(v, v))
    return templates


def render(request: Request, name: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    """Render a page with the caller, their CSRF token and a one-shot notice."""
    p: Principal | None = principal(request)
    st = request.app.state
    notice = st.flash.pop(p.session_hash, None) if p is not None else None
    ctx.setdefault("notice", notice)
    return st.templates.TemplateResponse(request, name, {"user": p, "csrf": p.csrf if p else "", **ctx},
                                         status_code=status_code)


def flash(request: Request, message: str) -> None:
    p = principal(request)
    if p is not None and p.session_hash:
        request.app.state.flash[p.session_hash] = message


def create_app(settings: ConsoleSettings | None = None, **overrides: Any) -> FastAPI:
    """The console app; *overrides* are `ConsoleSettings` fields (handy in tests)."""
    if settings is None:
        settings = ConsoleSettings(**overrides)
    elif overrides:
        settings = settings.model_copy(update=overrides)
    app = FastAPI(title="tapsift console API", version="1", docs_url=None, redoc_url=None,
                  openapi_url=None,
                  description="Hits, triage, policy, fingerprints and statistics of a tapsift sensor. "
                              "Authenticate with `Authorization: Bearer <API token>` (create tokens on the "
                              "account page).")
    app.state.settings = settings
    app.state.db = ConsoleDB(settings.console_db)
    app.state.passwords = Passwords(settings.argon2_time_cost, settings.argon2_memory_kib,
                                    settings.argon2_parallelism)
    app.state.login_limiter = RateLimiter(settings.login_ip_limit, settings.login_ip_window_s)
    app.state.templates = make_templates()
    app.state.flash = {}
    app.state.counters = {"logins_failed": 0, "logins": 0, "rate_limited": 0, "csrf_refused": 0}
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    from webui import api, pages

    app.include_router(pages.public)
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(api.metrics_router)

    def _is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/") or request.url.path == "/metrics"

    @app.exception_handler(AuthRequired)
    async def _auth_required(request: Request, exc: AuthRequired) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": "authentication required"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": "your role does not allow this"}, status_code=403)
        return render(request, "error.html", 403, title="Not allowed",
                      message="Your role does not allow this.")

    @app.exception_handler(CsrfFailed)
    async def _csrf(request: Request, exc: CsrfFailed) -> Response:
        app.state.counters["csrf_refused"] += 1
        if _is_api(request):
            return JSONResponse({"detail": "CSRF token missing or wrong"}, status_code=403)
        return render(request, "error.html", 403, title="Form expired",
                      message="The form was not accepted (missing or stale security token). "
                              "Go back, reload the page and try again.")

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> Response:
        if _is_api(request):
            return JSONResponse({"detail": str(exc)}, status_code=503)
        return render(request, "error.html", 503, title="Alert store unavailable", message=str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request) or principal(request) is None:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return render(request, "error.html", exc.status_code, title=f"Error {exc.status_code}",
                      message=str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    def openapi_schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                             routes=[*api.router.routes, *api.metrics_router.routes])
        return app.openapi_schema

    app.openapi = openapi_schema  # type: ignore[method-assign]

    return app
