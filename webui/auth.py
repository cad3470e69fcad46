"""Users, sessions, API tokens and the request dependencies that enforce them.

Sessions: a random token in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS); only its
SHA-256 is stored. A session is ``stage='totp'`` between password and second factor and
``'ok'`` once fully logged in; a new token is issued at each stage change (no fixation). Every
session carries its CSRF token, which every form posts back. ``/api/v1`` also takes
``Authorization: Bearer <API token>``; cookie-authenticated unsafe API calls need the
``X-CSRF-Token`` header.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from webui.db import ConsoleDB
from webui.security import (
    ROLES,
    Passwords,
    generate_password,
    new_token,
    password_problem,
    role_at_least,
    same,
    token_hash,
)

SESSION_COOKIE = "tapsift_session"
PRELOGIN_COOKIE = "tapsift_prelogin"
API_TOKEN_PREFIX = "tsk_"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(slots=True, frozen=True)
class Principal:
    """Who is making a request."""

    user_id: int
    username: str
    role: str
    via: str
    """``session`` or ``token``."""
    csrf: str = ""
    session_hash: str = ""

    def can(self, role: str) -> bool:
        return role_at_least(self.role, role)


class AuthRequired(Exception):
    """No valid credentials: pages redirect to the login form, the API answers 401."""


class Forbidden(Exception):
    """Authenticated, but the role does not allow this."""


class CsrfFailed(Exception):
    """A state-changing request without the right CSRF token."""


class UserError(ValueError):
    """A user-management request that cannot be done (message for the user)."""


# --------------------------------------------------------------------------- users


def create_user(db: ConsoleDB, pw: Passwords, username: str, role: str, password: str | None = None, *,
                actor: str = "system", ip: str = "") -> str:
    """Add a user; returns the password (generated when *password* is None)."""
    username = username.strip()
    if not username or len(username) > 64 or not all(c.isalnum() or c in "._-@" for c in username):
        raise UserError("user names are 1-64 letters, digits and . _ - @")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    password = password if password is not None else generate_password()
    problem = password_problem(password, username)
    if problem:
        raise UserError(problem)
    if db.user_by_name(username) is not None:
        raise UserError(f"user {username!r} already exists")
    pw_hash = pw.hash(password)
    with db.tx() as conn:
        conn.execute("INSERT INTO users (username, role, pw_hash, created) VALUES (?,?,?,?)",
                     (username, role, pw_hash, time.time()))
        db.audit(conn, actor, "user.add", username, None, {"role": role}, ip)
    return password


def ensure_first_admin(db: ConsoleDB, pw: Passwords, username: str = "admin") -> str | None:
    """At first start (no users at all) create an admin with a generated password; returns it once."""
    if db.user_count():
        return None
    return create_user(db, pw, username, "admin", None, actor="system")


def set_password(db: ConsoleDB, pw: Passwords, user: dict[str, Any], password: str, *, actor: str,
                 ip: str = "", keep_session: str = "") -> None:
    problem = password_problem(password, user["username"])
    if problem:
        raise UserError(problem)
    pw_hash = pw.hash(password)
    with db.tx() as conn:
        conn.execute("UPDATE users SET pw_hash = ?, failed = 0, locked_until = 0 WHERE id = ?", (pw_hash, user["id"]))
        conn.execute("DELETE FROM sessions WHERE user_id = ? AND token_hash != ?", (user["id"], keep_session))
        db.audit(conn, actor, "user.password", user["username"], None, None, ip)


# --------------------------------------------------------------------------- login


@dataclass(slots=True)
class LoginResult:
    ok: bool
    message: str = ""
    user: dict[str, Any] | None = None
    locked: bool = False


def check_password(db: ConsoleDB, pw: Passwords, username: str, password: str, *, lockout_threshold: int,
                   lockout_s: float, ip: str = "") -> LoginResult:
    """Verify a login; counts failures and locks the account after *lockout_threshold* in a row."""
    user = db.user_by_name(username.strip()) if username.strip() else None
    now = time.time()
    if user is not None and user["locked_until"] > now:
        pw.verify(None, password)  # same cost as a real attempt
        db.audit(None, username[:64], "login.refused_locked", username[:64], ip=ip)
        return LoginResult(False, "this account is locked after too many failed logins; try again later",
                           locked=True)
    good = pw.verify(user["pw_hash"] if user else None, password)
    if user is None or not good or user["disabled"]:
        if user is not None and not user["disabled"]:
            failed = user["failed"] + 1
            locked_until = now + lockout_s if failed >= lockout_threshold else 0
            with db.tx() as conn:
                conn.execute("UPDATE users SET failed = ?, locked_until = ? WHERE id = ?",
                             (0 if locked_until else failed, locked_until, user["id"]))
                db.audit(conn, username[:64], "login.failed", username[:64], None,
                         {"locked": bool(locked_until)}, ip)
        else:
            db.audit(None, username[:64], "login.failed", username[:64], ip=ip)
        return LoginResult(False, "wrong user name or password")
    if pw.needs_rehash(user["pw_hash"]):
        with db.tx() as conn:
            conn.execute("UPDATE users SET pw_hash = ? WHERE id = ?", (pw.hash(password), user["id"]))
    return LoginResult(True, user=user)


def record_login(db: ConsoleDB, user: dict[str, Any], ip: str) -> None:
    with db.tx() as conn:
        conn.execute("UPDATE users SET failed = 0, locked_until = 0, last_login = ? WHERE id = ?",
                     (time.time(), user["id"]))
        db.audit(conn, user["username"], "login", user["username"], ip=ip)


def record_second_factor_failure(db: ConsoleDB, user: dict[str, Any], *, lockout_threshold: int,
                                 lockout_s: float, ip: str) -> bool:
    """Count a wrong TOTP code like a wrong password; True when the account is now locked."""
    row = db.user_by_id(user["id"]) or user
    failed = row["failed"] + 1
    locked_until = time.time() + lockout_s if failed >= lockout_threshold else 0
    with db.tx() as conn:
        conn.execute("UPDATE users SET failed = ?, locked_until = ? WHERE id = ?",
                     (0 if locked_until else failed, locked_until, user["id"]))
        db.audit(conn, user["username"], "login.totp_failed", user["username"], None,
                 {"locked": bool(locked_until)}, ip)
    return bool(locked_until)


def new_session(db: ConsoleDB, user_id: int, stage: str, ip: str, user_agent: str,
                replace: str = "") -> tuple[str, str]:
    """Create a session (dropping *replace*); returns (cookie token, csrf token)."""
    token, csrf = new_token(), new_token()
    now = time.time()
    with db.tx() as conn:
        if replace:
            conn.execute("DELETE FROM sessions WHERE token_hash = ?", (replace,))
        conn.execute("DELETE FROM sessions WHERE last_seen < ?", (now - 7 * 86400,))
        conn.execute(
            "INSERT INTO sessions (token_hash, user_id, csrf, stage, created, last_seen, ip, user_agent) "
            "VALUES (?,?,?,?,?,?,?,?)", (token_hash(token), user_id, csrf, stage, now, now, ip, user_agent[:300]))
    return token, csrf


def drop_session(db: ConsoleDB, session_hash: str) -> None:
    with db.tx() as conn:
        conn.execute("DELETE FROM sessions WHERE token_hash = ?", (session_hash,))


def session_row(db: ConsoleDB, token: str, *, idle_s: float, max_s: float) -> dict[str, Any] | None:
    """The live session for a cookie value (with its user), or None (expired ones are deleted)."""
    if not token or len(token) > 200:
        return None
    h = token_hash(token)
    row = db.one(
        "SELECT s.*, u.username, u.role, u.disabled, u.totp_secret, u.totp_last_step FROM sessions s "
        "JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?", (h,))
    if row is None:
        return None
    now = time.time()
    if row["disabled"] or now - row["last_seen"] > idle_s or now - row["created"] > max_s:
        drop_session(db, h)
        return None
    if now - row["last_seen"] > 30:
        with db.tx() as conn:
            conn.execute("UPDATE sessions SET last_seen = ? WHERE token_hash = ?", (now, h))
    return row


def token_principal(db: ConsoleDB, token: str) -> Principal | None:
    if not token.startswith(API_TOKEN_PREFIX) or len(token) > 200:
        return None
    row = db.one("SELECT t.id, t.user_id, t.last_used, u.username, u.role, u.disabled FROM api_tokens t "
                 "JOIN users u ON u.id = t.user_id WHERE t.token_hash = ?", (token_hash(token),))
    if row is None or row["disabled"]:
        return None
    now = time.time()
    if not row["last_used"] or now - row["last_used"] > 60:
        with db.tx() as conn:
            conn.execute("UPDATE api_tokens SET last_used = ? WHERE id = ?", (now, row["id"]))
    return Principal(row["user_id"], row["username"], row["role"], "token")


def create_api_token(db: ConsoleDB, user: Principal, name: str, ip: str = "") -> str:
    name = name.strip()[:64] or "token"
    token = new_token(API_TOKEN_PREFIX)
    with db.tx() as conn:
        conn.execute("INSERT INTO api_tokens (user_id, name, token_hash, prefix, created) VALUES (?,?,?,?,?)",
                     (user.user_id, name, token_hash(token), token[:10], time.time()))
        db.audit(conn, user.username, "token.create", name, None, {"prefix": token[:10]}, ip)
    return token


# --------------------------------------------------------------------------- per request


def client_ip(request: Request) -> str:
    settings = request.app.state.settings
    if settings.trust_proxy_headers:
        fwd = request.headers.get("x-forwarded-for", "")
        if fwd:
            return fwd.split(",")[0].strip()[:64]
    return request.client.host if request.client else ""


def is_https(request: Request) -> bool:
    settings = request.app.state.settings
    if settings.secure_cookies == "always":
        return True
    if settings.secure_cookies == "never":
        return False
    if settings.trust_proxy_headers and request.headers.get("x-forwarded-proto", "").lower() == "https":
        return True
    return request.url.scheme == "https"


def principal(request: Request) -> Principal | None:
    """The caller, from the session cookie or (API and metrics only) a bearer token."""
    cached = getattr(request.state, "principal", False)
    if cached is not False:
        return cached
    st = request.app.state
    found: Principal | None = None
    authz = request.headers.get("authorization", "")
    if authz[:7].lower() == "bearer " and (request.url.path.startswith("/api/") or request.url.path == "/metrics"):
        found = token_principal(st.db, authz[7:].strip())
    else:
        row = session_row(st.db, request.cookies.get(SESSION_COOKIE, ""), idle_s=st.settings.session_idle_s,
                          max_s=st.settings.session_max_s)
        if row is not None and row["stage"] == "ok":
            found = Principal(row["user_id"], row["username"], row["role"], "session", row["csrf"],
                              row["token_hash"])
    request.state.principal = found
    return found


def require_user(request: Request) -> Principal:
    p = principal(request)
    if p is None:
        raise AuthRequired()
    if request.method in UNSAFE_METHODS and p.via == "session" and request.url.path.startswith("/api/"):
        header = request.headers.get("x-csrf-token", "")
        if not header or not same(header, p.csrf):
            raise CsrfFailed()
    return p


def require(role: str):  # type: ignore[no-untyped-def]
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
