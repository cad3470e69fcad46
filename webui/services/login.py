"""Logging in: the password, then (if the user has one) the second factor, both behind the throttle.

An unknown user name and a wrong password get the same answer: the same message and status,
the same throttle keys (the name as typed), and one argon2 verification either way (against a
dummy hash for an unknown name). A throttled attempt is refused before anything is checked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from webui.db import ConsoleDB
from webui.security import Passwords, totp_verify
from webui.services.sessions import device_trusted
from webui.services.throttle import LoginThrottle, Refusal

WRONG_LOGIN = "wrong user name or password"


@dataclass(slots=True)
class LoginOutcome:
    """``user`` on success; ``refusal`` when throttled (nothing was checked); neither: wrong."""

    user: dict[str, Any] | None = None
    refusal: Refusal | None = None


async def check_password(db: ConsoleDB, pw: Passwords, throttle: LoginThrottle, username: str, password: str, *,
                         ip: str, device: str = "") -> LoginOutcome:
    """Verify a login form (argon2 runs in a worker thread, not on the event loop)."""
    name = username.strip()[:64]
    user = db.user_by_name(name) if name else None
    keys = throttle.keys(name, ip, device_trusted(db, user, device))
    refusal = throttle.admit(keys, audit_user=name)
    if refusal is not None:
        return LoginOutcome(refusal=refusal)
    try:
        good = await run_in_threadpool(pw.verify, user["pw_hash"] if user else None, password)
        if user is None or not good or user["disabled"]:
            backoff = throttle.failed(keys)
            db.audit(None, name, "login.failed", name, None, {"backoff_s": backoff} if backoff else None, ip)
            return LoginOutcome()
        if not user["totp_secret"]:
            throttle.succeeded(keys)
        if pw.needs_rehash(user["pw_hash"]):
            new_hash = await run_in_threadpool(pw.hash, password)
            db.accounts.set_password_hash(user["id"], new_hash)
        return LoginOutcome(user=user)
    finally:
        throttle.release(keys)


def check_second_factor(db: ConsoleDB, throttle: LoginThrottle, pending: dict[str, Any], code: str, *,
                        ip: str, device: str = "") -> LoginOutcome:
    """Verify the TOTP code of a half-logged-in session (*pending*, from `pending_session`)."""
    user = db.user_by_id(pending["user_id"])
    name = pending["username"]
    keys = throttle.keys(name, ip, device_trusted(db, user, device))
    refusal = throttle.admit(keys, audit_user=name)
    if refusal is not None:
        return LoginOutcome(refusal=refusal)
    try:
        step = totp_verify(pending["totp_secret"], code, pending["totp_last_step"])
        if user is None or step is None:
            backoff = throttle.failed(keys)
            db.audit(None, name, "login.totp_failed", name, None, {"backoff_s": backoff} if backoff else None, ip)
            return LoginOutcome()
        throttle.succeeded(keys)
        db.accounts.set_totp_step(user["id"], step)
        return LoginOutcome(user=user)
    finally:
        throttle.release(keys)


def record_login(db: ConsoleDB, user: dict[str, Any], ip: str) -> None:
    with db.tx() as tx:
        tx.accounts.set_last_login(user["id"], time.time())
        db.audit(tx, user["username"], "login", user["username"], ip=ip)
