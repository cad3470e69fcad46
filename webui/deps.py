"""Request dependencies, as ``Annotated`` aliases the routes declare (the FastAPI full-stack template's ``deps``).

    def hits(view: ViewDep, settings: SettingsDep, who: Viewer) -> ...

Handles: `SettingsDep`, `DbDep` (the console database), `ViewDep` (a read-only alert view for this
request, closed after it), `PasswordsDep`, `ThrottleDep`, `ClientIP`. Callers: `CurrentUser`
(any role), `Viewer`, `Analyst`, `Admin` (at least that role). CSRF: `page_router()` routers
check the form's ``csrf`` field on every unsafe request, `api_router()` routers the
``X-CSRF-Token`` header when the caller uses a session cookie rather than an API token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from appliance.store.content import ContentRepo
from webui.alerts import AlertView
from webui.db import ConsoleDB
from webui.errors import AuthRequired, CsrfFailed, Forbidden
from webui.security import Passwords, same
from webui.services.sessions import Principal, session_principal, token_principal
from webui.services.throttle import LoginThrottle
from webui.settings import ConsoleSettings

SESSION_COOKIE = "tapsift_session"
PRELOGIN_COOKIE = "tapsift_prelogin"
DEVICE_COOKIE = "tapsift_device"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_api(request: Request) -> bool:
    """Requests answered as JSON (and the only ones a bearer token works for)."""
    return request.url.path.startswith("/api/") or request.url.path == "/metrics"


# --------------------------------------------------------------------------- handles


def get_settings(request: Request) -> ConsoleSettings:
    return request.app.state.settings


def get_db(request: Request) -> ConsoleDB:
    return request.app.state.db


def get_passwords(request: Request) -> Passwords:
    return request.app.state.passwords


def get_throttle(request: Request) -> LoginThrottle:
    return request.app.state.throttle


def view_opener(request: Request) -> Callable[[], AlertView]:
    """Opens a fresh read-only alert view (for code that opens it later, as a streamed CSV does)."""
    return request.app.state.views


def get_view(request: Request) -> Iterator[AlertView]:
    """An alert view for this request (`StoreError` → 503 when the store cannot be read)."""
    with view_opener(request)() as view:
        yield view


def get_content(request: Request) -> Iterator[ContentRepo | None]:
    """The retained content for this request (None: no ``content_db`` configured)."""
    with request.app.state.content.open() as repo:
        yield repo


def client_ip(request: Request) -> str:
    settings = request.app.state.settings
    if settings.trust_proxy_headers:
        fwd = request.headers.get("x-forwarded-for", "")
        if fwd:
            return fwd.split(",")[0].strip()[:64]
    return request.client.host if request.client else ""


def is_https(request: Request) -> bool:
    """Whether cookies get ``Secure`` (``secure_cookies`` can force it either way)."""
    settings = request.app.state.settings
    if settings.secure_cookies == "always":
        return True
    if settings.secure_cookies == "never":
        return False
    if settings.trust_proxy_headers and request.headers.get("x-forwarded-proto", "").lower() == "https":
        return True
    return request.url.scheme == "https"


SettingsDep = Annotated[ConsoleSettings, Depends(get_settings)]
DbDep = Annotated[ConsoleDB, Depends(get_db)]
PasswordsDep = Annotated[Passwords, Depends(get_passwords)]
ThrottleDep = Annotated[LoginThrottle, Depends(get_throttle)]
ViewDep = Annotated[AlertView, Depends(get_view)]
ContentDep = Annotated[ContentRepo | None, Depends(get_content)]
ClientIP = Annotated[str, Depends(client_ip)]


# --------------------------------------------------------------------------- callers


def principal(request: Request) -> Principal | None:
    """The caller, from the session cookie or (API and metrics only) a bearer token; cached per request."""
    cached = getattr(request.state, "principal", False)
    if cached is not False:
        return cached
    st = request.app.state
    authz = request.headers.get("authorization", "")
    if authz[:7].lower() == "bearer " and is_api(request):
        found = token_principal(st.db, authz[7:].strip())
    else:
        found = session_principal(st.db, request.cookies.get(SESSION_COOKIE, ""),
                                  idle_s=st.settings.session_idle_s, max_s=st.settings.session_max_s)
    request.state.principal = found
    return found


def require_user(request: Request) -> Principal:
    """Any authenticated caller; cookie-authenticated unsafe API calls must carry ``X-CSRF-Token``."""
    p = principal(request)
    if p is None:
        raise AuthRequired()
    if request.method in UNSAFE_METHODS and p.via == "session" and request.url.path.startswith("/api/"):
        header = request.headers.get("x-csrf-token", "")
        if not header or not same(header, p.csrf):
            raise CsrfFailed()
    return p


def require(role: str) -> Callable[[Request], Principal]:
    """A dependency: the caller must have at least *role*."""

    def dep(request: Request) -> Principal:
        p = require_user(request)
        if not p.can(role):
            raise Forbidden()
        return p

    dep.__name__ = f"require_{role}"
    return dep


async def csrf_form(request: Request) -> Principal:
    """For HTML form posts: an authenticated user and the form's ``csrf`` field matching the session."""
    p = require_user(request)
    if request.method in UNSAFE_METHODS:
        form = await request.form()
        sent = form.get("csrf")
        if p.via != "session" or not isinstance(sent, str) or not same(sent, p.csrf):
            raise CsrfFailed()
    return p


CurrentUser = Annotated[Principal, Depends(require_user)]
Viewer = Annotated[Principal, Depends(require("viewer"))]
Analyst = Annotated[Principal, Depends(require("analyst"))]
Admin = Annotated[Principal, Depends(require("admin"))]


def page_router(**kw: Any) -> APIRouter:
    """A router of HTML pages: signed-in users only, the form's CSRF token on every unsafe request."""
    return APIRouter(include_in_schema=False, dependencies=[Depends(csrf_form)], **kw)


def api_router(tag: str) -> APIRouter:
    """A router under ``/api/v1`` (in the OpenAPI document): a bearer token or a session with its CSRF header."""
    return APIRouter(prefix="/api/v1", tags=[tag], dependencies=[Depends(require_user)])
