"""Who is calling: browser sessions, API tokens and trusted-device tokens, all stored as SHA-256 only.

A session is ``stage='totp'`` between password and second factor and ``'ok'`` once fully logged
in; a new token is issued at each stage change (no fixation). Every session carries its CSRF
token. A device token is set in a long-lived cookie at each full login; it exempts that browser
from the account-wide login throttle (`webui.services.throttle`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from webui.db import ConsoleDB
from webui.security import new_token, role_at_least, token_hash

API_TOKEN_PREFIX = "tsk_"
DEVICES_PER_USER = 20
PENDING_IDLE_S, PENDING_MAX_S = 300.0, 600.0
"""A half-logged-in session (password given, second factor not yet) lives this long."""


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
    tz: str = "UTC"
    """The user's time zone (IANA name): times are shown and read in it."""

    def can(self, role: str) -> bool:
        return role_at_least(self.role, role)


def new_session(db: ConsoleDB, user_id: int, stage: str, ip: str, user_agent: str,
                replace: str = "") -> tuple[str, str]:
    """Create a session (dropping *replace*); returns (cookie token, csrf token)."""
    token, csrf = new_token(), new_token()
    now = time.time()
    with db.tx() as tx:
        tx.sessions.create(token_hash(token), user_id, csrf, stage, ip, user_agent, now, replace=replace,
                           expire_before=now - 7 * 86400)
    return token, csrf


def drop_session(db: ConsoleDB, session_hash: str) -> None:
    db.sessions.drop(session_hash)


def session_row(db: ConsoleDB, token: str, *, idle_s: float, max_s: float) -> dict[str, Any] | None:
    """The live session for a cookie value (with its user), or None (expired ones are deleted)."""
    if not token or len(token) > 200:
        return None
    h = token_hash(token)
    row = db.sessions.with_user(h)
    if row is None:
        return None
    now = time.time()
    if row["disabled"] or now - row["last_seen"] > idle_s or now - row["created"] > max_s:
        drop_session(db, h)
        return None
    if now - row["last_seen"] > 30:
        db.sessions.touch(h, now)
    return row


def session_principal(db: ConsoleDB, token: str, *, idle_s: float, max_s: float) -> Principal | None:
    """The fully logged-in user of a session cookie, or None."""
    row = session_row(db, token, idle_s=idle_s, max_s=max_s)
    if row is None or row["stage"] != "ok":
        return None
    return Principal(row["user_id"], row["username"], row["role"], "session", row["csrf"], row["token_hash"],
                     row.get("tz") or "UTC")


def pending_session(db: ConsoleDB, token: str) -> dict[str, Any] | None:
    """The session of someone between password and second factor, or None."""
    row = session_row(db, token, idle_s=PENDING_IDLE_S, max_s=PENDING_MAX_S)
    return row if row is not None and row["stage"] == "totp" else None


def token_principal(db: ConsoleDB, token: str) -> Principal | None:
    """The owner of an API token (``tsk_…``), or None."""
    if not token.startswith(API_TOKEN_PREFIX) or len(token) > 200:
        return None
    row = db.api_tokens.with_user(token_hash(token))
    if row is None or row["disabled"]:
        return None
    now = time.time()
    if not row["last_used"] or now - row["last_used"] > 60:
        db.api_tokens.touch(row["id"], now)
    return Principal(row["user_id"], row["username"], row["role"], "token", tz=row.get("tz") or "UTC")


# --------------------------------------------------------------------------- trusted devices


def device_trusted(db: ConsoleDB, user: dict[str, Any] | None, token: str) -> bool:
    """True when *token* (the device cookie) was issued to *user* at an earlier login."""
    # the same query whether or not the user exists (no timing difference for unknown names)
    found = db.devices.count(token_hash(token[:200]), user["id"] if user is not None else -1)
    return bool(token) and len(token) <= 200 and found == 1


def trust_device(db: ConsoleDB, user_id: int, token: str = "") -> str:
    """Remember this browser for *user_id*: refresh *token* if it is theirs, else issue a new one."""
    now = time.time()
    with db.tx() as tx:
        if token and len(token) <= 200 and tx.devices.refresh(token_hash(token), user_id, now):
            return token
        token = new_token()
        tx.devices.add(token_hash(token), user_id, now, DEVICES_PER_USER)
    return token
