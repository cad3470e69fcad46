"""User management (admins and ``tapsift user``): add, role, enable/disable, clear throttling, reset, delete."""

from __future__ import annotations

from typing import Any

from webui.db import ConsoleDB
from webui.errors import ServiceError, UserError
from webui.security import ROLES, Passwords, generate_password, password_problem
from webui.services.sessions import Principal
from webui.services.throttle import LoginThrottle, clear_throttle

USER_ACTIONS = ("role", "disable", "enable", "unlock", "reset_password", "reset_totp", "delete")


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
    with db.tx() as tx:
        tx.accounts.add(username, role, pw_hash)
        db.audit(tx, actor, "user.add", username, None, {"role": role}, ip)
    return password


def ensure_first_admin(db: ConsoleDB, pw: Passwords, username: str = "admin") -> str | None:
    """At first start (no users at all) create an admin with a generated password; returns it once."""
    if db.user_count():
        return None
    return create_user(db, pw, username, "admin", None, actor="system")


def set_password(db: ConsoleDB, pw: Passwords, user: dict[str, Any], password: str, *, actor: str,
                 ip: str = "", keep_session: str = "") -> None:
    """Change a password; every session of the user but *keep_session* ends."""
    problem = password_problem(password, user["username"])
    if problem:
        raise UserError(problem)
    pw_hash = pw.hash(password)
    with db.tx() as tx:
        tx.accounts.set_password_hash(user["id"], pw_hash)
        tx.sessions.drop_user(user["id"], keep=keep_session)
        db.audit(tx, actor, "user.password", user["username"], None, None, ip)


def unlock(db: ConsoleDB, user: dict[str, Any], *, actor: str, ip: str = "") -> int:
    """Clear the login throttling of a user name (every address); returns how many keys were cleared."""
    n = clear_throttle(db, username=user["username"])
    db.audit(None, actor, "user.unlock", user["username"], None, {"cleared": n}, ip)
    return n


def delete_user(db: ConsoleDB, user: dict[str, Any], *, actor: str, ip: str = "") -> None:
    with db.tx() as tx:
        tx.accounts.delete(user["id"])
        db.audit(tx, actor, "user.delete", user["username"], {"role": user["role"]}, None, ip)


def users_with_state(db: ConsoleDB, throttle: LoginThrottle) -> list[dict[str, Any]]:
    """All users, each with ``throttled_until`` (0 when none of their login keys is waiting)."""
    waiting = throttle.throttled_users()
    users = db.users()
    for u in users:
        u["throttled_until"] = waiting.get(u["username"].lower(), 0)
    return users


def change_user(db: ConsoleDB, pw: Passwords, who: Principal, uid: int, action: str, *, role: str = "",
                ip: str = "") -> tuple[dict[str, Any], str | None]:
    """An admin's action on user *uid*; returns (the user before, a generated password or None)."""
    user = db.user_by_id(uid)
    if user is None:
        raise ServiceError("no such user", 404)
    before = {"role": user["role"], "disabled": bool(user["disabled"])}
    last_admin = user["role"] == "admin" and db.admin_count() <= 1
    if action == "role":
        if role not in ROLES:
            raise ServiceError("unknown role", 422)
        if last_admin and role != "admin":
            raise ServiceError("the last admin cannot be demoted", 409)
        with db.tx() as tx:
            tx.accounts.set_role(uid, role)
            tx.sessions.drop_user(uid)
            db.audit(tx, who.username, "user.role", user["username"], before, {"role": role}, ip)
    elif action in ("disable", "enable"):
        if action == "disable" and last_admin:
            raise ServiceError("the last admin cannot be disabled", 409)
        with db.tx() as tx:
            tx.accounts.set_disabled(uid, action == "disable")
            tx.sessions.drop_user(uid)
            db.audit(tx, who.username, f"user.{action}", user["username"], before,
                     {"disabled": action == "disable"}, ip)
    elif action == "unlock":
        unlock(db, user, actor=who.username, ip=ip)
    elif action == "reset_password":
        generated = generate_password()
        set_password(db, pw, user, generated, actor=who.username, ip=ip)
        return user, generated
    elif action == "reset_totp":
        with db.tx() as tx:
            tx.accounts.set_totp_secret(uid, None)
            db.audit(tx, who.username, "user.totp_reset", user["username"], None, None, ip)
    elif action == "delete":
        if uid == who.user_id:
            raise ServiceError("you cannot delete yourself", 409)
        if last_admin:
            raise ServiceError("the last admin cannot be deleted", 409)
        delete_user(db, user, actor=who.username, ip=ip)
    else:
        raise ServiceError("unknown action", 400)
    return user, None
