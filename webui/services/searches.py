"""Saved searches (per user, for hits or content) and each user's preferences: time zone, last visit."""

from __future__ import annotations

import time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from appliance.outputs.alertjson import clean
from appliance.store.querylang import QueryError, parse
from webui.db import ConsoleDB
from webui.errors import ServiceError
from webui.services.sessions import Principal

SCOPES = ("hits", "content")
NAME_MAX = 80
MAX_PER_USER = 200


def _scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ServiceError("unknown search scope", 404)
    return scope


def saved(db: ConsoleDB, who: Principal, scope: str) -> list[dict[str, Any]]:
    return db.searches.list(who.user_id, _scope(scope))


def save(db: ConsoleDB, who: Principal, scope: str, name: str, query: str, ip: str = "") -> None:
    """Save *query* under *name* (replacing the user's search of that name); the query must parse."""
    name = clean(str(name)).strip()[:NAME_MAX]
    query = str(query).strip()
    if not name:
        raise ServiceError("give the search a name", 422)
    if not query:
        raise ServiceError("an empty search is not worth saving", 422)
    try:
        parse(query)
    except QueryError as exc:
        raise ServiceError(f"the query has a problem at character {exc.position + 1}: {exc.message}", 422) from None
    if len(db.searches.list(who.user_id, _scope(scope))) >= MAX_PER_USER:
        raise ServiceError(f"at most {MAX_PER_USER} saved searches", 422)
    with db.tx() as tx:
        tx.searches.save(who.user_id, scope, name, query, time.time())
        db.audit(tx, who.username, "search.save", name, None, {"scope": scope, "query": query}, ip)


def delete(db: ConsoleDB, who: Principal, sid: int, ip: str = "") -> None:
    row = db.searches.get(who.user_id, sid)
    if row is None:
        raise ServiceError("no such saved search", 404)
    with db.tx() as tx:
        tx.searches.delete(who.user_id, sid)
        db.audit(tx, who.username, "search.delete", row["name"], {"query": row["query"]}, None, ip)


def set_tz(db: ConsoleDB, who: Principal, tz: str, ip: str = "") -> str:
    """Show and read times in *tz* (an IANA name such as ``Asia/Shanghai``, or UTC)."""
    tz = tz.strip()
    if tz != "UTC":
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ServiceError(f"unknown time zone {tz!r} (e.g. Europe/Berlin, Asia/Shanghai, UTC)", 422) from None
    with db.tx() as tx:
        tx.user_state.set_tz(who.user_id, tz)
        db.audit(tx, who.username, "user.tz", who.username, {"tz": who.tz}, {"tz": tz}, ip)
    return tz


def time_zones() -> list[str]:
    return ["UTC", *sorted(z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/")))]


def visit(db: ConsoleDB, who: Principal, max_seq: int) -> int:
    """Note that *who* looks at the hit list; the baseline of ``is:new`` (see `StateRepo.visit`)."""
    if who.via != "session":
        return db.user_state.baseline(who.user_id)
    with db.tx() as tx:
        return tx.user_state.visit(who.user_id, max_seq, time.time())
