"""Security headers on every response, HSTS over HTTPS only, and cross-origin unsafe requests refused.

Every response carries a strict Content-Security-Policy (no inline script or style;
``script-src 'self'``), ``nosniff``, no framing; pages are ``no-store``; ``Referrer-Policy:
same-origin`` keeps search URLs from leaking to other sites. ``Strict-Transport-Security`` goes
only on responses to requests that arrived over HTTPS (``tapsift web --tls-cert``, or a TLS proxy
when ``trust_proxy_headers`` is on): a browser must learn it over a connection it trusts, and
RFC 6797 forbids sending it over plain HTTP.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webui.settings import ConsoleSettings

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
HEADERS = {
    b"content-security-policy": CSP.encode(),
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"same-origin",
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-resource-policy": b"same-origin",
    b"permissions-policy": b"camera=(), microphone=(), geolocation=(), interest-cohort=()",
}


def same_origin(headers: dict[str, str]) -> bool:
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


def over_tls(scope: Scope, headers: dict[str, str], trust_proxy_headers: bool) -> bool:
    """Whether this request reached us over HTTPS (directly, or through a trusted TLS proxy)."""
    if scope.get("scheme") == "https":
        return True
    return trust_proxy_headers and headers.get("x-forwarded-proto", "").strip().lower() == "https"


class SecurityHeaders:
    """Pure ASGI middleware (see the module doc)."""

    def __init__(self, app: ASGIApp, settings: ConsoleSettings) -> None:
        self.app = app
        self.hsts = f"max-age={settings.hsts_max_age_s}".encode() if settings.hsts_max_age_s else b""
        self.trust_proxy_headers = settings.trust_proxy_headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        extra = dict(HEADERS)
        if not scope.get("path", "").startswith("/static/"):
            extra[b"cache-control"] = b"no-store"
        if self.hsts and over_tls(scope, headers, self.trust_proxy_headers):
            extra[b"strict-transport-security"] = self.hsts
        wrapped = self._wrap(send, extra)
        if scope["method"] in ("POST", "PUT", "PATCH", "DELETE") and not same_origin(headers):
            resp = Response("cross-origin request refused", status_code=403, media_type="text/plain")
            await resp(scope, receive, wrapped)
            return
        await self.app(scope, receive, wrapped)

    @staticmethod
    def _wrap(send: Send, extra: dict[bytes, bytes]) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                hdrs = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                names = {k.lower() for k, _ in hdrs}
                hdrs += [(k, v) for k, v in extra.items() if k not in names]
                message = {**message, "headers": hdrs}
            await send(message)

        return wrapped
