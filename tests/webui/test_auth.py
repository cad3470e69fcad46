"""Console auth: refusal without a session everywhere but login, roles, CSRF, TOTP, sessions (throttling elsewhere)."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient

from tests.webui.conftest import PASSWORDS, Env, add_users, csrf_of, login
from webui.security import totp_code, totp_verify


def all_routes(app) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(method, path) of every route, with path parameters filled in."""
    out = []

    def walk(routes) -> None:  # type: ignore[no-untyped-def]
        for r in routes:
            if hasattr(r, "original_router"):
                walk(r.original_router.routes)
            elif hasattr(r, "methods") and r.methods:
                for m in r.methods - {"HEAD"}:
                    path = re.sub(r"\{(\w+)\}", lambda g: "1" if g.group(1) in ("fi", "ei", "vid", "uid", "tid", "fid")
                                  else "A00001", r.path)
                    out.append((m, path))

    walk(app.routes)
    return out


def test_unauthenticated_is_refused_everywhere_but_login(client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    routes = all_routes(app)
    assert len(routes) > 40
    open_ = {("GET", "/login"), ("POST", "/login"), ("GET", "/login/totp"), ("POST", "/login/totp")}
    for method, path in routes:
        r = client.request(method, path, follow_redirects=False)
        if (method, path) in open_:
            continue
        if path.startswith("/api/") or path == "/metrics":
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"
        else:
            assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), (method, path)
        assert b"A000" not in r.content and b"Nightjar" not in r.content
    # the login pages themselves reveal nothing and need the pre-login token to accept a post
    assert client.post("/login", data={"username": "admin", "password": PASSWORDS["admin"]}).status_code == 403
    assert client.get("/login/totp", follow_redirects=False).status_code == 303
    # a bogus cookie or token is no better than none
    client.cookies.set("tapsift_session", "forged")
    assert client.get("/hits", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/hits", headers={"Authorization": "Bearer tsk_forged"}).status_code == 401


ROLE_MATRIX = [
    # (method, path, data, least role)
    ("GET", "/", None, "viewer"),
    ("GET", "/hits", None, "viewer"),
    ("GET", "/hits/A00001", None, "viewer"),
    ("GET", "/policy", None, "viewer"),
    ("GET", "/fingerprints", None, "viewer"),
    ("GET", "/account", None, "viewer"),
    ("POST", "/hits/A00001/triage", {"verdict": "false_positive", "note": "x"}, "analyst"),
    ("POST", "/policy", {"action": "validate", "text": "zones: {}\n"}, "analyst"),
    ("POST", "/policy/reload", {}, "analyst"),
    ("POST", "/policy/versions/1/rollback", {}, "analyst"),
    ("POST", "/fingerprints/999/delete", {}, "analyst"),
    ("GET", "/users", None, "admin"),
    ("GET", "/audit", None, "admin"),
    ("POST", "/users", {"username": "zed", "role": "viewer", "password": "zed-password-1"}, "admin"),
    ("POST", "/users/1", {"action": "unlock"}, "admin"),
]


@pytest.mark.parametrize("role", ["viewer", "analyst", "admin"])
def test_role_permissions_on_pages(app, role: str) -> None:  # type: ignore[no-untyped-def]
    from webui.security import role_at_least

    with TestClient(app) as c:
        csrf = login(c, role)
        c.get("/policy")  # records policy history #1 so that rollback has a target
        for method, path, data, least in ROLE_MATRIX:
            r = c.request(method, path, data={**data, "csrf": csrf} if data is not None else None,
                          follow_redirects=False)
            allowed = role_at_least(role, least)
            if allowed:
                assert r.status_code in (200, 303, 404, 422), (role, method, path, r.status_code)
            else:
                assert r.status_code == 403, (role, method, path, r.status_code)
    if role == "viewer":  # nothing changed
        assert app.state.db.scalar("SELECT COUNT(*) FROM verdicts") == 0


@pytest.mark.parametrize("role", ["viewer", "analyst", "admin"])
def test_role_permissions_on_api(app, role: str) -> None:  # type: ignore[no-untyped-def]
    from webui.security import role_at_least
    from webui.services.account import create_api_token
    from webui.services.sessions import Principal

    user = app.state.db.user_by_name(role)
    token = create_api_token(app.state.db, Principal(user["id"], role, role, "session"), "t")
    h = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as c:
        for method, path, kw, least in [
            ("GET", "/api/v1/hits", {}, "viewer"), ("GET", "/api/v1/hits/A00001", {}, "viewer"),
            ("GET", "/api/v1/stats", {}, "viewer"), ("GET", "/api/v1/policy", {}, "viewer"),
            ("GET", "/api/v1/policy/versions", {}, "viewer"), ("GET", "/api/v1/openapi.json", {}, "viewer"),
            ("GET", "/metrics", {}, "viewer"),
            ("POST", "/api/v1/hits/A00001/triage", {"json": {"verdict": "confirmed"}}, "analyst"),
            ("PUT", "/api/v1/policy", {"json": {"text": "x: [\n"}}, "analyst"),
            ("POST", "/api/v1/policy/reload", {}, "analyst"),
            ("DELETE", "/api/v1/fingerprints/999", {}, "analyst"),
        ]:
            r = c.request(method, path, headers=h, **kw)
            if role_at_least(role, least):
                assert r.status_code in (200, 404, 422), (role, method, path, r.status_code, r.text)
            else:
                assert r.status_code == 403, (role, method, path, r.status_code)


def test_csrf_refusal(client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "analyst")
    # form without / with a wrong token
    for data in ({"verdict": "confirmed"}, {"verdict": "confirmed", "csrf": "wrong"}):
        r = client.post("/hits/A00001/triage", data=data)
        assert r.status_code == 403 and "Form expired" in r.text
    # the right token from another origin
    r = client.post("/hits/A00001/triage", data={"verdict": "confirmed", "csrf": csrf},
                    headers={"Origin": "https://evil.example"})
    assert r.status_code == 403
    r = client.post("/hits/A00001/triage", data={"verdict": "confirmed", "csrf": csrf},
                    headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    # the API with the session cookie needs the header
    assert client.post("/api/v1/hits/A00001/triage", json={"verdict": "confirmed"}).status_code == 403
    assert client.post("/api/v1/hits/A00001/triage", json={"verdict": "confirmed"},
                       headers={"X-CSRF-Token": "nope"}).status_code == 403
    assert app.state.db.scalar("SELECT COUNT(*) FROM verdicts") == 0
    ok = client.post("/api/v1/hits/A00001/triage", json={"verdict": "confirmed"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200
    ok = client.post("/hits/A00001/triage", data={"verdict": "false_positive", "csrf": csrf},
                     headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert ok.status_code == 303
    # logout is a form too
    assert client.post("/logout", data={}).status_code == 403
    assert app.state.counters["csrf_refused"] == 5  # the cross-origin ones never reach a route


def test_totp_second_factor(client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "analyst")
    client.post("/account/totp", data={"action": "start", "csrf": csrf})
    secret = app.state.db.user_by_name("analyst")["totp_pending"]
    assert secret and secret in client.get("/account").text
    step = int(time.time() // 30)
    r = client.post("/account/totp", data={"action": "confirm", "code": totp_code(secret, step), "csrf": csrf},
                    follow_redirects=False)
    assert r.status_code == 303 and app.state.db.user_by_name("analyst")["totp_secret"] == secret
    with TestClient(app) as c2:
        page = c2.get("/login")
        r = c2.post("/login", data={"csrf": csrf_of(page.text), "username": "analyst",
                                    "password": PASSWORDS["analyst"]}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login/totp")
        # half-logged-in: nothing else is reachable
        assert c2.get("/hits", follow_redirects=False).status_code == 303
        form = c2.get("/login/totp")
        tok = csrf_of(form.text)
        bad = c2.post("/login/totp", data={"csrf": tok, "code": "000000"})
        assert bad.status_code == 401
        # the code used to enable it cannot be replayed; the next step's code works
        code = totp_code(secret, step + 1)
        ok = c2.post("/login/totp", data={"csrf": tok, "code": code}, follow_redirects=False)
        assert ok.status_code == 303 and ok.headers["location"] == "/"
        assert c2.get("/hits").status_code == 200


def test_totp_rfc6238_vectors() -> None:
    import base64

    secret = base64.b32encode(b"12345678901234567890").decode()
    # RFC 6238 appendix B (SHA-1), last 6 digits
    assert totp_code(secret, 59 // 30) == "287082"
    assert totp_code(secret, 1111111109 // 30) == "081804"
    assert totp_code(secret, 20000000000 // 30) == "353130"
    assert totp_verify(secret, "287 082", now=59) == 1
    assert totp_verify(secret, "287082", last_step=1, now=59) is None


def test_session_cookie_flags_and_fixation(env: Env) -> None:
    app = env.app()  # secure_cookies="auto": Secure when the request came over HTTPS
    add_users(app)
    with TestClient(app, base_url="http://testserver") as c:
        assert "Secure" not in c.get("/login").headers["set-cookie"]
    with TestClient(app, base_url="https://testserver") as c:
        page = c.get("/login")
        pre = page.headers["set-cookie"]
        assert "HttpOnly" in pre and "SameSite=strict" in pre and "Secure" in pre
        r = c.post("/login", data={"csrf": csrf_of(page.text), "username": "admin", "password": PASSWORDS["admin"]},
                   follow_redirects=False)
        cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("tapsift_session="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" in cookie
    # only the hash of the session token is stored
    token = cookie.split(";")[0].split("=", 1)[1]
    assert app.state.db.scalar("SELECT COUNT(*) FROM sessions WHERE token_hash = ?", (token,)) == 0


def test_logout_and_password_change_end_sessions(client: TestClient, app) -> None:  # type: ignore[no-untyped-def]
    csrf = login(client, "viewer")
    other = TestClient(app)
    login(other, "viewer")
    r = client.post("/account/password", data={"csrf": csrf, "current": PASSWORDS["viewer"],
                                               "new": "a-new-password-2", "confirm": "a-new-password-2"},
                    follow_redirects=False)
    assert r.status_code == 303
    assert other.get("/hits", follow_redirects=False).status_code == 303  # the other session is gone
    assert client.get("/hits").status_code == 200
    client.post("/logout", data={"csrf": csrf})
    assert client.get("/hits", follow_redirects=False).status_code == 303


def test_no_open_redirect_after_login(client: TestClient) -> None:
    page = client.get("/login?next=//evil.example/x")
    assert 'value="/"' in page.text
    r = client.post("/login", data={"csrf": csrf_of(page.text), "username": "viewer", "password": PASSWORDS["viewer"],
                                    "next": "https://evil.example/"}, follow_redirects=False)
    assert r.headers["location"] == "/"
