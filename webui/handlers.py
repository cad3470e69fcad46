"""Exception handlers: each failure as a page for browsers and as JSON for ``/api`` and ``/metrics``."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance.store import StoreError
from webui.deps import is_api, principal
from webui.errors import AuthRequired, CsrfFailed, Forbidden, ServiceError
from webui.rendering import error_page


async def _auth_required(request: Request, exc: Exception) -> Response:
    if is_api(request):
        return JSONResponse({"detail": "authentication required"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


async def _forbidden(request: Request, exc: Exception) -> Response:
    if is_api(request):
        return JSONResponse({"detail": "your role does not allow this"}, status_code=403)
    return error_page(request, 403, "Not allowed", "Your role does not allow this.")


async def _csrf(request: Request, exc: Exception) -> Response:
    request.app.state.counters["csrf_refused"] += 1
    if is_api(request):
        return JSONResponse({"detail": "CSRF token missing or wrong"}, status_code=403)
    return error_page(request, 403, "Form expired", "The form was not accepted (missing or stale security token). "
                                                     "Go back, reload the page and try again.")


async def _store(request: Request, exc: Exception) -> Response:
    if is_api(request):
        return JSONResponse({"detail": str(exc)}, status_code=503)
    return error_page(request, 503, "Alert store unavailable", str(exc))


def _error(request: Request, status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    if is_api(request) or principal(request) is None:
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    return error_page(request, status, f"Error {status}", detail)


async def _service(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return _error(request, exc.status, str(exc))


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return _error(request, exc.status_code, str(exc.detail), exc.headers)


async def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


def install(app: FastAPI) -> None:
    app.add_exception_handler(AuthRequired, _auth_required)
    app.add_exception_handler(Forbidden, _forbidden)
    app.add_exception_handler(CsrfFailed, _csrf)
    app.add_exception_handler(StoreError, _store)
    app.add_exception_handler(ServiceError, _service)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _invalid)
