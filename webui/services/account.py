"""A user's own account: password, two-factor login (TOTP) and API tokens."""

from __future__ import annotations

from typing import Any

from webui.db import ConsoleDB
from webui.errors import ServiceError, UserError
from webui.security import Passwords, new_token, token_hash, totp_secret, totp_uri, totp_verify
from webui.services.sessions import API_TOKEN_PREFIX, Principal
from webui.services.users import set_password


def totp_qr(uri: str) -> str:
    """The provisioning URI as a QR code: an SVG made here (segno), as a ``data:`` URI for an ``<img>``."""
    import segno

    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2, dark="#0f1b2d")


def account_view(db: ConsoleDB, who: Principal) -> dict[str, Any]:
    """The account page's data: the user row, their tokens, a TOTP secret being set up (with its QR code)."""
    from webui.services.searches import time_zones

    user = db.user_by_id(who.user_id)
    pending = user["totp_pending"] if user else None
    uri = totp_uri(pending, who.username) if pending else ""
    return {"account": user, "tokens": tokens(db, who), "pending": pending, "pending_uri": uri,
            "pending_qr": totp_qr(uri) if uri else "", "time_zones": time_zones()}


def tokens(db: ConsoleDB, who: Principal) -> list[dict[str, Any]]:
    return db.api_tokens.of_user(who.user_id)


def _user(db: ConsoleDB, who: Principal) -> dict[str, Any]:
    user = db.user_by_id(who.user_id)
    if user is None:
        raise ServiceError("no such user", 404)
    return user


def change_password(db: ConsoleDB, pw: Passwords, who: Principal, current: str, new: str, confirm: str, *,
                    ip: str = "") -> None:
    """Check the current password, set the new one; the caller's other sessions end."""
    user = _user(db, who)
    if not pw.verify(user["pw_hash"], current):
        raise UserError("The current password is wrong.")
    if new != confirm:
        raise UserError("The new passwords differ.")
    set_password(db, pw, user, new, actor=who.username, ip=ip, keep_session=who.session_hash)


def totp_start(db: ConsoleDB, who: Principal) -> None:
    db.accounts.start_totp(who.user_id, totp_secret())


def totp_confirm(db: ConsoleDB, who: Principal, code: str, *, ip: str = "") -> None:
    user = _user(db, who)
    if not user["totp_pending"]:
        raise UserError("Set up two-factor login first.")
    step = totp_verify(user["totp_pending"], code)
    if step is None:
        raise UserError("Wrong code; check the clock of your authenticator and try again.")
    with db.tx() as tx:
        tx.accounts.confirm_totp(who.user_id, step)
        db.audit(tx, who.username, "user.totp_enable", who.username, None, None, ip)


def totp_disable(db: ConsoleDB, pw: Passwords, who: Principal, current: str, *, ip: str = "") -> None:
    user = _user(db, who)
    if not pw.verify(user["pw_hash"], current):
        raise UserError("The current password is wrong.")
    with db.tx() as tx:
        tx.accounts.set_totp_secret(who.user_id, None)
        db.audit(tx, who.username, "user.totp_disable", who.username, None, None, ip)


def create_api_token(db: ConsoleDB, user: Principal, name: str, ip: str = "") -> str:
    """A new API token acting as *user*; returns it (only its hash is kept)."""
    name = name.strip()[:64] or "token"
    token = new_token(API_TOKEN_PREFIX)
    with db.tx() as tx:
        tx.api_tokens.add(user.user_id, name, token_hash(token), token[:10])
        db.audit(tx, user.username, "token.create", name, None, {"prefix": token[:10]}, ip)
    return token


def revoke_api_token(db: ConsoleDB, who: Principal, tid: int, ip: str = "") -> None:
    """Revoke one of the caller's tokens (admins: anyone's)."""
    row = db.api_tokens.get(tid)
    if row is None or (row["user_id"] != who.user_id and not who.can("admin")):
        raise ServiceError("no such token", 404)
    with db.tx() as tx:
        tx.api_tokens.delete(tid)
        db.audit(tx, who.username, "token.revoke", row["name"], {"prefix": row["prefix"]}, None, ip)
